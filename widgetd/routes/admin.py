"""Managing models at run time: list them, load one, unload one. Loading and unloading exist only on a server
with an admin key, and only for its holders: no anonymous client, nor one that may only call models, can
unload what others use. Each action is logged as an audit line (``widgetd.audit``): which key, what, when."""

from __future__ import annotations

import time
from typing import Any

from litestar import Request, Response, delete, get
from litestar.params import FromPath

from widgetd.decoding import decode_json
from widgetd.errors import ClientError, Conflict, MethodNotAllowed, NotFound
from widgetd.keys import ADMIN
from widgetd.models import ServedModel
from widgetd.on_demand import not_served, reload, request_model, split_repo_path, unload
from widgetd.routes import admin_open, audit, require_key, state_of
from widgetd.state import ServerState
from widgetd.tasks import Strict


class LoadRequest(Strict):
    task: str | None = None
    device: str | None = None
    pin: bool = False


@get("/models", sync_to_thread=False)
def list_models(request: Request) -> dict[str, Any]:
    """Every model this server knows: served, loading, failed; with what the on-demand pool allows."""
    require_key(request)
    state = state_of(request)
    planning = [{"model_id": model_id, "state": "loading", "pinned": False} for model_id in state.pool.planning]
    reloading = set(state.pool.reloading)
    return {
        "models": [
            {**_described(model), "loads": state.pool.loads.get(model.model_id, 0), "reloading": model.model_id in reloading}
            for model in state.models
        ] + planning,
        "allowed": list(state.pool.allow),
        "max_models": state.pool.max_models,
    }


def _described(model: ServedModel) -> dict[str, Any]:
    return {
        **model.describe(trusted=True),
        "in_flight": model.in_flight,
        "last_used": model.last_used,
        "idle_seconds": round(time.time() - model.last_used, 1),
    }


async def reload_model(request: Request, model: ServedModel) -> Response:
    """``POST /models/{id}/reload``: 202 while the new copy loads beside the one serving."""
    require_key(request, ADMIN)
    refuse_without_models_here(state_of(request), "reloaded")
    reload(state_of(request), model)
    audit(request, "reload", model.model_id)
    return Response({"model_id": model.model_id, "state": "reloading", "revision": model.source.commit}, status_code=202)


def not_loaded(request: Request, model_id: str) -> ClientError:
    """A reload of a model that is not loaded: nothing is loaded for it (that is ``/load``'s work)."""
    require_key(request, ADMIN)
    state = state_of(request)
    if split_repo_path(model_id) is None or not state.pool.may_load(model_id):
        return not_served(state, model_id)
    return Conflict(f"model {model_id} is not loaded, so there is nothing to reload; POST /models/{model_id}/load loads it")


async def load(request: Request, model_id: str) -> Response:
    """``POST /models/{id}/load`` (optionally ``{"task", "device", "pin"}``): 202 while it loads, 200 if it serves."""
    require_key(request, ADMIN)
    state = state_of(request)
    model_id = model_id.strip("/")
    body = await request.body()
    asked = decode_json(body, LoadRequest, "load", state.settings.limits) if body.strip() else LoadRequest()
    served = next((model for model in state.models if model.model_id == model_id), None)
    if served is not None and served.state != "failed":
        served.pinned = served.pinned or asked.pin
        return Response({"model_id": model_id, "state": served.state, "pinned": served.pinned}, status_code=200)
    if split_repo_path(model_id) is None:
        raise not_served(state, model_id)
    request_model(state, model_id, task=asked.task, device=asked.device, pin=asked.pin)
    audit(request, "load", model_id)
    return Response({"model_id": model_id, "state": "loading", "estimated_time": round(state.pool.estimate(None), 1)}, status_code=202)


@delete("/models/{model_path:path}", status_code=200)
async def unload_model(request: Request, model_path: FromPath[str]) -> dict[str, Any]:
    """Unload a model now (pinned ones too: the operator asks); 409 while it answers requests."""
    if not admin_open(request):
        raise MethodNotAllowed("/models/{model_id} answers GET and POST (unloading needs a server with --admin-key)", allow="GET, POST")
    require_key(request, ADMIN)
    state = state_of(request)
    model, rest = state.split_model_path(model_path)
    if rest:
        raise NotFound(f"no route DELETE /models/{model.model_id}/{rest}")
    refuse_without_models_here(state, "unloaded")
    if model.state == "loading":
        raise Conflict(f"model {model.model_id} is loading; unload it once it is ready")
    if model.busy:
        raise Conflict(f"model {model.model_id} is answering requests; unload it once they are answered")
    unload(state, model, reason="asked through the admin API")
    audit(request, "unload", model.model_id)
    return {"model_id": model.model_id, "state": "unloaded"}


def refuse_without_models_here(state: ServerState, action: str) -> None:
    """On Ray Serve the replicas hold the models: the ingress cannot unload or reload them."""
    if not state.holds_models:
        raise Conflict(
            f"on Ray Serve, models are not {action} through this API: their deployments are updated with "
            "`serve deploy` (a rolling update), scaled with --autoscale MIN:MAX (MIN 0 frees them when idle), and "
            "on-demand models leave a replica by its least recently used order (--max-models)"
        )


ROUTES = [list_models, unload_model]
