"""tabular-classification: a class for each row of a table (scikit-learn and similar models)."""

from __future__ import annotations

from typing import Union

from widgetd.tasks._common import TabularData, TabularInput, TableColumns
from widgetd.tasks._task import Task

TabularClassificationInput = TabularInput

Label = Union[str, int, float, bool]
"""One of the model's classes, as its own type: ``"setosa"``, or ``1`` for a model trained on numbers."""

TabularClassificationOutput = list[Label]
"""One label per row, in the rows' order (api-inference-community's answer)."""

TASK = Task(
    name="tabular-classification",
    summary="A class for each row of a table: one label per row, in order.",
    input=TabularClassificationInput,
    output=TabularClassificationOutput,
)

__all__ = ["Label", "TASK", "TableColumns", "TabularClassificationInput", "TabularClassificationOutput", "TabularData"]
