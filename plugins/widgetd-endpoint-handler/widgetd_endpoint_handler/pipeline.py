"""A repo's handler as a widgetd pipeline: requests in the toolkit's shape in, answers under the task's contract out."""

from __future__ import annotations

import base64
import io
from typing import Any, Callable, Sequence

import msgspec
import numpy as np

from widgetd import ClientError, InvalidInput, Task
from widgetd.answers import checked_answer
from widgetd.errors import InvalidAnswer
from widgetd.media import Audio, Picture, decode_audio, decode_image
from widgetd.tasks.audio_to_audio import SeparatedSource

BAD_INPUT_ERRORS = (ValueError, TypeError, KeyError)
"""What handlers raise for a request they cannot read: answered 400, as the toolkit answered every handler error."""


class HandlerPipeline:
    """Calls the handler once per request, in order, on the model's one thread (handlers are not thread-safe)."""

    def __init__(self, handler: Callable[[Any], Any], answered_by: str, task: Task, max_image_pixels: int) -> None:
        self.handler = handler
        self.answered_by = answered_by
        self.task = task
        self.max_image_pixels = max_image_pixels
        self.tasks = (task.name,)

    def __call__(self, task: str, requests: Sequence[Any]) -> list[Any]:
        return [self._answer(request) for request in requests]

    def _answer(self, request: Any) -> Any:
        data = request_data(self.task, request, self.max_image_pixels)
        try:
            answer = self.handler(data)
        except InvalidInput:
            raise
        except BAD_INPUT_ERRORS as error:
            raise InvalidInput(_message(error)) from None
        if self.task.response_media == "any":
            return free_answer(answer)
        return contract_answer(self.task, self.answered_by, answer)


def _message(error: Exception) -> str:
    if isinstance(error, ValueError) and str(error):
        return str(error)
    return f"{type(error).__name__}: {error}"


# ---- requests ---------------------------------------------------------------------------------------


def request_data(task: Task, request: Any, max_image_pixels: int) -> Any:
    """The body as the toolkit gave it to handlers: ``{"inputs", "parameters"}`` with audio as bytes and
    images as PIL images, whatever form (raw bytes, base64 in JSON) the client sent them in."""
    if task.raw_body == "any":
        return _with_image_opened(request, max_image_pixels) if isinstance(request, dict) else request
    data = msgspec.to_builtins(request, builtin_types=(bytes,))
    if task.raw_body == "image":
        inputs = data["inputs"]
        if isinstance(inputs, bytes):
            data["inputs"] = decode_image(inputs)
        else:
            inputs["image"] = decode_image(inputs["image"])
    return data


def _with_image_opened(data: dict, max_image_pixels: int) -> dict:
    """A raw body sent to a custom handler: an image as a PIL image (the toolkit's ``image/*`` bodies), other bytes as they are."""
    inputs = data.get("inputs")
    if not isinstance(inputs, bytes) or not _is_image(inputs):
        return data
    from widgetd.media import check_image

    check_image(inputs, max_image_pixels)
    return {**data, "inputs": decode_image(inputs)}


def _is_image(data: bytes) -> bool:
    from PIL import Image

    try:
        Image.open(io.BytesIO(data))
    except Exception:
        return False
    return True


# ---- answers ----------------------------------------------------------------------------------------


def free_answer(answer: Any) -> Any:
    """A custom handler's answer: a PIL image as a Picture (sent as an image), bytes as they are, the rest as plain data."""
    if _is_pil(answer):
        return Picture.of(answer)
    if isinstance(answer, (bytes, bytearray)):
        return bytes(answer)
    return plain(answer)


def contract_answer(task: Task, answered_by: str, answer: Any) -> Any:
    """The handler's answer in the task's answer types (the core checks it, naming the field it breaks).

    Handlers answer as the pipelines they wrap do, or as the wire shows: audio as bytes or
    ``{"audio", "sampling_rate"}``, images as PIL images, masks as PIL images or base64 PNGs, one answer
    in a list (``[{"summary_text": ...}]``) or one bare where the task answers a list.
    """
    try:
        if task.response_media == "audio":
            return as_audio(answer)
        if task.response_media == "image":
            return as_picture(answer)
        if task.name == "audio-to-audio" and isinstance(answer, list):
            return [as_source(item) for item in answer]
    except (ClientError, ValueError) as error:
        # Bytes the handler answered that are not audio or an image: its fault, not the client's.
        raise InvalidAnswer(answered_by, task.name, getattr(error, "message", str(error))) from None
    answer = plain(answer)
    # The pipelines answer one item bare where the task's answer is a list (QA with top_k 1), or one answer
    # in a list where it is one object (summaries): try the other if the answer as given does not fit.
    other = (answer[0] if len(answer) == 1 else None) if isinstance(answer, list) else [answer]
    if other is not None and not _fits(task, answered_by, answer) and _fits(task, answered_by, other):
        return other
    return answer


def _fits(task: Task, answered_by: str, answer: Any) -> bool:
    try:
        checked_answer(task, answered_by, answer)
    except InvalidAnswer:
        return False
    return True


def plain(value: Any) -> Any:
    """Numbers, texts, lists and dicts: tensors and arrays as lists, numpy scalars as numbers, PIL images
    (masks, depth maps) as PNG bytes."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    value = plain_array(value)
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    if _is_pil(value):
        return _png(value)
    return value


def as_audio(answer: Any) -> Any:
    if isinstance(answer, (bytes, bytearray)):
        return decode_audio(bytes(answer))
    if isinstance(answer, dict) and "audio" in answer and "sampling_rate" in answer:
        samples = np.asarray(plain_array(answer["audio"]), dtype=np.float32)
        return Audio(samples.squeeze() if samples.ndim > 1 and 1 in samples.shape else samples, int(answer["sampling_rate"]))
    return answer


def plain_array(value: Any) -> Any:
    """A torch tensor as a numpy array (without importing torch); anything else as it is."""
    return value.detach().cpu().numpy() if hasattr(value, "detach") and hasattr(value, "cpu") else value


def as_picture(answer: Any) -> Any:
    if _is_pil(answer):
        return Picture.of(answer)
    if isinstance(answer, (bytes, bytearray)):
        return Picture.of(decode_image(bytes(answer)))
    return answer


def as_source(item: Any) -> Any:
    """One separated source: ``{"label", "blob" (base64 audio)}`` as the wire has it, or ``{"label", "audio", "sampling_rate"}``."""
    if not isinstance(item, dict):
        return item
    if "blob" in item and isinstance(item["blob"], str):
        return SeparatedSource(item.get("label"), decode_audio(base64.b64decode(item["blob"])))
    if "audio" in item:
        return SeparatedSource(item.get("label"), as_audio(item))
    return item


def _is_pil(value: Any) -> bool:
    return type(value).__module__.startswith("PIL.") and hasattr(value, "mode") and hasattr(value, "save")


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
