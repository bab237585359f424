"""``widgetd serve``'s options: the command line, ``WIDGETD_<OPTION>`` variables and a ``--config`` file,
read into the server's settings and the models to serve. The CLI and the Ray Serve builder both read them."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Iterable, Sequence
from urllib.parse import urlsplit

from widgetd.errors import WidgetdError
from widgetd.limits import Limits
from widgetd.scaling import DEFAULT_SCALE_DOWN_DELAY, DEFAULT_TARGET_ONGOING_REQUESTS, Scaling, check_scaling, parse_autoscale
from widgetd.settings import ServerSettings

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_PORT = 8000


def add_serve_options(serve: argparse.ArgumentParser) -> None:
    """Every option of ``widgetd serve``."""
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
        f"$HF_MODEL_DIR if it holds files, or $HF_MODEL_ID at $HF_REVISION, else {DEFAULT_MODEL_ID}; with "
        "--allow-model and no model named, none: models load as they are asked for)",
    )
    serve.add_argument(
        "--task",
        default=os.environ.get("HF_TASK") or os.environ.get("TASK"),
        help="override the card's pipeline_tag ($HF_TASK or $TASK)",
    )
    serve.add_argument(
        "--trust-remote-code",
        action="store_true",
        default=env_flag("HF_TRUST_REMOTE_CODE"),
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
    serve.add_argument(
        "--isolate",
        action="store_true",
        help="run each model in a worker process of its own: a crash in its library (a segfault, an out-of-memory kill) "
        "fails only its requests (503) and the worker is started again; costs each model its own copy of the "
        "library and a pipe crossing per batch or generation step ($WIDGETD_ISOLATE=1)",
    )
    serve.add_argument("--device", help="auto (default), cpu, cuda or cuda:N ($WIDGETD_DEVICE)")
    serve.add_argument(
        "--host",
        default=os.environ.get("HOST", "127.0.0.1"),
        help="address to listen on; 0.0.0.0 for every interface (default: $HOST, else 127.0.0.1)",
    )
    serve.add_argument(
        "--port", type=int, default=int(os.environ.get("PORT", DEFAULT_PORT)), help=f"port to listen on (default: $PORT, else {DEFAULT_PORT})"
    )
    serve.add_argument(
        "--api-key",
        help="require 'Authorization: Bearer KEY' on inference and information routes; "
        "without --admin-key or an admin key in --keys-file, it also opens the admin API, with a warning ($WIDGETD_API_KEY)",
    )
    serve.add_argument(
        "--admin-key",
        help="a key that loads, reloads and unloads models (the admin API, off without one) and calls them too ($WIDGETD_ADMIN_KEY)",
    )
    serve.add_argument(
        "--keys-file",
        metavar="PATH",
        help="a TOML file of named keys, each with scopes 'inference' and/or 'admin' (key, or its sha256); "
        "read again on SIGHUP, without a restart ($WIDGETD_KEYS_FILE)",
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
    serve.add_argument("--max-inference-steps", type=int, default=Limits.max_inference_steps, help=f"denoising steps of one generated image (default {Limits.max_inference_steps})")
    serve.add_argument("--max-generated-pixels", type=int, default=Limits.max_generated_pixels, help=f"pixels of one generated image, width x height (default {Limits.max_generated_pixels})")
    serve.add_argument(
        "--prefix-cache-size",
        default="1GiB",
        metavar="SIZE",
        help="keys and values each chat or text-generation model keeps of the prompts it read, reused by later "
        "prompts that start the same way (a shared system prompt, a conversation's earlier turns); 0 turns "
        "prefix caching off (default 1GiB)",
    )
    serve.add_argument(
        "--kv-cache-size",
        default="0",
        metavar="SIZE",
        help="keys and values the sequences a chat or text-generation model generates together may hold: a "
        "sequence starts once the cache it may grow to fits, else waits (default 0: 90%% of a GPU's memory "
        "left free by the model, a quarter of the machine's on a CPU, less --prefix-cache-size)",
    )
    serve.add_argument(
        "--prefill-chunk",
        type=int,
        default=Limits.prefill_chunk,
        metavar="TOKENS",
        help="prompt tokens a chat or text-generation model reads between two steps of the sequences already "
        "running, so that a long prompt arriving does not stall them (default 0: as many as take about one of "
        "their steps, measured as it runs)",
    )
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
    serve.add_argument(
        "--log-level",
        default="info",
        type=str.lower,
        choices=("critical", "error", "warning", "info", "debug"),
        help="the least severe log lines shown; debug adds the access lines of /health and /metrics polls (default info)",
    )
    serve.add_argument(
        "--log-format",
        default="text",
        type=str.lower,
        choices=("text", "json"),
        help="text: lines for a person, a request's id at the end of its lines; json: one JSON object a line "
        "(time, level, logger, message, request_id, and an access line's client, method, path and status) (default text)",
    )
    serve.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="export OpenTelemetry traces to this OTLP/HTTP collector (e.g. http://127.0.0.1:4318): a span per request "
        "with its decoding, queue wait, batch, model call, generation and encoding; OTEL_* variables honoured; "
        "needs pip install 'widgetd[otel]' (default: off) ($WIDGETD_OTLP_ENDPOINT)",
    )
    serve.add_argument(
        "--no-mcp",
        dest="mcp",
        action="store_false",
        help="do not serve /mcp, the MCP server (Streamable HTTP) whose tools are the served models' tasks, behind "
        "the same keys as the task routes ($WIDGETD_MCP=0)",
    )
    serve.add_argument(
        "--mcp-origin",
        action="append",
        dest="mcp_origins",
        metavar="ORIGIN",
        help="a web origin (https://app.example.com) whose pages may call /mcp from a browser; pages on loopback "
        "origins always may, others get 403 (MCP's DNS rebinding protection); * for any; repeatable "
        "($WIDGETD_MCP_ORIGINS, comma separated)",
    )
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


def serve_parser() -> argparse.ArgumentParser:
    """``widgetd serve``'s options alone (what the Ray Serve builder parses its args with)."""
    serve = argparse.ArgumentParser(prog="widgetd serve")
    add_serve_options(serve)
    return serve


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
                env_flag(name) if kind is bool else [item.strip() for item in value.split(",") if item.strip()] if kind is list else kind(value)
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
    serve = serve_parser()
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
    serve = serve_parser()
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
    size_option("--prefix-cache-size", arguments.prefix_cache_size)
    size_option("--kv-cache-size", arguments.kv_cache_size)
    checked_origins(arguments.mcp_origins or ())
    if arguments.prefill_chunk < 0:
        raise WidgetdError(f"--prefill-chunk {arguments.prefill_chunk}: a number of tokens, or 0 to size chunks as they run")
    if arguments.isolate and arguments.ray:
        raise WidgetdError("--isolate and --ray: on Ray Serve every model already runs in replicas of its own, which Ray restarts; leave out --isolate")


