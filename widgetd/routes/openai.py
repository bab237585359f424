"""OpenAI's API, for the tools written against it: chat completions (streamed or not), embeddings and the
model list; at ``/v1/...`` for the server and ``/models/{model_id}/v1/...`` for one model."""

from __future__ import annotations

import base64
from typing import Any, Awaitable, Callable

import msgspec
import numpy as np
from litestar import Request, Response, get, post

from widgetd import tracing
from widgetd.chat import Completion, chat_job, usage
from widgetd.decoding import decode_json
from widgetd.errors import ClientError, InvalidInput, ModelNotFound, NotFound
from widgetd.models import ServedModel
from widgetd.on_demand import loaded_on_demand, split_repo_path
from widgetd.routes import model_list, require_key, state_of, waits_for_model
from widgetd.routes import answering
from widgetd.routes.generation import generate, sse_response, start_stream
from widgetd.state import ServerState
from widgetd.tasks.chat_completion import ChatCompletionInput
from widgetd.tasks.embeddings import Embedding, EmbeddingsInput, EmbeddingsOutput, EmbeddingsUsage, ModelList
from widgetd.tasks.feature_extraction import FeatureExtractionInput

EMBEDDING_TASKS = ("feature-extraction", "sentence-similarity")


@post("/v1/chat/completions", status_code=200)
async def chat_completions(request: Request) -> Response:
    return await chat(request, None)


@post("/v1/embeddings", status_code=200)
async def embeddings(request: Request) -> Response:
    return await embed(request, None)


@get("/v1/models", sync_to_thread=False)
def models(request: Request) -> ModelList:
    require_key(request)
    return model_list(state_of(request).models)


def _generates(model: ServedModel) -> bool:
    return model.task == "text-generation"


def _embeds(model: ServedModel) -> bool:
    return any(task in EMBEDDING_TASKS for task in (model.task, *model.tasks))


async def chosen_model(
    request: Request, state: ServerState, named: str | None, fits: Callable[[ServedModel], bool], what: str
) -> ServedModel:
    """The model a body names, when it is served or allowed on demand (then loaded as on its own path); else
    the first that ``fits``: OpenAI clients must name some model, and tools often send a placeholder."""
    for model in state.models:
        if model.model_id == named:
            return model
    if named and split_repo_path(named) == (named, "") and state.pool.may_load(named):
        return await loaded_on_demand(state, named, wait=waits_for_model(request))
    for model in state.models:
        if fits(model):
            return model
    raise ModelNotFound(f"no model served here {what}; served: {state.model_ids()}")


def _unable(model: ServedModel, what: str, by_path: bool) -> ClientError:
    """A model that cannot answer the route: no such route under its path (404), or the wrong model
    named in the body (400 naming ``model``)."""
    message = f"model {model.model_id} {what}"
    return NotFound(message) if by_path else InvalidInput(message, field="model")


async def _routed(
    request: Request, model: ServedModel | None, request_type: type, name: str, label: str,
    fits: Callable[[ServedModel], bool], what: str, respond: Callable[..., Awaitable[Response]],
) -> Response:
    """An OpenAI POST route (``name`` in errors): the body decoded under ``request_type``, the model its path
    names or else the one the body names (or the first that ``fits``), measured in /metrics under ``label``."""
    state = state_of(request)
    require_key(request)
    body = await request.body()
    with tracing.span("decode", **{"widgetd.body_bytes": len(body)}):
        decoded = decode_json(body, request_type, name, state.settings.limits)
    by_path = model is not None
    model = model or await chosen_model(request, state, decoded.model, fits, what)
    return await answering.measured(request, model, label, lambda _: respond(request, state, model, decoded, by_path))


async def chat(request: Request, model: ServedModel | None) -> Response:
    return await _routed(
        request, model, ChatCompletionInput, "chat-completion", "chat-completion", _generates,
        "generates text (chat completions need a text-generation model)", _chat,
    )


