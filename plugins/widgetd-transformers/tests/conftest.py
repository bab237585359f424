"""Fixtures: every tiny model (see widgetd_transformers.testing) and one server for all of them."""

from __future__ import annotations

from pathlib import Path

import pytest

import widgetd_transformers
from widgetd.testing.server import LiveServer
from widgetd_transformers.testing import build_models


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    return build_models(tmp_path_factory.mktemp("transformers-models"))


@pytest.fixture(scope="session")
def server(model_dirs):
    with LiveServer.for_models(
        [str(path) for path in model_dirs.values()], plugins={"transformers": widgetd_transformers}
    ) as live:
        yield live
