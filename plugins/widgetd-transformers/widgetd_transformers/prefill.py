"""How much of the prompts being read a step may take (chunked prefill): enough that long prompts are read
soon, little enough that the running sequences' next token is not held up much longer than a step."""

from __future__ import annotations

import time
from typing import Any

CHUNK_SHARE = 1.5
"""A chunk takes about this many decode steps' time: a running sequence's gap between tokens while a prompt
is read is then about 2.5 steps (the benchmark's target: a p99 at most 3x the median)."""
FIRST_CHUNK = 64
"""The first chunk, before any reading has been timed."""
LEAST_CHUNK = 64
"""A chunk's least: a short chunk costs about what a forward pass costs whatever it reads (the cost per
token measured on it is mostly that fixed cost), so fewer tokens would only read prompts slower."""
UNBOUNDED = 1 << 62


class PrefillPace:
    """``fixed`` tokens per step (``--prefill-chunk``), or with 0, as many as take ``CHUNK_SHARE`` times the
    last decode step, from the last measured cost of reading a token (which grows with the prompt read)."""

    def __init__(self, fixed: int, device: Any) -> None:
        self.fixed = fixed
        self.device = device
        self.decode_seconds: float | None = None
        self.token_seconds: float | None = None

    def budget(self, rows_running: bool) -> int:
        if not rows_running:
            return UNBOUNDED  # nobody waits for a token: read on
        if self.fixed:
            return self.fixed
        if self.decode_seconds is None or self.token_seconds is None:
            return FIRST_CHUNK
        return max(LEAST_CHUNK, int(CHUNK_SHARE * self.decode_seconds / self.token_seconds))

    def timed(self) -> "Timer":
        return Timer(self.device)

    def decoded(self, timer: "Timer") -> None:
        self.decode_seconds = timer.seconds()

    def read(self, timer: "Timer", tokens: int) -> None:
        self.token_seconds = timer.seconds() / max(1, tokens)


class Timer:
    """Wall time of work on ``device``, waiting for a GPU to finish what it was given."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.started = time.perf_counter()

    def seconds(self) -> float:
        if getattr(self.device, "type", None) == "cuda":
            import torch

            torch.cuda.synchronize(self.device)
        return time.perf_counter() - self.started
