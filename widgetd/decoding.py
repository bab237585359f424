"""Turning a request body, in any form real clients send, into a task's request Struct."""

from __future__ import annotations

import re
from typing import Any, Mapping

import msgspec

from widgetd import media
from widgetd.errors import InvalidInput
from widgetd.limits import Limits, check_generation, check_request, texts_and_lists
from widgetd.tasks import Task

IGNORED_KEYS = ("options",)
"""api-inference-community's ``options`` (wait_for_model, use_cache) mean nothing here."""

_FIELD_PATH = re.compile(r"at `\$\.?([^`]*)`$")


def decode_request(
    task: Task, body: bytes, content_type: str | None, limits: Limits = Limits(), query: Mapping[str, str] | None = None
) -> msgspec.Struct:
    """The request Struct for ``body``, within ``limits``; InvalidInput (400), PayloadTooLarge (413) or
    UnsupportedMedia (415) otherwise. ``query`` (the URL's query string) adds parameters the body lacks, as
    Inference Endpoints' toolkit did."""
    if not body:
        raise InvalidInput(f"the request body is empty; {task.name} expects {_expected(task)}")
    if task.raw_body == "any":
        # No contract says what a text or a list is here (a list may be a 1024-number vector): only the
        # body's size is limited.
        return with_query_parameters(_free_payload(body, content_type), query)
    if task.raw_body in ("audio", "image"):
        payload = _media_payload(body, content_type)
    elif _declares_json(content_type):
        payload = _json_text_payload(_parse_json(body), body.decode("utf-8", "replace"))
    else:
        payload = _text_payload(body, content_type)
    request = convert_request(task, with_query_parameters(payload, query))
    check_request(request, limits)
    check_generation(request, limits)
    if task.raw_body == "audio":
        media.check_audio(request.inputs, limits.max_audio_seconds)
    elif task.raw_body == "image":
        media.check_image(image_of(request), limits.max_image_pixels)
    return request


def image_of(request: Any) -> bytes:
    """The image a request sends: its ``inputs``, or ``inputs.image`` beside a question."""
    inputs = request.inputs
    return inputs if isinstance(inputs, bytes) else inputs.image


def convert_request(task: Task, payload: Any) -> msgspec.Struct:
    if isinstance(payload, dict):
        payload = {key: value for key, value in payload.items() if key not in IGNORED_KEYS}
    return _converted(payload, task.input, task.name)


def decode_json(body: bytes, request_type: type[msgspec.Struct], name: str, limits: Limits = Limits()) -> msgspec.Struct:
    """A JSON object body as ``request_type`` (a route's own contract, e.g. OpenAI's), within ``limits``."""
    if not body:
        raise InvalidInput(f"the request body is empty; {name} expects a JSON object")
    payload = _parse_json(body)
    if not isinstance(payload, dict):
        raise InvalidInput(f"the body must be a JSON object ({name} request)")
    request = _converted(payload, request_type, name)
    check_request(request, limits)
    return request


def _converted(payload: Any, request_type: type[msgspec.Struct], name: str) -> msgspec.Struct:
    try:
        payload = _whole_numbers_as_ints(payload)
    except RecursionError:
        raise InvalidInput("the body's JSON nests deeper than this server reads") from None
    try:
        return msgspec.convert(payload, request_type)
    except msgspec.ValidationError as error:
        field = _field_of(str(error))
        raise InvalidInput(f"invalid {name} request: {error}", field=field) from None


def _whole_numbers_as_ints(value: Any) -> Any:
    """``5.0`` where an integer is expected, as JSON Schema's ``integer`` allows and ``json.dumps`` of a
    float writes it; an int is also a valid float, so every whole float can be one."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers_as_ints(item) for item in value]
    return value


def _field_of(message: str) -> str | None:
    """The field msgspec's message blames: where it points, and the field it says is missing or unknown there."""
    match = _FIELD_PATH.search(message)
    where = match.group(1) if match else ""
    named = re.search(r"(?:missing required|unknown) field `([^`]*)`", message)
    if named:
        return ".".join(part for part in (where, named.group(1)) if part)
    return where or None


