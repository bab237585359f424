"""OpenAI's chat completions on a generation engine: a request as a ``Job``, a generation as the answer
or as the chunks of a stream."""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec

import widgetd
from widgetd.errors import InvalidInput
from widgetd.generating import Generation, GenerationOptions, Job, Piece, Prompt, Token, refuse_unserved
from widgetd.structured import Constraint, from_response_format
from widgetd.tool_calls import Call, ToolUse, call_may_begin, forced_calls, parse_calls, template_messages, tool_use
from widgetd.tasks.chat_completion import (
    ChatCompletionDelta,
    ChatCompletionDeltaFunction,
    ChatCompletionDeltaToolCall,
    ChatCompletionFunctionCall,
    ChatCompletionToolCall,
    ChatCompletionInput,
    ChatCompletionLogprob,
    ChatCompletionLogprobs,
    ChatCompletionOutput,
    ChatCompletionOutputChoice,
    ChatCompletionOutputMessage,
    ChatCompletionPromptTokensDetails,
    ChatCompletionStreamChoice,
    ChatCompletionStreamOutput,
    ChatCompletionTopLogprob,
    ChatCompletionUsage,
)

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
"""The roles a chat template reads; OpenAI's ``developer`` is its newer name for ``system``."""

NOT_SERVED = {
    "n": (1, "one choice is generated per request"),
    "logit_bias": ({}, "logit_bias is not served"),
}
"""OpenAI options a local model does not honour, each with the value that asks for nothing."""

FINISH_REASONS = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}


def chat_job(request: ChatCompletionInput, renders_tools: bool = False) -> tuple[Job, ToolUse | None]:
    """The generation a request asks for, and the tools the model may call in it (see ``widgetd.tool_calls``).
    ``renders_tools``: whether the model's chat template shows it the tools."""
    refuse_unserved(request, NOT_SERVED)
    use = tool_use(request.tools, request.tool_choice, request.parallel_tool_calls)
    constraint = _answer_shape(request, use, renders_tools)
    if request.stream_options is not None and not request.stream:
        raise InvalidInput("stream_options: only allowed when stream is true", field="stream_options")
    if request.top_logprobs and not request.logprobs:
        raise InvalidInput("top_logprobs: only allowed when logprobs is true", field="top_logprobs")
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
        constraint=constraint,
        top_logprobs=request.top_logprobs or 0,
    )
    stops = (request.stop,) if isinstance(request.stop, str) else tuple(request.stop or ())
    prompt = Prompt(messages=tuple(template_messages(_messages(request))), tools=use.tools if use else None)
    return Job(prompt, options, stops=stops, keep_stop=False), use


def _answer_shape(request: ChatCompletionInput, use: ToolUse | None, renders_tools: bool) -> Constraint | None:
    """What the answer must be: the calls a forced ``tool_choice`` asks for, else the ``response_format``."""
    if use is not None and use.forced is None and not renders_tools:
        raise InvalidInput(
            "tool_choice: this model's chat template does not show it tools, so it cannot choose to call one; send "
            "tool_choice 'required' or a named function (then enforced by constrained decoding), or 'none'",
            field="tool_choice",
        )
    constraint = from_response_format(request.response_format)
    if use is None or use.forced is None:
        return constraint
    if constraint is not None:
        raise InvalidInput("response_format: a forced tool_choice already decides the answer's shape; send one or the other", field="response_format")
    return forced_calls(use)


