"""Speech synthesis with espeak-ng (Debian's ``espeak-ng``): training data and spoken answers.

:func:`english_voices` lists what the installed espeak-ng can say English
with: its English accents (``en-us``, ``en-gb-scotland``, ...), other
languages' voices reading English (accented speech), each combinable with
espeak's voice variants (``+m3``, ``+f2``, ``+klatt``, ...). :func:`speak`
runs ``espeak-ng --stdout`` and returns 16 kHz float samples.

espeak-ng is a formant synthesiser: its voices are clear but robotic, and
far less varied than people. A wake word trained and tested on them shows
the pipeline works and how the model copes with accents, speeds, pitches,
noise and reverberation *of synthetic speech*; it does not show how it
copes with real voices (see ``docs/assistant.md``).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from datadrive.assistant.voice.audio import SAMPLE_RATE_HZ, resample
from datadrive.core.typing import NDArrayFloat32
from datadrive.errors import ConfigError

__all__ = ["Voice", "english_voices", "espeak_available", "speak", "variants"]

_ESPEAK_RATE_HZ = 22050
_ACCENTED = (
    "de",
    "fr",
    "es",
    "it",
    "nl",
    "sv",
    "pl",
    "pt",
    "hi",
    "fi",
    "cs",
    "ro",
    "hu",
    "da",
    "no",
    "tr",
    "ru",
    "el",
)


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an espeak voice (+ variant), words per minute, pitch (0-99)."""

    name: str
    speed_wpm: int = 160
    pitch: int = 50
    amplitude: int = 100

    def label(self) -> str:
        return f"{self.name}@{self.speed_wpm}wpm/p{self.pitch}"


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise ConfigError("espeak-ng is not installed: apt-get install -y espeak-ng (make setup does it)")
    return exe


@lru_cache(maxsize=1)
def _voice_table() -> tuple[tuple[str, str], ...]:
    out = subprocess.run([_espeak(), "--voices"], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5:
            rows.append((parts[1], parts[4]))  # language, file (e.g. gmw/en-US)
    return tuple(rows)


def english_voices(*, accented: bool = True) -> list[str]:
    """espeak voices that can read English: English accents first, then other languages' voices."""
    table = _voice_table()
    english = sorted({lang for lang, file in table if lang.startswith("en") and not file.startswith("mb/")})
    if not accented:
        return english
    others = sorted({lang for lang, file in table if lang in _ACCENTED and not file.startswith("mb/")})
    return english + others


@lru_cache(maxsize=1)
def variants() -> tuple[str, ...]:
    """espeak-ng's voice variants (``m1``..``m7``, ``f1``..``f5``, ``klatt``, ``whisper``, ...)."""
    out = subprocess.run([_espeak(), "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5:
            names.append(parts[4].split("/")[-1])
    return tuple(sorted(set(names)))


def speak(text: str, voice: Voice | None = None, *, rate_hz: int = SAMPLE_RATE_HZ) -> NDArrayFloat32:
    """``(S,)`` float32 samples of ``text`` spoken by ``voice``.

    Raises:
        ConfigError: if espeak-ng is missing or fails.
    """
    v = voice or Voice("en-us")
    cmd = [
        _espeak(),
        "-v",
        v.name,
        "-s",
        str(v.speed_wpm),
        "-p",
        str(v.pitch),
        "-a",
        str(v.amplitude),
        "--stdout",
        "--",
        text,
    ]
    done = subprocess.run(cmd, capture_output=True, check=False)
    if done.returncode != 0:
        raise ConfigError(
            f"espeak-ng failed for voice {v.name}: {done.stderr.decode(errors='replace').strip()}"
        )
    raw = done.stdout
    i = raw.find(b"data")
    if raw[:4] != b"RIFF" or i < 0:
        raise ConfigError(f"espeak-ng gave no WAV for voice {v.name}")
    pcm = (
        np.frombuffer(raw[i + 8 : i + 8 + (len(raw) - i - 8) // 2 * 2], dtype="<i2").astype(np.float32)
        / 32768.0
    )
    return resample(pcm, _ESPEAK_RATE_HZ, rate_hz)
