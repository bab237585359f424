"""One request to a served task and its reply, in the forms the kit's checks compare."""

from __future__ import annotations

import base64
import io
import math
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

MAX_SHOWN = 160


@dataclass(frozen=True)
class Call:
    """A request as a client sends it: a JSON body, or raw bytes (audio, images) with headers."""

    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    carries_media: bool = False
    """Whether ``inputs`` is base64 audio or image bytes."""

    @property
    def is_json(self) -> bool:
        return not isinstance(self.body, (bytes, str))

    @property
    def inputs(self) -> Any:
        """The request's ``inputs``, base64 media decoded to bytes."""
        if not self.is_json:
            return self.body
        inputs = self.body.get("inputs")
        return base64.b64decode(inputs) if self.carries_media and isinstance(inputs, str) else inputs

    @property
    def parameters(self) -> dict[str, Any]:
        return (self.body.get("parameters") or {}) if self.is_json else {}

    def describe(self) -> str:
        if isinstance(self.body, bytes):
            return f"<{len(self.body)} raw bytes, {self.headers or 'no headers'}>"
        return shorten(repr(self.body))


def shorten(text: str) -> str:
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}... ({len(text)} chars)"


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)
    """Lower-cased names."""

    def json(self) -> Any:
        import json

        return json.loads(self.content)

    @property
    def streamed(self) -> bool:
        return self.content_type.startswith("text/event-stream")

    def events(self) -> list[Any]:
        """A stream's server-sent events, each parsed, up to its closing ``[DONE]`` (kept as the string)."""
        import json

        lines = re.split(r"\r\n|\r|\n", self.content.decode("utf-8"))  # SSE's line ends only, not str.splitlines'
        datas = [line[len("data:") :].strip() for line in lines if line.startswith("data:")]
        return [data if data == "[DONE]" else json.loads(data) for data in datas]

    @property
    def error(self) -> str:
        try:
            return str(self.json().get("error", ""))
        except Exception:
            return ""

    def describe(self) -> str:
        return f"{self.status} {self.content_type} {shorten(self.content.decode('utf-8', 'replace'))}"


def send(client: httpx.Client, route: str, call: Call, timeout: float = 120) -> Reply:
    if call.is_json:
        response = client.post(route, json=call.body, headers=call.headers, timeout=timeout)
    else:
        response = client.post(route, content=call.body, headers=call.headers, timeout=timeout)
    headers = {name.lower(): value for name, value in response.headers.items()}
    return Reply(response.status_code, headers.get("content-type", ""), response.content, headers)


def decode_audio_bytes(data: bytes) -> tuple[np.ndarray, int]:
    import soundfile

    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=False)
    return samples, int(rate)


@dataclass(frozen=True)
class Picture:
    """An image field of an answer (a mask, a depth map) as its pixels: two pictures are the same when no pixel
    differs by more than one level, the rounding a float's last digits can tip."""

    pixels: np.ndarray


IMAGE_FIELDS = ("mask", "depth")


def decode_picture(data: str) -> Picture:
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(data))) as image:
        return Picture(np.asarray(image, dtype=np.int32))


def comparable(reply: Reply) -> Any:
    """The reply as plain data; audio (raw, or base64 ``blob`` fields) as decoded samples, images (raw, or
    base64 ``mask`` and ``depth`` fields) as their pixels."""
    if reply.content_type.startswith("audio/"):
        return decode_audio_bytes(reply.content)[0]
    if reply.content_type.startswith("image/"):
        return decode_picture(base64.b64encode(reply.content).decode())
    if reply.streamed:
        return reply.events()
    return _decode_blobs(reply.json())


def _decode_blobs(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: decode_audio_bytes(base64.b64decode(item))[0] if key == "blob"
            else decode_picture(item) if key in IMAGE_FIELDS and isinstance(item, str)
            else _decode_blobs(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_decode_blobs(item) for item in value]
    return value


def first_difference(left: Any, right: Any, tolerance: float, path: str = "$") -> str | None:
    """Where two comparable replies differ beyond ``tolerance`` (absolute and relative), or None."""
    if isinstance(left, Picture) and isinstance(right, Picture):
        if left.pixels.shape != right.pixels.shape:
            return f"{path}: an image of shape {left.pixels.shape} vs {right.pixels.shape}"
        most = int(np.max(np.abs(left.pixels - right.pixels))) if left.pixels.size else 0
        return f"{path}: pixels differ by up to {most} levels" if most > 1 else None
    if isinstance(left, np.ndarray) or isinstance(right, np.ndarray):
        left, right = np.asarray(left), np.asarray(right)
        if left.shape != right.shape:
            return f"{path}: audio of shape {left.shape} vs {right.shape}"
        if left.size and not np.allclose(left, right, atol=tolerance * 10, rtol=tolerance):
            return f"{path}: audio samples differ by up to {float(np.max(np.abs(left - right))):.4g}"
        return None
    if isinstance(left, bool) or isinstance(right, bool) or not _is_number(left) or not _is_number(right):
        return _first_structural_difference(left, right, tolerance, path)
    if not math.isclose(left, right, rel_tol=tolerance, abs_tol=tolerance):
        return f"{path}: {left!r} vs {right!r}"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float))


def _first_structural_difference(left: Any, right: Any, tolerance: float, path: str) -> str | None:
    if isinstance(left, dict) and isinstance(right, dict):
        if left.keys() != right.keys():
            return f"{path}: keys {sorted(left)} vs {sorted(right)}"
        for key in left:
            found = first_difference(left[key], right[key], tolerance, f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            return f"{path}: {len(left)} items vs {len(right)}"
        for index, (a, b) in enumerate(zip(left, right)):
            found = first_difference(a, b, tolerance, f"{path}[{index}]")
            if found:
                return found
        return None
    if left != right:
        return f"{path}: {shorten(repr(left))} vs {shorten(repr(right))}"
    return None
