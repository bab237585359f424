"""How many replicas serve a model on Ray Serve, and on what: ``--replicas``, ``--autoscale``, ``--num-gpus``.

Plain data, read from the command line and ``widgetd.toml``; ``widgetd.ray`` turns it into Ray Serve's
deployment options. A server that is not on Ray ignores it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from widgetd.errors import WidgetdError

DEFAULT_TARGET_ONGOING_REQUESTS = 16.0
"""Requests per replica the autoscaler aims at: enough for widgetd's batcher to fill batches (Ray's own
default of 2 suits a model answering one request at a time)."""
DEFAULT_SCALE_DOWN_DELAY = 300.0


@dataclass(frozen=True)
class Scaling:
    replicas: int = 1
    """Replicas when not autoscaling."""
    autoscale: tuple[int, int] | None = None
    """(min, max) replicas when autoscaling; min may be 0 (scaled to zero when idle)."""
    target_ongoing_requests: float = DEFAULT_TARGET_ONGOING_REQUESTS
    scale_down_delay: float = DEFAULT_SCALE_DOWN_DELAY
    """Seconds of low load before a replica is stopped (the last one too, with min 0)."""
    num_gpus: float = 0.0
    """GPUs each replica reserves; a fraction packs several small models on one GPU."""
    num_cpus: float = 1.0
    """CPUs each replica reserves (Ray's scheduling, not a limit)."""
    max_replicas_per_node: int | None = None
    """At most this many replicas on one node: 1 spreads them across nodes."""

    @property
    def scales_to_zero(self) -> bool:
        return self.autoscale is not None and self.autoscale[0] == 0

    def describe(self) -> dict[str, Any]:
        scaling: dict[str, Any] = (
            {"min_replicas": self.autoscale[0], "max_replicas": self.autoscale[1], "target_ongoing_requests": self.target_ongoing_requests}
            if self.autoscale
            else {"num_replicas": self.replicas}
        )
        return {**scaling, "num_gpus": self.num_gpus, "num_cpus": self.num_cpus}


def parse_autoscale(value: str) -> tuple[int, int]:
    """``"0:4"`` as (0, 4)."""
    low, colon, high = value.partition(":")
    try:
        bounds = (int(low), int(high))
    except ValueError:
        bounds = None
    if not colon or bounds is None or bounds[0] < 0 or bounds[1] < max(1, bounds[0]):
        raise WidgetdError(f"--autoscale {value!r}: give MIN:MAX replicas, 0 <= MIN <= MAX and MAX >= 1 (e.g. 0:4)")
    return bounds


def check_scaling(scaling: Scaling) -> Scaling:
    if scaling.replicas < 1:
        raise WidgetdError(f"--replicas {scaling.replicas}: a model needs at least 1 replica (--autoscale 0:N scales to zero)")
    if scaling.num_gpus < 0 or scaling.num_cpus < 0:
        raise WidgetdError("--num-gpus and --num-cpus cannot be negative")
    if scaling.target_ongoing_requests <= 0:
        raise WidgetdError(f"--target-ongoing-requests {scaling.target_ongoing_requests:g}: must be more than 0")
    return scaling
