"""Finding a model: a local folder, a model shipped in a package, or a Hub repo in the HF cache."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from huggingface_hub import HfApi, hf_hub_download, metadata_load, snapshot_download
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import (
    GatedRepoError,
    IncompleteSnapshotError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from widgetd.backends import Backend
from widgetd.errors import ModelResolutionError

CARD_FILE = "README.md"

log = logging.getLogger("widgetd")


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from and what its card and file list say, before any download."""

    model_id: str
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None
    path: Path | None = None
    files: tuple[str, ...] = ()
    card: Mapping[str, Any] = field(default_factory=dict)
    offline: bool = False
    """The Hub could not be asked: files come from the cache alone."""
    sizes: Mapping[str, int] = field(default_factory=dict)
    """Each file's size in bytes, where the Hub said."""

    @property
    def library(self) -> str | None:
        return self.card.get("library_name")

    @property
    def pipeline_tag(self) -> str | None:
        return self.card.get("pipeline_tag")


def split_revision(model_id: str) -> tuple[str, str | None]:
    repo_id, _, revision = model_id.partition("@")
    return repo_id, revision or None


def locate_model(model_id: str, bundled: Mapping[str, Path], *, hub_only: bool = False) -> ModelSource:
    """Read a model's card and file list: from disk, or from the Hub (the cache when offline). ``hub_only``:
    a repo id from a request, never read as a folder on this machine."""
    local = Path(model_id).expanduser()
    if not hub_only and local.is_dir():
        return _local_source(local.resolve().name, local.resolve())
    repo_id, revision = split_revision(model_id)
    if revision is None and repo_id in bundled:
        return _local_source(repo_id, bundled[repo_id])
    if hub_constants.HF_HUB_OFFLINE:
        return _cached_source(repo_id, revision, reason="HF_HUB_OFFLINE is set")
    try:
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise ModelResolutionError(_hub_refusal(repo_id, revision, error)) from None
    except Exception as error:
        # Unreachable, offline or failing: the cache may still hold the model, as
        # huggingface_hub itself assumes. The reason is shown if it does not.
        return _cached_source(repo_id, revision, reason=f"the Hub could not be asked ({error})")
    card = dict(info.card_data.to_dict()) if info.card_data else {}
    card.update({k: v for k, v in _top_level_card(info).items() if v})
    return ModelSource(
        model_id=repo_id,
        repo_id=repo_id,
        revision=revision,
        commit=info.sha,
        files=tuple(sibling.rfilename for sibling in info.siblings or ()),
        card=card,
        sizes={sibling.rfilename: sibling.size for sibling in info.siblings or () if sibling.size is not None},
    )


def _top_level_card(info: Any) -> dict[str, Any]:
    return {"library_name": info.library_name, "pipeline_tag": info.pipeline_tag}


def _hub_refusal(repo_id: str, revision: str | None, error: Exception) -> str:
    if isinstance(error, RevisionNotFoundError):
        return f"model {repo_id!r} has no revision {revision!r} on the Hub"
    if isinstance(error, GatedRepoError):
        return f"model {repo_id!r} is gated: accept its terms on the Hub and set HF_TOKEN"
    return (
        f"model {repo_id!r} was not found on the Hub "
        "(for a private or gated repo, set HF_TOKEN to a token that can read it)"
    )


def _local_source(model_id: str, path: Path) -> ModelSource:
    return ModelSource(
        model_id=model_id, path=path, files=tuple(_list_files(path)), card=_read_card(path)
    )


def _cached_source(repo_id: str, revision: str | None, *, reason: str) -> ModelSource:
    try:
        snapshot = Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except IncompleteSnapshotError as error:
        # Expected: only the files a backend needed were downloaded. fetch_model checks those.
        snapshot = Path(error.snapshot_path)
    except LocalEntryNotFoundError:
        raise ModelResolutionError(
            f"model {repo_id!r} is not in the Hugging Face cache ({hub_constants.HF_HUB_CACHE}) "
            f"and cannot be downloaded: {reason}"
        ) from None
    return ModelSource(
        model_id=repo_id,
        repo_id=repo_id,
        revision=revision,
        commit=snapshot.name,
        files=tuple(_list_files(snapshot)),
        card=_read_card(snapshot),
        offline=True,
    )


def _list_files(folder: Path) -> Iterable[str]:
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            yield relative.as_posix()


def _read_card(folder: Path) -> dict[str, Any]:
    card = folder / CARD_FILE
    if not card.is_file():
        return {}
    try:
        return metadata_load(card) or {}
    except Exception:
        # A broken card must not stop a model that --library/--task can still serve.
        return {}


