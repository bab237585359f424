"""Generated text: summarization and translation (sequence-to-sequence) and text-generation."""

from __future__ import annotations

from typing import Any, Sequence

from widgetd import InvalidInput, ModelSnapshot
from widgetd.tasks.summarization import SummarizationOutput
from widgetd.tasks.text_generation import TextGenerationInput, TextGenerationOutput
from widgetd.tasks.translation import TranslationOutput
from widgetd.tgi import generate_text
from widgetd_transformers.continuous import CausalEngine, load_engine
from widgetd_transformers.generate_options import generate_kwargs, generation_settings
from widgetd_transformers.loading import grouped, token_limit, tokenizer_and_model


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


class TextGeneration:
    """text-generation on the continuous batching engine: the server streams and batches through
    ``engine`` (see ``widgetd.generating``); a batch handed to the pipeline itself runs to its end here."""

    def __init__(self, engine: CausalEngine) -> None:
        self.engine = engine

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> TextGeneration:
        return cls(load_engine(snapshot))

    def __call__(self, requests: Sequence[TextGenerationInput]) -> list[TextGenerationOutput]:
        return generate_text(self.engine, requests)
