"""Offline speech recognition of commands: pocketsphinx with a JSGF grammar of the assistant's intents.

A grammar (rather than pocketsphinx's large-vocabulary language model, which
transcribes espeak speech poorly) restricts recognition to what the
assistant understands: the quantities, statistics, time expressions
(numbers as words, clock times as "nine fifteen"), events, health and trip
questions, and travel requests over the map's place names. The transcript
then goes through the same intent parser as typed questions.

**Place names outside the English dictionary** (most of Helsinki's:
"Hakaniemi", "Töölön tori") get pronunciations from espeak-ng in the map's
language (``--ipa``), mapped from IPA to the acoustic model's ARPAbet phones
(:func:`ipa_to_arpabet`) and added to the decoder's dictionary; in the
grammar and the transcript they are written in plain ASCII ("toolon tori"),
which the place matcher (case- and accent-free) finds again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from datadrive.assistant.voice.audio import SAMPLE_RATE_HZ
from datadrive.core.typing import NDArrayFloat32

__all__ = ["CommandRecognizer", "ascii_words", "build_grammar", "espeak_pronunciations", "ipa_to_arpabet"]

_NUMBERS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
    "hundred",
]
_QUANTITIES = (
    "speed",
    "steering angle",
    "steering wheel angle",
    "steering torque",
    "acceleration",
    "deceleration",
    "yaw rate",
    "altitude",
    "elevation",
    "lateral acceleration",
    "wheel speed",
    "gps speed",
)
_SENSORS = ("speed", "steering angle", "steering", "wheel speed", "altitude", "gps", "accelerometer")


def _alts(items: Iterable[str]) -> str:
    return " | ".join(sorted(set(items)))


def build_grammar(places: Sequence[str] = ()) -> str:
    """The JSGF grammar (``places``: place names to accept in travel requests, already in the dictionary)."""
    place_rule = _alts(p.lower() for p in places) if places else "market square | railway station | cathedral"
    return f"""#JSGF V1.0;
