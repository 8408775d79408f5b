"""Lanelet2 maps (``.osm``) as :class:`MapFeatures`, and map-only Scenarios.

A Lanelet2 map is OpenStreetMap XML: ``node`` (a lat/lon point), ``way`` (a
linestring of nodes) and ``relation`` (lanelets, areas, regulatory elements).
The XML is parsed here with the standard library's expat parser (DTDs and
entity declarations refused, see :mod:`datadrive.sources.safe_xml`), not with
the ``lanelet2`` package: lanelet2 reads non-numeric coordinates as 0 without
a word, cannot load a lanelet whose border is split over several ways (the
INTERACTION maps in circulation have such lanelets: lanelet2 gives them empty
borders), and is an optional, compiled dependency. The tests check the result against
lanelet2 wherever lanelet2 reads the map correctly (projection, bound
orientation, successors, neighbours).

Projection:
    Points are projected with UTM (WGS84, Krüger's series to order 6, the
    series GeographicLib and so lanelet2's ``UtmProjector`` evaluate; see
    :func:`datadrive.core.geodesy.utm_local_xy`), in the zone of a
    projection origin, minus the origin's own UTM coordinates, so
    ``(0, 0)`` is the origin. This is lanelet2's ``UtmProjector(Origin(lat,
    lon))``, including its handling of points outside the origin's zone (they
    stay in the origin's zone). The origin is, in this order:

    1. the one the caller passes (``Lanelet2MapConfig.origin_lat_lon``);
    2. ``(0, 0)`` when every node lies within 1 degree of ``(0, 0)``: such a
       map is *pseudo-georeferenced* (the INTERACTION convention: lat/lon are
       not real positions, and the dataset's own scripts project them with
       ``UtmProjector(Origin(0, 0))`` to get the frame of its tracks);
    3. otherwise the southwest corner of the nodes' bounding box rounded down
       to 0.1 degree, a rule that is stable under small edits of the map and
       gives ``(49.0, 8.4)`` for Lanelet2's own ``mapping_example.osm``, the
       origin Lanelet2's tutorials use for it.

    The origin, zone and hemisphere are in ``extras``. The frame is
    ``"interaction_local_<file stem>"`` for a pseudo-georeferenced map (the
    frame of the INTERACTION tracks recorded on it) and
    ``"utm<zone><n|s>_origin_<lat>_<lon>"`` otherwise. z is the ``ele`` tag,
    NaN where a node has none. Elements marked ``action='delete'`` (JOSM) are
    skipped, as lanelet2 does.

What becomes of the elements (feature ids keep lanelet2's primitive names):

* a ``lanelet`` relation -> its left and right borders, each the chain of its
  ``left`` (``right``) member ways joined end to end at shared nodes (or at
  their nearest ends; usually there is one way),
  oriented as lanelet2's ``geometry::align`` orients them. Then by subtype:

  - ``crosswalk`` -> one closed ``CROSSWALK`` polygon ``"lanelet_<id>"``
    (left border, then the right border reversed, then the first point);
  - ``walkway``, ``stairs`` -> a closed ``OTHER`` polygon of the same shape;
  - anything else (``road``, ``highway``, ``bicycle_lane``, ``bus_lane``,
    ``rail``, ...) is a lane -> ``LANE_CENTERLINE`` ``"lanelet_<id>"``,
    subtype the lanelet's subtype, the centerline from
    :func:`datadrive.core.geometry.centerline_from_bounds`. Each border way becomes a feature
    ``"linestring_<id>"`` (once, shared by the lanelets on either side) with
    a ``LEFT_BOUNDARY`` / ``RIGHT_BOUNDARY`` relation from the lane.
    ``SUCCESSOR``/``PREDECESSOR``: lane b follows lane a when a's left and
    right borders end at the nodes where b's start (lanelet2's
    ``geometry::follows``, the edges of its routing graph).
    ``LEFT_NEIGHBOR``/``RIGHT_NEIGHBOR``: b is a's left neighbour when a's
    left border is b's right border, in the same direction (lanelet2's
    ``adjacentLeft``/``left``). A two-way lanelet (``one_way=no``) gets one
    centerline, in the direction of its borders, and its id is listed in
    ``extras["two_way_lanelet_ids"]``.

* a way -> ``"linestring_<id>"``, emitted when it borders a lane, belongs to
  a regulatory element, or belongs to no relation at all (free-standing
  curbs, markings); ways used only by areas or pedestrian lanelets are
  represented by those polygons. Its kind comes from its ``type`` tag:
  ``curbstone``, ``road_border``, ``guard_rail``, ``jersey_barrier``,
  ``wall``, ``fence`` -> ``ROAD_EDGE``; ``line_thin``, ``line_thick``,
  ``virtual``, ``bike_marking``, ``zig-zag``, ``keepout`` ->
  ``LANE_BOUNDARY``; ``stop_line`` -> ``STOP_LINE``; a ``traffic_sign`` whose
  subtype is a stop sign (:data:`STOP_SIGN_SUBTYPES`) -> ``STOP_SIGN`` (one
  point, the mean of the way's); anything else (``traffic_light``, other
  signs, ``light_bulbs``, ``pedestrian_marking``, ...) -> ``OTHER``. The
  subtype is ``"<type>:<subtype>"`` (or ``"<type>"``).
* a ``regulatory_element`` relation (traffic light, right of way, all-way
  stop, traffic sign, speed limit) -> ``CONTROLS`` relations from each of its
  ``ref_line`` ways (the stop lines) and each of its ``refers`` ways (the
  lights and signs themselves, so a traffic light is an ``OTHER`` feature
  located where the light is) to the lanes it governs: its ``yield`` lanelets
  if it names any (right of way, all-way stop; an all-way stop with as many
  ref_lines as yield lanelets pairs them in order, as lanelet2 does), else
  every lanelet that lists it as a ``regulatory_element``. A summary of every
  regulatory element (id, subtype, lanelets, member feature ids by role) is
  in ``extras["regulatory_elements"]``. A lane's ``speed_limit_mps`` comes
  from the ``speed_limit`` regulatory elements it lists (and its own
  ``speed_limit`` tag): see :func:`speed_from_text`.
* a ``multipolygon`` relation (an area) -> its outer ring(s), assembled from
  the ``outer`` ways as lanelet2 does, closed, as ``"area_<id>"``:
  ``freespace`` and ``parking`` -> ``DRIVABLE_AREA``, ``exit`` ->
  ``DRIVEWAY``, everything else (``vegetation``, ``walkway``, ``building``,
  ``traffic_island``, ``keepout``) -> ``OTHER``; the subtype is the area's.
  Inner rings become ``OTHER`` features ``"area_<id>_inner_<k>"`` with subtype
  ``"<subtype>:inner"``.

Errors: broken XML, a DTD, non-numeric or out-of-range coordinates, duplicate
ids, a file without lanelets (``UnsupportedFormatError``: plain OpenStreetMap
data) or without a single lanelet that has both borders raise. Lesser defects,
which lanelet2 also only reports (its ``loadRobust``), drop the element
concerned and are listed in ``extras["warnings"]`` (at most
:data:`MAX_WARNINGS`): a way naming a missing node, a lanelet without a left
or right border (counted in ``extras["num_dropped_lanelets"]``), an area ring
that does not close, a regulatory element naming a missing member. Border
ways that share no node are joined at their nearest ends anyway; a gap wider
than :data:`JOIN_TOLERANCE_M` is reported.

Map-only files:
    :class:`Scenario` needs tracks and time, a map file has neither. A map on
    its own is therefore a Scenario with **zero tracks and one timestamp**
    (0 ns) carrying the map (:func:`datadrive.sources.base.map_only_scenario`),
    so that ``inspect``, the Arrow form and the lake treat maps like any other
    record (``num_tracks`` 0, ``num_steps`` 1, ``dt_s`` null,
    ``num_map_lanes`` the lane count). Code that wants only the map calls
    :func:`read_lanelet2_map`, which returns a :class:`Lanelet2Map`.

Notation:
    N: number of points of a polyline or of the nodes of a map.
    K: number of centerline points.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

import numpy as np

from datadrive.core.geodesy import utm_local_xy, utm_zone
from datadrive.core.geometry import centerlines_from_bounds, flatten_polylines
from datadrive.core.scenario import (
    MapBuilder,
    MapFeatureKind,
    MapFeatures,
    MapRelation,
    Scenario,
)
from datadrive.core.typing import NDArrayAny, NDArrayFloat, NDArrayInt
from datadrive.errors import (
    ConfigError,
    EmptyLogError,
    InvalidValueError,
    SchemaMismatchError,
    UnsupportedFormatError,
)
from datadrive.sources.base import Adapter, file_head, map_only_scenario
from datadrive.sources.safe_xml import parse_xml_events

__all__ = [
    "JOIN_TOLERANCE_M",
    "MAX_WARNINGS",
    "PSEUDO_GEOREFERENCE_MAX_DEG",
    "STOP_SIGN_SUBTYPES",
    "Lanelet2Map",
    "Lanelet2MapAdapter",
    "Lanelet2MapConfig",
    "parse_lanelet2_map",
    "read_lanelet2_map",
    "speed_from_text",
]

PSEUDO_GEOREFERENCE_MAX_DEG: Final[float] = 1.0
"""A map whose nodes all lie within this many degrees of (0, 0) is pseudo-georeferenced."""

STOP_SIGN_SUBTYPES: Final[frozenset[str]] = frozenset({"de206", "usr1-1", "stop"})
"""``traffic_sign`` subtypes (lower case) that are stop signs: Germany's 206, the US R1-1."""

