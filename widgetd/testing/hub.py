"""A local server that speaks the Hugging Face Hub's HTTP protocol, for tests without internet.

Publish a folder as a model repo, then point ``huggingface_hub`` (or ``widgetd serve``) at it::

    from huggingface_hub import HfApi, snapshot_download
    from widgetd.testing.hub import LocalHub

    with LocalHub() as hub:
        sha = hub.publish("org/tiny", folder, card={"library_name": "sentence-transformers"})
        assert HfApi(endpoint=hub.url).model_info("org/tiny").sha == sha
        snapshot_download("org/tiny", endpoint=hub.url, cache_dir=tmp_path)
        # or, in a subprocess: HF_ENDPOINT=hub.url HF_HUB_CACHE=... widgetd serve org/tiny
        assert hub.downloads == len(hub.repo_files("org/tiny"))

It serves what ``huggingface_hub`` uses to resolve and download models:

- ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}``: model info
  (``?blobs=true`` adds file sizes, ``?expand=...`` keeps only the listed properties);
- ``GET /api/models/{repo}/tree/{rev}[/{path}]`` (``?recursive=true``): the file tree;
- ``HEAD`` and ``GET /{repo}/resolve/{rev}/{path}``: files, with ``Range`` support.

Errors carry the Hub's ``X-Error-Code`` header (``RepoNotFound``, ``RevisionNotFound``,
``EntryNotFound``, ``GatedRepo``) so ``huggingface_hub`` raises its own exceptions. Files of
1 MB or more are described as LFS files (sha256 ETag, ``X-Linked-Etag``/``X-Linked-Size``),
as the Hub does for weights. No Xet headers are sent, so clients take the plain HTTP path.

``hub.requests`` logs each request as ``(method, path)`` (percent-decoded, without the query)
and ``hub.downloads`` counts the file bodies sent; ``hub.clear_log()`` resets both.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["LFS_THRESHOLD", "LocalHub", "card_metadata", "render_card"]

LFS_THRESHOLD = 1024 * 1024
"""Files from this size on are described as LFS files, as the Hub does for weights."""

_LFS_POINTER_SIZE = 134  # the size of a git-lfs pointer file, as the Hub reports it


# ---------------------------------------------------------------------------------------------
# Repository contents


@dataclass(frozen=True)
class _File:
    content: bytes
    blob_id: str  # git blob sha1: what the Hub reports as a file's oid and ETag
    sha256: str | None  # set for LFS files only

    @classmethod
    def of(cls, content: bytes) -> _File:
        sha256 = hashlib.sha256(content).hexdigest() if len(content) >= LFS_THRESHOLD else None
        return cls(content, _git_blob_sha(content), sha256)

    @property
    def etag(self) -> str:
        return self.sha256 or self.blob_id


@dataclass(frozen=True)
class _Commit:
    sha: str
    files: dict[str, _File]
    card: dict[str, Any]
    date: str


@dataclass
class _Repo:
    created: str
    private: bool = False
    gated: bool = False
    token: str | None = None
    commits: dict[str, _Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def commit(self, revision: str) -> _Commit | None:
        return self.commits.get(self.branches.get(revision, revision))


def _files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def _git_blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _commit_sha(repo_id: str, files: dict[str, _File]) -> str:
    digest = hashlib.sha1(repo_id.encode())
    for name, file in sorted(files.items()):
        digest.update(name.encode() + b"\0" + file.blob_id.encode())
    return digest.hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


# ---------------------------------------------------------------------------------------------
# Model cards


def render_card(card: dict[str, Any]) -> str:
    """A README.md whose YAML front matter holds ``card``: scalars, and lists in block style."""
    lines = ["---"]
    for key, value in card.items():
        if isinstance(value, (list, tuple)):
            lines.append(f"{key}:")
            lines.extend(f"- {json.dumps(item)}" for item in value)
        else:
            # JSON scalars (and flow-style mappings) are valid YAML.
            lines.append(f"{key}: {json.dumps(value)}")
    return "\n".join([*lines, "---", "", "A model published on a widgetd LocalHub.", ""])


def card_metadata(readme: str) -> dict[str, Any]:
    """The front matter of a model card, as the Hub reads it into ``cardData``.

    Only simple YAML is understood (``key: scalar``, ``key: [a, b]``, and ``key:`` followed
    by ``- scalar`` lines); keys holding any other structure are left out.
    """
    match = re.match(r"^---[ \t]*\n(.*?)\n---[ \t]*(\n|$)", readme, re.DOTALL)
    if not match:
        return {}
    metadata: dict[str, Any] = {}
    block_key, block_items, simple_block = None, [], True

    def close_block() -> None:
        if block_key is not None and simple_block:
            metadata[block_key] = block_items

    for line in match.group(1).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if key_value := re.match(r"^([^\s:#-][^:]*):(?:\s+(.*))?$", line):
            close_block()
            key, value = key_value.group(1).strip(), (key_value.group(2) or "").strip()
            block_key, block_items, simple_block = (None, [], True) if value else (key, [], True)
            if value:
                metadata[key] = _yaml_scalar(value)
        elif (item := re.match(r"^\s*-\s+(.*)$", line)) and not re.match(r"^[\w.-]+:(\s|$)", item.group(1)):
            block_items.append(_yaml_scalar(item.group(1).strip()))
        else:
            simple_block = False
    close_block()
    return metadata


def _yaml_scalar(text: str) -> Any:
    if text.startswith("[") and text.endswith("]"):
        return [_yaml_scalar(part.strip()) for part in text[1:-1].split(",") if part.strip()]
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        return text[1:-1].replace("''", "'")
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text in ("null", "~"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


# ---------------------------------------------------------------------------------------------
# The server


class LocalHub:
    """A Hub on 127.0.0.1 (a free port); see the module docstring."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.downloads = 0
        self._repos: dict[str, _Repo] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalHub:
        if self._thread is None:
            # A short poll interval makes stop() quick: shutdown() waits for the next poll.
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name="local-hub", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        # shutdown() waits for serve_forever() to exit, so it would hang if the server never started.
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def publish(
        self,
        repo_id: str,
        folder: str | Path,
        *,
        card: dict[str, Any] | None = None,
        private: bool = False,
        token: str | None = None,
        gated: bool = False,
    ) -> str:
        """Publish the files under ``folder`` as a new commit on ``main``; returns the commit sha.

        ``card`` becomes the model's ``cardData`` and, unless the folder has one, its README.md;
        without ``card`` the folder's README.md front matter is read. A private repo is visible
        only with ``token``; a gated repo shows its info to anyone but serves files only with
        ``token``. Earlier commits stay reachable by their sha.
        """
        if (private or gated) and not token:
            raise ValueError("a private or gated repo needs the token that grants access to it")
        folder = Path(folder)
        contents = {path.relative_to(folder).as_posix(): path.read_bytes() for path in _files_under(folder)}
        if card is not None:
            contents.setdefault("README.md", render_card(card).encode())
        elif "README.md" in contents:
            card = card_metadata(contents["README.md"].decode("utf-8", "replace"))
        files = {name: _File.of(content) for name, content in sorted(contents.items())}
        sha = _commit_sha(repo_id, files)
        with self._lock:
            repo = self._repos.setdefault(repo_id, _Repo(created=_now()))
            repo.private, repo.gated, repo.token = private, gated, token
            repo.commits[sha] = _Commit(sha, files, dict(card or {}), _now())
            repo.branches["main"] = sha
        return sha

    def repo_files(self, repo_id: str, revision: str = "main") -> list[str]:
        """The paths of the files of ``repo_id`` at ``revision`` (a branch or a commit sha)."""
        commit = self._repos[repo_id].commit(revision)
        if commit is None:
            raise KeyError(revision)
        return list(commit.files)

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.downloads = 0

    def _log(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def _count_download(self) -> None:
        with self._lock:
            self.downloads += 1

    def _repo(self, repo_id: str) -> _Repo | None:
        with self._lock:
            return self._repos.get(repo_id)


# Routes match the raw path: huggingface_hub percent-encodes revisions and tree paths
# entirely (``refs%2Fpr%2F1``), so slashes inside them never split a route.
_REPO = r"(?P<repo>[^/]+(?:/[^/]+)?)"
_TREE_API = re.compile(rf"^/api/models/{_REPO}/tree/(?P<revision>[^/]+)(?:/(?P<path>.*))?$")
_MODEL_API = re.compile(rf"^/api/models/{_REPO}(?:/revision/(?P<revision>[^/]+))?$")
_RESOLVE = re.compile(rf"^/{_REPO}/resolve/(?P<revision>[^/]+)/(?P<path>.+)$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def _handler_for(hub: LocalHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_HEAD(self) -> None:
            self._handle()

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._handle()

        do_PUT = do_DELETE = do_PATCH = do_POST

        def _handle(self) -> None:
            url = urlsplit(self.path)
            hub._log(self.command, unquote(url.path))
            query = parse_qs(url.query)
            try:
                if self.command not in ("GET", "HEAD"):
                    raise _HubError(404, None, f"LocalHub does not serve {self.command} {url.path}")
                if match := _TREE_API.match(url.path):
                    self._send_json(self._tree(_decoded(match), query))
                elif match := _MODEL_API.match(url.path):
                    self._send_json(self._model_info(_decoded(match), query))
                elif match := _RESOLVE.match(url.path):
                    self._send_file(_decoded(match))
                else:
                    raise _HubError(404, None, f"Sorry, we can't find the page you are looking for: {url.path}")
            except _HubError as error:
                self._send_error(error)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away mid-response, as an interrupted download does

        # --- lookups -----------------------------------------------------------------------

        def _lookup(self, route: dict[str, str], *, reading_files: bool = False) -> tuple[_Repo, _Commit]:
            repo_id = route["repo"]
            repo = hub._repo(repo_id)
            authorized = repo is not None and self.headers.get("Authorization") == f"Bearer {repo.token}"
            if repo is None or (repo.private and not authorized):
                # Unauthenticated requests get 401 for private repos, as on the Hub; both read as RepoNotFound.
                status = 401 if repo is not None and "Authorization" not in self.headers else 404
                raise _HubError(status, "RepoNotFound", "Repository not found")
            if repo.gated and reading_files and not authorized:
                status = 403 if "Authorization" in self.headers else 401
                message = f"Access to model {repo_id} is restricted: you must be authenticated and granted access."
                raise _HubError(status, "GatedRepo", message)
            revision = route["revision"] or "main"
            commit = repo.commit(revision)
            if commit is None:
                raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return repo, commit

        # --- JSON API ----------------------------------------------------------------------

        def _model_info(self, route: dict[str, str], query: dict[str, list[str]]) -> dict[str, Any]:
            repo, commit = self._lookup(route)
            card = commit.card
            library = card.get("library_name")
            tags = [str(tag) for tag in card.get("tags") or []]
            with_blobs = _truthy(query.get("blobs"))
            info = {
                "_id": route["repo"],
                "id": route["repo"],
                "modelId": route["repo"],
                "author": route["repo"].split("/")[0] if "/" in route["repo"] else None,
                "sha": commit.sha,
                "private": repo.private,
                "gated": "auto" if repo.gated else False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "library_name": library,
                "pipeline_tag": card.get("pipeline_tag"),
                "tags": ([library] if library and library not in tags else []) + tags,
                "cardData": card,
                "siblings": [_sibling(name, file, with_blobs) for name, file in commit.files.items()],
                "lastModified": commit.date,
                "createdAt": repo.created,
            }
            requested = query.get("expand", []) + query.get("expand[]", [])
            expand = {name for values in requested for name in values.split(",")}
            if expand:
                info = {key: value for key, value in info.items() if key in expand | {"_id", "id"}}
            return info

        def _tree(self, route: dict[str, str], query: dict[str, list[str]]) -> list[dict[str, Any]]:
            _, commit = self._lookup(route)
            root = (route["path"] or "").strip("/")
            recursive = _truthy(query.get("recursive"))
            expanded = _truthy(query.get("expand"))
            under_root = {name: file for name, file in commit.files.items() if _inside(name, root)}
            if root and not under_root:
                raise _HubError(404, "EntryNotFound", f"{root} does not exist at {commit.sha}")
            entries = {}
            for name, file in under_root.items():
                folders = (name[len(root) + 1 :] if root else name).split("/")[:-1]
                for level in range(1, len(folders if recursive else folders[:1]) + 1):
                    folder = "/".join([*([root] if root else []), *folders[:level]])
                    entries[folder] = _folder_entry(folder, commit)
                if recursive or not folders:
                    entries[name] = _file_entry(name, file)
            if expanded:
                for entry in entries.values():
                    entry["lastCommit"] = {"id": commit.sha, "title": "Publish on LocalHub", "date": commit.date}
            return [entries[path] for path in sorted(entries)]

        # --- files -------------------------------------------------------------------------

        def _send_file(self, route: dict[str, str]) -> None:
            _, commit = self._lookup(route, reading_files=True)
            file = commit.files.get(route["path"])
            if file is None:
                # The Hub names the commit even for a missing file; huggingface_hub caches the absence under it.
                message = f"{route['path']} does not exist at {commit.sha}"
                raise _HubError(404, "EntryNotFound", message, {"X-Repo-Commit": commit.sha})
            size = len(file.content)
            start, end = 0, size
            requested = self.headers.get("Range") if self.command == "GET" else None
            if requested:
                byte_range = _parse_range(requested, size)
                if byte_range is None:
                    unsatisfiable = {"Content-Range": f"bytes */{size}"}
                    raise _HubError(416, None, f"Range not satisfiable: {requested}", unsatisfiable)
                start, end = byte_range
            partial = (start, end) != (0, size)
            self.send_response(206 if partial else 200)
            self.send_header("X-Repo-Commit", commit.sha)
            self.send_header("ETag", f'"{file.etag}"')
            if file.sha256:
                self.send_header("X-Linked-Etag", f'"{file.sha256}"')
                self.send_header("X-Linked-Size", str(size))
            if partial:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", mimetypes.guess_type(route["path"])[0] or "application/octet-stream")
            self.send_header("Content-Length", str(end - start))
            self.end_headers()
            if self.command == "GET":
                hub._count_download()
                self.wfile.write(file.content[start:end])

        # --- responses ---------------------------------------------------------------------

        def _send_json(self, document: Any) -> None:
            self._send(200, json.dumps(document).encode(), {"Content-Type": "application/json"})

        def _send_error(self, error: _HubError) -> None:
            # Header values must be latin-1; a non-ASCII file name would otherwise break the response.
            header_message = error.message.encode("ascii", "backslashreplace").decode()
            headers = {"Content-Type": "application/json", "X-Error-Message": header_message, **error.headers}
            if error.code:
                headers["X-Error-Code"] = error.code
            self._send(error.status, json.dumps({"error": error.message}).encode(), headers)

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return Handler


def _decoded(match: re.Match) -> dict[str, Any]:
    return {name: unquote(value) if value is not None else None for name, value in match.groupdict().items()}


def _truthy(values: list[str] | None) -> bool:
    return bool(values) and values[-1].lower() in ("1", "true")


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end) of a single ``bytes=`` range, end exclusive; None if it cannot be satisfied.

    Several ranges in one header are answered with the whole file, which HTTP allows.
    """
    match = _RANGE.match(header.strip())
    if not match:
        return (0, size)
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # bytes=-N: the last N bytes
        start, end = max(size - int(last), 0), size
    else:
        start, end = int(first), min(int(last) + 1, size) if last else size
    return (start, end) if start < end else None


def _inside(path: str, folder: str) -> bool:
    return not folder or path.startswith(f"{folder}/")


def _file_entry(path: str, file: _File) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "file", "oid": file.blob_id, "size": len(file.content), "path": path}
    if file.sha256:
        entry["lfs"] = {"oid": file.sha256, "size": len(file.content), "pointerSize": _LFS_POINTER_SIZE}
    return entry


def _folder_entry(path: str, commit: _Commit) -> dict[str, Any]:
    inside = sorted((name, file.blob_id) for name, file in commit.files.items() if _inside(name, path))
    oid = hashlib.sha1(json.dumps(inside).encode()).hexdigest()
    return {"type": "directory", "oid": oid, "size": 0, "path": path}


def _sibling(name: str, file: _File, with_blobs: bool) -> dict[str, Any]:
    if not with_blobs:
        return {"rfilename": name}
    sibling: dict[str, Any] = {"rfilename": name, "blobId": file.blob_id, "size": len(file.content)}
    if file.sha256:
        # Unlike the tree API's "oid", model info names the LFS hash "sha256".
        sibling["lfs"] = {"sha256": file.sha256, "size": len(file.content), "pointerSize": _LFS_POINTER_SIZE}
    return sibling
