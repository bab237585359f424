"""The task routes, api-inference-community's: one path per request, in order: route, decode, queue
and batch, backend, checked answer, encode."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Awaitable, Callable, Sequence

import msgspec
from litestar import Request, Response, post
from litestar.params import FromPath

from widgetd import media
from widgetd.batching import QueueFull
from widgetd.decoding import decode_request, input_characters
from widgetd.errors import (
    ClientError,
    ClientGone,
    Forbidden,
    InvalidAnswer,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)
from widgetd.models import ServedModel
from widgetd.on_demand import served_or_loading
from widgetd.routes import admin, generation, openai, admin_open, holds_key, methods_of, model_at, require_key, state_of, waits_for_model
from widgetd.routes.waiting import while_connected
from widgetd.state import ServerState
from widgetd.tasks import ReplyOptions, Task

log = logging.getLogger("widgetd")

LOADING_RETRY_SECONDS = 5
FAILED_RETRY_SECONDS = 60
"""A model that failed to load stays so until an operator acts: clients should not retry at once."""


@post(["/", "/predict"], status_code=200)
async def predict_default(request: Request) -> Response:
    """The first model's default task; ``/predict`` is Inference Endpoints' name for it."""
    state = state_of(request)
    if not state.models:
        raise NotFound("this server serves no model")
    return await answer(request, state.models[0], None)


@post("/models/{model_path:path}", status_code=200)
async def predict_model(request: Request, model_path: FromPath[str]) -> Response:
    path = model_path.strip("/")
    action = next((name for name in ("load", "reload") if path.endswith("/" + name)), None)
    if action and path not in state_of(request).model_ids():
        if not admin_open(request):
            raise Forbidden(f"{action}: the admin API is off; start the server with --api-key to manage models")
        if action == "load":
            return await admin.load(request, path.removesuffix("/load"))
    model, rest = await model_at(request, model_path)
    if rest == "reload" and admin_open(request):
        return await admin.reload_model(request, model)
    if rest in openai.MODEL_ROUTES:
        return await openai.MODEL_ROUTES[rest](request, model)
    allowed = methods_of(rest, admin_open(request))
    if allowed is None:
        raise NotFound(f"no route /models/{model.model_id}/{rest}; use /models/{model.model_id}/pipeline/<task>")
    if "POST" not in allowed:
        raise MethodNotAllowed(f"/models/{model.model_id}/{rest} answers {allowed} requests", allow=allowed)
    return await answer(request, model, rest.removeprefix("pipeline/") or None)


async def answer(request: Request, model: ServedModel, task_name: str | None) -> Response:
    state = state_of(request)
    return await measured(
        request, model, _task_label(state, model, task_name), lambda measured: _answer(request, state, model, task_name, measured)
    )


async def measured(
    request: Request, model: ServedModel, label: str, respond: Callable[[dict[str, str]], Awaitable[Response]]
) -> Response:
    """``respond``'s answer, measured in /metrics under the task ``label`` (which it may refine)
    whatever the outcome."""
    state = state_of(request)
    started, status = time.perf_counter(), 500
    measured = {"task": label}
    model.in_flight += 1
    try:
        response = await respond(measured)
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
        model.in_flight -= 1
        model.last_used = time.time()
        state.metrics.observe_request(model.model_id, measured["task"], status, time.perf_counter() - started)


def _task_label(state: ServerState, model: ServedModel, task_name: str | None) -> str:
    """Metrics labels come only from served models and known tasks, whatever a URL says: /metrics stays small."""
    if task_name is None:
        return model.task
    return task_name if task_name in state.registry.tasks else "unknown"


async def check_serving(request: Request, state: ServerState, model: ServedModel) -> None:
    """The key, and a model ready for requests on a server that takes them: a loading model answers the
    serverless API's 503 with an estimate, or is waited for (``x-wait-for-model: true``)."""
    require_key(request)
    if state.shutdown.stopping:
        raise ServiceUnavailable("this server is shutting down; send the request again (to another replica)", 1)
    if model.state == "idle":
        state.wake(model)
    if model.state == "loading":
        await served_or_loading(state, model.model_id, wait=waits_for_model(request))
    if model.state == "unloaded":
        raise ServiceUnavailable(f"model {model.model_id} was unloaded; send the request again to load it", 1)
    if model.state == "failed":
        problem = model.problem_for(holds_key(request))
        raise ServiceUnavailable(f"model {model.model_id} failed to load: {problem}", FAILED_RETRY_SECONDS)


