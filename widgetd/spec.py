"""The language-neutral contract: JSON Schemas and an OpenAPI document, generated from the Structs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import msgspec

from widgetd.tasks import Task

OPENAPI_FILE = "openapi.json"


def task_schemas(task: Task) -> dict[str, dict[str, Any]]:
    return {
        "input.json": _titled(task.request_schema(), f"{task.name} request"),
        "output.json": _titled(task.response_schema(), f"{task.name} response"),
    }


def _titled(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "description": description, **schema}


def openapi_document(tasks: Iterable[Task]) -> dict[str, Any]:
    """One path per task, ``/models/{model_id}/pipeline/{task}``, plus the service routes."""
    tasks = sorted(tasks, key=lambda task: task.name)
    types = [t for task in tasks for t in (task.input, task.wire_output) if t is not bytes]
    (_, components) = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    paths: dict[str, Any] = {
        "/health": {"get": _service_operation("Every model is loaded (503 while loading or after a failure)")},
        "/info": {"get": _service_operation("Served models and plugin versions")},
    }
    for task in tasks:
        paths[f"/models/{{model_id}}/pipeline/{task.name}"] = {"post": _task_operation(task)}
    return {
        "openapi": "3.1.0",
        "info": {"title": "widgetd", "version": _version()},
        "paths": paths,
        "components": {"schemas": components},
    }


def _version() -> str:
    import importlib.metadata

    return importlib.metadata.version("widgetd")


def _service_operation(summary: str) -> dict[str, Any]:
    return {"summary": summary, "responses": {"200": {"description": "OK"}}}


def _ref(type_: Any) -> dict[str, Any]:
    (schema,), _ = msgspec.json.schema_components([type_], ref_template="#/components/schemas/{name}")
    return schema


def _task_operation(task: Task) -> dict[str, Any]:
    request_content: dict[str, Any] = {"application/json": {"schema": _ref(task.input)}}
    if task.raw_body in ("audio", "image"):
        request_content[f"{task.raw_body}/*"] = {"schema": {"type": "string", "format": "binary"}}
    else:
        request_content["text/plain"] = {"schema": {"type": "string"}}
    if task.response_media == "audio":
        response_content = {"audio/*": {"schema": {"type": "string", "format": "binary"}}}
    else:
        response_content = {"application/json": {"schema": _ref(task.wire_output)}}
    error = {"description": "JSON {\"error\": message}"}
    return {
        "summary": task.summary,
        "operationId": task.name.replace("-", "_"),
        "parameters": [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": request_content},
        "responses": {
            "200": {"description": "The answer", "content": response_content},
            "400": error,
            "404": error,
            "413": error,
            "415": error,
            "503": error,
        },
    }


def render_spec(tasks: Iterable[Task]) -> dict[str, str]:
    """Every file of spec/ (except its README), by relative path, as text."""
    tasks = list(tasks)
    files = {}
    for task in tasks:
        for name, schema in task_schemas(task).items():
            files[f"{task.name}/{name}"] = _dump(schema)
    files[OPENAPI_FILE] = _dump(openapi_document(tasks))
    return files


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write_spec(tasks: Iterable[Task], folder: Path) -> list[str]:
    files = render_spec(tasks)
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return sorted(files)


def stale_spec_files(tasks: Iterable[Task], folder: Path) -> list[str]:
    """Files of ``folder`` that differ from what the Structs generate, or are missing."""
    stale = []
    for relative, text in render_spec(tasks).items():
        path = folder / relative
        if not path.is_file() or path.read_text() != text:
            stale.append(relative)
    return sorted(stale)
