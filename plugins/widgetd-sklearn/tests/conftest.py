"""Fixtures: scikit-learn models trained here and saved in the Hub layout (see widgetd_sklearn.testing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from widgetd_sklearn.testing import build_models


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    return build_models(tmp_path_factory.mktemp("sklearn"))
