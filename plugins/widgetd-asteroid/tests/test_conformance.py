"""widgetd's conformance kit against this plugin, for each asteroid model class (``nox -s conformance``)."""

from __future__ import annotations

import pytest

import widgetd_asteroid
from widgetd.testing import conformance as kit
from widgetd_asteroid.testing import save_checkpoint, tiny_models


class AsteroidFixtures:
    architecture: str

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_plugin(cls):
        return widgetd_asteroid

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_model(cls, tmp_path_factory):
        model = tiny_models()[cls.architecture]
        return save_checkpoint(model, tmp_path_factory.mktemp("asteroid") / cls.architecture)

    @pytest.fixture
    def expected_sources(self):
        return tiny_models()[self.architecture].get_model_args()["n_src"]


class TestConvTasNet(kit.AudioToAudioTests, AsteroidFixtures):
    architecture = "convtasnet"


class TestDPRNNTasNet(kit.AudioToAudioTests, AsteroidFixtures):
    architecture = "dprnn"
