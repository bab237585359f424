"""text-classification: labels with scores for a text."""

from __future__ import annotations

from typing import Optional

import msgspec

from widgetd.tasks._common import ClassificationOutput, ClassificationOutputTransform, PositiveInt
from widgetd.tasks._task import ReplyOptions, Strict, Task


class TextClassificationParameters(Strict):
    function_to_apply: Optional[ClassificationOutputTransform] = None
    top_k: Optional[PositiveInt] = None
    """None answers every label, as api-inference-community did."""


class TextClassificationInput(Strict):
    inputs: str
    parameters: TextClassificationParameters = msgspec.field(default_factory=TextClassificationParameters)


TextClassificationOutput = list[ClassificationOutput]
"""Best label first."""


def to_wire(request: TextClassificationInput, labels: TextClassificationOutput, reply: ReplyOptions):
    # The Python client reads element 0 of the outer list: a flat list would lose all but one label.
    return [labels]


TASK = Task(
    name="text-classification",
    summary="Labels with scores for a text, best first.",
    input=TextClassificationInput,
    output=TextClassificationOutput,
    wire_output=list[TextClassificationOutput],
    to_wire=to_wire,
)

__all__ = [
    "ClassificationOutput",
    "TASK",
    "TextClassificationInput",
    "TextClassificationOutput",
    "TextClassificationParameters",
]
