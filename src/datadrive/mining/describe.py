"""Plain English to query expressions, offline and deterministic.

:func:`describe` turns a description such as *"a pedestrian crossing in
front of a stopped bus"* into an expression of the query language
(``pedestrian and crossing(bus and stopped)``). It works in two steps:

1. **Lexing.** The text is lower-cased and split into words; the longest
   phrase of the lexicon at each position becomes one lexeme: an object
   category (with synonyms and plurals: *person*, *pedestrians*, *SUV*), a
   motion or state (*stopped*, *turning left*, *changing lanes*, *hard
   braking*), a map place (*at an intersection*, *in the bike lane*, *on the
   side of the road*), a relation that takes an object (*near*, *in front
   of*, *behind*, *following*, *heading toward*, *crossing in front of*),
   a count (*three*, *at least 2*, *a group of*), a distance, speed or
   duration with its unit (*within 10 meters*, *faster than 30 km/h*, *for
   more than 3 seconds*), negation (*not*, *no*, *without*), the ego (*the
   ego vehicle*, *our car*, *we*), time words (*while*, *before*, *after*)
   and connectives. Articles, auxiliaries and pronouns are dropped.
2. **Parsing.** A noun phrase is ``[count] modifier* category modifier*``;
   the first noun phrase is the subject, modifiers before or after it
   restrict it, and a relation's object is the noun phrase that follows it
   (with its own modifiers, until an ``and``/``that``/``which`` returns to
   the subject). ``while``/``before``/``after`` join two clauses with
   ``during``/``before``/``after``. A count on the subject becomes
   ``at_least``; on a relation's object, its ``min``.

Words no rule places raise :class:`~datadrive.errors.DescriptionError`
naming them, rather than being silently ignored. With no category the
subject is ``any`` object.

The vocabulary is :data:`LEXICON`-driven and documented in ``docs/mining.md``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from datadrive.errors import DescriptionError, QueryError
from datadrive.mining.query import And, Call, Expr, Name, Not, Number, Or, to_text
from datadrive.mining.vocabulary import bind

__all__ = ["LEXICON", "Translation", "describe"]

# --------------------------------------------------------------------------- lexemes


@dataclass(frozen=True)
class _Lex:
    kind: str  # CAT MOD REL WITH NOT COUNT DIST SPEED DUR AND OR TIME DIRWORD EGO SELF
    value: object = None
    text: str = ""
    extra: dict[str, object] = field(default_factory=dict)


def _n(name: str) -> Name:
    return Name(name)


def _c(name: str, *args: object, **kwargs: object) -> Call:
    def val(v: object) -> object:
        if isinstance(v, str):
            return Name(v)
        return v

    return Call(
        name,
        tuple(val(a) for a in args),  # type: ignore[misc]
        tuple((k, val(v)) for k, v in kwargs.items()),  # type: ignore[misc]
    )


def _m(v: float) -> Number:
    return Number(float(v), "m")


def _verb(base: str, ing: str | None = None, past: str | None = None, third: str | None = None) -> list[str]:
    """A verb's forms: base, -s, -ing, -ed (irregulars given)."""
    stem = base[:-1] if base.endswith("e") and not base.endswith("ee") else base
    return [base, third or base + "s", ing or stem + "ing", past or stem + "ed"]


CATEGORY_WORDS: dict[str, str] = {}
for _cat, _names in {
    "any": "object objects thing things anything something everything agent agents actor actors",
    "vehicle": "vehicle vehicles automobile automobiles",
    "car": "car cars sedan sedans suv suvs van vans pickup pickups hatchback hatchbacks taxi taxis cab cabs "
    "minivan minivans jeep jeeps",
    "truck": "truck trucks lorry lorries semi semis",
    "bus": "bus buses busses coach coaches",
    "large_vehicle": "",
    "trailer": "trailer trailers",
    "motorcycle": "motorcycle motorcycles motorbike motorbikes moped mopeds",
    "bicycle": "bicycle bicycles bike bikes",
    "cyclist": "cyclist cyclists bicyclist bicyclists biker bikers rider riders motorcyclist motorcyclists "
    "scooter scooters scooterist",
    "pedestrian": "pedestrian pedestrians person persons people walker walkers man men woman women child "
    "children kid kids human humans jaywalker jaywalkers ped peds",
    "animal": "animal animals dog dogs deer cat cats",
    "cone": "cone cones",
    "barrier": "barrier barriers bollard bollards barrel barrels",
    "sign": "sign signs",
    "stroller": "stroller strollers pram prams pushchair pushchairs",
    "wheelchair": "wheelchair wheelchairs",
    "static_object": "obstacle obstacles debris",
    "vru": "",
}.items():
    for _w in _names.split():
        CATEGORY_WORDS[_w] = _cat

_MULTI_CATEGORIES: dict[str, Expr] = {
    "traffic cone": _n("cone"),
    "traffic cones": _n("cone"),
    "construction cone": _n("cone"),
    "construction cones": _n("cone"),
    "construction barrel": _n("barrier"),
    "school bus": _n("bus"),
    "school buses": _n("bus"),
    "city bus": _n("bus"),
    "box truck": _n("truck"),
    "box trucks": _n("truck"),
    "pickup truck": _n("car"),
    "pickup trucks": _n("car"),
    "semi truck": _n("truck"),
    "tractor trailer": _n("truck"),
    "large vehicle": _n("large_vehicle"),
    "large vehicles": _n("large_vehicle"),
    "big vehicle": _n("large_vehicle"),
    "big vehicles": _n("large_vehicle"),
    "heavy vehicle": _n("large_vehicle"),
    "heavy vehicles": _n("large_vehicle"),
    "passenger car": _n("car"),
    "passenger cars": _n("car"),
    "vulnerable road user": _n("vru"),
    "vulnerable road users": _n("vru"),
    "road user": Or((_n("vehicle"), _n("vru"), _n("ego"))),
    "road users": Or((_n("vehicle"), _n("vru"), _n("ego"))),
    "stop sign": _n("sign"),
    "stop signs": _n("sign"),
    "large truck": _n("truck"),
    "large trucks": _n("truck"),
    "big truck": _n("truck"),
    "big trucks": _n("truck"),
    "heavy truck": _n("truck"),
    "heavy trucks": _n("truck"),
    "emergency vehicle": _n("emergency_vehicle"),
    "emergency vehicles": _n("emergency_vehicle"),
    "police car": _n("emergency_vehicle"),
    "police cars": _n("emergency_vehicle"),
    "ambulance": _n("emergency_vehicle"),
    "ambulances": _n("emergency_vehicle"),
    "fire truck": _n("emergency_vehicle"),
    "fire trucks": _n("emergency_vehicle"),
    "fire engine": _n("emergency_vehicle"),
    "fire engines": _n("emergency_vehicle"),
}

