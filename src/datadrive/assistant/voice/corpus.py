"""The wake word's synthesized corpus: who speaks, what they say, and what is held out.

Everything the evaluation hears is held out from training at the level a
real test would demand:

* **voices**: whole synthesizer voices are held out: flite's ``slt`` and
  festival's ``ked_diphone`` and ``cmu_us_slt_arctic_hts`` (an HMM voice:
  a synthesis method training never hears) are test-only; flite ``awb``,
  ``rms``, ``kal``, ``kal16`` and festival ``kal_diphone`` train, and so
  (optionally) do festival's Italian, Finnish and Czech voices reading
  respelled English (:mod:`~datadrive.assistant.voice.accented`). Of
  espeak-ng, every third English accent or accented voice and every fourth
  voice variant (sorted by name) are test-only;
* **sentences**: ordinary English prose from the Python documentation shipped
  with the interpreter (``pydoc_data``), 60 % for training, the rest for
  tests; sentences that use "hey", "data" and "drive" apart come from
  different templates; **near misses** differ between training and test;
* **noise**: see :mod:`~datadrive.assistant.voice.noise` (rain, indicator
  and music are test-only; babble is made from each side's own sentences).

A split's voices are drawn by :func:`random_voice`: engine, voice, variant,
speed (words per minute) and pitch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from datadrive.assistant.voice.synth import Voice, english_voices, festival_voices, flite_voices, variants

__all__ = [
    "COMMANDS",
    "SPLITS",
    "TEST_NEAR_MISSES",
    "TRAIN_NEAR_MISSES",
    "SpeakerPool",
    "apart_sentences",
    "random_voice",
    "sentence_pools",
    "speaker_pool",
    "voice_pools",
]

SPLITS = ("train", "test")

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
    "hey there drive",
    "hey database",
    "hey the drive",
    "hey data centre",
    "hey daddy",
    "they'd arrive",
    "hey ted",
    "hey data strive",
    "hey delta",
    "hey datum",
    "pay data drive",
    "hey beta",
    "data drive hey",
    "hey data thrive",
    "hey the data",
    "hey, dear driver",
    "heated drive",
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
    "hey, they drive",
    "hey daily drive",
)
# the wake phrase as a prefix of a longer word: a streaming detector that answers before the
# word ends must fire on it, as every product's does ("Alexa" in "Alexander"); counted apart
PREFIX_PHRASES = ("hey data driven", "hey datadriver")
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

# "hey", "data" and "drive" in ordinary sentences, apart (training and test templates differ)
_APART = {
    "train": (
        "hey, can you send me the data before we drive home",
        "the data from the test drive is ready",
        "we drive to the data centre and say hey to the team",
        "hey, I think the drive failed, the data is gone",
        "copy the data to the external drive",
        "hey you, drive slower, the road data shows ice",
        "a long drive with data logging on",
        "she said hey and we went for a drive",
    ),
    "test": (
        "the hard drive holds all the data",
        "hey there, how was the drive today",
        "data says we should drive north, hey",
        "they drive every day and collect data",
        "hey, look at that, the data looks right, now drive",
        "after the drive we check the data",
    ),
}


@dataclass(frozen=True)
class SpeakerPool:
    """A split's voices: espeak accents and variants, flite and festival voices."""

    accents: tuple[str, ...]
    variants: tuple[str, ...]
    flite: tuple[str, ...]
    festival: tuple[str, ...]


_FLITE_TEST = ("slt",)
_FESTIVAL_TEST = ("ked_diphone", "cmu_us_slt_arctic_hts")


def _split(items: Sequence[str], every: int) -> tuple[list[str], list[str]]:
    """(train, held out): every ``every``-th item (sorted) is held out."""
    s = sorted(items)
    test = s[1::every]
    return [x for x in s if x not in test], test


def voice_pools() -> dict[str, tuple[list[str], list[str]]]:
    """espeak's ``{"accents": (train, test), "variants": (train, test)}``."""
    return {"accents": _split(english_voices(), 3), "variants": _split(list(variants()), 4)}


@lru_cache(maxsize=2)
def speaker_pool(split: str) -> SpeakerPool:
    """The voices of ``"train"`` or ``"test"`` (disjoint)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    k = 0 if split == "train" else 1
    pools = voice_pools()
    fl = flite_voices()
    fe = festival_voices()
    return SpeakerPool(
        accents=tuple(pools["accents"][k]),
        variants=tuple(pools["variants"][k]),
        flite=tuple(v for v in fl if (v in _FLITE_TEST) == (split == "test")),
        festival=tuple(v for v in fe if (v in _FESTIVAL_TEST) == (split == "test")),
    )


def random_voice(rng: np.random.Generator, pool: SpeakerPool, speeds: tuple[int, int] = (110, 215)) -> Voice:
    """A random voice of ``pool``: espeak-ng about 60 % of the time, flite and festival the rest."""
    speed = int(rng.integers(*speeds))
    pitch = int(rng.integers(15, 86))
    u = rng.random()
    if pool.flite and u < 0.22:
        return Voice(str(rng.choice(np.array(pool.flite))), speed, (pitch + 50) // 2, engine="flite")
    if pool.festival and u < 0.40:
        # festival runs one process per (voice, speed): coarse speeds keep the batches large
        return Voice(
            str(rng.choice(np.array(pool.festival))),
            int(round(speed / 20) * 20),
            (pitch + 50) // 2,
            engine="festival",
        )
    accent = str(rng.choice(np.array(pool.accents)))
    var = str(rng.choice(np.array(pool.variants))) if rng.random() < 0.8 else ""
    return Voice(accent + (f"+{var}" if var else ""), speed, pitch, 100)


@lru_cache(maxsize=1)
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


def apart_sentences(split: str) -> tuple[str, ...]:
    """Sentences with "hey", "data" and "drive" apart (never the wake phrase)."""
    return _APART[split]
