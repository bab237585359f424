"""The running rows' cache: what attention sees is the rows padded on the left with zeros, exactly as if they
were stacked anew at every change, while steps, joins into reserved room and leaves copy only what changed."""

from __future__ import annotations

import pytest
import torch

from widgetd_transformers.rows_cache import refill_order, rows_layer_class

HEADS, DIM = 2, 4


def row(length: int) -> torch.Tensor:
    return torch.randn(1, HEADS, length, DIM)


def stacked(rows: list[torch.Tensor]) -> torch.Tensor:
    """The reference: every row padded on the left with zeros to the longest."""
    width = max(tensor.shape[2] for tensor in rows)
    return torch.cat([torch.nn.functional.pad(tensor, (0, 0, width - tensor.shape[2], 0)) for tensor in rows])


@pytest.mark.parametrize(
    ("count", "leaving", "order"),
    [(5, {1}, [0, 4, 2, 3]), (5, {3, 4}, [0, 1, 2]), (5, {0, 4}, [3, 1, 2]), (4, {0, 1, 2}, [3]), (3, {0}, [2, 1])],
)
def test_a_leaving_rows_place_goes_to_the_last_staying_row(count, leaving, order):
    assert refill_order(count, leaving) == order


def test_the_window_is_the_rows_padded_on_the_left_through_steps_joins_and_leaves():
    layer_class = rows_layer_class()
    rows = [row(5)]
    layer = layer_class(rows[0].clone(), rows[0].clone())
    for step in range(40):
        if step % 7 == 3:  # a row joins: sometimes longer than all, sometimes shorter
            joining = row(60 if step == 10 else 2 + step % 5)
            if step == 3:
                layer.reserve(60)  # the long one's room, made before it joins
            layer.add(joining, joining)
            rows.append(joining)
        if step % 11 == 5 and len(rows) > 1:  # a row leaves; its place goes to the last
            order = refill_order(len(rows), {1})
            layer.keep(order)
            rows = [rows[old] for old in order]
            unused = layer.keys.shape[2] - max(tensor.shape[2] for tensor in rows)
            layer.cut(unused)
        layer.prepare(0.5)
        new = torch.randn(len(rows), HEADS, 1, DIM)
        keys, values = layer.update(new, new)
        rows = [torch.cat([tensor, new[index : index + 1]], dim=2) for index, tensor in enumerate(rows)]
        assert torch.equal(keys, stacked(rows)) and torch.equal(values, stacked(rows)), step


def test_a_row_joins_into_reserved_room_and_steps_write_in_place():
    layer = rows_layer_class()(row(8), row(8))
    for _ in range(3):
        layer.update(row(1), row(1))
    layer.reserve(500)
    buffer = layer.key_buffer
    for _ in range(10):  # the prompt is read while the rows step: its room is zeroed a share per step
        layer.prepare(0.1)
        layer.update(row(1), row(1))
    long = row(500)
    layer.add(long, long)
    assert layer.key_buffer is buffer, "the buffers were made again: the join copied the whole cache"
    assert torch.equal(layer.keys[1], long[0]) and not layer.keys[0, :, : 500 - 21].any(), "the first row's padding is zeros"
    # What attention may see (the window, and the room left of it it may widen over) holds numbers; the room
    # right of the window is written by a step before it is seen, and holds whatever torch.empty found.
    assert all(torch.isfinite(buffer[:2, :, layer.clean : layer.end]).all() for buffer in (layer.key_buffer, layer.value_buffer))