EGO_PHRASES = (
    "ego vehicle",
    "ego car",
    "ego",
    "the av",
    "av",
    "autonomous vehicle",
    "self driving car",
    "self driving vehicle",
    "our car",
    "our vehicle",
    "host vehicle",
    "subject vehicle",
    "we",
    "us",
    "i",
    "me",
    "my car",
)

# state and motion modifiers -> expressions (applied to the noun phrase they modify)
_MODS: dict[str, Expr] = {}


def _mod(expr: Expr, *phrases: str) -> None:
    for p in phrases:
        _MODS[p] = expr


_mod(
    _n("stopped"),
    *_verb("stop", ing="stopping", past="stopped", third="stops"),
    "halted",
    "standing still",
    "not moving",
    "at rest",
    "idle",
    "idling",
    "waiting",
    "standing",
    "stands",
    "stand",
    "motionless",
    "still",
    "immobile",
    "at a standstill",
    "come to a stop",
    "came to a stop",
    "stationary",
)
_mod(_n("stationary"), "parked", "park", "parks", "parking")
_mod(
    _n("moving"),
    *_verb("move"),
    "in motion",
    *_verb("drive", ing="driving", past="driven", third="drives"),
    "drove",
    "travelling",
    "traveling",
    "travels",
    "going",
    "walking",
    "walks",
    "walk",
    "riding",
    "rides",
    "cycling",
    "active",
)
_mod(
    _n("reversing"),
    *_verb("reverse", ing="reversing", past="reversed", third="reverses"),
    "backing up",
    "backs up",
    "backed up",
    "backing out",
    "backs out",
    "in reverse",
    "driving backwards",
    "driving backward",
    "moving backwards",
    "moving backward",
    "going backwards",
    "going backward",
)
_mod(
    And((_n("moving"), _c("speed", max=Number(2.0, "m/s")))),
    "slow",
    "slowly",
    "crawling",
    "creeping",
    "slow moving",
)
_mod(
    _c("speed", min=Number(10.0, "m/s")),
    "fast",
    "quickly",
    "at high speed",
    "high speed",
    "fast moving",
    "speeding",
)
_mod(_c("speed", min=Number(2.5, "m/s")), "running", "runs", "run", "jogging", "sprinting")
_mod(_n("accelerating"), *_verb("accelerate"), "speeding up", "speeds up", "speed up", "picking up speed")
_mod(
    _n("braking"),
    *_verb("brake"),
    "slowing down",
    "slows down",
    "slow down",
    "decelerating",
    "decelerates",
    "slowing",
    "slows",
)
_mod(
    _c("event", "hard_braking"),
    "hard braking",
    "braking hard",
    "brakes hard",
    "brake hard",
    "sudden braking",
    "braking suddenly",
    "emergency braking",
    "slamming on the brakes",
    "slams on the brakes",
    "harsh braking",
    "braking sharply",
)
_mod(
    _c("event", "hard_acceleration"),
    "accelerating hard",
    "hard acceleration",
    "rapid acceleration",
    "accelerating rapidly",
    "accelerating quickly",
    "harsh acceleration",
    "flooring it",
)
_mod(
    _c("turning", "left"),
    "turning left",
    "turns left",
    "turn left",
    "turned left",
    "making a left turn",
    "makes a left turn",
    "make a left turn",
    "left turn",
    "left turning",
    "left-turning",
    "taking a left",
    "turning to the left",
)
_mod(
    _c("turning", "right"),
    "turning right",
    "turns right",
    "turn right",
    "turned right",
    "making a right turn",
    "makes a right turn",
    "make a right turn",
    "right turn",
    "right turning",
    "taking a right",
    "turning to the right",
)
_mod(
    _n("turning"),
    *_verb("turn"),
    "making a turn",
    "makes a turn",
    "make a turn",
    "u turn",
    "u turning",
    "making a u turn",
    "cornering",
)
_mod(
    _c("changing_lanes", "left"),
    "changing lanes to the left",
    "changing to the left lane",
    "moving into the left lane",
    "changes lanes to the left",
    "lane change to the left",
    "left lane change",
)
_mod(
    _c("changing_lanes", "right"),
    "changing lanes to the right",
    "changing to the right lane",
    "moving into the right lane",
    "changes lanes to the right",
    "lane change to the right",
    "right lane change",
)
_mod(
    _n("changing_lanes"),
    "changing lanes",
    "changes lanes",
    "change lanes",
    "changed lanes",
    "changing lane",
    "lane change",
    "lane changing",
    "switching lanes",
    "switches lanes",
    "merging",
    "merges",
    "merge",
    "weaving",
)
_mod(_c("event", "cut_in"), "cutting in", "cuts in", "cut in", "cutting in front", "cuts in front")
_mod(_c("event", "swerve"), *_verb("swerve"), "evasive manoeuvre", "evasive maneuver", "dodging")
_mod(
    _c("event", "near_miss"),
    "near miss",
    "near misses",
    "near collision",
    "almost colliding",
    "almost collides",
    "almost hitting",
    "close call",
    "nearly colliding",
    "nearly hitting",
    "conflict",
)
_mod(
    _c("event", "stopped_in_lane"),
    "blocking the lane",
    "blocks the lane",
    "blocking a lane",
    "blocks a lane",
    "blocking the road",
    "blocking the street",
    "blocking traffic",
    "blocks traffic",
    "double parked",
    "double parking",
    "stalled",
    "broken down",
)
_mod(
    _c("event", "high_lateral_acceleration"),
    "sharp turn",
    "turning sharply",
    "turning hard",
    "cornering hard",
)
_mod(And((_n("on_road"), Not(_n("at_crosswalk")))), "jaywalking", "jaywalks", "jaywalk")
_mod(
    _c("event", "unprotected_turn"),
    "unprotected turn",
    "unprotected turns",
    "unprotected left turn",
    "unprotected left turns",
    "unprotected left",
    "turning across oncoming traffic",
    "turns across oncoming traffic",
    "across oncoming traffic",
    "across traffic",
)
# waiting at the kerb to cross: standing still beside the road
_mod(And((_n("stopped"), _n("road_side"))), "waiting to cross", "waits to cross", "about to cross")
_mod(
    And((_n("on_road"), _n("moving"))),
    "crossing the road",
    "crossing the street",
    "crosses the road",
    "crosses the street",
    "crossing the lane",
    "crossing traffic",
    "cross the road",
    "cross the street",
)

