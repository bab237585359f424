"""table-question-answering: the cells of a table that answer a question, and how to aggregate them (TAPAS)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional

import msgspec

from widgetd.tasks._common import NonEmptyText
from widgetd.tasks._task import Answer, Strict, Task

Table = Annotated[dict[str, list[str]], msgspec.Meta(min_length=1)]
"""Columns by name, each a list of cells, all as long; a row is the cells at one index."""


class TableQuestionAnsweringInputData(Strict):
    table: Table
    question: Optional[NonEmptyText] = None
    query: Optional[NonEmptyText] = None
    """The Python client's name for ``question``; a request gives one of the two."""

    def __post_init__(self) -> None:
        # msgspec reports a ValueError here as a 400 at `inputs`.
        if (self.question is None) == (self.query is None):
            raise ValueError("give the question as `question` or `query` (one of them)")
        lengths = {len(cells) for cells in self.table.values()}
        if len(lengths) > 1:
            raise ValueError(f"every column of `table` must hold as many cells; they hold {sorted(lengths)}")
        if lengths == {0}:
            raise ValueError("`table` has no rows")

    @property
    def asked(self) -> str:
        return self.question if self.question is not None else self.query  # type: ignore[return-value]


class TableQuestionAnsweringParameters(Strict):
    padding: Literal["do_not_pad", "longest", "max_length"] = "do_not_pad"
    """Accepted for the clients' sake; one table is read alone, so padding changes nothing."""
    sequential: bool = False
    """Accepted for the clients' sake: a request asks one question, so there is nothing to sequence."""
    truncation: bool = False
    """True: rows that do not fit the model are dropped; False: such a table is a 400."""
    model: Optional[str] = None
    """Ignored: the Python client sends the model it was called with here."""


class TableQuestionAnsweringInput(Strict):
    inputs: TableQuestionAnsweringInputData
    parameters: TableQuestionAnsweringParameters = msgspec.field(default_factory=TableQuestionAnsweringParameters)


class TableQuestionAnsweringOutput(Answer):
    answer: str
    """The cells joined by ", ", after ``"{aggregator} > "`` when the aggregator is not NONE."""
    coordinates: list[Annotated[list[int], msgspec.Meta(min_length=2, max_length=2)]]
    """[row, column] of each answer cell, counted from 0 (the header is no row)."""
    cells: list[str]
    """The values at ``coordinates``, in order."""
    aggregator: str = "NONE"
    """How the cells answer: NONE (they are the answer), SUM, AVERAGE, COUNT, ...; NONE from models
    that do not aggregate."""


TASK = Task(
    name="table-question-answering",
    summary="The cells of a table that answer a question, and their aggregator.",
    input=TableQuestionAnsweringInput,
    output=TableQuestionAnsweringOutput,
)

__all__ = [
    "TASK",
    "TableQuestionAnsweringInput",
    "TableQuestionAnsweringInputData",
    "TableQuestionAnsweringOutput",
    "TableQuestionAnsweringParameters",
]
