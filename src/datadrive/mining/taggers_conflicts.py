"""Taggers of two road users in conflict: near misses (TTC, PET) and crossings ahead of a vehicle.

Both work on oriented boxes (:mod:`datadrive.mining.shapes`), vectorised
over all pairs of road users present at a step, one step at a time (the
pairs present change from step to step). Thresholds and their sources are
on :class:`~datadrive.mining.events.NearMissConfig` and
:class:`~datadrive.mining.events.CrossingConfig`.

Notation:
    A: tracks. T: steps. N: users at a step. P: candidate pairs. S: TTC samples.
    V: vehicles. U: pedestrians and cyclists.
"""

from __future__ import annotations

import numpy as np

from datadrive.core.frames import wrap_angle
from datadrive.core.scenario import ObjectType
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt
from datadrive.mining.context import ScenarioContext
from datadrive.mining.events import CrossingConfig, Event, NearMissConfig, make_event
from datadrive.mining.shapes import boxes_overlap

__all__ = ["near_miss", "pair_ttc", "vru_crossing"]


def pair_ttc(
    corners_i: NDArrayFloat,
    corners_j: NDArrayFloat,
    vel_i: NDArrayFloat,
    vel_j: NDArrayFloat,
    horizon_s: float,
    step_s: float,
) -> NDArrayFloat:
    """Time-to-collision of box pairs under constant velocity, sampled every ``step_s``.

    Args:
        corners_i: ``(P, 4, 2)`` corners now.
        corners_j: ``(P, 4, 2)``.
        vel_i: ``(P, 2)`` velocities.
        vel_j: ``(P, 2)``.
        horizon_s: Longest TTC looked for.
        step_s: Sampling step of the extrapolation.

    Returns:
        ``(P,)`` the first sampled time at which the boxes overlap; 0 if they
        overlap now; ``inf`` if not within the horizon.
    """
    p = corners_i.shape[0]
    out = np.full(p, np.inf)
    if p == 0:
        return out
    now = boxes_overlap(corners_i, corners_j)
    out[now] = 0.0
    taus = np.arange(step_s, horizon_s + 1e-9, step_s)  # (S,)
    rel_v = vel_j - vel_i  # move j relative to i: same overlap test
    moved = corners_j[:, None] + (rel_v[:, None, None, :] * taus[None, :, None, None])  # (P, S, 4, 2)
    hit = boxes_overlap(corners_i[:, None], moved)  # (P, S)
    first = np.argmax(hit, axis=1)
    anyhit = hit.any(axis=1) & ~now
    out[anyhit] = taus[first[anyhit]]
    return out


