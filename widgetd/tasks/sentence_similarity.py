"""sentence-similarity: score each sentence against a source sentence."""

from __future__ import annotations

from typing import Annotated

import msgspec

from widgetd.tasks._task import Strict, Task


class SentenceSimilarityInputData(Strict):
    source_sentence: str
    sentences: Annotated[list[str], msgspec.Meta(min_length=1)]


class SentenceSimilarityParameters(Strict):
    pass


class SentenceSimilarityInput(Strict):
    inputs: SentenceSimilarityInputData
    parameters: SentenceSimilarityParameters = msgspec.field(
        default_factory=SentenceSimilarityParameters
    )


SentenceSimilarityOutput = list[float]

TASK = Task(
    name="sentence-similarity",
    summary="Similarity of source_sentence to each of sentences, one score each, in order.",
    input=SentenceSimilarityInput,
    output=SentenceSimilarityOutput,
    raw_body="text",
)

__all__ = [
    "SentenceSimilarityInput",
    "SentenceSimilarityInputData",
    "SentenceSimilarityOutput",
    "SentenceSimilarityParameters",
    "TASK",
]
