"""image-to-text: a caption for an image."""

from __future__ import annotations

from typing import Any, Optional, Union

import msgspec

from widgetd.tasks._common import GenerationParameters, MediaBytes, PositiveInt
from widgetd.tasks._task import Answer, ReplyOptions, Strict, Task


class ImageToTextParameters(Strict):
    max_new_tokens: Optional[PositiveInt] = None
    """The most tokens to generate (also settable in generation_parameters, not in both)."""
    generation_parameters: Optional[GenerationParameters] = None


class ImageToTextInput(Strict):
    inputs: MediaBytes
    """JPEG, PNG or WebP bytes; base64 in JSON."""
    parameters: ImageToTextParameters = msgspec.field(default_factory=ImageToTextParameters)


class ImageToTextOutput(Answer):
    generated_text: str


JS_CLIENT = "@huggingface/inference"


def to_wire(request: Any, answer: ImageToTextOutput, reply: ReplyOptions) -> Any:
    # The Python client parses a list of one caption; @huggingface/inference refuses anything but one object.
    return answer if reply.user_agent.startswith(JS_CLIENT) else [answer]


TASK = Task(
    name="image-to-text",
    summary="A caption for an image.",
    input=ImageToTextInput,
    output=ImageToTextOutput,
    raw_body="image",
    wire_output=Union[list[ImageToTextOutput], ImageToTextOutput],
    to_wire=to_wire,
)

__all__ = ["GenerationParameters", "ImageToTextInput", "ImageToTextOutput", "ImageToTextParameters", "TASK"]
