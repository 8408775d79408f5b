"""The wake word: data, model, training, streaming detection and evaluation.

Data (all synthesized, see :mod:`~datadrive.assistant.voice.synth` and
:mod:`~datadrive.assistant.voice.noise`), split so that the evaluation
hears nothing the model was trained on:

* **voices**: espeak-ng's English accents and accented voices, and its
  voice variants; every third accent and every fourth variant (sorted by
  name) are held out for the evaluation;
* **sentences** (negatives): ordinary English prose from the Python
  documentation shipped with the interpreter (``pydoc_data``), the first
  60 % of its sentences for training, the rest for evaluation, plus the
  assistant's own commands; **near misses** ("hey data", "data drive", ...)
  differ between training and evaluation;
* **noise**: training mixes the ``engine``, ``road``, ``wind`` and ``hvac``
  families; the evaluation adds ``rain``, ``indicator`` and ``music``, with
  other seeds; SNRs 0-20 dB, gains -12..+6 dB, reverberation on half the clips.

Model: a temporal CNN (5 conv layers, 66 k parameters) over 1.6 s of
log-mel features (160 frames x 40 bands, mean-normalised per band over the
window), scoring the chance that the wake phrase *ended* within the window;
streamed every 100 ms, a score above the threshold wakes the assistant,
then nothing for 1.5 s (refractory).

Training: Adam and binary cross-entropy in a short loop here, then
optionally hard-negative mining (off by default). The project's trainer (``datadrive.train``) trains
registered models on the curate layer's feature caches; the wake word moves
there once it has an audio-window cache and a registered model kind. Seeds
are fixed: ``datadrive assistant wakeword train`` reproduces the committed model.

Evaluation: detection rate over held-out positives (each inside 3-4 s of
context) and false wakes per hour over at least an hour of held-out
negative audio, for the chosen threshold and over the whole curve, with
pocketsphinx keyword spotting on the same audio as the anchor.

Notation:
    B: batch size.
    F: frames in a window (160).
    M: mel bands (40).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from datadrive.assistant.voice.audio import SAMPLE_RATE_HZ
from datadrive.assistant.voice.features import HOP, N_MELS, WIN, log_mel
from datadrive.assistant.voice.noise import NOISE_FAMILIES, TRAIN_FAMILIES, cabin_noise, mix, reverb
from datadrive.assistant.voice.synth import Voice, english_voices, speak, variants
from datadrive.core.typing import NDArrayFloat, NDArrayFloat32
from datadrive.errors import ConfigError

__all__ = [
    "BUNDLED_MODEL",
    "EvalReport",
    "WakeWordConfig",
    "WakeWordModel",
    "evaluate",
    "load_model",
    "train",
]

SR = SAMPLE_RATE_HZ
BUNDLED_MODEL = Path(__file__).resolve().parent / "models" / "hey_datadrive.pt"

TRAIN_NEAR_MISSES = (
    "hey data",
    "hey drive",
    "data drive",
    "hey there",
    "okay drive",
    "hey dad",
    "they drive",
    "day to drive",
    "hey david",
    "hey daytime",
    "a data drive",
    "hey doctor",
    "hey dave",
    "data derived",
)
TEST_NEAR_MISSES = (
    "hey dated drive",
    "hey dana",
    "say data drive",
    "hey delta drive",
    "hey beta drive",
    "hey data dive",
    "hey day trip",
    "the data drive",
    "hey data driven",
    "hey, they drive",
)
COMMANDS = (
    "what was my top speed",
    "summarise this trip",
    "is the steering angle sensor healthy",
    "why did the car brake hard",
    "route from the market square to the railway station",
    "find a charging station on the way",
    "how far did I drive today",
    "did I brake hard",
    "what was my average speed in the last minute",
    "any parking near the cathedral",
)


@dataclass(frozen=True)
class WakeWordConfig:
    """How the wake word is built and trained.

    Attributes:
        phrase: The wake phrase ("hey datadrive").
        positives: Synthesized wake-phrase utterances for training.
        augment: Noisy copies of each.
        sentences: Training sentences synthesized for negatives.
        near_misses: Near-miss utterances for training.
        noise_windows: Noise-only training windows.
        epochs: Training epochs.
        batch_size: Batch size.
        lr: Adam learning rate.
        window_s: The detector's window.
        refractory_s: After a wake, how long nothing else wakes.
        seed: Every random choice derives from it.
        mining_minutes: Training-distribution negative audio scanned for hard
            negatives (windows the first model scores high) after the first
            epochs; 0 turns mining off. Two thirds are mined, one third sets
            the threshold.
        mining_epochs: Epochs over the data plus the hard negatives.
        max_wakes_per_hour: The threshold is the lowest giving at most this
            many wake-ups per hour on the held-back mining audio.
        threads: espeak-ng processes at once.
    """

    phrase: str = "hey datadrive"
    positives: int = 1400
    augment: int = 2
    sentences: int = 600
    near_misses: int = 400
    noise_windows: int = 600
    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    window_s: float = 1.6
    refractory_s: float = 1.5
    mining_minutes: float = 0.0
    mining_epochs: int = 5
    max_wakes_per_hour: float = 5.0
    seed: int = 20261207
    threads: int = 2

    @property
    def frames(self) -> int:
        """Feature frames in one window (158 for 1.6 s)."""
        return 1 + (round(self.window_s * SR) - WIN) // HOP


# --------------------------------------------------------------------------- data


def _split(items: Sequence[str], every: int) -> tuple[list[str], list[str]]:
    """(train, held out): every ``every``-th item (sorted) is held out."""
    s = sorted(items)
    test = s[1::every]
    return [x for x in s if x not in test], test


def voice_pools() -> dict[str, tuple[list[str], list[str]]]:
    """``{"accents": (train, test), "variants": (train, test)}``."""
    return {"accents": _split(english_voices(), 3), "variants": _split(list(variants()), 4)}


def sentence_pools() -> tuple[list[str], list[str]]:
    """Ordinary English sentences (train, test) from the interpreter's own documentation."""
    from pydoc_data.topics import topics

    text = " ".join(topics[k] for k in sorted(topics))
    text = re.sub(r"\s+", " ", re.sub(r"[^A-Za-z,.;' ]+", " ", text))
    sentences = [s.strip() for s in re.split(r"[.;]", text)]
    sentences = [s for s in sentences if 5 <= len(s.split()) <= 18 and "datadrive" not in s.lower()]
    sentences = sorted(set(sentences))
    rng = np.random.default_rng(7)
    rng.shuffle(sentences)
    cut = int(0.6 * len(sentences))
    return sentences[:cut], sentences[cut:]


