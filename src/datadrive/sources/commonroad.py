"""CommonRoad scenarios (XML, formats 2018a/b and 2020a) as Scenarios.

A CommonRoad file holds one benchmark scenario: a lanelet network, obstacles
with per-time-step states, and one or more planning problems. The XML is
parsed with :func:`datadrive.sources.safe_xml.parse_xml`, which refuses
DTDs and entity declarations (XML bombs) before anything is expanded.

What a Scenario holds:

* time: steps ``t_min .. t_max`` over every obstacle state (``t_min`` is 0
  unless a state is earlier), ``timestamps_ns = step * timeStepSize`` (0.1 s
  in the NGSIM benchmarks).
* tracks: one per obstacle, id ``str(obstacle id)``, ``category`` the
  obstacle type. Dynamic obstacles (``<dynamicObstacle>`` in 2020a,
  ``<obstacle>`` with ``<role>dynamic`` in 2018) are valid at their
  ``initialState`` and ``trajectory`` states; static obstacles are valid at
  every step. ``position`` -> ``xy_m`` (a region instead of a point: its
  centre; a lanelet-only position has no point and leaves the state
  invalid), ``orientation`` -> ``heading_rad``, the scalar ``velocity``
  along the orientation (plus the lateral ``velocityY`` when present) ->
  ``velocity_mps``, z from the point's ``z`` (NaN when absent); an interval
  value is read as its midpoint. Obstacles with an ``occupancySet`` (a
  set-based prediction, not a trajectory) have only their initial state.
  Size: a rectangle's length and width, a circle's diameter twice (height
  NaN; NaN for polygons). Types: car, truck, bus, taxi, priorityVehicle,
  parkedVehicle, vehicle -> ``vehicle``; bicycle, motorcycle -> ``cyclist``;
  pedestrian -> ``pedestrian``; everything else (unknown, train,
  constructionZone, roadBoundary, ...) -> ``other``. ``<environmentObstacle>``
  and ``<phantomObstacle>`` (2020a) are not tracks and are counted in extras.
* no ego: the planning problem's initial state is where a *planner's* vehicle
  starts, not a recorded track, so it is not added as one. Every planning
  problem (initial state, goal states) is kept in
  ``extras["planning_problems"]`` as JSON (elements become keys, repeated
  elements lists, attributes keys, numbers numbers).
* map: each lanelet -> ``LANE_CENTERLINE`` ``"lanelet_<id>"`` (subtype the
  ``laneletType`` values joined by ``,``; the centerline is the midpoint of
  the bounds point by point, commonroad-io's ``center_vertices``, or
  :func:`~datadrive.core.geometry.centerline_from_bounds` when the
  bounds have different point counts), its bounds -> ``LANE_BOUNDARY``
  ``"lanelet_<id>_left"``/``"_right"`` (subtype the ``lineMarking``) with
  ``LEFT_BOUNDARY``/``RIGHT_BOUNDARY``; ``successor``/``predecessor`` ->
  ``SUCCESSOR``/``PREDECESSOR``; ``adjacentLeft``/``adjacentRight`` in the
  same driving direction -> ``LEFT_NEIGHBOR``/``RIGHT_NEIGHBOR`` (opposite
  direction ones are listed in ``extras["opposite_neighbors"]``).
  ``crosswalk`` lanelets -> closed ``CROSSWALK`` polygons, ``sidewalk`` ->
  closed ``OTHER`` polygons. 2020a stop lines -> ``STOP_LINE``
  ``"lanelet_<id>_stop_line"`` (its points, or the lanelet's end when it has
  none) with ``CONTROLS`` to the lanelet; traffic lights with a position ->
  ``OTHER`` ``"traffic_light_<id>"`` with ``CONTROLS`` to the lanelets that
  reference them; lanelets that an intersection names as successors of an
  incoming are ``is_intersection``; a lanelet that references maximum-speed
  traffic signs (2020a, :data:`MAX_SPEED_SIGN_IDS`) gets the lowest of their
  values as its ``speed_limit_mps`` (the rule of CommonRoad's C++ traffic-rule
  library, ``TrafficSignInterpreter::speedLimit``: the minimum over its signs).
* traffic lights (2020a): each lanelet that references a light gets a row of
  :class:`~datadrive.core.scenario.TrafficLights` with the cycle's colour at
  every step (commonroad-io's ``get_state_at_time_step``): red and redYellow
  -> STOP, yellow -> CAUTION, green -> GO, inactive -> UNKNOWN (ARROW_* when
  the light's direction is not ``all``), invalid where ``active`` is false;
  the stop point is the middle of the lanelet's stop line (or end).
* frame ``"commonroad_<benchmarkID>"`` (every CommonRoad scenario has its
  own local Cartesian frame); ``location`` the benchmark id's map part
  (``USA_US101`` of ``USA_US101-3_3_T-1``); 2020a's GPS location, tags,
  author, source and version in extras.

Notation:
    A: obstacles. T: time steps. L: lanelets with a traffic light.
"""

