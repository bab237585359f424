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
    InvalidAnswer,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestTimedOut,
    ServiceUnavailable,
)
from widgetd.models import ServedModel
from widgetd.routes import holds_key, methods_of, require_key, state_of
from widgetd.state import ServerState
from widgetd.tasks import ReplyOptions, Task

log = logging.getLogger("widgetd")

LOADING_RETRY_SECONDS = 5
FAILED_RETRY_SECONDS = 60
"""A model that failed to load stays so until an operator acts: clients should not retry at once."""


@post("/", status_code=200)
async def predict_default(request: Request) -> Response:
    state = state_of(request)
    if not state.models:
        raise NotFound("this server serves no model")
    return await answer(request, state.models[0], None)


@post("/models/{model_path:path}", status_code=200)
async def predict_model(request: Request, model_path: FromPath[str]) -> Response:
    model, rest = state_of(request).split_model_path(model_path)
    allowed = methods_of(rest)
    if allowed is None:
        raise NotFound(f"no route /models/{model.model_id}/{rest}; use /models/{model.model_id}/pipeline/<task>")
    if "POST" not in allowed:
        raise MethodNotAllowed(f"/models/{model.model_id}/{rest} answers {allowed} requests", allow=allowed)
    return await answer(request, model, rest.removeprefix("pipeline/") or None)


async def answer(request: Request, model: ServedModel, task_name: str | None) -> Response:
    """The answer to one request, measured in /metrics whatever its outcome."""
    state = state_of(request)
    started, status = time.perf_counter(), 500
    measured = {"task": _task_label(state, model, task_name)}
    try:
        response = await _answer(request, state, model, task_name, measured)
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
        state.metrics.observe_request(model.model_id, measured["task"], status, time.perf_counter() - started)


def _task_label(state: ServerState, model: ServedModel, task_name: str | None) -> str:
    """Metrics labels come only from served models and known tasks, whatever a URL says: /metrics stays small."""
    if task_name is None:
        return model.task
    return task_name if task_name in state.registry.tasks else "unknown"


async def _answer(
    request: Request, state: ServerState, model: ServedModel, task_name: str | None, measured: dict[str, str]
) -> Response:
    require_key(request)
    if state.shutdown.stopping:
        raise ServiceUnavailable("this server is shutting down; send the request again (to another replica)", 1)
    if model.state == "loading":
        raise ServiceUnavailable(f"model {model.model_id} is loading", LOADING_RETRY_SECONDS)
    if model.state == "failed":
        problem = model.problem_for(holds_key(request))
        raise ServiceUnavailable(f"model {model.model_id} failed to load: {problem}", FAILED_RETRY_SECONDS)
    if task_name is not None and task_name not in model.tasks:
        raise NotFound(f"model {model.model_id} does not serve task {task_name!r}; it serves {list(model.tasks)}")
    body = await request.body()
    content_type = request.headers.get("content-type")
    task, decoded = await decode_for_first_task(state, [task_name] if task_name else model.tasks, body, content_type)
    measured["task"] = task.name
    started = time.perf_counter()
    try:
        result = await while_connected(
            request, model.batcher.submit(task.name, decoded), state.settings.request_timeout, state.shutdown.expired
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
        content = await off_loop_for_media(task, media.encode_audio, wire, reply.audio_format)
        media_type = media.AUDIO_FORMATS[reply.audio_format]
    else:
        content, media_type = msgspec.json.encode(wire), "application/json"
    limit = state.settings.limits.max_response_bytes
    if len(content) > limit:
        raise PayloadTooLarge(
            f"the answer is {len(content)} bytes, more than the {limit} this server sends (--max-response-size); "
            "ask for less at a time",
            field="inputs",
        )
    return Response(content, media_type=media_type, headers=headers)


async def decode_for_first_task(
    state: ServerState, task_names: Sequence[str], body: bytes, content_type: str | None
) -> tuple[Task, Any]:
    """The first task whose contract the body fits: a model's default route also answers its
    other tasks (a sentence-transformers model embeds a bare text), as the Hub's API did."""
    first_error = None
    for name in task_names:
        task = state.registry.task(name)
        try:
            return task, await off_loop_for_media(task, decode_request, task, body, content_type, state.settings.limits)
        except ClientError as error:
            # If nothing fits, the client hears why it does not fit the default task.
            first_error = first_error or error
    raise first_error


async def off_loop_for_media(task: Task, function: Callable[..., Any], *args: Any) -> Any:
    """Decoding and encoding audio or images can take a while: keep it off the event loop."""
    if task.raw_body == "text" and task.response_media == "json":
        return function(*args)
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


async def while_connected(request: Request, work: Awaitable[Any], timeout: float, shutdown: asyncio.Event) -> Any:
    """``work``'s result, unless the client leaves first, time runs out or the server's shutdown
    timeout passes; then the work is dropped (its batch told to stop, see ``widgetd.cancellation``)."""
    work_task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    stopped = asyncio.ensure_future(shutdown.wait())
    try:
        done, _ = await asyncio.wait({work_task, gone, stopped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        stopped.cancel()
    if work_task in done:
        return work_task.result()
    work_task.cancel()
    if gone in done:
        raise ClientGone()
    if stopped in done:
        raise ServiceUnavailable("this server shut down before the answer was ready; send the request again", 1)
    raise RequestTimedOut(f"no answer within {timeout:g} s; the model is busy or the input too large")


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


ROUTES = [predict_default, predict_model]
