"""The rules task answers must follow, as small checks that say which rule broke and how."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence


class ContractViolation(AssertionError):
    """A reply that breaks its task's contract. The message names the rule and shows the offender."""


def expect(condition: bool, rule: str) -> None:
    if not condition:
        raise ContractViolation(rule)


def finite(values: Iterable[float], what: str) -> None:
    for index, value in enumerate(values):
        expect(math.isfinite(value), f"{what}[{index}] must be a finite number, got {value!r}")


def scores_are_probabilities(entries: Sequence[Any], what: str = "score") -> None:
    for index, entry in enumerate(entries):
        expect(
            math.isfinite(entry.score) and -1e-6 <= entry.score <= 1 + 1e-6,
            f"{what} of entry {index} must lie in [0, 1], got {entry.score!r}",
        )


def sorted_by_score(entries: Sequence[Any]) -> None:
    scores = [entry.score for entry in entries]
    expect(
        all(a >= b - 1e-6 for a, b in zip(scores, scores[1:])),
        f"entries must be sorted by score, highest first; scores were {scores}",
    )


def at_most(entries: Sequence[Any], limit: int | None, parameter: str) -> None:
    if limit is not None:
        expect(len(entries) <= limit, f"{parameter}={limit} asks for at most {limit} entries, got {len(entries)}")


def labels_unique(entries: Sequence[Any]) -> None:
    labels = [entry.label for entry in entries]
    expect(len(labels) == len(set(labels)), f"labels must not repeat, got {labels}")


def ranked_labels(entries: Sequence[Any], top_k: int | None, probabilities: bool = True) -> None:
    """A classification answer: labels once each, probabilities (else finite raw scores), highest first, at most top_k."""
    expect(len(entries) > 0, "a classification answer must hold at least one label")
    labels_unique(entries)
    if probabilities:
        scores_are_probabilities(entries)
    else:
        finite([entry.score for entry in entries], "score")
    sorted_by_score(entries)
    at_most(entries, top_k, "top_k")


def classified(entries: Sequence[Any], parameters: dict[str, Any]) -> None:
    """A classification answer under ``top_k`` and ``function_to_apply`` (raw scores with "none")."""
    function = parameters.get("function_to_apply")
    ranked_labels(entries, parameters.get("top_k"), probabilities=function != "none")
    if function == "softmax":
        total = sum(entry.score for entry in entries)
        expect(total <= 1 + 1e-3, f"softmax scores must sum to at most 1, got {total}")


def span_of(text: str, start: int, end: int, quoted: str, what: str) -> None:
    """``quoted`` is ``text[start:end]``, and the offsets lie inside ``text``."""
    expect(
        0 <= start <= end <= len(text),
        f"{what}: offsets [{start}:{end}] must satisfy 0 <= start <= end <= {len(text)} (the text's length)",
    )
    expect(
        text[start:end] == quoted,
        f"{what}: {quoted!r} must equal the text at its offsets [{start}:{end}], which is {text[start:end]!r}",
    )


def covers_the_text(text: str, spans: Sequence[tuple[int, int]]) -> None:
    """Every character of ``text`` but whitespace lies in one of ``spans`` (offsets inside the text)."""
    covered = [False] * len(text)
    for start, end in spans:
        expect(0 <= start <= end <= len(text), f"span [{start}:{end}] must lie inside the text of length {len(text)}")
        covered[start:end] = [True] * (end - start)
    missed = [index for index, character in enumerate(text) if not covered[index] and not character.isspace()]
    expect(not missed, f"the entities must cover every word, but {text[missed[0]:missed[0] + 20]!r} (at {missed[0]}) is in none" if missed else "")


def is_a_beginning_of(shorter: str, longer: str) -> bool:
    """Whether ``shorter`` begins ``longer``, allowing for a decoder's trailing space and for a character
    whose bytes the shorter text cut (decoded as U+FFFD)."""
    return longer.startswith(shorter.rstrip().rstrip("\ufffd").rstrip())


def longer_than_one_token(text: str) -> bool:
    """A text no vocabulary holds as one token: three words, or more than 32 characters."""
    return len(text.split()) >= 3 or len(text.strip()) > 32
