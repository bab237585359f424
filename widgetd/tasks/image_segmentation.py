"""image-segmentation: labelled masks over an image, each a black-and-white PNG the size of the image as sent."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import msgspec

from widgetd.tasks._common import MediaBytes
from widgetd.tasks._task import Answer, Strict, Task

Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class ImageSegmentationParameters(Strict):
    subtask: Optional[Literal["instance", "panoptic", "semantic"]] = None
    """None: the first the model can do, in that order: panoptic, instance, semantic (the pipeline's order)."""
    threshold: Fraction = 0.9
    """Only segments scored above it (panoptic and instance; the transformers pipeline's default)."""
    mask_threshold: Fraction = 0.5
    """Where a predicted mask's probability makes a pixel part of the segment."""
    overlap_mask_area_threshold: Fraction = 0.5
    """Segments keeping less than this share of their mask after overlaps are resolved are dropped (panoptic)."""


class ImageSegmentationInput(Strict):
    inputs: MediaBytes
    """JPEG, PNG or WebP bytes; base64 in JSON."""
    parameters: ImageSegmentationParameters = msgspec.field(default_factory=ImageSegmentationParameters)


class Segment(Answer, omit_defaults=True):
    """One segment. ``score`` is left out, not null, where the model gives none (semantic segmentation):
    the JS client refuses a null score."""

    label: str
    mask: bytes
    """A PNG (base64 in JSON) the size of the input image, greyscale: 255 inside the segment, 0 outside."""
    score: Optional[float] = None


ImageSegmentationOutput = list[Segment]
"""Best first where segments are scored; in the model's label order where not."""

TASK = Task(
    name="image-segmentation",
    summary="Labelled masks (PNG, the size of the image) over an image, best first.",
    input=ImageSegmentationInput,
    output=ImageSegmentationOutput,
    raw_body="image",
)

__all__ = ["ImageSegmentationInput", "ImageSegmentationOutput", "ImageSegmentationParameters", "Segment", "TASK"]
