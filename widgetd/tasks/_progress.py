"""The events of a long job's progress (diffusion steps), for a request sent with ``Accept: text/event-stream``:
``progress`` events, then one ``result`` (or ``error``), then ``[DONE]``."""

from __future__ import annotations

from typing import Any, Optional, Union

import msgspec


class ProgressStep(msgspec.Struct, tag="progress", tag_field="type", omit_defaults=False):
    step: int
    """Steps done, from 1."""
    total: int
    """Steps the job takes."""
    elapsed: float
    """Seconds since the server took the request (a wait in the model's queue included)."""
    preview: Optional[str] = None
    """Now and then: a small PNG of the work so far, base64 (``data:image/png;base64,`` + it shows it)."""


class ProgressResult(msgspec.Struct, tag="result", tag_field="type", omit_defaults=True):
    """The answer, as the same request without the event stream gets it."""

    content_type: str = msgspec.field(name="content-type")
    blob: Optional[str] = None
    """An image or audio answer, base64."""
    answer: Any = None
    """A JSON answer."""


class ProgressError(msgspec.Struct, tag="error", tag_field="type", omit_defaults=False):
    error: str
    status: int
    """The HTTP status the same request without the event stream gets."""
    field: Optional[str] = None
    request_id: Optional[str] = None
    """As in the ``X-Request-Id`` header and the server's log lines."""


ProgressEvent = Union[ProgressStep, ProgressResult, ProgressError]
