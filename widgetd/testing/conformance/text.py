"""Tasks whose input is a text: classification, entities, fill-mask and text generation."""

from __future__ import annotations

from typing import Any, Callable

import pytest
from hypothesis import strategies as st

from widgetd.testing.conformance.base import TaskTests, structs_requests
from widgetd.testing.conformance.exchange import Call
from widgetd.testing.conformance.rules import (
    ContractViolation,
    at_most,
    classified,
    expect,
    scores_are_probabilities,
    sorted_by_score,
    span_of,
)

EDGE_TEXTS = {
    "empty": "",
    "a space": " ",
    "only whitespace": "\n\t  \r\n",
    "one character": "a",
    "one huge word": "x" * 20_000,
    "many words": "word " * 4_000,
    "emoji": "🙂👩‍👩‍👧" * 40,
    "combining accents": "e\u0301" * 64,
    "right-to-left": "שלום עולם, مرحبا بالعالم",
    "CJK": "東京は日本の首都です。",
    "control characters": "\x00\x01\x7f tab\tend",
    "zero-width": "\u200b\u200c\ufeff",
}


def text_call(text: str, **parameters: Any) -> Call:
    body: dict[str, Any] = {"inputs": text}
    if parameters:
        body["parameters"] = parameters
    return Call(body)


def edge_texts(make: Callable[[str], Call] = text_call) -> list[Call]:
    return [make(text) for text in EDGE_TEXTS.values()]


def with_inputs(strategy: st.SearchStrategy[Call], texts: st.SearchStrategy[str]) -> st.SearchStrategy[Call]:
    return st.tuples(strategy, texts).map(lambda pair: Call({**pair[0].body, "inputs": pair[1]}))


SENTENCE = "My name is Wolfgang and I live in Berlin. I like good food."


class TokenClassificationTests(TaskTests):
    """Entities: each span lies in the text and ``word == text[start:end]``; ignored labels stay out."""

    task_name = "token-classification"

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [
            text_call(SENTENCE),
            *(text_call(SENTENCE, aggregation_strategy=s) for s in ("none", "simple", "first", "average", "max")),
            text_call("  Zoë   lives\tin  Köln  ", aggregation_strategy="simple"),
            text_call(SENTENCE, ignore_labels=["O"]),
        ]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return edge_texts()

    def check_answer(self, call: Call, answer: Any) -> None:
        ignored = set(call.parameters.get("ignore_labels") or [])
        for index, entity in enumerate(answer):
            span_of(call.inputs, entity.start, entity.end, entity.word, f"entity {index} word")
            expect(entity.entity_group not in ignored, f"entity {index} has ignored label {entity.entity_group!r}")
        scores_are_probabilities(answer)


class TextClassificationTests(TaskTests):
    """Labels once each, scores in [0, 1] (softmax: summing to at most 1), highest first, at most top_k."""

    task_name = "text-classification"

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [
            text_call("I like you. I love you."),
            text_call("I like you. I love you.", top_k=2),
            text_call("I like you. I love you.", top_k=1),
            text_call("What a bad, bad day.", function_to_apply="sigmoid"),
            text_call("What a bad, bad day.", function_to_apply="softmax", top_k=3),
            text_call("What a bad, bad day.", function_to_apply="none"),
        ]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return edge_texts()

    def check_answer(self, call: Call, answer: Any) -> None:
        expect(len(answer) == 1, f"the answer must be a list holding one list of labels, got {len(answer)} lists")
        classified(answer[0], call.parameters)


class ZeroShotClassificationTests(TaskTests):
    """Every candidate label ranked, scores in [0, 1], highest first; single-label scores sum to 1."""

    task_name = "zero-shot-classification"

    @staticmethod
    def call(text: str, labels: list[str], **parameters: Any) -> Call:
        return text_call(text, candidate_labels=labels, **parameters)

    @pytest.fixture
    def examples(self) -> list[Call]:
        text = "I have a problem with my phone that needs to be resolved asap!"
        return [
            self.call(text, ["urgent", "not urgent", "phone", "tablet"]),
            self.call(text, ["urgent", "phone"], multi_label=True),
            self.call(text, ["travel", "cooking"], hypothesis_template="This text is about {}."),
            self.call(text, ["phone"]),
        ]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return [
            *edge_texts(lambda text: self.call(text, ["a", "b"])),
            self.call("hello", [f"label {n}" for n in range(40)]),
            self.call("hello", ["same", "same"]),
            self.call("hello", ["東京", "🙂", " "]),
        ]

    def check_answer(self, call: Call, answer: Any) -> None:
        candidates = call.parameters["candidate_labels"]
        labels = [entry.label for entry in answer]
        expect(
            set(labels) == set(candidates) and len(labels) <= len(candidates),
            f"the answer must rank every candidate label (repeats may merge): got {labels} for {candidates}",
        )
        scores_are_probabilities(answer)
        sorted_by_score(answer)
        if not call.parameters.get("multi_label") and len(answer) > 1:
            total = sum(entry.score for entry in answer)
            expect(abs(total - 1) <= 1e-2, f"single-label scores must sum to 1, got {total}")


