"""The voice pipeline on a WAV file: wake -> transcript -> answer text -> answer WAV.

``datadrive assistant listen --wav FILE`` runs it: the wake-word model scans
the file; the audio after the first wake-up goes to the command recognizer
(:mod:`~datadrive.assistant.voice.asr`); the transcript to
:meth:`~datadrive.assistant.Assistant.ask`; the answer (without its evidence
list) to espeak-ng, written as a WAV file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datadrive.assistant.assistant import Answer, Assistant
from datadrive.assistant.voice.asr import CommandRecognizer
from datadrive.assistant.voice.audio import SAMPLE_RATE_HZ, read_wav, write_wav
from datadrive.assistant.voice.synth import Voice, speak
from datadrive.assistant.voice.wakeword import WakeWordModel

__all__ = ["Heard", "listen", "spoken_text"]


@dataclass(frozen=True)
class Heard:
    """What the pipeline did with one file."""

    wav: str
    woke: bool
    wake_time_s: float | None
    wake_score: float | None
    transcript: str
    answer: Answer | None
    answer_wav: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "wav": self.wav,
            "woke": self.woke,
            "wake_time_s": self.wake_time_s,
            "wake_score": self.wake_score,
            "transcript": self.transcript,
            "answer": None if self.answer is None else self.answer.to_json(),
            "answer_wav": self.answer_wav,
        }


_SPOKEN = (
    (r"`[^`]*`", ""),
    (r"km/h", " kilometers per hour"),
    (r"m/s²", " meters per second squared"),
    (r"m/s", " meters per second"),
    (r"°/s", " degrees per second"),
    (r"°", " degrees"),
    (r"\bmph\b", "miles per hour"),
    (r"(\d) s\b", r"\1 seconds"),
    (r"(\d) m\b", r"\1 meters"),
    (r"→", " to "),
)


def spoken_text(answer_text: str) -> str:
    """The part of an answer worth saying aloud: the first paragraph, units as words, no ids."""
    text = answer_text.split("\nEvidence:")[0].split("\nStops")[0]
    for pattern, repl in _SPOKEN:
        text = re.sub(pattern, repl, text)
    return " ".join(text.split())


def listen(
    wav: str | Path,
    assistant: Assistant,
    wake: WakeWordModel,
    recognizer: CommandRecognizer,
    *,
    out_wav: str | Path | None = None,
    voice: Voice | None = None,
) -> Heard:
    """Run the pipeline on one file (see the module doc).

    Raises:
        InputError: if the WAV file is empty, corrupt or not 16 kHz mono 16-bit.
    """
    samples = read_wav(wav)
    hits = wake.detect(samples)
    if not hits:
        return Heard(str(wav), False, None, None, "", None, None)
    t_wake, score = hits[0]
    start = max(0, int((t_wake - 0.25) * SAMPLE_RATE_HZ))
    command = samples[start:]
    transcript = recognizer.transcribe(command) if command.shape[0] > SAMPLE_RATE_HZ // 4 else ""
    transcript = re.sub(r"^(?:hey\s+)?(?:data\s+)?drive\s+|^hey\s+", "", transcript)
    if not transcript:
        text = "I heard the wake word, but no question I understand after it."
        answer = None
        spoken = text
    else:
        answer = assistant.ask(transcript)
        spoken = spoken_text(answer.text)
    out = None
    if out_wav is not None:
        audio = speak(spoken, voice or Voice("en-us", 165, 50))
        write_wav(out_wav, np.asarray(audio, dtype=np.float32))
        out = str(out_wav)
    return Heard(str(wav), True, t_wake, score, transcript, answer, out)
