"""widgetd's conformance kit against this plugin (``nox -s conformance``): a tiny Stable Diffusion pipeline with
random weights, for text-to-image and image-to-image."""

from __future__ import annotations

import pytest

import widgetd_diffusers
from widgetd.testing import conformance as kit
from widgetd_diffusers.testing import build_pipeline


class DiffusersFixtures:
    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_plugin(cls):
        return widgetd_diffusers

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_model(cls, tmp_path_factory):
        return build_pipeline(tmp_path_factory.mktemp("diffusers") / "tiny-sd")


class TestTextToImage(kit.TextToImageTests, DiffusersFixtures):
    pass


class TestImageToImage(kit.ImageToImageTests, DiffusersFixtures):
    @pytest.fixture
    def expected_scale(self):
        return 1  # the input's size, whatever the model's step between sizes
