"""The toy plugin with one defect each, for proving the conformance kit catches it."""

from __future__ import annotations

import base64
import dataclasses
import io

import numpy as np

from msgspec.structs import replace
from typing import Any, Sequence

from tests.toy_engine import ToySequence
from tests.toy_plugin import ANSWERERS, StreamingToyPipeline, ToyPipeline, ToyPlugin
from widgetd import InvalidInput
from widgetd.media import Audio, Picture, decode_audio
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
    """Scores 0.5% lower on every other call (say, dropout left on): the same request asked twice in a row is
    never answered alike, so the kit must catch it on every run (a random drift of up to 0.5% slipped through
    the tolerance about one run in twenty)."""

    broken_task = "sentence-similarity"
    calls = 0

    def broken(self, requests):
        self.calls += 1
        drift = 0.995 if self.calls % 2 else 1.0
        return [[score * drift for score in ANSWERERS[self.broken_task](r)] for r in requests]


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


# Defects the rules that tie answers to their requests catch (issue: a kit that cannot be fooled).


class LabelsByIndex(_OneTaskBroken):
    """Labels named by their index (LABEL_0, ...), not the model's names for them."""

    broken_task = "text-classification"

    def broken(self, requests):
        return [[replace(entry, label=f"LABEL_{rank}") for rank, entry in enumerate(ANSWERERS[self.broken_task](r))] for r in requests]


class AlikeScores(_OneTaskBroken):
    """A model too flat to test: every label scored the same, whatever the text (random weights at 0.02)."""

    broken_task = "text-classification"

    def broken(self, requests):
        return [[replace(entry, score=0.5) for entry in ANSWERERS[self.broken_task](r)] for r in requests]


class TopKBeforeSorting(_OneTaskBroken):
    """top_k keeps the model's first k labels, then sorts them: not the best k."""

    broken_task = "image-classification"

    def broken(self, requests):
        every = [ANSWERERS[self.broken_task](replace(r, parameters=replace(r.parameters, top_k=None))) for r in requests]
        order = ["red", "green", "blue"]
        return [
            sorted(sorted(labels, key=lambda entry: order.index(entry.label))[: r.parameters.top_k], key=lambda entry: -entry.score)
            for r, labels in zip(requests, every)
        ]


class ScoresInRequestOrder(_OneTaskBroken):
    """Candidate labels in the order they were sent, paired with the scores sorted best first."""

    broken_task = "zero-shot-classification"

    def broken(self, requests):
        answers = []
        for request in requests:
            scores = [entry.score for entry in ANSWERERS[self.broken_task](request)]
            answers.append([replace(entry, label=label) for entry, label in zip(ANSWERERS[self.broken_task](request), request.parameters.candidate_labels)][: len(scores)])
        return answers


class SharperWithMoreCandidates(_OneTaskBroken):
    """A softmax whose temperature falls as candidates are added: two labels' ratio depends on the others."""

    broken_task = "zero-shot-image-classification"

    def broken(self, requests):
        answers = []
        for request in requests:
            found = ANSWERERS[self.broken_task](request)
            sharpened = [entry.score ** len(found) for entry in found]
            answers.append([replace(entry, score=score / sum(sharpened)) for entry, score in zip(found, sharpened)])
        return answers


class BoxesInTheModelsInputClipped(_OneTaskBroken):
    """Boxes found on the model's 64x64 input, left in its pixels and clipped to the picture: always inside it."""

    broken_task = "object-detection"

    def broken(self, requests):
        from widgetd.media import decode_image
        from tests.toy_plugin import png_bytes as png_of

        answers = []
        for request in requests:
            image = decode_image(request.inputs)
            small = ANSWERERS[self.broken_task](replace(request, inputs=png_of(image.resize((64, 64)))))
            answers.append([replace(o, box=replace(o.box, xmax=min(o.box.xmax, image.width), ymax=min(o.box.ymax, image.height))) for o in small])
        return answers


