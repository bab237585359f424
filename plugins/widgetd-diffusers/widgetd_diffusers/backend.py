"""The diffusers backend: a pipeline repo (``model_index.json`` and its components' folders), only the files
the pipeline loads, on the best device (fp16 on a GPU)."""

from __future__ import annotations

from typing import Sequence

from widgetd import Backend, ModelResolutionError, ModelSnapshot
from widgetd.backends import PlannedModel, pytorch_files
from widgetd_diffusers.pipeline import DiffusionPipeline

INDEX = "model_index.json"
TASKS = ("text-to-image", "image-to-image")


def needed_files(repo_files: Sequence[str]) -> list[str]:
    """model_index.json and its components' folders: no single-file checkpoints at the top level, no other
    runtime's copies, no ``.fp16`` variants beside full-precision weights (fp16 is made on load)."""
    in_folders = [name for name in pytorch_files(repo_files) if "/" in name or name == INDEX]
    present = set(in_folders)
    return [name for name in in_folders if not (".fp16." in name and name.replace(".fp16.", ".") in present)]


def recognizes(repo_files: Sequence[str]) -> bool:
    return INDEX in repo_files


def check(model: PlannedModel) -> None:
    if INDEX not in model.files:
        raise ModelResolutionError(f"model {model.model_id!r} has no model_index.json: it is not a diffusers pipeline repo")


def load(snapshot: ModelSnapshot) -> DiffusionPipeline:
    import torch
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image

    dtype = torch.float16 if snapshot.device.startswith("cuda") else torch.float32
    text = AutoPipelineForText2Image.from_pretrained(snapshot.path, torch_dtype=dtype, use_safetensors=_has_safetensors(snapshot))
    text = text.to(snapshot.device)
    text.set_progress_bar_config(disable=True)
    try:
        image = AutoPipelineForImage2Image.from_pipe(text)
        image.set_progress_bar_config(disable=True)
    except (ValueError, KeyError):  # a pipeline class with no image-to-image sibling
        image = None
    return DiffusionPipeline(text, image, snapshot.device)


def _has_safetensors(snapshot: ModelSnapshot) -> bool | None:
    found = any(path.suffix == ".safetensors" for path in snapshot.path.rglob("*"))
    return True if found else None


BACKEND = Backend(
    name="diffusers",
    library="diffusers",
    tasks=TASKS,
    load=load,
    files=needed_files,
    recognizes=recognizes,
    check=check,
    max_batch_size=4,
)