# places: map predicates
_PLACES: dict[str, Expr] = {}


def _place(expr: Expr, *phrases: str) -> None:
    for p in phrases:
        _PLACES[p] = expr


_place(
    _n("at_intersection"),
    "at an intersection",
    "at the intersection",
    "in an intersection",
    "in the intersection",
    "through an intersection",
    "through the intersection",
    "on an intersection",
    "inside the intersection",
    "at a junction",
    "at the junction",
    "in a junction",
    "in the junction",
    "at a crossroads",
    "at the crossroads",
    "intersection",
    "junction",
)
_place(
    _n("near_intersection"),
    "near an intersection",
    "near the intersection",
    "approaching an intersection",
    "approaching the intersection",
    "close to an intersection",
    "close to the intersection",
    "near a junction",
    "before the intersection",
)
_place(
    _n("at_crosswalk"),
    "at a crosswalk",
    "at the crosswalk",
    "on a crosswalk",
    "on the crosswalk",
    "in a crosswalk",
    "in the crosswalk",
    "at a pedestrian crossing",
    "on a pedestrian crossing",
    "at the pedestrian crossing",
    "on the pedestrian crossing",
    "at a zebra crossing",
    "on a zebra crossing",
    "in the zebra crossing",
    "crosswalk",
    "crosswalks",
)
_place(
    _n("on_road"),
    "on the road",
    "in the road",
    "on the street",
    "in the street",
    "on the roadway",
    "in the roadway",
    "in traffic",
    "into the road",
    "onto the road",
    "into the street",
    "onto the street",
    "into traffic",
    "through traffic",
    "on the highway",
    "onto the highway",
    "on the freeway",
    "on the motorway",
    "in a lane",
    "in the lane",
    "in a travel lane",
    "in the travel lane",
    "on a lane",
    "in the middle of the road",
    "in the middle of the street",
    "on road",
    "in lane",
    "in the carriageway",
    "on the carriageway",
)
_place(
    _c("lane_type", "bike"),
    "in a bike lane",
    "in the bike lane",
    "on a bike lane",
    "on the bike lane",
    "in a cycle lane",
    "in the cycle lane",
    "in a bicycle lane",
    "in the bicycle lane",
    "bike lane",
)
_place(
    _c("lane_type", "bus"), "in a bus lane", "in the bus lane", "on a bus lane", "on the bus lane", "bus lane"
)
_place(
    Not(_n("in_drivable_area")),
    "on the sidewalk",
    "on a sidewalk",
    "on the pavement",
    "on the footpath",
    "off road",
    "off the road",
    "on the curb",
    "on the kerb",
    "sidewalk",
)
_place(_n("in_drivable_area"), "in the drivable area", "in a drivable area", "on drivable area")
_place(
    And((_n("in_drivable_area"), Not(_n("on_road")))),
    "in a parking lot",
    "in the parking lot",
    "in a car park",
    "in the car park",
    "in a parking area",
    "in a driveway",
    "in the driveway",
    "into a driveway",
    "into the driveway",
    "out of a driveway",
    "out of the driveway",
)
_place(
    _n("red_light"),
    "at a red light",
    "at the red light",
    "at a red traffic light",
    "at the red traffic light",
    "at a red signal",
    "at a red",
    "approaching a red light",
    "before a red light",
    "facing a red light",
    "red light",
    "red lights",
)
_mod(
    _n("wrong_way"),
    "wrong way",
    "the wrong way",
    "driving the wrong way",
    "going the wrong way",
    "wrong way driver",
    "wrong way driving",
    "against traffic",
    "against the traffic",
    "against the flow of traffic",
    "on the wrong side of the road",
    "in the wrong lane",
    "ghost driver",
)
# queued: standing behind another standing vehicle close ahead
_mod(
    And((_n("stopped"), _c("has_ahead", And((_n("vehicle"), _n("stopped"))), within=_m(15.0)))),
    "queued",
    "queueing",
    "queuing",
    "in a queue",
    "in the queue",
    "waiting in traffic",
    "stuck in traffic",
    "in a traffic jam",
)
# stepping out: a road user on foot moving onto the road
_mod(
    And((_n("moving"), _n("on_road"))),
    "stepping out",
    "steps out",
    "stepped out",
    "stepping into the road",
    "steps into the road",
    "stepping onto the road",
    "emerging",
    "emerges",
    "coming out",
    "comes out",
    "darting out",
    "darts out",
)
_mod(
    _n("running_red_light"),
    "running a red light",
    "running the red light",
    "runs a red light",
    "ran a red light",
    "run a red light",
    "running red lights",
    "jumping the red light",
    "jumping a red light",
    "through a red light",
    "through the red light",
    "red light violation",
)
_mod(
    # "turning right on red": every passage of the stop line while red, the lawful turns included
    _c("running_red_light", turn_on_red="none"),
    "on red",
    "on a red",
)
_place(
    _n("at_stop_line"),
    "at a stop sign",
    "at the stop sign",
    "at a stop line",
    "at the stop line",
    "before a stop line",
    "a stop line",
    "the stop line",
    "stop line",
    "stop lines",
    "near a stop sign",
    "near the stop sign",
)
_place(
    _n("road_side"),
    "on the side of the road",
    "at the side of the road",
    "by the side of the road",
    "on the roadside",
    "at the roadside",
    "by the roadside",
    "on the shoulder",
    "at the curb",
    "at the kerb",
    "by the curb",
    "by the kerb",
    "along the curb",
    "along the kerb",
    "along the road",
    "along the street",
    "alongside the road",
    "roadside",
    "curbside",
    "kerbside",
)

