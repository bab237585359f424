"""Tasks whose input is a text: classification, entities, fill-mask and text generation."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable

import msgspec
import pytest
from hypothesis import strategies as st

from widgetd.tasks.text_generation import TextGenerationOutput, TextGenerationStreamOutput
from widgetd.testing.conformance.base import LabelledTests, TaskTests, structs_requests
from widgetd.testing.conformance.exchange import Call, Reply
from widgetd.testing.conformance.ranked import CandidateTests, LabelledTopKTests, ScoredTests, TopKTests
from widgetd.testing.conformance.rules import (
    ContractViolation,
    at_most,
    classified,
    covers_the_text,
    expect,
    is_a_beginning_of,
    longer_than_one_token,
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
REALISTIC_TEXTS = (
    SENTENCE,
    "Sarah works at the city hospital in London",
    "Zoë moved from Köln to Paris last year, and she loves it there",
    "The new movie is awesome! The cat sat on the mat; the dog did not",
)
"""Multi-word texts as people send them, each ending in a word, for rules that edge cases cannot show."""


class TokenClassificationTests(ScoredTests, LabelledTests):
    """Entities: each span lies in the text and ``word == text[start:end]``; ignored labels stay out;
    with no label ignored, the entities cover every word of the text."""

    task_name = "token-classification"

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [
            text_call(SENTENCE),
            *(text_call(SENTENCE, aggregation_strategy=s) for s in ("none", "simple", "first", "average", "max")),
            text_call("  Zoë   lives\tin  Köln  ", aggregation_strategy="simple"),
            text_call(SENTENCE, ignore_labels=["O"]),
            *(text_call(text, ignore_labels=[]) for text in REALISTIC_TEXTS),
            text_call(REALISTIC_TEXTS[2], aggregation_strategy="none", ignore_labels=[]),
        ]

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [text_call(text, ignore_labels=[]) for text in REALISTIC_TEXTS]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return edge_texts()

    def check_answer(self, call: Call, answer: Any) -> None:
        ignored = set(call.parameters.get("ignore_labels") or [])
        for index, entity in enumerate(answer):
            span_of(call.inputs, entity.start, entity.end, entity.word, f"entity {index} word")
            expect(entity.entity_group not in ignored, f"entity {index} has ignored label {entity.entity_group!r}")
        scores_are_probabilities(answer)

    def answer_labels(self, call: Call, answer: Any) -> Iterable[str]:
        return [entity.entity_group for entity in answer]

    def scores_of(self, call: Call, answer: Any) -> list[float]:
        return [entity.score for entity in answer]

    def allowed_labels(self, labels: frozenset[str]) -> frozenset[str]:
        # Grouped entities are named without their B-/I- prefix, as the transformers pipeline names them.
        return labels | {label[2:] for label in labels if label[:2] in ("B-", "I-")}

    @pytest.mark.parametrize("strategy", ["none", "simple"])
    def test_entities_cover_every_word_when_no_label_is_ignored(self, served, strategy):
        for text in REALISTIC_TEXTS:
            call = text_call(text, aggregation_strategy=strategy, ignore_labels=[])
            reply = self.answer(served, call)
            entities = self.decode(served.task, call, reply)
            try:
                covers_the_text(text, [(entity.start, entity.end) for entity in entities])
            except ContractViolation as violation:
                raise ContractViolation(f"{served.task.name}: with ignore_labels=[] {violation}\n  request: {call.describe()}") from None


class TextClassificationTests(LabelledTopKTests):
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

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [text_call(text) for text in (*REALISTIC_TEXTS, "What a bad, bad day.", "I like you. I love you.")]

    def check_answer(self, call: Call, answer: Any) -> None:
        expect(len(answer) == 1, f"the answer must be a list holding one list of labels, got {len(answer)} lists")
        classified(answer[0], call.parameters)

    def answer_labels(self, call: Call, answer: Any) -> Iterable[str]:
        return [entry.label for entry in answer[0]]

    def scores_of(self, call: Call, answer: Any) -> list[float]:
        return [entry.score for entry in answer[0]]

    def entries_of(self, answer: Any) -> list[Any]:
        return list(answer[0])

    @pytest.fixture
    def top_k_request(self) -> Callable[[int], Call]:
        return lambda top_k: text_call("I like you. I love you.", top_k=top_k)


class ZeroShotClassificationTests(CandidateTests):
    """Every candidate label ranked, scores in [0, 1], highest first; single-label scores sum to 1; each score
    belongs to its candidate, whatever their order."""

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
    def varied_inputs(self) -> list[Call]:
        return [self.call(text, ["urgent", "not urgent", "travel"]) for text in REALISTIC_TEXTS]

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

    def candidates_call(self) -> Call:
        return self.call("I have a problem with my phone that needs to be resolved asap!", ["urgent", "not urgent", "phone", "tablet"])

    def scores_sum_to_one_for(self, call: Call) -> bool:
        return not call.parameters.get("multi_label")


def as_a_tokenizer_may_read(text: str) -> str:
    """A target as an uncased tokenizer reads it: without accents, case or surrounding spaces. The
    transformers pipeline answers the target ``A`` as ``a`` on an uncased model (one token, read as ``a``)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(character for character in decomposed if not unicodedata.combining(character)).casefold().strip()


