"""Progress of long jobs: a backend reports the steps of a request's work (diffusion steps, ...) from the
model's thread; a client that asked for ``text/event-stream`` sees each as an event before the answer::

    from widgetd.progress import report_progress, wants_preview

    def on_step(step, total, latents):
        for request in requests:
            preview = small_picture(latents) if wants_preview(request, step, total) else None
            report_progress(request, step, total, preview)

Reporting costs a dictionary lookup when nobody listens (the request came without the event stream).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
import time
from typing import Any, Iterator

from widgetd.tasks._progress import ProgressStep

PREVIEWS = 5
"""About how many previews a job shows, spread over its steps."""

_listeners: dict[int, Listener] = {}
_lock = threading.Lock()


class Listener:
    """The events of one request, handed from the model's thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.events: asyncio.Queue[ProgressStep] = asyncio.Queue()
        self.started = time.perf_counter()

    def put(self, step: int, total: int, preview: Any = None) -> None:
        encoded = _png_base64(preview) if preview is not None else None
        event = ProgressStep(step=step, total=total, elapsed=round(time.perf_counter() - self.started, 3), preview=encoded)
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)


@contextlib.contextmanager
def listening(request: Any) -> Iterator[Listener]:
    """Events for ``request`` while the block runs (on the event loop)."""
    listener = Listener(asyncio.get_running_loop())
    with _lock:
        _listeners[id(request)] = listener
    try:
        yield listener
    finally:
        with _lock:
            _listeners.pop(id(request), None)


def report_progress(request: Any, step: int, total: int, preview: Any = None) -> None:
    """``step`` of ``total`` done for ``request``; ``preview``: a ``widgetd.media.Picture`` or PIL image of
    the work so far, or None. Nothing happens when nobody listens."""
    listener = _listeners.get(id(request))
    if listener is not None:
        listener.put(step, total, preview)


def wants_preview(request: Any, step: int, total: int) -> bool:
    """Whether a preview is worth making now: someone listens, and this step is one of about ``PREVIEWS``
    spread over the job (never the last: the answer follows)."""
    if id(request) not in _listeners or step >= total:
        return False
    every = max(1, total // PREVIEWS)
    return step % every == 0


def _png_base64(preview: Any) -> str:
    from widgetd.media import Picture, encode_image

    picture = preview if isinstance(preview, Picture) else Picture.of(preview)
    return base64.b64encode(encode_image(picture, "png")).decode()
