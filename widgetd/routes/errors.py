"""Every error as the JSON contract: ``{"error", "field"?, "request_id"}``, ``X-Error-Message``, the right status."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

from widgetd.errors import ClientError, ClientGone, InternalError, InvalidAnswer, ServiceUnavailable, code_for_status, told_to_clients
from widgetd.request_ids import REQUEST_ID

log = logging.getLogger("widgetd")


def error_response(status: int, message: str, *, code: str = "", openai: bool = False, **extra: Any) -> Response:
    """``{"error": message, "field"?, "request_id"}`` with ``X-Error-Code: code`` (by default, the status's); on
    OpenAI's routes, OpenAI's shape (which its SDKs show): ``{"error": {"message", "type", "param", "code"},
    "request_id"}``, the field as ``param``."""
    if openai:
        body: dict[str, Any] = {"error": openai_error(status, message, extra.get("field"))}
    else:
        body = {"error": message, **{k: v for k, v in extra.items() if v is not None}}
    if request_id := REQUEST_ID.get():
        body["request_id"] = request_id
    headers = {"X-Error-Message": _header_safe(message), "X-Error-Code": code or code_for_status(status)}
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json", headers=headers)


def openai_error(status: int, message: str, field: str | None = None) -> dict[str, Any]:
    kind = "invalid_request_error" if 400 <= status < 500 else "server_error"
    return {"message": message, "type": kind, "param": field, "code": str(status)}


def is_openai_route(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/v1/") or (path.startswith("/models/") and "/v1/" in path)


def _header_safe(message: str) -> str:
    """HTTP header values allow no control characters and no surrounding whitespace."""
    printable = "".join(c if " " <= c <= "~" else " " for c in message[:500])
    return " ".join(printable.split())


def _client_error(request: Request, error: ClientError) -> Response:
    response = error_response(error.status, error.message, code=error.code, field=error.field, openai=is_openai_route(request))
    response.headers.update(error.headers)
    return response


def _http_error(request: Request, error: HTTPException) -> Response:
    message = error.detail or "request failed"
    if error.status_code == 413:
        limit = request.route_handler.resolve_request_max_body_size()
        message = f"the request body is larger than this server's limit of {limit} bytes"
    response = error_response(error.status_code, message, openai=is_openai_route(request))
    response.headers.update(error.headers or {})
    return response


def _unavailable(request: Request, error: ServiceUnavailable) -> Response:
    response = error_response(503, str(error), code=error.code, openai=is_openai_route(request), **error.details)
    response.headers["Retry-After"] = str(error.retry_after)
    return response


def _client_gone(request: Request, error: ClientGone) -> Response:
    return error_response(499, "the client closed the connection", code=error.code, openai=is_openai_route(request))


def _invalid_answer(request: Request, error: InvalidAnswer) -> Response:
    return error_response(500, error.message, code=error.code, field=error.field, openai=is_openai_route(request))


def _unexpected(request: Request, error: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, f"internal error: {told_to_clients(error)}", code=InternalError.code, openai=is_openai_route(request))


EXCEPTION_HANDLERS = {
    ClientError: _client_error,
    ServiceUnavailable: _unavailable,
    ClientGone: _client_gone,
    InvalidAnswer: _invalid_answer,
    HTTPException: _http_error,
    Exception: _unexpected,
}
