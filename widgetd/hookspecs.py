"""The hooks a widgetd plugin can implement. Each takes a ``register`` callback."""

import pluggy

hookspec = pluggy.HookspecMarker("widgetd")
hookimpl = pluggy.HookimplMarker("widgetd")

HOOK_API = 1
"""The version of these hooks and of what they hand over (``Backend``, ``Task``, ``Pipeline``). A plugin says
which it implements (``widgetd_hook_api = 1`` beside its hooks); widgetd refuses one built for another. It
changes only when a change would break plugins, and such a change is deprecated for a minor release first."""


@hookspec
def register_tasks(register):
    """Add task contracts: ``register(task: widgetd.Task)``."""


@hookspec
def register_backends(register):
    """Add backends that load and run models: ``register(backend: widgetd.Backend)``."""


@hookspec
def register_bundled_models(register):
    """Add models shipped inside a package: ``register(model_id: str, path: str | Path)``."""
