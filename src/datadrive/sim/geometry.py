"""Oriented boxes and polygons, vectorised: corners, overlap (separating axes), points in polygons.

:func:`box_corners` and :func:`boxes_overlap` run on any :class:`~datadrive.sim.backend.Backend`
(numpy or torch); the polygon functions are numpy (they serve the metrics,
which run on the CPU after a rollout).

Two convex quadrilaterals overlap iff no separating axis exists among their
four edge normals (the separating axis theorem); touching counts as overlap,
as in shapely's ``intersects`` that nuPlan's ``in_collision`` uses.

Notation:
    ...: any leading shape (broadcast). E: polygon edges. Q: query points.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datadrive.core.scenario import MapFeatureKind, Scenario
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt
from datadrive.sim.backend import Array, Backend, NumpyBackend

__all__ = [
    "PolygonSet",
    "box_corners",
    "boxes_overlap",
    "drivable_polygons",
    "obb_overlap",
    "points_in_polygons",
    "segment_hits_box",
]

_NP = NumpyBackend()


def box_corners(x: Array, y: Array, heading: Array, length: Array, width: Array, xp: Backend = _NP) -> Array:
    """``(..., 4, 2)`` corners in the order front-left, rear-left, rear-right, front-right (nuPlan's)."""
    c, s = xp.cos(heading), xp.sin(heading)
    hl, hw = length / 2.0, width / 2.0
    fx, fy = c * hl, s * hl  # half length along the heading
    lx, ly = -s * hw, c * hw  # half width to the left
    xs = [x + fx + lx, x - fx + lx, x - fx - lx, x + fx - lx]
    ys = [y + fy + ly, y - fy + ly, y - fy - ly, y + fy - ly]
    return xp.stack([xp.stack(xs, axis=-1), xp.stack(ys, axis=-1)], axis=-1)


def _project(corners: Array, ax: Array, ay: Array, xp: Backend) -> tuple[Array, Array]:
    p = corners[..., 0] * ax[..., None] + corners[..., 1] * ay[..., None]
    return xp.min(p, axis=-1), xp.max(p, axis=-1)


def boxes_overlap(a: Array, b: Array, xp: Backend = _NP) -> Array:
    """``(...)`` whether boxes ``a`` and ``b`` (``(..., 4, 2)`` corners, broadcast) overlap or touch."""
    sep: Any = None
    for box in (a, b):
        for i in (0, 1):  # two edge directions per rectangle
            e = box[..., i + 1, :] - box[..., i, :]
            ax, ay = -e[..., 1], e[..., 0]
            amin, amax = _project(a, ax, ay, xp)
            bmin, bmax = _project(b, ax, ay, xp)
            gap = (amax < bmin) | (bmax < amin)
            sep = gap if sep is None else (sep | gap)
    return ~sep


def obb_overlap(
    xa: Array, ya: Array, ha: Array, la: Array, wa: Array,
    xb: Array, yb: Array, hb: Array, lb: Array, wb: Array,
    xp: Backend = _NP,
) -> Array:  # fmt: skip
    """``(...)`` whether oriented boxes (centre, heading, length, width; broadcast) overlap or touch.

    The separating-axis test in centre/half-extent form: boxes are apart iff
    along one of the four edge directions ``|(cb - ca) . u| > ra(u) + rb(u)``.
    """
    ca, sa, cb, sb = xp.cos(ha), xp.sin(ha), xp.cos(hb), xp.sin(hb)
    dx, dy = xb - xa, yb - ya
    hla, hwa, hlb, hwb = la / 2.0, wa / 2.0, lb / 2.0, wb / 2.0
    cos_ab = xp.abs(ca * cb + sa * sb)  # |ua . ub| = |va . vb|
    sin_ab = xp.abs(ca * sb - sa * cb)  # |ua . vb| = |va . ub|
    sep = xp.abs(dx * ca + dy * sa) > hla + hlb * cos_ab + hwb * sin_ab
    sep = sep | (xp.abs(-dx * sa + dy * ca) > hwa + hlb * sin_ab + hwb * cos_ab)
    sep = sep | (xp.abs(dx * cb + dy * sb) > hlb + hla * cos_ab + hwa * sin_ab)
    sep = sep | (xp.abs(-dx * sb + dy * cb) > hwb + hla * sin_ab + hwa * cos_ab)
    return ~sep


def segment_hits_box(p0: NDArrayFloat, p1: NDArrayFloat, box: NDArrayFloat) -> NDArrayBool:
    """``(...)`` whether segments ``p0 -> p1`` (``(..., 2)``) meet boxes (``(..., 4, 2)``); numpy."""
    seg = np.stack([p0, p1], axis=-2)
    sep = np.zeros(np.broadcast_shapes(p0.shape[:-1], box.shape[:-2]), dtype=bool)
    axes = [p1 - p0, box[..., 1, :] - box[..., 0, :], box[..., 2, :] - box[..., 1, :]]
    for e in axes:
        ax, ay = -e[..., 1], e[..., 0]
        ps = seg[..., 0] * ax[..., None] + seg[..., 1] * ay[..., None]
        pb = box[..., 0] * ax[..., None] + box[..., 1] * ay[..., None]
        sep |= (ps.max(-1) < pb.min(-1)) | (pb.max(-1) < ps.min(-1))
    # the segment's own direction separates too when the box lies beyond an end
    e = p1 - p0
    ps = seg[..., 0] * e[..., 0, None] + seg[..., 1] * e[..., 1, None]
    pb = box[..., 0] * e[..., 0, None] + box[..., 1] * e[..., 1, None]
    sep |= (ps.max(-1) < pb.min(-1)) | (pb.max(-1) < ps.min(-1))
    out: NDArrayBool = ~sep
    return out


class PolygonSet:
    """Many polygons, for point-in-polygon and distance queries with a bounding-box broad phase.

    Edges are packed ``(N, E, 2)`` (padded with NaN); a query point is tested
    only against the polygons whose bounding box holds it, so the cost follows
    the few polygons near each point, not the map's size.

    Args:
        polygons: ``N`` rings ``(n_i, 2)`` (closed or not).
    """

    def __init__(self, polygons: list[NDArrayFloat]) -> None:
        rings = [np.asarray(p, dtype=np.float64)[:, :2] for p in polygons if np.asarray(p).shape[0] >= 3]
        rings = [r if np.allclose(r[0], r[-1]) else np.concatenate([r, r[:1]]) for r in rings]
        self.num = len(rings)
        E = max((r.shape[0] - 1 for r in rings), default=1)
        self.a = np.full((self.num, E, 2), np.nan)
        self.b = np.full((self.num, E, 2), np.nan)
        for k, r in enumerate(rings):
            self.a[k, : r.shape[0] - 1] = r[:-1]
            self.b[k, : r.shape[0] - 1] = r[1:]
        self.lo = np.asarray([r.min(axis=0) for r in rings]).reshape(-1, 2)
        self.hi = np.asarray([r.max(axis=0) for r in rings]).reshape(-1, 2)

    def _pairs(self, q: NDArrayFloat, margin: float) -> tuple[NDArrayInt, NDArrayInt]:
        inside = (
            (q[:, None, 0] >= self.lo[None, :, 0] - margin)
            & (q[:, None, 0] <= self.hi[None, :, 0] + margin)
            & (q[:, None, 1] >= self.lo[None, :, 1] - margin)
            & (q[:, None, 1] <= self.hi[None, :, 1] + margin)
        )
        rows, polys = np.nonzero(inside)
        return rows, polys

    def contains(self, q: NDArrayFloat) -> NDArrayBool:
        """``(Q,)`` whether each point lies inside at least one polygon (even-odd rule per polygon)."""
        q = np.asarray(q, dtype=np.float64).reshape(-1, 2)
        out = np.zeros(q.shape[0], dtype=bool)
        if self.num == 0 or q.shape[0] == 0:
            return out
        rows, polys = self._pairs(q, 0.0)
        if rows.size == 0:
            return out
        a, b = self.a[polys], self.b[polys]
        x, y = q[rows, 0:1], q[rows, 1:2]
        with np.errstate(invalid="ignore", divide="ignore"):
            straddle = (a[..., 1] > y) != (b[..., 1] > y)
            xint = a[..., 0] + (y - a[..., 1]) * (b[..., 0] - a[..., 0]) / (b[..., 1] - a[..., 1])
            crossings = np.count_nonzero(straddle & (x < xint), axis=1)
        out[rows[crossings % 2 == 1]] = True
        return out

    def distance_to_edges(self, q: NDArrayFloat, max_m: float) -> NDArrayFloat:
        """``(Q,)`` distance to the nearest polygon edge, ``inf`` beyond ``max_m`` of every polygon's box."""
        q = np.asarray(q, dtype=np.float64).reshape(-1, 2)
        out = np.full(q.shape[0], np.inf)
        if self.num == 0 or q.shape[0] == 0:
            return out
        rows, polys = self._pairs(q, max_m)
        if rows.size == 0:
            return out
        a, b = self.a[polys], self.b[polys]
        d = b - a
        p = q[rows][:, None, :] - a
        l2 = (d**2).sum(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.clip((p * d).sum(-1) / np.where(l2 > 0, l2, 1.0), 0.0, 1.0)
            dist = np.hypot(p[..., 0] - t * d[..., 0], p[..., 1] - t * d[..., 1])
        best = np.nanmin(np.where(np.isnan(dist), np.inf, dist), axis=1)
        np.minimum.at(out, rows, best)
        return out


def drivable_polygons(scenario: Scenario) -> PolygonSet | None:
    """The map's drivable-area polygons (``DRIVABLE_AREA`` features), ``None`` when it has none.

    AV2's drivable areas, Lanelet2's freespace and parking areas and
    nuScenes' lane surfaces (through ScenarioNet) are such polygons; Waymo,
    CommonRoad and most Lanelet2 maps carry lanes and road edges instead,
    and the drivable area is then the lanes' own areas.
    """
    m = scenario.map
    if m is None:
        return None
    idx = np.flatnonzero(m.kind == MapFeatureKind.DRIVABLE_AREA)
    rings = [m.xyz_m[m.offsets[f] : m.offsets[f + 1], :2] for f in idx]
    polys = PolygonSet([r for r in rings if r.shape[0] >= 3])
    return polys if polys.num else None


def points_in_polygons(
    q: NDArrayFloat, starts: NDArrayFloat, ends: NDArrayFloat, owner: NDArrayInt, *, chunk: int = 4096
) -> NDArrayBool:
    """``(Q,)`` whether each point lies inside at least one polygon given as packed edges (brute force)."""
    q = np.asarray(q, dtype=np.float64).reshape(-1, 2)
    out = np.zeros(q.shape[0], dtype=bool)
    num_poly = int(owner.max()) + 1 if owner.size else 0
    if num_poly == 0:
        return out
    for lo in range(0, q.shape[0], chunk):
        p = q[lo : lo + chunk]
        x, y = p[:, 0:1], p[:, 1:2]
        y1, y2 = starts[None, :, 1], ends[None, :, 1]
        x1, x2 = starts[None, :, 0], ends[None, :, 0]
        straddle = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            xint = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        crosses = straddle & (x < xint)
        counts = np.zeros((p.shape[0], num_poly), dtype=np.int64)
        rows, cols = np.nonzero(crosses)
        np.add.at(counts, (rows, owner[cols]), 1)
        out[lo : lo + chunk] = (counts % 2 == 1).any(axis=1)
    return out


def as_numpy(x: Any) -> NDArrayFloat:
    return np.asarray(x, dtype=np.float64)
