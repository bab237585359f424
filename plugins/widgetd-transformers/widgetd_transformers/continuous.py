"""Continuous batching for causal language models: the engine behind text-generation and chat.

Every sequence being generated is one row of a single batch whose key/value cache is padded on the
left (``widgetd_transformers.rows_cache``). A new sequence reads its prompt, or only the part of it past a
prefix whose keys and values were kept from an earlier prompt (``widgetd_transformers.prefixes``); prompts
that joined together are read in one forward pass, padded; while others run, a long prompt is read a chunk
per step between their tokens (chunked prefill, ``widgetd_transformers.prefill``), so that they do not wait
for all of it. Then it joins the batch; each ``step`` decodes one token for every row at once; a finished or
abandoned row leaves, and the padding nobody needs any more is cut. Models whose cache cannot be
padded this way (sliding windows, state-space layers) generate one sequence at a time.
"""

from __future__ import annotations

import dataclasses
import inspect
import random
from typing import Any

import numpy as np

from widgetd import InvalidInput, ModelSnapshot
from widgetd.generating import Alternative, GenerationOptions, Prompt, Token
from widgetd.limits import Limits
from widgetd_transformers.generate_options import ScoreGuard
from widgetd_transformers.grammars import Grammars, SequenceGrammar
from widgetd_transformers.memory import KvAdmission, default_budget, kv_bytes_per_token
from widgetd_transformers.prefill import PrefillPace
from widgetd_transformers.prefixes import PrefixCache, recording_every_position, windowed
from widgetd_transformers.rows_cache import cache_keyword, refill_order, rows_layer_class

MAX_ACTIVE = 32
"""Sequences decoding together at most on a CPU: past this, one more row costs it more than it gains."""
GPU_MAX_ACTIVE = 256
"""On a GPU (vLLM's default), within the key/value memory the sequences may take (``memory``)."""
PIPELINE_NEW_TOKENS = 256
"""New tokens when neither the request nor the model's generation config says: the transformers
text-generation pipeline's default (its documented ``max_new_tokens``)."""
DECODING_CONTEXT = 4
"""Prompt tokens decoded before the first new one, so that its text starts as it would in the middle
of the text (a leading space, a word's continuation)."""
TOGETHER_TOKENS = 8192
"""Tokens (padding included) that prompts read together in one forward pass hold at most."""


class Detokenizer:
    """A sequence's new text, token by token, never ending inside a character (TGI's and vLLM's way:
    decode a few tokens before the new ones and keep only what they add)."""

    def __init__(self, tokenizer: Any, context: list[int]) -> None:
        self.tokenizer = tokenizer
        self.ids = list(context)
        self.prefix = 0
        self.read = len(self.ids)

    def add(self, token_id: int, last: bool) -> str:
        self.ids.append(token_id)
        before = self._decode(self.ids[self.prefix : self.read])
        after = self._decode(self.ids[self.prefix :])
        if len(after) <= len(before) or (after.endswith("\ufffd") and not last):
            return ""  # half a character, or a token with no text: wait for the next
        self.prefix, self.read = self.read, len(self.ids)
        return after[len(before) :]

    def alternatives(self, token_ids: list[int], special: set[int]) -> list[str]:
        """The text each token would add here, as ``add`` would show it (a leading space, a word's continuation);
        a special token's own name, which ``add`` would not show."""
        before = self._decode(self.ids[self.prefix :])
        texts = []
        for token_id in token_ids:
            after = "" if token_id in special else self._decode([*self.ids[self.prefix :], token_id])
            alone = after[len(before) :] if after.startswith(before) and len(after) > len(before) else ""
            texts.append(alone or self.tokenizer.decode([token_id], clean_up_tokenization_spaces=False))
        return texts

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


