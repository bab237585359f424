"""depth-estimation: how far from the camera each pixel of an image is."""

from __future__ import annotations

import msgspec

from widgetd.tasks._common import MediaBytes
from widgetd.tasks._task import Answer, Strict, Task


class DepthEstimationParameters(Strict):
    """None yet: the transformers pipeline takes none."""


class DepthEstimationInput(Strict):
    inputs: MediaBytes
    """JPEG, PNG or WebP bytes; base64 in JSON."""
    parameters: DepthEstimationParameters = msgspec.field(default_factory=DepthEstimationParameters)


class DepthEstimationOutput(Answer):
    depth: bytes
    """A greyscale PNG (base64 in JSON) the size of the image as sent: the depth scaled to 0-255, as the
    pipeline draws it."""
    predicted_depth: list[list[float]]
    """The model's depth at every pixel: one list per row, top to bottom, each as long as the image is wide."""


TASK = Task(
    name="depth-estimation",
    summary="The depth at every pixel of an image, and a greyscale picture of it.",
    input=DepthEstimationInput,
    output=DepthEstimationOutput,
    raw_body="image",
)

__all__ = ["DepthEstimationInput", "DepthEstimationOutput", "DepthEstimationParameters", "TASK"]
