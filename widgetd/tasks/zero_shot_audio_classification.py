"""zero-shot-audio-classification: score a clip of audio against labels chosen at request time (CLAP)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from widgetd.tasks._common import ClassificationOutput, MediaBytes, NonEmptyText
from widgetd.tasks._task import Strict, Task


class ZeroShotAudioClassificationParameters(Strict):
    candidate_labels: Annotated[list[NonEmptyText], msgspec.Meta(min_length=1)]
    """Each label once."""
    hypothesis_template: Annotated[str, msgspec.Meta(pattern=r"^[^{}]*\{\}[^{}]*$")] = "This is a sound of {}."
    """One {} where the label goes, and no other brace (the transformers pipeline's default)."""


class ZeroShotAudioClassificationInput(Strict):
    inputs: MediaBytes
    """WAV, FLAC, OGG or MP3 bytes at any rate, mono or not; base64 in JSON (the labels need the JSON form)."""
    parameters: ZeroShotAudioClassificationParameters


ZeroShotAudioClassificationOutput = list[ClassificationOutput]
"""One entry per candidate label, best first."""

TASK = Task(
    name="zero-shot-audio-classification",
    summary="Scores of a clip of audio against candidate_labels, best first.",
    input=ZeroShotAudioClassificationInput,
    output=ZeroShotAudioClassificationOutput,
    raw_body="audio",
)

__all__ = [
    "ClassificationOutput",
    "TASK",
    "ZeroShotAudioClassificationInput",
    "ZeroShotAudioClassificationOutput",
    "ZeroShotAudioClassificationParameters",
]
