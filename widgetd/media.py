"""Audio and images on the wire: decoding requests, encoding answers."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import numpy as np
import soundfile

from widgetd.errors import PayloadTooLarge, UnsupportedMedia

AUDIO_FORMATS: dict[str, str] = {
    "flac": "audio/flac",
    "wav": "audio/wav",
    "ogg": "audio/ogg",
    "mp3": "audio/mpeg",
}
"""Audio formats an answer can be encoded in, with their content types."""

_ACCEPT_ALIASES = {
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
}

_SOUNDFILE_FORMATS = {"flac": "FLAC", "wav": "WAV", "ogg": "OGG", "mp3": "MP3"}
_SOUNDFILE_SUBTYPES = {"flac": "PCM_16", "wav": "PCM_16", "ogg": "VORBIS", "mp3": "MPEG_LAYER_III"}


@dataclass(frozen=True)
class Audio:
    """Samples as float32 in [-1, 1], shaped (frames,) or (frames, channels)."""

    samples: np.ndarray
    sample_rate: Annotated[int, msgspec.Meta(gt=0)]

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / self.sample_rate

    def mono(self) -> Audio:
        if self.samples.ndim == 1:
            return self
        return Audio(self.samples.mean(axis=1, dtype=np.float32), self.sample_rate)

    def resampled(self, sample_rate: int) -> Audio:
        if sample_rate == self.sample_rate:
            return self
        return Audio(resample(self.samples, self.sample_rate, sample_rate), sample_rate)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling (windowed sinc), channel by channel, without torchaudio."""
    frames = samples.shape[0]
    out_frames = max(1, round(frames * to_rate / from_rate))
    if samples.ndim == 2:
        return np.stack(
            [resample(samples[:, c], from_rate, to_rate) for c in range(samples.shape[1])], axis=1
        )
    spectrum = np.fft.rfft(samples.astype(np.float64))
    keep = min(spectrum.shape[0], out_frames // 2 + 1)
    resized = np.zeros(out_frames // 2 + 1, dtype=np.complex128)
    resized[:keep] = spectrum[:keep]
    out = np.fft.irfft(resized, n=out_frames) * (out_frames / frames)
    return out.astype(np.float32)


def decode_audio(data: bytes) -> Audio:
    """Decode wav, flac, ogg/vorbis, ogg/opus or mp3 bytes; UnsupportedMedia otherwise."""
    if not data:
        raise UnsupportedMedia("inputs: the audio is empty")
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise UnsupportedMedia(
            f"inputs: could not decode the audio ({_describe(error)}); "
            "send wav, flac, ogg or mp3 bytes"
        ) from None
    if samples.shape[0] == 0:
        raise UnsupportedMedia("inputs: the audio holds no samples")
    return Audio(np.ascontiguousarray(samples), int(rate))


def check_audio(data: bytes, max_seconds: float = float("inf")) -> None:
    """Reject bytes no audio decoder can read, or longer than ``max_seconds``, before any model runs."""
    try:
        info = soundfile.info(io.BytesIO(data))
    except Exception:
        info = None  # decode_audio says why it cannot be read
    if info is not None and info.samplerate and info.frames / info.samplerate > max_seconds:
        raise PayloadTooLarge(
            f"inputs: the audio lasts {info.frames / info.samplerate:.1f} s, more than the {max_seconds:g} s "
            "this server takes (--max-audio-seconds)",
            field="inputs",
        )
    decode_audio(data)


def encode_audio(audio: Audio, audio_format: str) -> bytes:
    buffer = io.BytesIO()
    samples = np.clip(np.asarray(audio.samples, dtype=np.float32), -1.0, 1.0)
    soundfile.write(
        buffer,
        samples,
        audio.sample_rate,
        format=_SOUNDFILE_FORMATS[audio_format],
        subtype=_SOUNDFILE_SUBTYPES[audio_format],
    )
    return buffer.getvalue()


def audio_format_for(accept: str | None) -> str:
    """The first audio format the Accept header names that we encode; flac otherwise."""
    for part in (accept or "").split(","):
        media_type = part.split(";")[0].strip().lower()
        if media_type in _ACCEPT_ALIASES:
            return _ACCEPT_ALIASES[media_type]
    return "flac"


IMAGE_FORMATS: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
"""Image formats an answer can be encoded in, with their content types."""

_IMAGE_ACCEPT = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/webp": "webp"}


class Picture:
    """An image answer: pixels as uint8, shaped (height, width, 3) for RGB or (height, width) for greyscale.
    Encoded in the format the Accept header asks for (PNG by default)."""

    __slots__ = ("pixels",)

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels

    @classmethod
    def of(cls, image: Any) -> Picture:
        """A PIL image as a Picture (RGB, or greyscale where it is)."""
        return cls(np.asarray(image if image.mode in ("RGB", "L") else image.convert("RGB")))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as PIL says it."""
        return self.pixels.shape[1], self.pixels.shape[0]


def encode_image(picture: Picture, image_format: str) -> bytes:
    from PIL import Image

    image = Image.fromarray(picture.pixels)
    if image_format == "jpeg" and image.mode == "RGBA":  # JPEG has no alpha
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format=image_format.upper(), **({"quality": 95} if image_format != "png" else {}))
    return buffer.getvalue()


def image_format_for(accept: str | None) -> str:
    """The first image format the Accept header names that we encode; png otherwise."""
    for part in (accept or "").split(","):
        media_type = part.split(";")[0].strip().lower()
        if media_type in _IMAGE_ACCEPT:
            return _IMAGE_ACCEPT[media_type]
    return "png"


def binary_type_for(accept: str | None) -> str:
    """The content type of raw answer bytes (a custom handler's): the first audio, image or video type the
    Accept header names, as Inference Endpoints' toolkit labelled them; ``application/octet-stream`` otherwise."""
    for part in (accept or "").split(","):
        media_type = part.split(";")[0].strip().lower()
        if media_type.split("/")[0] in ("audio", "image", "video") and not media_type.endswith("/*"):
            return media_type
    return "application/octet-stream"


def decode_image(data: bytes):
    """Open JPEG, PNG, WebP, GIF or BMP bytes as an RGB PIL image; UnsupportedMedia otherwise."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise UnsupportedMedia("inputs: the image is empty")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Image.DecompressionBombError as error:
        raise _too_many_pixels(error, None) from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise UnsupportedMedia(
            f"inputs: could not decode the image ({_describe(error)}); send JPEG, PNG or WebP bytes"
        ) from None
    return image.convert("RGB")


def _too_many_pixels(error: Exception, max_pixels: int | None) -> PayloadTooLarge:
    claimed = re.search(r"\((\d+) pixels\)", str(error))
    size = f"{int(claimed.group(1))} pixels" if claimed else "more pixels than any image this server opens"
    limit = f"the {max_pixels} this server takes" if max_pixels is not None else "what this server opens"
    return PayloadTooLarge(f"inputs: the image claims {size}, more than {limit} (--max-image-pixels)", field="inputs")


def check_image(data: bytes, max_pixels: int | None = None) -> None:
    """Reject bytes no image decoder can read, or of more than ``max_pixels``, before any model runs."""
    from PIL import Image

    try:
        size = Image.open(io.BytesIO(data)).size  # the header only: nothing decoded yet
    except Image.DecompressionBombError as error:  # a header claiming more pixels than Pillow opens
        raise _too_many_pixels(error, max_pixels) from None
    except Exception:
        size = None  # decode_image says why it cannot be read
    if size is not None and max_pixels is not None and size[0] * size[1] > max_pixels:
        raise PayloadTooLarge(
            f"inputs: the image has {size[0]}x{size[1]} pixels, more than the {max_pixels} this server takes "
            "(--max-image-pixels)",
            field="inputs",
        )
    decode_image(data)


_OBJECT_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")
"""A Python object's repr (``<_io.BytesIO object at 0x7f...>``): the library's words for the bytes sent."""


def _describe(error: Exception) -> str:
    """The decoder's reason, for the client: its first line, the bytes sent called what they are, no repr."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    text = _OBJECT_REPR.sub("the bytes sent", text).replace("Error opening the bytes sent: ", "")
    return text[:200]
