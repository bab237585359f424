"""text-to-image: an image made from a text (diffusion), answered as raw image bytes; its steps can be
followed as events (``Accept: text/event-stream``)."""

from __future__ import annotations

from typing import Annotated, Optional

import msgspec

from widgetd.media import Picture
from widgetd.tasks._common import NonEmptyText, PositiveInt
from widgetd.tasks._task import Strict, Task
from widgetd.tasks.image_to_image import TargetSize

Side = Annotated[int, msgspec.Meta(ge=8, le=8192)]


class TextToImageParameters(Strict):
    negative_prompt: Optional[str] = None
    """What the image should not show."""
    height: Optional[Side] = None
    """In pixels; null: the model's own size. A model may need a multiple of 8 (or 16): a 400 says which."""
    width: Optional[Side] = None
    target_size: Optional[TargetSize] = None
    """The older spec's form of ``width`` and ``height``; give one form."""
    num_inference_steps: Optional[PositiveInt] = None
    """Denoising steps: more is slower and usually finer; null: the model's default. At most
    ``--max-inference-steps``."""
    guidance_scale: Optional[Annotated[float, msgspec.Meta(ge=0.0, le=100.0)]] = None
    """How closely to follow the prompt (classifier-free guidance); null: the model's default."""
    scheduler: Optional[NonEmptyText] = None
    """A scheduler class the model's pipeline can use (e.g. ``EulerDiscreteScheduler``); null: its own."""
    seed: Optional[Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]] = None
    """The same seed gives the same image, whatever runs beside it; null: seed 0 (see spec/README.md)."""

    def __post_init__(self) -> None:
        # msgspec reports a ValueError here as a 400 at `parameters`.
        if self.target_size is not None and (self.width is not None or self.height is not None):
            raise ValueError("give the size as width and height, or as target_size, not both")

    @property
    def size(self) -> tuple[Optional[int], Optional[int]]:
        """(width, height) asked for; None where the model's own."""
        if self.target_size is not None:
            return self.target_size.width, self.target_size.height
        return self.width, self.height


class TextToImageInput(Strict):
    inputs: NonEmptyText
    """The prompt."""
    parameters: TextToImageParameters = msgspec.field(default_factory=TextToImageParameters)


TextToImageOutput = Picture
"""Encoded in the format the Accept header asks for (PNG by default; JPEG and WebP too)."""

TASK = Task(
    name="text-to-image",
    summary="An image made from a text, as raw image bytes in the format the Accept header names; its steps as events on request.",
    input=TextToImageInput,
    output=TextToImageOutput,
    raw_body="text",
    response_media="image",
    wire_output=bytes,
    progress=True,
)

__all__ = ["Picture", "TASK", "TextToImageInput", "TextToImageOutput", "TextToImageParameters"]
