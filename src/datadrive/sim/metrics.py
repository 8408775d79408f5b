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
when it lies within the lane's half width of its centerline (the half width
from the map's lane boundaries where it has them, else 1.85 m), and *in the
drivable area* when it is in a lane or inside a drivable-area polygon.

Notation:
    T: steps of the scenario. A: agents (ego at 0). W: 4 s windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.signal import savgol_filter

from datadrive.core.geometry import PolylineIndex
from datadrive.core.scenario import ObjectType
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt
from datadrive.sim.geometry import (
    box_corners,
    distance_to_edges,
    drivable_polygons,
    obb_overlap,
    points_in_polygons,
    segment_hits_box,
)
from datadrive.sim.prepare import SimScenario
from datadrive.sim.simulator import Rollout

__all__ = [
    "METRIC_VERSION",
    "NAVSIM_V1",
    "NUPLAN",
    "CollisionType",
    "NavsimConfig",
    "NuplanConfig",
    "scenario_metrics",
]

METRIC_VERSION = "datadrive-sim-metrics/1 (nuplan-devkit e924167 configs; navsim v1.1 0811876c PDMS v1)"
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


def _savgol(y: NDArrayFloat, window: int, poly: int, deriv: int = 0, delta: float = 1.0) -> NDArrayFloat:
    n = y.shape[-1]
    window = min(window, n)
    if window <= poly:
        if deriv == 0:
            return y
        out: NDArrayFloat = np.gradient(y, delta, axis=-1) if deriv == 1 and n > 1 else np.zeros_like(y)
        return out
    res: NDArrayFloat = savgol_filter(
        y, window_length=window, polyorder=poly, deriv=deriv, delta=delta, axis=-1
    )
    return res


def _unwrap(h: NDArrayFloat) -> NDArrayFloat:
    adj = np.zeros_like(h)
    adj[..., 1:] = np.cumsum(np.round(np.diff(h, axis=-1) / (2 * np.pi)), axis=-1)
    out: NDArrayFloat = h - 2 * np.pi * adj
    return out


def comfort(
    v: NDArrayFloat, h: NDArrayFloat, dt: float, cfg: NuplanConfig, *, whole_window: bool = False
) -> dict[str, Any]:
    """nuPlan's six comfort bounds over a speed and heading series.

    Accelerations are the ego's along its heading (``dv/dt``) and across it
    (``v * yaw rate``), smoothed as nuPlan does (Savitzky-Golay, order 2,
    window 8); jerks are their order-2, window-15 derivatives; yaw rate and
    yaw acceleration are order-2 (window 5) and order-3 (window 5) derivatives
    of the unwrapped heading. ``whole_window``: NAVSIM v1's variant, every
    acceleration/jerk window the whole series.
    """
    n = v.shape[0]
    yaw = _unwrap(h)
    yaw_rate_raw = np.gradient(yaw, dt) if n > 1 else np.zeros(n)
    a_lon = np.gradient(v, dt) if n > 1 else np.zeros(n)
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
        "lon_accel": bool(np.all((lon > cfg.min_lon_accel) & (lon < cfg.max_lon_accel))),
        "lat_accel": bool(np.all(np.abs(lat) < cfg.max_abs_lat_accel)),
        "jerk": bool(np.all(np.abs(jerk_mag) < cfg.max_abs_mag_jerk)),
        "lon_jerk": bool(np.all(np.abs(jerk_lon) < cfg.max_abs_lon_jerk)),
        "yaw_accel": bool(np.all(np.abs(yaw_acc) < cfg.max_abs_yaw_accel)),
        "yaw_rate": bool(np.all(np.abs(yaw_rate) < cfg.max_abs_yaw_rate)),
    }
    return {"ok": all(checks.values()), "checks": checks}


