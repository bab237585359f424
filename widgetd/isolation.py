"""Crash isolation (``--isolate``): each model runs in a worker process of its own, so that a crash in its
library (a segfault in native code, an out-of-memory kill) fails only that model's requests.

The server keeps the model's queue and batching; a batch crosses a pipe to the worker as one message and its
answers come back as one. Whether the batch's requests are still waited for is sent along while it runs, so
``widgetd.cancellation`` works in the worker as it does in one process. A worker that dies fails the batch it
was running with a 503 naming the model and how the worker ended; the model is ``restarting`` (in /health and
/info) until a new worker has loaded it, after 1, 2, 4, ... 60 s (reset once a worker lived a minute).

A model that generates text keeps its continuous batching in the server (``widgetd.generating``), which
calls the worker's engine (admit, join, step, leave) across the pipe, a round trip a step for all the
sequences decoding together (and one more while a joined prompt has no first token yet); the worker answers
engine calls on its main thread, so a step costs no thread of its own. A worker that dies ends its streams
with an error event.

What it costs: every worker imports its own torch and library and holds its own copy of the weights (hundreds
of MB and a few seconds more at startup, per model), and every batch or generation step is pickled both ways
(well under a millisecond for texts and tokens, a few for images). Progress events of long jobs
(text-to-image) send only the result.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import pickle
import signal
import threading
import time
from typing import Any, Sequence

from widgetd import cancellation, collector, devices
from widgetd.backends import Backend, ModelSnapshot
from widgetd.errors import ModelWorkerDied, told_to_clients

log = logging.getLogger("widgetd")

BACKOFF_SECONDS = (1, 2, 4, 8, 16, 32, 60)
STABLE_SECONDS = 60.0
"""A worker that lived this long before dying starts the backoff over."""
POLL_SECONDS = 0.05
"""How often the server tells the worker which requests of its batch were given up."""


class IsolatedPipeline:
    """A ``Pipeline`` whose model runs in a worker process, restarted when it dies."""

    def __init__(self, model: Any, backend: Backend, snapshot: ModelSnapshot) -> None:
        self.model, self.backend, self.snapshot = model, backend, snapshot
        self.restarts = 0
        self.last_exit: str | None = None
        self.closed = False
        self._lock = threading.Lock()
        self._connection: Any = None
        self._process: Any = None
        self._started = 0.0
        description = self._start()
        self.tasks = description["tasks"]
        self.placement = description["placement"]
        self.runtime = description["runtime"]
        self.answered_by = description["answered_by"]
        self.memory_bytes = description["memory_bytes"]
        """What loading took in the worker (the server's own memory does not show it)."""
        if description["counts_tokens"]:
            self.count_tokens = self._count_tokens
        if description["engine"]:
            self.engine = RemoteEngine(self, **description["engine"])

    def _start(self) -> dict[str, Any]:
        """A new worker with the model loaded; raises what loading raised."""
        from widgetd.serving import JsonFormatter

        json_logs = any(isinstance(handler.formatter, JsonFormatter) for handler in logging.getLogger().handlers)
        context = multiprocessing.get_context("spawn")  # not fork: a forked torch with threads can hang
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_worker, args=(theirs, self.backend.name, self.snapshot, logging.getLogger().level, json_logs),
            name=f"widgetd-model-{self.model.model_id}", daemon=True,
        )
        process.start()
        theirs.close()
        try:
            kind, *details = ours.recv()
        except (EOFError, OSError):
            process.join(5)
            raise RuntimeError(f"its worker process died while loading it ({_how_it_ended(process.exitcode)})") from None
        if kind == "failed":
            process.join(5)
            raise RuntimeError(details[0])
        self._connection, self._process, self._started = ours, process, time.monotonic()
        log.info("model %s: serving from worker process %d", self.model.model_id, process.pid)
        return details[0]

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._connection is not None else None

    def describe(self) -> dict[str, Any]:
        return {"pid": self.pid, "restarts": self.restarts, **({"last_exit": self.last_exit} if self.last_exit else {})}

    def __call__(self, task: str, requests: Sequence[Any]) -> list[Any]:
        return self.ask(("call", task, list(requests)), requests)

    def _count_tokens(self, texts: list[str]) -> int:
        return self.ask(("count_tokens", texts))

    def ask(self, message: tuple, requests: Sequence[Any] = ()) -> Any:
        """The worker's answer to ``message`` (its error raised here); ``requests``: those whose being given
        up the worker is told of while it works."""
        with self._lock:
            connection = self._connection
            if connection is None:
                raise self._unavailable()
            try:
                connection.send(message)
                given_up = [False] * len(requests)
                while not connection.poll(POLL_SECONDS):
                    now = [cancellation.abandoned(request) for request in requests]
                    if now != given_up:
                        given_up = now
                        connection.send(("given_up", given_up))
                kind, outcome = connection.recv()
            except (EOFError, OSError):
                raise self._died() from None
        if kind == "error":
            raise outcome
        return outcome

    def _unavailable(self) -> ModelWorkerDied:
        return ModelWorkerDied(f"model {self.model.model_id} is restarting: {self.model.public_problem}", BACKOFF_SECONDS[0])

    def _died(self) -> ModelWorkerDied:
        """The worker ended: fail its batch, and start another after the backoff."""
        if self.closed:  # stopped on purpose (the model unloaded) while a batch ran
            return ModelWorkerDied(f"model {self.model.model_id} was unloaded while answering; send the request again", 1)
        self._process.join(5)
        how = _how_it_ended(self._process.exitcode)
        lived = time.monotonic() - self._started
        self._connection.close()
        self._connection = None
        self.last_exit = how
        streak = 0 if lived >= STABLE_SECONDS else self.restarts
        delay = BACKOFF_SECONDS[min(streak, len(BACKOFF_SECONDS) - 1)]
        problem = f"its worker process died ({how}); a new one starts in {delay} s"
        self.model.state, self.model.problem, self.model.public_problem = "restarting", problem, problem
        log.error("model %s: %s", self.model.model_id, problem)
        threading.Thread(target=self._restart, args=(delay,), name=f"widgetd-restart-{self.model.model_id}", daemon=True).start()
        return ModelWorkerDied(f"model {self.model.model_id} failed while answering: {problem}; send the request again", delay)

    def _restart(self, delay: float) -> None:
        while not self.closed:
            time.sleep(delay)
            if self.closed:
                return
            self.restarts += 1
            try:
                self._start()
                if self.closed:  # unloaded while the new worker loaded
                    self.close()
                    return
            except Exception as error:
                delay = BACKOFF_SECONDS[min(self.restarts, len(BACKOFF_SECONDS) - 1)]
                self.model.problem = self.model.public_problem = f"its worker process failed to start again ({told_to_clients(error)}); next try in {delay} s"
                log.error("model %s: %s", self.model.model_id, self.model.problem)
                continue
            self.model.state, self.model.problem, self.model.public_problem = "ready", None, None
            log.info("model %s: serving again (restart %d)", self.model.model_id, self.restarts)
            return

    def close(self) -> None:
        """Stop the worker (unloading the model, or the server stopping)."""
        self.closed = True
        connection, process = self._connection, self._process
        self._connection = None
        if connection is not None:
            try:
                connection.send(("stop",))
            except OSError:
                pass
            connection.close()
        if process is not None:
            threading.Thread(target=_reap, args=(process,), name="widgetd-reap", daemon=True).start()


