"""Generated text: summarization and translation (sequence-to-sequence) and text-generation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from widgetd import InvalidInput, ModelSnapshot
from widgetd.tasks.summarization import SummarizationOutput
from widgetd.tasks.text_generation import TextGenerationInput, TextGenerationOutput
from widgetd.tasks.translation import TranslationOutput
from widgetd_transformers.generate_options import generate_kwargs, generation_settings
from widgetd_transformers.loading import grouped, hf_pipeline, seeded, token_limit, tokenizer_and_model


class SequenceToSequence:
    """summarization and translation on AutoModelForSeq2SeqLM.generate (transformers >= 5.3 has no pipelines for them)."""

    def __init__(self, tokenizer: Any, model: Any, device: str, answer_type: type) -> None:
        self.tokenizer, self.model, self.device, self.answer_type = tokenizer, model, device, answer_type
        self.limit = token_limit(tokenizer, model)

    @classmethod
    def loader(cls, answer_type: type):
        def load(snapshot: ModelSnapshot) -> SequenceToSequence:
            return cls(*tokenizer_and_model(snapshot, "AutoModelForSeq2SeqLM"), snapshot.device, answer_type)

        return load

    def __call__(self, requests: Sequence[Any]) -> list[Any]:
        answers: list[Any] = [None] * len(requests)
        for options, indexes in grouped(requests, _seq2seq_options).items():
            texts = [requests[index].inputs for index in indexes]
            for index, text in zip(indexes, self._generate(texts, *options)):
                answers[index] = self.answer_type(text)
        return answers

    def _generate(self, texts, truncation, clean_up, settings, src_lang, tgt_lang) -> list[str]:
        import torch

        options = generate_kwargs(settings, "parameters.generate_parameters")
        if options.get("max_length", 2) < 2:
            raise InvalidInput(
                "parameters.generate_parameters.max_length: must be at least 2; the decoder's start token counts "
                "toward it, so 1 leaves no room for the answer (or pass max_new_tokens)",
                field="parameters.generate_parameters.max_length",
            )
        # The decoder cannot run past its position embeddings: cap the length asked for.
        for name in ("max_new_tokens", "max_length"):
            if name in options:
                options[name] = min(options[name], self.limit - 1)
        self._set_languages(src_lang, tgt_lang, options)
        if truncation in (None, "do_not_truncate"):
            for position, ids in enumerate(self.tokenizer(texts)["input_ids"]):
                if len(ids) > self.limit:
                    raise InvalidInput(
                        f"inputs: {len(ids)} tokens, more than this model's limit of {self.limit}; "
                        "pass parameters.truncation (e.g. longest_first)",
                        field="inputs",
                    )
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.limit, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            generated = self.model.generate(**batch, **options)
        return self.tokenizer.batch_decode(
            generated, skip_special_tokens=True, clean_up_tokenization_spaces=bool(clean_up) if clean_up is not None else None
        )

    def _set_languages(self, src_lang, tgt_lang, options) -> None:
        if src_lang is None and tgt_lang is None:
            return
        if not hasattr(self.tokenizer, "src_lang"):
            raise InvalidInput("src_lang/tgt_lang: this model is not multilingual; it translates one language pair", field="parameters.tgt_lang")
        if src_lang is not None:
            self.tokenizer.src_lang = src_lang
        if tgt_lang is not None:
            token_id = self.tokenizer.convert_tokens_to_ids(tgt_lang)
            if token_id is None or token_id == self.tokenizer.unk_token_id:
                raise InvalidInput(f"parameters.tgt_lang {tgt_lang!r} is not a language this model knows", field="parameters.tgt_lang")
            options["forced_bos_token_id"] = token_id


def _seq2seq_options(request: Any) -> tuple:
    parameters = request.parameters
    return (
        parameters.truncation,
        parameters.clean_up_tokenization_spaces,
        generation_settings(parameters.generate_parameters, "parameters.generate_parameters"),
        getattr(parameters, "src_lang", None),
        getattr(parameters, "tgt_lang", None),
    )


Summarization = SequenceToSequence.loader(SummarizationOutput)
Translation = SequenceToSequence.loader(TranslationOutput)


@dataclass
class _Batch:
    indexes: list[int]
    room: int


PIPELINE_NEW_TOKENS = 256
"""New tokens when neither the request nor the model's generation config says: the transformers
text-generation pipeline's default (its documented ``max_new_tokens``)."""


