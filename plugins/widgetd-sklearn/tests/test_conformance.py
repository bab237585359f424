"""widgetd's conformance kit against this plugin (``nox -s conformance``): a random forest and a pipeline with a
text column, saved with skops, trained here."""

from __future__ import annotations

import pytest

import widgetd_sklearn
from widgetd.testing import conformance as kit
from widgetd_sklearn.testing import build_models


class SklearnFixtures:
    model_name: str

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_plugin(cls):
        return widgetd_sklearn

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_model(cls, tmp_path_factory):
        return build_models(tmp_path_factory.mktemp("sklearn"))[cls.model_name]


class TestRandomForestClassifier(kit.TabularClassificationTests, SklearnFixtures):
    model_name = "classifier-skops"

    @pytest.fixture(scope="class")
    @classmethod
    def model_labels(cls, widgetd_model):
        import skops.io

        model = skops.io.load(widgetd_model / "model.skops", trusted=["sklearn.tree._tree.Tree"])
        return [str(label) for label in model.classes_]


class TestRegressionPipeline(kit.TabularRegressionTests, SklearnFixtures):
    model_name = "regressor-skops"
