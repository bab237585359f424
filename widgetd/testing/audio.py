"""Audio for tests: tones in every container, rate and channel count clients send."""

from __future__ import annotations

import io

import numpy as np
import soundfile

CONTAINERS = ("WAV", "FLAC", "OGG", "MP3")
_SUBTYPES = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS", "MP3": "MPEG_LAYER_III"}


def tone(seconds: float, rate: int, channels: int = 1, pitch: float = 440.0) -> np.ndarray:
    """Two sines; a stereo tone has the time-reversed signal on its second channel."""
    time = np.arange(int(seconds * rate)) / rate
    mono = (0.4 * np.sin(2 * np.pi * pitch * time) + 0.2 * np.sin(2 * np.pi * 97 * time)).astype(np.float32)
    return mono if channels == 1 else np.stack([mono, mono[::-1]], axis=1)


VOWEL_FORMANTS = ((730, 1090), (270, 2290), (300, 870), (530, 1840), (660, 1720))
"""First and second formants (Hz) of a, i, u, e and ae."""


def speech_like(seconds: float = 1.5, rate: int = 16000, syllables_per_second: float = 4.0) -> np.ndarray:
    """Voiced syllables: a gliding 120 Hz voice whose harmonics are shaped by the formants of a new
    vowel each syllable, rising and falling in loudness as syllables do. Not words, but the kind of
    signal a speech model hears as speech."""
    time = np.arange(int(seconds * rate)) / rate
    pitch = 120 + 15 * np.sin(2 * np.pi * 1.3 * time)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    syllable = (time * syllables_per_second).astype(int)
    first, second = (np.array([VOWEL_FORMANTS[i % len(VOWEL_FORMANTS)][f] for i in syllable]) for f in (0, 1))
    voice = np.zeros_like(time)
    for harmonic in range(1, 40):
        frequency = harmonic * pitch
        gain = np.exp(-(((frequency - first) / 90) ** 2)) + 0.6 * np.exp(-(((frequency - second) / 120) ** 2))
        voice += gain * np.sin(harmonic * phase) / np.sqrt(harmonic)
    loudness = np.sin(np.pi * (time * syllables_per_second % 1)) ** 2
    samples = voice * loudness
    return (0.5 * samples / max(float(np.max(np.abs(samples))), 1e-9)).astype(np.float32)


def encode(samples: np.ndarray, rate: int, container: str) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=container, subtype=_SUBTYPES[container])
    return buffer.getvalue()
