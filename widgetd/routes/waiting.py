"""Waiting for work on behalf of a client: until it is done, the client leaves, time runs out or the
server's shutdown timeout passes."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable

from litestar import Request

from widgetd.errors import ClientGone, RequestTimedOut, ServiceUnavailable


async def while_connected(request: Request | None, work: Awaitable[Any], timeout: float, shutdown: asyncio.Event) -> Any:
    """``work``'s result, unless the client leaves first, time runs out or the server's shutdown
    timeout passes; then the work is dropped (its batch told to stop, see ``widgetd.cancellation``).
    Without a ``request`` (a response already streaming, whose disconnect litestar watches), only
    the time and the shutdown are watched."""
    work_task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request) if request is not None else asyncio.Event().wait())
    stopped = asyncio.ensure_future(shutdown.wait())
    try:
        done, _ = await asyncio.wait({work_task, gone, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        stopped.cancel()
    if work_task in done:
        return work_task.result()
    work_task.cancel()
    if gone in done:
        raise ClientGone()
    if stopped in done:
        raise ServiceUnavailable("this server shut down before the answer was ready; send the request again", 1)
    raise RequestTimedOut(f"no answer within {timeout:g} s; the model is busy or the input too large")


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
