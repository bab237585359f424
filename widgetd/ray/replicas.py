"""The model deployments: one per named model (``ModelReplica``), and one for the models loaded on demand
(``OnDemandReplica``). Each replica loads its models as ``widgetd serve`` does and answers the ingress:
checked answers, or the widgetd error to raise, with where they ran."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from dataclasses import asdict, dataclass, replace
from typing import Any, AsyncIterator, Sequence

import ray
from ray import serve

from widgetd.batching import QueueFull
from widgetd.errors import ServiceUnavailable, WidgetdError
from widgetd.generating import Job, Token
from widgetd.models import ModelRequest, ServedModel, plan_models
from widgetd.plugins import collect, create_plugin_manager
from widgetd.settings import ServerSettings
from widgetd.state import ServerState

log = logging.getLogger("widgetd")

ON_DEMAND = "on-demand"
"""The deployment of the models loaded on demand (``--allow-model``)."""


def deployment_name(index: int, model_id: str) -> str:
    """``model-0-org--name``: stable, readable, and a valid Ray Serve deployment name."""
    return f"model-{index}-" + re.sub(r"[^A-Za-z0-9._-]+", "--", model_id.strip("/"))[-80:]


@dataclass(frozen=True)
class Replica:
    """Where an answer was computed."""

    replica_id: str
    node_id: str
    node_ip: str
    device: str | None
    pid: int

    def describe(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Reply:
    """A replica's answer to one request: the checked answer or the widgetd error to raise, and where it ran."""

    replica: Replica
    value: Any = None
    error: WidgetdError | None = None
    batch_size: int = 0
    """The size of the batch it ran in, if it was that batch's first request."""


def this_replica(device: str | None) -> Replica:
    context = serve.get_replica_context()
    return Replica(
        replica_id=context.replica_id.unique_id,
        node_id=ray.get_runtime_context().get_node_id(),
        node_ip=ray.util.get_node_ip_address(),
        device=device,
        pid=os.getpid(),
    )


def local_state(settings: ServerSettings, requests: Sequence[ModelRequest]) -> ServerState:
    """A replica's own widgetd state: the plugins, and its models planned (not loaded)."""
    configure_logging()
    registry = collect(create_plugin_manager())
    return ServerState(models=plan_models(requests, registry), registry=registry, settings=settings)


async def answered(model: ServedModel, replica: Replica, task: str, decoded: Any) -> Reply:
    """The replica's reply for one request: a widgetd error travels back as the error to raise."""
    try:
        if not model.ready:
            raise ServiceUnavailable(f"model {model.model_id} failed to load on replica {replica.replica_id}: {model.public_problem}", 60)
        value, batch_size = await model.batcher.submit_counted(task, decoded)
    except QueueFull as error:
        return Reply(replica, error=ServiceUnavailable(f"model {model.model_id} is overloaded: {error}", 1))
    except WidgetdError as error:
        return Reply(replica, error=error)
    return Reply(replica, value=value, batch_size=batch_size)


@dataclass
class RemoteSequence:
    """What the ingress knows of a sequence generating in a replica (what the routes read of a sequence)."""

    prompt_tokens: int = 0
    seed: int | None = None


async def generated(model: ServedModel, job: Job) -> AsyncIterator[RemoteSequence | Token | WidgetdError]:
    """A generation on the replica's continuous batching, for the ingress to stream: its sequence's prompt
    tokens and seed, then each token as the engine makes it; a widgetd error ends it. Closing it (the
    ingress's client left) takes the sequence out of the batch."""
    try:
        if model.generator is None:
            raise ServiceUnavailable(f"model {model.model_id} is not ready on this replica: {model.public_problem}", 60)
        stream = await model.generator.start(job)
    except QueueFull as error:
        yield ServiceUnavailable(f"model {model.model_id} is overloaded: {error}", 1)
        return
    except WidgetdError as error:
        yield error
        return
    try:
        sequence = stream.generation.sequence
        yield RemoteSequence(sequence.prompt_tokens, sequence.seed)
        async for piece in stream:
            yield piece.token
    except WidgetdError as error:
        yield error
    finally:
        stream.close()


