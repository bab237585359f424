"""Generated text: summarization and translation (sequence-to-sequence) and text-generation."""

from __future__ import annotations

from typing import Any, Sequence

from widgetd import InvalidInput, ModelSnapshot
from widgetd.tasks.summarization import SummarizationOutput
from widgetd.tasks.text_generation import TextGenerationInput, TextGenerationOutput
from widgetd.tasks.translation import TranslationOutput
from widgetd_transformers.loading import dtype_for, generation_settings, grouped, hf_pipeline, token_limit


class SequenceToSequence:
    """summarization and translation on AutoModelForSeq2SeqLM.generate (transformers >= 5.3 has no pipelines for them)."""

    def __init__(self, tokenizer: Any, model: Any, device: str, answer_type: type) -> None:
        self.tokenizer, self.model, self.device, self.answer_type = tokenizer, model, device, answer_type
        self.limit = token_limit(tokenizer, model)

    @classmethod
    def loader(cls, answer_type: type):
        def load(snapshot: ModelSnapshot) -> SequenceToSequence:
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(snapshot.path), trust_remote_code=False)
            model = AutoModelForSeq2SeqLM.from_pretrained(str(snapshot.path), dtype=dtype_for(snapshot.device), trust_remote_code=False)
            return cls(tokenizer, model.to(snapshot.device).eval(), snapshot.device, answer_type)

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

        generate_kwargs = dict(settings)
        # The decoder cannot run past its position embeddings: cap the length asked for.
        for name in ("max_new_tokens", "max_length"):
            if name in generate_kwargs:
                generate_kwargs[name] = min(generate_kwargs[name], self.limit - 1)
        self._set_languages(src_lang, tgt_lang, generate_kwargs)
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
            generated = self.model.generate(**batch, **generate_kwargs)
        return self.tokenizer.batch_decode(
            generated, skip_special_tokens=True, clean_up_tokenization_spaces=bool(clean_up) if clean_up is not None else None
        )

    def _set_languages(self, src_lang, tgt_lang, generate_kwargs) -> None:
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
            generate_kwargs["forced_bos_token_id"] = token_id


def _seq2seq_options(request: Any) -> tuple:
    parameters = request.parameters
    return (
        parameters.truncation,
        parameters.clean_up_tokenization_spaces,
        generation_settings(parameters.generate_parameters),
        getattr(parameters, "src_lang", None),
        getattr(parameters, "tgt_lang", None),
    )


Summarization = SequenceToSequence.loader(SummarizationOutput)
Translation = SequenceToSequence.loader(TranslationOutput)


DEFAULT_NEW_TOKENS = 50
"""New tokens when neither the request nor the model's generation config says."""


class TextGeneration:
    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> TextGeneration:
        return cls(hf_pipeline("text-generation", snapshot))

    def __call__(self, requests: Sequence[TextGenerationInput]) -> list[TextGenerationOutput]:
        answers: list[Any] = [None] * len(requests)
        for request in requests:
            if request.stream:
                raise InvalidInput("stream: streaming is not served; send stream=false", field="stream")
        for settings, indexes in grouped(requests, lambda r: generation_settings(r.parameters)).items():
            options = dict(settings)
            stops = options.pop("stop", None)
            seed = options.pop("seed", None)
            keep = options.pop("truncate", None)
            if seed is not None:
                import torch

                torch.manual_seed(seed)
            prompts = [self._last_tokens(requests[index].inputs, keep) for index in indexes]
            options["max_new_tokens"] = self._room(prompts, options.get("max_new_tokens"))
            for index, result in zip(indexes, self.pipe(prompts, batch_size=len(prompts), **options)):
                answers[index] = TextGenerationOutput(_until_stop(result[0]["generated_text"], stops, prompts[indexes.index(index)]))
        return answers

    def _room(self, prompts: list[str], wanted: int | None) -> int:
        """New tokens that fit the model's context after the longest prompt; a prompt that fills it is a 400."""
        config = self.pipe.model.config
        limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 10**9
        longest = max(len(ids) for ids in self.pipe.tokenizer(prompts)["input_ids"])
        if longest >= limit:
            raise InvalidInput(
                f"inputs: the prompt is {longest} tokens, this model's context holds {limit}; "
                "shorten it or pass parameters.truncate",
                field="inputs",
            )
        default = getattr(self.pipe.model.generation_config, "max_new_tokens", None) or DEFAULT_NEW_TOKENS
        return min(wanted or default, limit - longest)

    def _last_tokens(self, prompt: str, keep: int | None) -> str:
        """TGI's ``truncate``: only the prompt's last ``keep`` tokens are used."""
        if keep is None:
            return prompt
        encoded = self.pipe.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
        offsets = encoded["offset_mapping"]
        return prompt if len(offsets) <= keep else prompt[offsets[-keep][0] :]


def _until_stop(text: str, stops: Sequence[str] | None, prompt: str) -> str:
    """Cut the generated part at the first stop sequence (kept, as TGI does)."""
    if not stops:
        return text
    head, generated = (prompt, text[len(prompt) :]) if text.startswith(prompt) else ("", text)
    cuts = [generated.find(stop) + len(stop) for stop in stops if stop and stop in generated]
    return head + (generated[: min(cuts)] if cuts else generated)
