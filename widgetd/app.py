"""The HTTP server: the api-inference-community routes, health, info and errors as JSON."""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.params import FromPath
from litestar.static_files import create_static_files_router

from widgetd import media
from widgetd.answers import checked_answer
from widgetd.backends import Pipeline
from widgetd.batching import Batcher, QueueFull
from widgetd.decoding import decode_request, input_characters
from widgetd.metrics import Metrics
from widgetd.errors import ClientError, InvalidAnswer, NotFound, Unauthorized
from widgetd.models import ServedModel, load_model
from widgetd.plugins import Registry
from widgetd.spec import openapi_document
from widgetd.tasks import ReplyOptions, Task
from widgetd.widgets import STATIC_FILES, wants_html, widget_catalog, widget_page

log = logging.getLogger("widgetd")

LOADING_RETRY_SECONDS = 5


@dataclass
class ServerSettings:
    api_key: str | None = None
    max_body_size: int = 50 * 1024 * 1024
    max_batch_size: int | None = None
    """None: each backend's own."""
    max_batch_wait: float = 0.0
    """Seconds every batch waits for company; 0 adapts (see ``widgetd.batching.GATHER_SHARE``)."""
    max_queue: int = 1024
    request_timeout: float = 300.0


@dataclass
class ServerState:
    """What the routes read: the models, the registry and the plugins' descriptions."""

    models: list[ServedModel]
    registry: Registry
    plugins: list[dict[str, Any]] = field(default_factory=list)
    settings: ServerSettings = field(default_factory=ServerSettings)
    metrics: Metrics = field(default_factory=Metrics)

    def batcher_for(self, model: ServedModel, pipeline: Pipeline) -> Batcher:
        return Batcher(
            pipeline,
            max_batch_size=self.settings.max_batch_size or model.backend.max_batch_size,
            max_queue=self.settings.max_queue,
            max_wait=self.settings.max_batch_wait,
            name=model.model_id,
            on_batch=lambda size: self.metrics.observe_batch(model.model_id, size),
            check_answer=lambda task, answer: checked_answer(self.registry.task(task), model.backend.name, answer),
        )

    def model(self, model_id: str) -> ServedModel:
        for model in self.models:
            if model.model_id == model_id:
                return model
        raise NotFound(f"model {model_id!r} is not served here; served: {self.model_ids()}")

    def model_ids(self) -> list[str]:
        return [model.model_id for model in self.models]

    def split_model_path(self, path: str) -> tuple[ServedModel, str]:
        """``org/name/pipeline/task`` into the served model and the rest of the path."""
        path = path.strip("/")
        for model in sorted(self.models, key=lambda m: len(m.model_id), reverse=True):
            if path == model.model_id or path.startswith(model.model_id + "/"):
                return model, path[len(model.model_id) :].strip("/")
        raise NotFound(f"model {path!r} is not served here; served: {self.model_ids()}")


class ServiceUnavailable(Exception):
    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def error_response(status: int, message: str, **extra: Any) -> Response:
    body = {"error": message, **{k: v for k, v in extra.items() if v is not None}}
    headers = {"X-Error-Message": _header_safe(message)}
    if status == 404 and "model" in message:
        headers["X-Error-Code"] = "RepoNotFound"
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json", headers=headers)


def _header_safe(message: str) -> str:
    """HTTP header values allow no control characters and no surrounding whitespace."""
    printable = "".join(c if " " <= c <= "~" else " " for c in message[:500])
    return " ".join(printable.split())


def _client_error(request: Request, error: ClientError) -> Response:
    return error_response(error.status, error.message, field=error.field)


def _http_error(request: Request, error: HTTPException) -> Response:
    message = error.detail or "request failed"
    if error.status_code == 413:
        limit = request.route_handler.resolve_request_max_body_size()
        message = f"the request body is larger than this server's limit of {limit} bytes"
    response = error_response(error.status_code, message)
    response.headers.update(error.headers or {})
    return response


def _unavailable(request: Request, error: ServiceUnavailable) -> Response:
    response = error_response(503, str(error))
    response.headers["Retry-After"] = str(error.retry_after)
    return response


def _client_gone(request: Request, error: ClientGone) -> Response:
    return error_response(499, "the client closed the connection")


