"""The real huggingface_hub resolves and downloads models from a LocalHub.

huggingface_hub reads HF_ENDPOINT and the cache variables once, at import, so in-process tests
pass ``endpoint=`` and ``cache_dir=``; the environment route is proven in subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from widgetd.testing.hub import LFS_THRESHOLD, LocalHub, card_metadata, render_card

CARD = {"library_name": "sentence-transformers", "pipeline_tag": "sentence-similarity", "tags": ["tiny"]}
WEIGHTS = bytes(range(256)) * (LFS_THRESHOLD // 256 + 7)
ALLOWED = ["*.json", "*.safetensors"]
WANTED = {"config.json", "model.safetensors", "pooling/config.json"}


@pytest.fixture(autouse=True)
def no_saved_token(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)


@pytest.fixture
def hub():
    with LocalHub() as hub:
        yield hub


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "hf-cache"


def make_model(folder: Path, *, dim: int = 8) -> Path:
    (folder / "pooling").mkdir(parents=True)
    (folder / "onnx").mkdir()
    (folder / "config.json").write_text(json.dumps({"dim": dim}))
    (folder / "pooling" / "config.json").write_text('{"mode": "mean"}')
    (folder / "model.safetensors").write_bytes(WEIGHTS)
    (folder / "onnx" / "model.onnx").write_bytes(b"\x08\x07onnx")
    (folder / "vocab.txt").write_text("hello\nworld\n")
    return folder


def snapshot(hub: LocalHub, cache: Path, repo_id: str = "org/tiny", **kwargs) -> Path:
    return Path(snapshot_download(repo_id, endpoint=hub.url, cache_dir=cache, allow_patterns=ALLOWED, **kwargs))


def files_under(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, env={**clean, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


def test_model_info_reports_the_card_and_the_commit(hub, tmp_path):
    sha = hub.publish("org/tiny", make_model(tmp_path / "model"), card=CARD)

    info = HfApi(endpoint=hub.url).model_info("org/tiny")

    assert (info.id, info.sha, info.private, info.gated) == ("org/tiny", sha, False, False)
    assert (info.library_name, info.pipeline_tag) == ("sentence-transformers", "sentence-similarity")
    assert info.card_data.to_dict() == CARD
    assert "tiny" in info.tags
    assert {s.rfilename for s in info.siblings} == WANTED | {"README.md", "onnx/model.onnx", "vocab.txt"}
    assert len(sha) == 40 and int(sha, 16) >= 0


def test_file_metadata_and_tree_listings(hub, tmp_path):
    hub.publish("org/tiny", make_model(tmp_path / "model"), card=CARD)
    api = HfApi(endpoint=hub.url)

    siblings = api.model_info("org/tiny", files_metadata=True).siblings
    weights = next(sibling for sibling in siblings if sibling.rfilename == "model.safetensors")
    root = {entry.path: entry for entry in api.list_repo_tree("org/tiny")}
    onnx = [entry.path for entry in api.list_repo_tree("org/tiny", path_in_repo="onnx")]

    assert (weights.size, weights.lfs.size) == (len(WEIGHTS), len(WEIGHTS))
    assert sorted(root) == ["README.md", "config.json", "model.safetensors", "onnx", "pooling", "vocab.txt"]
    assert root["model.safetensors"].lfs is not None and root["config.json"].lfs is None
    assert not hasattr(root["onnx"], "size")  # a RepoFolder
    assert onnx == ["onnx/model.onnx"]
    assert "pooling/config.json" in api.list_repo_files("org/tiny")
    assert api.model_info("org/tiny", expand=["pipeline_tag"]).library_name is None


def test_snapshot_download_fetches_only_allowed_files_into_the_standard_cache_layout(hub, tmp_path, cache):
    sha = hub.publish("org/tiny", make_model(tmp_path / "model"), card=CARD)
    hub.clear_log()

    path = snapshot(hub, cache)

    storage = cache / "models--org--tiny"
    assert path == storage / "snapshots" / sha
    assert (storage / "refs" / "main").read_text() == sha
    assert files_under(path) == WANTED
    assert (path / "model.safetensors").read_bytes() == WEIGHTS
    # An LFS blob is stored under its sha256, from X-Linked-Etag; others under their git blob sha1.
    assert (path / "model.safetensors").resolve().parent == storage / "blobs"
    assert len((path / "model.safetensors").resolve().name) == 64
    assert len((path / "config.json").resolve().name) == 40
    assert hub.downloads == 3
    assert not any("onnx" in request_path or "vocab" in request_path for _, request_path in hub.requests)


def test_a_second_snapshot_download_downloads_nothing(hub, tmp_path, cache):
    hub.publish("org/tiny", make_model(tmp_path / "model"), card=CARD)
    first = snapshot(hub, cache)
    hub.clear_log()

    second = snapshot(hub, cache)

    assert second == first
    assert hub.downloads == 0
    assert not any("/resolve/" in path for _, path in hub.requests)


def test_the_environment_route_and_an_offline_restart(hub, tmp_path, cache):
    sha = hub.publish("org/tiny", make_model(tmp_path / "model"), card=CARD)
    code = (
        "from huggingface_hub import HfApi, snapshot_download\n"
        "import os\n"
        "if os.environ['HF_HUB_OFFLINE'] == '0': print(HfApi().model_info('org/tiny').sha)\n"
        f"print(snapshot_download('org/tiny', allow_patterns={ALLOWED!r}))\n"
    )
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(cache), "HF_HUB_DISABLE_TELEMETRY": "1"}

    online = run_python(code, {**env, "HF_HUB_OFFLINE": "0"}).stdout.split()
    hub.clear_log()
    offline = run_python(code, {**env, "HF_HUB_OFFLINE": "1"}).stdout.split()

    assert online == [sha, str(cache / "models--org--tiny" / "snapshots" / sha)]
    assert offline == online[1:]
    assert hub.requests == []


def test_hf_hub_download_of_a_single_file(hub, tmp_path, cache):
    sha = hub.publish("org/tiny", make_model(tmp_path / "model"), card=CARD)
    hub.clear_log()

    path = Path(hf_hub_download("org/tiny", "pooling/config.json", endpoint=hub.url, cache_dir=cache))

    assert path == cache / "models--org--tiny" / "snapshots" / sha / "pooling" / "config.json"
    assert path.read_text() == '{"mode": "mean"}'
    assert hub.downloads == 1
    assert ("GET", "/org/tiny/resolve/main/pooling/config.json") in hub.requests


def test_a_private_repo_needs_its_token(hub, tmp_path, cache):
    sha = hub.publish("org/secret", make_model(tmp_path / "model"), card=CARD, private=True, token="hf_s3cret")
    api = HfApi(endpoint=hub.url)

    with pytest.raises(RepositoryNotFoundError) as info_error:
        api.model_info("org/secret", token=False)
    with pytest.raises(RepositoryNotFoundError) as wrong_token_error:
        api.model_info("org/secret", token="hf_wrong")
    with pytest.raises(RepositoryNotFoundError) as download_error:
        snapshot(hub, cache, "org/secret", token=False)

    assert info_error.type is download_error.type is wrong_token_error.type is RepositoryNotFoundError
    assert api.model_info("org/secret", token="hf_s3cret").private is True
    assert snapshot(hub, cache, "org/secret", token="hf_s3cret").name == sha


def test_a_gated_repo_shows_its_info_but_serves_files_only_with_its_token(hub, tmp_path, cache):
    hub.publish("org/gated", make_model(tmp_path / "model"), card=CARD, gated=True, token="hf_granted")

    assert HfApi(endpoint=hub.url).model_info("org/gated", token=False).gated == "auto"
    with pytest.raises(GatedRepoError):
        hf_hub_download("org/gated", "config.json", endpoint=hub.url, cache_dir=cache, token=False)
    with pytest.raises(GatedRepoError):
        hf_hub_download("org/gated", "config.json", endpoint=hub.url, cache_dir=cache, token="hf_other")
    granted = hf_hub_download("org/gated", "config.json", endpoint=hub.url, cache_dir=cache, token="hf_granted")
    assert Path(granted).read_text() == '{"dim": 8}'


def test_a_pinned_revision_resolves_after_a_new_publish(hub, tmp_path, cache):
    first = hub.publish("org/tiny", make_model(tmp_path / "v1", dim=8), card=CARD)
    second = hub.publish("org/tiny", make_model(tmp_path / "v2", dim=16), card=CARD)
    api = HfApi(endpoint=hub.url)

    pinned = snapshot(hub, cache, revision=first)
    latest = snapshot(hub, cache)

    assert first != second
    assert api.model_info("org/tiny", revision=first).sha == first
    assert api.model_info("org/tiny").sha == second
    assert json.loads((pinned / "config.json").read_text()) == {"dim": 8}
    assert json.loads((latest / "config.json").read_text()) == {"dim": 16}
    assert hub.publish("org/tiny", tmp_path / "v2", card=CARD) == second  # same content, same commit


def test_unknown_repos_revisions_and_files_raise_the_hub_errors(hub, tmp_path, cache):
    hub.publish("org/tiny", make_model(tmp_path / "model"), card=CARD)
    api = HfApi(endpoint=hub.url)

    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/missing")
    with pytest.raises(RepositoryNotFoundError):
        snapshot(hub, cache, "org/missing")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("org/tiny", revision="v9")
    with pytest.raises(RevisionNotFoundError):
        snapshot(hub, cache, revision="0" * 40)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("org/tiny", "missing.bin", endpoint=hub.url, cache_dir=cache)


def test_resolve_headers_ranges_and_unknown_routes(hub, tmp_path):
    sha = hub.publish("org/tiny", make_model(tmp_path / "model"), card=CARD)
    url = f"{hub.url}/org/tiny/resolve/{sha}/model.safetensors"

    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD")) as head:
        assert head.headers["X-Repo-Commit"] == sha
        assert head.headers["X-Linked-Size"] == head.headers["Content-Length"] == str(len(WEIGHTS))
        assert head.headers["ETag"] == head.headers["X-Linked-Etag"] and len(head.headers["ETag"]) == 66
        assert not any(name.lower().startswith("x-xet") for name in head.headers)
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=10-19"})) as ranged:
        assert (ranged.status, ranged.read()) == (206, WEIGHTS[10:20])
        assert ranged.headers["Content-Range"] == f"bytes 10-19/{len(WEIGHTS)}"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{hub.url}/api/spaces/org/tiny")

    assert missing.value.code == 404 and "error" in json.loads(missing.value.read())
    assert hub.downloads == 1  # the ranged GET; HEAD sends no body


def test_card_front_matter_round_trips():
    card = {**CARD, "tags": ["a", "b: c"], "dim": 8, "normalized": True}

    assert card_metadata(render_card(card)) == card
    assert card_metadata("---\nlibrary_name: asteroid\nwidget:\n- text: hi\nlanguage: [en, fr]\n---\n") == {
        "library_name": "asteroid",
        "language": ["en", "fr"],
    }
