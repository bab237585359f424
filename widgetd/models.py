"""The models a server serves: planned at startup, then fetched and loaded in the background."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from widgetd import collector, devices, hub
from widgetd.backends import Backend, ModelSnapshot, Pipeline, PlannedModel, runtime_family
from widgetd.batching import Batcher
from widgetd.errors import ModelResolutionError, told_to_clients
from widgetd.generating import Engine, GenerationLoop
from widgetd.isolation import IsolatedPipeline
from widgetd.limits import Limits
from widgetd.plugins import Registry
from widgetd.scaling import Scaling

log = logging.getLogger("widgetd")


@dataclass(frozen=True)
class ModelRequest:
    """What the user asked for one model on the command line."""

    model_id: str
    task: str | None = None
    library: str | None = None
    device: str | None = None
    trust_remote_code: bool = False
    """Whether code shipped in the model's repo may run (``--trust-remote-code``)."""
    on_demand: bool = False
    """Asked for by a request (a Hub repo id, never a folder here), and unloaded when room is needed."""
    pinned: bool = True
    """Never unloaded to make room (on-demand models never are pinned unless an admin says so)."""
    max_batch_size: int | None = None
    """This model's largest batch, over the server's ``--max-batch-size``."""
    runtime: str = "torch"
    """What runs it (``--runtime``): torch, onnx, openvino, int8, auto, or an exported file of the repo."""
    isolate: bool = False
    """Run it in a worker process of its own (``--isolate``, ``widgetd.isolation``)."""
    scaling: Scaling = Scaling()
    """Its replicas on Ray Serve (``--replicas``, ``--autoscale``, ``--num-gpus``)."""


@dataclass
class ServedModel:
    model_id: str
    source: hub.ModelSource
    backend: Backend
    task: str
    device_request: str | None = None
    trust_remote_code: bool = False
    state: str = "loading"
    problem: str | None = None
    """Why it failed to load, in full: for the log and for clients holding the API key."""
    public_problem: str | None = None
    """The same for every other client: no absolute paths, no text relayed from the Hub."""
    device: str | None = None
    tasks: tuple[str, ...] = ()
    batcher: Batcher | None = field(default=None, repr=False)
    generator: GenerationLoop | None = field(default=None, repr=False)
    """Continuous batching for text-generation and chat, when the backend's pipeline has an engine."""
    load_seconds: float | None = None
    memory_bytes: int | None = None
    """What it took on its device as it loaded (its download size if that could not be measured)."""
    planned_at: float = field(default_factory=time.time)
    placement: dict[str, str] | None = None
    """Where each part of a model split across devices runs (its ``device_map``)."""
    pinned: bool = True
    """Named at startup (or pinned through the admin API): never unloaded to make room."""
    last_used: float = field(default_factory=time.time)
    in_flight: int = 0
    """Requests being answered now: a model with any is never unloaded."""
    load_started: float = field(default_factory=time.monotonic)
    request: ModelRequest | None = field(default=None, repr=False)
    """What it was asked as: a reload asks for it again."""
    max_batch_size: int | None = None
    runtime: str = "torch"
    """What was asked to run it (``--runtime``)."""
    runtime_in_use: str | None = None
    """What runs it once loaded, as its pipeline says (``auto`` resolved, the file it reads)."""

    @property
    def download_bytes(self) -> int:
        """What its backend fetches, as the Hub sized it (0 when unknown)."""
        return sum(self.source.sizes.get(name, 0) for name in self.backend.files_for(self.source.files, self.runtime))

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def serving(self) -> bool:
        """Ready, or scaled to zero on Ray Serve ("idle": the next request starts a replica)."""
        return self.state in ("ready", "idle")

    @property
    def chat(self) -> bool:
        """Whether the model answers chat messages (it generates, and has a chat template)."""
        return self.generator is not None and bool(getattr(self.generator.engine, "chat", False))

    @property
    def busy(self) -> bool:
        """Answering, queued or streaming requests: never unloaded then."""
        streaming = bool(self.generator and (self.generator.active or self.generator.waiting))
        return self.in_flight > 0 or self.queue_depth > 0 or streaming

    @property
    def queue_depth(self) -> int:
        waiting = len(self.generator.waiting) if self.generator else 0
        return (self.batcher.depth if self.batcher else 0) + waiting

    def problem_for(self, trusted: bool) -> str | None:
        return self.problem if trusted else self.public_problem

    def describe(self, trusted: bool = False) -> dict:
        return {
            "model_id": self.model_id,
            "task": self.task,
            "tasks": list(self.tasks or (self.task,)),
            "library": self.backend.library,
            "backend": self.backend.name,
            "device": self.device,
            "revision": self.source.commit,
            "state": self.state,
            "problem": self.problem_for(trusted),
            "pinned": self.pinned,
            "runtime": self.runtime_in_use or self.runtime,
            **({"max_batch_size": self.batcher.max_batch_size} if self.batcher else {}),
            **({"memory_bytes": self.memory_bytes} if self.memory_bytes is not None else {}),
            **({"placement": self.placement} if self.placement else {}),
            **({"generation": self._generation()} if self.generator else {}),
            **({"worker": self.batcher.pipeline.describe()} if isinstance(getattr(self.batcher, "pipeline", None), IsolatedPipeline) else {}),
        }

    def _generation(self) -> dict:
        engine = self.generator.engine
        return {
            "continuous_batching": self.generator.max_active > 1,
            "max_active": self.generator.max_active,
            "chat": self.chat,
            "tools": self.chat and bool(getattr(engine, "renders_tools", False)),
            "structured_outputs": bool(getattr(engine, "constrains", False)),
            "top_logprobs": bool(getattr(engine, "alternatives", False)),
            **({"memory": engine.memory} if getattr(engine, "memory", None) else {}),
        }


