"""What a backend is: a library's way to fetch, load and run Hub models."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from widgetd.devices import Accelerator
from widgetd.limits import Limits


@dataclass(frozen=True)
class ModelSnapshot:
    """A model's files on disk and where to run it, as handed to ``Backend.load``."""

    model_id: str
    path: Path
    task: str
    device: str
    revision: str | None = None
    card: dict[str, Any] = field(default_factory=dict)
    accelerators: tuple[Accelerator, ...] = ()
    """The visible GPUs, for a backend that splits a model too large for ``device`` across them
    (``widgetd.devices.split_plan``)."""
    limits: Limits = field(default_factory=Limits)
    """The server's limits on one request, for what only the backend can measure (e.g. an answer's size)."""
    trust_remote_code: bool = False
    """Whether the operator allows code shipped in the model's repo to run (``--trust-remote-code``)."""
    runtime: str = "torch"
    """What runs the model (``--runtime``): ``torch``, another of the backend's ``runtimes``, or one of
    the repo's exported files (``onnx/model_O3.onnx``)."""


@dataclass(frozen=True)
class PlannedModel:
    """A model about to be served, before anything is downloaded: what ``Backend.check`` reads."""

    model_id: str
    files: tuple[str, ...]
    card: dict[str, Any]
    trust_remote_code: bool
    read_text: Callable[[str], str]
    """One small file of the repo (e.g. ``requirements.txt``), fetched alone."""
    runtime: str = "torch"
    task: str = ""


class Pipeline(Protocol):
    """A loaded model. Answers a batch of one task's requests, one answer each, in order.

    It may raise ``widgetd.InvalidInput`` for a request the model cannot answer;
    ``tasks`` (optional) narrows the backend's tasks to those this model serves; ``engine`` (optional,
    a ``widgetd.generating.Engine``) generates text token by token: the server then streams and
    batches text-generation and chat through it (continuous batching) and never asks ``__call__``
    for text-generation; ``placement`` (optional) says where the parts of a split model run;
    ``count_tokens(texts)`` (optional) gives the tokens texts are read as, for usage on /v1/embeddings;
    ``answered_by`` (optional) names what answers in errors about its answers (default: its backend);
    ``runtime`` (optional) says what runs it (``onnx (onnx/model.onnx)``), for /info; ``close()`` (optional) is
    called when the model is unloaded.
    """

    def __call__(self, task: str, requests: Sequence[Any]) -> list[Any]: ...


def every_file(repo_files: Sequence[str]) -> list[str]:
    return list(repo_files)


_OTHER_RUNTIMES = ("onnx/", "openvino/", "coreml/", "tensorflow/", "flax/")
_OTHER_WEIGHTS = (".onnx", ".h5", ".msgpack", ".ot", ".ckpt", ".tflite", ".mlmodel", ".gguf")


def pytorch_files(repo_files: Sequence[str]) -> list[str]:
    """A PyTorch model's files: no other runtime's copies (ONNX, OpenVINO, TensorFlow, Flax, ...),
    and ``.bin`` weights only in folders that have no ``.safetensors``."""
    kept = [
        name
        for name in repo_files
        if not name.startswith(_OTHER_RUNTIMES)
        and not name.endswith(_OTHER_WEIGHTS)
        and not posixpath.basename(name).startswith(".")
    ]
    with_safetensors = {posixpath.dirname(name) for name in kept if name.endswith(".safetensors")}
    return [
        name
        for name in kept
        if not (name.endswith(".bin") and posixpath.dirname(name) in with_safetensors)
    ]


def runtime_family(runtime: str) -> str:
    """``onnx`` for ``onnx/model_O3.onnx``: a repo file names its runtime by its top folder."""
    return runtime.split("/", 1)[0] if "/" in runtime else runtime


def recognizes_nothing(repo_files: Sequence[str]) -> bool:
    return False


def accepts_every_model(model: PlannedModel) -> None:
    return None


@dataclass(frozen=True)
class Backend:
    """How one library serves Hub models.

    ``library`` is the Hub ``library_name`` it serves; ``files`` picks, from a
    repo's file list, the files to download; ``recognizes`` claims a repo whose
    card names no library; ``load`` turns a snapshot into a ``Pipeline``.
    """

    name: str
    library: str
    tasks: tuple[str, ...]
    load: Callable[[ModelSnapshot], Pipeline]
    files: Callable[[Sequence[str]], list[str]] = every_file
    recognizes: Callable[[Sequence[str]], bool] = recognizes_nothing
    max_batch_size: int = 1
    """How many requests ``load``'s pipeline may be given at once; 1 turns batching off."""
    infer_task: Callable[[Path], str | None] | None = None
    """The task of a model on disk whose card names none (e.g. from its config), if it can tell."""
    recognizes_first: bool = False
    """``recognizes`` is asked before the card's ``library_name`` is read: a repo shipping its own
    serving code (a ``handler.py``) is served by that code, whatever library its card names."""
    fallback_task: str | None = None
    """The task for a model whose card names one this backend does not serve, instead of refusing it."""
    batches: bool = True
    """False: its pipelines get one request at a time, whatever ``--max-batch-size`` says (code that is
    neither thread-safe nor written for batches)."""
    check: Callable[[PlannedModel], None] = accepts_every_model
    """Refuse a model this backend cannot serve here, at startup and before any download, by raising
    ``widgetd.ModelResolutionError`` that says why and what to do."""
    runtimes: tuple[str, ...] = ("torch",)
    """What may run its models (``--runtime``); ``auto`` among them lets the backend pick at load."""
    runtime_files: Callable[[Sequence[str], str], list[str]] | None = None
    """The files a runtime other than torch needs, from the repo's file list and ``--runtime``."""

    def files_for(self, repo_files: Sequence[str], runtime: str = "torch") -> list[str]:
        """The files to download for ``runtime``."""
        if runtime == "torch" or self.runtime_files is None:
            return self.files(repo_files)
        return self.runtime_files(repo_files, runtime)
