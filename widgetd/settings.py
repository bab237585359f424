"""The server's settings: what ``widgetd serve``'s options, the environment and the config file decide."""

from __future__ import annotations

from dataclasses import dataclass, field

from widgetd.limits import Limits


@dataclass
class ServerSettings:
    api_key: str | None = None
    """The inference key (``--api-key``); see ``widgetd.keys`` for scopes."""
    admin_key: str | None = None
    """The admin key (``--admin-key``): loads, reloads and unloads models, and calls them."""
    keys_file: str | None = None
    """A TOML file of named keys with scopes (``--keys-file``), read again on SIGHUP."""
    log_format: str = "text"
    """``text`` (uvicorn's, for a person) or ``json`` (one object a line, for a log pipeline)."""
    otlp_endpoint: str | None = None
    """Where OpenTelemetry traces go (OTLP over HTTP); None: no tracing."""
    mcp: bool = True
    """Whether ``/mcp`` serves every model's tasks as MCP tools (``--no-mcp`` turns it off)."""
    mcp_origins: tuple[str, ...] = ()
    """Web origins whose pages may call ``/mcp`` besides loopback ones (``--mcp-origin``; ``*``: any)."""
    max_body_size: int = 50 * 1024 * 1024
    max_batch_size: int | None = None
    """None: each backend's own."""
    max_batch_wait: float = 0.0
    """Seconds every batch waits for company; 0 adapts (see ``widgetd.batching.GATHER_SHARE``)."""
    max_queue: int = 1024
    request_timeout: float = 300.0
    header_timeout: float = 10.0
    """Seconds a request's headers may take to arrive; an idle new connection is closed after them."""
    body_timeout: float = 60.0
    """Seconds a request's body may take to arrive once its headers have."""
    keep_alive_timeout: float = 5.0
    """Seconds an idle keep-alive connection stays open."""
    max_connections: int = 1000
    """Open connections at most; one more is answered 503 and closed."""
    shutdown_timeout: float = 30.0
    """Seconds running requests get to finish once the server is told to stop; the rest are answered 503."""
    limits: Limits = field(default_factory=Limits)
    """How much work one request may ask for."""
    trust_remote_code: bool = False
    """Whether code shipped in the models' repos may run (``--trust-remote-code``)."""
    runtime: str = "torch"
    """What runs the models (``--runtime``), on-demand ones too where their backend has it."""
    isolate: bool = False
    """Each model in a worker process of its own (``--isolate``), on-demand ones too."""
    allow_models: tuple[str, ...] = ()
    """Globs of Hub repo ids loaded on their first request (``--allow-model``)."""
    max_models: int | None = None
    """Models held at once; the least recently used idle on-demand one is unloaded to make room."""
    memory_budget: dict[str, int] = field(default_factory=dict)
    """Bytes models may hold per device (``cpu``, ``cuda:0``), per GPU (``cuda``) or on any (``*``)."""
