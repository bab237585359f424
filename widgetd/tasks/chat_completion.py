"""chat-completion: OpenAI's chat completions API, which TGI, vLLM and every chat client speak.

The prompt is the model's own chat template applied to ``messages`` (and ``tools``). Options a local model
cannot honour (``logit_bias``, ``n`` > 1, alternative tokens) are accepted only with the value that asks for
nothing, so that clients sending defaults work, and are a 400 naming the field otherwise.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

import msgspec

from widgetd.tasks._common import PositiveInt
from widgetd.tasks._task import Answer, RouteContract, Strict

Role = Literal["system", "developer", "user", "assistant", "tool"]
ChatFinishReason = Literal["stop", "length", "tool_calls"]


class ChatCompletionContentPart(msgspec.Struct):
    """A part of a message: ``text`` parts are read; any other (an image, audio) is a 400 naming it,
    whatever fields it has."""

    type: str
    text: Optional[str] = None


class ChatCompletionFunctionCall(msgspec.Struct):
    name: str
    arguments: str
    """The arguments as a JSON text (OpenAI's wire form)."""


class ChatCompletionToolCall(msgspec.Struct):
    """A call the assistant made: in an answer, and in the assistant messages a client sends back."""

    id: str
    type: Literal["function"]
    function: ChatCompletionFunctionCall


class ChatCompletionMessage(Strict):
    role: str
    content: Union[str, list[ChatCompletionContentPart], None] = None
    name: Optional[str] = None
    tool_calls: Optional[list[ChatCompletionToolCall]] = None
    """An assistant message's calls, sent back with the tools' answers."""
    tool_call_id: Optional[str] = None
    """A ``tool`` message's: the call it answers."""


class ChatCompletionStreamOptions(Strict):
    include_usage: bool = False


class ChatCompletionJsonSchema(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    description: Optional[str] = None
    schema: Optional[dict] = None
    strict: Optional[bool] = None


class ChatCompletionResponseFormat(Strict):
    """OpenAI's ``text``, ``json_object`` (any JSON object) and ``json_schema`` (JSON fitting ``json_schema.schema``);
    TGI's ``json`` and ``regex``, with their schema or pattern as ``value``."""

    type: Literal["text", "json_object", "json_schema", "json", "regex"]
    json_schema: Optional[ChatCompletionJsonSchema] = None
    value: Union[dict, str, None] = None


class ChatCompletionFunction(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(pattern="^[a-zA-Z0-9_-]{1,64}$")]
    description: Optional[str] = None
    parameters: Optional[dict] = None
    """A JSON Schema of the arguments (an object); none: the function takes no arguments."""
    strict: Optional[bool] = None


class ChatCompletionTool(msgspec.Struct, forbid_unknown_fields=True):
    type: Literal["function"]
    function: ChatCompletionFunction


class ChatCompletionNamedFunction(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class ChatCompletionNamedToolChoice(msgspec.Struct, forbid_unknown_fields=True):
    type: Literal["function"]
    function: ChatCompletionNamedFunction


class ChatCompletionInput(Strict):
    messages: Annotated[list[ChatCompletionMessage], msgspec.Meta(min_length=1)]
    model: Optional[str] = None
    """A served model's id; any other name means the route's model (OpenAI clients must send one)."""
    frequency_penalty: Optional[Annotated[float, msgspec.Meta(ge=-2.0, le=2.0)]] = None
    presence_penalty: Optional[Annotated[float, msgspec.Meta(ge=-2.0, le=2.0)]] = None
    logit_bias: Optional[dict[str, float]] = None
    logprobs: Optional[bool] = None
    top_logprobs: Optional[Annotated[int, msgspec.Meta(ge=0, le=20)]] = None
    max_tokens: Optional[PositiveInt] = None
    max_completion_tokens: Optional[PositiveInt] = None
    n: Optional[PositiveInt] = None
    response_format: Optional[ChatCompletionResponseFormat] = None
    seed: Optional[Annotated[int, msgspec.Meta(ge=0)]] = None
    stop: Union[str, Annotated[list[str], msgspec.Meta(max_length=4)], None] = None
    stream: bool = False
    stream_options: Optional[ChatCompletionStreamOptions] = None
    temperature: Optional[Annotated[float, msgspec.Meta(ge=0.0, le=2.0)]] = None
    top_p: Optional[Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]] = None
    tools: Optional[list[ChatCompletionTool]] = None
    tool_choice: Union[Literal["none", "auto", "required"], ChatCompletionNamedToolChoice, None] = None
    """none: answer in words; auto (the default with tools): the model decides; required: one call at least;
    a named function: a call of it."""
    parallel_tool_calls: Optional[bool] = None
    user: Optional[str] = None


class ChatCompletionPromptTokensDetails(Answer):
    cached_tokens: int
    """The prompt's tokens taken from keys and values kept from earlier prompts (prefix caching), not read again."""


class ChatCompletionUsage(Answer):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: Optional[ChatCompletionPromptTokensDetails] = None


class ChatCompletionTopLogprob(Answer):
    token: str
    logprob: float
    bytes: list[int]


class ChatCompletionLogprob(Answer):
    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[ChatCompletionTopLogprob]
    """The ``top_logprobs`` most likely tokens at this position, most likely first (empty when none were asked)."""


class ChatCompletionLogprobs(Answer):
    content: list[ChatCompletionLogprob]


class ChatCompletionOutputMessage(msgspec.Struct, omit_defaults=True):
    """``content`` always (null when the answer is only tool calls, as OpenAI sends it); ``tool_calls`` when there are some."""

    role: Literal["assistant"]
    content: Optional[str]
    tool_calls: Optional[list[ChatCompletionToolCall]] = None


class ChatCompletionOutputChoice(Answer):
    index: int
    message: ChatCompletionOutputMessage
    finish_reason: ChatFinishReason
    logprobs: Optional[ChatCompletionLogprobs] = None


class ChatCompletionOutput(Answer):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: str
    choices: list[ChatCompletionOutputChoice]
    usage: ChatCompletionUsage


class ChatCompletionDeltaFunction(msgspec.Struct, omit_defaults=True):
    name: Optional[str] = None
    arguments: Optional[str] = None


class ChatCompletionDeltaToolCall(msgspec.Struct, omit_defaults=True):
    """A tool call's part in a stream: its first delta has ``id``, ``type`` and the name; ``arguments`` add up."""

    index: int
    id: Optional[str] = None
    type: Optional[Literal["function"]] = None
    function: Optional[ChatCompletionDeltaFunction] = None


class ChatCompletionDelta(msgspec.Struct, omit_defaults=True):
    role: Optional[Literal["assistant"]] = None
    content: Optional[str] = None
    tool_calls: Optional[list[ChatCompletionDeltaToolCall]] = None


class ChatCompletionStreamChoice(Answer):
    index: int
    delta: ChatCompletionDelta
    finish_reason: Optional[ChatFinishReason] = None
    logprobs: Optional[ChatCompletionLogprobs] = None


class ChatCompletionStreamOutput(Answer):
    """One server-sent event; with ``stream_options.include_usage`` a last one has no choices and the usage."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    system_fingerprint: str
    choices: list[ChatCompletionStreamChoice]
    usage: Optional[ChatCompletionUsage] = None


ROUTE = RouteContract(
    name="chat-completion",
    path="/v1/chat/completions",
    summary="The model's reply to a conversation (OpenAI's chat completions); server-sent events with stream=true.",
    input=ChatCompletionInput,
    output=ChatCompletionOutput,
    stream_output=ChatCompletionStreamOutput,
)