def reply_headers(request: Request, model: ServedModel, elapsed: float | None = None) -> dict[str, str]:
    headers = {"x-compute-type": model.device or "cpu", "x-request-id": request.headers.get("x-request-id") or uuid.uuid4().hex}
    if elapsed is not None:
        headers["x-compute-time"] = f"{elapsed:.3f}"
    return headers


async def _answer(
    request: Request, state: ServerState, model: ServedModel, task_name: str | None, measured: dict[str, str]
) -> Response:
    await check_serving(request, state, model)
    if task_name is not None and task_name not in model.tasks:
        raise NotFound(f"model {model.model_id} does not serve task {task_name!r}; it serves {list(model.tasks)}")
    body = await request.body()
    content_type = request.headers.get("content-type")
    query = dict(request.query_params.items())
    task, decoded = await decode_for_first_task(state, [task_name] if task_name else model.tasks, body, content_type, query)
    measured["task"] = task.name
    if task.name == "text-generation" and model.generator is not None:
        return await generation.text_generation(request, state, model, decoded, reply_headers(request, model))
    generation.refuse_stream(decoded)
    result, headers = await submitted(request, state, model, task.name, decoded)
    accept = request.headers.get("accept")
    reply = ReplyOptions(media.audio_format_for(accept), media.image_format_for(accept), request.headers.get("user-agent", ""))
    wire = await off_loop_for_media(task, task.to_wire, decoded, result, reply)
    if task.raw_body == "text":
        headers["x-compute-characters"] = str(input_characters(decoded))
    content, media_type = await encoded_answer(task, wire, reply, accept)
    limit = state.settings.limits.max_response_bytes
    if len(content) > limit:
        raise PayloadTooLarge(
            f"the answer is {len(content)} bytes, more than the {limit} this server sends (--max-response-size); "
            "ask for less at a time",
            field="inputs",
        )
    return Response(content, media_type=media_type, headers=headers)


async def encoded_answer(task: Task, wire: Any, reply: ReplyOptions, accept: str | None) -> tuple[bytes, str]:
    """The answer's bytes and content type: audio and images in the format Accept asks for, else JSON."""
    kind = task.response_media
    if kind == "any":
        kind = "image" if isinstance(wire, media.Picture) else "bytes" if isinstance(wire, bytes) else "json"
    loop = asyncio.get_running_loop()
    if kind == "audio":
        content = await loop.run_in_executor(None, media.encode_audio, wire, reply.audio_format)
        return content, media.AUDIO_FORMATS[reply.audio_format]
    if kind == "image":
        content = await loop.run_in_executor(None, media.encode_image, wire, reply.image_format)
        return content, media.IMAGE_FORMATS[reply.image_format]
    if kind == "bytes":
        return wire, media.binary_type_for(accept)
    return msgspec.json.encode(wire), "application/json"


async def submitted(
    request: Request, state: ServerState, model: ServedModel, task_name: str, decoded: Any
) -> tuple[Any, dict[str, str]]:
    """The model's checked answer to ``decoded``, batched with other requests, and the reply's headers:
    how long it took and where it ran."""
    started = time.perf_counter()
    try:
        result, where = await while_connected(
            request, model.batcher.answer(task_name, decoded), state.settings.request_timeout, state.shutdown.expired
        )
    except QueueFull as error:
        raise ServiceUnavailable(f"model {model.model_id} is overloaded: {error}", 1) from None
    return result, {**reply_headers(request, model, time.perf_counter() - started), **where}


async def decode_for_first_task(
    state: ServerState, task_names: Sequence[str], body: bytes, content_type: str | None, query: dict[str, str] | None = None
) -> tuple[Task, Any]:
    """The first task whose contract the body fits: a model's default route also answers its
    other tasks (a sentence-transformers model embeds a bare text), as the Hub's API did."""
    first_error = None
    for name in task_names:
        task = state.registry.task(name)
        try:
            return task, await off_loop_for_media(task, decode_request, task, body, content_type, state.settings.limits, query)
        except ClientError as error:
            # If nothing fits, the client hears why it does not fit the default task.
            first_error = first_error or error
    raise first_error


async def off_loop_for_media(task: Task, function: Callable[..., Any], *args: Any) -> Any:
    """Decoding and encoding audio or images can take a while: keep it off the event loop."""
    if task.raw_body in ("text", "any") and task.response_media == "json":
        return function(*args)
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


ROUTES = [predict_default, predict_model]
