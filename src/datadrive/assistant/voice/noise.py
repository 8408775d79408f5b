"""Car-cabin noise, reverberation and mixing, synthesized (no recordings are downloaded).

Noise *families*, each a small physical model with random parameters:

* ``engine``: firing-frequency harmonics (800-3,500 rpm, 4 or 6 cylinders)
  with slow rpm drift, over low-passed rumble;
* ``road``: tyre/road rumble, brown noise band-limited to 20-500 Hz, level
  set by a random speed;
* ``wind``: band-passed noise (300-3,000 Hz) with slow gusts;
* ``hvac``: a fan: pink noise and its blade-pass tone (150-400 Hz);
* ``rain``: droplet clicks on the roof over a hiss;
* ``indicator``: the turn signal's relay clicks at about 1.5 Hz;
* ``music``: the radio: random chords of harmonic tones;
* ``babble``: other people talking: 3-6 overlapping synthesized sentences
  (:func:`babble`, from each side's own sentences and voices).

The wake word is trained on ``engine``, ``road``, ``wind``, ``hvac`` and
``babble`` and evaluated on all eight with other random seeds, so ``rain``, ``indicator``
and ``music`` are noise the model never heard. Reverberation is a
synthetic small-room impulse response (exponentially decaying noise after a
direct path, RT60 0.05-0.4 s); mixing sets a signal-to-noise ratio in dB and
an overall gain.

Notation:
    S: number of samples.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

from datadrive.assistant.voice.audio import SAMPLE_RATE_HZ
from datadrive.core.typing import NDArrayFloat32

__all__ = [
    "NOISE_FAMILIES",
    "TEST_ONLY_FAMILIES",
    "TRAIN_FAMILIES",
    "NoiseBank",
    "babble",
    "cabin_noise",
    "mix",
    "reverb",
]

TRAIN_FAMILIES = ("engine", "road", "wind", "hvac", "babble")
TEST_ONLY_FAMILIES = ("rain", "indicator", "music")
NOISE_FAMILIES = TRAIN_FAMILIES + TEST_ONLY_FAMILIES
_MACHINE_FAMILIES = tuple(f for f in TRAIN_FAMILIES if f != "babble")  # made from nothing but a seed

_SR = SAMPLE_RATE_HZ


def _band(x: np.ndarray, lo: float | None, hi: float | None) -> np.ndarray:
    if lo and hi:
        sos = butter(4, [lo, hi], btype="bandpass", fs=_SR, output="sos")
    elif lo:
        sos = butter(4, lo, btype="highpass", fs=_SR, output="sos")
    else:
        sos = butter(4, hi, btype="lowpass", fs=_SR, output="sos")
    return np.asarray(sosfilt(sos, x))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)) + 1e-12))


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.shape[0], dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spec / np.sqrt(f), n)


def babble(clips: list[NDArrayFloat32], n: int, rng: np.random.Generator) -> NDArrayFloat32:
    """``(S,)`` babble: 3-6 talkers, each a random sequence of ``clips`` (unit RMS)."""
    out = np.zeros(n)
    for _ in range(int(rng.integers(3, 7))):
        talk: list[np.ndarray] = []
        have = 0
        while have < n:
            c = clips[int(rng.integers(len(clips)))]
            talk += [c, np.zeros(int(rng.uniform(0.05, 0.5) * _SR))]
            have += c.shape[0] + talk[-1].shape[0]
        x = np.concatenate(talk)
        s = int(rng.integers(0, x.shape[0] - n + 1))
        out += x[s : s + n] / _rms(x) * rng.uniform(0.5, 1.0)
    result: NDArrayFloat32 = (out / _rms(out)).astype(np.float32)
    return result


class NoiseBank:
    """Long noise takes per family, made once and cropped at random (fast augmentation).

    ``babble`` needs speech clips (``speech``); without them it is left out.
    """

    def __init__(
        self,
        families: tuple[str, ...],
        seed: int,
        *,
        speech: list[NDArrayFloat32] | None = None,
        seconds: float = 30.0,
        takes: int = 3,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.families = tuple(f for f in families if f != "babble" or speech)
        n = int(seconds * _SR)
        self.bank = {
            f: [
                babble(speech, n, rng) if f == "babble" and speech else cabin_noise(n, rng, (f,), k=1)
                for _ in range(takes)
            ]
            for f in self.families
        }

    def sample(
        self, n: int, rng: np.random.Generator, families: tuple[str, ...] | None = None
    ) -> NDArrayFloat32:
        """``(S,)`` unit-RMS noise: 1-3 of ``families`` (default: all of the bank's) at random levels."""
        pool = families or self.families
        count = int(rng.integers(1, min(3, len(pool)) + 1))
        out = np.zeros(n, dtype=np.float32)
        for f in rng.choice(np.array(pool), size=count, replace=False):
            takes = self.bank[str(f)]
            src = takes[int(rng.integers(len(takes)))]
            if src.shape[0] <= n:
                src = np.tile(src, n // src.shape[0] + 1)
            s = int(rng.integers(0, src.shape[0] - n + 1))
            out += src[s : s + n] * np.float32(rng.uniform(0.3, 1.0))
        result: NDArrayFloat32 = (out / np.float32(_rms(out))).astype(np.float32)
        return result


def _family(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / _SR
    if name == "engine":
        rpm = rng.uniform(800, 3500) * (
            1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 6))
        )
        f0 = rpm / 60.0 * rng.choice([2.0, 3.0])  # 4- or 6-cylinder four-stroke firing frequency
        phase = 2 * np.pi * np.cumsum(f0) / _SR
        tones = sum(rng.uniform(0.3, 1.0) / k * np.sin(k * phase + rng.uniform(0, 6)) for k in range(1, 7))
        return np.asarray(tones) + 0.3 * _band(rng.standard_normal(n), None, 300.0)
    if name == "road":
        brown = np.cumsum(rng.standard_normal(n))
        return _band(brown - brown.mean(), 20.0, rng.uniform(250.0, 600.0))
    if name == "wind":
        gust = 1 + 0.6 * np.sin(2 * np.pi * rng.uniform(0.1, 0.7) * t + rng.uniform(0, 6)) ** 2
        return _band(rng.standard_normal(n), 300.0, 3000.0) * gust
    if name == "hvac":
        blade = rng.uniform(150.0, 400.0)
        return _pink(n, rng) / 30 + 0.05 * np.sin(2 * np.pi * blade * t)
    if name == "rain":
        drops = (rng.random(n) < rng.uniform(5e-4, 3e-3)) * rng.standard_normal(n) * 8
        return _band(drops, 500.0, 6000.0) + 0.2 * _band(rng.standard_normal(n), 2000.0, 7000.0)
    if name == "indicator":
        period = int(_SR / rng.uniform(1.3, 1.7))
        clicks = np.zeros(n)
        for start in range(int(rng.integers(0, period)), n, period // 2):
            end = min(n, start + 160)
            clicks[start:end] += np.exp(-np.arange(end - start) / 25.0) * rng.standard_normal(end - start)
        return _band(clicks, 800.0, 5000.0) + 0.02 * rng.standard_normal(n)
    if name == "music":
        out = np.zeros(n)
        beat = int(_SR * rng.uniform(0.3, 0.8))
        for start in range(0, n, beat):
            end = min(n, start + beat)
            tt = np.arange(end - start) / _SR
            root = 110.0 * 2 ** (rng.integers(0, 24) / 12)
            for ratio in (1.0, 1.26, 1.5):
                for k in range(1, 5):
                    out[start:end] += (
                        np.sin(2 * np.pi * root * ratio * k * tt) / k * np.exp(-tt * rng.uniform(1, 4))
                    )
        return out
    if name == "babble":
        raise ValueError("noise family 'babble' is made from speech clips: use NoiseBank(..., speech=clips)")
    raise ValueError(f"unknown noise family {name!r}")


def cabin_noise(
    n: int, rng: np.random.Generator, families: tuple[str, ...] = _MACHINE_FAMILIES, *, k: int | None = None
) -> NDArrayFloat32:
    """``(S,)`` noise: a random mixture of 1-3 of ``families`` (unit RMS).

    ``babble`` is made from speech clips: use :class:`NoiseBank` (or :func:`babble`) for it.
    """
    count = k or int(rng.integers(1, min(3, len(families)) + 1))
    chosen = rng.choice(np.array(families), size=count, replace=False)
    out = np.zeros(n)
    for name in chosen:
        x = _family(str(name), n, rng)
        out += x / _rms(x) * rng.uniform(0.3, 1.0)
    result: NDArrayFloat32 = (out / _rms(out)).astype(np.float32)
    return result


def reverb(
    x: NDArrayFloat32, rng: np.random.Generator, *, rt60_s: tuple[float, float] = (0.05, 0.4)
) -> NDArrayFloat32:
    """``x`` through a synthetic small-room impulse response.

    The response: a direct path, a few early reflections (a car cabin's
    surfaces are 0.5-2 m away: 1.5-6 ms), then exponentially decaying noise
    with the chosen RT60, its high frequencies damped (soft seats and roof).
    """
    rt60 = rng.uniform(*rt60_s)
    length = max(int(_SR * rt60), 64)
    t = np.arange(length) / _SR
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60) * rng.uniform(0.2, 0.6)
    ir = np.asarray(
        sosfilt(butter(2, rng.uniform(2500.0, 7000.0), btype="lowpass", fs=_SR, output="sos"), tail)
    )
    ir[: int(0.001 * _SR)] = 0.0
    for _ in range(int(rng.integers(2, 6))):
        ir[int(rng.uniform(0.0015, 0.006) * _SR)] += rng.uniform(-0.6, 0.6)
    ir[0] = 1.0
    y = fftconvolve(x, ir)[: x.shape[0]]
    out: NDArrayFloat32 = (y / (_rms(y) / max(_rms(x), 1e-9))).astype(np.float32)
    return out


def mix(speech: NDArrayFloat32, noise: NDArrayFloat32, snr_db: float, gain_db: float = 0.0) -> NDArrayFloat32:
    """Speech plus noise scaled to ``snr_db`` (RMS over the speech's active part), times a gain, clipped."""
    active = speech[np.abs(speech) > 0.02 * (np.abs(speech).max() + 1e-9)]
    s_rms = _rms(active) if active.size else _rms(speech)
    n = noise[: speech.shape[0]]
    scale = s_rms / (_rms(n) * 10 ** (snr_db / 20.0))
    out: NDArrayFloat32 = np.clip((speech + n * scale) * 10 ** (gain_db / 20.0), -1.0, 1.0).astype(np.float32)
    return out
