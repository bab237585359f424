"""Pieces several task contracts share (common-definitions.json of the canonical specs)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

import msgspec

from widgetd.tasks._task import Answer, Strict

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
Probability = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
NonEmptyText = Annotated[str, msgspec.Meta(min_length=1)]
MediaBytes = Annotated[bytes, msgspec.Meta(min_length=1)]
"""Audio or image bytes: never empty (base64 in JSON)."""

ClassificationOutputTransform = Literal["sigmoid", "softmax", "none"]


class ClassificationOutput(Answer):
    label: str
    score: float


class GenerationParameters(Strict):
    """How text or audio is generated; every field optional, the model's own config fills the rest."""

    temperature: Optional[Annotated[float, msgspec.Meta(gt=0.0)]] = None
    top_k: Optional[PositiveInt] = None
    top_p: Optional[Probability] = None
    typical_p: Optional[Probability] = None
    epsilon_cutoff: Optional[Annotated[float, msgspec.Meta(ge=0.0, lt=1.0)]] = None
    eta_cutoff: Optional[Annotated[float, msgspec.Meta(ge=0.0, lt=1.0)]] = None
    max_length: Optional[PositiveInt] = None
    max_new_tokens: Optional[PositiveInt] = None
    min_length: Optional[NonNegativeInt] = None
    min_new_tokens: Optional[NonNegativeInt] = None
    do_sample: Optional[bool] = None
    early_stopping: Optional[Union[bool, Literal["never"]]] = None
    num_beams: Optional[PositiveInt] = None
    num_beam_groups: Optional[PositiveInt] = None
    penalty_alpha: Optional[Annotated[float, msgspec.Meta(ge=0.0)]] = None
    use_cache: Optional[bool] = None


Truncation = Literal["do_not_truncate", "longest_first", "only_first", "only_second"]
