"""text-generation: a continuation of a prompt, TGI's contract (streamed with ``stream: true``)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import msgspec

from widgetd.tasks._common import PositiveInt, Probability
from widgetd.tasks._task import Answer, Strict, Task
from widgetd.tasks.summarization import in_a_list

FinishReason = Literal["length", "eos_token", "stop_sequence"]


class TextGenerationParameters(Strict):
    """TGI's parameters. Those a local model cannot honour are accepted only with the value that asks
    for nothing (``best_of`` 1, ``watermark`` false, ...), so that TGI clients sending defaults work."""

    adapter_id: Optional[str] = None
    best_of: Optional[PositiveInt] = None
    decoder_input_details: bool = False
    details: bool = False
    do_sample: bool = False
    frequency_penalty: Optional[Annotated[float, msgspec.Meta(ge=-2.0, le=2.0)]] = None
    grammar: Optional[dict] = None
    max_new_tokens: Optional[PositiveInt] = None
    repetition_penalty: Optional[Annotated[float, msgspec.Meta(gt=0.0)]] = None
    return_full_text: Optional[bool] = None
    seed: Optional[Annotated[int, msgspec.Meta(ge=0)]] = None
    stop: Optional[list[str]] = None
    temperature: Optional[Annotated[float, msgspec.Meta(gt=0.0)]] = None
    top_k: Optional[PositiveInt] = None
    top_n_tokens: Optional[Annotated[int, msgspec.Meta(ge=0)]] = None
    top_p: Optional[Probability] = None
    truncate: Optional[PositiveInt] = None
    typical_p: Optional[Probability] = None
    watermark: bool = False


class TextGenerationInput(Strict):
    inputs: str
    parameters: TextGenerationParameters = msgspec.field(default_factory=TextGenerationParameters)
    stream: bool = False
    """Server-sent events, one per token (``TextGenerationStreamOutput``), when the model streams."""


class TextGenerationOutputToken(Answer):
    id: int
    logprob: float
    special: bool
    text: str


class TextGenerationOutputDetails(Answer):
    finish_reason: FinishReason
    generated_tokens: int
    prefill: list[TextGenerationOutputToken]
    seed: Optional[int]
    tokens: list[TextGenerationOutputToken]


class TextGenerationOutput(msgspec.Struct, omit_defaults=True):
    """``details`` only when the request asked for them."""

    generated_text: str
    details: Optional[TextGenerationOutputDetails] = None


class TextGenerationStreamOutputStreamDetails(Answer):
    finish_reason: FinishReason
    generated_tokens: int
    input_length: int
    seed: Optional[int]


class TextGenerationStreamOutput(Answer):
    """One event of a stream: a token; the last also holds the whole text and the details."""

    index: int
    token: TextGenerationOutputToken
    generated_text: Optional[str] = None
    details: Optional[TextGenerationStreamOutputStreamDetails] = None


TASK = Task(
    name="text-generation",
    summary="A continuation of the prompt.",
    input=TextGenerationInput,
    output=TextGenerationOutput,
    wire_output=list[TextGenerationOutput],
    to_wire=in_a_list,
    stream_output=TextGenerationStreamOutput,
)

__all__ = [
    "TASK",
    "FinishReason",
    "TextGenerationInput",
    "TextGenerationOutput",
    "TextGenerationOutputDetails",
    "TextGenerationOutputToken",
    "TextGenerationParameters",
    "TextGenerationStreamOutput",
    "TextGenerationStreamOutputStreamDetails",
]
