"""Running a model's transformer on ONNX Runtime or OpenVINO instead of torch (``--runtime``).

sentence-transformers' documented way is ``backend="onnx"`` / ``"openvino"``, with the repo's exported file
chosen by ``model_kwargs={"file_name": ...}``. Its loaders build the graph through optimum, which does not
install beside transformers 5 (optimum-onnx pins transformers < 4.58), so this module gives
sentence-transformers the graph itself: sentence-transformers still reads the repo, tokenizes, pools and
normalizes with its own modules; only the transformer's forward pass runs in the exported graph.

A repo without the runtime's files is exported once, at its first load, into the cache beside the HF cache
(``$HF_HOME/widgetd/exports``); later loads read that export.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import posixpath
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from widgetd import ModelResolutionError
from widgetd.backends import PlannedModel, pytorch_files, runtime_family

RUNTIMES = ("torch", "onnx", "openvino", "int8", "auto")
LIBRARY_OF = {"onnx": "onnxruntime", "int8": "openvino", "openvino": "openvino"}
EXTRA_OF = {"onnx": "onnx", "int8": "openvino", "openvino": "openvino"}
ONNX_MODEL = "onnx/model.onnx"
OPENVINO_MODEL = "openvino/openvino_model.xml"
OPENVINO_INT8_MODEL = "openvino/openvino_model_qint8_quantized.xml"
"""The name sentence-transformers' export_static_quantized_openvino_model gives its int8 export."""
_TRANSFORMER_WEIGHTS = (".safetensors", ".bin", ".safetensors.index.json", ".bin.index.json")


def check_runtime(model: PlannedModel) -> None:
    """At startup, before any download: the runtime's library is installed, a named file exists."""
    family = runtime_family(model.runtime)
    library = LIBRARY_OF.get(family)
    if library and importlib.util.find_spec(library) is None:
        raise ModelResolutionError(
            f"--runtime {model.runtime} needs {library}, which is not installed: "
            f"pip install 'widgetd-sentence-transformers[{EXTRA_OF[family]}]'"
        )
    if family == "int8" and exported_file(model.files, "int8") is None and importlib.util.find_spec("nncf") is None:
        raise ModelResolutionError(
            f"--runtime int8: model {model.model_id!r} ships no {OPENVINO_INT8_MODEL}, and making one needs nncf, "
            "which is not installed: pip install 'widgetd-sentence-transformers[openvino]'"
        )
    if "/" in model.runtime and model.runtime not in model.files:
        exported = sorted(name for name in model.files if name.endswith((".onnx", ".xml")))
        raise ModelResolutionError(
            f"--runtime {model.runtime}: model {model.model_id!r} has no such file; its exported files: "
            f"{exported or 'none'}"
        )


def runtime_files(repo_files: Sequence[str], runtime: str) -> list[str]:
    """What a runtime needs: the repo's exported graph and everything but the transformer's torch weights,
    or, for a repo without the graph (it is exported at load) and for ``auto`` (it measures torch), the
    torch files."""
    torch_files = pytorch_files(repo_files)
    exported = exported_file(repo_files, runtime)
    if runtime == "auto":
        return torch_files + ([exported, *companions(exported, repo_files)] if exported else [])
    if exported is None:
        return torch_files
    shared = [name for name in torch_files if not _transformer_weight(name)]
    return shared + [exported, *companions(exported, repo_files)]


def exported_file(repo_files: Sequence[str], runtime: str) -> str | None:
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


def companions(exported: str, repo_files: Sequence[str]) -> list[str]:
    """An ONNX graph's external weights (``model.onnx_data``), an OpenVINO graph's ``.bin``."""
    stem = exported.rsplit(".", 1)[0]
    wanted = {f"{exported}_data", f"{stem}.onnx_data", f"{stem}.bin"}
    return [name for name in repo_files if name in wanted]


def _transformer_weight(name: str) -> bool:
    """The transformer's torch weights, at the repo's top level (other modules keep their own, e.g. 2_Dense/)."""
    return "/" not in name and name.endswith(_TRANSFORMER_WEIGHTS)


