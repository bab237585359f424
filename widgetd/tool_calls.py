"""Tool calling in chat completions, as OpenAI's API has it.

The tools go to the model's own chat template (``apply_chat_template(tools=...)``); the calls are read back from
its text in the formats of the template families in use: Hermes and Qwen's ``<tool_call>{...}</tool_call>``,
Llama 3's JSON object (``{"name", "parameters"}``), Mistral's JSON list (after its ``[TOOL_CALLS]`` token). A
text that does not parse as calls of the given tools is the answer's text, never an error.

A forced ``tool_choice`` (``required`` or a named function) is enforced by constrained decoding: the model
writes a JSON list of calls, ``[{"name": ..., "arguments": {...}}]``, each call's arguments fitting its
function's parameters; this works whether or not the model's template renders tools.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Iterable

from widgetd.errors import InvalidInput
from widgetd.structured import Constraint

CALL_TAG = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
CALL_OPENERS = ("<tool_call>",)
"""Where a call may begin in the middle of a text (an answer's words may come first)."""
NO_PARAMETERS = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class ToolUse:
    """The tools a request gives and how the model may use them."""

    tools: tuple[dict[str, Any], ...]
    """OpenAI's tool objects, ``{"type": "function", "function": {...}}``, as chat templates read them."""
    forced: str | None
    """``required``, or the name of the function to call; None: the model decides (``auto``)."""
    parallel: bool

    @property
    def names(self) -> list[str]:
        return [tool["function"]["name"] for tool in self.tools]


@dataclass(frozen=True)
class Call:
    name: str
    arguments: str
    """JSON text, as OpenAI sends it."""
    id: str = ""


def tool_use(tools: list[Any] | None, tool_choice: Any, parallel_tool_calls: bool | None) -> ToolUse | None:
    """What the request asks of tools; None when the model is to answer in words (no tools, or ``none``)."""
    if tool_choice is not None and not tools:
        raise InvalidInput("tool_choice: there are no tools to choose from; send tools too", field="tool_choice")
    if not tools or tool_choice == "none":
        return None
    import msgspec

    # As clients write them: a field they left out is not there (templates show what they are given).
    declared = tuple({**tool, "function": {k: v for k, v in tool["function"].items() if v is not None}} for tool in msgspec.to_builtins(tools))
    names = [tool["function"]["name"] for tool in declared]
    if len(set(names)) < len(names):
        raise InvalidInput("tools: two tools have the same name", field="tools")
    for position, tool in enumerate(declared):
        if tool["function"].get("parameters", NO_PARAMETERS).get("type", "object") != "object":  # OpenAI's rule too
            field = f"tools[{position}].function.parameters"
            raise InvalidInput(f"{field}: a function's parameters are a JSON Schema of type 'object' (its arguments are named)", field=field)
    forced = None
    if tool_choice == "required":
        forced = "required"
    elif tool_choice not in (None, "auto"):
        forced = tool_choice.function.name
        if forced not in names:
            raise InvalidInput(f"tool_choice.function.name: {forced!r} is not one of the tools {names}", field="tool_choice.function.name")
    return ToolUse(declared, forced, parallel_tool_calls is not False)


def forced_calls(use: ToolUse) -> Constraint:
    """The JSON list of calls a forced ``tool_choice`` makes the model write: calls of the named function (one),
    or of any of the tools (one, or more where parallel calls are allowed)."""
    tools = [tool for tool in use.tools if use.forced in ("required", tool["function"]["name"])]
    calls, definitions = [], {}
    for position, tool in enumerate(tools):
        parameters, named = _hoisted(tool["function"].get("parameters") or NO_PARAMETERS, f"tool{position}_")
        definitions.update(named)
        calls.append({
            "type": "object",
            "properties": {"name": {"const": tool["function"]["name"]}, "arguments": parameters},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        })
    single = use.forced != "required" or not use.parallel
    schema = {"type": "array", "items": calls[0] if len(calls) == 1 else {"anyOf": calls}, "minItems": 1, **({"maxItems": 1} if single else {})}
    return Constraint("json", "tool_choice", {**schema, **({"$defs": definitions} if definitions else {})})


def _hoisted(parameters: dict[str, Any], prefix: str) -> tuple[Any, dict[str, Any]]:
    """A function's parameters without their own definitions (``$defs``, ``definitions``), which move to the root of
    the calls' schema under names of their own (``prefix``), the references to them following: the parameters are
    a part of that schema now, where ``#/$defs/...`` means its root."""
    local = {**_mapping(parameters.get("definitions")), **_mapping(parameters.get("$defs"))}

    def moved(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: (_renamed(item, prefix) if key == "$ref" and isinstance(item, str) else moved(item))
                for key, item in value.items()
                if key not in ("$defs", "definitions") or value is not parameters
            }
        if isinstance(value, list):
            return [moved(item) for item in value]
        return value

    return moved(parameters), {prefix + name: moved(definition) for name, definition in local.items()}


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _renamed(reference: str, prefix: str) -> str:
    for root in ("#/$defs/", "#/definitions/"):
        if reference.startswith(root):
            return "#/$defs/" + prefix + reference[len(root) :]
    return reference


def parse_calls(text: str, use: ToolUse) -> tuple[str | None, list[Call]] | None:
    """The answer's words (None if there are none) and its calls, if ``text`` holds calls of the given tools in
    one of the known formats; None if it holds no call, or one that does not parse (then it is plain text)."""
    if use.forced:
        calls = _json_calls(text.strip())
        return (None, _with_ids(calls)) if calls else None
    for words, calls in (_tagged_calls(text), _leading_json_calls(text)):
        if calls and all(call.name in use.names for call in calls):
            if not use.parallel:
                calls = calls[:1]
            return (words or None), _with_ids(calls)
    return None


def call_may_begin(text: str) -> int | None:
    """Where in ``text`` a call begins or may begin (a call opener, or its first characters at the end; a text
    that starts as JSON): a stream holds the text back from there until it knows."""
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        return 0
    positions = [text.find(opener) for opener in CALL_OPENERS if opener in text]
    positions += [len(text) - size for opener in CALL_OPENERS for size in range(1, len(opener)) if text.endswith(opener[:size])]
    return min(positions) if positions else None


def _tagged_calls(text: str) -> tuple[str, list[Call] | None]:
    """Hermes and Qwen: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, after the answer's words."""
    start = text.find("<tool_call>")
    if start < 0:
        return "", None
    calls = [_call(body) for body in CALL_TAG.findall(text[start:])]
    return text[:start].strip(), (None if any(call is None for call in calls) else calls)


def _leading_json_calls(text: str) -> tuple[str, list[Call] | None]:
    """Llama 3 (``{"name": ..., "parameters": {...}}``, several joined by ``;``) and Mistral (a JSON list of calls,
    its ``[TOOL_CALLS]`` token left out of the text): a text that is nothing but calls."""
    return "", _json_calls(text.strip())


def _json_calls(text: str) -> list[Call] | None:
    if not text or text[0] not in "[{":
        return None
    try:
        values = [json.loads(text)]
    except (ValueError, RecursionError):
        try:
            values = [json.loads(part) for part in text.split(";") if part.strip()]
        except (ValueError, RecursionError):
            return None
    items = [item for value in values for item in (value if isinstance(value, list) else [value])]
    calls = [_call_of(item) for item in items]
    return None if not calls or any(call is None for call in calls) else calls


def _call(body: str) -> Call | None:
    try:
        return _call_of(json.loads(body))
    except (ValueError, RecursionError):
        return None


def _call_of(item: Any) -> Call | None:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        return None
    arguments = item.get("arguments", item.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            return None
    if not isinstance(arguments, dict):
        return None
    return Call(item["name"], json.dumps(arguments, ensure_ascii=False))


def _with_ids(calls: Iterable[Call]) -> list[Call]:
    return [Call(call.name, call.arguments, f"call_{uuid.uuid4().hex[:24]}") for call in calls]


def template_messages(messages: Iterable[Any]) -> list[dict[str, Any]]:
    """The fields of assistant calls and tool answers as chat templates read them: arguments as objects."""
    shaped = []
    for message in messages:
        message = dict(message)
        if message.get("tool_calls"):
            message["tool_calls"] = [
                {**call, "function": {**call["function"], "arguments": _arguments_object(call["function"]["arguments"])}}
                for call in message["tool_calls"]
            ]
        shaped.append(message)
    return shaped


def _arguments_object(arguments: Any) -> Any:
    if not isinstance(arguments, str):
        return arguments
    try:
        return json.loads(arguments)
    except (ValueError, RecursionError):
        return arguments