def _messages(request: ChatCompletionInput) -> list[dict[str, Any]]:
    messages = []
    for position, message in enumerate(request.messages):
        if message.role not in ROLES:
            raise InvalidInput(f"messages[{position}].role: {message.role!r} is not one of {sorted(ROLES)}", field=f"messages[{position}].role")
        shaped: dict[str, Any] = {"role": ROLES[message.role], "content": _text_of(message.content, position)}
        if message.tool_calls:
            shaped["tool_calls"] = msgspec.to_builtins(message.tool_calls)
        if message.tool_call_id is not None:
            shaped["tool_call_id"] = message.tool_call_id
        if message.name is not None and message.role == "tool":
            shaped["name"] = message.name
        messages.append(shaped)
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
    """One chat completion's identity: what every chunk and the answer repeat; with tools, the text held back
    from a stream until it is known whether it is calls or words."""

    def __init__(self, model_id: str, use: ToolUse | None = None) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model_id
        self.fingerprint = f"widgetd-{widgetd.__version__}"
        self.held = HeldForCalls(use) if use is not None else None

    def answer(self, request: ChatCompletionInput, generation: Generation) -> ChatCompletionOutput:
        content: str | None = generation.text
        calls: list[Call] = []
        finish = FINISH_REASONS[generation.finish]
        if self.held is not None:
            content, calls = self.held.read(generation.text)
            finish = "tool_calls" if calls else finish
        choice = ChatCompletionOutputChoice(
            index=0,
            message=ChatCompletionOutputMessage(role="assistant", content=content, tool_calls=[_tool_call(call) for call in calls] or None),
            finish_reason=finish,
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
        """The chunks for one piece: its text, if it adds any (with tools, what is known not to be a call);
        then, if it ends the generation, the rest of the words and the calls, and an empty delta with the
        finish reason, as OpenAI ends a stream."""
        chunks = []
        text = piece.text if self.held is None else self.held.add(piece.text)
        if text:
            logprobs = _logprobs([piece.token]) if request.logprobs else None
            chunks.append(self.chunk([ChatCompletionStreamChoice(index=0, delta=ChatCompletionDelta(content=text), logprobs=logprobs)]))
        if piece.finish:
            finish = FINISH_REASONS[piece.finish]
            if self.held is not None:
                rest, calls = self.held.end()
                if rest:
                    chunks.append(self.chunk([ChatCompletionStreamChoice(index=0, delta=ChatCompletionDelta(content=rest))]))
                if calls:
                    deltas = [_tool_call_delta(index, call) for index, call in enumerate(calls)]
                    chunks.append(self.chunk([ChatCompletionStreamChoice(index=0, delta=ChatCompletionDelta(tool_calls=deltas))]))
                    finish = "tool_calls"
            chunks.append(self.chunk([ChatCompletionStreamChoice(index=0, delta=ChatCompletionDelta(), finish_reason=finish)]))
        return chunks


class HeldForCalls:
    """A stream's text where the model may call tools: words are sent as they come, except what may be the
    beginning of a call (held until the end tells) and white space at either end (an answer's words are
    trimmed, streamed or not). A forced call holds everything."""

    def __init__(self, use: ToolUse) -> None:
        self.use = use
        self.text = ""
        self.sent = ""

    def add(self, piece: str) -> str:
        self.text += piece
        if self.use.forced:
            return ""
        begin = call_may_begin(self.text)
        sendable = self.text[: len(self.text) if begin is None else begin].strip()
        if not sendable.startswith(self.sent) or len(sendable) <= len(self.sent):
            return ""
        new, self.sent = sendable[len(self.sent) :], sendable
        return new

    def end(self) -> tuple[str, list[Call]]:
        """What is left to send of the words once the text is complete, and the calls."""
        content, calls = self.read(self.text)
        content = content or ""
        return (content[len(self.sent) :] if content.startswith(self.sent) else ""), calls

    def read(self, text: str) -> tuple[str | None, list[Call]]:
        """The words (None for a forced call) and the calls of a complete text."""
        parsed = parse_calls(text, self.use)
        if parsed is not None:
            return parsed
        return text.strip(), []


def _tool_call(call: Call) -> ChatCompletionToolCall:
    return ChatCompletionToolCall(id=call.id, type="function", function=ChatCompletionFunctionCall(name=call.name, arguments=call.arguments))


def _tool_call_delta(index: int, call: Call) -> ChatCompletionDeltaToolCall:
    return ChatCompletionDeltaToolCall(index=index, id=call.id, type="function", function=ChatCompletionDeltaFunction(name=call.name, arguments=call.arguments))


def usage(generation: Generation) -> ChatCompletionUsage:
    completion = len(generation.tokens)
    return ChatCompletionUsage(
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=completion,
        total_tokens=generation.prompt_tokens + completion,
        prompt_tokens_details=ChatCompletionPromptTokensDetails(cached_tokens=generation.cached_tokens),
    )


LEAST_LOGPROB = -9999.0
"""What a token the choice ruled out (top-k, top-p, a grammar) reports: JSON has no -infinity (OpenAI's value)."""


def _shown(logprob: float) -> float:
    return max(logprob, LEAST_LOGPROB)


def _logprobs(tokens: list[Token]) -> ChatCompletionLogprobs:
    return ChatCompletionLogprobs(
        content=[
            ChatCompletionLogprob(
                token=token.text, logprob=_shown(token.logprob), bytes=list(token.text.encode()),
                top_logprobs=[ChatCompletionTopLogprob(token=other.text, logprob=_shown(other.logprob), bytes=list(other.text.encode())) for other in token.alternatives],
            )
            for token in tokens
        ]
    )
