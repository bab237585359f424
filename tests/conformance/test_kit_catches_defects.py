"""The kit proves it can fail: run against plugins with one defect each, it reports that defect with a message
that points at the cause. The defects planted in the toy plugin run as test classes of one pytest process;
those planted in the server itself (a mutated route) each run in their own, so that they touch nothing else.
The mutation score (defects caught / planted) is printed."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FIXTURES = '''
import pytest
from tests import toy_engine
from tests.conformance import broken_plugins
from tests.toy_plugin import make_toy_model, toy_labels
from widgetd.testing import conformance as kit
from widgetd.testing.conformance.chat import as_template_reads_them


class ToyFixtures:
    """What a plugin supplies; each test class lists it after the kit's mixin, as the README's template does."""

    defect = "ToyPipeline"
    sees_through_borders = True

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_plugin(cls):
        return broken_plugins.plugin_for(getattr(broken_plugins, cls.defect))()

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_model(cls, tmp_path_factory):
        task = "text-generation" if cls.task_name == "chat-completion" else cls.task_name
        return make_toy_model(tmp_path_factory.mktemp("toy"), pipeline_tag=task)

    @pytest.fixture(scope="class")
    @classmethod
    def model_labels(cls, widgetd_model):
        return toy_labels(widgetd_model)

    @pytest.fixture
    def expected_sources(self):
        return 2

    @pytest.fixture(scope="class")
    def prompt_tokens(self):
        template = lambda messages: toy_engine.template(toy_engine.Prompt(messages=tuple(as_template_reads_them(messages))))
        return lambda messages: toy_engine.prompt_tokens(template(messages))
'''

CLASS = '''

class Test{name}({bases}):
    max_examples = 5
    defect = {defect!r}
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
    # Rules that tie answers to their requests, and inputs that can show a defect.
    ("LabelsByIndex", "TextClassificationTests", "test_examples_are_answered", "is not one of the model's labels ['NEGATIVE', 'POSITIVE'] (model_labels: your model_labels fixture)"),
    ("AlikeScores", "TextClassificationTests", "test_the_model_is_not_too_flat_to_test", "the model is too flat to test"),
    ("TopKBeforeSorting", "ImageClassificationTests", "test_top_k_keeps_the_best_of_the_same_ranking", "top_k must keep the best of the same ranking"),
    ("ScoresInRequestOrder", "ZeroShotClassificationTests", "test_scores_belong_to_their_candidate", "each score must belong to its candidate"),
    ("SharperWithMoreCandidates", "ZeroShotImageClassificationTests", "test_adding_a_candidate_keeps_the_others_relation", "must keep the ratio of two others"),
    ("BoxesInTheModelsInputClipped", "ObjectDetectionTests", "test_boxes_scale_with_the_picture", "not of the model's resized input"),
    ("BoxesScaledByTheOtherSide", "ObjectDetectionTests", "test_a_black_border_moves_no_box", "must move no box"),
    ("MasksPastedNotResized", "ImageSegmentationTests", "test_masks_scale_with_the_picture", "not the model's resized or padded input"),
    ("DepthRowsReshaped", "DepthEstimationTests", "test_depth_follows_the_picture", "Rows must be the picture's rows"),
    ("CountsTextsNotTokens", "FeatureExtractionTests", "test_usage_counts_tokens", "usage counts tokens, not texts"),
    ("EngineSaysEndWhenCut", "TextGenerationTests", "test_finish_reasons_say_why_the_text_ended", "must finish with length"),
    ("EngineSaysEndWhenCut", "ChatTests", "test_finish_reasons_say_why_the_answer_ended", "finishes with length"),
    ("OneAnswerPerTable", "TabularClassificationTests", "test_examples_are_answered", "one answer per row"),
    ("RowsScaledByTheTable", "TabularRegressionTests", "test_each_row_is_answered_as_if_alone", "differs from its answer alone"),
    ("ColumnsByPosition", "TabularRegressionTests", "test_columns_are_matched_by_name", "a client may list them in any order"),
    ("TextCellsAsZero", "TabularRegressionTests", "test_text_cells_read_as_numbers", "sent as text got another answer"),
    ("SeedIgnored", "TextToImageTests", "test_another_seed_gives_another_image", "the seed is not the noise's"),
    ("SizeIgnored", "TextToImageTests", "test_examples_are_answered", "the request asks for 128x64"),
    ("OneGeneratorPerBatch", "TextToImageTests", "test_different_inputs_batched_together_get_their_own_answers", "batch-dependent"),
    ("ProgressCountsDefaultSteps", "TextToImageTests", "test_progress_events_count_the_steps_and_end_with_the_image", "the events must count 3 steps"),
    ("IgnoresExtraColumns", "TabularClassificationTests", "test_column_mistakes_are_client_errors_naming_the_column", "column 'an extra column' must get a 4xx"),
]

SERVER_MUTANTS = [
    # Defects planted in the server's own routes, each in a process of its own.
    ("StreamsIgnoreStop", "TextGenerationTests", "test_stop_sequences_are_honoured", "when streamed"),
    ("TruncationNotRescaled", "FeatureExtractionTests", "test_dimensions_keep_the_first_numbers", "rescaled to length 1"),
    ("Base64BigEndian", "FeatureExtractionTests", "test_openai_embeddings_are_the_tasks_vectors", "little-endian float32"),
]


def module_for(planted: list[tuple[str, str, str, str]], fixtures_first: bool = False) -> str:
    """The test module a plugin author would write, one class per planted defect."""
    classes = []
    for defect, mixin, _, _ in dict.fromkeys((defect, mixin, "", "") for defect, mixin, _, _ in planted):
        bases = f"ToyFixtures, kit.{mixin}" if fixtures_first else f"kit.{mixin}, ToyFixtures"
        classes.append(CLASS.format(name=f"{defect}{mixin}", bases=bases, defect=defect))
    return FIXTURES + "".join(classes)


def run_pytest(folder: Path, module: str, *options: str) -> subprocess.CompletedProcess:
    """pytest in a fresh process over ``module``, written as ``folder/test_plugin.py``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_plugin.py").write_text(module)
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("WIDGETD_EXPLORE", "WIDGETD_SEED", "WIDGETD_EXPLORE_EXAMPLES"):
        environment.pop(name, None)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", "test_plugin.py", *options]
    return subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True, timeout=900)


