"""text-to-speech: speech for a text, answered as raw audio bytes (the client returns them as is)."""

from __future__ import annotations

from typing import Optional

import msgspec

from widgetd.media import Audio
from widgetd.tasks._common import GenerationParameters, NonEmptyText
from widgetd.tasks._task import Strict, Task


class TextToSpeechParameters(Strict):
    generation_parameters: Optional[GenerationParameters] = None


class TextToSpeechInput(Strict):
    inputs: NonEmptyText
    parameters: TextToSpeechParameters = msgspec.field(default_factory=TextToSpeechParameters)


TextToSpeechOutput = Audio
"""Encoded in the format the Accept header asks for (flac by default)."""

TASK = Task(
    name="text-to-speech",
    summary="Speech for a text, as raw audio in the format the Accept header names.",
    input=TextToSpeechInput,
    output=TextToSpeechOutput,
    response_media="audio",
    wire_output=bytes,
)

__all__ = [
    "Audio",
    "GenerationParameters",
    "TASK",
    "TextToSpeechInput",
    "TextToSpeechOutput",
    "TextToSpeechParameters",
]
