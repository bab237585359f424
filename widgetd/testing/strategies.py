"""Hypothesis strategies for task requests, derived from the same msgspec Structs the server validates with.

    from hypothesis import given
    from widgetd.testing.strategies import requests_for, invalid_requests_for

    @given(requests_for(task))          # JSON-ready dicts that fit the task's contract
    @given(invalid_requests_for(task))  # dicts that break it in one place

Media fields (``bytes``) get real audio or images (any container, rate, channel count, size and
mode), base64-encoded as JSON carries them. A task a plugin registers gets strategies too.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec.inspect as mi
from hypothesis import strategies as st

from widgetd.tasks import Task
from widgetd.testing.audio import CONTAINERS, encode, tone
from widgetd.testing.images import FORMATS, MODES, render_image

SMALL_INT = 8
"""Ints without an upper bound stay small: a max_new_tokens of 10**9 tests patience, not contracts."""


def audio_bytes() -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda seconds, rate, channels, container: encode(tone(seconds, rate, channels), rate, container),
        st.sampled_from([0.1, 0.5, 1.3]),
        st.sampled_from([8000, 16000, 22050, 44100]),
        st.sampled_from([1, 2]),
        st.sampled_from(CONTAINERS),
    )


def image_bytes() -> st.SearchStrategy[bytes]:
    return st.builds(
        render_image, st.integers(1, 96), st.integers(1, 96), st.sampled_from(MODES), st.sampled_from(FORMATS)
    )


def media_for(task: Task) -> st.SearchStrategy[bytes]:
    return {"audio": audio_bytes, "image": image_bytes}.get(task.raw_body, st.binary)()


def requests_for(task: Task) -> st.SearchStrategy[dict]:
    """JSON-ready request bodies that decode under ``task.input``."""
    return bodies_for(task.input, media_for(task))


def bodies_for(request_type: type, media: st.SearchStrategy[bytes] | None = None) -> st.SearchStrategy[dict]:
    """JSON-ready bodies that decode under ``request_type`` (any request Struct, a route's own too)."""
    return _strategy(mi.type_info(request_type), media if media is not None else st.binary())


def _strategy(info: mi.Type, media: st.SearchStrategy[bytes]) -> st.SearchStrategy[Any]:
    if isinstance(info, mi.StructType):
        required = {f.encode_name: _strategy(f.type, media) for f in info.fields if f.required}
        optional = {f.encode_name: _strategy(f.type, media) for f in info.fields if not f.required}
        return st.fixed_dictionaries(required, optional=optional)
    if isinstance(info, mi.StrType):
        if info.pattern:
            return st.from_regex(info.pattern, fullmatch=False).filter(lambda s: len(s) >= (info.min_length or 0))
        return st.text(min_size=info.min_length or 0, max_size=min(info.max_length or 40, 40))
    if isinstance(info, mi.BoolType):
        return st.booleans()
    if isinstance(info, mi.IntType):
        low = info.ge if info.ge is not None else (info.gt + 1 if info.gt is not None else 0)
        high = info.le if info.le is not None else (info.lt - 1 if info.lt is not None else low + SMALL_INT)
        return st.integers(low, min(high, low + SMALL_INT))
    if isinstance(info, mi.FloatType):
        low = info.ge if info.ge is not None else info.gt if info.gt is not None else 0.0
        high = info.le if info.le is not None else info.lt if info.lt is not None else low + 2.0
        return st.floats(low, high, exclude_min=info.gt is not None, exclude_max=info.lt is not None, allow_nan=False)
    if isinstance(info, mi.BytesType):
        return media.map(lambda data: base64.b64encode(data).decode())
    if isinstance(info, mi.ListType):
        return st.lists(_strategy(info.item_type, media), min_size=info.min_length or 0, max_size=min(info.max_length or 4, 4))
    if isinstance(info, mi.TupleType):
        return st.tuples(*(_strategy(item, media) for item in info.item_types)).map(list)
    if isinstance(info, mi.UnionType):
        return st.one_of(*(_strategy(option, media) for option in info.types))
    if isinstance(info, mi.LiteralType):
        return st.sampled_from(list(info.values))
    if isinstance(info, mi.NoneType):
        return st.none()
    if isinstance(info, mi.DictType):
        # A free-form dict (``dict`` with no item types) gets short texts.
        keys, values = (st.text(max_size=10) if isinstance(part, mi.AnyType) else _strategy(part, media) for part in (info.key_type, info.value_type))
        return st.dictionaries(keys, values, min_size=info.min_length or 0, max_size=max(3, info.min_length or 0))
    raise TypeError(f"no strategy for {info!r}: give the field a concrete type")


def invalid_requests_for(task: Task) -> st.SearchStrategy[dict]:
    """Bodies that break ``task.input`` in one place: a missing or unknown field, a wrong type."""
    info = mi.type_info(task.input)
    required = [f.encode_name for f in info.fields if f.required]

    def drop(request: dict, name: str) -> dict:
        return {k: v for k, v in request.items() if k != name}

    breakers = [
        *([st.tuples(requests_for(task), st.sampled_from(required)).map(lambda pair: drop(*pair))] if required else []),
        requests_for(task).map(lambda request: {**request, "no_such_field": 1}),
        requests_for(task).map(lambda request: {**request, "inputs": {"wrong": ["shape"]}} if not _accepts_object(info) else {**request, "inputs": 12345}),
    ]
    return st.one_of(*breakers)


def _accepts_object(info: mi.StructType) -> bool:
    inputs = next(f.type for f in info.fields if f.encode_name == "inputs")
    return isinstance(inputs, (mi.StructType, mi.DictType))
