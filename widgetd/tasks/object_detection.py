"""object-detection: labelled boxes around the objects of an image, in the image's own pixels."""

from __future__ import annotations

from typing import Annotated

import msgspec

from widgetd.tasks._common import MediaBytes
from widgetd.tasks._task import Answer, Strict, Task


class ObjectDetectionParameters(Strict):
    threshold: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.5
    """Only objects scored above it (the transformers pipeline's default)."""


class ObjectDetectionInput(Strict):
    inputs: MediaBytes
    """JPEG, PNG or WebP bytes; base64 in JSON."""
    parameters: ObjectDetectionParameters = msgspec.field(default_factory=ObjectDetectionParameters)


class BoundingBox(Answer):
    """Pixels of the image as sent, from its top left corner; inside the image."""

    xmin: int
    ymin: int
    xmax: int
    ymax: int


class DetectedObject(Answer):
    label: str
    score: float
    box: BoundingBox


ObjectDetectionOutput = list[DetectedObject]
"""Best first."""

TASK = Task(
    name="object-detection",
    summary="Labelled boxes around the objects of an image, best first.",
    input=ObjectDetectionInput,
    output=ObjectDetectionOutput,
    raw_body="image",
)

__all__ = ["BoundingBox", "DetectedObject", "ObjectDetectionInput", "ObjectDetectionOutput", "ObjectDetectionParameters", "TASK"]
