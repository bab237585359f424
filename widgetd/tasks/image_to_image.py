"""image-to-image: a new image made from one (super-resolution, restoration), answered as raw image bytes."""

from __future__ import annotations

from typing import Annotated, Optional

import msgspec

from widgetd.media import Picture
from widgetd.tasks._common import MediaBytes, PositiveInt
from widgetd.tasks._task import Strict, Task


class TargetSize(Strict):
    width: Annotated[int, msgspec.Meta(ge=1, le=8192)]
    height: Annotated[int, msgspec.Meta(ge=1, le=8192)]


class ImageToImageParameters(Strict):
    target_size: Optional[TargetSize] = None
    """The answer's size in pixels; null: the model's own (e.g. the input's, upscaled)."""
    prompt: Optional[str] = None
    """For models guided by a text (diffusion); a model that reads none refuses it."""
    negative_prompt: Optional[str] = None
    num_inference_steps: Optional[PositiveInt] = None
    guidance_scale: Optional[float] = None
    seed: Optional[Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]] = None
    """For models that draw noise (diffusion): the same seed gives the same image; null: seed 0."""


class ImageToImageInput(Strict):
    inputs: MediaBytes
    """JPEG, PNG or WebP bytes; base64 in JSON."""
    parameters: ImageToImageParameters = msgspec.field(default_factory=ImageToImageParameters)


ImageToImageOutput = Picture
"""Encoded in the format the Accept header asks for (PNG by default; JPEG and WebP too)."""

TASK = Task(
    name="image-to-image",
    summary="A new image made from one, as raw image bytes in the format the Accept header names.",
    input=ImageToImageInput,
    output=ImageToImageOutput,
    raw_body="image",
    response_media="image",
    wire_output=bytes,
    progress=True,
)

__all__ = ["ImageToImageInput", "ImageToImageOutput", "ImageToImageParameters", "Picture", "TASK", "TargetSize"]
