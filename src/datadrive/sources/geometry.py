"""Polyline geometry shared by the map readers: lane centerlines from lane bounds.

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
    K: centerline points.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from datadrive.core.typing import NDArrayFloat, NDArrayInt

__all__ = ["centerline_from_bounds", "centerlines_from_bounds", "flatten_polylines"]


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
