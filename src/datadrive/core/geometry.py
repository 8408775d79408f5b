"""Polyline geometry shared by every layer: centerlines from lane bounds, projection onto polylines.

Readers use the centerline functions; mining, simulation and the feature
cache use :class:`PolylineIndex` to find, for many points at once, the
nearest polyline (a lane centerline, a road edge), the arc length along it,
the signed lateral offset and the polyline's heading there.

Map formats that store a lane as its left and right bounds (Lanelet2,
CommonRoad) get a centerline from :func:`centerline_from_bounds`: both bounds
resampled at the union of their vertices' normalised arc lengths, then
averaged. Everything is vectorised over all lanes of a map at once
(:func:`centerlines_from_bounds`), on polylines packed by
:func:`flatten_polylines`.

AV2 maps do not use this: their centerline is av2's own rule (a fixed number
of points equally spaced in 3-D chordal arc length, see
:func:`datadrive.sources.av2_map.lane_centerlines`), a different resampling.

Notation:
    N, M: points of a lane's left and right bound. D: 2 or 3 coordinates.
    K: centerline points. F: polylines. P: their points, packed. Q: query points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt

__all__ = [
    "Candidates",
    "PolylineIndex",
    "Projection",
    "centerline_from_bounds",
    "centerlines_from_bounds",
    "flatten_polylines",
    "polyline_arc_lengths",
]


def flatten_polylines(polylines: Sequence[NDArrayFloat]) -> tuple[NDArrayFloat, NDArrayInt, NDArrayInt]:
    """Many polylines as one array, for vectorised work on all of them at once.

    Args:
        polylines: N polylines, each ``(P_i, D)``.

    Returns:
        ``(P, D)`` the points of all polylines in order, ``(P,)`` the index of
        the polyline each point belongs to, and ``(N + 1,)`` offsets: polyline
        i is rows ``offsets[i]:offsets[i + 1]``.
    """
    counts = np.fromiter((p.shape[0] for p in polylines), dtype=np.int64, count=len(polylines))
    offsets = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    owner = np.repeat(np.arange(counts.shape[0], dtype=np.int64), counts)
    return np.concatenate(polylines), owner, offsets


def _group_cumsum(values: NDArrayFloat, offsets: NDArrayInt) -> NDArrayFloat:
    """Cumulative sum restarting at every group start (groups given by ``offsets``)."""
    total = np.cumsum(values)
    before = np.concatenate([[0.0], total])[offsets[:-1]]
    counts = np.diff(offsets)
    out: NDArrayFloat = total - np.repeat(before, counts)
    return out


def centerlines_from_bounds(
    lefts: Sequence[NDArrayFloat], rights: Sequence[NDArrayFloat]
) -> list[NDArrayFloat]:
    """:func:`centerline_from_bounds` (not paired) for many lanes at once.

    Args:
        lefts: Per lane, the ``(N_i, D)`` left bound, in driving direction.
        rights: Per lane, the ``(M_i, D)`` right bound, same direction.

    Returns:
        Per lane, the ``(K_i, D)`` centerline.

    Raises:
        ValueError: a bound has no points.
    """
    n = len(lefts)
    if n == 0:
        return []
    # polyline k < n: the left bound of lane k; n + k: its right bound
    flat, owner, offsets = flatten_polylines([*lefts, *rights])
    if int(np.diff(offsets).min()) == 0:
        raise ValueError("a lane bound has no points")
    # drop points that repeat the previous one of the same polyline
    step = np.hypot(*np.diff(flat[:, :2], axis=0).T)
    keep = np.concatenate([[True], (step > 0.0) | (owner[1:] != owner[:-1])])
    flat, owner = flat[keep], owner[keep]
    counts = np.bincount(owner, minlength=2 * n)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    # normalised arc length of every point within its polyline
    seg = np.concatenate([[0.0], np.hypot(*np.diff(flat[:, :2], axis=0).T)])
    seg[offsets[:-1]] = 0.0
    s = _group_cumsum(seg, offsets)
    total = np.repeat(s[offsets[1:] - 1], counts)  # repeated points are gone: 0 only for one-point bounds
    fraction = s / np.where(total > 0, total, 1.0)
    # query parameters per lane: the union of both bounds' fractions, near-duplicates merged
    lane = owner % n
    order = np.lexsort((fraction, lane))
    q_lane, q_t = lane[order], fraction[order]
    fresh = np.concatenate([[True], (q_lane[1:] != q_lane[:-1]) | (np.diff(q_t) > 1e-9)])
    q_lane, q_t = q_lane[fresh], q_t[fresh]
    left_at = _interpolate(flat, owner, offsets, fraction, q_lane, q_t)
    right_at = _interpolate(flat, owner, offsets, fraction, q_lane + n, q_t)
    middle = (left_at + right_at) / 2.0
    return np.split(middle, np.cumsum(np.bincount(q_lane, minlength=n))[:-1])


def _interpolate(
    flat: NDArrayFloat,
    owner: NDArrayInt,
    offsets: NDArrayInt,
    fraction: NDArrayFloat,
    q_owner: NDArrayInt,
    q_t: NDArrayFloat,
) -> NDArrayFloat:
    """Points of polylines ``q_owner`` at normalised arc length ``q_t`` (``np.interp`` per polyline)."""
    key = owner * 2.0 + fraction  # fractions lie in [0, 1]: keys of one polyline never mix with the next
    i = np.searchsorted(key, q_owner * 2.0 + q_t, side="right") - 1
    start, end = offsets[q_owner], offsets[q_owner + 1]
    i = np.clip(i, start, np.maximum(end - 2, start))
    j = np.minimum(i + 1, end - 1)
    span = fraction[j] - fraction[i]
    w = np.clip(np.where(span > 0, (q_t - fraction[i]) / np.where(span > 0, span, 1.0), 0.0), 0.0, 1.0)
    blend = flat[i] + w[:, None] * (flat[j] - flat[i])
    # at a vertex, its own value (a NaN height next door must not leak in, as with np.interp)
    out: NDArrayFloat = np.where((w == 0.0)[:, None], flat[i], np.where((w == 1.0)[:, None], flat[j], blend))
    return out


def centerline_from_bounds(left: NDArrayFloat, right: NDArrayFloat, *, paired: bool = False) -> NDArrayFloat:
    """The centerline between a lane's left and right bounds.

    Both bounds are resampled at the union of their vertices' normalised arc
    lengths (so no vertex of either bound is cut off and both get the same
    number of points), and the centerline is the midpoint of corresponding
    points. With ``paired=True`` and bounds of equal length, the i-th points
    are paired directly (CommonRoad's ``center_vertices``).

    Args:
        left: ``(N, D)`` left bound, D = 2 or 3, in driving direction.
        right: ``(M, D)`` right bound, same direction.
        paired: Pair the bounds point by point when N == M.

    Returns:
        ``(K, D)`` centerline points, K >= max(N, M) after dropping repeated points.

    Raises:
        ValueError: a bound has no points.
    """
    if left.shape[0] == 0 or right.shape[0] == 0:
        raise ValueError("a lane bound has no points")
    if paired and left.shape[0] == right.shape[0]:
        middle: NDArrayFloat = (left + right) / 2.0
        return middle
    return centerlines_from_bounds([left], [right])[0]


def polyline_arc_lengths(points_m: NDArrayFloat, offsets: NDArrayInt) -> NDArrayFloat:
    """Arc length of every point from the start of its polyline.

    Args:
        points_m: ``(P, D)`` packed points (only x and y are used).
        offsets: ``(F + 1,)`` polyline ``f`` is rows ``offsets[f]:offsets[f + 1]``.

    Returns:
        ``(P,)`` metres along the polyline, 0 at each polyline's first point.
    """
    if points_m.shape[0] == 0:
        return np.zeros(0)
    seg = np.concatenate([[0.0], np.hypot(*np.diff(points_m[:, :2], axis=0).T)])
    starts = offsets[:-1][np.diff(offsets) > 0]
    seg[starts] = 0.0
    return _group_cumsum(seg, offsets)


@dataclass(frozen=True)
class Projection:
    """Where points lie relative to their nearest polyline.

    Attributes:
        feature: ``(Q,)`` index of the nearest polyline, -1 where none is within reach.
        distance_m: ``(Q,)`` distance to it (``inf`` where none).
        s_m: ``(Q,)`` arc length of the foot point along that polyline.
        lateral_m: ``(Q,)`` signed offset, positive to the left of the polyline's direction.
        heading_rad: ``(Q,)`` direction of the polyline's segment at the foot point.
        xy_m: ``(Q, 2)`` the foot point.
    """

    feature: NDArrayInt
    distance_m: NDArrayFloat
    s_m: NDArrayFloat
    lateral_m: NDArrayFloat
    heading_rad: NDArrayFloat
    xy_m: NDArrayFloat

    @property
    def found(self) -> NDArrayBool:
        """``(Q,)`` whether a polyline was within reach."""
        out: NDArrayBool = self.feature >= 0
        return out


@dataclass(frozen=True)
class Candidates:
    """For each query point, up to ``K`` distinct nearby polylines, nearest first.

    Unused slots have ``feature = -1`` and NaN/inf values.

    Attributes:
        feature: ``(Q, K)`` polyline index, -1 where the slot is unused.
        distance_m: ``(Q, K)`` distance to that polyline's nearest segment (``inf`` if unused).
        s_m: ``(Q, K)`` arc length of the foot point.
        lateral_m: ``(Q, K)`` signed offset, positive to the left.
        heading_rad: ``(Q, K)`` direction of the polyline at the foot point.
    """

    feature: NDArrayInt
    distance_m: NDArrayFloat
    s_m: NDArrayFloat
    lateral_m: NDArrayFloat
    heading_rad: NDArrayFloat


class PolylineIndex:
    """Nearest-segment queries over many polylines, exact and vectorised.

    Segments are sampled every ``step_m`` metres into a k-d tree. For a query
    point whose nearest sample lies at distance ``r``, the nearest segment
    lies within ``r`` and has a sample within ``r + step_m / 2``; every
    segment with a sample in that ball is measured exactly, so the answer is
    the true nearest segment, not an approximation.

    Args:
        points_m: ``(P, D)`` packed polyline points (x, y used).
        offsets: ``(F + 1,)`` polyline offsets into ``points_m``.
        step_m: Sampling step along segments (smaller: more memory, fewer candidates).
    """

    def __init__(self, points_m: NDArrayFloat, offsets: NDArrayInt, *, step_m: float = 1.0) -> None:
        from scipy.spatial import cKDTree

        if step_m <= 0:
            raise ValueError("step_m must be positive")
        self.step_m = step_m
        self.num_features = int(offsets.shape[0] - 1)
        xy = np.ascontiguousarray(points_m[:, :2], dtype=np.float64)
        counts = np.diff(offsets)
        owner = np.repeat(np.arange(self.num_features), counts)
        arc = polyline_arc_lengths(xy, offsets)
        # segments: consecutive points of one polyline; a one-point polyline is a zero-length segment
        same = np.zeros(xy.shape[0], dtype=bool)
        if xy.shape[0] > 1:
            same[:-1] = owner[:-1] == owner[1:]
        start = np.flatnonzero(same)
        single = offsets[:-1][counts == 1]
        a_idx = np.concatenate([start, single]).astype(np.int64)
        b_idx = np.concatenate([start + 1, single]).astype(np.int64)
        self.a, self.b = xy[a_idx], xy[b_idx]
        self.seg_feature = owner[a_idx] if a_idx.size else np.zeros(0, dtype=np.int64)
        self.seg_s0 = arc[a_idx] if a_idx.size else np.zeros(0)
        d = self.b - self.a
        self.seg_len = np.hypot(d[:, 0], d[:, 1])
        self.seg_heading = np.arctan2(d[:, 1], d[:, 0])
        # samples along each segment, both ends included
        n = np.maximum(1, np.ceil(self.seg_len / step_m).astype(np.int64))
        seg_of_sample = np.repeat(np.arange(a_idx.size), n + 1)
        first = np.concatenate([[0], np.cumsum(n + 1)[:-1]]) if a_idx.size else np.zeros(0, dtype=np.int64)
        k = np.arange(seg_of_sample.size) - np.repeat(first, n + 1)
        t = k / np.repeat(n, n + 1)
        samples = self.a[seg_of_sample] + t[:, None] * d[seg_of_sample]
        self._sample_seg = seg_of_sample
        self._tree = cKDTree(samples) if samples.shape[0] else None

    def project(self, query_xy_m: NDArrayFloat, *, max_distance_m: float = np.inf, k: int = 16) -> Projection:
        """The nearest polyline to every query point.

        Args:
            query_xy_m: ``(Q, 2)`` points (more columns are ignored).
            max_distance_m: Points farther than this from every polyline get ``feature = -1``.
            k: Samples fetched per point in the first pass; points whose ball
                holds more are resolved in a second, exact pass.

        Returns:
            A :class:`Projection` of ``Q`` points.
        """
        q = np.ascontiguousarray(np.asarray(query_xy_m, dtype=np.float64)[:, :2])
        num = q.shape[0]
        best_seg = np.full(num, -1, dtype=np.int64)
        best_d2 = np.full(num, np.inf)
        finite = np.isfinite(q).all(axis=1)
        if self._tree is not None and num:
            kk = int(min(k, self._tree.n))
            upper = max_distance_m + self.step_m if np.isfinite(max_distance_m) else np.inf
            rows = np.flatnonzero(finite)
            dist, idx = self._tree.query(q[rows], k=kk, distance_upper_bound=upper)
            dist = dist.reshape(rows.size, kk)
            idx = idx.reshape(rows.size, kk)
            radius = dist[:, 0] + self.step_m / 2.0
            hit = np.isfinite(dist[:, 0])
            complete = (dist[:, -1] >= radius) | (kk == self._tree.n)
            # pass 1: the k samples cover the ball
            sel = hit & complete
            if sel.any():
                cand = np.where(np.isfinite(dist[sel]), idx[sel], idx[sel][:, :1])
                self._closest(q[rows[sel]], self._sample_seg[cand], rows[sel], best_seg, best_d2)
            # pass 2: crowded balls, exactly (rare: many polylines within a few steps)
            for r in np.flatnonzero(hit & ~complete):
                ball = self._tree.query_ball_point(q[rows[r]], radius[r])
                segs = np.unique(self._sample_seg[np.asarray(ball, dtype=np.int64)])
                self._closest(q[rows[r : r + 1]], segs[None, :], rows[r : r + 1], best_seg, best_d2)
        dist_m = np.sqrt(best_d2)
        far = dist_m > max_distance_m
        best_seg[far] = -1
        dist_m[far] = np.inf
        ok = best_seg >= 0
        seg = np.where(ok, best_seg, 0)
        feature = np.where(ok, self.seg_feature[seg] if self.seg_feature.size else -1, -1)
        a = self.a[seg] if self.a.size else np.zeros((num, 2))
        d = (self.b[seg] - a) if self.a.size else np.zeros((num, 2))
        length = self.seg_len[seg] if self.seg_len.size else np.zeros(num)
        t = np.clip(np.einsum("ij,ij->i", q - a, d) / np.where(length > 0, length**2, 1.0), 0.0, 1.0)
        foot = a + t[:, None] * d
        heading = self.seg_heading[seg] if self.seg_heading.size else np.zeros(num)
        cross = d[:, 0] * (q[:, 1] - a[:, 1]) - d[:, 1] * (q[:, 0] - a[:, 0])
        lateral = np.where(length > 0, cross / np.where(length > 0, length, 1.0), 0.0)
        s = (self.seg_s0[seg] if self.seg_s0.size else np.zeros(num)) + t * length
        nan = np.where(ok, 1.0, np.nan)
        return Projection(
            feature=feature.astype(np.int64),
            distance_m=dist_m,
            s_m=s * nan,
            lateral_m=lateral * nan,
            heading_rad=heading * nan,
            xy_m=foot * nan[:, None],
        )

    def candidates(
        self, query_xy_m: NDArrayFloat, *, max_distance_m: float, k: int = 4, samples: int = 16
    ) -> Candidates:
        """Up to ``k`` distinct polylines within ``max_distance_m`` of every query point.

        Each polyline is measured at its nearest segment among the ``samples``
        nearest samples of the point, so a polyline is reported exactly (its
        true nearest segment and distance) unless the ``samples`` nearest
        samples are all taken by closer polylines; :meth:`project` remains the
        exact nearest. Used to choose among overlapping lanes (intersections)
        by heading as well as distance.

        Args:
            query_xy_m: ``(Q, 2)`` points.
            max_distance_m: Farther polylines are not reported.
            k: Most polylines per point.
            samples: Samples fetched per point.

        Returns:
            :class:`Candidates` of shape ``(Q, k)``.
        """
        q = np.ascontiguousarray(np.asarray(query_xy_m, dtype=np.float64)[:, :2])
        num = q.shape[0]
        feature = np.full((num, k), -1, dtype=np.int64)
        dist = np.full((num, k), np.inf)
        s_out = np.full((num, k), np.nan)
        lat_out = np.full((num, k), np.nan)
        head_out = np.full((num, k), np.nan)
        finite = np.isfinite(q).all(axis=1)
        if self._tree is None or num == 0 or not finite.any():
            return Candidates(feature, dist, s_out, lat_out, head_out)
        rows = np.flatnonzero(finite)
        kk = int(min(samples, self._tree.n))
        d_sample, idx = self._tree.query(
            q[rows], k=kk, distance_upper_bound=max_distance_m + self.step_m / 2.0
        )
        d_sample = d_sample.reshape(rows.size, kk)
        idx = idx.reshape(rows.size, kk)
        ok = np.isfinite(d_sample)
        seg = np.where(ok, self._sample_seg[np.where(ok, idx, 0)], -1)  # (R, kk)
        segc = np.where(seg >= 0, seg, 0)
        a, b = self.a[segc], self.b[segc]
        d = b - a
        length2 = np.einsum("ijk,ijk->ij", d, d)
        rel = q[rows][:, None, :] - a
        t = np.clip(np.einsum("ijk,ijk->ij", rel, d) / np.where(length2 > 0, length2, 1.0), 0.0, 1.0)
        foot = a + t[..., None] * d
        d2 = ((q[rows][:, None, :] - foot) ** 2).sum(axis=-1)
        d2 = np.where(seg >= 0, d2, np.inf)
        feat = np.where(seg >= 0, self.seg_feature[segc], -1)
        # per row: the nearest segment of each distinct feature, then the k nearest features
        order = np.argsort(d2, axis=1, kind="stable")
        d2 = np.take_along_axis(d2, order, axis=1)
        feat = np.take_along_axis(feat, order, axis=1)
        t = np.take_along_axis(t, order, axis=1)
        segc = np.take_along_axis(segc, order, axis=1)
        rel = np.take_along_axis(rel, order[..., None], axis=1)
        d = np.take_along_axis(d, order[..., None], axis=1)
        earlier = np.tril(np.ones((kk, kk), dtype=bool), k=-1)  # [i, j]: j comes before i
        dup = ((feat[:, :, None] == feat[:, None, :]) & earlier[None]).any(axis=2)
        first = ~dup & (feat >= 0) & (d2 <= max_distance_m**2)
        rank = np.cumsum(first, axis=1) - 1
        sel = first & (rank < k)
        kr, kc = np.nonzero(sel)
        rank = rank[kr, kc]
        out_rows = rows[kr]
        sg = segc[kr, kc]
        length = self.seg_len[sg]
        cross = d[kr, kc, 0] * rel[kr, kc, 1] - d[kr, kc, 1] * rel[kr, kc, 0]
        feature[out_rows, rank] = feat[kr, kc]
        dist[out_rows, rank] = np.sqrt(d2[kr, kc])
        s_out[out_rows, rank] = self.seg_s0[sg] + t[kr, kc] * length
        lat_out[out_rows, rank] = np.where(length > 0, cross / np.where(length > 0, length, 1.0), 0.0)
        head_out[out_rows, rank] = self.seg_heading[sg]
        return Candidates(feature, dist, s_out, lat_out, head_out)

    def _closest(
        self, q: NDArrayFloat, segs: NDArrayInt, rows: NDArrayInt, best_seg: NDArrayInt, best_d2: NDArrayFloat
    ) -> None:
        """Exact point-to-segment distances against ``(n, c)`` candidate segments; keep the nearest."""
        a, b = self.a[segs], self.b[segs]
        d = b - a
        length2 = np.einsum("ijk,ijk->ij", d, d)
        t = np.einsum("ijk,ijk->ij", q[:, None, :] - a, d) / np.where(length2 > 0, length2, 1.0)
        foot = a + np.clip(t, 0.0, 1.0)[..., None] * d
        d2 = ((q[:, None, :] - foot) ** 2).sum(axis=-1)
        j = np.argmin(d2, axis=1)
        pick = d2[np.arange(q.shape[0]), j]
        better = pick < best_d2[rows]
        best_d2[rows[better]] = pick[better]
        best_seg[rows[better]] = segs[np.flatnonzero(better), j[better]]
