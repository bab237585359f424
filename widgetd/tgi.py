"""text-generation on a generation engine, as TGI serves it: a request as a ``Job``, a generation as the
answer or as stream events. The core's loop and a plugin's own batch runner share these."""

from __future__ import annotations

from typing import Sequence

from widgetd.generating import Engine, Generation, GenerationOptions, Job, Piece, Prompt, Token, generate_all, refuse_unserved
from widgetd.structured import from_tgi_grammar
from widgetd.tasks.text_generation import (
    TextGenerationInput,
    TextGenerationOutput,
    TextGenerationOutputDetails,
    TextGenerationOutputToken,
    TextGenerationStreamOutput,
    TextGenerationStreamOutputStreamDetails,
)

NOT_SERVED = {
    "adapter_id": (None, "LoRA adapters are not served"),
    "best_of": (1, "one sequence is generated per request"),
    "decoder_input_details": (False, "the prompt's token details are not returned"),
    "top_n_tokens": (0, "alternative tokens are not returned"),
    "watermark": (False, "watermarking is not served"),
}
"""TGI options a local model does not honour, each with the value that asks for nothing."""


def text_generation_job(request: TextGenerationInput) -> Job:
    parameters = request.parameters
    refuse_unserved(parameters, NOT_SERVED, "parameters.")
    options = GenerationOptions(
        max_new_tokens=parameters.max_new_tokens,
        do_sample=parameters.do_sample,
        temperature=parameters.temperature,
        top_k=parameters.top_k,
        top_p=parameters.top_p,
        typical_p=parameters.typical_p,
        repetition_penalty=parameters.repetition_penalty,
        frequency_penalty=parameters.frequency_penalty,
        seed=parameters.seed,
        truncate=parameters.truncate,
        field="parameters",
        constraint=from_tgi_grammar(parameters.grammar),
    )
    return Job(Prompt(text=request.inputs), options, stops=tuple(parameters.stop or ()), keep_stop=True)


def full_text(request: TextGenerationInput, generation: Generation) -> str:
    """The generated text; after the prompt as sent (not as truncated) unless ``return_full_text`` is
    false: the default of the transformers pipeline, which the Hub's API served."""
    keep_prompt = request.parameters.return_full_text
    return request.inputs + generation.text if keep_prompt is None or keep_prompt else generation.text


def _token(token: Token) -> TextGenerationOutputToken:
    return TextGenerationOutputToken(id=token.id, logprob=token.logprob, special=token.special, text=token.text)


def text_generation_answer(request: TextGenerationInput, generation: Generation) -> TextGenerationOutput:
    details = None
    if request.parameters.details:
        details = TextGenerationOutputDetails(
            finish_reason=generation.finish,
            generated_tokens=len(generation.tokens),
            prefill=[],
            seed=generation.sequence.seed,
            tokens=[_token(token) for token in generation.tokens],
        )
    return TextGenerationOutput(full_text(request, generation), details)


def stream_event(request: TextGenerationInput, generation: Generation, piece: Piece, index: int) -> TextGenerationStreamOutput:
    """One token's event; the last holds the whole text and the details (TGI's ``StreamResponse``). Its
    ``token.text`` is the text the token adds, so that the events' texts make the generated text."""
    token = TextGenerationOutputToken(id=piece.token.id, logprob=piece.token.logprob, special=piece.token.special, text=piece.text)
    if piece.finish is None:
        return TextGenerationStreamOutput(index=index, token=token)
    details = TextGenerationStreamOutputStreamDetails(
        finish_reason=piece.finish,
        generated_tokens=len(generation.tokens),
        input_length=generation.prompt_tokens,
        seed=generation.sequence.seed,
    )
    return TextGenerationStreamOutput(index=index, token=token, generated_text=full_text(request, generation), details=details)


def generate_text(engine: Engine, requests: Sequence[TextGenerationInput]) -> list[TextGenerationOutput]:
    """A batch of text-generation requests answered with ``engine`` on the calling thread: what a
    pipeline's ``__call__`` returns when the server's loop is not in the way (its own tests, wrappers).
    The first failure is raised; the batcher then runs the requests one by one, so it fails alone."""
    generations = generate_all(engine, [text_generation_job(request) for request in requests])
    for generation in generations:
        if isinstance(generation, Exception):
            raise generation
    return [text_generation_answer(request, generation) for request, generation in zip(requests, generations)]
