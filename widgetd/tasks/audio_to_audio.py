"""audio-to-audio: audio source separation (and other audio transforms) of one recording."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import msgspec

from widgetd.media import AUDIO_FORMATS, Audio, encode_audio
from widgetd.tasks._common import MediaBytes
from widgetd.tasks._task import Answer, ReplyOptions, Strict, Task


class AudioToAudioParameters(Strict):
    pass


class AudioToAudioInput(Strict):
    inputs: MediaBytes
    parameters: AudioToAudioParameters = msgspec.field(default_factory=AudioToAudioParameters)


@dataclass(frozen=True)
class SeparatedSource:
    """One output of the model, as the pipeline returns it."""

    label: str
    audio: Audio


AudioToAudioOutput = list[SeparatedSource]


class AudioToAudioOutputElement(Answer):
    label: str
    blob: str
    content_type: str = msgspec.field(name="content-type")


def to_wire(
    request: AudioToAudioInput, sources: AudioToAudioOutput, reply: ReplyOptions
) -> list[AudioToAudioOutputElement]:
    content_type = AUDIO_FORMATS[reply.audio_format]
    return [
        AudioToAudioOutputElement(
            label=source.label,
            blob=base64.b64encode(encode_audio(source.audio, reply.audio_format)).decode(),
            content_type=content_type,
        )
        for source in sources
    ]


TASK = Task(
    name="audio-to-audio",
    summary="Separated sources (or transformed audio), each a labelled, base64-encoded blob.",
    input=AudioToAudioInput,
    output=AudioToAudioOutput,
    raw_body="audio",
    wire_output=list[AudioToAudioOutputElement],
    to_wire=to_wire,
)

__all__ = [
    "Audio",
    "AudioToAudioInput",
    "AudioToAudioOutput",
    "AudioToAudioOutputElement",
    "AudioToAudioParameters",
    "SeparatedSource",
    "TASK",
]