@dataclass
class _Frames:
    """Per-step facts about the ego shared by several metrics."""

    multiple_lanes: NDArrayBool  # (T,)
    nondrivable: NDArrayBool  # (T,) a corner outside every lane and drivable polygon
    far_from_drivable: NDArrayBool  # (T,) ... by more than the tolerance
    in_intersection: NDArrayBool  # (T,)
    center_lane: NDArrayInt  # (T,)
    center_s: NDArrayFloat  # (T,)
    corners: NDArrayFloat  # (T, 4, 2)


def _frames(
    sim: SimScenario, x: NDArrayFloat, y: NDArrayFloat, h: NDArrayFloat, cfg: NuplanConfig
) -> _Frames:
    lanes = sim.lanes
    assert lanes is not None
    T = x.shape[0]
    corners = box_corners(x, y, h, np.full(T, sim.length_m[0]), np.full(T, sim.width_m[0]))
    q = corners.reshape(-1, 2)
    m = lanes.match(q, None, max_distance_m=6.0)
    hw = np.where(m.lane >= 0, lanes.half_width_m[np.maximum(m.lane, 0)], 0.0)
    excess = np.where(m.lane >= 0, m.distance_m - hw, np.inf)
    in_lane = excess <= 0.0
    polys = drivable_polygons(sim.scenario)
    in_poly = np.zeros(q.shape[0], dtype=bool)
    out_dist = excess.copy()
    if polys is not None:
        check = ~in_lane
        if check.any():
            in_poly[check] = points_in_polygons(q[check], *polys)
            still = check & ~in_poly
            if still.any():
                out_dist[still] = np.minimum(out_dist[still], distance_to_edges(q[still], polys[0], polys[1]))
    drivable = in_lane | in_poly
    nondrivable = ~drivable.reshape(T, 4)
    far = (~drivable & (out_dist >= cfg.drivable_max_violation_m)).reshape(T, 4)
    lane_c = np.where(in_lane, m.lane, -1).reshape(T, 4)
    multiple = np.zeros(T, dtype=bool)
    for t in range(T):
        ls = lane_c[t]
        if (ls < 0).any():
            multiple[t] = True
            continue
        first = int(ls[0])
        multiple[t] = not all(lanes.connected(first, int(o)) for o in ls[1:])
    c = lanes.match(np.stack([x, y], axis=1), None, max_distance_m=6.0)
    in_lane_c = (c.lane >= 0) & (c.distance_m <= lanes.half_width_m[np.maximum(c.lane, 0)])
    center_lane = np.where(in_lane_c, c.lane, -1)
    inter = np.where(center_lane >= 0, lanes.is_intersection[np.maximum(center_lane, 0)], False)
    return _Frames(
        multiple,
        np.asarray(nondrivable.any(axis=1)),
        np.asarray(far.any(axis=1)),
        inter,
        center_lane,
        c.s_m,
        corners,
    )


# --------------------------------------------------------------------------- collisions


