"""Running diffusion requests: those of a batch that share a shape (size, steps, guidance, scheduler) run
as one pipeline call, each with its own seeded generator, so an image depends only on its own request;
between steps, progress goes to whoever listens and work nobody waits for stops."""

from __future__ import annotations

import contextlib
import io
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from widgetd.cancellation import Abandoned, abandoned
from widgetd.errors import InvalidInput
from widgetd.media import Picture, decode_image
from widgetd.progress import report_progress, wants_preview

DEFAULT_SEED = 0
"""The seed of a request that gives none: the same request, the same image (see spec/README.md)."""

LATENT_RGB = np.array(
    [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]], dtype=np.float32
)
"""How Stable Diffusion's four latent channels roughly map to colours: a preview without running the VAE."""


@dataclass(frozen=True)
class Shape:
    """What requests must share to run in one pipeline call."""

    task: str
    width: int
    height: int
    steps: int | None
    guidance: float | None
    scheduler: str | None
    negative: bool


class DiffusionPipeline:
    def __init__(self, text: Any, image: Any, device: str) -> None:
        self.text, self.image, self.device = text, image, device
        self.tasks = ("text-to-image", "image-to-image") if image is not None else ("text-to-image",)
        self.answered_by = type(text).__name__
        self.runtime = f"torch ({str(text.dtype).removeprefix('torch.')})"
        scale = int(getattr(text, "vae_scale_factor", 8) or 8)
        denoiser = getattr(text, "unet", None) or getattr(text, "transformer", None)
        self.multiple = scale * int(getattr(denoiser.config, "patch_size", 1) or 1)
        sample = getattr(denoiser.config, "sample_size", 64)
        self.default_size = int((sample[0] if isinstance(sample, (list, tuple)) else sample) * scale)
        scheduler = text.scheduler
        self.schedulers = {cls.__name__: cls for cls in getattr(scheduler, "compatibles", [])} | {type(scheduler).__name__: type(scheduler)}
        self.strength = default_strength(image)

    def __call__(self, task: str, requests: Sequence[Any]) -> list[Picture | None]:
        shapes = [self.shape_of(task, request) for request in requests]
        groups: dict[Shape, list[int]] = defaultdict(list)
        for index, shape in enumerate(shapes):
            if not abandoned(requests[index]):
                groups[shape].append(index)
        answers: list[Picture | None] = [None] * len(requests)
        for shape, members in groups.items():
            for index, picture in zip(members, self.run(shape, [requests[index] for index in members])):
                answers[index] = picture
        return answers

    def shape_of(self, task: str, request: Any) -> Shape:
        parameters = request.parameters
        if task == "text-to-image":
            asked_width, asked_height = parameters.size
            fields = ("parameters.target_size",) * 2 if parameters.target_size is not None else ("parameters.width", "parameters.height")
            width, height = self.fitting(asked_width, fields[0]), self.fitting(asked_height, fields[1])
        else:
            width, height = self.image_size(request)
            self.check_denoising_steps(parameters.num_inference_steps)
        negative = parameters.negative_prompt is not None
        scheduler = parameters.scheduler if task == "text-to-image" else None
        if scheduler is not None and scheduler not in self.schedulers:
            raise InvalidInput(
                f"parameters.scheduler: {scheduler!r} is not one this model's pipeline can use; it can use {sorted(self.schedulers)}",
                field="parameters.scheduler",
            )
        return Shape(task, width, height, parameters.num_inference_steps, parameters.guidance_scale, scheduler, negative)

    def check_denoising_steps(self, steps: int | None) -> None:
        """Image-to-image denoises only the last ``strength`` share of the steps (diffusers keeps
        ``int(steps * strength)``): too few steps leave none, which the pipeline cannot run."""
        if steps is None or self.strength is None or int(steps * self.strength) >= 1:
            return
        least = math.ceil(1 / self.strength)
        if int(least * self.strength) < 1:  # 1 / strength rounded down in floating point
            least += 1
        raise InvalidInput(
            f"parameters.num_inference_steps: {steps} step{'s' if steps > 1 else ''} at this pipeline's strength "
            f"{self.strength:g} leave{'s' if steps == 1 else ''} no denoising step; ask for at least {least}",
            field="parameters.num_inference_steps",
        )

    def fitting(self, side: int | None, field: str) -> int:
        if side is None:
            return self.default_size
        if side % self.multiple:
            lower, upper = side - side % self.multiple, side - side % self.multiple + self.multiple
            raise InvalidInput(
                f"{field}: {side} pixels; this model makes sides that are multiples of {self.multiple} "
                f"(e.g. {max(lower, self.multiple)} or {upper})",
                field=field,
            )
        return side

    def image_size(self, request: Any) -> tuple[int, int]:
        """The answer's size: ``target_size``, else the input's (the model runs at the next multiple of its
        sides' step, and the image made is resized to this)."""
        target = request.parameters.target_size
        if target is not None:
            return target.width, target.height
        from PIL import Image

        with Image.open(io.BytesIO(request.inputs)) as image:  # the header only: run() decodes it
            return image.size

    def model_side(self, side: int) -> int:
        return -(-side // self.multiple) * self.multiple

    def run(self, shape: Shape, requests: list[Any]) -> list[Picture]:
        import torch

        pipe = self.text if shape.task == "text-to-image" else self.image
        seeds = [request.parameters.seed if request.parameters.seed is not None else DEFAULT_SEED for request in requests]
        arguments: dict[str, Any] = {
            "prompt": [self.prompt_of(request) for request in requests],
            "generator": [torch.Generator("cpu").manual_seed(seed) for seed in seeds],
            "output_type": "np",
            "callback_on_step_end": self.on_step_end(requests, shape.steps),
        }
        if shape.steps is not None:
            arguments["num_inference_steps"] = shape.steps
        if shape.guidance is not None:
            arguments["guidance_scale"] = shape.guidance
        if shape.negative:
            arguments["negative_prompt"] = [request.parameters.negative_prompt or "" for request in requests]
        if shape.task == "text-to-image":
            arguments.update(width=shape.width, height=shape.height)
        else:
            size = (self.model_side(shape.width), self.model_side(shape.height))
            arguments["image"] = [decode_image(request.inputs).resize(size) for request in requests]
        with torch.inference_mode(), self.scheduled(pipe, shape.scheduler):
            images = pipe(**arguments).images
        pictures = [Picture((np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)) for image in images]
        return [picture if picture.size == (shape.width, shape.height) else resized(picture, shape.width, shape.height) for picture in pictures]

    @staticmethod
    def prompt_of(request: Any) -> str:
        return request.inputs if isinstance(request.inputs, str) else (request.parameters.prompt or "")

    def on_step_end(self, requests: list[Any], steps: int | None):
        def callback(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if all(abandoned(request) for request in requests):
                raise Abandoned("every request of this diffusion was given up")
            total = int(getattr(pipe, "num_timesteps", None) or steps or step + 1)
            latents = tensors.get("latents")
            for index, request in enumerate(requests):
                preview = latent_preview(latents[index]) if latents is not None and wants_preview(request, step + 1, total) else None
                report_progress(request, step + 1, total, preview)
            return {}

        return callback

    @contextlib.contextmanager
    def scheduled(self, pipe: Any, name: str | None) -> Iterator[None]:
        if name is None or name == type(pipe.scheduler).__name__:
            yield
            return
        original = pipe.scheduler
        try:
            pipe.scheduler = self.schedulers[name].from_config(original.config)
        except (ImportError, OSError, ValueError) as error:  # e.g. a scheduler needing torchsde, not installed
            raise InvalidInput(f"parameters.scheduler: {name} cannot run on this server ({error})", field="parameters.scheduler") from None
        try:
            yield
        finally:
            pipe.scheduler = original


def default_strength(pipe: Any) -> float | None:
    """How much of the input image a pipeline's image-to-image call re-noises by default (None: not one
    that takes a strength)."""
    import inspect

    if pipe is None:
        return None
    parameter = inspect.signature(pipe.__call__).parameters.get("strength")
    if parameter is None or not isinstance(parameter.default, (int, float)) or parameter.default <= 0:
        return None
    return float(parameter.default)


def resized(picture: Picture, width: int, height: int) -> Picture:
    from PIL import Image

    return Picture.of(Image.fromarray(picture.pixels).resize((width, height), Image.Resampling.LANCZOS))


def latent_preview(latent: Any) -> Picture:
    """A small picture of latents (channels, height, width), at the latents' own size."""
    values = latent.detach().float().cpu().numpy()
    if values.shape[0] == LATENT_RGB.shape[0]:
        rgb = np.einsum("chw,cr->hwr", values, LATENT_RGB)
    else:  # another latent space: its first three channels, spread over the colours
        rgb = np.moveaxis(values[:3], 0, -1)
        rgb = (rgb - rgb.min()) / max(float(rgb.max() - rgb.min()), 1e-6) * 2 - 1
    return Picture((np.clip((rgb + 1) / 2, 0, 1) * 255).astype(np.uint8))
