"""Audio tasks, automatic-speech-recognition and audio-classification: decoded and resampled by widgetd
(no torchaudio), recognised or classified by transformers."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from widgetd import InvalidInput, ModelSnapshot
from widgetd.media import decode_audio
from widgetd.tasks._common import ClassificationOutput
from widgetd.tasks.audio_classification import AudioClassificationInput
from widgetd.tasks.zero_shot_audio_classification import ZeroShotAudioClassificationInput
from widgetd.tasks.automatic_speech_recognition import (
    AutomaticSpeechRecognitionChunk,
    AutomaticSpeechRecognitionInput,
    AutomaticSpeechRecognitionOutput,
)
from widgetd_transformers.generate_options import generate_kwargs, generation_settings
from widgetd_transformers.loading import CHUNK, by_candidates, grouped, hf_pipeline, in_chunks


class SpeechRecognition:
    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.sample_rate = int(pipe.feature_extractor.sampling_rate)
        self.is_ctc = "ctc" in getattr(pipe, "type", "")
        self.pads_safely = pads_safely(pipe)

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> SpeechRecognition:
        return cls(hf_pipeline("automatic-speech-recognition", snapshot))

    def __call__(self, requests: Sequence[AutomaticSpeechRecognitionInput]) -> list[AutomaticSpeechRecognitionOutput]:
        answers: list[Any] = [None] * len(requests)
        for (timestamps, generation), indexes in grouped(requests, _options).items():
            kwargs: dict[str, Any] = {}
            if timestamps:
                # CTC models time words; sequence-to-sequence models (Whisper) time segments.
                kwargs["return_timestamps"] = "word" if self.is_ctc else True
            if generation and not self.is_ctc:
                kwargs["generate_kwargs"] = generate_kwargs(generation, "parameters.generation_parameters")
            audio = [clip_for(self.sample_rate, requests[index].inputs) for index in indexes]
            results = in_chunks(lambda chunk: self.pipe(chunk, batch_size=len(chunk), **kwargs), audio, size=CHUNK if self.pads_safely else 1)
            for index, result in zip(indexes, results):
                answers[index] = _transcript(result, timestamps)
        return answers


def _options(request: AutomaticSpeechRecognitionInput) -> tuple:
    return request.parameters.return_timestamps, generation_settings(request.parameters.generation_parameters, "parameters.generation_parameters")


def _transcript(result: dict, timestamps: bool) -> AutomaticSpeechRecognitionOutput:
    if not timestamps:
        return AutomaticSpeechRecognitionOutput(result["text"])
    chunks = [
        AutomaticSpeechRecognitionChunk(chunk["text"], (float(chunk["timestamp"][0] or 0.0), float(chunk["timestamp"][1] or 0.0)))
        for chunk in result.get("chunks", [])
    ]
    return AutomaticSpeechRecognitionOutput(result["text"], chunks)


class AudioClassification:
    """The ``audio-classification`` pipeline on clips decoded and resampled to the model's rate."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.sample_rate = int(pipe.feature_extractor.sampling_rate)
        self.pads_safely = pads_safely(pipe)

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> AudioClassification:
        return cls(hf_pipeline("audio-classification", snapshot))

    def __call__(self, requests: Sequence[AudioClassificationInput]) -> list[list[ClassificationOutput]]:
        answers: list[Any] = [None] * len(requests)
        for (top_k, function), indexes in grouped(requests, lambda r: (r.parameters.top_k, r.parameters.function_to_apply)).items():
            kwargs: dict[str, Any] = {"top_k": top_k}
            if function is not None:
                kwargs["function_to_apply"] = function
            audio = [clip_for(self.sample_rate, requests[index].inputs) for index in indexes]
            results = in_chunks(lambda chunk: self.pipe(chunk, batch_size=len(chunk), **kwargs), audio, size=CHUNK if self.pads_safely else 1)
            for index, labels in zip(indexes, results):
                answers[index] = [ClassificationOutput(entry["label"], float(entry["score"])) for entry in labels]
        return answers


class ZeroShotAudioClassification:
    """The ``zero-shot-audio-classification`` pipeline (CLAP) on clips decoded and resampled to the model's
    rate and cut to the longest it reads: CLAP's feature extractor crops a longer clip at random, so the same
    request would get different answers."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.sample_rate = int(pipe.feature_extractor.sampling_rate)
        self.most_samples = int(pipe.feature_extractor.nb_max_samples)

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> ZeroShotAudioClassification:
        return cls(hf_pipeline("zero-shot-audio-classification", snapshot))

    def __call__(self, requests: Sequence[ZeroShotAudioClassificationInput]) -> list[list[ClassificationOutput]]:
        answers: list[Any] = [None] * len(requests)
        for (labels, template), indexes in by_candidates(requests).items():
            self.check_lengths(labels, template)
            clips = [self.clip(requests[index].inputs) for index in indexes]

            def run(chunk: list) -> list:
                return self.pipe(chunk, candidate_labels=list(labels), hypothesis_template=template, batch_size=len(chunk))

            for index, scored in zip(indexes, in_chunks(run, clips)):
                answers[index] = [ClassificationOutput(entry["label"], float(entry["score"])) for entry in scored]
        return answers

    def clip(self, data: bytes) -> np.ndarray:
        return clip_for(self.sample_rate, data)["raw"][: self.most_samples]

    def check_lengths(self, labels: tuple[str, ...], template: str) -> None:
        """The pipeline reads each hypothesis whole: one longer than the text encoder's positions is a 400."""
        most = self.pipe.tokenizer.model_max_length
        for index, ids in enumerate(self.pipe.tokenizer([template.format(label) for label in labels])["input_ids"]):
            if len(ids) > most:
                raise InvalidInput(
                    f"parameters.candidate_labels[{index}]: {len(ids)} tokens in the hypothesis template, more than the {most} this model reads",
                    field=f"parameters.candidate_labels[{index}]",
                )


def pads_safely(pipe: Any) -> bool:
    """Whether clips of different lengths can share a padded batch without changing each other's answers:
    the feature extractor must give the model an attention mask, and the model must not normalise over
    the whole clip (wav2vec2-base's group norm sees the padding, mask or not)."""
    masked = bool(getattr(pipe.feature_extractor, "return_attention_mask", False))
    return masked and getattr(pipe.model.config, "feat_extract_norm", "layer") != "group"


def clip_for(sample_rate: int, data: bytes) -> dict:
    """Audio bytes as the pipelines read them: mono samples at the model's rate. A clip shorter than the
    feature encoder's window (a few ms) gets silence after it."""
    samples = decode_audio(data).mono().resampled(sample_rate).samples
    samples = np.pad(samples, (0, max(0, sample_rate // 10 - samples.shape[0])))
    return {"raw": samples, "sampling_rate": sample_rate}
