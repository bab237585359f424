"""image-classification: labels with scores for an image."""

from __future__ import annotations

from typing import Optional

import msgspec

from widgetd.tasks._common import ClassificationOutput, ClassificationOutputTransform, PositiveInt
from widgetd.tasks._common import MediaBytes
from widgetd.tasks._task import Strict, Task


class ImageClassificationParameters(Strict):
    function_to_apply: Optional[ClassificationOutputTransform] = None
    top_k: PositiveInt = 5


class ImageClassificationInput(Strict):
    inputs: MediaBytes
    """JPEG, PNG or WebP bytes; base64 in JSON."""
    parameters: ImageClassificationParameters = msgspec.field(default_factory=ImageClassificationParameters)


ImageClassificationOutput = list[ClassificationOutput]
"""Best first, at most top_k."""

TASK = Task(
    name="image-classification",
    summary="Labels with scores for an image, best first.",
    input=ImageClassificationInput,
    output=ImageClassificationOutput,
    raw_body="image",
)

__all__ = [
    "ClassificationOutput",
    "ImageClassificationInput",
    "ImageClassificationOutput",
    "ImageClassificationParameters",
    "TASK",
]
