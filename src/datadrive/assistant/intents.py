"""The offline intent parser: plain English -> what to compute, deterministically.

No model, no network: a question is normalised (lower case, number words to
digits, unit spellings unified), then matched against vocabularies of
quantities (``"top speed"``, ``"how fast"``, ``"steering"``, ``"elevation"``),
statistics (``"highest"``, ``"average"``), events (``"brake hard"``,
``"harsh"``), health words (``"healthy"``, ``"dropouts"``, ``"frozen"``), trip
words (``"summarise"``, ``"how far"``) and travel words (``"route"``,
``"take me to"``, ``"charging"``), and time expressions:

* clock times: ``"around 08:35"``, ``"at 9:15:20"``, ``"at 9:15 pm"``,
  ``"between 09:14:50 and 09:15:20"``;
* times into the drive: ``"in the first 30 seconds"``, ``"during the last
  minute"``, ``"between 10 and 40 s"``, ``"after 2 minutes"``, ``"30 seconds
  in"``, ``"at the start"``, ``"in the second half"``.

The parser never guesses a number: thresholds and times are only ever the
question's own. What it cannot place it reports as ``kind="unknown"``, and
the assistant answers that it cannot tell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Intent", "TimeRef", "parse_question", "words_to_numbers"]

_UNITS_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS_WORDS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_NUMBER_WORD = re.compile(
    r"\b(?:(?P<tens>"
    + "|".join(_TENS_WORDS)
    + r")(?:[ -](?P<unit1>"
    + "|".join(list(_UNITS_WORDS)[1:10])
    + r"))?"
    r"|(?P<unit>" + "|".join(_UNITS_WORDS) + r"))(?:\s+(?P<hundred>hundred))?\b"
)


def words_to_numbers(text: str) -> str:
    """Number words to digits (``"thirty five"`` -> ``"35"``, ``"one hundred"`` -> ``"100"``)."""

    def repl(m: re.Match[str]) -> str:
        if m.group("tens"):
            value = _TENS_WORDS[m.group("tens")] + (_UNITS_WORDS[m.group("unit1")] if m.group("unit1") else 0)
        else:
            value = _UNITS_WORDS[m.group("unit")]
        if m.group("hundred"):
            value *= 100
        return str(value)

    out = _NUMBER_WORD.sub(repl, text)
    out = re.sub(r"\b(\d+)00 and (\d+)\b", lambda m: str(int(m.group(1)) * 100 + int(m.group(2))), out)
    out = re.sub(r"\b(\d)00 (\d{1,2})\b", lambda m: str(int(m.group(1)) * 100 + int(m.group(2))), out)
    out = re.sub(r"\bhalf (?:a|an) minute\b", "30 seconds", out)
    out = re.sub(r"\ba minute and a half\b", "90 seconds", out)
    out = re.sub(r"\b(?:a|an) (second|minute|hour)\b", r"1 \1", out)
    return out


_UNIT_SPELLINGS = (
    (
        r"\bkilomet(?:er|re)s? (?:per|an|a) hour\b|\bkm ?/ "
        r"?h\b|\bkmh\b|\bkph\b|\bkm per hour\b|\bkilometers an hour\b",
        "km/h",
    ),
    (r"\bmiles? (?:per|an|a) hour\b|\bmph\b|\bmi/h\b", "mph"),
    (r"\bmet(?:er|re)s? per second\b|\bm ?/ ?s\b|\bmps\b", "m/s"),
    (r"\bkilomet(?:er|re)s?\b|\bkms?\b", "km"),
    (r"\bmiles?\b", "mi"),
    (r"\bmet(?:er|re)s?\b", "m"),
    (r"\bdegrees?\b|\bdeg\b|°", "deg"),
    (r"(?<=\d )(?:seconds?|secs?)\b", "s"),
    (r"(?<=\d )(?:minutes?|mins?)\b", "min"),
    (r"(?<=\d )(?:hours?|hrs?)\b", "h"),
)


@dataclass(frozen=True)
class TimeRef:
    """A time the question names.

    Attributes:
        kind: ``"clock"`` (a wall-clock time of day) or ``"offset"`` (seconds into the drive).
        seconds: Seconds since midnight (clock) or since the drive's start (offset).
        precision_s: 60 for ``"08:35"``, 1 for ``"08:35:20"`` and offsets.
        text: The words it came from.
    """

    kind: str
    seconds: float
    precision_s: float
    text: str


@dataclass(frozen=True)
class Intent:
    """What a question asks.

    Attributes:
        kind: ``stat``, ``value_at``, ``threshold``, ``distance``, ``duration``,
            ``trip``, ``events``, ``ego_events`` (the mining layer's events of
            the vehicle: cut-ins, near misses, ...), ``brake_why``, ``health``, ``can``,
            ``capabilities``, ``route``, ``pois``, ``drives`` or ``unknown``.
        quantity: A key of :data:`~datadrive.assistant.tools.QUANTITIES`.
        stat: ``max``, ``min``, ``mean`` or None (all of them).
        start: Window start (None: the drive's start).
        end: Window end (None: the drive's end).
        point: A single time ("at 09:15", "around 08:35").
        around: Whether ``point`` was approximate ("around", "about").
        last_s: "the last N seconds": a window at the drive's end.
        threshold: A threshold value in ``threshold_unit``.
        threshold_unit: The unit the question used.
        above: Above (True) or below (False) the threshold.
        event_kind: ``hard_brake``, ``hard_acceleration``, ``sharp_turn`` or None (any);
            for ``ego_events``, a mining event type (``cut_in``, ``near_miss``, ...) or None.
        drive: ``"last"``, ``"first"`` or an index.
        unit: The unit the question asks for (``"km/h"``, ``"mph"``), if any.
        places: Place names (travel).
        category: A point-of-interest category (travel).
        numbers: Every number the question states (allowed in answers).
        text: The normalised question.
    """

    kind: str
    quantity: str | None = None
    stat: str | None = None
    start: TimeRef | None = None
    end: TimeRef | None = None
    point: TimeRef | None = None
    around: bool = False
    last_s: float | None = None
    threshold: float | None = None
    threshold_unit: str = ""
    above: bool = True
    event_kind: str | None = None
    drive: str | int = "last"
    unit: str | None = None
    places: tuple[str, ...] = ()
    category: str | None = None
    numbers: tuple[float, ...] = ()
    text: str = ""
    extra: dict[str, str] = field(default_factory=dict)


_QUANTITY_WORDS: tuple[tuple[str, str], ...] = (
    ("steering_torque", r"\b(?:steering )?torque\b|\bsteering effort\b|\bforce on the (?:steering )?wheel\b"),
    (
        "lateral_acceleration",
        r"\blateral (?:acceleration|accel|g|force)\b|\bsideways (?:acceleration|force|g)\b|\bcornering "
        r"(?:force|g|acceleration)\b|\bg ?force in (?:the )?(?:turns?|corners?)\b",
    ),
    ("imu_acceleration", r"\b(?:imu|accelerometer)\b"),
    (
        "yaw_rate",
        r"\byaw(?: rate)?\b|\bturn(?:ing)? rate\b|\brotation "
        r"rate\b|\bgyro(?:scope)?\b|\bhow fast (?:did )?(?:the car |i |we )?turn",
    ),
    ("wheel_speed", r"\bwheel speeds?\b|\bwheel sensors?\b|\bwheel ?speed sensors?\b"),
    ("gnss_speed", r"\b(?:gps|gnss) speed\b|\bspeed (?:from|by|according to) (?:the )?(?:gps|gnss)\b"),
    (
        "radar_distance",
        r"\bradar\b|\b(?:distance|gap|following distance|headway) "
        r"(?:to|from|behind) (?:the )?(?:car|vehicle|truck) "
        r"(?:ahead|in front)\b|\bfollowing distance\b|\blead (?:car|vehicle)\b|\bcar in front\b",
    ),
    (
        "steering_angle",
        r"\bsteering(?: wheel)?(?: angle)?\b|\bsteer(?:ed|ing)?\b|\bwheel angle\b|\bsteering sensor\b",
    ),
    ("altitude", r"\baltitude\b|\belevation\b|\bheight above sea\b|\bhow high\b|\babove sea level\b"),
    (
        "acceleration",
        r"\bacceleration\b|\baccelerat(?:e|ed|ing)\b|\bacce"
        r"l\b|\bdeceleration\b|\bdecelerat(?:e|ed|ing)\b|\bg "
        r"?force\b|\bgs\b",
    ),
    (
        "speed",
        r"\bspeed\b|\bfast(?:est)?\b|\bvelocity\b|\bkm/h\b|\bmph\b|\bm"
        r"/s\b|\bslow(?:est)?\b|\bspeedo(?:meter)?\b|\bquick(?:est)?\b",
    ),
)

_STAT_WORDS = (
    (
        "max",
        r"\btop\b|\bmax(?:imum)?\b|\bhighest\b|\bpeak\b|\bfastest\b|\blargest\b|\b"
        r"biggest\b|\bmost\b|\bgreatest\b|\bhardest\b|\bstrongest\b|\bhigh(?:est)? "
        r"point\b|\bhow high\b|\bmaximal\b|\bupper\b",
    ),
    (
        "min",
        r"(?<!\d )\bmin\b|\bminimum\b|\blowest\b|\bslowest\b|\bsmall"
        r"est\b|\bleast\b|\bweakest\b|\bclosest\b|\bshortest\b|\blow "
        r"point\b|\bminimal\b",
    ),
    ("mean", r"\baverage\b|\bmean\b|\btypical(?:ly)?\b|\bavg\b|\bon average\b|\busual\b"),
)

_TRAVEL = re.compile(
    r"\b(?:route|directions?|navigate|navigation|take me|drive "
    r"me|get me|bring me|how do i get|how (?:long|far) "
    r"(?:will it take |is it )?(?:to get )?to|way to|trip to|go to|going to|head(?:ing)? to|eta)\b"
)
_POI = (
    ("charging", r"\bcharg(?:e|er|ers|ing)\b|\bev (?:station|point)s?\b|\bplug in\b|\brecharge\b"),
    (
        "fuel",
        r"\bfuel\b|\bgas(?:oline)? station\b|\bpetrol\b|\bfill(?:ing)? "
        r"(?:up|station)\b|\bgas\b|\brefuel\b|\bdiesel\b",
    ),
    ("parking", r"\bpark(?:ing)?\b|\bcar ?park\b|\bgarage\b|\bplace to park\b"),
    (
        "food",
        r"\bfood\b|\beat\b|\brestaurants?\b|\bcaf(?:e|é)s?\b|\bcoffee\b"
        r"|\blunch\b|\bdinner\b|\bbreakfast\b|\bsnack\b|\bhungry\b|\bfast "
        r"food\b|\bburger\b",
    ),
)
_ALONG = re.compile(
    r"\balong\b|\bon the way\b|\ben route\b|\bnear(?:by)?\b|\bclose to\b|\baround\b|\bnext "
    r"to\b|\bby the\b|\bon my route\b|\bwhere can i\b|\bany\b|\bfind\b"
)


def _units_unified(text: str) -> str:
    for pattern, unit in _UNIT_SPELLINGS:
        text = re.sub(pattern, unit, text)
    return text


def normalise(question: str) -> str:
    """Lower case, number words as digits, one spelling per unit, single spaces."""
    text = question.strip().lower().replace("’", "'")
    text = re.sub(r"[?!,;]+", " ", text)
    text = re.sub(r"\.(?!\d)", " ", text)
    text = words_to_numbers(text)
    text = re.sub(r"\b(first|last|final|opening|closing) (second|minute|hour)\b", r"\1 1 \2", text)
    text = re.sub(r"(\d)(seconds?|secs?|minutes?|mins?|hours?|hrs?|s|h)\b", r"\1 \2", text)
    text = _units_unified(text)
    text = re.sub(r"(\d)\s*(km/h|mph|m/s|km|mi|m|s|min|h|deg)\b", r"\1 \2", text)
    return " ".join(text.split())


_CLOCK = re.compile(r"\b(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?(?:\s*(?P<ampm>am|pm|a m|p m))?\b")
_CLOCK_WORDS = re.compile(
    r"\b(?:at|around|about|near|by|approximately|roughly|circa) "
    r"(?P<h>\d{1,2})(?: (?P<m>\d{2}))?\s*(?P<ampm>am|pm|o'?clock)\b"
)
_DURATION = r"(?P<{n}>\d+(?:\.\d+)?) (?P<{u}>s|min|h)"


def _seconds(value: str, unit: str) -> float:
    return float(value) * {"s": 1.0, "min": 60.0, "h": 3600.0}[unit]


def _clock_ref(m: re.Match[str]) -> TimeRef:
    h = int(m.group("h"))
    minute = int(m.group("m") or 0)
    sec = m.groupdict().get("s")
    ampm = (m.group("ampm") or "").replace(" ", "")
    if ampm == "pm" and h < 12:
        h += 12
    if ampm == "am" and h == 12:
        h = 0
    precision = 1.0 if sec else 60.0 if m.groupdict().get("m") or ":" in m.group(0) else 3600.0
    return TimeRef("clock", h * 3600.0 + minute * 60.0 + float(sec or 0), precision, m.group(0))


def _times(text: str) -> tuple[TimeRef | None, TimeRef | None, TimeRef | None, bool, float | None]:
    """(start, end, point, around, last_s) from the question's time expressions."""
    clocks = [_clock_ref(m) for m in _CLOCK.finditer(text)]
    clocks += [_clock_ref(m) for m in _CLOCK_WORDS.finditer(text)]
    if not clocks:  # spoken clock times: "around nine fifteen" -> "around 9 15"
        for mm in re.finditer(
            r"\b(?:at|around|about|near|by|between|and|from|to|until) (?P<h>\d{1,2}) (?P<m>[0-5]\d)(?! "
            r"(?:s|min|h|km/h|mph|m/s|deg|m|km)\b)(?: (?P<s>[0-5]\d)(?! (?:s|min|h)\b))?",
            text,
        ):
            if int(mm.group("h")) < 24:
                h, mi = int(mm.group("h")), int(mm.group("m"))
                sec = mm.group("s")
                clocks.append(
                    TimeRef(
                        "clock", h * 3600.0 + mi * 60.0 + float(sec or 0), 1.0 if sec else 60.0, mm.group(0)
                    )
                )
    around = bool(re.search(r"\b(?:around|about|approximately|roughly|near|circa|close to)\b", text))
    if len(clocks) >= 2 and re.search(r"\bbetween\b|\bfrom\b|\bto\b|\buntil\b|\btill\b|\band\b", text):
        a, b = clocks[0], clocks[1]
        return (a, b, None, False, None) if a.seconds <= b.seconds else (b, a, None, False, None)
    if clocks:
        c = clocks[0]
        if re.search(r"\b(?:after|since|from)\b", text[: text.find(c.text)][-12:]):
            return c, None, None, False, None
        if re.search(r"\b(?:before|until|till|up to)\b", text[: text.find(c.text)][-12:]):
            return None, c, None, False, None
        return None, None, c, around or c.precision_s >= 60, None
    dur = r"(\d+(?:\.\d+)?) (s|min|h)"
    m = re.search(r"\bbetween (\d+(?:\.\d+)?)(?: (s|min|h))? and " + dur, text) or re.search(
        r"\bfrom (\d+(?:\.\d+)?)(?: (s|min|h))? (?:to|until|till) " + dur, text
    )
    if m:
        u2 = m.group(4)
        s0 = _seconds(m.group(1), m.group(2) or u2)
        s1 = _seconds(m.group(3), u2)
        lo, hi = min(s0, s1), max(s0, s1)
        return (
            TimeRef("offset", lo, 1.0, m.group(0)),
            TimeRef("offset", hi, 1.0, m.group(0)),
            None,
            False,
            None,
        )
    m = re.search(r"\b(?:first|opening|initial) " + dur, text) or re.search(r"\bfirst (s|min|h)\b", text)
    if m:
        value = _seconds(m.group(1), m.group(2)) if len(m.groups()) == 2 else _seconds("1", m.group(1))
        return None, TimeRef("offset", value, 1.0, m.group(0)), None, False, None
    m = re.search(r"\b(?:last|final|closing) " + dur, text) or re.search(
        r"\b(?:last|final) (s|min|h)\b", text
    )
    if m:
        value = _seconds(m.group(1), m.group(2)) if len(m.groups()) == 2 else _seconds("1", m.group(1))
        return None, None, None, False, value
    m = re.search(r"\b(?:after|past|beyond) " + dur, text)
    if m:
        return TimeRef("offset", _seconds(m.group(1), m.group(2)), 1.0, m.group(0)), None, None, False, None
    m = re.search(r"\b(?:before|within|until|in the first|up to) " + dur, text)
    if m:
        return None, TimeRef("offset", _seconds(m.group(1), m.group(2)), 1.0, m.group(0)), None, False, None
    m = re.search(
        r"\b(?:at|around|about|near) " + dur + r"(?: (?:in|into|after the start|from the start))?", text
    ) or re.search(dur + r" (?:in|into) (?:the )?(?:drive|trip|ride|journey|log|recording)?", text)
    if m:
        return None, None, TimeRef("offset", _seconds(m.group(1), m.group(2)), 1.0, m.group(0)), around, None
    if re.search(r"\bfirst half\b", text):
        return None, None, None, False, -0.5  # marker: first half (resolved against the drive)
    if re.search(r"\bsecond half\b|\blast half\b", text):
        return None, None, None, False, 0.5
    if re.search(r"\b(?:at|near) the (?:start|beginning)\b|\bwhen (?:i|we) (?:started|set off|left)\b", text):
        return None, TimeRef("offset", 10.0, 1.0, "at the start"), None, False, None
    if re.search(
        r"\b(?:at|near|towards?) the end\b|\bwhen (?:i|we) (?:arrived|finished|stopped the car)\b", text
    ):
        return None, None, None, False, 10.0
    return None, None, None, False, None


def _numbers(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in re.findall(r"(?<![\w.])\d+(?:\.\d+)?", text))


def _quantity(text: str) -> str | None:
    for key, pattern in _QUANTITY_WORDS:
        if re.search(pattern, text):
            return key
    return None


def _stat(text: str) -> str | None:
    for key, pattern in _STAT_WORDS:
        if re.search(pattern, text):
            return key
    return None


def _drive(text: str) -> str | int:
    if re.search(r"\b(?:first|earliest|oldest) (?:drive|trip|ride|journey|log)\b", text):
        return "first"
    if re.search(
        r"\b(?:previous|prior|second to last|penultimate) (?:drive|trip|ride|journey)\b|\bdrive before\b",
        text,
    ):
        return -2
    return "last"


def _unit(text: str) -> str | None:
    m = re.search(r"\bin (km/h|mph|m/s|km|mi|m|deg|g)\b", text)
    if m:
        return m.group(1)
    for unit in ("mph", "km/h"):
        if re.search(r"\b" + re.escape(unit) + r"\b", text) or unit in text:
            return unit
    return None


def _places(text: str) -> tuple[str, ...]:
    """Place names of a travel request: 'from A to B via C', 'to A then B'."""
    t = re.sub(r"^(?:hey |ok |okay )?(?:datadrive |data drive )?", "", text)
    t = re.sub(
        r"\b(?:please|can you|could you|would you|i want to|i'd like to|i would like to|show "
        r"me|give me|find|plan|what is|what's|how long|how far|will it take|does it take)\b",
        " ",
        t,
    )
    t = re.sub(
        r"\b(?:the )?(?:fastest |shortest |quickest |best )?(?:route|directions?|way|trip|drive|eta)\b",
        " ",
        t,
    )
    t = re.sub(
        r"\b(?:navigate|take me|drive me|get me|bring me|how do i get|go|going|head(?:ing)?)\b", " ", t
    )
    t = " ".join(t.split())
    parts: list[str] = []
    m = re.search(r"\bfrom (.+?) to (.+)$", t)
    if m:
        parts.append(m.group(1))
        rest = m.group(2)
    else:
        m = re.search(r"\bto (.+)$", t)
        if not m:
            near = re.search(r"\b(?:near|around|close to|next to|nearby|by|at) (?:the )?(.+)$", t)
            return (near.group(1).strip(" ."),) if near else ()
        rest = m.group(1)
    rest = re.sub(r"\b(?:and )?(?:show|find|list|any|with (?:the )?(?:eta|time))\b.*$", "", rest)
    via: list[str] = []
    m = re.search(r"^(.*?)\s+(?:via|through|by way of|stopping at|with a stop at|passing)\s+(.+)$", rest)
    if m:  # "to X via Y": Y comes before X
        rest = m.group(1)
        via = [v for v in re.split(r"\b(?:and|then)\b|,", m.group(2)) if v.strip()]
        parts += via
        via = []
    for piece in re.split(r"\b(?:then|and then|and|and on to|on to)\b|,", rest):
        piece = re.sub(r"^\s*(?:to|at|the)\s+", "", piece).strip(" .")
        if piece:
            parts.append(piece)
    return tuple(re.sub(r"^(?:the)\s+", "", p.strip()) for p in parts if p.strip())


# the mining layer's event types a question names (checked in order; "" = any mined event)
_MINED = (
    ("cut_in", r"\bcut(?:s|ting)? (?:in|me off|into my lane|in front)\b|\bcut-?ins?\b"),
    ("near_miss", r"\bnear[- ]?miss(?:es)?\b|\bclose calls?\b|\balmost (?:hit|crashed|collided)\b"),
    (
        "vru_crossing",
        r"\b(?:pedestrians?|cyclists?|bikes?|people|someone|anyone) "
        r"(?:\w+ )?cross\w*\b|\bvrus?\b|\bjaywalk\w*\b",
    ),
    ("lane_change", r"\blane changes?\b|\bchang\w* lanes?\b"),
    ("stopped_in_lane", r"\b(?:stopped|parked|stationary) (?:cars?|vehicles?|trucks?) in (?:the|my) lane\b"),
    ("ego_speeding", r"\bspeeding\b|\b(?:over|above) the speed limit\b"),
    ("unprotected_turn", r"\bunprotected (?:left )?turns?\b"),
    ("dense_traffic", r"\b(?:dense|heavy) traffic\b|\btraffic jams?\b"),
    (
        "",
        r"\bmin(?:ed|ing) events?\b|\bevents? (?:from|in|of) (?:the )?mining\b|\btagged events?\b|"
        r"\bdriving events\b|\bscenario events\b|\bevents? in my scenarios\b",
    ),
)


def _mined_kind(text: str) -> str | None:
    """A mining event type the question asks about, ``""`` for any, None when it names none."""
    for kind, pattern in _MINED:
        if re.search(pattern, text):
            return kind
    return None


def parse_question(question: str) -> Intent:
    """Parse one question (see the module doc)."""
    text = normalise(question)
    numbers = _numbers(text)
    base: dict[str, Any] = {"text": text, "numbers": numbers, "drive": _drive(text), "unit": _unit(text)}
    if not text:
        return Intent("unknown", **base)
    if re.search(
        r"\bwhat (?:can|do) you (?:do|answer|know|tell)\b|^help\b|\bwhat "
        r"questions\b|\bwhat can i ask\b|\bhow can you help\b|\bwhat are you able\b",
        text,
    ):
        return Intent("capabilities", **base)
    if re.search(
        r"\bwhich (?:drives|trips)\b|\blist (?:my |the )?(?:drives|trips)\b|\bhow many (?:drives|trips)\b",
        text,
    ):
        return Intent("drives", **base)

    def original_case(places: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for p in places:
            m = re.search(r"\b" + re.escape(p).replace(r"\ ", r"\s+") + r"\b", question, re.IGNORECASE)
            out.append(m.group(0) if m else p)
        return tuple(out)

    category = next((cat for cat, pattern in _POI if re.search(pattern, text)), None)
    travel = bool(_TRAVEL.search(text)) and not re.search(r"\b(?:did|was|were) (?:i|we|the car|my)\b", text)
    if category and not re.search(r"\b(?:did|was|were|my) ", text) and (travel or _ALONG.search(text)):
        return Intent("pois", category=category, places=original_case(_places(text)), **base)
    if travel:
        return Intent("route", places=original_case(_places(text)), category=category, **base)

    start, end, point, around, last_s = _times(text)
    times: dict[str, Any] = {"start": start, "end": end, "point": point, "around": around, "last_s": last_s}
    quantity = _quantity(text)

    if re.search(
        r"\bcan (?:bus|messages?|frames?|ids?|traffic|network)\b|\bbus "
        r"messages?\b|\b(?:messages?|frames?) (?:stop|drop|disappear)",
        text,
    ) or (
        re.search(r"\bcan\b", text)
        and re.search(r"\b(?:bus|message|frame|stop|rate)\b", text)
        and re.search(r"\bCAN\b", question)
    ):
        return Intent("can", **base)
    health = re.search(
        r"\bhealth(?:y)?\b|\bworking\b|\bwork(?:s|ing)? "
        r"(?:properly|correctly|right|ok|fine)\b|\bfault(?:y|s)?\b|\bbroken\b|\bdropouts?\b|\bdrop(?:ped)? "
        r"out\b|\bfrozen\b|\bstuck\b|\bglitch(?:es|y)?\b|\bmalfunction\w*\b|\bdiagnos\w*\b|\bout of "
        r"range\b|\bfailing\b|\bfailed\b|\bok(?:ay)?\b.*\bsenso"
        r"r\b|\bsensor\b.*\b(?:ok(?:ay)?|fine|good|right)\b|\bany "
        r"(?:problems?|issues?) with\b|\bsignal quality\b|\breliab\w+\b|\bplausib\w+\b",
        text,
    )
    if health:
        return Intent("health", quantity=quantity, **base)

    brake_words = (
        r"\bbrak(?:e|ed|es|ing)\b|\bslow(?:ed)? down\b|\bslammed\b|\bstopped suddenly\b|\bdecelerat\w+\b"
    )
    if re.search(r"\bwhy\b|\bwhat (?:made|caused|happened)\b|\bexplain\b|\breason\b|\bcause\b", text) and (
        re.search(brake_words, text) or (point is not None and re.search(r"\bwhat happened\b", text))
    ):
        return Intent("brake_why", **base, **times)

    if re.search(
        r"\b(?:hardest|strongest|heaviest|sharpest|most "
        r"abrupt|biggest|worst) (?:brak\w*|decelerat\w*|stop)|\bbrak\w* "
        r"(?:the )?(?:hardest|most|strongest|heaviest)\b|\bdecelerat\w* "
        r"(?:the )?most\b|\b(?:max(?:imum)?|peak) (?:braking|deceleration)\b",
        text,
    ):
        return Intent("stat", quantity="acceleration", stat="min", extra={"as": "braking"}, **base, **times)
    mined = _mined_kind(text)
    if mined is not None:
        return Intent("ego_events", event_kind=mined or None, **base, **times)
    event_kind = None
    if re.search(
        r"\bhard(?:est)? brak\w*\b|\bbrak\w* hard\b|\bharsh(?:ly)? "
        r"brak\w*\b|\bbrak\w* harsh(?:ly)?\b|\bsudden(?:ly)? "
        r"brak\w*\b|\bslam\w* (?:on )?the brakes?\b|\bemergency brak\w*\b|\bbrak\w* "
        r"(?:suddenly|sharply|abruptly|aggressively)\b|\bhard stops?\b",
        text,
    ):
        event_kind = "hard_brake"
    elif re.search(
        r"\bhard acceleration\b|\baccelerat\w* (?:hard|harshly|aggressively|quickly)\b|\bharsh "
        r"acceleration\b|\bjack ?rabbit\b|\bfloored\b|\bfloor(?:ed)? it\b|\bpunched it\b",
        text,
    ):
        event_kind = "hard_acceleration"
    elif re.search(
        r"\bsharp (?:turns?|corners?|curves?)\b|\bturn\w* "
        r"(?:sharply|hard|aggressively)\b|\bcorner\w* (?:hard|aggressively|fast)\b|\bswerv\w*\b",
        text,
    ):
        event_kind = "sharp_turn"
    if event_kind or re.search(
        r"\bharsh\b|\bevents?\b|\bincidents?\b|\baggressive(?:ly)?\b|\bdangerous\b|\brisky\b|\bnear "
        r"miss\b|\bhow (?:safely|smoothly|well) did i drive\b|\bdriving style\b",
        text,
    ):
        if (
            event_kind == "hard_brake"
            and re.search(r"\bhardest\b|\bstrongest\b|\bmost\b", text)
            and not re.search(r"\bhow many\b", text)
        ):
            return Intent(
                "stat", quantity="acceleration", stat="min", extra={"as": "braking"}, **base, **times
            )
        return Intent("events", event_kind=event_kind, **base, **times)

    if re.search(
        r"\bsumm\w*\b|\boverview\b|\brecap\b|\bhow was "
        r"(?:my|the|this|that) (?:drive|trip|ride|journey)\b|\btell "
        r"me about (?:my|the|this|that) "
        r"(?:drive|trip|ride|journey)\b|\breport\b|\bstats\b|\bstatistics\b",
        text,
    ):
        return Intent("trip", **base)

    threshold = re.search(
        r"\b(?P<dir>above|over|faster than|more than|higher "
        r"than|exceed(?:ing|ed)?|beyond|at least|below|under|slower "
        r"than|less than|lower than)\s+(?P<num>-?\d+(?:\.\d+)?)\s*(?P<unit>km/h|mph|m/s|deg|m)?",
        text,
    )
    if threshold and re.search(
        r"\bhow (?:long|much time|many seconds|many minutes)\b|\bduration\b|\btime "
        r"(?:spent|above|over|below|under)\b|\bfor how long\b|\bshare\b|\bpercent",
        text,
    ):
        above = threshold.group("dir") in (
            "above",
            "over",
            "faster than",
            "more than",
            "higher than",
            "exceed",
            "exceeding",
            "exceeded",
            "beyond",
            "at least",
        )
        q = quantity or "speed"
        unit = threshold.group("unit") or base["unit"] or ("m/s" if q == "speed" else "")
        return Intent(
            "threshold",
            quantity=q,
            threshold=float(threshold.group("num")),
            threshold_unit=str(unit),
            above=above,
            **{**base, "unit": threshold.group("unit") or base["unit"]},
            **times,
        )
    if re.search(
        r"\bhow long (?:was|were|did) (?:i|we|the car) (?:stopped|stop|standing|stand "
        r"still|idle|idling|stationary|at a standstill)\b|\btime "
        r"(?:spent )?(?:stopped|standing still|idling)\b",
        text,
    ):
        return Intent(
            "threshold",
            quantity="speed",
            threshold=0.5,
            threshold_unit="m/s",
            above=False,
            extra={"as": "stopped"},
            **base,
            **times,
        )
    if (
        re.search(
            r"\bhow (?:far|much distance)\b|\bdistance\b|\bmileage\b|\bhow many "
            r"(?:km|mi|m)\b|\bkm did\b|\bmiles did\b|\bcovered\b|\btravel(?:l)?ed\b",
            text,
        )
        and quantity in (None, "speed")
        and not re.search(r"\bradar\b|\bahead\b|\bin front\b", text)
    ):
        return Intent("distance", **base, **times)
    if re.search(
        r"\bhow long (?:was|did|were|is)\b.*\b(?:drive|trip|ride|journey|log|recording)\b|\bduration\b|\bhow "
        r"long did (?:i|we) drive\b|\bhow much time\b",
        text,
    ) and quantity in (None, "speed"):
        return Intent("duration", **base)

    if quantity is not None:
        stat = _stat(text)
        if quantity == "speed" and stat is None and re.search(r"\bhow fast\b", text) and point is None:
            stat = "max"
        if (
            quantity == "acceleration"
            and re.search(r"\bdecelerat\w+\b|\bbrak\w+\b", text)
            and stat in (None, "max")
        ):
            stat, extra = "min", {"as": "braking"}
        else:
            extra = {}
        if point is not None and not around and stat is None:
            return Intent("value_at", quantity=quantity, extra=extra, **base, **times)
        if point is not None and point.precision_s <= 1 and stat is None:
            return Intent("value_at", quantity=quantity, extra=extra, **base, **times)
        return Intent("stat", quantity=quantity, stat=stat, extra=extra, **base, **times)
    if re.search(r"\bbrak\w*\b", text):
        return Intent("events", event_kind="hard_brake", **base, **times)
    return Intent("unknown", **base)
