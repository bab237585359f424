"""How much of the prompts being read a step may take (chunked prefill): enough that long prompts are read
soon, little enough that the running sequences' next token is not held up much longer than a step.

Each chunk is its own forward pass (a prompt, or several read to their ends together, padded), so a chunk
costs a fixed part, paid whatever it reads, and a part per token (padding included), which grows as the
prompt read so far grows. Both are fitted to the chunks last read, and a step's chunks fill a time budget:
``CHUNK_SHARE`` times a decode step (the median of the last few). vLLM counts tokens instead, as its chunks
and its decode share one forward pass."""

from __future__ import annotations

import collections
import statistics
import time
from typing import Any

import numpy as np

CHUNK_SHARE = 1.0
"""A step's chunks take about this many decode steps' time: a running sequence's gap between tokens while a
prompt is read is then about two steps (the benchmark's target: a p99 at most 3x the median)."""
FIRST_CHUNK = 64
"""A step's tokens before any chunk has been timed."""
LEAST_CHUNK = 16
"""A chunk's least: fewer tokens would pay the fixed cost of a forward pass for too little of the prompt."""
FITTED_CHUNKS = 16
"""The chunks the cost is fitted to: the latest, as the cost per token grows with the prompt read."""
DECODES = 8
"""The decode steps whose median sets the budget: one slow step (a page fault, another process) must not
size the next chunk."""
UNBOUNDED = 1 << 62


class PrefillPace:
    """``fixed`` tokens per step (``--prefill-chunk``), or with 0, chunks filling ``CHUNK_SHARE`` times a decode
    step as their measured cost predicts. ``begin`` starts a step's budget, ``chunk`` says how many
    tokens the next chunk reads (0: none this step), ``spent`` charges what a chunk or other work took."""

    def __init__(self, fixed: int, device: Any) -> None:
        self.fixed = fixed
        self.device = device
        self.decodes: collections.deque[float] = collections.deque(maxlen=DECODES)
        self.chunks: collections.deque[tuple[int, float]] = collections.deque(maxlen=FITTED_CHUNKS)
        self.fitted: tuple[float, float] | None = None
        self.begin(rows_running=True)

    def begin(self, rows_running: bool) -> None:
        self.unbounded = not rows_running  # nobody waits for a token: read on
        self.by_time = not self.fixed and bool(self.decodes) and bool(self.chunks)
        self.tokens_left = UNBOUNDED if self.by_time else self.fixed or FIRST_CHUNK
        # At every step: numpy's median of 8 numbers takes about 10 µs here, statistics' 0.3 µs.
        self.seconds_left = CHUNK_SHARE * statistics.median(self.decodes) if self.by_time else float("inf")
        self.read_this_step = False

    def chunk(self, remaining: int) -> int:
        if self.unbounded:
            return remaining
        if self.tokens_left <= 0 or self.seconds_left <= 0:
            return 0
        if not self.by_time:
            return min(self.tokens_left, remaining)
        fixed_seconds, token_seconds = self.cost()
        least = min(LEAST_CHUNK, remaining)
        if self.read_this_step and fixed_seconds + token_seconds * least > self.seconds_left:
            return 0  # a step's first chunk always reads: the prompt moves on at every step
        return min(remaining, max(least, int((self.seconds_left - fixed_seconds) / token_seconds)))

    def fits(self, tokens: int) -> bool:
        """Whether this step may still read ``tokens`` in one chunk."""
        return self.chunk(tokens) >= tokens

    def cost(self) -> tuple[float, float]:
        """(seconds a chunk costs whatever it reads, seconds per token it reads), fitted to the last chunks
        (again only once another is read); all of it per token where they cannot tell the two apart."""
        if self.fitted is None:
            self.fitted = self._fit()
        return self.fitted

    def _fit(self) -> tuple[float, float]:
        tokens = np.array([count for count, _ in self.chunks], dtype=float)
        seconds = np.array([taken for _, taken in self.chunks])
        average = (0.0, max(float(seconds.sum() / tokens.sum()), 1e-9))
        if len(set(tokens.tolist())) < 2:
            return average
        per_token, fixed = np.polyfit(tokens, seconds, 1)
        return (max(0.0, float(fixed)), float(per_token)) if per_token > 0 else average

    def timed(self) -> "Timer":
        return Timer(self.device)

    def decoded(self, seconds: float) -> None:
        self.decodes.append(seconds)

    def read(self, tokens: int, seconds: float) -> None:
        self.chunks.append((tokens, seconds))
        self.fitted = None
        self.read_this_step = True
        self.tokens_left -= tokens
        self.seconds_left -= seconds

    def spent(self, seconds: float) -> None:
        self.seconds_left -= seconds


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
