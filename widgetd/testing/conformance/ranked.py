"""Rules for answers that rank things by score, which tie answers to their requests: the model must tell
inputs apart (else no ranking rule can fail), ``top_k`` keeps the best k of the same ranking, and zero-shot
scores belong to their candidate, whatever the candidates' order."""

from __future__ import annotations

import math
from typing import Any, Callable, ClassVar, Sequence

import pytest

from widgetd.testing.conformance.base import LabelledTests, Served, TaskTests
from widgetd.testing.conformance.exchange import Call
from widgetd.testing.conformance.rules import expect

HOW_TO_UNFLATTEN = (
    "Build the test model so that it tells inputs apart: random weights at a larger scale (initializer_range=0.2 "
    "instead of 0.02), or a seeded bias on one output (a label's logit), as widgetd_transformers.testing does."
)


def with_parameters(call: Call, **parameters: Any) -> Call:
    """``call`` with ``parameters`` set (None removes one)."""
    merged = {**call.parameters, **parameters}
    return Call({**call.body, "parameters": {name: value for name, value in merged.items() if value is not None}}, call.headers, call.carries_media)


def spread(scores: Sequence[float]) -> float:
    return max(scores) - min(scores) if len(scores) > 1 else 0.0


class ScoredTests(TaskTests):
    """A task whose answers hold scores. The kit checks its inputs as well as the plugin: a model that gives
    every answer the same scores cannot show a misordered or mismatched score, so the kit says so and fails."""

    def scores_of(self, call: Call, answer: Any) -> list[float]:
        """The scores one answer ranks (a task mixin says where they are)."""
        raise NotImplementedError

    def answers_once(self, served: Served) -> str | None:
        """Why this model may answer every request with one entry (nothing ranked to check), if it may."""
        return None

    def flat_below(self) -> float:
        """Scores closer than this cannot show a defect: ten times what two answers may differ by."""
        return 10 * self.tolerance

    def test_the_model_is_not_too_flat_to_test(self, served, examples, varied_inputs):
        seen = []
        for call in {call.describe(): call for call in [*examples, *varied_inputs]}.values():
            scores = self.scores_of(call, self.decode(served.task, call, self.answer(served, call)))
            if len(scores) > 1:
                seen.append(scores)
        if not seen and self.answers_once(served):
            pytest.skip(self.answers_once(served))
        expect(seen, f"{served.task.name}: no answer to the examples held two scores, so no rule about their order can run. {HOW_TO_UNFLATTEN}")
        widest = max(seen, key=spread)
        expect(
            spread(widest) > self.flat_below(),
            f"{served.task.name}: the model is too flat to test: in every answer to the examples the scores lie within "
            f"{self.flat_below():g} of each other (the widest: {[round(score, 5) for score in widest[:8]]}), so a plugin that "
            f"misorders or mismatches scores would pass. {HOW_TO_UNFLATTEN}",
        )


class TopKTests(ScoredTests):
    """``top_k`` = n answers at most n entries, and the first k of them are ``top_k`` = k's answer."""

    top_k_values: ClassVar[tuple[int, ...]] = (1, 2, 3, 5)

    @pytest.fixture
    def top_k_request(self) -> Callable[[int], Call]:
        """The request the rule ranks, as a function of the ``top_k`` it asks for (a task mixin supplies it)."""
        raise NotImplementedError

    def entries_of(self, answer: Any) -> list[Any]:
        """The ranked entries of an answer (each has a ``score``)."""
        return list(answer)

    def entry_key(self, entry: Any) -> Any:
        """What names an entry (its label, its span), compared between answers."""
        return entry.label

    def test_top_k_keeps_the_best_of_the_same_ranking(self, served, top_k_request):
        answers = {}
        for top_k in self.top_k_values:
            call = top_k_request(top_k)
            answers[top_k] = self.entries_of(self.decode(served.task, call, self.answer(served, call)))
            expect(
                len(answers[top_k]) <= top_k,
                f"{served.task.name}: top_k={top_k} asks for at most {top_k} answers, got {len(answers[top_k])}\n  request: {call.describe()}",
            )
        most = max(self.top_k_values)
        for top_k in self.top_k_values[:-1]:
            self.expect_prefix(served, answers[top_k], answers[most], top_k, most)

    def expect_prefix(self, served: Served, fewer: list[Any], more: list[Any], k: int, n: int) -> None:
        """``fewer`` is ``more``'s first k entries: the same scores in order, and the same entries wherever a
        score is not tied with a neighbour (tied entries may come in either order)."""
        head = more[: len(fewer)]
        expect(
            len(fewer) == min(k, len(more)),
            f"{served.task.name}: top_k={k} answered {len(fewer)} entries, top_k={n} {len(more)}: the first must keep "
            f"min({k}, {len(more)}) of the same ranking",
        )
        close = lambda a, b: math.isclose(a, b, rel_tol=self.tolerance, abs_tol=self.tolerance)  # noqa: E731
        for index, (mine, theirs) in enumerate(zip(fewer, head)):
            expect(
                close(mine.score, theirs.score),
                f"{served.task.name}: top_k={k}'s answer {index} scores {mine.score}, top_k={n}'s {theirs.score}: top_k must keep "
                f"the best of the same ranking, not rank differently",
            )
            scores = [entry.score for entry in more]
            tied = any(close(scores[index], scores[other]) for other in (index - 1, index + 1) if 0 <= other < len(scores))
            expect(
                tied or self.entry_key(mine) == self.entry_key(theirs),
                f"{served.task.name}: top_k={k}'s answer {index} is {self.entry_key(mine)!r}, top_k={n}'s {self.entry_key(theirs)!r}: "
                "the first answers of a larger top_k must be those of a smaller one",
            )


