"""Planning metrics of a rollout, with their published definitions, and the scores they add up to.

Every definition follows the official code and, where nuPlan's prose
documentation and its YAML metric configs disagree, the **configs** (see
``docs/sim.md`` for each formula, its source and the known disagreements):

* nuplan-devkit at commit ``e924167`` (its ``simulation_metric`` configs and
  the metric code under ``nuplan/planning/metrics``), aggregated into the
  **nuPlan closed-loop score** of ``closed_loop_*_weighted_average.yaml``:
  ``no_at_fault_collisions * drivable_area_compliance * ego_is_making_progress
  * driving_direction_compliance * (5 progress + 5 ttc + 4 speed_limit + 2 comfort) / 16``;
* the **NAVSIM PDM score v1** of navsim devkit v1.1 (commit ``0811876c``):
  ``NC * DAC * (5 EP + 5 TTC + 2 C) / 12`` (driving direction weight 0), each
  over a 4 s window of 41 poses; a rollout's PDMS is the mean over its
  consecutive 4 s windows. NAVSIM v2's EPDMS (extended multipliers and
  weights) is a different score and is not what this computes.

Every row records :data:`METRIC_VERSION`. Geometry that the devkits take from
their map API is taken from the scenario's own map: a point is *in a lane*
when it lies inside the lane's polygon (where the map gives the lane's own
bounds) or within the lane's half width of its centerline (the half width
from the map's lane boundaries where it has them, else 1.85 m), over every
lane near it; and *in the drivable area* when it is in a lane or inside a
drivable-area polygon (AV2 drivable areas, Lanelet2 free space, nuScenes
lane surfaces). Speed limits are the map's (``MapFeatures.speed_limit_mps``).

Everything is computed for a whole batch at once (:func:`batch_metrics`):
arrays over (scenarios, agents, steps); map queries once per map, for all
the egos' poses on it; contacts found over all pairs and steps at once and
only the first contacts classified.

Notation:
    S: scenarios. T: steps. A: agents (ego at 0). W: 4 s windows. E: contact events.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.signal import savgol_filter

from datadrive.core.scenario import ObjectType
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt
from datadrive.sim.geometry import box_corners, obb_overlap, segment_hits_box
from datadrive.sim.prepare import SimScenario
from datadrive.sim.simulator import Rollout

__all__ = [
    "METRIC_VERSION",
    "NAVSIM_V1",
    "NUPLAN",
    "CollisionType",
    "NavsimConfig",
    "NuplanConfig",
    "batch_metrics",
    "comfort",
    "scenario_metrics",
]

METRIC_VERSION = "datadrive-sim-metrics/2 (nuplan-devkit e924167 configs; navsim v1.1 0811876c PDMS v1)"
"""Recorded in every score row: which definitions produced it."""


class CollisionType:
    """nuPlan's collision classes (``nuplan.planning.metrics.utils.collision_utils``)."""

    STOPPED_EGO = 0
    STOPPED_TRACK = 1
    ACTIVE_FRONT = 2
    ACTIVE_REAR = 3
    ACTIVE_LATERAL = 4
    NAMES = ("stopped_ego", "stopped_track", "active_front", "active_rear", "active_lateral")


@dataclass(frozen=True)
class NuplanConfig:
    """Thresholds of nuPlan's closed-loop metrics, as in its YAML configs (``simulation_metric/``)."""

    max_violation_vru: int = 0
    max_violation_vehicle: int = 0
    max_violation_object: int = 1
    drivable_max_violation_m: float = 0.3
    direction_compliance_m: float = 2.0
    direction_violation_m: float = 6.0
    direction_horizon_s: float = 1.0
    ttc_step_s: float = 0.1
    ttc_horizon_s: float = 3.0
    least_min_ttc_s: float = 0.95
    ttc_stopped_speed_mps: float = 5e-3
    progress_threshold_m: float = 2.0
    min_progress_ratio: float = 0.2
    speed_max_overspeed_mps: float = 2.23
    stopped_speed_mps: float = 5e-2
    min_lon_accel: float = -4.05
    max_lon_accel: float = 2.40
    max_abs_lat_accel: float = 4.89
    max_abs_yaw_accel: float = 1.93
    max_abs_yaw_rate: float = 0.95
    max_abs_lon_jerk: float = 4.13
    max_abs_mag_jerk: float = 8.37
    weights: tuple[float, float, float, float] = (5.0, 5.0, 4.0, 2.0)  # progress, ttc, speed limit, comfort


@dataclass(frozen=True)
class NavsimConfig:
    """NAVSIM v1.1's PDM scorer configuration (``default_scoring_parameters.yaml``)."""

    window_steps: int = 40  # 4 s at 0.1 s: 41 poses
    progress_weight: float = 5.0
    ttc_weight: float = 5.0
    comfortable_weight: float = 2.0
    driving_direction_weight: float = 0.0
    stopped_speed_mps: float = 5e-3
    progress_distance_threshold_m: float = 5.0
    ttc_future_steps: tuple[int, ...] = (0, 3, 6, 9)


NUPLAN = NuplanConfig()
NAVSIM_V1 = NavsimConfig()

_AGENT_TYPES = (int(ObjectType.VEHICLE), int(ObjectType.PEDESTRIAN), int(ObjectType.CYCLIST))


# --------------------------------------------------------------------------- helpers


