"""A small, real plugin for the core's tests: simple deterministic answers for the built-in tasks.

Texts containing a control word make it misbehave on purpose: ``explode`` raises,
``dawdle`` sleeps a second, ``refuse`` refuses, ``misanswer`` answers what no task allows.
"""

from __future__ import annotations

import io
import json
import math
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from widgetd import Backend, InvalidInput, ModelSnapshot, hookimpl
from widgetd.progress import report_progress, wants_preview
from widgetd.tasks.conversational import Conversation, ConversationalOutput
from widgetd.media import Audio, Picture, decode_audio, decode_image
from tests.toy_engine import ToyEngine
from widgetd.tasks._common import ClassificationOutput
from widgetd.tasks.audio_to_audio import SeparatedSource
from widgetd.tasks.automatic_speech_recognition import (
    AutomaticSpeechRecognitionChunk,
    AutomaticSpeechRecognitionOutput,
)
from widgetd.tasks.depth_estimation import DepthEstimationOutput
from widgetd.tasks.document_question_answering import DocumentQuestionAnsweringAnswer
from widgetd.tasks.fill_mask import FillMaskCandidate
from widgetd.tasks.image_segmentation import Segment
from widgetd.tasks.image_to_text import ImageToTextOutput
from widgetd.tasks.object_detection import BoundingBox, DetectedObject
from widgetd.tasks.question_answering import QuestionAnsweringAnswer
from widgetd.tasks.summarization import SummarizationOutput
from widgetd.tasks.table_question_answering import TableQuestionAnsweringOutput
from widgetd.tasks.text_generation import TextGenerationOutput
from widgetd.tasks.token_classification import TokenClassificationEntity
from widgetd.tasks.translation import TranslationOutput
from widgetd.tasks.visual_question_answering import VisualQuestionAnsweringAnswer


def words(text: str) -> set[str]:
    return {word.strip(".,?!").lower() for word in text.split()}


def answer_question(request) -> list[QuestionAnsweringAnswer]:
    context, question = request.inputs.context, request.inputs.question
    found = []
    for word in sorted(words(question)):
        start = context.lower().find(word) if word else -1
        if start >= 0:
            found.append((start, start + len(word)))
    if not found:
        return [QuestionAnsweringAnswer(context[:1], 0.1, 0, len(context[:1]))]
    # Longer words are likelier answers; the scores of one context's answers add up to 0.9.
    total = sum(end - start for start, end in found)
    answers = [QuestionAnsweringAnswer(context[start:end], 0.9 * (end - start) / total, start, end) for start, end in found]
    return sorted(answers, key=lambda answer: -answer.score)[: request.parameters.top_k]


def similarity(request) -> list[float]:
    source = words(request.inputs.source_sentence)
    return [len(source & words(s)) / max(1, len(source | words(s))) for s in request.inputs.sentences]


def embedding(text: str) -> list[float]:
    return [float(len(text)), 10.0 * len(words(text)), float(sum(map(ord, text)) % 97), 20.0 * text.lower().count("e")]


def feature_extraction(request) -> Any:
    def embed(text: str) -> list[float]:
        vector = embedding(text)
        norm = float(np.linalg.norm(vector)) if request.normalize is not False else 0.0
        return [value / norm for value in vector] if norm else vector

    if isinstance(request.inputs, str):
        return embed(request.inputs)
    return [embed(text) for text in request.inputs]


def ranked(scores: dict[str, float], top_k: int | None = None) -> list[ClassificationOutput]:
    total = sum(np.exp(list(scores.values())))
    labels = [ClassificationOutput(label, float(np.exp(score) / total)) for label, score in scores.items()]
    return sorted(labels, key=lambda entry: -entry.score)[:top_k]


def entities(request) -> list[TokenClassificationEntity]:
    """Capitalised words are PER, the others O (ignored unless ``ignore_labels`` says otherwise)."""
    ignored = request.parameters.ignore_labels if request.parameters.ignore_labels is not None else ["O"]
    found, offset = [], 0
    for word in request.inputs.split():
        start = request.inputs.index(word, offset)
        offset = start + len(word)
        label = "PER" if word[:1].isupper() else "O"
        if label not in ignored:
            found.append(TokenClassificationEntity(label, 0.5 + 0.04 * min(len(word), 10), word, start, offset))
    return found


def text_classes(request) -> list[ClassificationOutput]:
    goodness = request.inputs.lower().count("good") - request.inputs.lower().count("bad")
    return ranked({"POSITIVE": goodness, "NEGATIVE": -goodness}, request.parameters.top_k)