# relations: name -> (predicate, within-keyword or None)
_RELATIONS: dict[str, tuple[str, dict[str, object]]] = {}


def _rel(pred: str, *phrases: str, **params: object) -> None:
    for p in phrases:
        _RELATIONS[p] = (pred, params)


_rel(
    "near",
    "near",
    "near to",
    "close to",
    "nearby",
    "next to",
    "beside",
    "besides",
    "alongside",
    "by",
    "around",
    "in the vicinity of",
    "in proximity to",
    "close by",
    "adjacent to",
    "surrounded by",
)
# "far from X" is "not near X" (default distance): nothing measures "far" better than near's bound
_rel("near", "far from", "far away from", "away from", "distant from", "apart from", negated=True)
_rel("ahead_of", "in front of", "ahead of", "preceding", "leading")
_rel("behind", "behind", "in back of", "at the back of", "trailing")
_rel("left_of", "to the left of", "on the left of", "left of", "on the left side of")
_rel("right_of", "to the right of", "on the right of", "right of", "on the right side of")
_rel("following", "following", "follows", "follow", "followed", "tailgating", "tailgates", "driving behind")
_rel("followed_by", "followed by", "being followed by", "tailgated by")
_rel("facing", "facing", "faces", "looking at", "looking toward", "looking towards")
_rel(
    "heading_toward",
    "heading toward",
    "heading towards",
    "moving toward",
    "moving towards",
    "driving toward",
    "driving towards",
    "walking toward",
    "walking towards",
    "approaching",
    "approaches",
    "going toward",
    "going towards",
    "coming toward",
    "coming towards",
    "heading at",
    "running toward",
)
_rel(
    "crossing",
    "crossing in front of",
    "crosses in front of",
    "crossing the path of",
    "crosses the path of",
    "crossing in front",
    "cutting across the path of",
    "crossing",
)
_rel("overtaking", "overtaking", "overtakes", "overtook", "passing", "passes", "passed", "going past")
_rel(
    "cut_in_front",
    "cutting in front of",
    "cuts in front of",
    "cut in front of",
    "cutting off",
    "cuts off",
    "cut off",
    "cutting in ahead of",
    "cuts in ahead of",
)
_rel("crossed_by", "crossed by", "being crossed by", "with its path crossed by")
_rel(
    "same_lane",
    "in the same lane as",
    "in the same lane",
    "sharing a lane with",
    "in the lane of",
    "same lane as",
)
_rel(
    "heading",
    "in the opposite direction to",
    "in the opposite direction of",
    "opposite to",
    "against the direction of",
    relation="opposite",
)
_rel("heading", "in the same direction as", relation="same")
_rel("heading", "perpendicular to", "across the path of", relation="perpendicular")

# "oncoming" and friends: a modifier relative to the ego
_mod(
    _c("heading", Name("ego"), relation=Name("opposite")),
    "oncoming",
    "in the opposite lane",
    "in the oncoming lane",
    "in the oncoming lanes",
    "in the opposite direction",
    "opposite direction",
    "coming the other way",
    "coming toward us",
)
_mod(_c("heading", Name("ego"), relation=Name("same")), "in the same direction", "same direction")
_mod(
    _c("heading", Name("ego"), relation=Name("perpendicular")),
    "cross traffic",
    "crossing traffic",
    "perpendicular",
)

# "with X <dir>": the subject has X in that direction
_DIRWORDS: dict[str, str] = {
    "ahead": "has_ahead",
    "in front": "has_ahead",
    "in front of it": "has_ahead",
    "in front of them": "has_ahead",
    "behind": "has_behind",
    "behind it": "has_behind",
    "behind them": "has_behind",
    "on the left": "has_left",
    "to the left": "has_left",
    "on its left": "has_left",
    "on the right": "has_right",
    "to the right": "has_right",
    "on its right": "has_right",
    "nearby": "near",
    "around": "near",
    "close by": "near",
    "near": "near",
    "close": "near",
    "around it": "near",
    "near it": "near",
}

