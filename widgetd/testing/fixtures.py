"""pytest fixtures that widgetd installs (a ``pytest11`` plugin): a local Hub and a private HF cache."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def local_hub():
    """A server speaking the Hub's HTTP protocol on loopback; publish tiny models to it."""
    from widgetd.testing.hub import LocalHub

    with LocalHub() as hub:
        yield hub


@pytest.fixture
def hub_env(local_hub, tmp_path) -> dict[str, str]:
    """Environment for a ``widgetd serve`` process: the local Hub and an empty HF cache."""
    return {
        "HF_ENDPOINT": local_hub.url,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_CACHE": str(tmp_path / "hf-home" / "hub"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "0",
    }