def zero_shot(request) -> list[ClassificationOutput]:
    text = words(request.inputs)
    return ranked({label: float(label.lower() in text) for label in request.parameters.candidate_labels})


def fill_mask(request) -> list[FillMaskCandidate]:
    if "[MASK]" not in request.inputs:
        raise InvalidInput("inputs: no [MASK] token in the text", field="inputs")
    candidates = request.parameters.targets or ["cat", "dog", "bird", "fish", "cow", "ant"]
    return [
        FillMaskCandidate(request.inputs.replace("[MASK]", word, 1), 1 / (rank + 2), rank, word)
        for rank, word in enumerate(candidates[: request.parameters.top_k])
    ]


def new_words(request) -> int:
    """How many words (the toy's tokens) a generating request allows: max_new_tokens, or max_length less
    the decoder's start token; as many as it likes otherwise."""
    limits = getattr(request.parameters, "generate_parameters", None) or request.parameters
    if getattr(limits, "max_new_tokens", None) is not None:
        return limits.max_new_tokens
    if getattr(limits, "max_length", None) is not None:
        return limits.max_length - 1
    return 10**6


CONTINUATION = "and so on and so forth until the end of the story, when everyone lived happily ever after".split()


def continuation(request) -> TextGenerationOutput:
    """The story's words, up to max_new_tokens (3 by default) or the first stop sequence (kept, as TGI keeps it)."""
    wanted = request.parameters.max_new_tokens or 3
    generated = " " + " ".join((CONTINUATION * 40)[:wanted])
    stops = [(generated.find(stop), stop) for stop in request.parameters.stop or () if stop and stop in generated]
    if stops:
        position, stop = min(stops)
        generated = generated[: position + len(stop)]
    return TextGenerationOutput(request.inputs + generated if request.parameters.return_full_text is not False else generated)


def transcript(request) -> AutomaticSpeechRecognitionOutput:
    audio = decode_audio(request.inputs)
    text = f"{audio.duration:.2f} seconds"
    if not request.parameters.return_timestamps:
        return AutomaticSpeechRecognitionOutput(text)
    return AutomaticSpeechRecognitionOutput(text, [AutomaticSpeechRecognitionChunk(text, (0.0, audio.duration))])


def speech(request) -> Audio:
    return Audio(np.sin(np.arange(800 * len(request.inputs)) / 5).astype(np.float32) * 0.5, 16000)


def separated(request) -> list[SeparatedSource]:
    audio = decode_audio(request.inputs).mono()
    return [SeparatedSource("label_0", audio), SeparatedSource("label_1", Audio(-audio.samples, audio.sample_rate))]


def image_classes(request) -> list[ClassificationOutput]:
    red, green, blue = np.asarray(decode_image(request.inputs), dtype=np.float32).mean(axis=(0, 1)) / 255
    return ranked({"red": red, "green": green, "blue": blue}, request.parameters.top_k)


def image_zero_shot(request) -> list[ClassificationOutput]:
    """Each candidate scored by how much of the colour it names the image holds."""
    labels = request.parameters.candidate_labels
    if len(set(labels)) != len(labels):
        raise InvalidInput("parameters.candidate_labels: each label once", field="parameters.candidate_labels")
    colours = dict(zip(("red", "green", "blue"), np.asarray(decode_image(request.inputs), dtype=np.float32).mean(axis=(0, 1)) / 255))
    return ranked({label: max((value for name, value in colours.items() if name in label.lower()), default=0.0) for label in labels})


def detected(request) -> list[DetectedObject]:
    """The image's brightest region (the test images' middle square), and all that is not black (the picture)."""
    image = np.asarray(decode_image(request.inputs).convert("L"), dtype=np.float32)
    found = [("square", 0.9, image >= image.max() - 1), ("image", 0.6, image > 0)]
    return [
        DetectedObject(label, score, bounds(region)) for label, score, region in found if region.any() and score > request.parameters.threshold
    ]


def bounds(region: np.ndarray) -> BoundingBox:
    rows, columns = np.nonzero(region)
    return BoundingBox(int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1)