class TextGeneration:
    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        config = pipe.model.config
        self.context = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 10**9
        lengths = pipe.model.generation_config.to_diff_dict()
        self.model_lengths = {name: lengths[name] for name in ("max_new_tokens", "max_length") if lengths.get(name)}

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> TextGeneration:
        return cls(hf_pipeline("text-generation", snapshot))

    def __call__(self, requests: Sequence[TextGenerationInput]) -> list[TextGenerationOutput]:
        answers: list[Any] = [None] * len(requests)
        for request in requests:
            if request.stream:
                raise InvalidInput("stream: streaming is not served; send stream=false", field="stream")
        for settings, indexes in grouped(requests, lambda r: generation_settings(r.parameters, "parameters")).items():
            options = dict(settings)
            stops = options.pop("stop", None)
            seed = options.pop("seed", None)
            keep = options.pop("truncate", None)
            full_text = options.pop("return_full_text", True)  # the pipeline's default
            wanted = options.pop("max_new_tokens", None)
            options = generate_kwargs(options, "parameters")
            prompts = {index: self._last_tokens(requests[index].inputs, keep) for index in indexes}
            for batch in self._batches(prompts, wanted, seeded=seed is not None):
                texts = [prompts[index] for index in batch.indexes]
                for index, text in zip(batch.indexes, self._generate(texts, seed, max_new_tokens=batch.room, **options)):
                    generated = _until_stop(text, stops)
                    # The prompt as sent, not as truncated: the full text of TGI and of the pipeline.
                    answers[index] = TextGenerationOutput(requests[index].inputs + generated if full_text else generated)
        return answers

    def _batches(self, prompts: dict[int, str], wanted: int | None, seeded: bool) -> list[_Batch]:
        """Prompts that can run together without changing each other's answers: the same room for new
        tokens (each prompt's own), and a seeded sample alone, drawing only from its own seed."""
        by_room: dict[int, list[int]] = {}
        for index, prompt in prompts.items():
            by_room.setdefault(self._room(prompt, wanted), []).append(index)
        if seeded:
            return [_Batch([index], room) for room, indexes in by_room.items() for index in indexes]
        return [_Batch(indexes, room) for room, indexes in by_room.items()]

    def _generate(self, texts: list[str], seed: int | None, **options: Any) -> list[str]:
        """The new text only; the caller puts the prompt before it."""
        with seeded(seed, self.pipe.device):
            results = self.pipe(texts, batch_size=len(texts), return_full_text=False, **options)
        return [result[0]["generated_text"] for result in results]

    def _room(self, prompt: str, wanted: int | None) -> int:
        """New tokens to ask for: the request's, else the model's generation config's, else the pipeline's
        default, never past the model's context; a prompt that fills the context is a 400."""
        length = len(self.pipe.tokenizer(prompt)["input_ids"])
        if length >= self.context:
            raise InvalidInput(
                f"inputs: the prompt is {length} tokens, this model's context holds {self.context}; "
                "shorten it or pass parameters.truncate",
                field="inputs",
            )
        if wanted is None:
            wanted = self.model_lengths.get("max_new_tokens")
        if wanted is None and "max_length" in self.model_lengths:
            wanted = max(1, self.model_lengths["max_length"] - length)
        return min(wanted or PIPELINE_NEW_TOKENS, self.context - length)

    def _last_tokens(self, prompt: str, keep: int | None) -> str:
        """TGI's ``truncate``: only the prompt's last ``keep`` tokens are used."""
        if keep is None:
            return prompt
        encoded = self.pipe.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoded["offset_mapping"]
        return prompt if len(offsets) <= keep else prompt[offsets[-keep][0] :]


def _until_stop(generated: str, stops: Sequence[str] | None) -> str:
    """Cut the generated text at the first stop sequence (kept, as TGI does)."""
    cuts = [generated.find(stop) + len(stop) for stop in stops or () if stop and stop in generated]
    return generated[: min(cuts)] if cuts else generated
