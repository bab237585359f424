"""Constrained decoding with llguidance: each constrained sequence has a matcher that says, before every token,
which tokens keep its text within the grammar (JSON fitting a schema, a regular expression's match). The
engine masks that sequence's scores and nothing else, so constrained and free sequences share a batch.

llguidance (which vLLM, SGLang and llama.cpp use) was chosen over xgrammar and outlines-core, measured by
``nox -s benchmark_grammars`` on a 32,000-token vocabulary: it compiles a schema in 1-2 ms where outlines-core
builds an index per schema in 60-480 ms (tool schemas change with every request), and computes a sequence's
mask in about 10 us a token (a third of a millisecond a step for 32 sequences, against a step of tens of
milliseconds); xgrammar requires torch and triton of its own. It also names the JSON Schema keywords it does
not implement, which the client then hears in a 400.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from widgetd import InvalidInput
from widgetd.structured import Constraint

COMPACT_JSON = {"whitespace_flexible": False}
"""JSON without free white space: an answer cannot run on in blanks, and it parses all the same."""
CLOSERS = set('"}]')
WRAP_UP_SHARE, WRAP_UP_TOKENS = 0.25, 16
"""A constrained answer's last quarter of its token budget (at least 16 tokens): it is steered to close what is
open (a string, a list, an object), so that it ends whole instead of being cut off mid-way. A model that ends
its answer before then is never steered."""


class Grammars:
    """One model's grammar compiler: its tokenizer as llguidance reads it, built on first use."""

    def __init__(self, tokenizer: Any, vocabulary_size: int, end_ids: set[int]) -> None:
        self.tokenizer, self.vocabulary_size, self.end_ids = tokenizer, vocabulary_size, end_ids
        self._compiled_tokenizer: Any = None
        self._closers: Any = None

    @staticmethod
    def available(tokenizer: Any) -> bool:
        """Whether llguidance is installed and reads this tokenizer (a fast one)."""
        try:
            import llguidance.hf  # noqa: F401
            from transformers import PreTrainedTokenizerFast
        except ImportError:
            return False
        return isinstance(tokenizer, PreTrainedTokenizerFast)

    def matcher(self, constraint: Constraint) -> "SequenceGrammar":
        """The constraint as a matcher for one sequence; a 400 naming the request's field when the grammar cannot
        be built (a keyword of JSON Schema llguidance does not implement, a regular expression that does not parse)."""
        from llguidance import LLMatcher

        try:
            if constraint.kind == "json":
                grammar = LLMatcher.grammar_from_json_schema(constraint.schema or {"type": "object"}, defaults=COMPACT_JSON)
            else:
                grammar = LLMatcher.grammar_from_regex(constraint.pattern or "")
        except Exception as error:  # the client's schema or pattern, whatever llguidance makes of it
            raise InvalidInput(f"{constraint.field}: {_first_line(str(error))}", field=constraint.field) from None
        failed, messages = LLMatcher.validate_grammar_with_warnings(grammar, self._tokenizer())
        if failed:
            raise InvalidInput(f"{constraint.field}: {_first_line(messages[0])}", field=constraint.field)
        matcher = LLMatcher(self._tokenizer(), grammar, log_level=0)
        if matcher.is_error():
            raise InvalidInput(f"{constraint.field}: {_first_line(matcher.get_error())}", field=constraint.field)
        return SequenceGrammar(matcher, constraint.field, self)

    def _tokenizer(self) -> Any:
        if self._compiled_tokenizer is None:
            import llguidance.hf

            self._compiled_tokenizer = llguidance.hf.from_tokenizer(self.tokenizer, n_vocab=self.vocabulary_size, eos_token=sorted(self.end_ids) or None)
        return self._compiled_tokenizer


    def allowed(self, grammars: list["SequenceGrammar"], width: int, steering: list[bool]) -> np.ndarray:
        """Which of ``width`` tokens each grammar allows next (a boolean row each), unpacked together; a row
        ``steering`` (its answer's last stretch, see ``WRAP_UP_SHARE``) keeps only the tokens that close
        something, where any does. (llguidance's parallel executor was measured slower here: its threads
        contend with torch's for the cores.)"""
        from llguidance.numpy import fill_next_token_bitmask

        bitmask = np.full((len(grammars), (self.vocabulary_size + 31) // 32), -1, dtype=np.int32)
        for row, grammar in enumerate(grammars):
            fill_next_token_bitmask(grammar.matcher, bitmask, row)
        allowed = np.zeros((len(grammars), width), dtype=bool)
        bits = np.unpackbits(bitmask.view(np.uint8), axis=1, bitorder="little")[:, :width].astype(bool)
        allowed[:, : bits.shape[1]] = bits
        closers = self.closers()[:width]
        for row in np.flatnonzero(steering):
            closing = allowed[row, : closers.shape[0]] & closers
            if closing.any():
                allowed[row] = False
                allowed[row, : closers.shape[0]] = closing
        return allowed

    def closers(self) -> np.ndarray:
        """Which tokens only close things (``"``, ``}``, ``]``), as a boolean row over the vocabulary."""
        if self._closers is None:
            texts = self.tokenizer.batch_decode([[index] for index in range(len(self.tokenizer))])
            closing = [bool(text) and set(text) <= CLOSERS for text in texts]
            self._closers = np.array(closing + [False] * (self.vocabulary_size - len(closing)), dtype=bool)
        return self._closers


class SequenceGrammar:
    """Where one sequence stands in its grammar."""

    def __init__(self, matcher: Any, field: str, grammars: Grammars) -> None:
        self.matcher, self.field, self.grammars = matcher, field, grammars

    def check(self) -> None:
        """A 400 naming the field if the answer left its grammar (the matcher then allows nothing)."""
        if self.matcher.is_error():
            raise InvalidInput(f"{self.field}: the answer left its grammar: {_first_line(self.matcher.get_error())}", field=self.field)

    @staticmethod
    def steering(tokens_left: int, budget: int) -> bool:
        """Whether the answer is in its last stretch, where it is steered to close what is open."""
        return tokens_left <= max(WRAP_UP_TOKENS, int(budget * WRAP_UP_SHARE))

    def accept(self, token_id: int) -> None:
        self.matcher.consume_token(token_id)

    @property
    def complete(self) -> bool:
        """The text is a whole answer of the grammar and can take nothing more (only the end token)."""
        return self.matcher.is_stopped()


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "the grammar cannot be used"