from __future__ import annotations

import hashlib
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

import numpy as np

from datadrive.core.geometry import centerline_from_bounds
from datadrive.core.scenario import (
    MapBuilder,
    MapFeatureKind,
    MapFeatures,
    MapRelation,
    ObjectType,
    Scenario,
    Tracks,
    TrafficLights,
    TrafficLightState,
)
from datadrive.core.typing import NDArrayFloat
from datadrive.errors import (
    InvalidValueError,
    SchemaMismatchError,
    UnsupportedFormatError,
)
from datadrive.sources.base import Adapter, file_head
from datadrive.sources.safe_xml import parse_xml

__all__ = ["MAX_CELLS", "MAX_STEPS", "SUPPORTED_VERSIONS", "CommonRoadAdapter", "obstacle_object_type"]

SUPPORTED_VERSIONS: Final[frozenset[str]] = frozenset({"2018a", "2018b", "2020a"})
"""``commonRoadVersion`` values this reader understands."""

MAX_STEPS: Final[int] = 1_000_000
"""A scenario spanning more time steps than this is refused as absurd."""

MAX_CELLS: Final[int] = 20_000_000
"""A scenario of more obstacle x step cells than this is refused (it would take gigabytes)."""

_VEHICLE_TYPES: Final[frozenset[str]] = frozenset(
    {"car", "truck", "bus", "taxi", "priorityvehicle", "parkedvehicle", "vehicle"}
)
_CYCLIST_TYPES: Final[frozenset[str]] = frozenset({"bicycle", "motorcycle"})
_LIGHT_COLORS: Final[Mapping[str, tuple[TrafficLightState, TrafficLightState]]] = {
    "red": (TrafficLightState.STOP, TrafficLightState.ARROW_STOP),
    "redyellow": (TrafficLightState.STOP, TrafficLightState.ARROW_STOP),
    "yellow": (TrafficLightState.CAUTION, TrafficLightState.ARROW_CAUTION),
    "green": (TrafficLightState.GO, TrafficLightState.ARROW_GO),
    "inactive": (TrafficLightState.UNKNOWN, TrafficLightState.UNKNOWN),
}


def obstacle_object_type(obstacle_type: str) -> ObjectType:
    """The coarse type of a CommonRoad obstacle type (see the module docstring)."""
    label = obstacle_type.strip().lower()
    if label in _VEHICLE_TYPES:
        return ObjectType.VEHICLE
    if label in _CYCLIST_TYPES:
        return ObjectType.CYCLIST
    if label == "pedestrian":
        return ObjectType.PEDESTRIAN
    return ObjectType.OTHER


# --------------------------------------------------------------------------- small readers