def _invalid_answer(request: Request, error: InvalidAnswer) -> Response:
    response = error_response(500, error.message, field=error.field)
    response.headers["X-Error-Code"] = "InvalidAnswer"
    return response


def _unexpected(request: Request, error: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, f"internal error: {type(error).__name__}: {error}")


class ClientGone(Exception):
    """The client disconnected before its answer was ready; its work was dropped."""


class RequestTimedOut(ClientError):
    status = 504


async def while_connected(request: Request, work: Awaitable[Any], timeout: float) -> Any:
    """``work``'s result, unless the client leaves first (the work is dropped) or time runs out."""
    work_task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({work_task, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if work_task in done:
        return work_task.result()
    work_task.cancel()
    if gone in done:
        raise ClientGone()
    raise RequestTimedOut(f"no answer within {timeout:g} s; the model is busy or the input too large")


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def decode_for_first_task(
    state: ServerState, task_names: Sequence[str], body: bytes, content_type: str | None
) -> tuple[Task, Any]:
    """The first task whose contract the body fits: a model's default route also answers its
    other tasks (a sentence-transformers model embeds a bare text), as the Hub's API did."""
    first_error = None
    for name in task_names:
        task = state.registry.task(name)
        try:
            return task, await off_loop_for_media(task, decode_request, task, body, content_type)
        except ClientError as error:
            # If nothing fits, the client hears why it does not fit the default task.
            first_error = first_error or error
    raise first_error


async def off_loop_for_media(task: Task, function: Callable[..., Any], *args: Any) -> Any:
    """Decoding and encoding audio or images can take a while: keep it off the event loop."""
    if task.raw_body == "text" and task.response_media == "json":
        return function(*args)
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


def create_app(state: ServerState, *, load_in_background: bool = True) -> Litestar:
    """The litestar app; models load in a background thread so health answers while they do."""

    def start_loading() -> None:
        def load_all() -> None:
            for model in state.models:
                if model.state == "loading":
                    load_model(model, state.batcher_for)

        if load_in_background:
            threading.Thread(target=load_all, name="widgetd-loader", daemon=True).start()
        else:
            load_all()

    def stop_models() -> None:
        for model in state.models:
            if model.batcher:
                model.batcher.close()

    def check_key(request: Request) -> None:
        key = state.settings.api_key
        if not key:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
            raise Unauthorized("a valid 'Authorization: Bearer <api key>' header is required")

    async def answer(request: Request, model: ServedModel, task_name: str | None) -> Response:
        started, status = time.perf_counter(), 500
        try:
            response = await answer_unmeasured(request, model, task_name)
            status = response.status_code or 200
            return response
        except ClientError as error:
            status = error.status
            raise
        except ServiceUnavailable:
            status = 503
            raise
        except ClientGone:
            status = 499
            raise
        except InvalidAnswer as error:
            # The backend's bug, not the server's: said once per answer, without a traceback.
            log.error("%s (model %s)", error.message, model.model_id)
            state.metrics.observe_invalid_answer(model.model_id, error.task)
            raise
        finally:
            state.metrics.observe_request(
                model.model_id, task_name or model.task, status, time.perf_counter() - started
            )

    async def answer_unmeasured(request: Request, model: ServedModel, task_name: str | None) -> Response:
        check_key(request)
        if model.state == "loading":
            raise ServiceUnavailable(f"model {model.model_id} is loading", LOADING_RETRY_SECONDS)
        if model.state == "failed":
            raise RuntimeError(f"model {model.model_id} failed to load: {model.problem}")
        if task_name is not None and task_name not in model.tasks:
            raise NotFound(f"model {model.model_id} does not serve task {task_name!r}; it serves {list(model.tasks)}")
        body = await request.body()
        content_type = request.headers.get("content-type")
        candidates = [task_name] if task_name else [model.task, *(t for t in model.tasks if t != model.task)]
        task, decoded = await decode_for_first_task(state, candidates, body, content_type)
        task_name = task.name
        started = time.perf_counter()
        try:
            result = await while_connected(
                request, model.batcher.submit(task_name, decoded), state.settings.request_timeout
            )
        except QueueFull as error:
            raise ServiceUnavailable(f"model {model.model_id} is overloaded: {error}", 1) from None
        elapsed = time.perf_counter() - started
        reply = ReplyOptions(audio_format=media.audio_format_for(request.headers.get("accept")))
        wire = await off_loop_for_media(task, task.to_wire, decoded, result, reply)
        headers = {
            "x-compute-time": f"{elapsed:.3f}",
            "x-compute-type": model.device or "cpu",
            "x-request-id": request.headers.get("x-request-id") or uuid.uuid4().hex,
        }
        if task.raw_body == "text":
            headers["x-compute-characters"] = str(input_characters(decoded))
        if task.response_media == "audio":
            return Response(
                await off_loop_for_media(task, media.encode_audio, wire, reply.audio_format),
                media_type=media.AUDIO_FORMATS[reply.audio_format],
                headers=headers,
            )
        return Response(msgspec.json.encode(wire), media_type="application/json", headers=headers)

    def health_of(models: Sequence[ServedModel]) -> Response:
        waiting = [m for m in models if not m.ready]
        if not waiting:
            return Response({"status": "ok", "models": [m.model_id for m in models]})
        reasons = [f"{m.model_id}: {m.state}" + (f" ({m.problem})" if m.problem else "") for m in waiting]
        return Response(
            {"status": "unavailable", "error": "; ".join(reasons)},
            status_code=503,
            headers={"Retry-After": str(LOADING_RETRY_SECONDS)},
        )

    def info_of(models: Sequence[ServedModel]) -> dict[str, Any]:
        return {"models": [m.describe() for m in models], "plugins": state.plugins}

    @get("/", sync_to_thread=False)
    def root(request: Request) -> Any:
        if wants_html(request.headers.get("accept")):
            return Response(widget_page(), media_type="text/html; charset=utf-8")
        return {"ok": "ok", "models": state.model_ids()}

    @get("/widgets", sync_to_thread=False)
    def widgets(request: Request) -> dict[str, Any]:
        check_key(request)
        return widget_catalog(state.models, state.registry)

    @post("/", status_code=200)
    async def predict_default(request: Request) -> Response:
        if not state.models:
            raise NotFound("this server serves no model")
        return await answer(request, state.models[0], None)

    @get("/health", sync_to_thread=False)
    def health() -> Response:
        return health_of(state.models)

    @get("/info", sync_to_thread=False)
    def info(request: Request) -> dict[str, Any]:
        check_key(request)
        return info_of(state.models)

    @get("/metrics", sync_to_thread=False)
    def metrics(request: Request) -> Response:
        check_key(request)
        return Response(state.metrics.render(state.models), media_type="text/plain; version=0.0.4")

    @get("/openapi.json", sync_to_thread=False)
    def openapi() -> dict[str, Any]:
        return openapi_document(state.registry.tasks.values())

    @post("/models/{model_path:path}", status_code=200)
    async def predict_model(request: Request, model_path: FromPath[str]) -> Response:
        model, rest = state.split_model_path(model_path)
        task_name = None
        if rest:
            prefix, _, task_name = rest.partition("/")
            if prefix != "pipeline" or not task_name:
                raise NotFound(f"no route /models/{model.model_id}/{rest}; use /models/{model.model_id}/pipeline/<task>")
        return await answer(request, model, task_name)

    @get("/models/{model_path:path}", sync_to_thread=False)
    def model_resource(request: Request, model_path: FromPath[str]) -> Any:
        model, rest = state.split_model_path(model_path)
        if rest == "health":
            return health_of([model])
        check_key(request)
        if rest in ("", "info"):
            return info_of([model])
        raise NotFound(f"no route /models/{model.model_id}/{rest}")

    return Litestar(
        route_handlers=[
            root,
            widgets,
            predict_default,
            health,
            info,
            metrics,
            openapi,
            predict_model,
            model_resource,
            create_static_files_router(path="/static", directories=[STATIC_FILES]),
        ],
        on_startup=[start_loading],
        on_shutdown=[stop_models],
        exception_handlers={
            ClientError: _client_error,
            ServiceUnavailable: _unavailable,
            ClientGone: _client_gone,
            InvalidAnswer: _invalid_answer,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        request_max_body_size=state.settings.max_body_size,
        openapi_config=None,
        debug=False,
    )
