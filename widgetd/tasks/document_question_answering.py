"""document-question-answering: the words of a document image that answer a question (LayoutLM)."""

from __future__ import annotations

from typing import Annotated, Optional

import msgspec

from widgetd.tasks._common import MediaBytes, NonEmptyText, NonNegativeInt, PositiveInt
from widgetd.tasks._task import Answer, Strict, Task

Coordinate = Annotated[float, msgspec.Meta(ge=0, le=1000)]
WordBox = tuple[str, tuple[Coordinate, Coordinate, Coordinate, Coordinate]]
"""A word and its box (x0, y0, x1, y1) on the page, in thousandths of its width and height."""


class DocumentQuestionAnsweringInputData(Strict):
    image: MediaBytes
    """The document: JPEG, PNG or WebP bytes, base64 in JSON."""
    question: NonEmptyText


class DocumentQuestionAnsweringParameters(Strict):
    doc_stride: Optional[NonNegativeInt] = None
    """Tokens two windows of a long document share; null: min(max_seq_len // 2, 256), as the pipeline."""
    handle_impossible_answer: bool = False
    lang: Optional[str] = None
    """The OCR language, where the server reads the words itself."""
    max_answer_len: PositiveInt = 15
    max_question_len: PositiveInt = 64
    max_seq_len: Optional[PositiveInt] = None
    """Tokens in a window, question included; null: the model's limit."""
    top_k: PositiveInt = 1
    word_boxes: Optional[Annotated[list[WordBox], msgspec.Meta(min_length=1)]] = None
    """The document's words with their boxes; null: the server reads them with OCR, where it has an OCR engine."""

    def __post_init__(self) -> None:
        # msgspec reports a ValueError here as a 400 at `parameters`.
        for index, (_, (x0, y0, x1, y1)) in enumerate(self.word_boxes or ()):
            if x0 > x1 or y0 > y1:
                raise ValueError(f"word_boxes[{index}]: a box is (x0, y0, x1, y1) with x0 <= x1 and y0 <= y1")


class DocumentQuestionAnsweringInput(Strict):
    inputs: DocumentQuestionAnsweringInputData
    parameters: DocumentQuestionAnsweringParameters = msgspec.field(default_factory=DocumentQuestionAnsweringParameters)


class DocumentQuestionAnsweringAnswer(Answer):
    answer: str
    """The words from ``start`` to ``end``, joined by spaces."""
    score: float
    start: int
    """The index of the answer's first word among the document's words."""
    end: int
    """The index of its last word (inclusive)."""


DocumentQuestionAnsweringOutput = list[DocumentQuestionAnsweringAnswer]
"""Best first, at most top_k."""

TASK = Task(
    name="document-question-answering",
    summary="The words of a document image that answer a question, best first.",
    input=DocumentQuestionAnsweringInput,
    output=DocumentQuestionAnsweringOutput,
    raw_body="image",
)

__all__ = [
    "DocumentQuestionAnsweringAnswer",
    "DocumentQuestionAnsweringInput",
    "DocumentQuestionAnsweringInputData",
    "DocumentQuestionAnsweringOutput",
    "DocumentQuestionAnsweringParameters",
    "TASK",
    "WordBox",
]
