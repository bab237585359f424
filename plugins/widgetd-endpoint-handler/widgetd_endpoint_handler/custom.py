"""custom: a handler's own JSON in and out, for handlers whose task widgetd has no contract for."""

from typing import Any

from widgetd import Task

TASK = Task(
    name="custom",
    summary="A custom handler's own request and answer: any JSON body (or raw bytes) in; JSON, an image or raw bytes out.",
    input=Any,
    output=Any,
    raw_body="any",
    response_media="any",
)
