"""Models on demand: allowed Hub models load on their first request, the least recently used idle ones make
room, and the admin API manages them. ``widgetd serve`` runs as a process against a LocalHub, with a small
plugin whose loads and answers take as long as each repo says."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.test_plugins import env_with_plugin
from widgetd.testing.process import ServeProcess

TIMED_PLUGIN = '''
import gc
import json
import time
from pathlib import Path
from widgetd import Backend, hookimpl


class Timed:
    def __init__(self, settings):
        self.scale, self.answer_seconds = settings["scale"], settings.get("answer_seconds", 0)
        self.weights = b"\\x01" * settings.get("hold_bytes", 0)  # resident, as loaded weights are
        self.parts = [[] for _ in range(settings.get("objects", 0))]  # objects the collector tracks
        self.itself = self  # a reference cycle, as loaded models hold: only the collector frees them

    def __call__(self, task, requests):
        time.sleep(self.answer_seconds)
        return [[self.answer(request.inputs)] for request in requests]

    def answer(self, inputs):
        return float(gc.get_freeze_count()) if inputs == "frozen objects?" else self.scale * len(inputs)


def load(snapshot):
    settings = json.loads((Path(snapshot.path) / "timed.json").read_text())
    time.sleep(settings.get("load_seconds", 0))
    return Timed(settings)


@hookimpl
def register_backends(register):
    register(Backend(
        name="timed", library="timed", tasks=("feature-extraction",), load=load,
        files=lambda files: [f for f in files if f.endswith((".json", ".bin"))],
        recognizes=lambda files: "timed.json" in files,
    ))
'''
KEY = "admin-key-1234"


def publish(
    local_hub, tmp_path: Path, repo_id: str, scale: float, load_seconds: float = 0.0, answer_seconds: float = 0.0, hold_bytes: int = 0,
    weights_bytes: int = 1024 * 1024, objects: int = 0,
) -> str:
    folder = tmp_path / "repos" / repo_id.replace("/", "--")
    folder.mkdir(parents=True)
    settings = {"scale": scale, "load_seconds": load_seconds, "answer_seconds": answer_seconds, "hold_bytes": hold_bytes, "objects": objects}
    (folder / "timed.json").write_text(json.dumps(settings))
    (folder / "weights.bin").write_bytes(b"\0" * weights_bytes)
    local_hub.publish(repo_id, folder, card={"library_name": "timed", "pipeline_tag": "feature-extraction"})
    return repo_id


@pytest.fixture
def env(hub_env, tmp_path) -> dict[str, str]:
    return env_with_plugin(hub_env, tmp_path / "site", "widgetd-timed", TIMED_PLUGIN)


def embed(server: ServeProcess, model: str, text: str = "abc", **headers) -> httpx.Response:
    return httpx.post(f"{server.url}/models/{model}", json={"inputs": text}, headers=headers, timeout=60)


def until_answered(server: ServeProcess, model: str, timeout: float = 30, **headers) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = embed(server, model, **headers)
        if response.status_code != 503:
            return response
        time.sleep(0.1)
    raise TimeoutError(f"{model} never loaded")


def resolved_files(local_hub, repo_id: str) -> list[str]:
    return [path for method, path in local_hub.requests if method == "GET" and path.startswith(f"/{repo_id}/resolve/")]


def test_a_first_request_is_answered_loading_then_the_model_serves(local_hub, env, tmp_path):
    publish(local_hub, tmp_path, "org/slow", scale=2, load_seconds=1.0)
    with ServeProcess(["--allow-model", "org/*"], env) as server:
        first = embed(server, "org/slow")
        assert first.status_code == 503
        assert first.json()["error"] == "Model org/slow is currently loading"
        assert first.json()["estimated_time"] > 0 and int(first.headers["retry-after"]) >= 1
        assert httpx.get(f"{server.url}/health").status_code == 200  # an on-demand model loading is not a problem
        assert until_answered(server, "org/slow").json() == [6.0]
        assert httpx.get(f"{server.url}/models/org/slow/health").json()["status"] == "ok"


def test_x_wait_for_model_waits_for_the_load(local_hub, env, tmp_path):
    publish(local_hub, tmp_path, "org/waited", scale=3, load_seconds=0.5)
    with ServeProcess(["--allow-model", "org/waited"], env) as server:
        response = embed(server, "org/waited", **{"x-wait-for-model": "true"})
        assert response.status_code == 200 and response.json() == [9.0]


def test_fifty_concurrent_first_requests_cause_one_download_and_one_load(local_hub, env, tmp_path):
    publish(local_hub, tmp_path, "org/popular", scale=1, load_seconds=0.5)
    with ServeProcess(["--allow-model", "org/*"], env) as server:
        local_hub.clear_log()
        with ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(lambda _: embed(server, "org/popular", **{"x-wait-for-model": "true"}), range(50)))
        assert {response.status_code for response in answers} == {200}
        downloads = Counter(path.rsplit("/", 1)[1] for path in resolved_files(local_hub, "org/popular"))
        assert downloads["weights.bin"] == downloads["timed.json"] == 1
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'widgetd_model_loads_total{model="org/popular"} 1' in metrics


def test_a_model_not_allowed_is_a_404_naming_the_allow_list_and_nothing_is_fetched(local_hub, env, tmp_path):
    publish(local_hub, tmp_path, "other/secret", scale=1)
    with ServeProcess(["--allow-model", "org/*"], env) as server:
        local_hub.clear_log()
        response = embed(server, "other/secret")
        assert response.status_code == 404 and "org/*" in response.json()["error"]
        assert embed(server, "../etc/passwd").status_code == 404
        assert not [path for _, path in local_hub.requests if "other/secret" in path]


def test_the_least_recently_used_idle_model_makes_room(local_hub, env, tmp_path):
    for name, scale in (("a", 1), ("b", 2), ("c", 3)):
        publish(local_hub, tmp_path, f"org/{name}", scale=scale)
    with ServeProcess(["--allow-model", "org/*", "--max-models", "2", "--admin-key", KEY], env) as server:
        auth = {"authorization": f"Bearer {KEY}"}
        wait = {**auth, "x-wait-for-model": "true"}
        assert embed(server, "org/a", **wait).status_code == 200
        assert embed(server, "org/b", **wait).status_code == 200
        assert embed(server, "org/a", **wait).status_code == 200  # a is now the more recently used
        assert embed(server, "org/c", **wait).json() == [9.0]
        listed = httpx.get(f"{server.url}/models", headers=auth).json()
        assert sorted(model["model_id"] for model in listed["models"]) == ["org/a", "org/c"]
        metrics = httpx.get(f"{server.url}/metrics", headers=auth).text
        assert 'widgetd_model_evictions_total{model="org/b"} 1' in metrics
        assert embed(server, "org/b", **wait).json() == [6.0]  # unloaded models load again when asked


def test_a_model_answering_requests_is_never_unloaded(local_hub, env, tmp_path):
    publish(local_hub, tmp_path, "org/busy", scale=1, answer_seconds=2.0)
    publish(local_hub, tmp_path, "org/next", scale=2)
    with ServeProcess(["--allow-model", "org/*", "--max-models", "1"], env) as server:
        assert until_answered(server, "org/busy").status_code == 200
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(embed, server, "org/busy")
            time.sleep(0.5)
            refused = embed(server, "org/next")
            assert refused.status_code == 503 and "--max-models" in refused.json()["error"]
            assert running.result().json() == [3.0]
        assert until_answered(server, "org/next").json() == [6.0]


def test_the_admin_api_loads_lists_and_unloads_behind_the_key(local_hub, env, tmp_path):
    publish(local_hub, tmp_path, "org/managed", scale=5)
    with ServeProcess(["--allow-model", "nothing/*", "--admin-key", KEY], env) as server:
        auth = {"authorization": f"Bearer {KEY}"}
        assert httpx.post(f"{server.url}/models/org/managed/load").status_code == 401
        for body, field in (({"pin": "yes"}, "pin"), ({"pinned": True}, "pinned"), ([1], None)):
            bad = httpx.post(f"{server.url}/models/org/managed/load", json=body, headers=auth)
            assert bad.status_code == 400 and bad.json().get("field") == field, bad.text
        loading = httpx.post(f"{server.url}/models/org/managed/load", json={"pin": True}, headers=auth)
        assert loading.status_code == 202 and loading.json()["state"] == "loading"
        assert embed(server, "org/managed", **auth, **{"x-wait-for-model": "true"}).json() == [15.0]
        [listed] = httpx.get(f"{server.url}/models", headers=auth).json()["models"]
        assert (listed["model_id"], listed["state"], listed["pinned"]) == ("org/managed", "ready", True)
        assert httpx.delete(f"{server.url}/models/org/managed").status_code == 401
        assert httpx.delete(f"{server.url}/models/org/managed", headers=auth).json() == {"model_id": "org/managed", "state": "unloaded"}
        assert httpx.get(f"{server.url}/models", headers=auth).json()["models"] == []
        assert httpx.delete(f"{server.url}/models/org/managed", headers=auth).status_code == 404


def test_reload_replaces_a_loaded_copy_and_loads_nothing_that_is_not_loaded(local_hub, env, tmp_path):
    publish(local_hub, tmp_path, "org/idle", scale=1)
    with ServeProcess(["--allow-model", "org/*", "--admin-key", KEY], env) as server:
        auth = {"authorization": f"Bearer {KEY}"}
        assert httpx.post(f"{server.url}/models/org/idle/reload").status_code == 401
        refused = httpx.post(f"{server.url}/models/org/idle/reload", headers=auth)
        assert refused.status_code == 409 and "POST /models/org/idle/load" in refused.json()["error"], refused.text
        unknown = httpx.post(f"{server.url}/models/other/thing/reload", headers=auth)
        assert (unknown.status_code, unknown.headers["x-error-code"]) == (404, "RepoNotFound")
        assert httpx.get(f"{server.url}/models", headers=auth).json()["models"] == []
        assert until_answered(server, "org/idle", authorization=auth["authorization"]).status_code == 200
        assert httpx.post(f"{server.url}/models/org/idle/reload", headers=auth).json()["state"] == "reloading"


def test_without_an_api_key_there_is_no_unloading(local_hub, env, tmp_path):
    publish(local_hub, tmp_path, "org/kept", scale=1)
    with ServeProcess(["--allow-model", "org/*"], env) as server:
        assert until_answered(server, "org/kept").status_code == 200
        refused = httpx.delete(f"{server.url}/models/org/kept")
        assert refused.status_code == 405 and refused.headers["allow"] == "GET, POST"
        for action in ("load", "reload"):
            off = httpx.post(f"{server.url}/models/org/kept/{action}")
            assert off.status_code == 403 and "--admin-key" in off.json()["error"]
        assert embed(server, "org/kept").status_code == 200


def test_the_inference_client_waits_for_an_on_demand_model(local_hub, env, tmp_path):
    from huggingface_hub import InferenceClient

    publish(local_hub, tmp_path, "org/client", scale=2, load_seconds=0.5)
    with ServeProcess(["--allow-model", "org/*"], env) as server:
        client = InferenceClient(base_url=f"{server.url}/models/org/client", headers={"x-wait-for-model": "true"})
        assert client.feature_extraction("abcd").tolist() == [8.0]


def test_a_reload_switches_revision_with_no_failed_request_under_load(local_hub, env, tmp_path):
    import threading

    repo = publish(local_hub, tmp_path, "org/evolving", scale=1, load_seconds=0.5)
    with ServeProcess(["--model-id", repo, "--admin-key", KEY], env) as server:
        auth = {"authorization": f"Bearer {KEY}"}
        answers: list[httpx.Response] = []
        stop = threading.Event()

        def keep_asking() -> None:
            while not stop.is_set():
                answers.append(embed(server, repo, "abcd", **auth))

        with ThreadPoolExecutor(3) as pool:
            for _ in range(3):
                pool.submit(keep_asking)
            time.sleep(0.3)
            folder = tmp_path / "repos" / "org--evolving"
            (folder / "timed.json").write_text('{"scale": 2, "load_seconds": 0.5}')
            new_commit = local_hub.publish(repo, folder, card={"library_name": "timed", "pipeline_tag": "feature-extraction"})
            reloading = httpx.post(f"{server.url}/models/{repo}/reload", headers=auth)
            assert reloading.status_code == 202
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (not answers or answers[-1].json() != [8.0]):
                time.sleep(0.05)
            time.sleep(0.3)
            stop.set()
        assert {response.status_code for response in answers} == {200}
        values = [response.json() for response in answers]
        assert values[0] == [4.0] and values[-1] == [8.0]
        switched = values.index([8.0])
        # Requests that began on the old copy end on it; after them, the new copy answers alone.
        assert set(map(tuple, values)) == {(4.0,), (8.0,)} and all(value == [8.0] for value in values[switched + 6 :])
        [listed] = httpx.get(f"{server.url}/models", headers=auth).json()["models"]
        assert (listed["revision"], listed["pinned"]) == (new_commit, True)


def test_the_widget_page_opens_an_allowed_model_and_follows_its_load(local_hub, env, tmp_path):
    from tests.test_widget_page import CHROMIUM, CHROMIUM_FLAGS, _playwright, screenshot, widget_page_at

    sync_playwright = _playwright()
    publish(local_hub, tmp_path, "org/opened", scale=1, load_seconds=1.5)
    with ServeProcess(["--allow-model", "org/*"], env) as server:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            with widget_page_at(browser, server.url) as page:
                opener = page.locator("section.opener")
                opener.locator("input[name=model_id]").fill("org/opened")
                opener.locator("button[type=submit]").click()
                opener.locator(".loading").wait_for(timeout=10000)
                assert "Loading org/opened" in opener.locator(".loading").inner_text()
                page.locator('section[data-model="org/opened"]').wait_for(timeout=30000)
                screenshot(page.locator('section[data-model="org/opened"]'), "on-demand-opened")
                opener.locator("input[name=model_id]").fill("other/not-allowed")
                opener.locator("button[type=submit]").click()
                opener.locator(".error").wait_for(timeout=10000)
                assert "404" in opener.locator(".error").inner_text()
            browser.close()


MiB = 1024 * 1024


def test_a_memory_budget_unloads_the_least_recently_used_idle_models(local_hub, env, tmp_path):
    for name in ("a", "b", "c"):
        publish(local_hub, tmp_path, f"mem/{name}", scale=1, hold_bytes=20 * MiB)
    with ServeProcess(["--allow-model", "mem/*", "--memory-budget", "cpu=50MiB", "--admin-key", KEY], env) as server:
        wait = {"authorization": f"Bearer {KEY}", "x-wait-for-model": "true"}
        for name in ("a", "b", "a", "c"):
            assert embed(server, f"mem/{name}", **wait).status_code == 200
        listed = httpx.get(f"{server.url}/models", headers=wait).json()["models"]
        assert sorted(model["model_id"] for model in listed) == ["mem/a", "mem/c"]
        assert all(19 * MiB < model["memory_bytes"] < 26 * MiB for model in listed)
        metrics = httpx.get(f"{server.url}/metrics", headers=wait).text
        assert 'widgetd_model_memory_bytes{model="mem/a",device="cpu"}' in metrics
        assert 'widgetd_model_evictions_total{model="mem/b"} 1' in metrics


def test_unloading_gives_the_memory_back(local_hub, env, tmp_path):
    publish(local_hub, tmp_path, "mem/large", scale=1, hold_bytes=200 * MiB)
    with ServeProcess(["--allow-model", "mem/*", "--admin-key", KEY], env) as server:
        auth = {"authorization": f"Bearer {KEY}"}
        assert embed(server, "mem/large", **auth, **{"x-wait-for-model": "true"}).status_code == 200
        loaded = server.resident_bytes()
        assert httpx.delete(f"{server.url}/models/mem/large", headers=auth).status_code == 200
        deadline = time.monotonic() + 10
        while loaded - server.resident_bytes() < 150 * MiB and time.monotonic() < deadline:
            time.sleep(0.1)
        assert loaded - server.resident_bytes() > 150 * MiB


def test_a_loaded_models_objects_stay_out_of_full_collections_until_it_is_unloaded(local_hub, env, tmp_path):
    """A full collection scanning a loaded model's objects holds the GIL for hundreds of milliseconds, the
    event loop's too: they are frozen once loaded, and released (cycles included) when it is unloaded."""
    publish(local_hub, tmp_path, "gc/many", scale=1, objects=300_000)
    publish(local_hub, tmp_path, "gc/few", scale=1)
    with ServeProcess(["--allow-model", "gc/*", "--admin-key", KEY], env) as server:
        auth = {"authorization": f"Bearer {KEY}", "x-wait-for-model": "true"}
        [frozen_with_many] = embed(server, "gc/many", "frozen objects?", **auth).json()
        assert httpx.delete(f"{server.url}/models/gc/many", headers=auth).status_code == 200
        [frozen_after] = embed(server, "gc/few", "frozen objects?", **auth).json()
        assert frozen_with_many > 300_000 and frozen_after < frozen_with_many - 290_000


