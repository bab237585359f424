"""Audio source separation over real HTTP: source count, durations, formats, errors."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
import soundfile

from widgetd.testing.audio import CONTAINERS, encode, tone

MODELS = {"convtasnet": (2, 8000), "dprnn": (3, 16000)}


def separate(server, model: str, body: bytes, **headers) -> httpx.Response:
    return httpx.post(f"{server.url}/models/{model}", content=body, headers=headers, timeout=60)


def decoded_sources(response: httpx.Response):
    assert response.status_code == 200, response.text
    sources = response.json()
    for source in sources:
        assert set(source) == {"label", "blob", "content-type"}
    return [soundfile.read(io.BytesIO(base64.b64decode(s["blob"]))) for s in sources], sources


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("audio_format", CONTAINERS)
@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (16000, 2), (44100, 2), (22050, 1)])
def test_one_source_each_as_long_as_the_input_at_the_model_rate(separation_server, model, audio_format, rate, channels):
    n_src, model_rate = MODELS[model]
    seconds = 1.25
    response = separate(separation_server, model, encode(tone(seconds, rate, channels), rate, audio_format))
    decoded, sources = decoded_sources(response)
    assert len(decoded) == n_src
    assert [s["label"] for s in sources] == [f"label_{i}" for i in range(n_src)]
    for samples, source_rate in decoded:
        assert source_rate == model_rate
        assert samples.shape[0] == pytest.approx(seconds * model_rate, abs=model_rate * 0.06)


@pytest.mark.parametrize(("accept", "container", "content_type"), [
    (None, "FLAC", "audio/flac"),
    ("audio/wav", "WAV", "audio/wav"),
    ("audio/ogg", "OGG", "audio/ogg"),
])
def test_the_accept_header_picks_the_answer_format(separation_server, accept, container, content_type):
    headers = {"accept": accept} if accept else {}
    response = separate(separation_server, "convtasnet", encode(tone(0.5, 8000), 8000, "WAV"), **headers)
    for source in response.json():
        assert source["content-type"] == content_type
        assert soundfile.info(io.BytesIO(base64.b64decode(source["blob"]))).format == container


def test_the_same_input_gives_the_same_output(separation_server):
    body = encode(tone(0.7, 16000, 2), 16000, "FLAC")
    first = separate(separation_server, "dprnn", body).json()
    second = separate(separation_server, "dprnn", body).json()
    assert first == second


def test_base64_json_with_parameters_is_accepted(separation_server):
    body = {"inputs": base64.b64encode(encode(tone(0.5, 8000), 8000, "WAV")).decode(), "parameters": {}}
    response = httpx.post(f"{separation_server.url}/models/convtasnet", json=body, timeout=60)
    assert len(decoded_sources(response)[0]) == 2


@pytest.mark.parametrize("body", [b"not audio at all", b"RIFF\x00\x00\x00\x00WAVEfmt ", b"fLaC\x00\x00"])
def test_malformed_audio_is_415(separation_server, body):
    response = separate(separation_server, "convtasnet", body)
    assert response.status_code == 415
    assert "audio" in response.json()["error"]


def test_empty_audio_is_a_4xx(separation_server):
    response = separate(separation_server, "convtasnet", encode(tone(0, 8000), 8000, "WAV"))
    assert 400 <= response.status_code < 500
    assert response.json()["error"]


def test_audio_longer_than_the_limit_is_413(model_dirs, monkeypatch):
    from widgetd.testing.server import LiveServer
    import widgetd_asteroid

    monkeypatch.setenv("WIDGETD_ASTEROID_MAX_SECONDS", "1.5")
    with LiveServer.for_models([str(model_dirs["convtasnet"])], plugins={"asteroid": widgetd_asteroid}) as server:
        response = httpx.post(server.url, content=encode(tone(2.0, 8000), 8000, "WAV"), timeout=60)
        assert response.status_code == 413
        assert "1.5 s" in response.json()["error"]
        assert httpx.post(server.url, content=encode(tone(1.0, 8000), 8000, "WAV"), timeout=60).status_code == 200


def test_a_model_published_on_the_hub_is_downloaded_and_served(local_hub, hub_env, model_dirs):
    from widgetd.testing.process import ServeProcess

    local_hub.publish("org/tiny-dprnn", model_dirs["dprnn"])
    env = {**hub_env, "WIDGETD_LOAD_PLUGINS": "asteroid"}
    with ServeProcess(["--model-id", "org/tiny-dprnn"], env) as server:
        decoded, _ = decoded_sources(separate(server, "org/tiny-dprnn", encode(tone(0.5, 44100, 2), 44100, "OGG")))
        assert len(decoded) == 3
        assert all(rate == 16000 and len(samples) == 8000 for samples, rate in decoded)
        info = httpx.get(f"{server.url}/info").json()["models"][0]
        assert (info["library"], info["task"]) == ("asteroid", "audio-to-audio")
