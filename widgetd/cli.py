"""``widgetd serve | plugins | tasks | spec``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import Sequence

from widgetd.errors import WidgetdError
from widgetd.limits import Limits
from widgetd.scaling import DEFAULT_SCALE_DOWN_DELAY, DEFAULT_TARGET_ONGOING_REQUESTS, Scaling, check_scaling, parse_autoscale
from widgetd.state import ServerSettings
from widgetd.logs import known_secrets, mask_secrets_in_logs, masked
from widgetd.plugins import collect, create_plugin_manager, describe_plugins

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_PORT = 8000


def main(argv: Sequence[str] | None = None) -> int:
    parser, serve = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        defaults_from_environment(serve)
    except WidgetdError as error:
        print(f"widgetd: error: {error}", file=sys.stderr)
        return 2
    arguments = parser.parse_args(argv)
    if not hasattr(arguments, "run"):
        parser.print_help()
        return 2
    try:
        if getattr(arguments, "config", None) and arguments.run is _serve:
            apply_config(arguments, serve, argv)
        if arguments.run is _serve:
            check_options(arguments)
        if arguments.run is _config_check:
            arguments.options = serve_options(serve)
        return arguments.run(arguments) or 0
    except WidgetdError as error:
        # A Hub that echoes the request's headers must not get the token onto the terminal.
        print(f"widgetd: error: {masked(str(error), known_secrets(getattr(arguments, 'api_key', None)))}", file=sys.stderr)
        return 1


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The command line, and its ``serve`` command's own parser."""
    parser = argparse.ArgumentParser(prog="widgetd", description=__doc__)
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser(
        "serve",
        help="serve models over HTTP",
        epilog="Every option is also an environment variable, WIDGETD_ and its name (WIDGETD_MAX_QUEUE=64), "
        "and a setting of the --config file's [server] table (max_queue = 64); flags win over both.",
    )
    serve.add_argument(
        "--config",
        type=Path,
        help="a widgetd.toml describing the server ([server]) and its models ([[models]]); flags override it "
        "($WIDGETD_CONFIG)",
    )
    serve.add_argument(
        "--model-id",
        action="append",
        help="Hub repo id (org/name or org/name@revision) or local folder; repeat for several "
        "models; the first is served at POST / (default: $MODEL_ID, else Inference Endpoints' folder "
        f"$HF_MODEL_DIR if it holds files, or $HF_MODEL_ID at $HF_REVISION, else {DEFAULT_MODEL_ID})",
    )
    serve.add_argument(
        "--task",
        default=os.environ.get("HF_TASK") or os.environ.get("TASK"),
        help="override the card's pipeline_tag ($HF_TASK or $TASK)",
    )
    serve.add_argument(
        "--trust-remote-code",
        action="store_true",
        default=_env_flag("HF_TRUST_REMOTE_CODE"),
        help="let code shipped in a model's repo run (a handler.py, transformers' custom architectures); "
        "it runs with this server's rights, so read it first ($HF_TRUST_REMOTE_CODE=1)",
    )
    serve.add_argument(
        "--allow-model",
        action="append",
        dest="allow_models",
        metavar="PATTERN",
        help="load a Hub model matching this glob (e.g. 'my-org/*') on its first request; repeatable "
        "($WIDGETD_ALLOW_MODELS, comma separated)",
    )
    serve.add_argument(
        "--max-models",
        type=int,
        help="models held at once; the least recently used idle on-demand model is unloaded to make room "
        "($WIDGETD_MAX_MODELS; default: no limit)",
    )
    serve.add_argument(
        "--memory-budget",
        action="append",
        metavar="[DEVICE=]SIZE",
        help="memory the models may hold: '12GiB' on every device, 'cpu=8GiB', 'cuda=20GiB' (each GPU) or "
        "'cuda:1=10GiB'; repeatable; the least recently used idle on-demand models make room (default: no "
        "budget, but a model never loads onto a GPU without the free memory for it)",
    )
    serve.add_argument(
        "--runtime",
        default="torch",
        help="what runs the models: torch (default), onnx, openvino, int8 (OpenVINO, int8 weights), auto "
        "(the fastest measured at load) or one of the repo's exported files (onnx/model_O3.onnx); for the "
        "backends that have them ($WIDGETD_RUNTIME)",
    )
    serve.add_argument("--library", help="override the card's library_name")
    serve.add_argument("--device", help="auto (default), cpu, cuda or cuda:N ($WIDGETD_DEVICE)")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", DEFAULT_PORT)))
    serve.add_argument(
        "--api-key",
        help="require 'Authorization: Bearer KEY' on inference routes ($WIDGETD_API_KEY)",
    )
    serve.add_argument(
        "--max-body-size",
        type=int,
        default=50 * 1024 * 1024,
        help="largest accepted request body in bytes; larger ones get 413 (default 50 MiB)",
    )
    serve.add_argument("--max-batch-size", type=int, help="largest batch a model runs (default: the backend's)")
    serve.add_argument(
        "--max-batch-wait-ms",
        type=float,
        default=0.0,
        help="how long every batch waits for more requests (default 0: adaptive; after a batch of N, "
        "the next waits for N requests, at most 25 ms and a tenth of that batch's run time)",
    )
    serve.add_argument("--max-queue", type=int, default=1024, help="requests waiting per model before 503 (default 1024)")
    serve.add_argument(
        "--request-timeout", type=float, default=300.0, help="seconds before a request gets a 504 (default 300)"
    )
    serve.add_argument("--max-inputs", type=int, default=Limits.max_inputs, help=f"texts, sentences or list items in one request (default {Limits.max_inputs})")
    serve.add_argument("--max-characters", type=int, default=Limits.max_characters, help=f"characters in one text (default {Limits.max_characters})")
    serve.add_argument("--max-audio-seconds", type=float, default=Limits.max_audio_seconds, help=f"seconds of audio in one request (default {Limits.max_audio_seconds:g})")
    serve.add_argument("--max-image-pixels", type=int, default=Limits.max_image_pixels, help=f"pixels of one image (default {Limits.max_image_pixels})")
    serve.add_argument("--max-response-size", type=int, default=Limits.max_response_bytes, help=f"bytes of one answer (default {Limits.max_response_bytes}, 64 MiB)")
    defaults = ServerSettings()
    serve.add_argument("--header-timeout", type=float, default=defaults.header_timeout, help=f"seconds a request's headers may take to arrive (default {defaults.header_timeout:g})")
    serve.add_argument("--body-timeout", type=float, default=defaults.body_timeout, help=f"seconds a request's body may take to arrive (default {defaults.body_timeout:g})")
    serve.add_argument("--keep-alive-timeout", type=float, default=defaults.keep_alive_timeout, help=f"seconds an idle keep-alive connection stays open (default {defaults.keep_alive_timeout:g})")
    serve.add_argument("--max-connections", type=int, default=defaults.max_connections, help=f"open connections at most; more get 503 (default {defaults.max_connections})")
    serve.add_argument(
        "--shutdown-timeout",
        type=float,
        default=defaults.shutdown_timeout,
        help=f"on SIGTERM, seconds running requests get to finish; the rest are answered 503 (default {defaults.shutdown_timeout:g})",
    )
    serve.add_argument("--log-level", default="info")
    ray = serve.add_argument_group(
        "Ray Serve", "serve on the Ray cluster that $RAY_ADDRESS names (else a new local one): one deployment per "
        "model, with these replicas, behind an ingress deployment running widgetd's routes"
    )
    ray.add_argument("--ray", action="store_true", help="serve on Ray Serve ($WIDGETD_RAY=1)")
    ray.add_argument("--replicas", type=int, default=1, metavar="N", help="replicas of each model (default 1)")
    ray.add_argument(
        "--autoscale",
        metavar="MIN:MAX",
        help="autoscale each model between MIN and MAX replicas; MIN 0 stops the last replica after "
        "--scale-down-delay idle, and the next request starts one (503 with an estimate, or the wait with "
        "x-wait-for-model: true)",
    )
    ray.add_argument(
        "--target-ongoing-requests",
        type=float,
        metavar="N",
        default=DEFAULT_TARGET_ONGOING_REQUESTS,
        help=f"requests per replica the autoscaler aims at (default {DEFAULT_TARGET_ONGOING_REQUESTS:g})",
    )
    ray.add_argument(
        "--scale-down-delay",
        type=float,
        metavar="SECONDS",
        default=DEFAULT_SCALE_DOWN_DELAY,
        help=f"seconds of low load before the autoscaler stops a replica (default {DEFAULT_SCALE_DOWN_DELAY:g})",
    )
    ray.add_argument("--num-gpus", type=float, default=0.0, metavar="G", help="GPUs each replica reserves; 0.5 packs two on one GPU (default 0)")
    ray.add_argument("--num-cpus", type=float, default=1.0, metavar="C", help="CPUs each replica reserves in Ray's scheduling (default 1)")
    ray.add_argument("--max-replicas-per-node", type=int, metavar="N", help="at most this many replicas of a model on one node (1 spreads them)")
    serve.set_defaults(run=_serve)

    plugins = commands.add_parser("plugins", help="list the loaded plugins as JSON")
    plugins.set_defaults(run=_plugins)

    tasks = commands.add_parser("tasks", help="list the known tasks with their schemas as JSON")
    tasks.set_defaults(run=_tasks)

    spec = commands.add_parser("spec", help="write the JSON Schemas and OpenAPI document")
    spec.add_argument("--out", type=Path, default=Path("spec"), help="folder to write (default: spec)")
    spec.add_argument("--check", action="store_true", help="only report files that are stale; exit 1 if any")
    spec.set_defaults(run=_spec)

    config = commands.add_parser("config", help="check a widgetd.toml")
    checks = config.add_subparsers(title="config commands")
    check = checks.add_parser("check", help="validate a config file; errors name the line")
    check.add_argument("file", type=Path)
    check.set_defaults(run=_config_check)
    return parser, serve


