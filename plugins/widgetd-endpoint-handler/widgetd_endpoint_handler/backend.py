"""The backend: repos with a ``handler.py`` or ``pipeline.py``, for every task widgetd knows or none."""

from __future__ import annotations

from typing import Sequence

from widgetd import Backend, ModelResolutionError, ModelSnapshot, Task
from widgetd.backends import PlannedModel, every_file
from widgetd.tasks import BUILTIN_TASKS
from widgetd_endpoint_handler.custom import TASK as CUSTOM_TASK
from widgetd_endpoint_handler.loading import code_file, load_handler
from widgetd_endpoint_handler.pipeline import HandlerPipeline
from widgetd_endpoint_handler.requirements import REQUIREMENTS_FILE, describe_unmet, unmet_requirements

LIBRARY = "endpoint-handler"


def recognizes(repo_files: Sequence[str]) -> bool:
    return code_file(repo_files) is not None


def check(model: PlannedModel) -> None:
    """Startup refuses a handler that may not run (no ``--trust-remote-code``) or cannot (requirements unmet)."""
    name = code_file(model.files)
    if name is None:
        raise ModelResolutionError(f"model {model.model_id!r} has no handler.py or pipeline.py at its top level")
    if not model.trust_remote_code:
        raise ModelResolutionError(
            f"model {model.model_id!r} is served by its own code ({name}), which runs only with "
            "--trust-remote-code (or HF_TRUST_REMOTE_CODE=1); read it first, since it runs with this server's "
            "rights, or pass --library to serve the model without it"
        )
    if REQUIREMENTS_FILE in model.files:
        unmet = unmet_requirements(model.read_text(REQUIREMENTS_FILE))
        if unmet:
            raise ModelResolutionError(describe_unmet(model.model_id, unmet))


def load(snapshot: ModelSnapshot) -> HandlerPipeline:
    handler, answered_by = load_handler(snapshot.path)
    return HandlerPipeline(handler, f"{answered_by} ({snapshot.model_id})", task_named(snapshot.task), snapshot.limits.max_image_pixels)


def task_named(name: str) -> Task:
    for task in (CUSTOM_TASK, *BUILTIN_TASKS):
        if task.name == name:
            return task
    raise ModelResolutionError(f"task {name!r} is not one widgetd knows")


BACKEND = Backend(
    name="endpoint-handler",
    library=LIBRARY,
    tasks=(CUSTOM_TASK.name, *(task.name for task in BUILTIN_TASKS)),
    load=load,
    files=every_file,
    recognizes=recognizes,
    recognizes_first=True,
    fallback_task=CUSTOM_TASK.name,
    batches=False,
    check=check,
)