_NUMBERS = {
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
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "hundred": 100,
    "a hundred": 100,
    "half": 0.5,
    "a half": 0.5,
}
_COUNT_WORDS = {
    "multiple": 2,
    "several": 3,
    "many": 5,
    "a couple of": 2,
    "a pair of": 2,
    "a few": 3,
    "a group of": 3,
    "groups of": 3,
    "group of": 3,
    "a crowd of": 5,
    "crowd of": 5,
    "lots of": 5,
    "a lot of": 5,
    "numerous": 5,
    "a number of": 3,
    "more than one": 2,
    "at least two": 2,
}
_FILLER_TEXT = (
    "a an the is are was were be being been that which who whom whose there it its it's their them "
    "they this these those some any of to in on at by from with as has have had having does do did "
    "currently just also then very really located situated appears appear seen see visible present "
    "scenario scene log logs find show me all every each where when one ones what get look something "
    "somebody someone please can could would will would should frame frames moment moments time case "
    "cases example examples instance instances situation situations"
)
_FILLERS = set(_FILLER_TEXT.split())
_NEGATIONS = (
    "not",
    "no",
    "never",
    "without",
    "isn't",
    "aren't",
    "isnt",
    "arent",
    "wasn't",
    "doesn't",
    "don't",
    "n't",
    "non",
    "nobody",
)
_UNIT_NAMES = {"length": "m", "duration": "s", "speed": "m/s"}
_UNIT_AS_WRITTEN = {
    "km/h": "km/h",
    "kmh": "km/h",
    "kph": "km/h",
    "kilometers per hour": "km/h",
    "kilometres per hour": "km/h",
    "mph": "mph",
    "miles per hour": "mph",
    "ft": "ft",
    "feet": "ft",
    "foot": "ft",
    "km": "km",
    "minute": "min",
    "minutes": "min",
    "min": "min",
    "mins": "min",
}
_UNITS_WORDS: dict[str, tuple[str, float]] = {
    "m": ("length", 1.0),
    "meter": ("length", 1.0),
    "meters": ("length", 1.0),
    "metre": ("length", 1.0),
    "metres": ("length", 1.0),
    "km": ("length", 1000.0),
    "ft": ("length", 0.3048),
    "feet": ("length", 0.3048),
    "foot": ("length", 0.3048),
    "yard": ("length", 0.9144),
    "yards": ("length", 0.9144),
    "car length": ("length", 4.5),
    "car lengths": ("length", 4.5),
    "s": ("duration", 1.0),
    "sec": ("duration", 1.0),
    "secs": ("duration", 1.0),
    "second": ("duration", 1.0),
    "seconds": ("duration", 1.0),
    "minute": ("duration", 60.0),
    "minutes": ("duration", 60.0),
    "min": ("duration", 60.0),
    "mins": ("duration", 60.0),
    "m/s": ("speed", 1.0),
    "mps": ("speed", 1.0),
    "meters per second": ("speed", 1.0),
    "metres per second": ("speed", 1.0),
    "km/h": ("speed", 1 / 3.6),
    "kmh": ("speed", 1 / 3.6),
    "kph": ("speed", 1 / 3.6),
    "kilometers per hour": ("speed", 1 / 3.6),
    "kilometres per hour": ("speed", 1 / 3.6),
    "mph": ("speed", 0.44704),
    "miles per hour": ("speed", 0.44704),
}
_UPPER = (
    "within",
    "less than",
    "under",
    "closer than",
    "up to",
    "no more than",
    "at most",
    "no farther than",
    "no further than",
    "below",
    "slower than",
    "lower than",
    "shorter than",
)
_LOWER = (
    "more than",
    "over",
    "above",
    "faster than",
    "greater than",
    "higher than",
    "longer than",
    "beyond",
    "exceeding",
)

_UNSUPPORTED = (
    "bus stop",
    "bus stops",
    "traffic light",
    "traffic lights",
    "red light",
    "green light",
    "yellow light",
    "parking space",
    "parking spot",
    "reversing",
    "backing up",
    "honking",
    "indicator",
    "blinker",
    "rain",
    "night",
)
"""Phrases that name things the lake does not record (or no predicate reads yet): an error names them."""

LEXICON: dict[str, object] = {
    "categories": CATEGORY_WORDS,
    "category_phrases": _MULTI_CATEGORIES,
    "ego": EGO_PHRASES,
    "modifiers": _MODS,
    "places": _PLACES,
    "relations": _RELATIONS,
    "with_directions": _DIRWORDS,
    "counts": _COUNT_WORDS,
    "numbers": _NUMBERS,
    "units": _UNITS_WORDS,
}
"""Every phrase the offline translator knows, by kind (for docs and tests)."""


def _words(text: str) -> list[str]:
    t = text.lower()
    t = t.replace("’", "'")
    t = re.sub(r"n't\b", " n't", t)
    t = re.sub(r"(\d)([a-z])", r"\1 \2", t)  # 10m -> 10 m
    t = re.sub(r"km/h|m/s\^?2?|mph", lambda m: f" {m.group(0)} ", t)
    t = re.sub(r"[-_]", " ", t)
    t = re.sub(r"[^a-z0-9/'.\s]", " ", t)
    t = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", t)
    return [w for w in t.split() if w]


