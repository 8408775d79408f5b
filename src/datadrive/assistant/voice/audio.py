"""WAV files in and out: 16 kHz mono 16-bit PCM, checked, with clear errors.

The assistant listens at :data:`SAMPLE_RATE_HZ`. A file that is empty, not a
RIFF/WAVE file, truncated, compressed, multi-channel or at another sample
rate raises an :class:`~datadrive.errors.InputError` subclass naming the
file and the reason (and, for a wrong rate, the ``sox`` command that fixes
it); nothing is guessed.

Notation:
    S: number of samples.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np

from datadrive.core.typing import NDArrayFloat32
from datadrive.errors import CorruptFileError, EmptyLogError, InvalidValueError

__all__ = ["SAMPLE_RATE_HZ", "read_wav", "resample", "wav_bytes", "write_wav"]

SAMPLE_RATE_HZ = 16000


def read_wav(path: str | Path, *, rate_hz: int = SAMPLE_RATE_HZ) -> NDArrayFloat32:
    """``(S,)`` float32 samples in [-1, 1] of a 16-bit PCM mono WAV file at ``rate_hz``.

    Raises:
        EmptyLogError: if the file or its audio is empty.
        CorruptFileError: if it is not a readable WAV file.
        InvalidValueError: for another sample rate, channel count or sample format.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise CorruptFileError(p, f"cannot read the file ({exc.strerror or exc})") from exc
    if not raw:
        raise EmptyLogError(p, "the file is empty")
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise CorruptFileError(p, "not a WAV file (no RIFF/WAVE header)")
    try:
        with wave.open(io.BytesIO(raw)) as w:
            channels, width, rate, frames = (
                w.getnchannels(),
                w.getsampwidth(),
                w.getframerate(),
                w.getnframes(),
            )
            data = w.readframes(frames)
    except (wave.Error, EOFError) as exc:
        raise CorruptFileError(p, f"the WAV file does not decode ({exc})") from exc
    if width != 2:
        raise InvalidValueError(p, f"{8 * width}-bit samples; the assistant reads 16-bit PCM")
    if rate != rate_hz:
        raise InvalidValueError(
            p,
            f"sample rate {rate} Hz; the assistant listens at {rate_hz} "
            f"Hz (convert: sox IN -r {rate_hz} -c 1 -b 16 OUT.wav)",
        )
    if channels != 1:
        raise InvalidValueError(
            p, f"{channels} channels; the assistant reads mono (convert: sox IN -c 1 OUT.wav)"
        )
    if len(data) < 2 * frames:
        raise CorruptFileError(
            p, f"truncated: the header says {frames} samples, the file holds {len(data) // 2}"
        )
    if frames == 0:
        raise EmptyLogError(p, "the WAV file holds no audio")
    out: NDArrayFloat32 = (np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0).astype(np.float32)
    return out


def wav_bytes(samples: NDArrayFloat32, rate_hz: int = SAMPLE_RATE_HZ) -> bytes:
    """A 16-bit PCM mono WAV file of ``(S,)`` samples in [-1, 1] (clipped)."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def write_wav(path: str | Path, samples: NDArrayFloat32, rate_hz: int = SAMPLE_RATE_HZ) -> None:
    """Write ``(S,)`` samples as a 16-bit PCM mono WAV file."""
    Path(path).write_bytes(wav_bytes(samples, rate_hz))


def resample(samples: NDArrayFloat32, from_hz: int, to_hz: int = SAMPLE_RATE_HZ) -> NDArrayFloat32:
    """Polyphase resampling (scipy), e.g. espeak-ng's 22050 Hz to 16 kHz."""
    from math import gcd

    from scipy.signal import resample_poly

    if from_hz == to_hz:
        return samples.astype(np.float32)
    g = gcd(from_hz, to_hz)
    out: NDArrayFloat32 = resample_poly(samples, to_hz // g, from_hz // g).astype(np.float32)
    return out