class TokenChooser:
    """How one sequence picks its next token: the model's generation config, overridden by the request,
    applied as ``generate()`` would (penalties, then temperature, top-k, top-p, typical-p, then sampling)."""

    def __init__(self, options: GenerationOptions, defaults: Any, device: Any) -> None:
        import torch
        from transformers import (
            LogitsProcessorList, RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper,
            TopPLogitsWarper, TypicalLogitsWarper,
        )

        def setting(name: str) -> Any:
            value = getattr(options, name)
            return value if value is not None else getattr(defaults, name, None)

        self.sample = bool(setting("do_sample"))
        penalties, warpers = LogitsProcessorList(), LogitsProcessorList()
        changers = []
        if setting("repetition_penalty") not in (None, 1.0):
            penalties.append(RepetitionPenaltyLogitsProcessor(setting("repetition_penalty")))
            changers.append("repetition_penalty")
        if options.frequency_penalty or options.presence_penalty:
            penalties.append(OccurrencePenalty(options.frequency_penalty or 0.0, options.presence_penalty or 0.0))
            changers += [name for name in ("frequency_penalty", "presence_penalty") if getattr(options, name)]
        temperature = setting("temperature") if self.sample else None
        if self.sample:
            if temperature not in (None, 1.0):
                warpers.append(TemperatureLogitsWarper(temperature))
            if setting("top_k"):
                warpers.append(TopKLogitsWarper(setting("top_k")))
            if setting("top_p") not in (None, 1.0):
                warpers.append(TopPLogitsWarper(setting("top_p")))
            if setting("typical_p") not in (None, 1.0):
                warpers.append(TypicalLogitsWarper(setting("typical_p")))
        # Checked where generate() checks: after the penalties, before the temperature divides.
        self.guard = ScoreGuard(options.named, changers, temperature) if (changers or temperature is not None) else None
        self.penalties, self.warpers = penalties, warpers
        self.plain = not penalties and not self.sample
        """Greedy on the model's own scores: the whole batch's rows are chosen at once."""
        self.seed = (options.seed if options.seed is not None else random.getrandbits(63)) if self.sample else options.seed
        self.generator = None
        if self.sample:
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(self.seed)

    def __call__(self, history: Any, scores: Any) -> tuple[int, Any]:
        """The next token and the log-probabilities it was chosen from (1 x vocabulary), from one row's
        ``scores`` (1 x vocabulary)."""
        import torch

        scores = self.penalties(history, scores)
        if self.guard is not None:
            self.guard(history, scores)
        scores = self.warpers(history, scores)
        logprobs = torch.log_softmax(scores, dim=-1)
        if self.sample:
            chosen = int(torch.multinomial(logprobs.exp(), 1, generator=self.generator)[0, 0])
        else:
            chosen = int(scores.argmax(-1)[0])
        return chosen, logprobs


class OccurrencePenalty:
    """OpenAI's frequency and presence penalties, over the tokens generated so far."""

    def __init__(self, frequency: float, presence: float) -> None:
        self.frequency, self.presence = frequency, presence
        self.generated_from: int | None = None

    def __call__(self, history: Any, scores: Any) -> Any:
        import torch

        generated = history[:, self.generated_from :] if self.generated_from is not None else history[:, :0]
        counts = torch.zeros_like(scores).scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)


class Sequence:
    """One request being generated: its tokens, how it picks the next, and how many it may add."""

    def __init__(
        self, prompt_ids: list[int], room: int, chooser: TokenChooser, detokenizer: Detokenizer, grammar: SequenceGrammar | None = None,
        alternatives: int = 0,
    ) -> None:
        self.ids = list(prompt_ids)
        self.prompt_tokens = len(prompt_ids)
        self.room = room
        self.chooser = chooser
        self.detokenizer = detokenizer
        self.grammar = grammar
        """What its text must be (``response_format``, a forced tool call, TGI's ``grammar``), if anything."""
        self.alternatives = alternatives
        """How many of the most likely tokens each of its tokens reports (``top_logprobs``)."""
        self.seed = chooser.seed
        self.cached_tokens = 0
        """How many of the prompt's tokens were taken from the prefix cache when it joined."""
        self.read = 0
        """How many of the prompt's tokens are in its cache (taken or read)."""
        for processor in chooser.penalties:
            if isinstance(processor, OccurrencePenalty):
                processor.generated_from = self.prompt_tokens

    @property
    def generated(self) -> int:
        return len(self.ids) - self.prompt_tokens


