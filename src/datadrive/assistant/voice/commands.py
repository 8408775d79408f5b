"""How well spoken commands are understood: synthesized commands from held-out voices, in cabin noise.

:func:`command_cases` writes commands from templates over the assistant's
vocabulary (statistics, events, health, trips, travel over the map's place
names) with random numbers, clock times and places; :func:`evaluate_commands`
speaks each with a held-out voice (:func:`~datadrive.assistant.voice.corpus.speaker_pool`
``"test"``: synthesizer voices and espeak accents the wake word never trained
on), clean and in cabin noise at 5-20 dB SNR, runs each recognizer on the
same audio and scores the transcript three ways:

* **word error rate** (WER): word substitutions, deletions and insertions
  (the Levenshtein alignment of the transcript against the command's words:
  lower case, numbers as words, place names in ASCII), summed over all
  commands and divided by the commands' words;
* **exact transcript**: the recognised words equal the command's;
* **intent**: the intent parser gives the same kind of request as for the
  typed command;
* **slots**: the same kind *and* every slot (quantity, statistic, times,
  thresholds, event, places, point-of-interest category).

The expected intents come from the parser on the typed command, so the
score is the recognizer's, not the parser's.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from datadrive.assistant.intents import Intent, parse_question
from datadrive.assistant.voice.asr import CommandRecognizer, ascii_words
from datadrive.assistant.voice.audio import SAMPLE_RATE_HZ
from datadrive.assistant.voice.corpus import random_voice, sentence_pools, speaker_pool
from datadrive.assistant.voice.noise import NOISE_FAMILIES, NoiseBank, mix, reverb
from datadrive.assistant.voice.synth import speak_many
from datadrive.core.typing import NDArrayFloat32

__all__ = [
    "CommandCase",
    "CommandReport",
    "command_cases",
    "evaluate_commands",
    "intent_slots",
    "word_errors",
]

SR = SAMPLE_RATE_HZ
_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven")
_TENS = {
    20: "twenty",
    30: "thirty",
    40: "forty",
    50: "fifty",
    60: "sixty",
    70: "seventy",
    80: "eighty",
    90: "ninety",
}

_TEMPLATES: dict[str, tuple[str, ...]] = {
    "statistic": (
        "what was my top speed",
        "what was the average speed during the last minute",
        "what was my top speed in the first {n} seconds",
        "what was the lowest speed between {a} seconds and {b} seconds",
        "what was the maximum steering angle",
        "what was the average altitude",
        "how fast was i going around {clock}",
        "how long was i above {kmh} kilometers per hour",
        "what was the peak yaw rate",
        "how fast did i go on average during the last minute",
        "what was the highest speed on this drive",
        "show me the mean steering angle",
        "tell me the peak lateral acceleration in the first {n} seconds",
        "what was my lowest speed between {clock} and {clock2}",
    ),
    "event": (
        "did i brake hard",
        "why did the car brake hard around {clock}",
        "were there any sharp turns",
        "when did i brake the hardest",
        "how many times did i brake hard",
        "were there any harsh events",
        "did i have any hard acceleration on this trip",
        "why did we slow down around {clock}",
        "how many times did i brake hard during the last minute",
    ),
    "health": (
        "is the steering angle sensor healthy",
        "were there any dropouts in the speed signal",
        "did any can messages stop",
        "is the speed sensor working properly",
        "is everything working properly",
        "check the can bus",
        "is the speed sensor frozen",
        "were there any dropouts in the altitude signal",
        "is the gps sensor ok",
    ),
    "trip": (
        "summarize this trip",
        "how far did i drive",
        "how long was the drive",
        "give me a summary of my drive",
        "how was my trip",
        "recap my drive",
        "how far did we travel",
        "how long was my trip",
    ),
    "travel": (
        "route from {p} to {q}",
        "directions to {p}",
        "route from {p} to {q} via {r}",
        "find a charging station on the way to {p}",
        "where can i find parking near {p}",
        "any food near {p}",
        "navigate to {p}",
        "take me from {p} to {q} via {r}",
        "find a cafe near {p}",
        "any fuel on the way to {p}",
        "drive me to {p}",
    ),
}


def _number_words(n: int) -> str:
    if n <= 11:
        return _ONES[n]
    if n == 12:
        return "twelve"
    if n < 20:
        return {13: "thirteen", 14: "fourteen", 15: "fifteen", 16: "sixteen", 17: "seventeen"}.get(
            n, {18: "eighteen", 19: "nineteen"}.get(n, "")
        )
    tens, ones = divmod(n, 10)
    return _TENS[tens * 10] + ("" if ones == 0 else " " + _ONES[ones])


@dataclass(frozen=True)
class CommandCase:
    """One command: what is said (``spoken``, place names as written), what should be heard (``words``)."""

    spoken: str
    words: str
    family: str


def command_cases(places: Sequence[str], n: int, seed: int) -> list[CommandCase]:
    """``n`` commands, the families in turn, numbers, times and places drawn at random."""
    rng = np.random.default_rng(seed)
    out: list[CommandCase] = []
    families = sorted(_TEMPLATES)
    for k in range(n):
        family = families[k % len(families)]
        template = str(rng.choice(np.array(_TEMPLATES[family])))
        a = int(rng.integers(2, 5)) * 10
        picks = (
            [str(p) for p in rng.choice(np.array(list(places)), size=3, replace=False)]
            if places
            else ["x"] * 3
        )
        minute = int(rng.choice([5, 10, 15, 20, 25, 30, 35, 40, 45, 50]))
        hour = int(rng.integers(1, 13))
        values = {
            "n": _number_words(int(rng.choice([10, 20, 30, 40]))),
            "a": _number_words(a),
            "b": _number_words(a + int(rng.integers(1, 4)) * 10),
            "clock": f"{_number_words(hour)} {_number_words(minute)}",
            "clock2": f"{_number_words(hour)} {_number_words(minute + 5)}",
            "kmh": _number_words(int(rng.integers(3, 10)) * 10),
        }
        spoken = template.format(p=picks[0], q=picks[1], r=picks[2], **values)
        heard = template.format(
            p=" ".join(ascii_words(picks[0])),
            q=" ".join(ascii_words(picks[1])),
            r=" ".join(ascii_words(picks[2])),
            **values,
        )
        out.append(CommandCase(spoken, heard, family))
    return out


def word_errors(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Substitutions + deletions + insertions turning ``reference`` into ``hypothesis`` (word Levenshtein)."""
    prev = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        cur = [i] + [0] * len(hypothesis)
        for j, h in enumerate(hypothesis, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def _fold(text: str) -> str:
    return " ".join(ascii_words(unicodedata.normalize("NFKC", text)))


def intent_slots(intent: Intent) -> dict[str, Any]:
    """The parsed request without its text: kind and slots (places accent- and case-folded)."""
    out: dict[str, Any] = {}
    for f in fields(intent):
        if f.name in ("text", "numbers", "extra"):
            continue
        value = getattr(intent, f.name)
        if f.name == "places":
            value = tuple(_fold(p) for p in value)
        elif value is not None and hasattr(value, "__dataclass_fields__"):
            value = {k: v for k, v in asdict(value).items() if k != "text"}
        out[f.name] = value
    return out


@dataclass
class CommandReport:
    """One recognizer in one condition.

    Attributes:
        recognizer: Its name.
        condition: ``clean`` or ``cabin noise``.
        commands: How many.
        wer: Word error rate: word errors over all commands / the commands' words.
        words: The commands' words (the WER's denominator).
        exact: Share of transcripts equal to the command.
        intent: Share parsed to the command's kind of request.
        slots: Share parsed to the command's kind and every slot.
        by_family: ``family -> (commands, intent right, slots right)``.
        failures: A few ``(command, transcript)`` pairs whose slots were wrong.
    """

    recognizer: str
    condition: str
    commands: int
    wer: float
    words: int
    exact: float
    intent: float
    slots: float
    by_family: dict[str, tuple[int, int, int]]
    failures: list[tuple[str, str]]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_commands(
    recognizers: Mapping[str, CommandRecognizer],
    cases: Sequence[CommandCase],
    *,
    seed: int = 5,
    snr_db: tuple[float, float] = (5.0, 20.0),
    threads: int = 2,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[CommandReport]:
    """Each recognizer on the same synthesized audio, clean and in cabin noise (see the module doc)."""
    rng = np.random.default_rng(seed)
    pool = speaker_pool("test")
    jobs = [(c.spoken, random_voice(rng, pool, speeds=(130, 190))) for c in cases]
    speech = speak_many(jobs, threads=threads)
    _, test_sentences = sentence_pools()
    babble_src = speak_many(
        [(str(rng.choice(np.array(test_sentences))), random_voice(rng, pool)) for _ in range(12)],
        threads=threads,
    )
    bank = NoiseBank(NOISE_FAMILIES, seed + 1, speech=babble_src)
    pad = np.zeros(int(0.3 * SR), np.float32)
    clean: list[NDArrayFloat32] = [np.concatenate([pad, x, pad]) for x in speech]
    noisy: list[NDArrayFloat32] = []
    for x in clean:
        y = reverb(x, rng, rt60_s=(0.05, 0.4)) if rng.random() < 0.5 else x
        noisy.append(
            mix(y, bank.sample(y.shape[0], rng), float(rng.uniform(*snr_db)), float(rng.uniform(-6, 6)))
        )
    expected = [intent_slots(parse_question(c.words)) for c in cases]
    reports = []
    total = len(recognizers) * 2 * len(cases)
    done = 0
    for name, rec in recognizers.items():
        for condition, audio in (("clean", clean), (f"cabin noise {snr_db[0]:g}-{snr_db[1]:g} dB", noisy)):
            exact = intent_ok = slots_ok = errors = words = 0
            fam: dict[str, list[int]] = {}
            failures: list[tuple[str, str]] = []
            for case, x, want in zip(cases, audio, expected, strict=True):
                heard = rec.transcribe(x)
                got = intent_slots(parse_question(heard))
                e = heard.split() == case.words.split()
                errors += word_errors(case.words.split(), heard.split())
                words += len(case.words.split())
                i = got["kind"] == want["kind"]
                s = got == want
                exact += e
                intent_ok += i
                slots_ok += s
                row = fam.setdefault(case.family, [0, 0, 0])
                row[0] += 1
                row[1] += i
                row[2] += s
                if not s and len(failures) < 8:
                    failures.append((case.words, heard))
                done += 1
                if progress is not None:
                    progress("recognizing commands", done, total)
            n = max(1, len(cases))
            reports.append(
                CommandReport(
                    name,
                    condition,
                    len(cases),
                    errors / max(1, words),
                    words,
                    exact / n,
                    intent_ok / n,
                    slots_ok / n,
                    {k: (v[0], v[1], v[2]) for k, v in sorted(fam.items())},
                    failures,
                )
            )
    return reports