class BoxesScaledByTheOtherSide(_OneTaskBroken):
    """Box x scaled by the picture's height and y by its width (relative boxes to pixels, axes swapped), clipped."""

    broken_task = "object-detection"

    def broken(self, requests):
        from widgetd.media import decode_image

        answers = []
        for request in requests:
            width, height = decode_image(request.inputs).size
            answers.append([
                replace(o, box=replace(
                    o.box, xmin=min(width, o.box.xmin * height // width), xmax=min(width, o.box.xmax * height // width),
                    ymin=min(height, o.box.ymin * width // height), ymax=min(height, o.box.ymax * width // height),
                ))
                for o in ANSWERERS[self.broken_task](request)
            ])
        return answers


class MasksPastedNotResized(_OneTaskBroken):
    """Masks made on the model's 64x64 input, pasted into a canvas of the picture's size instead of resized."""

    broken_task = "image-segmentation"

    def broken(self, requests):
        from PIL import Image

        from tests.toy_plugin import png_bytes
        from widgetd.media import decode_image
        from tests.toy_plugin import png_bytes as png_of

        answers = []
        for request in requests:
            image = decode_image(request.inputs)
            segments = ANSWERERS[self.broken_task](replace(request, inputs=png_of(image.resize((64, 64)))))
            pasted = []
            for segment in segments:
                canvas = Image.new("L", image.size)
                with Image.open(io.BytesIO(segment.mask)) as mask:
                    canvas.paste(mask.convert("L"), (0, 0))
                pasted.append(replace(segment, mask=png_bytes(canvas)))
            answers.append(pasted)
        return answers


class DepthRowsReshaped(_OneTaskBroken):
    """The depth map computed column by column, then reshaped (not transposed) into the picture's rows."""

    broken_task = "depth-estimation"

    def broken(self, requests):
        answers = [ANSWERERS[self.broken_task](request) for request in requests]
        return [replace(answer, predicted_depth=np.asarray(answer.predicted_depth).T.reshape(np.shape(answer.predicted_depth)).tolist()) for answer in answers]


class CountsTextsNotTokens(ToyPipeline):
    """/v1/embeddings usage counting one token a text."""

    def count_tokens(self, texts):
        return len(texts)


class EngineSaysEndWhenCut(StreamingToyPipeline):
    """Generation cut by max_new_tokens reported as the model's own end (eos_token, which chat calls stop)."""

    def __init__(self, tasks):
        super().__init__(tasks)
        next_token = ToySequence.next_token

        def mislabelled(sequence):
            token = next_token(sequence)
            return dataclasses.replace(token, finish="eos_token") if token.finish == "length" else token

        self.engine.admit = _admitting(self.engine.admit, mislabelled)


def _admitting(admit, next_token):
    """``admit`` whose sequences make their tokens with ``next_token``."""

    def admitted(prompt, options):
        sequence = admit(prompt, options)
        sequence.next_token = lambda: next_token(sequence)
        return sequence

    return admitted


class StreamsIgnoreStop(StreamingToyPipeline):
    """The server's TGI stream, mutated: stop sequences dropped when streaming (and only then)."""

    def __init__(self, tasks):
        super().__init__(tasks)
        from widgetd.routes import generation

        job_for = generation.text_generation_job
        generation.text_generation_job = lambda request: dataclasses.replace(job_for(request), stops=()) if request.stream else job_for(request)


class TruncationNotRescaled(ToyPipeline):
    """The server's /v1/embeddings, mutated: ``dimensions`` keeps the first numbers without rescaling a unit vector."""

    def __init__(self, tasks):
        super().__init__(tasks)
        from widgetd.routes import openai

        openai._vector = lambda value, dimensions: np.asarray(value, dtype=np.float32)[:dimensions]


class Base64BigEndian(ToyPipeline):
    """The server's /v1/embeddings, mutated: base64 of big-endian floats."""

    def __init__(self, tasks):
        super().__init__(tasks)
        from widgetd.routes import openai

        encoded = openai._encoded
        openai._encoded = lambda vector, encoding: base64.b64encode(vector.astype(">f4").tobytes()).decode() if encoding == "base64" else encoded(vector, encoding)


class OneAnswerPerTable(_OneTaskBroken):
    """Answers a table with its first row's label, as if a request were one row."""

    broken_task = "tabular-classification"

    def broken(self, requests):
        return [ANSWERERS[self.broken_task](request)[:1] for request in requests]


class RowsScaledByTheTable(_OneTaskBroken):
    """Divides each prediction by the table's largest: a row's answer depends on the other rows."""

    broken_task = "tabular-regression"

    def broken(self, requests):
        answers = [ANSWERERS[self.broken_task](request) for request in requests]
        return [[value / max(answer) for value in answer] for answer in answers]


class ColumnsByPosition(_OneTaskBroken):
    """Reads the cells in the order the client listed the columns, as if they were the model's order."""

    broken_task = "tabular-regression"

    def broken(self, requests):
        from tests.toy_plugin import TOY_COLUMNS

        renamed = [replace(request, table=dict(zip(TOY_COLUMNS, request.columns.values())), inputs=None) for request in requests]
        return [ANSWERERS[self.broken_task](request) for request in renamed]


class TextCellsAsZero(_OneTaskBroken):
    """Reads numbers sent as text ("4.5", as the Python client sends them) as 0."""

    broken_task = "tabular-regression"

    def broken(self, requests):
        def zeroed(request):
            columns = {name: [0 if isinstance(cell, str) and name != "colour" else cell for cell in cells] for name, cells in request.columns.items()}
            return replace(request, table=columns, inputs=None)

        return [ANSWERERS[self.broken_task](zeroed(request)) for request in requests]


class IgnoresExtraColumns(_OneTaskBroken):
    """Drops the columns the model does not read instead of refusing them."""

    broken_task = "tabular-classification"

    def broken(self, requests):
        from tests.toy_plugin import TOY_COLUMNS

        kept = [replace(request, table={name: cells for name, cells in request.columns.items() if name in TOY_COLUMNS}, inputs=None) for request in requests]
        return [ANSWERERS[self.broken_task](request) for request in kept]


class SeedIgnored(_OneTaskBroken):
    """Draws every image from seed 0, whatever the request's seed."""

    broken_task = "text-to-image"

    def broken(self, requests):
        return [ANSWERERS[self.broken_task](replace(request, parameters=replace(request.parameters, seed=0))) for request in requests]


class SizeIgnored(_OneTaskBroken):
    """Answers the model's own 64x64 whatever the width and height asked."""

    broken_task = "text-to-image"

    def broken(self, requests):
        return [ANSWERERS[self.broken_task](replace(request, parameters=replace(request.parameters, width=None, height=None, target_size=None))) for request in requests]


class OneGeneratorPerBatch(_OneTaskBroken):
    """Draws a batch's noise from one generator seeded by the first request: an image depends on its neighbours."""

    broken_task = "text-to-image"

    def broken(self, requests):
        rng = np.random.default_rng(requests[0].parameters.seed or 0)
        answers = []
        for request in requests:
            width, height = request.parameters.size
            answers.append(Picture(rng.integers(0, 200, (height or 64, width or 64, 3)).astype(np.uint8)))
        return answers


class ProgressCountsDefaultSteps(_OneTaskBroken):
    """Reports 4 steps whatever num_inference_steps asks (as a backend that reads the model's default would)."""

    broken_task = "text-to-image"

    def broken(self, requests):
        from widgetd.progress import report_progress

        for request in requests:
            for step in range(1, 5):
                report_progress(request, step, 4)
        return [ANSWERERS[self.broken_task](replace(request, parameters=replace(request.parameters, num_inference_steps=0))) for request in requests]
