"""The built-in task contracts, one module per task."""

from widgetd.tasks._task import Answer, ReplyOptions, RouteContract, Strict, Task
from widgetd.tasks import (
    audio_classification,
    audio_to_audio,
    automatic_speech_recognition,
    chat_completion,
    conversational,
    depth_estimation,
    document_question_answering,
    embeddings,
    feature_extraction,
    fill_mask,
    image_classification,
    image_segmentation,
    image_to_image,
    image_to_text,
    object_detection,
    question_answering,
    sentence_similarity,
    summarization,
    table_question_answering,
    tabular_classification,
    tabular_regression,
    text_classification,
    text_generation,
    text_to_image,
    text_to_speech,
    token_classification,
    translation,
    visual_question_answering,
    zero_shot_audio_classification,
    zero_shot_classification,
    zero_shot_image_classification,
)

BUILTIN_TASKS: tuple[Task, ...] = tuple(
    module.TASK
    for module in (
        question_answering,
        table_question_answering,
        token_classification,
        text_classification,
        zero_shot_classification,
        fill_mask,
        sentence_similarity,
        feature_extraction,
        summarization,
        translation,
        text_generation,
        automatic_speech_recognition,
        audio_classification,
        zero_shot_audio_classification,
        audio_to_audio,
        text_to_speech,
        image_classification,
        zero_shot_image_classification,
        object_detection,
        image_segmentation,
        depth_estimation,
        image_to_image,
        text_to_image,
        image_to_text,
        visual_question_answering,
        document_question_answering,
        tabular_classification,
        tabular_regression,
        conversational,
    )
)

ROUTE_CONTRACTS: tuple[RouteContract, ...] = (chat_completion.ROUTE, embeddings.ROUTE, embeddings.MODELS_ROUTE)
"""OpenAI's routes, served beside the tasks' for generation and embeddings models."""

__all__ = ["BUILTIN_TASKS", "ROUTE_CONTRACTS", "Answer", "ReplyOptions", "RouteContract", "Strict", "Task"]