class CausalEngine:
    """The ``widgetd.generating.Engine`` of a causal language model (any ``AutoModelForCausalLM``)."""

    def __init__(
        self,
        tokenizer: Any,
        model: Any,
        device: Any,
        max_active: int | None = None,
        prefix_cache_bytes: int = 0,
        prefill_chunk: int = Limits.prefill_chunk,
        kv_cache_bytes: int = 0,
    ) -> None:
        self.tokenizer, self.model, self.device = tokenizer, model, device
        # A tokenizer saved with truncation or padding turns them off in its backend on its first call, a
        # write that would clash with the model's thread decoding: done now, later calls only read it, so
        # ``admit`` may tokenize beside the steps (``admits_aside``).
        tokenizer("", add_special_tokens=False)
        config = model.config
        self.context = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 10**9
        self.defaults = model.generation_config
        lengths = self.defaults.to_diff_dict()
        self.model_lengths = {name: lengths[name] for name in ("max_new_tokens", "max_length") if lengths.get(name)}
        self.end_ids = _end_token_ids(self.defaults, tokenizer)
        self.special_ids = set(tokenizer.all_special_ids)
        on_gpu = getattr(device, "type", str(device)) == "cuda"
        self.pads = _paddable_cache(model)
        """Whether rows share one padded cache (``rows_cache``); else one sequence runs at a time."""
        self.max_active = (max_active or (GPU_MAX_ACTIVE if on_gpu else MAX_ACTIVE)) if self.pads else 1
        self.constrains = Grammars.available(tokenizer)
        self.grammars = Grammars(tokenizer, _vocabulary_size(model, tokenizer), self.end_ids)
        self.last_logits_only = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
        """What makes the model's forward score only the last position, where it can."""
        self.cache_keyword = cache_keyword(model)
        self.prefixes = _prefix_cache(model, prefix_cache_bytes)
        self.pace = PrefillPace(max(0, prefill_chunk), device)
        self.kv = KvAdmission(kv_bytes_per_token(model), kv_cache_bytes or default_budget(device, prefix_cache_bytes if self.prefixes else 0))
        self.held: list[Sequence] = []
        """Joined, waiting for the key/value memory to start (first come, first started)."""
        self.reading: dict[Sequence, Any] = {}
        """The sequences whose prompts are being read, a chunk per step, with their caches."""
        self.rows: list[Sequence] = []
        self.cache: Any = None
        self.mask: Any = None
        """[rows, cached positions]: 1 where a row has a token, 0 for its padding."""
        self.paced = False
        """Whether this iteration's ``step`` began the prefill budget ``read_joined`` spends."""

    alternatives = True
    """Tokens report the ``top_logprobs`` most likely tokens, from the distribution they were chosen from."""
    admits_aside = True
    """``admit`` only tokenizes and checks a prompt: it may run while the model steps."""

    @property
    def chat(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def renders_tools(self) -> bool:
        """Whether the chat template shows the model the tools it may call (it reads ``tools``; a template per
        use, as Hermes models ship, counts when any of them does)."""
        return "tools" in str(getattr(self.tokenizer, "chat_template", None) or "")

    def admit(self, prompt: Prompt, options: GenerationOptions) -> Sequence:
        field = "messages" if prompt.messages is not None else "inputs"
        grammar = self.grammars.matcher(options.constraint) if options.constraint is not None else None
        if prompt.messages is not None:
            ids = self._chat_ids(prompt.messages, prompt.tools)
        else:
            ids = self.tokenizer(prompt.text)["input_ids"]
        if options.truncate is not None:
            ids = ids[-options.truncate :]
        if not ids:
            if self.tokenizer.bos_token_id is None:
                raise InvalidInput(f"{field}: the prompt is empty and this model has no start token to begin from", field=field)
            ids = [self.tokenizer.bos_token_id]
        if len(ids) >= self.context:
            raise InvalidInput(
                f"{field}: the prompt is {len(ids)} tokens, this model's context holds {self.context}; shorten it"
                + (" or pass parameters.truncate" if field == "inputs" else ""),
                field=field,
            )
        chooser = TokenChooser(options, self.defaults, self.device)
        detokenizer = Detokenizer(self.tokenizer, ids[-DECODING_CONTEXT:])
        return Sequence(ids, self._room(len(ids), options.max_new_tokens), chooser, detokenizer, grammar, options.top_logprobs)

    def _chat_ids(self, messages: Any, tools: Any = None) -> list[int]:
        if not self.chat:
            raise InvalidInput("messages: this model has no chat template; send its prompt to text-generation instead", field="messages")
        try:
            text = self.tokenizer.apply_chat_template(list(messages), tools=list(tools) if tools else None, tokenize=False, add_generation_prompt=True)
        except Exception as error:  # the template's own checks (roles alternating, a system message first, ...)
            raise InvalidInput(f"messages: the model's chat template refused them: {error}", field="messages") from None
        # The template writes the start token itself where the model wants one.
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _room(self, length: int, wanted: int | None) -> int:
        """New tokens at most: the request's, else the model's generation config's, else the pipeline's
        default; never past the model's context."""
        if wanted is None:
            wanted = self.model_lengths.get("max_new_tokens")
        if wanted is None and "max_length" in self.model_lengths:
            wanted = max(1, self.model_lengths["max_length"] - length)
        return min(wanted or PIPELINE_NEW_TOKENS, self.context - length)

    @property
    def memory(self) -> dict[str, Any]:
        return self.kv.describe()

    reads_joined = True
    """``join`` only queues a prompt; ``read_joined`` reads the queued prompts after each iteration's joins,
    several short ones together in one forward pass."""

    def join(self, sequence: Sequence) -> None:
        """Queue the sequence's prompt to be read once its key/value cache fits beside the others' (held until
        then, after any held before it); ``read_joined`` reads it and answers its first token."""
        if self.held or not self.kv.fits([*self.rows, *self.reading], sequence):
            self.held.append(sequence)
            return None
        self._start(sequence)
        return None

    def _start(self, sequence: Sequence) -> None:
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        if self.prefixes is not None:
            recording_every_position(cache)
            sequence.cached_tokens = self.prefixes.reuse(sequence.ids, cache)
        sequence.read = sequence.cached_tokens
        self.reading[sequence] = cache
        self._reserve_room()

    def step(self) -> dict[Sequence, Token | Exception]:
        """One token for every row; the prompts being read go on in ``read_joined``."""
        self.pace.begin(rows_running=bool(self.rows))
        self.paced = True
        if not self.rows:
            return {}
        timer = self.pace.timed()
        outcomes = self._decode()
        self.pace.decoded(timer.seconds())
        return outcomes

    def read_joined(self) -> dict[Sequence, Token | Exception]:
        """What this iteration's budget allows of the prompts being read (after the held sequences that now
        fit start): all of them when no row waits for a token, else chunks filling about a decode step's
        time, the oldest prompt first; first tokens of those read to their end."""
        if not self.paced:  # no step this iteration: nobody runs
            self.pace.begin(rows_running=bool(self.rows))
        self.paced = False
        outcomes: dict[Sequence, Token | Exception] = {}
        while self.held and self.kv.fits([*self.rows, *self.reading], self.held[0]):
            sequence = self.held.pop(0)
            try:
                self._start(sequence)
            except Exception as error:
                outcomes[sequence] = error
        while self.reading:
            together, count = self._next_read()
            if not together:
                break
            unbounded = self.pace.unbounded
            outcomes.update(self._read_chunk(together[0], count) if count else self._read_together(together))
            if unbounded and self.rows:
                self.pace.begin(rows_running=True)  # the rows just started wait for the rest
            elif count and together[0] in self.reading:
                break  # the oldest prompt took what the step had
        return outcomes

    def _next_read(self) -> tuple[list[Sequence], int]:
        """The oldest prompt being read, with how many of its tokens to read (0: it and others are read to
        their ends together); none when the step's budget is spent. Later prompts join it while the padded
        batch fits the budget and padding is at most half of it."""
        oldest = next(iter(self.reading))
        rest = len(oldest.ids) - oldest.read
        count = self.pace.chunk(rest)
        if count <= 0:
            return [], 0
        if count < rest or not self.pads:
            return [oldest], count
        together, longest, tokens = [oldest], rest, rest
        for sequence in list(self.reading)[1:]:
            left = len(sequence.ids) - sequence.read
            padded = (len(together) + 1) * max(longest, left)
            if padded <= 2 * (tokens + left) and padded <= TOGETHER_TOKENS and self.pace.fits(padded):
                together.append(sequence)
                longest, tokens = max(longest, left), tokens + left
        return together, 0 if len(together) > 1 else rest

    def _reserve_room(self) -> None:
        """Room in the rows' cache for the longest prompt being read, made now (its time taken from this step's
        chunk), so that the step it joins in does not copy the whole cache to pad it."""
        if self.cache is None or not self.pads:
            return
        timer = self.pace.timed()
        longest = max((len(sequence.ids) for sequence in self.reading), default=0)
        for layer in self.cache.layers:
            layer.reserve(longest)
        self.pace.spent(timer.seconds())

    def _read_chunk(self, sequence: Sequence, count: int) -> dict[Sequence, Token | Exception]:
        """``count`` more of one prompt, read into its own cache; its first token once it is all read."""
        import torch

        if self.cache is not None and self.pads:
            # The room reserved for it, zeroed a share per chunk: all of it by its last.
            for layer in self.cache.layers:
                layer.prepare(count / (len(sequence.ids) - sequence.read))
        cache = self.reading[sequence]
        chunk = sequence.ids[sequence.read : sequence.read + count]
        timer = self.pace.timed()
        try:
            with torch.inference_mode():
                out = self.model(input_ids=torch.tensor([chunk], device=self.device), use_cache=True, **{self.cache_keyword: cache}, **self.last_logits_only)
        except Exception as error:  # it fails alone
            self._stop_reading([sequence])
            return {sequence: error}
        self.pace.read(count, timer.seconds())
        sequence.read += len(chunk)
        if sequence.read < len(sequence.ids):
            return {}
        self._stop_reading([sequence])
        if self.prefixes is not None:
            self.prefixes.keep(sequence.ids, cache, sequence.cached_tokens)
            windowed(cache)
        # The prompt's tokens, not the cache's length: a sliding window keeps fewer keys than it has read.
        mask = torch.ones((1, sequence.prompt_tokens), dtype=torch.long, device=self.device)
        return self._first_tokens([sequence], cache, mask, out.logits[:, -1, :].float())

    def _read_together(self, sequences: list[Sequence]) -> dict[Sequence, Token | Exception]:
        """The rest of several prompts read in one forward pass: each row is the prompt's cache so far (padded
        on the left to the longest), then its unread tokens (padded on the left to the most), so that every
        row ends at the last column; the mask hides the padding."""
        import torch

        cached = max(sequence.read for sequence in sequences)
        unread = [len(sequence.ids) - sequence.read for sequence in sequences]
        longest = max(unread)
        ids = torch.zeros((len(sequences), longest), dtype=torch.long)
        mask = torch.zeros((len(sequences), cached + longest), dtype=torch.long)
        for row, (sequence, left) in enumerate(zip(sequences, unread)):
            ids[row, longest - left :] = torch.tensor(sequence.ids[sequence.read :])
            mask[row, cached - sequence.read : cached] = 1
            mask[row, cached + longest - left :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        timer = self.pace.timed()
        try:
            cache = self._stacked_caches(sequences, cached)
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)[:, cached:]
            with torch.inference_mode():
                out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **{self.cache_keyword: cache}, **self.last_logits_only)
                hidden = (mask == 0)[:, None, :, None]
                for layer in cache.layers:  # padding must hold numbers (see ``rows_cache``)
                    layer.keys.masked_fill_(hidden, 0)
                    layer.values.masked_fill_(hidden, 0)
        except Exception as error:  # e.g. out of memory: these prompts fail, the rows run on
            self._stop_reading(sequences)
            return dict.fromkeys(sequences, error)
        self.pace.read(len(sequences) * longest, timer.seconds())
        self._stop_reading(sequences)
        for row, sequence in enumerate(sequences):
            sequence.read = len(sequence.ids)
            if self.prefixes is not None:
                self.prefixes.keep(sequence.ids, _cache_row(cache, mask, row), sequence.cached_tokens)
        return self._first_tokens(sequences, cache, mask, out.logits[:, -1, :].float())

    def _stacked_caches(self, sequences: list[Sequence], width: int) -> Any:
        """One cache of the sequences' caches so far, a row each, padded with zeros on the left to ``width``."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        if not width:
            return cache
        for number in range(len(cache.layers)):
            layers = [(sequence.read, self.reading[sequence].layers[number]) for sequence in sequences]
            filled = next(layer for read, layer in layers if read)
            keys = filled.keys.new_zeros((len(sequences), filled.keys.shape[1], width, filled.keys.shape[3]))
            values = filled.values.new_zeros((len(sequences), filled.values.shape[1], width, filled.values.shape[3]))
            for row, (read, layer) in enumerate(layers):
                if read:
                    keys[row, :, width - read :] = layer.keys[0]
                    values[row, :, width - read :] = layer.values[0]
            cache.update(keys, values, number)
        return cache

    def _stop_reading(self, sequences: list[Sequence]) -> None:
        """The sequences are no longer read; the room kept for prompts being read follows the longest left."""
        stopped = False
        for sequence in sequences:
            stopped |= self.reading.pop(sequence, None) is not None
        if stopped:
            self._reserve_room()

    def _first_tokens(self, sequences: list[Sequence], cache: Any, mask: Any, logits: Any) -> dict[Sequence, Token | Exception]:
        """The first token of each sequence whose prompt (row ``i`` of ``cache``) is read; those it does not
        end join the rows."""
        outcomes = self._choose(sequences, logits)
        joining = [row for row, outcome in enumerate(outcomes) if not isinstance(outcome, Exception) and outcome.finish is None]
        self._add_rows([sequences[row] for row in joining], cache, mask, joining)
        return {
            sequence: outcome if isinstance(outcome, Exception) else dataclasses.replace(outcome, cached_prompt_tokens=sequence.cached_tokens)
            for sequence, outcome in zip(sequences, outcomes)
        }

    def _decode(self) -> dict[Sequence, Token | Exception]:
        import torch

        rows = list(self.rows)
        last = torch.tensor([[row.ids[-1]] for row in rows], device=self.device)
        positions = self.mask.sum(dim=1, keepdim=True)
        self.mask = torch.cat([self.mask, torch.ones_like(positions)], dim=1)
        with torch.inference_mode():
            out = self.model(input_ids=last, attention_mask=self.mask, position_ids=positions, use_cache=True, **{self.cache_keyword: self.cache})
        outcomes = self._choose(rows, out.logits[:, -1, :].float())
        self._drop([row for row, outcome in zip(rows, outcomes) if isinstance(outcome, Exception) or outcome.finish])
        return dict(zip(rows, outcomes))

    def leave(self, sequence: Sequence) -> None:
        self._stop_reading([sequence])
        if sequence in self.held:
            self.held.remove(sequence)
        self._drop([sequence])

    def _choose(self, rows: list[Sequence], logits: Any) -> list[Token | Exception]:
        import torch

        refused = self._constrain(rows, logits)
        logprobs = torch.log_softmax(logits, dim=-1)
        greedy = logits.argmax(dim=-1, keepdim=True)
        greedy_logprobs = logprobs.gather(1, greedy).squeeze(1).tolist()
        greedy = greedy.squeeze(1).tolist()
        outcomes: list[Token | Exception] = []
        for index, row in enumerate(rows):
            if index in refused:
                outcomes.append(refused[index])
                continue
            try:
                if row.chooser.plain:
                    chosen, logprob = greedy[index], greedy_logprobs[index]
                    chosen_from = logprobs[index : index + 1] if row.alternatives else None
                else:
                    history = torch.tensor([row.ids], device=logits.device)
                    chosen, chosen_from = row.chooser(history, logits[index : index + 1])
                    logprob = float(chosen_from[0, chosen])
            except InvalidInput as error:
                outcomes.append(error)
                continue
            outcomes.append(self._token(row, chosen, logprob, self._alternatives(row, chosen_from)))
        return outcomes

    def _alternatives(self, row: Sequence, logprobs: Any) -> tuple[Alternative, ...]:
        """The row's ``alternatives`` most likely tokens in ``logprobs`` (1 x vocabulary), if it asked for any."""
        if not row.alternatives:
            return ()
        values, ids = logprobs[0].topk(min(row.alternatives, logprobs.shape[-1]))
        ids = ids.tolist()
        texts = row.detokenizer.alternatives(ids, self.special_ids)
        return tuple(Alternative(id=token_id, text=text, logprob=value) for token_id, text, value in zip(ids, texts, values.tolist()))

    def _constrain(self, rows: list[Sequence], logits: Any) -> dict[int, Exception]:
        """Every constrained row's scores masked to what its grammar allows next, in place and at once (greedy
        rows then choose with the rest of the batch); the rows whose grammar failed, by index."""
        import torch

        constrained, refused = [], {}
        for index, row in enumerate(rows):
            if row.grammar is None:
                continue
            try:
                row.grammar.check()
                constrained.append(index)
            except InvalidInput as error:
                refused[index] = error
        if constrained:
            grammars = [rows[index].grammar for index in constrained]
            steering = [grammar.steering(rows[index].room - rows[index].generated, rows[index].room) for index, grammar in zip(constrained, grammars)]
            mask = torch.from_numpy(self.grammars.allowed(grammars, logits.shape[-1], steering)).to(logits.device)
            chosen = torch.tensor(constrained, device=logits.device)
            with torch.inference_mode():  # the scores are the model's inference tensor
                logits[chosen] = logits[chosen].masked_fill(~mask, float("-inf"))
        return refused

    def _token(self, row: Sequence, chosen: int, logprob: float, alternatives: tuple[Alternative, ...] = ()) -> Token:
        row.ids.append(chosen)
        complete = False
        if row.grammar is not None and chosen not in self.end_ids:
            row.grammar.accept(chosen)
            complete = row.grammar.complete  # nothing but the end token could follow: end here
        finish = "eos_token" if chosen in self.end_ids or complete else "length" if row.generated >= row.room else None
        # The end token itself has no text; it may complete what was held back of the last character.
        text = row.detokenizer.add(chosen, last=finish is not None)
        return Token(id=chosen, text=text, logprob=logprob, special=chosen in self.special_ids, finish=finish, alternatives=alternatives)

    def _add_rows(self, sequences: list[Sequence], cache: Any, mask: Any, rows: list[int]) -> None:
        """``sequences`` join the rows: each is row ``rows[i]`` of ``cache``, whose positions ``mask`` tells."""
        import torch

        if not sequences:
            return
        if not self.pads:  # one sequence at a time, in its own cache
            self.rows, self.cache, self.mask = list(sequences), cache, mask
            return
        if not self.rows:
            index = torch.tensor(rows, device=self.device)
            mask = mask[index]
            start = int(mask.any(dim=0).nonzero()[0, 0])
            layers = [(layer.keys[index, :, start:], layer.values[index, :, start:]) for layer in cache.layers]
            self.rows, self.cache, self.mask = list(sequences), cache, mask[:, start:]
            self.cache.layers = [rows_layer_class()(keys, values) for keys, values in layers]
            return
        for sequence, row in zip(sequences, rows):
            start = int(mask[row].nonzero()[0, 0])
            for batch_layer, layer in zip(self.cache.layers, cache.layers):
                batch_layer.add(layer.keys[row : row + 1, :, start:], layer.values[row : row + 1, :, start:])
            self.mask = _stacked_left_padded(self.mask, mask[row : row + 1, start:], max(mask.shape[1] - start, self.mask.shape[1]), 1)
            self.rows.append(sequence)

    def _drop(self, leaving: list[Sequence]) -> None:
        import torch

        gone = {index for index, row in enumerate(self.rows) if row in leaving}
        if not gone:
            return
        if len(gone) == len(self.rows):
            self.rows, self.cache, self.mask = [], None, None
            return
        order = refill_order(len(self.rows), gone)
        mask = self.mask[torch.tensor(order, device=self.device)]
        # The left columns that only the leaving rows used go too.
        start = int(mask.any(dim=0).nonzero()[0, 0])
        for layer in self.cache.layers:
            layer.keep(order)
            layer.cut(start)
        self.mask = mask[:, start:]
        self.rows = [self.rows[old] for old in order]


