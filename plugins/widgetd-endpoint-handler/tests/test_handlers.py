"""Inference Endpoints handler repos served over real HTTP, downloaded from a local Hub."""

from __future__ import annotations

import base64
import io
import time

import httpx
import numpy as np
import pytest
from huggingface_hub import InferenceClient
from PIL import Image

from widgetd.testing.audio import encode
from widgetd.testing.process import ServeProcess


def post(server, model: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{server.url}/models/{model}", timeout=120, **kwargs)


@pytest.fixture(scope="module")
def speech_audio() -> bytes:
    rng = np.random.default_rng(0)
    return encode((0.3 * rng.standard_normal(16000)).astype(np.float32), 16000, "WAV")


@pytest.fixture(scope="module")
def expected_speech(repos, speech_audio) -> dict[str, str]:
    """What the handler's models say, run here without the server: the transcript and its summary."""
    import soundfile
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline

    samples, rate = soundfile.read(io.BytesIO(speech_audio), dtype="float32")
    text = pipeline("automatic-speech-recognition", model=str(repos["speech"] / "asr"))({"raw": samples, "sampling_rate": rate})["text"]
    tokenizer = AutoTokenizer.from_pretrained(str(repos["speech"] / "summarizer"))
    model = AutoModelForSeq2SeqLM.from_pretrained(str(repos["speech"] / "summarizer"))
    ids = tokenizer(text or "the", truncation=True, max_length=64, return_tensors="pt").input_ids
    summary = tokenizer.decode(model.generate(ids, max_new_tokens=3, do_sample=False, num_beams=1)[0], skip_special_tokens=True)
    return {"text": text, "summary": summary}


# ---- a built-in task: automatic-speech-recognition ---------------------------------------------------


def test_raw_audio_reaches_the_handler_as_bytes(handler_server, published, speech_audio, expected_speech):
    response = post(handler_server, published["speech"], content=speech_audio, headers={"content-type": "audio/wav"})
    assert response.status_code == 200, response.text
    # The task's contract: the transcript; the handler's extra "summary" is not part of an ASR answer.
    assert response.json() == {"text": expected_speech["text"]}


def test_base64_audio_in_json_reaches_the_handler_as_bytes(handler_server, published, speech_audio, expected_speech):
    body = {"inputs": base64.b64encode(speech_audio).decode()}
    response = post(handler_server, published["speech"], json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"text": expected_speech["text"]}


def test_the_inference_client_transcribes_through_the_handler(handler_server, published, speech_audio, expected_speech):
    client = InferenceClient(base_url=f"{handler_server.url}/models/{published['speech']}")
    assert client.automatic_speech_recognition(speech_audio).text == expected_speech["text"]


def test_audio_that_is_not_audio_is_refused_before_the_handler(handler_server, published):
    response = post(handler_server, published["speech"], content=b"not audio", headers={"content-type": "audio/wav"})
    assert response.status_code == 415
    assert "audio" in response.json()["error"]


def test_the_info_names_the_task_and_backend(handler_server, published):
    info = httpx.get(f"{handler_server.url}/models/{published['speech']}/info").json()["models"][0]
    assert (info["task"], info["backend"], info["state"]) == ("automatic-speech-recognition", "endpoint-handler", "ready")


# ---- the custom task: the handler's own JSON ---------------------------------------------------------


def test_a_custom_handler_gets_its_json_as_is_and_its_sibling_module_imports(handler_server, published):
    response = post(handler_server, published["custom"], json={"text": "hi", "times": 2})
    assert response.status_code == 200, response.text
    assert response.json() == {"shouted": "HI! HI!", "greeting": "hello from the repo", "lengths": [0, 1]}


def test_query_string_parameters_join_the_bodys(handler_server, published):
    response = post(handler_server, published["custom"], json={"inputs": "q", "parameters": {"kept": "body"}}, params={"top_k": "3", "sure": "true", "kept": "query"})
    assert response.json() == {"echo": "q", "parameters": {"top_k": 3, "sure": True, "kept": "body"}}


def test_predict_is_an_alias_of_the_root(handler_server, published):
    # The root serves the first model: the speech handler.
    response = httpx.post(f"{handler_server.url}/predict", json={"inputs": "bm90IGF1ZGlv"}, timeout=60)
    assert response.status_code == 415


@pytest.mark.parametrize(("accept", "content_type", "image_format"), [(None, "image/png", "PNG"), ("image/jpeg", "image/jpeg", "JPEG")])
def test_a_pil_image_answer_is_an_image_in_the_format_accept_asks(handler_server, published, accept, content_type, image_format):
    headers = {"accept": accept} if accept else {}
    response = post(handler_server, published["custom"], json={"inputs": "x", "parameters": {"as": "image"}}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    image = Image.open(io.BytesIO(response.content))
    assert (image.format, image.size) == (image_format, (3, 2))


def test_a_bytes_answer_is_sent_as_is_typed_by_accept(handler_server, published):
    response = post(handler_server, published["custom"], json={"inputs": "abc", "parameters": {"as": "bytes"}}, headers={"accept": "audio/wav"})
    assert (response.status_code, response.content, response.headers["content-type"]) == (200, b"abc", "audio/wav")
    untyped = post(handler_server, published["custom"], json={"inputs": "abc", "parameters": {"as": "bytes"}})
    assert untyped.headers["content-type"] == "application/octet-stream"


def test_a_raw_image_body_reaches_a_custom_handler_as_a_pil_image(handler_server, published):
    buffer = io.BytesIO()
    Image.new("RGB", (5, 4)).save(buffer, format="PNG")
    response = post(handler_server, published["custom"], content=buffer.getvalue(), headers={"content-type": "image/png"})
    assert response.json() == {"image_size": [5, 4]}


def test_other_raw_bytes_reach_a_custom_handler_as_bytes(handler_server, published):
    response = post(handler_server, published["custom"], content=b"\x00\x01\x02", headers={"content-type": "application/octet-stream"})
    assert response.content == b"\x02\x01\x00"


def test_a_handler_runs_one_call_at_a_time_off_the_event_loop(handler_server, published):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        answers = [pool.submit(post, handler_server, published["custom"], json={"inputs": "slow"}) for _ in range(4)]
        started = time.perf_counter()
        health = httpx.get(f"{handler_server.url}/health", timeout=5)
        health_seconds = time.perf_counter() - started
        results = [answer.result() for answer in answers]
    assert all(result.status_code == 200 for result in results)
    assert max(result.json()["most_at_once"] for result in results) == 1
    assert health.status_code == 200 and health_seconds < 0.5


# ---- handlers that fail ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"inputs": "bad"}, 400, "inputs must not be 'bad'"),
        ({"neither": "inputs nor text"}, 400, "KeyError: 'inputs'"),
        ({"inputs": "crash"}, 500, "the handler broke on purpose"),
    ],
)
def test_a_handler_that_raises_answers_its_message_and_the_server_serves_on(handler_server, published, body, status, message):
    response = post(handler_server, published["custom"], json=body)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert "Traceback" not in response.text and "handler.py\", line" not in response.text
    assert post(handler_server, published["custom"], json={"text": "still", "times": 1}).status_code == 200


