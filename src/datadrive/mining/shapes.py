"""Polygons and oriented boxes, vectorised: containment, overlap, distances.

Map areas (drivable area, crosswalks) are closed rings packed as points plus
offsets (the :class:`~datadrive.core.scenario.MapFeatures` layout); object
footprints are oriented boxes ``(x, y, heading, length, width)``. Everything
here works on whole arrays of points or box pairs at once.

Notation:
    Q: query points. P: ring points, packed. R: rings. N: boxes or box pairs.
"""

from __future__ import annotations

import numpy as np

from datadrive.core.scenario import ObjectType
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt, NDArrayUInt8

__all__ = [
    "DEFAULT_SIZE_M",
    "box_corners",
    "box_distance",
    "boxes_overlap",
    "footprint_size",
    "points_in_rings",
    "rings_distance",
]

DEFAULT_SIZE_M: dict[int, tuple[float, float]] = {
    int(ObjectType.VEHICLE): (4.5, 1.9),
    int(ObjectType.CYCLIST): (1.8, 0.7),
    int(ObjectType.PEDESTRIAN): (0.6, 0.6),
    int(ObjectType.OTHER): (1.0, 1.0),
}
"""Length and width (m) assumed where a source gives no size: a mid-size car, a bicycle, a person."""


def footprint_size(size_m: NDArrayFloat, object_type: NDArrayUInt8) -> tuple[NDArrayFloat, NDArrayFloat]:
    """``(A,)`` length and ``(A,)`` width of each track, defaults by type where unknown."""
    length = size_m[:, 0].copy()
    width = size_m[:, 1].copy()
    for t, (dl, dw) in DEFAULT_SIZE_M.items():
        rows = object_type == t
        length[rows & ~(length > 0)] = dl
        width[rows & ~(width > 0)] = dw
    length[~(length > 0)] = 1.0
    width[~(width > 0)] = 1.0
    return length, width


def box_corners(
    xy_m: NDArrayFloat, heading_rad: NDArrayFloat, length_m: NDArrayFloat, width_m: NDArrayFloat
) -> NDArrayFloat:
    """``(..., 4, 2)`` corners (front-left, rear-left, rear-right, front-right) of oriented boxes.

    Args:
        xy_m: ``(..., 2)`` centres.
        heading_rad: ``(...)`` headings.
        length_m: ``(...)`` lengths (along the heading), broadcast.
        width_m: ``(...)`` widths, broadcast.
    """
    c, s = np.cos(heading_rad), np.sin(heading_rad)
    hl, hw = np.asarray(length_m) / 2.0, np.asarray(width_m) / 2.0
    fx, fy = c * hl, s * hl  # half-length along the heading
    lx, ly = -s * hw, c * hw  # half-width to the left
    x, y = xy_m[..., 0], xy_m[..., 1]
    cx = np.stack([x + fx + lx, x - fx + lx, x - fx - lx, x + fx - lx], axis=-1)
    cy = np.stack([y + fy + ly, y - fy + ly, y - fy - ly, y + fy - ly], axis=-1)
    return np.stack([cx, cy], axis=-1)


def boxes_overlap(corners_a: NDArrayFloat, corners_b: NDArrayFloat) -> NDArrayBool:
    """Whether pairs of oriented boxes overlap (separating-axis test; touching counts).

    Args:
        corners_a: ``(..., 4, 2)`` corners from :func:`box_corners`.
        corners_b: ``(..., 4, 2)``, broadcast against ``corners_a``.

    Returns:
        ``(...)`` bool.
    """
    corners_a, corners_b = np.broadcast_arrays(corners_a, corners_b)
    separated = np.zeros(corners_a.shape[:-2], dtype=bool)
    for box in (corners_a, corners_b):
        for i in (0, 1):  # two edge directions per rectangle
            edge = box[..., i + 1, :] - box[..., i, :]
            axis = np.stack([-edge[..., 1], edge[..., 0]], axis=-1)[..., None, :]
            pa = (corners_a * axis).sum(-1)
            pb = (corners_b * axis).sum(-1)
            separated |= (pa.max(-1) < pb.min(-1)) | (pb.max(-1) < pa.min(-1))
    out: NDArrayBool = ~separated
    return out


def _point_segment_distance(p: NDArrayFloat, a: NDArrayFloat, b: NDArrayFloat) -> NDArrayFloat:
    """``(...)`` distance of points ``p`` to segments ``a``-``b`` (all ``(..., 2)``, broadcast)."""
    d = b - a
    length2 = (d * d).sum(-1)
    t = np.clip(((p - a) * d).sum(-1) / np.where(length2 > 0, length2, 1.0), 0.0, 1.0)
    foot = a + t[..., None] * d
    out: NDArrayFloat = np.sqrt(((p - foot) ** 2).sum(-1))
    return out