def _collisions(
    sim: SimScenario, ro: dict[str, Any], fr: _Frames, cfg: NuplanConfig
) -> tuple[list[dict[str, Any]], NDArrayBool]:
    """Every first contact of the ego with a track: step, track, type, at fault (nuPlan's rules)."""
    x, y, h, v, valid = ro["x"], ro["y"], ro["h"], ro["v"], ro["valid"]
    _A, T = x.shape
    L, W = sim.length_m, sim.width_m
    over = obb_overlap(
        x[:1], y[:1], h[:1], L[0], W[0], x[1:], y[1:], h[1:], L[1:, None], W[1:, None]
    ) & valid[1:]  # fmt: skip
    over = np.concatenate([np.zeros((1, T), dtype=bool), over])
    events = []
    at_fault_steps = np.zeros(T, dtype=bool)
    first = np.where(over.any(axis=1), np.argmax(over, axis=1), -1)
    for a in np.flatnonzero(first >= 0):
        t = int(first[a])
        typ = int(sim.object_type[a])
        is_agent = typ in _AGENT_TYPES
        ev = float(v[0, t])
        ego_box = box_corners(x[0, t], y[0, t], h[0, t], L[0], W[0])
        trk_box = box_corners(x[a, t], y[a, t], h[a, t], L[a], W[a])
        rear_x = x[0, t] - np.cos(h[0, t]) * 0.3 * L[0]
        rear_y = y[0, t] - np.sin(h[0, t]) * 0.3 * L[0]
        if ev <= cfg.stopped_speed_mps:
            kind = CollisionType.STOPPED_EGO
        elif not is_agent or abs(v[a, t]) <= cfg.stopped_speed_mps:
            kind = CollisionType.STOPPED_TRACK
        elif _angle_to(rear_x, rear_y, h[0, t], x[a, t], y[a, t]) > np.deg2rad(150):
            kind = CollisionType.ACTIVE_REAR
        elif bool(segment_hits_box(ego_box[0], ego_box[3], trk_box)):
            kind = CollisionType.ACTIVE_FRONT
        else:
            kind = CollisionType.ACTIVE_LATERAL
        lateral_fault = kind == CollisionType.ACTIVE_LATERAL and (fr.multiple_lanes[t] or fr.nondrivable[t])
        fault = kind in (CollisionType.ACTIVE_FRONT, CollisionType.STOPPED_TRACK) or lateral_fault
        group = "vru" if typ in (int(ObjectType.PEDESTRIAN), int(ObjectType.CYCLIST)) else (
            "vehicle" if typ == int(ObjectType.VEHICLE) else "object"
        )  # fmt: skip
        # delta-v (nuPlan's collision energy, equal masses)
        va = abs(float(v[a, t])) if is_agent else 0.0
        dv = 0.5 * float(np.sqrt(max(ev**2 + va**2 - 2 * ev * va * np.cos(h[0, t] - h[a, t]), 0.0)))
        events.append(
            {
                "step": t,
                "track_id": str(sim.track_ids[a]),
                "agent": int(a),
                "type": CollisionType.NAMES[kind],
                "group": group,
                "at_fault": bool(fault),
                "delta_v_mps": dv,
            }
        )
        if fault:
            at_fault_steps[t] = True
    return events, at_fault_steps


def _ttc_nuplan(
    sim: SimScenario,
    ro: dict[str, Any],
    fr: _Frames,
    events: list[dict[str, Any]],
    at_fault_steps: NDArrayBool,
    cfg: NuplanConfig,
) -> NDArrayFloat:
    """``(T,)`` nuPlan's time to collision (inf where none within the horizon)."""
    x, y, h, v, valid = ro["x"], ro["y"], ro["h"], ro["v"], ro["valid"]
    A, T = x.shape
    L, W = sim.length_m, sim.width_m
    times = np.arange(cfg.ttc_step_s, cfg.ttc_horizon_s, cfg.ttc_step_s)  # nuPlan's own arange: 0.1 .. 2.9 s
    ttc = np.full(T, np.inf)
    collided_at = np.full(A, T + 1)
    for e in events:
        collided_at[e["agent"]] = e["step"]
    rear_x = x[0] - np.cos(h[0]) * 0.3 * L[0]
    rear_y = y[0] - np.sin(h[0]) * 0.3 * L[0]
    ang = _angle_to(rear_x[None], rear_y[None], h[0][None], x[1:], y[1:])  # (A-1, T)
    lateral_ok = (fr.multiple_lanes | fr.in_intersection)[None, :]
    rel = (ang < np.deg2rad(30)) | (lateral_ok & ~(ang > np.deg2rad(150)))
    steps = np.arange(T)
    rel &= valid[1:] & (collided_at[1:, None] > steps[None, :])
    moving = np.abs(v[0]) > cfg.ttc_stopped_speed_mps
    rel &= moving[None, :]
    speeds = np.where(np.isin(sim.object_type[1:], _AGENT_TYPES)[:, None], np.abs(v[1:]), 0.0)
    # a cheap reach filter before the exact projection: nothing farther than both can travel plus their sizes
    reach = (np.abs(v[0])[None] + speeds) * cfg.ttc_horizon_s + (
        np.hypot(L[0], W[0]) + np.hypot(L[1:], W[1:])
    )[:, None]
    dist = np.hypot(x[1:] - x[0][None], y[1:] - y[0][None])
    rel &= dist <= reach
    ai, ti = np.nonzero(rel)
    if ai.size:
        tt = times[None, :]
        ex = x[0, ti][:, None] + np.cos(h[0, ti])[:, None] * v[0, ti][:, None] * tt
        ey = y[0, ti][:, None] + np.sin(h[0, ti])[:, None] * v[0, ti][:, None] * tt
        a1 = ai + 1
        sp = speeds[ai, ti][:, None]
        ax = x[a1, ti][:, None] + np.cos(h[a1, ti])[:, None] * sp * tt
        ay = y[a1, ti][:, None] + np.sin(h[a1, ti])[:, None] * sp * tt
        hit = obb_overlap(
            ex, ey, h[0, ti][:, None], L[0], W[0], ax, ay, h[a1, ti][:, None], L[a1][:, None], W[a1][:, None]
        )
        first = np.where(hit.any(axis=1), times[np.argmax(hit, axis=1)], np.inf)
        np.minimum.at(ttc, ti, first)
    ttc[at_fault_steps] = 0.0
    return ttc


