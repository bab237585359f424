"""``widgetd.toml``: one file describing a server, its settings and its models (``widgetd serve --config``).

    [server]                      # any `widgetd serve` option, spelt with underscores
    port = 8080
    allow_models = ["my-org/*"]
    max_models = 4

    [[models]]
    model_id = "sentence-transformers/all-MiniLM-L6-v2"
    revision = "main"
    device = "cpu"
    batch_size = 32
    autoscale = "0:4"             # on Ray Serve (--ray): replicas, autoscaling, GPUs per replica

Command-line flags override the file. Every error names the file, the line and the setting.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import msgspec

from widgetd.errors import WidgetdError


class ConfigError(WidgetdError):
    """The config file cannot be read or holds a setting that is wrong; says where."""


class ModelEntry(msgspec.Struct, forbid_unknown_fields=True):
    model_id: str
    revision: Optional[str] = None
    task: Optional[str] = None
    library: Optional[str] = None
    device: Optional[str] = None
    isolate: Optional[bool] = None
    """This model in a worker process of its own (``--isolate`` for this one), or not."""
    batch_size: Optional[int] = None
    pinned: bool = True
    """False: loaded at startup, but unloaded like an on-demand model when room is needed."""
    trust_remote_code: bool = False
    runtime: Optional[str] = None
    """torch, onnx, openvino, int8, auto or an exported file of the repo (``--runtime``)."""
    replicas: Optional[int] = None
    """On Ray Serve (``--ray``): this model's replicas, its ``autoscale`` ("MIN:MAX") and GPUs per replica."""
    autoscale: Optional[str] = None
    num_gpus: Optional[float] = None

    @property
    def full_id(self) -> str:
        return f"{self.model_id}@{self.revision}" if self.revision else self.model_id


@dataclass(frozen=True)
class Config:
    server: dict[str, Any]
    models: list[ModelEntry]
    positions: list[int] | None = None
    """Each model's index among the file's ``[[models]]`` (entries that could not be read are left out)."""

    def numbered(self) -> list[tuple[int, ModelEntry]]:
        return list(zip(self.positions or range(len(self.models)), self.models))


def read_config(path: Path, options: Mapping[str, type], problems: list[str] | None = None) -> Config:
    """The file at ``path``; ``options`` are the server settings it may hold, with their types
    (``bool``, ``int``, ``float``, ``str`` or ``list`` of strings). Wrong settings raise one ConfigError
    listing them all, or, given ``problems``, are added to it and left out of the Config."""
    found: list[str] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot be read ({error})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    where = _Lines(path, text)
    for key in data:
        if key not in ("server", "models"):
            found.append(f"{where.of(None, 0, key)}: unknown table {key!r}; a config holds [server] and [[models]]")
    server = data.get("server", {})
    if not isinstance(server, dict):
        found.append(f"{where.of(None, 0, 'server')}: server must be a table ([server])")
        server = {}
    server = {key: value for key, value in server.items() if _option_fits(where, key, value, options, found)}
    entries = data.get("models", [])
    if not isinstance(entries, list):
        found.append(f"{where.of(None, 0, 'models')}: models must be tables ([[models]])")
        entries = []
    read = [(index, model) for index, entry in enumerate(entries) if (model := _model(where, index, entry, found))]
    if problems is None and found:
        raise ConfigError("\n".join(found))
    if problems is not None:
        problems.extend(found)
    return Config(server=server, models=[model for _, model in read], positions=[index for index, _ in read])


def _option_fits(where: _Lines, key: str, value: Any, options: Mapping[str, type], problems: list[str]) -> bool:
    if key not in options:
        problems.append(f"{where.of('server', 0, key)}: server.{key} is not a setting; known: {', '.join(sorted(options))}")
        return False
    expected = options[key]
    if not _fits(value, expected):
        wanted = "a list of strings" if expected is list else f"a {expected.__name__}"
        problems.append(f"{where.of('server', 0, key)}: server.{key} must be {wanted}, got {value!r}")
        return False
    return True


def _fits(value: Any, expected: type) -> bool:
    if expected is list:
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if isinstance(value, bool):
        return expected is bool
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, expected)


def _model(where: _Lines, index: int, entry: Any, problems: list[str]) -> ModelEntry | None:
    try:
        return msgspec.convert(entry, ModelEntry)
    except msgspec.ValidationError as error:
        message = str(error)
        named = re.search(r"(?:unknown|missing required) field `([^`]*)`|at `\$\.([^`]*)`", message)
        key = (named.group(1) or named.group(2)) if named else None
        problems.append(f"{where.of('models', index, key)}: models[{index}]: {message}")
        return None


class _Lines:
    """Finds the line of a setting in the file's text, for messages."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def of(self, table: str | None, index: int, key: str | None) -> str:
        """``path:line`` of ``key`` in the ``index``-th ``table`` (None: the top level)."""
        section, seen, found = None, -1, None
        for number, line in enumerate(self.lines, start=1):
            stripped = line.strip()
            header = re.fullmatch(r"\[\[?\s*([\w.-]+)\s*\]\]?(\s*#.*)?", stripped)
            if header:
                section = header.group(1)
                seen = seen + 1 if section == table else seen
                if table == section and seen == index and found is None:
                    found = number
                if table is None and section == key:
                    return f"{self.path}:{number}"
                continue
            in_place = section == table and (table is None or seen == index)
            if in_place and key and re.match(rf"{re.escape(key)}\s*=", stripped):
                return f"{self.path}:{number}"
        return f"{self.path}:{found}" if found else str(self.path)
