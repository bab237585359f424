"""The toy plugin with one defect each, for proving the conformance kit catches it."""

from __future__ import annotations

import io
import random

import numpy as np

from msgspec.structs import replace
from typing import Any, Sequence

from tests.toy_plugin import ANSWERERS, ToyPipeline, ToyPlugin
from widgetd import InvalidInput
from widgetd.media import Audio, decode_audio
from widgetd.tasks.audio_to_audio import SeparatedSource
from widgetd.tasks.question_answering import QuestionAnsweringAnswer


class _OneTaskBroken(ToyPipeline):
    """Answers ``broken_task`` with ``broken``; every other task as the toy plugin does."""

    broken_task = ""

    def answer_batch(self, task: str, requests: Sequence[Any]) -> list[Any]:
        if task != self.broken_task:
            return super().answer_batch(task, requests)
        return self.broken(list(requests))

    def broken(self, requests: list[Any]) -> list[Any]:
        raise NotImplementedError


def plugin_for(pipeline: type[ToyPipeline]) -> type[ToyPlugin]:
    return type(f"{pipeline.__name__}Plugin", (ToyPlugin,), {"pipeline_class": pipeline})


class WrongOutputType(_OneTaskBroken):
    broken_task = "question-answering"

    def broken(self, requests):
        return [[QuestionAnsweringAnswer("answer", "very sure", 0, 6)] for _ in requests]


class NotAListOfLabels(_OneTaskBroken):
    broken_task = "text-classification"

    def broken(self, requests):
        return [["not a list of labels"] for _ in requests]


class OffByOneOffsets(_OneTaskBroken):
    broken_task = "question-answering"

    def broken(self, requests):
        answers = [ANSWERERS["question-answering"](request) for request in requests]
        return [[QuestionAnsweringAnswer(a.answer, a.score, a.start + 1, a.end + 1) for a in found] for found in answers]


class FailsOnEmptyText(_OneTaskBroken):
    broken_task = "token-classification"

    def broken(self, requests):
        # A real mistake: the first character of every text, empty or not.
        return [ANSWERERS[self.broken_task](r) if r.inputs[0] else [] for r in requests]


class FailsOnEveryOtherText(_OneTaskBroken):
    """Texts of an odd length crash text-classification."""

    broken_task = "text-classification"

    def broken(self, requests):
        if any(len(request.inputs) % 2 for request in requests):
            raise RuntimeError("odd length")
        return [ANSWERERS[self.broken_task](request) for request in requests]


class Nondeterministic(_OneTaskBroken):
    broken_task = "sentence-similarity"

    def broken(self, requests):
        return [[score * random.uniform(0.995, 1.0) for score in ANSWERERS[self.broken_task](r)] for r in requests]


class BatchDependent(_OneTaskBroken):
    """Embeddings drift with the batch's size, as padding-dependent numerics do."""

    broken_task = "feature-extraction"

    def broken(self, requests):
        return [_drifted(ANSWERERS[self.broken_task](r), 0.01 * len(requests)) for r in requests]


def _drifted(embedding: Any, drift: float) -> Any:
    if embedding and isinstance(embedding[0], list):
        return [_drifted(row, drift) for row in embedding]
    moved = [value + drift for value in embedding]
    norm = sum(value * value for value in moved) ** 0.5
    return [value / norm for value in moved]


class ExtraSource(_OneTaskBroken):
    broken_task = "audio-to-audio"

    def broken(self, requests):
        return [[*ANSWERERS[self.broken_task](r), SeparatedSource("label_2", decode_audio(r.inputs).mono())] for r in requests]