def segments(request) -> list[Segment]:
    """The image's brightest region (the test images' middle square) and the rest; unscored when semantic."""
    from PIL import Image

    grey = np.asarray(decode_image(request.inputs).convert("L"), dtype=np.float32)
    square = grey > grey.mean() + 1
    found = [("square", 0.95, square), ("background", 0.92, ~square)]
    semantic = request.parameters.subtask == "semantic"
    kept = [(label, score, mask) for label, score, mask in found if mask.any() and (semantic or score > request.parameters.threshold)]
    return [Segment(label, png_bytes(Image.fromarray(mask.astype(np.uint8) * 255)), None if semantic else score) for label, score, mask in kept]


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def table_answer(request) -> TableQuestionAnsweringOutput:
    """The cells sharing a word with the question (the first cell when none does); COUNT for "how many"."""
    asked = request.inputs.asked
    names = list(request.inputs.table)
    cells = [(row, column) for column, name in enumerate(names) for row, value in enumerate(request.inputs.table[name])]
    chosen = [(row, column) for row, column in cells if words(request.inputs.table[names[column]][row]) & words(asked)] or cells[:1]
    values = [request.inputs.table[names[column]][row] for row, column in chosen]
    aggregator = "COUNT" if "how many" in asked.lower() else "NONE"
    prefix = "" if aggregator == "NONE" else f"{aggregator} > "
    return TableQuestionAnsweringOutput(prefix + ", ".join(values), [list(cell) for cell in chosen], values, aggregator)


def caption(request) -> ImageToTextOutput:
    """The image's main colour and size, one word per token, cut at max_new_tokens."""
    red, green, blue = np.asarray(decode_image(request.inputs), dtype=np.float32).mean(axis=(0, 1))
    colour = max(("red", red), ("green", green), ("blue", blue), key=lambda pair: pair[1])[0]
    width, height = decode_image(request.inputs).size
    words_ = f"a mostly {colour} picture {'wider than tall' if width > height else 'not wider than tall'} with a square in it".split()
    settings = request.parameters.generation_parameters
    limit = request.parameters.max_new_tokens or (settings.max_new_tokens if settings else None) or 20
    if request.parameters.max_new_tokens and settings and settings.max_new_tokens:
        raise InvalidInput("parameters.max_new_tokens is also set in generation_parameters", field="parameters.max_new_tokens")
    return ImageToTextOutput(" ".join(words_[:limit]))


def visual_answers(request) -> list[VisualQuestionAnsweringAnswer]:
    """Colours scored by how much of each the image holds; "yes" when the question names the main one."""
    image = decode_image(request.inputs.image)
    scores = dict(zip(("red", "green", "blue"), np.asarray(image, dtype=np.float32).mean(axis=(0, 1)) / 255))
    main = max(scores, key=scores.get)
    scores["yes" if main in request.inputs.question.lower() else "no"] = 0.95
    best = sorted(scores.items(), key=lambda pair: -pair[1])[: request.parameters.top_k]
    return [VisualQuestionAnsweringAnswer(answer, float(score)) for answer, score in best]


def document_answers(request) -> list[DocumentQuestionAnsweringAnswer]:
    """The words sharing letters with the question, each alone, then the first two together; needs word_boxes."""
    boxes = request.parameters.word_boxes
    if boxes is None:
        raise InvalidInput("parameters.word_boxes: the toy backend has no OCR", field="parameters.word_boxes")
    words_ = [word for word, _ in boxes]
    asked = set(request.inputs.question.lower())
    scored = [(len(asked & set(word.lower())) / (1 + len(word)), index, index) for index, word in enumerate(words_)]
    scored.append((0.01, 0, min(1, len(words_) - 1)))
    best = sorted(scored, key=lambda entry: -entry[0])[: request.parameters.top_k]
    return [DocumentQuestionAnsweringAnswer(" ".join(words_[start : end + 1]), min(1.0, score), start, end) for score, start, end in best]


def audio_zero_shot(request) -> list[ClassificationOutput]:
    """Each candidate scored by how well its length matches the clip's (seconds against characters / 10)."""
    labels = request.parameters.candidate_labels
    if len(set(labels)) != len(labels):
        raise InvalidInput("parameters.candidate_labels: each label once", field="parameters.candidate_labels")
    duration = decode_audio(request.inputs).duration
    closeness = np.array([1 / (1 + abs(len(label) / 10 - duration)) for label in labels])
    return ranked(dict(zip(labels, (closeness / closeness.sum()).tolist())))


def depth(request) -> DepthEstimationOutput:
    """Brighter is nearer: the depth is 1 - brightness."""
    from PIL import Image

    grey = np.asarray(decode_image(request.inputs).convert("L"), dtype=np.float32) / 255
    return DepthEstimationOutput(png_bytes(Image.fromarray(((1 - grey) * 255).astype(np.uint8))), (1 - grey).tolist())