def _stacked_left_padded(batch: Any, row: Any, width: int, dim: int) -> Any:
    """``row`` below ``batch``, both padded on the left to ``width`` along ``dim``, written once into one new
    tensor."""
    import torch

    shape = list(batch.shape)
    shape[0], shape[dim] = batch.shape[0] + row.shape[0], width
    stacked = torch.zeros(shape, dtype=batch.dtype, device=batch.device)
    stacked[: batch.shape[0]].narrow(dim, width - batch.shape[dim], batch.shape[dim]).copy_(batch)
    stacked[batch.shape[0] :].narrow(dim, width - row.shape[dim], row.shape[dim]).copy_(row)
    return stacked


def _cache_row(cache: Any, mask: Any, row: int) -> Any:
    """Row ``row`` of ``cache``, its padding left out: what ``PrefixCache.keep`` cuts blocks from."""
    from types import SimpleNamespace

    positions = mask[row].nonzero().squeeze(1)
    layers = [SimpleNamespace(keys=layer.keys[row : row + 1, :, positions], values=layer.values[row : row + 1, :, positions]) for layer in cache.layers]
    return SimpleNamespace(layers=layers)


def _vocabulary_size(model: Any, tokenizer: Any) -> int:
    """The width of the model's scores (its embedding may hold more rows than the tokenizer has tokens)."""
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    size = getattr(output, "out_features", None) or getattr(model.config, "vocab_size", None)
    return max(int(size or 0), len(tokenizer))