class HalfLengthSources(_OneTaskBroken):
    broken_task = "audio-to-audio"

    def broken(self, requests):
        halved = []
        for request in requests:
            sources = ANSWERERS[self.broken_task](request)
            halved.append([SeparatedSource(s.label, Audio(s.audio.samples[: len(s.audio.samples) // 2 + 1], s.audio.sample_rate)) for s in sources])
        return halved


class RemembersTopK(_OneTaskBroken):
    """Keeps the last request's top_k as the default for the next ones."""

    broken_task = "text-classification"
    remembered: int | None = None

    def broken(self, requests):
        answers = []
        for request in requests:
            self.remembered = request.parameters.top_k or self.remembered
            answers.append(ANSWERERS[self.broken_task](request)[: self.remembered])
        return answers


class UnsortedScores(_OneTaskBroken):
    broken_task = "image-classification"

    def broken(self, requests):
        return [sorted(ANSWERERS[self.broken_task](r), key=lambda entry: entry.score) for r in requests]


class WordsNotFromTheText(_OneTaskBroken):
    broken_task = "token-classification"

    def broken(self, requests):
        answers = [ANSWERERS[self.broken_task](r) for r in requests]
        for entities in answers:
            for entity in entities:
                entity.word = entity.word.lower()
        return answers


class RefusesEverything(_OneTaskBroken):
    broken_task = "summarization"

    def broken(self, requests):
        raise InvalidInput("inputs: this summarizer is on strike", field="inputs")


class OneAtATime(ToyPlugin):
    """Not a defect: a backend that does not batch, so the kit's batching check has nothing to check."""

    max_batch_size = 1


class DropsACandidate(_OneTaskBroken):
    """Zero-shot image answers without their last candidate label."""

    broken_task = "zero-shot-image-classification"

    def broken(self, requests):
        return [ANSWERERS[self.broken_task](request)[:-1] for request in requests]


class UnnormalisedZeroShot(_OneTaskBroken):
    """Zero-shot image scores each label alone (a sigmoid) from a model whose scores should sum to 1."""

    broken_task = "zero-shot-image-classification"

    def broken(self, requests):
        from widgetd.tasks._common import ClassificationOutput

        return [[ClassificationOutput(e.label, min(1.0, 0.9 - 0.01 * rank)) for rank, e in enumerate(ANSWERERS[self.broken_task](request))] for request in requests]


class BoxesInTheModelsPixels(_OneTaskBroken):
    """Boxes left in the model's resized input (say, 800 pixels wide) instead of the image as sent."""

    broken_task = "object-detection"

    def broken(self, requests):
        scaled = []
        for request in requests:
            found = ANSWERERS[self.broken_task](request)
            scaled.append([replace(o, box=replace(o.box, xmax=o.box.xmax * 4 + 800, ymax=o.box.ymax * 4 + 800)) for o in found])
        return scaled


class IgnoresThreshold(_OneTaskBroken):
    """Every object, whatever the threshold."""

    broken_task = "object-detection"

    def broken(self, requests):
        from msgspec.structs import replace as with_fields

        return [ANSWERERS[self.broken_task](with_fields(request, parameters=with_fields(request.parameters, threshold=0.0))) for request in requests]


class MasksInTheModelsSize(_OneTaskBroken):
    """Masks left at the model's resolution (say, 32x32) instead of the image as sent."""

    broken_task = "image-segmentation"

    def broken(self, requests):
        from PIL import Image

        from tests.toy_plugin import png_bytes

        def shrunk(segment):
            with Image.open(io.BytesIO(segment.mask)) as mask:
                return replace(segment, mask=png_bytes(mask.resize((32, 32))))

        return [[shrunk(segment) for segment in ANSWERERS[self.broken_task](request)] for request in requests]


class GreyMasks(_OneTaskBroken):
    """Masks of probabilities (grey levels) where the contract says black and white."""

    broken_task = "image-segmentation"

    def broken(self, requests):
        from PIL import Image

        from tests.toy_plugin import png_bytes

        def greyed(segment):
            with Image.open(io.BytesIO(segment.mask)) as mask:
                return replace(segment, mask=png_bytes(mask.point(lambda value: value // 2)))

        return [[greyed(segment) for segment in ANSWERERS[self.broken_task](request)] for request in requests]


class ColumnFirstCoordinates(_OneTaskBroken):
    """Coordinates as (column, row), where the contract (and the pipeline) says (row, column)."""

    broken_task = "table-question-answering"

    def broken(self, requests):
        answers = [ANSWERERS[self.broken_task](request) for request in requests]
        return [replace(answer, coordinates=[[column, row] for row, column in answer.coordinates]) for answer in answers]


class AnswerIsNotTheCells(_OneTaskBroken):
    """An aggregated answer without its aggregator's prefix: a client cannot tell "3" from "COUNT > 3"."""

    broken_task = "table-question-answering"

    def broken(self, requests):
        answers = [ANSWERERS[self.broken_task](request) for request in requests]
        return [replace(answer, answer=answer.answer.split(" > ")[-1], aggregator="COUNT") for answer in answers]


class CaptionIgnoresMaxNewTokens(_OneTaskBroken):
    """Captions of the model's default length, whatever max_new_tokens asks."""

    broken_task = "image-to-text"

    def broken(self, requests):
        from msgspec.structs import replace as with_fields

        return [ANSWERERS[self.broken_task](with_fields(request, parameters=with_fields(request.parameters, max_new_tokens=None))) for request in requests]



class RepeatsAnAnswer(_OneTaskBroken):
    """The best answer twice (say, from two answer ids mapping to one label)."""

    broken_task = "visual-question-answering"

    def broken(self, requests):
        answers = [ANSWERERS[self.broken_task](request) for request in requests]
        return [[answer[0], *answer][: max(2, len(answer))] for answer in answers]


class EndPastTheAnswer(_OneTaskBroken):
    """A span's end counted exclusive, where the pipeline counts it inclusive."""

    broken_task = "document-question-answering"

    def broken(self, requests):
        answers = [ANSWERERS[self.broken_task](request) for request in requests]
        return [[replace(entry, end=entry.end + 1) for entry in answer] for answer in answers]


class DropsAnAudioCandidate(_OneTaskBroken):
    """The worst candidate left out (a top_k of the model's choosing where the contract wants them all)."""

    broken_task = "zero-shot-audio-classification"

    def broken(self, requests):
        return [ANSWERERS[self.broken_task](request)[: max(1, len(request.parameters.candidate_labels) - 1)] for request in requests]


class DepthInTheModelsSize(_OneTaskBroken):
    """The depth left at the model's resolution (say, 32x32) instead of the image as sent."""

    broken_task = "depth-estimation"

    def broken(self, requests):
        answers = [ANSWERERS[self.broken_task](request) for request in requests]
        return [replace(answer, predicted_depth=[row[:32] for row in answer.predicted_depth[:32]]) for answer in answers]


class AnswersThePadding(_OneTaskBroken):
    """The model's padded canvas (to a multiple of its window) answered with the image."""

    broken_task = "image-to-image"

    def broken(self, requests):
        from widgetd.media import Picture

        answers = [ANSWERERS[self.broken_task](request) for request in requests]
        return [Picture(np.pad(answer.pixels, ((0, 3), (0, 5), (0, 0)))) for answer in answers]
