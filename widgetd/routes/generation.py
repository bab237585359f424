"""Generated text on a model's continuous batching loop: text-generation (TGI's answer, or its stream
of server-sent events) and what every stream shares: its deadline, its events, its end."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any, AsyncIterator, Callable, Sequence

import msgspec
from litestar import Request, Response
from litestar.response import Stream as StreamResponse

from widgetd import tracing
from widgetd.batching import QueueFull
from widgetd.conversation import conversation_answer, conversation_job
from widgetd.errors import ClientError, InvalidInput, RequestTimedOut, ServiceUnavailable
from widgetd.generating import Generation, Job, Piece, Stream
from widgetd.models import ServedModel
from widgetd.request_ids import REQUEST_ID
from widgetd.routes.errors import openai_error
from widgetd.routes.waiting import while_connected
from widgetd.state import ServerState
from widgetd.tasks.conversational import ConversationalInput
from widgetd.tasks.text_generation import TextGenerationInput
from widgetd.tgi import stream_event, text_generation_answer, text_generation_job

log = logging.getLogger("widgetd")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""No proxy may hold the events back."""


async def text_generation(request: Request, state: ServerState, model: ServedModel, decoded: TextGenerationInput, headers: dict[str, str]) -> Response:
    job = text_generation_job(decoded)
    if not decoded.stream:
        generation = await generate(request, state, model, job)
        body = msgspec.json.encode([text_generation_answer(decoded, generation)])
        return Response(body, media_type="application/json", headers=headers)

    stream, first = await start_stream(request, state, model, job)
    positions = itertools.count(1)  # the generation may be ahead of what was sent: count what is sent

    def events(piece: Piece) -> list[Any]:
        return [stream_event(decoded, stream.generation, piece, next(positions))]

    return sse_response(stream, first, state, events, headers)


async def conversational(request: Request, state: ServerState, model: ServedModel, decoded: ConversationalInput, headers: dict[str, str]) -> Response:
    """The legacy conversational payload, answered by the model's chat template and generation engine."""
    job = conversation_job(decoded)
    seconds = decoded.parameters.max_time
    generation = await (generate(request, state, model, job) if seconds is None else generate_for_at_most(request, state, model, job, seconds))
    return Response(msgspec.json.encode(conversation_answer(decoded, generation)), media_type="application/json", headers=headers)


async def generate_for_at_most(request: Request, state: ServerState, model: ServedModel, job: Job, seconds: float) -> Generation:
    """The generation as far as it got in ``seconds`` (api-inference-community's ``max_time``); its sequence
    then leaves the batch."""
    stream, _ = await start_stream(request, state, model, job)

    async def until_done_or_time() -> Generation:
        try:
            async with asyncio.timeout(max(0.0, stream.generation.started + seconds - time.perf_counter())):
                while await stream.next() is not None:
                    pass
        except TimeoutError:
            pass
        return stream.generation

    try:
        return await while_connected(request, until_done_or_time(), state.settings.request_timeout, state.shutdown.expired)
    finally:
        stream.close()
        tracing.generation_span(stream.generation)


async def generate(request: Request, state: ServerState, model: ServedModel, job: Job) -> Generation:
    """The whole generation, unless the client leaves, time runs out or the server stops (its sequence
    then leaves the batch at the next step)."""
    try:
        work = model.generator.complete(job)
        generation = await while_connected(request, work, state.settings.request_timeout, state.shutdown.expired)
    except QueueFull as error:
        raise ServiceUnavailable(f"model {model.model_id} is overloaded: {error}", 1) from None
    _observe_first_token(state, model, generation)
    tracing.generation_span(generation)
    return generation


async def start_stream(request: Request, state: ServerState, model: ServedModel, job: Job) -> tuple[Stream, Piece | None]:
    """A started stream and its first piece: a request that fails before its first token (its prompt,
    its options) is answered with a plain error status, not an event."""
    try:
        stream = await model.generator.start(job)
    except QueueFull as error:
        raise ServiceUnavailable(f"model {model.model_id} is overloaded: {error}", 1) from None
    try:
        first = await while_connected(request, stream.next(), state.settings.request_timeout, state.shutdown.expired)
    except BaseException:
        stream.close()
        raise
    _observe_first_token(state, model, stream.generation)
    return stream, first