def _angle_to(
    ex: NDArrayFloat, ey: NDArrayFloat, eh: NDArrayFloat, px: NDArrayFloat, py: NDArrayFloat
) -> NDArrayFloat:
    """Angle between the ego's heading and the direction to a point (nuPlan's)."""
    dx, dy = px - ex, py - ey
    n = np.hypot(dx, dy)
    dot = (np.cos(eh) * dx + np.sin(eh) * dy) / np.where(n > 0, n, 1.0)
    out: NDArrayFloat = np.arccos(np.clip(dot, -1.0, 1.0))
    return np.where(n > 0, out, 0.0)


@functools.lru_cache(maxsize=256)
def _savgol_operator(n: int, window: int, poly: int, deriv: int, delta: float) -> NDArrayFloat:
    """The ``(n, n)`` matrix of scipy's Savitzky-Golay filter (``interp`` mode) on series of ``n``.

    The filter is linear, so filtering the identity gives its matrix exactly; a batch of
    series is then one matrix product instead of scipy's per-series edge fits.
    """
    out: NDArrayFloat = savgol_filter(
        np.eye(n), window_length=window, polyorder=poly, deriv=deriv, delta=delta, axis=-1
    )
    return out


def _savgol(y: NDArrayFloat, window: int, poly: int, deriv: int = 0, delta: float = 1.0) -> NDArrayFloat:
    """Savitzky-Golay along the last axis (scipy's ``interp`` mode, as nuPlan calls it)."""
    n = y.shape[-1]
    window = min(window, n)
    if window <= poly:
        if deriv == 0:
            return y
        out: NDArrayFloat = np.gradient(y, delta, axis=-1) if deriv == 1 and n > 1 else np.zeros_like(y)
        return out
    res: NDArrayFloat = y @ _savgol_operator(n, window, poly, deriv, float(delta))  # row i: F(e_i)
    return res


def _unwrap(h: NDArrayFloat) -> NDArrayFloat:
    adj = np.zeros_like(h)
    adj[..., 1:] = np.cumsum(np.round(np.diff(h, axis=-1) / (2 * np.pi)), axis=-1)
    out: NDArrayFloat = h - 2 * np.pi * adj
    return out


def comfort(
    v: NDArrayFloat, h: NDArrayFloat, dt: float, cfg: NuplanConfig, *, whole_window: bool = False
) -> dict[str, NDArrayBool]:
    """nuPlan's six comfort bounds over speed and heading series ``(..., T)``; each check ``(...)``.

    Accelerations are the ego's along its heading (``dv/dt``) and across it
    (``v * yaw rate``), smoothed as nuPlan does (Savitzky-Golay, order 2,
    window 8); jerks are their order-2, window-15 derivatives; yaw rate and
    yaw acceleration are order-2 (window 5) and order-3 (window 5) derivatives
    of the unwrapped heading. ``whole_window``: NAVSIM v1's variant, every
    acceleration/jerk window the whole series. ``"ok"``: all six hold.
    """
    n = v.shape[-1]
    yaw = _unwrap(h)
    if n > 1:
        yaw_rate_raw = np.gradient(yaw, dt, axis=-1)
        a_lon = np.gradient(v, dt, axis=-1)
    else:
        yaw_rate_raw = np.zeros_like(yaw)
        a_lon = np.zeros_like(v)
    a_lat = v * yaw_rate_raw
    wa = n if whole_window else 8
    wj = n if whole_window else 15
    lon = np.round(_savgol(a_lon, wa, 2), 8)
    lat = np.round(_savgol(a_lat, wa, 2), 8)
    mag = np.round(_savgol(np.hypot(a_lon, a_lat), wa, 2), 8)
    jerk_lon = np.round(_savgol(lon, wj, 2, 1, dt), 8)
    jerk_mag = np.round(_savgol(mag, wj, 2, 1, dt), 8)
    yaw_rate = np.round(_savgol(yaw, 5, 2, 1, dt), 8)
    yaw_acc = np.round(_savgol(yaw, 5, 3, 2, dt), 8)
    checks = {
        "lon_accel": np.all((lon > cfg.min_lon_accel) & (lon < cfg.max_lon_accel), axis=-1),
        "lat_accel": np.all(np.abs(lat) < cfg.max_abs_lat_accel, axis=-1),
        "jerk": np.all(np.abs(jerk_mag) < cfg.max_abs_mag_jerk, axis=-1),
        "lon_jerk": np.all(np.abs(jerk_lon) < cfg.max_abs_lon_jerk, axis=-1),
        "yaw_accel": np.all(np.abs(yaw_acc) < cfg.max_abs_yaw_accel, axis=-1),
        "yaw_rate": np.all(np.abs(yaw_rate) < cfg.max_abs_yaw_rate, axis=-1),
    }
    ok = np.ones(v.shape[:-1], dtype=bool)
    for c in checks.values():
        ok = ok & c
    checks["ok"] = ok
    return checks


def _groups(keys: Sequence[Any]) -> dict[Any, NDArrayInt]:
    out: dict[Any, list[int]] = {}
    for i, k in enumerate(keys):
        out.setdefault(k, []).append(i)
    return {k: np.asarray(v, dtype=np.int64) for k, v in out.items()}


