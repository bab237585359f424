"""text-generation: a continuation of a prompt."""

from __future__ import annotations

from typing import Annotated, Optional

import msgspec

from widgetd.tasks._common import PositiveInt, Probability
from widgetd.tasks._task import Answer, Strict, Task
from widgetd.tasks.summarization import in_a_list


class TextGenerationParameters(Strict):
    """The TGI parameters a local model can honour; streaming, grammars and adapters are not served."""

    do_sample: bool = False
    max_new_tokens: Optional[PositiveInt] = None
    repetition_penalty: Optional[Annotated[float, msgspec.Meta(gt=0.0)]] = None
    return_full_text: Optional[bool] = None
    seed: Optional[Annotated[int, msgspec.Meta(ge=0)]] = None
    stop: Optional[list[str]] = None
    temperature: Optional[Annotated[float, msgspec.Meta(gt=0.0)]] = None
    top_k: Optional[PositiveInt] = None
    top_p: Optional[Probability] = None
    typical_p: Optional[Probability] = None
    truncate: Optional[PositiveInt] = None


class TextGenerationInput(Strict):
    inputs: str
    parameters: TextGenerationParameters = msgspec.field(default_factory=TextGenerationParameters)
    stream: bool = False
    """Accepted for TGI clients; false only: streaming is not served."""


class TextGenerationOutput(Answer):
    generated_text: str


TASK = Task(
    name="text-generation",
    summary="A continuation of the prompt.",
    input=TextGenerationInput,
    output=TextGenerationOutput,
    wire_output=list[TextGenerationOutput],
    to_wire=in_a_list,
)

__all__ = [
    "TASK",
    "TextGenerationInput",
    "TextGenerationOutput",
    "TextGenerationParameters",
]