# --------------------------------------------------------------------------- the metrics of one scenario


def _rollout_slice(sim: SimScenario, ro: Rollout, i: int) -> dict[str, Any]:
    A, T = sim.num_agents, sim.num_steps
    return {
        "x": ro.x_m[i, :A, :T],
        "y": ro.y_m[i, :A, :T],
        "h": ro.heading_rad[i, :A, :T],
        "v": ro.speed_mps[i, :A, :T],
        "valid": ro.valid[i, :A, :T],
    }


def _progress(route: NDArrayFloat, x: NDArrayFloat, y: NDArrayFloat) -> float:
    """Metres gained along the route polyline between the first and the last pose."""
    idx = PolylineIndex(route, np.asarray([0, route.shape[0]], dtype=np.int64), step_m=1.0)
    pr = idx.project(np.stack([[x[0], y[0]], [x[-1], y[-1]]]))
    return float(pr.s_m[1] - pr.s_m[0])


def scenario_metrics(
    sim: SimScenario,
    ro: Rollout,
    i: int,
    *,
    nuplan: NuplanConfig = NUPLAN,
    navsim: NavsimConfig = NAVSIM_V1,
) -> dict[str, Any]:
    """Every metric and both scores of scenario ``i`` of a rollout, as one flat row.

    Args:
        sim: The prepared scenario (row ``i`` of the batch).
        ro: The batch's rollout.
        i: Its row.
    """
    cfg = nuplan
    r = _rollout_slice(sim, ro, i)
    x, y, h, v = r["x"], r["y"], r["h"], r["v"]
    T = sim.num_steps
    dt = sim.dt_s
    fr = _frames(sim, x[0], y[0], h[0], cfg)
    events, at_fault_steps = _collisions(sim, r, fr, cfg)
    fault = [e for e in events if e["at_fault"]]
    n_vru = sum(e["group"] == "vru" for e in fault)
    n_veh = sum(e["group"] == "vehicle" for e in fault)
    n_obj = sum(e["group"] == "object" for e in fault)

    def cscore(n: int, thr: int) -> float:
        return max(0.0, 1.0 - n / (thr + 1))

    no_collision = 1.0 if not fault else (
        cscore(n_vru, cfg.max_violation_vru) * cscore(n_veh, cfg.max_violation_vehicle)
        * cscore(n_obj, cfg.max_violation_object)
    )  # fmt: skip
    dac = 0.0 if fr.far_from_drivable.any() else 1.0
    # driving direction: progress along the lane the ego's centre is in, summed over the last 1 s
    prog = np.zeros(T)
    for t in range(1, T):
        ln, prev = fr.center_lane[t], fr.center_lane[t - 1]
        if ln >= 0 and ln == prev:
            prog[t] = fr.center_s[t] - fr.center_s[t - 1]
    n_h = int(cfg.direction_horizon_s / dt)
    window = np.asarray([prog[max(0, k - n_h) : k + 1].sum() for k in range(T)])
    worst_back = abs(min(float(window.min()), 0.0))
    ddc = (
        1.0
        if worst_back < cfg.direction_compliance_m
        else 0.5
        if worst_back < cfg.direction_violation_m
        else 0.0
    )
    # progress along the expert route
    ego_prog = _progress(sim.route_xy_m, x[0], y[0])
    lv = sim.valid[0]
    ex_x, ex_y = sim.xy_m[0, lv, 0], sim.xy_m[0, lv, 1]
    expert_prog = _progress(sim.route_xy_m, ex_x, ex_y) if ex_x.size >= 2 else 0.0
    thr = cfg.progress_threshold_m
    ratio = 0.0 if ego_prog < -thr else min(1.0, max(ego_prog, thr) / max(expert_prog, thr))
    making_progress = 1.0 if ratio >= cfg.min_progress_ratio else 0.0
    ttc = _ttc_nuplan(sim, r, fr, events, at_fault_steps, cfg)
    ttc_ok = 1.0 if bool(np.all(ttc > cfg.least_min_ttc_s)) else 0.0
    # speed limits of the lane the ego's centre is in, where the map has them
    limits_known = sim.lane_speed_limit_mps.size > 0 and bool(np.isfinite(sim.lane_speed_limit_mps).any())
    over = np.zeros(T)
    if limits_known:
        lim = np.where(fr.center_lane >= 0, sim.lane_speed_limit_mps[np.maximum(fr.center_lane, 0)], np.nan)
        over = np.where(np.isfinite(lim), np.maximum(v[0] - lim, 0.0), 0.0)
    duration = (T - 1) * dt
    speed_score = 1.0
    if over.any() and duration > 0:
        loss = over.sum() * dt / (max(cfg.speed_max_overspeed_mps, 1e-3) * duration)
        speed_score = max(0.0, 1.0 - loss)
    comf = comfort(v[0], h[0], dt, cfg)
    comfort_ok = 1.0 if comf["ok"] else 0.0
    w = cfg.weights
    weighted = (w[0] * ratio + w[1] * ttc_ok + w[2] * speed_score + w[3] * comfort_ok) / sum(w)
    multipliers = no_collision * dac * making_progress * ddc
    cls = multipliers * weighted
    pdms = _pdms(sim, r, fr, events, navsim, cfg)
    first_off = np.flatnonzero(fr.far_from_drivable)
    return {
        "scenario_id": sim.scenario_id,
        "source": sim.source,
        "num_steps": T,
        "num_agents": sim.num_agents,
        "metric_version": METRIC_VERSION,
        "collisions": len(events),
        "at_fault_collisions": len(fault),
        "at_fault_collisions_vru": n_vru,
        "at_fault_collisions_vehicle": n_veh,
        "at_fault_collisions_object": n_obj,
        "first_at_fault_collision_step": min((e["step"] for e in fault), default=None),
        "no_at_fault_collisions": no_collision,
        "drivable_area_compliance": dac,
        "drivable_area_violation_steps": int(fr.far_from_drivable.sum()),
        "first_drivable_area_violation_step": int(first_off[0]) if first_off.size else None,
        "driving_direction_compliance": ddc,
        "max_against_traffic_m": worst_back,
        "ego_progress_m": ego_prog,
        "expert_progress_m": expert_prog,
        "ego_progress_ratio": ratio,
        "ego_is_making_progress": making_progress,
        "min_ttc_s": float(ttc.min()) if np.isfinite(ttc.min()) else None,
        "ttc_within_bound": ttc_ok,
        "speed_limit_known": limits_known,
        "speed_limit_compliance": speed_score,
        "ego_is_comfortable": comfort_ok,
        "comfort_checks": comf["checks"],
        "nuplan_cls": cls,
        **{f"navsim_{k}": val for k, val in pdms.items()},
        "collision_events": events,
    }


