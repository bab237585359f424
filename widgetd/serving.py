"""Running the HTTP server: uvicorn with widgetd's connection limits and timeouts, and a graceful stop.

uvicorn closes idle keep-alive connections but waits forever for a request's headers or body, takes
any number of connections, answers what it cannot parse in plain text, and re-raises SIGTERM after
shutting down (exit status 143). ``GuardedHttp`` adds the missing limits and the JSON error contract;
``GracefulServer`` drains on SIGTERM and lets the process exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import json
import logging
import signal
import socket
import threading
from datetime import datetime, timezone
from typing import Any, Callable, ClassVar, Iterator

import msgspec
import uvicorn
from uvicorn.logging import AccessFormatter, DefaultFormatter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from widgetd.errors import WidgetdError, code_for_status
from widgetd.settings import ServerSettings

log = logging.getLogger("widgetd")

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 503: b"Service Unavailable"}


def uvicorn_config(app: Any, settings: ServerSettings, *, host: str, port: int, log_level: str) -> uvicorn.Config:
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        http=guarded_http(settings),
        timeout_keep_alive=settings.keep_alive_timeout,
        # A backstop only: widgetd answers what is still running 503 at its own shutdown timeout.
        timeout_graceful_shutdown=int(settings.shutdown_timeout) + 5,
        log_config=uvicorn_log_config(settings.log_format),
    )
    logging.getLogger("uvicorn.access").addFilter(QuietPolls())  # after uvicorn.Config, which sets up its loggers
    return config


# -- log lines --------------------------------------------------------------------------------------------

WIDGETD_LINE = "%(levelprefix)s %(name)s: %(message)s"
UVICORN_LINE = "%(levelprefix)s %(message)s"
ACCESS_LINE = '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'


def _with_request_id(line: str, record: logging.LogRecord) -> str:
    request_id = getattr(record, "request_id", None)
    return f"{line} [{request_id}]" if request_id else line


class TextFormatter(DefaultFormatter):
    """uvicorn's lines for a person, a request's id at the end of the lines written while serving it."""

    def format(self, record: logging.LogRecord) -> str:
        return _with_request_id(super().format(record), record)


class AccessTextFormatter(AccessFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return _with_request_id(super().format(record), record)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, request_id when serving a request, an
    access line's client, method, path and status, and a failure's traceback as ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", None):
            entry["request_id"] = record.request_id
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, _, status = record.args
            entry.update(client=client, method=method, path=path, status=status)
        if record.exc_info or record.exc_text:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def log_formatter(log_format: str, line: str = WIDGETD_LINE) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter(line)


def uvicorn_log_config(log_format: str) -> dict[str, Any]:
    """uvicorn's own logging setup, its lines in ``log_format``."""
    json_lines = log_format == "json"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {"()": JsonFormatter} if json_lines else {"()": TextFormatter, "fmt": UVICORN_LINE},
            "access": {"()": JsonFormatter} if json_lines else {"()": AccessTextFormatter, "fmt": ACCESS_LINE},
        },
        "handlers": {
            "default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
            "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


class CannotListen(WidgetdError):
    """The server cannot listen where it was told to (the port is taken, the address is not this machine's)."""


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` for uvicorn to serve on; a port in use says how to choose another."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise CannotListen(
                f"port {port} on {host} is already in use (another widgetd, or another server); "
                f"serve on another with --port, e.g. --port {port + 1}"
            ) from None
        raise CannotListen(f"cannot listen on {host}:{port}: {error.strerror}; check --host and --port") from None
    sock.set_inheritable(True)
    return sock


QUIET_PATHS = ("/health", "/metrics")
"""Polled by orchestrators and scrapers every few seconds: their access lines are DEBUG, not INFO."""


class QuietPolls(logging.Filter):
    """On uvicorn's access log: a poll of ``QUIET_PATHS`` is logged at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        path = str(args[2]).split("?")[0] if len(args) > 2 else ""
        if path not in QUIET_PATHS:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


def guarded_http(settings: ServerSettings) -> type[GuardedHttp]:
    return type("WidgetdHttp", (GuardedHttp,), {"limits": settings})


class GuardedHttp(HttpToolsProtocol):
    """uvicorn's httptools protocol with a time limit on reading each request's headers and body, a cap
    on open connections, and JSON errors for what it cannot parse."""

    limits: ClassVar[ServerSettings]
    _read_timer: asyncio.TimerHandle | None = None
    _reading = False
    """Whether a request has begun and not yet fully arrived."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("refused a connection: %d are open, the most this server holds", len(self.connections) - 1)
            self._answer_and_close(503, f"this server holds at most {self.limits.max_connections} connections; retry shortly", {"retry-after": "1"})
            return
        self._read_within(self.limits.header_timeout, "headers")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading = True
        if self._read_timer is None:
            self._read_within(self.limits.header_timeout, "headers")

    def on_headers_complete(self) -> None:
        self._stop_timer()
        super().on_headers_complete()
        if self._has_body():
            self._read_within(self.limits.body_timeout, "body")

    def on_message_complete(self) -> None:
        self._reading = False
        self._stop_timer()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._answer_and_close(400, f"the request is not valid HTTP/1.1 ({msg.rstrip('.')})")

    def _has_body(self) -> bool:
        headers = dict(self.headers or [])
        return headers.get(b"content-length", b"0") not in (b"0", b"") or b"transfer-encoding" in headers

    def _read_within(self, seconds: float, part: str) -> None:
        self._stop_timer()
        self._read_timer = self.loop.call_later(seconds, self._too_slow, part, seconds)

    def _stop_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _too_slow(self, part: str, seconds: float) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        answering = self.cycle is not None and self.cycle.response_started and not self.cycle.response_complete
        if not self._reading or answering:
            self.transport.close()  # an idle connection, or one already being answered: nothing to say
            return
        self._answer_and_close(408, f"the request's {part} did not arrive within {seconds:g} s")

    def _answer_and_close(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = msgspec.json.encode({"error": message})
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])]
        for name, value in {
            "content-type": "application/json",
            "content-length": str(len(body)),
            "x-error-message": message,
            "x-error-code": code_for_status(status),
            "connection": "close",
            **(headers or {}),
        }.items():
            lines.append(f"{name}: {value}\r\n".encode("latin-1", "replace"))
        self.transport.write(b"".join(lines) + b"\r\n" + body)
        self.transport.close()


class GracefulServer(uvicorn.Server):
    """uvicorn's server; SIGTERM or SIGINT first calls ``on_stop`` (widgetd stops taking requests and
    answers what is left 503 at its shutdown timeout), and the process then exits normally (0)."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_stop = on_stop

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: Any) -> None:
        if not self.should_exit:
            # A signal interrupts whatever runs, a request's task too: its lines are not that request's.
            contextvars.Context().run(self.on_stop)
        super().handle_exit(sig, frame)
