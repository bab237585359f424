"""``widgetd serve | plugins | tasks | spec | config check | new-plugin``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Sequence

import widgetd
from widgetd.deprecation import WidgetdDeprecationWarning
from widgetd.errors import WidgetdError
from widgetd.keys import read_keys_file
from widgetd.logs import known_secrets, mask_secrets_in_logs, masked
from widgetd.options import (
    add_serve_options,
    apply_config,
    check_options,
    defaults_from_environment,
    memory_budgets,
    model_requests,
    serve_options,
    settings_from,
)
from widgetd.plugins import collect, create_plugin_manager, describe_plugins
from widgetd.scaling import parse_autoscale
from widgetd.tracing import start_tracing


def main(argv: Sequence[str] | None = None) -> int:
    warnings.simplefilter("default", WidgetdDeprecationWarning)  # said to whoever runs widgetd, not only in tests
    warnings.showwarning = _show_warning
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
        print(f"widgetd: error: {masked(str(error), known_secrets(getattr(arguments, 'api_key', None), getattr(arguments, 'admin_key', None)))}", file=sys.stderr)
        return 1


_python_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """widgetd's own warnings as one line for a person (no source line of widgetd's code); others as Python shows them."""
    if issubclass(category, WidgetdDeprecationWarning):
        print(f"widgetd: warning: {message} ({category.__name__})", file=file or sys.stderr)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


def command_line() -> argparse.ArgumentParser:
    """Every command and option (what the documentation's command reference is generated from)."""
    return _parser()[0]


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The command line, and its ``serve`` command's own parser."""
    parser = argparse.ArgumentParser(prog="widgetd", description="Serve Hugging Face Hub widget inference over HTTP, for any ML library.")
    from widgetd import __version__

    parser.add_argument("--version", action="version", version=f"widgetd {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve models over HTTP",
        epilog="Every option is also an environment variable, WIDGETD_ and its name (WIDGETD_MAX_QUEUE=64), "
        "and a setting of the --config file's [server] table (max_queue = 64); flags win over both.",
    )
    add_serve_options(serve)
    serve.set_defaults(run=_serve)

    plugins = commands.add_parser("plugins", help="list the loaded plugins as JSON")
    plugins.set_defaults(run=_plugins)

    tasks = commands.add_parser("tasks", help="list the known tasks with their schemas as JSON")
    tasks.set_defaults(run=_tasks)

    spec = commands.add_parser("spec", help="write the JSON Schemas and OpenAPI document")
    spec.add_argument("--out", type=Path, default=Path("spec"), help="folder to write (default: spec)")
    spec.add_argument("--check", action="store_true", help="only report files that are stale; exit 1 if any")
    spec.add_argument("--installed", action="store_true", help="with --check: check the schemas installed with widgetd (widgetd.schemas)")
    spec.set_defaults(run=_spec)

    new_plugin = commands.add_parser(
        "new-plugin",
        help="write an out-of-tree plugin for a library, whose conformance tests pass as written",
        description="Writes widgetd-NAME/: a package with its hooks, a backend to replace with your library's, "
        "tests/test_conformance.py with a tiny model, a noxfile (nox -s conformance) and a CI workflow.",
    )
    new_plugin.add_argument("name", help="the library's name, e.g. timm (the plugin is widgetd-NAME)")
    new_plugin.add_argument("--dir", type=Path, default=Path("."), help="where to write it (default: here)")
    new_plugin.set_defaults(run=_new_plugin)

    config = commands.add_parser("config", help="check a widgetd.toml: config check FILE lists every mistake in it")
    checks = config.add_subparsers(title="config commands", metavar="COMMAND")
    check = checks.add_parser("check", help="validate a config file: lists every mistake in it, each with its line")
    check.add_argument("file", type=Path, help="the config file, e.g. widgetd.toml")
    check.set_defaults(run=_config_check)
    return parser, serve


def _config_check(arguments: argparse.Namespace) -> int:
    from widgetd.config import ConfigError, read_config

    problems: list[str] = []
    config = read_config(arguments.file, arguments.options, problems)
    _, registry = _registry()
    for index, model in config.numbered():
        problems.extend(f"{arguments.file}: models[{index}].{problem}" for problem in _model_entry_problems(model, registry))
    try:
        memory_budgets(config.server.get("memory_budget", []))
    except WidgetdError as error:
        problems.append(f"{arguments.file}: server.memory_budget: {error}")
    if problems:
        count = len(problems)
        raise ConfigError(f"{arguments.file}: {count} problem{'s' * (count != 1)}\n" + "\n".join(problems))
    settings, models = len(config.server), len(config.models)
    print(f"{arguments.file}: ok ({settings} setting{'s' * (settings != 1)}, {models} model{'s' * (models != 1)})")
    return 0


def _model_entry_problems(model, registry) -> list[str]:
    from widgetd.devices import check_device_name

    problems = []
    if model.task and model.task not in registry.tasks:
        problems.append(f"task {model.task!r} is not a task here; known: {sorted(registry.tasks)}")
    try:
        check_device_name(model.device)
    except WidgetdError as error:
        problems.append(f"device: {error}")
    try:
        if model.autoscale:
            parse_autoscale(model.autoscale)
    except WidgetdError as error:
        problems.append(f"autoscale: {error}")
    return problems


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
    from widgetd.spec import installed_schemas, stale_spec_files, write_spec

    _, registry = _registry()
    tasks = registry.tasks.values()
    folder = installed_schemas() if arguments.installed else arguments.out
    if arguments.check:
        stale = stale_spec_files(tasks, folder)
        for relative in stale:
            print(f"stale: {folder / relative}")
        return 1 if stale else 0
    for relative in write_spec(tasks, arguments.out):
        print(arguments.out / relative)
    return 0


def _new_plugin(arguments: argparse.Namespace) -> int:
    from widgetd.scaffold import new_plugin

    folder = new_plugin(arguments.name, arguments.dir)
    print(f"wrote {folder}: cd {folder} && nox -s conformance (see its README.md)")
    return 0


def _serve(arguments: argparse.Namespace) -> int:
    from widgetd.app import create_app
    from widgetd.models import plan_models
    from widgetd.serving import GracefulServer, listening_socket, uvicorn_config
    from widgetd.state import ServerState

    _log_like_uvicorn(arguments.log_level, arguments.log_format)
    _use_endpoint_token()
    mask_secrets_in_logs(known_secrets(arguments.api_key, arguments.admin_key))
    if arguments.keys_file:  # a wrong keys file stops the server before anything loads
        mask_secrets_in_logs(read_keys_file(arguments.keys_file)[1])
    for chatty in ("httpx", "httpx2", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # Model threads hold the GIL between kernels; a short switch interval keeps the event loop
    # (health checks, new requests) answering within milliseconds while they run.
    sys.setswitchinterval(0.001)
    if arguments.otlp_endpoint and not arguments.ray:  # on Ray Serve, the ingress starts its own
        start_tracing(arguments.otlp_endpoint, widgetd.__version__)
    if arguments.ray:
        from widgetd.ray import serve_on_ray

        return serve_on_ray(arguments)
    sock = listening_socket(arguments.host, arguments.port)  # before planning: a port in use fails at once
    manager, registry = _registry()
    settings = settings_from(arguments)
    state = ServerState(
        models=plan_models(model_requests(arguments), registry),
        registry=registry,
        plugins=describe_plugins(manager, registry),
        settings=settings,
    )
    _read_keys_again_on_sighup(state)
    port = sock.getsockname()[1]  # the one given, or the one the system chose for --port 0
    url = _url(arguments.host, port)
    app = create_app(state, on_loaded=lambda: _announce_when_listening(server, state, url))
    config = uvicorn_config(app, settings, host=arguments.host, port=port, log_level=arguments.log_level)
    server = GracefulServer(config, on_stop=lambda: state.shutdown.begin(settings.shutdown_timeout))
    loading = len(state.models)
    logging.getLogger("widgetd").info(
        "listening on %s; %d model%s loading: %s/health answers ok once they are ready", url, loading, "s" * (loading != 1), url
    )
    server.run(sockets=[sock])
    _exit_even_if_a_model_is_busy()
    return 0


def _read_keys_again_on_sighup(state) -> None:
    """SIGHUP reads --keys-file again, without a restart (Python's default for SIGHUP ends the process). The
    keys are read now, so that a warning about them comes at startup, not on a first request."""
    keys = state.keys
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: mask_secrets_in_logs(keys.reload()))


def _log_like_uvicorn(level: str, log_format: str = "text") -> None:
    """widgetd's and the plugins' lines in the format of uvicorn's own (``INFO:     widgetd: ...``), or JSON."""
    from widgetd.serving import log_formatter

    handler = logging.StreamHandler()
    handler.setFormatter(log_formatter(log_format))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def _url(host: str, port: int) -> str:
    """Where a browser on this machine reaches the server (every interface includes loopback)."""
    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(host) or (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}"


def _announce_when_listening(server, state, url: str) -> None:
    """The line a person waits for: every model loaded (or failed) and the server listening."""
    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if server.should_exit:
        return
    log = logging.getLogger("widgetd")
    ready = [model.model_id for model in state.models if model.state == "ready"]
    failed = [model.model_id for model in state.models if model.state == "failed"]
    count = f"{len(ready)} model{'s' * (len(ready) != 1)}"
    if failed:
        count += f" ({len(failed)} failed to load: {', '.join(failed)}; see above)"
    on_demand = f"; models matching {', '.join(state.settings.allow_models)} load on their first request" if state.settings.allow_models else ""
    log.info("ready: %s on %s%s. Open it in a browser for the widget page", count, url, on_demand)


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
