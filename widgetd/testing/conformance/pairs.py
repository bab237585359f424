"""Tasks whose input pairs texts: question answering (over text and over tables), sentence similarity and feature extraction."""

from __future__ import annotations

import math
from typing import Any, Callable

import pytest
from hypothesis import strategies as st

from widgetd.testing.conformance.base import TaskTests, structs_requests
from widgetd.testing.conformance.embeddings import EmbeddingsTests
from widgetd.testing.conformance.ranked import ScoredTests, TopKTests
from widgetd.testing.conformance.exchange import Call, first_difference
from widgetd.testing.conformance.rules import (
    at_most,
    expect,
    finite,
    scores_are_probabilities,
    sorted_by_score,
    span_of,
)
from widgetd.testing.conformance.text import EDGE_TEXTS, edge_texts

CONTEXT = "My name is Clara and I live in Berkeley. I work as a nurse at the city hospital."
SHORT_CONTEXTS = (
    "My name is Clara and I live in Berkeley.",
    "The tower is 324 metres tall, the tallest in Paris.",
    "Zoë moved from Köln to Paris last year.",
)
"""Contexts short enough for one window of any model (well under 100 tokens, question included)."""


def question(question: str, context: str, **parameters: Any) -> Call:
    body: dict[str, Any] = {"inputs": {"question": question, "context": context}}
    if parameters:
        body["parameters"] = parameters
    return Call(body)


class QuestionAnsweringTests(TopKTests):
    """Answers are spans: ``answer == context[start:end]``, offsets inside the context, scores in
    [0, 1], highest first, at most ``top_k`` (a bare object for top_k=1, as clients expect)."""

    task_name = "question-answering"

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [
            question("What is my name?", CONTEXT),
            question("Where do I live?", CONTEXT, top_k=3),
            question("What is my job?", CONTEXT, max_answer_len=2, align_to_words=False),
            question("Where does Clara live?", CONTEXT * 30, doc_stride=16, max_seq_len=64),
            question("Who lives in 東京?", "Zoë lives in 東京 — café “Ünïcode” ☕ is her favourite.", top_k=2),
            question("What is the moon made of?", CONTEXT, handle_impossible_answer=True),
            question("Where?", CONTEXT, max_question_len=1),
        ]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return [
            *(question(text, CONTEXT) for text in EDGE_TEXTS.values()),
            *(question("Where?", text) for text in EDGE_TEXTS.values()),
            question("Where?", CONTEXT, top_k=500),
            question("Where?", CONTEXT, doc_stride=500, max_seq_len=8),
        ]

    @pytest.fixture
    def valid_requests(self, served) -> st.SearchStrategy[Call]:
        # Half the contexts are real sentences, so answers are more than the degenerate edge cases.
        def with_context(call: Call, sentence: str) -> Call:
            return Call({**call.body, "inputs": {"question": call.body["inputs"]["question"], "context": sentence}})

        contexts = st.sampled_from([CONTEXT, CONTEXT.upper(), "Zoë lives in 東京.", CONTEXT * 5])
        generated = structs_requests(served.task)
        return st.one_of(generated, st.builds(with_context, generated, contexts))

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [question(asked, context) for asked, context in zip(("Where do I live?", "How tall is it?", "Where did Zoë go?"), SHORT_CONTEXTS)]

    def test_scores_within_one_window_are_probabilities_of_different_answers(self, served):
        """Within one window an answer's score is the probability of that span (p(start)·p(end)): the spans
        are different answers, so their scores, the null answer's included, add up to at most 1."""
        for context in SHORT_CONTEXTS:
            for parameters in ({"top_k": 50}, {"top_k": 50, "handle_impossible_answer": True, "max_answer_len": 30}):
                call = question("What is it about?", context, **parameters)
                answers = self.decode(served.task, call, self.answer(served, call))
                total = sum(entry.score for entry in answers)
                expect(
                    total <= 1 + 1e-3,
                    f"{served.task.name}: the scores of a short context's answers add up to {total:.4f}, more than 1; "
                    f"scores must be probabilities p(start)·p(end) over one window\n  request: {call.describe()}",
                )

    def check_answer(self, call: Call, answer: Any) -> None:
        answers = answer if isinstance(answer, list) else [answer]
        top_k = call.parameters.get("top_k", 1)
        if top_k > 1:
            expect(isinstance(answer, list), f"top_k={top_k} asks for a list of answers, got one object")
        expect(len(answers) > 0, "question answering must answer at least once")
        for index, entry in enumerate(answers):
            span_of(call.inputs["context"], entry.start, entry.end, entry.answer, f"answer {index}")
        scores_are_probabilities(answers)
        sorted_by_score(answers)
        at_most(answers, top_k, "top_k")

    def scores_of(self, call: Call, answer: Any) -> list[float]:
        return [entry.score for entry in self.entries_of(answer)]

    def entries_of(self, answer: Any) -> list[Any]:
        return answer if isinstance(answer, list) else [answer]

    def entry_key(self, entry: Any) -> Any:
        return (entry.start, entry.end)

    @pytest.fixture
    def top_k_request(self) -> Callable[[int], Call]:
        return lambda top_k: question("Where do I live?", CONTEXT, top_k=top_k)


