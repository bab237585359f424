"""automatic-speech-recognition: decoded and resampled by widgetd (no torchaudio), recognised by transformers."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from widgetd import ModelSnapshot
from widgetd.media import decode_audio
from widgetd.tasks.automatic_speech_recognition import (
    AutomaticSpeechRecognitionChunk,
    AutomaticSpeechRecognitionInput,
    AutomaticSpeechRecognitionOutput,
)
from widgetd_transformers.generate_options import generate_kwargs, generation_settings
from widgetd_transformers.loading import CHUNK, grouped, hf_pipeline, in_chunks


class SpeechRecognition:
    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.sample_rate = int(pipe.feature_extractor.sampling_rate)
        self.is_ctc = "ctc" in getattr(pipe, "type", "")
        # Without an attention mask (wav2vec2-base and kin), padding a short clip changes its transcript.
        self.pads_safely = bool(getattr(pipe.feature_extractor, "return_attention_mask", False))

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
            audio = [self._samples(requests[index].inputs) for index in indexes]
            results = in_chunks(lambda chunk: self.pipe(chunk, batch_size=len(chunk), **kwargs), audio, size=CHUNK if self.pads_safely else 1)
            for index, result in zip(indexes, results):
                answers[index] = _transcript(result, timestamps)
        return answers

    def _samples(self, data: bytes) -> dict:
        samples = decode_audio(data).mono().resampled(self.sample_rate).samples
        # A clip shorter than the feature encoder's window (a few ms) gets silence after it.
        shortest = self.sample_rate // 10
        samples = np.pad(samples, (0, max(0, shortest - samples.shape[0])))
        return {"raw": samples, "sampling_rate": self.sample_rate}


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
