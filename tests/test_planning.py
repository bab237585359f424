"""Planning a model before anything is downloaded: which backend, which task, whether it may be served here;
and how the environment and a request's query string feed in."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from widgetd import Backend, ModelResolutionError, Task
from widgetd.backends import PlannedModel, runtime_family
from widgetd.decoding import decode_request
from widgetd.limits import Limits
from widgetd.models import ModelRequest, plan_models
from widgetd.plugins import Registry
from widgetd.tasks import BUILTIN_TASKS

TASKS = {task.name: task for task in BUILTIN_TASKS}
FREE = Task(name="free", summary="anything", input=object, output=object, raw_body="any", response_media="any")


def model_folder(root: Path, card: str, *files: str) -> Path:
    root.mkdir(parents=True)
    (root / "README.md").write_text(f"---\n{card}\n---\n")
    for name in files:
        (root / name).write_text("x = 1\n")
    return root


def registry_of(*backends: Backend) -> Registry:
    return Registry(tasks={**TASKS, "free": FREE}, backends={backend.name: backend for backend in backends})


def backend(name: str, library: str, tasks=("text-classification",), **options) -> Backend:
    return Backend(name=name, library=library, tasks=tasks, load=lambda snapshot: None, **options)


HANDLERS = backend(
    "handlers", "handler", tasks=("free", "text-classification"), recognizes=lambda files: "handler.py" in files,
    recognizes_first=True, fallback_task="free",
)
TRANSFORMERS = backend("transformers", "transformers")


def test_a_backend_that_recognizes_first_wins_over_the_cards_library(tmp_path):
    folder = model_folder(tmp_path / "m", "library_name: transformers\npipeline_tag: text-classification", "handler.py")
    [model] = plan_models([ModelRequest(str(folder))], registry_of(TRANSFORMERS, HANDLERS))
    assert (model.backend.name, model.task) == ("handlers", "text-classification")
    [chosen] = plan_models([ModelRequest(str(folder), library="transformers")], registry_of(TRANSFORMERS, HANDLERS))
    assert chosen.backend.name == "transformers"


def test_a_task_the_backend_lacks_falls_back_to_its_fallback_task(tmp_path):
    folder = model_folder(tmp_path / "m", "pipeline_tag: text-to-image", "handler.py")
    [model] = plan_models([ModelRequest(str(folder))], registry_of(HANDLERS))
    assert model.task == "free"
    # Inference Endpoints set HF_TASK for every endpoint; a custom handler ignores it.
    [asked] = plan_models([ModelRequest(str(folder), task="text-to-image")], registry_of(HANDLERS))
    assert asked.task == "free"
    plain = model_folder(tmp_path / "p", "library_name: transformers\npipeline_tag: text-to-image")
    with pytest.raises(ModelResolutionError, match="text-to-image"):
        plan_models([ModelRequest(str(plain))], registry_of(TRANSFORMERS))


def test_the_backends_check_sees_trust_files_and_small_files_before_any_load(tmp_path):
    seen: list[PlannedModel] = []

    def check(model: PlannedModel) -> None:
        seen.append(model)
        if not model.trust_remote_code:
            raise ModelResolutionError(f"{model.model_id} needs --trust-remote-code")

    checked = backend("checked", "handler", tasks=("free",), check=check)
    folder = model_folder(tmp_path / "m", "library_name: handler", "handler.py", "requirements.txt")
    with pytest.raises(ModelResolutionError, match="--trust-remote-code"):
        plan_models([ModelRequest(str(folder))], registry_of(checked))
    [model] = plan_models([ModelRequest(str(folder), trust_remote_code=True)], registry_of(checked))
    assert model.trust_remote_code and seen[-1].read_text("requirements.txt") == "x = 1\n"
    assert "handler.py" in seen[-1].files and seen[-1].card["library_name"] == "handler"


def test_query_parameters_are_read_as_numbers_and_booleans():
    request = decode_request(TASKS["text-classification"], b"great", "text/plain", query={"top_k": "2", "function_to_apply": "sigmoid"})
    assert (request.parameters.top_k, request.parameters.function_to_apply) == (2, "sigmoid")
    free = decode_request(FREE, b'{"inputs": "x"}', "application/json", query={"a": "1.5", "b": "true", "c": "text"})
    assert free == {"inputs": "x", "parameters": {"a": 1.5, "b": True, "c": "text"}}


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'[1, 2, {"x": null}]', "application/json", [1, 2, {"x": None}]),
        (b'{"text": "hi", "options": {"use_cache": false}}', None, {"text": "hi", "options": {"use_cache": False}}),
        (b"plain words", "text/plain", {"inputs": "plain words"}),
        (b"\x00\x01", "application/octet-stream", {"inputs": b"\x00\x01"}),
    ],
)
def test_a_task_without_a_request_contract_gets_the_body_as_it_is(body, content_type, expected):
    assert decode_request(FREE, body, content_type) == expected


def test_a_body_without_a_contract_is_not_held_to_the_limits_on_texts_and_lists():
    vector = list(range(2000))  # a handler may take a feature vector: no contract says it is 2000 "inputs"
    body = msgspec.json.encode({"inputs": vector})
    assert decode_request(FREE, body, "application/json", Limits(max_inputs=256)) == {"inputs": vector}


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({"MODEL_ID": "org/a", "HF_MODEL_ID": "org/b"}, "org/a"),
        ({"HF_MODEL_ID": "org/b", "HF_REVISION": "v2"}, "org/b@v2"),
        ({"HF_MODEL_ID": "org/b"}, "org/b"),
        ({"HF_MODEL_DIR": "{folder}", "HF_MODEL_ID": "org/b"}, "{folder}"),
        ({"HF_MODEL_DIR": "{empty}", "HF_MODEL_ID": "org/b"}, "org/b"),
        ({"HF_MODEL_DIR": "{empty}"}, None),
        ({}, None),
    ],
)
def test_the_model_comes_from_widgetds_or_inference_endpoints_environment(monkeypatch, tmp_path, environment, expected):
    from widgetd.options import default_model_id

    folder, empty = model_folder(tmp_path / "repository", "pipeline_tag: custom"), tmp_path / "empty"
    empty.mkdir()
    for name in ("MODEL_ID", "HF_MODEL_ID", "HF_REVISION", "HF_MODEL_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value.format(folder=folder, empty=empty))
    assert default_model_id() == (expected.format(folder=folder) if expected else None)


def test_a_runtime_the_models_backend_lacks_is_refused_before_any_download(tmp_path):
    folder = model_folder(tmp_path / "m", "library_name: transformers\npipeline_tag: text-classification")
    with pytest.raises(ModelResolutionError, match=r"--runtime 'onnx' for model 'm': backend 'transformers' runs torch"):
        plan_models([ModelRequest(str(folder), runtime="onnx")], registry_of(TRANSFORMERS))
    graphs = backend(
        "graphs", "transformers", runtimes=("torch", "onnx"),
        runtime_files=lambda files, runtime: [name for name in files if name.startswith(runtime_family(runtime))],
    )
    with pytest.raises(ModelResolutionError, match="ends in .onnx or .xml"):
        plan_models([ModelRequest(str(folder), runtime="onnx/weights.bin")], registry_of(graphs))
    [model] = plan_models([ModelRequest(str(folder), runtime="onnx/model_O3.onnx")], registry_of(graphs))
    files = ["config.json", "model.safetensors", "onnx/model.onnx", "onnx/model_O3.onnx"]
    assert model.backend.files_for(files, model.runtime) == ["onnx/model.onnx", "onnx/model_O3.onnx"]
    assert model.backend.files_for(files) == files

