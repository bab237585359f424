"""The kit passes a plugin that honours every contract: the toy plugin, for all 25 tasks."""

from __future__ import annotations

import pytest

from tests import toy_engine
from tests.toy_plugin import StreamingToyPlugin, ToyPlugin, make_toy_model, toy_labels
from widgetd.testing import conformance as kit
from widgetd.testing.audio import encode, speech_like
from widgetd.testing.conformance.chat import as_template_reads_them


class ToyFixtures:
    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_plugin(cls):
        return ToyPlugin()

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_model(cls, request, tmp_path_factory):
        return make_toy_model(tmp_path_factory.mktemp("toy"), pipeline_tag=request.cls.task_name)

    @pytest.fixture(scope="class")
    @classmethod
    def model_labels(cls, widgetd_model):
        return toy_labels(widgetd_model)  # kept where config.json's id2label is not: the kit needs telling


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


class StreamingToyFixtures(ToyFixtures):
    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_plugin(cls):
        return StreamingToyPlugin()


class TestStreamedTextGeneration(StreamingToyFixtures, kit.TextGenerationTests): ...


class TestChat(kit.ChatTests, StreamingToyFixtures):
    task_name = "text-generation"

    @pytest.fixture(scope="class")
    def prompt_tokens(self):
        return lambda messages: toy_engine.prompt_tokens(toy_engine.template(toy_engine.Prompt(messages=tuple(as_template_reads_them(messages)))))

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
class TestZeroShotImageClassification(kit.ZeroShotImageClassificationTests, ToyFixtures): ...
class TestObjectDetection(kit.ObjectDetectionTests, ToyFixtures):
    sees_through_borders = True  # the toy finds the brightest square and the picture's non-black part
class TestImageSegmentation(kit.ImageSegmentationTests, ToyFixtures): ...
class TestTableQuestionAnswering(kit.TableQuestionAnsweringTests, ToyFixtures): ...
class TestImageToText(kit.ImageToTextTests, ToyFixtures): ...
class TestVisualQuestionAnswering(kit.VisualQuestionAnsweringTests, ToyFixtures): ...
class TestDocumentQuestionAnswering(kit.DocumentQuestionAnsweringTests, ToyFixtures): ...
class TestZeroShotAudioClassification(kit.ZeroShotAudioClassificationTests, ToyFixtures): ...
class TestDepthEstimation(kit.DepthEstimationTests, ToyFixtures): ...
class TestImageToImage(kit.ImageToImageTests, ToyFixtures): ...
