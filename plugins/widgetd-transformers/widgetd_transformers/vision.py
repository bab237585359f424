"""Image tasks from JPEG, PNG or WebP bytes (Pillow image processors: no torchvision needed):
image-classification, zero-shot-image-classification, object-detection, image-segmentation, depth-estimation,
image-to-image, image-to-text and visual-question-answering."""

from __future__ import annotations

import io
from typing import Any, Sequence

import msgspec

from widgetd import InvalidInput, ModelSnapshot
from widgetd.media import Picture, decode_image
from widgetd.tasks._common import ClassificationOutput
from widgetd.tasks.depth_estimation import DepthEstimationInput, DepthEstimationOutput
from widgetd.tasks.image_classification import ImageClassificationInput
from widgetd.tasks.image_segmentation import ImageSegmentationInput, Segment
from widgetd.tasks.image_to_image import ImageToImageInput
from widgetd.tasks.image_to_text import ImageToTextInput, ImageToTextOutput
from widgetd.tasks.visual_question_answering import VisualQuestionAnsweringAnswer, VisualQuestionAnsweringInput
from widgetd.tasks.object_detection import BoundingBox, DetectedObject, ObjectDetectionInput
from widgetd.tasks.zero_shot_image_classification import ZeroShotImageClassificationInput
from widgetd_transformers.generate_options import generate_kwargs, generation_settings
from widgetd_transformers.loading import by_candidates, grouped, hf_pipeline, in_chunks, in_groups, model_for, tokenizer_and_model


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
        answers: list[Any] = [None] * len(requests)
        for (labels, template), indexes in by_candidates(requests).items():
            images = [decode_image(requests[index].inputs) for index in indexes]

            def run(chunk: list) -> list:
                return self.pipe(chunk, candidate_labels=list(labels), hypothesis_template=template, batch_size=len(chunk))

            for index, scored in zip(indexes, in_chunks(run, images)):
                answers[index] = [ClassificationOutput(entry["label"], float(entry["score"])) for entry in scored]
        return answers