class _Reader:
    """Typed access to elements, raising datadrive errors that name the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def number(self, text: str | None, what: str) -> float:
        try:
            value = float(text)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InvalidValueError(self.path, f"{what} is {text!r}, not a number") from None
        if not math.isfinite(value):
            raise InvalidValueError(self.path, f"{what} is {text}, not a finite number")
        return value

    def integer(self, text: str | None, what: str) -> int:
        try:
            return int((text or "").strip())
        except ValueError:
            raise InvalidValueError(self.path, f"{what} is {text!r}, not an integer") from None

    def child(self, element: ET.Element, tag: str, what: str) -> ET.Element:
        found = element.find(tag)
        if found is None:
            raise SchemaMismatchError(self.path, f"{what} has no <{tag}>")
        return found

    def value(self, element: ET.Element | None, what: str) -> float | None:
        """An ``exact`` value or the midpoint of an interval; None when absent."""
        if element is None:
            return None
        exact = element.find("exact")
        if exact is not None:
            return self.number(exact.text, what)
        start, end = element.find("intervalStart"), element.find("intervalEnd")
        if start is not None and end is not None:
            return (self.number(start.text, what) + self.number(end.text, what)) / 2.0
        if element.text is not None and element.text.strip():
            return self.number(element.text, what)
        raise SchemaMismatchError(self.path, f"{what} has neither <exact> nor an interval")

    def point(self, element: ET.Element, what: str) -> tuple[float, float, float]:
        x = self.number(self.child(element, "x", what).text, f"{what} x")
        y = self.number(self.child(element, "y", what).text, f"{what} y")
        z_el = element.find("z")
        return x, y, (math.nan if z_el is None else self.number(z_el.text, f"{what} z"))

    def points(self, element: ET.Element, what: str) -> NDArrayFloat:
        pts = [self.point(p, what) for p in element.findall("point")]
        if not pts:
            raise SchemaMismatchError(self.path, f"{what} has no points")
        return np.asarray(pts, dtype=np.float64)

    def position(self, element: ET.Element, what: str) -> tuple[float, float, float] | None:
        """A state's position: the point, or the centre of a region; None for lanelet-only positions."""
        point = element.find("point")
        if point is not None:
            return self.point(point, what)
        centres: list[tuple[float, float, float]] = []
        for shape in element:
            if shape.tag in ("rectangle", "circle"):
                center = shape.find("center")
                centres.append((0.0, 0.0, math.nan) if center is None else self.point(center, what))
            elif shape.tag == "polygon":
                pts = self.points(shape, what)
                centres.append((float(pts[:, 0].mean()), float(pts[:, 1].mean()), math.nan))
        if not centres:
            return None
        c = np.asarray(centres, dtype=np.float64)
        return float(c[:, 0].mean()), float(c[:, 1].mean()), float(c[:, 2].mean())


def _to_json(element: ET.Element) -> Any:
    """An element as plain JSON: children -> keys (repeated -> lists), attributes -> keys."""
    children = list(element)
    if not children and not element.attrib:
        return _scalar(element.text)
    out: dict[str, Any] = {k: _scalar(v) for k, v in element.attrib.items()}
    for child in children:
        value = _to_json(child)
        if child.tag in out:
            if not isinstance(out[child.tag], list) or child.tag not in _repeated(element):
                out[child.tag] = [out[child.tag]]
            out[child.tag].append(value)
        else:
            out[child.tag] = [value] if child.tag in _repeated(element) else value
    return out


def _repeated(element: ET.Element) -> set[str]:
    seen: set[str] = set()
    twice: set[str] = set()
    for child in element:
        (twice if child.tag in seen else seen).add(child.tag)
    return twice


def _scalar(text: str | None) -> Any:
    if text is None or not text.strip():
        return None
    s = text.strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        value = float(s)
    except ValueError:
        return s
    return value if math.isfinite(value) else s


# --------------------------------------------------------------------------- obstacles


@dataclass(frozen=True)
class _Obstacle:
    track_id: str
    category: str
    static: bool
    size_m: tuple[float, float, float]
    times: list[int]
    states: list[tuple[float, float, float, float, float, float]]  # x, y, z, heading, vx, vy
    has_occupancy_set: bool


def _obstacle_elements(root: ET.Element) -> list[tuple[ET.Element, bool]]:
    """``(element, is_static)`` for every obstacle that is a track, in file order."""
    out: list[tuple[ET.Element, bool]] = []
    for el in root:
        if el.tag == "dynamicObstacle":
            out.append((el, False))
        elif el.tag == "staticObstacle":
            out.append((el, True))
        elif el.tag == "obstacle":
            out.append((el, (el.findtext("role") or "").strip() == "static"))
    return out


