"""Speech synthesis from Debian's synthesizers: training data and spoken answers.

Three engines, so that a wake word is not trained and tested on one
synthesizer's quirks:

* ``espeak-ng`` (formant synthesis): :func:`english_voices` lists what it
  can say English with: its English accents (``en-us``, ``en-gb-scotland``,
  ...), other languages' voices reading English (accented speech), each
  combinable with its voice variants (``+m3``, ``+f2``, ``+klatt``, ...);
* ``flite`` (CMU Flite, Debian ``flite``): its built-in voices ``kal``,
  ``kal16`` (diphone), ``awb``, ``rms``, ``slt`` (clustergen);
* ``festival`` (Debian ``festival`` with ``festvox-kallpc16k``,
  ``festvox-kdlpc16k``, ``festvox-us-slt-hts``): the diphone voices
  ``kal_diphone``, ``ked_diphone`` and the HMM voice ``cmu_us_slt_arctic_hts``.

:func:`speak` says one text; :func:`speak_many` says many, in threads, one
festival process per voice for a batch (festival starts slowly). Speed is
the engine's own (espeak words per minute; a duration stretch for flite and
festival); espeak's pitch is its own, the others are pitch-shifted by sox
(:func:`perturb`, which also changes tempo). All return 16 kHz float samples.

These are synthesisers: clear but robotic, and far less varied than
people. A wake word trained and tested on them shows the pipeline works and
how the model copes with unheard synthetic voices, speeds, pitches, noise
and reverberation; it does not show how it copes with real voices (see
``docs/assistant.md``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from datadrive.assistant.voice.accented import ACCENTED_VOICES
from datadrive.assistant.voice.audio import SAMPLE_RATE_HZ, resample
from datadrive.core.typing import NDArrayFloat32
from datadrive.errors import ConfigError

__all__ = [
    "ENGINES",
    "Voice",
    "english_voices",
    "espeak_available",
    "festival_voices",
    "flite_voices",
    "perturb",
    "speak",
    "speak_many",
    "variants",
]

ENGINES = ("espeak-ng", "flite", "festival")

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
    """One synthetic speaker.

    Attributes:
        name: The engine's voice (espeak ``en-gb+f3``, flite ``slt``, festival ``ked_diphone``).
        speed_wpm: Speaking rate in words per minute (160 is the engines' usual rate;
            flite and festival get a duration stretch of ``160 / speed_wpm``).
        pitch: espeak's pitch (0-99, 50 usual); for flite and festival a
            shift of ``(pitch - 50) * 16`` cents by sox.
        amplitude: espeak's amplitude (0-200).
        engine: ``espeak-ng``, ``flite`` or ``festival``.
    """

    name: str
    speed_wpm: int = 160
    pitch: int = 50
    amplitude: int = 100
    engine: str = "espeak-ng"

    def label(self) -> str:
        return f"{self.engine}:{self.name}@{self.speed_wpm}wpm/p{self.pitch}"


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


def _exe(name: str, package: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise ConfigError(f"{name} is not installed: apt-get install -y {package} (make sysdeps does it)")
    return exe


@lru_cache(maxsize=1)
def flite_voices() -> tuple[str, ...]:
    """flite's built-in voices (empty when flite is not installed)."""
    exe = shutil.which("flite")
    if exe is None:
        return ()
    out = subprocess.run([exe, "-lv"], capture_output=True, text=True, check=False).stdout
    names = out.split(":", 1)[-1].split()
    return tuple(sorted(n for n in names if n != "awb_time"))  # awb_time only says the time


_FESTIVAL_VOICES = ("cmu_us_slt_arctic_hts", "kal_diphone", "ked_diphone")


@lru_cache(maxsize=1)
def festival_voices() -> tuple[str, ...]:
    """The English festival voices installed (empty when festival is not)."""
    exe = shutil.which("festival")
    if exe is None:
        return ()
    script = "(print (voice.list))"
    out = subprocess.run([exe, "--batch", f"{script}"], capture_output=True, text=True, check=False).stdout
    have = set(out.replace("(", " ").replace(")", " ").split())
    return tuple(v for v in _FESTIVAL_VOICES if v in have)


