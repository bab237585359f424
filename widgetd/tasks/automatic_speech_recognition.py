"""automatic-speech-recognition: the text spoken in a recording."""

from __future__ import annotations

from typing import Optional

import msgspec

from widgetd.tasks._common import GenerationParameters
from widgetd.tasks._common import MediaBytes
from widgetd.tasks._task import Strict, Task


class AutomaticSpeechRecognitionParameters(Strict):
    return_timestamps: bool = False
    generation_parameters: Optional[GenerationParameters] = None


class AutomaticSpeechRecognitionInput(Strict):
    inputs: MediaBytes
    """wav, flac, ogg or mp3 bytes at any rate, mono or stereo; base64 in JSON."""
    parameters: AutomaticSpeechRecognitionParameters = msgspec.field(
        default_factory=AutomaticSpeechRecognitionParameters
    )


class AutomaticSpeechRecognitionChunk(msgspec.Struct):
    text: str
    timestamp: tuple[float, float]
    """Start and end, in seconds."""


class AutomaticSpeechRecognitionOutput(msgspec.Struct, omit_defaults=True):
    text: str
    chunks: Optional[list[AutomaticSpeechRecognitionChunk]] = None
    """Only with return_timestamps."""


TASK = Task(
    name="automatic-speech-recognition",
    summary="The text spoken in a recording, with timestamped chunks on request.",
    input=AutomaticSpeechRecognitionInput,
    output=AutomaticSpeechRecognitionOutput,
    raw_body="audio",
)

__all__ = [
    "AutomaticSpeechRecognitionChunk",
    "AutomaticSpeechRecognitionInput",
    "AutomaticSpeechRecognitionOutput",
    "AutomaticSpeechRecognitionParameters",
    "GenerationParameters",
    "TASK",
]