@dataclass
class _Frames:
    """Per-step facts about each ego, ``(S, T)`` each."""

    multiple_lanes: NDArrayBool  # a corner outside every lane, or corners in lanes that do not connect
    nondrivable: NDArrayBool  # a corner outside the drivable area
    far_from_drivable: NDArrayBool  # ... by at least nuPlan's tolerance
    in_intersection: NDArrayBool
    center_lane: NDArrayInt
    center_s: NDArrayFloat
    speed_limit: NDArrayFloat  # the centre's lane's limit, NaN unknown


def _frames(
    sims: Sequence[SimScenario], x: NDArrayFloat, y: NDArrayFloat, h: NDArrayFloat, tmask: NDArrayBool,
    cfg: NuplanConfig,
) -> _Frames:  # fmt: skip
    S, T = x.shape
    le = np.asarray([s.length_m[0] for s in sims])[:, None]
    we = np.asarray([s.width_m[0] for s in sims])[:, None]
    corners = box_corners(x, y, h, le + 0 * x, we + 0 * x)  # (S, T, 4, 2)
    q = np.concatenate([corners, np.stack([x, y], -1)[:, :, None, :]], axis=2)  # (S, T, 5, 2)
    excess = np.full((S, T, 5), np.inf)
    lane = np.full((S, T, 5), -1, dtype=np.int64)
    arc = np.full((S, T), np.nan)
    connected = np.zeros((S, T), dtype=bool)
    inter = np.zeros((S, T), dtype=bool)
    limit = np.full((S, T), np.nan)
    # one query per map, for every pose of every ego on it
    for rows in _groups([id(s.drivable) for s in sims]).values():
        area = sims[int(rows[0])].drivable
        lanes = area.lanes
        sel = tmask[rows]  # (n, T)
        pts = q[rows][sel]  # (m, 5, 2)
        ex, mem = area.query(pts.reshape(-1, 2))
        ln = mem.lane.reshape(-1, 5)
        rr, tt = np.nonzero(sel)
        gs = rows[rr]
        excess[gs, tt] = ex.reshape(-1, 5)
        lane[gs, tt] = ln
        arc[gs, tt] = mem.s_m.reshape(-1, 5)[:, 4]
        c = np.ones(ln.shape[0], dtype=bool)
        for k in range(1, 4):
            c &= lanes.connected_many(ln[:, 0], ln[:, k])
        connected[gs, tt] = c
        centre = ln[:, 4]
        safe = np.maximum(centre, 0)
        inter[gs, tt] = np.where(centre >= 0, lanes.is_intersection[safe], False)
        limit[gs, tt] = np.where(centre >= 0, lanes.speed_limit_mps[safe], np.nan)
    corner_lane = lane[..., :4]
    multiple = ((corner_lane < 0).any(axis=-1) | ~connected) & tmask
    nondrivable = (excess[..., :4] > 0.0).any(axis=-1) & tmask
    far = (excess[..., :4] >= cfg.drivable_max_violation_m).any(axis=-1) & tmask
    return _Frames(multiple, nondrivable, far, inter, np.where(tmask, lane[..., 4], -1), arc, limit)


def _route_arcs(
    routes: NDArrayFloat, route_len: NDArrayInt, px: NDArrayFloat, py: NDArrayFloat
) -> NDArrayFloat:
    """``(S, n)`` arc length along each scenario's route of the feet of points ``(S, n)`` (exact)."""
    S, R, _ = routes.shape
    ok = np.arange(R)[None, :] < route_len[:, None]
    d2 = (routes[:, None, :, 0] - px[..., None]) ** 2 + (routes[:, None, :, 1] - py[..., None]) ** 2
    d2 = np.where(ok[:, None, :], d2, np.inf)
    j = np.argmin(d2, axis=2)  # nearest vertex; the foot lies on one of its two segments
    best = np.full(px.shape, np.inf)
    arc = np.zeros(px.shape)
    seg_len = np.hypot(*np.diff(routes, axis=1).transpose(2, 0, 1))  # (S, R - 1)
    cum = np.concatenate([np.zeros((S, 1)), np.cumsum(seg_len, axis=1)], axis=1)
    srow = np.arange(S)[:, None]
    for a_idx in (j - 1, j):
        k = np.clip(a_idx, 0, R - 2)
        good = (a_idx >= 0) & (a_idx + 1 < route_len[:, None])
        ax, ay = routes[srow, k, 0], routes[srow, k, 1]
        dx, dy = routes[srow, k + 1, 0] - ax, routes[srow, k + 1, 1] - ay
        l2 = dx * dx + dy * dy
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / np.where(l2 > 0, l2, 1.0), 0.0, 1.0)
        d = np.hypot(ax + t * dx - px, ay + t * dy - py)
        better = good & (d < best)
        best = np.where(better, d, best)
        arc = np.where(better, cum[srow, k] + t * np.sqrt(l2), arc)
    lone = ~np.isfinite(best)  # a one-point route
    return np.where(lone, 0.0, arc)


# --------------------------------------------------------------------------- collisions


@dataclass
class _Events:
    """Every first contact of an ego with a track, ``(E,)`` each."""

    scenario: NDArrayInt
    agent: NDArrayInt
    step: NDArrayInt
    kind: NDArrayInt
    at_fault: NDArrayBool
    group: NDArrayInt  # 0 vru, 1 vehicle, 2 object
    delta_v_mps: NDArrayFloat


