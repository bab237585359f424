"""``widgetd new-plugin NAME``: an out-of-tree plugin that passes the conformance kit from its first commit.

The template (``widgetd/plugin_template``) ships with widgetd, so that it always matches the installed hook API
and kit. Its files end in ``.tmpl``; ``__module__`` names the plugin's package folder; ``github`` and
``gitignore`` become ``.github`` and ``.gitignore`` (dotfiles do not travel well as package data).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import widgetd
from widgetd.errors import WidgetdError
from widgetd.hookspecs import HOOK_API

TEMPLATE = "plugin_template"
RENAMED = {"github": ".github", "gitignore": ".gitignore"}
NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


class ScaffoldError(WidgetdError):
    """The plugin cannot be written: a bad name, or a folder that is already there."""


def supported_widgetd() -> str:
    """The requirement a new plugin puts on widgetd: the installed release and the later ones that keep its hook
    API (the same minor while widgetd is 0.x, the same major after)."""
    installed = widgetd.__version__.split("+")[0]
    major, minor = installed.split(".")[:2]
    below = f"{major}.{int(minor) + 1}" if major == "0" else str(int(major) + 1)
    return f"widgetd>={installed},<{below}"


def new_plugin(name: str, parent: Path) -> Path:
    """Write the plugin ``widgetd-NAME`` for the library ``NAME`` under ``parent``; the folder written."""
    if not NAME.match(name):
        raise ScaffoldError(f"plugin name {name!r}: use lowercase letters, digits, '-' and '_', starting with a letter (the library's name, e.g. timm)")
    library = name.replace("-", "_")
    values = {
        "name": library,
        "Name": "".join(part.capitalize() for part in library.split("_")),
        "module": f"widgetd_{library}",
        "package": f"widgetd-{name}",
        "widgetd_requirement": supported_widgetd(),
        "hook_api": str(HOOK_API),
    }
    target = parent / values["package"]
    if target.exists():
        raise ScaffoldError(f"{target} is already there; choose another folder (--dir) or remove it")
    template = resources.files("widgetd") / TEMPLATE
    for source, relative in _template_files(template):
        destination = target / _renamed(relative, values["module"])
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(_filled(source.read_text(encoding="utf-8"), values), encoding="utf-8")
    return target


def _template_files(folder, relative: tuple[str, ...] = ()):
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if entry.is_dir():
            yield from _template_files(entry, (*relative, entry.name))
        elif entry.name.endswith(".tmpl"):
            yield entry, (*relative, entry.name.removesuffix(".tmpl"))


def _renamed(relative: tuple[str, ...], module: str) -> Path:
    parts = [module if part == "__module__" else RENAMED.get(part) or part for part in relative]
    return Path(*parts)


def _filled(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\{\{(\w+)\}\}", lambda match: values[match.group(1)], text)