class ExportedGraph:
    """The transformer's forward pass, run by ONNX Runtime or OpenVINO, in the shape sentence-transformers
    reads (``{"last_hidden_state": tensor}``)."""

    def __init__(self, config: Any, run: Callable[[dict], np.ndarray], input_names: Sequence[str], description: str) -> None:
        self.config = config
        self.run = run
        self.input_names = tuple(input_names)
        self.description = description

    def forward(self, **features: Any) -> dict:
        import torch

        feeds = {name: _as_int64(features[name]) for name in self.input_names if name in features}
        if "token_type_ids" in self.input_names and "token_type_ids" not in feeds:
            feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
        hidden = torch.from_numpy(np.ascontiguousarray(self.run(feeds)))
        return {"last_hidden_state": hidden.to(features["input_ids"].device)}

    __call__ = forward


def _as_int64(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().numpy().astype(np.int64, copy=False)


def onnx_graph(path: Path, config: Any, device: str) -> ExportedGraph:
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise RuntimeError(
                f"--runtime onnx on {device} needs onnxruntime-gpu (this onnxruntime runs on {available}); "
                "pip install 'widgetd-sentence-transformers[onnx-gpu]', or pass --device cpu"
            )
        providers = [("CUDAExecutionProvider", {"device_id": int(device.partition(":")[2] or 0)})]
    else:
        providers = ["CPUExecutionProvider"]
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(path), options, providers=providers)
    output = _hidden_state_output([output.name for output in session.get_outputs()])
    return ExportedGraph(
        config,
        lambda feeds: session.run([output], feeds)[0],
        [item.name for item in session.get_inputs()],
        f"onnxruntime {providers[0] if isinstance(providers[0], str) else providers[0][0]}",
    )


def openvino_graph(path: Path, config: Any, device: str) -> ExportedGraph:
    import openvino

    if device.startswith("cuda"):
        raise RuntimeError("--runtime openvino and int8 run on the CPU here, not on an NVIDIA GPU; pass --device cpu")
    # Activations of int8-weight layers are quantized in groups of 32 values along each row: the answer of
    # one text never depends on the texts batched with it, as a whole-tensor scale would make it.
    settings = {"PERFORMANCE_HINT": "LATENCY", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "32"}
    compiled = openvino.Core().compile_model(str(path), "CPU", settings)
    names = [next(iter(port.get_names())) for port in compiled.outputs]
    output = compiled.outputs[names.index(_hidden_state_output(names))]
    return ExportedGraph(
        config,
        lambda feeds: compiled(feeds)[output],
        [next(iter(port.get_names())) for port in compiled.inputs],
        "openvino CPU",
    )


def _hidden_state_output(names: Sequence[str]) -> str:
    for wanted in ("last_hidden_state", "token_embeddings"):
        if wanted in names:
            return wanted
    return names[0]


GRAPH_BUILDERS = {"onnx": onnx_graph, "int8": openvino_graph, "openvino": openvino_graph}


def exports_root() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "widgetd" / "exports"


