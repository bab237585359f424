"""widgetd's conformance kit against this plugin: every task, a tiny model each (``nox -s conformance``)."""

from __future__ import annotations

import pytest

import widgetd_transformers
from widgetd.testing import conformance as kit
from widgetd.testing.conformance.chat import as_template_reads_them
from widgetd.testing.audio import encode, speech_like
from widgetd_transformers.testing import build_model, save_blip_vqa


class TransformersFixtures:
    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_plugin(cls):
        return widgetd_transformers

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_model(cls, request, tmp_path_factory):
        return build_model(request.cls.task_name, tmp_path_factory.mktemp("transformers"))


class TestQuestionAnswering(kit.QuestionAnsweringTests, TransformersFixtures): ...
class TestTokenClassification(kit.TokenClassificationTests, TransformersFixtures): ...
class TestTextClassification(kit.TextClassificationTests, TransformersFixtures): ...
class TestZeroShotClassification(kit.ZeroShotClassificationTests, TransformersFixtures): ...
class TestFillMask(kit.FillMaskTests, TransformersFixtures): ...
class TestFeatureExtraction(kit.FeatureExtractionTests, TransformersFixtures): ...
class TestSummarization(kit.SummarizationTests, TransformersFixtures): ...
class TestTranslation(kit.TranslationTests, TransformersFixtures): ...
class TestTextGeneration(kit.TextGenerationTests, TransformersFixtures): ...
class TestAutomaticSpeechRecognition(kit.AutomaticSpeechRecognitionTests, TransformersFixtures):
    @pytest.fixture
    def speech_sample(self):
        return encode(speech_like(), 16000, "WAV")
class TestAudioClassification(kit.AudioClassificationTests, TransformersFixtures): ...
class TestZeroShotImageClassification(kit.ZeroShotImageClassificationTests, TransformersFixtures): ...
class TestObjectDetection(kit.ObjectDetectionTests, TransformersFixtures): ...
class TestImageSegmentation(kit.ImageSegmentationTests, TransformersFixtures): ...
class TestTableQuestionAnswering(kit.TableQuestionAnsweringTests, TransformersFixtures): ...
class TestImageToText(kit.ImageToTextTests, TransformersFixtures): ...
class TestVisualQuestionAnswering(kit.VisualQuestionAnsweringTests, TransformersFixtures): ...
class TestGeneratedVisualAnswers(kit.VisualQuestionAnsweringTests, TransformersFixtures):
    """BLIP generates its answer: one, scored by its probability."""

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_model(cls, tmp_path_factory):
        return save_blip_vqa(tmp_path_factory.mktemp("blip") / "tiny-blip-vqa")

    @pytest.fixture(scope="class")
    @classmethod
    def model_labels(cls, served):
        return None
class TestDocumentQuestionAnswering(kit.DocumentQuestionAnsweringTests, TransformersFixtures): ...
class TestZeroShotAudioClassification(kit.ZeroShotAudioClassificationTests, TransformersFixtures): ...
class TestDepthEstimation(kit.DepthEstimationTests, TransformersFixtures): ...
class TestImageToImage(kit.ImageToImageTests, TransformersFixtures): ...
class TestTextToSpeech(kit.TextToSpeechTests, TransformersFixtures): ...
class TestImageClassification(kit.ImageClassificationTests, TransformersFixtures): ...


class TestChat(kit.ChatTests, TransformersFixtures):
    @pytest.fixture(scope="class")
    def prompt_tokens(self, widgetd_model):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(widgetd_model))
        template = lambda messages: tokenizer.apply_chat_template(as_template_reads_them(messages), add_generation_prompt=True, return_dict=True)
        return lambda messages: len(template(messages)["input_ids"])


# Each encoder task again on one graph runtime (the kit's ``widgetd_runtime``); the three share the graph
# code, and test_runtimes.py compares every encoder task on every runtime with torch.
class TestQuestionAnsweringOnONNX(kit.QuestionAnsweringTests, TransformersFixtures):
    widgetd_runtime = "onnx"


class TestTokenClassificationOnOpenVINO(kit.TokenClassificationTests, TransformersFixtures):
    widgetd_runtime = "openvino"


class TestTextClassificationInInt8(kit.TextClassificationTests, TransformersFixtures):
    widgetd_runtime = "int8"


class TestZeroShotClassificationOnONNX(kit.ZeroShotClassificationTests, TransformersFixtures):
    widgetd_runtime = "onnx"


class TestFillMaskOnOpenVINO(kit.FillMaskTests, TransformersFixtures):
    widgetd_runtime = "openvino"


class TestFeatureExtractionInInt8(kit.FeatureExtractionTests, TransformersFixtures):
    widgetd_runtime = "int8"