def _pdms(
    sim: SimScenario,
    r: dict[str, Any],
    fr: _Frames,
    events: list[dict[str, Any]],
    nv: NavsimConfig,
    cfg: NuplanConfig,
) -> dict[str, Any]:
    """NAVSIM v1 PDM score over consecutive 4 s windows of the rollout (mean over windows)."""
    x, y, h, v, valid = r["x"], r["y"], r["h"], r["v"], r["valid"]
    A, T = x.shape
    L, W = sim.length_m, sim.width_m
    dt = sim.dt_s
    n = nv.window_steps
    starts = list(range(0, max(T - 1, 1), n))
    rows = []
    collided_at = {e["agent"]: e for e in events}
    for s0 in starts:
        s1 = min(s0 + n, T - 1)
        span = np.arange(s0, s1 + 1)
        nc = 1.0
        for a, e in collided_at.items():
            if s0 <= e["step"] <= s1 and e["at_fault"]:
                nc = min(nc, 0.0 if int(sim.object_type[a]) in _AGENT_TYPES else 0.5)
        dac = 0.0 if fr.nondrivable[span].any() else 1.0
        # TTC: the ego projected at constant velocity 0/0.3/0.6/0.9 s against where the others are then
        ttc = 1.0
        moving = np.abs(v[0, span]) >= nv.stopped_speed_mps
        rear_x = x[0, span] - np.cos(h[0, span]) * 0.3 * L[0]
        rear_y = y[0, span] - np.sin(h[0, span]) * 0.3 * L[0]
        for k in nv.ttc_future_steps:
            tk = np.minimum(span + k, T - 1)
            ex = x[0, span] + np.cos(h[0, span]) * v[0, span] * k * dt
            ey = y[0, span] + np.sin(h[0, span]) * v[0, span] * k * dt
            hit = obb_overlap(
                ex[None], ey[None], h[0, span][None], L[0], W[0],
                x[1:, tk], y[1:, tk], h[1:, tk], L[1:, None], W[1:, None],
            ) & valid[1:, tk]  # fmt: skip
            before = np.asarray(
                [collided_at[a]["step"] < s0 if a in collided_at else False for a in range(1, A)], dtype=bool
            ).reshape(A - 1)
            hit &= ~before[:, None] & moving[None]
            if not hit.any():
                continue
            ang = _angle_to(rear_x[None], rear_y[None], h[0, span][None], x[1:, tk], y[1:, tk])
            lateral = (fr.multiple_lanes[span] | fr.nondrivable[span] | fr.in_intersection[span])[None]
            relevant = (ang < np.deg2rad(30)) | (lateral & ~(ang > np.deg2rad(150)))
            if (hit & relevant).any():
                ttc = 0.0
                break
        c = comfort(v[0, span], h[0, span], dt, cfg, whole_window=True)
        raw = max(_progress(sim.route_xy_m, x[0, span], y[0, span]), 0.0)
        ev = sim.valid[0, span]
        exp_raw = 0.0
        if ev.sum() >= 2:
            exp_raw = max(_progress(sim.route_xy_m, sim.xy_m[0, span[ev], 0], sim.xy_m[0, span[ev], 1]), 0.0)
        mult = nc * dac
        best = max(raw * mult, exp_raw)
        ep = raw * mult / best if best > nv.progress_distance_threshold_m else 0.0 if mult == 0.0 else 1.0
        weights = nv.progress_weight + nv.ttc_weight + nv.comfortable_weight + nv.driving_direction_weight
        score = (
            mult
            * (nv.progress_weight * ep + nv.ttc_weight * ttc + nv.comfortable_weight * float(c["ok"]))
            / weights
        )
        rows.append((nc, dac, ep, ttc, float(c["ok"]), score))
    arr = np.asarray(rows)
    mean = arr.mean(axis=0)
    return {
        "nc": float(mean[0]),
        "dac": float(mean[1]),
        "ep": float(mean[2]),
        "ttc": float(mean[3]),
        "c": float(mean[4]),
        "pdms": float(mean[5]),
        "windows": len(rows),
    }