class FillMaskTests(TaskTests):
    """Candidates at most top_k, highest first; ``targets`` restrict them; no mask token is a 4xx.

    Supply ``mask_token`` if your model's is not ``[MASK]``.
    """

    task_name = "fill-mask"

    @pytest.fixture
    def mask_token(self) -> str:
        return "[MASK]"

    @pytest.fixture
    def examples(self, mask_token) -> list[Call]:
        return [
            text_call(f"The goal of life is {mask_token}."),
            text_call(f"The goal of life is {mask_token}.", top_k=1),
            text_call(f"Paris is the {mask_token} of France.", top_k=3),
            text_call(f"{mask_token} is where Zoë lives. 東京!", top_k=2),
        ]

    @pytest.fixture
    def edge_cases(self, mask_token) -> list[Call]:
        return [
            *edge_texts(),
            text_call(mask_token),
            text_call(f"{mask_token} {mask_token}"),
            text_call("word " * 4_000 + mask_token),
            text_call(f"The goal of life is {mask_token}.", top_k=10_000),
        ]

    @pytest.fixture
    def valid_requests(self, served, mask_token) -> st.SearchStrategy[Call]:
        texts = st.tuples(st.text(max_size=30), st.text(max_size=30)).map(lambda pair: pair[0] + mask_token + pair[1])
        return with_inputs(structs_requests(served.task), texts)

    def check_answer(self, call: Call, answer: Any) -> None:
        expect(len(answer) > 0, "fill-mask must propose at least one candidate")
        scores_are_probabilities(answer)
        sorted_by_score(answer)
        at_most(answer, call.parameters.get("top_k", 5), "top_k")
        targets = call.parameters.get("targets")
        if targets:
            allowed = {*targets, *(target.strip() for target in targets)}
            for entry in answer:
                expect(
                    entry.token_str in allowed or entry.token_str.strip() in allowed,
                    f"token_str {entry.token_str!r} is not among targets {targets}",
                )

    def test_targets_restrict_candidates(self, served, mask_token):
        text = f"The goal of life is {mask_token}."
        proposed = self.decode(served.task, text_call(text), self.answer(served, text_call(text)))
        words = [entry.token_str.strip() for entry in proposed if entry.token_str.strip().isalpha()][:2]
        if not words:
            pytest.skip(f"no whole-word candidate to use as a target among {[e.token_str for e in proposed]}")
        self.answer(served, text_call(text, targets=words))

    def test_text_without_mask_is_a_client_error(self, served, mask_token):
        call = text_call("This text has no mask token.")
        reply = served.send(call)
        expect(reply.status != 200, f"fill-mask of a text without {mask_token} must be refused, got 200")
        self.expect_client_error(served, call, reply)


class GeneratedTextTests(TaskTests):
    """Generated text: a list holding one answer whose text is a string."""

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return edge_texts(lambda text: text_call(text, **self.short))

    short: dict[str, Any] = {}

    def check_answer(self, call: Call, answer: Any) -> None:
        expect(len(answer) == 1, f"the answer must be a list of one, got {len(answer)}")


PARAGRAPH = (
    "The tower is 324 metres tall, about the same height as an 81-storey building, and the tallest "
    "structure in Paris. Its base is square, measuring 125 metres on each side."
)
SHORT_GENERATION = {"generate_parameters": {"max_new_tokens": 8}}


class SummarizationTests(GeneratedTextTests):
    task_name = "summarization"
    short = SHORT_GENERATION

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [
            text_call(PARAGRAPH),
            text_call(PARAGRAPH, **SHORT_GENERATION),
            text_call(PARAGRAPH * 20, truncation="longest_first", **SHORT_GENERATION),
            text_call("Zoë lives in 東京.", clean_up_tokenization_spaces=True),
        ]


class TranslationTests(GeneratedTextTests):
    task_name = "translation"
    short = SHORT_GENERATION

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [
            text_call("My name is Wolfgang and I live in Berlin."),
            text_call("My name is Wolfgang and I live in Berlin.", **SHORT_GENERATION),
            text_call("Zoë lives in 東京.", clean_up_tokenization_spaces=True),
        ]


class TextGenerationTests(GeneratedTextTests):
    """Also: ``return_full_text`` keeps the prompt, and a ``seed`` makes sampling repeatable."""

    task_name = "text-generation"
    short = {"max_new_tokens": 4}

    @pytest.fixture
    def examples(self) -> list[Call]:
        prompt = "Once upon a time"
        return [
            text_call(prompt),
            text_call(prompt, max_new_tokens=5),
            text_call(prompt, max_new_tokens=5, return_full_text=True),
            text_call(prompt, max_new_tokens=5, return_full_text=False),
            text_call(prompt, max_new_tokens=5, do_sample=True, seed=7, temperature=0.9, top_p=0.9),
            text_call("Zoë lives in 東京 and", max_new_tokens=3, repetition_penalty=1.2),
        ]

    def check_answer(self, call: Call, answer: Any) -> None:
        super().check_answer(call, answer)
        if call.parameters.get("return_full_text"):
            text = answer[0].generated_text
            if not text.startswith(call.inputs):
                raise ContractViolation(f"return_full_text=true must keep the prompt: {text!r} does not start with it")