JOIN_TOLERANCE_M: Final[float] = 0.5
"""Border ways joined across a wider gap than this (no shared node) are reported in the warnings."""

MAX_WARNINGS: Final[int] = 50
"""At most this many warnings are kept in ``extras["warnings"]``."""

_PEDESTRIAN_LANELETS: Final[frozenset[str]] = frozenset({"walkway", "stairs"})
_EDGE_TYPES: Final[frozenset[str]] = frozenset(
    {"curbstone", "road_border", "guard_rail", "jersey_barrier", "wall", "fence"}
)
_LINE_TYPES: Final[frozenset[str]] = frozenset(
    {"line_thin", "line_thick", "virtual", "bike_marking", "zig-zag", "keepout"}
)
_AREA_KINDS: Final[Mapping[str, MapFeatureKind]] = {
    "freespace": MapFeatureKind.DRIVABLE_AREA,
    "parking": MapFeatureKind.DRIVABLE_AREA,
    "exit": MapFeatureKind.DRIVEWAY,
}

# --------------------------------------------------------------------------- bound alignment


def _signed_distances(lines: Sequence[NDArrayFloat], points: NDArrayFloat) -> NDArrayFloat:
    """``(N,)`` distance from ``points[k]`` to polyline ``lines[k]`` (2-D), positive on its left."""
    flat, owner, offsets = flatten_polylines(lines)
    out: NDArrayFloat = np.hypot(*(points - flat[offsets[:-1]]).T)  # one-point lines: distance to the point
    inner = owner[1:] == owner[:-1]
    a, b, so = flat[:-1][inner], flat[1:][inner], owner[:-1][inner]
    if so.shape[0] == 0:
        return out
    ab, ap = b - a, points[so] - a
    length2 = np.einsum("ij,ij->i", ab, ab)
    t = np.clip(np.einsum("ij,ij->i", ap, ab) / np.where(length2 > 0, length2, 1.0), 0.0, 1.0)
    d = np.hypot(*(ap - t[:, None] * ab).T)
    cross = ab[:, 0] * ap[:, 1] - ab[:, 1] * ap[:, 0]
    order = np.lexsort((np.arange(d.shape[0]), d, so))  # per line, the nearest segment (first on ties)
    first = order[np.concatenate([[True], so[order][1:] != so[order][:-1]])]
    out[so[first]] = np.where(cross[first] > 0, d[first], -d[first])
    return out


