"""Errors with a meaning: each client error carries its HTTP status."""

from __future__ import annotations

import re


class WidgetdError(Exception):
    """Base of every error widgetd raises on purpose."""

    code = ""
    """The answer's ``X-Error-Code`` for an error a client gets (reference: ``error_codes()``)."""

    def __reduce__(self):
        # Errors cross processes (a Ray replica answers the ingress with one): rebuilt from their
        # message and attributes, whatever their constructor takes.
        return _rebuilt, (type(self), self.args, self.__dict__)


def _rebuilt(kind: type[WidgetdError], args: tuple, attributes: dict) -> WidgetdError:
    error = kind.__new__(kind)
    Exception.__init__(error, *args)
    error.__dict__.update(attributes)
    return error


class ClientError(WidgetdError):
    """The request is at fault; answered with ``status`` and the message, never a 500."""

    status = 400
    headers: dict[str, str] = {}
    """Headers the answer needs (e.g. ``Allow`` with a 405)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(ClientError):
    """The request is not one the task's contract allows, or the model cannot answer it (e.g. no mask
    token); ``field`` names the offending field."""

    status = 400
    code = "InvalidInput"


class UnsupportedMedia(ClientError):
    """Audio or image bytes that no decoder can read."""

    status = 415
    code = "UnsupportedMedia"


class NotFound(ClientError):
    """No such route, or a served model has no such route or task."""

    status = 404
    code = "NotFound"


class ModelNotFound(NotFound):
    """The model is not served here (and not allowed on demand); the code is the Hub's, which
    ``huggingface_hub`` turns into ``RepositoryNotFoundError``."""

    code = "RepoNotFound"


class TaskNotServed(NotFound):
    """The model is served, and does not serve the task the path names."""

    code = "TaskNotServed"


class MethodNotAllowed(ClientError):
    """The route exists; the method does not (the ``Allow`` header lists those that do)."""

    status = 405
    code = "MethodNotAllowed"

    def __init__(self, message: str, allow: str) -> None:
        super().__init__(message)
        self.headers = {"Allow": allow}


class Forbidden(ClientError):
    """The request is understood, and this server does not allow it (its admin API is off)."""

    status = 403
    code = "Forbidden"


class Conflict(ClientError):
    """The request is fine but the resource's state forbids it now (a model answering requests cannot be unloaded)."""

    status = 409
    code = "Conflict"


class PayloadTooLarge(ClientError):
    """The body, or what it decodes to (characters, items, audio seconds, pixels), is over a limit."""

    status = 413
    code = "PayloadTooLarge"


class Unauthorized(ClientError):
    """The server has an API key and the request did not send it as ``Authorization: Bearer``."""

    status = 401
    code = "Unauthorized"


class RequestTimedOut(ClientError):
    """No answer within the server's request timeout."""

    status = 504
    code = "RequestTimedOut"


class SlowRequest(ClientError):
    """The request's headers or body did not arrive within the server's ``--header-timeout`` or
    ``--body-timeout``; the connection is closed."""

    status = 408
    code = "SlowRequest"


class ServiceUnavailable(WidgetdError):
    """A transient state (a model loading, a full queue): the client should retry after ``retry_after`` seconds."""

    status = 503
    code = "ServiceUnavailable"
    details: dict = {}
    """More fields of the JSON answer (e.g. a loading model's ``estimated_time``)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelWorkerDied(ServiceUnavailable):
    """The model's worker process (``--isolate``) ended while answering, or is being started again."""

    code = "ModelWorkerDied"


class ClientGone(WidgetdError):
    """The client disconnected before its answer was ready; its work was dropped (logged as 499)."""

    status = 499
    code = "ClientClosedRequest"


class InvalidAnswer(WidgetdError):
    """A backend answered something its task's contract does not allow: a bug in the backend (a 500)."""

    status = 500
    code = "InvalidAnswer"

    def __init__(self, answered_by: str, task: str, problem: str, field: str = "answer") -> None:
        self.message = f"{answered_by} gave a {task} answer that breaks the task's contract at {field}: {problem}"
        super().__init__(self.message)
        self.answered_by, self.task, self.field = answered_by, task, field


class InternalError(WidgetdError):
    """Anything else: a bug, logged with its traceback (never sent)."""

    status = 500
    code = "InternalError"


def error_codes() -> list[type[WidgetdError]]:
    """Every error a client can get, in the order of their statuses."""
    found, pending = [], [WidgetdError]
    while pending:
        kind = pending.pop()
        pending.extend(kind.__subclasses__())
        if kind.code and kind.code not in {known.code for known in found}:
            found.append(kind)
    return sorted(found, key=lambda kind: (kind.status, kind.code))


def code_for_status(status: int) -> str:
    """The code of an error the web framework raised by status (an unknown route, a body over the limit)."""
    general = (kind for kind in error_codes() if kind.status == status and not _refines(kind))
    return next((kind.code for kind in general), "InternalError")


def _refines(kind: type[WidgetdError]) -> bool:
    base = kind.__base__
    return bool(base.code) and getattr(base, "status", None) == kind.status


class PluginError(WidgetdError):
    """A plugin cannot be loaded or registers something invalid; stops startup."""

    def __init__(self, plugin: str, problem: str) -> None:
        super().__init__(f"plugin {plugin!r}: {problem}")
        self.plugin = plugin


class ModelResolutionError(WidgetdError):
    """A model cannot be found, fetched or matched to an installed backend."""


class RuntimeNotInstalled(ModelResolutionError):
    """``--runtime`` names a runtime whose library is not installed; the message gives the install line."""


_DIRECTORIES = re.compile(r"(?:[A-Za-z]:\\|/)(?:[^\s'\"/\\]+[/\\])+")
_TRACEBACK = re.compile(r"^[ \t]*(?:Traceback \(most recent call last\)|Original traceback|File \")", re.MULTILINE)
"""Where a message goes on with a traceback (torch.compile's, a Ray task's, a subprocess's errors carry one)."""
UPSTREAM_MODULES = ("huggingface_hub", "httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3")
"""Where errors carrying a remote server's answer come from."""


def told_to_clients(error: Exception) -> str:
    """An error as a client without the API key may read it: what failed, not where on this machine
    (absolute paths keep only their last part, a traceback in the message is cut), and nothing a remote
    server answered."""
    module = type(error).__module__ or ""
    if module.split(".")[0] in UPSTREAM_MODULES or isinstance(error, ModelResolutionError):
        return f"{type(error).__name__}: fetching the model failed; the server's log says why"
    message = str(error)
    traceback = _TRACEBACK.search(message)
    if traceback is not None:
        message = message[: traceback.start()].rstrip() + " (traceback in the server's log)"
    return f"{type(error).__name__}: {_DIRECTORIES.sub('…/', message)}"