_GROUPS = ("vru", "vehicle", "object")


def _collisions(
    x: NDArrayFloat, y: NDArrayFloat, h: NDArrayFloat, v: NDArrayFloat, valid: NDArrayBool,
    L: NDArrayFloat, W: NDArrayFloat, otype: NDArrayInt, fr: _Frames, cfg: NuplanConfig,
) -> tuple[_Events, NDArrayBool]:  # fmt: skip
    """First contacts (oriented boxes over all pairs and steps at once), classified by nuPlan's rules."""
    S, _, T = x.shape
    # oriented boxes only where both exist and the enclosing circles meet (a few pairs in a thousand)
    over = _pair_hits(
        x[:, :1], y[:, :1], h[:, :1], L[:, :1, None], W[:, :1, None],
        x[:, 1:], y[:, 1:], h[:, 1:], L[:, 1:, None], W[:, 1:, None],
        valid[:, 1:] & valid[:, :1],
    )  # fmt: skip
    first = np.argmax(over, axis=2)
    es, ea = np.nonzero(over.any(axis=2))
    et = first[es, ea]
    ea = ea + 1
    ev = v[es, 0, et]
    typ = otype[es, ea]
    is_agent = np.isin(typ, _AGENT_TYPES)
    va = v[es, ea, et]
    hx, ax = h[es, 0, et], h[es, ea, et]
    ego_box = box_corners(x[es, 0, et], y[es, 0, et], hx, L[es, 0], W[es, 0])
    trk_box = box_corners(x[es, ea, et], y[es, ea, et], ax, L[es, ea], W[es, ea])
    rear_x = x[es, 0, et] - np.cos(hx) * 0.3 * L[es, 0]
    rear_y = y[es, 0, et] - np.sin(hx) * 0.3 * L[es, 0]
    rear = _angle_to(rear_x, rear_y, hx, x[es, ea, et], y[es, ea, et]) > np.deg2rad(150)
    front = segment_hits_box(ego_box[:, 0], ego_box[:, 3], trk_box) if es.size else np.zeros(0, bool)
    kind = np.where(
        ev <= cfg.stopped_speed_mps,
        CollisionType.STOPPED_EGO,
        np.where(
            ~is_agent | (np.abs(va) <= cfg.stopped_speed_mps),
            CollisionType.STOPPED_TRACK,
            np.where(
                rear,
                CollisionType.ACTIVE_REAR,
                np.where(front, CollisionType.ACTIVE_FRONT, CollisionType.ACTIVE_LATERAL),
            ),
        ),
    ).astype(np.int64)
    lateral_fault = (kind == CollisionType.ACTIVE_LATERAL) & (
        fr.multiple_lanes[es, et] | fr.nondrivable[es, et]
    )
    fault = np.isin(kind, (CollisionType.ACTIVE_FRONT, CollisionType.STOPPED_TRACK)) | lateral_fault
    group = np.where(
        np.isin(typ, (int(ObjectType.PEDESTRIAN), int(ObjectType.CYCLIST))),
        0,
        np.where(typ == int(ObjectType.VEHICLE), 1, 2),
    )
    va_eff = np.where(is_agent, np.abs(va), 0.0)
    dv = 0.5 * np.sqrt(np.maximum(ev**2 + va_eff**2 - 2 * ev * va_eff * np.cos(hx - ax), 0.0))
    at_fault_steps = np.zeros((S, T), dtype=bool)
    at_fault_steps[es[fault], et[fault]] = True
    return _Events(es, ea, et, kind, fault, group, dv), at_fault_steps


def _pair_hits(
    ex: NDArrayFloat, ey: NDArrayFloat, eh: NDArrayFloat, el: NDArrayFloat, ew: NDArrayFloat,
    px: NDArrayFloat, py: NDArrayFloat, ph: NDArrayFloat, pl: NDArrayFloat, pw: NDArrayFloat,
    mask: NDArrayBool,
) -> NDArrayBool:  # fmt: skip
    """Oriented-box overlap where ``mask`` holds, tested only where the enclosing circles meet (broadcast)."""
    shape = np.broadcast_shapes(ex.shape, px.shape, mask.shape)
    reach = (np.hypot(el, ew) + np.hypot(pl, pw)) / 2.0
    # boxes that overlap have centres at most the sum of their half diagonals apart; the margin keeps
    # the broad phase conservative under rounding (the exact test decides every pair it lets through)
    near = mask & (((ex - px) ** 2 + (ey - py) ** 2) <= reach**2 * (1.0 + 1e-6) + 1e-9)
    out = np.zeros(shape, dtype=bool)
    idx = np.nonzero(np.broadcast_to(near, shape))
    if idx[0].size == 0:
        return out

    def at(a: NDArrayFloat) -> NDArrayFloat:
        return np.broadcast_to(a, shape)[idx]

    out[idx] = obb_overlap(at(ex), at(ey), at(eh), at(el), at(ew), at(px), at(py), at(ph), at(pl), at(pw))
    return out


