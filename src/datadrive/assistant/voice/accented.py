"""More training speakers: festival's Italian, Finnish and Czech voices reading English.

The English synthesizer voices that Debian ships are few, and the held-out
evaluation keeps some of them for itself (:mod:`~datadrive.assistant.voice.corpus`).
Festival's voices for other languages are other speakers, recorded by other
people (two of them women, where every English flite and festival training
voice is a man). Given English text they read it with their own letter-to-sound
rules, which garbles it; so each text is first *respelled*: espeak-ng writes
its British English pronunciation in IPA, and each IPA sound becomes the
letters that say it in the voice's language ("hey datadrive" is ``hei
deitedraiv`` to the Italian and Finnish voices, ``hej dejtedrajv`` to the
Czech). The result is English with that language's accent, as a learner
would say it from such a respelling.

These voices are used **for training only**. None of them is in the
evaluation; the held-out festival voices (``ked_diphone``,
``cmu_us_slt_arctic_hts``) stay held out, and the Catalan HTS voice
``upc_ca_ona_hts`` is left out so that the test's HMM voice remains a
synthesis method that training never hears.

Debian packages (training only, not needed by the tests):
``festvox-italp16k festvox-itapc16k festvox-suopuhe-lj festvox-suopuhe-mv
festvox-czech-dita``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from datadrive.errors import ConfigError

__all__ = ["ACCENTED_VOICES", "accented_voices", "ipa_letters", "respell", "respell_version"]

# festival voice -> the language whose spelling it reads
ACCENTED_VOICES = {
    "lp_diphone": "it",  # Italian, female (festvox-italp16k)
    "pc_diphone": "it",  # Italian, male (festvox-itapc16k)
    "suo_fi_lj_diphone": "fi",  # Finnish, female (festvox-suopuhe-lj)
    "hy_fi_mv_diphone": "fi",  # Finnish, male (festvox-suopuhe-mv)
    "czech_dita": "cs",  # Czech, female (festvox-czech-dita)
}

# IPA (espeak-ng en-gb) to letters, per language; longest match first
_COMMON = {
    "eɪ": "ei", "aɪ": "ai", "aʊ": "au", "əʊ": "ou", "oʊ": "ou", "ɔɪ": "oi", "ɪə": "ia", "eə": "ea",
    "ʊə": "ua", "a": "a", "ɑ": "a", "ɐ": "a", "æ": "e", "e": "e", "ɛ": "e", "ə": "e", "ɜ": "e", "ʌ": "a",
    "ɪ": "i", "i": "i", "ᵻ": "i", "ɒ": "o", "ɔ": "o", "o": "o", "ʊ": "u", "u": "u", "ɚ": "er",
    "p": "p", "b": "b", "t": "t", "d": "d", "k": "k", "g": "g", "ɡ": "g", "f": "f", "v": "v", "s": "s",
    "z": "s", "m": "m", "n": "n", "ŋ": "ng", "l": "l", "r": "r", "ɹ": "r", "ɾ": "t", "h": "h",
    "θ": "t", "ð": "d", "ʃ": "s", "ʒ": "s", "tʃ": "ts", "dʒ": "dz", "j": "j", "w": "u", "x": "h",
}  # fmt: skip
_BY_LANGUAGE = {
    "it": {**_COMMON, "j": "i", "ʃ": "sc", "tʃ": "c", "dʒ": "g", "k": "c"},
    "fi": {**_COMMON, "dʒ": "ts"},  # the Finnish voices fail on "dz"
    "cs": {
        **_COMMON, "eɪ": "ej", "aɪ": "aj", "ɔɪ": "oj", "z": "z", "ʃ": "š", "ʒ": "ž", "tʃ": "č", "dʒ": "dž",
        "x": "ch",
    },
}  # fmt: skip
_MARKS = "ˈˌ̩̯‿.-_"


def ipa_letters(ipa_word: str, language: str) -> str:
    """One word's IPA (as espeak-ng writes it) in the letters of ``language`` (``it``, ``fi``, ``cs``)."""
    table = _BY_LANGUAGE[language]
    keys = sorted(table, key=len, reverse=True)
    out: list[str] = []
    i = 0
    word = "".join(ch for ch in ipa_word if ch not in _MARKS)
    while i < len(word):
        if word[i] in "ːˑ":  # a long vowel: Finnish writes it twice, the others once
            if language == "fi" and out and out[-1][-1:] in "aeiou":
                out.append(out[-1][-1])
            i += 1
            continue
        for key in keys:
            if word.startswith(key, i):
                letters = table[key]
                if language == "it" and key == "k" and word[i + 1 : i + 2] in ("e", "ɛ", "ɪ", "i", "ə", "ɜ"):
                    letters = "ch"  # Italian "c" before e and i is "ch" [tʃ]: keep it [k]
                out.append(letters)
                i += len(key)
                break
        else:
            i += 1  # a sound without letters of its own
    return "".join(out)


def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise ConfigError("espeak-ng is not installed: apt-get install -y espeak-ng (make sysdeps does it)")
    return exe


def _ipa(text: str) -> list[str]:
    """espeak-ng's British English IPA of ``text``: one string per clause."""
    out = subprocess.run(
        [_espeak(), "-q", "--ipa", "-v", "en-gb", text], capture_output=True, text=True, check=True
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def respell(texts: Sequence[str], language: str, *, threads: int = 2) -> list[str]:
    """Each English text spelled so that a ``language`` (``it``, ``fi``, ``cs``) reader says it in English.

    Clauses stay apart (joined by commas), words by spaces.

    Raises:
        ConfigError: for an unknown language or without espeak-ng.
    """
    if language not in _BY_LANGUAGE:
        raise ConfigError(
            f"no respelling for language {language!r} (known: {', '.join(sorted(_BY_LANGUAGE))})"
        )

    def one(text: str) -> str:
        clauses = [" ".join(ipa_letters(w, language) for w in c.split()) for c in _ipa(text)]
        return ", ".join(c for c in clauses if c.strip())

    with ThreadPoolExecutor(max(1, threads)) as pool:
        return list(pool.map(one, texts))


@lru_cache(maxsize=1)
def accented_voices() -> tuple[str, ...]:
    """The voices of :data:`ACCENTED_VOICES` that festival has here (sorted; empty without festival)."""
    exe = shutil.which("festival")
    if exe is None:
        return ()
    out = subprocess.run(
        [exe, "--batch", "(print (voice.list))"], capture_output=True, text=True, check=False
    )
    have = set(out.stdout.replace("(", " ").replace(")", " ").split())
    return tuple(sorted(v for v in ACCENTED_VOICES if v in have))


def respell_version() -> str:
    """A digest of the respelling tables (training caches are keyed by it)."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(_BY_LANGUAGE, sort_keys=True).encode()).hexdigest()[:12]
