"""The running rows' key/value cache: per layer, one buffer with room to grow, its rows padded on the left to
the longest. A decode step writes its column in place (transformers' ``DynamicLayer`` concatenates, copying
the whole cache at every step); a joining row is written into a free row, its padding into room kept on the
left (``reserve``, made while its prompt is read, so the step it joins in copies only its own row); a leaving
row's place is taken by the last row; padding nobody needs is cut by moving the window. A buffer is made
again, larger, only when its room runs out. A paged cache (vLLM's) would not pad at all; this keeps one tensor
per layer, which every attention kernel of transformers takes."""

from __future__ import annotations

import functools
import inspect
from typing import Any

LEAST_ROOM = 32
"""Columns kept free on the right at least when a buffer is made: the steps before it is made again."""
ROOM_SHARE = 0.25
"""Free columns on the right as a share of the window's width: made again less often as sequences grow."""


@functools.cache
def rows_layer_class() -> type:
    """``RowsLayer``, defined on first use (torch and transformers load only once a model does)."""
    import torch
    from transformers.cache_utils import DynamicLayer

    class RowsLayer(DynamicLayer):
        """One layer's keys and values for ``count`` rows: ``keys``/``values`` are views of the buffers'
        first ``count`` rows and columns ``start:end``. Buffers are made empty (filling gigabytes with zeros
        would stall a step): columns ``clean:start`` of the rows hold numbers (zeros or old keys), so the
        window may widen over them; padding must hold numbers, for masked NaN bits still reach the
        attention's sums."""

        @torch.inference_mode()  # the buffers are inference tensors, made while the model runs
        def __init__(self, keys: Any, values: Any) -> None:
            super().__init__()
            self.device, self.is_initialized = keys.device, True
            self.key_buffer, self.value_buffer = keys, values
            self.count, self.start, self.end, self.clean = keys.shape[0], 0, keys.shape[2], 0
            self.reserved = 0
            """The width the window must be able to widen to without making the buffers again."""
            self._make_room(rows=self.count, left=0, right=LEAST_ROOM)

        @torch.inference_mode()
        def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
            added = key_states.shape[-2]
            self._make_room(rows=self.count, left=0, right=added)
            self.key_buffer[: self.count, :, self.end : self.end + added].copy_(key_states)
            self.value_buffer[: self.count, :, self.end : self.end + added].copy_(value_states)
            self.end += added
            self._view()
            return self.keys, self.values

        @torch.inference_mode()
        def add(self, keys: Any, values: Any) -> None:
            """A row (``[1, heads, length, dim]``) below the others, its end at theirs."""
            length = keys.shape[2]
            self._make_room(rows=self.count + 1, left=max(0, length - (self.end - self.start)), right=0)
            self.start = min(self.start, self.end - length)
            self._clean_to(self.start)
            for buffer, row in ((self.key_buffer, keys), (self.value_buffer, values)):
                buffer[self.count, :, self.clean : self.end - length].zero_()
                buffer[self.count, :, self.end - length : self.end].copy_(row[0])
            self.count += 1
            self._view()

        @torch.inference_mode()
        def reserve(self, length: int) -> None:
            """Room on the left for a row of ``length`` positions to join without making the buffers again (0:
            none), kept when they are made again for other reasons."""
            self.reserved = length
            self._make_room(rows=self.count + 1 if length else self.count, left=0, right=0)

        @torch.inference_mode()
        def prepare(self, share: float) -> None:
            """Zero ``share`` of the reserved room not yet clean (a share per step, so no step zeroes it all)."""
            target = max(0, self.end - self.reserved)
            if target < self.clean:
                self._clean_to(self.clean - max(1, int(share * (self.clean - target))))

        @torch.inference_mode()
        def keep(self, order: list[int]) -> None:
            """Row ``order[i]`` becomes row ``i``; rows past the order's length go."""
            for new, old in enumerate(order):
                if new != old:
                    for buffer in (self.key_buffer, self.value_buffer):
                        buffer[new, :, self.clean : self.end].copy_(buffer[old, :, self.clean : self.end])
            self.count = len(order)
            self._view()

        def cut(self, columns: int) -> None:
            """The first ``columns`` positions go (padding no row uses any more)."""
            self.start += columns
            self._view()

        def _clean_to(self, column: int) -> None:
            if column < self.clean:
                for buffer in (self.key_buffer, self.value_buffer):
                    buffer[: self.count, :, column : self.clean].zero_()
                self.clean = column

        def _make_room(self, rows: int, left: int, right: int) -> None:
            capacity_rows, _, capacity_columns, _ = self.key_buffer.shape
            left = max(left, self.reserved - (self.end - self.start))
            if rows <= capacity_rows and left <= self.start and self.end + right <= capacity_columns:
                self._view()
                return
            width = self.end - self.start
            right = max(right, LEAST_ROOM, int(ROOM_SHARE * (left + width)))
            rows = capacity_rows if rows <= capacity_rows else max(rows, 2 * capacity_rows)
            self.key_buffer = self._moved(self.key_buffer, rows, left, width + right)
            self.value_buffer = self._moved(self.value_buffer, rows, left, width + right)
            self.start, self.end, self.clean = left, left + width, left
            self._view()

        def _moved(self, buffer: Any, rows: int, left: int, columns: int) -> Any:
            made = torch.empty((rows, buffer.shape[1], left + columns, buffer.shape[3]), dtype=buffer.dtype, device=buffer.device)
            made[: self.count, :, left : left + self.end - self.start].copy_(buffer[: self.count, :, self.start : self.end])
            return made

        def _view(self) -> None:
            self.keys = self.key_buffer[: self.count, :, self.start : self.end]
            self.values = self.value_buffer[: self.count, :, self.start : self.end]

    return RowsLayer


def cache_keyword(model: Any) -> str:
    """The keyword a model's ``forward`` takes its key/value cache by: ``cache`` since transformers 5.25
    (``past_key_values`` is deprecated there, and goes in 5.40), ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def rows_cache(cache: Any) -> Any:
    """``cache`` (a ``DynamicCache`` of one row) turned into the rows' cache, its layers ``RowsLayer``."""
    layer_class = rows_layer_class()
    cache.layers = [layer_class(layer.keys, layer.values) for layer in cache.layers]
    return cache


def refill_order(count: int, leaving: set[int]) -> list[int]:
    """Which old row each kept row is: a leaving row's place goes to the last staying row, so that only as many
    rows move as leave (``[0, 4, 2, 3]`` when row 1 of 5 leaves)."""
    order = list(range(count))
    last = count - 1
    for index in sorted(leaving):
        while last in leaving and last > index:
            last -= 1
        if last <= index:
            break
        order[index] = last
        last -= 1
    return [old for new, old in enumerate(order) if new < count - len(leaving)]