def _random_voice(
    rng: np.random.Generator, accents: Sequence[str], variant_pool: Sequence[str], speeds: tuple[int, int]
) -> Voice:
    accent = str(rng.choice(np.array(accents)))
    var = str(rng.choice(np.array(variant_pool))) if rng.random() < 0.8 else ""
    return Voice(
        accent + (f"+{var}" if var else ""), int(rng.integers(*speeds)), int(rng.integers(15, 85)), 100
    )


def _synth_many(
    jobs: Sequence[tuple[str, Voice]], threads: int, progress: Callable[[int], None] | None = None
) -> list[NDArrayFloat32]:
    def one(job: tuple[str, Voice]) -> NDArrayFloat32:
        text, voice = job
        try:
            return speak(text, voice)
        except ConfigError:
            return speak(text, Voice("en-us", voice.speed_wpm, voice.pitch))  # a variant an accent lacks

    out: list[NDArrayFloat32] = []
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for i, audio in enumerate(pool.map(one, jobs)):
            out.append(_trim(audio))
            if progress is not None:
                progress(i + 1)
    return out


def _trim(x: NDArrayFloat32, level: float = 0.01) -> NDArrayFloat32:
    idx = np.flatnonzero(np.abs(x) > level * (np.abs(x).max() + 1e-9))
    return x[idx[0] : idx[-1] + 1] if idx.size else x


