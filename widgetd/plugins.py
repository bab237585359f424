"""Loading plugins and collecting what they register."""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

import widgetd
from widgetd import builtin, hookspecs
from widgetd.backends import Backend
from widgetd.deprecation import deprecated
from widgetd.errors import PluginError
from widgetd.hookspecs import HOOK_API
from widgetd.tasks import Task

ENTRY_POINT_GROUP = "widgetd"
BUILTIN_PLUGIN = "widgetd"


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


class PluginManager(pluggy.PluginManager):
    """pluggy's manager, remembering the version of each plugin it loaded."""

    def __init__(self) -> None:
        super().__init__(ENTRY_POINT_GROUP)
        self.add_hookspecs(hookspecs)
        self.versions: dict[str, str | None] = {}


def create_plugin_manager(*, load_entry_points: bool = True) -> PluginManager:
    """A plugin manager with the built-in plugin and the installed ones.

    ``WIDGETD_LOAD_PLUGINS`` (comma list; empty loads none) picks which installed
    plugins load; ``WIDGETD_BLOCK_PLUGINS`` names plugins never to load.
    """
    manager = PluginManager()
    manager.register(builtin, name=BUILTIN_PLUGIN)
    manager.versions[BUILTIN_PLUGIN] = widgetd.__version__
    for name in _env_list("WIDGETD_BLOCK_PLUGINS") or []:
        manager.set_blocked(name)
    if load_entry_points:
        _load_entry_points(manager, only=_env_list("WIDGETD_LOAD_PLUGINS"))
    return manager


def _load_entry_points(manager: PluginManager, only: list[str] | None) -> None:
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if only is not None and entry_point.name not in only:
            continue
        if manager.is_blocked(entry_point.name) or manager.has_plugin(entry_point.name):
            continue
        try:
            plugin = entry_point.load()
        except Exception as error:
            raise PluginError(entry_point.name, f"failed to import: {error!r}") from error
        if declared_hook_api(plugin) is None:
            deprecated(
                f"plugin {entry_point.name!r} declares no hook API: a plugin without `widgetd_hook_api`", "0.3",
                f"add `widgetd_hook_api = {HOOK_API}` beside its hooks once it implements widgetd's hook API {HOOK_API}",
            )
        add_plugin(manager, plugin, entry_point.name)
        manager.versions[entry_point.name] = entry_point.dist.version if entry_point.dist else None


def declared_hook_api(plugin: object) -> int | None:
    """The hook API a plugin says it implements (``widgetd_hook_api``), if it says."""
    return getattr(plugin, "widgetd_hook_api", None)


def check_hook_api(plugin: object, name: str) -> None:
    """Refuse a plugin built for another version of widgetd's hooks, naming both."""
    declared = declared_hook_api(plugin)
    if declared is not None and declared != HOOK_API:
        raise PluginError(
            name,
            f"it implements widgetd's hook API {declared!r}, and this widgetd ({widgetd.__version__}) has hook API {HOOK_API}; "
            f"install a version of the plugin built for hook API {HOOK_API}, or a widgetd whose hook API is {declared!r}",
        )


def add_plugin(manager: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Register one plugin, failing with a PluginError that names it when its hooks, or the hook API it
    implements, are wrong."""
    check_hook_api(plugin, name)
    try:
        manager.register(plugin, name=name)
        manager.check_pending()
    except pluggy.PluginValidationError as error:
        manager.unregister(name=name)
        raise PluginError(name, str(error)) from error


@dataclass
class Registry:
    """Everything the loaded plugins registered, with the plugin that registered it."""

    tasks: dict[str, Task] = field(default_factory=dict)
    backends: dict[str, Backend] = field(default_factory=dict)
    bundled_models: dict[str, Path] = field(default_factory=dict)
    owners: dict[tuple[str, str], str] = field(default_factory=dict)

    def owned_by(self, plugin: str, kind: str) -> list[str]:
        return [name for (k, name), owner in self.owners.items() if k == kind and owner == plugin]

    def task(self, name: str) -> Task:
        return self.tasks[name]


def collect(manager: pluggy.PluginManager) -> Registry:
    """Call every plugin's hooks; a duplicate or invalid registration names its plugin."""
    registry = Registry()
    _call_each(
        manager.hook.register_tasks,
        lambda plugin: _registrar(plugin, "task", Task, registry, registry.tasks),
    )
    _call_each(
        manager.hook.register_backends,
        lambda plugin: _registrar(plugin, "backend", Backend, registry, registry.backends),
    )
    _call_each(
        manager.hook.register_bundled_models, lambda plugin: _bundled_registrar(registry, plugin)
    )
    for backend in registry.backends.values():
        _check_backend_tasks(registry, backend)
    return registry


def _call_each(hook: Any, make_register) -> None:
    for implementation in hook.get_hookimpls():
        plugin = implementation.plugin_name
        try:
            implementation.function(register=make_register(plugin))
        except PluginError:
            raise
        except Exception as error:
            raise PluginError(plugin, f"{hook.name} raised {error!r}") from error


def _claim(registry: Registry, plugin: str, kind: str, name: str) -> None:
    owner = registry.owners.get((kind, name))
    if owner is not None:
        raise PluginError(plugin, f"duplicate {kind} name {name!r}, already registered by {owner!r}")
    registry.owners[(kind, name)] = plugin


def _registrar(plugin: str, kind: str, expected: type, registry: Registry, store: dict):
    """``register`` for one plugin: checks the type, refuses a name already taken."""

    def register(item: Any) -> None:
        if not isinstance(item, expected):
            raise PluginError(plugin, f"register_{kind}s got {item!r}, not a widgetd.{expected.__name__}")
        _claim(registry, plugin, kind, item.name)
        store[item.name] = item

    return register


def _bundled_registrar(registry: Registry, plugin: str):
    def register(model_id: str, path: str | Path) -> None:
        _claim(registry, plugin, "bundled model", model_id)
        registry.bundled_models[model_id] = Path(path)

    return register


def _check_backend_tasks(registry: Registry, backend: Backend) -> None:
    unknown = [task for task in backend.tasks if task not in registry.tasks]
    if unknown:
        plugin = registry.owners[("backend", backend.name)]
        raise PluginError(
            plugin,
            f"backend {backend.name!r} claims unknown task(s) {unknown}; "
            f"known tasks: {sorted(registry.tasks)}",
        )


def describe_plugins(manager: PluginManager, registry: Registry) -> list[dict[str, Any]]:
    """Each plugin's name, version, hooks, backends and tasks, for ``widgetd plugins``."""
    described = []
    for name, plugin in sorted(manager.list_name_plugin()):
        if plugin is None:
            continue
        described.append(
            {
                "name": name,
                "version": manager.versions.get(name),
                "hook_api": HOOK_API if name == BUILTIN_PLUGIN else declared_hook_api(plugin),
                "hooks": sorted(hook.name for hook in manager.get_hookcallers(plugin) or []),
                "backends": registry.owned_by(name, "backend"),
                "tasks": registry.owned_by(name, "task"),
                "bundled_models": registry.owned_by(name, "bundled model"),
            }
        )
    return described
