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


class ExportedGraphFixtures(SentenceTransformersFixtures):
    """The same contracts on the other runtimes (the kit's ``widgetd_runtime``), over the repo's exports."""

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_model(cls, tmp_path_factory):
        return build_tiny_sentence_transformer(tmp_path_factory.mktemp("sentence-transformers"), exported=True)


class TestSentenceSimilarityOnONNX(kit.SentenceSimilarityTests, ExportedGraphFixtures):
    widgetd_runtime = "onnx"


class TestFeatureExtractionOnONNX(kit.FeatureExtractionTests, ExportedGraphFixtures):
    widgetd_runtime = "onnx"


class TestSentenceSimilarityOnOpenVINO(kit.SentenceSimilarityTests, ExportedGraphFixtures):
    widgetd_runtime = "openvino"


class TestFeatureExtractionOnOpenVINO(kit.FeatureExtractionTests, ExportedGraphFixtures):
    widgetd_runtime = "openvino"


class TestSentenceSimilarityInInt8(kit.SentenceSimilarityTests, ExportedGraphFixtures):
    widgetd_runtime = "int8"


class TestFeatureExtractionInInt8(kit.FeatureExtractionTests, ExportedGraphFixtures):
    widgetd_runtime = "int8"