CITIES = {"city": ["Paris", "London", "Berlin"], "population": ["2161000", "8982000", "3645000"], "country": ["France", "UK", "Germany"]}


def table_question(asked: str, table: dict[str, list[str]], *, key: str = "question", **parameters: Any) -> Call:
    """``key``: ``question`` (the JS client and the spec) or ``query`` (the Python client)."""
    body: dict[str, Any] = {"inputs": {key: asked, "table": table}}
    if parameters:
        body["parameters"] = parameters
    return Call(body)


class TableQuestionAnsweringTests(TaskTests):
    """The cells that answer: ``coordinates`` (row, column) index real cells of the table, ``cells`` are
    the values there, in order; ``answer`` joins them, after ``"{aggregator} > "`` unless the aggregator is
    NONE; one object per request; ``question`` or the Python client's ``query``."""

    task_name = "table-question-answering"

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [
            table_question("Which city has the most people?", CITIES),
            table_question("How many cities are there?", CITIES, key="query"),
            table_question("What is the total population?", CITIES, truncation=True, padding="longest", sequential=False),
            table_question("Who is 30?", {"name": ["Zoë", "東京太郎"], "age": ["30", "41"]}),
            table_question("What?", {"only column": ["one cell"]}),
            table_question("Which row?", {"n": [str(row) for row in range(60)], "even": [str(row % 2 == 0) for row in range(60)]}),
        ]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return [
            table_question("What?", {"city": ["Paris", "London"], "population": ["1"]}),
            table_question("What?", {"city": []}),
            table_question("What?", {}),
            Call({"inputs": {"table": CITIES}}),
            Call({"inputs": {"question": "What?", "query": "What?", "table": CITIES}}),
            table_question("", CITIES),
            table_question("What?", {"x": [""] * 5}),
            table_question("0", {"": [""]}),
            *(table_question(text, CITIES) for text in EDGE_TEXTS.values() if text),
            table_question("What?", {f"column {n}": ["cell"] for n in range(300)}),
            table_question("What?", {"row": [f"row {n}" for n in range(400)]}),
            table_question("What?", {"row": [f"row {n}" for n in range(400)]}, truncation=True),
            table_question("What?", {"long": ["word " * 400, "short"]}),
            table_question("What?", {"long": ["word " * 400, "short"]}, truncation=True),
        ]

    @pytest.fixture
    def valid_requests(self) -> st.SearchStrategy[Call]:
        cell = st.text(min_size=0, max_size=12)
        columns = st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=4, unique=True)

        def table(names: list[str], rows: int) -> st.SearchStrategy[dict[str, list[str]]]:
            return st.fixed_dictionaries({name: st.lists(cell, min_size=rows, max_size=rows) for name in names})

        tables = st.tuples(columns, st.integers(1, 6)).flatmap(lambda shape: table(*shape))
        return st.builds(
            lambda asked, table_, key, truncation: table_question(asked, table_, key=key, truncation=truncation),
            st.text(min_size=1, max_size=40), tables, st.sampled_from(["question", "query"]), st.booleans(),
        )

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [
            table_question("Which city?", CITIES),
            table_question("Who is the oldest?", {"name": ["Ann", "Tom", "Sarah"], "age": ["30", "41", "25"]}),
            table_question("How many?", {"fruit": ["apple", "pear"], "count": ["3", "7"], "colour": ["red", "green"]}),
        ]

    def check_answer(self, call: Call, answer: Any) -> None:
        table = call.inputs["table"]
        names = list(table)
        for index, (row, column) in enumerate(answer.coordinates):
            expect(
                0 <= column < len(names) and 0 <= row < len(table[names[column]]),
                f"coordinate {index} ({row}, {column}) must index a cell of the {len(table[names[0]])}x{len(names)} table (row, column)",
            )
        at_coordinates = [table[names[column]][row] for row, column in answer.coordinates]
        expect(answer.cells == at_coordinates, f"cells must be the table's values at the coordinates, in order: {at_coordinates}, got {answer.cells}")
        joined = ", ".join(answer.cells)
        allowed = {joined, f"{answer.aggregator} > {joined}"} if answer.aggregator == "NONE" else {f"{answer.aggregator} > {joined}"}
        expect(answer.answer in allowed, f"answer must join the cells after the aggregator ({sorted(allowed)}), got {answer.answer!r}")