def _pcm_of_wav(raw: bytes, who: str, rate_hz: int) -> NDArrayFloat32:
    """Samples of a 16-bit PCM RIFF file's ``data`` chunk, resampled to ``rate_hz``."""
    import struct

    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ConfigError(f"{who} gave no WAV")
    pos, rate, data = 12, 0, b""
    while pos + 8 <= len(raw):
        tag, size = raw[pos : pos + 4], struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
        body = raw[pos + 8 : pos + 8 + size]
        if tag == b"fmt ":
            rate = struct.unpack("<I", body[4:8])[0]
        elif tag == b"data":
            data = body if size != 0xFFFFFFFF and size else raw[pos + 8 :]  # espeak's stdout has no size
            break
        pos += 8 + size + (size & 1)
    if not rate:
        raise ConfigError(f"{who} gave a WAV without a format chunk")
    pcm = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
    return resample(pcm, rate, rate_hz)


def perturb(x: NDArrayFloat32, *, tempo: float = 1.0, pitch_cents: float = 0.0) -> NDArrayFloat32:
    """``x`` (16 kHz) at another tempo and pitch, through sox's ``tempo`` and ``pitch`` effects.

    Raises:
        ConfigError: if sox is missing or fails.
    """
    if abs(tempo - 1.0) < 1e-3 and abs(pitch_cents) < 1.0:
        return x
    cmd = [_exe("sox", "sox"), "-t", "raw", "-r", str(SAMPLE_RATE_HZ), "-e", "floating-point", "-b", "32"]
    cmd += ["-c", "1", "-", "-t", "raw", "-"]
    if abs(pitch_cents) >= 1.0:
        cmd += ["pitch", f"{pitch_cents:.0f}"]
    if abs(tempo - 1.0) >= 1e-3:
        cmd += ["tempo", "-s", f"{tempo:.3f}"]
    done = subprocess.run(cmd, input=np.ascontiguousarray(x, np.float32).tobytes(), capture_output=True)
    if done.returncode != 0:
        raise ConfigError(f"sox failed: {done.stderr.decode(errors='replace').strip()}")
    return np.frombuffer(done.stdout, dtype=np.float32).copy()


def speak(text: str, voice: Voice | None = None, *, rate_hz: int = SAMPLE_RATE_HZ) -> NDArrayFloat32:
    """``(S,)`` float32 samples of ``text`` spoken by ``voice``.

    Raises:
        ConfigError: if the engine is missing or fails.
    """
    v = voice or Voice("en-us")
    if v.engine == "espeak-ng":
        return _speak_espeak(text, v, rate_hz)
    if v.engine == "flite":
        return _speak_flite(text, v, rate_hz)
    if v.engine == "festival":
        return _speak_festival([text], v, rate_hz)[0]
    raise ConfigError(f"unknown speech engine {v.engine!r} (known: {', '.join(ENGINES)})")