class RemoteSequence:
    """A sequence generating in the worker, as the server's generation loop holds it."""

    def __init__(self, handle: int, prompt_tokens: int, seed: int | None) -> None:
        self.handle, self.prompt_tokens, self.seed = handle, prompt_tokens, seed


class RemoteEngine:
    """The worker's ``widgetd.generating.Engine``, called across the pipe."""

    def __init__(
        self,
        pipeline: IsolatedPipeline,
        max_active: int,
        chat: bool,
        constrains: bool = False,
        renders_tools: bool = False,
        reads_joined: bool = False,
        alternatives: bool = False,
        memory: dict | None = None,
    ) -> None:
        self.pipeline, self.max_active, self.chat = pipeline, max_active, chat
        self.constrains, self.renders_tools, self.reads_joined, self.memory = constrains, renders_tools, reads_joined, memory
        self.alternatives = alternatives
        self.sequences: dict[int, RemoteSequence] = {}
        self.unanswered: set[int] = set()
        """Joined sequences without a first token (or error) yet: their prompts are queued, held or being read."""

    def admit(self, prompt: Any, options: Any) -> RemoteSequence:
        handle, prompt_tokens, seed = self.pipeline.ask(("engine", "admit", (prompt, options)))
        self.sequences[handle] = sequence = RemoteSequence(handle, prompt_tokens, seed)
        return sequence

    def join(self, sequence: RemoteSequence) -> Any:
        first = self.pipeline.ask(("engine", "join", (sequence.handle,)))
        if first is None:
            self.unanswered.add(sequence.handle)
        return first

    def step(self) -> dict[RemoteSequence, Any]:
        return self._by_sequence(self.pipeline.ask(("engine", "step", ())))

    def read_joined(self) -> dict[RemoteSequence, Any]:
        if not self.unanswered:
            return {}  # nothing to read: no round trip at every step
        return self._by_sequence(self.pipeline.ask(("engine", "read_joined", ())))

    def _by_sequence(self, tokens: dict[int, Any]) -> dict[RemoteSequence, Any]:
        self.unanswered.difference_update(tokens)
        return {self.sequences[handle]: token for handle, token in tokens.items() if handle in self.sequences}

    def leave(self, sequence: RemoteSequence) -> None:
        """Never raises: a sequence of a worker that died left with it."""
        self.unanswered.discard(sequence.handle)
        if self.sequences.pop(sequence.handle, None) is None:
            return
        try:
            self.pipeline.ask(("engine", "leave", (sequence.handle,)))
        except ModelWorkerDied:
            pass


def engine_traits(engine: Any) -> dict[str, Any]:
    """What the server's side needs to know of an engine it calls across the pipe."""
    return {
        "max_active": engine.max_active,
        **{trait: bool(getattr(engine, trait, False)) for trait in ("chat", "constrains", "renders_tools", "reads_joined", "alternatives")},
        "memory": getattr(engine, "memory", None),
    }


