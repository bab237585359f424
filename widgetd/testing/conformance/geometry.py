"""Metamorphic rules for answers placed on the picture (boxes, masks, depth): the same picture at twice its
size gets the same answer at twice the coordinates, and a picture that gains a black border on its right
and bottom keeps its boxes. A plugin that reports places in its model's resized input, and then clips or
resizes them into the picture, passes every rule about one answer; it cannot pass these."""

from __future__ import annotations

import base64
import io
from typing import Any, ClassVar

import numpy as np
import pytest

from widgetd.testing.conformance.base import Served, TaskTests
from widgetd.testing.conformance.exchange import Call
from widgetd.testing.conformance.rules import expect
from widgetd.testing.images import render_image

SCALE = 2
PICTURE = (120, 80)
"""A picture wider than tall, so that swapped axes show."""


def picture_call(image: bytes, **parameters: Any) -> Call:
    return Call({"inputs": base64.b64encode(image).decode(), "parameters": parameters}, carries_media=True)


def enlarged(image: bytes, factor: int = SCALE) -> bytes:
    """The same picture, each pixel repeated ``factor`` times each way."""
    from PIL import Image

    with Image.open(io.BytesIO(image)) as picture:
        return png(picture.resize((picture.width * factor, picture.height * factor), Image.NEAREST))


def bordered(image: bytes, right: int, bottom: int) -> bytes:
    """The same picture with a black border of ``right`` and ``bottom`` pixels."""
    from PIL import Image

    with Image.open(io.BytesIO(image)) as picture:
        canvas = Image.new("RGB", (picture.width + right, picture.height + bottom))
        canvas.paste(picture.convert("RGB"), (0, 0))
        return png(canvas)


def png(picture: Any) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def box_of(found: Any) -> np.ndarray:
    return np.array([found.box.xmin, found.box.ymin, found.box.xmax, found.box.ymax], dtype=np.float64)


def unmatched_boxes(expected: list[tuple[str, np.ndarray]], answered: list[Any], slack: float) -> list[str]:
    """Each expected (label, box) matched to a different answered object of that label within ``slack`` pixels
    on every side; the ones left without a match."""
    free = [(found.label, box_of(found)) for found in answered]
    missing = []
    for label, box in expected:
        match = next((index for index, (other, candidate) in enumerate(free) if other == label and np.max(np.abs(candidate - box)) <= slack), None)
        if match is None:
            missing.append(f"{label} at {box.round(1).tolist()}")
        else:
            free.pop(match)
    return missing


