"""The built-in task contracts, one module per task."""

from widgetd.tasks._task import Answer, ReplyOptions, Strict, Task
from widgetd.tasks import (
    audio_to_audio,
    feature_extraction,
    question_answering,
    sentence_similarity,
)

BUILTIN_TASKS: tuple[Task, ...] = tuple(
    module.TASK
    for module in (
        question_answering,
        sentence_similarity,
        feature_extraction,
        audio_to_audio,
    )
)

__all__ = ["BUILTIN_TASKS", "Answer", "ReplyOptions", "Strict", "Task"]
