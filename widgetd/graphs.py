"""Exported graphs for ``--runtime onnx``, ``openvino`` and ``int8``: finding them in a repo, exporting a
model once when the repo ships none, and running them. Plugins wrap the run in what their library reads.

ONNX Runtime, OpenVINO, onnx and nncf are imported only here, only when a runtime asks for them: they are
each plugin's optional extras, never widgetd's dependencies.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import posixpath
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from widgetd.backends import PlannedModel, pytorch_files, runtime_family
from widgetd.errors import ModelResolutionError, RuntimeNotInstalled

log = logging.getLogger("widgetd")

LIBRARY_OF = {"onnx": "onnxruntime", "openvino": "openvino", "int8": "openvino"}
ONNX_MODEL = "onnx/model.onnx"
OPENVINO_MODEL = "openvino/openvino_model.xml"
OPENVINO_INT8_MODEL = "openvino/openvino_model_qint8_quantized.xml"
"""The name sentence-transformers' export_static_quantized_openvino_model gives its int8 export."""
TORCH_WEIGHTS = (".safetensors", ".bin", ".safetensors.index.json", ".bin.index.json")


@dataclass(frozen=True)
class Graph:
    """A loaded graph: ``run`` maps input arrays by name to output arrays by name."""

    run: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    description: str
    """What runs it, e.g. ``onnxruntime CPUExecutionProvider``."""

    def feeds(self, tensors: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The graph's inputs from torch tensors by name, as int64 arrays; a graph that takes
        ``token_type_ids`` gets zeros when the tokenizer gave none."""
        feeds = {name: _as_int64(tensors[name]) for name in self.input_names if tensors.get(name) is not None}
        if "token_type_ids" in self.input_names and "token_type_ids" not in feeds:
            feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
        return feeds


def check_installed(model: PlannedModel, extras: Mapping[str, str]) -> None:
    """At startup, before any download: the runtime's library is installed (``extras`` names the plugin's
    extra for each runtime), and a repo file named by ``--runtime`` exists."""
    family = runtime_family(model.runtime)
    library = LIBRARY_OF.get(family)
    if library and importlib.util.find_spec(library) is None:
        raise RuntimeNotInstalled(f"--runtime {model.runtime} needs {library}, which is not installed: pip install '{extras[family]}'")
    if family == "int8" and shipped_graph(model.files, "int8") is None and importlib.util.find_spec("nncf") is None:
        raise RuntimeNotInstalled(
            f"--runtime int8: model {model.model_id!r} ships no {OPENVINO_INT8_MODEL}, and making one needs nncf, "
            f"which is not installed: pip install '{extras['int8']}'"
        )
    if "/" in model.runtime and model.runtime not in model.files:
        exported = sorted(name for name in model.files if name.endswith((".onnx", ".xml")))
        raise ModelResolutionError(
            f"--runtime {model.runtime}: model {model.model_id!r} has no such file; its exported files: {exported or 'none'}"
        )


def shipped_graph(repo_files: Sequence[str], runtime: str) -> str | None:
    """The repo's file that ``runtime`` reads, if the repo ships one."""
    if "/" in runtime:
        return runtime if runtime in repo_files else None
    if runtime == "int8":
        return OPENVINO_INT8_MODEL if OPENVINO_INT8_MODEL in repo_files else None
    if runtime == "openvino" and OPENVINO_MODEL in repo_files:
        return OPENVINO_MODEL
    if runtime in ("onnx", "openvino", "auto") and ONNX_MODEL in repo_files:
        return ONNX_MODEL  # OpenVINO reads ONNX too
    return None


def graph_files(repo_files: Sequence[str], runtime: str, *, needs_torch: bool = False) -> list[str]:
    """What a runtime downloads: the repo's graph and everything but the top-level torch weights; or the
    torch files, for a repo without the graph (it is exported at load), for ``auto`` (which measures torch
    too) and when ``needs_torch`` (a library that builds its model before running the graph)."""
    torch_files = pytorch_files(repo_files)
    shipped = shipped_graph(repo_files, runtime)
    graph = [shipped, *companions(shipped, repo_files)] if shipped else []
    if runtime == "auto" or needs_torch or not shipped:
        return torch_files + graph
    return [name for name in torch_files if not ("/" not in name and name.endswith(TORCH_WEIGHTS))] + graph