def upscaled(request) -> Picture:
    """The image twice as large (nearest neighbour), or at target_size; no text to guide it."""
    from PIL import Image

    for name in ("prompt", "negative_prompt", "num_inference_steps", "guidance_scale"):
        if getattr(request.parameters, name) is not None:
            raise InvalidInput(f"parameters.{name}: the toy backend reads none", field=f"parameters.{name}")
    image = decode_image(request.inputs)
    target = request.parameters.target_size
    size = (target.width, target.height) if target else (image.width * 2, image.height * 2)
    return Picture.of(image.resize(size, resample=Image.NEAREST))


def audio_classes(request) -> list[ClassificationOutput]:
    """Loud, quiet or long, by the clip's loudness and length."""
    audio = decode_audio(request.inputs).mono()
    loudness = float(np.sqrt(np.mean(np.square(audio.samples)))) if audio.samples.size else 0.0
    return ranked({"loud": 4 * loudness, "quiet": 1 - loudness, "long": min(audio.duration, 10.0) / 10}, request.parameters.top_k)


TOY_COLUMNS = {"length": [3.5, 12.0, 7.25], "width": [1.0, 4.5, 2.0], "colour": ["red", "blue", "red"]}
"""The toy tabular model's columns and example rows (its config.json's ``sklearn.example_input``)."""


def toy_rows(request) -> list[dict[str, Any]]:
    """The request's rows by column name, numbers read from text; a missing, extra or non-numeric column is a 400."""
    given = request.columns
    for name in [*TOY_COLUMNS, *given]:
        if (name in TOY_COLUMNS) != (name in given):
            raise InvalidInput(f"column {name!r} is {'missing' if name in TOY_COLUMNS else 'not one the toy reads'}", field=f"table.{name}")
    rows = [dict(zip(given, cells)) for cells in zip(*given.values())]
    for entry in rows:
        for name in ("length", "width"):
            try:
                entry[name] = float(entry[name])
            except (TypeError, ValueError):
                raise InvalidInput(f"column {name!r} holds numbers, not {entry[name]!r}", field=f"table.{name}") from None
            if not math.isfinite(entry[name]):
                raise InvalidInput(f"column {name!r} holds finite numbers", field=f"table.{name}")
    return rows


def tabular_size(entry: dict[str, Any]) -> float:
    return entry["length"] * entry["width"] + (1.0 if entry["colour"] == "red" else 0.0)


def conversation(request) -> ConversationalOutput:
    """The toy answers a conversation with the text's words reversed."""
    inputs = request.inputs
    said = " ".join(reversed(inputs.text.split()))
    grown = Conversation([*inputs.past_user_inputs, inputs.text], [*inputs.generated_responses, said])
    return ConversationalOutput(generated_text=said, conversation=grown)


def drawn(request) -> Picture:
    """Noise from the seed, tinted by the prompt's length, at the size asked (64x64 by default); each step
    reported to whoever listens."""
    parameters = request.parameters
    width, height = parameters.size
    steps = parameters.num_inference_steps or 4
    for step in range(1, steps + 1):
        report_progress(request, step, steps, Picture(np.zeros((8, 8, 3), np.uint8)) if wants_preview(request, step, steps) else None)
    noise = np.random.default_rng(parameters.seed or 0).integers(0, 200, (height or 64, width or 64, 3))
    return Picture((noise + len(request.inputs) % 50).astype(np.uint8))


ANSWERERS = {
    "question-answering": answer_question,
    "sentence-similarity": similarity,
    "feature-extraction": feature_extraction,
    "token-classification": entities,
    "text-classification": text_classes,
    "zero-shot-classification": zero_shot,
    "fill-mask": fill_mask,
    "summarization": lambda request: SummarizationOutput(" ".join(request.inputs.split()[: min(5, new_words(request))])),
    "translation": lambda request: TranslationOutput(" ".join(list(reversed(request.inputs.split()))[: new_words(request)])),
    "text-generation": continuation,
    "automatic-speech-recognition": transcript,
    "text-to-speech": speech,
    "audio-to-audio": separated,
    "image-classification": image_classes,
    "audio-classification": audio_classes,
    "zero-shot-image-classification": image_zero_shot,
    "object-detection": detected,
    "image-segmentation": segments,
    "table-question-answering": table_answer,
    "image-to-text": caption,
    "visual-question-answering": visual_answers,
    "document-question-answering": document_answers,
    "zero-shot-audio-classification": audio_zero_shot,
    "depth-estimation": depth,
    "image-to-image": upscaled,
    "tabular-classification": lambda request: ["big" if tabular_size(entry) > 10 else "small" for entry in toy_rows(request)],
    "tabular-regression": lambda request: [tabular_size(entry) for entry in toy_rows(request)],
    "conversational": conversation,
    "text-to-image": drawn,
}
TOY_TASKS = tuple(ANSWERERS)
TOY_LABELS = {
    "text-classification": ["POSITIVE", "NEGATIVE"],
    "token-classification": ["PER", "O"],
    "image-classification": ["red", "green", "blue"],
    "audio-classification": ["loud", "quiet", "long"],
    "object-detection": ["square", "image"],
    "image-segmentation": ["square", "background"],
    "visual-question-answering": ["red", "green", "blue", "yes", "no"],
    "tabular-classification": ["big", "small"],
}
"""The labels each toy task answers with, kept in the model's toy.json (not in a config.json's id2label)."""


