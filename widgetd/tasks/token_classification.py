"""token-classification: entities found in a text, with character offsets."""

from __future__ import annotations

from typing import Literal, Optional, Union

import msgspec

from widgetd.tasks._common import NonNegativeInt
from widgetd.tasks._task import Answer, Strict, Task

AggregationStrategy = Literal["none", "simple", "first", "average", "max"]


class TokenClassificationParameters(Strict):
    aggregation_strategy: AggregationStrategy = "simple"
    ignore_labels: Optional[list[str]] = None
    """None ignores the model's "O" label."""
    stride: Optional[NonNegativeInt] = None


class TokenClassificationInput(Strict):
    inputs: str
    parameters: TokenClassificationParameters = msgspec.field(default_factory=TokenClassificationParameters)


class TokenClassificationEntity(Answer):
    """``entity_group`` is always set (the label, even for aggregation "none"): the JS client requires it.

    With aggregation "none" an entry is one token, as the transformers pipeline answers it: ``entity``
    (its label) and ``index`` (its position among the tokens) are sent too; otherwise they are left out.
    """

    entity_group: str
    score: float
    word: str
    """Exactly ``inputs[start:end]``."""
    start: int
    end: int
    entity: Union[str, msgspec.UnsetType] = msgspec.UNSET
    index: Union[int, msgspec.UnsetType] = msgspec.UNSET


TokenClassificationOutput = list[TokenClassificationEntity]

TASK = Task(
    name="token-classification",
    summary="Entities in a text: label, score, the span's text and its character offsets.",
    input=TokenClassificationInput,
    output=TokenClassificationOutput,
)

__all__ = [
    "TASK",
    "TokenClassificationEntity",
    "TokenClassificationInput",
    "TokenClassificationOutput",
    "TokenClassificationParameters",
]