def test_openai_routes_load_the_allowed_model_a_body_names(local_hub, env, tmp_path):
    publish(local_hub, tmp_path, "org/embedder", scale=2, load_seconds=0.3)
    with ServeProcess(["--allow-model", "org/*"], env) as server:
        body = {"model": "org/embedder", "input": "abc"}
        first = httpx.post(f"{server.url}/v1/embeddings", json=body, timeout=30)
        assert first.status_code == 503 and "currently loading" in first.json()["error"]["message"]
        waited = httpx.post(f"{server.url}/v1/embeddings", json=body, headers={"x-wait-for-model": "true"}, timeout=30)
        assert waited.status_code == 200 and waited.json()["model"] == "org/embedder"
        # A name not allowed is a placeholder, as before: the model that embeds answers, and nothing is fetched.
        local_hub.clear_log()
        placeholder = httpx.post(f"{server.url}/v1/embeddings", json={"model": "else/where", "input": "abc"}, timeout=30)
        assert placeholder.json()["model"] == "org/embedder" and not local_hub.requests


def test_a_model_that_does_not_fit_beside_busy_ones_is_a_503_saying_why(local_hub, env, tmp_path):
    publish(local_hub, tmp_path, "mem/busy", scale=1, answer_seconds=3.0, hold_bytes=20 * MiB, weights_bytes=20 * MiB)
    publish(local_hub, tmp_path, "mem/waiting", scale=2, hold_bytes=20 * MiB, weights_bytes=20 * MiB)
    with ServeProcess(["--allow-model", "mem/*", "--memory-budget", "30MiB"], env) as server:
        assert until_answered(server, "mem/busy", timeout=60).status_code == 200
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(embed, server, "mem/busy")
            time.sleep(0.5)
            refused = embed(server, "mem/waiting", **{"x-wait-for-model": "true"})
            assert refused.status_code == 503 and "--memory-budget" in refused.json()["error"]
            assert running.result().status_code == 200
