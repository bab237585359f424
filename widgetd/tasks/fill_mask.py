"""fill-mask: the likeliest tokens for the mask token in a text."""

from __future__ import annotations

from typing import Annotated, Optional

import msgspec

from widgetd.tasks._common import NonEmptyText, PositiveInt
from widgetd.tasks._task import Answer, Strict, Task


class FillMaskParameters(Strict):
    top_k: PositiveInt = 5
    targets: Optional[Annotated[list[NonEmptyText], msgspec.Meta(min_length=1)]] = None


class FillMaskInput(Strict):
    inputs: str
    """Must contain the model's mask token (e.g. [MASK] or <mask>); otherwise a 400."""
    parameters: FillMaskParameters = msgspec.field(default_factory=FillMaskParameters)


class FillMaskCandidate(Answer):
    sequence: str
    score: float
    token: int
    token_str: str


FillMaskOutput = list[FillMaskCandidate]
"""Best first, at most top_k."""

TASK = Task(
    name="fill-mask",
    summary="The likeliest tokens for the mask token, with the filled-in text.",
    input=FillMaskInput,
    output=FillMaskOutput,
)

__all__ = [
    "FillMaskCandidate",
    "FillMaskInput",
    "FillMaskOutput",
    "FillMaskParameters",
    "TASK",
]
