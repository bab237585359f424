"""zero-shot-image-classification: score an image against labels chosen at request time (CLIP, SigLIP)."""

from __future__ import annotations

from typing import Annotated, Union

import msgspec

from widgetd.tasks._common import ClassificationOutput, MediaBytes, NonEmptyText
from widgetd.tasks._task import Strict, Task


class ZeroShotImageClassificationParameters(Strict):
    candidate_labels: Annotated[list[NonEmptyText], msgspec.Meta(min_length=1)]
    """Each label once."""
    hypothesis_template: Annotated[str, msgspec.Meta(pattern=r"^[^{}]*\{\}[^{}]*$")] = "This is a photo of {}."
    """One {} where the label goes, and no other brace (the transformers pipeline's default)."""


class ImageInputs(Strict):
    """The object form ``@huggingface/inference`` sends: ``{"image": <base64>}``."""

    image: MediaBytes


class ZeroShotImageClassificationInput(Strict):
    inputs: Union[MediaBytes, ImageInputs]
    """JPEG, PNG or WebP bytes, base64 in JSON (the labels need the JSON form), or ``{"image": <base64>}``;
    read as the bytes either way."""
    parameters: ZeroShotImageClassificationParameters

    def __post_init__(self) -> None:
        if isinstance(self.inputs, ImageInputs):
            self.inputs = self.inputs.image


ZeroShotImageClassificationOutput = list[ClassificationOutput]
"""One entry per candidate label, best first."""

TASK = Task(
    name="zero-shot-image-classification",
    summary="Scores of an image against candidate_labels, best first.",
    input=ZeroShotImageClassificationInput,
    output=ZeroShotImageClassificationOutput,
    raw_body="image",
)

__all__ = [
    "ClassificationOutput",
    "TASK",
    "ZeroShotImageClassificationInput",
    "ZeroShotImageClassificationOutput",
    "ZeroShotImageClassificationParameters",
]
