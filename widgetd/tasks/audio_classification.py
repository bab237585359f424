"""audio-classification: labels with scores for a clip of audio."""

from __future__ import annotations

from typing import Optional

import msgspec

from widgetd.tasks._common import ClassificationOutput, ClassificationOutputTransform, MediaBytes, PositiveInt
from widgetd.tasks._task import Strict, Task


class AudioClassificationParameters(Strict):
    function_to_apply: Optional[ClassificationOutputTransform] = None
    top_k: PositiveInt = 5


class AudioClassificationInput(Strict):
    inputs: MediaBytes
    """WAV, FLAC, OGG or MP3 bytes at any rate, mono or not; base64 in JSON."""
    parameters: AudioClassificationParameters = msgspec.field(default_factory=AudioClassificationParameters)


AudioClassificationOutput = list[ClassificationOutput]
"""Best first, at most top_k."""

TASK = Task(
    name="audio-classification",
    summary="Labels with scores for a clip of audio, best first.",
    input=AudioClassificationInput,
    output=AudioClassificationOutput,
    raw_body="audio",
)

__all__ = [
    "AudioClassificationInput",
    "AudioClassificationOutput",
    "AudioClassificationParameters",
    "ClassificationOutput",
    "TASK",
]
