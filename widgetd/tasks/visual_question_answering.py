"""visual-question-answering: answers to a question about an image, best first."""

from __future__ import annotations

from typing import Optional, Union

import msgspec

from widgetd.tasks._common import MediaBytes, NonEmptyText, PositiveInt
from widgetd.tasks._task import Answer, Strict, Task


class VisualQuestionAnsweringInputData(Strict):
    image: MediaBytes
    """JPEG, PNG or WebP bytes, base64 in JSON."""
    question: NonEmptyText


class VisualQuestionAnsweringParameters(Strict):
    top_k: PositiveInt = 1
    """At most this many answers; fewer when the model knows fewer."""


class VisualQuestionAnsweringInput(Strict):
    inputs: Union[VisualQuestionAnsweringInputData, MediaBytes]
    """``{"image", "question"}`` (the spec, ``@huggingface/inference``), or the image alone with the question
    beside ``inputs`` (the Python client also repeats the image there); read as ``{"image", "question"}``."""
    parameters: VisualQuestionAnsweringParameters = msgspec.field(default_factory=VisualQuestionAnsweringParameters)
    question: Optional[NonEmptyText] = None
    image: Optional[MediaBytes] = None

    def __post_init__(self) -> None:
        # msgspec reports a ValueError here as a 400.
        if isinstance(self.inputs, bytes):
            if self.question is None:
                raise ValueError("the question is missing: send inputs as {image, question}, or question beside inputs")
            self.inputs = VisualQuestionAnsweringInputData(self.inputs, self.question)
        elif self.question is not None or self.image is not None:
            raise ValueError("inputs holds the image and question; do not send them beside it too")
        self.question = self.image = None


class VisualQuestionAnsweringAnswer(Answer):
    answer: str
    score: float


VisualQuestionAnsweringOutput = list[VisualQuestionAnsweringAnswer]
"""Best first, at most top_k."""

TASK = Task(
    name="visual-question-answering",
    summary="Answers to a question about an image, best first.",
    input=VisualQuestionAnsweringInput,
    output=VisualQuestionAnsweringOutput,
    raw_body="image",
)

__all__ = [
    "TASK",
    "VisualQuestionAnsweringAnswer",
    "VisualQuestionAnsweringInput",
    "VisualQuestionAnsweringInputData",
    "VisualQuestionAnsweringOutput",
    "VisualQuestionAnsweringParameters",
]
