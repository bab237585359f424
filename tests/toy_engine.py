"""A toy generation engine (widgetd.generating.Engine): words of a story, a token each, for text-generation and
chat through the server's continuous batching, streamed and not. Deterministic, so that greedy rules apply.

It reads a prompt (or chat messages, as ``role: content`` lines: its chat template) as its words between a
start and an end token. Its story ends by itself (an end-of-sequence token after "ever after") when the
prompt ends with a full stop; otherwise it goes on until its limit (``max_new_tokens``, or 100).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from widgetd.generating import GenerationOptions, Prompt, Token

STORY = "and so on and so forth until the end of the story, when everyone lived happily ever after".split()
VOCABULARY = ["</s>", *dict.fromkeys(STORY)]
END = 0
DEFAULT_LIMIT = 100


def template(prompt: Prompt) -> str:
    if prompt.messages is None:
        return prompt.text or ""
    return "\n".join(f"{message['role']}: {message['content']}" for message in prompt.messages)


def prompt_tokens(text: str) -> int:
    return len(text.split()) + 2


@dataclass(eq=False)
class ToySequence:
    prompt_tokens: int
    seed: int | None
    limit: int
    ends: bool
    made: int = 0
    active: bool = field(default=False)

    def next_token(self) -> Token:
        position, self.made = self.made, self.made + 1
        if self.ends and position == len(STORY):
            return Token(END, "", -0.05, special=True, finish="eos_token")
        word = STORY[position % len(STORY)]
        return Token(VOCABULARY.index(word), f" {word}", -0.1, finish="length" if self.made >= self.limit else None)


class ToyEngine:
    max_active = 8
    chat = True

    def __init__(self) -> None:
        self.active: list[ToySequence] = []

    def admit(self, prompt: Prompt, options: GenerationOptions) -> Any:
        text = template(prompt)
        limit = options.max_new_tokens if options.max_new_tokens is not None else DEFAULT_LIMIT
        return ToySequence(prompt_tokens(text), options.seed, limit, ends=text.rstrip().endswith("."))

    def join(self, sequence: ToySequence) -> Token:
        token = sequence.next_token()
        if token.finish is None:
            self.active.append(sequence)
        return token

    def step(self) -> dict[Any, Token | Exception]:
        tokens = {sequence: sequence.next_token() for sequence in self.active}
        self.active = [sequence for sequence in self.active if tokens[sequence].finish is None]
        return tokens

    def leave(self, sequence: Any) -> None:
        if sequence in self.active:
            self.active.remove(sequence)
