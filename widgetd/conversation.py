"""The Hub's pre-chat conversational payload on a chat model's generation engine: the conversation as
chat messages, the answer in the legacy shape."""

from __future__ import annotations

from widgetd.errors import InvalidInput
from widgetd.generating import Generation, GenerationOptions, Job, Prompt
from widgetd.tasks.conversational import Conversation, ConversationalInput, ConversationalOutput


def conversation_job(request: ConversationalInput) -> Job:
    parameters = request.parameters
    if parameters.min_length:
        raise InvalidInput("parameters.min_length: a least answer length is not served by this server; send 0 or leave it out", field="parameters.min_length")
    if parameters.max_length and parameters.max_new_tokens and parameters.max_length != parameters.max_new_tokens:
        raise InvalidInput("parameters.max_length: give max_length or max_new_tokens (both count the answer's tokens here)", field="parameters.max_length")
    temperature = parameters.temperature
    sample = temperature > 0 if temperature is not None else (True if parameters.top_k or parameters.top_p else None)
    options = GenerationOptions(
        max_new_tokens=parameters.max_new_tokens or parameters.max_length,
        do_sample=sample,
        temperature=temperature if sample else None,
        top_k=parameters.top_k if sample else None,
        top_p=parameters.top_p if sample else None,
        repetition_penalty=parameters.repetition_penalty,
        seed=parameters.seed,
        field="parameters",
    )
    return Job(Prompt(messages=tuple(_messages(request))), options, stops=(), keep_stop=False)


def _messages(request: ConversationalInput) -> list[dict[str, str]]:
    inputs = request.inputs
    messages = []
    for said, answered in zip(inputs.past_user_inputs, inputs.generated_responses):
        messages += [{"role": "user", "content": said}, {"role": "assistant", "content": answered}]
    return [*messages, {"role": "user", "content": inputs.text}]


def conversation_answer(request: ConversationalInput, generation: Generation) -> ConversationalOutput:
    inputs = request.inputs
    answer = generation.text.strip()
    return ConversationalOutput(
        generated_text=answer,
        conversation=Conversation(
            past_user_inputs=[*inputs.past_user_inputs, inputs.text],
            generated_responses=[*inputs.generated_responses, answer],
        ),
        warnings=[],
    )
