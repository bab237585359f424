"""widgetd's conformance kit against this plugin, on a tiny model (``nox -s conformance``)."""

from __future__ import annotations

import pytest

import widgetd_sentence_transformers
from widgetd.testing import conformance as kit
from widgetd_sentence_transformers.testing import build_tiny_sentence_transformer


class SentenceTransformersFixtures:
    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_plugin(cls):
        return widgetd_sentence_transformers

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_model(cls, tmp_path_factory):
        return build_tiny_sentence_transformer(tmp_path_factory.mktemp("sentence-transformers"))


class TestSentenceSimilarity(kit.SentenceSimilarityTests, SentenceTransformersFixtures): ...
class TestFeatureExtraction(kit.FeatureExtractionTests, SentenceTransformersFixtures): ...
