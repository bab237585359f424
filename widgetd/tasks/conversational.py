"""conversational: the Hub's pre-chat payload (a conversation as two lists and the next text), answered by
any model that chats, through its chat template."""

from __future__ import annotations

from typing import Annotated, Optional

import msgspec

from widgetd.tasks._common import NonEmptyText, PositiveInt, Probability
from widgetd.tasks._task import Answer, Strict, Task


class ConversationalInputs(Strict):
    text: NonEmptyText
    """What the user says now."""
    past_user_inputs: list[str] = msgspec.field(default_factory=list)
    """What the user said before, oldest first."""
    generated_responses: list[str] = msgspec.field(default_factory=list)
    """The model's answers to them, in the same order: as many as ``past_user_inputs``."""

    def __post_init__(self) -> None:
        # msgspec reports a ValueError here as a 400 at `inputs`.
        if len(self.past_user_inputs) != len(self.generated_responses):
            raise ValueError(
                f"past_user_inputs holds {len(self.past_user_inputs)} texts and generated_responses "
                f"{len(self.generated_responses)}: each past input needs its response"
            )


class ConversationalParameters(Strict):
    """api-inference-community's; ``max_length`` counts the answer's tokens here (see spec/README.md)."""

    max_length: Optional[PositiveInt] = None
    """The most tokens the answer may have (the 4.x pipeline counted the conversation too)."""
    max_new_tokens: Optional[PositiveInt] = None
    min_length: Optional[Annotated[int, msgspec.Meta(ge=0)]] = None
    """Accepted when 0: a local chat model is not held to a least length."""
    temperature: Optional[Annotated[float, msgspec.Meta(ge=0.0, le=100.0)]] = None
    """0: greedy; above 0: sampled at that temperature."""
    top_k: Optional[PositiveInt] = None
    top_p: Optional[Probability] = None
    repetition_penalty: Optional[Annotated[float, msgspec.Meta(gt=0.0)]] = None
    max_time: Optional[Annotated[float, msgspec.Meta(gt=0.0)]] = None
    """Seconds the answer may take: the generation stops there, with what it has."""
    seed: Optional[Annotated[int, msgspec.Meta(ge=0)]] = None


class ConversationalInput(Strict):
    inputs: ConversationalInputs
    parameters: ConversationalParameters = msgspec.field(default_factory=ConversationalParameters)


class Conversation(Answer):
    past_user_inputs: list[str]
    """The conversation's user texts, this request's last."""
    generated_responses: list[str]
    """The model's answers, this request's last."""


class ConversationalOutput(Answer):
    generated_text: str
    """The model's answer to ``text``."""
    conversation: Conversation
    """The conversation so far, to send back with the next text."""
    warnings: list[str] = msgspec.field(default_factory=list)


TASK = Task(
    name="conversational",
    summary="The next answer in a conversation, in the Hub's pre-chat shape; served by every model that chats.",
    input=ConversationalInput,
    output=ConversationalOutput,
)

__all__ = ["Conversation", "ConversationalInput", "ConversationalInputs", "ConversationalOutput", "ConversationalParameters", "TASK"]
