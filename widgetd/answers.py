"""Checking what a backend answers against its task's output type, before anything is encoded.

Every answer passes through ``checked_answer`` once, on the model's thread: a backend that
answers ``["not a list of labels"]`` for text-classification is caught here, named, and never
reaches a client as a 200.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import numpy as np

from widgetd.errors import InvalidAnswer
from widgetd.media import Picture
from widgetd.tasks import Task

_PATH = re.compile(r" - at `\$([^`]*)`$")


def checked_answer(task: Task, answered_by: str, answer: Any) -> Any:
    """``answer`` rebuilt under ``task.output``; InvalidAnswer naming what answered (``backend 'x'``) and
    the field that breaks it."""
    if task.response_media == "any":
        return _checked_free_answer(task, answered_by, answer)
    arrays: list[np.ndarray] = []
    pictures: list[Picture] = []

    def to_plain(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            arrays.append(value)
            return {"array": len(arrays) - 1}
        if isinstance(value, Picture):
            pictures.append(value)
            return {"picture": len(pictures) - 1}
        if isinstance(value, np.generic):
            return value.item()
        raise TypeError(f"a {type(value).__module__}.{type(value).__qualname__} is not data the contract knows")

    def from_plain(expected: type, value: Any) -> Any:
        if expected is np.ndarray and isinstance(value, dict) and set(value) == {"array"}:
            return _checked_samples(arrays[value["array"]])
        if expected is Picture and isinstance(value, dict) and set(value) == {"picture"}:
            return _checked_picture(pictures[value["picture"]])
        raise NotImplementedError

    try:
        plain = msgspec.to_builtins(answer, enc_hook=to_plain)
        return msgspec.convert(plain, task.output, dec_hook=from_plain)
    except msgspec.ValidationError as error:
        message, field = _split_path(str(error))
        raise InvalidAnswer(answered_by, task.name, message, field) from None
    except (TypeError, ValueError) as error:
        raise InvalidAnswer(answered_by, task.name, str(error)) from None


def _checked_free_answer(task: Task, answered_by: str, answer: Any) -> Any:
    """A task with no answer contract: an image, raw bytes, or anything JSON can carry (numpy as lists)."""
    if isinstance(answer, (bytes, bytearray, Picture)):
        return bytes(answer) if isinstance(answer, bytearray) else answer

    def to_plain(value: Any) -> Any:
        if isinstance(value, (np.ndarray, np.generic)):
            return value.tolist()
        raise TypeError(f"a {type(value).__module__}.{type(value).__qualname__} cannot be sent as JSON")

    try:
        return msgspec.json.decode(msgspec.json.encode(answer, enc_hook=to_plain))
    except (TypeError, ValueError, OverflowError) as error:
        raise InvalidAnswer(answered_by, task.name, str(error)) from None


def _checked_samples(samples: np.ndarray) -> np.ndarray:
    if samples.dtype.kind not in "fiu" or samples.ndim not in (1, 2):
        raise ValueError(f"audio samples must be a real array of 1 or 2 dimensions, got {samples.dtype} {samples.shape}")
    if samples.dtype.kind == "f" and not np.isfinite(samples).all():
        raise ValueError("audio samples must be finite numbers")
    return samples


def _checked_picture(picture: Picture) -> Picture:
    pixels = picture.pixels
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise ValueError("picture pixels must be a uint8 array")
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))) or 0 in pixels.shape[:2]:
        raise ValueError(f"picture pixels must be shaped (height, width), (height, width, 3) or (height, width, 4), got {pixels.shape}")
    return picture


def _split_path(message: str) -> tuple[str, str]:
    """msgspec's "Expected `float`, got `str` - at `$[0].score`" as the problem and ``answer[0].score``."""
    match = _PATH.search(message)
    if not match:
        return message, "answer"
    return message[: match.start()], "answer" + match.group(1)
