"""Audio for tests: tones in every container, rate and channel count clients send."""

from __future__ import annotations

import io

import numpy as np
import soundfile

CONTAINERS = ("WAV", "FLAC", "OGG", "MP3")
_SUBTYPES = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    """Two sines; a stereo tone has the time-reversed signal on its second channel."""
    time = np.arange(int(seconds * rate)) / rate
    mono = (0.4 * np.sin(2 * np.pi * 440 * time) + 0.2 * np.sin(2 * np.pi * 97 * time)).astype(np.float32)
    return mono if channels == 1 else np.stack([mono, mono[::-1]], axis=1)


def encode(samples: np.ndarray, rate: int, container: str) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=container, subtype=_SUBTYPES[container])
    return buffer.getvalue()
