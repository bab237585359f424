"""``/mcp``: every served model's tasks as tools for agents, over MCP's Streamable HTTP transport.

A tool call is answered by the task route itself: it is sent through the server's own ASGI app as
``POST /models/{model_id}/pipeline/{task}`` with the caller's key, so the limits, batching, metrics, logs and
errors are the HTTP path's, and a call the client cancels is dropped as a client that hangs up is."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import re
from collections import Counter
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Iterable
from urllib.parse import urlsplit

import msgspec

from widgetd import __version__
from widgetd.errors import Forbidden

if TYPE_CHECKING:
    from widgetd.models import ServedModel
    from widgetd.state import ServerState
    from widgetd.tasks import Task

PATH = "/mcp"
MAX_NAME = 64
"""Tool names stay within what MCP clients accept (``[A-Za-z0-9_-]``, 64 characters for the strictest)."""
_UNNAMEABLE = re.compile(r"[^A-Za-z0-9_-]+")
FORWARDED_HEADERS = (b"authorization", b"x-request-id", b"traceparent", b"tracestate", b"user-agent")
"""What a tool call's task request keeps of the MCP request that carried it."""

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


class ModelTool(msgspec.Struct, frozen=True):
    name: str
    model: ServedModel
    task: Task


def tool_names(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """A valid, unique tool name for each (model id, task): ``task__repo-name``, the owner added only where two
    served models share a repo name, and a digest of the whole where a name would be too long."""
    pairs = list(pairs)
    short = {pair: _tool_name(pair[1], pair[0].rsplit("/", 1)[-1]) for pair in pairs}
    shared = {name for name, count in Counter(short.values()).items() if count > 1}
    return {pair: _tool_name(pair[1], pair[0]) if short[pair] in shared else short[pair] for pair in pairs}


def _tool_name(task: str, model_id: str) -> str:
    name = f"{task.replace('-', '_')}__{_UNNAMEABLE.sub('-', model_id.replace('/', '--')).strip('-')}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(f"{task} {model_id}".encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - len(digest) - 1]}-{digest}"


def served_tools(state: ServerState) -> list[ModelTool]:
    """Each task of each model the server holds, in any state (a loading one says so in its description)."""
    pairs = [(model, state.registry.task(name)) for model in state.models for name in (model.tasks or (model.task,)) if name in state.registry.tasks]
    names = tool_names((model.model_id, task.name) for model, task in pairs)
    return [ModelTool(names[(model.model_id, task.name)], model, task) for model, task in pairs]


def input_schema(task: Task) -> dict[str, Any]:
    """The task's request schema (``spec/<task>/input.json``) with its root object at the top, as MCP asks."""
    schema = task.request_schema()
    definitions = schema.get("$defs", {})
    if _root_name(schema) in definitions:
        return {**definitions[_root_name(schema)], "$defs": definitions}
    return {"type": "object", "properties": {"inputs": schema}, "required": ["inputs"]}


def output_schema(task: Task) -> dict[str, Any] | None:
    """The schema of a JSON answer as MCP's ``structuredContent``, always an object: an answer that is not one
    is wrapped as ``{"result": answer}`` (see ``structured``); None for media answers."""
    if task.response_media != "json":
        return None
    schema = task.response_schema()
    definitions = schema.pop("$defs", {})
    if _answers_object(task):
        return {**definitions[_root_name(schema)], "$defs": definitions}
    return {"type": "object", "properties": {"result": schema}, "required": ["result"], **({"$defs": definitions} if definitions else {})}


def structured(task: Task, answer: Any) -> dict[str, Any]:
    return answer if _answers_object(task) else {"result": answer}


def _answers_object(task: Task) -> bool:
    schema = task.response_schema()
    return schema.get("$defs", {}).get(_root_name(schema), {}).get("type") == "object"


def _root_name(schema: dict[str, Any]) -> str:
    return schema.get("$ref", "").rsplit("/", 1)[-1]


def description(model: ServedModel, task: Task) -> str:
    card = model.source.card
    facts = [f"{key}: {_listed(card[key])}" for key in ("library_name", "pipeline_tag", "language", "license", "base_model") if card.get(key)]
    state = "" if model.state == "ready" else f" The model is {model.state} now; a call waits for it or says when to retry."
    return f"{task.summary} Model {model.model_id}" + (f" ({'; '.join(facts)})." if facts else ".") + state


def _listed(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


class ModelTools:
    """The MCP server at ``/mcp``: its tools are ``served_tools``, a call is answered by ``app`` (the server's
    own ASGI app, set once it is built)."""

    def __init__(self, state: ServerState) -> None:
        from mcp.server import Server
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        self.state = state
        self.app: ASGIApp | None = None
        self.server = Server(
            "widgetd",
            version=__version__,
            instructions="Each tool is one task of one model this server serves; its input schema is the task's request.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )
        # A call's body is bounded as a task request's is (--max-body-size).
        self.sessions = StreamableHTTPSessionManager(app=self.server, max_request_body_size=state.settings.max_body_size)

    @asynccontextmanager
    async def running(self, _app: Any) -> AsyncIterator[None]:
        async with self.sessions.run():
            yield

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        from litestar import Request

        from widgetd.routes import require_key

        check_origin(_header(scope["headers"], b"origin"), self.state.settings.mcp_origins)
        require_key(Request(scope))  # the task routes' check: the same keys, scopes and audit lines
        await self.sessions.handle_request(scope, receive, send)

    async def _list_tools(self, _context: Any, _params: Any) -> Any:
        import mcp_types as types

        annotations = types.ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=tool.name,
                    title=f"{tool.task.name} with {tool.model.model_id}",
                    description=description(tool.model, tool.task),
                    input_schema=input_schema(tool.task),
                    output_schema=output_schema(tool.task),
                    annotations=annotations,
                )
                for tool in served_tools(self.state)
            ]
        )

    async def _call_tool(self, context: Any, params: Any) -> Any:
        from mcp.shared.exceptions import MCPError
        from mcp_types import INVALID_PARAMS

        tool = next((tool for tool in served_tools(self.state) if tool.name == params.name), None)
        if tool is None:
            raise MCPError(INVALID_PARAMS, f"no tool {params.name!r}; tools/list names those this server has")
        body = msgspec.json.encode(params.arguments or {})
        status, content_type, content = await self._task_request(tool, body, _request_headers(context))
        return tool_result(tool.task, status, content_type, content)

    async def _task_request(self, tool: ModelTool, body: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, str, bytes]:
        """The task route's answer to ``body``: status, content type and bytes. If the caller cancels, the route
        hears its client hang up (and drops the work) as an HTTP client's would."""
        assert self.app is not None, "ModelTools.app is set by create_app"
        path = f"/models/{tool.model.model_id}/pipeline/{tool.task.name}"
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
            "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0), "state": {},
        }
        hung_up = asyncio.Event()
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await hung_up.wait()
            return {"type": "http.disconnect"}

        answer: dict[str, Any] = {"status": 500, "content_type": "", "chunks": []}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["content_type"] = _header(message.get("headers", []), b"content-type")
            elif message["type"] == "http.response.body":
                answer["chunks"].append(message.get("body", b""))

        # Its own task: cancelling the caller must not cancel the route halfway (it would not clean up); the
        # route is told its client left instead, and finishes on its own.
        route = asyncio.ensure_future(self.app(scope, receive, send))
        try:
            await asyncio.shield(route)
        except asyncio.CancelledError:
            hung_up.set()
            raise
        return answer["status"], answer["content_type"], b"".join(answer["chunks"])


