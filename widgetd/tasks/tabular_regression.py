"""tabular-regression: a number for each row of a table (scikit-learn and similar models)."""

from __future__ import annotations

from widgetd.tasks._common import TabularData, TabularInput, TableColumns
from widgetd.tasks._task import Task

TabularRegressionInput = TabularInput

TabularRegressionOutput = list[float]
"""One prediction per row, in the rows' order (api-inference-community's answer)."""

TASK = Task(
    name="tabular-regression",
    summary="A number for each row of a table: one prediction per row, in order.",
    input=TabularRegressionInput,
    output=TabularRegressionOutput,
)

__all__ = ["TASK", "TableColumns", "TabularData", "TabularRegressionInput", "TabularRegressionOutput"]
