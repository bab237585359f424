"""Fixtures: a tiny sentence-transformers model, and servers for it and the real default model."""

from __future__ import annotations

from pathlib import Path

import pytest

import widgetd_sentence_transformers
from widgetd.testing.server import LiveServer
from widgetd_sentence_transformers.testing import build_tiny_sentence_transformer


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_sentence_transformer(tmp_path_factory.mktemp("tiny-st"))


@pytest.fixture(scope="session")
def tiny_server(tiny_model_dir):
    with LiveServer.for_models(
        [str(tiny_model_dir)], plugins={"sentence-transformers": widgetd_sentence_transformers}
    ) as server:
        yield server


@pytest.fixture(scope="session")
def default_model_server():
    with LiveServer.for_models(
        ["sentence-transformers/all-MiniLM-L6-v2"],
        plugins={"sentence-transformers": widgetd_sentence_transformers},
    ) as server:
        yield server
