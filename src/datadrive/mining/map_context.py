"""Where every state is on the map: its lane, offset, heading to the lane, places ahead.

Two steps. :func:`build_lane_map` turns a scenario's :class:`MapFeatures`
into lane facts that do not depend on the tracks (built once per map):
lane lengths and widths, the lane graph, lane types, speed limits, and where
along each lane a crosswalk, a stop line or an intersection begins, with the
distance from each lane's start to the next one of each through the
successor graph. :func:`compute_map_context` then places every valid state:

* **lane**: among the lane centerlines within ``lane_search_m`` (found with
  :meth:`datadrive.core.geometry.PolylineIndex.candidates`), the one a state
  is *on* (within half the lane's width plus ``lane_margin_m``) with the
  lowest cost ``distance + heading_weight * |heading difference|`` (the
  heading term only for vehicles and cyclists, so at an intersection a car
  is put on the lane it drives along, not on a crossing one). No lane
  within reach: lane -1 and NaN offsets.
* **lateral offset** (positive left of the lane's direction), **heading
  difference** ``wrap(heading - lane heading)`` and **arc length** on it.
* **distance to the next intersection / crosswalk / stop line**, measured
  along the lane and its successors (the nearest continuation) from the
  state forward, up to ``horizon_m``; 0 inside one; NaN when none is reached
  or the state is on no lane. Stop lines are ``STOP_LINE`` polylines that
  cross a lane, stop signs projected onto the lanes they control, and the
  stop points of traffic-light-controlled lanes.
* **in drivable area** (inside a ``DRIVABLE_AREA`` polygon; with no such
  polygon in the map: on a lane), **in crosswalk** (inside a ``CROSSWALK``
  polygon), **in intersection** (on an intersection lane).
* **speed limit**, where the source gives one per lane: the map's own
  per-lane limits, else ``metadata.extras["lane_speed_limits_mps"]``
  (feature id -> m/s); never ScenarioNet's placeholders (nuScenes'
  100 km/h, Argoverse 2's constant), which are unknown.

Lane widths come from the lane's boundary polylines (``LEFT_BOUNDARY`` /
``RIGHT_BOUNDARY`` relations) at the lane's middle, else from its neighbour
lanes, else :attr:`MapContextConfig.default_lane_width_m`.

Notation:
    A: tracks. T: steps. L: lanes. F: map features. E: lane successor edges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from datadrive.core.frames import wrap_angle
from datadrive.core.geometry import PolylineIndex, polyline_arc_lengths
from datadrive.core.scenario import (
    MapFeatureKind,
    MapFeatures,
    MapRelation,
    ObjectType,
    Scenario,
    TrafficLights,
)
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt, NDArrayStr
from datadrive.mining.shapes import points_in_rings
from datadrive.sources.scenarionet import SPEED_LIMIT_DATASETS

__all__ = [
    "LANE_SPEED_LIMITS_KEY",
    "LaneMap",
    "MapContext",
    "MapContextConfig",
    "build_lane_map",
    "compute_map_context",
    "lane_kind",
]

LANE_SPEED_LIMITS_KEY = "lane_speed_limits_mps"
"""``metadata.extras`` key of per-lane speed limits: ``{feature_id: metres per second}``."""

_KEY_SCALE = 1e7  # lane index * scale + arc length: one sorted key for "entries along lane L after s"


@dataclass(frozen=True)
class MapContextConfig:
    """How states are put on lanes.

    Attributes:
        lane_search_m: Lanes farther than this from a state are not considered.
        lane_margin_m: A state is on a lane within half its width plus this.
        heading_weight_m_per_rad: Metres of distance one radian of heading
            difference costs when choosing among overlapping lanes.
        default_lane_width_m: Width of a lane whose boundaries and neighbours
            are unknown: 3.6 m, the 12 ft lane of US interstate design standards.
        horizon_m: Along-lane search for the next intersection / crosswalk / stop line.
        sample_step_m: Spacing of the lane samples that find crosswalk entries.
    """

    lane_search_m: float = 5.0
    lane_margin_m: float = 0.5
    heading_weight_m_per_rad: float = 4.0
    default_lane_width_m: float = 3.6
    horizon_m: float = 200.0
    sample_step_m: float = 1.0


def lane_kind(subtype: str) -> str:
    """``"bike"``, ``"bus"`` or ``"vehicle"`` from a dataset's lane subtype (AV2, Waymo, Lanelet2, ...)."""
    s = subtype.upper()
    if "BIKE" in s or "BICYCLE" in s or "CYCLE" in s:
        return "bike"
    if "BUS" in s:
        return "bus"
    return "vehicle"


