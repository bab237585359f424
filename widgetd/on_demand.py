"""Models on demand, as the serverless Inference API served them: an allowed Hub model loads on its
first request (answered 503 with an estimate until it is ready), and the least recently used idle models
are unloaded to make room when the server holds ``--max-models``.

Everything here runs on the event loop, so choosing a model to unload and taking it out of service
happen with no request in between; downloads and loads run in threads.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Protocol

from widgetd import collector, devices
from widgetd.errors import ModelNotFound, ModelResolutionError, NotFound, RequestTimedOut, ServiceUnavailable, told_to_clients
from widgetd.models import ModelRequest, ServedModel, plan_models
from widgetd.plugins import Registry
from widgetd.settings import ServerSettings

log = logging.getLogger("widgetd")

REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
DEFAULT_LOAD_SECONDS = 20.0
"""The estimate before any model has loaded here (the serverless API's usual answer)."""
FAILURE_MEMORY_SECONDS = 60.0
"""How long a model that could not be found or loaded is answered from memory before it is tried again."""
WAIT_STEP_SECONDS = 0.05


class ModelLoading(ServiceUnavailable):
    """The serverless API's 503: ``{"error": "Model X is currently loading", "estimated_time": seconds}``."""

    def __init__(self, model_id: str, estimated_time: float) -> None:
        super().__init__(f"Model {model_id} is currently loading", max(1, round(estimated_time)))
        self.details = {"estimated_time": round(estimated_time, 1)}


@dataclass
class Pool:
    """What the server knows of its on-demand models beyond those the server holds (its ``models``); what it may
    load, and how many, comes from its settings."""

    settings: ServerSettings
    planning: dict[str, asyncio.Task] = field(default_factory=dict)
    """Models being looked up on the Hub, before they join the served models."""
    reloading: dict[str, asyncio.Task] = field(default_factory=dict)
    """Served models whose new copy is loading beside them."""
    failures: dict[str, tuple[float, Exception]] = field(default_factory=dict)
    history: list[tuple[int, float]] = field(default_factory=list)
    """(bytes downloaded, seconds to download and load) of each model loaded here."""
    loads: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    evictions: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def allow(self) -> tuple[str, ...]:
        return tuple(self.settings.allow_models)

    @property
    def max_models(self) -> int | None:
        return self.settings.max_models

    @property
    def memory_budget(self) -> dict[str, int]:
        """Bytes the models may hold on a device (``cpu``, ``cuda:0``), on every GPU (``cuda``), or on any (``*``)."""
        return self.settings.memory_budget

    def allows(self, model_id: str) -> bool:
        return any(fnmatch.fnmatchcase(model_id, pattern) for pattern in self.allow)

    def may_load(self, model_id: str) -> bool:
        """Allowed, or being loaded at an admin's word."""
        return self.allows(model_id) or model_id in self.planning

    def estimate(self, model: ServedModel | None) -> float:
        """Seconds until ``model`` is ready: its download size at the pace of past loads here, less the time
        it has already taken."""
        if not self.history:
            expected = DEFAULT_LOAD_SECONDS
        elif model is not None and model.download_bytes and sum(size for size, _ in self.history):
            pace = sum(seconds for _, seconds in self.history) / sum(size for size, _ in self.history)
            expected = model.download_bytes * pace
        else:
            expected = sum(seconds for _, seconds in self.history) / len(self.history)
        spent = time.monotonic() - model.load_started if model is not None else 0.0
        return max(1.0, expected - spent)


class Server(Protocol):
    """What models on demand need of the server (``widgetd.state.ServerState`` is one)."""

    models: list[ServedModel]
    pool: Pool
    settings: ServerSettings
    registry: Registry

    def load(self, model: ServedModel) -> None: ...

    def model_ids(self) -> list[str]: ...


def split_repo_path(path: str) -> tuple[str, str] | None:
    """``org/name/pipeline/task`` as the repo id ``org/name`` and the rest; None if it names no repo."""
    parts = path.strip("/").split("/")
    model_id = "/".join(parts[:2])
    if len(parts) < 2 or not REPO_ID.fullmatch(model_id) or ".." in model_id:
        return None
    return model_id, "/".join(parts[2:])


def not_served(state: Server, path: str) -> NotFound:
    allowed = f"; models loaded on demand: {list(state.pool.allow)}" if state.pool.allow else ""
    return ModelNotFound(f"model {path.strip('/')!r} is not served here; served: {state.model_ids()}{allowed}")


def request_model(state: Server, model_id: str, *, task: str | None = None, device: str | None = None, pin: bool = False) -> None:
    """Start fetching and loading ``model_id`` unless it is already on its way; one load however many ask."""
    if model_id in state.pool.planning:
        return
    known = next((model for model in state.models if model.model_id == model_id), None)
    if known is not None:
        if known.state != "failed" or known.pinned or time.monotonic() - known.load_started < FAILURE_MEMORY_SECONDS:
            return
        unload(state, known, reason="failed to load; trying again")
    failed = state.pool.failures.get(model_id)
    if failed and time.monotonic() - failed[0] < FAILURE_MEMORY_SECONDS:
        raise_failure(model_id, failed[1])
    make_room(state, model_id)
    request = ModelRequest(
        model_id,
        task=task,
        device=device,
        trust_remote_code=state.settings.trust_remote_code,
        runtime=state.settings.runtime,
        isolate=state.settings.isolate,
        on_demand=True,
    )
    state.pool.planning[model_id] = asyncio.get_running_loop().create_task(_plan_and_load(state, request, pin))


def raise_failure(model_id: str, error: Exception) -> None:
    if isinstance(error, (NotFound, ServiceUnavailable)):
        raise error
    raise ServiceUnavailable(f"model {model_id} could not be loaded: {told_to_clients(error)}", int(FAILURE_MEMORY_SECONDS))


async def _plan_and_load(state: Server, request: ModelRequest, pin: bool) -> None:
    model_id = request.model_id
    try:
        try:
            [model] = await asyncio.to_thread(plan_models, [request], state.registry)
        except Exception as error:
            log.warning("model %s cannot be served on demand: %s", model_id, error)
            # The Hub or the plugins say it cannot be served here: a 404 until the failure is forgotten. A Hub
            # out of reach may come back: a 503.
            permanent = isinstance(error, ModelResolutionError) and "cannot be downloaded" not in str(error)
            failure = ModelNotFound(str(error)) if permanent else error
            state.pool.failures[model_id] = (time.monotonic(), failure)
            return
        model.pinned = pin
        try:
            await _room_in_memory(state, model)
        except (ServiceUnavailable, ModelResolutionError) as error:
            # Remembered briefly: room comes back as soon as a request ends.
            state.pool.failures[model_id] = (time.monotonic() - FAILURE_MEMORY_SECONDS + 5, error)
            return
        state.models.append(model)
        await asyncio.to_thread(state.load, model)
        if model.ready:
            trim_to_budget(state, model)
            state.pool.history.append((model.download_bytes, model.load_seconds or 0.0))
            state.pool.loads[model_id] += 1
            state.pool.failures.pop(model_id, None)
    finally:
        state.pool.planning.pop(model_id, None)


def make_room(state: Server, model_id: str) -> None:
    """Unload the least recently used idle unpinned models until one more fits in ``--max-models``;
    ServiceUnavailable saying why when the others are all pinned or busy."""
    limit = state.pool.max_models
    if limit is None:
        return
    while len(state.models) + len(state.pool.planning) >= limit:
        idle = [model for model in state.models if _unloadable(model)]
        if not idle:
            raise ServiceUnavailable(
                f"model {model_id} cannot be loaded now: this server holds at most {limit} models (--max-models) "
                "and the others are pinned, loading or answering requests",
                5,
            )
        unload(state, min(idle, key=lambda model: model.last_used), reason="least recently used")


def budget_of(budgets: dict[str, int], device: str) -> int | None:
    kind = "cuda" if device.startswith("cuda") else device
    return budgets.get(device, budgets.get(kind, budgets.get("*")))


def _held(state: Server, device: str) -> list[ServedModel]:
    return [model for model in state.models if model.device == device and model.state in ("ready", "loading")]


def _bytes_held(models: list[ServedModel]) -> int:
    """Their measured memory; their download size for those still loading."""
    return sum(model.memory_bytes or model.download_bytes for model in models)


def _unloadable(model: ServedModel) -> bool:
    return not model.pinned and not model.busy and model.state != "loading"


async def _room_in_memory(state: Server, model: ServedModel) -> None:
    """Before ``model`` loads: unload the least recently used idle models on its device until its download
    size fits the device's budget and, on a GPU, its free memory; ServiceUnavailable saying why when they
    cannot be. GPUs are asked off the event loop."""
    inventory = await asyncio.to_thread(devices.cuda_inventory)
    device = devices.choose_device(model.device_request, inventory)
    need = model.download_bytes
    budget = budget_of(state.pool.memory_budget, device)
    while True:
        held = _held(state, device)
        over_budget = budget is not None and _bytes_held(held) + need > budget
        free = next((accelerator.free_memory for accelerator in inventory if accelerator.name == device), None)
        short = free is not None and free < need * devices.SPLIT_HEADROOM
        if not (over_budget or short):
            return
        idle = [m for m in held if _unloadable(m)]
        if not idle:
            why = f"its --memory-budget of {budget} bytes" if over_budget else f"its {free} bytes free"
            raise ServiceUnavailable(
                f"model {model.model_id} ({need} bytes) does not fit {device}: {why}, and the models there are "
                "pinned, loading or answering requests",
                5,
            )
        unload(state, min(idle, key=lambda m: m.last_used), reason=f"room on {device}")
        if free is not None:
            inventory = await asyncio.to_thread(devices.cuda_inventory)


def trim_to_budget(state: Server, loaded: ServedModel) -> None:
    """After a load measured more than its download size: unload idle models until the device is within its budget."""
    budget = budget_of(state.pool.memory_budget, loaded.device or "cpu")
    while budget is not None:
        held = _held(state, loaded.device)
        idle = [m for m in held if _unloadable(m) and m is not loaded]
        if _bytes_held(held) <= budget or not idle:
            return
        unload(state, min(idle, key=lambda m: m.last_used), reason=f"back within the budget of {loaded.device}")


def unload(state: Server, model: ServedModel, *, reason: str, evicted: bool = True) -> None:
    """Take ``model`` out of service and free its memory (its thread ends; GPU caches are emptied)."""
    if model in state.models:
        state.models.remove(model)
    model.state = "unloaded"
    if model.generator is not None:
        model.generator.close()
    if model.batcher is not None:
        model.batcher.close()
    model.batcher = model.generator = None
    if evicted:
        state.pool.evictions[model.model_id] += 1
    # Once the model's worker task has ended (its cancellation runs next on the loop), nothing holds the model.
    asyncio.get_running_loop().call_soon(_free_memory)
    log.info("model %s unloaded (%s)", model.model_id, reason)


def _free_memory() -> None:
    collector.release_unloaded()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


async def loaded_on_demand(state: Server, model_id: str, *, wait: bool) -> ServedModel:
    """``model_id`` (allowed, or being loaded), its load started if it is not on its way: see ``served_or_loading``."""
    request_model(state, model_id)
    return await served_or_loading(state, model_id, wait=wait)


async def served_or_loading(state: Server, model_id: str, *, wait: bool) -> ServedModel:
    """The model once it may be asked (ready, or failed: the caller says why); until then ModelLoading, or
    with ``wait`` (``x-wait-for-model: true``) the wait, up to the request timeout."""
    deadline = time.monotonic() + state.settings.request_timeout
    while True:
        model = next((model for model in state.models if model.model_id == model_id), None)
        if model is not None and model.state != "loading":
            return model
        failed = state.pool.failures.get(model_id)
        if model is None and model_id not in state.pool.planning and failed:
            raise_failure(model_id, failed[1])
        if not wait:
            raise ModelLoading(model_id, state.pool.estimate(model))
        if time.monotonic() > deadline:
            raise RequestTimedOut(f"model {model_id} did not load within {state.settings.request_timeout:g} s")
        await asyncio.sleep(WAIT_STEP_SECONDS)


def reload(state: Server, model: ServedModel) -> None:
    """Load ``model`` again (the revision the Hub has now, its folder as it is now) beside the copy serving;
    traffic switches to the new copy once it is ready, and the old one is unloaded when its requests are answered."""
    if model.model_id in state.pool.reloading:
        return
    if model.request is None:
        raise ServiceUnavailable(f"model {model.model_id} cannot be reloaded", 60)
    state.pool.reloading[model.model_id] = asyncio.get_running_loop().create_task(_reload(state, model))


async def _reload(state: Server, old: ServedModel) -> None:
    try:
        try:
            [fresh] = await asyncio.to_thread(plan_models, [old.request], state.registry)
        except Exception as error:
            log.warning("model %s could not be reloaded: %s", old.model_id, error)
            return
        fresh.pinned = old.pinned
        await asyncio.to_thread(state.load, fresh)
        if not fresh.ready or old not in state.models:
            log.warning("model %s keeps its old copy: the new one %s", old.model_id, fresh.problem or "was not needed")
            return
        state.models[state.models.index(old)] = fresh
        log.info("model %s now serves revision %s", fresh.model_id, fresh.source.commit)
        while old.busy:
            await asyncio.sleep(WAIT_STEP_SECONDS)
        unload(state, old, reason="replaced by its reload", evicted=False)
    finally:
        state.pool.reloading.pop(old.model_id, None)