def _reap(process: Any) -> None:
    """Wait for a worker told to stop (it ends once its batch is answered), killing it if it does not."""
    process.join(30)
    if process.is_alive():
        process.kill()
        process.join()


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is None:
        return "it stopped answering"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


# -- the worker process ----------------------------------------------------------------------------------


def _worker(connection: Any, backend_name: str, snapshot: ModelSnapshot, log_level: int, json_logs: bool) -> None:
    """The worker's main: load the model with its backend, then answer the server's batches until told to
    stop or until the server is gone (its end of the pipe closes). Its log lines take the server's format."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server stops us itself
    from widgetd.plugins import collect, create_plugin_manager
    from widgetd.serving import JsonFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_logs else logging.Formatter(f"%(levelname)s:     [worker {snapshot.model_id}] %(name)s: %(message)s"))
    logging.basicConfig(level=log_level, handlers=[handler])

    try:
        backend = collect(create_plugin_manager()).backends[backend_name]
        held_before = devices.memory_in_use(snapshot.device)
        pipeline = backend.load(snapshot)
        held_after = devices.memory_in_use(snapshot.device)
        collector.keep_out_of_collections()
    except Exception as error:
        connection.send(("failed", f"{type(error).__name__}: {error}"))
        return
    engine = getattr(pipeline, "engine", None)
    connection.send(("ready", {
        "engine": engine_traits(engine) if engine is not None else None,
        "tasks": getattr(pipeline, "tasks", None),
        "placement": getattr(pipeline, "placement", None),
        "runtime": getattr(pipeline, "runtime", snapshot.runtime),
        "answered_by": getattr(pipeline, "answered_by", None),
        "counts_tokens": getattr(pipeline, "count_tokens", None) is not None,
        "memory_bytes": held_after - held_before if held_before is not None and held_after is not None else None,
    }))
    _answer_until_stopped(connection, pipeline)


def _answer_until_stopped(connection: Any, pipeline: Any) -> None:
    given_up: list[bool] = []
    engine = _EngineHere(pipeline.engine) if getattr(pipeline, "engine", None) is not None else None
    done = threading.Event()
    outcome: list[tuple[str, Any]] = []

    def run(message: tuple) -> None:
        try:
            if message[0] == "count_tokens":
                outcome.append(("answers", pipeline.count_tokens(message[1])))
                return
            if message[0] == "engine":
                outcome.append(("answers", engine.call(message[1], message[2])))
                return
            _, task, requests = message
            flags = {id(request): (lambda index=index: bool(given_up) and given_up[index]) for index, request in enumerate(requests)}
            with cancellation.running(flags):
                outcome.append(("answers", list(pipeline(task, requests))))
        except BaseException as error:  # the server decides what a backend's error means, as in one process
            outcome.append(("error", _sendable_error(error)))
        finally:
            done.set()

    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return  # the server is gone
        if message[0] == "stop":
            return
        if message[0] == "given_up":  # about a batch that has just been answered
            continue
        outcome.clear()
        if message[0] != "call":  # an engine's step, a count: nothing can be given up while they run, so no thread
            run(message)
            _send(connection, outcome[0])
            continue
        given_up[:] = [False] * len(message[2])
        done.clear()
        thread = threading.Thread(target=run, args=(message,), daemon=True)
        thread.start()
        while not done.wait(POLL_SECONDS):
            if connection.poll():
                update = connection.recv()
                if update[0] == "given_up":
                    given_up[:] = update[1]
        _send(connection, outcome[0])


def _send(connection: Any, outcome: tuple[str, Any]) -> None:
    try:
        connection.send(outcome)  # pickled whole before a byte is written
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        # The batch fails; the server then runs its requests one by one, so the one at fault fails alone.
        connection.send(("error", RuntimeError(f"an answer cannot leave the model's worker process: {error}")))


class _EngineHere:
    """The worker's side of ``RemoteEngine``: its sequences by handle."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.sequences: dict[int, Any] = {}
        self.handles = itertools.count(1)

    def call(self, method: str, args: tuple) -> Any:
        if method == "admit":
            sequence = self.engine.admit(*args)
            handle = next(self.handles)
            self.sequences[handle] = sequence
            return handle, sequence.prompt_tokens, getattr(sequence, "seed", None)
        if method == "join":
            return self.engine.join(self.sequences[args[0]])
        if method in ("step", "read_joined"):
            handles = {id(sequence): handle for handle, sequence in self.sequences.items()}
            tokens = getattr(self.engine, method)()
            return {handles[id(sequence)]: _sendable_error(token) if isinstance(token, BaseException) else token for sequence, token in tokens.items() if id(sequence) in handles}
        if method == "leave":
            sequence = self.sequences.pop(args[0], None)
            if sequence is not None:
                self.engine.leave(sequence)
            return None
        raise ValueError(f"no engine method {method!r}")


def _sendable_error(error: BaseException) -> BaseException:
    try:
        return pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
