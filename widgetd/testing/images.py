"""Images for tests: any size, mode and container clients send."""

from __future__ import annotations

import io

FORMATS = ("PNG", "JPEG", "WEBP")
MODES = ("RGB", "L", "RGBA", "P")


def render_image(
    width: int, height: int, mode: str = "RGB", image_format: str = "PNG", colour: tuple[int, int, int] = (30, 160, 90)
) -> bytes:
    """A flat-colour image, a brighter square in its middle; JPEG gets RGB, having no alpha or palette."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), colour)
    ImageDraw.Draw(image).rectangle((width // 4, height // 4, width // 2, height // 2), fill=tuple(min(255, c + 90) for c in colour))
    image = image.convert(mode)
    if image_format == "JPEG" and mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()