def speak_many(
    jobs: Sequence[tuple[str, Voice]],
    *,
    threads: int = 2,
    progress: Callable[[int], None] | None = None,
    fallback: bool = True,
) -> list[NDArrayFloat32]:
    """Every ``(text, voice)`` spoken, in order; festival jobs batched per voice, speed and pitch.

    With ``fallback``, an espeak voice that fails (a variant an accent lacks)
    is replaced by the accent's plain voice, else ``en-us``.
    """
    out: list[NDArrayFloat32 | None] = [None] * len(jobs)
    done = 0
    groups: dict[tuple[str, int], list[int]] = {}
    for i, (_, v) in enumerate(jobs):
        if v.engine == "festival":  # one process per voice and speed: pitch is shifted afterwards
            groups.setdefault((v.name, v.speed_wpm), []).append(i)
    batches: list[list[int]] = []
    for idx in groups.values():
        batches += [idx[k : k + 50] for k in range(0, len(idx), 50)]
    batches += [[i] for i, (_, v) in enumerate(jobs) if v.engine != "festival"]

    def run(batch: list[int]) -> tuple[list[int], list[NDArrayFloat32]]:
        v = jobs[batch[0]][1]
        if v.engine == "festival":
            return batch, _speak_festival(
                [jobs[i][0] for i in batch], v, SAMPLE_RATE_HZ, pitches=[jobs[i][1].pitch for i in batch]
            )
        try:
            return batch, [speak(jobs[batch[0]][0], v)]
        except ConfigError:
            if v.engine != "espeak-ng" or not fallback:
                raise
            # a variant some accent lacks: the accent's plain voice, else en-us
            plain = Voice(v.name.split("+")[0], v.speed_wpm, v.pitch, v.amplitude)
            try:
                return batch, [speak(jobs[batch[0]][0], plain)]
            except ConfigError:
                return batch, [speak(jobs[batch[0]][0], Voice("en-us", v.speed_wpm, v.pitch))]

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for idx, audio in pool.map(run, batches):
            for i, a in zip(idx, audio, strict=True):
                out[i] = a
            done += len(idx)
            if progress is not None:
                progress(done)
    return [a for a in out if a is not None]


def _pitch_cents(v: Voice) -> float:
    return (v.pitch - 50) * 16.0


def _speak_flite(text: str, v: Voice, rate_hz: int) -> NDArrayFloat32:
    exe = _exe("flite", "flite")
    with tempfile.TemporaryDirectory(prefix="datadrive-flite-") as tmp:
        out = Path(tmp) / "out.wav"
        cmd = [exe, "-voice", v.name, "--setf", f"duration_stretch={160.0 / max(40, v.speed_wpm):.3f}"]
        done = subprocess.run([*cmd, "-t", text, "-o", str(out)], capture_output=True, check=False)
        if done.returncode != 0 or not out.exists():
            raise ConfigError(
                f"flite failed for voice {v.name}: {done.stderr.decode(errors='replace').strip()}"
            )
        x = _pcm_of_wav(out.read_bytes(), f"flite voice {v.name}", rate_hz)
    return perturb(x, pitch_cents=_pitch_cents(v)) if rate_hz == SAMPLE_RATE_HZ else x


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", " ").replace('"', " ") + '"'


def _speak_festival(
    texts: Sequence[str], v: Voice, rate_hz: int, *, pitches: Sequence[int] | None = None
) -> list[NDArrayFloat32]:
    exe = _exe("festival", "festival")
    known = _FESTIVAL_VOICES + tuple(ACCENTED_VOICES)
    if v.name not in known:
        raise ConfigError(f"unknown festival voice {v.name!r} (known: {', '.join(known)})")
    with tempfile.TemporaryDirectory(prefix="datadrive-festival-") as tmp:
        lines = [f"(voice_{v.name})", f"(Parameter.set 'Duration_Stretch {160.0 / max(40, v.speed_wpm):.3f})"]
        for k, text in enumerate(texts):
            lines.append(
                f"(utt.save.wave (utt.synth (Utterance Text {_scheme_string(text)})) "
                f'"{Path(tmp) / f"{k}.wav"}" \'riff)'
            )
        script = Path(tmp) / "say.scm"
        script.write_text("\n".join(lines) + "\n")
        done = subprocess.run([exe, "--batch", str(script)], capture_output=True, check=False)
        outs = []
        for k in range(len(texts)):
            f = Path(tmp) / f"{k}.wav"
            if not f.exists():
                raise ConfigError(
                    f"festival failed for voice {v.name}: "
                    f"{done.stderr.decode(errors='replace').strip()[:300]}"
                )
            x = _pcm_of_wav(f.read_bytes(), f"festival voice {v.name}", rate_hz)
            pitch = v.pitch if pitches is None else pitches[k]
            outs.append(perturb(x, pitch_cents=(pitch - 50) * 16.0) if rate_hz == SAMPLE_RATE_HZ else x)
    return outs


def _speak_espeak(text: str, v: Voice, rate_hz: int) -> NDArrayFloat32:
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
