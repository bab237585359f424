"""Request ids: every request gets one, the client's ``X-Request-Id`` when it sends one widgetd can log safely,
else a new one. It comes back in the ``X-Request-Id`` header and in every error body, and every log line
written while the request is served carries it (``record.request_id``), uvicorn's access line included, so a
client's error leads to its lines in the log."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar
from typing import Any, Awaitable, Callable

REQUEST_ID: ContextVar[str | None] = ContextVar("widgetd_request_id", default=None)
HEADER = b"x-request-id"
_LOGGABLE = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
"""What a client's id may be to be kept: no spaces or control characters that could forge a log line."""

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    given = next((value.decode("latin-1") for name, value in headers if name.lower() == HEADER), "")
    return given if _LOGGABLE.fullmatch(given) else uuid.uuid4().hex


class RequestIds:
    """ASGI middleware around the whole app (unknown routes and the framework's own errors included).

    ``proxy_id``: behind a proxy that gives each request its id and sends it back itself (Ray Serve's), how to
    read that id; the app then uses it and adds no header of its own."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], proxy_id: Callable[[], str | None] | None = None) -> None:
        self.app = app
        self.proxy_id = proxy_id
        carry_request_ids_in_logs()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = (self.proxy_id() if self.proxy_id else None) or request_id_of(scope.get("headers", []))

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (HEADER, request_id.encode())]}
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send if self.proxy_id else send_with_id)
        finally:
            REQUEST_ID.reset(token)


_carrying = False


def carry_request_ids_in_logs() -> None:
    """From now on, every log record made while a request is served has its id as ``request_id`` (else None)."""
    global _carrying
    if _carrying:
        return
    _carrying = True
    make_record = logging.getLogRecordFactory()

    def record_with_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.request_id = REQUEST_ID.get()
        return record

    logging.setLogRecordFactory(record_with_id)