def _size(r: _Reader, obstacle: ET.Element, what: str) -> tuple[float, float, float]:
    shape = obstacle.find("shape")
    if shape is None:
        return math.nan, math.nan, math.nan
    rect = shape.find("rectangle")
    if rect is not None:
        length = r.number(r.child(rect, "length", what).text, f"{what} length")
        width = r.number(r.child(rect, "width", what).text, f"{what} width")
        return length, width, math.nan
    circle = shape.find("circle")
    if circle is not None:
        diameter = 2.0 * r.number(r.child(circle, "radius", what).text, f"{what} radius")
        return diameter, diameter, math.nan
    return math.nan, math.nan, math.nan


def _state(
    r: _Reader, state: ET.Element, what: str
) -> tuple[int, tuple[float, float, float, float, float, float] | None]:
    time_el = r.child(state, "time", what)
    time = r.value(time_el, f"{what} time")
    if time is None or time != int(time):
        raise InvalidValueError(r.path, f"{what} has time {time}, not a whole time step")
    position = r.position(r.child(state, "position", what), f"{what} position")
    heading = r.value(state.find("orientation"), f"{what} orientation")
    if heading is None:
        raise SchemaMismatchError(r.path, f"{what} has no <orientation>")
    if position is None:
        return int(time), None
    speed = r.value(state.find("velocity"), f"{what} velocity")
    lateral = r.value(state.find("velocityY"), f"{what} velocityY") or 0.0
    z = position[2]
    if math.isnan(z):
        z_value = r.value(state.find("positionZ"), f"{what} positionZ")
        z = math.nan if z_value is None else z_value
    if speed is None:
        vx = vy = math.nan
    else:
        c, s = math.cos(heading), math.sin(heading)
        vx, vy = speed * c - lateral * s, speed * s + lateral * c
    return int(time), (position[0], position[1], z, heading, vx, vy)


def _obstacles(r: _Reader, root: ET.Element) -> list[_Obstacle]:
    out: list[_Obstacle] = []
    for el, static in _obstacle_elements(root):
        oid = el.get("id")
        what = f"obstacle {oid}"
        category = (el.findtext("type") or "").strip() or "unknown"
        initial = r.child(el, "initialState", what)
        states: list[ET.Element] = [initial, *el.findall("trajectory/state")]
        times: list[int] = []
        values: list[tuple[float, float, float, float, float, float]] = []
        for k, st in enumerate(states):
            t, v = _state(r, st, f"{what} state {k}")
            if v is not None:
                times.append(t)
                values.append(v)
        out.append(
            _Obstacle(
                track_id=str(oid),
                category=category,
                static=static,
                size_m=_size(r, el, what),
                times=times,
                states=values,
                has_occupancy_set=el.find("occupancySet") is not None,
            )
        )
    ids = [o.track_id for o in out]
    if len(set(ids)) != len(ids):
        raise InvalidValueError(r.path, "two obstacles share an id")
    return out


def _tracks(r: _Reader, obstacles: list[_Obstacle]) -> tuple[Tracks, int]:
    """The tracks and the first time step of the scenario."""
    dynamic_times = [t for o in obstacles if not o.static for t in o.times]
    t_min = min([0, *dynamic_times])
    t_max = max([0, *dynamic_times])
    num_steps = t_max - t_min + 1
    if num_steps > MAX_STEPS or num_steps * len(obstacles) > MAX_CELLS:
        raise InvalidValueError(
            r.path, f"{len(obstacles)} obstacles over {num_steps} time steps is more than datadrive reads"
        )
    tracks = Tracks.allocate(
        np.array([o.track_id for o in obstacles], dtype=np.str_),
        np.array([obstacle_object_type(o.category) for o in obstacles], dtype=np.uint8),
        np.array([o.category for o in obstacles], dtype=np.str_),
        num_steps,
    )
    for a, o in enumerate(obstacles):
        tracks.size_m[a] = o.size_m
        if not o.states:
            continue
        values = np.asarray(o.states, dtype=np.float64)
        if o.static:
            steps = np.arange(num_steps)
            values = np.repeat(values[:1], num_steps, axis=0)
        else:
            steps = np.asarray(o.times, dtype=np.int64) - t_min
            if np.unique(steps).shape[0] != steps.shape[0]:
                raise InvalidValueError(r.path, f"obstacle {o.track_id} has two states at one time step")
        tracks.valid[a, steps] = True
        tracks.xy_m[a, steps] = values[:, :2]
        tracks.z_m[a, steps] = values[:, 2]
        tracks.heading_rad[a, steps] = values[:, 3]
        tracks.velocity_mps[a, steps] = values[:, 4:6]
    return tracks, t_min


