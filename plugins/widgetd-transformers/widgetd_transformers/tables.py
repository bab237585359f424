"""table-question-answering: the transformers pipeline (TAPAS) on tables checked to fit the model first."""

from __future__ import annotations

from typing import Any, Sequence

from widgetd import InvalidInput, ModelSnapshot
from widgetd.tasks.table_question_answering import TableQuestionAnsweringInput, TableQuestionAnsweringOutput
from widgetd_transformers.loading import hf_pipeline, in_chunks


class TableQuestionAnswering:
    """One table at a time (the pipeline cannot batch tables of different shapes), each checked against what
    the model can index: its row and column embeddings, and its length unless ``truncation`` drops rows."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        sizes = getattr(pipe.model.config, "type_vocab_sizes", None) or [0, 10**6, 10**6]
        self.most_columns, self.most_rows = sizes[1] - 1, sizes[2] - 1  # ids count from 1: 0 is the question
        self.most_tokens = pipe.tokenizer.model_max_length

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> TableQuestionAnswering:
        return cls(hf_pipeline("table-question-answering", snapshot))

    def __call__(self, requests: Sequence[TableQuestionAnsweringInput]) -> list[TableQuestionAnsweringOutput]:
        return in_chunks(lambda chunk: [self.answer(request) for request in chunk], requests, size=1)

    def answer(self, request: TableQuestionAnsweringInput) -> TableQuestionAnsweringOutput:
        import pandas

        table = self.fitting(pandas.DataFrame(request.inputs.table), request.inputs.asked, request.parameters.truncation)
        found = self.pipe(table=table, query=request.inputs.asked, truncation=request.parameters.truncation)
        return TableQuestionAnsweringOutput(
            found["answer"], [list(map(int, cell)) for cell in found["coordinates"]], list(found["cells"]), found.get("aggregator", "NONE")
        )

    def fitting(self, table: Any, question: str, truncation: bool) -> Any:
        """The table, or its first rows where ``truncation`` allows; InvalidInput where it cannot fit, or holds
        no text at all (the pipeline fails on a table with no token)."""
        if table.shape[1] > self.most_columns:
            raise InvalidInput(f"inputs.table: {table.shape[1]} columns, more than the {self.most_columns} this model reads", field="inputs.table")
        if table.shape[0] > self.most_rows:
            if not truncation:
                raise InvalidInput(
                    f"inputs.table: {table.shape[0]} rows, more than the {self.most_rows} this model reads; "
                    "send parameters.truncation: true to drop the rows that do not fit", field="inputs.table",
                )
            table = table.head(self.most_rows)
        encoded = self.pipe.tokenizer(table=table, queries=question, truncation=truncation)
        if not any(types[0] == 1 for types in encoded["token_type_ids"]):  # segment 1: the table's tokens
            raise InvalidInput("inputs.table holds no text: every column name and cell is empty", field="inputs.table")
        tokens = len(encoded["input_ids"])
        if tokens > self.most_tokens:
            raise InvalidInput(
                f"inputs.table: the question and table are {tokens} tokens, more than the {self.most_tokens} this model "
                "reads; send parameters.truncation: true to drop the rows that do not fit", field="inputs.table",
            )
        return table