def with_query_parameters(payload: Any, query: Mapping[str, str] | None) -> Any:
    """``?top_k=3&truncation=true`` as parameters, read as numbers and booleans where they are ones; the
    body's own parameters win."""
    if not query or not isinstance(payload, dict) or not isinstance(payload.get("parameters", {}), dict):
        return payload
    return {**payload, "parameters": {**{key: _query_value(value) for key, value in query.items()}, **payload.get("parameters", {})}}


def _query_value(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return text


def _free_payload(body: bytes, content_type: str | None) -> Any:
    """A body for a task with no request contract: JSON as it is, else ``{"inputs": text or bytes}``."""
    if _declares_json(content_type) or body.lstrip()[:1] in (b"{", b"["):
        return _parse_json(body)
    if _declares_text(content_type):
        try:
            return {"inputs": body.decode("utf-8")}
        except UnicodeDecodeError:
            raise InvalidInput("the body is declared text but is not UTF-8") from None
    return {"inputs": body}


def _expected(task: Task) -> str:
    if task.raw_body == "any":
        return "a JSON body, or raw bytes"
    if task.raw_body == "text":
        return 'JSON {"inputs": ..., "parameters": {...}} or raw UTF-8 text'
    return f'raw {task.raw_body} bytes, or JSON {{"inputs": "<base64>", "parameters": {{...}}}}'


def _media_payload(body: bytes, content_type: str | None) -> Any:
    if _is_json(body, content_type):
        payload = _parse_json(body)
        if not isinstance(payload, dict):
            raise InvalidInput('a JSON body must be an object: {"inputs": "<base64>", ...}')
        return payload
    return {"inputs": body}


def _declares_json(content_type: str | None) -> bool:
    return bool(content_type) and "json" in content_type.lower()


def _declares_text(content_type: str | None) -> bool:
    return (content_type or "").lower().startswith("text/")


def _is_json(body: bytes, content_type: str | None) -> bool:
    return _declares_json(content_type) or body.lstrip()[:1] == b"{"


def _parse_json(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as error:
        raise InvalidInput(f"the body is not valid JSON: {error}") from None
    except RecursionError:
        raise InvalidInput("the body's JSON nests deeper than this server reads") from None
    except UnicodeDecodeError as error:
        raise InvalidInput(f"the body's JSON holds a string that is not UTF-8 (byte {error.start})") from None


def _text_payload(body: bytes, content_type: str | None) -> Any:
    """The request as api-inference-community read it: JSON if it parses, else raw text. A body that
    starts like JSON (an object, or an array of values) and does not parse is a 400, not an answer about
    the broken text, unless it is declared ``text/*``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the body is neither JSON nor UTF-8 text") from None
    try:
        payload = _parse_json(body)
    except InvalidInput as error:
        if _LOOKS_LIKE_JSON.match(text) and not _declares_text(content_type):
            raise InvalidInput(f"{error}; send Content-Type: text/plain to mean it as text") from None
        return {"inputs": text}
    return _json_text_payload(payload, text)


_LOOKS_LIKE_JSON = re.compile(r'\s*(\{|\[\s*(["{\[\]\-0-9]|true\b|false\b|null\b))')
"""An object, or an array whose first item is a JSON value: ``[MASK] is ...`` stays text for fill-mask."""


def _json_text_payload(payload: Any, text: str) -> Any:
    if isinstance(payload, dict):
        is_request = "inputs" in payload or "parameters" in payload
        return payload if is_request else {"inputs": payload}
    if isinstance(payload, (str, list)):
        return {"inputs": payload}
    return {"inputs": text}


def input_characters(request: msgspec.Struct) -> int:
    """How many characters of text ``inputs`` holds (api-inference-community's x-compute-characters)."""
    return sum(len(part) for path, part in texts_and_lists(request) if path.startswith("inputs") and isinstance(part, str))
