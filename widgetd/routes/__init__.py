"""The HTTP layer, one module per concern. Routes: ``inference`` (the task routes), ``openai`` (OpenAI's
chat completions, embeddings and model list), ``admin`` (loading and unloading models), ``status`` (health,
info, metrics, the OpenAPI document, the widget page) and ``dispatch`` (``/models/{model_id}/...``, handing
each request to one of them). What they share: this module (the server's state, keys, the model a path
names), ``answering`` (serving, measuring and batching a request), ``generation`` (generated text and its
streams), ``waiting`` (a request's time and its client) and ``errors`` (every error as the JSON contract).
Routes never import one another; only ``dispatch`` imports them."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from litestar import Request

from widgetd.errors import Forbidden, NotFound, Unauthorized
from widgetd.keys import ADMIN, INFERENCE, Key
from widgetd.models import ServedModel
from widgetd.on_demand import loaded_on_demand, not_served, split_repo_path
from widgetd.state import ServerState
from widgetd.tasks.embeddings import ModelCard, ModelList

STATE_KEY = "widgetd"
AUDIT = logging.getLogger("widgetd.audit")


def state_of(request: Request) -> ServerState:
    return request.app.state[STATE_KEY]


def methods_of(rest: str, admin: bool = False) -> str | None:
    """The methods a path under ``/models/{model_id}`` answers, by what follows the model id; None: no such
    route. ``admin``: the server has an admin key, so its admin routes (load, unload) are open to its holders."""
    if rest.startswith("pipeline/") and rest != "pipeline/":
        return "POST"
    if rest in ("health", "info", "v1/models"):
        return "GET"
    if rest in ("v1/chat/completions", "v1/embeddings") or (admin and rest in ("load", "reload")):
        return "POST"
    if rest == "":
        return "GET, POST, DELETE" if admin else "GET, POST"
    return None


def admin_open(request: Request) -> bool:
    """Whether the admin routes exist here: only behind an admin key, so no anonymous client unloads a model."""
    return state_of(request).keys.admin_open


def waits_for_model(request: Request) -> bool:
    return request.headers.get("x-wait-for-model", "").strip().lower() == "true"


async def model_at(request: Request, path: str) -> tuple[ServedModel, str]:
    """The served model a path under /models names, and the rest of the path. An allowed Hub model not served
    yet starts loading: ModelLoading (503 with an estimate) until it is ready, or the wait for it with
    ``x-wait-for-model: true``."""
    state = state_of(request)
    try:
        return state.split_model_path(path)
    except NotFound:
        named = split_repo_path(path)
        if named is None or not state.pool.may_load(named[0]):
            raise not_served(state, path) from None
    model_id, rest = named
    require_key(request)
    return await loaded_on_demand(state, model_id, wait=waits_for_model(request)), rest


def require_key(request: Request, scope: str = INFERENCE) -> None:
    """A key allowed ``scope``, when the server has keys: ``Authorization: Bearer <key>``. No key or an unknown
    one is a 401; a key without the scope, a 403."""
    keys = state_of(request).keys
    if not keys.required:
        return
    key = key_of(request)
    if key is None:
        raise Unauthorized("a valid 'Authorization: Bearer <api key>' header is required")
    if not key.may(scope):
        audit(request, f"refused {request.method}", request.url.path, level=logging.WARNING)
        raise Forbidden(f"the key {key.name!r} may call models but not manage them; managing models takes an admin key (--admin-key, or scope 'admin' in --keys-file)")


def key_of(request: Request) -> Key | None:
    """The server's key the request presents, if any (looked up once per request)."""
    per_request = request.scope.setdefault("state", {})
    if "widgetd_key" not in per_request:
        per_request["widgetd_key"] = state_of(request).keys.holder(request.headers.get("authorization", ""))
    return per_request["widgetd_key"]


def holds_admin_key(request: Request) -> bool:
    """Whether the request presents an admin key (never, when the server has none): only such clients read the
    details of failures (paths on this machine, what the Hub answered)."""
    key = key_of(request)
    return key is not None and ADMIN in key.scopes


def audit(request: Request, action: str, model_id: str, level: int = logging.INFO) -> None:
    """An audit line for an admin action: what, on which model, by which key (its name, never the key), from
    where, and when (UTC, whatever the log format adds)."""
    key = key_of(request)
    client = request.client.host if request.client else "unknown"
    when = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    AUDIT.log(level, "%s by key %r from %s at %s", f"{action} {model_id}".strip(), key.name if key else None, client, when)


def model_list(served: list[ServedModel]) -> ModelList:
    return ModelList(
        object="list",
        data=[ModelCard(id=model.model_id, object="model", created=int(model.planned_at), owned_by="widgetd") for model in served],
    )