class NoiseBank:
    """Long noise recordings per family, synthesized once, cropped at random (fast augmentation)."""

    def __init__(self, families: tuple[str, ...], seed: int, seconds: float = 20.0, takes: int = 3) -> None:
        rng = np.random.default_rng(seed)
        self.families = families
        self.bank = {
            f: [cabin_noise(int(seconds * SR), rng, (f,), k=1) for _ in range(takes)] for f in families
        }

    def sample(self, n: int, rng: np.random.Generator) -> NDArrayFloat32:
        count = int(rng.integers(1, min(3, len(self.families)) + 1))
        out = np.zeros(n, dtype=np.float32)
        for f in rng.choice(np.array(self.families), size=count, replace=False):
            takes = self.bank[str(f)]
            src = takes[int(rng.integers(len(takes)))]
            if src.shape[0] <= n:
                src = np.tile(src, n // src.shape[0] + 1)
            s = int(rng.integers(0, src.shape[0] - n + 1))
            out += src[s : s + n] * np.float32(rng.uniform(0.3, 1.0))
        rms = float(np.sqrt(np.mean(out**2)) + 1e-9)
        result: NDArrayFloat32 = (out / rms).astype(np.float32)
        return result


def _noisy(
    speech: NDArrayFloat32, rng: np.random.Generator, bank: NoiseBank, snr: tuple[float, float] = (0.0, 20.0)
) -> NDArrayFloat32:
    x = reverb(speech, rng) if rng.random() < 0.5 else speech
    noise = bank.sample(x.shape[0], rng)
    return mix(x, noise, float(rng.uniform(*snr)), float(rng.uniform(-12.0, 6.0)))


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
        if before is not None and start > 0 and rng.random() < 0.4:
            tail = before[-start:]
            out[start - tail.shape[0] : start] = tail * rng.uniform(0.3, 1.0)
    return out


def normalise(feats: NDArrayFloat32) -> NDArrayFloat32:
    """Per-band mean removal over the window (``(..., F, M)``): gain-invariant."""
    out: NDArrayFloat32 = (feats - feats.mean(axis=-2, keepdims=True)).astype(np.float32)
    return out


@dataclass
class Dataset:
    """Windows of features and labels (``x (N, F, M)``, ``y (N,)``)."""

    x: NDArrayFloat32
    y: NDArrayFloat32
    kinds: list[str] = field(default_factory=list)


def build_training_set(
    config: WakeWordConfig, progress: Callable[[str, int, int], None] | None = None
) -> Dataset:
    """The training windows (train voices, sentences, near misses and noise families only)."""
    rng = np.random.default_rng(config.seed)
    pools = voice_pools()
    accents, _ = pools["accents"]
    var_pool, _ = pools["variants"]
    train_sentences, _ = sentence_pools()
    n = int(config.window_s * SR)
    spoken = [config.phrase, config.phrase.replace(" ", ", ", 1)]
    pos_jobs = [
        (str(rng.choice(np.array(spoken))), _random_voice(rng, accents, var_pool, (115, 210)))
        for _ in range(config.positives)
    ]
    sent_jobs = [
        (
            str(rng.choice(np.array(train_sentences + list(COMMANDS[:6])))),
            _random_voice(rng, accents, var_pool, (115, 210)),
        )
        for _ in range(config.sentences)
    ]
    near_jobs = [
        (str(rng.choice(np.array(TRAIN_NEAR_MISSES))), _random_voice(rng, accents, var_pool, (115, 210)))
        for _ in range(config.near_misses)
    ]
    jobs = pos_jobs + sent_jobs + near_jobs
    total = len(jobs)
    audio = _synth_many(
        jobs, config.threads, None if progress is None else lambda i: progress("synthesizing", i, total)
    )
    pos_audio = audio[: len(pos_jobs)]
    sent_audio = audio[len(pos_jobs) : len(pos_jobs) + len(sent_jobs)]
    near_audio = audio[len(pos_jobs) + len(sent_jobs) :]
    windows: list[NDArrayFloat32] = []
    labels: list[float] = []
    kinds: list[str] = []

    bank = NoiseBank(TRAIN_FAMILIES, config.seed + 2)

    def add(x: NDArrayFloat32, label: float, kind: str) -> None:
        windows.append(_noisy(x, rng, bank))
        labels.append(label)
        kinds.append(kind)

    for utt in pos_audio:
        for _ in range(config.augment):
            before = sent_audio[int(rng.integers(len(sent_audio)))] if sent_audio else None
            add(_place_end(utt, n, int(rng.uniform(0.03, 0.3) * SR), rng, before), 1.0, "positive")
        if rng.random() < 0.5:
            cut = utt[: int(utt.shape[0] * rng.uniform(0.3, 0.6))]  # "hey da...": the phrase not finished yet
            add(_place_end(cut, n, int(rng.uniform(0.0, 0.3) * SR), rng, None), 0.0, "partial")
    for utt in sent_audio:
        for _ in range(3):
            if utt.shape[0] > n:
                s = int(rng.integers(0, utt.shape[0] - n))
                add(utt[s : s + n].copy(), 0.0, "sentence")
            else:
                add(_place_end(utt, n, int(rng.uniform(0, 0.5) * SR), rng, None), 0.0, "sentence")
    for utt in near_audio:
        add(_place_end(utt, n, int(rng.uniform(0.03, 0.4) * SR), rng, None), 0.0, "near_miss")
    for _ in range(config.noise_windows):
        windows.append(bank.sample(n, rng) * np.float32(10 ** rng.uniform(-2.5, -0.5)))
        labels.append(0.0)
        kinds.append("noise")
    total = len(windows)
    feats = np.stack([log_mel(w)[: config.frames] for w in windows])
    if progress is not None:
        progress("features", total, total)
    return Dataset(normalise(feats), np.array(labels, dtype=np.float32), kinds)


# --------------------------------------------------------------------------- model


def _net(frames: int) -> Any:
    """A temporal CNN (mel bands as channels, convolutions over time), 66 k parameters."""
    import torch
    from torch import nn

    def block(cin: int, cout: int, k: int, stride: int) -> list[nn.Module]:
        return [nn.Conv1d(cin, cout, k, stride=stride, padding=k // 2), nn.BatchNorm1d(cout), nn.ReLU()]

    torch.manual_seed(0)
    return nn.Sequential(
        *block(N_MELS, 48, 3, 1),
        *block(48, 48, 5, 2),
        *block(48, 64, 5, 2),
        *block(64, 64, 5, 2),
        *block(64, 64, 3, 1),
        nn.AdaptiveMaxPool1d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(64, 1),
    )


@dataclass
class WakeWordModel:
    """A trained detector: the network, its config and its chosen threshold."""

    config: WakeWordConfig
    net: Any
    threshold: float
    meta: dict[str, Any] = field(default_factory=dict)

    def scores(
        self, feats: NDArrayFloat32, *, hop_frames: int = 10, batch: int = 512
    ) -> tuple[NDArrayFloat, NDArrayFloat]:
        """Scores of windows every ``hop_frames`` over ``(F_total, M)`` features.

        Returns:
            The windows' end times (s) and their scores.
        """
        import torch

        f = self.config.frames
        if feats.shape[0] < f:
            feats = np.concatenate(
                [
                    np.full(
                        (f - feats.shape[0], N_MELS), feats.min() if feats.size else -13.8, dtype=np.float32
                    ),
                    feats,
                ]
            )
        starts = np.arange(0, feats.shape[0] - f + 1, hop_frames)
        windows = np.lib.stride_tricks.sliding_window_view(feats, (f, N_MELS))[starts, 0]
        out = np.empty(starts.shape[0])
        self.net.eval()
        with torch.no_grad():
            for i in range(0, starts.shape[0], batch):
                x = torch.from_numpy(normalise(np.ascontiguousarray(windows[i : i + batch]))).transpose(1, 2)
                out[i : i + batch] = torch.sigmoid(self.net(x)).squeeze(1).numpy()
        ends = ((starts + f) * HOP + WIN - HOP) / SR
        return ends, out

    def detect(self, samples: NDArrayFloat32, threshold: float | None = None) -> list[tuple[float, float]]:
        """Wake-ups in ``samples``: (time s of the window's end, score), with the refractory period."""
        ends, scores = self.scores(log_mel(samples))
        return triggers(
            ends, scores, self.threshold if threshold is None else threshold, self.config.refractory_s
        )

    def save(self, path: str | Path) -> None:
        import torch

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "config": asdict(self.config),
                "threshold": self.threshold,
                "meta": self.meta,
                "state": self.net.state_dict(),
            },
            str(path),
        )


def triggers(
    ends: NDArrayFloat, scores: NDArrayFloat, threshold: float, refractory_s: float
) -> list[tuple[float, float]]:
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
        config = WakeWordConfig(**doc["config"])
        net = _net(config.frames)
        net.load_state_dict(doc["state"])
    except Exception as exc:  # a truncated or foreign file: torch raises many kinds
        raise ConfigError(f"{p}: not a datadrive wake-word model ({type(exc).__name__}: {exc})") from exc
    return WakeWordModel(config, net, float(doc["threshold"]), dict(doc.get("meta", {})))


def train(
    config: WakeWordConfig = WakeWordConfig(),
    *,
    progress: Callable[[str, int, int], None] | None = None,
    dataset: Dataset | None = None,
) -> WakeWordModel:
    """Build the training set and train the detector (fixed seeds: reproducible)."""
    import torch

    torch.manual_seed(config.seed)
    # one thread: the model is small, and OpenMP threads on a busy machine spin instead of working
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data = dataset or build_training_set(config, progress)
    t_data = time.perf_counter() - t0
    rng = np.random.default_rng(config.seed + 1)
    order = rng.permutation(data.y.shape[0])
    n_val = max(1, data.y.shape[0] // 10)
    val, tr = order[:n_val], order[n_val:]
    x = torch.from_numpy(data.x).transpose(1, 2).contiguous()
    y = torch.from_numpy(data.y)
    net = _net(config.frames)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=config.lr,
        total_steps=config.epochs * ((len(tr) + config.batch_size - 1) // config.batch_size),
    )
    pos_weight = torch.tensor(float((data.y[tr] == 0).sum()) / max(1.0, float((data.y[tr] == 1).sum())))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    history = []
    for epoch in range(config.epochs):
        net.train()
        perm = torch.from_numpy(rng.permutation(tr))
        total = 0.0
        for i in range(0, perm.shape[0], config.batch_size):
            idx = perm[i : i + config.batch_size]
            xb = x[idx]
            shift = int(rng.integers(-4, 5))  # small time jitter
            xb = torch.roll(xb, shifts=shift, dims=2)  # (B, M, F): time is the last axis
            opt.zero_grad()
            loss = loss_fn(net(xb).squeeze(1), y[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * idx.shape[0]
        net.eval()
        with torch.no_grad():
            pv = torch.sigmoid(net(x[torch.from_numpy(val)]).squeeze(1)).numpy()
        acc = float(((pv > 0.5) == (data.y[val] > 0.5)).mean())
        history.append({"epoch": epoch + 1, "loss": total / len(tr), "val_accuracy": acc})
        if progress is not None:
            progress("training", epoch + 1, config.epochs)
    with torch.no_grad():
        pv = torch.sigmoid(net(x[torch.from_numpy(val)]).squeeze(1)).numpy()
    neg_val = pv[data.y[val] == 0]
    # the threshold without mining: above every validation negative, and at least 0.5
    threshold = float(max(0.5, min(0.995, (neg_val.max() if neg_val.size else 0.5) + 0.02)))
    mined = 0
    if config.mining_minutes > 0:
        model = WakeWordModel(config, net, threshold)
        pools = voice_pools()
        train_sentences, _ = sentence_pools()
        bank = NoiseBank(TRAIN_FAMILIES, config.seed + 3)
        chunks = list(
            negative_stream(
                config,
                config.mining_minutes,
                config.seed + 4,
                pools["accents"][0],
                pools["variants"][0],
                train_sentences,
                TRAIN_NEAR_MISSES + COMMANDS[:6],
                bank,
                progress,
            )
        )
        cut = max(1, (2 * len(chunks)) // 3)
        hard: list[NDArrayFloat32] = []
        f = config.frames
        for chunk in chunks[:cut]:
            feats = log_mel(chunk)
            _, scores = model.scores(feats)
            starts = np.arange(0, feats.shape[0] - f + 1, 10)[scores >= 0.2]
            hard += [feats[a : a + f] for a in starts.tolist()]
        mined = len(hard)
        if hard:
            x_all = torch.cat([x, torch.from_numpy(normalise(np.stack(hard))).transpose(1, 2).contiguous()])
            y_all = torch.cat([y, torch.zeros(len(hard))])
            idx_all = np.concatenate([tr, np.arange(x.shape[0], x_all.shape[0])])
            opt = torch.optim.Adam(net.parameters(), lr=config.lr / 4, weight_decay=1e-4)
            for epoch in range(config.mining_epochs):
                net.train()
                perm = torch.from_numpy(rng.permutation(idx_all))
                for i in range(0, perm.shape[0], config.batch_size):
                    idx = perm[i : i + config.batch_size]
                    opt.zero_grad()
                    loss = loss_fn(net(x_all[idx]).squeeze(1), y_all[idx])
                    loss.backward()
                    opt.step()
                if progress is not None:
                    progress("training on hard negatives", epoch + 1, config.mining_epochs)
        # the threshold: at most max_wakes_per_hour wake-ups/hour on the held-back third of the mining audio
        ends_all: list[NDArrayFloat] = []
        scores_all: list[NDArrayFloat] = []
        offset = 0.0
        for chunk in chunks[cut:]:
            e, sc = model.scores(log_mel(chunk))
            ends_all.append(e + offset)
            scores_all.append(sc)
            offset += chunk.shape[0] / SR + 10.0
        if ends_all:
            ends_c, scores_c = np.concatenate(ends_all), np.concatenate(scores_all)
            hours = sum(c.shape[0] for c in chunks[cut:]) / SR / 3600.0
            for th in np.unique(np.concatenate([np.linspace(0.5, 0.99, 50), 1 - np.logspace(-2, -6, 41)])):
                if (
                    len(triggers(ends_c, scores_c, float(th), config.refractory_s)) / hours
                    <= config.max_wakes_per_hour
                ):
                    threshold = float(th)
                    break
            else:
                threshold = 0.999999
    meta = {
        "trained_s": round(time.perf_counter() - t0, 1),
        "data_s": round(t_data, 1),
        "windows": int(data.y.shape[0]),
        "positives": int((data.y == 1).sum()),
        "hard_negatives": mined,
        "history": history,
        "trainer": "datadrive.assistant.voice.wakeword.train",
    }
    return WakeWordModel(config, net, threshold, meta)


# --------------------------------------------------------------------------- evaluation


@dataclass
class EvalReport:
    """What the evaluation measured.

    Attributes:
        threshold: The model's chosen threshold.
        detection_rate: Share of held-out wake phrases detected at it.
        false_wakes_per_hour: On the held-out negative audio at it.
        positives: Number of held-out wake phrases.
        negative_hours: Hours of held-out negative audio.
        curve: ``(threshold, detection rate, false wakes per hour)`` over the whole range.
        anchor: pocketsphinx keyword spotting on the same audio: one row per threshold.
        realtime_factor: Detector compute time / audio time (one process).
        details: Counts by noise family and voice kind.
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


def _test_set(
    config: WakeWordConfig,
    n_pos: int,
    neg_minutes: float,
    seed: int,
    progress: Callable[[str, int, int], None] | None,
) -> tuple[list[NDArrayFloat32], list[tuple[float, float]], list[str], Iterator[NDArrayFloat32]]:
    """Held-out positives (clips, phrase spans, noise family) and a generator of negative audio chunks."""
    rng = np.random.default_rng(seed)
    pools = voice_pools()
    _, accents = pools["accents"]
    _, var_pool = pools["variants"]
    _, test_sentences = sentence_pools()
    jobs = [(config.phrase, _random_voice(rng, accents, var_pool, (110, 215))) for _ in range(n_pos)]
    ctx_jobs = [
        (str(rng.choice(np.array(test_sentences))), _random_voice(rng, accents, var_pool, (110, 215)))
        for _ in range(max(8, n_pos // 4))
    ]
    audio = _synth_many(
        jobs + ctx_jobs,
        config.threads,
        None
        if progress is None
        else lambda i: progress("synthesizing test positives", i, len(jobs) + len(ctx_jobs)),
    )
    phrases, ctx = audio[: len(jobs)], audio[len(jobs) :]
    bank = NoiseBank(NOISE_FAMILIES, seed + 2)
    clips, spans, fams = [], [], []
    for utt in phrases:
        family = str(rng.choice(np.array(NOISE_FAMILIES)))
        lead = ctx[int(rng.integers(len(ctx)))][-int(rng.uniform(0.5, 1.5) * SR) :] * np.float32(
            rng.uniform(0.3, 1.0)
        )
        gap1, gap2 = (
            np.zeros(int(rng.uniform(0.2, 0.6) * SR), np.float32),
            np.zeros(int(1.2 * SR), np.float32),
        )
        x = np.concatenate([lead, gap1, utt, gap2])
        start = (lead.shape[0] + gap1.shape[0]) / SR
        fams_here = (family, *tuple(str(f) for f in rng.choice(np.array(NOISE_FAMILIES), size=1)))
        noise = NoiseBank.__new__(NoiseBank)
        noise.families, noise.bank = fams_here, {f: bank.bank[f] for f in fams_here}
        noisy = mix(
            reverb(x, rng) if rng.random() < 0.5 else x,
            noise.sample(x.shape[0], rng),
            float(rng.uniform(0, 20)),
            float(rng.uniform(-12, 6)),
        )
        clips.append(noisy)
        spans.append((start, start + utt.shape[0] / SR))
        fams.append(family)

    def negatives() -> Iterator[NDArrayFloat32]:
        yield from negative_stream(
            config,
            neg_minutes,
            seed + 1,
            accents,
            var_pool,
            test_sentences,
            TEST_NEAR_MISSES + COMMANDS[6:],
            bank,
            progress,
        )

    return clips, spans, fams, negatives()


def negative_stream(
    config: WakeWordConfig,
    minutes: float,
    seed: int,
    accents: Sequence[str],
    var_pool: Sequence[str],
    sentences: Sequence[str],
    near_misses: Sequence[str],
    bank: NoiseBank,
    progress: Callable[[str, int, int], None] | None = None,
) -> Iterator[NDArrayFloat32]:
    """Chunks of negative audio: sentences, near misses and noise alone, in cabin noise."""
    nrng = np.random.default_rng(seed)
    produced = 0.0
    target = minutes * 60.0
    while produced < target:
        parts = []
        seg_jobs = []
        for k in nrng.random(24):
            if k < 0.7:
                seg_jobs.append(
                    (
                        str(nrng.choice(np.array(sentences))),
                        _random_voice(nrng, accents, var_pool, (110, 215)),
                    )
                )
            elif k < 0.85:
                seg_jobs.append(
                    (
                        str(nrng.choice(np.array(near_misses))),
                        _random_voice(nrng, accents, var_pool, (110, 215)),
                    )
                )
            else:
                seg_jobs.append(("", Voice("en-us")))
        synthed = _synth_many([j for j in seg_jobs if j[0]], config.threads)
        it = iter(synthed)
        for text, _ in seg_jobs:
            if text:
                parts.append(next(it))
            else:
                parts.append(np.zeros(int(nrng.uniform(2, 6) * SR), np.float32))  # noise only
            parts.append(np.zeros(int(nrng.uniform(0.3, 1.5) * SR), np.float32))
        x = np.concatenate(parts)
        noise = bank.sample(x.shape[0], nrng)
        chunk = mix(
            reverb(x, nrng) if nrng.random() < 0.5 else x,
            noise,
            float(nrng.uniform(0, 20)),
            float(nrng.uniform(-12, 6)),
        )
        produced += chunk.shape[0] / SR
        if progress is not None:
            progress("negative audio (s)", int(min(produced, target)), int(target))
        yield chunk


def _anchor_pocketsphinx(
    phrase: str,
    clips: Sequence[NDArrayFloat32],
    spans: Sequence[tuple[float, float]],
    negatives: Sequence[NDArrayFloat32],
    thresholds: Sequence[float],
) -> list[dict[str, Any]]:
    """pocketsphinx keyword spotting (its en-us model and dictionary) on the same audio."""
    from pocketsphinx import Decoder

    words = phrase.lower().replace("datadrive", "data drive")
    rows = []
    neg_s = sum(x.shape[0] for x in negatives) / SR
    for th in thresholds:

        def run(x: NDArrayFloat32, th: float = th) -> list[float]:
            d = Decoder(samprate=SR, lm=None, keyphrase=words, kws_threshold=th, loglevel="FATAL")
            pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
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
            return hits

        detected = sum(
            1 for x, (a, b) in zip(clips, spans, strict=True) if any(a <= h <= b + 1.0 for h in run(x))
        )
        false = sum(len(run(x)) for x in negatives)
        rows.append(
            {
                "keyphrase": words,
                "kws_threshold": th,
                "detected": detected,
                "positives": len(clips),
                "detection_rate": detected / max(1, len(clips)),
                "false_wakes": false,
                "negative_hours": neg_s / 3600,
                "false_wakes_per_hour": false / max(neg_s / 3600, 1e-9),
            }
        )
    return rows


def evaluate(
    model: WakeWordModel,
    *,
    positives: int = 300,
    negative_minutes: float = 62.0,
    seed: int = 424242,
    anchor_positives: int = 30,
    anchor_negative_minutes: float = 5.0,
    anchor_thresholds: Sequence[float] = (1e-10, 1e-20, 1e-30, 1e-40),
    progress: Callable[[str, int, int], None] | None = None,
) -> EvalReport:
    """Detection rate and false wakes per hour on held-out audio (see the module doc)."""
    clips, spans, fams, negatives = _test_set(model.config, positives, negative_minutes, seed, progress)
    compute = 0.0
    audio_s = 0.0
    pos_best: list[float] = []
    for x, (a, b) in zip(clips, spans, strict=True):
        t0 = time.perf_counter()
        ends, scores = model.scores(log_mel(x))
        compute += time.perf_counter() - t0
        audio_s += x.shape[0] / SR
        sel = (ends >= a + 0.4) & (ends <= b + 0.9)
        pos_best.append(float(scores[sel].max()) if sel.any() else 0.0)
    neg_scores: list[tuple[NDArrayFloat, NDArrayFloat]] = []
    anchor_neg: list[NDArrayFloat32] = []
    neg_s = 0.0
    offset = 0.0
    for chunk in negatives:
        t0 = time.perf_counter()
        ends, scores = model.scores(log_mel(chunk))
        compute += time.perf_counter() - t0
        neg_scores.append((ends + offset, scores))
        offset += chunk.shape[0] / SR + 10.0  # chunks are separate: no trigger spans two
        neg_s += chunk.shape[0] / SR
        audio_s += chunk.shape[0] / SR
        if sum(a.shape[0] for a in anchor_neg) / SR < anchor_negative_minutes * 60:
            anchor_neg.append(chunk)
    all_ends = np.concatenate([e for e, _ in neg_scores])
    all_scores = np.concatenate([s for _, s in neg_scores])
    hours = neg_s / 3600.0
    pos = np.array(pos_best)

    def at(th: float) -> tuple[float, float]:
        return float((pos >= th).mean()), len(
            triggers(all_ends, all_scores, th, model.config.refractory_s)
        ) / hours

    grid = np.unique(
        np.concatenate([np.linspace(0.05, 0.95, 19), 1 - np.logspace(-1, -6, 26), [model.threshold]])
    )
    curve = [(float(th), *at(float(th))) for th in grid]
    det, fa = at(model.threshold)
    by_family = {
        f: float((pos[[i for i, x in enumerate(fams) if x == f]] >= model.threshold).mean())
        for f in sorted(set(fams))
    }
    anchor = (
        _anchor_pocketsphinx(
            model.config.phrase,
            clips[:anchor_positives],
            spans[:anchor_positives],
            anchor_neg,
            anchor_thresholds,
        )
        if anchor_positives > 0
        else []
    )
    return EvalReport(
        threshold=model.threshold,
        detection_rate=det,
        false_wakes_per_hour=fa,
        positives=len(clips),
        negative_hours=hours,
        curve=curve,
        anchor=anchor,
        realtime_factor=compute / audio_s,
        details={
            "detection_by_noise_family": by_family,
            "seed": seed,
            "test_only_noise_families": ["rain", "indicator", "music"],
        },
    )


def plot_curve(report: EvalReport, path: str | Path) -> None:
    """The detection-rate vs false-wakes-per-hour curve (matplotlib), with the chosen point and the anchor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    c = np.array(report.curve)
    ax.plot(np.maximum(c[:, 2], 0.05), c[:, 1] * 100, "-", label="datadrive wake word")
    ax.plot(
        [max(report.false_wakes_per_hour, 0.05)],
        [report.detection_rate * 100],
        "o",
        label=f"chosen threshold {report.threshold:.3f}",
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
        f"wake word on synthesized speech: {report.positives} "
        f"phrases, {report.negative_hours:.2f} h negatives",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(str(path), dpi=120)
    plt.close(fig)


def report_json(report: EvalReport) -> str:
    return json.dumps(report.to_json(), indent=2)


def small_config(**overrides: Any) -> WakeWordConfig:
    """A quick configuration for tests (about a minute on 2 cores)."""
    base = WakeWordConfig(
        positives=200, augment=2, sentences=100, near_misses=80, noise_windows=150, epochs=8
    )
    return replace(base, **overrides)
