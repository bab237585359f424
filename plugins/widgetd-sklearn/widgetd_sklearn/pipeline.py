"""Predicting a value for each row of the tables a batch of requests sends, in one call to the model."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from widgetd.cancellation import abandoned
from widgetd.errors import InvalidInput
from widgetd.tasks._common import Cell, TabularInput

NUMERIC = "numeric"
TEXT = "text"


def column_kinds(columns: Sequence[str], example: dict[str, list[Any]]) -> dict[str, str | None]:
    """Whether each column holds numbers or text, from the example its author gave (None: not known)."""
    kinds: dict[str, str | None] = {}
    for name in columns:
        values = [value for value in example.get(name) or [] if value is not None]
        if values and all(_is_number(value) for value in values):
            kinds[name] = NUMERIC
        elif values and all(isinstance(value, str) for value in values):
            kinds[name] = TEXT
        else:
            kinds[name] = None
    return kinds


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class TabularPipeline:
    """One model, one task; the rows of every request in a batch go to the model together (a row's
    prediction never depends on the other rows) and come back split by request, in order."""

    def __init__(self, model: Any, task: str, columns: Sequence[str], kinds: dict[str, str | None]) -> None:
        self.model = model
        self.tasks = (task,)
        self.columns = tuple(columns) or tuple(str(name) for name in getattr(model, "feature_names_in_", ()))
        self.kinds = kinds
        self.answered_by = type(model).__name__

    def __call__(self, task: str, requests: Sequence[TabularInput]) -> list[list[Any] | None]:
        # A request given up (timeout, client gone) is skipped: nobody reads its answer.
        wanted = [not abandoned(request) for request in requests]
        tables = [self.table_of(request) for request, want in zip(requests, wanted) if want]
        predictions = iter(self.predict(tables) if tables else [])
        return [next(predictions) if want else None for want in wanted]

    def predict(self, tables: list[dict[str, list[Any]]]) -> list[list[Any]]:
        import pandas

        frame = pandas.concat([pandas.DataFrame(table) for table in tables], ignore_index=True)
        features = frame if hasattr(self.model, "feature_names_in_") else frame.to_numpy()
        try:
            predicted = np.asarray(self.model.predict(features))
        except (ValueError, TypeError) as error:
            raise InvalidInput(f"the model cannot read this table: {error}", field="table") from None
        answers, start = [], 0
        for table in tables:
            rows = len(next(iter(table.values())))
            answers.append(predicted[start:start + rows].tolist())
            start += rows
        return answers

    def table_of(self, request: TabularInput) -> dict[str, list[Any]]:
        """The request's columns in the model's order, numbers read from text where the column is numeric."""
        given, where = request.columns, request.where
        if not self.columns:
            return {name: [self.cell(name, value, None, where, row) for row, value in enumerate(cells)] for name, cells in given.items()}
        missing = [name for name in self.columns if name not in given]
        if missing:
            raise InvalidInput(
                f"{where}: the table lacks column {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                + f"; the model reads {list(self.columns)}",
                field=f"{where}.{missing[0]}",
            )
        extra = [name for name in given if name not in self.columns]
        if extra:
            raise InvalidInput(
                f"{where}: column {extra[0]!r} is not one the model reads; it reads {list(self.columns)}",
                field=f"{where}.{extra[0]}",
            )
        return {
            name: [self.cell(name, value, self.kinds.get(name), where, row) for row, value in enumerate(given[name])]
            for name in self.columns
        }

    def cell(self, column: str, value: Cell, kind: str | None, where: str, row: int) -> Any:
        if value is None:
            return math.nan
        if kind == TEXT:
            return value if isinstance(value, str) else str(value)
        if isinstance(value, str):
            number = _number(value)
            if number is not None:
                return number
            if kind == NUMERIC:
                raise InvalidInput(
                    f"{where}: column {column!r} holds numbers, but row {row} is {value[:40]!r}", field=f"{where}.{column}"
                )
            return value
        if isinstance(value, bool) and kind == NUMERIC:
            raise InvalidInput(f"{where}: column {column!r} holds numbers, but row {row} is {value}", field=f"{where}.{column}")
        return value


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
