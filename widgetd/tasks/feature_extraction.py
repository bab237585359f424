"""feature-extraction: embeddings for a text or a list of texts."""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

import msgspec

from widgetd.tasks._task import Strict, Task


class FeatureExtractionInput(Strict):
    """Options sit at the top level, as TEI and the official clients send them."""

    inputs: Union[str, Annotated[list[str], msgspec.Meta(min_length=1)]]
    normalize: Optional[bool] = None
    """Scale every vector to length 1. Null: the model's kind decides: sentence embeddings are
    normalized (TEI's default), token embeddings are the model's hidden states (the transformers pipeline's)."""
    prompt_name: Optional[str] = None
    truncate: bool = False
    truncation_direction: Literal["left", "right"] = "right"


Embedding = list[float]
TokenEmbeddings = list[Embedding]
"""One vector per token, for models that embed tokens rather than sentences."""
FeatureExtractionOutput = list[Union[float, list[Union[float, Embedding]]]]
"""For a text: an Embedding, or TokenEmbeddings; for a list of texts, a list of those (one type
with at most three levels, so JSON Schema can say it)."""

TASK = Task(
    name="feature-extraction",
    summary="An embedding (or one per token) for a text, a list of them for a list of texts.",
    input=FeatureExtractionInput,
    output=FeatureExtractionOutput,
    raw_body="text",
)

__all__ = [
    "Embedding",
    "FeatureExtractionInput",
    "FeatureExtractionOutput",
    "TASK",
    "TokenEmbeddings",
]
