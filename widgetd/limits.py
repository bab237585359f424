"""How much work one request may ask for. A request over a limit is refused (413, naming the field and
the limit) before it reaches a model; backends read the limits too (``ModelSnapshot.limits``) for
what only they can measure, such as the size of an answer of one vector per token."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

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

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def check_request(request: msgspec.Struct, limits: Limits) -> None:
    """Every text and list of a decoded request within ``limits``; PayloadTooLarge naming the first field over."""
    texts = _check(request, limits, "")
    if texts > limits.max_inputs:
        raise PayloadTooLarge(
            f"inputs: {texts} texts, more than the {limits.max_inputs} this server takes in one request (--max-inputs)",
            field="inputs",
        )


def _check(value: Any, limits: Limits, path: str) -> int:
    """The texts in ``inputs`` under ``value``, each checked, and every list checked, on the way."""
    if isinstance(value, str):
        if len(value) > limits.max_characters:
            raise PayloadTooLarge(
                f"{path}: {len(value)} characters, more than the {limits.max_characters} this server takes in one "
                "text (--max-characters)",
                field=path,
            )
        return 1 if path.startswith("inputs") else 0
    if isinstance(value, (list, tuple)):
        if len(value) > limits.max_inputs:
            raise PayloadTooLarge(
                f"{path}: {len(value)} items, more than the {limits.max_inputs} this server takes in one list (--max-inputs)",
                field=path,
            )
        return sum(_check(item, limits, f"{path}[{index}]") for index, item in enumerate(value))
    if isinstance(value, msgspec.Struct):
        return sum(_check(getattr(value, name), limits, f"{path}.{name}".lstrip(".")) for name in value.__struct_fields__)
    return 0