def choose_backend(
    source: ModelSource, backends: Mapping[str, Backend], *, library: str | None = None
) -> Backend:
    """``library``'s backend, else one that serves repos like this whatever their card says (a custom
    handler's), else the card's library's, else one that recognizes the files."""
    if not library:
        for backend in backends.values():
            if backend.recognizes_first and backend.recognizes(source.files):
                return backend
    wanted = library or source.library
    if wanted:
        for backend in backends.values():
            if wanted in (backend.library, backend.name):
                return backend
        raise ModelResolutionError(
            f"model {source.model_id!r} needs library {wanted!r}, which no installed plugin serves "
            f"(installed backends serve: {_served_libraries(backends)}); {install_line(wanted)}"
        )
    for backend in backends.values():
        if backend.recognizes(source.files):
            return backend
    raise ModelResolutionError(
        f"model {source.model_id!r} names no library_name in its card and no installed plugin "
        f"recognizes its files; pass --library (installed: {_served_libraries(backends)})"
    )


PLUGIN_OF_LIBRARY = {
    "transformers": "widgetd-transformers",
    "sentence-transformers": "widgetd-sentence-transformers",
    "asteroid": "widgetd-asteroid",
    "endpoint-handler": "widgetd-endpoint-handler",
    "sklearn": "widgetd-sklearn",
    "diffusers": "widgetd-diffusers",
}
"""The plugins this repository ships, by the ``library_name`` they serve."""


def install_line(library: str) -> str:
    """What to install for a model of ``library``."""
    plugin = PLUGIN_OF_LIBRARY.get(library)
    if plugin:
        return f"install its plugin: pip install {plugin} (or, from a widgetd checkout, pip install plugins/{plugin})"
    return (
        f"install a plugin for it if its maintainers publish one (pip install widgetd-{library}), or write one: "
        f"widgetd new-plugin {library}"
    )


def _served_libraries(backends: Mapping[str, Backend]) -> str:
    libraries = sorted({backend.library for backend in backends.values()})
    return ", ".join(libraries) if libraries else "none (install a widgetd plugin)"


def choose_task(source: ModelSource, backend: Backend, *, task: str | None = None) -> str:
    """``task``, else the card's pipeline_tag, else what the backend infers, else its first task; one the
    backend does not serve becomes its ``fallback_task`` where it has one, else stops startup."""
    inferred = backend.infer_task(source.path) if backend.infer_task and source.path else None
    chosen = task or source.pipeline_tag or inferred or backend.tasks[0]
    if chosen == "conversational" and "conversational" not in backend.tasks and "text-generation" in backend.tasks:
        chosen = "text-generation"  # the Hub's old tag for chat models, whose engine answers conversational too
    if chosen not in backend.tasks and backend.fallback_task:
        log.warning(
            "model %s: task %r has no contract here; serving it as %r", source.model_id, chosen, backend.fallback_task
        )
        chosen = backend.fallback_task
    if chosen not in backend.tasks:
        raise ModelResolutionError(
            f"model {source.model_id!r} needs task {chosen!r}, but backend {backend.name!r} "
            f"serves only {list(backend.tasks)}"
        )
    return chosen


def fetch_model(source: ModelSource, backend: Backend, runtime: str = "torch") -> ModelSource:
    """Download the files the backend needs for ``runtime`` into the HF cache; a cached model downloads nothing."""
    if source.path is not None:
        return source
    wanted = sorted(set(backend.files_for(source.files, runtime)) | ({CARD_FILE} & set(source.files)))
    try:
        snapshot = snapshot_download(
            source.repo_id,
            # The requested revision, not the commit: so refs/<branch> is written and a later
            # offline start of the same model id resolves from the cache.
            revision=source.revision,
            allow_patterns=wanted,
            local_files_only=source.offline,
        )
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise ModelResolutionError(_hub_refusal(source.repo_id, source.revision, error)) from None
    except IncompleteSnapshotError:
        raise ModelResolutionError(
            f"the cached copy of {source.repo_id!r} lacks files that backend {backend.name!r} needs; "
            "start once with the Hub reachable to download them"
        ) from None
    return replace(source, path=Path(snapshot), commit=Path(snapshot).name)


def read_repo_text(source: ModelSource, name: str) -> str:
    """One small text file of the model (``requirements.txt``), downloaded alone into the HF cache."""
    try:
        if source.path is not None:
            return (source.path / name).read_text(encoding="utf-8")
        path = hf_hub_download(
            source.repo_id, name, revision=source.commit or source.revision, local_files_only=source.offline
        )
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ModelResolutionError(f"could not read {name} of model {source.model_id!r}: {error}") from None
    except Exception as error:
        raise ModelResolutionError(
            f"could not download {name} of model {source.model_id!r} ({type(error).__name__})"
        ) from None
