"""One `widgetd serve` process with a tiny model for every task of the three plugins."""

from __future__ import annotations

import pytest

from widgetd.testing.process import ServeProcess

transformers_testing = pytest.importorskip("widgetd_transformers.testing")
st_testing = pytest.importorskip("widgetd_sentence_transformers.testing")
asteroid_testing = pytest.importorskip("widgetd_asteroid.testing")
sklearn_testing = pytest.importorskip("widgetd_sklearn.testing")
diffusers_testing = pytest.importorskip("widgetd_diffusers.testing")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("client-models")
    folders = [
        *transformers_testing.build_models(root / "transformers").values(),
        st_testing.build_tiny_sentence_transformer(root / "st").rename(root / "tiny-st"),
        asteroid_testing.build_models(root / "asteroid")["convtasnet"],
        diffusers_testing.build_pipeline(root / "tiny-sd"),
        *(folder for name, folder in sklearn_testing.build_models(root / "sklearn").items() if name != "classifier-joblib" and name != "regressor-joblib"),
    ]
    args = [argument for folder in folders for argument in ("--model-id", str(folder))]
    with ServeProcess(args, {"HF_HUB_OFFLINE": "1"}) as process:
        yield process
