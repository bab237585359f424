"""How the kit draws generated requests: the same ones on every run, or new ones to explore.

By default every run sends the same requests (Hypothesis derandomized, no example database), so a
plugin's CI passes or fails for its code, never for the luck of the draw. Exploring
(``pytest --widgetd-explore`` or ``WIDGETD_EXPLORE=1``) draws many more requests from a seed that
the report header prints; a failure says how to replay it. What exploring finds belongs in a
fixed example, where every run checks it.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any, Callable

EXPLORE_FACTOR = 10
"""Exploring sends this many times the deterministic number of requests per property."""


@dataclass(frozen=True)
class Exploration:
    explore: bool = False
    seed: int = 0
    examples: int | None = None
    """Requests per property when exploring; None: EXPLORE_FACTOR times the class's ``max_examples``."""

    @classmethod
    def from_options(cls, explore: bool, examples: int | None, chosen_seed: int | None) -> Exploration:
        explore = explore or os.environ.get("WIDGETD_EXPLORE", "").lower() in ("1", "true", "yes")
        examples = examples or _int(os.environ.get("WIDGETD_EXPLORE_EXAMPLES"))
        chosen_seed = chosen_seed if chosen_seed is not None else _int(os.environ.get("WIDGETD_SEED"))
        if chosen_seed is None:
            chosen_seed = random.SystemRandom().randrange(2**32) if explore else 0
        return cls(explore, chosen_seed, examples)

    def describe(self) -> str:
        if not self.explore:
            return "widgetd conformance kit: deterministic (the same generated requests on every run)"
        return f"widgetd conformance kit: exploring with seed {self.seed} ({self.examples or f'{EXPLORE_FACTOR}x'} requests per property)"

    def replay(self) -> str:
        if not self.explore:
            return "(deterministic run: every run sends these requests; pytest --widgetd-explore draws new ones)"
        return (
            f"(explored with seed {self.seed}: `pytest --widgetd-explore --widgetd-seed {self.seed}` or "
            f"WIDGETD_EXPLORE=1 WIDGETD_SEED={self.seed} replays it; make the request a fixed example)"
        )

    def check_all(self, strategy: Any, check: Callable[[Any], None], max_examples: int) -> None:
        """Run ``check`` on requests drawn from the Hypothesis ``strategy``; a failure notes how to replay it."""
        from hypothesis import given, seed

        test = self._settings(max_examples)(given(strategy)(check))
        if self.explore:
            test = seed(self.seed)(test)
        try:
            test()
        except BaseException as failure:
            failure.add_note(self.replay())
            raise

    def _settings(self, max_examples: int) -> Any:
        from hypothesis import HealthCheck, settings

        common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True)
        if self.explore:
            return settings(max_examples=self.examples or EXPLORE_FACTOR * max_examples, derandomize=False, **common)
        return settings(max_examples=max_examples, derandomize=True, database=None, **common)


def _int(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None
