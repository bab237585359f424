"""What a task is: its request and answer Structs and how it meets HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

import msgspec

from widgetd.tasks._progress import ProgressEvent

RawBody = Literal["text", "audio", "image", "any"]
"""What a request body that is not a JSON object with ``inputs`` means for a task; ``any``: the task has no
request contract, a JSON body is the request as it is, other bodies are ``{"inputs": text or bytes}``."""

ResponseMedia = Literal["json", "audio", "image", "any"]
"""``any``: the task has no answer contract; an answer is an image (a ``widgetd.media.Picture``), raw bytes,
or JSON."""


@dataclass(frozen=True)
class ReplyOptions:
    """What the client asked about the reply's form, beyond the task's contract."""

    audio_format: str = "flac"
    image_format: str = "png"
    user_agent: str = ""
    """The client's User-Agent: two official clients parse some answers in shapes that exclude each other."""


def _same(request: Any, answer: Any, reply: ReplyOptions) -> Any:
    return answer


@dataclass(frozen=True)
class Task:
    """One task's contract: request Struct, answer type and wire shape.

    ``input`` is the request Struct (``inputs`` plus ``parameters`` or options);
    ``output`` is what a pipeline returns for one request; ``to_wire`` shapes that
    answer the way the official clients parse it and ``wire_output`` is its type.
    ``raw_body`` says what a body that is not a JSON request means; a task whose
    ``response_media`` is ``audio`` answers with a ``widgetd.media.Audio``, one whose ``response_media`` is
    ``image`` with a ``widgetd.media.Picture``.
    """

    name: str
    summary: str
    input: Any
    """A ``msgspec.Struct`` type; ``Any`` for a task with no request contract (``raw_body="any"``)."""
    output: Any
    raw_body: RawBody = "text"
    response_media: ResponseMedia = "json"
    wire_output: Any = None
    to_wire: Callable[[Any, Any, ReplyOptions], Any] = _same
    stream_output: Any = None
    """What each server-sent event holds when a request asks to stream (``stream: true``) and the
    model generates token by token, or for a task with ``progress``, asks for ``text/event-stream``;
    None: the task never streams."""
    progress: bool = False
    """A long job (diffusion): a request sent with ``Accept: text/event-stream`` gets the progress its
    backend reports (``widgetd.progress``) as events, then the answer (``widgetd.tasks._progress``)."""

    def __post_init__(self) -> None:
        if self.wire_output is None:
            object.__setattr__(self, "wire_output", self.output)
        if self.progress and self.stream_output is None:
            object.__setattr__(self, "stream_output", ProgressEvent)

    def request_schema(self) -> dict[str, Any]:
        return msgspec.json.schema(self.input)

    def response_schema(self) -> dict[str, Any]:
        if self.response_media == "any":
            return {}
        if self.response_media in ("audio", "image"):
            return {"type": "string", "format": "binary", "contentMediaType": f"{self.response_media}/*"}
        return msgspec.json.schema(self.wire_output)


@dataclass(frozen=True)
class RouteContract:
    """A route with a contract of its own beside the tasks' (OpenAI's API): its path, request and answer."""

    name: str
    path: str
    summary: str
    input: type[msgspec.Struct] | None
    output: Any
    stream_output: Any = None
    """What each server-sent event holds when the request asks to stream."""
    method: Literal["get", "post"] = "post"

    def schemas(self) -> dict[str, dict[str, Any]]:
        parts = {"input.json": self.input, "output.json": self.output, "stream_output.json": self.stream_output}
        return {name: msgspec.json.schema(type_) for name, type_ in parts.items() if type_ is not None}


class Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Base for request Structs: unknown fields are rejected by name."""


class Answer(msgspec.Struct, omit_defaults=False):
    """Base for answer Structs: every field is always on the wire."""
