"""The conformance kit: prove a plugin honours every task contract it claims.

Supply two fixtures and inherit a test class per task your backend serves::

    import pytest
    import widgetd_mylib
    from widgetd.testing.conformance import QuestionAnsweringTests

    class MyLibFixtures:
        @pytest.fixture(scope="class")
        def widgetd_plugin(self):
            return widgetd_mylib

        @pytest.fixture(scope="class")
        def widgetd_model(self, request, tmp_path_factory):
            return build_tiny_model(request.cls.task_name, tmp_path_factory.mktemp("model"))

    class TestQuestionAnswering(QuestionAnsweringTests, MyLibFixtures):
        pass

What you supply (fixtures such as ``model_labels`` or ``speech_sample``, knobs such as ``tolerance``) wins over
the kit's defaults whatever the order of the class's bases, and may also live in your conftest.py.

Each class starts a real widgetd server for the model and checks, over HTTP, that examples and
hypothesis-generated requests get answers that follow the task's contract, that invalid and edge
inputs get a 4xx and never a 500, and that answers are deterministic, independent of batching and
free of state left by earlier requests; and rules that tie answers to their requests (``top_k``, zero-shot
candidates, places on a picture, embeddings, finish reasons). A check that cannot run is skipped with its
reason, and the run ends with the list of them.
"""

from widgetd.testing.conformance.base import LabelledTests, Served, TaskTests
from widgetd.testing.conformance.chat import ChatTests
from widgetd.testing.conformance.diffusion import TextToImageTests
from widgetd.testing.conformance.exchange import Call, Reply
from widgetd.testing.conformance.labels import ModelLabels, labels_of_model
from widgetd.testing.conformance.media import (
    AudioClassificationTests,
    AudioToAudioTests,
    AutomaticSpeechRecognitionTests,
    DepthEstimationTests,
    DocumentQuestionAnsweringTests,
    ImageClassificationTests,
    ImageSegmentationTests,
    ImageToImageTests,
    ImageToTextTests,
    ObjectDetectionTests,
    TextToSpeechTests,
    VisualQuestionAnsweringTests,
    ZeroShotAudioClassificationTests,
    ZeroShotImageClassificationTests,
)
from widgetd.testing.conformance.pairs import (
    FeatureExtractionTests,
    QuestionAnsweringTests,
    SentenceSimilarityTests,
    TableQuestionAnsweringTests,
)
from widgetd.testing.conformance.rules import ContractViolation, expect
from widgetd.testing.conformance.tabular import TabularClassificationTests, TabularRegressionTests
from widgetd.testing.conformance.text import (
    FillMaskTests,
    SummarizationTests,
    TextClassificationTests,
    TextGenerationTests,
    TokenClassificationTests,
    TranslationTests,
    ZeroShotClassificationTests,
)

TESTS_BY_TASK: dict[str, type[TaskTests]] = {
    tests.task_name: tests
    for tests in (
        QuestionAnsweringTests,
        TableQuestionAnsweringTests,
        TokenClassificationTests,
        TextClassificationTests,
        ZeroShotClassificationTests,
        FillMaskTests,
        SentenceSimilarityTests,
        FeatureExtractionTests,
        SummarizationTests,
        TranslationTests,
        TextGenerationTests,
        AutomaticSpeechRecognitionTests,
        AudioToAudioTests,
        TextToSpeechTests,
        AudioClassificationTests,
        ImageClassificationTests,
        ZeroShotImageClassificationTests,
        ObjectDetectionTests,
        ImageSegmentationTests,
        ImageToTextTests,
        VisualQuestionAnsweringTests,
        DocumentQuestionAnsweringTests,
        ZeroShotAudioClassificationTests,
        DepthEstimationTests,
        ImageToImageTests,
        TabularClassificationTests,
        TabularRegressionTests,
        TextToImageTests,
    )
}
"""The test mixin for each built-in task."""

__all__ = [
    "AudioClassificationTests",
    "AudioToAudioTests",
    "AutomaticSpeechRecognitionTests",
    "Call",
    "ChatTests",
    "ContractViolation",
    "DepthEstimationTests",
    "DocumentQuestionAnsweringTests",
    "FeatureExtractionTests",
    "FillMaskTests",
    "ImageClassificationTests",
    "ImageSegmentationTests",
    "ImageToImageTests",
    "ImageToTextTests",
    "LabelledTests",
    "ModelLabels",
    "ObjectDetectionTests",
    "QuestionAnsweringTests",
    "Reply",
    "SentenceSimilarityTests",
    "Served",
    "SummarizationTests",
    "TESTS_BY_TASK",
    "TableQuestionAnsweringTests",
    "TabularClassificationTests",
    "TabularRegressionTests",
    "TaskTests",
    "TextClassificationTests",
    "TextGenerationTests",
    "TextToImageTests",
    "TextToSpeechTests",
    "TokenClassificationTests",
    "TranslationTests",
    "VisualQuestionAnsweringTests",
    "ZeroShotAudioClassificationTests",
    "ZeroShotClassificationTests",
    "ZeroShotImageClassificationTests",
    "expect",
    "labels_of_model",
]