def _ttc_nuplan(
    x: NDArrayFloat, y: NDArrayFloat, h: NDArrayFloat, v: NDArrayFloat, valid: NDArrayBool,
    L: NDArrayFloat, W: NDArrayFloat, otype: NDArrayInt, fr: _Frames, ev: _Events,
    at_fault_steps: NDArrayBool, cfg: NuplanConfig,
) -> NDArrayFloat:  # fmt: skip
    """``(S, T)`` nuPlan's time to collision (inf where none within the horizon)."""
    S, A, T = x.shape
    times = np.arange(cfg.ttc_step_s, cfg.ttc_horizon_s, cfg.ttc_step_s)  # nuPlan's own arange: 0.1 .. 2.9 s
    ttc = np.full((S, T), np.inf)
    collided_at = np.full((S, A), T + 1)
    collided_at[ev.scenario, ev.agent] = ev.step
    x0, y0, h0, v0 = x[:, :1], y[:, :1], h[:, :1], v[:, :1]
    rear_x = x0 - np.cos(h0) * 0.3 * L[:, :1, None]
    rear_y = y0 - np.sin(h0) * 0.3 * L[:, :1, None]
    lateral_ok = (fr.multiple_lanes | fr.in_intersection)[:, None, :]
    rel = valid[:, 1:] & (collided_at[:, 1:, None] > np.arange(T)[None, None, :])
    rel &= (np.abs(v0) > cfg.ttc_stopped_speed_mps) & valid[:, :1]
    speeds = np.where(np.isin(otype[:, 1:], _AGENT_TYPES)[..., None], np.abs(v[:, 1:]), 0.0)
    # broad phase: only pairs whose enclosing circles can meet within the horizon at constant velocity
    dpx, dpy = x[:, 1:] - x0, y[:, 1:] - y0
    dvx = speeds * np.cos(h[:, 1:]) - v0 * np.cos(h0)
    dvy = speeds * np.sin(h[:, 1:]) - v0 * np.sin(h0)
    vv = dvx * dvx + dvy * dvy
    tc = np.clip(-(dpx * dvx + dpy * dvy) / np.where(vv > 0, vv, 1.0), 0.0, times[-1])
    dmin2 = (dpx + dvx * tc) ** 2 + (dpy + dvy * tc) ** 2
    reach = (np.hypot(L[:, :1], W[:, :1]) + np.hypot(L[:, 1:], W[:, 1:]))[..., None] / 2.0
    rel &= dmin2 <= reach**2
    si, ai, ti = np.nonzero(rel)
    # the angle test only for the pairs left (the same mask, far cheaper than at full size)
    ang = _angle_to(rear_x[si, 0, ti], rear_y[si, 0, ti], h0[si, 0, ti], x[si, ai + 1, ti], y[si, ai + 1, ti])
    keep = (ang < np.deg2rad(30)) | (lateral_ok[si, 0, ti] & ~(ang > np.deg2rad(150)))
    si, ai, ti = si[keep], ai[keep], ti[keep]
    if si.size:
        tt = times[None, :]
        e_h, a_h = h[si, 0, ti][:, None], h[si, ai + 1, ti][:, None]
        e_v, a_v = v[si, 0, ti][:, None], speeds[si, ai, ti][:, None]
        ex = x[si, 0, ti][:, None] + np.cos(e_h) * e_v * tt
        ey = y[si, 0, ti][:, None] + np.sin(e_h) * e_v * tt
        ax = x[si, ai + 1, ti][:, None] + np.cos(a_h) * a_v * tt
        ay = y[si, ai + 1, ti][:, None] + np.sin(a_h) * a_v * tt
        hit = obb_overlap(
            ex,
            ey,
            e_h,
            L[si, 0][:, None],
            W[si, 0][:, None],
            ax,
            ay,
            a_h,
            L[si, ai + 1][:, None],
            W[si, ai + 1][:, None],
        )
        first = np.where(hit.any(axis=1), times[np.argmax(hit, axis=1)], np.inf)
        np.minimum.at(ttc, (si, ti), first)
    ttc[at_fault_steps] = 0.0
    return ttc


def _navsim_ttc_hits(
    x: NDArrayFloat, y: NDArrayFloat, h: NDArrayFloat, v: NDArrayFloat, valid: NDArrayBool,
    L: NDArrayFloat, W: NDArrayFloat, fr: _Frames, tmask: NDArrayBool, nv: NavsimConfig, dt: float,
) -> NDArrayBool:  # fmt: skip
    """``(S, A-1, T)`` NAVSIM's TTC: the ego, projected at constant velocity k steps ahead (k in
    ``ttc_future_steps``), meets a relevant agent where that agent is k steps later."""
    S, A, T = x.shape
    x0, y0, h0, v0 = x[:, :1], y[:, :1], h[:, :1], v[:, :1]
    moving = (np.abs(v0) >= nv.stopped_speed_mps) & tmask[:, None, :]
    rear_x = x0 - np.cos(h0) * 0.3 * L[:, :1, None]
    rear_y = y0 - np.sin(h0) * 0.3 * L[:, :1, None]
    lateral = (fr.multiple_lanes | fr.nondrivable | fr.in_intersection)[:, None, :]
    out = np.zeros((S, A - 1, T), dtype=bool)
    for k in nv.ttc_future_steps:
        tk = np.minimum(np.arange(T) + k, T - 1)
        ax, ay, ah = x[:, 1:, tk], y[:, 1:, tk], h[:, 1:, tk]
        ex = x0 + np.cos(h0) * v0 * k * dt
        ey = y0 + np.sin(h0) * v0 * k * dt
        mask = valid[:, 1:, tk] & moving
        hit = _pair_hits(
            ex, ey, h0, L[:, :1, None], W[:, :1, None], ax, ay, ah, L[:, 1:, None], W[:, 1:, None], mask
        )
        si, ai, ti = np.nonzero(hit)
        if not si.size:
            continue
        # relevance only where a box was hit (the angle is the costly part at full size)
        ang = _angle_to(rear_x[si, 0, ti], rear_y[si, 0, ti], h0[si, 0, ti], ax[si, ai, ti], ay[si, ai, ti])
        relevant = (ang < np.deg2rad(30)) | (lateral[si, 0, ti] & ~(ang > np.deg2rad(150)))
        out[si[relevant], ai[relevant], ti[relevant]] = True
    return out