NOT_IN_CONFIG = ("help", "config", "model_id")
"""Options the config's [server] table does not hold: the models are its [[models]] tables."""


def serve_options(serve: argparse.ArgumentParser) -> dict[str, type]:
    """Each ``serve`` option's setting name and type: what the config's [server] table may hold."""
    options = {}
    for action in serve._actions:
        if action.option_strings and action.dest not in NOT_IN_CONFIG:
            options[action.dest] = _kind(action)
    return options


def _kind(action: argparse.Action) -> type:
    if action.nargs == 0:
        return bool
    if type(action).__name__ == "_AppendAction":
        return list
    return action.type if action.type in (int, float) else str


def defaults_from_environment(serve: argparse.ArgumentParser) -> None:
    """``WIDGETD_<OPTION>`` (``WIDGETD_MAX_QUEUE=64``) as the default of each ``serve`` option."""
    for action in serve._actions:
        name = "WIDGETD_" + action.dest.upper()
        value = os.environ.get(name)
        if not action.option_strings or value is None or action.dest == "help":
            continue
        kind = _kind(action)
        try:
            action.default = (
                _env_flag(name) if kind is bool else [item.strip() for item in value.split(",") if item.strip()] if kind is list else kind(value)
            )
        except ValueError:
            raise WidgetdError(f"${name} is {value!r}, not {'an' if kind is int else 'a'} {kind.__name__}") from None


