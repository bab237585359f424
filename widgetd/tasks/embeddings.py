"""embeddings: OpenAI's embeddings API over a feature-extraction or sentence-similarity model, so that
tools written for OpenAI embeddings work unchanged. One vector per input text."""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

import msgspec

from widgetd.tasks._common import PositiveInt
from widgetd.tasks._task import Answer, RouteContract, Strict

class EmbeddingsInput(Strict):
    input: Union[str, Annotated[list[Union[str, int, list[int]]], msgspec.Meta(min_length=1)]]
    """A text or a list of texts; token ids (which OpenAI also takes) are refused: they are ids of
    OpenAI's tokenizer, not of the served model's."""
    model: Optional[str] = None
    encoding_format: Literal["float", "base64"] = "float"
    """``base64``: each vector as little-endian float32 bytes (what the ``openai`` SDKs ask for)."""
    dimensions: Optional[PositiveInt] = None
    """Keep the first ``dimensions`` numbers (Matryoshka truncation); a unit-length vector stays unit-length."""
    user: Optional[str] = None


class Embedding(Answer):
    object: Literal["embedding"]
    index: int
    embedding: Union[list[float], str]


class EmbeddingsUsage(Answer):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsOutput(Answer):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingsUsage


class ModelCard(Answer):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(Answer):
    object: Literal["list"]
    data: list[ModelCard]


ROUTE = RouteContract(
    name="embeddings",
    path="/v1/embeddings",
    summary="One vector per input text (OpenAI's embeddings).",
    input=EmbeddingsInput,
    output=EmbeddingsOutput,
)

MODELS_ROUTE = RouteContract(
    name="models",
    path="/v1/models",
    summary="The served models (OpenAI's model list).",
    input=None,
    output=ModelList,
    method="get",
)
