from __future__ import annotations

import importlib.util

import pytest

from tests.toy_plugin import ToyPlugin, make_toy_model
from widgetd.app import ServerSettings
from widgetd.testing.server import LiveServer


@pytest.fixture(scope="session")
def toy_model(tmp_path_factory):
    return make_toy_model(tmp_path_factory.mktemp("models") / "toy-qa")


@pytest.fixture(scope="session")
def toy_server(toy_model):
    with LiveServer.for_models(
        [str(toy_model)], plugins={"toy": ToyPlugin()}, settings=ServerSettings(max_body_size=1024 * 1024)
    ) as server:
        yield server


# The Ray Serve tests run in their own session (`nox -s ray`), where Ray is installed.
collect_ignore = [] if importlib.util.find_spec("ray") else ["ray"]