def near_miss(ctx: ScenarioContext, cfg: NearMissConfig) -> list[Event]:
    """Pairs of road users with TTC under ``cfg.ttc_s`` or PET under ``cfg.pet_s``."""
    users = ctx.of_type(ObjectType.VEHICLE, ObjectType.CYCLIST, ObjectType.PEDESTRIAN)
    vehicle = ctx.tracks.object_type == ObjectType.VEHICLE
    k = ctx.kinematics
    vel = np.stack([k.vx_mps, k.vy_mps], axis=-1)  # (A, T, 2)
    speed = k.speed_mps
    # a velocity needs a neighbour on each side to be trusted: a box first seen is often misplaced
    known = ctx.interior(0.2) & np.isfinite(speed)
    length, width = ctx.footprint
    radius = 0.5 * np.hypot(length, width)
    corners = ctx.corners
    xy = ctx.tracks.xy_m
    heading = k.travel_heading_rad
    ts = ctx.timestamps_ns
    # per unordered pair (i < j): steps flagged, min TTC, min PET
    flagged: dict[tuple[int, int], NDArrayBool] = {}
    min_ttc: dict[tuple[int, int], float] = {}
    min_pet: dict[tuple[int, int], float] = {}

    def flag(i: int, j: int, first: int, last: int) -> NDArrayBool:
        key = (i, j) if i < j else (j, i)
        m = flagged.setdefault(key, np.zeros(ctx.num_steps, dtype=bool))
        m[first : last + 1] = True
        return m

    # ---- TTC: every pair of road users at the same step within the search radius, found at once with a
    # k-d tree on (x, y, step * far) so that only states of one step can pair
    from scipy.spatial import cKDTree

    rows, cols = np.nonzero(users[:, None] & known)
    if rows.size > 1:
        far = 10.0 * cfg.search_radius_m
        tree = cKDTree(np.stack([xy[rows, cols, 0], xy[rows, cols, 1], cols * far], axis=1))
        pairs = tree.query_pairs(r=cfg.search_radius_m, output_type="ndarray")
        if pairs.size:
            gi, gj, t = rows[pairs[:, 0]], rows[pairs[:, 1]], cols[pairs[:, 0]]
            keep = (gi != gj) & (vehicle[gi] | vehicle[gj])
            gi, gj, t = gi[keep], gj[keep], t[keep]
            d = xy[gj, t] - xy[gi, t]
            dv = vel[gj, t] - vel[gi, t]
            dist = np.hypot(d[:, 0], d[:, 1])
            fast = np.maximum(speed[gi, t], speed[gj, t]) >= cfg.min_speed_mps
            closing = -(d * dv).sum(axis=1) / np.maximum(dist, 1e-6) >= cfg.min_closing_speed_mps
            # bounding circles first: can they touch within the horizon?
            rr = radius[gi] + radius[gj]
            qa = (dv * dv).sum(axis=1)
            qb = 2 * (d * dv).sum(axis=1)
            qc = dist**2 - rr**2
            disc = qb * qb - 4 * qa * qc
            with np.errstate(invalid="ignore", divide="ignore"):
                tau = np.where(
                    qc <= 0, 0.0, (-qb - np.sqrt(np.maximum(disc, 0))) / (2 * np.where(qa > 0, qa, 1))
                )
            sel = np.flatnonzero(fast & closing & (disc >= 0) & (qa > 0) & (tau <= cfg.ttc_s))
            if sel.size:
                gi, gj, t = gi[sel], gj[sel], t[sel]
                ttc = pair_ttc(
                    corners[gi, t], corners[gj, t], vel[gi, t], vel[gj, t], cfg.ttc_s, cfg.ttc_step_s
                )
                for n in np.flatnonzero((ttc > 0) & (ttc <= cfg.ttc_s)).tolist():
                    i, j = int(gi[n]), int(gj[n])
                    flag(i, j, int(t[n]), int(t[n]))
                    key = (i, j) if i < j else (j, i)
                    min_ttc[key] = min(min_ttc.get(key, np.inf), float(ttc[n]))

    # ---- PET: box i at t overlaps box j at another time t2 (|t2 - t| <= pet_s), never at the same time.
    # Candidates: moving states near in space and time, found at once with a k-d tree on (x, y, c*t),
    # c = (the largest box radius sum) / pet_s, so a pair within reach in space and time is within r.
    crossing = np.deg2rad(cfg.crossing_angle_deg)
    moving = users[:, None] & known & (speed >= cfg.min_speed_mps)
    rows, cols = np.nonzero(moving)
    if rows.size > 1:
        reach = float(2 * radius[rows].max())
        scale = reach / max(cfg.pet_s, 1e-6)
        tsec = ctx.t_s[cols]
        tree = cKDTree(np.stack([xy[rows, cols, 0], xy[rows, cols, 1], tsec * scale], axis=1))
        pairs = tree.query_pairs(r=reach * np.sqrt(2.0), output_type="ndarray")
        if pairs.size:
            a, b = pairs[:, 0], pairs[:, 1]
            gi, ti, gj, tj = rows[a], cols[a], rows[b], cols[b]
            keep = (gi != gj) & (ti != tj) & (vehicle[gi] | vehicle[gj])
            keep &= np.abs(tsec[a] - tsec[b]) <= cfg.pet_s + 1e-9
            d = xy[gj, tj] - xy[gi, ti]
            keep &= np.hypot(d[:, 0], d[:, 1]) <= radius[gi] + radius[gj]
            keep &= np.abs(wrap_angle(heading[gj, tj] - heading[gi, ti])) >= crossing
            gi, ti, gj, tj = gi[keep], ti[keep], gj[keep], tj[keep]
            hit = boxes_overlap(corners[gi, ti], corners[gj, tj])
            # same-time overlap (a collision, or touching annotations) is not an encroachment
            for tt in (ti, tj):
                both = ctx.valid[gi, tt] & ctx.valid[gj, tt]
                hit &= ~(boxes_overlap(corners[gi, tt], corners[gj, tt]) & both)
            for n in np.flatnonzero(hit).tolist():
                i, j = int(gi[n]), int(gj[n])
                t, t2 = sorted((int(ti[n]), int(tj[n])))
                pet = (ts[t2] - ts[t]) / 1e9
                flag(i, j, t, t2)
                key = (i, j) if i < j else (j, i)
                min_pet[key] = min(min_pet.get(key, np.inf), float(pet))

    out = []
    for (i, j), mask in flagged.items():
        _, first, last = ctx.runs(mask[None, :], max_gap_s=cfg.merge_gap_s)
        for f, la in zip(first.tolist(), last.tolist(), strict=True):
            ttc_v = min_ttc.get((i, j), np.inf)
            pet_v = min_pet.get((i, j), np.inf)
            margin = max(cfg.ttc_s - ttc_v, cfg.pet_s - pet_v, 0.0)
            si = float(np.nanmean(speed[i, f : la + 1])) if ctx.valid[i, f : la + 1].any() else 0.0
            sj = float(np.nanmean(speed[j, f : la + 1])) if ctx.valid[j, f : la + 1].any() else 0.0
            actor, other = (i, j) if si >= sj else (j, i)
            out.append(
                make_event(
                    ctx,
                    "near_miss",
                    [actor, other],
                    f,
                    la,
                    margin,
                    min_ttc_s=None if not np.isfinite(ttc_v) else ttc_v,
                    min_pet_s=None if not np.isfinite(pet_v) else pet_v,
                    measure="+".join(n for n, v in (("ttc", ttc_v), ("pet", pet_v)) if np.isfinite(v)),
                )
            )
    return out


