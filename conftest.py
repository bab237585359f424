"""For every test here: the exports that --runtime onnx, openvino and int8 make (widgetd.graphs) go to a
temporary HF_HOME, not the developer's. Servers started as processes get their own (``hub_env``)."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_exports(tmp_path_factory):
    from huggingface_hub import constants

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "HF_HOME", str(tmp_path_factory.mktemp("hf-home")))
        yield