class SentenceSimilarityTests(ScoredTests):
    """One score per sentence, in order, each a cosine in [-1, 1]; a sentence equal to the source scores 1."""

    task_name = "sentence-similarity"

    @staticmethod
    def call(source: str, sentences: list[str]) -> Call:
        return Call({"inputs": {"source_sentence": source, "sentences": sentences}})

    @pytest.fixture
    def examples(self) -> list[Call]:
        source = "A man is eating food."
        return [
            self.call(source, ["A man is eating a piece of bread.", "The new movie is awesome.", source]),
            self.call(source, ["A man is eating food."]),
            self.call("Zoë lives in 東京.", ["Zoë lives in Tokyo.", "🙂"]),
            self.call(source, [f"sentence number {n}" for n in range(40)]),
        ]

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [
            self.call("A man is eating food.", ["A man is eating a piece of bread.", "The new movie is awesome."]),
            self.call("Zoë lives in 東京.", ["Zoë lives in Tokyo.", "A cat sat on the mat."]),
            self.call("The weather is lovely today.", ["It is sunny and warm.", "He drove to the stadium."]),
        ]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return [
            *(self.call(text, ["a cat"]) for text in EDGE_TEXTS.values()),
            self.call("a cat", list(EDGE_TEXTS.values())),
            self.call("a cat", ["a dog"] * 300),
        ]

    def check_answer(self, call: Call, answer: Any) -> None:
        sentences, source = call.inputs["sentences"], call.inputs["source_sentence"]
        expect(len(answer) == len(sentences), f"one score per sentence: {len(sentences)} sentences, {len(answer)} scores")
        finite(answer, "score")
        for index, score in enumerate(answer):
            expect(-1 - 1e-3 <= score <= 1 + 1e-3, f"score {index} must be a cosine in [-1, 1], got {score}")
            if sentences[index] == source and source.strip():
                expect(score >= 0.99, f"sentence {index} equals the source and must score 1, got {score}")

    def scores_of(self, call: Call, answer: Any) -> list[float]:
        return list(answer)


class FeatureExtractionTests(EmbeddingsTests):
    """An embedding per text (a list of them for a list): one vector, or one per token, all of one width,
    finite; of length 1 when ``normalize`` is true (and by default for one vector a text, as TEI);
    a text embeds the same alone as inside a list; ``/v1/embeddings`` answers the same vectors (base64 too),
    truncates them for ``dimensions`` and counts tokens in its usage."""

    task_name = "feature-extraction"

    @staticmethod
    def call(inputs: Any, **options: Any) -> Call:
        return Call({"inputs": inputs, **options})

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [
            self.call("A man is eating food."),
            self.call(["A man is eating food.", "Zoë lives in 東京.", "🙂"]),
            self.call("A man is eating food.", normalize=False),
            self.call("A man is eating food.", normalize=True),
            self.call("word " * 2_000, truncate=True),
            self.call("word " * 2_000, truncate=True, truncation_direction="left"),
        ]

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [self.call(text) for text in ("A man is eating food.", "The new movie is awesome.", "Zoë lives in 東京.")]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return [*edge_texts(self.call), self.call(list(EDGE_TEXTS.values())), self.call(["a dog"] * 300)]

    def check_answer(self, call: Call, answer: Any) -> None:
        texts = call.inputs if isinstance(call.inputs, list) else [call.inputs]
        embeddings = answer if isinstance(call.inputs, list) else [answer]
        expect(len(embeddings) == len(texts), f"one embedding per text: {len(texts)} texts, {len(embeddings)} embeddings")
        shapes = {_shape(embedding) for embedding in embeddings}
        expect(
            all(shapes) and len({len(shape) for shape in shapes}) == 1 and len({shape[-1] for shape in shapes}) == 1,
            f"every text's embedding must have the same form (a vector, or a vector per token) and width, got shapes {shapes}",
        )
        normalize = call.body.get("normalize")
        for index, embedding in enumerate(embeddings):
            one_vector = len(_shape(embedding)) == 1
            vectors = [embedding] if one_vector else embedding
            expect(len(vectors) > 0 and len(vectors[0]) > 0, f"embedding {index} is empty")
            for vector in vectors:
                finite(vector, f"embedding {index}")
                if normalize or (normalize is None and one_vector):
                    norm = math.sqrt(sum(value * value for value in vector))
                    expect(
                        abs(norm - 1) <= 1e-2 or norm == 0,
                        f"normalize={normalize}: embedding {index} must have vectors of length 1, got {norm:.4f}",
                    )

    def test_a_text_embeds_the_same_alone_and_in_a_list(self, served):
        texts = ["A man is eating food.", "The new movie is awesome."]
        alone = self.answer(served, self.call(texts[1]))
        listed = self.answer(served, self.call(texts))
        difference = first_difference(alone.json(), listed.json()[1], self.tolerance)
        expect(difference is None, f"a text embedded alone and inside a list differ ({difference})")


def _shape(embedding: Any) -> tuple[int, ...]:
    if isinstance(embedding, list) and embedding and isinstance(embedding[0], list):
        return (len(embedding), len(embedding[0]))
    return (len(embedding),) if isinstance(embedding, list) else ()

