"""Handlers answer as the pipelines they wrap do (numpy numbers, PIL images, one answer in a list, audio as
arrays or bytes): each is sent in its task's contract, shaped for the clients."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
import soundfile
from PIL import Image

import widgetd_endpoint_handler
from widgetd.app import ServerSettings
from widgetd.testing.audio import encode, tone
from widgetd.testing.images import render_image
from widgetd.testing.server import LiveServer
from widgetd_endpoint_handler.testing import write_repo

HANDLER = '''
import base64
import io

import numpy as np
from PIL import Image


def wav(samples, rate):
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV")
    return buffer.getvalue()


class EndpointHandler:
    def __init__(self, path=""):
        pass

    def __call__(self, data):
        inputs = data["inputs"]
        return {answer}
'''

ANSWERS = {
    "summarization": '[{"summary_text": "short"}]',
    "text-classification": '[{"label": "GOOD", "score": np.float32(0.75)}, {"label": "BAD", "score": np.float64(0.25)}]',
    "question-answering": '{"answer": inputs["context"][0:2], "score": np.float32(0.5), "start": np.int64(0), "end": 2}',
    "feature-extraction": "np.ones((3, 4), dtype=np.float32)",
    "token-classification": '[{"entity_group": "PER", "score": np.float32(0.9), "word": "Sarah", "start": 11, "end": 16}]',
    "text-to-speech": '{"audio": np.full((1, 1600), 0.25, dtype=np.float32), "sampling_rate": 16000}',
    "image-to-image": 'Image.new("RGB", (inputs.width * 2, inputs.height * 2), (0, 128, 255))',
    "image-segmentation": '[{"label": "thing", "score": np.float32(0.9), "mask": Image.new("L", inputs.size, 255)}]',
    "audio-to-audio": '[{"label": "source", "blob": base64.b64encode(wav(np.zeros(800, dtype=np.float32), 8000)).decode(), "content-type": "audio/wav"}]',
    "automatic-speech-recognition": '{"text": "heard " + str(len(inputs)) + " bytes"}',
}

PNG = render_image(20, 10)
AUDIO = encode(tone(0.2, 8000), 8000, "WAV")
REQUESTS = {
    "summarization": {"json": {"inputs": "a long text"}},
    "text-classification": {"json": {"inputs": "fine"}},
    "question-answering": {"json": {"inputs": {"question": "who?", "context": "Sarah lives here"}}},
    "feature-extraction": {"json": {"inputs": "three tokens here"}},
    "token-classification": {"json": {"inputs": "My name is Sarah"}},
    "text-to-speech": {"json": {"inputs": "hello"}},
    "image-to-image": {"content": PNG, "headers": {"content-type": "image/png"}},
    "image-segmentation": {"json": {"inputs": base64.b64encode(PNG).decode()}},
    "audio-to-audio": {"content": AUDIO},
    "automatic-speech-recognition": {"json": {"inputs": base64.b64encode(AUDIO).decode()}},
}


@pytest.fixture(scope="module")
def shapes_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    folders = [str(write_repo(root / task, {"handler.py": HANDLER.replace("{answer}", answer)}, task)) for task, answer in ANSWERS.items()]
    settings = ServerSettings(trust_remote_code=True)
    with LiveServer.for_models(folders, plugins={"endpoint-handler": widgetd_endpoint_handler}, settings=settings) as server:
        yield server


def ask(server, task: str) -> httpx.Response:
    response = httpx.post(f"{server.url}/models/{task}", timeout=30, **REQUESTS[task])
    assert response.status_code == 200, response.text
    return response


def test_one_answer_in_a_list_is_unwrapped_and_sent_as_the_task_sends_it(shapes_server):
    assert ask(shapes_server, "summarization").json() == [{"summary_text": "short"}]


def test_numpy_numbers_become_json_numbers_and_labels_are_nested_for_the_clients(shapes_server):
    assert ask(shapes_server, "text-classification").json() == [[{"label": "GOOD", "score": 0.75}, {"label": "BAD", "score": 0.25}]]
    assert ask(shapes_server, "question-answering").json() == {"answer": "Sa", "score": 0.5, "start": 0, "end": 2}
    assert ask(shapes_server, "token-classification").json() == [{"entity_group": "PER", "score": pytest.approx(0.9), "word": "Sarah", "start": 11, "end": 16}]


def test_arrays_become_lists(shapes_server):
    assert ask(shapes_server, "feature-extraction").json() == [[1.0] * 4] * 3


def test_audio_as_an_array_is_encoded_as_accept_asks(shapes_server):
    response = httpx.post(f"{shapes_server.url}/models/text-to-speech", json={"inputs": "hello"}, headers={"accept": "audio/wav"}, timeout=30)
    samples, rate = soundfile.read(io.BytesIO(response.content))
    assert (response.headers["content-type"], rate, len(samples)) == ("audio/wav", 16000, 1600)
    assert samples == pytest.approx(np.full(1600, 0.25), abs=1e-3)


def test_a_pil_image_is_the_image_answer(shapes_server):
    image = Image.open(io.BytesIO(ask(shapes_server, "image-to-image").content))
    assert (image.format, image.size, image.getpixel((0, 0))) == ("PNG", (40, 20), (0, 128, 255))


def test_pil_masks_become_png_masks_the_size_of_the_image(shapes_server):
    [segment] = ask(shapes_server, "image-segmentation").json()
    mask = Image.open(io.BytesIO(base64.b64decode(segment["mask"])))
    assert (segment["label"], mask.size, mask.getextrema()) == ("thing", (20, 10), (255, 255))


def test_separated_sources_as_blobs_are_re_encoded_as_accept_asks(shapes_server):
    [source] = ask(shapes_server, "audio-to-audio").json()
    samples, rate = soundfile.read(io.BytesIO(base64.b64decode(source["blob"])))
    assert (source["label"], source["content-type"], rate, len(samples)) == ("source", "audio/flac", 8000, 800)


def test_base64_audio_reaches_the_handler_as_the_raw_bytes(shapes_server):
    assert ask(shapes_server, "automatic-speech-recognition").json() == {"text": f"heard {len(AUDIO)} bytes"}