def tool_result(task: Task, status: int, content_type: str, content: bytes) -> Any:
    """The route's answer as MCP content: a client error as a tool error carrying the HTTP error body (message,
    field, request id); JSON as text and ``structuredContent``; images and audio as MCP image and audio content."""
    import mcp_types as types

    media_type = content_type.split(";")[0].strip().lower()
    if status >= 400:
        return types.CallToolResult(content=[types.TextContent(type="text", text=content.decode("utf-8", "replace"))], is_error=True)
    if media_type == "application/json":
        answer = msgspec.json.decode(content)
        return types.CallToolResult(content=[types.TextContent(type="text", text=content.decode())], structured_content=structured(task, answer))
    data = base64.b64encode(content).decode("ascii")
    if media_type.startswith("image/"):
        return types.CallToolResult(content=[types.ImageContent(type="image", data=data, mime_type=media_type)])
    if media_type.startswith("audio/"):
        return types.CallToolResult(content=[types.AudioContent(type="audio", data=data, mime_type=media_type)])
    if media_type.startswith("text/"):
        return types.CallToolResult(content=[types.TextContent(type="text", text=content.decode("utf-8", "replace"))])
    blob = types.BlobResourceContents(uri=f"widgetd://answers/{task.name}", mime_type=media_type or "application/octet-stream", blob=data)
    return types.CallToolResult(content=[types.EmbeddedResource(type="resource", resource=blob)])


def check_origin(origin: str, allowed: Iterable[str]) -> None:
    """MCP's defence against DNS rebinding: a browser page calls ``/mcp`` only from a loopback origin (local
    tools such as MCP Inspector) or one listed with ``--mcp-origin`` (``*``: any). A rebound page is the
    attacker's origin, under whatever name now points here; clients other than browsers send no Origin."""
    if not origin or "*" in allowed or _origin(origin) in {_origin(listed) for listed in allowed}:
        return
    host = urlsplit(origin).hostname or ""
    if host == "localhost" or host.endswith(".localhost") or _is_loopback_address(host):
        return
    raise Forbidden(
        f"Origin {origin!r} may not call /mcp: browser pages may call it only from loopback origins or those listed "
        "with --mcp-origin (DNS rebinding protection)",
        field="Origin",
    )


def _origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def _is_loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _request_headers(context: Any) -> list[tuple[bytes, bytes]]:
    """The headers of the MCP request that carried a call which its task request keeps (the key, the request id,
    the trace context)."""
    request = getattr(context, "request", None)
    headers = getattr(request, "headers", None) or {}
    return [(name, headers[name.decode()].encode("latin-1")) for name in FORWARDED_HEADERS if name.decode() in headers]


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str:
    return next((value.decode("latin-1") for key, value in headers if key.lower() == name), "")