# --------------------------------------------------------------------------- all metrics of a batch


def _pad(sims: Sequence[SimScenario], name: str, A: int, fill: float) -> NDArrayFloat:
    out = np.full((len(sims), A), fill)
    for i, s in enumerate(sims):
        a = getattr(s, name)
        out[i, : a.shape[0]] = a
    return out


def batch_metrics(
    sims: Sequence[SimScenario],
    ro: Rollout,
    *,
    nuplan: NuplanConfig = NUPLAN,
    navsim: NavsimConfig = NAVSIM_V1,
) -> list[dict[str, Any]]:
    """Every metric and both scores of every scenario of a rollout, one flat row each.

    Args:
        sims: The prepared scenarios, in the rollout's row order.
        ro: Their rollout.
    """
    cfg = nuplan
    S = len(sims)
    _, A, T = ro.x_m.shape
    dt = sims[0].dt_s
    steps = np.asarray([s.num_steps for s in sims])
    tmask = np.arange(T)[None, :] < steps[:, None]
    x, y, h, v = ro.x_m[:S], ro.y_m[:S], ro.heading_rad[:S], ro.speed_mps[:S]
    agents = np.arange(A)[None, :] < np.asarray([s.num_agents for s in sims])[:, None]
    valid = ro.valid[:S] & agents[..., None] & tmask[:, None, :]
    L, W = _pad(sims, "length_m", A, 1.0), _pad(sims, "width_m", A, 1.0)
    otype = _pad(sims, "object_type", A, int(ObjectType.OTHER)).astype(np.int64)
    fr = _frames(sims, x[:, 0], y[:, 0], h[:, 0], tmask, cfg)
    ev, at_fault_steps = _collisions(x, y, h, v, valid, L, W, otype, fr, cfg)
    # at-fault counts per group, and the collision score: prod max(0, 1 - n / (threshold + 1))
    counts = np.zeros((S, 3), dtype=np.int64)
    np.add.at(counts, (ev.scenario[ev.at_fault], ev.group[ev.at_fault]), 1)
    thr = np.asarray([cfg.max_violation_vru, cfg.max_violation_vehicle, cfg.max_violation_object])
    no_collision = np.prod(np.maximum(0.0, 1.0 - counts / (thr + 1.0)), axis=1)
    dac = np.where((fr.far_from_drivable & tmask).any(axis=1), 0.0, 1.0)
    # driving direction: progress along the centre's lane, summed over the last second
    same = (fr.center_lane[:, 1:] == fr.center_lane[:, :-1]) & (fr.center_lane[:, 1:] >= 0)
    prog = np.zeros((S, T))
    prog[:, 1:] = np.where(same, fr.center_s[:, 1:] - fr.center_s[:, :-1], 0.0)
    n_h = int(cfg.direction_horizon_s / dt)
    c = np.cumsum(prog, axis=1)
    window = c - np.concatenate([np.zeros((S, n_h + 1)), c[:, : T - n_h - 1]], axis=1)[:, :T]
    worst_back = np.abs(np.minimum(np.min(np.where(tmask, window, 0.0), axis=1), 0.0))
    ddc = np.where(
        worst_back < cfg.direction_compliance_m,
        1.0,
        np.where(worst_back < cfg.direction_violation_m, 0.5, 0.0),
    )
    # progress along the expert route: the ego's and the expert's, first to last pose
    R = max(s.route_xy_m.shape[0] for s in sims)
    routes = np.zeros((S, R, 2))
    route_len = np.zeros(S, dtype=np.int64)
    for i, s in enumerate(sims):
        routes[i, : s.route_xy_m.shape[0]] = s.route_xy_m
        route_len[i] = s.route_xy_m.shape[0]
    last = steps - 1
    rows = np.arange(S)
    expert_valid = np.zeros((S, T), dtype=bool)
    expert_xy = np.zeros((S, T, 2))
    for i, s in enumerate(sims):
        expert_valid[i, : s.num_steps] = s.valid[0]
        expert_xy[i, : s.num_steps] = s.xy_m[0]
    ex_first = np.argmax(expert_valid, axis=1)
    ex_last = T - 1 - np.argmax(expert_valid[:, ::-1], axis=1)
    probe_x = np.stack(
        [x[rows, 0, 0], x[rows, 0, last], expert_xy[rows, ex_first, 0], expert_xy[rows, ex_last, 0]], 1
    )
    probe_y = np.stack(
        [y[rows, 0, 0], y[rows, 0, last], expert_xy[rows, ex_first, 1], expert_xy[rows, ex_last, 1]], 1
    )
    arcs = _route_arcs(routes, route_len, probe_x, probe_y)
    ego_prog = arcs[:, 1] - arcs[:, 0]
    expert_prog = np.where(expert_valid.sum(axis=1) >= 2, arcs[:, 3] - arcs[:, 2], 0.0)
    pt = cfg.progress_threshold_m
    ratio = np.where(
        ego_prog < -pt, 0.0, np.minimum(1.0, np.maximum(ego_prog, pt) / np.maximum(expert_prog, pt))
    )
    making_progress = np.where(ratio >= cfg.min_progress_ratio, 1.0, 0.0)
    ttc = _ttc_nuplan(x, y, h, v, valid, L, W, otype, fr, ev, at_fault_steps, cfg)
    ttc_ok = np.where(np.all(np.where(tmask, ttc > cfg.least_min_ttc_s, True), axis=1), 1.0, 0.0)
    min_ttc = np.min(np.where(tmask, ttc, np.inf), axis=1)
    # speed limits of the lane the ego's centre is in, where the map has them
    limits_known = np.asarray([bool(np.isfinite(s.lanes.speed_limit_mps).any()) for s in sims])
    over = np.where(np.isfinite(fr.speed_limit) & tmask, np.maximum(v[:, 0] - fr.speed_limit, 0.0), 0.0)
    duration = (steps - 1) * dt
    loss = over.sum(axis=1) * dt / (max(cfg.speed_max_overspeed_mps, 1e-3) * np.maximum(duration, 1e-9))
    speed_score = np.where(over.any(axis=1) & (duration > 0), np.maximum(0.0, 1.0 - loss), 1.0)
    # comfort over each whole rollout (grouped by length: scipy filters a batch of equal series)
    comfort_rows: list[dict[str, bool]] = [{} for _ in range(S)]
    for n, idx in _groups(steps.tolist()).items():
        checks = comfort(v[idx, 0, :n], h[idx, 0, :n], dt, cfg)
        for j, i in enumerate(idx.tolist()):
            comfort_rows[i] = {k: bool(val[j]) for k, val in checks.items()}
    comfort_ok = np.asarray([1.0 if r["ok"] else 0.0 for r in comfort_rows])
    w = cfg.weights
    weighted = (w[0] * ratio + w[1] * ttc_ok + w[2] * speed_score + w[3] * comfort_ok) / sum(w)
    cls = no_collision * dac * making_progress * ddc * weighted
    pdms = _pdms(sims, x, y, h, v, valid, L, W, otype, fr, ev, tmask, steps, routes, route_len,
                 expert_valid, expert_xy, navsim, cfg)  # fmt: skip
    out = []
    for i, s in enumerate(sims):
        mine = np.flatnonzero(ev.scenario == i)
        order = mine[np.argsort(ev.step[mine], kind="stable")]
        events: list[dict[str, Any]] = [
            {
                "step": int(ev.step[k]),
                "track_id": str(s.track_ids[ev.agent[k]]),
                "agent": int(ev.agent[k]),
                "type": CollisionType.NAMES[int(ev.kind[k])],
                "group": _GROUPS[int(ev.group[k])],
                "at_fault": bool(ev.at_fault[k]),
                "delta_v_mps": float(ev.delta_v_mps[k]),
            }
            for k in order
        ]
        fault_steps = [int(ev.step[k]) for k in order if ev.at_fault[k]]
        off = np.flatnonzero(fr.far_from_drivable[i])
        out.append(
            {
                "scenario_id": s.scenario_id,
                "source": s.source,
                "num_steps": int(s.num_steps),
                "num_agents": s.num_agents,
                "metric_version": METRIC_VERSION,
                "collisions": len(events),
                "at_fault_collisions": len(fault_steps),
                "at_fault_collisions_vru": int(counts[i, 0]),
                "at_fault_collisions_vehicle": int(counts[i, 1]),
                "at_fault_collisions_object": int(counts[i, 2]),
                "first_at_fault_collision_step": min(fault_steps, default=None),
                "no_at_fault_collisions": float(no_collision[i]),
                "drivable_area_compliance": float(dac[i]),
                "drivable_area_violation_steps": int(fr.far_from_drivable[i].sum()),
                "first_drivable_area_violation_step": int(off[0]) if off.size else None,
                "driving_direction_compliance": float(ddc[i]),
                "max_against_traffic_m": float(worst_back[i]),
                "ego_progress_m": float(ego_prog[i]),
                "expert_progress_m": float(expert_prog[i]),
                "ego_progress_ratio": float(ratio[i]),
                "ego_is_making_progress": float(making_progress[i]),
                "min_ttc_s": float(min_ttc[i]) if np.isfinite(min_ttc[i]) else None,
                "ttc_within_bound": float(ttc_ok[i]),
                "speed_limit_known": bool(limits_known[i]),
                "speed_limit_compliance": float(speed_score[i]),
                "ego_is_comfortable": float(comfort_ok[i]),
                "comfort_checks": {k: val for k, val in comfort_rows[i].items() if k != "ok"},
                "nuplan_cls": float(cls[i]),
                **{f"navsim_{k}": val[i] if k != "windows" else int(val[i]) for k, val in pdms.items()},
                "collision_events": events,
            }
        )
    return out