class FillMaskTests(TopKTests):
    """Candidates at most top_k, highest first; ``targets`` restrict them; no mask token is a 4xx.

    Supply ``mask_token`` if your model's is not ``[MASK]``.
    """

    task_name = "fill-mask"

    @pytest.fixture
    def examples(self, mask_token) -> list[Call]:
        return [
            text_call(f"The goal of life is {mask_token}."),
            text_call(f"The goal of life is {mask_token}.", top_k=1),
            text_call(f"Paris is the {mask_token} of France.", top_k=3),
            text_call(f"{mask_token} is where Zoë lives. 東京!", top_k=2),
        ]

    @pytest.fixture
    def varied_inputs(self, mask_token) -> list[Call]:
        return [
            text_call(f"The goal of life is {mask_token}."),
            text_call(f"Paris is the {mask_token} of France."),
            text_call(f"My name is {mask_token} and I live in London."),
        ]

    @pytest.fixture
    def edge_cases(self, mask_token) -> list[Call]:
        return [
            *edge_texts(),
            text_call(mask_token),
            text_call(f"{mask_token} {mask_token}"),
            text_call("word " * 4_000 + mask_token),
            text_call(f"The goal of life is {mask_token}.", top_k=10_000),
            # Found exploring: targets that are not one token must not be answered as another token.
            text_call(mask_token, targets=["?0"]),
            text_call(f"The goal of life is {mask_token}.", targets=["two words", "xyzzyplugh"]),
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
            allowed = {as_a_tokenizer_may_read(target) for target in targets}
            for entry in answer:
                expect(
                    as_a_tokenizer_may_read(entry.token_str) in allowed,
                    f"token_str {entry.token_str!r} is not among targets {targets}",
                )

    def scores_of(self, call: Call, answer: Any) -> list[float]:
        return [entry.score for entry in answer]

    def entry_key(self, entry: Any) -> Any:
        return entry.token_str

    @pytest.fixture
    def top_k_request(self, mask_token) -> Callable[[int], Call]:
        return lambda top_k: text_call(f"Paris is the {mask_token} of France.", top_k=top_k)

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
    """Generated text: a list holding one answer whose text is a string; with greedy decoding, a length
    limit is honoured (a shorter limit answers the beginning of a longer one's text, and an answer
    of many words is never an answer of one token)."""

    short: ClassVar[dict[str, Any]] = {}
    text_field: ClassVar[str]
    prompt: ClassVar[str]
    limits: ClassVar[dict[str, tuple[int, int, int]]] = {}
    """Each length limit, by its name, with three values asking for 1, 4 and 32 new tokens."""

    def limited(self, name: str, value: int) -> Call:
        """A greedy request for ``prompt`` with the length limit ``name`` set to ``value``."""
        raise NotImplementedError

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return edge_texts(lambda text: text_call(text, **self.short))

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [text_call(text, **self.short) for text in REALISTIC_TEXTS]

    def check_answer(self, call: Call, answer: Any) -> None:
        expect(len(answer) == 1, f"the answer must be a list of one, got {len(answer)}")

    def test_length_limits_are_honoured(self, served):
        for name, values in self.limits.items():
            texts = [self.generated(served, self.limited(name, value)) for value in values]
            for (shorter, short_text), (longer, long_text) in zip(zip(values, texts), zip(values[1:], texts[1:])):
                expect(
                    is_a_beginning_of(short_text, long_text),
                    f"{served.task.name}: greedy generation with {name}={shorter} must answer the beginning of what "
                    f"{name}={longer} answers, got {short_text!r} and {long_text!r}",
                )
            expect(
                not (texts[0] == texts[-1] and longer_than_one_token(texts[-1])),
                f"{served.task.name}: {name} is ignored: {name}={values[0]} (one token) and {name}={values[-1]} "
                f"both answered {texts[-1]!r}",
            )

    def generated(self, served, call: Call) -> str:
        return getattr(self.decode(served.task, call, self.answer(served, call))[0], self.text_field)


PARAGRAPH = (
    "The tower is 324 metres tall, about the same height as an 81-storey building, and the tallest "
    "structure in Paris. Its base is square, measuring 125 metres on each side."
)
SHORT_GENERATION = {"generate_parameters": {"max_new_tokens": 8}}


SEQUENCE_TO_SEQUENCE_LIMITS = {"max_new_tokens": (1, 4, 32), "max_length": (2, 5, 33)}
"""max_length counts the decoder's start token."""


class SequenceToSequenceTests(GeneratedTextTests):
    short = SHORT_GENERATION
    limits = SEQUENCE_TO_SEQUENCE_LIMITS

    def limited(self, name: str, value: int) -> Call:
        return text_call(self.prompt, generate_parameters={"do_sample": False, "num_beams": 1, name: value})


class SummarizationTests(SequenceToSequenceTests):
    task_name = "summarization"
    text_field = "summary_text"
    prompt = PARAGRAPH

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [
            text_call(PARAGRAPH),
            text_call(PARAGRAPH, **SHORT_GENERATION),
            text_call(PARAGRAPH * 20, truncation="longest_first", **SHORT_GENERATION),
            text_call("Zoë lives in 東京.", clean_up_tokenization_spaces=True),
        ]


class TranslationTests(SequenceToSequenceTests):
    task_name = "translation"
    text_field = "translation_text"
    prompt = "My name is Wolfgang and I live in Berlin. I like good food and long walks by the river."

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [
            text_call("My name is Wolfgang and I live in Berlin."),
            text_call("My name is Wolfgang and I live in Berlin.", **SHORT_GENERATION),
            text_call("Zoë lives in 東京.", clean_up_tokenization_spaces=True),
        ]


@dataclass(frozen=True)
class Generated:
    """A generation as the kit compares it: its text, why it ended and its token ids (None without details)."""

    text: str
    finish: str | None
    tokens: list[int] | None


class TextGenerationTests(GeneratedTextTests):
    """Also: ``return_full_text`` keeps the prompt, a ``seed`` makes sampling repeatable, and under greedy decoding
    (TGI's contract) a stream ends with the answer not streaming gives, stop sequences end the text (kept in it)
    streamed and not, and the finish reason says why the text ended."""

    task_name = "text-generation"
    short = {"max_new_tokens": 4}
    text_field = "generated_text"
    prompt = "Once upon a time"
    limits = {"max_new_tokens": (1, 4, 32)}

    def limited(self, name: str, value: int) -> Call:
        return text_call(self.prompt, do_sample=False, return_full_text=False, **{name: value})

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

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        # Streamed: the whole text comes back in the last event, and Unicode line breaks (U+0085,
        # U+2028) must not break an event's line for line readers that split on them.
        streamed = [Call({"inputs": text, "stream": True, "parameters": self.short}) for text in ("\x85", "a\u2028b\u2029c", "Zoë 東京")]
        return [*edge_texts(lambda text: text_call(text, **self.short)), *streamed]

    def decode(self, task, call: Call, reply: Reply) -> Any:
        """A streamed answer (``stream: true``) as the answer it streams: TGI's events, one per token, the
        last holding the whole text, whose tokens' texts make the generated text."""
        if not reply.streamed:
            return super().decode(task, call, reply)
        events = reply.events()
        expect(events and events[-1] == "[DONE]", f"a stream must end with 'data: [DONE]', got {events[-1:]}\n  request: {call.describe()}")
        events = events[:-1]
        errors = [event for event in events if isinstance(event, dict) and "error" in event]
        expect(not errors, f"the stream failed: {errors}\n  request: {call.describe()}")
        try:
            parsed = msgspec.convert(events, list[TextGenerationStreamOutput])
        except msgspec.ValidationError as error:
            raise ContractViolation(f"a stream event does not match TGI's: {error}\n  request: {call.describe()}") from None
        expect(parsed and parsed[-1].generated_text is not None and parsed[-1].details is not None, "the last event must hold the generated text and the details")
        expect(all(event.generated_text is None for event in parsed[:-1]), "only the last event may hold the generated text")
        text = parsed[-1].generated_text
        tokens = "".join(event.token.text for event in parsed)
        expect(text.endswith(tokens), f"the events' token texts {tokens!r} must make the generated text {text!r}")
        expect(parsed[-1].details.generated_tokens == len(parsed), f"{len(parsed)} token events, but the details say {parsed[-1].details.generated_tokens}")
        indexes = [event.index for event in parsed]
        expect(indexes == list(range(1, len(parsed) + 1)), f"token events must be numbered 1, 2, 3, ... in order, got {indexes}")
        return [TextGenerationOutput(text)]

    def greedy(self, prompt: str, stream: bool = False, **parameters: Any) -> Call:
        limits = {"do_sample": False, "return_full_text": False, "details": True, "max_new_tokens": 24, **parameters}
        return Call({"inputs": prompt, "stream": stream, "parameters": limits})

    def generation(self, served, call: Call) -> Generated:
        """The generated text, why it ended and its tokens, from the answer or from its stream; a model that
        does not stream (a 400 naming ``stream``) skips the check, saying so."""
        reply = served.send(call)
        if call.body.get("stream") and reply.status == 400 and "stream" in reply.error:
            pytest.skip(f"the model does not stream its answers ({reply.error}): the streamed half of this rule cannot run")
        self.expect_no_invalid_answer(served, call, reply)
        expect(reply.status == 200, f"{served.task.name}: a valid request must get a 200, got {reply.describe()}\n  request: {call.describe()}")
        self.verify(served, call, reply)
        if reply.streamed:
            events = [msgspec.convert(event, TextGenerationStreamOutput) for event in reply.events()[:-1]]
            last = events[-1]
            return Generated(last.generated_text, last.details.finish_reason, [event.token.id for event in events])
        answer = msgspec.json.decode(reply.content, type=list[TextGenerationOutput])[0]
        if answer.details is None:
            return Generated(answer.generated_text, None, None)
        return Generated(answer.generated_text, answer.details.finish_reason, [token.id for token in answer.details.tokens])

    def test_streaming_equals_not_streaming(self, served):
        for prompt in (self.prompt, "Zoë lives in 東京 and"):
            whole = self.generation(served, self.greedy(prompt))
            streamed = self.generation(served, self.greedy(prompt, stream=True))
            expect(
                streamed == whole or (whole.finish is None and streamed.text == whole.text),
                f"{served.task.name}: greedy decoding must answer the same streamed and not: streamed {streamed}, not streamed {whole} "
                f"(text, finish reason, token ids) for {prompt!r}",
            )

    def test_stop_sequences_are_honoured(self, served):
        whole = self.generation(served, self.greedy(self.prompt))
        if len(whole.text) < 6:
            pytest.skip(f"the model's greedy answer {whole.text!r} is too short to hold a stop sequence")
        stop = whole.text[3:6]
        expected = whole.text[: whole.text.find(stop) + len(stop)]
        for stream in (False, True):
            stopped = self.generation(served, self.greedy(self.prompt, stream=stream, stop=[stop]))
            expect(
                stopped.text == expected and stopped.finish in (None, "stop_sequence"),
                f"{served.task.name}: stop={[stop]!r} must end the text with the stop sequence (TGI keeps it) and finish_reason "
                f"stop_sequence{' when streamed' if stream else ''}: expected {expected!r}, got {stopped.text!r} ({stopped.finish})",
            )

    def test_finish_reasons_say_why_the_text_ended(self, served):
        whole = self.generation(served, self.greedy(self.prompt))
        if whole.finish is None:
            pytest.skip("the model's answers hold no details (details=true): no finish reason to check")
        made = len(whole.tokens)
        if whole.finish == "length":
            expect(made == 24, f"{served.task.name}: finish_reason length means max_new_tokens=24 tokens were made, details say {made}")
        else:
            roomier = self.generation(served, self.greedy(self.prompt, max_new_tokens=made + 8))
            expect(
                roomier.tokens == whole.tokens,
                f"{served.task.name}: the text ended with {whole.finish} after {made} tokens, yet with more room it goes on: "
                f"a text cut by max_new_tokens must finish with length",
            )
        if made > 2:
            for stream in (False, True):
                cut = self.generation(served, self.greedy(self.prompt, stream=stream, max_new_tokens=2))
                expect(
                    (cut.finish, len(cut.tokens)) == ("length", 2),
                    f"{served.task.name}: greedy text cut by max_new_tokens=2 (it goes on to {made} tokens) must finish with length "
                    f"after 2 tokens{' when streamed' if stream else ''}, got {cut.finish} after {len(cut.tokens)}",
                )

    def check_answer(self, call: Call, answer: Any) -> None:
        super().check_answer(call, answer)
        if call.parameters.get("return_full_text"):
            text = answer[0].generated_text
            if not text.startswith(call.inputs):
                raise ContractViolation(f"return_full_text=true must keep the prompt: {text!r} does not start with it")
