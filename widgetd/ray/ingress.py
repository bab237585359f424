"""The ingress deployment: widgetd's HTTP app, whose models run in their deployments. ``ClusterState`` is
the app's state; ``RemoteBatcher`` and ``RemoteGenerator`` stand where one process has a model's batcher and
generation loop, and reach its replicas through handles."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import ray
from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError
from ray.serve.schema import ServeInstanceDetails

import widgetd
from widgetd.app import create_app
from widgetd.errors import ServiceUnavailable
from widgetd.generating import Generation, Job, Stream, Token, refuse_unhonoured
from widgetd.metrics import RAY_METRICS, _labels, family_header
from widgetd.models import ModelRequest, ServedModel, plan_models
from widgetd.plugins import collect, create_plugin_manager, describe_plugins
from widgetd.ray.replicas import ON_DEMAND, RemoteSequence, Replica, configure_logging, deployment_name
from widgetd.scaling import Scaling
from widgetd.settings import ServerSettings
from widgetd.state import ServerState
from widgetd.tracing import start_tracing

log = logging.getLogger("widgetd")

INGRESS = "widgetd"
WATCH_SECONDS = 1.0
"""How often the ingress asks Serve's controller which replicas run (for /info, /metrics and scaling to zero)."""
RETRIED = (RayActorError, ActorUnavailableError, ReplicaUnavailableError)
"""A replica that died or cannot be reached while answering: inference is idempotent, so once more elsewhere."""


class RemoteBatcher:
    """What the routes call a model's batcher, answered by the model's deployment: each request goes to one
    replica through the handle, and once more to another if that replica dies on it."""

    def __init__(self, handle: Any, model_id: str, cluster: ClusterState, max_batch_size: int = 1) -> None:
        self.handle, self.model_id, self.cluster = handle, model_id, cluster
        self.max_batch_size = max_batch_size
        self.depth = 0
        """Requests this ingress is waiting on (queued or running in a replica)."""

    async def answer(self, task: str, request: Any) -> tuple[Any, dict[str, str]]:
        reply = await self._reply("answer", task, request)
        self.cluster.seen(self.model_id, reply.replica, reply.batch_size)
        if reply.error is not None:
            raise reply.error
        replica = reply.replica
        return reply.value, {"x-widgetd-replica": replica.replica_id, "x-widgetd-node": replica.node_ip, "x-compute-type": replica.device or "cpu"}

    async def submit(self, task: str, request: Any) -> Any:
        value, _ = await self.answer(task, request)
        return value

    async def count_tokens(self, texts: list[str]) -> int:
        return await self._reply("count_tokens", texts)

    async def _reply(self, method: str, *args: Any) -> Any:
        self.depth += 1
        try:
            try:
                return await self._call(method, *args)
            except RETRIED as error:
                log.warning("model %s: a replica failed while answering (%s); asking another", self.model_id, type(error).__name__)
            try:
                return await self._call(method, *args)
            except RETRIED as error:
                raise ServiceUnavailable(f"model {self.model_id}: two replicas failed while answering ({type(error).__name__}); send the request again", 1) from None
        except BackPressureError:
            raise ServiceUnavailable(f"model {self.model_id} is overloaded: its replicas and their queue are full", 1) from None
        except DeploymentUnavailableError:
            raise ServiceUnavailable(f"model {self.model_id}: its deployment is not running", 5) from None
        finally:
            self.depth -= 1

    async def _call(self, method: str, *args: Any) -> Any:
        response = getattr(self.handle, method).remote(*args)
        try:
            return await response
        except asyncio.CancelledError:
            response.cancel()  # the client left, or time ran out: the replica stops working on it
            raise

    def close(self) -> None:
        """Nothing to free here: the replicas hold the model."""