def _middle_points(lines: Sequence[NDArrayFloat], reversed_: NDArrayAny | None = None) -> NDArrayFloat:
    """``(N, 2)`` lanelet2's middle point of each line (its middle vertex, or the mean of its ends)."""
    flat, _, offsets = flatten_polylines(lines)
    n = np.diff(offsets)
    k = n // 2 if reversed_ is None else np.where(reversed_, n - 1 - n // 2, n // 2)
    ends = (flat[offsets[:-1]] + flat[offsets[1:] - 1]) / 2.0
    mid: NDArrayFloat = np.where((n > 2)[:, None], flat[offsets[:-1] + np.minimum(k, n - 1)], ends)
    return mid


def _align_many(
    lefts: Sequence[NDArrayFloat], rights: Sequence[NDArrayFloat]
) -> tuple[NDArrayAny, NDArrayAny]:
    """Whether to invert each left and right bound (lanelet2's ``geometry::align``), 2-D points."""
    nl = np.fromiter((p.shape[0] for p in lefts), dtype=np.int64, count=len(lefts))
    nr = np.fromiter((p.shape[0] for p in rights), dtype=np.int64, count=len(rights))
    active = ~((nl <= 1) & (nr <= 1))
    invert_left = active & (nl > 1) & ~(_signed_distances(lefts, _middle_points(rights)) < 0)
    left_middle = _middle_points(lefts, invert_left)
    invert_right = active & (nr > 1) & ~(_signed_distances(rights, left_middle) > 0)
    return invert_left, invert_right


# --------------------------------------------------------------------------- OSM model


@dataclass(frozen=True)
class _Way:
    rows: NDArrayInt  # (N,) rows into the node arrays
    node_ids: tuple[int, ...]
    tags: Mapping[str, str]


@dataclass(frozen=True)
class _Relation:
    members: tuple[tuple[str, int, str], ...]  # (type, ref, role)
    tags: Mapping[str, str]

    def refs(self, member_type: str, role: str) -> list[int]:
        return [ref for t, ref, r in self.members if t == member_type and r == role]


@dataclass
class _Osm:
    node_ids: NDArrayInt
    lat_deg: NDArrayFloat
    lon_deg: NDArrayFloat
    ele_m: NDArrayFloat
    ways: dict[int, _Way]
    relations: dict[int, _Relation]
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        self.warnings.append(message)


class _OsmCollector:
    """expat callbacks that collect OSM elements as strings in one pass (no element tree).

    Top-level ``node``, ``way`` and ``relation`` elements are kept unless
    marked ``action='delete'``; their ``tag``, ``nd`` and ``member`` children
    are read, everything else is ignored.
    """

    def __init__(self) -> None:
        self.root = ""
        self.node_ids: list[str] = []
        self.lat: list[str | None] = []
        self.lon: list[str | None] = []
        self.ele: list[str] = []
        self.ways: list[tuple[str, list[str], dict[str, str]]] = []
        self.relations: list[tuple[str, list[tuple[str, str, str]], dict[str, str]]] = []
        self._depth = 0
        self._kind = ""  # the open top-level element: "node", "way", "relation" or "" (ignored)
        self._tags: dict[str, str] = {}
        self._refs: list[str] = []
        self._members: list[tuple[str, str, str]] = []

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self._depth += 1
        if self._depth == 1:
            self.root = name
        elif self._depth == 2:
            self._kind = (
                name if name in ("node", "way", "relation") and attrs.get("action") != "delete" else ""
            )
            if self._kind == "node":
                self.node_ids.append(attrs.get("id", ""))
                self.lat.append(attrs.get("lat"))
                self.lon.append(attrs.get("lon"))
                self.ele.append("nan")
            elif self._kind:
                self._id, self._tags, self._refs, self._members = attrs.get("id", ""), {}, [], []
        elif self._depth == 3 and self._kind:
            if name == "tag":
                key = attrs.get("k", "")
                if self._kind != "node":
                    self._tags[key] = attrs.get("v", "")
                elif key == "ele":
                    self.ele[-1] = attrs.get("v", "nan")
            elif name == "nd" and self._kind == "way":
                self._refs.append(attrs.get("ref", ""))
            elif name == "member" and self._kind == "relation":
                self._members.append((attrs.get("type", ""), attrs.get("ref", ""), attrs.get("role", "")))

    def end(self, name: str) -> None:
        if self._depth == 2:
            if self._kind == "way":
                self.ways.append((self._id, self._refs, self._tags))
            elif self._kind == "relation":
                self.relations.append((self._id, self._members, self._tags))
            self._kind = ""
        self._depth -= 1


def _collect_osm(data: bytes, path: Path) -> _OsmCollector:
    """Run expat over the bytes (DTDs and entities refused, see :mod:`datadrive.sources.safe_xml`)."""
    collector = _OsmCollector()
    parse_xml_events(data, path, start=collector.start, end=collector.end)
    return collector


