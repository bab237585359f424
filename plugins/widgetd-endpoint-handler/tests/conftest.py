"""Fixtures: the handler repos (see widgetd_endpoint_handler.testing), published on a local Hub, and one
``widgetd serve --trust-remote-code`` process serving those that load."""

from __future__ import annotations

from pathlib import Path

import pytest

from widgetd.testing.process import ServeProcess
from widgetd_endpoint_handler.testing import build_repos

SERVED = ("speech", "custom", "wrong-shape", "legacy")


@pytest.fixture(scope="session")
def repos(tmp_path_factory) -> dict[str, Path]:
    return build_repos(tmp_path_factory.mktemp("handler-repos"))


@pytest.fixture(scope="session")
def published(local_hub, repos) -> dict[str, str]:
    """Each repo's id on the local Hub: ``endpoints/<name>``."""
    for name, folder in repos.items():
        local_hub.publish(f"endpoints/{name}", folder)
    return {name: f"endpoints/{name}" for name in repos}


@pytest.fixture(scope="session")
def session_hub_env(local_hub, tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("hf-home")
    return {
        "HF_ENDPOINT": local_hub.url,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "0",
        "WIDGETD_LOAD_PLUGINS": "endpoint-handler",
    }


@pytest.fixture(scope="session")
def handler_server(published, session_hub_env):
    models = [argument for name in SERVED for argument in ("--model-id", published[name])]
    # --max-batch-size cannot make a handler take several requests at once: it is not thread-safe.
    with ServeProcess(["--trust-remote-code", "--max-batch-size", "8", *models], session_hub_env) as server:
        yield server
