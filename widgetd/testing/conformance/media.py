"""Tasks that take or give media: audio (speech recognition, classification, separation, speech) and images (classification, zero-shot, detection, segmentation)."""

from __future__ import annotations

import base64
import io
from typing import Any, Callable, ClassVar, Iterable

import msgspec
import numpy as np
import pytest
from hypothesis import strategies as st

from widgetd.testing.audio import encode, tone
from widgetd.testing.conformance.base import LabelledTests, TaskTests
from widgetd.testing.conformance.ranked import CandidateTests, LabelledTopKTests, ScoredTests, TopKTests
from widgetd.testing.conformance.exchange import Call, Reply, decode_audio_bytes
from widgetd.testing.conformance.geometry import BoxGeometryTests, DepthGeometryTests, MaskGeometryTests
from widgetd.testing.conformance.rules import (
    ContractViolation,
    at_most,
    classified,
    expect,
    finite,
    ranked_labels,
    scores_are_probabilities,
    sorted_by_score,
)
from widgetd.testing.conformance.text import EDGE_TEXTS, GeneratedTextTests, text_call
from widgetd.testing.images import render_image

AUDIO_TYPES = {"WAV": "audio/wav", "FLAC": "audio/flac", "OGG": "audio/ogg", "MP3": "audio/mpeg"}
AUDIO_FORMATS = {"audio/flac": "flac", "audio/wav": "wav", "audio/x-wav": "wav", "audio/ogg": "ogg", "audio/mpeg": "mp3"}


def audio_call(seconds: float, rate: int, channels: int, container: str, *, typed: bool = True, **headers: str) -> Call:
    """Raw audio bytes, as clients send them, with (or without) their content type."""
    data = encode(tone(seconds, rate, channels), rate, container)
    return Call(data, {"content-type": AUDIO_TYPES[container], **headers} if typed else dict(headers))


def media_json_call(data: bytes, **parameters: Any) -> Call:
    """Audio or image bytes as base64 ``inputs`` in JSON, the form clients use with parameters."""
    return Call({"inputs": base64.b64encode(data).decode(), "parameters": parameters}, carries_media=True)


def audio_examples() -> list[Call]:
    return [
        audio_call(1.0, 16000, 1, "WAV"),
        audio_call(0.7, 44100, 2, "FLAC"),
        audio_call(1.3, 22050, 1, "OGG"),
        audio_call(0.5, 8000, 1, "MP3"),
        audio_call(0.4, 48000, 2, "WAV", typed=False),
        media_json_call(encode(tone(0.6, 16000), 16000, "FLAC")),
    ]


def varied_audio() -> list[Call]:
    """Different sounds in one container and rate, so that they can share a batch."""
    return [Call(encode(tone(0.8, 16000, pitch=pitch), 16000, "WAV"), {"content-type": "audio/wav"}) for pitch in (220, 440, 880)]


