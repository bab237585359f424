"""The widget page: what it needs to know about the served models, and when to show it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from widgetd.models import ServedModel
from widgetd.plugins import Registry

STATIC_FILES = Path(__file__).parent / "static"
_EXAMPLE_FIELDS = ("example_title", "text", "query", "context", "source_sentence", "sentences", "candidate_labels", "multi_class")


def wants_html(accept: str | None) -> bool:
    """A browser asks for text/html before JSON; API clients ask for JSON or anything."""
    accept = (accept or "").lower()
    if "text/html" not in accept:
        return False
    return "application/json" not in accept or accept.index("text/html") < accept.index("application/json")


@lru_cache(maxsize=1)
def widget_page() -> str:
    return (STATIC_FILES / "index.html").read_text(encoding="utf-8")


def widget_catalog(models: Sequence[ServedModel], registry: Registry, allowed: Sequence[str] = ()) -> dict[str, Any]:
    """The served models with their widget examples, each task's request schema, and the globs of the models
    the page may open on demand."""
    served_tasks = {name for model in models for name in (model.tasks or (model.task,))}
    return {
        "allowed": list(allowed),
        "models": [
            {**model.describe(), "examples": widget_examples(model.source.card)} for model in models
        ],
        "tasks": {
            name: {
                "summary": task.summary,
                "raw_body": task.raw_body,
                "response_media": task.response_media,
                "progress": task.progress,
                "request_schema": task.request_schema(),
            }
            for name, task in registry.tasks.items()
            if name in served_tasks
        },
    }


def example_table(table: Any) -> dict[str, list[str]] | None:
    """A table-question-answering or tabular example's table, its cells as text (YAML reads 36542 as a number)."""
    if not isinstance(table, dict) or not all(isinstance(cells, list) for cells in table.values()):
        return None
    return {str(column): [str(cell) for cell in cells] for column, cells in table.items()}


def widget_examples(card: Any) -> list[dict[str, Any]]:
    """The card's ``widget:`` examples, text fields only: remote ``src`` media is never fetched."""
    examples = card.get("widget") if hasattr(card, "get") else None
    if not isinstance(examples, list):
        return []
    kept = []
    for example in examples:
        if isinstance(example, dict):
            fields = {k: v for k, v in example.items() if k in _EXAMPLE_FIELDS and isinstance(v, (str, list, bool))}
            # structuredData: a tabular model's example rows, as the Hub's cards give them.
            table = example_table(example.get("table", example.get("structuredData")))
            if table:
                fields["table"] = table
            if fields:
                kept.append(fields)
    return kept