def test_an_answer_that_breaks_the_task_contract_is_a_500_naming_handler_and_field(handler_server, published):
    response = post(handler_server, published["wrong-shape"], json={"inputs": "great movie"})
    assert response.status_code == 500
    error = response.json()
    assert "handler.py's EndpointHandler (endpoints/wrong-shape)" in error["error"]
    assert error["field"] == "answer" and "text-classification" in error["error"]
    assert response.headers["x-error-code"] == "InvalidAnswer"


# ---- a legacy pipeline.py ---------------------------------------------------------------------------


def test_a_legacy_pipeline_is_called_with_inputs_and_parameters(handler_server, published):
    default = post(handler_server, published["legacy"], content=b"horse")
    assert default.status_code == 200, default.text
    labels = default.json()[0]
    assert [entry["label"] for entry in labels] == ["horse", "cat"]
    three = post(handler_server, published["legacy"], json={"inputs": "horse", "parameters": {"top_k": 3}}).json()[0]
    assert len(three) == 3


def test_metrics_count_handler_requests_by_task_and_status(handler_server, published):
    def count(status: str) -> float:
        wanted = f'widgetd_requests_total{{model="endpoints/custom",task="custom",status="{status}"}}'
        lines = [line for line in httpx.get(f"{handler_server.url}/metrics").text.splitlines() if line.startswith(wanted)]
        return float(lines[0].split()[-1]) if lines else 0.0

    before = count("200"), count("400")
    post(handler_server, published["custom"], json={"text": "count me"})
    post(handler_server, published["custom"], json={"inputs": "bad"})
    assert (count("200"), count("400")) == (before[0] + 1, before[1] + 1)