def run_kit(folder: Path, planted: list[tuple[str, str, str, str]], *, fixtures_first: bool = False) -> dict[tuple[str, str], str]:
    """Runs the selected kit tests against the planted defects in one fresh pytest process: the report of each
    (class, test) that failed."""
    selected = " or ".join(f"(Test{defect}{mixin} and {test})" for defect, mixin, test, _ in planted)
    run_pytest(folder, module_for(planted, fixtures_first), "-k", selected, "--junitxml=report.xml")
    return failures(folder / "report.xml")


def failures(report: Path) -> dict[tuple[str, str], str]:
    if not report.exists():
        pytest.fail("the kit's run against the planted defects wrote no report")
    found = {}
    for case in ElementTree.parse(report).iter("testcase"):
        failure = case.find("failure")
        if failure is not None:
            found[(case.get("classname", "").rsplit(".", 1)[-1], case.get("name", ""))] = (failure.get("message") or "") + (failure.text or "")
    return found


def missed(planted, found) -> list[str]:
    return [
        f"{defect} ({mixin}): {test} {'passed' if (f'Test{defect}{mixin}', test) not in found else 'failed without saying ' + repr(message)}"
        for defect, mixin, test, message in planted
        if message not in found.get((f"Test{defect}{mixin}", test), "")
    ]


def test_the_kit_catches_every_planted_defect(tmp_path, capsys):
    found = run_kit(tmp_path / "plugin", DEFECTS)
    for index, mutant in enumerate(SERVER_MUTANTS):
        found.update(run_kit(tmp_path / f"server-{index}", [mutant]))
    planted = [*DEFECTS, *SERVER_MUTANTS]
    survivors = missed(planted, found)
    caught = len(planted) - len(survivors)
    with capsys.disabled():
        print(f"\nmutation score of the conformance kit on the toy plugin and server: {caught}/{len(planted)} ({caught / len(planted):.0%})")
    assert not survivors, "the kit missed planted defects:\n" + "\n".join(survivors)


@pytest.mark.parametrize("fixtures_first", [False, True], ids=["kit mixin first", "fixtures mixin first"])
def test_what_the_plugin_supplies_wins_in_either_order(tmp_path, fixtures_first):
    """model_labels in the fixtures mixin is used whether the mixin comes before or after the kit's: a correct
    plugin passes and one answering labels that are not the model's fails, saying where the labels came from."""
    planted = [("LabelsByIndex", "TextClassificationTests", "test_examples_are_answered", "(model_labels: your model_labels fixture)")]
    assert not missed(planted, run_kit(tmp_path, planted, fixtures_first=fixtures_first))
    correct = run_pytest(tmp_path / "correct", module_for([("ToyPipeline", "TextClassificationTests", "", "")], fixtures_first), "-k", "labels or examples")
    assert correct.returncode == 0 and " passed" in correct.stdout, correct.stdout[-3000:]


def test_labels_that_cannot_be_found_fail_naming_the_fixture(tmp_path):
    module = module_for([("ToyPipeline", "ObjectDetectionTests", "", "")]).replace("    def model_labels(cls, widgetd_model):", "    def unused(cls, widgetd_model):")
    result = run_pytest(tmp_path, module, "-k", "test_answers_name_the_models_labels")
    assert result.returncode == 1 and "1 failed" in result.stdout, result.stdout[-3000:]
    assert "Supply a `model_labels` fixture" in result.stdout and "config.json's id2label" in result.stdout, result.stdout[-3000:]


def test_a_correct_plugin_passes_the_same_checks(tmp_path):
    correct = [("ToyPipeline", mixin, "", "") for mixin in ("QuestionAnsweringTests", "ZeroShotClassificationTests", "ObjectDetectionTests", "FeatureExtractionTests")]
    result = run_pytest(tmp_path, module_for(correct), "-q")
    assert result.returncode == 0 and "failed" not in result.stdout, result.stdout[-3000:]


def test_a_missing_fixture_says_what_to_supply(tmp_path):
    result = run_pytest(tmp_path, "from widgetd.testing import conformance as kit\n\nclass TestNoFixtures(kit.QuestionAnsweringTests):\n    pass\n", "-k", "test_examples_are_answered")
    assert result.returncode != 0 and "needs a `widgetd_plugin` fixture" in result.stdout, result.stdout[-3000:]


def test_a_check_that_cannot_run_says_why_in_the_summary(tmp_path):
    """A backend that does not batch: the batching checks skip, and the summary names each with its reason."""
    module = module_for([("ToyPipeline", "SentenceSimilarityTests", "", "")]).replace(
        "return broken_plugins.plugin_for(getattr(broken_plugins, cls.defect))()", "return broken_plugins.OneAtATime()"
    )
    result = run_pytest(tmp_path, module, "-q", "-k", "batching or batched")
    assert "2 skipped" in result.stdout, result.stdout[-3000:]
    assert "widgetd conformance kit: 2 checks did not run" in result.stdout
    assert "test_batching_does_not_change_answers: the backend answers one request at a time" in result.stdout
