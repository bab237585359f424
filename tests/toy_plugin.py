"""A small, real plugin for the core's tests: simple deterministic answers for the built-in tasks.

Texts containing a control word make it misbehave on purpose: ``explode`` raises,
``dawdle`` sleeps a second.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Sequence

from widgetd import Backend, InvalidInput, ModelSnapshot, hookimpl
from widgetd.tasks.question_answering import QuestionAnsweringAnswer

TOY_TASKS = ("question-answering", "sentence-similarity", "feature-extraction")


def words(text: str) -> set[str]:
    return {word.strip(".,?!").lower() for word in text.split()}


def answer_question(request) -> list[QuestionAnsweringAnswer]:
    context, question = request.inputs.context, request.inputs.question
    answers = []
    for word in sorted(words(question)):
        start = context.lower().find(word) if word else -1
        if start >= 0:
            answers.append(QuestionAnsweringAnswer(context[start : start + len(word)], 0.9, start, start + len(word)))
    if not answers:
        answers.append(QuestionAnsweringAnswer(context[:1], 0.1, 0, len(context[:1])))
    return answers[: request.parameters.top_k]


def similarity(request) -> list[float]:
    source = words(request.inputs.source_sentence)
    return [len(source & words(s)) / max(1, len(source | words(s))) for s in request.inputs.sentences]


def embedding(text: str) -> list[float]:
    return [float(len(text)), float(len(words(text))), float(sum(map(ord, text)) % 97)]


def feature_extraction(request) -> Any:
    if isinstance(request.inputs, str):
        return embedding(request.inputs)
    return [embedding(text) for text in request.inputs]


ANSWERERS = {
    "question-answering": answer_question,
    "sentence-similarity": similarity,
    "feature-extraction": feature_extraction,
}


def _misbehave(request: Any) -> None:
    text = str(request.inputs)
    if "explode" in text:
        raise RuntimeError("the toy backend exploded as asked")
    if "dawdle" in text:
        time.sleep(1)
    if "refuse" in text:
        raise InvalidInput("the toy backend refuses this input", field="inputs")


class ToyPipeline:
    def __init__(self, tasks: Sequence[str]) -> None:
        self.tasks = tuple(tasks)
        self.batch_sizes: list[int] = []

    def __call__(self, task: str, requests: Sequence[Any]) -> list[Any]:
        self.batch_sizes.append(len(requests))
        for request in requests:
            _misbehave(request)
        return [ANSWERERS[task](request) for request in requests]


def make_toy_model(folder: Path, *, library: str = "toy", pipeline_tag: str = "question-answering") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text(f"---\nlibrary_name: {library}\npipeline_tag: {pipeline_tag}\n---\n# toy\n")
    (folder / "toy.json").write_text("{}")
    return folder


class ToyPlugin:
    """The toy backend; ``load_gate`` (when set) holds loading until the test opens it."""

    def __init__(self, *, load_gate: threading.Event | None = None, fail_load: bool = False) -> None:
        self.load_gate = load_gate
        self.fail_load = fail_load
        self.pipelines: list[ToyPipeline] = []

    def load(self, snapshot: ModelSnapshot) -> ToyPipeline:
        if self.load_gate is not None:
            self.load_gate.wait(timeout=30)
        if self.fail_load:
            raise OSError(f"toy weights missing in {snapshot.path.name}")
        pipeline = ToyPipeline(TOY_TASKS)
        self.pipelines.append(pipeline)
        return pipeline

    @hookimpl
    def register_backends(self, register):
        register(
            Backend(
                name="toy",
                library="toy",
                tasks=TOY_TASKS,
                load=self.load,
                recognizes=lambda files: "toy.json" in files,
                max_batch_size=8,
            )
        )
