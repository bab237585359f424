"""Stopping work nobody waits for.

A request is given up when its client leaves, when it runs past ``--request-timeout``, or when the
server's shutdown timeout passes. The batch it is part of may already be running on the model's
thread; a backend asks, between chunks of its work (sub-batches, generation steps, QA windows),
whether anyone still waits, and stops if not::

    from widgetd.cancellation import in_chunks

    for chunk in in_chunks(texts, weight=len):   # raises Abandoned once every request is given up
        vectors.extend(model.encode(chunk))

``abandoned(request)`` tells about one request, for backends that answer requests one at a time.
Outside a batch (a backend's own tests), nothing is ever abandoned.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

Item = TypeVar("Item")

CHUNK_ITEMS = 64
CHUNK_BUDGET = 8192
"""A chunk's work at most, in units of ``weight``: with characters of text, about 2,000 tokens, a
fraction of a second for a small encoder on a CPU, so that work nobody waits for stops soon."""


class Abandoned(Exception):
    """Every request of the running batch was given up; its work is of no use to anyone."""


_running = threading.local()


@contextlib.contextmanager
def running(given_up: Mapping[int, Callable[[], bool]]) -> Iterator[None]:
    """The batch run on this thread within the block: ``given_up[id(request)]()`` says whether a request
    was given up. The batcher wraps every pipeline call in it."""
    previous = getattr(_running, "batch", None)
    _running.batch = given_up
    try:
        yield
    finally:
        _running.batch = previous


def abandoned(request: Any = None) -> bool:
    """Whether ``request`` (by default, every request of the batch this thread runs) was given up."""
    batch = getattr(_running, "batch", None)
    if not batch:
        return False
    if request is not None:
        given_up = batch.get(id(request))
        return given_up is not None and given_up()
    return all(given_up() for given_up in batch.values())


def stop_if_abandoned() -> None:
    """Raise ``Abandoned`` when every request of the running batch was given up."""
    if abandoned():
        raise Abandoned("every request of this batch was given up")


def in_chunks(
    items: Sequence[Item], *, most: int = CHUNK_ITEMS, budget: int = CHUNK_BUDGET, weight: Callable[[Item], int] | None = None
) -> Iterator[list[Item]]:
    """``items`` in order, a chunk at a time: at most ``most`` items, and ``budget`` of their ``weight``
    (one item always fits); before each chunk, ``stop_if_abandoned()``."""
    chunk: list[Item] = []
    spent = 0
    for item in items:
        cost = weight(item) if weight else 0
        if chunk and (len(chunk) >= most or spent + cost > budget):
            stop_if_abandoned()
            yield chunk
            chunk, spent = [], 0
        chunk.append(item)
        spent += cost
    if chunk:
        stop_if_abandoned()
        yield chunk


Result = TypeVar("Result")


def longest_first(
    run: Callable[[list[Item]], Sequence[Result]], items: Sequence[Item], *, weight: Callable[[Item], int], most: int = CHUNK_ITEMS
) -> list[Result]:
    """``run`` over ``items`` as ``in_chunks`` cuts them, the heaviest first; the results in ``items``' order.
    Chunks of texts of near lengths pad each text to a length near its own, where chunks in arrival order pad
    most texts to the longest of the batch (sentence-transformers' ``encode`` orders one call's texts so)."""
    order = sorted(range(len(items)), key=lambda index: -weight(items[index]))
    chunks = in_chunks([items[index] for index in order], most=most, weight=weight)
    results: list[Any] = [None] * len(items)
    for index, result in zip(order, (result for chunk in chunks for result in run(chunk))):
        results[index] = result
    return results