def described(model: ServedModel, replica: Replica) -> dict[str, Any]:
    return {
        **model.describe(trusted=True),
        "public_problem": model.public_problem,
        "tasks": list(model.tasks or (model.task,)),
        "load_seconds": model.load_seconds,
        "replica": replica.describe(),
    }


@serve.deployment
class ModelReplica:
    """One named model, loaded as ``widgetd serve`` loads it (a failure is kept and reported, not raised:
    Ray would otherwise start the replica again and again)."""

    def __init__(self, request: ModelRequest, settings: ServerSettings) -> None:
        self.state = local_state(settings, [request])
        [self.model] = self.state.models
        self.state.load(self.model)
        self.replica = this_replica(self.model.device)

    async def answer(self, task: str, decoded: Any) -> Reply:
        return await answered(self.model, self.replica, task, decoded)

    async def count_tokens(self, texts: list[str]) -> int:
        return await self.model.batcher.count_tokens(texts) if self.model.ready else 0

    async def generate(self, job: Job) -> AsyncIterator[RemoteSequence | Token | WidgetdError]:
        async for item in generated(self.model, job):
            yield item

    def describe(self) -> dict[str, Any]:
        return described(self.model, self.replica)


class _Held:
    """A model held by an on-demand replica; Ray calls ``__del__`` when its LRU evicts it."""

    def __init__(self, model: ServedModel) -> None:
        self.model = model

    def __del__(self) -> None:
        for worker in (self.model.generator, self.model.batcher):
            if worker is not None:
                worker.close()
        log.info("model %s evicted from this replica", self.model.model_id)


class LoadFailed(Exception):
    """An on-demand model that failed to load: raised, so that serve.multiplexed does not keep it and the
    next request for it (once the ingress tries again) loads it anew."""

    def __init__(self, model: ServedModel) -> None:
        super().__init__(model.problem)
        self.model = model


@serve.deployment
class OnDemandReplica:
    """Models loaded on their first request (``--allow-model``), placed across replicas by model id with
    ``serve.multiplexed``; each replica holds ``--max-models`` at most (default 3) and evicts the least
    recently used. The ingress checks the allow list before anything reaches here."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        configure_logging()
        self.registry = collect(create_plugin_manager())
        self.replica = this_replica(None)
        # A function, not a bound method: serve.multiplexed keeps its LRU on the object it decorates.
        async def load(model_id: str) -> _Held:
            return await self._load(model_id)

        self.held = serve.multiplexed(max_num_models_per_replica=settings.max_models or 3)(load)

    async def _load(self, model_id: str) -> _Held:
        request = ModelRequest(model_id, on_demand=True, runtime=self.settings.runtime, trust_remote_code=self.settings.trust_remote_code)
        [model] = await asyncio.to_thread(plan_models, [request], self.registry)
        state = ServerState(models=[model], registry=self.registry, settings=self.settings)
        await asyncio.to_thread(state.load, model)
        if not model.ready:
            raise LoadFailed(model)
        return _Held(model)

    async def _model(self) -> tuple[ServedModel, Replica]:
        """The model the request names, loaded here if it is not yet; one that failed comes back failed."""
        try:
            held = await self.held(serve.get_multiplexed_model_id())
        except LoadFailed as failure:
            return failure.model, self.replica
        return held.model, replace(self.replica, device=held.model.device)

    async def answer(self, task: str, decoded: Any) -> Reply:
        model, replica = await self._model()
        return await answered(model, replica, task, decoded)

    async def count_tokens(self, texts: list[str]) -> int:
        model, _ = await self._model()
        return await model.batcher.count_tokens(texts) if model.ready else 0

    async def generate(self, job: Job) -> AsyncIterator[RemoteSequence | Token | WidgetdError]:
        model, _ = await self._model()
        async for item in generated(model, job):
            yield item

    async def describe(self) -> dict[str, Any]:
        model, replica = await self._model()
        return described(model, replica)


def configure_logging() -> None:
    """widgetd's messages in each replica's log, as ``widgetd serve`` prints them."""
    logger = logging.getLogger("widgetd")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