def apply_config(arguments: argparse.Namespace, serve: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """The config file's settings where the command line says nothing, and its models unless --model-id names some."""
    from widgetd.config import read_config

    config = read_config(arguments.config, serve_options(serve))
    given = {
        action.dest
        for action in serve._actions
        for flag in action.option_strings
        if any(argument == flag or argument.startswith(flag + "=") for argument in argv)
    }
    for key, value in config.server.items():
        if key not in given:
            setattr(arguments, key, value)
    arguments.config_models = [] if arguments.model_id else config.models


def serve_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """``widgetd serve``'s options from ``argv``, the environment and the --config file, checked."""
    _, serve = _parser()
    defaults_from_environment(serve)
    try:
        arguments = serve.parse_args(list(argv))
    except SystemExit:
        raise WidgetdError(f"widgetd serve does not take {' '.join(argv)!r} (see widgetd serve --help)") from None
    if arguments.config:
        apply_config(arguments, serve, argv)
    check_options(arguments)
    return arguments


def serve_flags() -> dict[str, str]:
    """Each ``serve`` option's flag by its setting name and by its flag's own name: ``allow_models`` and
    ``allow_model`` both give ``--allow-model``."""
    _, serve = _parser()
    flags = {}
    for action in serve._actions:
        if action.option_strings:
            flag = action.option_strings[-1]
            flags[action.dest] = flags[flag.lstrip("-").replace("-", "_")] = flag
    return flags


def check_options(arguments: argparse.Namespace) -> None:
    """What argparse cannot check alone, refused before anything loads."""
    scaling_from(arguments)
    memory_budgets(arguments.memory_budget or [])


def _config_check(arguments: argparse.Namespace) -> int:
    from widgetd.config import ConfigError, read_config
    from widgetd.devices import check_device_name

    config = read_config(arguments.file, arguments.options)
    _, registry = _registry()
    for index, model in enumerate(config.models):
        if model.task and model.task not in registry.tasks:
            raise ConfigError(f"{arguments.file}: models[{index}].task {model.task!r} is not a task here; known: {sorted(registry.tasks)}")
        try:
            check_device_name(model.device)
        except WidgetdError as error:
            raise ConfigError(f"{arguments.file}: models[{index}].device: {error}") from None
        try:
            if model.autoscale:
                parse_autoscale(model.autoscale)
        except WidgetdError as error:
            raise ConfigError(f"{arguments.file}: models[{index}].autoscale: {error}") from None
    try:
        memory_budgets(config.server.get("memory_budget", []))
    except WidgetdError as error:
        raise ConfigError(f"{arguments.file}: server.memory_budget: {error}") from None
    settings, models = len(config.server), len(config.models)
    print(f"{arguments.file}: ok ({settings} setting{'s' * (settings != 1)}, {models} model{'s' * (models != 1)})")
    return 0


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def default_model_id() -> str | None:
    """The model named by the environment: widgetd's ``MODEL_ID``, or Inference Endpoints' variables read as
    their toolkit reads them: the files already in ``HF_MODEL_DIR``, else ``HF_MODEL_ID`` at ``HF_REVISION``."""
    if os.environ.get("MODEL_ID"):
        return os.environ["MODEL_ID"]
    model_dir = os.environ.get("HF_MODEL_DIR")
    if model_dir and Path(model_dir).is_dir() and any(Path(model_dir).iterdir()):
        return model_dir
    if os.environ.get("HF_MODEL_ID"):
        revision = os.environ.get("HF_REVISION")
        return os.environ["HF_MODEL_ID"] + (f"@{revision}" if revision else "")
    return None


def _use_endpoint_token() -> None:
    """Inference Endpoints pass the Hub token as ``HF_HUB_TOKEN``; huggingface_hub reads ``HF_TOKEN``."""
    token = os.environ.get("HF_HUB_TOKEN")
    if token and not os.environ.get("HF_TOKEN"):
        os.environ["HF_TOKEN"] = token


def _registry():
    manager = create_plugin_manager()
    return manager, collect(manager)


def _plugins(arguments: argparse.Namespace) -> int:
    manager, registry = _registry()
    print(json.dumps(describe_plugins(manager, registry), indent=2))
    return 0


def _tasks(arguments: argparse.Namespace) -> int:
    _, registry = _registry()
    described = [
        {
            "name": task.name,
            "summary": task.summary,
            "input": task.request_schema(),
            "output": task.response_schema(),
            "served_by": [b.name for b in registry.backends.values() if task.name in b.tasks],
        }
        for task in sorted(registry.tasks.values(), key=lambda task: task.name)
    ]
    print(json.dumps(described, indent=2))
    return 0


def _spec(arguments: argparse.Namespace) -> int:
    from widgetd.spec import stale_spec_files, write_spec

    _, registry = _registry()
    tasks = registry.tasks.values()
    if arguments.check:
        stale = stale_spec_files(tasks, arguments.out)
        for relative in stale:
            print(f"stale: {arguments.out / relative}")
        return 1 if stale else 0
    for relative in write_spec(tasks, arguments.out):
        print(arguments.out / relative)
    return 0


def _serve(arguments: argparse.Namespace) -> int:
    from widgetd.app import create_app
    from widgetd.models import plan_models
    from widgetd.serving import GracefulServer, uvicorn_config
    from widgetd.state import ServerState

    logging.basicConfig(level=arguments.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    _use_endpoint_token()
    mask_secrets_in_logs(known_secrets(arguments.api_key))
    for chatty in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # Model threads hold the GIL between kernels; a short switch interval keeps the event loop
    # (health checks, new requests) answering within milliseconds while they run.
    sys.setswitchinterval(0.001)
    if arguments.ray:
        from widgetd.ray import serve_on_ray

        return serve_on_ray(arguments)
    manager, registry = _registry()
    settings = settings_from(arguments)
    state = ServerState(
        models=plan_models(model_requests(arguments), registry),
        registry=registry,
        plugins=describe_plugins(manager, registry),
        settings=settings,
    )
    config = uvicorn_config(create_app(state), settings, host=arguments.host, port=arguments.port, log_level=arguments.log_level)
    server = GracefulServer(config, on_stop=lambda: state.shutdown.begin(settings.shutdown_timeout))
    server.run()
    _exit_even_if_a_model_is_busy()
    return 0


def settings_from(arguments: argparse.Namespace) -> ServerSettings:
    return ServerSettings(
        api_key=arguments.api_key,
        max_body_size=arguments.max_body_size,
        max_batch_size=arguments.max_batch_size,
        max_batch_wait=arguments.max_batch_wait_ms / 1000,
        max_queue=arguments.max_queue,
        request_timeout=arguments.request_timeout,
        header_timeout=arguments.header_timeout,
        body_timeout=arguments.body_timeout,
        keep_alive_timeout=arguments.keep_alive_timeout,
        max_connections=arguments.max_connections,
        shutdown_timeout=arguments.shutdown_timeout,
        trust_remote_code=arguments.trust_remote_code,
        runtime=arguments.runtime,
        allow_models=tuple(arguments.allow_models or ()),
        memory_budget=memory_budgets(arguments.memory_budget or []),
        max_models=arguments.max_models,
        limits=Limits(
            max_inputs=arguments.max_inputs,
            max_characters=arguments.max_characters,
            max_audio_seconds=arguments.max_audio_seconds,
            max_image_pixels=arguments.max_image_pixels,
            max_response_bytes=arguments.max_response_size,
        ),
    )


def memory_budgets(values: Sequence[str]) -> dict[str, int]:
    """``["12GiB", "cuda:1=10GiB"]`` as {"*": ..., "cuda:1": ...}."""
    from widgetd.devices import check_device_name, parse_size

    budgets = {}
    for value in values:
        device, _, size = value.rpartition("=")
        if device and device != "cuda":
            check_device_name(device)
        try:
            budgets[device or "*"] = parse_size(size)
        except ValueError as error:
            raise WidgetdError(f"--memory-budget {value!r}: {error}") from None
    return budgets


def scaling_from(arguments: argparse.Namespace, entry=None) -> Scaling:
    """The replicas of a model on Ray Serve: its config entry's, else the flags'."""

    def given(name: str, flag: object) -> object:
        value = getattr(entry, name, None)
        return flag if value is None else value

    replicas, num_gpus = given("replicas", arguments.replicas), given("num_gpus", arguments.num_gpus)
    autoscale = given("autoscale", None) or arguments.autoscale
    return check_scaling(
        Scaling(
            replicas=replicas,
            autoscale=parse_autoscale(autoscale) if autoscale else None,
            target_ongoing_requests=arguments.target_ongoing_requests,
            scale_down_delay=arguments.scale_down_delay,
            num_gpus=num_gpus,
            num_cpus=arguments.num_cpus,
            max_replicas_per_node=arguments.max_replicas_per_node,
        )
    )


def model_requests(arguments: argparse.Namespace) -> list:
    """The models to serve: --model-id's, else the config file's, else the environment's or the default one
    (none for a server of on-demand models)."""
    from widgetd.models import ModelRequest

    common = dict(
        task=arguments.task,
        library=arguments.library,
        device=arguments.device,
        trust_remote_code=arguments.trust_remote_code,
        runtime=arguments.runtime,
        scaling=scaling_from(arguments),
    )
    configured = getattr(arguments, "config_models", [])
    if configured and not arguments.model_id:
        return [
            ModelRequest(
                entry.full_id,
                task=entry.task or arguments.task,
                library=entry.library or arguments.library,
                device=entry.device or arguments.device,
                trust_remote_code=entry.trust_remote_code or arguments.trust_remote_code,
                pinned=entry.pinned,
                max_batch_size=entry.batch_size,
                runtime=entry.runtime or arguments.runtime,
                scaling=scaling_from(arguments, entry),
            )
            for entry in configured
        ]
    named = arguments.model_id or [default_model_id() or ("" if arguments.allow_models else DEFAULT_MODEL_ID)]
    return [ModelRequest(model_id, **common) for model_id in named if model_id]


def _exit_even_if_a_model_is_busy() -> None:
    """A model thread still inside a batch that cannot stop would hold the process at exit: leave without it."""
    models = [thread for thread in threading.enumerate() if thread.name.startswith("model-")]
    for thread in models:
        thread.join(timeout=0.5)  # an idle one ends at once
    busy = [thread.name for thread in models if thread.is_alive()]
    if busy:
        logging.getLogger("widgetd").warning("exiting while %s still run", ", ".join(busy))
        logging.shutdown()
        os._exit(0)
