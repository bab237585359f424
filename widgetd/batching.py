"""Running a model off the event loop, batching the requests that arrive together."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from widgetd import cancellation, tracing
from widgetd.backends import Pipeline


class QueueFull(Exception):
    """The model's queue is at its bound; the client should retry later."""


@dataclass
class _Pending:
    task: str
    request: Any
    answer: asyncio.Future = field(repr=False)
    batch_size: int = 0
    """The size of the batch it ran in, on the first request of each batch; 0 on the others."""
    ran_with: int = 0
    """The size of the batch it ran in (for its trace)."""
    queued_ns: int = field(default_factory=time.time_ns)
    taken_ns: int = 0
    called_ns: int = 0
    """When the model was called for its batch (the last call, when a failed batch is run one by one)."""
    returned_ns: int = 0
    answered_ns: int = 0


GATHER_SHARE = 0.1
"""After a batch of several requests, the next one waits for as many to arrive, at most this
share of the last batch's run time: closed-loop clients send their next requests right after
their answers, and a batch started on the first of them would leave the rest for one more run."""
GATHER_LIMIT = 0.025
"""The most any batch waits for company (seconds) unless ``max_wait`` says otherwise."""
WORKER_NICENESS = 5
"""The model thread (and the threads it starts for intra-op parallelism) yield the CPU to the event
loop, so /health and new requests are answered while a batch runs on every core."""


class Batcher:
    """One model's queue and worker thread.

    Requests waiting when the worker frees up run together (up to ``max_batch_size``): a
    request arriving at an idle model runs at once, and a busy model runs full batches.
    A failing batch is retried one request at a time, so one bad request fails alone;
    ``check_answer`` (task, answer) vets each answer on the model's thread, returning it as the
    client will get it or raising for that request alone.
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
        check_answer: Callable[[str, Any], Any] | None = None,
    ):
        self.pipeline = pipeline
        self.max_batch_size = max(1, max_batch_size)
        self.max_queue = max_queue
        self.max_wait = max_wait
        self.on_batch = on_batch
        self.check_answer = check_answer
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"model-{name}", initializer=_yield_to_the_event_loop
        )
        self._last_batch = (1, 0.0)
        """(size, seconds) of the last batch run."""
        self._company_wanted = 0
        self._company_arrived = asyncio.Event()

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The model's one thread: whatever else runs the model (a generation loop) runs there too."""
        return self._executor

    @property
    def depth(self) -> int:
        return self._queue.qsize() if self._queue else 0

    async def submit(self, task: str, request: Any) -> Any:
        answer, _ = await self.submit_counted(task, request)
        return answer

    async def answer(self, task: str, request: Any) -> tuple[Any, dict[str, str]]:
        """The answer, and headers saying where it ran beyond the server's own (none: it ran here)."""
        return await self.submit(task, request), {}

    async def submit_counted(self, task: str, request: Any) -> tuple[Any, int]:
        """The answer, and the size of the batch it ran in if it was that batch's first request (else 0):
        what a Ray replica reports so that the ingress counts each batch once."""
        if self._worker is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._work())
        if self._queue.qsize() >= self.max_queue:
            raise QueueFull(f"{self._queue.qsize()} requests are already waiting")
        pending = _Pending(task, request, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(pending)
        if self._company_wanted and self._queue.qsize() >= self._company_wanted:
            self._company_arrived.set()
        try:
            return await pending.answer, pending.batch_size
        finally:
            if tracing.enabled():
                tracing.batch_spans(pending.queued_ns, pending.taken_ns, pending.called_ns, pending.returned_ns, pending.answered_ns, pending.ran_with)

    async def count_tokens(self, texts: list[str]) -> int:
        """The tokens the texts are read as (0 if the pipeline cannot say), counted on the model's thread:
        its tokenizer is not shared."""
        count = getattr(self.pipeline, "count_tokens", None)
        if count is None:
            return 0
        return await asyncio.get_running_loop().run_in_executor(self._executor, count, texts)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            await self._gather_company()
            batch = self._take_batch(first)
            if not batch:
                continue
            batch[0].batch_size = len(batch)
            taken = time.time_ns()
            for pending in batch:
                pending.taken_ns, pending.ran_with = taken, len(batch)
            if self.on_batch:
                self.on_batch(len(batch))
            task = batch[0].task
            started = time.perf_counter()
            outcomes = await loop.run_in_executor(self._executor, self._run, task, batch)
            self._last_batch = (len(batch), time.perf_counter() - started)
            answered = time.time_ns()
            for pending, outcome in zip(batch, outcomes):
                pending.answered_ns = answered
                if pending.answer.done():
                    continue
                if isinstance(outcome, BaseException):
                    pending.answer.set_exception(outcome)
                else:
                    pending.answer.set_result(outcome)

    async def _gather_company(self) -> None:
        """Wait, briefly, for the requests likely to arrive: ``max_wait`` when set, else as many
        as the last batch held, for at most a small share of its run time."""
        if self.max_wait:
            wanted, patience = self.max_batch_size, self.max_wait
        else:
            size, seconds = self._last_batch
            wanted, patience = min(size, self.max_batch_size), min(GATHER_LIMIT, GATHER_SHARE * seconds)
        waiting = self._queue.qsize() + 1
        if wanted <= 1 or waiting >= wanted or patience <= 0:
            return
        self._company_wanted = wanted - 1
        self._company_arrived.clear()
        try:
            await asyncio.wait_for(self._company_arrived.wait(), patience)
        except asyncio.TimeoutError:
            pass
        finally:
            self._company_wanted = 0

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

    def _run(self, task: str, batch: Sequence[_Pending]) -> list[Any]:
        """Answers (or errors) for ``batch``, run on the model's thread; the backend can see, through
        ``widgetd.cancellation``, which of its requests were given up meanwhile."""
        requests = [pending.request for pending in batch]
        called = time.time_ns()
        try:
            with cancellation.running({id(pending.request): pending.answer.done for pending in batch}):
                answers = self._answers(task, requests)
        except BaseException as error:
            if len(batch) == 1 or isinstance(error, cancellation.Abandoned):
                return [error] * len(batch)
            # One at a time, so that one bad request fails alone; no more work for those given up.
            return [self._run(task, [pending])[0] if not pending.answer.done() else error for pending in batch]
        returned = time.time_ns()
        for pending in batch:
            pending.called_ns, pending.returned_ns = called, returned
        return [self._checked(task, answer) for answer in answers]

    def _checked(self, task: str, answer: Any) -> Any:
        if self.check_answer is None:
            return answer
        try:
            return self.check_answer(task, answer)
        except Exception as error:
            return error

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
        close_pipeline = getattr(self.pipeline, "close", None)  # a pipeline holding a process (--isolate)
        if close_pipeline is not None:
            close_pipeline()


def _yield_to_the_event_loop() -> None:
    """Lower the calling thread's CPU priority (Linux: per thread; new threads inherit it)."""
    if sys.platform != "linux":
        return  # elsewhere PRIO_PROCESS takes a process id, not a thread's
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + WORKER_NICENESS)
    except (AttributeError, OSError):
        pass  # not allowed: batches then share the CPU evenly with the loop