def _end_token_ids(defaults: Any, tokenizer: Any) -> set[int]:
    ids = defaults.eos_token_id
    ids = set(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _paddable_cache(model: Any) -> bool:
    """Whether every layer's cache is a plain growing key/value tensor, which rows can share padded."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    try:
        cache = DynamicCache(config=model.config)
    except Exception:
        return False
    return bool(cache.layers) and all(type(layer) is DynamicLayer for layer in cache.layers)


def _prefix_cache(model: Any, budget_bytes: int) -> PrefixCache | None:
    """A prefix cache for a model whose cache layers it can cut blocks from and put them back into."""
    from transformers import DynamicCache

    if budget_bytes <= 0:
        return None
    try:
        cache = DynamicCache(config=model.config)
    except Exception:
        return None
    return PrefixCache(budget_bytes) if PrefixCache.usable(cache) else None


def load_engine(snapshot: ModelSnapshot) -> CausalEngine:
    from widgetd_transformers.loading import tokenizer_and_model

    tokenizer, model = tokenizer_and_model(snapshot, "AutoModelForCausalLM")
    limits = snapshot.limits
    return CausalEngine(
        tokenizer, model, model.device, prefix_cache_bytes=limits.prefix_cache_bytes, prefill_chunk=limits.prefill_chunk, kv_cache_bytes=limits.kv_cache_bytes
    )


def placement_of(model: Any) -> dict[str, str] | None:
    """Where each part of a model split across GPUs runs (its ``hf_device_map``); None on one device."""
    device_map = getattr(model, "hf_device_map", None)
    return {part: str(device) for part, device in device_map.items()} if device_map else None
