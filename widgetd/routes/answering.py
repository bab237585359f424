"""What every route that answers a model's request shares: a model ready to serve, the request measured in
/metrics whatever its outcome, the answer batched with other requests, and the reply's headers."""

from __future__ import annotations

import logging
import time
from typing import Any, Awaitable, Callable

from litestar import Request, Response

from widgetd import tracing
from widgetd.batching import QueueFull
from widgetd.errors import ClientError, ClientGone, InvalidAnswer, ModelWorkerDied, ServiceUnavailable
from widgetd.models import ServedModel
from widgetd.on_demand import served_or_loading
from widgetd.routes import holds_admin_key, require_key, state_of, waits_for_model
from widgetd.routes.waiting import while_connected
from widgetd.state import ServerState

log = logging.getLogger("widgetd")

LOADING_RETRY_SECONDS = 5
FAILED_RETRY_SECONDS = 60
"""A model that failed to load stays so until an operator acts: clients should not retry at once."""



async def measured(
    request: Request, model: ServedModel, label: str, respond: Callable[[dict[str, str]], Awaitable[Response]]
) -> Response:
    """``respond``'s answer, measured in /metrics under the task ``label`` (which it may refine)
    whatever the outcome."""
    state = state_of(request)
    started, status = time.perf_counter(), 500
    measured = {"task": label}
    tracing.describe_request(model=model.model_id, task=label, backend=model.backend.name, runtime=model.runtime_in_use or model.runtime, device=model.device)
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
        tracing.describe_request(task=measured["task"], status=status)
        state.metrics.observe_request(model.model_id, measured["task"], status, time.perf_counter() - started)


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
    if model.state == "restarting":
        raise ModelWorkerDied(f"model {model.model_id} is restarting: {model.public_problem}", LOADING_RETRY_SECONDS)
    if model.state == "failed":
        problem = model.problem_for(holds_admin_key(request))
        raise ServiceUnavailable(f"model {model.model_id} failed to load: {problem}", FAILED_RETRY_SECONDS)


def reply_headers(request: Request, model: ServedModel, elapsed: float | None = None) -> dict[str, str]:
    headers = {"x-compute-type": model.device or "cpu"}  # X-Request-Id: widgetd.request_ids, on every response
    if elapsed is not None:
        headers["x-compute-time"] = f"{elapsed:.3f}"
    return headers


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
