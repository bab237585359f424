"""feature-extraction: embeddings for a text or a list of texts."""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

import msgspec

from widgetd.tasks._task import Strict, Task


class FeatureExtractionInput(Strict):
    """Options sit at the top level, as TEI and the official clients send them."""

    inputs: Union[str, Annotated[list[str], msgspec.Meta(min_length=1)]]
    normalize: bool = True
    prompt_name: Optional[str] = None
    truncate: bool = False
    truncation_direction: Literal["left", "right"] = "right"


Embedding = list[float]
FeatureExtractionOutput = list[Union[float, Embedding]]
"""An Embedding for a text, a list of Embeddings for a list (one type, so JSON Schema can say it)."""

TASK = Task(
    name="feature-extraction",
    summary="One embedding for a text, a list of embeddings for a list of texts.",
    input=FeatureExtractionInput,
    output=FeatureExtractionOutput,
    raw_body="text",
)
