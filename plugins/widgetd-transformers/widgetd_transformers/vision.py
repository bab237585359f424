"""Image tasks from JPEG, PNG or WebP bytes (Pillow image processors: no torchvision needed):
image-classification and zero-shot-image-classification."""

from __future__ import annotations

from typing import Any, Sequence

from widgetd import InvalidInput, ModelSnapshot
from widgetd.media import decode_image
from widgetd.tasks._common import ClassificationOutput
from widgetd.tasks.image_classification import ImageClassificationInput
from widgetd.tasks.zero_shot_image_classification import ZeroShotImageClassificationInput
from widgetd_transformers.loading import grouped, hf_pipeline, in_chunks


class ImageClassification:
    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> ImageClassification:
        return cls(image_pipeline("image-classification", snapshot))

    def __call__(self, requests: Sequence[ImageClassificationInput]) -> list[list[ClassificationOutput]]:
        answers: list[Any] = [None] * len(requests)
        for (top_k, function), indexes in grouped(
            requests, lambda r: (r.parameters.top_k, r.parameters.function_to_apply)
        ).items():
            kwargs: dict[str, Any] = {"top_k": top_k}
            if function is not None:
                kwargs["function_to_apply"] = function
            images = [decode_image(requests[index].inputs) for index in indexes]
            for index, labels in zip(indexes, in_chunks(lambda chunk: self.pipe(chunk, batch_size=len(chunk), **kwargs), images)):
                answers[index] = [ClassificationOutput(e["label"], float(e["score"])) for e in labels]
        return answers


class ZeroShotImageClassification:
    """The ``zero-shot-image-classification`` pipeline: the images of requests with the same labels and
    template run together."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> ZeroShotImageClassification:
        return cls(image_pipeline("zero-shot-image-classification", snapshot))

    def __call__(self, requests: Sequence[ZeroShotImageClassificationInput]) -> list[list[ClassificationOutput]]:
        for request in requests:
            labels = request.parameters.candidate_labels
            if len(set(labels)) != len(labels):
                raise InvalidInput("parameters.candidate_labels: each label once; a label given twice has no score of its own", field="parameters.candidate_labels")
        answers: list[Any] = [None] * len(requests)
        for (labels, template), indexes in grouped(
            requests, lambda r: (tuple(r.parameters.candidate_labels), r.parameters.hypothesis_template)
        ).items():
            images = [decode_image(requests[index].inputs) for index in indexes]

            def run(chunk: list) -> list:
                return self.pipe(chunk, candidate_labels=list(labels), hypothesis_template=template, batch_size=len(chunk))

            for index, scored in zip(indexes, in_chunks(run, images)):
                answers[index] = [ClassificationOutput(entry["label"], float(entry["score"])) for entry in scored]
        return answers


def image_pipeline(task: str, snapshot: ModelSnapshot) -> Any:
    """A transformers pipeline for ``task`` with the model's Pillow image processor (the fast ones need torchvision)."""
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(str(snapshot.path), use_fast=False)
    return hf_pipeline(task, snapshot, image_processor=processor)
