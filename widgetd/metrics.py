"""Prometheus metrics: requests, latency, batch sizes, queue depth, load time (text format 0.0.4)."""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from typing import Iterable, Mapping, Sequence

from widgetd.models import ServedModel

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


RAY_METRICS = (
    ("widgetd_replicas", "gauge", "Replicas running now, by deployment and node."),
    ("widgetd_replica_answers_total", "counter", "Answers by model and replica, for the replicas running now."),
)
"""The families a server on Ray Serve adds (``widgetd.ray``): name, type, help."""


def family_header(name: str, kind: str, meaning: str) -> list[str]:
    return [f"# HELP {name} {meaning}", f"# TYPE {name} {kind}"]


class Histogram:
    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts: dict[tuple, list[int]] = defaultdict(lambda: [0] * len(self.buckets))
        self.sums: dict[tuple, float] = defaultdict(float)
        self.totals: dict[tuple, int] = defaultdict(int)

    def observe(self, labels: tuple, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.buckets):
            self.counts[labels][index] += 1
        self.sums[labels] += value
        self.totals[labels] += 1

    def lines(self, name: str, label_names: Sequence[str]) -> Iterable[str]:
        for labels, counts in sorted(self.counts.items()):
            cumulative = 0
            for bound, count in zip(self.buckets, counts):
                cumulative += count
                yield f"{name}_bucket{_labels(label_names, labels, le=_number(bound))} {cumulative}"
            yield f'{name}_bucket{_labels(label_names, labels, le="+Inf")} {self.totals[labels]}'
            yield f"{name}_sum{_labels(label_names, labels)} {self.sums[labels]}"
            yield f"{name}_count{_labels(label_names, labels)} {self.totals[labels]}"


