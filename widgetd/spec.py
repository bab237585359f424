"""The language-neutral contract: JSON Schemas and an OpenAPI document, generated from the Structs."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import msgspec

import widgetd
from widgetd.tasks import ROUTE_CONTRACTS, RouteContract, Task

if TYPE_CHECKING:
    from widgetd.models import ServedModel

OPENAPI_FILE = "openapi.json"
REF = "#/components/schemas/{name}"


def task_schemas(task: Task) -> dict[str, dict[str, Any]]:
    schemas = {
        "input.json": _titled(task.request_schema(), f"{task.name} request"),
        "output.json": _titled(task.response_schema(), f"{task.name} response"),
    }
    if task.stream_output is not None:
        how = "Accept: text/event-stream" if task.progress else "stream: true"
        schemas["stream_output.json"] = _titled(msgspec.json.schema(task.stream_output), f"{task.name}: each server-sent event's data when a request asks for {how}")
    return schemas


def _titled(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "description": description, **schema}


def openapi_document(tasks: Iterable[Task]) -> dict[str, Any]:
    """The contract of every task: ``POST /models/{model_id}/pipeline/{task}`` each, and the service routes."""
    tasks = sorted(tasks, key=lambda task: task.name)
    paths: dict[str, Any] = dict(SERVICE_PATHS)
    model_id = [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}]
    for task in tasks:
        path = f"/models/{{model_id}}/pipeline/{task.name}"
        paths[path] = {"post": _task_operation(path, [task], task.summary, model_id)}
    for route in ROUTE_CONTRACTS:
        paths[route.path] = {route.method: _route_operation(route.path, route, [])}
        path = f"/models/{{model_id}}{route.path}"
        paths[path] = {route.method: _route_operation(path, route, model_id)}
    return _document(paths, tasks, ROUTE_CONTRACTS)


def served_openapi_document(models: Sequence[ServedModel], tasks: Mapping[str, Task]) -> dict[str, Any]:
    """What one server answers: a path for each served model and each task it serves, its default
    route (which answers the model's other tasks too, by the body's shape) and the service routes."""
    paths: dict[str, Any] = dict(SERVICE_PATHS)
    used: dict[str, Task] = {}
    for position, model in enumerate(models):
        served = [tasks[name] for name in model.tasks if name in tasks]
        used.update({task.name: task for task in served})
        summary = f"{model.model_id}: {model.task}, or another of its tasks that the body fits"
        if position == 0:
            paths["/"] = {**SERVICE_PATHS["/"], "post": _task_operation("/", served, summary, [])}
            paths["/predict"] = {"post": _task_operation("/predict", served, f"{summary} (Inference Endpoints' name for POST /)", [])}
        path = f"/models/{model.model_id}"
        paths[path] = {"get": _service_operation("The model, as /info describes it", ("200", "401")), "post": _task_operation(path, served, summary, [])}
        paths[f"/models/{model.model_id}/health"] = {"get": _service_operation("The model is loaded", ("200", "503"))}
        paths[f"/models/{model.model_id}/info"] = {"get": _service_operation("The model, its task, backend and device", ("200", "401"))}
        for task in served:
            path = f"/models/{model.model_id}/pipeline/{task.name}"
            paths[path] = {"post": _task_operation(path, [task], task.summary, [])}
    routes = [route for route in ROUTE_CONTRACTS if any(_serves(model, route) for model in models)]
    for route in routes:
        paths[route.path] = {route.method: _route_operation(route.path, route, [])}
        for model in models:
            if _serves(model, route):
                path = f"/models/{model.model_id}{route.path}"
                paths[path] = {route.method: _route_operation(path, route, [])}
    return _document(paths, used.values(), routes)


def _serves(model: ServedModel, route: RouteContract) -> bool:
    """Whether ``model`` answers OpenAI's ``route``: chat for the models that chat, embeddings for those
    that embed; every model is in the model list."""
    if route.name == "chat-completion":
        return model.chat
    if route.name == "embeddings":
        return "feature-extraction" in model.tasks
    return True


def _route_operation(path: str, route: RouteContract, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    response: dict[str, Any] = {"application/json": {"schema": _ref(route.output)}}
    if route.stream_output is not None:
        response["text/event-stream"] = _event_stream(route.stream_output)
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.method + re.sub(r"[^A-Za-z0-9]+", "_", path).rstrip("_"),
        "parameters": parameters,
        "responses": {
            "200": {"description": "The answer", "content": response},
            **{status: {"description": HTTP_STATUSES[status]} for status in ("400", "401", "404", "413", "503", "504")},
        },
    }
    if route.input is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(route.input)}}}
    return operation


def _event_stream(event: Any) -> dict[str, Any]:
    """Server-sent events, as each event is read (its ``data`` field): one ``event`` as JSON each, the
    last ``[DONE]``."""
    data = {"type": "string", "description": f"{event.__name__} as JSON; [DONE] in the last event"}
    return {"schema": {"type": "object", "required": ["data"], "properties": {"data": data}}}


def _document(paths: dict[str, Any], tasks: Iterable[Task], routes: Iterable[RouteContract] = ()) -> dict[str, Any]:
    types = [t for task in tasks for t in (task.input, task.wire_output) if t is not bytes]
    types += [t for route in routes for t in (route.input, route.output, route.stream_output) if t is not None]
    (_, components) = msgspec.json.schema_components(types, ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "widgetd", "version": widgetd.__version__},
        "paths": paths,
        "components": {"schemas": components},
    }


HTTP_STATUSES = {
    "200": "OK",
    "400": "Invalid request: JSON {\"error\": message, \"field\": path, \"request_id\": id}",
    "401": "No key, or one this server does not know",
    "404": "No such model or task",
    "413": "The body, a text, a list, the audio, the image or the answer is over this server's limits",
    "415": "Audio or an image no decoder reads",
    "503": "The model is loading, failed to load or is overloaded, or the server is stopping (Retry-After)",
    "504": "No answer within the request timeout",
}


def _service_operation(summary: str, statuses: Sequence[str] = ("200",)) -> dict[str, Any]:
    return {"summary": summary, "responses": {status: {"description": HTTP_STATUSES[status]} for status in statuses}}


SERVICE_PATHS = {
    "/": {"get": _service_operation("The served models as JSON, or the widget page for a browser")},
    "/health": {"get": _service_operation("ok when every model serves, degraded while some do; 503 when none does", ("200", "503"))},
    "/info": {"get": _service_operation("Served models, plugin versions and the server's limits", ("200", "401"))},
    "/metrics": {"get": _service_operation("Prometheus metrics", ("200", "401"))},
}


def _ref(type_: Any) -> dict[str, Any]:
    (schema,), _ = msgspec.json.schema_components([type_], ref_template=REF)
    return schema


def _task_operation(path: str, tasks: Sequence[Task], summary: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """``POST path``, answering ``tasks`` (the first when a body fits several)."""
    request_content: dict[str, Any] = {}
    for task in tasks:
        for content_type, schema in request_bodies(task).items():
            request_content.setdefault(content_type, []).append(schema)
    answers = [_ref(task.wire_output) for task in tasks if task.response_media in ("json", "any")]
    response_content: dict[str, Any] = {"application/json": {"schema": _any_of(answers)}} if answers else {}
    for kind in ("audio", "image"):
        if any(task.response_media in (kind, "any") for task in tasks):
            response_content[f"{kind}/*"] = {"schema": {"type": "string", "format": "binary"}}
    if any(task.response_media == "any" for task in tasks):
        response_content["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
    for task in tasks:
        if task.stream_output is not None:
            response_content["text/event-stream"] = _event_stream(task.stream_output)
    return {
        "summary": summary,
        "operationId": "post" + re.sub(r"[^A-Za-z0-9]+", "_", path).rstrip("_"),  # unique: one per path
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "content": {kind: {"schema": _any_of(schemas)} for kind, schemas in request_content.items()},
        },
        "responses": {
            "200": {"description": "The answer", "content": response_content},
            **{status: {"description": HTTP_STATUSES[status]} for status in ("400", "401", "404", "413", "415", "503", "504")},
        },
    }


def request_bodies(task: Task) -> dict[str, dict[str, Any]]:
    """What a request body may be, by content type: the task's request, and the bare forms
    api-inference-community also read (its ``inputs`` alone; for text, any JSON scalar read as text;
    raw text or raw audio and image bytes)."""
    if task.raw_body == "any":
        return {"application/json": {}, "application/octet-stream": {"type": "string", "format": "binary", "minLength": 1}}
    (request,), components = msgspec.json.schema_components([task.input], ref_template=REF)
    struct = components[request["$ref"].rsplit("/", 1)[1]]
    inputs = struct["properties"]["inputs"]
    bare_is_whole = set(struct.get("required", [])) <= {"inputs"}
    if task.raw_body in ("audio", "image"):
        return {
            "application/json": request,
            f"{task.raw_body}/*": {"type": "string", "format": "binary", "minLength": 1},
        }
    if not bare_is_whole:
        return {"application/json": request}
    takes_text = inputs.get("type") == "string" or {"type": "string"} in inputs.get("anyOf", [])
    bare = [inputs, {"type": ["number", "boolean", "null"]}] if takes_text else [inputs]
    bodies = {"application/json": {"anyOf": [request, *bare]}}
    if takes_text:
        bodies["text/plain"] = {"type": "string", "minLength": 1}
    return bodies


def _any_of(schemas: Sequence[dict[str, Any]]) -> dict[str, Any]:
    unique = [schema for position, schema in enumerate(schemas) if schema not in schemas[:position]]
    return unique[0] if len(unique) == 1 else {"anyOf": unique}


def render_spec(tasks: Iterable[Task]) -> dict[str, str]:
    """Every file of spec/ (except its README), by relative path, as text."""
    tasks = list(tasks)
    files = {}
    for task in tasks:
        for name, schema in task_schemas(task).items():
            files[f"{task.name}/{name}"] = _dump(schema)
    for route in ROUTE_CONTRACTS:
        for name, schema in route.schemas().items():
            files[f"{route.name}/{name}"] = _dump(_titled(schema, f"{route.name} {name.removesuffix('.json').replace('_', ' ')} ({route.path})"))
    files[OPENAPI_FILE] = _dump(openapi_document(tasks))
    return files


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(_with_clean_descriptions(document), indent=2, sort_keys=True) + "\n"


def _with_clean_descriptions(value: Any) -> Any:
    """Descriptions (the Structs' docstrings) without their source indentation, whichever msgspec wrote them:
    msgspec 0.23 dedents docstrings, 0.22 kept them as written; spec/ must not depend on which one is installed."""
    if isinstance(value, dict):
        return {
            key: inspect.cleandoc(item) if key == "description" and isinstance(item, str) else _with_clean_descriptions(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_with_clean_descriptions(item) for item in value]
    return value


def write_spec(tasks: Iterable[Task], folder: Path) -> list[str]:
    files = render_spec(tasks)
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return sorted(files)


def installed_schemas() -> Path:
    """The JSON Schemas installed with widgetd (``spec/`` of the repository, shipped as ``widgetd/schemas``)."""
    import widgetd
    from widgetd.errors import WidgetdError

    folder = Path(widgetd.__file__).parent / "schemas"
    if not folder.is_dir():
        raise WidgetdError("widgetd.schemas is not installed: this widgetd runs from a source folder; check its spec/ with --out")
    return folder


def stale_spec_files(tasks: Iterable[Task], folder: Path) -> list[str]:
    """Files of ``folder`` that differ from what the Structs generate, or are missing."""
    stale = []
    for relative, text in render_spec(tasks).items():
        path = folder / relative
        if not path.is_file() or path.read_text() != text:
            stale.append(relative)
    return sorted(stale)
