"""The HTTP server: the routes of ``widgetd.routes`` behind request ids, the models loading in the background."""

from __future__ import annotations

import threading
from typing import Callable

from litestar import Litestar
from litestar.datastructures import State
from litestar.handlers import asgi

from widgetd import collector
from widgetd.request_ids import RequestIds
from widgetd.tracing import traced
from widgetd.routes import STATE_KEY, admin, dispatch, inference, openai, status
from widgetd.routes.errors import EXCEPTION_HANDLERS, error_response
from widgetd.settings import ServerSettings
from widgetd.state import ServerState
from widgetd.tools import PATH as MCP_PATH
from widgetd.tools import ModelTools

__all__ = ["ServerSettings", "ServerState", "create_app", "error_response"]


def create_app(
    state: ServerState, *, load_in_background: bool = True, on_loaded: Callable[[], None] | None = None,
    proxy_request_id: Callable[[], str | None] | None = None,
) -> RequestIds:
    """The ASGI app: litestar's, each request given its id (``proxy_request_id``: the proxy's, see
    ``RequestIds``) and its span when tracing is on; models load in a background thread so health answers
    while they do, and ``on_loaded`` is called when each has loaded or failed."""

    def start_loading() -> None:
        def load_all() -> None:
            for model in state.models:
                if model.state == "loading":
                    state.load(model)
            if on_loaded:
                on_loaded()

        if load_in_background:
            threading.Thread(target=load_all, name="widgetd-loader", daemon=True).start()
        else:
            load_all()

    def stop_models() -> None:
        for task in (*state.pool.planning.values(), *state.pool.reloading.values()):
            task.cancel()
        for model in state.models:
            if model.generator:
                model.generator.close()
            if model.batcher:
                model.batcher.close()
        collector.stop_keeping()

    tools = ModelTools(state) if state.settings.mcp else None
    app = RequestIds(traced(Litestar(
        route_handlers=[
            *status.OPTIONS_ROUTES, *inference.ROUTES, *dispatch.ROUTES, *openai.ROUTES, *admin.ROUTES, *status.ROUTES,
            *([asgi(MCP_PATH, is_mount=True, copy_scope=False)(tools.__call__)] if tools else []),
        ],
        state=State({STATE_KEY: state}),
        on_startup=[start_loading],
        on_shutdown=[stop_models],
        lifespan=[tools.running] if tools else [],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=state.settings.max_body_size,
        openapi_config=None,
        # Logging is the CLI's to set (one format with uvicorn's lines), not Litestar's.
        logging_config=None,
        debug=False,
    )), proxy_request_id)
    if tools:
        tools.app = app
    return app
