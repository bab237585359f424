"""question-answering: extract the answer to a question from a context."""

from __future__ import annotations

from typing import Optional, Union

import msgspec

from widgetd.tasks._common import NonNegativeInt, PositiveInt
from widgetd.tasks._task import Answer, ReplyOptions, Strict, Task


class QuestionAnsweringInputData(Strict):
    question: str
    context: str


class QuestionAnsweringParameters(Strict):
    top_k: PositiveInt = 1
    doc_stride: Optional[NonNegativeInt] = None
    """Tokens two windows of a long context share; null: min(max_seq_len // 2, 128), as the pipeline."""
    max_answer_len: PositiveInt = 15
    max_seq_len: Optional[PositiveInt] = None
    """Tokens in a window, question included; null: min(the model's limit, 384), as the pipeline."""
    max_question_len: PositiveInt = 64
    handle_impossible_answer: bool = False
    align_to_words: bool = True


class QuestionAnsweringInput(Strict):
    inputs: QuestionAnsweringInputData
    parameters: QuestionAnsweringParameters = msgspec.field(
        default_factory=QuestionAnsweringParameters
    )


class QuestionAnsweringAnswer(Answer):
    answer: str
    score: float
    start: int
    end: int


QuestionAnsweringOutput = list[QuestionAnsweringAnswer]
"""Best answers first; at most top_k, fewer when the context has fewer."""


def to_wire(
    request: QuestionAnsweringInput, answers: QuestionAnsweringOutput, reply: ReplyOptions
):
    # Clients expect a bare object for the default top_k=1, a list otherwise.
    if request.parameters.top_k == 1 and len(answers) == 1:
        return answers[0]
    return answers


TASK = Task(
    name="question-answering",
    summary="Extractive QA: the span of context that answers question.",
    input=QuestionAnsweringInput,
    output=QuestionAnsweringOutput,
    raw_body="text",
    wire_output=Union[QuestionAnsweringAnswer, QuestionAnsweringOutput],
    to_wire=to_wire,
)

__all__ = [
    "QuestionAnsweringAnswer",
    "QuestionAnsweringInput",
    "QuestionAnsweringInputData",
    "QuestionAnsweringOutput",
    "QuestionAnsweringParameters",
    "TASK",
]