class RemoteGenerator:
    """What the routes call a model's generation loop, run by a replica: each stream's tokens come through
    the handle as the replica's continuous batching makes them; stop sequences, finish reasons and events
    are worked out here as ``widgetd serve`` does. Closing a stream cancels it in the replica."""

    def __init__(self, handle: Any, model_id: str, cluster: ClusterState, about: dict[str, Any]) -> None:
        self.handle, self.model_id, self.cluster = handle, model_id, cluster
        self.engine = SimpleNamespace(
            chat=about["chat"], renders_tools=about.get("tools", False), constrains=about.get("structured_outputs", False),
            alternatives=about.get("top_logprobs", False), memory=about.get("memory"),
        )
        self.max_active = about["max_active"]
        self.active: set[Stream] = set()
        self.waiting: tuple = ()
        """Queued in the replicas, which this ingress does not see."""

    async def start(self, job: Job) -> Stream:
        refuse_unhonoured(self.engine, job.options)
        sequence = RemoteSequence()
        stream = Stream(Generation(job, sequence))
        remote = self.handle.options(stream=True).generate.remote(job)
        pump = asyncio.ensure_future(self._pump(remote, stream, sequence))

        def close() -> None:
            pump.cancel()
            remote.cancel()

        stream.on_close = close
        self.active.add(stream)
        pump.add_done_callback(lambda _: self.active.discard(stream))
        return stream

    async def complete(self, job: Job) -> Generation:
        stream = await self.start(job)
        try:
            async for _ in stream:
                pass
            return stream.generation
        finally:
            stream.close()

    async def _pump(self, remote: Any, stream: Stream, sequence: RemoteSequence) -> None:
        try:
            async for item in remote:
                if isinstance(item, RemoteSequence):
                    sequence.prompt_tokens, sequence.seed = item.prompt_tokens, item.seed
                    continue
                stream.deliver(item)
                if isinstance(item, Token):
                    self.cluster.metrics.observe_generation(self.model_id, 1, len(self.active))
                if stream.generation.done:
                    return
            stream.fail(ServiceUnavailable(f"model {self.model_id}: its replica ended the generation early; send the request again", 1))
        except asyncio.CancelledError:
            raise
        except (*RETRIED, BackPressureError, DeploymentUnavailableError) as error:
            stream.fail(ServiceUnavailable(f"model {self.model_id}: its replica failed while generating ({type(error).__name__}); send the request again", 1))
        except Exception as error:  # a bug in the replica: said once here, the client told without details
            log.exception("model %s: generation failed in its replica", self.model_id)
            stream.fail(error)

    def close(self) -> None:
        for stream in list(self.active):
            stream.close()


@dataclass
class Deployed:
    name: str
    handle: Any
    scaling: Scaling