def _misbehave(request: Any) -> None:
    text = str(request.inputs)
    if "explode" in text:
        # Its message carries a traceback, as torch.compile's and a Ray task's errors do.
        raise RuntimeError(f"the toy backend exploded as asked\n\nOriginal traceback:\n{''.join(traceback.format_stack(limit=2))}")
    if "dawdle" in text:
        time.sleep(1)
    if "refuse" in text:
        raise InvalidInput("the toy backend refuses this input", field="inputs")


class ToyPipeline:
    def __init__(self, tasks: Sequence[str]) -> None:
        self.tasks = tuple(tasks)
        self.batch_sizes: list[int] = []
        self.seen: list[str] = []

    def __call__(self, task: str, requests: Sequence[Any]) -> list[Any]:
        self.batch_sizes.append(len(requests))
        self.seen.extend(str(request.inputs) for request in requests)
        for request in requests:
            _misbehave(request)
        answers = self.answer_batch(task, requests)
        return [["not a list of labels"] if "misanswer" in str(r.inputs) else a for r, a in zip(requests, answers)]

    def answer_batch(self, task: str, requests: Sequence[Any]) -> list[Any]:
        return [ANSWERERS[task](request) for request in requests]

    def count_tokens(self, texts: Sequence[str]) -> int:
        """The toy reads a text as its words, between a start and an end token."""
        return sum(len(text.split()) + 2 for text in texts)


def make_toy_model(
    folder: Path, *, library: str = "toy", pipeline_tag: str = "question-answering", widget: str = ""
) -> Path:
    """A toy model folder; ``widget`` is the card's YAML ``widget:`` block, if any."""
    folder.mkdir(parents=True, exist_ok=True)
    card = f"library_name: {library}\npipeline_tag: {pipeline_tag}\n{widget}"
    (folder / "README.md").write_text(f"---\n{card}---\n# toy\n")
    (folder / "toy.json").write_text(json.dumps({"labels": TOY_LABELS.get(pipeline_tag, [])}))
    if pipeline_tag.startswith("tabular-"):
        (folder / "config.json").write_text(json.dumps({"sklearn": {"columns": list(TOY_COLUMNS), "example_input": TOY_COLUMNS}}))
    return folder


def toy_labels(folder: Path) -> list[str] | None:
    """The labels a toy model keeps in its toy.json; None for a task without labels."""
    return json.loads((Path(folder) / "toy.json").read_text()).get("labels") or None


class StreamingToyPipeline(ToyPipeline):
    """The toy with a generation engine: text-generation and chat through the server's continuous batching."""

    def __init__(self, tasks: Sequence[str]) -> None:
        super().__init__(tasks)
        self.engine = ToyEngine()


class ToyPlugin:
    """The toy backend; ``load_gate`` (when set) holds loading until the test opens it; ``fail_load``
    fails every load (True) or those of the models named."""

    pipeline_class = ToyPipeline
    max_batch_size = 8

    def __init__(self, *, load_gate: threading.Event | None = None, fail_load: bool | tuple[str, ...] = False) -> None:
        self.load_gate = load_gate
        self.fail_load = fail_load
        self.pipelines: list[ToyPipeline] = []

    def load(self, snapshot: ModelSnapshot) -> ToyPipeline:
        if self.load_gate is not None:
            self.load_gate.wait(timeout=30)
        if self.fail_load is True or snapshot.model_id in (self.fail_load or ()):
            raise OSError(f"toy weights missing in {snapshot.path}")
        pipeline = self.pipeline_class(TOY_TASKS)
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
                max_batch_size=self.max_batch_size,
            )
        )


class StreamingToyPlugin(ToyPlugin):
    pipeline_class = StreamingToyPipeline
