"""The conformance kit finds every defect planted in this real plugin (mutants.py), each with the rule
that names it, on realistic inputs: its mutation score must be 100%. All mutants run in one pytest
process (transformers is imported once), the kit deterministic as in CI."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

MUTANTS = [
    # (mutant, the kit's test class, the kit test that must fail, what its report must say)
    ("SummaryIgnoresMaxNewTokens", "SummarizationTests", "test_length_limits_are_honoured", "max_new_tokens is ignored"),
    ("SummaryIgnoresMaxLength", "SummarizationTests", "test_length_limits_are_honoured", "max_length is ignored"),
    ("TextGenerationIgnoresMaxNewTokens", "TextGenerationTests", "test_length_limits_are_honoured", "max_new_tokens is ignored"),
    ("SilentSpeechRecognition", "AutomaticSpeechRecognitionTests", "test_speech_gets_a_transcript", "must get a transcript"),
    ("LabelsNotFromTheModel", "ImageClassificationTests", "test_examples_are_answered", "is not one of the model's labels"),
    ("OneAnswerPerBatch", "TextClassificationTests", "test_different_inputs_batched_together_get_their_own_answers", "batch-dependent"),
    ("UnnormalizedQuestionAnsweringScores", "QuestionAnsweringTests", "test_examples_are_answered", "must lie in [0, 1]"),
    ("AddedQuestionAnsweringProbabilities", "QuestionAnsweringTests", "test_scores_within_one_window_are_probabilities_of_different_answers", "more than 1"),
    ("EntityEndsPastItsWord", "TokenClassificationTests", "test_examples_are_answered", "(the text's length)"),
    ("ChatWithoutTemplate", "ChatTests", "test_the_chat_template_is_applied", "the template was not applied"),
    ("PaddingAttended", "ChatTests", "test_answers_do_not_depend_on_batch_neighbours", "alone it gets"),
    ("ChatIgnoresMaxTokens", "ChatTests", "test_usage_counts_the_tokens", "allows no more tokens"),
    ("BoxesInTheModelsInput", "ObjectDetectionTests", "test_boxes_scale_with_the_picture", "not of the model's resized input"),
    ("CandidatesInRequestOrder", "ZeroShotImageClassificationTests", "test_scores_belong_to_their_candidate", "each score must belong to its candidate"),
    ("TopKOfTheFirstLabels", "ImageClassificationTests", "test_top_k_keeps_the_best_of_the_same_ranking", "top_k must keep the best of the same ranking"),
    ("EmbeddingsCountTexts", "FeatureExtractionTests", "test_usage_counts_tokens", "usage counts tokens, not texts"),
    ("CutGenerationSaysStop", "ChatTests", "test_finish_reasons_say_why_the_answer_ended", "finishes with length"),
    ("CutGenerationSaysStop", "TextGenerationTests", "test_finish_reasons_say_why_the_text_ended", "must finish with length"),
    ("AlternativesLeastLikely", "ChatTests", "test_top_logprobs_are_the_most_likely_tokens_most_likely_first", "most likely first"),
    ("StructuredOutputsUnconstrained", "ChatTests", "test_structured_outputs_fit_their_schemas", "fits its schema"),
    ("ToolParametersIgnored", "ChatTests", "test_forced_tool_calls_name_the_function_with_arguments_that_fit", "one call of it"),
]

MUTANT_TESTS = '''
import pytest
import mutants
from widgetd.testing import conformance as kit
from widgetd.testing.conformance.chat import as_template_reads_them
from widgetd.testing.audio import encode, speech_like
from widgetd_transformers.testing import build_model


class Planted:
    """The fixtures, after the kit's mixin as the README's template orders them: what they supply wins either way."""

    mutant = None

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_plugin(cls):
        return getattr(mutants, cls.mutant)()

    @pytest.fixture(scope="class")
    @classmethod
    def widgetd_model(cls, tmp_path_factory):
        return build_model(cls.task_name, tmp_path_factory.mktemp("model"))

    @pytest.fixture
    def speech_sample(self):
        return encode(speech_like(), 16000, "WAV")

    @pytest.fixture(scope="class")
    def prompt_tokens(self, widgetd_model):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(widgetd_model))
        template = lambda messages: tokenizer.apply_chat_template(as_template_reads_them(messages), add_generation_prompt=True, return_dict=True)
        return lambda messages: len(template(messages)["input_ids"])
'''


def test_the_kit_finds_every_planted_defect(pytester, monkeypatch, capsys, record_property):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    classes = "".join(
        f"\n\nclass Test{mutant}{tests}(kit.{tests}, Planted):\n    mutant = {mutant!r}\n" for mutant, tests, _, _ in MUTANTS
    )
    pytester.makepyfile(test_mutants=MUTANT_TESTS + classes)
    selected = " or ".join(f"(Test{mutant}{tests} and {test})" for mutant, tests, test, _ in MUTANTS)
    report = pytester.path / "report.xml"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", selected, f"--junitxml={report}", timeout=900)
    failures = _failures(report)

    survivors = [
        f"{mutant}: {test} {'passed' if (mutant + tests, test) not in failures else 'failed without saying ' + repr(message)}"
        for mutant, tests, test, message in MUTANTS
        if message not in failures.get((mutant + tests, test), "")
    ]
    killed = len(MUTANTS) - len(survivors)
    record_property("mutation_score", killed / len(MUTANTS))
    with capsys.disabled():
        print(f"\nmutation score of the conformance kit on widgetd-transformers: {killed}/{len(MUTANTS)} ({killed / len(MUTANTS):.0%})")
    assert not survivors, "the kit missed planted defects:\n" + "\n".join(survivors) + "\n" + result.stdout.str()[-3000:]
    assert result.parseoutcomes().get("failed") == len(MUTANTS), result.stdout.str()[-3000:]


def _failures(report: Path) -> dict[tuple[str, str], str]:
    """(mutant and its kit class, kit test) -> the failure's report, for each failed test in a JUnit XML report."""
    if not report.exists():
        pytest.fail("the kit's run against the mutants wrote no report")
    found = {}
    for case in ElementTree.parse(report).iter("testcase"):
        failure = case.find("failure")
        if failure is not None:
            mutant = case.get("classname", "").rsplit(".", 1)[-1].removeprefix("Test")
            found[(mutant, case.get("name", ""))] = (failure.get("message") or "") + (failure.text or "")
    return found
