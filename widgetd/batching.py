"""Running a model off the event loop, batching the requests that arrive together."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from widgetd.backends import Pipeline


class QueueFull(Exception):
    """The model's queue is at its bound; the client should retry later."""


@dataclass
class _Pending:
    task: str
    request: Any
    answer: asyncio.Future = field(repr=False)


class Batcher:
    """One model's queue and worker thread.

    Requests waiting when the worker frees up run together (up to ``max_batch_size``),
    so a lone request never waits for company and a busy model runs full batches.
    A failing batch is retried one request at a time, so one bad request fails alone.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        max_batch_size: int,
        max_queue: int,
        name: str,
        max_wait: float = 0.0,
        on_batch: Callable[[int], None] | None = None,
    ):
        self.pipeline = pipeline
        self.max_batch_size = max(1, max_batch_size)
        self.max_queue = max_queue
        self.max_wait = max_wait
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{name}")

    @property
    def depth(self) -> int:
        return self._queue.qsize() if self._queue else 0

    async def submit(self, task: str, request: Any) -> Any:
        if self._worker is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._work())
        if self._queue.qsize() >= self.max_queue:
            raise QueueFull(f"{self._queue.qsize()} requests are already waiting")
        pending = _Pending(task, request, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(pending)
        return await pending.answer

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            if self.max_wait and self._queue.qsize() + 1 < self.max_batch_size:
                await asyncio.sleep(self.max_wait)
            batch = self._take_batch(first)
            if not batch:
                continue
            if self.on_batch:
                self.on_batch(len(batch))
            task = batch[0].task
            requests = [pending.request for pending in batch]
            outcomes = await loop.run_in_executor(self._executor, self._run, task, requests)
            for pending, outcome in zip(batch, outcomes):
                if pending.answer.done():
                    continue
                if isinstance(outcome, BaseException):
                    pending.answer.set_exception(outcome)
                else:
                    pending.answer.set_result(outcome)

    def _take_batch(self, first: _Pending) -> list[_Pending]:
        """``first`` plus the waiting requests for the same task; cancelled ones are dropped."""
        batch = [first] if not first.answer.done() else []
        held_back = []
        while len(batch) < self.max_batch_size and not self._queue.empty():
            pending = self._queue.get_nowait()
            if pending.answer.done():
                continue
            if batch and pending.task != batch[0].task:
                held_back.append(pending)
                continue
            batch.append(pending)
        for pending in held_back:
            self._queue.put_nowait(pending)
        return batch

    def _run(self, task: str, requests: Sequence[Any]) -> list[Any]:
        try:
            return self._answers(task, requests)
        except BaseException as error:
            if len(requests) == 1:
                return [error]
            return [self._run(task, [request])[0] for request in requests]

    def _answers(self, task: str, requests: Sequence[Any]) -> list[Any]:
        answers = list(self.pipeline(task, list(requests)))
        if len(answers) != len(requests):
            raise RuntimeError(
                f"the backend returned {len(answers)} answers for {len(requests)} requests"
            )
        return answers

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

