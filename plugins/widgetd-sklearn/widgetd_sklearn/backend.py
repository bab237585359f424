"""The scikit-learn backend: Hub sklearn repos (skops's layout), loaded without running code unless trusted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from widgetd import Backend, ModelResolutionError, ModelSnapshot
from widgetd.backends import PlannedModel
from widgetd_sklearn.layout import CONFIG, TASKS, needed_files, read_layout
from widgetd_sklearn.loading import load_model, refuse_pickle
from widgetd_sklearn.pipeline import TabularPipeline, column_kinds


def check(model: PlannedModel) -> None:
    """Startup refuses a pickle without --trust-remote-code before downloading it."""
    layout = read_layout(model.model_id, model.files, model.read_text)
    if layout.model_format == "pickle" and not model.trust_remote_code:
        raise refuse_pickle(model.model_id, layout.model_file)


def load(snapshot: ModelSnapshot) -> TabularPipeline:
    files = [str(path.relative_to(snapshot.path)) for path in snapshot.path.rglob("*") if path.is_file()]
    layout = read_layout(snapshot.model_id, files, lambda name: (snapshot.path / name).read_text())
    model = load_model(snapshot.model_id, snapshot.path / layout.model_file, layout.model_format, snapshot.trust_remote_code)
    if not hasattr(model, "predict"):
        raise ModelResolutionError(f"model {snapshot.model_id!r}: {layout.model_file} holds a {type(model).__name__}, which has no predict()")
    return TabularPipeline(model, snapshot.task, layout.columns, column_kinds(layout.columns, layout.example))


def recognizes(repo_files: Sequence[str]) -> bool:
    """A repo whose card names no library but whose files are a skops model."""
    return any(name.endswith(".skops") for name in repo_files)


def infer_task(folder: Path) -> str | None:
    try:
        task = json.loads((folder / CONFIG).read_text()).get("sklearn", {}).get("task")
    except (OSError, ValueError, AttributeError):
        return None
    return task if task in TASKS else None


BACKEND = Backend(
    name="sklearn",
    library="sklearn",
    tasks=TASKS,
    load=load,
    files=needed_files,
    recognizes=recognizes,
    infer_task=infer_task,
    check=check,
    max_batch_size=32,
)
