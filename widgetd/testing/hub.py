"""A local server that speaks the Hugging Face Hub's HTTP protocol, for tests without internet.

    with LocalHub() as hub:
        commit = hub.publish("org/tiny", folder, card={"library_name": "sentence-transformers"})
        # HF_ENDPOINT=hub.url makes huggingface_hub (and `widgetd serve`) download from it.

It serves what ``huggingface_hub`` uses to resolve and download models: model info,
the recursive file tree and ``resolve`` URLs (HEAD and GET, with ranges), with the
Hub's error codes for unknown repos, revisions and files and for private repos.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

LFS_THRESHOLD = 1024 * 1024
"""Files from this size on are described as LFS files, as the Hub does for weights."""


@dataclass
class _Commit:
    sha: str
    files: dict[str, bytes]
    card: dict[str, Any]


@dataclass
class _Repo:
    private: bool = False
    token: str | None = None
    commits: dict[str, _Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def commit(self, revision: str) -> _Commit | None:
        sha = self.branches.get(revision, revision)
        return self.commits.get(sha)


def render_card(card: dict[str, Any]) -> str:
    """A README.md with YAML front matter for simple metadata (strings, numbers, booleans, lists)."""
    lines = ["---"]
    for key, value in card.items():
        if isinstance(value, list):
            lines.append(f"{key}:")
            lines.extend(f"- {json.dumps(item)}" for item in value)
        else:
            lines.append(f"{key}: {json.dumps(value)}")
    return "\n".join([*lines, "---", "", "A model published on a widgetd LocalHub.", ""])


def card_metadata(readme: str) -> dict[str, Any]:
    """The YAML front matter of a model card, as the Hub reads it into cardData."""
    import yaml

    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", readme, re.DOTALL)
    if not match:
        return {}
    metadata = yaml.safe_load(match.group(1))
    return metadata if isinstance(metadata, dict) else {}


def _git_blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class LocalHub:
    """A Hub on 127.0.0.1; ``requests`` logs (method, path), ``downloads`` counts file bodies sent."""

    def __init__(self) -> None:
        self.repos: dict[str, _Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.downloads = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-hub", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.downloads = 0

    def publish(
        self,
        repo_id: str,
        folder: str | Path,
        *,
        card: dict[str, Any] | None = None,
        private: bool = False,
        token: str | None = None,
    ) -> str:
        """Publish ``folder``'s files as a new commit on ``main``; returns the commit sha."""
        folder = Path(folder)
        files = {
            path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        }
        if card is not None and "README.md" not in files:
            files["README.md"] = render_card(card).encode()
        if card is None and "README.md" in files:
            card = card_metadata(files["README.md"].decode("utf-8", "replace"))
        digest = hashlib.sha1(repo_id.encode())
        for name, content in files.items():
            digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
        sha = digest.hexdigest()
        with self._lock:
            repo = self.repos.setdefault(repo_id, _Repo())
            repo.private, repo.token = private, token
            repo.commits[sha] = _Commit(sha, files, card or {})
            repo.branches["main"] = sha
        return sha

    def log(self, method: str, path: str, *, sent_body: bool = False) -> None:
        with self._lock:
            self.requests.append((method, path))
            if sent_body:
                self.downloads += 1