class ObjectDetection:
    """The ``object-detection`` pipeline (the model's own ``post_process_object_detection``), its boxes
    kept inside the image and its objects best first."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.most_elongated = most_elongated(pipe.image_processor)

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> ObjectDetection:
        return cls(image_pipeline("object-detection", snapshot))

    def __call__(self, requests: Sequence[ObjectDetectionInput]) -> list[list[DetectedObject]]:
        answers: list[Any] = [None] * len(requests)
        for threshold, indexes in grouped(requests, lambda r: r.parameters.threshold).items():
            images = [decode_image(requests[index].inputs) for index in indexes]
            fitting = [widened(image, self.most_elongated) for image in images]
            found = in_chunks(lambda chunk: self.pipe(chunk, threshold=threshold, batch_size=len(chunk)), fitting)
            for index, image, objects in zip(indexes, images, found):
                detected = [DetectedObject(o["label"], float(o["score"]), inside(o["box"], *image.size)) for o in objects]
                answers[index] = sorted(detected, key=lambda o: -o.score)
        return answers


SUBTASKS = ("panoptic", "instance", "semantic")
"""In the order the pipeline tries them when a request names none."""


class ImageSegmentation:
    """The ``image-segmentation`` pipeline (the model's own ``post_process_*_segmentation``): masks as PNGs
    the size of the image as sent, scored segments best first."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.most_elongated = most_elongated(pipe.image_processor)
        self.subtasks = [name for name in SUBTASKS if hasattr(pipe.image_processor, f"post_process_{name}_segmentation")]

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> ImageSegmentation:
        return cls(image_pipeline("image-segmentation", snapshot))

    def __call__(self, requests: Sequence[ImageSegmentationInput]) -> list[list[Segment]]:
        for request in requests:
            subtask = request.parameters.subtask
            if subtask is not None and subtask not in self.subtasks:
                raise InvalidInput(f"parameters.subtask: this model does {self.subtasks}, not {subtask!r}", field="parameters.subtask")
        answers: list[Any] = [None] * len(requests)
        for options, indexes in grouped(requests, lambda r: tuple(msgspec.structs.asdict(r.parameters).items())).items():
            images = [decode_image(requests[index].inputs) for index in indexes]
            run = lambda chunk: self.pipe(chunk, batch_size=len(chunk), **dict(options))  # noqa: E731
            for index, image, segments in zip(indexes, images, of_one_size_at_a_time(run, images, self.most_elongated)):
                cut = [(segment, segment["mask"].crop((0, 0, *image.size))) for segment in segments]
                # A segment found only in what ``widened`` added to the image is no segment of it.
                kept = [(s, mask) for s, mask in cut if s["mask"].size == image.size or mask.getbbox()]
                answers[index] = best_first([Segment(s["label"], png(mask), s["score"]) for s, mask in kept])
        return answers


class DepthEstimation:
    """The ``depth-estimation`` pipeline (the processor's own ``post_process_depth_estimation``): the depth at
    every pixel of the image as sent, and the greyscale picture of it the pipeline draws."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.most_elongated = most_elongated(pipe.image_processor)

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> DepthEstimation:
        return cls(image_pipeline("depth-estimation", snapshot))

    def __call__(self, requests: Sequence[DepthEstimationInput]) -> list[DepthEstimationOutput]:
        images = [decode_image(request.inputs) for request in requests]
        run = lambda chunk: self.pipe(chunk, batch_size=len(chunk))  # noqa: E731
        answers = []
        for image, found in zip(images, of_one_size_at_a_time(run, images, self.most_elongated)):
            width, height = image.size
            depth = found["predicted_depth"].float().cpu().numpy()[:height, :width]
            answers.append(DepthEstimationOutput(png(found["depth"].crop((0, 0, width, height))), depth.tolist()))
        return answers


class ImageToImage:
    """Image-to-image models (Swin2SR super-resolution) on their own forward pass: transformers 5 has no
    image-to-image pipeline. The processor's padding is cut from the answer, which is the input's size times
    the model's upscale (the 4.x pipeline answered the padding too)."""

    def __init__(self, processor: Any, model: Any) -> None:
        self.processor, self.model = processor, model
        self.upscale = int(getattr(model.config, "upscale", 1) or 1)

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> ImageToImage:
        from transformers import AutoImageProcessor

        processor = AutoImageProcessor.from_pretrained(str(snapshot.path), use_fast=False, trust_remote_code=snapshot.trust_remote_code)
        return cls(processor, model_for(snapshot, "AutoModelForImageToImage"))

    def __call__(self, requests: Sequence[ImageToImageInput]) -> list[Picture]:
        for request in requests:
            for name in UNGUIDED:
                if getattr(request.parameters, name) is not None:
                    raise InvalidInput(f"parameters.{name}: this model makes its image from the image alone; it reads no {name}", field=f"parameters.{name}")
        images = [decode_image(request.inputs) for request in requests]
        made = of_one_size_at_a_time(self.made, images, ratio=None)
        answers = []
        for request, image in zip(requests, made):
            target = request.parameters.target_size
            if target is not None and image.size != (target.width, target.height):
                image = image.resize((target.width, target.height), resample=3)  # bicubic
            answers.append(Picture.of(image))
        return answers

    def made(self, images: list) -> list:
        import numpy as np
        import torch
        from PIL import Image

        pixels = self.processor(images, return_tensors="pt")["pixel_values"].to(self.model.device, self.model.dtype)
        with torch.inference_mode():
            reconstructed = self.model(pixel_values=pixels).reconstruction.float().clamp(0, 1).cpu().numpy()
        width, height = images[0].size  # one size per batch
        return [
            Image.fromarray((np.moveaxis(output, 0, -1)[: height * self.upscale, : width * self.upscale] * 255).round().astype(np.uint8))
            for output in reconstructed
        ]


UNGUIDED = ("prompt", "negative_prompt", "num_inference_steps", "guidance_scale")
"""Options of text-guided models (diffusion) that a restoration model cannot honour."""


def of_one_size_at_a_time(run: Any, images: list, ratio: int | None) -> list:
    """``run`` over ``images`` widened to what the processor can shrink (``widened``; ``ratio`` None: as they
    are), only images of one size sharing a batch (pipelines cannot pad pixel masks of different sizes); the
    results in the images' order."""
    fitting = images if ratio is None else [widened(image, ratio) for image in images]
    return in_groups(run, fitting, key=lambda image: image.size)


def best_first(segments: list[Segment]) -> list[Segment]:
    if any(segment.score is None for segment in segments):
        return segments
    return sorted(segments, key=lambda segment: -segment.score)


def png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class ImageToText:
    """Captioning models (vision encoder-decoder, BLIP, GIT, Pix2Struct) on their own ``generate``: transformers 5
    has no image-to-text pipeline. Images with the same generation options caption together."""

    def __init__(self, processor: Any, tokenizer: Any, model: Any) -> None:
        self.processor, self.tokenizer, self.model = processor, tokenizer, model

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> ImageToText:
        from PIL import Image
        from transformers import AutoImageProcessor

        processor = AutoImageProcessor.from_pretrained(str(snapshot.path), use_fast=False, trust_remote_code=snapshot.trust_remote_code)
        runner = cls(processor, *tokenizer_and_model(snapshot, "AutoModelForImageTextToText"))
        # A model that needs a text prompt beside the image (a chat VLM) fails here, at startup, not on a request.
        runner.caption([Image.new("RGB", (32, 32))], (("max_new_tokens", 1),))
        return runner

    def __call__(self, requests: Sequence[ImageToTextInput]) -> list[ImageToTextOutput]:
        answers: list[Any] = [None] * len(requests)
        for settings, indexes in grouped(requests, caption_settings).items():
            images = [decode_image(requests[index].inputs) for index in indexes]
            for index, text in zip(indexes, in_chunks(lambda chunk: self.caption(chunk, settings), images)):
                answers[index] = ImageToTextOutput(text)
        return answers

    def caption(self, images: list, settings: tuple) -> list[str]:
        import torch

        pixels = self.processor(images, return_tensors="pt")["pixel_values"].to(self.model.device, self.model.dtype)
        with torch.inference_mode():
            generated = self.model.generate(pixel_values=pixels, **generate_kwargs(settings, "parameters.generation_parameters"))
        return self.tokenizer.batch_decode(generated, skip_special_tokens=True)


class VisualQuestionAnswering:
    """Answer classifiers (ViLT), as the 4.x pipeline read them: a sigmoid score for each answer the model
    knows, the top_k best. Answer generators (BLIP) answer once, scored by the probability of the answer they
    generate (the 4.x pipeline gave no score; the clients need one). Questions longer than the model reads
    are cut to fit."""

    def __init__(self, processor: Any, model: Any) -> None:
        self.processor, self.model = processor, model
        self.classifies = type(model).__name__.startswith("Vilt")
        self.most_elongated = most_elongated(processor.image_processor)
        text_config = getattr(model.config, "text_config", model.config)
        self.most_tokens = getattr(text_config, "max_position_embeddings", None) or processor.tokenizer.model_max_length

    @classmethod
    def load(cls, snapshot: ModelSnapshot) -> VisualQuestionAnswering:
        from transformers import AutoProcessor

        return cls(AutoProcessor.from_pretrained(str(snapshot.path), trust_remote_code=snapshot.trust_remote_code), model_for(snapshot, "AutoModelForVisualQuestionAnswering"))

    def __call__(self, requests: Sequence[VisualQuestionAnsweringInput]) -> list[list[VisualQuestionAnsweringAnswer]]:
        # ViLT's processor shrinks a thin image's short side to nothing (the kit found a 1x8 image failing it).
        pairs = [(widened(decode_image(request.inputs.image), self.most_elongated), request.inputs.question) for request in requests]
        if not self.classifies:
            return [[VisualQuestionAnsweringAnswer(text, score)] for text, score in self.generated_by_length(pairs)]
        answers = []
        for request, probabilities in zip(requests, in_chunks(self.scored, pairs)):
            best, ids = probabilities.topk(min(request.parameters.top_k, probabilities.shape[0]))
            answers.append([VisualQuestionAnsweringAnswer(self.model.config.id2label[int(i)], float(score)) for score, i in zip(best, ids)])
        return answers

    def batch(self, pairs: list) -> Any:
        images, questions = zip(*pairs)
        batch = self.processor(
            images=list(images), text=list(questions), padding=True, truncation=True, max_length=self.most_tokens, return_tensors="pt"
        ).to(self.model.device)
        batch["pixel_values"] = batch["pixel_values"].to(self.model.dtype)
        return batch

    def scored(self, pairs: list) -> list:
        import torch

        with torch.inference_mode():
            return list(self.model(**self.batch(pairs)).logits.float().sigmoid())

    def generated_by_length(self, pairs: list) -> list[tuple[str, float]]:
        """Only questions of one length share a batch: BLIP's decoder attends to every position of the question,
        padding included (the kit found answers changing with their batch)."""
        tokenizer = self.processor.tokenizer
        return in_groups(self.generated, pairs, key=lambda pair: len(tokenizer(pair[1], truncation=True, max_length=self.most_tokens)["input_ids"]))

    def generated(self, pairs: list) -> list[tuple[str, float]]:
        """Each greedy answer and its probability: the product of its tokens' probabilities, up to its end."""
        import torch

        with torch.inference_mode():
            out = self.model.generate(**self.batch(pairs), **generate_kwargs((), "parameters"), output_scores=True, return_dict_in_generate=True)
        steps = len(out.scores)
        chosen = out.sequences[:, -steps:]
        log_probabilities = torch.stack(out.scores, dim=1).float().log_softmax(-1).gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
        ends = torch.tensor(self.model.generation_config.eos_token_id or [], device=chosen.device).reshape(-1)
        ended = torch.isin(chosen, ends).int()
        after_the_end = (ended.cumsum(dim=1) - ended) > 0
        probabilities = log_probabilities.masked_fill(after_the_end, 0.0).sum(dim=1).exp()
        texts = self.processor.tokenizer.batch_decode(out.sequences, skip_special_tokens=True)
        return [(text.strip(), float(probability)) for text, probability in zip(texts, probabilities)]


def caption_settings(request: ImageToTextInput) -> tuple:
    parameters = request.parameters
    settings = generation_settings(parameters.generation_parameters, "parameters.generation_parameters")
    if parameters.max_new_tokens is None:
        return settings
    if any(name == "max_new_tokens" for name, _ in settings):
        raise InvalidInput(
            "parameters.max_new_tokens is also set in parameters.generation_parameters; set it once", field="parameters.max_new_tokens"
        )
    return (*settings, ("max_new_tokens", parameters.max_new_tokens))


ELONGATIONS = (64, 32, 16, 8, 4, 2)


def most_elongated(processor: Any) -> int:
    """How many times longer than wide an image may reach the model: processors that fit an image between
    a shortest and a longest edge (DETR, YOLOS) shrink a thinner one to nothing and fail. Found by trying,
    once, at load."""
    from PIL import Image

    for ratio in ELONGATIONS:
        try:
            for size in ((1024, 1024 // ratio), (1024 // ratio, 1024)):
                processor(Image.new("RGB", size), return_tensors="pt")
        except Exception:
            continue
        return ratio
    return 1


def widened(image: Any, ratio: int) -> Any:
    """An image more elongated than ``ratio``, or one pixel thin, with black below or to the right of it, which
    moves no box: its pixels keep their coordinates, and answers are cut back to the image (``inside``, the crops
    of masks and depth maps).
    One pixel thin: the depth pipeline squeezes a 1x1 map to no image at all."""
    from PIL import Image

    width, height = image.size
    least = max(2, -(-max(width, height) // ratio))
    if min(width, height) >= least:
        return image
    canvas = Image.new(image.mode, (max(width, least), max(height, least)))
    canvas.paste(image, (0, 0))
    return canvas


def inside(box: dict, width: int, height: int) -> BoundingBox:
    """A box cut to the image: a model's box may reach past its edges, which no client can draw."""
    xmin, xmax = (min(max(box[name], 0), width) for name in ("xmin", "xmax"))
    ymin, ymax = (min(max(box[name], 0), height) for name in ("ymin", "ymax"))
    return BoundingBox(min(xmin, xmax), min(ymin, ymax), max(xmin, xmax), max(ymin, ymax))


def image_pipeline(task: str, snapshot: ModelSnapshot) -> Any:
    """A transformers pipeline for ``task`` with the model's Pillow image processor (the fast ones need torchvision)."""
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(str(snapshot.path), use_fast=False, trust_remote_code=snapshot.trust_remote_code)
    return hf_pipeline(task, snapshot, image_processor=processor)
