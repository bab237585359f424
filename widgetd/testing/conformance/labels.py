"""The labels a model answers with: where the kit finds them, and the rule that answers name no others."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

LABEL_FILES = (
    ("config.json", "id2label"),  # transformers
    ("config.json", "label_names"),  # timm
)
"""Where models keep their labels, in the order the kit looks."""


@dataclass(frozen=True)
class ModelLabels:
    """The labels a model may answer with, and where they came from (named in every failure about them)."""

    labels: frozenset[str]
    source: str

    @classmethod
    def given(cls, value: Any) -> ModelLabels | None:
        """What a ``model_labels`` fixture returned: ModelLabels, any iterable of labels, or None (not known)."""
        if value is None or isinstance(value, ModelLabels):
            return value
        if isinstance(value, str):
            raise TypeError("model_labels must be a collection of labels, not one string")
        return cls(frozenset(str(label) for label in value), "your model_labels fixture")


def labels_of_model(folder: Path | str | None) -> ModelLabels | None:
    """The labels a model folder names: config.json's ``id2label`` (transformers) or ``label_names`` (timm)."""
    for file_name, key in LABEL_FILES:
        try:
            found = json.loads((Path(folder) / file_name).read_text()).get(key)
        except (OSError, TypeError, ValueError, AttributeError):
            continue
        labels = _label_values(found)
        if labels:
            return ModelLabels(labels, f"{file_name}'s {key}")
    return None


def _label_values(found: Any) -> frozenset[str]:
    if isinstance(found, dict):
        return frozenset(str(label) for label in found.values())
    if isinstance(found, list):
        return frozenset(str(label) for label in found)
    return frozenset()


def where_labels_were_sought() -> str:
    return " or ".join(f"{file_name}'s {key}" for file_name, key in LABEL_FILES)


def missing_labels_message(model_id: str, task: str) -> str:
    return (
        f"{task}: the kit found no labels for model {model_id} (it looked for {where_labels_were_sought()}), so it "
        "cannot check that answers name the model's labels. Supply a `model_labels` fixture (scope='class') "
        "returning the labels your model answers with, e.g. `return my_model.label_names`"
    )


def unknown_labels(answer_labels: Iterable[str], allowed: frozenset[str]) -> list[str]:
    return [label for label in answer_labels if label not in allowed]
