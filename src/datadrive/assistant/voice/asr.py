"""Offline speech recognition of commands: pocketsphinx with a JSGF grammar of the assistant's intents.

A grammar (rather than pocketsphinx's large-vocabulary language model, which
transcribes espeak speech poorly) restricts recognition to what the
assistant understands: the quantities, statistics, time expressions
(numbers as words, clock times as "nine fifteen"), events, health and trip
questions, and travel requests over place names that the pocketsphinx
dictionary can pronounce. The transcript then goes through the same intent
parser as typed questions. Words outside the dictionary (Finnish street
names) cannot be recognised: see ``docs/assistant.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from datadrive.assistant.voice.audio import SAMPLE_RATE_HZ
from datadrive.core.typing import NDArrayFloat32

__all__ = ["CommandRecognizer", "build_grammar"]

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


class CommandRecognizer:
    """Commands from 16 kHz audio through pocketsphinx and the grammar.

    Args:
        places: Place names for travel requests; those the dictionary cannot
            pronounce are left out (``skipped_places`` lists them).
    """

    def __init__(self, places: Sequence[str] = ()) -> None:
        from pocketsphinx import Decoder

        probe = _probe()
        known = [p for p in places if all(probe.lookup_word(w) is not None for w in _words(p))]
        self.skipped_places = sorted(set(places) - set(known))
        self.grammar = build_grammar(known)
        self._decoder = Decoder(samprate=SAMPLE_RATE_HZ, lm=None, loglevel="FATAL")
        self._decoder.add_jsgf_string("commands", self.grammar)
        self._decoder.activate_search("commands")

    def transcribe(self, samples: NDArrayFloat32) -> str:
        """The recognised command ("" when nothing in the grammar matches)."""
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm, False, True)
        d.end_utt()
        hyp = d.hyp()
        return "" if hyp is None else " ".join(hyp.hypstr.split())


def _words(place: str) -> list[str]:
    return [w for w in re.split(r"[^a-z']+", place.lower()) if w]


@lru_cache(maxsize=1)
def _probe() -> Any:
    from pocketsphinx import Decoder

    return Decoder(samprate=SAMPLE_RATE_HZ, lm=None, loglevel="FATAL")