def _phrase_table() -> list[tuple[tuple[str, ...], str, object]]:
    table: list[tuple[tuple[str, ...], str, object]] = []
    for phrase in EGO_PHRASES:
        table.append((tuple(phrase.split()), "EGO", None))
    for phrase, expr in _MULTI_CATEGORIES.items():
        table.append((tuple(phrase.split()), "CAT", expr))
    for word, cat in CATEGORY_WORDS.items():
        table.append(((word,), "CAT", Name(cat)))
    for phrase, expr in _MODS.items():
        table.append((tuple(phrase.split()), "MOD", expr))
    for phrase, expr in _PLACES.items():
        table.append((tuple(phrase.split()), "MOD", expr))
    for phrase, rel in _RELATIONS.items():
        table.append((tuple(phrase.split()), "REL", rel))
    for phrase, n in _COUNT_WORDS.items():
        table.append((tuple(phrase.split()), "COUNT", n))
    for phrase in _DIRWORDS:
        if tuple(phrase.split()) not in {row[0] for row in table}:
            table.append((tuple(phrase.split()), "DIRWORD", _DIRWORDS[phrase]))
    for phrase in _UNSUPPORTED:
        table.append((tuple(phrase.split()), "UNSUPPORTED", phrase))
    for phrase in ("with", "having", "that has", "that have", "which has", "with a", "with an"):
        table.append((tuple(phrase.split()), "WITH", None))
    for phrase in ("while", "when", "whilst", "as", "during", "at the same time as", "whenever"):
        table.append((tuple(phrase.split()), "TIME", "during"))
    for phrase in ("before", "shortly before", "just before", "right before", "prior to"):
        table.append((tuple(phrase.split()), "TIME", "before"))
    for phrase in ("after", "shortly after", "just after", "right after", "following after", "once"):
        table.append((tuple(phrase.split()), "TIME", "after"))
    for phrase in (
        "and",
        "and also",
        "but",
        "that is",
        "which is",
        "who is",
        "that are",
        "which are",
        "who are",
        "while also",
        "and is",
        "and are",
    ):
        table.append((tuple(phrase.split()), "AND", None))
    for phrase in ("or", "either", "and/or"):
        table.append((tuple(phrase.split()), "OR", None))
    for phrase in (
        "for",
        "for at least",
        "for more than",
        "for over",
        "lasting",
        "lasting at least",
        "longer than",
        "for longer than",
    ):
        table.append((tuple(phrase.split()), "FOR", None))
    for phrase in _UPPER:
        table.append((tuple(phrase.split()), "BOUND", "upper"))
    for phrase in _LOWER:
        table.append((tuple(phrase.split()), "BOUND", "lower"))
    for phrase in _NEGATIONS:
        table.append((tuple(phrase.split()), "NOT", None))
    for phrase in ("at least",):
        table.append((tuple(phrase.split()), "ATLEAST", None))
    table.sort(key=lambda row: -len(row[0]))
    return table


_TABLE = _phrase_table()
_BY_FIRST: dict[str, list[tuple[tuple[str, ...], str, object]]] = {}
for _row in _TABLE:
    _BY_FIRST.setdefault(_row[0][0], []).append(_row)


def _number_at(words: list[str], i: int) -> tuple[float, int] | None:
    """A number written in digits or words at ``words[i]``: (value, words used)."""
    w = words[i]
    if re.fullmatch(r"\d+(\.\d+)?", w):
        return float(w), 1
    for phrase, v in sorted(_NUMBERS.items(), key=lambda kv: -len(kv[0].split())):
        parts = phrase.split()
        if words[i : i + len(parts)] == parts:
            return float(v), len(parts)
    return None


def _unit_at(words: list[str], i: int) -> tuple[str, float, int] | None:
    for phrase, (dim, factor) in sorted(_UNITS_WORDS.items(), key=lambda kv: -len(kv[0].split())):
        parts = phrase.split()
        if words[i : i + len(parts)] == parts:
            return dim, factor, len(parts)
    return None


def _lex(text: str) -> tuple[list[_Lex], list[str]]:
    words = _words(text)
    out: list[_Lex] = []
    unknown: list[str] = []
    i = 0
    while i < len(words):
        num = _number_at(words, i)
        if num is not None:
            value, used = num
            unit = _unit_at(words, i + used) if i + used < len(words) else None
            if unit is not None:
                dim, factor, uw = unit
                written = " ".join(words[i + used : i + used + uw])
                shown = _UNIT_AS_WRITTEN.get(written)
                number = Number(value, shown) if shown else Number(value * factor, _UNIT_NAMES[dim])
                out.append(
                    _Lex(
                        {"length": "DIST", "duration": "DUR", "speed": "SPEED"}[dim],
                        value * factor,
                        " ".join(words[i : i + used + uw]),
                        {"number": number},
                    )
                )
                i += used + uw
                continue
            out.append(_Lex("COUNT", value, " ".join(words[i : i + used])))
            i += used
            continue
        best: tuple[tuple[str, ...], str, object] | None = None
        for phrase, kind, entry in _BY_FIRST.get(words[i], ()):
            if tuple(words[i : i + len(phrase)]) == phrase:
                best = (phrase, kind, entry)
                break
        if best is not None:
            phrase, kind, entry = best
            if kind == "UNSUPPORTED":
                unknown.append(" ".join(phrase))
                i += len(phrase)
                continue
            out.append(_Lex(kind, entry, " ".join(phrase)))
            i += len(phrase)
            continue
        w = words[i]
        if w in _FILLERS:
            i += 1
            continue
        unknown.append(w)
        i += 1
    return out, unknown


# --------------------------------------------------------------------------- parser


@dataclass
class _NP:
    head: Expr | None = None
    mods: list[Expr] = field(default_factory=list)
    count: int | None = None

    def expr(self) -> Expr:
        parts: list[Expr] = []
        for p in [self.head or Name("any"), *self.mods]:
            parts.extend(p.parts if isinstance(p, And) else (p,))
        return parts[0] if len(parts) == 1 else And(tuple(parts))


_PLACE_NEAR: dict[str | None, tuple[str, float]] = {
    "at_intersection": ("near_intersection", 5.0),
    "near_intersection": ("near_intersection", 5.0),
    "at_crosswalk": ("at_crosswalk", 5.0),
    "at_stop_line": ("at_stop_line", 10.0),
}
"""A map place as the object of "near" -> its distance predicate and the default distance (m)."""


def _only_place(obj: _NP) -> str | None:
    """The place's predicate name when a noun phrase is only a map place ("an intersection")."""
    if obj.head not in (None, Name("any")) or len(obj.mods) != 1 or obj.count not in (None, 1):
        return None
    mod = obj.mods[0]
    return mod.name if isinstance(mod, Name | Call) and mod.name in _PLACE_NEAR else None


