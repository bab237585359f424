"""The diffusers plugin over HTTP on a tiny random-weights Stable Diffusion pipeline: the files it downloads,
answers equal to diffusers' own for the same seed, progress events, and a client that leaves freeing the model
between steps."""

from __future__ import annotations

import io
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image

import widgetd_diffusers
from widgetd.testing.server import LiveServer
from widgetd_diffusers.backend import needed_files
from widgetd_diffusers.testing import build_pipeline


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    return build_pipeline(tmp_path_factory.mktemp("diffusers") / "tiny-sd")


@pytest.fixture(scope="module")
def server(pipeline_dir):
    with LiveServer.for_models([str(pipeline_dir)], plugins={"diffusers": widgetd_diffusers}) as live:
        yield live


def pixels(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)).convert("RGB")).astype(int)


def test_only_the_pipelines_own_files_are_downloaded():
    repo = [
        "model_index.json", "README.md", "v1-5-pruned.safetensors", "v1-5-pruned.ckpt",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.bin", "vae/diffusion_pytorch_model.safetensors", "vae/config.json",
        "text_encoder/model.safetensors", "tokenizer/vocab.json", "scheduler/scheduler_config.json",
        "onnx/unet/model.onnx", "flax/diffusion_flax_model.msgpack",
    ]
    assert sorted(needed_files(repo)) == [
        "model_index.json", "scheduler/scheduler_config.json", "text_encoder/model.safetensors", "tokenizer/vocab.json",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "vae/config.json", "vae/diffusion_pytorch_model.safetensors",
    ]


def test_the_image_is_diffusers_own_for_the_same_seed(server, pipeline_dir):
    import torch
    from diffusers import StableDiffusionPipeline

    body = {"inputs": "a red cat", "parameters": {"num_inference_steps": 3, "seed": 5, "guidance_scale": 4.0, "width": 64, "height": 64}}
    served = pixels(httpx.post(f"{server.url}/models/tiny-sd", json=body, timeout=60).content)
    reference = StableDiffusionPipeline.from_pretrained(pipeline_dir)
    expected = reference("a red cat", num_inference_steps=3, guidance_scale=4.0, width=64, height=64,
                         generator=torch.Generator("cpu").manual_seed(5), output_type="np").images[0]
    assert np.abs(served - np.round(expected * 255)).max() <= 1


def test_without_a_seed_the_same_request_makes_the_same_image(server):
    body = {"inputs": "a blue square", "parameters": {"num_inference_steps": 2}}
    first, second = (httpx.post(f"{server.url}/models/tiny-sd", json=body, timeout=60) for _ in range(2))
    assert first.status_code == 200 and first.content == second.content
    assert Image.open(io.BytesIO(first.content)).size == (64, 64)  # the model's own size


def test_image_to_image_keeps_the_inputs_size_or_makes_the_target(server):
    picture = io.BytesIO()
    Image.new("RGB", (50, 30), (200, 40, 40)).save(picture, "PNG")
    made = httpx.post(f"{server.url}/models/tiny-sd/pipeline/image-to-image", content=picture.getvalue(), headers={"content-type": "image/png"}, timeout=60)
    assert made.status_code == 200 and Image.open(io.BytesIO(made.content)).size == (50, 30)
    import base64

    body = {"inputs": base64.b64encode(picture.getvalue()).decode(), "parameters": {"prompt": "a painting", "target_size": {"width": 40, "height": 24}, "seed": 3}}
    made = httpx.post(f"{server.url}/models/tiny-sd/pipeline/image-to-image", json=body, timeout=60)
    assert made.status_code == 200 and Image.open(io.BytesIO(made.content)).size == (40, 24)


def test_a_size_the_model_cannot_make_names_the_field_and_what_it_can(server):
    reply = httpx.post(f"{server.url}/models/tiny-sd", json={"inputs": "a cat", "parameters": {"width": 100, "height": 64}})
    assert reply.status_code == 400 and reply.json()["field"] == "parameters.width"
    assert "multiples of 8 (e.g. 96 or 104)" in reply.json()["error"]
    reply = httpx.post(f"{server.url}/models/tiny-sd", json={"inputs": "a cat", "parameters": {"width": 4096, "height": 4096}})
    assert reply.status_code == 413 and "--max-generated-pixels" in reply.json()["error"]


def test_image_to_image_steps_that_leave_no_denoising_name_the_least_that_works(server):
    import base64

    picture = io.BytesIO()
    Image.new("RGB", (16, 16), (40, 200, 40)).save(picture, "PNG")
    body = {"inputs": base64.b64encode(picture.getvalue()).decode(), "parameters": {"num_inference_steps": 1}}
    reply = httpx.post(f"{server.url}/models/tiny-sd/pipeline/image-to-image", json=body, timeout=60)
    assert reply.status_code == 400 and reply.json()["field"] == "parameters.num_inference_steps"
    assert "strength 0.8" in reply.json()["error"] and "at least 2" in reply.json()["error"]
    body["parameters"]["num_inference_steps"] = 2
    assert httpx.post(f"{server.url}/models/tiny-sd/pipeline/image-to-image", json=body, timeout=60).status_code == 200


def test_a_client_that_leaves_frees_the_model_between_steps(server):
    """A 100-step request streamed, left after its first steps: the steps stop there, so a request sent next is
    answered long before the abandoned one would have ended."""
    body = {"inputs": "a long job", "parameters": {"num_inference_steps": 100, "width": 128, "height": 128}}
    started = time.perf_counter()
    httpx.post(f"{server.url}/models/tiny-sd", json={**body, "parameters": {**body["parameters"], "num_inference_steps": 20}}, timeout=120)
    twenty_steps = time.perf_counter() - started
    seen = []
    with httpx.stream("POST", f"{server.url}/models/tiny-sd", json=body, headers={"accept": "text/event-stream"}, timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                seen.append(line)
            if len(seen) == 3:
                break
    left = time.perf_counter()
    reply = httpx.post(f"{server.url}/models/tiny-sd", json={"inputs": "next", "parameters": {"num_inference_steps": 2}}, timeout=120)
    waited = time.perf_counter() - left
    assert reply.status_code == 200
    # The 97 steps left would take about 4.85 times twenty steps; freed, the next request waits about one step.
    assert waited < 2 * twenty_steps, (waited, twenty_steps)


def test_progress_events_come_as_the_steps_run(server):
    body = {"inputs": "a red cat", "parameters": {"num_inference_steps": 10, "seed": 1}}
    with httpx.stream("POST", f"{server.url}/models/tiny-sd", json=body, headers={"accept": "text/event-stream, image/webp"}, timeout=60) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in stream.iter_lines() if line.startswith("data:")]
    import json

    events = [json.loads(line[5:]) for line in lines[:-1]]
    assert [event["step"] for event in events[:-1]] == list(range(1, 11))
    assert sum(1 for event in events[:-1] if event["preview"]) >= 3
    assert events[-1]["type"] == "result" and events[-1]["content-type"] == "image/webp"
    assert lines[-1] == "data: [DONE]"
