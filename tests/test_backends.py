"""Helpers the core gives backends."""

from widgetd.backends import pytorch_files


def test_pytorch_files_skip_other_runtimes_and_duplicate_weights():
    files = [
        "modules.json",
        "config.json",
        "model.safetensors",
        "pytorch_model.bin",
        "1_Pooling/config.json",
        "onnx/model.onnx",
        "openvino/openvino_model.xml",
        "tf_model.h5",
        "rust_model.ot",
        ".gitattributes",
        "2_Dense/pytorch_model.bin",
    ]
    assert pytorch_files(files) == [
        "modules.json",
        "config.json",
        "model.safetensors",
        "1_Pooling/config.json",
        "2_Dense/pytorch_model.bin",
    ]