def companions(graph: str, repo_files: Sequence[str]) -> list[str]:
    """An ONNX graph's external weights (``model.onnx_data``), an OpenVINO graph's ``.bin``."""
    stem = graph.rsplit(".", 1)[0]
    wanted = {f"{graph}_data", f"{stem}.onnx_data", f"{stem}.bin"}
    return [name for name in repo_files if name in wanted]


def files_of(folder: Path) -> list[str]:
    return [posixpath.join(*path.relative_to(folder).parts) for path in folder.rglob("*") if path.is_file()]


def load_graph(path: Path, runtime: str, device: str) -> Graph:
    """``path`` (.onnx or .xml) on ONNX Runtime (``onnx``) or OpenVINO (``openvino``, ``int8``)."""
    if _on_onnxruntime(path, runtime):
        return _onnx_graph(path, device)
    return _openvino_graph(path, device)


def _on_onnxruntime(path: Path, runtime: str) -> bool:
    return runtime_family(runtime) == "onnx" and path.suffix == ".onnx"


def engine_name(path: Path, runtime: str, device: str) -> str:
    """What ``load_graph`` runs ``path`` on, in words: ``onnxruntime CPUExecutionProvider``, ``openvino CPU``."""
    if not _on_onnxruntime(path, runtime):
        return "openvino CPU"
    return "onnxruntime " + ("CUDAExecutionProvider" if device.startswith("cuda") else "CPUExecutionProvider")


def _onnx_graph(path: Path, device: str) -> Graph:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise RuntimeError(
                f"--runtime onnx on {device} needs onnxruntime-gpu (this onnxruntime runs on {available}); "
                "install the plugin's onnx-gpu extra, or pass --device cpu"
            )
        provider: Any = ("CUDAExecutionProvider", {"device_id": int(device.partition(":")[2] or 0)})
    else:
        provider = "CPUExecutionProvider"
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(path), options, providers=[provider])
    outputs = tuple(output.name for output in session.get_outputs())

    def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(outputs, session.run(list(outputs), dict(feeds))))

    return Graph(run, tuple(item.name for item in session.get_inputs()), outputs, engine_name(path, "onnx", device))


def _openvino_graph(path: Path, device: str) -> Graph:
    import openvino

    if device.startswith("cuda"):
        raise RuntimeError("--runtime openvino and int8 run on the CPU here, not on an NVIDIA GPU; pass --device cpu")
    # Activations of int8-weight layers are quantized in groups of 32 values along each row: the answer of
    # one text never depends on the texts batched with it, as a whole-tensor scale would make it.
    settings = {"PERFORMANCE_HINT": "LATENCY", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "32"}
    compiled = openvino.Core().compile_model(str(path), "CPU", settings)
    # A port can have several names (``logits`` and the exporter's own): each is answered.
    ports = {name: port for port in compiled.outputs for name in sorted(port.get_names())}

    def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = compiled(dict(feeds))
        return {name: results[port] for name, port in ports.items()}

    inputs = tuple(name for port in compiled.inputs for name in sorted(port.get_names()))
    return Graph(run, inputs, tuple(ports), engine_name(path, "openvino", device))


