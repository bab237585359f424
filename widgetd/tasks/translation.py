"""translation: the text in another language."""

from __future__ import annotations

from typing import Optional

import msgspec

from widgetd.tasks._common import GenerationParameters, Truncation
from widgetd.tasks._task import Answer, Strict, Task
from widgetd.tasks.summarization import in_a_list


class TranslationParameters(Strict):
    src_lang: Optional[str] = None
    """For multilingual models: the text's language code."""
    tgt_lang: Optional[str] = None
    clean_up_tokenization_spaces: Optional[bool] = None
    truncation: Optional[Truncation] = None
    generate_parameters: Optional[GenerationParameters] = None


class TranslationInput(Strict):
    inputs: str
    parameters: TranslationParameters = msgspec.field(default_factory=TranslationParameters)


class TranslationOutput(Answer):
    translation_text: str


TASK = Task(
    name="translation",
    summary="The text translated (src_lang to tgt_lang for multilingual models).",
    input=TranslationInput,
    output=TranslationOutput,
    wire_output=list[TranslationOutput],
    to_wire=in_a_list,
)

__all__ = [
    "GenerationParameters",
    "TASK",
    "TranslationInput",
    "TranslationOutput",
    "TranslationParameters",
]