def audio_edge_cases() -> list[Call]:
    flac = encode(tone(1.0, 16000), 16000, "FLAC")
    return [
        Call(b"", {"content-type": "audio/flac"}),
        Call(b"this is not audio", {"content-type": "audio/flac"}),
        Call(flac[: len(flac) // 3], {"content-type": "audio/flac"}),
        Call(flac[:64], {"content-type": "audio/flac"}),
        Call(encode(np.zeros(1, dtype=np.float32), 16000, "WAV"), {"content-type": "audio/wav"}),
        Call(encode(np.zeros(16000, dtype=np.float32), 16000, "WAV"), {"content-type": "audio/wav"}),
        Call(encode(tone(0.01, 8000), 8000, "WAV"), {"content-type": "audio/wav"}),
        Call(encode(np.ones(8000, dtype=np.float32), 8000, "WAV"), {"content-type": "audio/wav"}),
        audio_call(12.0, 16000, 2, "FLAC"),
        Call(render_image(8, 8), {"content-type": "image/png"}),
        media_json_call(b"not audio either"),
    ]


def duration_of(data: bytes) -> tuple[float, int]:
    samples, rate = decode_audio_bytes(data)
    return samples.shape[0] / rate, rate


def requested_format(call: Call) -> str:
    accept = call.headers.get("accept", "")
    return next((AUDIO_FORMATS[part.strip()] for part in accept.split(",") if part.strip() in AUDIO_FORMATS), "flac")


def check_audio(data: bytes, what: str) -> tuple[float, int]:
    try:
        samples, rate = decode_audio_bytes(data)
    except Exception as error:
        raise ContractViolation(f"{what} does not decode as audio: {error}") from None
    expect(samples.shape[0] > 0, f"{what} holds no samples")
    expect(bool(np.isfinite(samples).all()), f"{what} holds samples that are not finite")
    return samples.shape[0] / rate, rate


class AutomaticSpeechRecognitionTests(TaskTests):
    """A transcript for audio in every container, rate and channel count; timestamps inside the audio."""

    task_name = "automatic-speech-recognition"

    @pytest.fixture
    def examples(self) -> list[Call]:
        return audio_examples()

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return audio_edge_cases()

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return varied_audio()

    def test_speech_gets_a_transcript(self, served, speech_sample):
        if speech_sample is None:
            pytest.skip("supply a `speech_sample` fixture (audio bytes with speech) to check that speech gets a transcript")
        call = Call(speech_sample)
        transcript = self.decode(served.task, call, self.answer(served, call))
        expect(
            transcript.text.strip() != "",
            f"{served.task.name}: speech (the speech_sample fixture) must get a transcript, got {transcript.text!r}",
        )

    def check_answer(self, call: Call, answer: Any) -> None:
        duration, _ = duration_of(call.inputs)
        for index, chunk in enumerate(answer.chunks or []):
            start, end = chunk.timestamp
            finite([start, end], f"chunk {index} timestamp")
            expect(
                0 <= start <= end <= duration + 0.5,
                f"chunk {index} timestamp ({start}, {end}) must lie inside the audio's {duration:.2f} s",
            )

    def test_timestamps_lie_inside_the_audio(self, served):
        call = media_json_call(encode(tone(1.5, 16000), 16000, "WAV"), return_timestamps=True)
        reply = served.send(call)
        if reply.status != 200:
            self.expect_client_error(served, call, reply)
            pytest.skip(f"the model does not give timestamps: {reply.error}")
        self.verify(served, call, reply)
        expect(reply.json().get("chunks") is not None, "return_timestamps=true must answer `chunks`")


class AudioToAudioTests(TaskTests):
    """Separated sources: each ``{label, blob, content-type}`` in the requested format, labels once
    each, every source as long as the input, the same number of sources for every input.

    Supply ``expected_sources`` (the model's number of outputs) to have that checked too.
    """

    task_name = "audio-to-audio"

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [
            *audio_examples(),
            audio_call(0.5, 16000, 1, "WAV", accept="audio/wav"),
            audio_call(0.5, 16000, 1, "WAV", accept="audio/ogg"),
        ]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return audio_edge_cases()

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return varied_audio()

    def check_answer(self, call: Call, answer: Any) -> None:
        expect(len(answer) > 0, "source separation must answer at least one source")
        labels = [source.label for source in answer]
        expect(len(set(labels)) == len(labels), f"source labels must not repeat, got {labels}")
        duration, rate = duration_of(call.inputs)
        wanted = requested_format(call)
        for source in answer:
            expect(
                source.content_type == f"audio/{wanted}",
                f"source {source.label!r} has content-type {source.content_type!r}, the request asked for audio/{wanted}",
            )
            length, out_rate = check_audio(base64.b64decode(source.blob), f"source {source.label!r}")
            slack = 2 / out_rate + 1 / rate + 1e-3
            expect(
                abs(length - duration) <= slack,
                f"source {source.label!r} lasts {length:.4f} s, the input {duration:.4f} s: a source must be as long as its input",
            )

    def test_source_count_is_the_models(self, served, examples, expected_sources):
        counts = {call.describe(): len(self.answer(served, call).json()) for call in examples}
        wanted = expected_sources if expected_sources is not None else next(iter(counts.values()))
        wrong = {request: count for request, count in counts.items() if count != wanted}
        expect(
            not wrong,
            f"every input must be separated into {wanted} sources"
            f"{' (expected_sources)' if expected_sources is not None else ''}; got {wrong}",
        )


class TextToSpeechTests(TaskTests):
    """Speech as raw audio in the format the Accept header asks for (flac by default), never empty."""

    task_name = "text-to-speech"

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [
            text_call("Hello world."),
            Call({"inputs": "Hello world."}, {"accept": "audio/wav"}),
            Call({"inputs": "Hello world."}, {"accept": "audio/ogg"}),
            text_call("Zoë lives in Köln, not far from the river."),
        ]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return [text_call(text) for text in EDGE_TEXTS.values() if len(text) < 1000] + [text_call("word " * 200)]

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [text_call(text) for text in ("Hello world.", "Zoë lives in Köln.", "The cat sat on the mat.")]

    def check_answer(self, call: Call, answer: Reply) -> None:
        wanted = requested_format(call)
        expect(
            answer.content_type.split(";")[0] == f"audio/{wanted}",
            f"the speech has content-type {answer.content_type!r}, the request asked for audio/{wanted}",
        )
        check_audio(answer.content, "the speech")


def image_call(width: int, height: int, mode: str = "RGB", image_format: str = "PNG", colour=(30, 160, 90)) -> Call:
    return Call(render_image(width, height, mode, image_format, colour), {"content-type": f"image/{image_format.lower()}"})


def image_examples() -> list[Call]:
    """Raw images in every format and mode clients send."""
    untyped = Call(render_image(50, 30, "RGB", "JPEG"))  # raw bytes with no content type, as curl --data-binary sends them
    return [image_call(64, 64), image_call(200, 100, "RGB", "JPEG"), image_call(32, 48, "RGBA", "WEBP"), image_call(40, 40, "L", "PNG"), untyped]


def broken_images() -> list[Call]:
    png = render_image(64, 64)
    return [
        Call(b"", {"content-type": "image/png"}),
        Call(b"not an image", {"content-type": "image/png"}),
        Call(png[: len(png) // 2], {"content-type": "image/png"}),
    ]


def thresholded_edge_cases() -> list[Call]:
    """Detection and segmentation at the extremes: a one-pixel image, a thin one, a threshold out of range."""
    return [
        media_json_call(render_image(1, 1), threshold=0.0),
        media_json_call(render_image(2000, 3), threshold=0.0),
        media_json_call(render_image(64, 64), threshold=1.5),
    ]


class AudioClassificationTests(LabelledTopKTests):
    """Labels once each for audio in every container, rate and channel count: scores in [0, 1], highest
    first, at most top_k, among the model's labels."""

    task_name = "audio-classification"

    @pytest.fixture
    def examples(self) -> list[Call]:
        clip = encode(tone(0.6, 16000), 16000, "FLAC")
        return [
            *audio_examples(),
            media_json_call(clip, top_k=1),
            media_json_call(clip, top_k=2, function_to_apply="sigmoid"),
            media_json_call(clip, function_to_apply="none"),
        ]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return audio_edge_cases()

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [Call(encode(tone(0.8, 16000, pitch=pitch), 16000, "WAV"), {"content-type": "audio/wav"}) for pitch in (220.0, 440.0, 880.0, 1760.0)]

    def check_answer(self, call: Call, answer: Any) -> None:
        classified(answer, {"top_k": 5, **call.parameters})  # 5: the pipeline's default

    def answer_labels(self, call: Call, answer: Any) -> Iterable[str]:
        return [entry.label for entry in answer]

    def scores_of(self, call: Call, answer: Any) -> list[float]:
        return [entry.score for entry in answer]

    @pytest.fixture
    def top_k_request(self) -> Callable[[int], Call]:
        clip = encode(tone(0.6, 16000), 16000, "FLAC")
        return lambda top_k: media_json_call(clip, top_k=top_k)


class ZeroShotImageClassificationTests(CandidateTests):
    """An image scored against labels chosen at request time: exactly those labels, once each, scores in
    [0, 1], highest first, adding up to 1 (set ``scores_sum_to_one = False`` for a model that scores
    each label alone, such as SigLIP)."""

    task_name = "zero-shot-image-classification"
    scores_sum_to_one: ClassVar[bool] = True

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [
            media_json_call(render_image(64, 64), candidate_labels=["a cat", "a dog", "an aeroplane"]),
            media_json_call(render_image(200, 100, "RGB", "JPEG"), candidate_labels=["red", "green", "blue", "a plane in the sky"]),
            media_json_call(render_image(32, 48, "RGBA", "WEBP"), candidate_labels=["only one label"]),
            media_json_call(render_image(40, 40, "L", "PNG"), candidate_labels=["Zoë's photo of 東京", "a dog 🐕"], hypothesis_template="a picture of {}"),
            media_json_call(render_image(30, 30, "P", "PNG"), candidate_labels=[f"label {n}" for n in range(20)]),
        ]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        png = render_image(64, 64)
        return [
            Call(png, {"content-type": "image/png"}),  # no labels: they need the JSON form
            media_json_call(png, candidate_labels=[]),
            media_json_call(png, candidate_labels=["cat", "cat"]),
            media_json_call(png, candidate_labels=["cat"], hypothesis_template="no placeholder"),
            media_json_call(b"not an image", candidate_labels=["cat"]),
            media_json_call(render_image(1, 1), candidate_labels=["cat", "dog"]),
            media_json_call(render_image(2000, 3), candidate_labels=["cat", "dog"]),
            media_json_call(png, candidate_labels=["x" * 5000, "dog"]),
        ]

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        labels = ["red", "green", "blue"]
        return [media_json_call(render_image(48, 48, colour=colour), candidate_labels=labels) for colour in ((200, 30, 30), (30, 200, 30), (30, 30, 200), (90, 90, 90))]

    def check_answer(self, call: Call, answer: Any) -> None:
        exactly_the_candidates(call, answer, self.scores_sum_to_one)

    def candidates_call(self) -> Call:
        return media_json_call(render_image(64, 64), candidate_labels=["a cat", "a dog", "an aeroplane", "red", "green"])

    def scores_sum_to_one_for(self, call: Call) -> bool:
        return self.scores_sum_to_one


def exactly_the_candidates(call: Call, answer: Any, scores_sum_to_one: bool) -> None:
    """Zero-shot scores: the candidate labels once each, best first, adding up to 1 where they should."""
    candidates = call.parameters["candidate_labels"]
    labels = [entry.label for entry in answer]
    expect(sorted(labels) == sorted(candidates), f"the answer must name exactly the candidate labels {candidates}, once each; got {labels}")
    ranked_labels(answer, None)
    if scores_sum_to_one:
        total = sum(entry.score for entry in answer)
        expect(abs(total - 1) <= 1e-3, f"the scores of the candidate labels must sum to 1, got {total}")


class ZeroShotAudioClassificationTests(CandidateTests):
    """A clip of audio scored against labels chosen at request time, in every container, rate and channel
    count: exactly those labels, once each, scores in [0, 1], highest first, adding up to 1 (set
    ``scores_sum_to_one = False`` for a model that scores each label alone)."""

    task_name = "zero-shot-audio-classification"
    scores_sum_to_one: ClassVar[bool] = True

    @pytest.fixture
    def examples(self) -> list[Call]:
        labels = ["a dog barking", "music", "rain"]
        return [
            media_json_call(encode(tone(1.0, 16000), 16000, "WAV"), candidate_labels=labels),
            media_json_call(encode(tone(0.7, 44100, 2), 44100, "FLAC"), candidate_labels=["only one label"]),
            media_json_call(encode(tone(1.3, 22050), 22050, "OGG"), candidate_labels=["Zoë singing in 東京", "a car 🚗"], hypothesis_template="the sound of {}"),
            media_json_call(encode(tone(0.5, 8000), 8000, "MP3"), candidate_labels=[f"label {n}" for n in range(20)]),
            media_json_call(encode(tone(12.0, 16000), 16000, "FLAC"), candidate_labels=labels),
        ]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        wav = encode(tone(0.5, 16000), 16000, "WAV")
        return [
            *(Call(call.body, call.headers) for call in audio_edge_cases() if not call.is_json),  # raw audio: no labels
            media_json_call(wav, candidate_labels=[]),
            media_json_call(wav, candidate_labels=["dog", "dog"]),
            media_json_call(wav, candidate_labels=["dog"], hypothesis_template="no placeholder"),
            media_json_call(b"not audio", candidate_labels=["dog"]),
            media_json_call(encode(np.zeros(1, dtype=np.float32), 16000, "WAV"), candidate_labels=["dog", "silence"]),
            media_json_call(wav, candidate_labels=["x" * 5000, "dog"]),
        ]

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [media_json_call(encode(tone(0.8, 16000, pitch=pitch), 16000, "WAV"), candidate_labels=["low", "high"]) for pitch in (220.0, 440.0, 880.0, 1760.0)]

    def check_answer(self, call: Call, answer: Any) -> None:
        exactly_the_candidates(call, answer, self.scores_sum_to_one)

    def candidates_call(self) -> Call:
        return media_json_call(encode(tone(1.0, 16000), 16000, "WAV"), candidate_labels=["a dog barking", "music", "rain", "a bell"])

    def scores_sum_to_one_for(self, call: Call) -> bool:
        return self.scores_sum_to_one


class ObjectDetectionTests(ScoredTests, LabelledTests, BoxGeometryTests):
    """Labelled boxes in the pixels of the image as sent: inside it, ``xmin <= xmax`` and ``ymin <= ymax``,
    scores in [0, 1] above ``threshold``, best first, labels among the model's."""

    task_name = "object-detection"

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [
            *image_examples(),
            media_json_call(render_image(120, 80), threshold=0.0),
            media_json_call(render_image(50, 200, "RGB", "JPEG"), threshold=0.1),
            media_json_call(render_image(64, 64), threshold=1.0),
        ]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return [
            *broken_images(),
            *thresholded_edge_cases(),
        ]

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [media_json_call(render_image(48 + 8 * n, 48, colour=colour), threshold=0.0) for n, colour in enumerate(((200, 30, 30), (30, 200, 30), (30, 30, 200), (90, 90, 90)))]

    def check_answer(self, call: Call, answer: Any) -> None:
        width, height = image_size(call)
        threshold = call.parameters.get("threshold", 0.5)
        for index, found in enumerate(answer):
            box = found.box
            expect(
                0 <= box.xmin <= box.xmax <= width and 0 <= box.ymin <= box.ymax <= height,
                f"object {index}'s box {msgspec.structs.asdict(box)} must lie inside the {width}x{height} image, corners in order",
            )
            expect(found.score >= threshold - 1e-6, f"threshold={threshold} keeps only objects scored above it, got {found.score} (object {index})")
        scores_are_probabilities(answer)
        sorted_by_score(answer)

    def answer_labels(self, call: Call, answer: Any) -> Iterable[str]:
        return [found.label for found in answer]

    def scores_of(self, call: Call, answer: Any) -> list[float]:
        return [found.score for found in answer]


class ImageSegmentationTests(ScoredTests, LabelledTests, MaskGeometryTests):
    """Labelled masks: each a PNG the size of the image as sent, greyscale with only 0 and 255, labels
    among the model's; scores (where the model gives them) in [0, 1], above ``threshold``, best first."""

    task_name = "image-segmentation"

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [
            *image_examples(),
            media_json_call(render_image(120, 80), threshold=0.0),
            media_json_call(render_image(50, 90, "RGB", "JPEG"), threshold=0.5, mask_threshold=0.2, overlap_mask_area_threshold=0.1),
            media_json_call(render_image(64, 64), threshold=1.0),
            *(media_json_call(render_image(70, 40), subtask=subtask, threshold=0.0) for subtask in ("panoptic", "instance", "semantic")),
        ]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return [
            *broken_images(),
            *thresholded_edge_cases(),
            media_json_call(render_image(64, 64), subtask="everything"),
            media_json_call(render_image(64, 64), mask_threshold=-0.1),
        ]

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [media_json_call(render_image(48, 48, colour=colour), threshold=0.0) for colour in ((200, 30, 30), (30, 200, 30), (30, 30, 200), (90, 90, 90))]

    def check_answer(self, call: Call, answer: Any) -> None:
        from PIL import Image

        size = image_size(call)
        threshold = call.parameters.get("threshold", 0.9)
        for index, segment in enumerate(answer):
            try:
                with Image.open(io.BytesIO(segment.mask)) as mask:
                    mask.load()
            except Exception as error:
                raise ContractViolation(f"segment {index}'s mask is not an image: {error}") from None
            expect(mask.format == "PNG", f"segment {index}'s mask must be a PNG, got {mask.format}")
            expect(mask.size == size, f"segment {index}'s mask is {mask.size[0]}x{mask.size[1]}: it must be the size of the {size[0]}x{size[1]} image as sent")
            values = set(np.unique(np.asarray(mask.convert("L"))).tolist()) if mask.mode in ("L", "1", "P") else None
            expect(values is not None and values <= {0, 255}, f"segment {index}'s mask must be black and white (a greyscale PNG of 0 and 255), got mode {mask.mode} with values {sorted(values or [])[:8]}")
            if segment.score is not None:
                expect(segment.score >= threshold - 1e-6, f"threshold={threshold} keeps only segments scored above it, got {segment.score} (segment {index})")
        scored = [segment for segment in answer if segment.score is not None]
        expect(len(scored) in (0, len(answer)), "either every segment is scored or none is")
        scores_are_probabilities(scored)
        sorted_by_score(scored)

    def answer_labels(self, call: Call, answer: Any) -> Iterable[str]:
        return [segment.label for segment in answer]

    def scores_of(self, call: Call, answer: Any) -> list[float]:
        return [segment.score for segment in answer if segment.score is not None]


class ImageToTextTests(GeneratedTextTests):
    """A caption for images of any size, mode and format: a list of one ``{generated_text}`` (one object for
    ``@huggingface/inference``, which parses no other shape); greedy captioning honours ``max_new_tokens``."""

    task_name = "image-to-text"
    text_field = "generated_text"
    limits = {"max_new_tokens": (1, 4, 32)}

    def limited(self, name: str, value: int) -> Call:
        return media_json_call(render_image(64, 48), **{name: value}, generation_parameters={"do_sample": False, "num_beams": 1})

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [
            *image_examples(),
            media_json_call(render_image(64, 64), max_new_tokens=5),
            media_json_call(render_image(80, 40, "RGB", "JPEG"), generation_parameters={"max_new_tokens": 3, "do_sample": False}),
        ]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return [
            *broken_images(),
            media_json_call(render_image(1, 1)),
            media_json_call(render_image(2000, 3), max_new_tokens=2),
            media_json_call(render_image(64, 64), max_new_tokens=2, generation_parameters={"max_new_tokens": 3}),
            media_json_call(render_image(64, 64), generation_parameters={"temperature": 1e-30, "do_sample": True}),
            media_json_call(render_image(48, 48), generation_parameters={"do_sample": True, "top_k": 5, "max_new_tokens": 4}),  # sampled: no answer to repeat
        ]

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [media_json_call(render_image(48, 48, colour=colour), max_new_tokens=6) for colour in ((200, 30, 30), (30, 200, 30), (30, 30, 200), (90, 90, 90))]

    def check_answer(self, call: Call, answer: Any) -> None:
        if call.headers.get("user-agent", "").startswith("@huggingface/inference"):
            expect(not isinstance(answer, list), "@huggingface/inference parses only one {\"generated_text\": ...} object for image-to-text, got a list")
        else:
            expect(isinstance(answer, list) and len(answer) == 1, "the answer must be a list of one {\"generated_text\": ...} (the Python client parses no other shape)")

    def test_the_javascript_client_gets_one_object(self, served):
        self.answer(served, Call(render_image(40, 40), {"content-type": "image/png", "user-agent": "@huggingface/inference/4.13.30"}))


def visual_question(image: bytes, asked: str, **parameters: Any) -> Call:
    """The spec's and ``@huggingface/inference``'s form: ``{"inputs": {"image", "question"}}``."""
    body: dict[str, Any] = {"inputs": {"image": base64.b64encode(image).decode(), "question": asked}}
    if parameters:
        body["parameters"] = parameters
    return Call(body, carries_media=True)


def python_client_visual_question(image: bytes, asked: str, **parameters: Any) -> Call:
    """The Python client's form: the image as ``inputs`` and again as ``image``, the question beside them."""
    encoded = base64.b64encode(image).decode()
    return Call({"inputs": encoded, "parameters": parameters, "question": asked, "image": encoded}, carries_media=True)


class VisualQuestionAnsweringTests(LabelledTopKTests):
    """Answers to a question about an image, in both clients' request forms: each answer once, scores in
    [0, 1], best first, at least one and at most ``top_k``, answers among the model's (for classifiers)."""

    task_name = "visual-question-answering"
    labels_required = False  # a generative model (BLIP) answers with any text; a classifier (ViLT) with its labels

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [
            visual_question(render_image(64, 64), "What colour is it?"),
            visual_question(render_image(200, 100, "RGB", "JPEG"), "How many squares are there?", top_k=3),
            python_client_visual_question(render_image(32, 48, "RGBA", "WEBP"), "Is there a cat?", top_k=2),
            python_client_visual_question(render_image(40, 40, "L", "PNG"), "Where is Zoë's 東京 photo?"),
            visual_question(render_image(30, 30, "P", "PNG"), "What is it?", top_k=50),
        ]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        png = render_image(64, 64)
        return [
            Call(png, {"content-type": "image/png"}),  # no question
            visual_question(png, ""),
            visual_question(b"not an image", "What is it?"),
            visual_question(render_image(1, 1), "What is it?"),
            visual_question(render_image(2000, 3), "What is it?"),
            visual_question(png, "why " * 500),
            visual_question(png, "What?", top_k=0),
            Call({"inputs": {"image": base64.b64encode(png).decode(), "question": "What?"}, "question": "What?"}, carries_media=True),
            *(visual_question(png, text) for text in EDGE_TEXTS.values() if text and len(text) < 2000),
        ]

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [visual_question(render_image(48, 48, colour=colour), asked, top_k=3) for colour, asked in (((200, 30, 30), "What colour is it?"), ((30, 200, 30), "Is it green?"), ((30, 30, 200), "How many squares?"))]

    def check_answer(self, call: Call, answer: Any) -> None:
        expect(len(answer) >= 1, "visual question answering must answer at least once")
        texts = [entry.answer for entry in answer]
        expect(len(set(texts)) == len(texts), f"each answer once, got {texts}")
        scores_are_probabilities(answer)
        sorted_by_score(answer)
        at_most(answer, call.parameters.get("top_k", 1), "top_k")

    def answer_labels(self, call: Call, answer: Any) -> Iterable[str]:
        return [entry.answer for entry in answer]

    def scores_of(self, call: Call, answer: Any) -> list[float]:
        return [entry.score for entry in answer]

    def entry_key(self, entry: Any) -> Any:
        return entry.answer

    def answers_once(self, served) -> str | None:
        if served.labels is None:
            return "a model with no labels generates its answer (BLIP): one answer a question, no ranking to check"
        return None

    @pytest.fixture
    def top_k_request(self) -> Callable[[int], Call]:
        return lambda top_k: visual_question(render_image(64, 64), "What colour is it?", top_k=top_k)


INVOICE = [
    ("Invoice", (60, 40, 200, 70)), ("number:", (210, 40, 330, 70)), ("1234", (340, 40, 420, 70)),
    ("Date:", (60, 100, 150, 130)), ("2024-05-01", (160, 100, 330, 130)),
    ("Total", (60, 160, 150, 190)), ("due:", (160, 160, 230, 190)), ("$99.50", (240, 160, 340, 190)),
    ("Zoë", (60, 220, 120, 250)), ("Köln", (130, 220, 200, 250)), ("東京", (210, 220, 270, 250)),
]
"""An invoice's words and their boxes, in thousandths of the page."""


def document_question(asked: str, word_boxes: list | None = INVOICE, image: bytes | None = None, **parameters: Any) -> Call:
    """``{"inputs": {"image", "question"}}`` with the words as ``word_boxes`` (JSON: ``[word, [x0, y0, x1, y1]]``)."""
    if word_boxes is not None:
        parameters["word_boxes"] = [[word, list(box)] for word, box in word_boxes]
    body: dict[str, Any] = {"inputs": {"image": base64.b64encode(image or render_image(200, 260, colour=(250, 250, 250))).decode(), "question": asked}}
    if parameters:
        body["parameters"] = parameters
    return Call(body, carries_media=True)


class DocumentQuestionAnsweringTests(TopKTests):
    """Answers as word spans: ``start`` and ``end`` (inclusive) index the document's words (those sent as
    ``word_boxes``) and ``answer`` joins them with spaces; scores in [0, 1], best first, at most ``top_k``.
    Without ``word_boxes`` a server reads the words with OCR, or answers a 400 naming ``word_boxes``."""

    task_name = "document-question-answering"

    @pytest.fixture
    def examples(self) -> list[Call]:
        many = [(f"word{n}", (10 * (n % 90), 10 * (n // 90), 10 * (n % 90) + 9, 10 * (n // 90) + 9)) for n in range(200)]
        return [
            document_question("What is the invoice number?"),
            document_question("What is the total?", top_k=3),
            document_question("When is it dated?", max_answer_len=1, handle_impossible_answer=True),
            document_question("Who?", top_k=50),
            document_question("Where is word 150?", many, doc_stride=32, max_seq_len=128, top_k=2),
            document_question("What?", [("alone", (0, 0, 1000, 1000))]),
        ]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return [
            document_question("What is the total?", word_boxes=None),  # OCR, where the server has it
            Call(render_image(64, 64), {"content-type": "image/png"}),
            document_question(""),
            document_question("What?", []),
            document_question("What?", [("far", (0, 0, 1001, 5))]),
            document_question("What?", [("", (0, 0, 5, 5))]),
            document_question("What?", [("upside", (0, 10, 5, 0))]),
            document_question("What?", image=b"not an image"),
            document_question("why " * 600),
            document_question("What?", doc_stride=500, max_seq_len=16),
            document_question("What?", max_seq_len=2),
            *(document_question(text) for text in EDGE_TEXTS.values() if text and len(text) < 2000),
        ]

    @pytest.fixture
    def valid_requests(self) -> st.SearchStrategy[Call]:
        # Words with their boxes: without them a server with no OCR engine rightly answers a 400.
        corner = st.integers(0, 1000)
        box = st.tuples(corner, corner, corner, corner).map(lambda c: (min(c[0], c[2]), min(c[1], c[3]), max(c[0], c[2]), max(c[1], c[3])))
        word = st.one_of(st.sampled_from([word for word, _ in INVOICE]), st.text(min_size=1, max_size=12))
        return st.builds(
            lambda asked, boxes, top_k, impossible: document_question(asked, boxes, top_k=top_k, handle_impossible_answer=impossible),
            st.one_of(st.sampled_from(["What is the total?", "Who?", "When is it due?"]), st.text(min_size=1, max_size=60)),
            st.lists(st.tuples(word, box), min_size=1, max_size=40), st.integers(1, 5), st.booleans(),
        )

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [document_question(asked, top_k=2) for asked in ("What is the invoice number?", "What is the total?", "When?")]

    def check_answer(self, call: Call, answer: Any) -> None:
        words = [word for word, _ in call.parameters.get("word_boxes") or []]
        expect(len(answer) >= 1 or not words, "document question answering must answer at least once from the words sent")
        for index, entry in enumerate(answer):
            if not words or (entry.answer == "" and call.parameters.get("handle_impossible_answer")):
                continue
            expect(0 <= entry.start <= entry.end < len(words), f"answer {index} spans words {entry.start}..{entry.end}: they must index the {len(words)} words (end inclusive)")
            spanned = " ".join(words[entry.start : entry.end + 1])
            expect(entry.answer == spanned, f"answer {index} must be the words {entry.start}..{entry.end} joined by spaces, {spanned!r}; got {entry.answer!r}")
        scores_are_probabilities(answer)
        sorted_by_score(answer)
        at_most(answer, call.parameters.get("top_k", 1), "top_k")

    def scores_of(self, call: Call, answer: Any) -> list[float]:
        return [entry.score for entry in answer]

    def entry_key(self, entry: Any) -> Any:
        return (entry.start, entry.end)

    @pytest.fixture
    def top_k_request(self) -> Callable[[int], Call]:
        return lambda top_k: document_question("What is the total?", top_k=top_k)


class DepthEstimationTests(DepthGeometryTests):
    """The depth at every pixel: ``predicted_depth`` one row per pixel row of the image as sent, each as long as
    the image is wide, finite numbers; ``depth`` a greyscale PNG of the same size."""

    task_name = "depth-estimation"

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [*image_examples(), media_json_call(render_image(70, 30, "RGB", "JPEG")), image_call(30, 30, "P", "PNG")]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return [*broken_images(), media_json_call(render_image(1, 1)), media_json_call(render_image(2000, 3)), media_json_call(render_image(3, 700))]

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [media_json_call(render_image(48, 40, colour=colour)) for colour in ((200, 30, 30), (30, 200, 30), (30, 30, 200), (90, 90, 90))]

    def check_answer(self, call: Call, answer: Any) -> None:
        from PIL import Image

        width, height = image_size(call)
        rows = answer.predicted_depth
        expect(len(rows) == height and all(len(row) == width for row in rows),
               f"predicted_depth must hold {height} rows of {width} (the image as sent), got {len(rows)} rows of {sorted({len(row) for row in rows})[:3]}")
        finite([value for row in rows for value in row], "predicted_depth")
        try:
            with Image.open(io.BytesIO(answer.depth)) as depth:
                depth.load()
        except Exception as error:
            raise ContractViolation(f"depth is not an image: {error}") from None
        expect(depth.format == "PNG" and depth.mode == "L", f"depth must be a greyscale PNG, got {depth.format} in mode {depth.mode}")
        expect(depth.size == (width, height), f"depth is {depth.size[0]}x{depth.size[1]}: it must be the size of the {width}x{height} image as sent")


IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}


def opened_image(content: bytes):
    """The bytes as a loaded PIL image (raises if no decoder reads them)."""
    from PIL import Image

    image = Image.open(io.BytesIO(content))
    image.load()
    return image


def image_answer(call: Call, answer: Reply):
    """The answer's image, in the content type the request's Accept asks for (PNG by default) and of that format."""
    wanted = next((kind for part in call.headers.get("accept", "").split(",") if (kind := part.strip()) in IMAGE_TYPES), "image/png")
    expect(answer.content_type.split(";")[0] == wanted, f"the image has content-type {answer.content_type!r}, the request asked for {wanted}")
    try:
        made = opened_image(answer.content)
    except Exception as error:
        raise ContractViolation(f"the answer is not an image: {error}") from None
    expect(made.format == IMAGE_TYPES[wanted], f"the answer is {made.format}, its content-type says {wanted}")
    return made


class ImageToImageTests(TaskTests):
    """A new image as raw bytes in the format the Accept header asks for (PNG by default): ``target_size``
    when the request gives one, else the input's size times one whole factor for both sides (set
    ``expected_scale`` to check the model's own)."""

    task_name = "image-to-image"

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [
            *image_examples(),
            image_call(30, 30, "P", "PNG"),
            Call(render_image(20, 12), {"content-type": "image/png", "accept": "image/jpeg"}),
            Call(render_image(20, 12), {"content-type": "image/png", "accept": "image/webp"}),
            media_json_call(render_image(25, 15), target_size={"width": 40, "height": 50}),
        ]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return [
            *broken_images(),
            media_json_call(render_image(1, 1)),
            media_json_call(render_image(300, 2)),
            media_json_call(render_image(16, 16), prompt="make it a painting"),
            media_json_call(render_image(16, 16), target_size={"width": 0, "height": 5}),
            media_json_call(render_image(16, 16), num_inference_steps=1),  # diffusers keeps int(1 * strength) = 0 steps
        ]

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [media_json_call(render_image(24, 16, colour=colour)) for colour in ((200, 30, 30), (30, 200, 30), (30, 30, 200))]

    def check_answer(self, call: Call, answer: Reply) -> None:
        made = image_answer(call, answer)
        width, height = image_size(call)
        target = call.parameters.get("target_size")
        if target:
            expect(made.size == (target["width"], target["height"]), f"target_size asks for {target['width']}x{target['height']}, got {made.size[0]}x{made.size[1]}")
            return
        scale = made.size[0] // width
        expect(scale >= 1 and made.size == (width * scale, height * scale),
               f"the {made.size[0]}x{made.size[1]} answer must be the {width}x{height} input times one whole factor (no padding left in it)")

    def test_the_scale_is_the_models(self, served, examples, expected_scale):
        from PIL import Image

        scales = {}
        for call in examples:
            if not call.parameters.get("target_size"):
                with Image.open(io.BytesIO(self.answer(served, call).content)) as made:
                    scales[call.describe()] = made.size[0] / image_size(call)[0]
        wanted = expected_scale if expected_scale is not None else next(iter(scales.values()))
        wrong = {request: scale for request, scale in scales.items() if scale != wanted}
        expect(not wrong, f"every image must be scaled by {wanted}{' (expected_scale)' if expected_scale is not None else ''}; got {wrong}")


def image_size(call: Call) -> tuple[int, int]:
    """The width and height of the image a call sends (raw, or base64 in JSON)."""
    from PIL import Image

    data = base64.b64decode(call.body["inputs"]) if call.is_json else call.body
    with Image.open(io.BytesIO(data)) as image:
        return image.size


class ImageClassificationTests(LabelledTopKTests):
    """Labels once each for images of any size, mode and format: scores in [0, 1], highest first, at most top_k."""

    task_name = "image-classification"

    @pytest.fixture
    def examples(self) -> list[Call]:
        return [*image_examples(), image_call(30, 30, "P", "PNG"), media_json_call(render_image(64, 64), top_k=1)]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        return [
            *broken_images(),
            image_call(1, 1),
            image_call(2000, 3),
            image_call(3, 2000, "L"),
            Call(encode(tone(0.2, 8000), 8000, "WAV"), {"content-type": "audio/wav"}),
        ]

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [image_call(48, 48, colour=colour) for colour in ((200, 30, 30), (30, 200, 30), (30, 30, 200), (90, 90, 90))]

    def check_answer(self, call: Call, answer: Any) -> None:
        classified(answer, call.parameters)

    def answer_labels(self, call: Call, answer: Any) -> Iterable[str]:
        return [entry.label for entry in answer]

    def scores_of(self, call: Call, answer: Any) -> list[float]:
        return [entry.score for entry in answer]

    @pytest.fixture
    def top_k_request(self) -> Callable[[int], Call]:
        return lambda top_k: media_json_call(render_image(64, 64), top_k=top_k)
