"""The lane graph of a map, as the simulator and the metrics use it.

:class:`LaneGraph` gathers a map's lane centerlines, their successor and
neighbour relations, each lane's half width (from its boundary polylines
where the map has them, else a default), its speed limit (NaN unknown) and,
where the map gives a lane's own left and right bounds, the lane's polygon.
It answers, for many points at once and without a Python loop per point:

* :meth:`LaneGraph.match`: the lane a point lies on (nearest segment, with a
  heading penalty so an agent is matched to its own direction of travel);
* :meth:`LaneGraph.membership`: the lane whose area holds a point, over
  *every* lane near it (a point 1.6 m beside a 3.5 m lane's centerline is in
  that lane even when a narrow bicycle lane's centerline is nearer); a lane's
  area is its polygon where the map has one, and its corridor of half the
  lane's width around the centerline otherwise or in addition.

Candidate segments come from a k-d tree over points sampled every 2 m along
all segments (one vectorised k-nearest query), so the cost per point is a
constant, not the map's size; each point's samples are reduced to their distinct
segments (first appearances, in order) before the exact foot computation, which
gives the same answers as the full list. :func:`chain_path` follows successors from a
lane into one polyline: the path a reactive agent or the ego's route follows.

Notation:
    F: lanes of the map. G: lane segments, all lanes together. Q: query points.
    C: candidate segments per query point. E: edges of a lane polygon (padded).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from datadrive.core.geometry import polyline_arc_lengths
from datadrive.core.scenario import MapFeatureKind, MapFeatures, MapRelation
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt
from datadrive.sim.geometry import PolygonSet

__all__ = [
    "DEFAULT_HALF_WIDTH_M",
    "DrivableArea",
    "LaneGraph",
    "LaneMatch",
    "Membership",
    "chain_path",
    "resample_polyline",
]

DEFAULT_HALF_WIDTH_M = 1.85
"""Half of a 3.7 m lane (US interstate standard), where the map gives no lane boundaries."""

_SAMPLE_STEP_M = 2.0
_CANDIDATES = 24


@dataclass(frozen=True)
class LaneMatch:
    """Where points lie relative to their matched lane.

    Attributes:
        lane: ``(Q,)`` index into :attr:`LaneGraph.lane_ids`, -1 where no lane is near.
        s_m: ``(Q,)`` arc length of the foot point along that lane.
        lateral_m: ``(Q,)`` signed offset, positive to the lane's left.
        distance_m: ``(Q,)`` distance to the lane centerline.
        heading_error_rad: ``(Q,)`` query heading minus lane heading, wrapped.
    """

    lane: NDArrayInt
    s_m: NDArrayFloat
    lateral_m: NDArrayFloat
    distance_m: NDArrayFloat
    heading_error_rad: NDArrayFloat


@dataclass(frozen=True)
class Membership:
    """Which lane's area holds each point.

    Attributes:
        lane: ``(Q,)`` a lane whose area holds the point (the one whose corridor it is deepest in), -1 none.
        excess_m: ``(Q,)`` how far the point lies outside the nearest lane area (<= 0 inside;
            ``inf`` beyond the search radius). Inside a lane polygon it is 0.
        s_m: ``(Q,)`` arc length along ``lane`` of the point's foot (NaN without a lane).
    """

    lane: NDArrayInt
    excess_m: NDArrayFloat
    s_m: NDArrayFloat


class LaneGraph:
    """Lanes of one map: centerlines, relations, half widths, speed limits, polygons, segment geometry.

    Args:
        m: The map. Lanes are its ``LANE_CENTERLINE`` features with at least two points.
    """

    def __init__(self, m: MapFeatures) -> None:
        kinds = m.kind
        counts = np.diff(m.offsets)
        lanes = np.flatnonzero((kinds == MapFeatureKind.LANE_CENTERLINE) & (counts >= 2))
        self.feature_index: NDArrayInt = lanes.astype(np.int64)
        self.lane_ids = m.feature_ids[lanes]
        self.is_intersection: NDArrayBool = m.is_intersection[lanes]
        self.num_lanes = F = int(lanes.size)
        limits = getattr(m, "speed_limit_mps", None)
        self.speed_limit_mps: NDArrayFloat = (
            np.asarray(limits, dtype=np.float64)[lanes] if limits is not None else np.full(F, np.nan)
        )
        of_feature = np.full(m.num_features, -1, dtype=np.int64)
        of_feature[lanes] = np.arange(F)
        self.lane_of_feature = of_feature
        self.points: list[NDArrayFloat] = [m.xyz_m[m.offsets[f] : m.offsets[f + 1], :2] for f in lanes]
        rel = m.relations
        src = of_feature[rel[:, 0]] if rel.shape[0] else np.zeros(0, dtype=np.int64)
        dst_lane = of_feature[rel[:, 1]] if rel.shape[0] else np.zeros(0, dtype=np.int64)
        kind = rel[:, 2] if rel.shape[0] else np.zeros(0, dtype=np.int64)
        both = (src >= 0) & (dst_lane >= 0)
        succ = both & (kind == MapRelation.SUCCESSOR)
        pred = both & (kind == MapRelation.PREDECESSOR)
        # successor pairs (a -> b) from both directions of the relation, deduplicated
        pairs = np.unique(
            np.concatenate(
                [np.stack([src[succ], dst_lane[succ]], 1), np.stack([dst_lane[pred], src[pred]], 1)]
            ).reshape(-1, 2),
            axis=0,
        )
        self.successors: list[list[int]] = [[] for _ in range(F)]
        self.predecessors: list[list[int]] = [[] for _ in range(F)]
        for a, b in pairs.tolist():
            self.successors[a].append(b)
            self.predecessors[b].append(a)
        # connected(a, b): same lane, or one continues the other; as sorted codes for vectorised lookups
        codes = np.concatenate([pairs[:, 0] * max(F, 1) + pairs[:, 1], pairs[:, 1] * max(F, 1) + pairs[:, 0]])
        self._connected_codes: NDArrayInt = np.unique(codes).astype(np.int64)
        self.left: list[int] = [-1] * F
        self.right: list[int] = [-1] * F
        for k_rel, side in ((MapRelation.LEFT_NEIGHBOR, self.left), (MapRelation.RIGHT_NEIGHBOR, self.right)):
            sel = both & (kind == k_rel)
            for a, b in zip(src[sel].tolist(), dst_lane[sel].tolist(), strict=True):
                if side[a] < 0:
                    side[a] = b
        # lane bounds: half widths (median distance to each bound) and, where both bounds span the
        # lane end to end, the lane polygon
        half = np.full(F, np.nan)
        left_b: list[NDArrayFloat | None] = [None] * F
        right_b: list[NDArrayFloat | None] = [None] * F
        for k_rel, store in ((MapRelation.LEFT_BOUNDARY, left_b), (MapRelation.RIGHT_BOUNDARY, right_b)):
            sel = (src >= 0) & (kind == k_rel)
            for a, f in zip(src[sel].tolist(), rel[sel, 1].tolist(), strict=True):
                bnd = m.xyz_m[m.offsets[f] : m.offsets[f + 1], :2]
                if bnd.shape[0] < 2:
                    continue
                w = float(np.median(_point_polyline_distance(self.points[a], bnd)))
                half[a] = w if np.isnan(half[a]) else (half[a] + w) / 2.0
                store[a] = bnd if store[a] is None else None  # several bound pieces: no single polygon
        ok = np.isfinite(half) & (half > 0.5) & (half < 4.0)
        self.half_width_m: NDArrayFloat = np.where(ok, half, DEFAULT_HALF_WIDTH_M)
        self.half_width_from_map: NDArrayBool = ok
        self._build_polygons(left_b, right_b)
        # segments of every lane, packed
        self.lengths_m: NDArrayFloat = np.asarray(
            [float(np.sum(np.hypot(*np.diff(p, axis=0).T))) for p in self.points], dtype=np.float64
        ).reshape(-1)
        if F:
            flat = np.concatenate(self.points)
            offs = np.concatenate([[0], np.cumsum([p.shape[0] for p in self.points])]).astype(np.int64)
            arc = polyline_arc_lengths(flat, offs)
            owner = np.repeat(np.arange(F), np.diff(offs))
            first = np.zeros(flat.shape[0], dtype=bool)
            first[offs[:-1]] = True
            a_idx = np.flatnonzero(~first) - 1
            self.seg_a = flat[a_idx]
            self.seg_b = flat[a_idx + 1]
            self.seg_lane = owner[a_idx]
            self.seg_s0 = arc[a_idx]
        else:
            self.seg_a = self.seg_b = np.zeros((0, 2))
            self.seg_lane = np.zeros(0, dtype=np.int64)
            self.seg_s0 = np.zeros(0)
        d = self.seg_b - self.seg_a
        self.seg_len = np.hypot(d[:, 0], d[:, 1])
        self.seg_heading = np.arctan2(d[:, 1], d[:, 0])
        # per segment once, gathered per candidate (the same values as computing them per candidate)
        self._seg_d = d
        self._seg_len2 = np.where(self.seg_len > 0, self.seg_len**2, 1.0)
        self._seg_len1 = np.where(self.seg_len > 0, self.seg_len, 1.0)
        self._tree: Any = None

    # ------------------------------------------------------------------ relations

    def connected(self, a: int, b: int) -> bool:
        """Same lane, or one continues the other."""
        return bool(self.connected_many(np.asarray([a]), np.asarray([b]))[0])

    def connected_many(self, a: NDArrayInt, b: NDArrayInt) -> NDArrayBool:
        """``(Q,)`` elementwise :meth:`connected` (lanes -1 are connected to nothing)."""
        F = max(self.num_lanes, 1)
        codes = np.asarray(a, dtype=np.int64) * F + np.asarray(b, dtype=np.int64)
        pos = np.searchsorted(self._connected_codes, codes)
        pos = np.minimum(pos, max(self._connected_codes.size - 1, 0))
        hit = (
            self._connected_codes[pos] == codes if self._connected_codes.size else np.zeros(codes.shape, bool)
        )
        out: NDArrayBool = ((a == b) | hit) & (a >= 0) & (b >= 0)
        return out

    # ------------------------------------------------------------------ polygons

    def _build_polygons(self, left_b: list[NDArrayFloat | None], right_b: list[NDArrayFloat | None]) -> None:
        """Lane polygons (left bound + reversed right bound) where both bounds span the whole lane."""
        polys: list[NDArrayFloat] = []
        self.polygon_of_lane: NDArrayInt = np.full(self.num_lanes, -1, dtype=np.int64)
        for a in range(self.num_lanes):
            lb, rb = left_b[a], right_b[a]
            if lb is None or rb is None:
                continue
            cl = self.points[a]
            reach = 2.5 * max(float(self.half_width_m[a]), 1.0) + 1.0
            # the bounds must start and end beside the centerline's ends (Waymo's boundaries are shared
            # pieces of longer lines: no polygon from those)
            ends = (lb[0] - cl[0], rb[0] - cl[0], lb[-1] - cl[-1], rb[-1] - cl[-1])
            if max(float(np.hypot(*e)) for e in ends) > reach:
                continue
            self.polygon_of_lane[a] = len(polys)
            polys.append(np.concatenate([lb, rb[::-1]]))
        self._polygons = PolygonSet(polys)
        self.has_polygons = bool(polys)

    def _in_polygons(self, q: NDArrayFloat, poly: NDArrayInt) -> NDArrayBool:
        """``(n,)`` whether point ``q[i]`` lies inside lane polygon ``poly[i]`` (even-odd rule)."""
        a = self._polygons.a[poly]  # (n, E, 2)
        b = self._polygons.b[poly]
        y = q[:, None, 1]
        x = q[:, None, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            straddle = (a[..., 1] > y) != (b[..., 1] > y)
            xint = a[..., 0] + (y - a[..., 1]) * (b[..., 0] - a[..., 0]) / (b[..., 1] - a[..., 1])
            cross = straddle & (x < xint)
        out: NDArrayBool = (np.count_nonzero(cross, axis=1) % 2) == 1
        return out

    # ------------------------------------------------------------------ queries

    def _candidates(self, q: NDArrayFloat, radius_m: float) -> tuple[NDArrayInt, NDArrayBool]:
        """``(Q, C)`` candidate segments near each point (one k-nearest query), and which are real."""
        from scipy.spatial import cKDTree

        if self._tree is None:
            n = np.maximum(1, np.ceil(self.seg_len / _SAMPLE_STEP_M).astype(np.int64))
            owner = np.repeat(np.arange(self.seg_len.size), n + 1)
            first = np.concatenate([[0], np.cumsum(n + 1)[:-1]])
            t = (np.arange(owner.size) - np.repeat(first, n + 1)) / np.repeat(n, n + 1)
            samples = self.seg_a[owner] + t[:, None] * (self.seg_b - self.seg_a)[owner]
            self._tree = cKDTree(samples)
            self._sample_owner = owner
        k = int(min(_CANDIDATES, self._tree.n))
        dist, idx = self._tree.query(q, k=k, distance_upper_bound=radius_m + _SAMPLE_STEP_M)
        dist = np.asarray(dist).reshape(q.shape[0], k)
        idx = np.asarray(idx).reshape(q.shape[0], k)
        real = np.isfinite(dist)
        seg = self._sample_owner[np.where(real, idx, 0)]
        return _distinct(seg, real)

    def _foot(self, q: NDArrayFloat, seg: NDArrayInt) -> tuple[NDArrayFloat, NDArrayFloat, NDArrayFloat]:
        """Per ``(Q, C)`` candidate: distance, parameter along the segment, signed cross product / length."""
        a, d = self.seg_a[seg], self._seg_d[seg]
        rel = q[:, None, :] - a
        t = np.clip((rel[..., 0] * d[..., 0] + rel[..., 1] * d[..., 1]) / self._seg_len2[seg], 0, 1)
        fx = a[..., 0] + t * d[..., 0] - q[:, None, 0]
        fy = a[..., 1] + t * d[..., 1] - q[:, None, 1]
        dist = np.hypot(fx, fy)
        cross = (d[..., 0] * rel[..., 1] - d[..., 1] * rel[..., 0]) / self._seg_len1[seg]
        return dist, t, cross

    def match(
        self,
        xy_m: NDArrayFloat,
        heading_rad: NDArrayFloat | None = None,
        *,
        max_distance_m: float = 3.0,
        heading_weight_m_per_rad: float = 4.0,
        max_heading_error_rad: float = np.pi / 3,
    ) -> LaneMatch:
        """The lane each point lies on (nearest segment, penalised by heading disagreement).

        Args:
            xy_m: ``(Q, 2)`` points.
            heading_rad: ``(Q,)`` headings, or ``None`` to match by distance only.
            max_distance_m: Points farther from every lane get ``lane = -1``.
            heading_weight_m_per_rad: Cost in metres of one radian of heading disagreement.
            max_heading_error_rad: Lanes pointing further away than this are not matched.
        """
        q = np.asarray(xy_m, dtype=np.float64).reshape(-1, 2)
        n = q.shape[0]
        lane = np.full(n, -1, dtype=np.int64)
        s = np.full(n, np.nan)
        lat = np.full(n, np.nan)
        dist = np.full(n, np.inf)
        herr = np.full(n, np.nan)
        finite = np.isfinite(q).all(axis=1)
        if self.num_lanes == 0 or not finite.any():
            return LaneMatch(lane, s, lat, dist, herr)
        rows = np.flatnonzero(finite)
        qq = q[rows]
        seg, real = self._candidates(qq, max_distance_m)
        dd, t, cross = self._foot(qq, seg)
        cost = np.where(real & (dd <= max_distance_m), dd, np.inf)
        he = np.zeros_like(dd)
        if heading_rad is not None:
            h = np.asarray(heading_rad, dtype=np.float64).reshape(-1)[rows]
            he = (h[:, None] - self.seg_heading[seg] + np.pi) % (2 * np.pi) - np.pi
            cost = np.where(
                np.abs(he) <= max_heading_error_rad, cost + heading_weight_m_per_rad * np.abs(he), np.inf
            )
        j = np.argmin(cost, axis=1)
        r = np.arange(rows.size)
        good = np.isfinite(cost[r, j])
        sb = seg[r, j]
        out = rows[good]
        lane[out] = self.seg_lane[sb[good]]
        s[out] = (self.seg_s0[sb] + t[r, j] * self.seg_len[sb])[good]
        lat[out] = cross[r, j][good]
        dist[out] = dd[r, j][good]
        herr[out] = he[r, j][good]
        return LaneMatch(lane, s, lat, dist, herr)

    def membership(self, xy_m: NDArrayFloat, *, radius_m: float = 6.0) -> Membership:
        """The lane area holding each point, over every lane near it (see the module docstring)."""
        q = np.asarray(xy_m, dtype=np.float64).reshape(-1, 2)
        n = q.shape[0]
        lane = np.full(n, -1, dtype=np.int64)
        excess = np.full(n, np.inf)
        s = np.full(n, np.nan)
        finite = np.isfinite(q).all(axis=1)
        if self.num_lanes == 0 or not finite.any():
            return Membership(lane, excess, s)
        rows = np.flatnonzero(finite)
        qq = q[rows]
        seg, real = self._candidates(qq, radius_m)
        dd, t, _ = self._foot(qq, seg)
        cand_lane = self.seg_lane[seg]
        ex = np.where(real & (dd <= radius_m), dd - self.half_width_m[cand_lane], np.inf)
        if self.has_polygons:
            # candidates whose lane has a polygon holding the point count as inside (excess 0)
            poly = self.polygon_of_lane[cand_lane]
            check = real & (poly >= 0) & (ex > 0) & np.isfinite(ex)
            if check.any():
                rr, cc = np.nonzero(check)
                inside = self._in_polygons(qq[rr], poly[rr, cc])
                ex[rr[inside], cc[inside]] = np.minimum(ex[rr[inside], cc[inside]], 0.0)
        j = np.argmin(ex, axis=1)
        r = np.arange(rows.size)
        best = ex[r, j]
        sb = seg[r, j]
        inside = best <= 0
        excess[rows] = best
        lane[rows[inside]] = cand_lane[r, j][inside]
        s[rows[inside]] = (self.seg_s0[sb] + t[r, j] * self.seg_len[sb])[inside]
        return Membership(lane, excess, s)

    def distance_to_lanes(self, xy_m: NDArrayFloat, radius_m: float = 5.0) -> tuple[NDArrayFloat, NDArrayInt]:
        """``(Q,)`` distance outside the nearest lane area (negative or 0 inside) and the lane holding it."""
        m = self.membership(xy_m, radius_m=radius_m)
        return m.excess_m, m.lane


class DrivableArea:
    """The drivable area of a map: every lane's area, and the map's drivable-area polygons.

    Args:
        lanes: The lane graph.
        polygons: The map's ``DRIVABLE_AREA`` polygons (``None``: none).
    """

    def __init__(self, lanes: LaneGraph, polygons: PolygonSet | None) -> None:
        self.lanes = lanes
        self.polygons = polygons

    def excess(self, xy_m: NDArrayFloat, *, radius_m: float = 6.0) -> tuple[NDArrayFloat, NDArrayInt]:
        """``(Q,)`` how far each point lies outside the drivable area (<= 0 inside), and its lane (-1 none).

        Beyond ``radius_m`` of every lane and polygon the excess is ``inf``.
        """
        out, m = self.query(xy_m, radius_m=radius_m)
        return out, m.lane

    def query(self, xy_m: NDArrayFloat, *, radius_m: float = 6.0) -> tuple[NDArrayFloat, Membership]:
        """``(Q,)`` excess outside the drivable area (see :meth:`excess`) and the lane membership."""
        q = np.asarray(xy_m, dtype=np.float64).reshape(-1, 2)
        m = self.lanes.membership(q, radius_m=radius_m)
        out = m.excess_m.copy()
        if self.polygons is not None:
            outside = np.flatnonzero(out > 0)
            if outside.size:
                inside = self.polygons.contains(q[outside])
                out[outside[inside]] = 0.0
                still = outside[~inside]
                if still.size:
                    out[still] = np.minimum(out[still], self.polygons.distance_to_edges(q[still], radius_m))
        return out, m


def _distinct(seg: NDArrayInt, real: NDArrayBool) -> tuple[NDArrayInt, NDArrayBool]:
    """Each row's distinct real segments, in the order of their first appearance, padded (not real).

    The k-d tree holds several samples per segment (one every 2 m), so a point's nearest samples name
    few segments (about 7 of 24 on a road of 10 m segments); the foot computation runs once per
    segment. Keeping first appearances in their order keeps every later ``argmin`` (first of equal
    costs) choosing the same segment as over the full list: the results are the same, bit for bit.
    """
    Q, C = seg.shape
    if Q == 0 or C == 0:
        return seg, real
    bits = max(C - 1, 1).bit_length()
    col = np.arange(C, dtype=np.int64)
    past = int(seg.max()) + 1  # not real: sorted after every segment
    key = (np.where(real, seg, past) << bits) | col
    key.sort(axis=1)
    sorted_seg = key >> bits
    first = np.empty(key.shape, dtype=bool)
    first[:, 0] = True
    np.not_equal(sorted_seg[:, 1:], sorted_seg[:, :-1], out=first[:, 1:])
    first &= sorted_seg < past
    n = max(1, int(first.sum(axis=1).max()))
    # the first appearances back in column order, the rest after them
    cols = key & ((1 << bits) - 1)
    order = np.where(first, cols, cols + (1 << bits))
    order.sort(axis=1)
    pick = order[:, :n]
    keep = pick < (1 << bits)
    pick &= (1 << bits) - 1
    return np.take_along_axis(seg, pick, axis=1), keep


def _point_polyline_distance(points: NDArrayFloat, line: NDArrayFloat) -> NDArrayFloat:
    """``(N,)`` distance from each point to a polyline (brute force; boundaries are short)."""
    a, b = line[:-1], line[1:]
    d = b - a
    l2 = np.einsum("ij,ij->i", d, d)
    t = np.einsum("nij,ij->ni", points[:, None, :] - a[None], d) / np.where(l2 > 0, l2, 1.0)
    t = np.clip(t, 0.0, 1.0)
    foot = a[None] + t[..., None] * d[None]
    out: NDArrayFloat = np.min(np.hypot(*(points[:, None, :] - foot).transpose(2, 0, 1)), axis=1)
    return out


def resample_polyline(points: NDArrayFloat, step_m: float, num: int, start_m: float = 0.0) -> NDArrayFloat:
    """``(num, 2)`` points every ``step_m`` metres from arc ``start_m``, straight past the ends."""
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    seg = np.hypot(*np.diff(pts, axis=0).T)
    keep = np.concatenate([[True], seg > 1e-6])
    pts = pts[keep]
    if pts.shape[0] < 2:
        base = pts[0] if pts.shape[0] else np.zeros(2)
        return np.repeat(base[None], num, axis=0)
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
    q = start_m + step_m * np.arange(num)
    x = np.interp(q, arc, pts[:, 0])
    y = np.interp(q, arc, pts[:, 1])
    # straight extrapolation beyond both ends along the end segments
    d_end = (pts[-1] - pts[-2]) / max(arc[-1] - arc[-2], 1e-9)
    d_start = (pts[1] - pts[0]) / max(arc[1] - arc[0], 1e-9)
    past = q > arc[-1]
    x = np.where(past, pts[-1, 0] + (q - arc[-1]) * d_end[0], x)
    y = np.where(past, pts[-1, 1] + (q - arc[-1]) * d_end[1], y)
    before = q < 0
    x = np.where(before, pts[0, 0] + q * d_start[0], x)
    y = np.where(before, pts[0, 1] + q * d_start[1], y)
    return np.stack([x, y], axis=1)


def chain_path(
    graph: LaneGraph,
    lane: int,
    length_m: float,
    choose: Callable[[int, list[int]], int],
    *,
    back_m: float = 0.0,
) -> tuple[NDArrayFloat, list[tuple[int, float]]]:
    """A lane followed by successors until the chain is ``length_m`` long.

    Args:
        graph: The lane graph.
        lane: The first lane.
        length_m: How long the chain must be (from the first lane's start).
        choose: Picks one successor: ``choose(lane, successors) -> successor``.
        back_m: Also prepend predecessors' points (first predecessor) for this many metres.

    Returns:
        The chain's points ``(N, 2)`` (arc length 0 at ``lane``'s start when
        ``back_m`` is 0) and ``(lane, start arc length)`` for every lane in it.
    """
    parts = [graph.points[lane]]
    starts = [(lane, 0.0)]
    total = float(graph.lengths_m[lane])
    cur = lane
    seen = {lane}
    while total < length_m:
        nxt = graph.successors[cur]
        nxt = [n for n in nxt if n not in seen]
        if not nxt:
            break
        cur = choose(cur, nxt)
        seen.add(cur)
        starts.append((cur, total))
        parts.append(graph.points[cur])
        total += float(graph.lengths_m[cur])
    pts = np.concatenate(parts)
    if back_m > 0 and graph.predecessors[lane]:
        pred = graph.points[graph.predecessors[lane][0]]
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pred[::-1], axis=0).T))])
        tail = pred[::-1][arc <= back_m][::-1]
        pts = np.concatenate([tail, pts])
    return pts, starts
