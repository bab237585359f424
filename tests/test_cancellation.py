"""Backends' chunked work: the order chunks run in, and stopping once nobody waits."""

from __future__ import annotations

import pytest

from widgetd.cancellation import Abandoned, longest_first, running


def test_longest_first_runs_the_heaviest_chunks_first_and_answers_in_order():
    texts = [("x" * ((index * 7) % 23 + 1)) for index in range(100)]
    chunks = []

    def run(chunk):
        chunks.append(chunk)
        return [text.upper() for text in chunk]

    assert longest_first(run, texts, weight=len, most=30) == [text.upper() for text in texts]
    assert [len(chunk) for chunk in chunks] == [30, 30, 30, 10]
    for heavier, lighter in zip(chunks, chunks[1:]):
        assert min(map(len, heavier)) >= max(map(len, lighter))


def test_longest_first_stops_before_a_chunk_once_every_request_is_given_up():
    given_up = False
    ran = []

    def run(chunk):
        nonlocal given_up
        ran.append(chunk)
        given_up = True  # the clients leave while the first chunk runs
        return chunk

    with running({1: lambda: given_up}), pytest.raises(Abandoned):
        longest_first(run, list(range(10)), weight=lambda item: item, most=4)
    assert ran == [[9, 8, 7, 6]]
