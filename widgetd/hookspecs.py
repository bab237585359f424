"""The hooks a widgetd plugin can implement. Each takes a ``register`` callback."""

import pluggy

hookspec = pluggy.HookspecMarker("widgetd")
hookimpl = pluggy.HookimplMarker("widgetd")


@hookspec
def register_tasks(register):
    """Add task contracts: ``register(task: widgetd.Task)``."""


@hookspec
def register_backends(register):
    """Add backends that load and run models: ``register(backend: widgetd.Backend)``."""


@hookspec
def register_bundled_models(register):
    """Add models shipped inside a package: ``register(model_id: str, path: str | Path)``."""
