"""Where a Hub sklearn repo keeps its model: ``config.json``'s ``sklearn`` section, as skops writes it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from widgetd import ModelResolutionError

CONFIG = "config.json"
SKOPS_SUFFIXES = (".skops",)
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav")
TASKS = ("tabular-classification", "tabular-regression")


@dataclass(frozen=True)
class Layout:
    """What a repo's ``config.json`` says about its model (or what its files say when it has none)."""

    model_file: str
    model_format: str
    """``skops`` (data, checked type by type) or ``pickle`` (pickle and joblib files: code to run)."""
    columns: tuple[str, ...] = ()
    example: dict[str, list[Any]] = field(default_factory=dict)
    """A few rows as the model's author gave them: their values tell numeric columns from text ones."""
    task: str | None = None


def read_layout(model_id: str, files: Sequence[str], read_text: Callable[[str], str]) -> Layout:
    section = _sklearn_section(model_id, files, read_text)
    model_file = (section.get("model") or {}).get("file") or _model_file(model_id, files)
    if model_file not in files:
        raise ModelResolutionError(f"model {model_id!r}: config.json names the model file {model_file!r}, which the repo does not hold")
    model_format = section.get("model_format") or ("skops" if model_file.endswith(SKOPS_SUFFIXES) else "pickle")
    if model_format not in ("skops", "pickle"):
        raise ModelResolutionError(f"model {model_id!r}: config.json's sklearn.model_format {model_format!r} is neither 'skops' nor 'pickle'")
    example = section.get("example_input") or {}
    columns = tuple(section.get("columns") or example)
    return Layout(model_file, model_format, columns, example if isinstance(example, dict) else {}, section.get("task"))


def _sklearn_section(model_id: str, files: Sequence[str], read_text: Callable[[str], str]) -> dict[str, Any]:
    if CONFIG not in files:
        return {}
    try:
        section = json.loads(read_text(CONFIG)).get("sklearn") or {}
    except (ValueError, AttributeError) as error:
        raise ModelResolutionError(f"model {model_id!r}: config.json is not a JSON object ({error})") from None
    return section if isinstance(section, dict) else {}


def _model_file(model_id: str, files: Sequence[str]) -> str:
    candidates = [name for name in files if "/" not in name and name.endswith(SKOPS_SUFFIXES + PICKLE_SUFFIXES)]
    # A skops file, if the repo has one, before any pickle: it can be loaded without running code.
    candidates.sort(key=lambda name: not name.endswith(SKOPS_SUFFIXES))
    if not candidates:
        raise ModelResolutionError(
            f"model {model_id!r} has no scikit-learn model: neither config.json's sklearn.model.file nor a "
            f".skops, .pkl or .joblib file at its top level"
        )
    return candidates[0]


def needed_files(repo_files: Sequence[str]) -> list[str]:
    """The model file and config.json; the card comes with every model anyway."""
    return [name for name in repo_files if name == CONFIG or ("/" not in name and name.endswith(SKOPS_SUFFIXES + PICKLE_SUFFIXES))]