grammar datadrive;
public <command> = [<wake>] [please] (<stat> | <event> | <health> | <trip> | <travel> | <other>) [please];
<wake> = [hey] [data] drive | hey;
<num> = ({_alts(_NUMBERS)}) [{_alts(_NUMBERS)}];
<clock> = <num> [<num>] [a m | p m | o'clock];
<unit> = seconds | second | minutes | minute | <speedunit> | k p h | m p h;
<speedunit> = kilometers per hour | miles per hour | meters per second;
<window> = (on | during | in | for) (the | my | this) [last | first | previous] <span>
         | (in | during) the (first | last) <num> <unit>
         | between <num> [<unit>] and <num> <unit>
         | between <clock> and <clock>
         | (at | around | about | near) <clock>
         | (at | around) <num> <unit> into the drive
         | after <num> <unit>;
<span> = drive | trip | ride | minute | half | second half | first half;
<statword> = top | highest | maximum | max | lowest | minimum | average | mean | peak | largest | smallest;
<quantity> = {_alts(_QUANTITIES)};
<ask> = what was | what is | what's | tell me | show me | how about;
<stat> = [<ask>] [the | my] [<statword>] <quantity> [<window>] [in <speedunit>]
       | how fast (did i go | was i going | was i driving) [on average] [<window>]
       | how long was i (above | over | below | under | faster than | slower than) <num> <unit> [<window>];
<event> = did i brake hard [<window>]
        | (were there | did i have) any <eventname> [<window>]
        | how many times did i brake hard [<window>]
        | why did (the car | i | we) (brake | slow down) [hard] [<window>]
        | (what was | when was | when did i do) the hardest braking
        | when did i brake the hardest;
<eventname> = harsh events | hard braking | harsh braking | sharp turns | hard acceleration;
<health> = is the <sensor> sensor (healthy | working | working properly | ok | frozen)
         | (are there | were there) any dropouts in the <sensor> signal
         | is everything working [properly]
         | did any can messages stop
         | check the can bus;
<sensor> = {_alts(_SENSORS)};
<trip> = (summarize | recap) (this | my | the | the last) (trip | drive)
       | give me a (summary | recap) of (my | the | this) (trip | drive)
       | how was my (drive | trip)
       | how far did (i | we) (drive | go | travel) [<window>]
       | how long was (the | my) (drive | trip);
<travel> = (route | directions | navigate | take me | drive me) [from <place>] to <place> [via <place>]
         | (find | any | where is | where can i find) [a | the | some] <poi> [<along> <place>];
<poi> = fuel | gas station | charging station | charger | parking | food | restaurant | cafe;
<along> = near | on the way to | on the way from <place> to;
<place> = {place_rule};
<other> = what can you do | help;
"""


# IPA (as espeak-ng writes it) to the en-us acoustic model's ARPAbet phones; longest match first
_IPA = {
    "aɪ": "AY", "aʊ": "AW", "eɪ": "EY", "oʊ": "OW", "əʊ": "OW", "ɔɪ": "OY", "tʃ": "CH", "dʒ": "JH",
    "ai": "AY", "au": "AW", "ei": "EY", "oi": "OY", "ɔi": "OY", "ou": "OW", "ui": "UW IY",
    "a": "AA", "ɑ": "AA", "ɐ": "AH", "ɒ": "AA", "æ": "AE", "e": "EH", "ɛ": "EH", "i": "IY", "ɪ": "IH",
    "ɨ": "IH", "o": "OW", "ɔ": "AO", "u": "UW", "ʊ": "UH", "y": "UW", "ʏ": "UH", "ø": "ER", "œ": "ER",
    "ə": "AH", "ʌ": "AH", "ɜ": "ER", "ɚ": "ER", "ᵻ": "IH",
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "g": "G", "ɡ": "G", "f": "F", "v": "V", "ʋ": "V",
    "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH", "x": "HH", "ç": "HH", "m": "M", "n": "N",
    "ŋ": "NG", "ɲ": "N Y", "l": "L", "ɫ": "L", "ʎ": "L Y", "r": "R", "ɹ": "R", "ɾ": "R", "ʁ": "R", "ʀ": "R",
    "j": "Y", "w": "W", "θ": "TH", "ð": "DH", "c": "K", "q": "K", "ʝ": "Y",
}  # fmt: skip
_IPA_KEYS = sorted(_IPA, key=len, reverse=True)


def ipa_to_arpabet(ipa: str) -> str:
    """ARPAbet phones (space-separated) of one word's IPA; stress and length marks dropped, geminates merged.

    Raises:
        ValueError: if nothing of it maps to a phone.
    """
    text = "".join(ch for ch in ipa if ch not in "ˈˌːˑ̩̯̃‿.-_ ")
    phones: list[str] = []
    i = 0
    while i < len(text):
        for key in _IPA_KEYS:
            if text.startswith(key, i):
                for ph in _IPA[key].split():
                    if not phones or phones[-1] != ph:
                        phones.append(ph)
                i += len(key)
                break
        else:
            i += 1  # a mark without an English counterpart
    if not phones:
        raise ValueError(f"no phones in {ipa!r}")
    return " ".join(phones)


def ascii_words(text: str) -> list[str]:
    """Lower-case ASCII words of a name ("Töölön tori" -> ["toolon", "tori"])."""
    import unicodedata

    folded = unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()
    return [w for w in re.split(r"[^a-z']+", folded) if w]


def espeak_pronunciations(words: Sequence[str], language: str = "fi") -> dict[str, str]:
    """ARPAbet pronunciations of ``words`` as espeak-ng says them in ``language`` (one process)."""
    import shutil
    import subprocess

    exe = shutil.which("espeak-ng")
    if exe is None or not words:
        return {}
    text = "".join(f"{w}.\n" for w in words)
    done = subprocess.run(
        [exe, "-v", language, "-q", "--ipa"], input=text.encode(), capture_output=True, check=False
    )
    lines = [ln.strip() for ln in done.stdout.decode(errors="replace").splitlines() if ln.strip()]
    out: dict[str, str] = {}
    if len(lines) == len(words):
        for w, ipa in zip(words, lines, strict=True):
            try:
                out[w] = ipa_to_arpabet(ipa.split()[0] if " " not in w else ipa)
            except ValueError:
                continue
    return out


class CommandRecognizer:
    """Commands from 16 kHz audio through pocketsphinx and the grammar.

    Args:
        places: Place names for travel requests.
        pronounce: Give words the dictionary lacks espeak-ng's pronunciation in
            ``language`` (else places with such words are left out).
        language: espeak-ng's voice for the map's names (``fi`` for Helsinki).

    Attributes:
        skipped_places: Places left out (a word with no pronunciation).
        added_words: Words given espeak-ng pronunciations.
    """

    def __init__(self, places: Sequence[str] = (), *, pronounce: bool = True, language: str = "fi") -> None:
        from pocketsphinx import Decoder

        self._decoder = Decoder(samprate=SAMPLE_RATE_HZ, lm=None, loglevel="FATAL")
        d = self._decoder
        words = sorted({w for p in places for w in ascii_words(p)})
        missing = [w for w in words if d.lookup_word(w) is None]
        added = espeak_pronunciations(missing, language) if pronounce else {}
        items = sorted(added.items())
        for k, (w, phones) in enumerate(items):
            d.add_word(w, phones, k == len(items) - 1)  # one update, after the last
        self.added_words = sorted(added)
        known = [
            p for p in places if ascii_words(p) and all(d.lookup_word(w) is not None for w in ascii_words(p))
        ]
        self.skipped_places = sorted(set(places) - set(known))
        self.grammar = build_grammar([" ".join(ascii_words(p)) for p in known])
        d.add_jsgf_string("commands", self.grammar)
        d.activate_search("commands")

    def transcribe(self, samples: NDArrayFloat32) -> str:
        """The recognised command ("" when nothing in the grammar matches)."""
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm, False, True)
        d.end_utt()
        hyp = d.hyp()
        return "" if hyp is None else " ".join(hyp.hypstr.split())