@dataclass
class ClusterState(ServerState):
    """The ingress's state: its models run in their deployments, not in this process."""

    deployments: dict[str, Deployed] = field(default_factory=dict)
    on_demand: Deployed | None = None
    replicas: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """Each deployment's running replicas by id: where they run, and what they said of themselves."""
    answers: dict[tuple[str, str], int] = field(default_factory=dict)
    """Answers by (model, replica), for the replicas running now."""
    without_replicas: dict[str, int] = field(default_factory=dict)
    """Named ready models seen with no running replica, by how many looks in a row."""
    recovering: set[str] = field(default_factory=set)
    """Named models whose replicas all stopped running while they served, until one runs again."""
    _watching: bool = False
    holds_models = False

    def deployment_of(self, model: ServedModel) -> Deployed:
        if model.model_id in self.deployments:
            return self.deployments[model.model_id]
        assert self.on_demand is not None, "only allowed models are planned on demand"
        handle = self.on_demand.handle.options(multiplexed_model_id=model.model_id)
        return Deployed(self.on_demand.name, handle, self.on_demand.scaling)

    def load(self, model: ServedModel) -> None:
        """Called where ``widgetd serve`` loads a model: here, wait for a replica of its deployment to say it is
        ready (or failed), unless the deployment is scaled to zero."""
        self._watch()
        deployed = self.deployment_of(model)
        model.batcher = RemoteBatcher(deployed.handle, model.model_id, self)
        model.tasks = (model.task, *(task for task in model.backend.tasks if task != model.task))
        if deployed.scaling.scales_to_zero and not self.replicas.get(deployed.name):
            model.state = "idle"
            return
        self._ask_replica(model, deployed)

    def wake(self, model: ServedModel) -> None:
        """A request for a model scaled to zero: ask its deployment, which starts a replica."""
        if model.state != "idle":
            return
        model.state, model.load_started = "loading", time.monotonic()
        threading.Thread(target=self._ask_replica, args=(model, self.deployment_of(model)), daemon=True, name="widgetd-wake").start()

    def _ask_replica(self, model: ServedModel, deployed: Deployed) -> None:
        started = time.monotonic()
        try:
            about = deployed.handle.describe.remote().result()
            self._take_description(model, about)
        except Exception as error:
            model.state, model.problem = "failed", f"its deployment {deployed.name!r} did not answer: {type(error).__name__}: {error}"
            model.public_problem = f"its deployment {deployed.name!r} did not answer"
            log.error("model %s: %s", model.model_id, model.problem)
            return
        if model.ready:
            waited = time.monotonic() - started
            model.load_seconds = model.load_seconds if model.load_seconds is not None else waited
            self.pool.history.append((model.download_bytes, waited))

    def _take_description(self, model: ServedModel, about: dict[str, Any]) -> None:
        replica = Replica(**about["replica"])
        self.seen(model.model_id, replica, 0, answered=False)
        model.device = replica.device
        model.tasks = tuple(about["tasks"])
        model.runtime_in_use = about.get("runtime")
        model.load_seconds = about.get("load_seconds")
        model.memory_bytes = about.get("memory_bytes")
        model.placement = about.get("placement")
        model.problem, model.public_problem = about.get("problem"), about.get("public_problem")
        if isinstance(model.batcher, RemoteBatcher):
            model.batcher.max_batch_size = about.get("max_batch_size", 1)
        if about.get("generation") and model.generator is None:
            model.generator = RemoteGenerator(self.deployment_of(model).handle, model.model_id, self, about["generation"])
        model.state = about["state"]

    def seen(self, model_id: str, replica: Replica, batch_size: int, answered: bool = True) -> None:
        """A replica answered for ``model_id`` (or, not ``answered``, described itself): count it, and its batch once."""
        name = self.deployments.get(model_id, self.on_demand).name
        known = self.replicas.setdefault(name, {}).setdefault(replica.replica_id, {"models": [], "state": "RUNNING"})
        known.update(replica.describe())
        if model_id not in known["models"]:
            known["models"] = sorted({*known["models"], model_id})
        key = (model_id, replica.replica_id)
        self.answers[key] = self.answers.get(key, 0) + answered
        if batch_size:
            self.metrics.observe_batch(model_id, batch_size)

    def describe_model(self, model: ServedModel, trusted: bool) -> dict[str, Any]:
        deployed = self.deployment_of(model)
        running = self.replicas.get(deployed.name, {})
        replicas = [
            {key: value for key, value in about.items() if key != "models"}
            for about in running.values()
            if deployed.name != ON_DEMAND or model.model_id in about.get("models", [])
        ]
        return {
            **super().describe_model(model, trusted),
            "deployment": {"name": deployed.name, **deployed.scaling.describe(), "running_replicas": sum(r.get("state") == "RUNNING" for r in replicas), "replicas": replicas},
        }

    def extra_metrics(self) -> list[str]:
        per_node: dict[tuple[str, str], int] = {}
        for name, running in self.replicas.items():
            for about in running.values():
                key = (name, about.get("node_ip") or "unknown")
                per_node[key] = per_node.get(key, 0) + 1
        replicas, answers = RAY_METRICS
        return [
            *family_header(*replicas),
            *(f"widgetd_replicas{_labels(('deployment', 'node'), key)} {count}" for key, count in sorted(per_node.items())),
            *family_header(*answers),
            *(f"widgetd_replica_answers_total{_labels(('model', 'replica'), key)} {count}" for key, count in sorted(self.answers.items())),
        ]

    # -- which replicas run: Serve's controller, every second

    def _watch(self) -> None:
        if not self._watching:
            self._watching = True
            threading.Thread(target=self._watch_replicas, daemon=True, name="widgetd-replicas").start()

    def _watch_replicas(self) -> None:
        while True:
            try:
                self._refresh_replicas()
            except Exception as error:  # the controller restarting, a node leaving: look again soon
                log.debug("could not list the replicas: %s", error)
            time.sleep(WATCH_SECONDS)

    def _refresh_replicas(self) -> None:
        """Each deployment's replicas as Serve's controller lists them (what `serve status` and the dashboard
        show): their state, node and process."""
        app_name = serve.get_replica_context().app_name
        details = ServeInstanceDetails(**ray.get(_controller().get_serve_instance_details.remote()))
        deployments = details.applications[app_name].deployments if app_name in details.applications else {}
        for name, deployment in deployments.items():
            known = self.replicas.get(name, {})
            self.replicas[name] = {
                replica.replica_id: {
                    "models": [],
                    **known.get(replica.replica_id, {}),
                    "replica_id": replica.replica_id,
                    "state": replica.state.value,
                    "node_id": replica.node_id,
                    "node_ip": replica.node_ip,
                    "pid": replica.pid,
                }
                for replica in deployment.replicas
                if replica.state.value != "STOPPING"
            }
        alive = {replica_id for running in self.replicas.values() for replica_id in running}
        self.answers = {key: count for key, count in self.answers.items() if key[1] in alive}
        for model in list(self.models):
            if model.model_id in self.deployments:
                self._follow_replicas(model, self.deployments[model.model_id])

    def _follow_replicas(self, model: ServedModel, deployed: Deployed) -> None:
        """A named model's state as its replicas say: ``idle`` once scaled to zero; ``loading`` while Ray
        replaces replicas that all died (requests then get the loading 503, or wait), ready again after."""
        replicas = self.replicas.get(deployed.name, {})
        running = any(replica["state"] == "RUNNING" for replica in replicas.values())
        missing = not replicas if deployed.scaling.scales_to_zero else not running
        # Twice in a row: a replica that answered since the controller was asked is not missing.
        looks = self.without_replicas[model.model_id] = self.without_replicas.get(model.model_id, 0) + 1 if missing else 0
        if model.state == "ready" and looks >= 2 and not model.busy:
            if deployed.scaling.scales_to_zero:
                model.state = "idle"
                log.info("model %s scaled to zero; the next request starts a replica", model.model_id)
            else:
                model.state, model.load_started = "loading", time.monotonic()
                self.recovering.add(model.model_id)
                log.warning("model %s has no running replica; Ray is starting one", model.model_id)
        elif model.model_id in self.recovering and running:
            self.recovering.discard(model.model_id)
            model.state = "ready"
            log.info("model %s has a running replica again", model.model_id)


