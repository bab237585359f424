"""summarization: a shorter text saying the same."""

from __future__ import annotations

from typing import Any, Optional

import msgspec

from widgetd.tasks._common import GenerationParameters, Truncation
from widgetd.tasks._task import Answer, ReplyOptions, Strict, Task


class SummarizationParameters(Strict):
    clean_up_tokenization_spaces: Optional[bool] = None
    truncation: Optional[Truncation] = None
    generate_parameters: Optional[GenerationParameters] = None


class SummarizationInput(Strict):
    inputs: str
    parameters: SummarizationParameters = msgspec.field(default_factory=SummarizationParameters)


class SummarizationOutput(Answer):
    summary_text: str


def in_a_list(request: Any, answer: Any, reply: ReplyOptions) -> list:
    # The Python client parses a list of one answer; a bare object makes it raise.
    return [answer]


TASK = Task(
    name="summarization",
    summary="A summary of the text.",
    input=SummarizationInput,
    output=SummarizationOutput,
    wire_output=list[SummarizationOutput],
    to_wire=in_a_list,
)

__all__ = [
    "GenerationParameters",
    "SummarizationInput",
    "SummarizationOutput",
    "SummarizationParameters",
    "TASK",
]
