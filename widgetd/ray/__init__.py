"""widgetd on Ray Serve: ``widgetd serve --ray ...``, or ``serve run widgetd.ray:app model_id=org/name``.

::

    clients ──HTTP──> Ray's proxy ──> "widgetd" (ingress)  ──handle──> "model-0-org--name"  replicas: the model,
                      (each node)     widgetd's routes,    │                                  widgetd's batcher
                                      decoding, errors,    ├─handle──> "model-1-..."
                                      /health /info        │
                                      /metrics             └─handle──> "on-demand" (--allow-model): models by id,
                                                                       serve.multiplexed, LRU per replica

The ingress (``widgetd.ray.ingress``) runs the same app as ``widgetd serve``; only where a model runs differs: its ``ClusterState``
hands each request's decoded input to the model's deployment through a handle (``RemoteBatcher``) and
gets the checked answer back. Each replica (``widgetd.ray.replicas``) batches what it receives with widgetd's
own batcher. This module builds the application and runs it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import Any, Mapping

import ray
from ray import serve

from widgetd import options
from widgetd.models import plan_models
from widgetd.plugins import collect, create_plugin_manager
from widgetd.ray.ingress import Ingress
from widgetd.ray.replicas import ON_DEMAND, ModelReplica, OnDemandReplica, deployment_name
from widgetd.scaling import Scaling
from widgetd.settings import ServerSettings

__all__ = ["app", "application", "serve_on_ray"]

log = logging.getLogger("widgetd")

APP_NAME = "widgetd"
"""The application's name under ``widgetd serve --ray`` (``serve run`` names it itself)."""


def app(args: Mapping[str, Any] | None = None) -> serve.Application:
    """The application builder for ``serve run widgetd.ray:app model_id=org/name replicas=2`` and for a Serve
    config's ``import_path: widgetd.ray:app`` with ``args``: each arg is a ``widgetd serve`` option spelt with
    underscores (``model_id`` may be a list)."""
    return application(options.serve_arguments(options_as_argv(args or {})))


def options_as_argv(args: Mapping[str, Any]) -> list[str]:
    """Builder args as ``widgetd serve`` flags: ``{"allow_models": ["org/*"], "ray": True}`` as
    ``--allow-model org/* --ray``; an option is named by its flag or by its setting name."""
    flags = options.serve_flags()
    argv = []
    for name, value in args.items():
        flag = flags.get(name) or "--" + name.replace("_", "-")
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if item is True:
                argv.append(flag)
            elif item is not False and item is not None:
                argv += [flag, str(item)]
    return argv


def application(arguments: argparse.Namespace) -> serve.Application:
    """The ingress and one deployment per named model (and one for on-demand models), as ``arguments`` say.
    Models are planned here first, so a model that cannot be served fails before anything is deployed."""
    settings = options.settings_from(arguments)
    requests = options.model_requests(arguments)
    registry = collect(create_plugin_manager())
    planned = plan_models(requests, registry)
    models = [
        ModelReplica.options(name=deployment_name(index, model.model_id), **deployment_options(request.scaling, settings)).bind(request, settings)
        for index, (request, model) in enumerate(zip(requests, planned))
    ]
    on_demand = None
    scaling = options.scaling_from(arguments)
    if settings.allow_models:
        on_demand = OnDemandReplica.options(name=ON_DEMAND, **deployment_options(scaling, settings)).bind(settings)
    return Ingress.options(max_ongoing_requests=settings.max_connections, graceful_shutdown_timeout_s=settings.shutdown_timeout).bind(
        settings, requests, models, on_demand, scaling
    )


def deployment_options(scaling: Scaling, settings: ServerSettings) -> dict[str, Any]:
    """Ray Serve's options for a model deployment. A replica takes as many requests as widgetd's batcher
    queues (``--max-queue``); beyond that Ray's handle queues them, and past twice that it answers 503."""
    options: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": scaling.num_cpus, "num_gpus": scaling.num_gpus},
        "max_ongoing_requests": settings.max_queue,
        "max_queued_requests": settings.max_queue,
        "graceful_shutdown_timeout_s": settings.shutdown_timeout,
    }
    if scaling.max_replicas_per_node:
        options["max_replicas_per_node"] = scaling.max_replicas_per_node
    if scaling.autoscale is None:
        options["num_replicas"] = scaling.replicas
        return options
    low, high = scaling.autoscale
    # Short delays ask for a quick autoscaler: it looks back over at most half the delay.
    window = max(1.0, min(30.0, scaling.scale_down_delay / 2))
    options["autoscaling_config"] = {
        "min_replicas": low,
        "max_replicas": high,
        "target_ongoing_requests": scaling.target_ongoing_requests,
        "downscale_delay_s": scaling.scale_down_delay,
        "upscale_delay_s": window,
        "look_back_period_s": window,
        "metrics_interval_s": min(10.0, window / 2),
    }
    return options


# ---------------------------------------------------------------- running it


def serve_on_ray(arguments: argparse.Namespace) -> int:
    """``widgetd serve --ray``: deploy on the cluster $RAY_ADDRESS names (else a new local one), with Ray's
    HTTP proxy on --host and --port; Ctrl-C or SIGTERM deletes the application, as ``serve run`` does."""
    built = application(arguments)
    ray.init(address=os.environ.get("RAY_ADDRESS"), logging_level=logging.WARNING)
    serve.start(http_options={"host": arguments.host, "port": arguments.port})
    serve.run(built, name=APP_NAME, route_prefix="/", blocking=False)
    log.info("widgetd is serving on Ray Serve at http://%s:%d", arguments.host, arguments.port)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    log.info("deleting the application %r", APP_NAME)
    serve.delete(APP_NAME)
    return 0
