"""The kit passes a plugin that honours every contract: the toy plugin, for all 15 tasks."""

from __future__ import annotations

import pytest

from tests.toy_plugin import ToyPlugin, make_toy_model
from widgetd.testing import conformance as kit
from widgetd.testing.audio import encode, speech_like


class ToyFixtures:
    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_plugin(cls):
        return ToyPlugin()

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_model(cls, request, tmp_path_factory):
        return make_toy_model(tmp_path_factory.mktemp("toy"), pipeline_tag=request.cls.task_name)


class TestQuestionAnswering(kit.QuestionAnsweringTests, ToyFixtures): ...
class TestTokenClassification(kit.TokenClassificationTests, ToyFixtures): ...
class TestTextClassification(kit.TextClassificationTests, ToyFixtures): ...
class TestZeroShotClassification(kit.ZeroShotClassificationTests, ToyFixtures): ...
class TestFillMask(kit.FillMaskTests, ToyFixtures): ...
class TestSentenceSimilarity(kit.SentenceSimilarityTests, ToyFixtures): ...
class TestFeatureExtraction(kit.FeatureExtractionTests, ToyFixtures): ...
class TestSummarization(kit.SummarizationTests, ToyFixtures): ...
class TestTranslation(kit.TranslationTests, ToyFixtures): ...
class TestTextGeneration(kit.TextGenerationTests, ToyFixtures): ...
class TestAutomaticSpeechRecognition(kit.AutomaticSpeechRecognitionTests, ToyFixtures):
    @pytest.fixture
    def speech_sample(self):
        return encode(speech_like(), 16000, "FLAC")
class TestAudioToAudio(kit.AudioToAudioTests, ToyFixtures):
    @pytest.fixture
    def expected_sources(self):
        return 2
class TestTextToSpeech(kit.TextToSpeechTests, ToyFixtures): ...
class TestImageClassification(kit.ImageClassificationTests, ToyFixtures): ...
class TestAudioClassification(kit.AudioClassificationTests, ToyFixtures): ...
