"""Generation options from a request: checked before they run, and watched while they run.

A penalty or a temperature can make the next token's probabilities non-finite (a repetition penalty
that float32 rounds to 0 divides by zero; a tiny temperature overflows the scores). That is the
request's fault, so generation stops with a 400 naming the option, for every generating task.
"""

from __future__ import annotations

from typing import Any, Callable

import msgspec

from widgetd import InvalidInput
from widgetd.errors import PayloadTooLarge
from widgetd.cancellation import stop_if_abandoned

NEEDS_CODE_FROM_THE_HUB = {"penalty_alpha": ("contrastive search", 0), "num_beam_groups": ("group beam search", 1)}
"""Generation options that transformers >= 5 only runs with code downloaded from the Hub, each with
the method it asks for and the value that asks for none."""

MOST_BEAMS = 32
"""Beam search keeps this many sequences at most: each beam is a copy of the model's work and memory,
and a request for a hundred thousand of them would take the server down."""

SCORE_CHANGERS = ("repetition_penalty",)
"""Options applied to the scores before sampling, which can leave them NaN or infinite."""


def generation_settings(parameters: Any, field: str) -> tuple:
    """Generation parameters as a hashable tuple of the fields that are set; ``field`` names them in errors."""
    if parameters is None:
        return ()
    for name, (method, off) in NEEDS_CODE_FROM_THE_HUB.items():
        if getattr(parameters, name, None) not in (None, off):
            raise InvalidInput(
                f"{field}.{name}: {method} needs code downloaded from the Hub, which this server never runs",
                field=f"{field}.{name}",
            )
    beams = getattr(parameters, "num_beams", None)
    if beams is not None and beams > MOST_BEAMS:
        raise PayloadTooLarge(
            f"{field}.num_beams: {beams} beams, more than the {MOST_BEAMS} this server searches at once", field=f"{field}.num_beams"
        )
    fields = sorted(msgspec.structs.asdict(parameters).items())
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in fields if v is not None)


def generate_kwargs(settings: tuple | dict, field: str) -> dict[str, Any]:
    """``generate()`` keyword arguments for ``settings``: generation stops when nobody waits for it, and a
    ``ScoreGuard`` watches the scores when an option can break them; ``field`` names the options in
    errors (e.g. ``parameters.generation_parameters``)."""
    from transformers import LogitsProcessorList, StoppingCriteriaList

    kwargs = dict(settings)
    kwargs["stopping_criteria"] = StoppingCriteriaList([StopWhenAbandoned()])
    temperature = kwargs.get("temperature") if kwargs.get("do_sample") else None
    changers = [name for name in SCORE_CHANGERS if kwargs.get(name) is not None]
    if temperature is not None or changers:
        kwargs["logits_processor"] = LogitsProcessorList([ScoreGuard(lambda name: f"{field}.{name}", changers, temperature)])
    return kwargs


class StopWhenAbandoned:
    """A stopping criterion: generation ends within one step once every request of its batch was given up."""

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        stop_if_abandoned()
        import torch

        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class ScoreGuard:
    """A logits processor that stops generation when the scores, or the scores over the temperature
    sampling will divide them by, are no longer finite. transformers runs it after its own processors
    (penalties) and before its sampling warpers (temperature), hence the temperature is checked here."""

    def __init__(self, name_of: Callable[[str], str], changers: list[str], temperature: float | None) -> None:
        self.name_of, self.changers, self.temperature = name_of, changers, temperature

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if bool((torch.isnan(scores) | torch.isposinf(scores)).any()):
            names = " or ".join(self.name_of(name) for name in self.changers) or self.name_of("temperature")
            raise InvalidInput(
                f"{names}: with this value the next token's probabilities are not finite numbers; "
                "use a value nearer 1",
                field=self.name_of((self.changers or ["temperature"])[0]),
            )
        if self.temperature is not None:
            finite = torch.isfinite(scores)
            if bool(torch.isinf(torch.where(finite, scores, 0.0) / self.temperature).any()):
                raise InvalidInput(
                    f"{self.name_of('temperature')} {self.temperature:g}: dividing the scores by it overflows; "
                    "use a larger temperature (or do_sample=false for the most likely tokens)",
                    field=self.name_of("temperature"),
                )
        return scores
