"""OpenTelemetry traces (``--otlp-endpoint``, ``pip install 'widgetd[otel]'``): a span per request, continuing
the client's W3C ``traceparent``, with the model, task, runtime and status as attributes, and child spans for
decoding, the wait in the model's queue, the batch (with its size), the model's call, the generation (its
tokens summed up, not a span a token) and encoding.

Off by default, and then free: no middleware, ``span`` hands back one shared no-op context and the other
functions return at once. Work that runs on the model's thread for several requests at a time is timed there
(``_Pending``'s timestamps, a ``Generation``'s) and becomes spans of each request afterwards, in the request's
own context, with the times it happened. The standard ``OTEL_*`` variables are read by OpenTelemetry itself:
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ``OTEL_EXPORTER_OTLP_HEADERS``,
``OTEL_BSP_SCHEDULE_DELAY``, ...
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

from widgetd.errors import WidgetdError

_tracer: Any = None
"""The tracer, once ``start_tracing`` ran; None: tracing is off."""
_NOTHING = contextlib.nullcontext()


class TracingUnavailable(WidgetdError):
    """--otlp-endpoint was given and OpenTelemetry is not installed, or the endpoint is not a URL."""


def enabled() -> bool:
    return _tracer is not None


def traces_url(endpoint: str) -> str:
    """OTLP/HTTP's traces URL for ``endpoint``: a collector's base URL gets ``/v1/traces``, as
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` does; a URL with a path is taken as it is."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TracingUnavailable(f"--otlp-endpoint {endpoint!r} is not an http(s) URL; give the collector's OTLP/HTTP address, e.g. http://127.0.0.1:4318")
    return endpoint if parts.path.strip("/") else endpoint.rstrip("/") + "/v1/traces"


def start_tracing(endpoint: str, version: str) -> None:
    """Export this process's spans to the OTLP/HTTP collector at ``endpoint`` (batched, in the background)."""
    global _tracer
    url = traces_url(endpoint)
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise TracingUnavailable("--otlp-endpoint needs OpenTelemetry: pip install 'widgetd[otel]'") from None
    named = "OTEL_SERVICE_NAME" in os.environ or "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
    resource = Resource.create({"service.version": version, **({} if named else {"service.name": "widgetd"})})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("widgetd", version)


def span(name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A child span of the current one around a block of the request's own work (decoding, encoding)."""
    if _tracer is None:
        return _NOTHING
    return _tracer.start_as_current_span(name, attributes=_set(attributes))


def describe_request(**attributes: Any) -> None:
    """Attributes of the request's span, named ``widgetd.<name>`` (model, task, runtime, ...)."""
    if _tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attributes({f"widgetd.{name}": value for name, value in _set(attributes).items()})


def span_between(name: str, started_ns: int, ended_ns: int, **attributes: Any) -> None:
    """A finished child span of the current one, for work timed elsewhere (on the model's thread)."""
    if _tracer is None or not started_ns or not ended_ns:
        return
    _tracer.start_span(name, start_time=started_ns, attributes=_set(attributes)).end(end_time=max(started_ns, ended_ns))


def ns_since(perf_counter_then: float) -> int:
    """``time.perf_counter()``'s reading ``perf_counter_then`` as wall-clock nanoseconds, as spans take them."""
    return time.time_ns() - int((time.perf_counter() - perf_counter_then) * 1e9)


def _set(attributes: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in attributes.items() if value is not None}


# -- the request's span ----------------------------------------------------------------------------------

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


def traced(app: ASGIApp) -> ASGIApp:
    """``app`` with a server span around each HTTP request when tracing is on; ``app`` itself when it is off."""
    return _Traced(app) if _tracer is not None else app


class _Traced:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind, Status, StatusCode

        from widgetd.request_ids import REQUEST_ID

        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope.get("headers", [])}
        method, path = scope["method"], scope["path"]
        attributes = {"http.request.method": method, "url.path": path, "widgetd.request_id": REQUEST_ID.get()}
        with _tracer.start_as_current_span(
            f"{method} {path}", context=propagate.extract(headers), kind=SpanKind.SERVER, attributes=_set(attributes)
        ) as request_span:

            async def send_status(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status = message["status"]
                    request_span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        request_span.set_status(Status(StatusCode.ERROR))
                await send(message)

            await self.app(scope, receive, send_status)
            task = (getattr(request_span, "attributes", None) or {}).get("widgetd.task")
            if task:  # a name that does not grow with the models served: the model is an attribute
                request_span.update_name(f"{method} {task}")


# -- work timed on the model's thread --------------------------------------------------------------------


def batch_spans(queued_ns: int, started_ns: int, called_ns: int, returned_ns: int, ended_ns: int, batch_size: int) -> None:
    """A request's wait in its model's queue, then the batch it ran in, and the model's call within it."""
    span_between("queue", queued_ns, started_ns)
    span_between("batch", started_ns, ended_ns, **{"widgetd.batch_size": batch_size})
    span_between("model", called_ns, returned_ns)


def generation_span(generation: Any) -> None:
    """One span for a generation, however many tokens: when it began and ended, its tokens, how long the
    first took, and why it ended."""
    if _tracer is None:
        return
    first = generation.first_token_seconds
    try:
        prompt_tokens = generation.prompt_tokens
    except Exception:
        prompt_tokens = None
    span_between(
        "generate",
        ns_since(generation.started),
        time.time_ns(),
        **{
            "widgetd.prompt_tokens": prompt_tokens,
            "widgetd.generated_tokens": len(generation.tokens),
            "widgetd.first_token_ms": round(first * 1000, 3) if first is not None else None,
            "widgetd.finish_reason": generation.finish or ("error" if generation.error else "given up"),
        },
    )
