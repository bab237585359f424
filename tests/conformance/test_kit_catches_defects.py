"""The kit proves it can fail: run against plugins with one defect each, it reports that defect
with a message that points at the cause. Each case runs the kit in its own pytest process."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PLUGIN_TESTS = '''
import pytest
from tests.conformance import broken_plugins
from tests.toy_plugin import make_toy_model
from widgetd.testing import conformance as kit


class TestBroken(kit.{mixin}):
    max_examples = 5

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_plugin(cls):
        return broken_plugins.plugin_for(broken_plugins.{defect})()

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_model(cls, tmp_path_factory):
        return make_toy_model(tmp_path_factory.mktemp("toy"), pipeline_tag=cls.task_name)

    @pytest.fixture
    def expected_sources(self):
        return 2
'''

DEFECTS = [
    # (defect, mixin, the kit test that must fail, what its report must say)
    ("WrongOutputType", "QuestionAnsweringTests", "test_examples_are_answered", "the plugin's answer breaks the task's contract"),
    ("NotAListOfLabels", "TextClassificationTests", "test_examples_are_answered", "the plugin's answer breaks the task's contract"),
    ("OffByOneOffsets", "QuestionAnsweringTests", "test_examples_are_answered", "must equal the text at its offsets"),
    ("FailsOnEmptyText", "TokenClassificationTests", "test_edge_inputs_never_fail_the_server", "the server failed with 500"),
    ("Nondeterministic", "SentenceSimilarityTests", "test_same_request_same_answer", "not deterministic"),
    ("BatchDependent", "FeatureExtractionTests", "test_batching_does_not_change_answers", "batch-dependent"),
    ("ExtraSource", "AudioToAudioTests", "test_source_count_is_the_models", "must be separated into 2 sources"),
    ("HalfLengthSources", "AudioToAudioTests", "test_examples_are_answered", "must be as long as its input"),
    ("RemembersTopK", "TextClassificationTests", "test_no_state_leaks_between_requests", "state leaks between requests"),
    ("UnsortedScores", "ImageClassificationTests", "test_examples_are_answered", "sorted by score, highest first"),
    ("WordsNotFromTheText", "TokenClassificationTests", "test_examples_are_answered", "must equal the text at its offsets"),
    ("RefusesEverything", "SummarizationTests", "test_examples_are_answered", "must get a 200, got 400"),
    ("RefusesEverything", "SummarizationTests", "test_generated_requests_are_answered_or_refused", "refuses input its contract allows"),
    ("DropsACandidate", "ZeroShotImageClassificationTests", "test_examples_are_answered", "exactly the candidate labels"),
    ("UnnormalisedZeroShot", "ZeroShotImageClassificationTests", "test_examples_are_answered", "must sum to 1"),
    ("BoxesInTheModelsPixels", "ObjectDetectionTests", "test_examples_are_answered", "must lie inside the"),
    ("IgnoresThreshold", "ObjectDetectionTests", "test_examples_are_answered", "keeps only objects scored above it"),
    ("MasksInTheModelsSize", "ImageSegmentationTests", "test_examples_are_answered", "must be the size of the"),
    ("GreyMasks", "ImageSegmentationTests", "test_examples_are_answered", "must be black and white"),
    ("ColumnFirstCoordinates", "TableQuestionAnsweringTests", "test_examples_are_answered", "cells must be the table's values at the coordinates"),
    ("CaptionIgnoresMaxNewTokens", "ImageToTextTests", "test_length_limits_are_honoured", "max_new_tokens is ignored"),
    ("RepeatsAnAnswer", "VisualQuestionAnsweringTests", "test_examples_are_answered", "each answer once"),
    ("EndPastTheAnswer", "DocumentQuestionAnsweringTests", "test_examples_are_answered", "joined by spaces"),
    ("DropsAnAudioCandidate", "ZeroShotAudioClassificationTests", "test_examples_are_answered", "exactly the candidate labels"),
    ("DepthInTheModelsSize", "DepthEstimationTests", "test_examples_are_answered", "predicted_depth must hold"),
    ("AnswersThePadding", "ImageToImageTests", "test_examples_are_answered", "no padding left in it"),
    ("AnswerIsNotTheCells", "TableQuestionAnsweringTests", "test_examples_are_answered", "answer must join the cells after the aggregator"),
]


@pytest.fixture
def kit_run(pytester, monkeypatch):
    """Runs the kit's ``test`` for ``mixin`` against ``defect`` in a fresh pytest process."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))

    def run(defect: str, mixin: str, test: str):
        pytester.makepyfile(test_plugin=PLUGIN_TESTS.format(mixin=mixin, defect=defect))
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", test, timeout=300)

    return run


@pytest.mark.parametrize(("defect", "mixin", "test", "message"), DEFECTS, ids=[f"{d[0]}-{d[2]}" for d in DEFECTS])
def test_the_kit_reports_the_defect(kit_run, defect, mixin, test, message):
    result = kit_run(defect, mixin, test)
    output = result.stdout.str()
    assert result.parseoutcomes().get("failed") == 1, output
    assert message in output, output


def test_a_correct_plugin_passes_the_same_checks(kit_run):
    result = kit_run("ToyPipeline", "QuestionAnsweringTests", "test_")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 7 and not outcomes.get("failed"), result.stdout.str()


def test_a_missing_fixture_says_what_to_supply(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(
        test_plugin="""
from widgetd.testing import conformance as kit

class TestNoFixtures(kit.QuestionAnsweringTests):
    pass
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "test_examples_are_answered", timeout=300)
    result.stdout.fnmatch_lines(["*needs a `widgetd_plugin` fixture*"])
    assert result.ret != 0


def test_an_unsupported_capability_skips_with_its_reason(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_plugin=PLUGIN_TESTS.format(mixin="SentenceSimilarityTests", defect="ToyPipeline").replace(
        "broken_plugins.plugin_for(broken_plugins.ToyPipeline)()", "broken_plugins.OneAtATime()"
    ))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", "-k", "batching", timeout=300)
    assert result.parseoutcomes().get("skipped") == 1, result.stdout.str()
    result.stdout.fnmatch_lines(["*answers one request at a time*"])
