"""The wake word: data, model, training (through ``datadrive.train``), streaming detection, evaluation.

Data (all synthesized, see :mod:`~datadrive.assistant.voice.corpus` for who
says what and what is held out): wake phrases, near misses, ordinary
sentences and sentences with the words apart, from three synthesizers
(espeak-ng, flite, festival); a fifth of the wake phrases and near misses
tempo-shifted by sox (0.8-1.25); windows mixed with cabin noise
(:mod:`~datadrive.assistant.voice.noise`) at -5 to 20 dB SNR, gain -12 to
+6 dB, synthetic cabin reverberation on half.

Model: a small TC-ResNet: temporal convolutions over log-mel frames (mel
bands as channels), depthwise-separable residual blocks, average- and
max-pooled, about 70 k parameters, over 2.2 s windows scoring the chance
that the wake phrase *ended* within the last few hundred milliseconds.

Training goes through the project trainer
(:func:`datadrive.train.fit_task` with a :class:`~datadrive.train.task.TensorTask`:
AdamW, cosine schedule, checkpoints with exact resume, samples/s):
first on the windows, then **hard-negative mining**: a stream of
training-distribution negative audio is scored, its windows scoring
above 0.1 join the negatives, and a second run continues from the first
one's weights. The **threshold** is chosen on a validation stream (training
voices, new utterances and noise seeds, never the test's): just above the
highest smoothed score of its negative audio.

Streaming detection: a window every 100 ms, the scores averaged over the
last ``smooth`` windows (posterior smoothing), a wake-up when the average
reaches the threshold, then nothing for ``refractory_s``.

Evaluation (:func:`evaluate`): long test streams (held-out voices, sentences,
near misses and noise, among them three noise families never heard in
training) with wake phrases at random times, scored as a car would run the
detector; detection rate and false wakes per hour, the whole curve, and
pocketsphinx keyword spotting on the same audio as the anchor.

Notation:
    N: windows.
    F: frames in a window (218 for 2.2 s).
    M: mel bands (40).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from datadrive.assistant.voice.audio import SAMPLE_RATE_HZ
from datadrive.assistant.voice.corpus import (
    COMMANDS,
    PREFIX_PHRASES,
    TEST_NEAR_MISSES,
    TRAIN_NEAR_MISSES,
    apart_sentences,
    random_voice,
    sentence_pools,
    speaker_pool,
    voice_pools,
)
from datadrive.assistant.voice.features import HOP, N_MELS, WIN, log_mel
from datadrive.assistant.voice.noise import NOISE_FAMILIES, TRAIN_FAMILIES, NoiseBank, mix, reverb
from datadrive.assistant.voice.synth import Voice, perturb, speak_many
from datadrive.core.typing import NDArrayFloat, NDArrayFloat32
from datadrive.errors import ConfigError

__all__ = [
    "BUNDLED_MODEL",
    "EvalReport",
    "WakeWordConfig",
    "WakeWordModel",
    "build_training_set",
    "evaluate",
    "load_model",
    "plot_curve",
    "small_config",
    "train",
    "triggers",
    "voice_pools",
    "warp_mel",
]

SR = SAMPLE_RATE_HZ
BUNDLED_MODEL = Path(__file__).resolve().parent / "models" / "hey_datadrive.pt"
MODEL_VERSION = 2
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class WakeWordConfig:
    """How the wake word is built and trained.

    Attributes:
        phrase: The wake phrase ("hey datadrive").
        positives: Synthesized wake-phrase utterances for training.
        augment: Noisy windows of each.
        sentences: Training sentences synthesized for negatives.
        near_misses: Near-miss utterances for training.
        noise_windows: Noise-only training windows.
        epochs: Epochs of the first run.
        batch_size: Batch size.
        lr: Peak AdamW learning rate.
        window_s: The detector's window.
        smooth: Scores averaged (100 ms apart) before the threshold.
        refractory_s: After a wake, how long nothing else wakes.
        snr_db: Training SNR range of the negatives.
        positive_snr_db: Training SNR range of the wake phrases (the test's
            streams are 0-20 dB; below 0 dB babble the phrase is often not
            audible at all, and such labels taught the network to fire on
            babble).
        width: Channels of the network's blocks.
        perturbed: Extra copies of each wake phrase and near miss, pitch- and
            tempo-shifted by sox (the same share of both, so that a shifted
            voice is no cue).
        pitch_cents: Range of those pitch shifts: mostly upwards, as the
            flite and festival training voices are all male.
        tempo: Range of those tempo shifts.
        vtlp: Range of the vocal-tract-length warp applied on the fly to each
            training window's mel axis (:func:`warp_mel`; ``(1, 1)``: none):
            a longer or shorter vocal tract moves every formant by one factor,
            the main difference between speakers that pitch shifts miss.
        band_limit: Share of training windows band-limited on the fly (the
            mel bands above a random 3.4-6.6 kHz cut-off flattened), as a
            narrow-band microphone or codec would.
        accented: Wake phrases, and as many near misses, spoken by festival's
            Italian, Finnish and Czech voices from respelled English
            (:mod:`~datadrive.assistant.voice.accented`), with a third as
            many training sentences: more speakers, two of them women
            (0: none; those voices train only, the evaluation never uses them).
        neural: Wake phrases, and as many near misses, spoken by the neural
            voices of :func:`~datadrive.assistant.voice.neural.train_voices`
            (Kokoro-82M speakers reading espeak-ng's English IPA, alone and
            mixed), with a third as many training sentences (0: none; the
            held-out neural voices never train).
        stream_negatives: Negative windows drawn at random from training
            clips end to end in fresh noise (:func:`negative_audio`): the
            windows a streaming detector sees between phrases, straddling
            utterances and gaps.
        mining_minutes: Training-distribution negative audio scanned for hard
            negatives after the first run (0: no mining).
        mining_epochs: Epochs of each mining run (data plus hard negatives).
        clip_mining_minutes: Negative audio per mining round made from the
            training clips themselves (sentences, near misses, unfinished
            phrases end to end in fresh noise): cheap, no synthesis, every
            window 100 ms apart scored as the streaming detector would.
        mining_rounds: Rounds of mining (each scores with the latest weights
            and continues training on everything mined so far).
        val_positives: Wake phrases in the validation stream.
        val_minutes: Negative audio of the validation stream (sets the threshold).
        seed: Every random choice derives from it.
        threads: Synthesizer processes at once.
    """

    phrase: str = "hey datadrive"
    positives: int = 2500
    augment: int = 2
    sentences: int = 1000
    near_misses: int = 1500
    noise_windows: int = 800
    epochs: int = 10
    batch_size: int = 128
    lr: float = 3e-3
    window_s: float = 2.2
    smooth: int = 3
    refractory_s: float = 2.0
    snr_db: tuple[float, float] = (-5.0, 20.0)
    positive_snr_db: tuple[float, float] = (0.0, 20.0)
    width: int = 64
    perturbed: int = 1
    pitch_cents: tuple[float, float] = (-300.0, 900.0)
    tempo: tuple[float, float] = (0.85, 1.2)
    vtlp: tuple[float, float] = (0.85, 1.18)
    band_limit: float = 0.15
    accented: int = 0
    neural: int = 0
    stream_negatives: int = 6000
    mining_minutes: float = 12.0
    mining_epochs: int = 3
    clip_mining_minutes: float = 40.0
    mining_rounds: int = 2
    val_positives: int = 150
    val_minutes: float = 10.0
    seed: int = 20261207
    threads: int = 2

    @property
    def frames(self) -> int:
        """Feature frames in one window (218 for 2.2 s)."""
        return 1 + (round(self.window_s * SR) - WIN) // HOP

    def corpus_key(self) -> str:
        """What the synthesized clips depend on (the cache's name)."""
        doc = {k: getattr(self, k) for k in ("phrase", "positives", "sentences", "near_misses", "seed")}
        doc["voices"] = [asdict(speaker_pool(s)) for s in ("train", "test")]
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def small_config(**overrides: Any) -> WakeWordConfig:
    """A quick configuration for tests (well under a minute of training on 2 cores)."""
    base = WakeWordConfig(
        positives=120,
        augment=1,
        sentences=60,
        near_misses=60,
        noise_windows=60,
        epochs=3,
        batch_size=32,
        perturbed=0,
        vtlp=(1.0, 1.0),  # a few hundred windows learn too little in 3 epochs under speaker augmentation
        band_limit=0.0,
        stream_negatives=0,
        mining_minutes=0.0,
        clip_mining_minutes=0.0,
        val_positives=6,
        val_minutes=0.5,
        width=32,
    )
    return replace(base, **overrides)


# --------------------------------------------------------------------------- clips


def _trim(x: NDArrayFloat32, level: float = 0.01) -> NDArrayFloat32:
    idx = np.flatnonzero(np.abs(x) > level * (np.abs(x).max() + 1e-9))
    return x[idx[0] : idx[-1] + 1] if idx.size else x


def _say(
    jobs: Sequence[tuple[str, Voice]], threads: int, label: str, progress: Progress | None
) -> list[NDArrayFloat32]:
    def one(done: int) -> None:
        if progress is not None:
            progress(f"synthesizing {label}", done, len(jobs))

    return [_trim(a) for a in speak_many(jobs, threads=threads, progress=one)]


def _phrases(phrase: str) -> list[str]:
    """Ways of writing the phrase that synthesizers say differently (pauses, compound split)."""
    out = [phrase, phrase.replace(" ", ", ", 1)]
    if "datadrive" in phrase:
        out.append(phrase.replace("datadrive", "data drive"))
    return out


def _tempo(clips: list[NDArrayFloat32], rng: np.random.Generator, share: float = 0.2) -> list[NDArrayFloat32]:
    return [perturb(c, tempo=float(rng.uniform(0.8, 1.25))) if rng.random() < share else c for c in clips]


def _shifted(
    clips: Sequence[NDArrayFloat32], config: WakeWordConfig, rng: np.random.Generator
) -> list[NDArrayFloat32]:
    """``config.perturbed`` pitch- and tempo-shifted copies of each clip (sox, ``config.threads`` at once)."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = [
        (c, float(rng.uniform(*config.pitch_cents)), float(rng.uniform(*config.tempo)))
        for c in clips
        for _ in range(config.perturbed)
    ]
    with ThreadPoolExecutor(max(1, config.threads)) as pool:
        return list(pool.map(lambda j: perturb(j[0], tempo=j[2], pitch_cents=j[1]), jobs))


@dataclass
class Clips:
    """Clean synthesized clips by kind (``positive``, ``near_miss``, ``sentence``)."""

    by_kind: dict[str, list[NDArrayFloat32]]

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {}
        for kind, clips in self.by_kind.items():
            arrays[f"{kind}__audio"] = (
                np.concatenate(clips).astype(np.float16) if clips else np.zeros(0, np.float16)
            )
            arrays[f"{kind}__len"] = np.array([c.shape[0] for c in clips], dtype=np.int64)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Clips:
        with np.load(path) as z:
            kinds = sorted({k.split("__")[0] for k in z.files})
            out: dict[str, list[NDArrayFloat32]] = {}
            for kind in kinds:
                audio = z[f"{kind}__audio"].astype(np.float32)
                ends = np.cumsum(z[f"{kind}__len"])
                out[kind] = [audio[a:b] for a, b in zip(np.r_[0, ends[:-1]], ends, strict=True)]
        return cls(out)


def training_clips(
    config: WakeWordConfig, *, cache_dir: Path | None = None, progress: Progress | None = None
) -> Clips:
    """The clean training clips (training voices and sentences only); cached in ``cache_dir``."""
    path = None if cache_dir is None else cache_dir / f"train-clips-{config.corpus_key()}.npz"
    if path is not None and path.exists():
        return Clips.load(path)
    rng = np.random.default_rng(config.seed)
    pool = speaker_pool("train")
    sentences, _ = sentence_pools()
    talk = sentences + list(COMMANDS[:6]) + list(apart_sentences("train")) * 6
    spoken = _phrases(config.phrase)
    jobs = {
        "positive": [(str(rng.choice(spoken)), random_voice(rng, pool)) for _ in range(config.positives)],
        "near_miss": [
            (str(rng.choice(np.array(TRAIN_NEAR_MISSES))), random_voice(rng, pool))
            for _ in range(config.near_misses)
        ],
        "sentence": [
            (str(rng.choice(np.array(talk))), random_voice(rng, pool)) for _ in range(config.sentences)
        ],
    }
    out = {k: _say(v, config.threads, k.replace("_", " "), progress) for k, v in jobs.items()}
    out["positive"] = _tempo(out["positive"], rng)
    out["near_miss"] = _tempo(out["near_miss"], rng)
    clips = Clips(out)
    if path is not None:
        clips.save(path)
    return clips


# --------------------------------------------------------------------------- windows


def normalise(feats: NDArrayFloat32) -> NDArrayFloat32:
    """Per-band mean removal over the window (``(..., F, M)``): gain-invariant."""
    out: NDArrayFloat32 = (feats - feats.mean(axis=-2, keepdims=True)).astype(np.float32)
    return out


def _place_end(
    utt: NDArrayFloat32, n: int, end_gap: int, rng: np.random.Generator, before: NDArrayFloat32 | None
) -> NDArrayFloat32:
    """A window of ``n`` samples whose utterance ends ``end_gap`` samples before the window's end."""
    out = np.zeros(n, dtype=np.float32)
    end = n - end_gap
    start = end - utt.shape[0]
    if start < 0:
        out[:end] = utt[-end:]
    else:
        out[start:end] = utt
        if before is not None and start > 0 and rng.random() < 0.5:
            tail = (
                before[-start + int(rng.uniform(0.05, 0.4) * SR) :] if start > 0.4 * SR else before[-start:]
            )
            out[start - tail.shape[0] : start] = tail * rng.uniform(0.3, 1.0)
    return out


def _noisy(
    x: NDArrayFloat32, rng: np.random.Generator, bank: NoiseBank, snr: tuple[float, float]
) -> NDArrayFloat32:
    y = reverb(x, rng, rt60_s=(0.05, 0.5)) if rng.random() < 0.5 else x
    return mix(y, bank.sample(y.shape[0], rng), float(rng.uniform(*snr)), float(rng.uniform(-12.0, 6.0)))


@dataclass
class Dataset:
    """Windows of features and labels (``x (N, F, M)`` float16, ``y (N,)``), their kinds."""

    x: np.ndarray
    y: NDArrayFloat32
    kinds: list[str] = field(default_factory=list)


def _windows_to_features(windows: Sequence[NDArrayFloat32], frames: int) -> np.ndarray:
    return np.stack([normalise(log_mel(w)[:frames]) for w in windows]).astype(np.float16)


def build_training_set(
    config: WakeWordConfig,
    *,
    clips: Clips | None = None,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> Dataset:
    """The training windows (training voices, sentences, near misses and noise families only).

    The base windows of the clean clips, then the extras: windows of the
    pitch- and tempo-shifted copies (``config.perturbed``) and random
    streamed negatives (``config.stream_negatives``).
    """
    clips = clips or training_clips(config, cache_dir=cache_dir, progress=progress)
    base = _windows_of(config, clips, progress)
    extra = _extra_windows(config, clips, progress)
    return Dataset(
        np.concatenate([base.x, extra.x]), np.concatenate([base.y, extra.y]), base.kinds + extra.kinds
    )


def _windows_of(
    config: WakeWordConfig,
    clips: Clips,
    progress: Progress | None,
    *,
    seed: int | None = None,
    negatives: bool = True,
) -> Dataset:
    """Noisy windows of the phrases (and unfinished ones), near misses, (``negatives``) sentences, noise."""
    rng = np.random.default_rng(config.seed + 1 if seed is None else seed)
    n = int(config.window_s * SR)
    pos, near, sent = clips.by_kind["positive"], clips.by_kind["near_miss"], clips.by_kind["sentence"]
    bank = NoiseBank(TRAIN_FAMILIES, config.seed + 2, speech=sent[: max(1, len(sent) // 2)])
    windows: list[NDArrayFloat32] = []
    labels: list[float] = []
    kinds: list[str] = []

    def add(x: NDArrayFloat32, label: float, kind: str, noisy: bool = True) -> None:
        snr = config.positive_snr_db if label > 0.5 else config.snr_db
        windows.append(_noisy(x, rng, bank, snr) if noisy else x)
        labels.append(label)
        kinds.append(kind)

    def context() -> NDArrayFloat32 | None:
        return sent[int(rng.integers(len(sent)))] if sent else None

    for utt in pos:
        for _ in range(config.augment):
            add(_place_end(utt, n, int(rng.uniform(0.02, 0.35) * SR), rng, context()), 1.0, "positive")
        if rng.random() < 0.6:  # "hey data...": not finished yet
            cut = utt[: int(utt.shape[0] * rng.uniform(0.3, 0.75))]
            add(_place_end(cut, n, int(rng.uniform(0.0, 0.3) * SR), rng, context()), 0.0, "partial")
    for utt in near:
        add(_place_end(utt, n, int(rng.uniform(0.02, 0.4) * SR), rng, context()), 0.0, "near_miss")
    for utt in sent if negatives else []:
        for _ in range(3):
            if utt.shape[0] > n:
                s = int(rng.integers(0, utt.shape[0] - n))
                add(utt[s : s + n].copy(), 0.0, "sentence")
            else:
                add(_place_end(utt, n, int(rng.uniform(0, 0.5) * SR), rng, context()), 0.0, "sentence")
    for _ in range(config.noise_windows if negatives else 0):
        add(bank.sample(n, rng) * np.float32(10 ** rng.uniform(-2.5, -0.5)), 0.0, "noise", noisy=False)
    x = np.empty((len(windows), config.frames, N_MELS), np.float16)
    for i in range(0, len(windows), 500):
        x[i : i + 500] = _windows_to_features(windows[i : i + 500], config.frames)
        if progress is not None:
            progress("features", min(i + 500, len(windows)), len(windows))
    return Dataset(x, np.array(labels, dtype=np.float32), kinds)


def _extra_windows(config: WakeWordConfig, clips: Clips, progress: Progress | None) -> Dataset:
    """Windows of shifted copies of the phrases and near misses, and random streamed negatives."""
    parts: list[Dataset] = []
    if config.perturbed > 0:
        if progress is not None:
            progress("pitch and tempo shifts", 0, 1)
        rng = np.random.default_rng(config.seed + 3)
        shifted = Clips(
            {
                "positive": _shifted(clips.by_kind["positive"], config, rng),
                "near_miss": _shifted(clips.by_kind["near_miss"], config, rng),
                "sentence": clips.by_kind["sentence"],
            }
        )
        parts.append(_windows_of(config, shifted, progress, seed=config.seed + 4, negatives=False))
    streamed = _stream_windows(config, clips, config.stream_negatives, config.seed + 50)
    parts.append(Dataset(streamed, np.zeros(streamed.shape[0], np.float32), ["stream"] * streamed.shape[0]))
    return Dataset(
        np.concatenate([d.x for d in parts]),
        np.concatenate([d.y for d in parts]),
        [k for d in parts for k in d.kinds],
    )


def accented_clips(config: WakeWordConfig, progress: Progress | None = None) -> Clips:
    """``config.accented`` phrases and near misses (and a third as many sentences) by the accented voices.

    Raises:
        ConfigError: if none of :data:`~datadrive.assistant.voice.accented.ACCENTED_VOICES` is installed.
    """
    from datadrive.assistant.voice.accented import ACCENTED_VOICES, accented_voices, respell

    voices = accented_voices()
    if not voices:
        raise ConfigError(
            "no accented festival voice is installed: apt-get install -y festvox-italp16k "
            "festvox-itapc16k festvox-suopuhe-lj festvox-suopuhe-mv festvox-czech-dita"
        )
    rng = np.random.default_rng(config.seed + 60)
    texts = _training_texts(rng, config.phrase, config.accented)
    jobs: dict[str, list[tuple[str, Voice]]] = {}
    for kind, said in texts.items():
        who = [str(rng.choice(np.array(voices))) for _ in said]
        speeds = [int(round(rng.integers(110, 216) / 20) * 20) for _ in said]
        pitches = [(int(rng.integers(15, 86)) + 50) // 2 for _ in said]
        spelled: list[str] = [""] * len(said)
        for language in sorted({ACCENTED_VOICES[v] for v in who}):
            idx = [i for i, v in enumerate(who) if ACCENTED_VOICES[v] == language]
            for i, text in zip(
                idx, respell([said[i] for i in idx], language, threads=config.threads), strict=True
            ):
                spelled[i] = text
        jobs[kind] = [
            (t, Voice(v, sp, p, engine="festival"))
            for t, v, sp, p in zip(spelled, who, speeds, pitches, strict=True)
        ]
    return Clips(
        {kind: _say_each(j, config.threads, f"accented {kind}", progress) for kind, j in jobs.items()}
    )


def _say_each(
    jobs: Sequence[tuple[str, Voice]], threads: int, label: str, progress: Progress | None
) -> list[NDArrayFloat32]:
    """:func:`_say`, but a batch that a voice cannot say is spoken one by one, dropping what fails.

    Foreign festival voices stumble over a few respelled words (a Lisp error
    for the whole batch); losing those few utterances costs nothing.
    """
    groups: dict[tuple[str, int], list[int]] = {}
    for i, (_, v) in enumerate(jobs):
        groups.setdefault((v.name, v.speed_wpm), []).append(i)
    out: list[NDArrayFloat32] = []
    for n, idx in enumerate(groups.values()):
        batch = [jobs[i] for i in idx]
        try:
            out += _say(batch, threads, label, None)
        except ConfigError:
            for job in batch:
                try:
                    out += _say([job], 1, label, None)
                except ConfigError:
                    continue
        if progress is not None:
            progress(f"synthesizing {label}", n + 1, len(groups))
    return out


def neural_clips(
    config: WakeWordConfig,
    voices: Sequence[str] | None = None,
    *,
    seed_offset: int = 70,
    progress: Progress | None = None,
) -> Clips:
    """``config.neural`` phrases and near misses (a third as many sentences) by neural ``voices``.

    ``voices`` defaults to :func:`~datadrive.assistant.voice.neural.train_voices`;
    the speaking rate varies 0.8-1.25 times the model's own.

    Raises:
        ConfigError: if the neural voices' packages are not installed.
    """
    from datadrive.assistant.voice.neural import speak_neural, train_voices

    who_pool = np.array(list(voices if voices is not None else train_voices()))
    rng = np.random.default_rng(config.seed + seed_offset)
    texts = _training_texts(rng, config.phrase, config.neural)
    out: dict[str, list[NDArrayFloat32]] = {}
    for kind, said in texts.items():
        who = [str(rng.choice(who_pool)) for _ in said]
        speeds = [float(rng.uniform(0.8, 1.25)) for _ in said]
        clips: list[NDArrayFloat32] = []
        for i in range(0, len(said), 25):
            clips += speak_neural(
                said[i : i + 25],
                who[i : i + 25],
                speeds[i : i + 25],
                seed=config.seed + i,
                threads=config.threads,
            )
            if progress is not None:
                progress(f"neural voices: {kind}", min(i + 25, len(said)), len(said))
        out[kind] = [_trim(c) for c in clips if c.size > SR // 10]
    return Clips(out)


def _neural_windows(config: WakeWordConfig, progress: Progress | None) -> Dataset:
    """Noisy windows of :func:`neural_clips` (phrases, unfinished phrases, near misses, sentences)."""
    clips = neural_clips(config, progress=progress)
    return _windows_of(replace(config, noise_windows=0), clips, progress, seed=config.seed + 71)


def _accented_windows(config: WakeWordConfig, progress: Progress | None) -> Dataset:
    """Noisy windows of :func:`accented_clips` (phrases, unfinished phrases, near misses, sentences)."""
    clips = accented_clips(config, progress)
    return _windows_of(replace(config, noise_windows=0), clips, progress, seed=config.seed + 61)


def _stream_windows(config: WakeWordConfig, clips: Clips, n: int, seed: int) -> np.ndarray:
    """``(n, F, M)`` normalised windows at random frames of :func:`negative_audio` (about 3 a second)."""
    if n <= 0:
        return np.zeros((0, config.frames, N_MELS), np.float16)
    rng = np.random.default_rng(seed)
    audio = negative_audio(config, clips, n / 3.0 / 60.0, seed)
    feats = [log_mel(a) for a in audio]
    usable = np.array([max(0, f.shape[0] - config.frames + 1) for f in feats])
    which = rng.choice(len(feats), size=n, p=usable / usable.sum())
    out = np.empty((n, config.frames, N_MELS), np.float16)
    for i, k in enumerate(which.tolist()):
        s = int(rng.integers(usable[k]))
        out[i] = normalise(feats[k][s : s + config.frames])
    return out


# --------------------------------------------------------------------------- model


def _net(config: WakeWordConfig) -> Any:
    """A small TC-ResNet (mel bands as channels, depthwise-separable residual blocks over time)."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, k: int, stride: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv1d(cin, cin, k, stride=stride, padding=k // 2, groups=cin, bias=False),
                nn.BatchNorm1d(cin),
                nn.ReLU(),
                nn.Conv1d(cin, cout, 1, bias=False),
                nn.BatchNorm1d(cout),
            )
            self.skip: nn.Module = (
                nn.Identity()
                if cin == cout and stride == 1
                else nn.Sequential(nn.Conv1d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm1d(cout))
            )
            self.act = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.body(x) + self.skip(x))  # type: ignore[no-any-return]

    class Net(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            w2 = width * 3 // 2
            self.stem = nn.Sequential(
                nn.Conv1d(N_MELS, width, 5, stride=2, padding=2, bias=False), nn.BatchNorm1d(width), nn.ReLU()
            )
            self.blocks = nn.Sequential(
                Block(width, width, 9, 1),
                Block(width, width, 9, 2),
                Block(width, w2, 9, 1),
                Block(w2, w2, 9, 2),
                Block(w2, w2, 9, 1),
            )
            self.drop = nn.Dropout(0.2)
            self.head = nn.Linear(2 * w2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, M, F) -> (B,) logits
            h = self.blocks(self.stem(x))
            pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
            return self.head(self.drop(pooled)).squeeze(1)  # type: ignore[no-any-return]

    return Net(config.width)


def _meta(config: WakeWordConfig) -> dict[str, Any]:
    return {
        "name": "wakeword-tcresnet",
        "version": MODEL_VERSION,
        "width": config.width,
        "frames": config.frames,
    }


@dataclass
class WakeWordModel:
    """A trained detector: the network, its config and its chosen threshold."""

    config: WakeWordConfig
    net: Any
    threshold: float
    meta: dict[str, Any] = field(default_factory=dict)

    def scores(
        self, feats: NDArrayFloat32, *, hop_frames: int = 10, batch: int = 512, lead_in: bool = True
    ) -> tuple[NDArrayFloat, NDArrayFloat]:
        """Raw scores of windows every ``hop_frames`` over ``(F_total, M)`` features.

        With ``lead_in`` the detector starts as a car's would, its window
        already full of the input's noise floor (each band's 10th percentile):
        the first window ends ``hop_frames`` into the input, so a wake phrase
        at the very start of a file is heard (a 2.2 s window would otherwise
        first end long after it). Without it, only whole windows of the input
        are scored (hard-negative mining: the training distribution).

        Returns:
            The windows' end times (s) and their scores.
        """
        import torch

        f = self.config.frames
        floor = np.percentile(feats, 10, axis=0) if feats.size else np.full(N_MELS, -13.8)
        pad_n = max(f - hop_frames, 0) if lead_in else 0
        pad_n = max(pad_n, f - feats.shape[0])  # too short for one window: pad it to one
        if pad_n > 0:
            feats = np.concatenate([np.broadcast_to(floor, (pad_n, N_MELS)).astype(np.float32), feats])
        starts = np.arange(0, feats.shape[0] - f + 1, hop_frames)
        windows = np.lib.stride_tricks.sliding_window_view(feats, (f, N_MELS))[starts, 0]
        out = np.empty(starts.shape[0])
        self.net.eval()
        with torch.no_grad():
            for i in range(0, starts.shape[0], batch):
                x = torch.from_numpy(normalise(np.ascontiguousarray(windows[i : i + batch]))).transpose(1, 2)
                out[i : i + batch] = torch.sigmoid(self.net(x)).numpy()
        ends = ((starts + f - pad_n) * HOP + WIN - HOP) / SR
        return ends, out

    def smoothed(self, feats: NDArrayFloat32) -> tuple[NDArrayFloat, NDArrayFloat]:
        """End times and posterior-smoothed scores (mean of the last ``smooth`` windows)."""
        ends, raw = self.scores(feats)
        return ends, smooth_scores(raw, self.config.smooth)

    def detect(self, samples: NDArrayFloat32, threshold: float | None = None) -> list[tuple[float, float]]:
        """Wake-ups in ``samples``: (window end time s, smoothed score), refractory period applied."""
        ends, scores = self.smoothed(log_mel(samples))
        return triggers(
            ends, scores, self.threshold if threshold is None else threshold, self.config.refractory_s
        )

    def save(self, path: str | Path) -> None:
        import torch

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        config = asdict(self.config)
        torch.save(
            {
                "format": "datadrive-wakeword/2",
                "config": config,
                "threshold": self.threshold,
                "meta": self.meta,
                "state": self.net.state_dict(),
            },
            str(path),
        )


def smooth_scores(raw: NDArrayFloat, k: int) -> NDArrayFloat:
    """Causal moving average over ``k`` scores (the first ones average what there is)."""
    if k <= 1 or raw.size == 0:
        return raw
    c = np.cumsum(np.r_[0.0, raw])
    idx = np.arange(1, raw.size + 1)
    lo = np.maximum(0, idx - k)
    out: NDArrayFloat = (c[idx] - c[lo]) / (idx - lo)
    return out


def triggers(
    ends: NDArrayFloat, scores: NDArrayFloat, threshold: float, refractory_s: float
) -> list[tuple[float, float]]:
    """(time, score) of each wake-up: the first score at or over ``threshold`` after a refractory period."""
    out: list[tuple[float, float]] = []
    last = -np.inf
    for i in np.flatnonzero(scores >= threshold).tolist():
        if ends[i] - last >= refractory_s:
            out.append((float(ends[i]), float(scores[i])))
            last = ends[i]
    return out


def load_model(path: str | Path | None = None) -> WakeWordModel:
    """A saved model (default: the bundled ``hey datadrive`` model).

    Raises:
        ConfigError: if the file is missing or not a wake-word model.
    """
    import torch

    p = Path(path) if path is not None else BUNDLED_MODEL
    if not p.is_file():
        raise ConfigError(
            f"{p}: no wake-word model here (train one: datadrive assistant wakeword train --out {p})"
        )
    try:
        doc = torch.load(str(p), map_location="cpu", weights_only=True)
        if doc.get("format") != "datadrive-wakeword/2":
            raise ValueError("not format datadrive-wakeword/2 (retrain with this version)")
        cfg = dict(doc["config"])
        for k in ("snr_db", "positive_snr_db", "pitch_cents", "tempo", "vtlp"):
            if k in cfg:
                cfg[k] = tuple(cfg[k])
        config = WakeWordConfig(**cfg)
        net = _net(config)
        net.load_state_dict(doc["state"])
    except Exception as exc:  # a truncated or foreign file: torch raises many kinds
        raise ConfigError(f"{p}: not a datadrive wake-word model ({type(exc).__name__}: {exc})") from exc
    return WakeWordModel(config, net, float(doc["threshold"]), dict(doc.get("meta", {})))


# --------------------------------------------------------------------------- streams


@dataclass
class Stream:
    """A stretch of audio with the wake phrases in it.

    Attributes:
        audio: ``(S,)`` samples.
        spans: ``(start s, end s)`` of each wake phrase.
        prefix_spans: Spans of phrases that contain the wake phrase as a prefix (counted apart).
        family: The noise families mixed in.
        voices: Each wake phrase's voice label.
    """

    audio: NDArrayFloat32
    spans: list[tuple[float, float]]
    prefix_spans: list[tuple[float, float]]
    family: str
    voices: list[str] = field(default_factory=list)


def make_streams(
    config: WakeWordConfig,
    split: str,
    *,
    minutes: float,
    positives: int,
    seed: int,
    snr_db: tuple[float, float] = (0.0, 20.0),
    chunk_s: float = 60.0,
    prefix_phrases: int = 0,
    neural_share: float = 0.0,
    progress: Progress | None = None,
) -> Iterator[Stream]:
    """Streams of ``split``'s speech in cabin noise, ``positives`` wake phrases spread over ``minutes``.

    A stream is about ``chunk_s`` of: sentences (and sentences with the words
    apart, commands), near misses, stretches of noise alone, and the wake
    phrases at random places, reverberated (half the streams) and mixed with
    1-3 noise families at one SNR; ``split`` ``"test"`` uses held-out voices,
    sentences, near misses and all noise families, ``"train"`` the training ones.

    ``neural_share`` > 0 (``"test"`` only) brings in the held-out neural voices
    (:data:`~datadrive.assistant.voice.neural.TEST_VOICES`): every wake phrase
    and that share of the other utterances are theirs. Their choices come from
    a generator of their own, so ``neural_share=0`` makes the same streams as before.
    """
    if neural_share > 0 and split != "test":
        raise ValueError("the held-out neural voices are for the test split only")
    rng = np.random.default_rng(seed)
    nrng = np.random.default_rng(seed + 9)
    pool = speaker_pool(split)
    train_s, test_s = sentence_pools()
    near: tuple[str, ...]
    families: tuple[str, ...]
    if split == "test":
        sentences = test_s + list(COMMANDS[6:]) + list(apart_sentences("test")) * 4
        near, families = TEST_NEAR_MISSES, NOISE_FAMILIES
    else:
        sentences = train_s + list(COMMANDS[:6]) + list(apart_sentences("train")) * 4
        near, families = TRAIN_NEAR_MISSES, TRAIN_FAMILIES
    babble_src = _say(
        [(str(rng.choice(np.array(sentences))), random_voice(rng, pool)) for _ in range(24)],
        config.threads,
        "babble",
        None,
    )
    bank = NoiseBank(families, seed + 2, speech=babble_src)
    n_chunks = max(1, round(minutes * 60.0 / chunk_s))
    pos_per = np.bincount(rng.integers(0, n_chunks, size=positives), minlength=n_chunks)
    pre_per = np.bincount(rng.integers(0, n_chunks, size=prefix_phrases), minlength=n_chunks)
    spoken = _phrases(config.phrase)
    total_s = 0.0
    for c in range(n_chunks):
        # the chunk's plan: ("pos"|"prefix"|"neg"|"noise", text)
        plan: list[tuple[str, str]] = []
        have = 0.0
        while have < chunk_s:
            u = rng.random()
            if u < 0.68:
                plan.append(("neg", str(rng.choice(np.array(sentences)))))
                have += 3.5
            elif u < 0.85:
                plan.append(("neg", str(rng.choice(np.array(near)))))
                have += 1.2
            else:
                plan.append(("noise", ""))
                have += 4.0
        for _ in range(int(pos_per[c])):
            plan.insert(int(rng.integers(0, len(plan) + 1)), ("pos", str(rng.choice(spoken))))
        for _ in range(int(pre_per[c])):
            plan.insert(
                int(rng.integers(0, len(plan) + 1)), ("prefix", str(rng.choice(np.array(PREFIX_PHRASES))))
            )
        jobs = [(text, random_voice(rng, pool)) for kind, text in plan if kind != "noise"]
        kinds = [kind for kind, _ in plan if kind != "noise"]
        if neural_share > 0:
            said_list, labels = _with_neural(
                config, jobs, kinds, neural_share, nrng, f"{split} stream {c + 1}"
            )
        else:
            said_list = _say(jobs, config.threads, f"{split} stream {c + 1}/{n_chunks}", None)
            labels = [v.label() for _, v in jobs]
        said = iter(said_list)
        voices = iter(labels)
        parts: list[NDArrayFloat32] = [np.zeros(int(rng.uniform(0.5, 2.0) * SR), np.float32)]
        at = parts[0].shape[0]
        spans: list[tuple[float, float]] = []
        prefix_spans: list[tuple[float, float]] = []
        pos_voices: list[str] = []
        for kind, _ in plan:
            if kind == "noise":
                x = np.zeros(int(rng.uniform(2.0, 6.0) * SR), np.float32)
            else:
                x = next(said)
                label = next(voices)
                if kind == "pos":
                    spans.append((at / SR, (at + x.shape[0]) / SR))
                    pos_voices.append(label)
                elif kind == "prefix":
                    prefix_spans.append((at / SR, (at + x.shape[0]) / SR))
            gap = np.zeros(
                int(rng.uniform(0.3, 1.5) * SR) if kind != "pos" else int(rng.uniform(1.2, 2.0) * SR),
                np.float32,
            )
            parts += [x, gap]
            at += x.shape[0] + gap.shape[0]
        audio = np.concatenate(parts)
        if rng.random() < 0.5:
            audio = reverb(audio, rng, rt60_s=(0.05, 0.5))
        fams = tuple(
            str(f) for f in rng.choice(np.array(bank.families), size=int(rng.integers(1, 3)), replace=False)
        )
        noise = bank.sample(audio.shape[0], rng, fams)
        mixed = mix(audio, noise, float(rng.uniform(*snr_db)), float(rng.uniform(-12.0, 6.0)))
        total_s += mixed.shape[0] / SR
        if progress is not None:
            progress(f"{split} streams (s)", int(min(total_s, minutes * 60)), int(minutes * 60))
        yield Stream(mixed, spans, prefix_spans, "+".join(fams), pos_voices)


def _with_neural(
    config: WakeWordConfig,
    jobs: Sequence[tuple[str, Voice]],
    kinds: Sequence[str],
    share: float,
    rng: np.random.Generator,
    label: str,
) -> tuple[list[NDArrayFloat32], list[str]]:
    """Say ``jobs``, every wake phrase and ``share`` of the rest in a held-out neural voice instead."""
    from datadrive.assistant.voice.neural import TEST_VOICES, speak_neural

    pick = [kind == "pos" or rng.random() < share for kind in kinds]
    who = [str(rng.choice(np.array(TEST_VOICES))) for _ in jobs]
    speeds = [float(rng.uniform(0.8, 1.25)) for _ in jobs]
    idx = [i for i, p in enumerate(pick) if p]
    rest = [i for i, p in enumerate(pick) if not p]
    neural = speak_neural(
        [jobs[i][0] for i in idx],
        [who[i] for i in idx],
        [speeds[i] for i in idx],
        seed=int(rng.integers(1 << 30)),
        threads=config.threads,
    )
    classic = _say([jobs[i] for i in rest], config.threads, label, None)
    out: list[NDArrayFloat32] = [np.zeros(0, np.float32)] * len(jobs)
    labels = [""] * len(jobs)
    for i, x in zip(idx, neural, strict=True):
        out[i] = _trim(x) if x.size else np.zeros(SR // 10, np.float32)
        labels[i] = f"{who[i]}@{speeds[i]:.2f}x"
    for i, x in zip(rest, classic, strict=True):
        out[i] = x
        labels[i] = jobs[i][1].label()
    return out, labels


@dataclass
class StreamScores:
    """A detector's smoothed scores over streams, and what a wake-up would count as."""

    ends: list[NDArrayFloat]
    scores: list[NDArrayFloat]
    streams: list[Stream]
    audio_s: float
    compute_s: float

    @property
    def negative_hours(self) -> float:
        """Audio outside the wake phrases (each phrase's span plus 1.2 s after it) and prefix phrases."""
        busy = sum(b - a + 1.2 for s in self.streams for a, b in s.spans + s.prefix_spans)
        return (self.audio_s - busy) / 3600.0

    def count(self, threshold: float, refractory_s: float) -> dict[str, Any]:
        """Detections, false wakes and prefix wakes at ``threshold``."""
        detected = false = prefix = 0
        per_phrase: list[bool] = []
        for ends, scores, s in zip(self.ends, self.scores, self.streams, strict=True):
            hits = [t for t, _ in triggers(ends, scores, threshold, refractory_s)]
            used = np.zeros(len(hits), bool)
            for a, b in s.spans:
                ok = [i for i, t in enumerate(hits) if a + 0.3 <= t <= b + 1.2]
                per_phrase.append(bool(ok))
                used[ok] = True
            for a, b in s.prefix_spans:
                ok = [i for i, t in enumerate(hits) if a + 0.3 <= t <= b + 1.2 and not used[i]]
                prefix += bool(ok)
                used[ok] = True
            false += int((~used).sum())
        detected = int(sum(per_phrase))
        n = len(per_phrase)
        return {
            "detected": detected,
            "positives": n,
            "detection_rate": detected / max(1, n),
            "false_wakes": false,
            "false_wakes_per_hour": false / max(self.negative_hours, 1e-9),
            "prefix_wakes": prefix,
            "prefix_phrases": sum(len(s.prefix_spans) for s in self.streams),
            "missed": [i for i, ok in enumerate(per_phrase) if not ok],
        }


def save_streams(streams: Sequence[Stream], path: Path) -> None:
    """Streams as 16-bit PCM with their spans (a test set to evaluate models on again)."""
    doc = [
        {
            "spans": s.spans,
            "prefix_spans": s.prefix_spans,
            "family": s.family,
            "voices": s.voices,
            "n": int(s.audio.shape[0]),
        }
        for s in streams
    ]
    pcm = (
        np.concatenate([np.clip(s.audio, -1, 1) * 32767 for s in streams]).astype("<i2")
        if streams
        else np.zeros(0, "<i2")
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, pcm=pcm, doc=np.array(json.dumps(doc)))
    tmp.replace(path)


def load_streams(path: Path) -> list[Stream]:
    """Streams saved by :func:`save_streams`."""
    with np.load(path) as z:
        pcm = z["pcm"]
        doc = json.loads(str(z["doc"]))
    out, at = [], 0
    for d in doc:
        audio = pcm[at : at + d["n"]].astype(np.float32) / 32768.0
        at += d["n"]
        out.append(
            Stream(
                audio,
                [tuple(x) for x in d["spans"]],
                [tuple(x) for x in d["prefix_spans"]],
                d["family"],
                list(d["voices"]),
            )
        )
    return out


def held_out_streams(
    config: WakeWordConfig,
    *,
    positives: int,
    minutes: float,
    seed: int,
    prefix_phrases: int,
    neural_share: float = 0.0,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> list[Stream]:
    """The held-out test streams (cached in ``cache_dir`` by their parameters)."""
    what: list[Any] = [config.phrase, positives, minutes, seed, prefix_phrases, config.threads * 0]
    if neural_share > 0:
        from datadrive.assistant.voice.neural import TEST_VOICES

        what += [neural_share, list(TEST_VOICES)]
    key = hashlib.sha256(json.dumps(what).encode()).hexdigest()[:16]
    path = None if cache_dir is None else cache_dir / f"test-streams-{key}.npz"
    if path is not None and path.exists():
        return load_streams(path)
    streams = list(
        make_streams(
            config,
            "test",
            minutes=minutes,
            positives=positives,
            seed=seed,
            prefix_phrases=prefix_phrases,
            neural_share=neural_share,
            progress=progress,
        )
    )
    if path is not None:
        save_streams(streams, path)
        return load_streams(path)  # the same 16-bit audio whether cached or not
    return streams


def score_streams(model: WakeWordModel, streams: Sequence[Stream]) -> StreamScores:
    """Run the detector over each stream as a car would (features and all, timed)."""
    ends, scores = [], []
    compute = audio = 0.0
    for s in streams:
        t0 = time.perf_counter()
        e, sc = model.smoothed(log_mel(s.audio))
        compute += time.perf_counter() - t0
        audio += s.audio.shape[0] / SR
        ends.append(e)
        scores.append(sc)
    return StreamScores(ends, scores, list(streams), audio, compute)


def _threshold_from_validation(val: StreamScores, refractory_s: float) -> tuple[float, dict[str, Any]]:
    """Just above the highest smoothed score of the validation stream's negative audio.

    The negative audio is everything outside the wake phrases (and 1.2 s after them).
    A logit margin of 0.5 above that maximum, capped at 0.999.
    """
    top = 0.0
    for ends, scores, s in zip(val.ends, val.scores, val.streams, strict=True):
        mask = np.ones(scores.shape[0], bool)
        for a, b in s.spans:
            mask &= ~((ends >= a) & (ends <= b + 1.2 + 1.6))
        if mask.any():
            top = max(top, float(scores[mask].max()))
    top = min(max(top, 1e-4), 1 - 1e-6)
    logit = np.log(top / (1 - top)) + 0.5
    th = float(min(0.999, max(0.5, 1 / (1 + np.exp(-logit)))))
    counts = val.count(th, refractory_s)
    return th, {"validation_negative_max": top, **{k: v for k, v in counts.items() if k != "missed"}}


def _cached_training_set(
    config: WakeWordConfig, clips: Clips, cache_dir: Path | None, progress: Progress | None
) -> Dataset:
    """:func:`build_training_set`, kept in ``cache_dir``: the base windows and the extras apart.

    Each is keyed by what it depends on, so a change to the extras (shifts,
    streamed negatives) reuses the base windows.
    """
    base_doc = {
        k: getattr(config, k)
        for k in ("augment", "noise_windows", "snr_db", "positive_snr_db", "window_s", "seed")
    }
    extra_doc = {
        k: getattr(config, k)
        for k in (
            "augment",
            "snr_db",
            "positive_snr_db",
            "window_s",
            "seed",
            "perturbed",
            "pitch_cents",
            "tempo",
        )
    }
    extra_doc["stream_negatives"] = config.stream_negatives
    extra_doc["clip_mining"] = "negative_audio/1"

    def base() -> Dataset:
        return _windows_of(config, clips, progress)

    def extra() -> Dataset:
        return _extra_windows(config, clips, progress)

    def accented() -> Dataset:
        return _accented_windows(config, progress)

    parts = []
    steps: tuple[tuple[str, dict[str, Any], Callable[[], Dataset]], ...] = (
        ("train-windows", base_doc, base),
        ("train-extra", extra_doc, extra),
    )
    if config.accented > 0:
        from datadrive.assistant.voice.accented import accented_voices, respell_version

        accented_doc = {
            k: getattr(config, k)
            for k in ("accented", "augment", "snr_db", "positive_snr_db", "window_s", "seed")
        }
        accented_doc["voices"] = list(accented_voices())
        accented_doc["respell"] = respell_version()
        steps += (("train-accented", accented_doc, accented),)
    if config.neural > 0:
        from datadrive.assistant.voice.neural import train_voices

        neural_doc = {
            k: getattr(config, k)
            for k in ("neural", "augment", "snr_db", "positive_snr_db", "window_s", "seed")
        }
        neural_doc["voices"] = list(train_voices())

        def neural() -> Dataset:
            return _neural_windows(config, progress)

        steps += (("train-neural", neural_doc, neural),)
    for name, doc, make in steps:
        key = hashlib.sha256(json.dumps([config.corpus_key(), doc], sort_keys=True).encode()).hexdigest()[:16]
        path = None if cache_dir is None else cache_dir / f"{name}-{key}.npz"
        if path is not None and path.exists():
            with np.load(path) as z:
                parts.append(Dataset(z["x"], z["y"], [str(k) for k in z["kinds"]]))
            continue
        data = make()
        if path is not None:
            tmp = path.with_name(path.name + ".tmp.npz")
            np.savez(tmp, x=data.x, y=data.y, kinds=np.array(data.kinds))
            tmp.replace(path)
        parts.append(data)
    return Dataset(
        np.concatenate([d.x for d in parts]),
        np.concatenate([d.y for d in parts]),
        [k for d in parts for k in d.kinds],
    )


def negative_audio(
    config: WakeWordConfig, clips: Clips, minutes: float, seed: int, chunk_s: float = 60.0
) -> list[NDArrayFloat32]:
    """Chunks of training negatives end to end in fresh training noise (no new synthesis).

    Sentences, near misses and unfinished wake phrases ("hey data...", cut at
    30-75 %) with 0.2-1.5 s gaps, reverberated (half the chunks) and mixed
    with training noise families at ``config.snr_db``: the audio a
    streaming detector hears between wake phrases, for hard-negative mining.
    """
    rng = np.random.default_rng(seed)
    talk = clips.by_kind["sentence"] + clips.by_kind["near_miss"]
    pos = clips.by_kind["positive"]
    bank = NoiseBank(TRAIN_FAMILIES, seed + 1, speech=clips.by_kind["sentence"][:200])
    out: list[NDArrayFloat32] = []
    total = 0.0
    while total < minutes * 60.0 and talk:
        parts: list[NDArrayFloat32] = []
        have = 0
        while have < chunk_s * SR:
            if pos and rng.random() < 0.12:
                utt = pos[int(rng.integers(len(pos)))]
                x = utt[: int(utt.shape[0] * rng.uniform(0.3, 0.75))]
            else:
                x = talk[int(rng.integers(len(talk)))]
            gap = np.zeros(int(rng.uniform(0.2, 1.5) * SR), np.float32)
            parts += [x * np.float32(rng.uniform(0.4, 1.0)), gap]
            have += x.shape[0] + gap.shape[0]
        speech = np.concatenate(parts)
        if rng.random() < 0.5:
            speech = reverb(speech, rng, rt60_s=(0.05, 0.5))
        noise = bank.sample(speech.shape[0], rng)
        out.append(mix(speech, noise, float(rng.uniform(*config.snr_db)), float(rng.uniform(-12.0, 6.0))))
        total += speech.shape[0] / SR
    return out


def _mine(
    model: WakeWordModel, audio: Sequence[NDArrayFloat32], frames: int, floor: float = 0.1
) -> list[np.ndarray]:
    """Windows (100 ms apart, as the detector streams) of negative ``audio`` scoring >= ``floor``."""
    hard: list[np.ndarray] = []
    for a in audio:
        feats = log_mel(a)
        _ends, raw = model.scores(feats, lead_in=False)
        starts = np.arange(0, feats.shape[0] - frames + 1, 10)[raw >= floor]
        hard += [normalise(feats[s : s + frames]) for s in starts.tolist()]
    return hard


# --------------------------------------------------------------------------- training


def _task(config: WakeWordConfig, net: Any, x: Any, y: Any, splits: dict[str, np.ndarray]) -> Any:
    import torch

    from datadrive.models.base import LossTerms
    from datadrive.train.task import TensorTask

    pos = float((y[torch.from_numpy(splits["train"])] == 1).sum())
    neg = float(splits["train"].shape[0]) - pos
    pos_weight = torch.tensor(neg / max(pos, 1.0))
    gen = torch.Generator().manual_seed(config.seed)

    def loss_fn(model: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> LossTerms:
        xb = xb.float()  # (B, F, M) float16 in memory
        if model.training:  # SpecAugment: one band mask and one time mask, a small shift
            b = xb.shape[0]
            f0 = torch.randint(0, N_MELS - 6, (b, 1), generator=gen)
            fw = torch.randint(0, 7, (b, 1), generator=gen)
            bands = torch.arange(N_MELS)[None, :]
            xb = xb * ~((bands >= f0) & (bands < f0 + fw))[:, None, :]
            t0 = torch.randint(0, xb.shape[1] - 12, (b, 1), generator=gen)
            tw = torch.randint(0, 13, (b, 1), generator=gen)
            frames = torch.arange(xb.shape[1])[None, :]
            xb = xb * ~((frames >= t0) & (frames < t0 + tw))[:, :, None]
            xb = torch.roll(xb, shifts=int(torch.randint(-3, 4, (1,), generator=gen)), dims=1)
            xb = _speaker_augment(xb, config, gen)
        logits = model(xb.transpose(1, 2))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, yb, pos_weight=pos_weight)
        with torch.no_grad():
            acc = float(((logits > 0) == (yb > 0.5)).float().mean())
        return LossTerms(loss, {"accuracy": acc})

    return TensorTask(net, x, y, splits, loss_fn, meta=_meta(config))


def warp_mel(x: Any, alpha: Any) -> Any:
    """Log-mel features as a vocal tract ``alpha`` times shorter would give them (VTLP).

    Scaling a voice's frequencies by ``alpha`` moves what band ``m`` (centre
    ``c_m`` Hz) hears to the band centred on ``c_m / alpha``: each output band
    is linearly interpolated from the input bands at that frequency (the
    edge bands repeat). Per-band mean removal (:func:`normalise`) commutes
    with it, so normalised windows can be warped as they are.

    Args:
        x: ``(B, F, M)`` torch tensor of (normalised) log-mel features.
        alpha: ``(B,)`` warp factors (> 1: formants move up, a shorter tract).

    Returns:
        ``(B, F, M)`` warped features.
    """
    import torch

    from datadrive.assistant.voice.features import mel_centres_hz

    centres = torch.from_numpy(mel_centres_hz()).to(x.dtype)  # (M,)
    src_hz = centres[None, :] / alpha[:, None]  # (B, M)
    pos = torch.from_numpy(
        np.interp(src_hz.numpy(), centres.numpy(), np.arange(N_MELS, dtype=np.float64)).astype(np.float32)
    )
    lo = pos.floor().long().clamp(0, N_MELS - 1)
    hi = (lo + 1).clamp(max=N_MELS - 1)
    w = (pos - lo.to(pos.dtype)).to(x.dtype)[:, None, :]  # (B, 1, M)
    idx_lo = lo[:, None, :].expand(-1, x.shape[1], -1)
    idx_hi = hi[:, None, :].expand(-1, x.shape[1], -1)
    return torch.gather(x, 2, idx_lo) * (1 - w) + torch.gather(x, 2, idx_hi) * w


def _speaker_augment(xb: Any, config: WakeWordConfig, gen: Any) -> Any:
    """On-the-fly voice and channel variety: a VTLP warp, and band-limiting on a share of windows.

    A fixed equaliser or spectral tilt needs no augmentation: it adds a
    constant per band to log-mel features, which :func:`normalise` removes.
    """
    import torch

    b = xb.shape[0]
    lo, hi = config.vtlp
    if hi > lo or lo != 1.0:
        alpha = lo + (hi - lo) * torch.rand(b, generator=gen)
        xb = warp_mel(xb, alpha)
    if config.band_limit > 0:
        from datadrive.assistant.voice.features import mel_centres_hz

        centres = torch.from_numpy(mel_centres_hz())
        cut_hz = 3400.0 + 3200.0 * torch.rand(b, 1, generator=gen)
        limited = torch.rand(b, 1, generator=gen) < config.band_limit
        xb = xb * ~(limited & (centres[None, :] > cut_hz))[:, None, :]
    return xb


def _fit(
    config: WakeWordConfig,
    net: Any,
    data: Dataset,
    epochs: int,
    lr: float,
    run_dir: Path,
    seed: int,
    progress: Progress | None,
    label: str,
    tracker: Any = None,
) -> list[dict[str, float]]:
    import torch

    from datadrive.models.base import ModelSpec
    from datadrive.train import StepInfo, TrainConfig, fit_task

    rng = np.random.default_rng(seed)
    order = rng.permutation(data.y.shape[0])
    n_val = max(1, data.y.shape[0] // 20)
    splits = {"val": np.sort(order[:n_val]), "train": np.sort(order[n_val:])}
    x = torch.from_numpy(data.x)
    y = torch.from_numpy(data.y)
    task = _task(config, net, x, y, splits)
    steps = epochs * ((splits["train"].shape[0] + config.batch_size - 1) // config.batch_size)
    tc = TrainConfig(
        model=ModelSpec("wakeword-tcresnet", {"width": config.width, "frames": config.frames}),
        epochs=epochs,
        batch_size=config.batch_size,
        learning_rate=lr,
        weight_decay=1e-3,
        warmup_steps=min(50, max(1, steps // 10)),  # a short run reaches its peak rate too
        schedule="cosine",
        seed=seed,
        threads=1,  # one thread: on a busy machine OpenMP threads spin instead of working
        checkpoint_every=500,
        amp=False,
    )

    def step(info: StepInfo) -> None:
        if progress is not None:
            progress(f"{label} ({info.samples_per_s:,.0f} windows/s)", info.step, steps)

    result = fit_task(
        task,
        tc,
        run_dir,
        resume=True,
        fingerprint={"wakeword": config.corpus_key(), "windows": int(data.y.shape[0])},
        tracker=tracker,
        progress=step,
    )
    return result.history


def train(
    config: WakeWordConfig = WakeWordConfig(),
    *,
    run_dir: Path,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
    dataset: Dataset | None = None,
    tracker: Any = None,
    init: WakeWordModel | None = None,
) -> WakeWordModel:
    """Build the data, train through ``datadrive.train``, mine hard negatives, set the threshold.

    Args:
        config: What to build.
        run_dir: The training runs' folder (``first/``, ``mined/``: checkpoints,
            ``run.json``); a run killed half way resumes from it.
        cache_dir: Where synthesized clips are kept between runs (``None``: not kept).
        progress: ``(what, done, total)`` callback.
        dataset: Use these windows instead of building them (tests).
        tracker: An MLflow tracker (``datadrive.train.tracking.MlflowTracker``) for the metrics.
        init: Continue from this model's weights (same width and window) instead of
            starting afresh: ``config.epochs`` then fine-tunes it (0: straight to mining).
    """
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    clips = None
    if dataset is None:
        clips = training_clips(config, cache_dir=cache_dir, progress=progress)
        data = _cached_training_set(config, clips, cache_dir, progress)
    else:
        data = dataset
    t_data = time.perf_counter() - t0
    torch.manual_seed(config.seed)
    if init is not None:
        if init.config.width != config.width:  # the window may differ: the network pools over time
            raise ConfigError(
                f"cannot continue from a model of width {init.config.width} with width {config.width}"
            )
        net = init.net
    else:
        net = _net(config)
    history = (
        _fit(
            config,
            net,
            data,
            config.epochs,
            config.lr if init is None else config.lr / 3,
            run_dir / "first",
            config.seed,
            progress,
            "training" if init is None else "fine-tuning",
            tracker,
        )
        if config.epochs > 0
        else []
    )
    model = WakeWordModel(config, net, 0.5)
    hard: list[np.ndarray] = []
    mined_by_round: list[int] = []
    can_mine = config.mining_minutes > 0 or (clips is not None and config.clip_mining_minutes > 0)
    for round_ in range(config.mining_rounds if can_mine else 0):
        audio: list[NDArrayFloat32] = []
        if round_ == 0 and config.mining_minutes > 0:
            audio += [
                s.audio
                for s in make_streams(
                    config,
                    "train",
                    minutes=config.mining_minutes,
                    positives=0,
                    seed=config.seed + 10,
                    snr_db=config.snr_db,
                    progress=progress,
                )
            ]
        if clips is not None and config.clip_mining_minutes > 0:
            audio += negative_audio(config, clips, config.clip_mining_minutes, config.seed + 30 + round_)
        found = _mine(model, audio, config.frames)
        mined_by_round.append(len(found))
        if not found:
            break
        hard += found
        data_r = Dataset(
            np.concatenate([data.x, np.stack(hard).astype(np.float16)]),
            np.concatenate([data.y, np.zeros(len(hard), np.float32)]),
            data.kinds + ["mined"] * len(hard),
        )
        history += _fit(
            config,
            net,
            data_r,
            config.mining_epochs,
            config.lr / 3,
            run_dir / ("mined" if round_ == 0 else f"mined{round_ + 1}"),
            config.seed + 1 + round_,
            progress,
            f"training on hard negatives (round {round_ + 1})",
            tracker,
        )
    mined = len(hard)
    threshold, validation = 0.5, dict[str, Any]()
    if config.val_minutes > 0:
        val_streams = list(
            make_streams(
                config,
                "train",
                minutes=config.val_minutes,
                positives=config.val_positives,
                seed=config.seed + 20,
                progress=progress,
            )
        )
        threshold, validation = _threshold_from_validation(
            score_streams(model, val_streams), config.refractory_s
        )
    meta = {
        "trained_s": round(time.perf_counter() - t0, 1),
        "data_s": round(t_data, 1),
        "windows": int(data.y.shape[0]) + mined,
        "positives": int((data.y == 1).sum()),
        "hard_negatives": mined,
        "hard_negatives_by_round": mined_by_round,
        "history": history,
        "validation": validation,
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "trainer": "datadrive.train.fit_task",
    }
    return WakeWordModel(config, net, threshold, meta)


# --------------------------------------------------------------------------- evaluation


@dataclass
class EvalReport:
    """What the evaluation measured.

    Attributes:
        threshold: The model's chosen threshold (set on validation, never on the test).
        detection_rate: Share of held-out wake phrases detected at it.
        false_wakes_per_hour: On the held-out negative audio at it.
        positives: Number of held-out wake phrases.
        negative_hours: Hours of held-out negative audio.
        curve: ``(threshold, detection rate, false wakes per hour)`` over the whole range.
        anchor: pocketsphinx keyword spotting on the same audio: one row per threshold.
        realtime_factor: Detector compute time / audio time (one process, features included).
        details: Counts by engine and noise family, prefix phrases, misses.
    """

    threshold: float
    detection_rate: float
    false_wakes_per_hour: float
    positives: int
    negative_hours: float
    curve: list[tuple[float, float, float]]
    anchor: list[dict[str, Any]]
    realtime_factor: float
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _anchor_pocketsphinx(
    phrase: str, streams: Sequence[Stream], thresholds: Sequence[float]
) -> list[dict[str, Any]]:
    """pocketsphinx keyword spotting (its en-us model and dictionary) on the same streams, counted alike."""
    from pocketsphinx import Decoder

    words = phrase.lower().replace("datadrive", "data drive")
    rows = []
    for th in thresholds:
        ends: list[NDArrayFloat] = []
        scores: list[NDArrayFloat] = []
        for s in streams:
            d = Decoder(samprate=SR, lm=None, keyphrase=words, kws_threshold=th, loglevel="FATAL")
            pcm = (np.clip(s.audio, -1, 1) * 32767).astype("<i2").tobytes()
            hits: list[float] = []
            d.start_utt()
            step = 3200
            for i in range(0, len(pcm), step):
                d.process_raw(pcm[i : i + step], False, False)
                if d.hyp() is not None:
                    hits.append((i + step) / 2 / SR)
                    d.end_utt()
                    d.start_utt()
            d.end_utt()
            ends.append(np.array(hits))
            scores.append(np.ones(len(hits)))
        audio_s = sum(s.audio.shape[0] / SR for s in streams)
        counts = StreamScores(ends, scores, list(streams), audio_s, 0.0).count(0.5, 0.0)
        rows.append(
            {
                "keyphrase": words,
                "kws_threshold": th,
                **{k: v for k, v in counts.items() if k != "missed"},
                "negative_hours": StreamScores(ends, scores, list(streams), audio_s, 0.0).negative_hours,
            }
        )
    return rows


def evaluate(
    model: WakeWordModel,
    *,
    positives: int = 400,
    negative_minutes: float = 70.0,
    seed: int = 424242,
    anchor_minutes: float = 5.0,
    anchor_thresholds: Sequence[float] = (1e-10, 1e-20, 1e-30, 1e-40),
    prefix_phrases: int = 40,
    neural_share: float = 0.0,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> EvalReport:
    """Detection rate and false wakes per hour on held-out test streams (see the module doc).

    ``cache_dir`` keeps the synthesized test streams for the next evaluation;
    ``neural_share`` > 0 brings in the held-out neural voices (:func:`make_streams`).
    """
    streams = held_out_streams(
        model.config,
        positives=positives,
        minutes=negative_minutes,
        seed=seed,
        prefix_phrases=prefix_phrases,
        neural_share=neural_share,
        cache_dir=cache_dir,
        progress=progress,
    )
    scored = score_streams(model, streams)
    r = model.config.refractory_s
    at = scored.count(model.threshold, r)
    grid = np.unique(
        np.concatenate([np.linspace(0.05, 0.95, 19), 1 - np.logspace(-1, -6, 51), [model.threshold]])
    )
    curve = []
    for th in grid:
        c = scored.count(float(th), r)
        curve.append((float(th), float(c["detection_rate"]), float(c["false_wakes_per_hour"])))
    voices = [v for s in streams for v in s.voices]
    fams = [s.family for s in streams for _ in s.spans]
    hit = np.ones(len(voices), bool)
    hit[at["missed"]] = False

    def rate_by(keys: list[str]) -> dict[str, str]:
        out = {}
        for k in sorted(set(keys)):
            sel = np.array([x == k for x in keys])
            out[k] = f"{int(hit[sel].sum())}/{int(sel.sum())}"
        return out

    engines = [
        v.split(":", 1)[0] + (":" + v.split(":", 1)[1].split("@")[0] if not v.startswith("espeak") else "")
        for v in voices
    ]
    family_first = [f.split("+")[0] for f in fams]
    anchor_streams: list[Stream] = []
    for s in streams:
        if sum(a.audio.shape[0] for a in anchor_streams) / SR >= anchor_minutes * 60:
            break
        anchor_streams.append(s)
    anchor = (
        _anchor_pocketsphinx(model.config.phrase, anchor_streams, anchor_thresholds)
        if anchor_minutes > 0
        else []
    )
    return EvalReport(
        threshold=model.threshold,
        detection_rate=float(at["detection_rate"]),
        false_wakes_per_hour=float(at["false_wakes_per_hour"]),
        positives=int(at["positives"]),
        negative_hours=scored.negative_hours,
        curve=curve,
        anchor=anchor,
        realtime_factor=scored.compute_s / scored.audio_s,
        details={
            "false_wakes": at["false_wakes"],
            "prefix_wakes": f"{at['prefix_wakes']}/{at['prefix_phrases']}",
            "prefix_phrases": list(PREFIX_PHRASES),
            "detection_by_engine": rate_by(engines),
            "detection_by_noise_family": rate_by(family_first),
            "missed_voices": [voices[i] for i in at["missed"]],
            "seed": seed,
            "test_only_noise_families": ["rain", "indicator", "music"],
            "audio_hours": scored.audio_s / 3600,
        },
    )


def plot_curve(
    report: EvalReport,
    path: str | Path,
    *,
    others: Sequence[tuple[str, EvalReport]] = (),
    label: str = "datadrive wake word",
) -> None:
    """The detection-rate vs false-wakes-per-hour curve (matplotlib), with the chosen point and the anchor.

    ``others`` are (label, report) of other models on the same streams, drawn
    beside it with their own chosen points.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, r) in enumerate([(label, report), *others]):
        c = np.array(r.curve)
        c = c[np.argsort(c[:, 0])]
        color = f"C{i}" if i < 3 else f"C{i + 1}"  # C3 (red) is the anchor's
        ax.step(np.maximum(c[:, 2], 0.05), c[:, 1] * 100, "-", where="post", color=color, label=name)
        ax.plot(
            [max(r.false_wakes_per_hour, 0.05)],
            [r.detection_rate * 100],
            "o",
            color=color,
            label=f"its threshold {r.threshold:.4f} (validation)",
        )
    for row in report.anchor:
        ax.plot([max(row["false_wakes_per_hour"], 0.05)], [row["detection_rate"] * 100], "x", color="tab:red")
    if report.anchor:
        ax.plot([], [], "x", color="tab:red", label="pocketsphinx KWS (thresholds)")
    ax.axvline(1.0, color="grey", lw=0.5, ls="--")
    ax.axhline(99.0, color="grey", lw=0.5, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("false wakes per hour (held-out negatives, log; 0 drawn at 0.05)")
    ax.set_ylabel("detection rate (%)")
    ax.set_title(
        f"wake word on synthesized speech: {report.positives} phrases, "
        f"{report.negative_hours:.2f} h negatives",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(str(path), dpi=120)
    plt.close(fig)


def report_json(report: EvalReport) -> str:
    return json.dumps(report.to_json(), indent=2)


def _training_texts(rng: np.random.Generator, phrase: str, n: int) -> dict[str, list[str]]:
    """``n`` wake phrases, ``n`` near misses, ``n // 3`` (at least 1) sentences, drawn in that order."""
    sentences, _ = sentence_pools()
    talk = sentences + list(apart_sentences("train")) * 6
    return {
        "positive": [str(rng.choice(np.array(_phrases(phrase)))) for _ in range(n)],
        "near_miss": [str(rng.choice(np.array(TRAIN_NEAR_MISSES))) for _ in range(n)],
        "sentence": [str(rng.choice(np.array(talk))) for _ in range(max(1, n // 3))],
    }