@dataclass(frozen=True)
class LaneMap:
    """Lane facts of one map, independent of the tracks.

    Attributes:
        feature: ``(L,)`` map feature index of each lane.
        feature_ids: ``(L,)`` map feature id of each lane.
        index: Nearest-lane queries over the ``L`` centerlines (lane-local indices).
        length_m: ``(L,)`` centerline length.
        width_m: ``(L,)`` lane width.
        is_intersection: ``(L,)`` bool.
        kind: ``(L,)`` ``"vehicle"`` / ``"bike"`` / ``"bus"`` (see :func:`lane_kind`).
        left: ``(L,)`` left neighbour lane, -1 if none.
        right: ``(L,)`` right neighbour lane, -1 if none.
        successors: ``(E, 2)`` lane-local ``(from, to)`` edges.
        speed_limit_mps: ``(L,)`` NaN where unknown.
        entries: Per place (``"intersection"``, ``"crosswalk"``, ``"stop_line"``):
            sorted keys ``lane * 1e7 + s`` of where that place begins along a lane.
        after_m: Per place: ``(L,)`` distance from a lane's *end* to the next
            such place through its successors (``inf`` if none within the horizon).
        drivable: ``(points, offsets)`` of the drivable-area rings, or ``None``.
        crosswalks: ``(points, offsets)`` of the crosswalk rings, or ``None``.
        intersection_inferred: The map flags no intersection lane, so
            ``is_intersection`` marks lanes that cross another lane (see
            :func:`build_lane_map`).
    """

    feature: NDArrayInt
    feature_ids: NDArrayStr
    index: PolylineIndex | None
    length_m: NDArrayFloat
    width_m: NDArrayFloat
    is_intersection: NDArrayBool
    kind: NDArrayStr
    left: NDArrayInt
    right: NDArrayInt
    successors: NDArrayInt
    speed_limit_mps: NDArrayFloat
    entries: Mapping[str, NDArrayFloat] = field(default_factory=dict)
    after_m: Mapping[str, NDArrayFloat] = field(default_factory=dict)
    drivable: tuple[NDArrayFloat, NDArrayInt] | None = None
    crosswalks: tuple[NDArrayFloat, NDArrayInt] | None = None
    intersection_inferred: bool = False

    @property
    def num_lanes(self) -> int:
        return int(self.feature.shape[0])


PLACES = ("intersection", "crosswalk", "stop_line")


