"""widgetd's conformance kit against this plugin, on a tiny model (``nox -s conformance``)."""

from __future__ import annotations

import pytest

import widgetd_sentence_transformers
from widgetd.app import ServerSettings
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
    """The same contracts on the other runtimes, over the exports the repo ships."""

    runtime = "onnx"

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_model(cls, tmp_path_factory):
        return build_tiny_sentence_transformer(tmp_path_factory.mktemp("sentence-transformers"), exported=True)

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_server_settings(cls):
        return ServerSettings(max_batch_wait=0.05, request_timeout=120, runtime=cls.runtime)


class OpenVINOFixtures(ExportedGraphFixtures):
    runtime = "openvino"


class Int8Fixtures(ExportedGraphFixtures):
    runtime = "int8"


class TestSentenceSimilarityOnONNX(kit.SentenceSimilarityTests, ExportedGraphFixtures): ...
class TestFeatureExtractionOnONNX(kit.FeatureExtractionTests, ExportedGraphFixtures): ...
class TestSentenceSimilarityOnOpenVINO(kit.SentenceSimilarityTests, OpenVINOFixtures): ...
class TestFeatureExtractionOnOpenVINO(kit.FeatureExtractionTests, OpenVINOFixtures): ...
class TestSentenceSimilarityInInt8(kit.SentenceSimilarityTests, Int8Fixtures): ...
class TestFeatureExtractionInInt8(kit.FeatureExtractionTests, Int8Fixtures): ...