class _Parser:
    def __init__(self, lexemes: list[_Lex], text: str) -> None:
        self.lx = lexemes
        self.i = 0
        self.text = text

    def peek(self, k: int = 0) -> _Lex | None:
        j = self.i + k
        return self.lx[j] if j < len(self.lx) else None

    def kind(self, k: int = 0) -> str:
        lex = self.peek(k)
        return lex.kind if lex else "END"

    def take(self) -> _Lex:
        lex = self.lx[self.i]
        self.i += 1
        return lex

    # description := clause (TIME clause)*
    def description(self) -> Expr:
        subject = self.clause()
        while self.kind() == "TIME":
            op = str(self.take().value)
            other = self.clause()
            subject = Call(op, (subject, other), ())
        if self.kind() != "END":
            lex = self.peek()
            assert lex is not None
            raise DescriptionError(
                self.text, (lex.text,), f"cannot place {lex.text!r} in {self.text!r} (after the whole clause)"
            )
        return subject

    def clause(self) -> Expr:
        np_ = self.noun_phrase(subject=True)
        e = np_.expr()
        if np_.count is not None and np_.count > 1:
            e = Call("at_least", (Number(float(np_.count)), e), ())
        while self.kind() == "FOR":
            self.take()
            if self.kind() == "ATLEAST":
                self.take()
            if self.kind() == "BOUND":
                self.take()
            if self.kind() != "DUR":
                lex = self.peek()
                raise DescriptionError(
                    self.text, (lex.text if lex else "for",), "'for' needs a duration: for 3 seconds"
                )
            d = self.take()
            e = Call("for_at_least", (e, Number(float(d.value), "s")), ())  # type: ignore[arg-type]
        return e

    def noun_phrase(self, *, subject: bool) -> _NP:
        np_ = _NP()
        negate = False
        count: int | None = None
        # premodifiers: counts, negations, states
        while True:
            k = self.kind()
            if k in ("COUNT", "ATLEAST") and count is None:
                if k == "ATLEAST":
                    self.take()
                    if self.kind() != "COUNT":
                        raise DescriptionError(self.text, ("at least",), "'at least' needs a number")
                lex = self.take()
                count = max(1, math.ceil(float(lex.value)))  # type: ignore[arg-type]
                continue
            if k == "BOUND" and self.kind(1) == "COUNT":
                bound = self.take()
                n = int(float(self.take().value))  # type: ignore[arg-type]
                count = n + 1 if bound.value == "lower" else n
                continue
            if k == "NOT" and self.kind(1) in ("MOD", "CAT", "EGO", "COUNT"):
                self.take()
                negate = not negate
                if self.kind() in ("CAT", "EGO"):
                    # "no pedestrians" as a subject: nothing to select; as an object handled by callers
                    np_.count = 0
                continue
            if k == "MOD":
                m = self.take().value
                np_.mods.append(Not(m) if negate else m)  # type: ignore[arg-type]
                negate = False
                continue
            break
        # head
        if self.kind() in ("CAT", "EGO"):
            np_.head = self.head()
        if count is not None:
            np_.count = count
        # postmodifiers
        self.postmods(np_, subject=subject, negate=negate)
        return np_

    def head(self) -> Expr:
        heads = [self.one_head()]
        while self.kind() in ("AND", "OR") and self.kind(1) in ("CAT", "EGO") and self.peek(1) is not None:
            # "cars and trucks" / "cars or trucks": either kind
            self.take()
            heads.append(self.one_head())
        return heads[0] if len(heads) == 1 else Or(tuple(heads))

    def one_head(self) -> Expr:
        lex = self.take()
        if lex.kind == "EGO":
            return Name("ego")
        return lex.value  # type: ignore[return-value]

    def obj_follows(self, k: int = 0) -> bool:
        """Whether the lexeme ``k`` ahead can start an object noun phrase."""
        return self.kind(k) in ("CAT", "EGO", "COUNT", "ATLEAST", "MOD") or (
            self.kind(k) == "NOT" and self.kind(k + 1) in ("CAT", "EGO", "COUNT", "MOD")
        )

    def postmods(self, np_: _NP, *, subject: bool, negate: bool = False) -> None:
        while True:
            k = self.kind()
            if k == "NOT":
                if self.kind(1) in ("CAT", "EGO", "COUNT"):  # "without pedestrians nearby"
                    self.take()
                    np_.mods.append(self.with_clause(not negate, consume_with=False))
                    negate = False
                    continue
                self.take()
                negate = not negate
                continue
            if k == "AND":
                # "and"/"that is" continue the subject's modifiers; an object's end at it
                if not subject:
                    return
                self.take()
                continue
            if k == "OR" and self.kind(1) == "MOD":
                self.take()
                alt = self.take().value
                last = np_.mods.pop() if np_.mods else Name("any")
                np_.mods.append(Or((last, alt)))  # type: ignore[arg-type]
                continue
            if k == "MOD":
                m = self.take().value
                np_.mods.append(Not(m) if negate else m)  # type: ignore[arg-type]
                negate = False
                continue
            if k in ("BOUND", "ATLEAST", "SPEED") and self.bound_mod(np_, negate):
                negate = False
                continue
            dist_len = 2 if k in ("BOUND", "ATLEAST") and self.kind(1) == "DIST" else 1 if k == "DIST" else 0
            if (dist_len and self.kind(dist_len) in ("REL", "DIRWORD")) or k == "REL":
                if not subject and k == "REL" and not self.obj_follows(1):
                    return  # a bare direction after an object belongs to the enclosing "with"
                if not subject and k == "DIRWORD":
                    return
                np_.mods.append(self.relation(negate))
                negate = False
                continue
            if dist_len and self.obj_follows(dist_len):  # "within 10 m of a cyclist"
                np_.mods.append(self.relation(negate, default="near"))
                negate = False
                continue
            if k == "DIRWORD":
                if not subject:
                    return
                np_.mods.append(self.relation(negate))
                negate = False
                continue
            if k == "WITH":
                np_.mods.append(self.with_clause(negate))
                negate = False
                continue
            return

    def bound_mod(self, np_: _NP, negate: bool) -> bool:
        """``faster than 30 km/h`` / ``below 5 m/s`` / ``at 10 m/s``: a speed bound on the noun phrase."""
        j = 0
        bound = "lower"
        if self.kind() in ("BOUND", "ATLEAST"):
            lex = self.peek()
            assert lex is not None
            bound = "lower" if lex.kind == "ATLEAST" else str(lex.value)
            j = 1
        if self.kind(j) != "SPEED":
            return False
        for _ in range(j):
            self.take()
        v = self.take().extra["number"]
        e: Expr = _c("speed", min=v) if bound == "lower" else _c("speed", max=v)
        np_.mods.append(Not(e) if negate else e)
        return True

    def distance(self) -> Number | None:
        """An optional ``within 10 m`` / ``10 m`` before or after a relation."""
        if self.kind() in ("BOUND", "ATLEAST") and self.kind(1) == "DIST":
            self.take()
            return self.take().extra["number"]  # type: ignore[return-value]
        if self.kind() == "DIST":
            return self.take().extra["number"]  # type: ignore[return-value]
        return None

    def relation(self, negate: bool, default: str | None = None) -> Expr:
        within = self.distance()
        params: dict[str, object] = {}
        if default is not None:
            pred = default
        else:
            lex = self.take()
            if lex.kind == "DIRWORD":
                # "a car ahead": in that direction of the ego
                pred = {
                    "has_ahead": "ahead_of",
                    "has_behind": "behind",
                    "has_left": "left_of",
                    "has_right": "right_of",
                    "near": "near",
                }[str(lex.value)]
            else:
                pred, params = lex.value  # type: ignore[misc]
        if params.get("negated"):
            negate = not negate
            params = {k: v for k, v in params.items() if k != "negated"}
        if within is None:
            within = self.distance()
        # with no object ("a car nearby", "a truck behind") the relation is to the ego
        obj = self.noun_phrase(subject=False) if self.obj_follows() else _NP(head=Name("ego"))
        if obj.head is None and not obj.mods:
            obj.head = Name("any")
        args: list[object] = [obj.expr()]
        kwargs: list[tuple[str, object]] = []
        if "relation" in params:
            args.append(Name(str(params["relation"])))
        if within is not None and pred in (
            "near",
            "ahead_of",
            "behind",
            "left_of",
            "right_of",
            "following",
            "followed_by",
            "facing",
            "heading_toward",
        ):
            kwargs.append(("within", within))
        if obj.count is not None and obj.count > 1 and pred == "near":
            kwargs.append(("min", Number(float(obj.count))))
        if obj.count == 0:
            negate = not negate
        place = _PLACE_NEAR.get(_only_place(obj)) if pred == "near" else None
        if place is not None:
            # "near a crosswalk", "within 10 m of an intersection": distance to the map place itself
            place_name, default_m = place
            near_place = Call(place_name, (), (("within", within or Number(default_m, "m")),))
            return Not(near_place) if negate else near_place
        if pred == "overtaking":
            # beside it, travelling the same way, and moving: RefAV composes "passing" the same way
            beside = Or((Call("left_of", (obj.expr(),), ()), Call("right_of", (obj.expr(),), ())))
            same = Call("heading", (obj.expr(), Name("same")), ())
            passing = And((_n("moving"), same, beside))
            return Not(passing) if negate else passing
        if pred == "cut_in_front":
            e: Expr = And((Call("event", (Name("cut_in"),), ()), Call("ahead_of", (obj.expr(),), ())))
        else:
            e = Call(pred, tuple(args), tuple(kwargs))  # type: ignore[arg-type]
        return Not(e) if negate else e

    def with_clause(self, negate: bool, *, consume_with: bool = True) -> Expr:
        if consume_with:
            self.take()  # WITH
        if self.kind() == "NOT":
            self.take()
            negate = not negate
        obj = self.noun_phrase(subject=False)
        if obj.count == 0:
            negate = not negate
            obj.count = None
        if obj.head is None and not obj.mods:
            obj.head = Name("any")
        pred = "near"
        within = self.distance()
        lex = self.peek()
        if lex is not None and lex.kind == "DIRWORD":
            self.take()
            pred = str(lex.value)
        elif lex is not None and lex.kind == "REL" and lex.text in _DIRWORDS and not self.obj_follows(1):
            self.take()
            pred = _DIRWORDS[lex.text]
        if within is None:
            within = self.distance()
        kwargs: list[tuple[str, object]] = []
        if within is not None:
            kwargs.append(("within", within))
        if obj.count is not None and obj.count > 1:
            kwargs.append(("min", Number(float(obj.count))))
        e: Expr = Call(pred, (obj.expr(),), tuple(kwargs))  # type: ignore[arg-type]
        return Not(e) if negate else e