def _observe_first_token(state: ServerState, model: ServedModel, generation: Generation) -> None:
    if generation.first_token_seconds is not None:
        state.metrics.observe_first_token(model.model_id, generation.first_token_seconds)
        state.metrics.observe_prompt(model.model_id, generation.prompt_tokens, generation.cached_tokens)


def sse_response(
    stream: Stream,
    first: Piece | None,
    state: ServerState,
    events: Callable[[Piece], list[Any]],
    headers: dict[str, str],
    closing: Callable[[], list[Any]] = list,
    openai: bool = False,
    opening: Sequence[Any] = (),
) -> StreamResponse:
    """Server-sent events: ``opening``, ``events(piece)`` for each piece, ``closing()`` at the end, then ``[DONE]``.
    A failure after the first event (its options broke the scores, time ran out) is an ``error`` event,
    which the OpenAI and Hugging Face clients raise; a client that leaves gives the stream up."""

    async def lines() -> AsyncIterator[bytes]:
        try:
            for event in opening:
                yield sse(event)
            async for piece in _pieces(stream, first, state):
                # A reader that fell behind gets what piled up in one write, not one write a token.
                yield b"".join(sse(event) for ready in (piece, *stream.ready()) for event in events(ready))
            for event in closing():
                yield sse(event)
        except (ClientError, ServiceUnavailable) as error:
            yield sse(_error_event(getattr(error, "status", 503), str(error), getattr(error, "field", None), openai))
        except Exception as error:  # a bug: said once in the log, the client told without details
            log.exception("generation failed mid-stream")
            yield sse(_error_event(500, f"generation failed: {type(error).__name__}", None, openai))
        finally:
            stream.close()
            tracing.generation_span(stream.generation)
        yield b"data: [DONE]\n\n"

    return StreamResponse(lines(), media_type="text/event-stream", headers={**headers, **SSE_HEADERS})


async def _pieces(stream: Stream, first: Piece | None, state: ServerState) -> AsyncIterator[Piece]:
    """``first``, then the stream's pieces while the request's time lasts (``--request-timeout`` covers
    the whole stream) and the server's shutdown timeout has not passed: one timer and one watcher per
    stream, none per token."""
    loop = asyncio.get_running_loop()
    timeout = state.settings.request_timeout
    remaining = stream.generation.started + timeout - time.perf_counter()
    timer = loop.call_later(max(0.0, remaining), stream.fail, RequestTimedOut(f"the stream ran past the request timeout of {timeout:g} s"))
    watcher = asyncio.ensure_future(_fail_at_shutdown(stream, state))
    try:
        piece = first
        while piece is not None:
            yield piece
            piece = await stream.next()
    finally:
        timer.cancel()
        watcher.cancel()


async def _fail_at_shutdown(stream: Stream, state: ServerState) -> None:
    await state.shutdown.expired.wait()
    stream.fail(ServiceUnavailable("this server shut down before the answer was complete; send the request again", 1))


def _error_event(status: int, message: str, field: str | None, openai: bool) -> dict[str, Any]:
    """An error after the stream began, as each client family raises it: TGI's ``error`` and
    ``error_type``, or OpenAI's error object."""
    if openai:
        return {"error": openai_error(status, message, field), "request_id": REQUEST_ID.get()}
    return {"error": message, "error_type": "validation" if 400 <= status < 500 else "generation", "request_id": REQUEST_ID.get()}


UNICODE_LINE_BREAKS = ((b"\xc2\x85", b"\\u0085"), (b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))
"""Characters JSON leaves as they are but some line readers split on (Python's ``str.splitlines``):
escaped, an event is one line for every client."""


def sse(event: Any) -> bytes:
    data = msgspec.json.encode(event)
    for raw, escaped in UNICODE_LINE_BREAKS:
        data = data.replace(raw, escaped)
    return b"data: " + data + b"\n\n"


def refuse_stream(decoded: Any) -> None:
    """A model without a generation engine answers at once or not at all."""
    if getattr(decoded, "stream", False):
        raise InvalidInput("stream: this model does not stream its answers; send stream=false", field="stream")