def export_folder(model_id: str, model_path: Path) -> Path:
    """Where a model's exports live, beside the HF cache (``$HF_HOME/widgetd/exports``): one folder per
    model and weights, so a new revision (or changed local weights) is exported anew."""
    from huggingface_hub import constants

    weights = sorted(path for path in model_path.iterdir() if path.is_file() and path.name.endswith(TORCH_WEIGHTS))
    fingerprint = hashlib.sha256(str(model_path.resolve()).encode())
    for weight in weights:
        stat = weight.stat()
        fingerprint.update(f"{weight.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    name = "models--" + model_id.strip("/").replace("/", "--")
    return Path(constants.HF_HOME) / "widgetd" / "exports" / name / fingerprint.hexdigest()[:16]


def exported_graph(folder: Path, runtime: str, export: Callable[[Path], None]) -> Path:
    """The model as ONNX (as OpenVINO with int8 weights for ``int8``), made once into ``folder`` by
    ``export(target)`` (which writes ONNX) and reused by every later load."""
    fp32 = folder / exported_name("onnx")
    if not fp32.exists():
        made_once(fp32, export, "exporting to ONNX")
    if runtime != "int8":
        return fp32
    int8 = folder / exported_name("int8")
    if not int8.exists():
        made_once(int8, lambda target: compress_to_int8(fp32, target), "compressing its weights to int8 with OpenVINO")
    return int8


def made_once(target: Path, write: Callable[[Path], None], doing: str) -> None:
    model = "model " + target.parent.parent.name.removeprefix("models--").replace("--", "/")
    started = time.perf_counter()
    log.info("%s: %s (once: later loads reuse %s)", model, doing, target)
    _write_atomically(target, write)
    log.info("%s: %s took %.1f s", model, doing, time.perf_counter() - started)


def exported_name(runtime: str) -> str:
    """The file ``exported_graph`` makes for ``runtime``: int8 weights for OpenVINO, else ONNX."""
    return "openvino_model_int8.xml" if runtime_family(runtime) == "int8" else "model.onnx"


def _write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Another process loading the same model never reads a half-written export: it is written aside, then
    moved in, its companion (an OpenVINO ``.bin``) first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        written = Path(scratch) / target.name
        write(written)
        for part in sorted(Path(scratch).iterdir(), key=lambda path: path == written):
            os.replace(part, target.parent / part.name)


def export_onnx(module: Any, sample: Mapping[str, Any], outputs: Sequence[str], target: Path) -> None:
    """``module(**inputs)`` traced on ``sample`` (tensors of shape batch × sequence) into ONNX, keeping the
    named ``outputs``, with batch and sequence left free."""
    import torch

    names = list(sample)

    class Forward(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = module

        def forward(self, *inputs: Any) -> Any:
            answer = self.module(**dict(zip(names, inputs)), return_dict=True)
            return tuple(answer[name] for name in outputs)

    axes = {name: {0: "batch", 1: "sequence"} for name in (*names, *outputs)}
    # The tracer warns about every Python branch on a shape; the fidelity tests are what check the export.
    with torch.no_grad(), warnings.catch_warnings(), _eager_attention(module):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Forward().eval(),
            tuple(sample[name] for name in names),
            str(target),
            input_names=names,
            output_names=list(outputs),
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


@contextlib.contextmanager
def _eager_attention(module: Any) -> Iterator[None]:
    """A transformers model traced with its eager attention: ONNX Runtime's attention fusion (``widgetd.fusion``)
    knows that pattern, not torch's fused SDPA operator. The model's own choice comes back afterwards."""
    chosen = getattr(getattr(module, "config", None), "_attn_implementation", None)
    if chosen in (None, "eager") or not hasattr(module, "set_attn_implementation"):
        yield
        return
    try:
        module.set_attn_implementation("eager")
    except (ValueError, ImportError):  # a model without an eager attention is traced as it is
        yield
        return
    try:
        yield
    finally:
        module.set_attn_implementation(chosen)


def compress_to_int8(fp32: Path, target: Path) -> None:
    """int8 weights, one scale per output channel (NNCF), for OpenVINO. ONNX Runtime's dynamic int8 was
    measured and left out: one scale for a whole batch's activations cost short texts up to 0.04 of cosine
    to fp32 and made a text's answer depend on its batch."""
    import openvino

    logging.getLogger("nncf").setLevel(logging.WARNING)  # else a table of bit widths at every export
    import nncf

    compressed = nncf.compress_weights(openvino.Core().read_model(str(fp32)), mode=nncf.CompressWeightsMode.INT8_ASYM)
    openvino.save_model(compressed, str(target), compress_to_fp16=False)


def _as_int64(tensor: Any) -> np.ndarray:
    """A torch tensor of ids or masks as the int64 array exported graphs take."""
    return tensor.detach().cpu().numpy().astype(np.int64, copy=False)