_MODEL_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<revision>[^/]+))?$")
_TREE_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<revision>[^/]+)(?:/(?P<path>.*))?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)$")
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class _HubError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _handler_for(hub: LocalHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def _answer(self, *, send_body: bool) -> None:
            url = urlsplit(self.path)
            path = unquote(url.path)
            try:
                if match := _RESOLVE.match(path):
                    self._send_file(match, send_body)
                elif match := _TREE_API.match(path):
                    self._send_json(self._tree(match, parse_qs(url.query)))
                elif match := _MODEL_API.match(path):
                    self._send_json(self._model_info(match))
                else:
                    raise _HubError(404, "", f"no such route: {path}")
            except _HubError as error:
                hub.log(self.command, path)
                self._send_error(error)

        def _commit(self, repo_id: str, revision: str | None) -> tuple[_Repo, _Commit]:
            repo = hub.repos.get(repo_id)
            if repo is None or (repo.private and self.headers.get("Authorization") != f"Bearer {repo.token}"):
                status = 401 if repo is not None else 404
                raise _HubError(status, "RepoNotFound", f"Repository Not Found for {repo_id}")
            commit = repo.commit(revision or "main")
            if commit is None:
                raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return repo, commit

        def _model_info(self, match: re.Match) -> dict[str, Any]:
            repo, commit = self._commit(match["repo"], match["revision"])
            hub.log(self.command, self.path)
            now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            return {
                "_id": match["repo"],
                "id": match["repo"],
                "modelId": match["repo"],
                "sha": commit.sha,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "library_name": commit.card.get("library_name"),
                "pipeline_tag": commit.card.get("pipeline_tag"),
                "tags": list(commit.card.get("tags", [])),
                "cardData": commit.card,
                "siblings": [{"rfilename": name} for name in commit.files],
                "lastModified": now,
                "createdAt": now,
            }

        def _tree(self, match: re.Match, query: dict[str, list[str]]) -> list[dict[str, Any]]:
            _, commit = self._commit(match["repo"], match["revision"])
            hub.log(self.command, self.path)
            prefix = (match["path"] or "").strip("/")
            recursive = query.get("recursive", ["false"])[0].lower() in ("true", "1")
            entries, folders = [], set()
            for name, content in commit.files.items():
                if prefix and not name.startswith(prefix + "/"):
                    continue
                rest = name[len(prefix) + 1 :] if prefix else name
                if "/" in rest and not recursive:
                    folders.add(f"{prefix}/{rest.split('/')[0]}".strip("/"))
                    continue
                entries.append(self._file_entry(name, content))
            if recursive:
                for name in commit.files:
                    parts = name.split("/")[:-1]
                    folders.update("/".join(parts[: i + 1]) for i in range(len(parts)))
            folder_entries = [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in sorted(folders)]
            return folder_entries + entries

        def _file_entry(self, name: str, content: bytes) -> dict[str, Any]:
            entry: dict[str, Any] = {"type": "file", "oid": _git_blob_sha(content), "size": len(content), "path": name}
            if len(content) >= LFS_THRESHOLD:
                entry["lfs"] = {"oid": hashlib.sha256(content).hexdigest(), "size": len(content), "pointerSize": 134}
            return entry

        def _send_file(self, match: re.Match, send_body: bool) -> None:
            _, commit = self._commit(match["repo"], match["revision"])
            content = commit.files.get(match["path"])
            if content is None:
                raise _HubError(404, "EntryNotFound", f"{match['path']} does not exist at {commit.sha}")
            is_lfs = len(content) >= LFS_THRESHOLD
            etag = hashlib.sha256(content).hexdigest() if is_lfs else _git_blob_sha(content)
            status, body = 200, content
            ranged = _RANGE.match(self.headers.get("Range", ""))
            if ranged and send_body:
                start = int(ranged[1])
                end = int(ranged[2]) if ranged[2] else len(content) - 1
                status, body = 206, content[start : end + 1]
            self.send_response(status)
            self.send_header("X-Repo-Commit", commit.sha)
            self.send_header("ETag", f'"{etag}"')
            if is_lfs:
                self.send_header("X-Linked-Etag", f'"{etag}"')
                self.send_header("X-Linked-Size", str(len(content)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(content)}")
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            hub.log(self.command, self.path, sent_body=send_body)
            if send_body:
                self.wfile.write(body)

        def _send_json(self, document: Any) -> None:
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _send_error(self, error: _HubError) -> None:
            body = json.dumps({"error": error.message}).encode()
            self.send_response(error.status)
            if error.code:
                self.send_header("X-Error-Code", error.code)
            self.send_header("X-Error-Message", error.message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return Handler
