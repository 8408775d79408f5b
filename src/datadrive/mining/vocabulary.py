"""The words of the query language: categories, predicates, their parameters; binding.

:data:`CATEGORIES` name the objects a query starts from; :data:`PREDICATES`
say what they do, where, and in relation to what. The vocabulary follows
RefAV's atomic functions (the Argoverse 2 scenario-mining challenge), with
its defaults where RefAV has one, written as composable predicates rather
than functions over dictionaries.

:func:`bind` checks a parsed expression against the vocabulary (unknown
names list the known ones; arguments are converted to SI units and checked
against their kind) and returns a :class:`Bound` tree that
:mod:`datadrive.mining.engine` evaluates.

Categories match a track by its coarse type and by words in its dataset
label, so ``car`` works on AV2 (``REGULAR_VEHICLE``), nuScenes
(``vehicle.car``) and Lyft (``PERCEPTION_LABEL_CAR``) alike; where a
dataset has only one vehicle label (Waymo's ``TYPE_VEHICLE``) every
vehicle is a ``car``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from datadrive.core.scenario import ObjectType
from datadrive.core.typing import NDArrayBool, NDArrayStr, NDArrayUInt8
from datadrive.errors import QueryError
from datadrive.mining.query import (
    UNITS,
    Call,
    Expr,
    Name,
    Not,
    Number,
    Or,
    Text,
    Value,
    check_nesting,
    parse,
    to_text,
)
from datadrive.mining.query import And as AndNode

__all__ = [
    "CATEGORIES",
    "PREDICATES",
    "Bound",
    "Category",
    "Param",
    "Predicate",
    "bind",
    "compile_query",
    "known_names",
]

_V, _C, _P, _O = ObjectType.VEHICLE, ObjectType.CYCLIST, ObjectType.PEDESTRIAN, ObjectType.OTHER
_LARGE = ("BUS", "TRUCK", "LORRY", "TRAILER", "LARGE", "RAIL", "TRAM", "TRAIN", "CONSTRUCTION", "EMERGENCY")
_NOT_CAR = (*_LARGE, "SEMI", "ARTICULATED", "MOTORCYCL", "MOTORBIKE", "BICYCLE", "BIKE", "CYCLIST")


@dataclass(frozen=True)
class Category:
    """A kind of object a query can select.

    Attributes:
        name: Its word in the language.
        doc: One line.
        types: Coarse types it covers (empty: any type).
        include: Label words, one of which must appear (empty: no condition).
        exclude: Label words none of which may appear.
        ego: ``True`` only the ego, ``False`` never the ego, ``None`` either.
    """

    name: str
    doc: str
    types: tuple[ObjectType, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    ego: bool | None = False

    def matches(self, object_type: NDArrayUInt8, category: NDArrayStr, ego_index: int | None) -> NDArrayBool:
        """``(A,)`` which tracks belong to this category."""
        a = object_type.shape[0]
        out = np.ones(a, dtype=bool) if not self.types else np.isin(object_type, [int(t) for t in self.types])
        labels = np.char.upper(category.astype(np.str_))
        if self.include:
            hit = np.zeros(a, dtype=bool)
            for word in self.include:
                hit |= np.char.find(labels, word) >= 0
            out &= hit
        for word in self.exclude:
            out &= np.char.find(labels, word) < 0
        is_ego = np.zeros(a, dtype=bool)
        if ego_index is not None:
            is_ego[ego_index] = True
        if self.ego is True:
            return is_ego
        if self.ego is False:
            out &= ~is_ego
        return out


CATEGORIES: Mapping[str, Category] = MappingProxyType(
    {
        c.name: c
        for c in (
            Category("any", "every object, the ego included", ego=None),
            Category("ego", "the ego vehicle (the one that recorded the log)", ego=True),
            Category("vehicle", "any vehicle but the ego: cars, buses, trucks, trailers", (_V,)),
            Category(
                "car",
                "a passenger car, van, pickup or SUV (not a bus, truck or trailer)",
                (_V,),
                exclude=_NOT_CAR,
            ),
            Category("bus", "a bus (city, school, articulated)", (_V,), include=("BUS",)),
            Category("truck", "a truck, box truck or truck cab", (_V,), include=("TRUCK", "LORRY")),
            Category("large_vehicle", "a bus, truck, trailer or other large vehicle", (_V,), include=_LARGE),
            Category("trailer", "a trailer towed by a vehicle", include=("TRAILER",)),
            Category(
                "emergency_vehicle",
                "an ambulance, police car or fire engine (where the dataset labels them)",
                (_V,),
                include=("EMERGENCY", "POLICE", "AMBULANCE", "FIRE"),
            ),
            Category(
                "motorcycle",
                "a motorcycle or moped, ridden or not",
                include=("MOTORCYCL", "MOTORBIKE", "MOPED"),
            ),
            Category("bicycle", "a bicycle, ridden or not", include=("BICYCLE", "BIKE")),
            Category("cyclist", "a person riding a bicycle, motorcycle or scooter", (_C,)),
            Category("pedestrian", "a person on foot (or in a wheelchair)", (_P,)),
            Category("vru", "a vulnerable road user: a pedestrian or a cyclist", (_P, _C)),
            Category(
                "animal", "an animal (dog, deer, ...)", include=("DOG", "ANIMAL", "DEER", "HORSE", "CAT")
            ),
            Category("cone", "a traffic or construction cone", include=("CONE",)),
            Category(
                "barrier",
                "a barrier, bollard or construction barrel",
                include=("BARRIER", "BOLLARD", "BARREL"),
            ),
            Category("sign", "a road sign (stop sign, message board)", (_O,), include=("SIGN",)),
            Category("stroller", "a pushchair", include=("STROLLER",)),
            Category("wheelchair", "a wheelchair", include=("WHEELCHAIR",)),
            Category(
                "static_object", "anything that is not a road user (cones, barriers, signs, unknown)", (_O,)
            ),
        )
    }
)
"""Every category, by name."""

REQUIRED: Any = object()


@dataclass(frozen=True)
class Param:
    """One parameter of a predicate.

    Attributes:
        name: Its keyword.
        kind: ``set`` (an expression), ``length``, ``duration``, ``speed``,
            ``accel``, ``angle`` (numbers converted to SI), ``count``
            (non-negative integer), ``choice`` (one of ``choices``),
            ``event`` (an event type).
        default: Value when omitted (SI units); :data:`REQUIRED` if it must be given.
        choices: Allowed words for ``choice``.
        doc: One line.
    """

    name: str
    kind: str
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()
    doc: str = ""


@dataclass(frozen=True)
class Predicate:
    """A predicate or combinator of the language.

    Attributes:
        name: Its word.
        group: ``kinematic``, ``relational``, ``map``, ``event`` or ``combinator``.
        params: Parameters in positional order.
        doc: What it selects.
        needs_map: False everywhere on scenarios without lanes.
    """

    name: str
    group: str
    params: tuple[Param, ...]
    doc: str
    needs_map: bool = False


def _p(name: str, kind: str, default: Any = REQUIRED, choices: tuple[str, ...] = (), doc: str = "") -> Param:
    return Param(name, kind, default, choices, doc)


_DIRS = ("any", "left", "right")
_OF = _p("of", "set", doc="the related objects")

PREDICATES: Mapping[str, Predicate] = MappingProxyType(
    {
        p.name: p
        for p in (
            # ---- kinematic
            Predicate(
                "stopped",
                "kinematic",
                (_p("max_speed", "speed", 0.5),),
                "speed below max_speed now (RefAV: jitter up to 0.5 m/s)",
            ),
            Predicate(
                "moving", "kinematic", (_p("min_speed", "speed", 0.5),), "speed at least min_speed now"
            ),
            Predicate(
                "reversing",
                "kinematic",
                (
                    _p("min_speed", "speed", 1.0),
                    _p("angle", "angle", math.radians(135.0)),
                    _p("min_duration", "duration", 0.5),
                ),
                "moving backwards for min_duration: at least min_speed, more than `angle` from where the "
                "box faces (needs the source's box headings; the direction of travel is known above 1 m/s)",
            ),
            Predicate(
                "stationary",
                "kinematic",
                (_p("max_displacement", "length", 2.0),),
                "moved less than max_displacement over the whole track (parked; RefAV's stationary)",
            ),
            Predicate(
                "speed",
                "kinematic",
                (_p("min", "speed", 0.0), _p("max", "speed", math.inf)),
                "speed within [min, max]",
            ),
            Predicate(
                "accelerating",
                "kinematic",
                (_p("min", "accel", 0.65), _p("max", "accel", math.inf)),
                "longitudinal acceleration within [min, max] (RefAV: above 0.65 m/s^2)",
            ),
            Predicate(
                "braking",
                "kinematic",
                (_p("min_decel", "accel", 1.0),),
                "decelerating by at least min_decel (RefAV: below -1 m/s^2 reliably means braking)",
            ),
            Predicate(
                "lateral_accel",
                "kinematic",
                (_p("min", "accel", -math.inf), _p("max", "accel", math.inf)),
                "lateral acceleration within [min, max], positive to the left",
            ),
            Predicate(
                "turning",
                "kinematic",
                (_p("direction", "choice", "any", _DIRS),),
                "during a turn of at least 45 degrees (RefAV's turning)",
            ),
            Predicate(
                "changing_lanes",
                "kinematic",
                (_p("direction", "choice", "any", _DIRS),),
                "during a change to a neighbouring lane",
                needs_map=True,
            ),
            Predicate(
                "event",
                "event",
                (_p("type", "event"), _p("role", "choice", "actor", ("actor", "any"))),
                "during a tagged event of that type (as its actor, or in any role)",
            ),
            # ---- relational
            Predicate(
                "near",
                "relational",
                (_OF, _p("within", "length", 10.0), _p("min", "count", 1)),
                "at least min of them within `within` (box to box; RefAV's near_objects)",
            ),
            *(
                Predicate(
                    name,
                    "relational",
                    (_OF, _p("within", "length", dist), _p("lateral", "length", 2.0), _p("min", "count", 1)),
                    doc,
                )
                for name, dist, doc in (
                    (
                        "has_ahead",
                        50.0,
                        "one of them ahead, within `within` of the front, `lateral` of the sides",
                    ),
                    ("has_behind", 50.0, "one of them behind, within `within` of the rear"),
                    ("has_left", 10.0, "one of them on the left, within `within` of the side"),
                    ("has_right", 10.0, "one of them on the right"),
                    ("ahead_of", 50.0, "ahead of one of them (in its frame)"),
                    ("behind", 50.0, "behind one of them"),
                    ("left_of", 10.0, "on the left of one of them"),
                    ("right_of", 10.0, "on the right of one of them"),
                )
            ),
            Predicate(
                "facing",
                "relational",
                (_OF, _p("angle", "angle", math.radians(22.5)), _p("within", "length", 50.0)),
                "one of them within `angle` of the forward axis (RefAV's facing_toward)",
            ),
            Predicate(
                "heading_toward",
                "relational",
                (
                    _OF,
                    _p("angle", "angle", math.radians(22.5)),
                    _p("min_speed", "speed", 0.5),
                    _p("within", "length", 50.0),
                ),
                "moving toward one of them (RefAV's heading_toward)",
            ),
            Predicate(
                "following",
                "relational",
                (_OF, _p("within", "length", 25.0)),
                "following one of them in its lane",
            ),
            Predicate(
                "followed_by", "relational", (_OF, _p("within", "length", 25.0)), "followed by one of them"
            ),
            Predicate("same_lane", "relational", (_OF,), "in the same lane as one of them", needs_map=True),
            Predicate(
                "heading",
                "relational",
                (_OF, _p("relation", "choice", "same", ("same", "opposite", "perpendicular"))),
                "travelling in the same / opposite / a perpendicular direction to one of them",
            ),
            Predicate(
                "crossing",
                "relational",
                (_OF, _p("forward", "length", 10.0), _p("lateral", "length", 5.0)),
                "crossing the path just ahead of one of them (RefAV's being_crossed_by, reversed)",
            ),
            Predicate(
                "crossed_by",
                "relational",
                (_OF, _p("forward", "length", 10.0), _p("lateral", "length", 5.0)),
                "having one of them cross the path just ahead (RefAV's being_crossed_by)",
            ),
            # ---- map
            Predicate("in_drivable_area", "map", (), "inside the drivable area", needs_map=True),
            Predicate("on_road", "map", (), "on a lane (not a parking lot or sidewalk)", needs_map=True),
            Predicate(
                "lane_type",
                "map",
                (_p("kind", "choice", REQUIRED, ("vehicle", "bike", "bus")),),
                "on a lane of that kind",
                needs_map=True,
            ),
            Predicate("at_intersection", "map", (), "on an intersection lane", needs_map=True),
            Predicate(
                "wrong_way",
                "map",
                (
                    _p("min_speed", "speed", 2.0),
                    _p("angle", "angle", math.radians(135.0)),
                    _p("min_duration", "duration", 1.0),
                ),
                "driving forwards against its lane for min_duration: the box more than `angle` from the "
                "lane's direction, outside intersections, at min_speed or more",
                needs_map=True,
            ),
            Predicate(
                "red_light",
                "map",
                (_p("within", "length", 30.0),),
                "on a lane whose traffic light is red (stop, red arrow, flashing red) now, its stop line "
                "within `within` ahead (sources with light states: Waymo, nuPlan)",
                needs_map=True,
            ),
            Predicate(
                "running_red_light",
                "map",
                (
                    _p("min_speed", "speed", 1.0),
                    _p(
                        "turn_on_red",
                        "choice",
                        "right_after_stop",
                        ("right_after_stop", "right", "none"),
                        "when a right turn at a steady red is lawful: after a full stop (US, Canada), "
                        "without one, or never (most of Europe, the UK, Japan, Singapore)",
                    ),
                    _p("stop_speed", "speed", 0.5, doc="below this a vehicle has stopped"),
                    _p("stop_within", "length", 10.0, doc="how far before the stop point the stop counts"),
                ),
                "leaving a lane whose light is red into the intersection, at min_speed or more, "
                "and on through the intersection; not a lawful turn on red (turn_on_red) nor going on "
                "at a flashing red after stopping",
                needs_map=True,
            ),
            Predicate(
                "near_intersection",
                "map",
                (_p("within", "length", 5.0),),
                "within `within` of an intersection",
                needs_map=True,
            ),
            Predicate(
                "at_crosswalk",
                "map",
                (_p("within", "length", 1.0),),
                "within `within` of a crosswalk (box)",
                needs_map=True,
            ),
            Predicate(
                "at_stop_line",
                "map",
                (_p("within", "length", 10.0),),
                "a stop line within `within` ahead along the lane",
                needs_map=True,
            ),
            Predicate(
                "road_side",
                "map",
                (_p("within", "length", 2.0),),
                "within `within` of the road edge (at the kerb)",
                needs_map=True,
            ),
            # ---- combinators
            Predicate(
                "during",
                "combinator",
                (_p("a", "set"), _p("b", "set")),
                "a, at steps where b holds for some object",
            ),
            Predicate(
                "before",
                "combinator",
                (_p("a", "set"), _p("b", "set"), _p("within", "duration", 5.0)),
                "a, when b follows (some object) within `within`",
            ),
            Predicate(
                "after",
                "combinator",
                (_p("a", "set"), _p("b", "set"), _p("within", "duration", 5.0)),
                "a, when b came (some object) within `within` before",
            ),
            Predicate(
                "at_least",
                "combinator",
                (_p("n", "count"), _p("a", "set")),
                "a, at steps where at least n objects satisfy a",
            ),
            Predicate(
                "for_at_least",
                "combinator",
                (_p("a", "set"), _p("duration", "duration")),
                "a, where it holds for at least `duration` without a break",
            ),
        )
    }
)
"""Every predicate and combinator, by name."""


def known_names() -> str:
    """The vocabulary in one line per group, for error messages."""
    groups: dict[str, list[str]] = {}
    for p in PREDICATES.values():
        groups.setdefault(p.group, []).append(p.name)
    parts = [f"categories: {', '.join(CATEGORIES)}"]
    parts += [f"{g} predicates: {', '.join(names)}" for g, names in groups.items()]
    return "; ".join(parts)


@dataclass(frozen=True)
class Bound:
    """A checked expression: an operation, its converted parameters and its sub-expressions.

    Attributes:
        op: ``"category"``, ``"and"``, ``"or"``, ``"not"`` or a predicate name.
        params: Parameter values (SI units, ints, choice words, :class:`Bound` for sets).
        children: Operands of ``and`` / ``or`` / ``not``.
        text: Canonical text of the source expression.
    """

    op: str
    params: Mapping[str, Any] = field(default_factory=dict)
    children: tuple[Bound, ...] = ()
    text: str = ""

    def walk(self) -> list[Bound]:
        """This node and every node below it."""
        out = [self]
        for c in self.children:
            out += c.walk()
        for v in self.params.values():
            if isinstance(v, Bound):
                out += v.walk()
        return out


def _singular(name: str) -> str | None:
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", "")):
        if name.endswith(suffix) and name[: -len(suffix)] + repl in CATEGORIES:
            return name[: -len(suffix)] + repl
    return None


class _Binder:
    def __init__(self, source: str) -> None:
        self.source = source

    def err(self, reason: str, pos: int) -> QueryError:
        return QueryError(reason, self.source, pos if self.source else -1)

    def set_(self, e: Value, where: str) -> Bound:
        if not isinstance(e, Expr):
            pos = getattr(e, "pos", -1)
            raise self.err(f"{where} must be an expression of objects, not {to_text(e)!r}", pos)
        if isinstance(e, AndNode):
            return Bound("and", {}, tuple(self.set_(p, where) for p in e.parts), to_text(e))
        if isinstance(e, Or):
            return Bound("or", {}, tuple(self.set_(p, where) for p in e.parts), to_text(e))
        if isinstance(e, Not):
            return Bound("not", {}, (self.set_(e.part, where),), to_text(e))
        if isinstance(e, Name):
            name = e.name
            if name in CATEGORIES:
                return Bound("category", {"name": name}, (), name)
            if _singular(name):
                return Bound("category", {"name": _singular(name)}, (), name)
            if name in PREDICATES:
                return self.call(Call(name, (), (), e.pos))
            raise self.err(f"unknown category or predicate {name!r}; {known_names()}", e.pos)
        if isinstance(e, Call):
            return self.call(e)
        raise self.err(f"cannot use {to_text(e)!r} here", -1)

    def call(self, c: Call) -> Bound:
        if c.name in CATEGORIES:
            raise self.err(f"{c.name!r} is a category and takes no arguments", c.pos)
        spec = PREDICATES.get(c.name)
        if spec is None:
            raise self.err(f"unknown predicate {c.name!r}; {known_names()}", c.pos)
        if len(c.args) > len(spec.params):
            raise self.err(
                f"{c.name} takes at most {len(spec.params)} argument(s): "
                f"{', '.join(p.name for p in spec.params)}",
                c.pos,
            )
        given: dict[str, Value] = {}
        for param, v in zip(spec.params, c.args, strict=False):
            given[param.name] = v
        names = {p.name for p in spec.params}
        for k, v in c.kwargs:
            if k not in names:
                known = ", ".join(p.name for p in spec.params)
                raise self.err(f"{c.name} has no argument {k!r}; its arguments: {known}", c.pos)
            if k in given:
                raise self.err(f"{c.name}: argument {k!r} given twice", c.pos)
            given[k] = v
        params: dict[str, Any] = {}
        for p in spec.params:
            if p.name not in given:
                if p.default is REQUIRED:
                    raise self.err(f"{c.name} needs its argument {p.name!r} ({p.kind})", c.pos)
                params[p.name] = p.default
                continue
            params[p.name] = self.convert(c.name, p, given[p.name], c.pos)
        return Bound(c.name, MappingProxyType(params), (), to_text(c))

    def convert(self, pred: str, p: Param, v: Value, pos: int) -> Any:
        where = f"{pred}({p.name}=...)"
        vpos = getattr(v, "pos", pos)
        if p.kind == "set":
            return self.set_(v, where)
        if p.kind in ("choice", "event"):
            word = v.name if isinstance(v, Name) else v.value if isinstance(v, Text) else None
            if p.kind == "event":
                from datadrive.mining.events import EVENT_TYPES

                choices: tuple[str, ...] = tuple(EVENT_TYPES)
            else:
                choices = p.choices
            if word is None or word.lower() not in choices:
                shown = to_text(v)
                raise self.err(f"{where}: {shown!r} is not one of {', '.join(choices)}", vpos)
            return word.lower()
        if not isinstance(v, Number):
            raise self.err(f"{where} must be a number, not {to_text(v)!r}", vpos)
        if p.kind == "count":
            if v.unit is not None or v.value < 0 or not float(v.value).is_integer():
                raise self.err(f"{where} must be a whole number of objects", vpos)
            return int(v.value)
        dims = {"length": "m", "duration": "s", "speed": "m/s", "accel": "m/s^2", "angle": "deg"}
        if v.unit is None:
            factor = math.pi / 180.0 if p.kind == "angle" else 1.0  # bare angles are degrees
            return v.value * factor
        dim, factor = UNITS[v.unit]
        if dim != p.kind:
            raise self.err(f"{where} is a {p.kind} (e.g. {dims[p.kind]}), not a {dim} ({v.unit})", vpos)
        return v.value * factor


def bind(expr: Expr, source: str = "") -> Bound:
    """Check ``expr`` against the vocabulary and convert its arguments.

    Args:
        expr: A parsed (or built) expression.
        source: The text it was parsed from, for error positions.

    Raises:
        QueryError: an unknown name (listing the known ones), a missing or
            extra argument, a value of the wrong kind or unit, nesting deeper
            than ``MAX_NESTING``.
    """
    check_nesting(expr)
    return _Binder(source).set_(expr, "the query")


def compile_query(query: str | Expr) -> Bound:
    """Parse (if text) and bind a query in one step."""
    if isinstance(query, str):
        return bind(parse(query), query)
    return bind(query, "")
