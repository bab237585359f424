"""Generating text a token at a time for many requests at once, streamed as it is made.

A backend whose pipeline has an ``engine`` (see ``Engine``) gets continuous (iteration-level) batching:
the sequences being generated decode together, one token each per step; a new request joins at the
next step instead of waiting for a batch to finish, and a finished or abandoned one leaves at once.
text-generation (streaming or not) and the chat completions route share one ``GenerationLoop`` per
model, run on the model's thread between its other batches.

A pipeline's own ``__call__`` can answer text-generation with the same engine through
``generate_all``, so that a batch of requests without the loop gets the same answers.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Protocol, Sequence

from widgetd import cancellation
from widgetd.batching import QueueFull
from widgetd.errors import InvalidInput
from widgetd.structured import Constraint, refuse_unconstrained


@dataclass(frozen=True)
class GenerationOptions:
    """How to choose the tokens; None leaves the choice to the model (its generation config)."""

    max_new_tokens: int | None = None
    do_sample: bool | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    typical_p: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    truncate: int | None = None
    """Only the prompt's last ``truncate`` tokens are read (TGI's option)."""
    field: str = "parameters"
    """Where the request holds these options (``parameters`` for TGI, the body for OpenAI), for errors."""
    constraint: Constraint | None = None
    """What the text must be (JSON fitting a schema, a pattern's match): only engines that ``constrains`` get one."""
    top_logprobs: int = 0
    """How many of the most likely tokens each token reports beside itself (``alternatives``): only engines with
    ``alternatives`` are asked for any."""

    def named(self, option: str) -> str:
        return f"{self.field}.{option}" if self.field else option


def refuse_unserved(request: Any, unserved: dict[str, tuple[Any, str]], prefix: str = "") -> None:
    """A 400 naming the first option a local model does not honour that asks for something: ``unserved``
    gives each option's value that asks for nothing (what clients send by default) and why it is not served."""
    for name, (nothing, why) in unserved.items():
        value = getattr(request, name)
        if value is not None and value != nothing:
            raise InvalidInput(f"{prefix}{name}: {why} by this server", field=f"{prefix}{name}")


def refuse_unhonoured(engine: Any, options: GenerationOptions) -> None:
    """A 400 naming the option when ``engine`` cannot honour what ``options`` ask beyond choosing tokens."""
    refuse_unconstrained(engine, options.constraint)
    if options.top_logprobs and not getattr(engine, "alternatives", False):
        field = options.named("top_logprobs")
        raise InvalidInput(f"{field}: this model's engine does not report alternative tokens", field=field)


@dataclass(frozen=True)
class Prompt:
    """A prompt as text, or as chat messages (``{"role", "content"}``, and OpenAI's ``tool_calls`` and
    ``tool_call_id``) for the model's chat template, with the ``tools`` it may call (OpenAI's tool objects)."""

    text: str | None = None
    messages: tuple[dict[str, Any], ...] | None = None
    tools: tuple[dict[str, Any], ...] | None = None


@dataclass(frozen=True)
class Token:
    """One generated token, as an engine reports it."""

    id: int
    text: str
    """The readable text this token completes: empty while a character is still incomplete, and for
    special tokens (end of sequence)."""
    logprob: float
    special: bool = False
    finish: str | None = None
    """``eos_token`` or ``length`` when this token ends the sequence (the engine then drops it)."""
    cached_prompt_tokens: int = 0
    """On a sequence's first token (``join``'s): how many of the prompt's tokens were not read again but
    taken from keys and values the engine kept from earlier prompts (prefix caching)."""
    alternatives: tuple[Alternative, ...] = ()
    """The ``options.top_logprobs`` most likely tokens at this position, most likely first, from the
    distribution this token was chosen from (``logprob``'s)."""


@dataclass(frozen=True)
class Alternative:
    """A token the model could have chosen, with its log-probability."""

    id: int
    text: str
    """The text it would add at this point of the answer (a token that is part of a character may read as a
    replacement character; a special token reads as its own name)."""
    logprob: float


class Engine(Protocol):
    """A model that generates for many sequences at once, one token per ``step``."""

    max_active: int
    """How many sequences may decode together (1: one at a time)."""
    chat: bool
    """Whether ``admit`` takes chat messages (the model has a chat template)."""
    # Optional: ``constrains`` (bool), whether ``admit`` applies ``options.constraint`` to the sequence's tokens;
    # ``renders_tools`` (bool), whether the chat template shows the model a prompt's ``tools``; ``admits_aside``
    # (bool), whether ``admit`` may run on a thread of its own while ``step`` runs (it only reads the engine);
    # ``reads_joined`` (bool), whether ``join`` only queues a prompt, read by ``read_joined()`` after every
    # iteration's joins (several together), which answers first tokens by sequence as ``step`` does;
    # ``alternatives`` (bool), whether tokens carry ``options.top_logprobs`` alternatives.

    def admit(self, prompt: Prompt, options: GenerationOptions) -> Any:
        """A new sequence, tokenized and checked, with ``prompt_tokens`` (int) and ``seed``; raises
        ``widgetd.InvalidInput`` for a request the model cannot run (e.g. no chat template)."""

    def join(self, sequence: Any) -> Token | None:
        """Read the sequence's prompt and answer its first token; it takes part in the next steps. An engine
        that reads long prompts a part per step (chunked prefill) answers None, and the first token comes
        from a later ``step``; one with ``reads_joined`` answers None and reads in ``read_joined``."""

    def step(self) -> dict[Any, Token | Exception]:
        """One more token for every sequence that takes part, by sequence. A sequence whose token
        finishes it, or which fails (e.g. its options broke the scores), leaves by itself."""

    def leave(self, sequence: Any) -> None:
        """Drop a sequence nobody reads any more (its client left, a stop sequence was met);
        a sequence that already left is ignored."""


@dataclass(frozen=True)
class Job:
    """What one request asks to be generated, and how its text ends."""

    prompt: Prompt
    options: GenerationOptions
    stops: tuple[str, ...] = ()
    keep_stop: bool = True
    """Whether the text keeps the stop sequence that ended it (TGI does; OpenAI's API does not)."""


class StopSequences:
    """The text generated so far, up to the first stop sequence; what may be shown of it at each step
    (the beginning of a possible stop sequence is held back until it is known not to be one)."""

    def __init__(self, stops: Sequence[str], keep_stop: bool) -> None:
        self.stops = [stop for stop in stops if stop]
        self.keep_stop = keep_stop
        self.longest = max((len(stop) for stop in self.stops), default=0)
        self.text = ""
        self.shown = 0
        self.stopped = False

    def add(self, piece: str) -> str:
        """The newly shown text once ``piece`` is added."""
        search_from = max(0, len(self.text) - self.longest + 1)
        self.text += piece
        found = [(self.text.find(stop, search_from), stop) for stop in self.stops]
        found = [(position, stop) for position, stop in found if position >= 0]
        if found:
            position, stop = min(found)
            self.text = self.text[: position + len(stop) if self.keep_stop else position]
            self.stopped = True
            return self._show(len(self.text))
        return self._show(len(self.text) - self._held_back())

    def rest(self) -> str:
        """Whatever was held back, once generation has ended without a stop sequence."""
        return self._show(len(self.text))

    def _held_back(self) -> int:
        if self.keep_stop:
            return 0  # the stop sequence is kept: its beginning may be shown
        return max(
            (size for stop in self.stops for size in range(1, len(stop)) if self.text.endswith(stop[:size])), default=0
        )

    def _show(self, end: int) -> str:
        shown, self.shown = self.text[self.shown : end], max(self.shown, end)
        return shown


@dataclass(frozen=True)
class Piece:
    """One token's worth of a stream: the token, the text now shown, and the finish reason if it ends."""

    token: Token
    text: str
    finish: str | None = None


@dataclass
class Generation:
    """One request's generation: its sequence in the engine and the text shown so far."""

    job: Job
    sequence: Any
    started: float = field(default_factory=time.perf_counter)
    tokens: list[Token] = field(default_factory=list)
    finish: str | None = None
    """``eos_token``, ``length`` or ``stop_sequence`` (TGI's words) once done."""
    error: Exception | None = None
    first_token_seconds: float | None = None
    cached_tokens: int = 0
    """The prompt's tokens taken from the engine's prefix cache rather than read."""

    def __post_init__(self) -> None:
        self.visible = StopSequences(self.job.stops, self.job.keep_stop)

    @property
    def done(self) -> bool:
        return self.finish is not None or self.error is not None

    @property
    def text(self) -> str:
        return self.visible.text

    @property
    def prompt_tokens(self) -> int:
        return self.sequence.prompt_tokens

    def receive(self, outcome: Token | Exception) -> Piece | None:
        if isinstance(outcome, Exception):
            self.error = outcome
            return None
        if self.first_token_seconds is None:
            self.first_token_seconds = time.perf_counter() - self.started
            self.cached_tokens = outcome.cached_prompt_tokens
        self.tokens.append(outcome)
        text = self.visible.add(outcome.text)
        if self.visible.stopped:
            self.finish = "stop_sequence"
        elif outcome.finish:
            self.finish = outcome.finish
            text += self.visible.rest()
        return Piece(outcome, text, self.finish)


def iterate(engine: Engine, leaving: Sequence[Generation], joining: Sequence[Generation], stepping: Sequence[Generation]) -> list[tuple[Generation, Token | Exception]]:
    """One iteration on the model's thread: drop ``leaving``, one step for ``stepping``, then read the
    prompts of ``joining`` (their first tokens; they step from the next iteration); each generation's outcome."""
    for generation in leaving:
        engine.leave(generation.sequence)
    outcomes: list[tuple[Generation, Token | Exception]] = []
    if stepping:
        try:
            tokens = engine.step()
        except Exception as error:
            for generation in stepping:
                engine.leave(generation.sequence)
            tokens = {generation.sequence: error for generation in stepping}
        outcomes.extend((generation, tokens[generation.sequence]) for generation in stepping if generation.sequence in tokens)
    for generation in joining:
        try:
            first = engine.join(generation.sequence)
        except Exception as error:
            outcomes.append((generation, error))
            continue
        if first is not None:
            outcomes.append((generation, first))
    if getattr(engine, "reads_joined", False):
        outcomes.extend(_read_joined(engine, [*stepping, *joining], {id(generation) for generation, _ in outcomes}))
    return outcomes


def _read_joined(engine: Engine, generations: list[Generation], answered: set[int]) -> list[tuple[Generation, Token | Exception]]:
    """The first tokens of the prompts the engine read after this iteration's joins."""
    try:
        tokens = engine.read_joined()  # type: ignore[attr-defined]
    except Exception as error:  # its prompts fail; the rows run on
        waiting = [generation for generation in generations if id(generation) not in answered]
        for generation in waiting:
            engine.leave(generation.sequence)
        return [(generation, error) for generation in waiting]
    return [(generation, tokens[generation.sequence]) for generation in generations if generation.sequence in tokens]


def generate_all(engine: Engine, jobs: Sequence[Job]) -> list[Generation | Exception]:
    """Every job generated to its end, on the calling thread (a pipeline's batch of requests); stops
    when every request of the running batch was given up (``widgetd.cancellation``)."""
    results: list[Generation | Exception] = []
    for job in jobs:
        try:
            refuse_unhonoured(engine, job.options)
            results.append(Generation(job, engine.admit(job.prompt, job.options)))
        except Exception as error:
            results.append(error)
    waiting = [generation for generation in results if isinstance(generation, Generation)]
    active: list[Generation] = []
    try:
        while waiting or active:
            cancellation.stop_if_abandoned()
            room = max(1, engine.max_active) - len(active)
            joining, waiting = waiting[:room], waiting[room:]
            for generation, outcome in iterate(engine, [], joining, active):
                generation.receive(outcome)
            leaving = [generation for generation in (*active, *joining) if generation.done]
            active = [generation for generation in (*active, *joining) if not generation.done]
            for generation in leaving:
                engine.leave(generation.sequence)
    finally:
        for generation in active:
            engine.leave(generation.sequence)
    return [generation.error if isinstance(generation, Generation) and generation.error else generation for generation in results]


class Stream:
    """One request's pieces as they are made: ``async for piece in stream``. ``close()`` gives it up:
    its sequence leaves the batch before the next step."""

    def __init__(self, generation: Generation, on_close: Callable[[], None] | None = None) -> None:
        self.generation = generation
        self.closed = False
        self.on_close = on_close
        self._items: deque[Piece | Exception | None] = deque()
        """Pieces not read yet; an error, or None once the generation has ended, last."""
        self._arrived = asyncio.Event()

    def _put(self, item: Piece | Exception | None) -> None:
        self._items.append(item)
        self._arrived.set()

    def deliver(self, outcome: Token | Exception) -> None:
        piece = self.generation.receive(outcome)
        if self.generation.error is not None:
            self._put(self.generation.error)
            return
        self._put(piece)
        if self.generation.done:
            self._put(None)

    def fail(self, error: Exception) -> None:
        """End the stream for its reader with ``error`` (time ran out, the server stops); its sequence
        leaves once the reader closes the stream."""
        self._put(error)

    def close(self) -> None:
        if not self.closed and self.on_close is not None:
            self.on_close()
        self.closed = True

    def ready(self) -> list[Piece]:
        """The pieces already made that were not read yet, without waiting (up to an end or an error)."""
        pieces = []
        while self._items and isinstance(self._items[0], Piece):
            pieces.append(self._items.popleft())
        return pieces

    async def next(self) -> Piece | None:
        """The next piece; None once the generation has ended."""
        while not self._items:
            self._arrived.clear()
            await self._arrived.wait()
        item = self._items[0]
        if item is None:
            return None
        self._items.popleft()
        if isinstance(item, Exception):
            raise item
        return item

    async def __aiter__(self) -> AsyncIterator[Piece]:
        while (piece := await self.next()) is not None:
            yield piece


STEPS_PER_CALL = 256
TIME_PER_CALL = 0.05
"""How long the model's thread keeps stepping unattended (seconds) before it lets the model's other
batches in; it stops at once when a stream joins, ends or is given up."""


class GenerationLoop:
    """One model's continuous batching: the streams being generated step together on the model's
    thread (``executor``, shared with its other batches); new streams join at the next step.

    The model's thread steps on by itself while nothing changes, handing each step's tokens to the
    event loop as it goes, so that sending them overlaps computing the next; a stream that joins,
    ends or is given up brings it back at the next step."""

    def __init__(
        self,
        engine: Engine,
        executor: Executor,
        *,
        max_active: int | None = None,
        max_queue: int = 1024,
        on_iteration: Callable[[int], None] | None = None,
        on_tokens: Callable[[int, int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.executor = executor
        self.max_active = max(1, min(max_active or engine.max_active, engine.max_active))
        self.max_queue = max_queue
        self.on_iteration = on_iteration
        """Told how many sequences run together, at each step."""
        self.on_tokens = on_tokens
        """Told (tokens made, sequences still generating) after each step."""
        self.active: list[Stream] = []
        self.waiting: list[Stream] = []
        self.changed = False
        """Set on the event loop when a stream joins, ends or is given up; read by the model's thread."""
        self._wake: asyncio.Event | None = None
        self._driver: asyncio.Task | None = None
        self._admission: ThreadPoolExecutor | None = None

    async def start(self, job: Job) -> Stream:
        """A stream for ``job``, once its prompt was read and checked (raises ``InvalidInput`` if it cannot run)."""
        if len(self.waiting) >= self.max_queue:
            raise QueueFull(f"{len(self.waiting)} generations are already waiting")
        refuse_unhonoured(self.engine, job.options)
        loop = asyncio.get_running_loop()
        sequence = await loop.run_in_executor(self._admitting(), self.engine.admit, job.prompt, job.options)
        stream = Stream(Generation(job, sequence), on_close=self._changed)
        self.waiting.append(stream)
        if self._driver is None:
            self._wake = asyncio.Event()
            self._driver = loop.create_task(self._drive())
        self._changed()
        return stream

    def _admitting(self) -> Executor:
        """Where ``admit`` runs: on a thread of its own where the engine allows it, so that tokenizing a long
        prompt does not hold up the running streams' next token (vLLM tokenizes outside its engine too);
        else on the model's thread."""
        if not getattr(self.engine, "admits_aside", False):
            return self.executor
        if self._admission is None:
            self._admission = ThreadPoolExecutor(max_workers=1, thread_name_prefix="widgetd-admit")
        return self._admission

    def _changed(self) -> None:
        self.changed = True
        if self._wake is not None:
            self._wake.set()

    async def complete(self, job: Job) -> Generation:
        """The whole generation for ``job``; the caller may cancel it (its sequence then leaves)."""
        stream = await self.start(job)
        try:
            async for _ in stream:
                pass
        finally:
            stream.close()
        return stream.generation

    async def _drive(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self.active and not self.waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            leaving = [stream for stream in self.active if stream.closed or stream.generation.done]
            stepping = [stream for stream in self.active if stream not in leaving]
            self.waiting = [stream for stream in self.waiting if not stream.closed]
            room = self.max_active - len(stepping)
            joining, self.waiting = self.waiting[:room], self.waiting[room:]
            self.changed = bool(self.waiting)  # those still waiting want the model back at once
            streams = {id(stream.generation): stream for stream in (*stepping, *joining)}
            try:
                await loop.run_in_executor(self.executor, self._run, loop, streams, leaving, joining, stepping)
            except RuntimeError as error:  # the executor was shut down: the server is stopping
                for stream in (*stepping, *joining, *self.waiting):
                    stream.fail(error)
                return
            # Every step's tokens were handed over before the call returned (callbacks run in order).
            self.active = [stream for stream in (*stepping, *joining) if not stream.generation.error]

    def _run(self, loop: asyncio.AbstractEventLoop, streams: dict, leaving: list[Stream], joining: list[Stream], stepping: list[Stream]) -> None:
        """On the model's thread: one iteration, then more steps while nothing changes."""
        started = time.perf_counter()
        running = [stream.generation for stream in (*stepping, *joining)]
        outcomes = iterate(self.engine, [s.generation for s in leaving], [s.generation for s in joining], [s.generation for s in stepping])
        for _ in range(STEPS_PER_CALL):
            loop.call_soon_threadsafe(self._deliver, streams, outcomes, len(outcomes))
            ended = {id(generation) for generation, outcome in outcomes if not isinstance(outcome, Token) or outcome.finish}
            # Those without an outcome are still reading their prompts: they run on too.
            running = [generation for generation in running if id(generation) not in ended]
            if not running or self.changed or time.perf_counter() - started > TIME_PER_CALL:
                return
            outcomes = iterate(self.engine, [], [], running)

    def _deliver(self, streams: dict, outcomes: list[tuple[Generation, Token | Exception]], together: int) -> None:
        """On the event loop: one step's outcomes to their streams."""
        if self.on_iteration and together:
            self.on_iteration(together)
        made = 0
        for generation, outcome in outcomes:
            stream = streams[id(generation)]
            if generation.done:
                continue  # a step the model's thread took before it heard the stream had ended
            stream.deliver(outcome)
            made += not isinstance(outcome, Exception)
            if generation.finish == "stop_sequence" or generation.error is not None:
                self.changed = True
        if self.on_tokens:
            self.on_tokens(made, sum(not stream.generation.done for stream in streams.values()))

    def close(self) -> None:
        if self._driver is not None:
            self._driver.cancel()
        if self._admission is not None:
            self._admission.shutdown(wait=False)
