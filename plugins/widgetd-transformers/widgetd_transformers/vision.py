"""image-classification from JPEG, PNG or WebP bytes (Pillow image processors: no torchvision needed)."""

from __future__ import annotations

from typing import Any, Sequence

from widgetd import ModelSnapshot
from widgetd.media import decode_image
from widgetd.tasks._common import ClassificationOutput
from widgetd.tasks.image_classification import ImageClassificationInput
from widgetd_transformers.loading import grouped, hf_pipeline, in_chunks


class ImageClassification:
    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> ImageClassification:
        from transformers import AutoImageProcessor

        processor = AutoImageProcessor.from_pretrained(str(snapshot.path), use_fast=False)
        return cls(hf_pipeline("image-classification", snapshot, image_processor=processor))

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
