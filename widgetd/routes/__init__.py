"""The HTTP layer, one module per concern. Routes: ``inference`` (the task routes), ``openai`` (OpenAI's
chat completions, embeddings and model list), ``admin`` (loading and unloading models), ``status`` (health,
info, metrics, the OpenAPI document, the widget page) and ``dispatch`` (``/models/{model_id}/...``, handing
each request to one of them). What they share: this module (the server's state, keys, the model a path
names), ``answering`` (serving, measuring and batching a request), ``generation`` (generated text and its
streams), ``waiting`` (a request's time and its client) and ``errors`` (every error as the JSON contract).
Routes never import one another; only ``dispatch`` imports them."""

from __future__ import annotations

import hmac

from litestar import Request

from widgetd.errors import NotFound, Unauthorized
from widgetd.models import ServedModel
from widgetd.on_demand import loaded_on_demand, not_served, split_repo_path
from widgetd.state import ServerState
from widgetd.tasks.embeddings import ModelCard, ModelList

STATE_KEY = "widgetd"


def state_of(request: Request) -> ServerState:
    return request.app.state[STATE_KEY]


def methods_of(rest: str, admin: bool = False) -> str | None:
    """The methods a path under ``/models/{model_id}`` answers, by what follows the model id; None: no such
    route. ``admin``: the server has an API key, so its admin routes (load, unload) are open to its holders."""
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
    """Whether the admin routes exist here: only behind an API key, so no anonymous client unloads a model."""
    return bool(state_of(request).settings.api_key)


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


def model_list(served: list[ServedModel]) -> ModelList:
    return ModelList(
        object="list",
        data=[ModelCard(id=model.model_id, object="model", created=int(model.planned_at), owned_by="widgetd") for model in served],
    )