def checked_origins(origins: Iterable[str]) -> tuple[str, ...]:
    """``--mcp-origin``'s values, each ``*`` or a page's origin (``https://app.example.com[:port]``); refused
    at startup otherwise."""
    for origin in origins:
        parts = urlsplit(origin)
        if origin != "*" and (parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query):
            raise WidgetdError(f"--mcp-origin {origin!r}: an origin is scheme://host[:port] (https://app.example.com), or *")
    return tuple(origins)


def env_flag(name: str) -> bool:
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


def settings_from(arguments: argparse.Namespace) -> ServerSettings:
    return ServerSettings(
        api_key=arguments.api_key,
        admin_key=arguments.admin_key,
        log_format=arguments.log_format,
        otlp_endpoint=arguments.otlp_endpoint,
        mcp=arguments.mcp,
        mcp_origins=checked_origins(arguments.mcp_origins or ()),
        keys_file=arguments.keys_file,
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
        isolate=arguments.isolate,
        allow_models=tuple(arguments.allow_models or ()),
        memory_budget=memory_budgets(arguments.memory_budget or []),
        max_models=arguments.max_models,
        limits=Limits(
            max_inputs=arguments.max_inputs,
            max_characters=arguments.max_characters,
            max_audio_seconds=arguments.max_audio_seconds,
            max_image_pixels=arguments.max_image_pixels,
            max_response_bytes=arguments.max_response_size,
            max_inference_steps=arguments.max_inference_steps,
            max_generated_pixels=arguments.max_generated_pixels,
            prefix_cache_bytes=size_option("--prefix-cache-size", arguments.prefix_cache_size),
            prefill_chunk=arguments.prefill_chunk,
            kv_cache_bytes=size_option("--kv-cache-size", arguments.kv_cache_size),
        ),
    )


def size_option(flag: str, value: str) -> int:
    from widgetd.devices import parse_size

    try:
        return parse_size(str(value))
    except ValueError as error:
        raise WidgetdError(f"{flag} {value!r}: {error}") from None


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
        isolate=arguments.isolate,
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
                isolate=arguments.isolate if entry.isolate is None else entry.isolate,
                scaling=scaling_from(arguments, entry),
            )
            for entry in configured
        ]
    named = arguments.model_id or [default_model_id() or ("" if arguments.allow_models else DEFAULT_MODEL_ID)]
    return [ModelRequest(model_id, **common) for model_id in named if model_id]