class BoxGeometryTests(TaskTests):
    """Object detection: boxes scale with the picture; a black border on the right and bottom moves no box."""

    sees_through_borders: ClassVar[bool] = False
    """Set True for a model whose objects stay put when the picture gains a black border (trained detectors do;
    random weights see a new picture and answer anew): then the border rule runs."""

    def boxes(self, served: Served, image: bytes) -> list[Any]:
        call = picture_call(image, threshold=0.0)
        return self.decode(served.task, call, self.answer(served, call))

    def test_boxes_scale_with_the_picture(self, served):
        image = render_image(*PICTURE)
        small, large = self.boxes(served, image), self.boxes(served, enlarged(image))
        expect(small, f"{served.task.name}: no object found at threshold 0 in a {PICTURE[0]}x{PICTURE[1]} picture: nothing to place")
        slack = 2 + 0.03 * SCALE * max(PICTURE)
        missing = unmatched_boxes([(found.label, SCALE * box_of(found)) for found in small], large, slack)
        expect(
            len(large) == len(small) and not missing,
            f"{served.task.name}: the same picture at {SCALE}x its size must get the same objects at {SCALE}x the coordinates "
            f"(within {slack:.0f} pixels); expected but not found: {missing[:4]}, answered {len(large)} objects for {len(small)}. "
            "Boxes must be in the pixels of the picture as sent, not of the model's resized input",
        )

    def test_a_black_border_moves_no_box(self, served):
        if not self.sees_through_borders:
            pytest.skip("set sees_through_borders = True for a model whose objects stay put when the picture gains a black border")
        image = render_image(*PICTURE)
        before = self.boxes(served, image)
        for right, bottom in ((PICTURE[0] // 2, 0), (0, PICTURE[1] // 2)):
            after = self.boxes(served, bordered(image, right, bottom))
            missing = unmatched_boxes([(found.label, box_of(found)) for found in before], after, 2)
            expect(
                not missing,
                f"{served.task.name}: a black border of {right} pixels on the right and {bottom} below must move no box; "
                f"moved or lost: {missing[:4]}. Boxes are scaled by the picture's own width (x) and height (y)",
            )


def flat_picture(width: int, height: int, colour: tuple[int, int, int] = (30, 160, 90)) -> bytes:
    """One colour and nothing else: at any size it is the same picture to a model that resizes it, so that even
    a model whose masks turn on a pixel's difference (random weights) must answer it alike at both sizes."""
    from PIL import Image

    return png(Image.new("RGB", (width, height), colour))


def mask_pixels(mask: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(mask)) as picture:
        return np.asarray(picture.convert("L")) > 127


class MaskGeometryTests(TaskTests):
    """Segmentation: the same picture at twice its size gets the same segments, their masks twice as large."""

    def segments(self, served: Served, image: bytes) -> list[Any]:
        call = picture_call(image, threshold=0.0)
        return self.decode(served.task, call, self.answer(served, call))

    def test_masks_scale_with_the_picture(self, served):
        image = flat_picture(*PICTURE)
        small, large = self.segments(served, image), self.segments(served, enlarged(image))
        expect(small, f"{served.task.name}: no segment at threshold 0 in a {PICTURE[0]}x{PICTURE[1]} picture: nothing to place")
        expect(
            sorted(segment.label for segment in large) == sorted(segment.label for segment in small),
            f"{served.task.name}: the same picture at {SCALE}x its size must get the same segments; got "
            f"{sorted(s.label for s in large)} for {sorted(s.label for s in small)}",
        )
        free = [mask_pixels(segment.mask) for segment in large]
        labels = [segment.label for segment in large]
        for segment in small:
            expected = np.repeat(np.repeat(mask_pixels(segment.mask), SCALE, axis=0), SCALE, axis=1)
            differences = [int(np.sum(expected != mask)) if mask.shape == expected.shape and label == segment.label else expected.size
                           for mask, label in zip(free, labels)]
            best = int(np.argmin(differences))
            allowed = 0.03 * expected.size
            expect(
                differences[best] <= allowed,
                f"{served.task.name}: segment {segment.label!r} of the picture at {SCALE}x its size must be its mask at {SCALE}x the "
                f"size; the closest differs in {differences[best]} of {expected.size} pixels. Masks must cover the picture as sent, "
                "not the model's resized or padded input",
            )
            free.pop(best)
            labels.pop(best)


class DepthGeometryTests(TaskTests):
    """Depth: on a picture wider than tall, the same picture at twice its size gets the same depth map at twice
    the size: rows are the picture's rows (no swapped or reshaped axes)."""

    def depth(self, served: Served, image: bytes) -> np.ndarray:
        call = picture_call(image)
        return np.asarray(self.decode(served.task, call, self.answer(served, call)).predicted_depth, dtype=np.float64)

    def test_depth_follows_the_picture(self, served):
        image = render_image(*PICTURE)
        small, large = self.depth(served, image), self.depth(served, enlarged(image))
        expected = np.repeat(np.repeat(small, SCALE, axis=0), SCALE, axis=1)
        expect(large.shape == expected.shape, f"{served.task.name}: depth of {large.shape} for a picture whose rows and columns make {expected.shape}")
        spread = float(np.ptp(small)) or 1.0
        off = float(np.mean(np.abs(large - expected))) / spread
        expect(
            off <= 0.05,
            f"{served.task.name}: the same picture at {SCALE}x its size must get the same depth at {SCALE}x the size; they differ by "
            f"{off:.1%} of the depth range on average. Rows must be the picture's rows and columns its columns",
        )