# --------------------------------------------------------------------------- map


def _map(r: _Reader, root: ET.Element) -> tuple[MapFeatures, dict[int, ET.Element], dict[str, Any]]:
    b = MapBuilder()
    lanelets: dict[int, ET.Element] = {}
    for el in root.iter("lanelet"):
        if el.find("leftBound") is None:  # a reference (<lanelet ref=...>) inside a goal or position
            continue
        lid = r.integer(el.get("id"), "a lanelet id")
        if lid in lanelets:
            raise InvalidValueError(r.path, f"lanelet id {lid} appears twice")
        lanelets[lid] = el
    in_intersection: set[int] = set()
    for inc in root.iter("incoming"):
        for tag in ("successorsRight", "successorsStraight", "successorsLeft"):
            for ref in inc.findall(tag):
                in_intersection.add(r.integer(ref.get("ref"), f"intersection {tag} ref"))
    light_elements = {r.integer(t.get("id"), "a traffic light id"): t for t in root.findall("trafficLight")}
    sign_limits = _max_speed_signs(r, root)
    opposite: list[list[str]] = []
    for lid, el in lanelets.items():
        what = f"lanelet {lid}"
        left_el, right_el = r.child(el, "leftBound", what), r.child(el, "rightBound", what)
        left = r.points(left_el, f"{what} leftBound")
        right = r.points(right_el, f"{what} rightBound")
        types = [(t.text or "").strip() for t in el.findall("laneletType")]
        fid = f"lanelet_{lid}"
        if "crosswalk" in types or "sidewalk" in types:
            kind = MapFeatureKind.CROSSWALK if "crosswalk" in types else MapFeatureKind.OTHER
            b.add(fid, kind, np.concatenate([left, right[::-1], left[:1]]), subtype=",".join(types))
            continue
        limits = [
            sign_limits[ref]
            for ref in (
                r.integer(x.get("ref"), f"{what} trafficSignRef") for x in el.findall("trafficSignRef")
            )
            if ref in sign_limits
        ]
        b.add(
            fid,
            MapFeatureKind.LANE_CENTERLINE,
            centerline_from_bounds(left, right, paired=True),
            subtype=",".join(types),
            is_intersection=lid in in_intersection,
            speed_limit_mps=min(limits) if limits else float("nan"),
        )
        for side, bound, relation in (
            ("left", left, MapRelation.LEFT_BOUNDARY),
            ("right", right, MapRelation.RIGHT_BOUNDARY),
        ):
            marking = ((left_el if side == "left" else right_el).findtext("lineMarking") or "").strip()
            b.add(f"{fid}_{side}", MapFeatureKind.LANE_BOUNDARY, bound, subtype=marking)
            b.relate(fid, relation, f"{fid}_{side}")
        for tag, relation in (("successor", MapRelation.SUCCESSOR), ("predecessor", MapRelation.PREDECESSOR)):
            for ref in el.findall(tag):
                b.relate(fid, relation, f"lanelet_{r.integer(ref.get('ref'), f'{what} {tag} ref')}")
        for tag, relation in (
            ("adjacentLeft", MapRelation.LEFT_NEIGHBOR),
            ("adjacentRight", MapRelation.RIGHT_NEIGHBOR),
        ):
            ref_el = el.find(tag)
            if ref_el is None:
                continue
            other = f"lanelet_{r.integer(ref_el.get('ref'), f'{what} {tag} ref')}"
            if ref_el.get("drivingDir", "same") == "same":
                b.relate(fid, relation, other)
            else:
                opposite.append([fid, tag, other])
        stop = el.find("stopLine")
        if stop is not None:
            pts = [r.point(p, f"{what} stopLine") for p in stop.findall("point")]
            line = np.asarray(pts, dtype=np.float64) if len(pts) >= 2 else np.stack([left[-1], right[-1]])
            b.add(
                f"{fid}_stop_line", MapFeatureKind.STOP_LINE, line, subtype=stop.findtext("lineMarking") or ""
            )
            b.relate(f"{fid}_stop_line", MapRelation.CONTROLS, fid)
    for tid, light in light_elements.items():
        point = light.find("position/point")
        if point is None:
            continue
        b.add(
            f"traffic_light_{tid}",
            MapFeatureKind.OTHER,
            np.asarray([r.point(point, f"traffic light {tid}")]),
            subtype="traffic_light",
        )
    for lid, el in lanelets.items():
        for ref in el.findall("trafficLightRef"):
            b.relate(
                f"traffic_light_{r.integer(ref.get('ref'), 'trafficLightRef')}",
                MapRelation.CONTROLS,
                f"lanelet_{lid}",
            )
    return b.build(), lanelets, {"opposite_neighbors": opposite}


