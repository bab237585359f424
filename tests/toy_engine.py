"""A toy generation engine (widgetd.generating.Engine): words of a story, a token each, for text-generation and
chat through the server's continuous batching, streamed and not. Deterministic, so that greedy rules apply.

It reads a prompt (or chat messages, as ``role: content`` lines: its chat template) as its words between a
start and an end token. Its story ends by itself (an end-of-sequence token after "ever after") when the
prompt ends with a full stop; otherwise it goes on until its limit (``max_new_tokens``, or 100).

Given tools, a last message ``call NAME {arguments}`` (several joined by `` and ``) makes it answer "Checking."
and those calls, Hermes-style (``<tool_call>{"name": ..., "arguments": ...}</tool_call>``), a few characters
a token; ``call NAME {broken`` makes it write a call that does not parse.
"""

from __future__ import annotations

import json
import re
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
    script: list[str] | None = None
    """The texts of its tokens when it calls tools, then the end token."""

    def next_token(self) -> Token:
        position, self.made = self.made, self.made + 1
        if self.script is not None:
            if position == len(self.script):
                return Token(END, "", -0.05, special=True, finish="eos_token")
            return Token(1 + position % (len(VOCABULARY) - 1), self.script[position], -0.1, finish="length" if self.made >= self.limit else None)
        if self.ends and position == len(STORY):
            return Token(END, "", -0.05, special=True, finish="eos_token")
        word = STORY[position % len(STORY)]
        return Token(VOCABULARY.index(word), f" {word}", -0.1, finish="length" if self.made >= self.limit else None)


CALL = re.compile(r"call (\w+) (\{.*?)(?= and call |$)", re.DOTALL)


def tool_script(prompt: Prompt) -> list[str] | None:
    """The tokens of the calls the last message asks for, if the prompt has tools and it asks for some."""
    if not prompt.tools or not prompt.messages:
        return None
    calls = CALL.findall(str(prompt.messages[-1].get("content") or ""))
    if not calls:
        return None
    text = " Checking." + "".join(f'\n<tool_call>\n{{"name": {json.dumps(name)}, "arguments": {arguments}}}\n</tool_call>' for name, arguments in calls)
    return [text[start : start + 7] for start in range(0, len(text), 7)]


class ToyEngine:
    max_active = 8
    chat = True
    renders_tools = True

    def __init__(self) -> None:
        self.active: list[ToySequence] = []

    def admit(self, prompt: Prompt, options: GenerationOptions) -> Any:
        text = template(prompt)
        limit = options.max_new_tokens if options.max_new_tokens is not None else DEFAULT_LIMIT
        return ToySequence(prompt_tokens(text), options.seed, limit, ends=text.rstrip().endswith("."), script=tool_script(prompt))

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
