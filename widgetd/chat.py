"""OpenAI's chat completions on a generation engine: a request as a ``Job``, a generation as the answer
or as the chunks of a stream."""

from __future__ import annotations

import time
import uuid
from typing import Any

from widgetd.errors import InvalidInput
from widgetd.generating import Generation, GenerationOptions, Job, Piece, Prompt, Token, refuse_unserved
from widgetd.tasks.chat_completion import (
    ChatCompletionDelta,
    ChatCompletionInput,
    ChatCompletionLogprob,
    ChatCompletionLogprobs,
    ChatCompletionOutput,
    ChatCompletionOutputChoice,
    ChatCompletionOutputMessage,
    ChatCompletionStreamChoice,
    ChatCompletionStreamOutput,
    ChatCompletionUsage,
)

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
"""The roles a chat template reads; OpenAI's ``developer`` is its newer name for ``system``."""

NOT_SERVED = {
    "n": (1, "one choice is generated per request"),
    "logit_bias": ({}, "logit_bias is not served"),
    "top_logprobs": (0, "alternative tokens are not returned"),
    "tools": ([], "tools (function calling) are not served"),
}
"""OpenAI options a local model does not honour, each with the value that asks for nothing."""

FINISH_REASONS = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}


def chat_job(request: ChatCompletionInput) -> Job:
    refuse_unserved(request, NOT_SERVED)
    if request.tool_choice not in (None, "none", "auto"):
        raise InvalidInput("tool_choice: tools (function calling) are not served by this server", field="tool_choice")
    if request.stream_options is not None and not request.stream:
        raise InvalidInput("stream_options: only allowed when stream is true", field="stream_options")
    temperature = request.temperature
    sample = temperature > 0 if temperature is not None else (True if request.top_p is not None else None)
    options = GenerationOptions(
        max_new_tokens=request.max_completion_tokens or request.max_tokens,
        do_sample=sample,
        temperature=temperature if sample else None,
        top_p=request.top_p if sample else None,
        frequency_penalty=request.frequency_penalty,
        presence_penalty=request.presence_penalty,
        seed=request.seed,
        field="",
    )
    stops = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop or ())
    return Job(Prompt(messages=tuple(_messages(request))), options, stops=stops, keep_stop=False)


def _messages(request: ChatCompletionInput) -> list[dict[str, str]]:
    messages = []
    for position, message in enumerate(request.messages):
        if message.role not in ROLES:
            raise InvalidInput(
                f"messages[{position}].role: {message.role!r} is not one of {sorted(ROLES)} (tool messages are not served)",
                field=f"messages[{position}].role",
            )
        messages.append({"role": ROLES[message.role], "content": _text_of(message.content, position)})
    return messages


def _text_of(content: Any, position: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for index, part in enumerate(content):
        if part.type != "text" or part.text is None:
            raise InvalidInput(
                f"messages[{position}].content[{index}]: only text parts are read by this model, got type {part.type!r}",
                field=f"messages[{position}].content[{index}].type",
            )
        texts.append(part.text)
    return "\n".join(texts)


class Completion:
    """One chat completion's identity: what every chunk and the answer repeat."""

    def __init__(self, model_id: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model_id
        self.fingerprint = f"widgetd-{_version()}"

    def answer(self, request: ChatCompletionInput, generation: Generation) -> ChatCompletionOutput:
        choice = ChatCompletionOutputChoice(
            index=0,
            message=ChatCompletionOutputMessage(role="assistant", content=generation.text),
            finish_reason=FINISH_REASONS[generation.finish],
            logprobs=_logprobs(generation.tokens) if request.logprobs else None,
        )
        return ChatCompletionOutput(
            id=self.id, object="chat.completion", created=self.created, model=self.model,
            system_fingerprint=self.fingerprint, choices=[choice], usage=usage(generation),
        )

    def chunk(self, choices: list[ChatCompletionStreamChoice], usage: ChatCompletionUsage | None = None) -> ChatCompletionStreamOutput:
        return ChatCompletionStreamOutput(
            id=self.id, object="chat.completion.chunk", created=self.created, model=self.model,
            system_fingerprint=self.fingerprint, choices=choices, usage=usage,
        )

    def opening(self) -> ChatCompletionStreamOutput:
        """The first chunk, before any text: the assistant's role, as OpenAI sends it."""
        return self.chunk([ChatCompletionStreamChoice(index=0, delta=ChatCompletionDelta(role="assistant", content=""))])

    def pieces(self, request: ChatCompletionInput, piece: Piece) -> list[ChatCompletionStreamOutput]:
        """The chunks for one piece: its text, if it adds any; then, if it ends the generation, an empty
        delta with the finish reason, as OpenAI ends a stream."""
        chunks = []
        if piece.text:
            logprobs = _logprobs([piece.token]) if request.logprobs else None
            chunks.append(self.chunk([ChatCompletionStreamChoice(index=0, delta=ChatCompletionDelta(content=piece.text), logprobs=logprobs)]))
        if piece.finish:
            chunks.append(self.chunk([ChatCompletionStreamChoice(index=0, delta=ChatCompletionDelta(), finish_reason=FINISH_REASONS[piece.finish])]))
        return chunks


def usage(generation: Generation) -> ChatCompletionUsage:
    completion = len(generation.tokens)
    return ChatCompletionUsage(
        prompt_tokens=generation.prompt_tokens, completion_tokens=completion, total_tokens=generation.prompt_tokens + completion
    )


def _logprobs(tokens: list[Token]) -> ChatCompletionLogprobs:
    return ChatCompletionLogprobs(
        content=[
            ChatCompletionLogprob(token=token.text, logprob=token.logprob, bytes=list(token.text.encode()), top_logprobs=[])
            for token in tokens
        ]
    )


def _version() -> str:
    import importlib.metadata

    return importlib.metadata.version("widgetd")
