"""``widgetd serve | plugins | tasks | spec | config check | new-plugin``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import Sequence

from widgetd.deprecation import WidgetdDeprecationWarning
from widgetd.errors import WidgetdError
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


def main(argv: Sequence[str] | None = None) -> int:
    warnings.simplefilter("default", WidgetdDeprecationWarning)  # said to whoever runs widgetd, not only in tests
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
    parser = argparse.ArgumentParser(prog="widgetd", description="Serve Hugging Face Hub widget inference over HTTP, for any ML library.")
    commands = parser.add_subparsers(title="commands")

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

    config = commands.add_parser("config", help="check a widgetd.toml")
    checks = config.add_subparsers(title="config commands")
    check = checks.add_parser("check", help="validate a config file; errors name the line")
    check.add_argument("file", type=Path)
    check.set_defaults(run=_config_check)
    return parser, serve


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
