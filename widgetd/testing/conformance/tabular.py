"""Tabular classification and regression: one answer per row, each row answered as if alone, columns
matched by name, and every mistake about a column a 4xx that names it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import strategies as st

from widgetd.testing.conformance.base import LabelledTests, Served, TaskTests
from widgetd.testing.conformance.exchange import Call
from widgetd.testing.conformance.rules import ContractViolation, expect, finite

Table = dict[str, list[Any]]


def example_table_of_model(folder: Path | str | None) -> Table | None:
    """config.json's ``sklearn.example_input``: the rows a Hub sklearn repo gives as its example."""
    try:
        example = json.loads((Path(folder) / "config.json").read_text()).get("sklearn", {}).get("example_input")
    except (OSError, TypeError, ValueError, AttributeError):
        return None
    return example if isinstance(example, dict) and example else None


def rows_of(table: Table) -> int:
    return len(next(iter(table.values())))


def row(table: Table, index: int) -> Table:
    return {name: [cells[index]] for name, cells in table.items()}


def as_text(table: Table) -> Table:
    """Every cell as the Python client sends it: text, numbers written out."""
    return {name: [None if cell is None else str(cell) for cell in cells] for name, cells in table.items()}


def reordered(table: Table, order: list[int]) -> Table:
    return {name: [cells[index] for index in order] for name, cells in table.items()}


def spec_form(table: Table) -> Call:
    return Call({"inputs": {"data": table}})


def client_form(table: Table) -> Call:
    """``InferenceClient.tabular_classification``'s body."""
    return Call({"table": table, "parameters": {}})


