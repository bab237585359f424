"""How much work one request may ask for. A request over a limit is refused (413, naming the field and
the limit) before it reaches a model; backends read the limits too (``ModelSnapshot.limits``) for
what only they can measure, such as the size of an answer of one vector per token."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterator

import msgspec

from widgetd.errors import PayloadTooLarge


@dataclass(frozen=True)
class Limits:
    max_inputs: int = 256
    """Texts (sentences, labels, items of any list) in one request."""
    max_characters: int = 100_000
    """Characters in one text."""
    max_audio_seconds: float = 600.0
    max_image_pixels: int = 4096 * 4096
    max_response_bytes: int = 64 * 1024 * 1024
    """The largest answer a server sends."""
    max_inference_steps: int = 100
    """Denoising steps of one generated image (``num_inference_steps``)."""
    max_generated_pixels: int = 2048 * 2048
    """Pixels of one generated image (``width`` × ``height``)."""
    prefix_cache_bytes: int = 1024**3
    """Keys and values each generating model keeps of prompts it read, for later prompts that start the same
    way (prefix caching; 0: none)."""
    kv_cache_bytes: int = 0
    """Keys and values the sequences a model generates together may hold; they start while theirs fit (0: a
    share of the device's memory, see the transformers plugin)."""
    prefill_chunk: int = 0
    """Prompt tokens a generating model reads between two steps of the sequences already running (chunked
    prefill): a long prompt arriving does not hold up their tokens for all of its reading. 0: as many as
    take about one of their steps, measured as it runs."""

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def check_request(request: msgspec.Struct, limits: Limits) -> None:
    """Every text and list of a decoded request within ``limits``; PayloadTooLarge naming the first field over."""
    texts = 0
    for path, part in texts_and_lists(request):
        if isinstance(part, str):
            if len(part) > limits.max_characters:
                raise PayloadTooLarge(
                    f"{path}: {len(part)} characters, more than the {limits.max_characters} this server takes in one "
                    "text (--max-characters)",
                    field=path,
                )
            texts += path.startswith("inputs")
        elif len(part) > limits.max_inputs:
            raise PayloadTooLarge(
                f"{path}: {len(part)} items, more than the {limits.max_inputs} this server takes in one list (--max-inputs)",
                field=path,
            )
    if texts > limits.max_inputs:
        raise PayloadTooLarge(
            f"inputs: {texts} texts, more than the {limits.max_inputs} this server takes in one request (--max-inputs)",
            field="inputs",
        )


def check_generation(request: msgspec.Struct, limits: Limits) -> None:
    """A generated image's steps and size within ``limits`` (text-to-image, image-to-image); PayloadTooLarge
    naming the field."""
    parameters = getattr(request, "parameters", None)
    steps = getattr(parameters, "num_inference_steps", None)
    if steps is not None and steps > limits.max_inference_steps:
        raise PayloadTooLarge(
            f"parameters.num_inference_steps: {steps}, more than the {limits.max_inference_steps} this server runs "
            "(--max-inference-steps)",
            field="parameters.num_inference_steps",
        )
    width, height = _asked_size(parameters)
    if width and height and width * height > limits.max_generated_pixels:
        where = "parameters.target_size" if getattr(parameters, "target_size", None) is not None else "parameters.width"
        raise PayloadTooLarge(
            f"{where}: {width}x{height} is {width * height} pixels, more than the {limits.max_generated_pixels} this "
            "server makes in one image (--max-generated-pixels)",
            field=where,
        )


def _asked_size(parameters: Any) -> tuple[int | None, int | None]:
    target = getattr(parameters, "target_size", None)
    if target is not None:
        return target.width, target.height
    return getattr(parameters, "width", None), getattr(parameters, "height", None)


def texts_and_lists(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every text and every list of a decoded request, each with its path (``inputs.sentences[2]``), a list
    before its items."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, (list, tuple)):
        yield path, value
        for index, item in enumerate(value):
            yield from texts_and_lists(item, f"{path}[{index}]")
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            yield from texts_and_lists(getattr(value, name), f"{path}.{name}".lstrip("."))
