"""text-to-speech: transformers' text-to-audio models (VITS/MMS-TTS, Bark, MusicGen, ...), answered as audio."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from widgetd import InvalidInput, ModelSnapshot
from widgetd.cancellation import stop_if_abandoned
from widgetd.media import Audio
from widgetd.tasks.text_to_speech import TextToSpeechInput
from widgetd_transformers.generate_options import generate_kwargs, generation_settings
from widgetd_transformers.loading import grouped, hf_pipeline, seeded


class TextToSpeech:
    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        # VITS/MMS-TTS make speech in one forward pass: there is nothing for generation options to steer.
        self.generates = bool(pipe.model.can_generate())

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> TextToSpeech:
        return cls(hf_pipeline("text-to-audio", snapshot))

    def __call__(self, requests: Sequence[TextToSpeechInput]) -> list[Audio]:
        answers: list[Any] = [None] * len(requests)
        for settings, indexes in grouped(requests, lambda r: generation_settings(r.parameters.generation_parameters, "parameters.generation_parameters")).items():
            if settings and not self.generates:
                raise InvalidInput(
                    "parameters.generation_parameters: this model makes speech in one pass and takes no generation options",
                    field="parameters.generation_parameters",
                )
            kwargs = {"generate_kwargs": generate_kwargs(settings, "parameters.generation_parameters")} if settings else {}
            # One text at a time: padded batches change the speech of the shorter texts.
            for index in indexes:
                stop_if_abandoned()
                self._refuse_unspeakable(requests[index].inputs)
                result = self._speak(requests[index].inputs, kwargs)
                samples = np.asarray(result["audio"], dtype=np.float32).squeeze()
                if samples.ndim == 2:
                    samples = samples.T
                answers[index] = Audio(samples, int(result["sampling_rate"]))
        return answers

    def _speak(self, text: str, kwargs: dict) -> dict:
        """Same text, same speech: models that sample noise (VITS, Bark) draw it from a fixed seed."""
        with seeded(0, self.pipe.device):
            return self.pipe(text, **kwargs)

    def _refuse_unspeakable(self, text: str) -> None:
        tokenizer = getattr(self.pipe, "tokenizer", None)
        if tokenizer is not None and not tokenizer(text)["input_ids"]:
            raise InvalidInput("inputs has no character this model can speak", field="inputs")
