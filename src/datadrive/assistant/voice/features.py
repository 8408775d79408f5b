"""Log-mel features: 40 mel bands, 25 ms windows every 10 ms, 60-7,600 Hz.

The usual front end of keyword spotting.

Notation:
    S: number of samples.
    F: number of frames (``1 + (S - 400) // 160``).
    M: number of mel bands (40).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from datadrive.assistant.voice.audio import SAMPLE_RATE_HZ
from datadrive.core.typing import NDArrayFloat32

__all__ = ["HOP", "N_MELS", "WIN", "log_mel", "mel_centres_hz"]

N_FFT = 512
WIN = 400
HOP = 160
N_MELS = 40


def _mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _edges_hz(n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """The ``n_mels + 2`` filter edges (HTK mel scale, equally spaced in mel)."""
    out: np.ndarray = 700.0 * (
        10 ** (np.linspace(_mel(np.array(fmin)), _mel(np.array(fmax)), n_mels + 2) / 2595.0) - 1.0
    )
    return out


@lru_cache(maxsize=4)
def mel_centres_hz(n_mels: int = N_MELS, fmin: float = 60.0, fmax: float = 7600.0) -> np.ndarray:
    """``(M,)`` the centre frequencies of the mel filters, Hz (float32)."""
    return _edges_hz(n_mels, fmin, fmax)[1:-1].astype(np.float32)


@lru_cache(maxsize=4)
def _filterbank(n_mels: int = N_MELS, fmin: float = 60.0, fmax: float = 7600.0) -> np.ndarray:
    """``(N_FFT // 2 + 1, M)`` triangular mel filters (HTK mel scale), transposed for ``spec @ fb``."""
    pts = _edges_hz(n_mels, fmin, fmax)
    freqs = np.linspace(0, SAMPLE_RATE_HZ / 2, N_FFT // 2 + 1)
    fb = np.zeros((n_mels, freqs.shape[0]))
    for m in range(n_mels):
        lo, c, hi = pts[m], pts[m + 1], pts[m + 2]
        fb[m] = np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0.0, None)
    # float32, C-ordered as multiplied: a float64 or transposed product costs 10x on a busy BLAS
    return np.ascontiguousarray(fb.T, dtype=np.float32)


def log_mel(samples: NDArrayFloat32) -> NDArrayFloat32:
    """``(F, M)`` log mel energies of ``(S,)`` 16 kHz samples (``(0, M)`` when shorter than one window)."""
    x = np.asarray(samples, dtype=np.float32)
    if x.shape[0] < WIN:
        return np.zeros((0, N_MELS), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, WIN)[::HOP]
    window = np.hanning(WIN).astype(np.float32)
    spec = (np.abs(np.fft.rfft(frames * window, n=N_FFT, axis=1)) ** 2).astype(np.float32)
    out: NDArrayFloat32 = np.log(spec @ _filterbank() + 1e-6).astype(np.float32)
    return out