MAX_SPEED_SIGN_IDS = frozenset({"274", "R2-1", "r301"})
"""CommonRoad ``trafficSignID`` values of a maximum-speed sign: Germany's and Zamunda's 274,
the USA's R2-1, Spain's r301 (commonroad-io's ``TrafficSignID*.MAX_SPEED``)."""


def _max_speed_signs(r: _Reader, root: ET.Element) -> dict[int, float]:
    """Traffic sign id -> its maximum speed in m/s (CommonRoad's ``additionalValue`` is SI)."""
    out: dict[int, float] = {}
    for sign in root.findall("trafficSign"):
        sid = r.integer(sign.get("id"), "a traffic sign id")
        for element in sign.findall("trafficSignElement"):
            if (element.findtext("trafficSignID") or "").strip() not in MAX_SPEED_SIGN_IDS:
                continue
            value = r.number(element.findtext("additionalValue"), f"traffic sign {sid} speed limit")
            if not 0.0 < value < 200.0:
                raise InvalidValueError(r.path, f"traffic sign {sid}: speed limit {value} m/s is not a speed")
            out[sid] = min(value, out.get(sid, value))
    return out


def _traffic_lights(
    r: _Reader,
    root: ET.Element,
    lanelets: dict[int, ET.Element],
    map_features: MapFeatures,
    steps: np.ndarray,
) -> TrafficLights | None:
    lights = {r.integer(t.get("id"), "a traffic light id"): t for t in root.findall("trafficLight")}
    if not lights:
        return None
    index = {fid: i for i, fid in enumerate(map_features.feature_ids.tolist())}
    lane_ids: list[str] = []
    states: list[np.ndarray] = []
    valid: list[np.ndarray] = []
    stops: list[NDArrayFloat] = []
    for lid, el in lanelets.items():
        refs = [x.get("ref") for x in el.findall("trafficLightRef")]
        refs += [x.get("ref") for x in el.findall("stopLine/trafficLightRef")]
        known = [r.integer(x, "trafficLightRef") for x in refs]
        known = [x for x in known if x in lights]
        fid = f"lanelet_{lid}"
        if not known or fid not in index:
            continue
        light = lights[known[0]]
        what = f"traffic light {known[0]}"
        durations = [
            r.integer(c.findtext("duration"), f"{what} duration") for c in light.findall("cycle/cycleElement")
        ]
        colors = [(c.findtext("color") or "").strip().lower() for c in light.findall("cycle/cycleElement")]
        if not durations or min(durations) <= 0:
            raise InvalidValueError(r.path, f"{what} has no cycle or a non-positive duration")
        unknown = [c for c in colors if c not in _LIGHT_COLORS]
        if unknown:
            raise InvalidValueError(r.path, f"{what} has colour {unknown[0]!r}")
        offset = r.integer(light.findtext("cycle/timeOffset") or "0", f"{what} timeOffset")
        arrow = (light.findtext("direction") or "all").strip() != "all"
        codes = np.array([_LIGHT_COLORS[c][1 if arrow else 0] for c in colors], dtype=np.int8)
        starts = np.concatenate([[0], np.cumsum(durations)])
        phase = (steps - offset) % starts[-1]
        states.append(codes[np.searchsorted(starts, phase, side="right") - 1])
        active = (light.findtext("active") or "true").strip().lower() != "false"
        valid.append(np.full(steps.shape[0], active, dtype=np.bool_))
        lane_ids.append(fid)
        stop = f"{fid}_stop_line"
        if stop in index:
            stops.append(map_features.points(index[stop]).mean(axis=0))
        else:
            stops.append(map_features.points(index[fid])[-1])
    if not lane_ids:
        return None
    return TrafficLights(
        lane_ids=np.asarray(lane_ids, dtype=np.str_),
        state=np.stack(states).astype(np.int8),
        stop_point_m=np.stack(stops).astype(np.float64),
        valid=np.stack(valid),
    )


