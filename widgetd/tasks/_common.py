"""Pieces several task contracts share (common-definitions.json of the canonical specs)."""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

import msgspec

from widgetd.errors import InvalidInput
from widgetd.tasks._task import Answer, Strict

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
Probability = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
NonEmptyText = Annotated[str, msgspec.Meta(min_length=1)]
MediaBytes = Annotated[bytes, msgspec.Meta(min_length=1)]
"""Audio or image bytes: never empty (base64 in JSON)."""

ClassificationOutputTransform = Literal["sigmoid", "softmax", "none"]


class ClassificationOutput(Answer):
    label: str
    score: float


class GenerationParameters(Strict):
    """How text or audio is generated; every field optional, the model's own config fills the rest."""

    temperature: Optional[Annotated[float, msgspec.Meta(gt=0.0)]] = None
    top_k: Optional[PositiveInt] = None
    top_p: Optional[Probability] = None
    typical_p: Optional[Probability] = None
    epsilon_cutoff: Optional[Annotated[float, msgspec.Meta(ge=0.0, lt=1.0)]] = None
    eta_cutoff: Optional[Annotated[float, msgspec.Meta(ge=0.0, lt=1.0)]] = None
    max_length: Optional[PositiveInt] = None
    max_new_tokens: Optional[PositiveInt] = None
    min_length: Optional[NonNegativeInt] = None
    min_new_tokens: Optional[NonNegativeInt] = None
    do_sample: Optional[bool] = None
    early_stopping: Optional[Union[bool, Literal["never"]]] = None
    num_beams: Optional[PositiveInt] = None
    num_beam_groups: Optional[PositiveInt] = None
    penalty_alpha: Optional[Annotated[float, msgspec.Meta(ge=0.0)]] = None
    use_cache: Optional[bool] = None


Truncation = Literal["do_not_truncate", "longest_first", "only_first", "only_second"]


Cell = Union[str, int, float, bool, None]
"""One value of a table; null: missing. The Python client sends every cell as text ("4.5")."""

TableColumns = Annotated[dict[str, Annotated[list[Cell], msgspec.Meta(min_length=1)]], msgspec.Meta(min_length=1)]
"""Columns by name, each a list of cells, all as long; a row is the cells at one index."""


class TabularData(Strict):
    """The table to predict, as ``{"data": {...}}`` (the HF spec) or ``{"table": {...}}``."""

    data: Optional[TableColumns] = None
    table: Optional[TableColumns] = None


class TabularParameters(Strict):
    """None: tabular models take no parameters; the Python client sends ``{}``."""


class TabularInput(Strict):
    """A table to predict a value for each row of: the HF spec's ``{"inputs": {"data": {column: [values]}}}``,
    or the Python client's ``{"table": {column: [values]}}``."""

    inputs: Optional[TabularData] = None
    table: Optional[TableColumns] = None
    """The Python client's form (``InferenceClient.tabular_classification``), beside ``inputs``."""
    parameters: TabularParameters = msgspec.field(default_factory=TabularParameters)

    def __post_init__(self) -> None:
        # Raised as is by msgspec (not a ValueError), so that the 400 names the field.
        given = self._given()
        if len(given) != 1:
            raise InvalidInput("give the table once: as `inputs.data` (or `inputs.table`), or as `table`", field="inputs" if given else "table")
        where, table = given[0]
        lengths = {name: len(cells) for name, cells in table.items()}
        if len(set(lengths.values())) > 1:
            shortest = min(lengths, key=lengths.get)
            raise InvalidInput(
                f"{where}: every column must hold as many rows; column {shortest!r} holds {lengths[shortest]}, "
                f"others {max(lengths.values())}",
                field=f"{where}.{shortest}",
            )

    def _given(self) -> list[tuple[str, TableColumns]]:
        """Each place the request holds a table, with its path: one, once decoded."""
        places = [("table", self.table)]
        if self.inputs is not None:
            places += [("inputs.data", self.inputs.data), ("inputs.table", self.inputs.table)]
        return [(where, table) for where, table in places if table is not None]

    @property
    def columns(self) -> dict[str, list[Cell]]:
        return self._given()[0][1]

    @property
    def where(self) -> str:
        """Where the request holds its table: ``table``, ``inputs.data`` or ``inputs.table``."""
        return self._given()[0][0]