def box_distance(corners_a: NDArrayFloat, corners_b: NDArrayFloat) -> NDArrayFloat:
    """Shortest distance between pairs of oriented boxes, 0 where they overlap.

    Args:
        corners_a: ``(..., 4, 2)``.
        corners_b: ``(..., 4, 2)``, broadcast.

    Returns:
        ``(...)`` metres.
    """
    corners_a, corners_b = np.broadcast_arrays(corners_a, corners_b)
    a0, a1 = corners_a, np.roll(corners_a, -1, axis=-2)
    b0, b1 = corners_b, np.roll(corners_b, -1, axis=-2)
    # every corner of one box against every edge of the other: (..., 4 corners, 4 edges)
    d_ab = _point_segment_distance(corners_a[..., :, None, :], b0[..., None, :, :], b1[..., None, :, :])
    d_ba = _point_segment_distance(corners_b[..., :, None, :], a0[..., None, :, :], a1[..., None, :, :])
    dist = np.minimum(d_ab.min(axis=(-1, -2)), d_ba.min(axis=(-1, -2)))
    out: NDArrayFloat = np.where(boxes_overlap(corners_a, corners_b), 0.0, dist)
    return out


def points_in_rings(points_xy_m: NDArrayFloat, ring_xy_m: NDArrayFloat, offsets: NDArrayInt) -> NDArrayInt:
    """Which ring (closed polygon) contains each point (even-odd rule).

    Rings are tried in order; a point inside several gets the first. Each
    ring's bounding box filters the points first, so large sets of points
    against many small rings stay cheap.

    Args:
        points_xy_m: ``(Q, 2)`` points.
        ring_xy_m: ``(P, 2+)`` ring points, packed; a ring need not repeat its first point.
        offsets: ``(R + 1,)`` ring ``r`` is ``ring_xy_m[offsets[r]:offsets[r + 1]]``.

    Returns:
        ``(Q,)`` index of the containing ring, -1 where none.
    """
    q = np.asarray(points_xy_m, dtype=np.float64)[:, :2]
    out = np.full(q.shape[0], -1, dtype=np.int64)
    if q.shape[0] == 0:
        return out
    finite = np.isfinite(q).all(axis=1)
    for r in range(offsets.shape[0] - 1):
        ring = ring_xy_m[offsets[r] : offsets[r + 1], :2]
        if ring.shape[0] < 3:
            continue
        lo, hi = ring.min(axis=0), ring.max(axis=0)
        cand = np.flatnonzero(
            finite
            & (out < 0)
            & (q[:, 0] >= lo[0])
            & (q[:, 0] <= hi[0])
            & (q[:, 1] >= lo[1])
            & (q[:, 1] <= hi[1])
        )
        if cand.size == 0:
            continue
        inside = _even_odd(q[cand], ring)
        out[cand[inside]] = r
    return out


def _even_odd(q: NDArrayFloat, ring: NDArrayFloat, chunk: int = 4096) -> NDArrayBool:
    """``(Q,)`` even-odd containment of points in one ring (closed implicitly)."""
    a = ring
    b = np.roll(ring, -1, axis=0)
    inside = np.zeros(q.shape[0], dtype=bool)
    for start in range(0, q.shape[0], chunk):
        p = q[start : start + chunk]
        px, py = p[:, 0:1], p[:, 1:2]
        ay, by = a[None, :, 1], b[None, :, 1]
        straddle = (ay > py) != (by > py)
        dy = np.where(by != ay, by - ay, 1.0)
        x_cross = a[None, :, 0] + (py - ay) * (b[None, :, 0] - a[None, :, 0]) / dy
        crossings = np.count_nonzero(straddle & (px < x_cross), axis=1)
        inside[start : start + chunk] = (crossings % 2) == 1
    return inside


def rings_distance(points_xy_m: NDArrayFloat, ring_xy_m: NDArrayFloat, offsets: NDArrayInt) -> NDArrayFloat:
    """Distance from each point to the nearest ring's area: 0 inside a ring, else to its boundary.

    Args:
        points_xy_m: ``(Q, 2)``.
        ring_xy_m: ``(P, 2+)`` packed ring points.
        offsets: ``(R + 1,)``.

    Returns:
        ``(Q,)`` metres, ``inf`` when there are no rings.
    """
    from datadrive.core.geometry import PolylineIndex

    q = np.asarray(points_xy_m, dtype=np.float64)[:, :2]
    if offsets.shape[0] < 2 or q.shape[0] == 0:
        return np.full(q.shape[0], np.inf)
    # close every ring so its boundary is a polyline ending where it started
    counts = np.diff(offsets)
    parts = []
    new_counts = []
    for r in range(counts.shape[0]):
        pts = ring_xy_m[offsets[r] : offsets[r + 1], :2]
        if pts.shape[0] == 0:
            new_counts.append(0)
            continue
        parts.append(pts)
        parts.append(pts[:1])
        new_counts.append(pts.shape[0] + 1)
    closed = np.concatenate(parts) if parts else np.zeros((0, 2))
    new_offsets = np.concatenate([[0], np.cumsum(new_counts)]).astype(np.int64)
    index = PolylineIndex(closed, new_offsets, step_m=2.0)
    dist = index.project(q).distance_m
    inside = points_in_rings(q, ring_xy_m, offsets) >= 0
    out: NDArrayFloat = np.where(inside, 0.0, dist)
    return out