def _pdms(
    sims: Sequence[SimScenario], x: NDArrayFloat, y: NDArrayFloat, h: NDArrayFloat, v: NDArrayFloat,
    valid: NDArrayBool, L: NDArrayFloat, W: NDArrayFloat, otype: NDArrayInt, fr: _Frames, ev: _Events,
    tmask: NDArrayBool, steps: NDArrayInt, routes: NDArrayFloat, route_len: NDArrayInt,
    expert_valid: NDArrayBool, expert_xy: NDArrayFloat, nv: NavsimConfig, cfg: NuplanConfig,
) -> dict[str, NDArrayFloat]:  # fmt: skip
    """NAVSIM v1 PDM score over consecutive 4 s windows of each rollout (mean over its windows)."""
    S, A, T = x.shape
    dt = sims[0].dt_s
    n = nv.window_steps
    hits = _navsim_ttc_hits(x, y, h, v, valid, L, W, fr, tmask, nv, dt)  # (S, A-1, T)
    collided_at = np.full((S, A), T + 1)
    collided_at[ev.scenario, ev.agent] = ev.step
    sums = np.zeros((S, 6))
    windows = np.zeros(S)
    rows = np.arange(S)
    for w0 in range(0, max(int(steps.max()) - 1, 1), n):
        live = w0 < np.maximum(steps - 1, 1)  # scenarios that have this window
        if not live.any():
            break
        w1 = np.minimum(w0 + n, steps - 1)  # (S,) last step of the window
        span = (np.arange(T)[None, :] >= w0) & (np.arange(T)[None, :] <= w1[:, None]) & tmask
        nc = np.ones(S)
        in_w = ev.at_fault & (ev.step >= w0) & (ev.step <= w1[ev.scenario])
        val = np.where(np.isin(otype[ev.scenario, ev.agent], _AGENT_TYPES), 0.0, 0.5)
        np.minimum.at(nc, ev.scenario[in_w], val[in_w])
        dac = np.where((fr.nondrivable & span).any(axis=1), 0.0, 1.0)
        not_before = collided_at[:, 1:] >= w0  # agents hit before the window do not count again
        ttc = np.where((hits & span[:, None, :] & not_before[..., None]).any(axis=(1, 2)), 0.0, 1.0)
        # comfort over the window (NAVSIM v1: every smoothing window is the whole series)
        c = np.ones(S)
        for length, idx in _groups((w1 - w0 + 1).tolist()).items():
            checks = comfort(
                v[idx, 0, w0 : w0 + length], h[idx, 0, w0 : w0 + length], dt, cfg, whole_window=True
            )
            c[idx] = np.where(checks["ok"], 1.0, 0.0)
        # progress in the window: the ego's, and the expert's (its first and last valid pose in it)
        ev_span = expert_valid & span
        e0 = np.argmax(ev_span, axis=1)
        e1 = T - 1 - np.argmax(ev_span[:, ::-1], axis=1)
        px = np.stack([x[rows, 0, w0], x[rows, 0, w1], expert_xy[rows, e0, 0], expert_xy[rows, e1, 0]], 1)
        py = np.stack([y[rows, 0, w0], y[rows, 0, w1], expert_xy[rows, e0, 1], expert_xy[rows, e1, 1]], 1)
        arcs = _route_arcs(routes, route_len, px, py)
        raw = np.maximum(arcs[:, 1] - arcs[:, 0], 0.0)
        exp_raw = np.where(ev_span.sum(axis=1) >= 2, np.maximum(arcs[:, 3] - arcs[:, 2], 0.0), 0.0)
        mult = nc * dac
        best = np.maximum(raw * mult, exp_raw)
        ep = np.where(
            best > nv.progress_distance_threshold_m,
            raw * mult / np.maximum(best, 1e-9),
            np.where(mult == 0.0, 0.0, 1.0),
        )
        weights = nv.progress_weight + nv.ttc_weight + nv.comfortable_weight + nv.driving_direction_weight
        score = mult * (nv.progress_weight * ep + nv.ttc_weight * ttc + nv.comfortable_weight * c) / weights
        sums += np.where(live[:, None], np.stack([nc, dac, ep, ttc, c, score], 1), 0.0)
        windows += live
    mean = sums / np.maximum(windows, 1)[:, None]
    return {
        "nc": mean[:, 0],
        "dac": mean[:, 1],
        "ep": mean[:, 2],
        "ttc": mean[:, 3],
        "c": mean[:, 4],
        "pdms": mean[:, 5],
        "windows": windows,
    }


def scenario_metrics(
    sim: SimScenario,
    ro: Rollout,
    i: int,
    *,
    nuplan: NuplanConfig = NUPLAN,
    navsim: NavsimConfig = NAVSIM_V1,
) -> dict[str, Any]:
    """Every metric and both scores of scenario ``i`` of a rollout (:func:`batch_metrics` for one row)."""
    one = Rollout(
        x_m=ro.x_m[i : i + 1],
        y_m=ro.y_m[i : i + 1],
        heading_rad=ro.heading_rad[i : i + 1],
        speed_mps=ro.speed_mps[i : i + 1],
        valid=ro.valid[i : i + 1],
        reactive=ro.reactive[i : i + 1],
        accel_mps2=ro.accel_mps2[i : i + 1],
        num_steps=np.asarray(ro.num_steps)[i : i + 1],
        lane_changes=np.asarray(ro.lane_changes)[i : i + 1],
    )
    return batch_metrics([sim], one, nuplan=nuplan, navsim=navsim)[0]