# --------------------------------------------------------------------------- adapter


class CommonRoadAdapter(Adapter):
    """Reads CommonRoad XML scenarios (2018a/b, 2020a), one Scenario per file."""

    name: ClassVar[str] = "commonroad"
    version: ClassVar[str] = "1"
    unit: ClassVar[Literal["file", "dir"]] = "file"
    licence: ClassVar[str] = (
        "per scenario (commonroad-io test scenarios: BSD-3-Clause; NGSIM: US DOT public data)"
    )
    download_hint: ClassVar[str] = "CommonRoad scenarios: https://commonroad.in.tum.de/scenarios"

    def claims(self, path: Path) -> bool:
        return path.suffix.lower() == ".xml" and b"<commonRoad" in file_head(path, 2048)

    def _read(self, path: Path) -> Iterator[Scenario]:
        data = path.read_bytes()
        root = parse_xml(data, path)
        r = _Reader(path)
        if root.tag != "commonRoad":
            raise UnsupportedFormatError(path, f"the XML root is <{root.tag}>, not <commonRoad>")
        version = root.get("commonRoadVersion", "")
        if version not in SUPPORTED_VERSIONS:
            raise UnsupportedFormatError(
                path,
                f"CommonRoad version {version!r}; datadrive reads {', '.join(sorted(SUPPORTED_VERSIONS))}",
            )
        dt_s = r.number(root.get("timeStepSize"), "timeStepSize")
        dt_ns = round(dt_s * 1e9)
        if dt_ns <= 0:
            raise InvalidValueError(path, f"timeStepSize {dt_s} is not positive")
        benchmark = root.get("benchmarkID") or path.stem
        obstacles = _obstacles(r, root)
        tracks, t_min = _tracks(r, obstacles)
        map_features, lanelets, map_extras = _map(r, root)
        steps = np.arange(t_min, t_min + tracks.num_steps, dtype=np.int64)
        lights = _traffic_lights(r, root, lanelets, map_features, steps)
        location_el = root.find("location")
        tags = root.get("tags")
        scenario_tags = root.find("scenarioTags")
        extras: dict[str, Any] = {
            "commonroad_version": version,
            "benchmark_id": benchmark,
            "time_step_size_s": dt_s,
            "first_time_step": int(t_min),
            "tags": tags.split()
            if tags
            else [c.tag for c in scenario_tags]
            if scenario_tags is not None
            else [],
            "author": root.get("author"),
            "affiliation": root.get("affiliation"),
            "source": root.get("source"),
            "date": root.get("date"),
            "gps_location": None if location_el is None else _to_json(location_el),
            "planning_problems": [_to_json(p) for p in root.findall("planningProblem")],
            "num_static_obstacles": sum(o.static for o in obstacles),
            "occupancy_set_obstacles": [o.track_id for o in obstacles if o.has_occupancy_set],
            "num_environment_obstacles": len(root.findall("environmentObstacle")),
            "num_phantom_obstacles": len(root.findall("phantomObstacle")),
            **map_extras,
        }
        yield Scenario(
            scenario_id=benchmark,
            source=self.name,
            timestamps_ns=steps * dt_ns,
            tracks=tracks,
            metadata=self.metadata(
                path,
                hashlib.sha256(data).hexdigest(),
                frame=f"commonroad_{benchmark}",
                location=benchmark.split("-")[0],
                extras=extras,
            ),
            map=map_features,
            traffic_lights=lights,
        )
