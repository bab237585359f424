"""What a running server knows: its settings, its models, the registry, the metrics."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from widgetd.answers import checked_answer
from widgetd.backends import Pipeline
from widgetd.batching import Batcher
from widgetd.errors import ModelNotFound
from widgetd.generating import Engine, GenerationLoop
from widgetd.keys import Keyring
from widgetd.metrics import Metrics
from widgetd.models import ServedModel, load_model
from widgetd.on_demand import Pool
from widgetd.plugins import Registry
from widgetd.settings import ServerSettings

log = logging.getLogger("widgetd")


class Shutdown:
    """A server told to stop: it takes no new request, and after its timeout the running ones end 503."""

    def __init__(self) -> None:
        self.stopping = False
        self.expired = asyncio.Event()

    def begin(self, timeout: float) -> None:
        log.info("stopping: no new requests; those running have %g s", timeout)
        self.stopping = True
        asyncio.get_running_loop().call_later(timeout, self.expired.set)


@dataclass
class ServerState:
    """What the routes read: the models, the registry and the plugins' descriptions."""

    models: list[ServedModel]
    registry: Registry
    plugins: list[dict[str, Any]] = field(default_factory=list)
    settings: ServerSettings = field(default_factory=ServerSettings)
    metrics: Metrics = field(default_factory=Metrics)
    shutdown: Shutdown = field(default_factory=Shutdown)
    pool: Pool = field(init=False)

    def __post_init__(self) -> None:
        self.pool = Pool(self.settings)

    @cached_property
    def keys(self) -> Keyring:
        """The keys clients present, read when first asked for (a Ray replica, which checks none, never reads
        the keys file)."""
        return Keyring.of(self.settings.api_key, self.settings.admin_key, self.settings.keys_file)

    holds_models = True
    """Whether the models run in this process, so that the admin API can unload and reload them."""

    def load(self, model: ServedModel) -> None:
        """Fetch and load ``model`` in this process (blocking; a failure is kept on the model). A server on
        Ray Serve loads it in its model deployment's replicas instead (``widgetd.ray``)."""
        load_model(model, self.batcher_for, generation_for=self.generation_for, limits=self.settings.limits)

    def wake(self, model: ServedModel) -> None:
        """Start what ``model`` needs to answer: nothing here, where a ready model is loaded; on Ray Serve,
        a replica for a deployment scaled to zero."""

    def describe_model(self, model: ServedModel, trusted: bool) -> dict[str, Any]:
        """``model`` as /info shows it (on Ray Serve, with its deployment's replicas)."""
        return model.describe(trusted)

    def extra_metrics(self) -> list[str]:
        """Lines /metrics adds to the models' (on Ray Serve: the replicas, by node)."""
        return []

    def batcher_for(self, model: ServedModel, pipeline: Pipeline) -> Batcher:
        answered_by = getattr(pipeline, "answered_by", None) or f"backend {model.backend.name!r}"
        wanted = model.max_batch_size or self.settings.max_batch_size or model.backend.max_batch_size
        batch_size = wanted if model.backend.batches else 1
        return Batcher(
            pipeline,
            max_batch_size=batch_size,
            max_queue=self.settings.max_queue,
            max_wait=self.settings.max_batch_wait,
            name=model.model_id,
            on_batch=lambda size: self.metrics.observe_batch(model.model_id, size),
            check_answer=lambda task, answer: checked_answer(self.registry.task(task), answered_by, answer),
        )

    def generation_for(self, model: ServedModel, engine: Engine, batcher: Batcher) -> GenerationLoop:
        return GenerationLoop(
            engine,
            batcher.executor,
            max_active=self.settings.max_batch_size,
            max_queue=self.settings.max_queue,
            on_iteration=lambda size: self.metrics.observe_batch(model.model_id, size),
            on_tokens=lambda tokens, active: self.metrics.observe_generation(model.model_id, tokens, active),
        )

    def model(self, model_id: str) -> ServedModel:
        for model in self.models:
            if model.model_id == model_id:
                return model
        raise ModelNotFound(f"model {model_id!r} is not served here; served: {self.model_ids()}")

    def model_ids(self) -> list[str]:
        return [model.model_id for model in self.models]

    def split_model_path(self, path: str) -> tuple[ServedModel, str]:
        """``org/name/pipeline/task`` into the served model and the rest of the path."""
        path = path.strip("/")
        for model in sorted(self.models, key=lambda m: len(m.model_id), reverse=True):
            if path == model.model_id or path.startswith(model.model_id + "/"):
                return model, path[len(model.model_id) :].strip("/")
        raise ModelNotFound(f"model {path!r} is not served here; served: {self.model_ids()}")
