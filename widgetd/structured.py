"""Structured outputs: what a generation's text must be, from OpenAI's ``response_format`` and TGI's ``grammar``.

The core only says what is asked (a ``Constraint``); an engine that can constrain its tokens (``constrains``
true, e.g. the transformers plugin's, with llguidance) applies it to each sequence at each step, so that
constrained and free sequences share a batch. An engine that cannot is never handed one: the request is a
400 naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from widgetd.errors import InvalidInput


@dataclass(frozen=True)
class Constraint:
    """The text is JSON (fitting ``schema``; any JSON object when ``schema`` is None) or matches ``pattern``."""

    kind: Literal["json", "regex"]
    field: str
    """Where the request asked for it, for errors (``response_format``, ``parameters.grammar``, ``tool_choice``)."""
    schema: dict[str, Any] | None = None
    pattern: str | None = None


ANY_JSON_OBJECT = {"type": "object"}


def from_response_format(response_format: Any) -> Constraint | None:
    """OpenAI's ``response_format``: ``text`` (nothing asked), ``json_object``, or ``json_schema`` with its
    ``schema`` (``strict`` or not, the answer fits it: widgetd never gives less than strict); or TGI's
    ``{"type": "json" | "regex", "value": ...}`` and ``{"type": "json_object", "value": <schema>}``."""
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object" and isinstance(response_format.value, dict):
        # TGI's (and huggingface_hub's hf-inference provider's) way to send a schema.
        return Constraint("json", "response_format.value", response_format.value)
    if response_format.type == "json_object":
        return Constraint("json", "response_format", ANY_JSON_OBJECT)
    if response_format.type in ("json", "regex"):
        return _tgi_constraint(response_format.type, response_format.value, "response_format.value")
    json_schema = response_format.json_schema
    if json_schema is None:
        raise InvalidInput("response_format.json_schema: required when type is json_schema", field="response_format.json_schema")
    schema = json_schema.schema if json_schema.schema is not None else ANY_JSON_OBJECT
    return Constraint("json", "response_format.json_schema.schema", schema)


def from_tgi_grammar(grammar: dict[str, Any] | None) -> Constraint | None:
    """TGI's ``parameters.grammar``: ``{"type": "json", "value": <schema>}`` or ``{"type": "regex", "value": <pattern>}``."""
    if grammar is None:
        return None
    kind = grammar.get("type")
    if kind not in ("json", "regex"):
        raise InvalidInput(f"parameters.grammar.type: {kind!r} is not one of 'json', 'regex'", field="parameters.grammar.type")
    return _tgi_constraint(kind, grammar.get("value"), "parameters.grammar.value")


def _tgi_constraint(kind: str, value: Any, field: str) -> Constraint:
    """TGI's grammar: a JSON schema (an object, or its JSON text) or a regular expression."""
    if kind == "json" and isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError:
            raise InvalidInput(f"{field}: not a JSON schema (it does not parse as JSON)", field=field) from None
    if kind == "json" and isinstance(value, dict):
        return Constraint("json", field, value)
    if kind == "regex" and isinstance(value, str):
        return Constraint("regex", field, pattern=value)
    raise InvalidInput(f"{field}: a {kind} grammar takes a {'JSON schema' if kind == 'json' else 'pattern'}", field=field)


def refuse_unconstrained(engine: Any, constraint: Constraint | None) -> None:
    """A 400 naming the field when ``engine`` cannot apply ``constraint``."""
    if constraint is not None and not getattr(engine, "constrains", False):
        raise InvalidInput(f"{constraint.field}: this model's engine does not constrain its output (structured outputs are not served for it)", field=constraint.field)