class Metrics:
    """Updated on the event loop only, so it needs no lock."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batch_sizes = Histogram(BATCH_BUCKETS)
        self.invalid_answers: dict[tuple[str, str], int] = defaultdict(int)
        self.generated_tokens: dict[str, int] = defaultdict(int)
        self.generating: dict[str, int] = defaultdict(int)
        self.first_token = Histogram(LATENCY_BUCKETS)
        self.prompt_tokens: dict[str, int] = defaultdict(int)
        self.cached_prompt_tokens: dict[str, int] = defaultdict(int)

    def observe_request(self, model: str, task: str, status: int, seconds: float) -> None:
        self.requests[(model, task, str(status))] += 1
        self.latency.observe((model, task), seconds)

    def observe_invalid_answer(self, model: str, task: str) -> None:
        self.invalid_answers[(model, task)] += 1

    def observe_generation(self, model: str, tokens: int, active: int) -> None:
        """One step of a model's continuous batching: the tokens it made, the sequences still generating."""
        self.generated_tokens[model] += tokens
        self.generating[model] = active

    def observe_first_token(self, model: str, seconds: float) -> None:
        self.first_token.observe((model,), seconds)

    def observe_prompt(self, model: str, tokens: int, cached: int) -> None:
        """A generation's prompt, once read: its tokens, and those of them the prefix cache held."""
        self.prompt_tokens[model] += tokens
        self.cached_prompt_tokens[model] += cached

    def observe_batch(self, model: str, size: int) -> None:
        self.batch_sizes.observe((model,), size)

    def render(self, models: Sequence[ServedModel], loads: Mapping[str, int] = {}, evictions: Mapping[str, int] = {}) -> str:
        """The metrics as Prometheus text; ``loads`` and ``evictions`` count each on-demand model's loads and unloads."""
        lines = [
            "# HELP widgetd_requests_total Inference requests by model, task and HTTP status.",
            "# TYPE widgetd_requests_total counter",
            *(
                f"widgetd_requests_total{_labels(('model', 'task', 'status'), key)} {count}"
                for key, count in sorted(self.requests.items())
            ),
            "# HELP widgetd_invalid_answers_total Answers a backend gave that broke their task's contract (answered 500).",
            "# TYPE widgetd_invalid_answers_total counter",
            *(
                f"widgetd_invalid_answers_total{_labels(('model', 'task'), key)} {count}"
                for key, count in sorted(self.invalid_answers.items())
            ),
            "# HELP widgetd_request_duration_seconds Time from request to answer.",
            "# TYPE widgetd_request_duration_seconds histogram",
            *self.latency.lines("widgetd_request_duration_seconds", ("model", "task")),
            "# HELP widgetd_batch_size Requests run together in one pipeline call.",
            "# TYPE widgetd_batch_size histogram",
            *self.batch_sizes.lines("widgetd_batch_size", ("model",)),
            "# HELP widgetd_generated_tokens_total Tokens generated, streamed or not.",
            "# TYPE widgetd_generated_tokens_total counter",
            *(
                f"widgetd_generated_tokens_total{_labels(('model',), (model,))} {count}"
                for model, count in sorted(self.generated_tokens.items())
            ),
            "# HELP widgetd_generating_sequences Sequences being generated together (continuous batching).",
            "# TYPE widgetd_generating_sequences gauge",
            *(
                f"widgetd_generating_sequences{_labels(('model',), (model,))} {count}"
                for model, count in sorted(self.generating.items())
            ),
            "# HELP widgetd_prompt_tokens_total Prompt tokens of generations (chat, text generation).",
            "# TYPE widgetd_prompt_tokens_total counter",
            *(f"widgetd_prompt_tokens_total{_labels(('model',), (model,))} {count}" for model, count in sorted(self.prompt_tokens.items())),
            "# HELP widgetd_prompt_cached_tokens_total Prompt tokens taken from the prefix cache instead of read (hit rate: this over widgetd_prompt_tokens_total).",
            "# TYPE widgetd_prompt_cached_tokens_total counter",
            *(
                f"widgetd_prompt_cached_tokens_total{_labels(('model',), (model,))} {count}"
                for model, count in sorted(self.cached_prompt_tokens.items())
            ),
            "# HELP widgetd_time_to_first_token_seconds Time from a generation's start to its first token.",
            "# TYPE widgetd_time_to_first_token_seconds histogram",
            *self.first_token.lines("widgetd_time_to_first_token_seconds", ("model",)),
            "# HELP widgetd_queue_depth Requests waiting for their model.",
            "# TYPE widgetd_queue_depth gauge",
            *(
                f"widgetd_queue_depth{_labels(('model',), (m.model_id,))} {m.queue_depth}"
                for m in models
            ),
            "# HELP widgetd_model_load_seconds Time to download and load each model.",
            "# TYPE widgetd_model_load_seconds gauge",
            *(
                f"widgetd_model_load_seconds{_labels(('model',), (m.model_id,))} {m.load_seconds}"
                for m in models
                if m.load_seconds is not None
            ),
            "# HELP widgetd_model_ready Whether each model is loaded (1) or not (0).",
            "# TYPE widgetd_model_ready gauge",
            *(f"widgetd_model_ready{_labels(('model',), (m.model_id,))} {int(m.ready)}" for m in models),
            "# HELP widgetd_model_loads_total Models loaded on demand (--allow-model).",
            "# TYPE widgetd_model_loads_total counter",
            *(f"widgetd_model_loads_total{_labels(('model',), (model,))} {count}" for model, count in sorted(loads.items())),
            "# HELP widgetd_model_evictions_total Models unloaded to make room or through the admin API.",
            "# TYPE widgetd_model_evictions_total counter",
            *(f"widgetd_model_evictions_total{_labels(('model',), (model,))} {count}" for model, count in sorted(evictions.items())),
            "# HELP widgetd_model_memory_bytes Memory each model took on its device as it loaded.",
            "# TYPE widgetd_model_memory_bytes gauge",
            *(
                f"widgetd_model_memory_bytes{_labels(('model', 'device'), (m.model_id, m.device or 'none'))} {m.memory_bytes}"
                for m in models
                if m.memory_bytes is not None and m.ready
            ),
            "# HELP widgetd_models_loaded Models held now, by device.",
            "# TYPE widgetd_models_loaded gauge",
            *(
                f"widgetd_models_loaded{_labels(('device',), (device,))} {count}"
                for device, count in sorted(Counter(m.device or "none" for m in models if m.ready).items())
            ),
        ]
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str], **extra: str) -> str:
    pairs = [*zip(names, values), *extra.items()]
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in pairs) + "}"
