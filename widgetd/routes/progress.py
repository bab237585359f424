"""A long job's progress as server-sent events: the steps its backend reports, then the answer as the same
request without the event stream gets it (an image as base64), or the error."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any, AsyncIterator, Awaitable, Callable

import msgspec
from litestar import Request
from litestar.response import Stream as StreamResponse

from widgetd.batching import QueueFull
from widgetd.errors import WidgetdError
from widgetd.models import ServedModel
from widgetd.progress import listening
from widgetd.request_ids import REQUEST_ID
from widgetd.routes.generation import SSE_HEADERS, sse
from widgetd.routes.waiting import while_connected
from widgetd.state import ServerState
from widgetd.tasks import Task
from widgetd.tasks._progress import ProgressError, ProgressResult

log = logging.getLogger("widgetd")

Encode = Callable[[Any], Awaitable[tuple[bytes, str]]]
"""The checked answer as the bytes and content type the same request without the event stream gets."""


def wants_progress(task: Task, accept: str | None) -> bool:
    return task.progress and "text/event-stream" in (accept or "").lower()


def progress_response(state: ServerState, model: ServedModel, task: Task, decoded: Any, encode: Encode, headers: dict[str, str]) -> StreamResponse:
    """Events while ``decoded`` runs; a client that leaves gives the request up (its backend stops between
    steps), as a client of the plain route does."""

    async def lines() -> AsyncIterator[bytes]:
        with listening(decoded) as listener:
            # No request to watch: litestar cancels this generator when the client leaves, and the answer
            # given up here is a request given up for the batch (its backend stops between steps).
            answer = asyncio.ensure_future(model.batcher.answer(task.name, decoded))
            work = asyncio.ensure_future(while_connected(None, answer, state.settings.request_timeout, state.shutdown.expired))
            try:
                while not work.done():
                    step = asyncio.ensure_future(listener.events.get())
                    await asyncio.wait({work, step}, return_when=asyncio.FIRST_COMPLETED)
                    if step.done():
                        yield sse(step.result())
                    else:
                        step.cancel()
                while not listener.events.empty():
                    yield sse(listener.events.get_nowait())
                yield sse(await _result(work, encode))
            finally:
                answer.cancel()
                work.cancel()
        yield b"data: [DONE]\n\n"

    return StreamResponse(lines(), media_type="text/event-stream", headers={**headers, **SSE_HEADERS})


async def _result(work: asyncio.Future, encode: Encode) -> Any:
    result = await _outcome(work, encode)
    if isinstance(result, ProgressError):
        result.request_id = REQUEST_ID.get()
    return result


async def _outcome(work: asyncio.Future, encode: Encode) -> Any:
    try:
        answer, _ = await work
        content, media_type = await encode(answer)
    except QueueFull as error:
        return ProgressError(error=f"the model is overloaded: {error}", status=503)
    except WidgetdError as error:  # a client's error, or one the server means (overloaded, timed out, stopping)
        return ProgressError(error=str(error), status=getattr(error, "status", 500), field=getattr(error, "field", None))
    except Exception as error:  # a bug: said once in the log, the client told without details
        log.exception("a job failed while its progress was streamed")
        return ProgressError(error=f"the job failed: {type(error).__name__}", status=500)
    if media_type == "application/json":
        return ProgressResult(content_type=media_type, answer=msgspec.json.Raw(content))
    return ProgressResult(content_type=media_type, blob=base64.b64encode(content).decode())