def export_folder(model_id: str, model_path: Path) -> Path:
    """One folder per model and weights: a new revision (or changed local weights) is exported anew."""
    weights = sorted(p for p in model_path.iterdir() if p.is_file() and p.name.endswith(_TRANSFORMER_WEIGHTS))
    fingerprint = hashlib.sha256(str(model_path.resolve()).encode())
    for weight in weights:
        stat = weight.stat()
        fingerprint.update(f"{weight.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    name = "models--" + model_id.strip("/").replace("/", "--")
    return exports_root() / name / fingerprint.hexdigest()[:16]


def exported_model(torch_model: Any, folder: Path, runtime: str) -> Path:
    """The model's transformer as ONNX (as OpenVINO with int8 weights for ``int8``), exported once into ``folder``."""
    fp32 = folder / "model.onnx"
    if not fp32.exists():
        _atomic(fp32, lambda target: export_onnx(torch_model, target))
    if runtime != "int8":
        return fp32
    int8 = folder / "openvino_model_int8.xml"
    if not int8.exists():
        _atomic(int8, lambda target: compress_to_int8(fp32, target))
    return int8


def _atomic(target: Path, write: Callable[[Path], None]) -> None:
    """Another process loading the same model never reads a half-written export: it is written aside, then
    moved in, its companion (an OpenVINO ``.bin``) first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        written = Path(scratch) / target.name
        write(written)
        for companion in sorted(Path(scratch).iterdir(), key=lambda path: path == written):
            os.replace(companion, target.parent / companion.name)


def export_onnx(torch_model: Any, target: Path) -> None:
    """The first module's transformer (the HF model), traced with two texts of different lengths."""
    import torch

    transformer = torch_model[0]
    tokenizer = transformer.tokenizer
    sample = tokenizer(["a b", "a b c d e f"], padding=True, return_tensors="pt")
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in sample]

    class Forward(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(names, inputs)), return_dict=True).last_hidden_state

    axes = {name: {0: "batch", 1: "sequence"} for name in (*names, "last_hidden_state")}
    # The tracer warns about every Python branch on a shape; the fidelity tests are what check the export.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Forward(transformer.model.to("cpu").float()).eval(),
            tuple(sample[name] for name in names),
            str(target),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def compress_to_int8(fp32: Path, target: Path) -> None:
    """int8 weights, one scale per output channel (NNCF), for OpenVINO. ONNX Runtime's dynamic int8 was
    measured and left out: one scale for a whole batch's activations cost short texts up to 0.04 of cosine
    to fp32 and made a text's answer depend on its batch."""
    import openvino

    logging.getLogger("nncf").setLevel(logging.WARNING)  # else a table of bit widths at every export
    import nncf

    compressed = nncf.compress_weights(openvino.Core().read_model(str(fp32)), mode=nncf.CompressWeightsMode.INT8_ASYM)
    openvino.save_model(compressed, str(target), compress_to_fp16=False)


def runtime_of(path: Path) -> str:
    return "openvino" if path.suffix == ".xml" else "onnx"


def repo_relative(path: Path, model_path: Path) -> str:
    try:
        return posixpath.join(*path.relative_to(model_path).parts)
    except ValueError:
        return str(path)


# Loading: sentence-transformers reads the repo; the graph comes from here.

CALIBRATION = tuple(
    " ".join(words)
    for words in (
        "a man is eating a piece of bread in the kitchen".split(),
        "the new movie is awesome and everyone should go and see it this weekend".split(),
        "cats".split(),
        "a child plays the guitar by the river while the evening train passes over the old bridge".split(),
        "how many people live in berlin".split(),
        "the quick brown fox jumps over the lazy dog".split(),
        "quarterly revenue grew by twelve percent despite higher costs of shipping".split(),
        "she reads a book".split(),
    )
) * 4
AUTO_MARGIN = 0.9
"""auto picks another runtime only when it takes at most this share of torch's time: closer is noise."""
AUTO_FIDELITY = 0.999
"""...and only when its embeddings of the calibration texts are within this cosine of torch's."""

_PREPARED: dict[str, ExportedGraph] = {}


def load_sentence_transformer(snapshot: Any) -> tuple[Any, str]:
    """The model ``snapshot.runtime`` asks for, and what runs it, in words (for /info)."""
    if snapshot.runtime == "torch":
        return torch_model(snapshot), "torch"
    if snapshot.runtime == "auto":
        return fastest(snapshot)
    return graph_model(snapshot, runtime_family(snapshot.runtime))


def torch_model(snapshot: Any, device: str | None = None) -> Any:
    from sentence_transformers import SentenceTransformer

    device = device or snapshot.device
    model = SentenceTransformer(
        str(snapshot.path), device=device, local_files_only=True, trust_remote_code=snapshot.trust_remote_code
    )
    if device.startswith("cuda"):
        model.half()
    return model.eval()