def plan_models(requests: Sequence[ModelRequest], registry: Registry) -> list[ServedModel]:
    """Find each model's card and backend; fails fast, before any download."""
    planned: dict[str, ServedModel] = {}
    for request in requests:
        devices.check_device_name(request.device)
        source = hub.locate_model(request.model_id, registry.bundled_models, hub_only=request.on_demand)
        backend = hub.choose_backend(source, registry.backends, library=request.library)
        task = hub.choose_task(source, backend, task=request.task)
        runtime = request.runtime
        if request.on_demand and runtime_family(runtime) not in backend.runtimes:
            runtime = "torch"  # the server's --runtime, for the backends that have it
        check_runtime(runtime, backend, source.model_id)
        if source.model_id in planned:
            raise ModelResolutionError(f"model {source.model_id!r} is given twice")
        backend.check(
            PlannedModel(
                model_id=source.model_id,
                files=source.files,
                card=dict(source.card),
                trust_remote_code=request.trust_remote_code,
                read_text=functools.partial(hub.read_repo_text, source),
                runtime=runtime,
                task=task,
            )
        )
        planned[source.model_id] = ServedModel(
            source.model_id,
            source,
            backend,
            task,
            device_request=request.device,
            trust_remote_code=request.trust_remote_code,
            pinned=request.pinned and not request.on_demand,
            request=request,
            max_batch_size=request.max_batch_size,
            runtime=runtime,
        )
    return list(planned.values())


RUNTIME_FILES = (".onnx", ".xml")


def check_runtime(runtime: str, backend: Backend, model_id: str) -> None:
    """Refuse, before any download, a runtime that the model's backend cannot run."""
    family = runtime_family(runtime)
    if "/" in runtime and not runtime.endswith(RUNTIME_FILES):
        raise ModelResolutionError(
            f"--runtime {runtime!r}: a repo file names its runtime by its folder and ends in .onnx or .xml "
            "(e.g. onnx/model_qint8_avx512.onnx)"
        )
    if family not in backend.runtimes:
        raise ModelResolutionError(
            f"--runtime {runtime!r} for model {model_id!r}: backend {backend.name!r} runs "
            f"{', '.join(backend.runtimes)}"
        )


def load_model(
    model: ServedModel,
    batcher_for: Callable[[ServedModel, Pipeline], Batcher],
    *,
    generation_for: Callable[[ServedModel, Engine, Batcher], GenerationLoop] | None = None,
    inventory: Callable[[], Sequence[devices.Accelerator]] = devices.cuda_inventory,
    limits: Limits = Limits(),
) -> None:
    """Download, place and load one model; a failure is kept on the model, not raised."""
    started = time.perf_counter()
    try:
        if model.source.path is None:
            log.info("model %s: fetching its files into the Hugging Face cache", model.model_id)
        model.source = hub.fetch_model(model.source, model.backend, model.runtime)
        accelerators = tuple(inventory())
        model.device = devices.choose_device(model.device_request, accelerators)
        log.info("model %s: loading on %s with %s (runtime %s)", model.model_id, model.device, model.backend.name, model.runtime)
        collector.keep_out_of_collections()
        held_before = devices.memory_in_use(model.device)
        snapshot = ModelSnapshot(
            model_id=model.model_id,
            path=model.source.path,
            task=model.task,
            device=model.device,
            revision=model.source.commit,
            card=dict(model.source.card),
            accelerators=accelerators if (model.device_request or "auto") == "auto" else (),
            limits=limits,
            trust_remote_code=model.trust_remote_code,
            runtime=model.runtime,
        )
        isolated = model.request is not None and model.request.isolate
        pipeline = IsolatedPipeline(model, model.backend, snapshot) if isolated else model.backend.load(snapshot)
    except Exception as error:
        model.state, model.problem = "failed", f"{type(error).__name__}: {error}"
        model.public_problem = told_to_clients(error)
        log.exception("model %s failed to load: %s", model.model_id, model.problem)
        return
    held_after = devices.memory_in_use(model.device)
    measured = held_after - held_before if held_before is not None and held_after is not None else 0
    if isinstance(pipeline, IsolatedPipeline):  # its memory is its worker's, measured there
        measured = pipeline.memory_bytes or 0
    model.memory_bytes = measured if measured > 0 else model.download_bytes
    served = getattr(pipeline, "tasks", None) or model.backend.tasks
    # The default task first: the order in which a model's default route tries a body's shape.
    model.tasks = (model.task, *(task for task in served if task != model.task))
    model.batcher = batcher_for(model, pipeline)
    engine = getattr(pipeline, "engine", None)
    if engine is not None and generation_for is not None:
        model.generator = generation_for(model, engine, model.batcher)
        if not getattr(engine, "chat", False):
            log.warning("model %s has no chat template: its chat completions route answers 400", model.model_id)
        elif "conversational" not in model.tasks:
            # Every model that chats also answers the Hub's pre-chat payload.
            model.tasks = (*model.tasks, "conversational")
    model.placement = getattr(pipeline, "placement", None)
    model.runtime_in_use = getattr(pipeline, "runtime", model.runtime)
    model.load_seconds = time.perf_counter() - started
    collector.keep_out_of_collections()
    model.state = "ready"
    log.info("model %s ready on %s in %.1fs", model.model_id, model.device, model.load_seconds)