def _table_of(call: Call) -> Table:
    body = call.body
    return body["table"] if "table" in body else body["inputs"]["data"]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class TabularTests(TaskTests):
    """What both tabular tasks share; supply ``model_table`` (valid rows) where config.json has no
    ``sklearn.example_input``."""

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def _table(cls, model_table, served) -> None:
        if not model_table:
            pytest.fail(
                f"{served.task.name}: the kit found no example rows for model {served.model.model_id} (it looked for "
                "config.json's sklearn.example_input). Supply a `model_table` fixture (scope='class') returning a few "
                "valid rows as {column: [values]}, every column your model reads",
                pytrace=False,
            )
        cls.table = {name: list(cells) for name, cells in model_table.items()}

    table: ClassVar[Table]

    @pytest.fixture
    def examples(self) -> list[Call]:
        table = self.table
        return [
            spec_form(table),
            client_form(as_text(table)),
            spec_form(row(table, 0)),
            spec_form(reordered(table, list(reversed(range(rows_of(table)))))),
            spec_form(dict(reversed(list(table.items())))),
        ]

    @pytest.fixture
    def varied_inputs(self) -> list[Call]:
        return [spec_form(row(self.table, index)) for index in range(rows_of(self.table))]

    @pytest.fixture
    def edge_cases(self) -> list[Call]:
        table, first = self.table, next(iter(self.table))
        many = reordered(table, [index % rows_of(table) for index in range(2000)])
        return [
            spec_form(many),
            spec_form({name: [None] for name in table}),
            spec_form({name: [""] for name in table}),
            spec_form({name: ["1e309"] for name in table}),
            spec_form({**table, first: ["?"] * rows_of(table)}),
            Call({"inputs": {"data": {}}}),
            Call({"table": {name: [] for name in table}}),
        ]

    @pytest.fixture
    def valid_requests(self) -> st.SearchStrategy[Call]:
        """Rows made of the example's own cells, in any number and column order, as numbers or as text."""
        table = self.table
        columns = {name: st.sampled_from(cells) for name, cells in table.items()}
        rows = st.lists(st.fixed_dictionaries(columns), min_size=1, max_size=8)
        names = st.permutations(list(table))

        def call(chosen: list[dict[str, Any]], order: list[str], text: bool, form: bool) -> Call:
            built = {name: [entry[name] for entry in chosen] for name in order}
            built = as_text(built) if text else built
            return client_form(built) if form else spec_form(built)

        return st.builds(call, rows, names, st.booleans(), st.booleans())

    def check_answer(self, call: Call, answer: Any) -> None:
        expected = rows_of(_table_of(call))
        expect(len(answer) == expected, f"one answer per row: the table has {expected} rows, the answer {len(answer)} entries")

    # -- rules -----------------------------------------------------------------------------------

    def test_each_row_is_answered_as_if_alone(self, served):
        """Row i's answer is what that row gets alone, and the rows reversed get their answers reversed (a row's
        prediction depends on nothing else in the table)."""
        table = self.table
        whole = served.send(spec_form(table)).json()
        for index in range(rows_of(table)):
            alone = self.answer(served, spec_form(row(table, index))).json()
            self.expect_close(served, whole[index], alone[0], f"row {index}'s answer in the table differs from its answer alone")
        backwards = self.answer(served, spec_form(reordered(table, list(reversed(range(rows_of(table))))))).json()
        for index, value in enumerate(reversed(backwards)):
            self.expect_close(served, whole[index], value, f"the rows reversed did not get their answers reversed (row {index})")

    def test_columns_are_matched_by_name(self, served):
        """A client's JSON object may list the columns in any order: the answers must not change."""
        table = self.table
        straight = self.answer(served, spec_form(table)).json()
        for order in (list(reversed(table)), sorted(table), sorted(table, reverse=True)):
            call = spec_form({name: table[name] for name in order})
            reply = served.send(call)
            expect(reply.status == 200, f"{served.task.name}: the columns in the order {order} were refused ({reply.status}: {reply.error}); a client may list them in any order")
            shuffled = self.decode(served.task, call, reply)
            for index, (one, other) in enumerate(zip(straight, shuffled)):
                self.expect_close(served, one, other, f"the columns in the order {order} changed row {index}'s answer; a client may list them in any order")

    def test_text_cells_read_as_numbers(self, served):
        """The Python client sends every cell as text ("4.5"): the answers are those of the numbers."""
        numbers = self.answer(served, spec_form(self.table)).json()
        text = self.answer(served, client_form(as_text(self.table))).json()
        for index, (one, other) in enumerate(zip(numbers, text)):
            self.expect_close(served, one, other, f"row {index} sent as text got another answer than as numbers")

    def test_column_mistakes_are_client_errors_naming_the_column(self, served):
        """A missing column, an unknown one and text in a numeric one are 4xx naming the column; columns of
        unequal length are 4xx too (the server names the shortest)."""
        table = self.table
        names = list(table)
        mistakes: list[tuple[str, Table, bool]] = []  # (the column at fault, the table, whether the error must name it)
        if len(names) > 1:
            mistakes.append((names[0], {name: cells for name, cells in table.items() if name != names[0]}, True))
            mistakes.append((names[-1], {**table, names[-1]: table[names[-1]] + table[names[-1]][:1]}, False))
        mistakes.append(("an extra column", {**table, "an extra column": [1] * rows_of(table)}, True))
        numeric = next((name for name, cells in table.items() if all(_is_number(cell) for cell in cells)), None)
        if numeric:
            mistakes.append((numeric, {**table, numeric: ["not a number"] * rows_of(table)}, True))
        for column, broken, must_name in mistakes:
            call = spec_form(broken)
            reply = served.send(call)
            expect(reply.status in range(400, 500), f"{served.task.name}: a table with a mistake in column {column!r} must get a 4xx, got {reply.status}\n  request: {call.describe()}")
            self.expect_client_error(served, call, reply)
            if must_name:
                named = column in reply.error or column in str(reply.json().get("field", ""))
                expect(named, f"{served.task.name}: the error about column {column!r} must name it; it said {reply.error!r}")

    def expect_close(self, served: Served, one: Any, other: Any, defect: str) -> None:
        if _is_number(one) and _is_number(other):
            same = math.isclose(one, other, rel_tol=self.tolerance, abs_tol=self.tolerance)
        else:
            same = one == other
        if not same:
            raise ContractViolation(f"{served.task.name}: {defect}: {one!r} against {other!r}")


class TabularClassificationTests(TabularTests, LabelledTests):
    """One label per row, each one of the model's classes (``model_labels``: supply the classes your model
    predicts, e.g. ``list(model.classes_)``)."""

    task_name = "tabular-classification"

    def answer_labels(self, call: Call, answer: Any) -> list[str]:
        return [str(label) for label in answer]


class TabularRegressionTests(TabularTests):
    """One finite number per row."""

    task_name = "tabular-regression"

    def check_answer(self, call: Call, answer: Any) -> None:
        super().check_answer(call, answer)
        finite(answer, "answer")
