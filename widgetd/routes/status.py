"""What a server says about itself: health, info, metrics, the OpenAPI document and the widget page."""

from __future__ import annotations

from typing import Any, Sequence

from litestar import HttpMethod, Request, Response, get, route
from litestar.params import FromPath
from litestar.static_files import create_static_files_router

from widgetd.errors import MethodNotAllowed, NotFound
from widgetd.models import ServedModel
from widgetd.on_demand import not_served, split_repo_path
from widgetd.routes import admin_open, holds_admin_key, methods_of, model_list, require_key, state_of
from widgetd.routes.answering import FAILED_RETRY_SECONDS, LOADING_RETRY_SECONDS
from widgetd.spec import served_openapi_document
from widgetd.state import ServerState
from widgetd.widgets import STATIC_FILES, wants_html, widget_catalog, widget_page


@route("/", http_method=[HttpMethod.OPTIONS], sync_to_thread=False)
def root_options(request: Request) -> Response:
    return _allow("GET, POST")


@route("/models/{model_path:path}", http_method=[HttpMethod.OPTIONS], sync_to_thread=False)
def model_options(request: Request, model_path: FromPath[str]) -> Response:
    """The methods of each path under /models exactly: one route serves them all, so litestar cannot say."""
    model, rest = state_of(request).split_model_path(model_path)
    methods = methods_of(rest, admin_open(request))
    if methods is None:
        raise NotFound(f"no route /models/{model.model_id}/{rest}")
    return _allow(methods)


def _allow(methods: str) -> Response:
    return Response(None, status_code=204, headers={"Allow": f"{methods}, OPTIONS"})


@get("/", sync_to_thread=False)
def root(request: Request) -> Any:
    if wants_html(request.headers.get("accept")):
        return Response(widget_page(), media_type="text/html; charset=utf-8")
    return {"ok": "ok", "models": state_of(request).model_ids()}


@get("/widgets", sync_to_thread=False)
def widgets(request: Request) -> dict[str, Any]:
    require_key(request)
    state = state_of(request)
    return widget_catalog(state.models, state.registry, state.pool.allow)


@get("/health", sync_to_thread=False)
def health(request: Request) -> Response:
    """The pinned models' health: models loading or unloaded on demand do not make a server unhealthy."""
    return health_of([model for model in state_of(request).models if model.pinned], holds_admin_key(request))


@get("/info", sync_to_thread=False)
def info(request: Request) -> dict[str, Any]:
    require_key(request)
    return info_of(request, state_of(request).models)


@get("/metrics", sync_to_thread=False)
def metrics(request: Request) -> Response:
    require_key(request)
    state = state_of(request)
    rendered = state.metrics.render(state.models, state.pool.loads, state.pool.evictions) + "".join(line + "\n" for line in state.extra_metrics())
    return Response(rendered, media_type="text/plain; version=0.0.4")


@get("/openapi.json", sync_to_thread=False)
def openapi(request: Request) -> dict[str, Any]:
    state = state_of(request)
    return served_openapi_document(state.models, state.registry.tasks)


@get("/models/{model_path:path}", sync_to_thread=False)
def model_resource(request: Request, model_path: FromPath[str]) -> Any:
    state = state_of(request)
    try:
        model, rest = state.split_model_path(model_path)
    except NotFound:
        return _not_loaded_health(state, model_path)
    if rest == "health":
        return health_of([model], holds_admin_key(request))
    require_key(request)
    if rest in ("", "info"):
        return info_of(request, [model])
    if rest == "v1/models":
        return model_list([model])
    allowed = methods_of(rest, admin_open(request))
    if allowed is None:
        raise NotFound(f"no route /models/{model.model_id}/{rest}")
    raise MethodNotAllowed(f"/models/{model.model_id}/{rest} answers {allowed} requests", allow=allowed)


def _not_loaded_health(state: ServerState, path: str) -> Response:
    """An allowed on-demand model not loaded now: its health says so (asking does not load it)."""
    named = split_repo_path(path)
    if named is None or named[1] != "health" or not state.pool.allows(named[0]):
        raise not_served(state, path)
    status = "loading" if named[0] in state.pool.planning else "unloaded"
    return Response({"status": status, "model": named[0]}, status_code=503, headers={"Retry-After": str(LOADING_RETRY_SECONDS)})


def health_of(models: Sequence[ServedModel], trusted: bool) -> Response:
    """200 "ok" when every model serves; 200 "degraded", naming the others, while some do; 503 when none does."""
    serving = [m.model_id for m in models if m.serving]
    problems = {
        m.model_id: m.state + (f": {m.problem_for(trusted)}" if m.problem else "") for m in models if not m.serving
    }
    if not problems:
        return Response({"status": "ok", "models": serving})
    if serving:
        return Response({"status": "degraded", "models": serving, "problems": problems})
    loading = any(m.state == "loading" for m in models)
    return Response(
        {"status": "unavailable", "error": "; ".join(f"{name}: {problem}" for name, problem in problems.items()), "problems": problems},
        status_code=503,
        headers={"Retry-After": str(LOADING_RETRY_SECONDS if loading else FAILED_RETRY_SECONDS)},
    )


def info_of(request: Request, models: Sequence[ServedModel]) -> dict[str, Any]:
    trusted = holds_admin_key(request)
    state = state_of(request)
    return {"models": [state.describe_model(m, trusted) for m in models], "plugins": state.plugins, "limits": state.settings.limits.describe()}


OPTIONS_ROUTES = [root_options, model_options]
"""Registered before every other route: litestar would otherwise make its own, listing only the
methods of the first handler registered for a path."""

ROUTES = [
    root,
    widgets,
    health,
    info,
    metrics,
    openapi,
    model_resource,
    create_static_files_router(path="/static", directories=[STATIC_FILES]),
]