@dataclass(frozen=True)
class Translation:
    """A description and the expression chosen for it.

    Attributes:
        description: As given.
        expression: The chosen expression.
        text: Its canonical text (what the CLI prints).
        translator: ``"offline"`` or the endpoint's model name.
    """

    description: str
    expression: Expr
    text: str
    translator: str = "offline"


def describe(description: str) -> Translation:
    """Translate a description into a checked expression, offline.

    Raises:
        DescriptionError: naming the words no rule could place, or a phrase
            that does not fit the sentence.
    """
    if not description or not description.strip():
        raise DescriptionError(description, (), "the description is empty")
    lexemes, unknown = _lex(description)
    if unknown:
        raise DescriptionError(
            description,
            tuple(unknown),
            f"cannot place {', '.join(repr(w) for w in unknown)} in {description!r}; "
            "see docs/mining.md for the words the offline translator knows, or write an expression",
        )
    if not lexemes:
        raise DescriptionError(description, (), f"nothing to search for in {description!r}")
    expr = _Parser(lexemes, description).description()
    try:
        bind(expr)
    except QueryError as exc:  # a bug in a lexicon entry; say which description hit it
        raise DescriptionError(
            description, (), f"{description!r} translated to an invalid query: {exc}"
        ) from exc
    return Translation(description, expr, to_text(expr))


_Builder = Callable[..., Expr]