def _integers(values: list[str], what: str, path: Path) -> NDArrayInt:
    try:
        return np.fromiter(map(int, values), dtype=np.int64, count=len(values))
    except (ValueError, OverflowError):
        bad = next((v for v in values if not v.strip().lstrip("+-").isdigit()), values[0])
        raise InvalidValueError(path, f"a {what} is {bad[:40]!r}, not an integer") from None


def _floats(values: list[str]) -> NDArrayFloat:
    """Raises ValueError naming the first value that is not a number."""
    return np.fromiter(map(float, values), dtype=np.float64, count=len(values))


def _parse_osm(data: bytes, path: Path) -> _Osm:
    raw = _collect_osm(data, path)
    if raw.root != "osm":
        raise UnsupportedFormatError(path, f"the XML root is <{raw.root}>, not <osm>")
    if None in raw.lat or None in raw.lon:
        i = next(i for i, (a, b) in enumerate(zip(raw.lat, raw.lon, strict=True)) if a is None or b is None)
        raise SchemaMismatchError(path, f"node {raw.node_ids[i]} has no lat/lon attribute")
    node_ids = _integers(raw.node_ids, "node id", path)
    try:
        lat_deg = _floats(raw.lat)  # type: ignore[arg-type]  # None was ruled out above
        lon_deg = _floats(raw.lon)  # type: ignore[arg-type]
        ele_m = _floats(raw.ele)
    except ValueError as exc:
        raise InvalidValueError(path, f"a node coordinate is not a number ({exc})") from None
    in_range = (
        np.isfinite(lat_deg) & np.isfinite(lon_deg) & (np.abs(lat_deg) <= 90.0) & (np.abs(lon_deg) <= 180.0)
    )
    if not in_range.all():
        bad = int(np.flatnonzero(~in_range)[0])
        raise InvalidValueError(
            path,
            f"node {node_ids[bad]} has lat/lon ({raw.lat[bad]}, {raw.lon[bad]}), not a position on Earth",
        )
    ele_m[~np.isfinite(ele_m)] = np.nan
    order = np.argsort(node_ids, kind="stable")
    sorted_ids = node_ids[order]
    if sorted_ids.shape[0] > 1 and bool(np.any(sorted_ids[1:] == sorted_ids[:-1])):
        raise InvalidValueError(path, "a node id appears twice")

    relations: dict[int, _Relation] = {}
    rel_ids = _integers([r[0] for r in raw.relations], "relation id", path)
    member_refs = _integers([m[1] for r in raw.relations for m in r[1]], "relation member ref", path).tolist()
    k = 0
    for rel_id, (_, members, tags) in zip(rel_ids.tolist(), raw.relations, strict=True):
        if rel_id in relations:
            raise InvalidValueError(path, f"relation id {rel_id} appears twice")
        refs = member_refs[k : k + len(members)]
        k += len(members)
        relations[rel_id] = _Relation(
            tuple((t, ref, role) for (t, _, role), ref in zip(members, refs, strict=True)), tags
        )

    osm = _Osm(node_ids, lat_deg, lon_deg, ele_m, {}, relations)
    way_ids = _integers([w[0] for w in raw.ways], "way id", path)
    lengths = np.fromiter((len(w[1]) for w in raw.ways), dtype=np.int64, count=len(raw.ways))
    refs = _integers([r for w in raw.ways for r in w[1]], "way node ref", path)
    pos = np.clip(np.searchsorted(sorted_ids, refs), 0, max(sorted_ids.shape[0] - 1, 0))
    found = sorted_ids[pos] == refs if sorted_ids.shape[0] else np.zeros(refs.shape[0], dtype=np.bool_)
    rows = order[pos] if sorted_ids.shape[0] else np.zeros(refs.shape[0], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    missing = np.bincount(np.repeat(np.arange(lengths.shape[0]), lengths)[~found], minlength=lengths.shape[0])
    ref_list = refs.tolist()
    for i, (way_id, (_, _, tags)) in enumerate(zip(way_ids.tolist(), raw.ways, strict=True)):
        if way_id in osm.ways:
            raise InvalidValueError(path, f"way id {way_id} appears twice")
        a, b = starts[i], starts[i + 1]
        if a == b or missing[i]:
            what = "no nodes" if a == b else f"names missing node {refs[a:b][~found[a:b]][0]}"
            osm.warn(f"way {way_id} dropped: {what}")
            continue
        osm.ways[way_id] = _Way(rows[a:b], tuple(ref_list[a:b]), tags)
    return osm


# --------------------------------------------------------------------------- chains and rings


def _attach(ids: list[int], way: _Way, at_tail: bool, reverse: bool, shared: bool) -> None:
    """Add ``way`` to the chain ``ids`` at its tail or head, reversed or not, dropping a shared node."""
    nodes = list(way.node_ids[::-1] if reverse else way.node_ids)
    if at_tail:
        ids.extend(nodes[1:] if shared else nodes)
    else:
        ids[:0] = nodes[:-1] if shared else nodes


def _chain(ways: list[_Way], position: Callable[[int], NDArrayFloat]) -> tuple[list[int], float]:
    """Join ways end to end into one polyline of node ids, in any member order and direction.

    Ways are joined where they share an end node; where none does (a map
    that duplicated the node, or left a gap), at the nearest pair of end
    points.

    Returns:
        The chain's node ids and the widest gap bridged in metres (0 when
        every join is a shared node).
    """
    ids = list(ways[0].node_ids)
    rest = list(ways[1:])
    widest = 0.0
    while rest:
        joined = False
        for k, w in enumerate(rest):
            head, tail = w.node_ids[0], w.node_ids[-1]
            # (chain end, way end) pairs: tail-head, tail-tail, head-tail, head-head
            for at_tail, reverse, mine, theirs in (
                (True, False, ids[-1], head),
                (True, True, ids[-1], tail),
                (False, False, ids[0], tail),
                (False, True, ids[0], head),
            ):
                if mine == theirs:
                    _attach(ids, w, at_tail, reverse, shared=True)
                    del rest[k]
                    joined = True
                    break
            if joined:
                break
        if joined:
            continue
        best: tuple[float, int, bool, bool] | None = None
        for k, w in enumerate(rest):
            for at_tail, reverse, mine, theirs in (
                (True, False, ids[-1], w.node_ids[0]),
                (True, True, ids[-1], w.node_ids[-1]),
                (False, False, ids[0], w.node_ids[-1]),
                (False, True, ids[0], w.node_ids[0]),
            ):
                gap = float(np.hypot(*(position(mine)[:2] - position(theirs)[:2])))
                if best is None or gap < best[0]:
                    best = (gap, k, at_tail, reverse)
        if best is None:  # unreachable: rest is not empty
            break
        gap, k, at_tail, reverse = best
        widest = max(widest, gap)
        _attach(ids, rest.pop(k), at_tail, reverse, shared=False)
    return ids, widest


def _rings(ways: list[_Way]) -> tuple[list[list[int]], int]:
    """Closed rings of node ids assembled from ways (lanelet2's ``assembleBoundary``).

    Returns:
        The closed rings (first id repeated at the end) and the number of
        ways that could not be closed into a ring.
    """
    rest = list(ways)
    rings: list[list[int]] = []
    failed = 0
    while rest:
        ring = list(rest.pop(0).node_ids)
        while ring[-1] != ring[0] or len(ring) < 2:
            k = next((k for k, w in enumerate(rest) if ring[-1] in (w.node_ids[0], w.node_ids[-1])), None)
            if k is None:
                break
            w = rest.pop(k)
            ring.extend(w.node_ids[1:] if w.node_ids[0] == ring[-1] else w.node_ids[-2::-1])
        if ring[-1] == ring[0] and len(ring) >= 4:
            rings.append(ring)
        else:
            failed += 1
    return rings, failed


# --------------------------------------------------------------------------- the map


@dataclass(frozen=True)
class Lanelet2Map:
    """One Lanelet2 map file, decoded.

    Attributes:
        map: The features (see the module docstring).
        frame: Name of the metric frame of every point.
        origin_lat_lon: The projection origin, degrees.
        extras: Facts about the map (projection, counts, two-way lanelets,
            regulatory elements, warnings), JSON-serialisable.
    """

    map: MapFeatures
    frame: str
    origin_lat_lon: tuple[float, float]
    extras: Mapping[str, Any]


def _way_kind(tags: Mapping[str, str]) -> tuple[MapFeatureKind, str]:
    way_type, subtype = tags.get("type", ""), tags.get("subtype", "")
    label = f"{way_type}:{subtype}" if subtype else way_type
    if way_type in _EDGE_TYPES:
        return MapFeatureKind.ROAD_EDGE, label
    if way_type in _LINE_TYPES:
        return MapFeatureKind.LANE_BOUNDARY, label
    if way_type == "stop_line":
        return MapFeatureKind.STOP_LINE, label
    if way_type == "traffic_sign" and subtype.lower() in STOP_SIGN_SUBTYPES:
        return MapFeatureKind.STOP_SIGN, label
    return MapFeatureKind.OTHER, label


def _origin(osm: _Osm, requested: tuple[float, float] | None) -> tuple[tuple[float, float], bool]:
    """The projection origin and whether the map is pseudo-georeferenced."""
    pseudo = bool(
        np.all(np.abs(osm.lat_deg) < PSEUDO_GEOREFERENCE_MAX_DEG)
        and np.all(np.abs(osm.lon_deg) < PSEUDO_GEOREFERENCE_MAX_DEG)
    )
    if requested is not None:
        return (float(requested[0]), float(requested[1])), pseudo
    if pseudo:
        return (0.0, 0.0), True
    lat0 = math.floor(float(osm.lat_deg.min()) * 10.0) / 10.0
    lon0 = math.floor(float(osm.lon_deg.min()) * 10.0) / 10.0
    return (round(lat0, 1), round(lon0, 1)), False


class _Builder:
    """Turns the OSM model into map features."""

    def __init__(self, osm: _Osm, xyz_m: NDArrayFloat, path: Path) -> None:
        self.osm = osm
        self.xyz_m = xyz_m
        self.path = path
        self.builder = MapBuilder()
        self.emitted_ways: set[int] = set()
        self.lanes: dict[int, tuple[list[int], list[int]]] = {}  # lanelet id -> (left ids, right ids)
        self.two_way: list[str] = []
        self.speed_limits: dict[int, float] = {}  # lanelet id -> m/s
        self.dropped = 0
        self._order = np.argsort(osm.node_ids, kind="stable")
        self._sorted_ids = osm.node_ids[self._order]

    def points(self, node_ids: Sequence[int]) -> NDArrayFloat:
        rows = self._rows(node_ids)
        pts: NDArrayFloat = self.xyz_m[rows]
        return pts

    def position(self, node_id: int) -> NDArrayFloat:
        """``(3,)`` position of one node."""
        point: NDArrayFloat = self.xyz_m[self._rows([node_id])[0]]
        return point

    def _rows(self, node_ids: Sequence[int]) -> NDArrayInt:
        index = np.searchsorted(self._sorted_ids, np.asarray(node_ids, dtype=np.int64))
        rows: NDArrayInt = self._order[index]
        return rows

    def emit_way(self, way_id: int) -> str | None:
        way = self.osm.ways.get(way_id)
        if way is None:
            return None
        fid = f"linestring_{way_id}"
        if way_id not in self.emitted_ways:
            kind, label = _way_kind(way.tags)
            pts = self.xyz_m[way.rows]
            if kind == MapFeatureKind.STOP_SIGN:
                pts = (
                    np.nanmean(pts, axis=0, keepdims=True)
                    if np.isfinite(pts[:, 2]).any()
                    else pts.mean(axis=0, keepdims=True)
                )
            self.builder.add(fid, kind, pts, subtype=label)
            self.emitted_ways.add(way_id)
        return fid

    def borders(self, rel_id: int, rel: _Relation) -> tuple[list[int], list[int]] | None:
        """The node ids of a lanelet's left and right border chains, as written; None if it has none."""
        sides: list[list[int]] = []
        for role in ("left", "right"):
            refs = rel.refs("way", role)
            ways = [self.osm.ways[r] for r in refs if r in self.osm.ways]
            if not ways:
                what = "is missing" if refs else "is not named"
                self.osm.warn(f"lanelet {rel_id} dropped: its {role} border {what}")
                return None
            if len(ways) < len(refs):
                self.osm.warn(f"lanelet {rel_id}: its {role} border lacks a missing way")
            chained, gap = _chain(ways, self.position)
            if gap > JOIN_TOLERANCE_M:
                self.osm.warn(f"lanelet {rel_id}: its {role} border ways are joined across a {gap:.1f} m gap")
            sides.append(chained)
        return sides[0], sides[1]

    def lanelets(self, lanelets: Mapping[int, _Relation]) -> None:
        """Every lanelet: borders aligned and centerlines computed for all lanes at once."""
        found = {i: self.borders(i, lanelets[i]) for i in lanelets}
        ids = [i for i, chain in found.items() if chain is not None]
        chains = [chain for chain in found.values() if chain is not None]
        self.dropped = len(found) - len(ids)
        if not ids:
            raise InvalidValueError(self.path, f"no lanelet has both borders ({self.osm.warnings[0]})")
        sides = [side for chain in chains for side in chain]  # left, right, left, right, ...
        lengths = np.fromiter((len(side) for side in sides), dtype=np.int64, count=len(sides))
        points = np.split(self.points([i for side in sides for i in side]), np.cumsum(lengths)[:-1])
        lefts, rights = points[0::2], points[1::2]
        invert_left, invert_right = _align_many([p[:, :2] for p in lefts], [p[:, :2] for p in rights])
        for i in np.flatnonzero(invert_left).tolist():
            lefts[i], chains[i] = lefts[i][::-1], (chains[i][0][::-1], chains[i][1])
        for i in np.flatnonzero(invert_right).tolist():
            rights[i], chains[i] = rights[i][::-1], (chains[i][0], chains[i][1][::-1])
        subtypes = [lanelets[i].tags.get("subtype", "") for i in ids]
        lane = [sub not in ("crosswalk", *_PEDESTRIAN_LANELETS) for sub in subtypes]
        lane_rows = [k for k in range(len(ids)) if lane[k]]
        centers = iter(centerlines_from_bounds([lefts[k] for k in lane_rows], [rights[k] for k in lane_rows]))
        for k, rel_id in enumerate(ids):
            fid, rel, subtype = f"lanelet_{rel_id}", lanelets[rel_id], subtypes[k]
            if not lane[k]:
                ring = np.concatenate([lefts[k], rights[k][::-1], lefts[k][:1]])
                kind = MapFeatureKind.CROSSWALK if subtype == "crosswalk" else MapFeatureKind.OTHER
                self.builder.add(fid, kind, ring, subtype=subtype)
                continue
            self.builder.add(
                fid,
                MapFeatureKind.LANE_CENTERLINE,
                next(centers),
                subtype=subtype,
                speed_limit_mps=self.speed_limits.get(rel_id, math.nan),
            )
            self.lanes[rel_id] = chains[k]
            if rel.tags.get("one_way", "") == "no":
                self.two_way.append(fid)
            for role, relation in (
                ("left", MapRelation.LEFT_BOUNDARY),
                ("right", MapRelation.RIGHT_BOUNDARY),
            ):
                for ref in rel.refs("way", role):
                    bound_id = self.emit_way(ref)
                    if bound_id is not None:
                        self.builder.relate(fid, relation, bound_id)

    def topology(self) -> None:
        starts: dict[tuple[int, int], list[int]] = {}
        for lid, (left, right) in self.lanes.items():
            starts.setdefault((left[0], right[0]), []).append(lid)
        by_right: dict[tuple[int, ...], list[int]] = {}
        for lid, (_left, right) in self.lanes.items():
            by_right.setdefault(tuple(right), []).append(lid)
        for lid, (left, right) in self.lanes.items():
            src = f"lanelet_{lid}"
            for nxt in starts.get((left[-1], right[-1]), []):
                if nxt != lid:
                    self.builder.relate(src, MapRelation.SUCCESSOR, f"lanelet_{nxt}")
                    self.builder.relate(f"lanelet_{nxt}", MapRelation.PREDECESSOR, src)
            for other in by_right.get(tuple(left), []):
                if other != lid:
                    self.builder.relate(src, MapRelation.LEFT_NEIGHBOR, f"lanelet_{other}")
                    self.builder.relate(f"lanelet_{other}", MapRelation.RIGHT_NEIGHBOR, src)

    def regulatory_element(self, rel_id: int, rel: _Relation, users: list[int]) -> dict[str, Any]:
        yields = [r for r in rel.refs("relation", "yield") if r in self.lanes]
        governed = yields or [u for u in users if u in self.lanes]
        roles: dict[str, list[str]] = {}
        ref_lines: list[str] = []
        for member_type, ref, role in rel.members:
            if member_type != "way":
                continue
            fid = self.emit_way(ref)
            if fid is None:
                self.osm.warn(f"regulatory element {rel_id}: member way {ref} is missing")
                continue
            roles.setdefault(role, []).append(fid)
            if role == "ref_line":
                ref_lines.append(fid)
            elif role in ("refers", "cancels", "cancel_line"):
                for lane in governed:
                    self.builder.relate(fid, MapRelation.CONTROLS, f"lanelet_{lane}")
        pairwise = rel.tags.get("subtype") == "all_way_stop" and len(ref_lines) == len(yields) > 0
        for k, fid in enumerate(ref_lines):
            for lane in [governed[k]] if pairwise else governed:
                self.builder.relate(fid, MapRelation.CONTROLS, f"lanelet_{lane}")
        return {
            "id": f"regulatory_element_{rel_id}",
            "subtype": rel.tags.get("subtype", ""),
            "lanelets": [f"lanelet_{lane}" for lane in governed],
            "roles": roles,
        }

    def area(self, rel_id: int, rel: _Relation) -> None:
        subtype = rel.tags.get("subtype", "")
        kind = _AREA_KINDS.get(subtype, MapFeatureKind.OTHER)
        for role in ("outer", "inner"):
            refs = rel.refs("way", role)
            missing = [r for r in refs if r not in self.osm.ways]
            if missing:
                self.osm.warn(f"area {rel_id} dropped: its {role} way {missing[0]} is missing")
                return
            rings, failed = _rings([self.osm.ways[r] for r in refs])
            if failed or (role == "outer" and not rings):
                self.osm.warn(f"area {rel_id} dropped: its {role} ways do not close into rings")
                return
            for k, ring in enumerate(rings):
                if role == "outer":
                    fid = f"area_{rel_id}" if k == 0 else f"area_{rel_id}_outer_{k}"
                    self.builder.add(fid, kind, self.points(ring), subtype=subtype)
                else:
                    fid = f"area_{rel_id}_inner_{k}"
                    self.builder.add(fid, MapFeatureKind.OTHER, self.points(ring), subtype=f"{subtype}:inner")


_MPS = {"km/h": 1 / 3.6, "kmh": 1 / 3.6, "kph": 1 / 3.6, "mph": 0.44704, "m/s": 1.0, "mps": 1.0}
_SIGN_UNITS = (
    ("de274-", "km/h"),
    ("us-r2-", "mph"),
    ("usr2-1-", "mph"),
    ("r2-1-", "mph"),
    ("carb-1-", "km/h"),
)


def speed_from_text(text: str) -> float | None:
    """A Lanelet2 velocity in m/s, or ``None`` when the text is no speed.

    Accepts what lanelet2's traffic rules accept: a number with an optional
    unit (``"50"``, ``"50 km/h"``, ``"15mph"``, ``"80kmh"``, ``"13.9 m/s"``;
    no unit means km/h, lanelet2's ``Attribute::asVelocity``), or a
    speed-limit sign type that carries the number (``"de274-50"`` km/h,
    ``"us-r2-25"``/``"R2-1-25"`` mph).
    """
    t = text.strip().lower()
    for prefix, unit in _SIGN_UNITS:
        if t.startswith(prefix) and t[len(prefix) :].replace(".", "", 1).isdigit():
            return float(t[len(prefix) :]) * _MPS[unit]
    number = t.rstrip("abcdefghijklmnopqrstuvwxyz/ ")
    unit = t[len(number) :].strip() or "km/h"
    try:
        value = float(number)
    except ValueError:
        return None
    if unit not in _MPS or not math.isfinite(value) or value <= 0:
        return None
    return value * _MPS[unit]


def _lanelet_speed_limits(osm: _Osm, lanelets: Mapping[int, _Relation]) -> dict[int, float]:
    """Lanelet id -> its speed limit in m/s, from ``speed_limit`` regulatory elements and tags.

    A ``speed_limit`` regulatory element's speed is its ``sign_type`` tag, else
    the subtype of the traffic sign it ``refers`` to; a lanelet's limit is the
    lowest of the elements it lists and of its own ``speed_limit`` tag. Speeds
    that do not parse are left unknown (lanelet2 raises on them).
    """
    element_speed: dict[int, float] = {}
    for rel_id, rel in osm.relations.items():
        if rel.tags.get("type") != "regulatory_element" or rel.tags.get("subtype") != "speed_limit":
            continue
        texts = [rel.tags["sign_type"]] if "sign_type" in rel.tags else []
        texts += [osm.ways[w].tags.get("subtype", "") for w in rel.refs("way", "refers") if w in osm.ways]
        speeds = [v for v in (speed_from_text(x) for x in texts) if v is not None]
        if speeds:
            element_speed[rel_id] = min(speeds)
    out: dict[int, float] = {}
    for lid, rel in lanelets.items():
        found = [element_speed[r] for r in rel.refs("relation", "regulatory_element") if r in element_speed]
        own = speed_from_text(rel.tags["speed_limit"]) if "speed_limit" in rel.tags else None
        if own is not None:
            found.append(own)
        if found:
            out[lid] = min(found)
    return out


def parse_lanelet2_map(
    data: bytes, path: Path, *, origin_lat_lon: tuple[float, float] | None = None
) -> Lanelet2Map:
    """Decode the bytes of a Lanelet2 ``.osm`` file.

    Args:
        data: The file's bytes.
        path: The file, named in errors; its stem names pseudo-georeferenced frames.
        origin_lat_lon: Projection origin in degrees; by default chosen by
            the rule in the module docstring.

    Raises:
        CorruptFileError: not well-formed XML, or a DTD.
        UnsupportedFormatError: OSM data without lanelets, or not OSM at all.
        SchemaMismatchError: a node without lat/lon.
        InvalidValueError: bad numbers, duplicate ids, broken lanelets.
        EmptyLogError: an OSM file without nodes.
    """
    osm = _parse_osm(data, path)
    if osm.node_ids.shape[0] == 0:
        raise EmptyLogError(path, "the OSM file has no nodes")
    lanelets = {i: r for i, r in osm.relations.items() if r.tags.get("type") == "lanelet"}
    if not lanelets:
        raise UnsupportedFormatError(path, "OpenStreetMap data without Lanelet2 lanelets")
    origin, pseudo = _origin(osm, origin_lat_lon)
    try:
        zone = utm_zone(*origin)
    except ValueError as exc:
        raise InvalidValueError(path, f"projection origin {origin}: {exc}") from None
    central_meridian = 6.0 * zone - 183.0
    if np.any(np.abs((osm.lon_deg - central_meridian + 180.0) % 360.0 - 180.0) > 45.0) or np.any(
        np.abs(osm.lat_deg) > 89.0
    ):
        raise InvalidValueError(path, f"nodes lie too far from the projection origin {origin} for UTM")
    xy = utm_local_xy(osm.lat_deg, osm.lon_deg, origin)
    xyz = np.concatenate([xy, osm.ele_m[:, None]], axis=1)

    b = _Builder(osm, xyz, path)
    b.speed_limits = _lanelet_speed_limits(osm, lanelets)
    b.lanelets(lanelets)
    b.topology()
    users: dict[int, list[int]] = {}
    for rel_id, rel in lanelets.items():
        for reg in rel.refs("relation", "regulatory_element"):
            users.setdefault(reg, []).append(rel_id)
    regulatory: list[dict[str, Any]] = []
    referenced: set[int] = set()
    for rel_id, rel in osm.relations.items():
        referenced.update(ref for t, ref, _ in rel.members if t == "way")
        rel_type = rel.tags.get("type")
        if rel_type == "regulatory_element":
            regulatory.append(b.regulatory_element(rel_id, rel, users.get(rel_id, [])))
        elif rel_type == "multipolygon":
            b.area(rel_id, rel)
    for way_id in osm.ways:
        if way_id not in referenced:
            b.emit_way(way_id)
    for reg in users:
        if reg not in osm.relations:
            osm.warn(f"regulatory element {reg} named by a lanelet is missing")

    stem = path.stem
    if pseudo and origin == (0.0, 0.0):
        frame = f"interaction_local_{stem}"
    else:
        frame = f"utm{zone}{'n' if origin[0] >= 0 else 's'}_origin_{origin[0]!r}_{origin[1]!r}"
    extras: dict[str, Any] = {
        "map_format": "lanelet2_osm",
        "projection": "utm",
        "origin_lat_lon": [origin[0], origin[1]],
        "utm_zone": zone,
        "utm_hemisphere": "N" if origin[0] >= 0 else "S",
        "pseudo_georeferenced": pseudo,
        "num_lanelets": len(lanelets),
        "num_lanes": len(b.lanes),
        "num_dropped_lanelets": b.dropped,
        "two_way_lanelet_ids": b.two_way,
        "regulatory_elements": regulatory,
        "warnings": osm.warnings[:MAX_WARNINGS],
        "num_warnings": len(osm.warnings),
    }
    return Lanelet2Map(map=b.builder.build(), frame=frame, origin_lat_lon=origin, extras=extras)


def read_lanelet2_map(path: str | Path, *, origin_lat_lon: tuple[float, float] | None = None) -> Lanelet2Map:
    """Read one Lanelet2 ``.osm`` file; see :func:`parse_lanelet2_map`."""
    p = Path(path)
    return parse_lanelet2_map(p.read_bytes(), p, origin_lat_lon=origin_lat_lon)


@dataclass(frozen=True)
class Lanelet2MapConfig:
    """How :class:`Lanelet2MapAdapter` projects maps.

    Attributes:
        origin_lat_lon: Projection origin in degrees for every map read; None
            (default) picks one per map by the rule in the module docstring.
    """

    origin_lat_lon: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.origin_lat_lon is not None:
            lat, lon = self.origin_lat_lon
            if not (math.isfinite(lat) and math.isfinite(lon) and -80.0 <= lat < 84.0 and abs(lon) <= 180.0):
                raise ConfigError(f"origin_lat_lon {self.origin_lat_lon} is not a UTM-projectable position")


class Lanelet2MapAdapter(Adapter):
    """Reads standalone Lanelet2 ``.osm`` maps as map-only Scenarios (zero tracks).

    Args:
        config: Projection settings; defaults to :class:`Lanelet2MapConfig`.
    """

    name: ClassVar[str] = "lanelet2_map"
    version: ClassVar[str] = "1"
    unit: ClassVar[Literal["file", "dir"]] = "file"
    licence: ClassVar[str] = "the map publisher's (Lanelet2's sample maps: BSD-3-Clause)"
    download_hint: ClassVar[str] = (
        "Lanelet2 example maps: https://github.com/fzi-forschungszentrum-informatik/Lanelet2 "
        "(lanelet2_maps/res/*.osm); INTERACTION maps: https://interaction-dataset.com"
    )

    def __init__(self, config: Lanelet2MapConfig | None = None) -> None:
        self.config = config or Lanelet2MapConfig()

    def claims(self, path: Path) -> bool:
        return path.suffix.lower() == ".osm" and b"<osm" in file_head(path, 1024)

    def _read(self, path: Path) -> Iterator[Scenario]:
        data = path.read_bytes()
        decoded = parse_lanelet2_map(data, path, origin_lat_lon=self.config.origin_lat_lon)
        metadata = self.metadata(
            path,
            hashlib.sha256(data).hexdigest(),
            frame=decoded.frame,
            location=path.stem,
            extras=decoded.extras,
        )
        yield map_only_scenario(path.stem, self.name, decoded.map, metadata)