async def _chat(request: Request, state: ServerState, model: ServedModel, decoded: ChatCompletionInput, by_path: bool) -> Response:
    await answering.check_serving(request, state, model)
    if model.generator is None:
        raise _unable(model, "does not generate text token by token, so it serves no chat completions", by_path)
    job, use = chat_job(decoded, renders_tools=bool(getattr(model.generator.engine, "renders_tools", False)))
    completion = Completion(model.model_id, use)
    headers = answering.reply_headers(request, model)
    if not decoded.stream:
        generation = await generate(request, state, model, job)
        return Response(msgspec.json.encode(completion.answer(decoded, generation)), media_type="application/json", headers=headers)
    stream, first = await start_stream(request, state, model, job)
    include_usage = bool(decoded.stream_options and decoded.stream_options.include_usage)

    def closing() -> list[Any]:
        return [completion.chunk([], usage(stream.generation))] if include_usage else []

    events = lambda piece: completion.pieces(decoded, piece)  # noqa: E731
    return sse_response(stream, first, state, events, headers, closing, openai=True, opening=[completion.opening()])


async def embed(request: Request, model: ServedModel | None) -> Response:
    return await _routed(
        request, model, EmbeddingsInput, "embeddings", "feature-extraction", _embeds,
        "embeds text (a feature-extraction or sentence-similarity model)", _embed,
    )


async def _embed(request: Request, state: ServerState, model: ServedModel, decoded: EmbeddingsInput, by_path: bool) -> Response:
    await answering.check_serving(request, state, model)
    if "feature-extraction" not in model.tasks:
        raise _unable(model, f"does not embed text; it serves {list(model.tasks)}", by_path)
    texts = _texts(decoded.input)
    try:
        vectors, headers = await answering.submitted(request, state, model, "feature-extraction", FeatureExtractionInput(inputs=texts))
    except InvalidInput as error:  # the task names its ``inputs``; this route's field is ``input``
        raise InvalidInput(error.message.replace("inputs", "input", 1), field=(error.field or "inputs").replace("inputs", "input", 1)) from None
    data = [
        Embedding(object="embedding", index=index, embedding=_encoded(_vector(vector, decoded.dimensions), decoded.encoding_format))
        for index, vector in enumerate(vectors)
    ]
    tokens = await model.batcher.count_tokens(texts)
    answer = EmbeddingsOutput(object="list", data=data, model=model.model_id, usage=EmbeddingsUsage(prompt_tokens=tokens, total_tokens=tokens))
    return Response(msgspec.json.encode(answer), media_type="application/json", headers=headers)


def _texts(given: Any) -> list[str]:
    texts = [given] if isinstance(given, str) else list(given)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInput(
                f"input[{index}]: token ids are ids of OpenAI's tokenizer, not this model's; send the text", field=f"input[{index}]"
            )
    return texts


def _vector(value: Any, dimensions: int | None) -> np.ndarray:
    """One vector per text: a model that embeds each token gives the mean of its tokens' (TEI's mean
    pooling); ``dimensions`` keeps the first numbers, and a unit vector is scaled back to unit length."""
    vector = np.asarray(value, dtype=np.float32)
    if vector.ndim == 2:
        vector = vector.mean(axis=0)
    if dimensions is None:
        return vector
    if dimensions > vector.shape[0]:
        raise InvalidInput(f"dimensions: this model's vectors have {vector.shape[0]} numbers, fewer than {dimensions}", field="dimensions")
    unit = abs(float(np.linalg.norm(vector)) - 1.0) < 1e-3
    kept = vector[:dimensions]
    norm = float(np.linalg.norm(kept))
    return kept / norm if unit and norm > 0 else kept


def _encoded(vector: np.ndarray, encoding: str) -> Any:
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()




MODEL_ROUTES = {"v1/chat/completions": chat, "v1/embeddings": embed}
"""POST routes under /models/{model_id}/, by what follows the model id."""

ROUTES = [chat_completions, embeddings, models]
