"""The asteroid backend: one weights file, loaded safely, separating sources request by request."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from widgetd import Backend, ModelSnapshot
from widgetd.cancellation import abandoned
from widgetd.errors import PayloadTooLarge
from widgetd.media import Audio, decode_audio
from widgetd.tasks.audio_to_audio import AudioToAudioInput, SeparatedSource

WEIGHTS = "pytorch_model.bin"
DEFAULT_MAX_SECONDS = 300.0
"""Longest input separated in one pass (WIDGETD_ASTEROID_MAX_SECONDS); longer ones get a 413.
Whole-signal models such as DPRNN normalise over the entire input, so chunking would change the answer."""


def needed_files(repo_files: Sequence[str]) -> list[str]:
    return [name for name in repo_files if name == WEIGHTS]


def load(snapshot: ModelSnapshot) -> SeparationPipeline:
    import torch
    from asteroid.models import BaseModel

    # weights_only: a checkpoint is data, never code to run.
    package = torch.load(snapshot.path / WEIGHTS, map_location="cpu", weights_only=True)
    model = BaseModel.from_pretrained(package)
    max_seconds = float(os.environ.get("WIDGETD_ASTEROID_MAX_SECONDS", DEFAULT_MAX_SECONDS))
    return SeparationPipeline(model.to(snapshot.device).eval(), snapshot.device, max_seconds)


class SeparationPipeline:
    """Each request separately: separation models normalise over the whole signal,
    so padding inputs into one batch would change every shorter request's answer."""

    tasks = ("audio-to-audio",)

    def __init__(self, model: Any, device: str, max_seconds: float = DEFAULT_MAX_SECONDS) -> None:
        self.model = model
        self.device = device
        self.max_seconds = max_seconds
        self.sample_rate = int(model.sample_rate)
        self.min_frames = _shortest_input(model)

    def __call__(self, task: str, requests: Sequence[AudioToAudioInput]) -> list[list[SeparatedSource] | None]:
        # A request given up (timeout, client gone) is skipped: nobody reads its answer.
        return [None if abandoned(request) else self.separate(request.inputs) for request in requests]

    def separate(self, data: bytes) -> list[SeparatedSource]:
        import torch

        audio = decode_audio(data).mono().resampled(self.sample_rate)
        if audio.duration > self.max_seconds:
            raise PayloadTooLarge(
                f"inputs: the audio lasts {audio.duration:.1f} s; this server separates at most "
                f"{self.max_seconds:g} s (WIDGETD_ASTEROID_MAX_SECONDS)",
                field="inputs",
            )
        frames = audio.samples.shape[0]
        # Shorter than one encoder window (a few ms): pad with silence, trimmed off again by _fit.
        samples = np.pad(audio.samples, (0, max(0, self.min_frames - frames)))
        with torch.inference_mode():
            mixture = torch.from_numpy(np.ascontiguousarray(samples)).to(self.device)[None]
            sources = self.model(mixture)[0].float().cpu().numpy()
        return [
            SeparatedSource(label=f"label_{index}", audio=Audio(_fit(source, frames), self.sample_rate))
            for index, source in enumerate(sources)
        ]


def _shortest_input(model: Any) -> int:
    """The encoder's window, in samples: the shortest input the model can run on."""
    filterbank = getattr(getattr(model, "encoder", None), "filterbank", None)
    return int(getattr(filterbank, "kernel_size", 0) or 0)


def _fit(source: np.ndarray, frames: int) -> np.ndarray:
    """Exactly ``frames`` long, and scaled down only if it would clip."""
    fitted = np.zeros(frames, dtype=np.float32)
    fitted[: min(frames, source.shape[0])] = source[:frames]
    peak = float(np.max(np.abs(fitted))) if frames else 0.0
    return fitted / peak if peak > 1.0 else fitted


BACKEND = Backend(
    name="asteroid",
    library="asteroid",
    tasks=("audio-to-audio",),
    load=load,
    files=needed_files,
    max_batch_size=8,
)
