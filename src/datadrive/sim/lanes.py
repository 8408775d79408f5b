"""The lane graph of a map, as the simulator and the metrics use it.

:class:`LaneGraph` gathers a map's lane centerlines, their successor and
neighbour relations and an estimate of each lane's half width (from its
boundary polylines where the map has them, else a default), and answers, for
many points at once, which lane they lie on (:meth:`LaneGraph.match`: nearest
lane segment with a heading penalty, so an agent is matched to its own
direction of travel at an intersection). :func:`chain_path` follows
successors from a lane into one polyline resampled every ``step_m`` metres:
the path a reactive agent (or the ego's route) drives along.

Notation:
    F: lanes of the map. G: lane segments, all lanes together. Q: query points.
    K: points of a resampled path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from datadrive.core.geometry import polyline_arc_lengths
from datadrive.core.scenario import MapFeatureKind, MapFeatures, MapRelation
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt

__all__ = ["DEFAULT_HALF_WIDTH_M", "LaneGraph", "LaneMatch", "chain_path", "resample_polyline"]

DEFAULT_HALF_WIDTH_M = 1.85
"""Half of a 3.7 m lane (US interstate standard), where the map gives no lane boundaries."""


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


class LaneGraph:
    """Lanes of one map: centerlines, relations, half widths, segment geometry.

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
        self.num_lanes = int(lanes.size)
        of_feature = np.full(m.num_features, -1, dtype=np.int64)
        of_feature[lanes] = np.arange(lanes.size)
        self.lane_of_feature = of_feature
        self.points: list[NDArrayFloat] = [m.xyz_m[m.offsets[f] : m.offsets[f + 1], :2] for f in lanes]
        self.successors: list[list[int]] = [[] for _ in range(self.num_lanes)]
        self.predecessors: list[list[int]] = [[] for _ in range(self.num_lanes)]
        self.left: list[int] = [-1] * self.num_lanes
        self.right: list[int] = [-1] * self.num_lanes
        half = np.full(self.num_lanes, np.nan)
        for src, dst, rel in m.relations.tolist():
            a, b = int(of_feature[src]), int(of_feature[dst])
            if a < 0:
                continue
            if rel == MapRelation.SUCCESSOR and b >= 0:
                self.successors[a].append(b)
            elif rel == MapRelation.PREDECESSOR and b >= 0:
                self.predecessors[a].append(b)
            elif rel == MapRelation.LEFT_NEIGHBOR and b >= 0 and self.left[a] < 0:
                self.left[a] = b
            elif rel == MapRelation.RIGHT_NEIGHBOR and b >= 0 and self.right[a] < 0:
                self.right[a] = b
            elif rel in (MapRelation.LEFT_BOUNDARY, MapRelation.RIGHT_BOUNDARY) and b < 0:
                # half width: mean distance from the centerline's points to the boundary polyline
                bnd = m.xyz_m[m.offsets[dst] : m.offsets[dst + 1], :2]
                if bnd.shape[0] >= 2:
                    d = _point_polyline_distance(self.points[a], bnd)
                    w = float(np.median(d))
                    half[a] = w if np.isnan(half[a]) else (half[a] + w) / 2.0
        for a in range(self.num_lanes):  # successors also come as predecessors of the other lane
            for p in self.predecessors[a]:
                if a not in self.successors[p]:
                    self.successors[p].append(a)
        ok = np.isfinite(half) & (half > 0.5) & (half < 4.0)
        self.half_width_m: NDArrayFloat = np.where(ok, half, DEFAULT_HALF_WIDTH_M)
        self.half_width_from_map: NDArrayBool = ok
        # segments of every lane, packed
        seg_a, seg_b, seg_lane, seg_s0 = [], [], [], []
        for i, pts in enumerate(self.points):
            arc = polyline_arc_lengths(pts, np.asarray([0, pts.shape[0]]))
            seg_a.append(pts[:-1])
            seg_b.append(pts[1:])
            seg_lane.append(np.full(pts.shape[0] - 1, i, dtype=np.int64))
            seg_s0.append(arc[:-1])
        self.lengths_m: NDArrayFloat = np.asarray(
            [float(np.sum(np.hypot(*np.diff(p, axis=0).T))) for p in self.points]
        ).reshape(-1)
        if self.num_lanes:
            self.seg_a = np.concatenate(seg_a)
            self.seg_b = np.concatenate(seg_b)
            self.seg_lane = np.concatenate(seg_lane)
            self.seg_s0 = np.concatenate(seg_s0)
        else:
            self.seg_a = self.seg_b = np.zeros((0, 2))
            self.seg_lane = np.zeros(0, dtype=np.int64)
            self.seg_s0 = np.zeros(0)
        d = self.seg_b - self.seg_a
        self.seg_len = np.hypot(d[:, 0], d[:, 1])
        self.seg_heading = np.arctan2(d[:, 1], d[:, 0])
        self._tree: Any = None

    def connected(self, a: int, b: int) -> bool:
        """Same lane, or one continues the other."""
        return a == b or b in self.successors[a] or a in self.successors[b]

    def _candidates(self, q: NDArrayFloat, radius_m: float) -> list[NDArrayInt]:
        """Per query point, the segments with a sample point within ``radius_m`` (a superset)."""
        from scipy.spatial import cKDTree

        if self._tree is None:
            step = 2.0
            n = np.maximum(1, np.ceil(self.seg_len / step).astype(np.int64))
            owner = np.repeat(np.arange(self.seg_len.size), n + 1)
            first = np.concatenate([[0], np.cumsum(n + 1)[:-1]])
            t = (np.arange(owner.size) - np.repeat(first, n + 1)) / np.repeat(n, n + 1)
            samples = self.seg_a[owner] + t[:, None] * (self.seg_b - self.seg_a)[owner]
            self._tree = cKDTree(samples)
            self._sample_owner = owner
            self._sample_step = step
        found = self._tree.query_ball_point(q, radius_m + self._sample_step)
        return [np.unique(self._sample_owner[np.asarray(f, dtype=np.int64)]) for f in found]

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
        if self.num_lanes == 0 or n == 0:
            return LaneMatch(lane, s, lat, dist, herr)
        finite = np.isfinite(q).all(axis=1)
        rows = np.flatnonzero(finite)
        cands = self._candidates(q[rows], max_distance_m)
        sizes = np.asarray([c.size for c in cands], dtype=np.int64)
        if sizes.sum() == 0:
            return LaneMatch(lane, s, lat, dist, herr)
        row_of = np.repeat(rows, sizes)
        seg = np.concatenate(cands)
        a, b = self.seg_a[seg], self.seg_b[seg]
        d = b - a
        length = self.seg_len[seg]
        p = q[row_of]
        t = np.clip(np.einsum("ij,ij->i", p - a, d) / np.where(length > 0, length**2, 1.0), 0.0, 1.0)
        foot = a + t[:, None] * d
        dd = np.hypot(*(p - foot).T)
        cost = dd.copy()
        he = np.zeros_like(dd)
        if heading_rad is not None:
            h = np.asarray(heading_rad, dtype=np.float64).reshape(-1)[row_of]
            he = (h - self.seg_heading[seg] + np.pi) % (2 * np.pi) - np.pi
            cost = dd + heading_weight_m_per_rad * np.abs(he)
            cost = np.where(np.abs(he) <= max_heading_error_rad, cost, np.inf)
        cost = np.where(dd <= max_distance_m, cost, np.inf)
        order = np.lexsort((cost, row_of))
        first = np.concatenate([[True], row_of[order][1:] != row_of[order][:-1]])
        best = order[first]
        good = np.isfinite(cost[best])
        best = best[good]
        r = row_of[best]
        sb = seg[best]
        lane[r] = self.seg_lane[sb]
        s[r] = self.seg_s0[sb] + t[best] * length[best]
        cross = d[best, 0] * (p[best, 1] - a[best, 1]) - d[best, 1] * (p[best, 0] - a[best, 0])
        lat[r] = cross / np.where(length[best] > 0, length[best], 1.0)
        dist[r] = dd[best]
        herr[r] = he[best]
        return LaneMatch(lane, s, lat, dist, herr)

    def distance_to_lanes(self, xy_m: NDArrayFloat, radius_m: float = 5.0) -> tuple[NDArrayFloat, NDArrayInt]:
        """``(Q,)`` distance to the nearest lane centerline *minus that lane's half width* and the lane.

        Negative inside a lane's corridor; ``inf`` (lane -1) beyond ``radius_m``.
        """
        m = self.match(xy_m, None, max_distance_m=radius_m)
        hw = np.where(m.lane >= 0, self.half_width_m[np.maximum(m.lane, 0)], 0.0)
        return m.distance_m - hw, m.lane


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
