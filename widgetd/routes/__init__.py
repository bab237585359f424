"""The HTTP layer, one module per concern: ``inference`` (the task routes), ``status`` (health, info,
metrics, the OpenAPI document, the widget page) and ``errors`` (every error as the JSON contract)."""

from __future__ import annotations

import hmac

from litestar import Request

from widgetd.errors import Unauthorized
from widgetd.state import ServerState

STATE_KEY = "widgetd"


def state_of(request: Request) -> ServerState:
    return request.app.state[STATE_KEY]


def methods_of(rest: str) -> str | None:
    """The methods a path under ``/models/{model_id}`` answers, by what follows the model id; None: no such route."""
    if rest.startswith("pipeline/") and rest != "pipeline/":
        return "POST"
    if rest in ("health", "info", "v1/models"):
        return "GET"
    if rest in ("v1/chat/completions", "v1/embeddings"):
        return "POST"
    return "GET, POST" if rest == "" else None


def require_key(request: Request) -> None:
    """The API key, when the server has one: ``Authorization: Bearer <key>``, compared in constant time."""
    if state_of(request).settings.api_key and not holds_key(request):
        raise Unauthorized("a valid 'Authorization: Bearer <api key>' header is required")


def holds_key(request: Request) -> bool:
    """Whether the request presents the server's API key (never, when the server has none): only such
    clients read the details of failures (paths on this machine, what the Hub answered)."""
    key = state_of(request).settings.api_key
    given = request.headers.get("authorization", "")
    return bool(key) and hmac.compare_digest(given.encode(), f"Bearer {key}".encode())
