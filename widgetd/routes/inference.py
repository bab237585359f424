"""The task routes, api-inference-community's: one path per request, in order: route, decode, queue
and batch, backend, checked answer, encode."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Sequence

import msgspec
from litestar import Request, Response, post

from widgetd import media, tracing
from widgetd.decoding import decode_request, input_characters
from widgetd.errors import (
    ClientError,
    NotFound,
    PayloadTooLarge,
    TaskNotServed,
)
from widgetd.models import ServedModel
from widgetd.routes import generation, state_of
from widgetd.routes.answering import check_serving, measured, reply_headers, submitted
from widgetd.routes.progress import progress_response, wants_progress
from widgetd.state import ServerState
from widgetd.tasks import ReplyOptions, Task

log = logging.getLogger("widgetd")

@post(["/", "/predict"], status_code=200)
async def predict_default(request: Request) -> Response:
    """The first model's default task; ``/predict`` is Inference Endpoints' name for it."""
    state = state_of(request)
    if not state.models:
        raise NotFound("this server serves no model")
    return await answer(request, state.models[0], None)


async def answer(request: Request, model: ServedModel, task_name: str | None) -> Response:
    state = state_of(request)
    return await measured(
        request, model, _task_label(state, model, task_name), lambda measured: _answer(request, state, model, task_name, measured)
    )


def _task_label(state: ServerState, model: ServedModel, task_name: str | None) -> str:
    """Metrics labels come only from served models and known tasks, whatever a URL says: /metrics stays small."""
    if task_name is None:
        return model.task
    return task_name if task_name in state.registry.tasks else "unknown"


async def _answer(
    request: Request, state: ServerState, model: ServedModel, task_name: str | None, measured: dict[str, str]
) -> Response:
    await check_serving(request, state, model)
    if task_name is not None and task_name not in model.tasks:
        raise TaskNotServed(f"model {model.model_id} does not serve task {task_name!r}; it serves {list(model.tasks)}")
    body = await request.body()
    content_type = request.headers.get("content-type")
    query = dict(request.query_params.items())
    with tracing.span("decode", **{"widgetd.body_bytes": len(body)}):
        task, decoded = await decode_for_first_task(state, [task_name] if task_name else model.tasks, body, content_type, query)
    measured["task"] = task.name
    if task.name == "text-generation" and model.generator is not None:
        return await generation.text_generation(request, state, model, decoded, reply_headers(request, model))
    if task.name == "conversational" and model.generator is not None:
        return await generation.conversational(request, state, model, decoded, reply_headers(request, model))
    generation.refuse_stream(decoded)
    accept = request.headers.get("accept")
    reply = ReplyOptions(media.audio_format_for(accept), media.image_format_for(accept), request.headers.get("user-agent", ""))

    async def encode(result: Any) -> tuple[bytes, str]:
        with tracing.span("encode"):
            return await reply_content(state, task, decoded, result, reply, accept)

    if wants_progress(task, accept):
        return progress_response(state, model, task, decoded, encode, reply_headers(request, model))
    result, headers = await submitted(request, state, model, task.name, decoded)
    if task.raw_body == "text":
        headers["x-compute-characters"] = str(input_characters(decoded))
    content, media_type = await encode(result)
    return Response(content, media_type=media_type, headers=headers)


async def reply_content(state: ServerState, task: Task, decoded: Any, result: Any, reply: ReplyOptions, accept: str | None) -> tuple[bytes, str]:
    """The answer's bytes and content type as the client gets them, within ``--max-response-size``."""
    wire = await off_loop_for_media(task, task.to_wire, decoded, result, reply)
    content, media_type = await encoded_answer(task, wire, reply, accept)
    limit = state.settings.limits.max_response_bytes
    if len(content) > limit:
        raise PayloadTooLarge(
            f"the answer is {len(content)} bytes, more than the {limit} this server sends (--max-response-size); "
            "ask for less at a time",
            field="inputs",
        )
    return content, media_type


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


ROUTES = [predict_default]
