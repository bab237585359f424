"""Fixtures: tiny ConvTasNet and DPRNNTasNet checkpoints (see widgetd_asteroid.testing) and a server for them."""

from __future__ import annotations

from pathlib import Path

import pytest

import widgetd_asteroid
from widgetd.testing.server import LiveServer
from widgetd_asteroid.testing import build_models


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    return build_models(tmp_path_factory.mktemp("asteroid"))


@pytest.fixture(scope="session")
def separation_server(model_dirs):
    with LiveServer.for_models(
        [str(model_dirs["convtasnet"]), str(model_dirs["dprnn"])], plugins={"asteroid": widgetd_asteroid}
    ) as server:
        yield server

