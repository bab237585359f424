"""zero-shot-classification: score a text against labels chosen at request time."""

from __future__ import annotations

from typing import Annotated

import msgspec

from widgetd.tasks._common import ClassificationOutput, NonEmptyText
from widgetd.tasks._task import Strict, Task


class ZeroShotClassificationParameters(Strict):
    candidate_labels: Annotated[list[NonEmptyText], msgspec.Meta(min_length=1)]
    """A list only: the comma-separated string the transformers pipeline also splits is refused."""
    hypothesis_template: Annotated[str, msgspec.Meta(pattern=r"^[^{}]*\{\}[^{}]*$")] = "This example is {}."
    """One {} where the label goes, and no other brace."""
    multi_label: bool = False


class ZeroShotClassificationInput(Strict):
    inputs: str
    parameters: ZeroShotClassificationParameters


ZeroShotClassificationOutput = list[ClassificationOutput]
"""One entry per candidate label, best first."""

TASK = Task(
    name="zero-shot-classification",
    summary="Scores of a text against candidate_labels, best first.",
    input=ZeroShotClassificationInput,
    output=ZeroShotClassificationOutput,
)

__all__ = [
    "ClassificationOutput",
    "TASK",
    "ZeroShotClassificationInput",
    "ZeroShotClassificationOutput",
    "ZeroShotClassificationParameters",
]