def _vehicle_frame(
    xy_v: NDArrayFloat, heading_v: NDArrayFloat, xy_u: NDArrayFloat
) -> tuple[NDArrayFloat, NDArrayFloat]:
    """``(V, U, T)`` forward and left coordinates of every U position in every V's frame."""
    rel = xy_u[None, :, :, :] - xy_v[:, None, :, :]  # (V, U, T, 2)
    c, s = np.cos(heading_v)[:, None, :], np.sin(heading_v)[:, None, :]
    fwd = rel[..., 0] * c + rel[..., 1] * s
    left = -rel[..., 0] * s + rel[..., 1] * c
    return fwd, left


def vru_crossing(ctx: ScenarioContext, cfg: CrossingConfig) -> list[Event]:
    """Pedestrians and cyclists crossing a vehicle's centre line within ``cfg.forward_m`` of its bumper."""
    vehicles: NDArrayInt = np.flatnonzero(ctx.of_type(ObjectType.VEHICLE) & ctx.valid.any(axis=1))
    vrus: NDArrayInt = np.flatnonzero(
        ctx.of_type(ObjectType.PEDESTRIAN, ObjectType.CYCLIST) & ctx.valid.any(axis=1)
    )
    if vehicles.size == 0 or vrus.size == 0 or ctx.num_steps < 2:
        return []
    k = ctx.kinematics
    length, _ = ctx.footprint
    xy = ctx.tracks.xy_m
    heading = ctx.tracks.heading_rad
    with np.errstate(invalid="ignore"):
        eligible = ctx.valid & (k.speed_mps >= cfg.vehicle_min_speed_mps)
    if ctx.map is not None:
        eligible |= ctx.valid & (ctx.map.lane >= 0)
    dt = np.diff(ctx.t_s)  # (T-1,)
    out = []
    block = max(1, 2_000_000 // max(1, vrus.size * ctx.num_steps))
    for start in range(0, vehicles.size, block):
        vb = vehicles[start : start + block]
        fwd, left = _vehicle_frame(xy[vb], heading[vb], xy[vrus])  # (V, U, T)
        both = eligible[vb][:, None, :] & ctx.valid[vrus][None, :, :]
        ahead = fwd - length[vb][:, None, None] / 2.0
        in_zone = (ahead >= 0) & (ahead <= cfg.forward_m)
        side_speed = np.abs(np.diff(left, axis=2)) / dt[None, None, :]
        crossed = (
            both[..., 1:]
            & both[..., :-1]
            & (left[..., 1:] * left[..., :-1] <= 0)
            & (left[..., 1:] != left[..., :-1])
            & in_zone[..., 1:]
            & (side_speed >= cfg.min_lateral_speed_mps)
        )
        vi, ui, si = np.nonzero(crossed)
        seen: set[tuple[int, int, int]] = set()
        for a, b, s in zip(vi.tolist(), ui.tolist(), si.tolist(), strict=True):
            t = s + 1
            v, u = int(vb[a]), int(vrus[b])
            first, last = t, t
            lo, hi = ctx.t_s[t] - 5.0, ctx.t_s[t] + 5.0
            while (
                first - 1 >= 0
                and both[a, b, first - 1]
                and abs(left[a, b, first - 1]) <= cfg.lateral_m
                and ctx.t_s[first - 1] >= lo
            ):
                first -= 1
            while (
                last + 1 < ctx.num_steps
                and both[a, b, last + 1]
                and abs(left[a, b, last + 1]) <= cfg.lateral_m
                and ctx.t_s[last + 1] <= hi
            ):
                last += 1
            key = (v, u, first)
            if key in seen:
                continue
            seen.add(key)
            closeness = cfg.forward_m - float(ahead[a, b, t])
            out.append(
                make_event(
                    ctx,
                    "vru_crossing",
                    [u, v],
                    first,
                    last,
                    closeness,
                    distance_ahead_m=float(ahead[a, b, t]),
                    vehicle_speed_mps=float(k.speed_mps[v, t]),
                    direction="to_left" if left[a, b, t] > left[a, b, t - 1] else "to_right",
                )
            )
    return out