# ---- startup refusals ---------------------------------------------------------------------------------


def exit_output(args, env) -> tuple[int, str]:
    process = ServeProcess(args, env)
    code = process.wait_exit(timeout=120)
    return code, process.output


def test_a_handler_without_trust_remote_code_stops_startup_before_any_download(local_hub, published, session_hub_env):
    local_hub.clear_log()
    code, output = exit_output(["--model-id", published["custom"]], session_hub_env)
    assert code == 1
    assert "handler.py" in output and "--trust-remote-code" in output
    assert not [path for method, path in local_hub.requests if "/resolve/" in path]


def test_unmet_requirements_stop_startup_with_the_install_command(published, session_hub_env):
    code, output = exit_output(["--trust-remote-code", "--model-id", published["unmet-requirements"]], session_hub_env)
    assert code == 1
    assert "widgetd-no-such-package==1.2.3 (not installed)" in output
    assert "packaging<1.0" in output and "installed)" in output
    assert "pip install widgetd-no-such-package==1.2.3 'packaging<1.0'" in output
    assert "numpy>=1.0" not in output


def test_the_toolkits_environment_serves_a_handler_as_custom(published, session_hub_env, speech_audio, expected_speech):
    env = {**session_hub_env, "HF_MODEL_ID": published["speech"], "HF_TASK": "custom", "HF_TRUST_REMOTE_CODE": "1", "HF_HUB_TOKEN": "hf_secret_token_1234"}
    with ServeProcess([], env) as server:
        response = httpx.post(
            f"{server.url}/predict", content=speech_audio, headers={"content-type": "audio/wav"}, params={"max_summary_tokens": "3"}, timeout=120
        )
        assert response.status_code == 200, response.text
        assert response.json() == expected_speech
    assert "hf_secret_token_1234" not in server.output


def test_the_handler_server_does_what_its_openapi_document_says(handler_server):
    from widgetd.testing.openapi import assert_openapi_holds

    # The wrong-shape handler answers 500 on purpose (test above).
    assert_openapi_holds(handler_server.url, max_examples=10, exclude_paths="wrong-shape")


def test_a_handler_past_the_request_timeout_is_a_504_and_the_next_request_is_answered(repos):
    import widgetd_endpoint_handler
    from widgetd.app import ServerSettings
    from widgetd.testing.server import LiveServer

    settings = ServerSettings(trust_remote_code=True, request_timeout=0.1)
    with LiveServer.for_models([str(repos["custom"])], plugins={"endpoint-handler": widgetd_endpoint_handler}, settings=settings) as server:
        late = httpx.post(server.url, json={"inputs": "slow"}, timeout=10)
        assert late.status_code == 504 and "no answer within 0.1 s" in late.json()["error"]
        time.sleep(0.25)  # the handler cannot be interrupted: its call ends on its own
        assert httpx.post(server.url, json={"text": "next"}, timeout=10).json()["shouted"] == "NEXT!"
