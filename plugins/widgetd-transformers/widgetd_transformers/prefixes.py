"""Prefix caching: the keys and values of prompts already read, kept in blocks of tokens, so that a later
prompt starting the same way (a shared system prompt, a conversation's earlier turns) reads only the rest.

A block is found by its tokens and everything before them (a chain, as vLLM keys its blocks), and is checked
token by token, so a reused block is always the one the same prefix would compute. Blocks are kept within a
byte budget and the least recently used go first, the end of a prefix before its start. Models whose cache
layers are plain or sliding-window key/value tensors take part; a sliding window keeps every position while a
prompt is read (``activate_past_recording``) and is cut back to its window afterwards.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

BLOCK_TOKENS = 16
"""Tokens per block: a prefix is reused in whole blocks (vLLM's default block size)."""


@dataclass(frozen=True)
class Block:
    parent: int | None
    tokens: tuple[int, ...]
    keys: tuple[Any, ...]
    """One tensor per layer: [1, heads, BLOCK_TOKENS, head size]."""
    values: tuple[Any, ...]

    @property
    def nbytes(self) -> int:
        return sum(tensor.numel() * tensor.element_size() for tensor in (*self.keys, *self.values))


class PrefixCache:
    def __init__(self, budget_bytes: int, block_tokens: int = BLOCK_TOKENS) -> None:
        self.budget_bytes = budget_bytes
        self.block_tokens = block_tokens
        self.blocks: OrderedDict[int, Block] = OrderedDict()
        self.used_bytes = 0

    @staticmethod
    def usable(cache: Any) -> bool:
        """Whether a model's (fresh) cache is made of layers whose keys and values blocks can be cut from and put back."""
        from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

        return bool(cache.layers) and all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer) for layer in cache.layers)

    def keys_of(self, ids: list[int]) -> list[int]:
        """The chain key of every whole block of ``ids``."""
        keys, parent = [], None
        for start in range(0, len(ids) - self.block_tokens + 1, self.block_tokens):
            parent = hash((parent, tuple(ids[start : start + self.block_tokens])))
            keys.append(parent)
        return keys

    def reuse(self, ids: list[int], cache: Any) -> int:
        """Fill the fresh ``cache`` with the longest cached prefix of ``ids`` that leaves at least one token to
        read (the next token's scores come from reading it); how many tokens it holds."""
        import torch

        found: list[Block] = []
        chain: list[int] = []
        for index, key in enumerate(self.keys_of(ids[:-1])):
            block = self.blocks.get(key)
            start = index * self.block_tokens
            if block is None or block.parent != (chain[-1] if chain else None) or block.tokens != tuple(ids[start : start + self.block_tokens]):
                break
            found.append(block)
            chain.append(key)
        if not found:
            return 0
        self._touch(chain)
        for number, layer in enumerate(cache.layers):
            layer.update(torch.cat([block.keys[number] for block in found], dim=2), torch.cat([block.values[number] for block in found], dim=2))
        return len(found) * self.block_tokens

    def keep(self, ids: list[int], cache: Any, reused: int) -> None:
        """Keep the blocks of ``ids`` past the ``reused`` ones, cut from the cache that just read them all."""
        if not self.budget_bytes:
            return
        chain = self.keys_of(ids)
        parent = None
        for index, key in enumerate(chain):
            start = index * self.block_tokens
            if start >= reused and key not in self.blocks:
                cut = slice(start, start + self.block_tokens)
                block = Block(
                    parent,
                    tuple(ids[cut]),
                    tuple(layer.keys[:, :, cut].clone() for layer in cache.layers),
                    tuple(layer.values[:, :, cut].clone() for layer in cache.layers),
                )
                self.blocks[key] = block
                self.used_bytes += block.nbytes
            parent = key
        self._touch(chain)
        while self.used_bytes > self.budget_bytes and self.blocks:
            _, block = self.blocks.popitem(last=False)
            self.used_bytes -= block.nbytes

    def _touch(self, chain: list[int]) -> None:
        """The blocks of a prefix, most recently used; its start last, so that its end is evicted first
        (a block is of no use without those before it)."""
        for key in reversed(chain):
            if key in self.blocks:
                self.blocks.move_to_end(key)


def recording_every_position(cache: Any) -> None:
    """Sliding-window layers keep all they read until ``windowed`` (so whole blocks can be cut from them)."""
    for layer in cache.layers:
        if getattr(layer, "is_sliding", False):
            layer.activate_past_recording()


def windowed(cache: Any) -> None:
    """Sliding-window layers back to their window, recording nothing more."""
    for layer in cache.layers:
        if getattr(layer, "is_sliding", False) and layer.record_past:
            layer.crop(0)
            layer.record_past = False
