"""Importing a repo's own serving code from its snapshot folder, with that folder importable."""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable

HANDLER_FILE = "handler.py"
LEGACY_FILE = "pipeline.py"
CODE_FILES = (HANDLER_FILE, LEGACY_FILE)
"""The files Inference Endpoints' toolkit runs, the first found: ``handler.py`` wins over ``pipeline.py``."""


def code_file(repo_files) -> str | None:
    """The serving code a repo ships at its top level, if any."""
    return next((name for name in CODE_FILES if name in repo_files), None)


def load_handler(folder: Path) -> tuple[Callable[[dict], Any], str]:
    """The repo's handler, called with the request body as a dict, and what to call it in messages.

    ``handler.py``'s ``EndpointHandler(path)`` is called with the whole body, as Inference Endpoints call
    it. A legacy ``pipeline.py``'s ``PreTrainedPipeline(path)`` is called the way its ``__call__`` reads:
    ``(inputs, **parameters)`` when its first argument is named ``inputs`` (api-inference-community's
    convention, which those repos were written for), else with the whole body (the toolkit's)."""
    name = code_file([path.name for path in folder.iterdir()])
    if name is None:
        raise FileNotFoundError(f"the model has no {' or '.join(CODE_FILES)} at its top level")
    module = _import_file(folder, name)
    class_name = "EndpointHandler" if name == HANDLER_FILE else "PreTrainedPipeline"
    if not hasattr(module, class_name):
        raise AttributeError(f"{name} defines no class {class_name}")
    handler = getattr(module, class_name)(str(folder))
    call = _called_with_inputs(handler) if name == LEGACY_FILE and _first_argument(handler) == "inputs" else handler
    return _with_own_modules(call, folder), f"{name}'s {class_name}"


def _with_own_modules(call: Callable[[Any], Any], folder: Path) -> Callable[[Any], Any]:
    """``call``, with the repo's own modules back in ``sys.modules`` first: an ``import helpers`` run
    inside the handler finds its repo's ``helpers``, even after another repo's was imported."""
    own = {name: module for name, module in list(sys.modules.items()) if _inside(getattr(module, "__file__", None), folder)}

    def with_own_modules(data: Any) -> Any:
        sys.modules.update(own)
        return call(data)

    return with_own_modules


def _inside(origin: str | None, folder: Path) -> bool:
    return bool(origin) and Path(origin).is_relative_to(folder)


_REPO_FOLDERS: list[Path] = []
"""The folders handlers were imported from, in this process."""


def _import_file(folder: Path, name: str) -> Any:
    """``folder/name`` as a module of its own (two repos' handlers never share one), with ``folder`` first
    on ``sys.path`` so that the modules beside it import, its own and not another repo's of the same name."""
    _forget_other_repos_modules(folder)
    if str(folder) in sys.path:
        sys.path.remove(str(folder))
    sys.path.insert(0, str(folder))
    _REPO_FOLDERS.append(folder)
    unique = "widgetd_repo_" + hashlib.sha1(str(folder).encode()).hexdigest()[:12] + "_" + Path(name).stem
    spec = importlib.util.spec_from_file_location(unique, folder / name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[unique]
        raise
    return module


def _forget_other_repos_modules(folder: Path) -> None:
    """Another repo's ``utils.py`` imported as ``utils`` must not stand in for this repo's: drop it from
    ``sys.modules`` (the handler that imported it keeps its reference)."""
    own = {path.stem for path in folder.glob("*.py")} | {path.name for path in folder.iterdir() if (path / "__init__.py").is_file()}
    for module_name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None)
        if module_name.split(".")[0] in own and origin and _inside_another_repo(Path(origin), folder):
            del sys.modules[module_name]


def _inside_another_repo(path: Path, folder: Path) -> bool:
    return any(other != folder and path.is_relative_to(other) for other in _REPO_FOLDERS)


def _first_argument(handler: Any) -> str | None:
    try:
        parameters = list(inspect.signature(handler.__call__).parameters.values())
    except (TypeError, ValueError):
        return None
    return parameters[0].name if parameters else None


def _called_with_inputs(pipeline: Any) -> Callable[[dict], Any]:
    def call(data: Any) -> Any:
        if not isinstance(data, dict):
            return pipeline(data)
        parameters = data.get("parameters") or {}
        return pipeline(data.get("inputs"), **parameters) if parameters else pipeline(data.get("inputs"))

    return call