def graph_model(snapshot: Any, family: str, torch_reference: Any = None) -> tuple[Any, str]:
    """``family`` (onnx, int8, openvino) over the repo's exported file, else over the export made once."""
    from sentence_transformers import SentenceTransformer

    shipped = exported_file(_files_of(snapshot.path), snapshot.runtime if "/" in snapshot.runtime else family)
    if shipped is not None:
        graph_file, source = snapshot.path / shipped, shipped
    else:
        reference = torch_reference if torch_reference is not None and snapshot.device == "cpu" else None
        exporter = reference if reference is not None else torch_model(snapshot, device="cpu")
        graph_file = exported_model(exporter, export_folder(snapshot.model_id, snapshot.path), family)
        source = f"exported {graph_file.name}"
    graph = GRAPH_BUILDERS[family](graph_file, None, snapshot.device)
    key = f"{graph_file}#{id(graph)}"
    _PREPARED[key] = graph
    _install_graph_loaders()
    try:
        model = SentenceTransformer(
            str(snapshot.path),
            device=snapshot.device,
            backend="openvino" if family == "openvino" else "onnx",
            model_kwargs={"file_name": key},
            local_files_only=True,
            trust_remote_code=snapshot.trust_remote_code,
        )
    finally:
        _PREPARED.pop(key, None)
    return model.eval(), f"{family} ({source}, {graph.description})"


def _files_of(folder: Path) -> list[str]:
    return [posixpath.join(*p.relative_to(folder).parts) for p in folder.rglob("*") if p.is_file()]


def _install_graph_loaders() -> None:
    """sentence-transformers' Transformer module calls these for backend="onnx"/"openvino"."""
    from sentence_transformers.base.modules import transformer

    for name in ("load_onnx_model", "load_openvino_model"):
        if not hasattr(transformer, name):
            raise RuntimeError(
                f"this sentence-transformers has no {name}: --runtime needs sentence-transformers 6 (or use --runtime torch)"
            )
        setattr(transformer, name, _prepared_graph)


def _prepared_graph(model_name_or_path: str, config: Any, task_name: str, **model_kwargs: Any) -> ExportedGraph:
    if task_name != "feature-extraction":
        raise RuntimeError(f"--runtime runs sentence embedding models, not a {task_name} transformer")
    graph = _PREPARED[model_kwargs["file_name"]]
    graph.config = config
    return graph


def fastest(snapshot: Any) -> tuple[Any, str]:
    """auto: torch, and each installed runtime whose answers match torch's, timed on the same texts; the
    fastest wins only by a clear margin. On a GPU, torch (fp16) stays."""
    import time

    log = logging.getLogger("widgetd")
    reference = torch_model(snapshot)
    if snapshot.device != "cpu":
        return reference, "torch (auto: on a GPU)"
    expected = reference.encode(list(CALIBRATION), normalize_embeddings=True, convert_to_numpy=True)
    timings = {"torch": (_time_encode(reference, time.perf_counter), reference, "torch")}
    for family in ("onnx", "openvino"):
        if importlib.util.find_spec(LIBRARY_OF[family]) is None:
            continue
        try:
            model, description = graph_model(snapshot, family, torch_reference=reference)
        except Exception as error:  # a model the exporter cannot trace stays on torch
            log.warning("auto runtime: %s is out for %s: %s", family, snapshot.model_id, error)
            continue
        got = model.encode(list(CALIBRATION), normalize_embeddings=True, convert_to_numpy=True)
        agreement = float(np.min(np.sum(got * expected, axis=1)))
        if agreement < AUTO_FIDELITY:
            log.warning("auto runtime: %s is out for %s: cosine %.4f to torch", family, snapshot.model_id, agreement)
            continue
        timings[family] = (_time_encode(model, time.perf_counter), model, description)
    best = min(timings, key=lambda family: timings[family][0])
    if timings[best][0] > AUTO_MARGIN * timings["torch"][0]:
        best = "torch"
    measured = ", ".join(f"{family} {seconds * 1000:.1f} ms" for family, (seconds, _, _) in timings.items())
    log.info("auto runtime for %s: %s (calibration batch: %s)", snapshot.model_id, best, measured)
    return timings[best][1], f"{timings[best][2]}; auto: {measured}"


def _time_encode(model: Any, clock: Callable[[], float], rounds: int = 3) -> float:
    texts = list(CALIBRATION)
    model.encode(texts, batch_size=len(texts), convert_to_numpy=True)
    best = float("inf")
    for _ in range(rounds):
        started = clock()
        model.encode(texts, batch_size=len(texts), convert_to_numpy=True)
        best = min(best, clock() - started)
    return best