class LabelledTopKTests(TopKTests, LabelledTests):
    """Classification: labels among the model's, scores that tell inputs apart, ``top_k`` a prefix."""


class CandidateTests(ScoredTests):
    """Zero-shot: scores belong to their candidate label, whatever the order of the candidates; with scores
    that sum to one (softmax), adding a candidate never changes the ratio of two others' scores, and with
    scores of each label alone, it changes none of them."""

    def candidates_call(self) -> Call:
        """A request with three or more candidate labels, whose scores differ."""
        raise NotImplementedError

    def scores_sum_to_one_for(self, call: Call) -> bool:
        raise NotImplementedError

    def scores_of(self, call: Call, answer: Any) -> list[float]:
        return [entry.score for entry in answer]

    def scores_by_label(self, served: Served, call: Call) -> dict[str, float]:
        return {entry.label: entry.score for entry in self.decode(served.task, call, self.answer(served, call))}

    def test_scores_belong_to_their_candidate(self, served):
        call = self.candidates_call()
        labels = call.parameters["candidate_labels"]
        first = self.scores_by_label(served, call)
        expect(
            spread(list(first.values())) > self.flat_below(),
            f"{served.task.name}: the model scores the candidates {labels} alike ({first}), so a score given to the wrong "
            f"candidate cannot show. {HOW_TO_UNFLATTEN}",
        )
        for order, reordered in (("reversed", labels[::-1]), ("rotated", labels[1:] + labels[:1])):
            again = self.scores_by_label(served, with_parameters(call, candidate_labels=reordered))
            moved = {label: (first[label], again.get(label)) for label in labels if not self.close(first[label], again.get(label))}
            expect(
                not moved,
                f"{served.task.name}: with the candidates {order} ({reordered}) labels got other scores (label: (before, after)) "
                f"{moved}: each score must belong to its candidate, not to a place in the list\n  request: {call.describe()}",
            )

    def test_adding_a_candidate_keeps_the_others_relation(self, served):
        call = self.candidates_call()
        labels = call.parameters["candidate_labels"]
        before = self.scores_by_label(served, call)
        after = self.scores_by_label(served, with_parameters(call, candidate_labels=[*labels, "something else entirely"]))
        if not self.scores_sum_to_one_for(call):
            changed = {label: (before[label], after.get(label)) for label in labels if not self.close(before[label], after.get(label))}
            expect(not changed, f"{served.task.name}: each label is scored alone, yet adding a candidate changed {changed} (before, after)")
            return
        first, second = sorted(labels, key=lambda label: -before[label])[:2]
        share = lambda scores: scores[first] / (scores[first] + scores[second])  # noqa: E731
        expect(
            self.close(share(before), share(after), scale=10),
            f"{served.task.name}: single-label scores are a softmax over candidates, so adding one must keep the ratio of two "
            f"others: {first!r}:{second!r} was {before[first]:.4g}:{before[second]:.4g}, became {after[first]:.4g}:{after[second]:.4g}",
        )

    def close(self, left: float, right: float | None, scale: float = 1) -> bool:
        return right is not None and math.isclose(left, right, rel_tol=self.tolerance * scale, abs_tol=self.tolerance * scale)