def _controller() -> Any:
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    return ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)


@serve.deployment(name=INGRESS, ray_actor_options={"num_cpus": 0})
@serve.ingress()
class Ingress:
    """widgetd's HTTP app, with each model answered by its deployment."""

    def __init__(self, settings: ServerSettings, requests: list[ModelRequest], models: list[Any], on_demand: Any, scaling: Scaling) -> None:
        configure_logging()
        if settings.otlp_endpoint:
            start_tracing(settings.otlp_endpoint, widgetd.__version__)
        manager = create_plugin_manager()
        registry = collect(manager)
        planned = plan_models(requests, registry)
        # Room for models is each replica's business (serve.multiplexed's LRU): the ingress holds none.
        here = replace(settings, max_models=None, memory_budget={})
        self.state = ClusterState(
            models=planned,
            registry=registry,
            plugins=describe_plugins(manager, registry),
            settings=here,
            deployments={
                model.model_id: Deployed(deployment_name(index, model.model_id), handle, request.scaling)
                for index, (model, handle, request) in enumerate(zip(planned, models, requests))
            },
            on_demand=Deployed(ON_DEMAND, on_demand, scaling) if on_demand is not None else None,
        )

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(self.state, proxy_request_id=_ray_request_id)


def _ray_request_id() -> str | None:
    """The id Ray Serve's proxy gave the request (the client's X-Request-Id, or its own), which it sends back."""
    try:
        from ray.serve.context import _get_serve_request_context

        return _get_serve_request_context().request_id or None
    except Exception:  # a private API: without it, widgetd's own id (the proxy still sends back Ray's)
        return None
