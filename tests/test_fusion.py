"""widgetd.fusion on graphs ONNX Runtime's transformer optimizer has nothing to fuse in: the plain graph runs,
and the reason is kept so that the next load does not try again. (The plugins' runtime tests fuse real
transformers and hold the fused answers to torch's.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from widgetd.fusion import FUSED_MODEL, NOT_FUSED, fused_graph, fuses

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")


def save_scaler(path: Path) -> Path:
    """A graph over token ids that holds no transformer: ids times the mask, as floats."""
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"]) for name in ("input_ids", "attention_mask")]
    output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence"])
    nodes = [
        helper.make_node("Mul", ["input_ids", "attention_mask"], ["masked"]),
        helper.make_node("Cast", ["masked"], ["logits"], to=TensorProto.FLOAT),
    ]
    model = helper.make_model(helper.make_graph(nodes, "scaler", inputs, [output]), opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_a_graph_with_nothing_to_fuse_runs_as_it_is_and_is_not_tried_again(tmp_path):
    plain = save_scaler(tmp_path / "model.onnx")
    folder = tmp_path / "exports"
    assert fused_graph(plain, folder, None) == plain
    reason = (folder / NOT_FUSED).read_text()
    assert "found nothing to fuse" in reason and str(plain) in reason
    assert not (folder / FUSED_MODEL).exists()
    noted = (folder / NOT_FUSED).stat().st_mtime_ns
    assert fused_graph(plain, folder, None) == plain
    assert (folder / NOT_FUSED).stat().st_mtime_ns == noted
    session = onnxruntime.InferenceSession(str(plain), providers=["CPUExecutionProvider"])
    ids = np.array([[3, 4, 5]], dtype=np.int64)
    [logits] = session.run(["logits"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    np.testing.assert_array_equal(logits, [[3.0, 4.0, 5.0]])


def test_only_the_runtime_by_name_fuses():
    assert fuses("onnx") and fuses("auto")
    assert not fuses("onnx/model_O4.onnx"), "a file the user names runs as the repo ships it"
    assert not fuses("openvino") and not fuses("int8") and not fuses("torch")
