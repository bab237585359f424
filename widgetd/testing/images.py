"""Images for tests: any size, mode and container clients send."""

from __future__ import annotations

import io

FORMATS = ("PNG", "JPEG", "WEBP")
MODES = ("RGB", "L", "RGBA", "P")


def render_image(width: int, height: int, mode: str = "RGB", image_format: str = "PNG") -> bytes:
    """A flat-colour image; JPEG gets RGB, having no alpha or palette."""
    from PIL import Image

    colour = 128 if mode in ("L", "P") else (30, 160, 90, 255)[: len(mode)]
    image = Image.new(mode, (width, height), colour)
    if image_format == "JPEG" and mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()