def _rings(m: MapFeatures, kind: MapFeatureKind) -> tuple[NDArrayFloat, NDArrayInt] | None:
    idx = np.flatnonzero(m.kind == kind)
    if idx.size == 0:
        return None
    parts = [m.points(int(i))[:, :2] for i in idx]
    counts = np.array([p.shape[0] for p in parts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return np.concatenate(parts), offsets


def _relation_targets(m: MapFeatures, relation: MapRelation) -> dict[int, list[int]]:
    rel = m.relations[m.relations[:, 2] == int(relation)] if m.relations.shape[0] else m.relations
    out: dict[int, list[int]] = {}
    for src, dst in rel[:, :2].tolist():
        out.setdefault(int(src), []).append(int(dst))
    return out


def _project_on(points: NDArrayFloat, xy: NDArrayFloat) -> tuple[float, float]:
    """Arc length of ``xy`` projected on one polyline, and its distance to it."""
    if points.shape[0] == 1:
        return 0.0, float(np.hypot(*(xy - points[0, :2])))
    a, b = points[:-1, :2], points[1:, :2]
    d = b - a
    length2 = (d * d).sum(-1)
    t = np.clip(((xy - a) * d).sum(-1) / np.where(length2 > 0, length2, 1.0), 0.0, 1.0)
    foot = a + t[:, None] * d
    dist = np.hypot(*(xy - foot).T)
    j = int(np.argmin(dist))
    s0 = np.concatenate([[0.0], np.cumsum(np.sqrt(length2))])
    return float(s0[j] + t[j] * np.sqrt(length2[j])), float(dist[j])


def _lane_widths(
    m: MapFeatures,
    lane_feature: NDArrayInt,
    centers: list[NDArrayFloat],
    lengths: NDArrayFloat,
    default: float,
) -> NDArrayFloat:
    """Width of each lane at its middle: boundaries, else neighbours, else ``default``."""
    num = lane_feature.shape[0]
    width = np.full(num, np.nan)
    mids = np.zeros((num, 2))
    for i, pts in enumerate(centers):
        if pts.shape[0] == 1:
            mids[i] = pts[0, :2]
            continue
        s = polyline_arc_lengths(pts, np.array([0, pts.shape[0]]))
        half = s[-1] / 2.0
        mids[i] = [np.interp(half, s, pts[:, 0]), np.interp(half, s, pts[:, 1])]
    left_b = _relation_targets(m, MapRelation.LEFT_BOUNDARY)
    right_b = _relation_targets(m, MapRelation.RIGHT_BOUNDARY)
    for i, f in enumerate(lane_feature.tolist()):
        lb, rb = left_b.get(f), right_b.get(f)
        if lb and rb:
            dl = min(_project_on(m.points(j), mids[i])[1] for j in lb)
            dr = min(_project_on(m.points(j), mids[i])[1] for j in rb)
            width[i] = dl + dr
    lane_of = {int(f): i for i, f in enumerate(lane_feature.tolist())}
    for relation in (MapRelation.LEFT_NEIGHBOR, MapRelation.RIGHT_NEIGHBOR):
        for f, targets in _relation_targets(m, relation).items():
            row = lane_of.get(f)
            if row is None or np.isfinite(width[row]):
                continue
            ds = [_project_on(centers[lane_of[j]], mids[row])[1] for j in targets if j in lane_of]
            if ds:
                width[row] = min(ds)
    bad = ~((width > 1.0) & (width < 8.0))
    width[bad] = default
    return width


def _neighbour(m: MapFeatures, relation: MapRelation, lane_of: dict[int, int], num: int) -> NDArrayInt:
    out = np.full(num, -1, dtype=np.int64)
    for f, targets in _relation_targets(m, relation).items():
        i = lane_of.get(f)
        lanes = [lane_of[j] for j in targets if j in lane_of]
        if i is not None and lanes:
            out[i] = lanes[0]
    return out


def _sample_lanes(
    centers: list[NDArrayFloat], lengths: NDArrayFloat, step_m: float
) -> tuple[NDArrayFloat, NDArrayInt, NDArrayFloat]:
    """Points every ``step_m`` along each lane: ``(S, 2)`` points, ``(S,)`` lane, ``(S,)`` arc length."""
    pts, owner, arc = [], [], []
    for i, c in enumerate(centers):
        if c.shape[0] == 1:
            pts.append(c[:, :2])
            owner.append(np.array([i]))
            arc.append(np.zeros(1))
            continue
        s = polyline_arc_lengths(c, np.array([0, c.shape[0]]))
        q = np.arange(0.0, s[-1] + 1e-9, step_m)
        if q[-1] < s[-1]:
            q = np.append(q, s[-1])
        pts.append(np.stack([np.interp(q, s, c[:, 0]), np.interp(q, s, c[:, 1])], axis=1))
        owner.append(np.full(q.shape[0], i))
        arc.append(q)
    if not pts:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate(pts), np.concatenate(owner).astype(np.int64), np.concatenate(arc)


def _segment_crossings(
    centers: list[NDArrayFloat], lines: list[NDArrayFloat]
) -> tuple[NDArrayInt, NDArrayFloat]:
    """Where lane centerlines cross polylines: ``(K,)`` lane and ``(K,)`` arc length on it."""
    if not centers or not lines:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    la, lb, lane, s0 = [], [], [], []
    for i, c in enumerate(centers):
        if c.shape[0] < 2:
            continue
        s = polyline_arc_lengths(c, np.array([0, c.shape[0]]))
        la.append(c[:-1, :2])
        lb.append(c[1:, :2])
        lane.append(np.full(c.shape[0] - 1, i))
        s0.append(s[:-1])
    sa, sb = [], []
    for ln in lines:
        if ln.shape[0] >= 2:
            sa.append(ln[:-1, :2])
            sb.append(ln[1:, :2])
    if not la or not sa:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    p, p2 = np.concatenate(la), np.concatenate(lb)
    q, q2 = np.concatenate(sa), np.concatenate(sb)
    lanes, starts = np.concatenate(lane), np.concatenate(s0)
    r = p2 - p  # (N, 2)
    d = q2 - q  # (M, 2)
    denom = r[:, None, 0] * d[None, :, 1] - r[:, None, 1] * d[None, :, 0]
    qp = q[None, :, :] - p[:, None, :]
    safe = np.where(denom != 0, denom, 1.0)
    t = (qp[..., 0] * d[None, :, 1] - qp[..., 1] * d[None, :, 0]) / safe
    u = (qp[..., 0] * r[:, None, 1] - qp[..., 1] * r[:, None, 0]) / safe
    hit = (denom != 0) & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
    n, _m = np.nonzero(hit)
    seg_len = np.hypot(r[:, 0], r[:, 1])
    return lanes[n].astype(np.int64), starts[n] + t[hit] * seg_len[n]


def _lane_speed_limits(
    m: MapFeatures, lane_feature: NDArrayInt, extras: Mapping[str, Any] | None, source: str | None
) -> NDArrayFloat:
    """``(L,)`` each lane's speed limit in m/s, NaN where unknown.

    The map's own per-feature limits decide where the map has them (the
    adapters leave a source's placeholders out there); the scenario's
    ``lane_speed_limits_mps`` extras only for a map without any. Those extras
    are not read for a ScenarioNet conversion of a dataset whose converter
    writes placeholders (nuScenes: 100 km/h on every lane connector,
    Argoverse 2: one highway value), only for those in
    :data:`~datadrive.sources.scenarionet.SPEED_LIMIT_DATASETS`.
    """
    speed = np.full(int(lane_feature.shape[0]), np.nan)
    if m.speed_limit_mps is not None:
        own = np.asarray(m.speed_limit_mps, dtype=np.float64)[lane_feature]
        with np.errstate(invalid="ignore"):
            return np.where(np.isfinite(own) & (own > 0), own, np.nan)
    ex = extras or {}
    if source == "scenarionet" and str(ex.get("dataset") or "").lower() not in SPEED_LIMIT_DATASETS:
        return speed
    limits = ex.get(LANE_SPEED_LIMITS_KEY) or {}
    if limits:
        for i, fid in enumerate(m.feature_ids[lane_feature].tolist()):
            v = limits.get(fid)
            if isinstance(v, int | float) and v > 0:
                speed[i] = float(v)
    return speed


def build_lane_map(
    m: MapFeatures,
    *,
    extras: Mapping[str, Any] | None = None,
    source: str | None = None,
    traffic_lights: TrafficLights | None = None,
    config: MapContextConfig | None = None,
) -> LaneMap:
    """Lane facts of ``m`` (see the module docstring).

    Args:
        m: The map.
        extras: The scenario's ``metadata.extras`` (for lane speed limits).
        source: The scenario's source (ScenarioNet's placeholder limits are left out).
        traffic_lights: The scenario's traffic lights (their stop points count as stop lines).
        config: Widths and horizons.
    """
    cfg = config or MapContextConfig()
    lane_feature = np.flatnonzero(m.kind == MapFeatureKind.LANE_CENTERLINE).astype(np.int64)
    num = int(lane_feature.shape[0])
    centers = [m.points(int(f))[:, :2] for f in lane_feature]
    centers = [c for c in centers]
    lane_of = {int(f): i for i, f in enumerate(lane_feature.tolist())}
    if num:
        counts = np.array([c.shape[0] for c in centers], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        flat = np.concatenate(centers)
        arc = polyline_arc_lengths(flat, offsets)
        lengths = np.where(counts > 0, arc[np.maximum(offsets[1:] - 1, 0)], 0.0)
        index: PolylineIndex | None = PolylineIndex(flat, offsets)
    else:
        lengths = np.zeros(0)
        index = None
    width = _lane_widths(m, lane_feature, centers, lengths, cfg.default_lane_width_m) if num else np.zeros(0)
    succ_rel = m.relations[m.relations[:, 2] == int(MapRelation.SUCCESSOR)] if m.relations.shape[0] else None
    edges: list[tuple[int, int]] = []
    if succ_rel is not None:
        for src, dst in succ_rel[:, :2].tolist():
            if src in lane_of and dst in lane_of:
                edges.append((lane_of[src], lane_of[dst]))
    successors = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    speed = _lane_speed_limits(m, lane_feature, extras, source)

    is_inter = m.is_intersection[lane_feature].astype(bool)
    inferred = False
    if num and index is not None and not is_inter.any():
        is_inter = _crossing_lanes(index, centers, lengths, successors, cfg.sample_step_m)
        inferred = True

    # where each place begins along each lane
    entries_lane: dict[str, list[NDArrayInt]] = {p: [] for p in PLACES}
    entries_s: dict[str, list[NDArrayFloat]] = {p: [] for p in PLACES}
    inter = np.flatnonzero(is_inter) if num else np.zeros(0, dtype=np.int64)
    entries_lane["intersection"].append(inter)
    entries_s["intersection"].append(np.zeros(inter.shape[0]))
    crosswalks = _rings(m, MapFeatureKind.CROSSWALK)
    if crosswalks is not None and num:
        pts, owner, sarc = _sample_lanes(centers, lengths, cfg.sample_step_m)
        inside = points_in_rings(pts, crosswalks[0], crosswalks[1]) >= 0
        prev_inside = np.zeros_like(inside)
        prev_inside[1:] = inside[:-1] & (owner[1:] == owner[:-1])
        start = inside & ~prev_inside
        entries_lane["crosswalk"].append(owner[start])
        entries_s["crosswalk"].append(sarc[start])
    stop_lines = [m.points(int(i))[:, :2] for i in np.flatnonzero(m.kind == MapFeatureKind.STOP_LINE)]
    if stop_lines and num:
        lane_hit, s_hit = _segment_crossings(centers, stop_lines)
        entries_lane["stop_line"].append(lane_hit)
        entries_s["stop_line"].append(s_hit)
    controlled: list[tuple[int, float]] = []
    for src, targets in _relation_targets(m, MapRelation.CONTROLS).items():
        if int(m.kind[src]) not in (MapFeatureKind.STOP_SIGN, MapFeatureKind.STOP_LINE):
            continue
        where = m.points(src)[:, :2].mean(axis=0)
        for dst in targets:
            row = lane_of.get(dst)
            if row is not None:
                controlled.append((row, _project_on(centers[row], where)[0]))
    if traffic_lights is not None:
        for lane_id, stop in zip(traffic_lights.lane_ids.tolist(), traffic_lights.stop_point_m, strict=True):
            hit = np.flatnonzero(m.feature_ids[lane_feature] == lane_id) if num else np.zeros(0, np.int64)
            if hit.size and np.isfinite(stop[:2]).all():
                row = int(hit[0])
                controlled.append((row, _project_on(centers[row], stop[:2])[0]))
    if controlled:
        entries_lane["stop_line"].append(np.array([c[0] for c in controlled], dtype=np.int64))
        entries_s["stop_line"].append(np.array([c[1] for c in controlled]))

    entries: dict[str, NDArrayFloat] = {}
    after: dict[str, NDArrayFloat] = {}
    for place in PLACES:
        lanes = np.concatenate(entries_lane[place]) if entries_lane[place] else np.zeros(0, dtype=np.int64)
        svals = np.concatenate(entries_s[place]) if entries_s[place] else np.zeros(0)
        keys = np.sort(lanes.astype(np.float64) * _KEY_SCALE + svals)
        entries[place] = keys
        first = np.full(num, np.inf)
        if lanes.size:
            np.minimum.at(first, lanes, svals)
        after[place] = _after_distances(first, lengths, successors, cfg.horizon_m)
    return LaneMap(
        feature=lane_feature,
        feature_ids=m.feature_ids[lane_feature],
        index=index,
        length_m=lengths,
        width_m=width,
        is_intersection=is_inter,
        intersection_inferred=inferred,
        kind=np.asarray([lane_kind(str(s)) for s in m.subtype[lane_feature].tolist()], dtype=np.str_).reshape(
            -1
        ),
        left=_neighbour(m, MapRelation.LEFT_NEIGHBOR, lane_of, num),
        right=_neighbour(m, MapRelation.RIGHT_NEIGHBOR, lane_of, num),
        successors=successors,
        speed_limit_mps=speed,
        entries=entries,
        after_m=after,
        drivable=_rings(m, MapFeatureKind.DRIVABLE_AREA),
        crosswalks=crosswalks,
    )


def _crossing_lanes(
    index: PolylineIndex,
    centers: list[NDArrayFloat],
    lengths: NDArrayFloat,
    successors: NDArrayInt,
    step_m: float,
    *,
    within_m: float = 0.5,
    min_angle_rad: float = np.deg2rad(30.0),
) -> NDArrayBool:
    """Lanes that cross another lane: the intersection lanes of maps that do not flag them (Waymo).

    A lane crosses another where, away from its first and last metre, another
    lane that is not its successor or predecessor passes within ``within_m``
    at more than ``min_angle_rad`` to it. Merging and splitting lanes meet at
    small angles and are not counted.
    """
    num = len(centers)
    pts, owner, sarc = _sample_lanes(centers, lengths, step_m)
    inner = (sarc > 1.0) & (sarc < lengths[owner] - 1.0)
    pts, owner = pts[inner], owner[inner]
    out = np.zeros(num, dtype=bool)
    if pts.shape[0] == 0:
        return out
    cand = index.candidates(pts, max_distance_m=within_m, k=6)
    is_own = cand.feature == owner[:, None]
    has_own = is_own.any(axis=1)
    own = np.where(has_own, cand.heading_rad[np.arange(pts.shape[0]), np.argmax(is_own, axis=1)], np.nan)
    linked = {(int(a), int(b)) for a, b in successors.tolist()}
    linked |= {(b, a) for a, b in linked}
    other = (cand.feature >= 0) & ~is_own & has_own[:, None]
    angle = np.abs(wrap_angle(cand.heading_rad - own[:, None]))
    angle = np.minimum(angle, np.pi - angle)  # a lane in the opposite direction is not a crossing
    hit_rows, hit_cols = np.nonzero(other & (angle > min_angle_rad))
    for r, c in zip(hit_rows.tolist(), hit_cols.tolist(), strict=True):
        a, b = int(owner[r]), int(cand.feature[r, c])
        if (a, b) not in linked:
            out[a] = True
    return out


def _after_distances(
    first_s: NDArrayFloat, lengths: NDArrayFloat, successors: NDArrayInt, horizon_m: float
) -> NDArrayFloat:
    """Distance from each lane's end to the first place ahead through successors (Bellman-Ford)."""
    num = first_s.shape[0]
    from_start = first_s.copy()  # distance from the lane's start to the next place
    after = np.full(num, np.inf)
    if successors.shape[0] == 0 or num == 0:
        return after
    src, dst = successors[:, 0], successors[:, 1]
    for _ in range(num):
        after_new = np.full(num, np.inf)
        np.minimum.at(after_new, src, from_start[dst])
        start_new = np.minimum(first_s, lengths + after_new)
        start_new[start_new > horizon_m] = np.inf
        if np.array_equal(after_new, after) and np.array_equal(start_new, from_start):
            break
        after, from_start = after_new, start_new
    return after


@dataclass(frozen=True)
class MapContext:
    """Where every state is on the map. NaN/-1/False where unknown or not applicable.

    Attributes:
        lanes: The scenario's :class:`LaneMap`.
        lane: ``(A, T)`` lane-local index of the lane the state is on, -1 if none.
        lane_feature: ``(A, T)`` map feature index of that lane, -1 if none.
        lane_s_m: ``(A, T)`` arc length along that lane.
        lane_lateral_m: ``(A, T)`` signed offset from its centerline (positive left).
        lane_heading_diff_rad: ``(A, T)`` ``wrap(heading - lane heading)``.
        in_intersection: ``(A, T)`` on an intersection lane.
        in_crosswalk: ``(A, T)`` centre inside a crosswalk polygon.
        in_drivable_area: ``(A, T)`` centre inside the drivable area (or on a
            lane, for maps without drivable-area polygons).
        next_intersection_m: ``(A, T)`` along-lane distance ahead (0 inside).
        next_crosswalk_m: ``(A, T)``.
        next_stop_line_m: ``(A, T)``.
        speed_limit_mps: ``(A, T)`` of the lane, NaN when unknown.
        has_drivable_area: The map has drivable-area polygons.
    """

    lanes: LaneMap
    lane: NDArrayInt
    lane_feature: NDArrayInt
    lane_s_m: NDArrayFloat
    lane_lateral_m: NDArrayFloat
    lane_heading_diff_rad: NDArrayFloat
    in_intersection: NDArrayBool
    in_crosswalk: NDArrayBool
    in_drivable_area: NDArrayBool
    next_intersection_m: NDArrayFloat
    next_crosswalk_m: NDArrayFloat
    next_stop_line_m: NDArrayFloat
    speed_limit_mps: NDArrayFloat
    has_drivable_area: bool


def compute_map_context(
    scenario: Scenario, lanes: LaneMap | None = None, config: MapContextConfig | None = None
) -> MapContext | None:
    """Place every valid state of ``scenario`` on its map; ``None`` for a scenario without a map.

    Args:
        scenario: A validated scenario.
        lanes: Its :func:`build_lane_map` (built here when not given).
        config: Matching parameters.
    """
    if scenario.map is None:
        return None
    cfg = config or MapContextConfig()
    if lanes is None:
        lanes = build_lane_map(
            scenario.map,
            extras=scenario.metadata.extras,
            source=scenario.source,
            traffic_lights=scenario.traffic_lights,
            config=cfg,
        )
    tr = scenario.tracks
    a, t = tr.valid.shape
    rows, cols = np.nonzero(tr.valid)
    q_all = tr.xy_m[rows, cols]
    n = q_all.shape[0]
    steered_all = np.isin(tr.object_type[rows], (ObjectType.VEHICLE, ObjectType.CYCLIST))
    heading_all = tr.heading_rad[rows, cols]
    # parked cars, cones and poles repeat one pose step after step: place each distinct pose once
    key = np.stack([q_all[:, 0], q_all[:, 1], heading_all, steered_all.astype(np.float64)], axis=1)
    if n:
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
    else:
        first, inverse = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    q = q_all[first]
    u = q.shape[0]
    lane_u = np.full(u, -1, dtype=np.int64)
    s_u = np.full(u, np.nan)
    lat_u = np.full(u, np.nan)
    dh_u = np.full(u, np.nan)
    if lanes.index is not None and u:
        cand = lanes.index.candidates(q, max_distance_m=cfg.lane_search_m, k=4)
        used = cand.feature >= 0
        fidx = np.where(used, cand.feature, 0)
        dh = wrap_angle(heading_all[first][:, None] - cand.heading_rad)
        weight = np.where(steered_all[first], cfg.heading_weight_m_per_rad, 0.0)[:, None]
        on = used & (cand.distance_m <= lanes.width_m[fidx] / 2.0 + cfg.lane_margin_m)
        cost = np.where(on, cand.distance_m + weight * np.abs(dh), np.inf)
        best = np.argmin(cost, axis=1)
        pick = np.isfinite(cost[np.arange(u), best])
        r = np.flatnonzero(pick)
        lane_u[r] = cand.feature[r, best[r]]
        s_u[r] = cand.s_m[r, best[r]]
        lat_u[r] = cand.lateral_m[r, best[r]]
        dh_u[r] = dh[r, best[r]]
    lane_q, s_q, lat_q, dh_q = lane_u[inverse], s_u[inverse], lat_u[inverse], dh_u[inverse]

    def grid(values: NDArrayFloat | NDArrayInt | NDArrayBool, fill: Any) -> Any:
        out = np.full((a, t), fill, dtype=np.asarray(values).dtype)
        out[rows, cols] = values
        return out

    on_lane = lane_q >= 0
    safe_lane = np.where(on_lane, lane_q, 0)
    in_inter = on_lane & (lanes.is_intersection[safe_lane] if lanes.num_lanes else False)
    in_cw = (
        (points_in_rings(q, lanes.crosswalks[0], lanes.crosswalks[1]) >= 0)[inverse]
        if lanes.crosswalks is not None and n
        else np.zeros(n, dtype=bool)
    )
    if lanes.drivable is not None and n:
        in_da = (points_in_rings(q, lanes.drivable[0], lanes.drivable[1]) >= 0)[inverse]
    else:
        in_da = on_lane.copy()
    nxt = {}
    for place in PLACES:
        d = _next_along(lanes, place, lane_q, s_q, cfg.horizon_m)
        if place == "intersection":
            d = np.where(in_inter, 0.0, d)
        elif place == "crosswalk":
            d = np.where(in_cw & on_lane, 0.0, d)
        nxt[place] = d
    limit = np.where(on_lane, lanes.speed_limit_mps[safe_lane] if lanes.num_lanes else np.nan, np.nan)
    return MapContext(
        lanes=lanes,
        lane=grid(lane_q, -1),
        lane_feature=grid(np.where(on_lane, lanes.feature[safe_lane] if lanes.num_lanes else -1, -1), -1),
        lane_s_m=grid(s_q, np.nan),
        lane_lateral_m=grid(lat_q, np.nan),
        lane_heading_diff_rad=grid(dh_q, np.nan),
        in_intersection=grid(in_inter, False),
        in_crosswalk=grid(in_cw, False),
        in_drivable_area=grid(in_da, False),
        next_intersection_m=grid(nxt["intersection"], np.nan),
        next_crosswalk_m=grid(nxt["crosswalk"], np.nan),
        next_stop_line_m=grid(nxt["stop_line"], np.nan),
        speed_limit_mps=grid(limit.astype(np.float64), np.nan),
        has_drivable_area=lanes.drivable is not None,
    )


def _next_along(
    lanes: LaneMap, place: str, lane_q: NDArrayInt, s_q: NDArrayFloat, horizon_m: float
) -> NDArrayFloat:
    """``(Q,)`` along-lane distance from states to the next ``place`` ahead (NaN: none / no lane)."""
    out = np.full(lane_q.shape[0], np.nan)
    on = np.flatnonzero(lane_q >= 0)
    if on.size == 0:
        return out
    keys = lanes.entries[place]
    lane = lane_q[on]
    s = s_q[on]
    here = np.full(on.size, np.inf)
    if keys.size:
        pos = np.searchsorted(keys, lane.astype(np.float64) * _KEY_SCALE + s, side="left")
        found = pos < keys.size
        entry = np.where(found, keys[np.minimum(pos, keys.size - 1)], np.inf)
        same = found & (entry < (lane + 1).astype(np.float64) * _KEY_SCALE)
        here = np.where(same, entry - lane.astype(np.float64) * _KEY_SCALE - s, np.inf)
    later = lanes.length_m[lane] - s + lanes.after_m[place][lane]
    dist = np.maximum(np.minimum(here, later), 0.0)
    out[on] = np.where(dist <= horizon_m, dist, np.nan)
    return out
