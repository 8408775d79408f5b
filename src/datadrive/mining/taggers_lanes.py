"""Taggers that need the lanes: lane changes, cut-ins, vehicles stopped in a lane, turns, density.

Every tagger here runs only on scenarios whose map has lane centerlines
(the runner skips it otherwise and says so). Lane membership, offsets and
the lane graph come from :mod:`datadrive.mining.map_context`. Thresholds
and their sources are on the config classes in :mod:`datadrive.mining.events`.

Notation:
    A: tracks. T: steps. L: lanes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datadrive.core.frames import wrap_angle
from datadrive.core.scenario import ObjectType, TrafficLightState
from datadrive.core.typing import NDArrayBool, NDArrayInt
from datadrive.mining.context import ScenarioContext
from datadrive.mining.events import (
    CutInConfig,
    DenseTrafficConfig,
    Event,
    LaneChangeConfig,
    StoppedInLaneConfig,
    UnprotectedTurnConfig,
    make_event,
)
from datadrive.mining.map_context import MapContext

__all__ = [
    "LaneChange",
    "Turn",
    "cut_in",
    "dense_traffic",
    "find_lane_changes",
    "find_turns",
    "lane_change",
    "stopped_in_lane",
    "unprotected_turn",
]


@dataclass(frozen=True)
class LaneChange:
    """One lane change: the track, the step it entered the new lane, its span, the lanes, the side."""

    track: int
    cross_step: int
    first: int
    last: int
    from_lane: int
    to_lane: int
    direction: str
    peak_lateral_speed_mps: float


@dataclass(frozen=True)
class Turn:
    """One turn: the track, its span, the heading change (positive left) and its direction."""

    track: int
    first: int
    last: int
    turn_rad: float
    direction: str


def _succ_pairs(m: MapContext) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in m.lanes.successors.tolist()}


def _hold(lane: NDArrayInt, r: int, start: int, stop: int, want: int) -> bool:
    """Whether track ``r`` is on lane ``want`` at every step of ``[start, stop)`` it is on a lane."""
    seg = lane[r, max(start, 0) : stop]
    seg = seg[seg >= 0]
    return bool(seg.size == 0 or np.all(seg == want))


def find_lane_changes(ctx: ScenarioContext, cfg: LaneChangeConfig) -> list[LaneChange]:
    """Every lane change of a vehicle (see :class:`~datadrive.mining.events.LaneChangeConfig`).

    A change is a pair of consecutive valid steps on two different lanes that
    are neighbours (a ``LEFT_NEIGHBOR``/``RIGHT_NEIGHBOR`` relation either
    way; for maps without neighbour relations, lanes that are parallel and
    not successors of each other), neither in an intersection, at a speed of
    at least ``cfg.min_speed_mps``, the old lane held for 0.5 s before and the
    new one for 0.5 s after.
    """
    key = ("lane_changes", cfg)
    if key in ctx.cache:
        return ctx.cache[key]  # type: ignore[return-value]
    m = ctx.map
    out: list[LaneChange] = []
    if m is None or m.lanes.num_lanes == 0:
        ctx.cache[key] = out
        return out
    lanes = m.lanes
    k = ctx.kinematics
    lane = m.lane
    veh = ctx.of_type(ObjectType.VEHICLE)
    prev, cur = lane[:, :-1], lane[:, 1:]
    with np.errstate(invalid="ignore"):
        moving = k.speed_mps[:, 1:] >= cfg.min_speed_mps
    change = veh[:, None] & (prev >= 0) & (cur >= 0) & (prev != cur) & moving
    rows, steps = np.nonzero(change)
    if rows.size == 0:
        ctx.cache[key] = out
        return out
    has_neighbours = bool((lanes.left >= 0).any() or (lanes.right >= 0).any())
    succ = _succ_pairs(m)
    heading = ctx.tracks.heading_rad
    sideways = k.speed_mps * np.sin(np.nan_to_num(m.lane_heading_diff_rad))
    half = 0.5
    for r, s in zip(rows.tolist(), steps.tolist(), strict=True):
        t = s + 1
        l0, l1 = int(lane[r, s]), int(lane[r, t])
        if lanes.is_intersection[l0] or lanes.is_intersection[l1]:
            continue
        if has_neighbours:
            if lanes.left[l0] == l1 or lanes.right[l1] == l0:
                direction = "left"
            elif lanes.right[l0] == l1 or lanes.left[l1] == l0:
                direction = "right"
            else:
                continue
        else:
            if (l0, l1) in succ or (l1, l0) in succ:
                continue
            h0 = heading[r, s] - m.lane_heading_diff_rad[r, s]
            h1 = heading[r, t] - m.lane_heading_diff_rad[r, t]
            if abs(float(wrap_angle(h1 - h0))) > np.deg2rad(20.0):
                continue
            # adjacent, not overlapping: the two centerlines about a lane width apart here
            sep = _separation(ctx, l0, l1, r, t)
            w = 0.5 * (lanes.width_m[l0] + lanes.width_m[l1])
            if not (0.6 * w <= sep <= 1.6 * w):
                continue
            direction = "left" if m.lane_lateral_m[r, t] < 0 else "right"
        before = int(np.searchsorted(ctx.t_s, ctx.t_s[s] - half, side="left"))
        after = int(np.searchsorted(ctx.t_s, ctx.t_s[t] + half, side="right"))
        if not (_hold(lane, r, before, s + 1, l0) and _hold(lane, r, t, after, l1)):
            continue
        sign = 1.0 if direction == "left" else -1.0
        toward = sign * sideways[r] >= cfg.min_lateral_speed_mps
        first, last = s, t
        lo_t = ctx.t_s[s] - cfg.max_half_duration_s
        hi_t = ctx.t_s[t] + cfg.max_half_duration_s
        while first - 1 >= 0 and ctx.valid[r, first - 1] and toward[first - 1] and ctx.t_s[first - 1] >= lo_t:
            first -= 1
        while (
            last + 1 < ctx.num_steps
            and ctx.valid[r, last + 1]
            and toward[last + 1]
            and ctx.t_s[last + 1] <= hi_t
        ):
            last += 1
        peak = float(np.nanmax(np.abs(sideways[r, first : last + 1])))
        out.append(LaneChange(r, t, first, last, l0, l1, direction, peak))
    ctx.cache[key] = out
    return out


def _separation(ctx: ScenarioContext, l0: int, l1: int, r: int, t: int) -> float:
    """Distance between the feet of track ``r``'s position at ``t`` on lanes ``l0`` and ``l1``."""
    m = ctx.map
    sm = ctx.scenario.map
    if m is None or sm is None:
        return 0.0
    p = ctx.tracks.xy_m[r, t]
    feet = []
    for lane in (l0, l1):
        pts = sm.points(int(m.lanes.feature[lane]))[:, :2]
        if pts.shape[0] == 1:
            feet.append(pts[0])
            continue
        a, b = pts[:-1], pts[1:]
        d = b - a
        length2 = (d * d).sum(-1)
        u = np.clip(((p - a) * d).sum(-1) / np.where(length2 > 0, length2, 1.0), 0.0, 1.0)
        foot = a + u[:, None] * d
        feet.append(foot[int(np.argmin(np.hypot(*(p - foot).T)))])
    return float(np.hypot(*(feet[0] - feet[1])))


def lane_change(ctx: ScenarioContext, cfg: LaneChangeConfig) -> list[Event]:
    """Vehicles changing to a neighbouring lane (see :func:`find_lane_changes`)."""
    m = ctx.map
    if m is None:
        return []
    out = []
    for c in find_lane_changes(ctx, cfg):
        out.append(
            make_event(
                ctx,
                "lane_change",
                [c.track],
                c.first,
                c.last,
                c.peak_lateral_speed_mps,
                direction=c.direction,
                from_lane=str(m.lanes.feature_ids[c.from_lane]),
                to_lane=str(m.lanes.feature_ids[c.to_lane]),
                cross_ns=int(ctx.timestamps_ns[c.cross_step]),
            )
        )
    return out


def cut_in(ctx: ScenarioContext, cfg: CutInConfig) -> list[Event]:
    """Lane changes that end close ahead of a vehicle already in the target lane."""
    m = ctx.map
    if m is None:
        return []
    k = ctx.kinematics
    length, width = ctx.footprint
    veh = np.flatnonzero(ctx.of_type(ObjectType.VEHICLE))
    succ = _succ_pairs(m)
    out = []
    for c in find_lane_changes(ctx, cfg.lane_change):
        b, t0 = c.track, c.cross_step
        t1 = int(np.searchsorted(ctx.t_s, ctx.t_s[t0] + cfg.look_ahead_s, side="right"))
        best: tuple[float, int, float] | None = None  # (headway, follower, gap)
        for f in veh.tolist():
            if f == b or not ctx.valid[f, t0]:
                continue
            lf = int(m.lane[f, t0])
            if lf < 0 or not (lf == c.to_lane or (lf, c.to_lane) in succ or (c.to_lane, lf) in succ):
                continue
            if (
                t0 > 0
                and m.lane[f, t0 - 1] >= 0
                and m.lane[f, t0 - 1] != lf
                and (int(m.lane[f, t0 - 1]), lf) not in succ
            ):
                continue  # the follower changed lane itself
            for t in range(t0, min(t1, ctx.num_steps)):
                if not (ctx.valid[f, t] and ctx.valid[b, t]):
                    continue
                h = k.travel_heading_rad[f, t]
                rel = ctx.tracks.xy_m[b, t] - ctx.tracks.xy_m[f, t]
                ahead = rel[0] * np.cos(h) + rel[1] * np.sin(h)
                side = -rel[0] * np.sin(h) + rel[1] * np.cos(h)
                if abs(side) > width[f] / 2 + width[b] / 2 + cfg.lateral_tolerance_m:
                    continue
                gap = float(ahead - length[f] / 2 - length[b] / 2)
                if gap <= 0 and ahead <= 0:
                    continue
                vf = float(k.speed_mps[f, t])
                headway = gap / vf if vf > 0.5 else np.inf
                close = gap <= cfg.min_gap_m or headway <= cfg.time_headway_s
                if close and (best is None or headway < best[0] or (headway == best[0] and gap < best[2])):
                    best = (headway, f, gap)
        if best is not None:
            headway, f, gap = best
            margin = max(0.0, cfg.time_headway_s - headway) if np.isfinite(headway) else 0.0
            out.append(
                make_event(
                    ctx,
                    "cut_in",
                    [b, f],
                    c.first,
                    c.last,
                    margin,
                    min_headway_s=float(headway) if np.isfinite(headway) else None,
                    min_gap_m=gap,
                    direction=c.direction,
                    follower_is_ego=bool(ctx.ego_index == f),
                )
            )
    return out


def stopped_in_lane(ctx: ScenarioContext, cfg: StoppedInLaneConfig) -> list[Event]:
    """Vehicles stopped in a travel lane, away from junctions and not queued behind another."""
    m = ctx.map
    if m is None:
        return []
    lanes = m.lanes
    k = ctx.kinematics
    veh = ctx.of_type(ObjectType.VEHICLE) & ~ctx.is_ego
    lane = m.lane
    safe = np.where(lane >= 0, lane, 0)
    travel = np.isin(lanes.kind, ("vehicle", "bus"))[safe] & (lane >= 0)
    with np.errstate(invalid="ignore"):
        stopped = k.speed_mps < cfg.max_speed_mps
        centred = np.abs(m.lane_lateral_m) <= cfg.max_lateral_m
        clear = ~(np.nan_to_num(m.next_intersection_m, nan=np.inf) <= cfg.clear_of_junction_m) & ~(
            np.nan_to_num(m.next_stop_line_m, nan=np.inf) <= cfg.clear_of_junction_m
        )
    cand = veh[:, None] & ctx.valid & stopped & travel & centred & clear & ~m.in_intersection
    queued = _queued(ctx, m, cand, cfg.queue_gap_m)
    rows, first, last = ctx.runs(cand & ~queued, min_duration_s=cfg.min_duration_s)
    out = []
    for r, f, la in zip(rows.tolist(), first.tolist(), last.tolist(), strict=True):
        dur = float(ctx.t_s[la] - ctx.t_s[f])
        out.append(
            make_event(
                ctx,
                "stopped_in_lane",
                [r],
                f,
                la,
                dur,
                duration_s=dur,
                lane=str(lanes.feature_ids[int(lane[r, f])]),
                lateral_m=float(np.nanmean(m.lane_lateral_m[r, f : la + 1])),
            )
        )
    return out


def _queued(ctx: ScenarioContext, m: MapContext, cand: NDArrayBool, gap_m: float) -> NDArrayBool:
    """``(A, T)`` candidates with another slow vehicle ahead in the same (or next) lane within ``gap_m``."""
    out = np.zeros_like(cand)
    rows, steps = np.nonzero(cand)
    if rows.size == 0:
        return out
    lanes = m.lanes
    num = lanes.num_lanes
    succ = np.zeros((num, num), dtype=bool)
    if lanes.successors.shape[0]:
        succ[lanes.successors[:, 0], lanes.successors[:, 1]] = True
    length, _ = ctx.footprint
    veh = ctx.of_type(ObjectType.VEHICLE)
    k = ctx.kinematics
    la = m.lane[rows, steps]  # (N,)
    sa = m.lane_s_m[rows, steps]
    lb = m.lane[:, steps].T  # (N, A)
    sb = m.lane_s_m[:, steps].T
    with np.errstate(invalid="ignore"):
        slow = (k.speed_mps[:, steps].T < 1.0) & ctx.valid[:, steps].T & veh[None, :] & (lb >= 0)
    same = lb == la[:, None]
    nxt = succ[la[:, None], np.where(lb >= 0, lb, 0)] & (lb >= 0)
    ds = np.where(
        same, sb - sa[:, None], np.where(nxt, lanes.length_m[la][:, None] - sa[:, None] + sb, np.nan)
    )
    gap = ds - length[rows][:, None] / 2 - length[None, :] / 2
    other = np.arange(ctx.num_tracks)[None, :] != rows[:, None]
    with np.errstate(invalid="ignore"):
        ahead = slow & other & (ds > 0) & (gap <= gap_m)
    out[rows, steps] = ahead.any(axis=1)
    return out


def find_turns(ctx: ScenarioContext, min_turn_deg: float = 45.0, min_yaw_rate_dps: float = 2.0) -> list[Turn]:
    """Turns of vehicles and cyclists: runs of same-sign yaw rate (above ``min_yaw_rate_dps``) whose
    heading change reaches ``min_turn_deg`` (RefAV's ``turning`` uses 45 degrees)."""
    key = ("turns", min_turn_deg, min_yaw_rate_dps)
    if key in ctx.cache:
        return ctx.cache[key]  # type: ignore[return-value]
    k = ctx.kinematics
    rate = k.yaw_rate_rps
    steered = ctx.of_type(ObjectType.VEHICLE, ObjectType.CYCLIST)[:, None] & ctx.valid
    thr = np.deg2rad(min_yaw_rate_dps)
    out: list[Turn] = []
    with np.errstate(invalid="ignore"):
        masks = {"left": steered & (rate >= thr), "right": steered & (rate <= -thr)}
    for direction, mask in masks.items():
        rows, first, last = ctx.runs(mask, max_gap_s=0.3)
        for r, f, la in zip(rows.tolist(), first.tolist(), last.tolist(), strict=True):
            h = k.travel_heading_rad[r, f : la + 1]
            h = h[np.isfinite(h)]
            if h.size < 2:
                continue
            change = float(np.sum(wrap_angle(np.diff(h))))
            if abs(change) >= np.deg2rad(min_turn_deg) and np.sign(change) == (
                1 if direction == "left" else -1
            ):
                out.append(Turn(r, f, la, change, direction))
    ctx.cache[key] = out
    return out


def _left_hand(ctx: ScenarioContext, cfg: UnprotectedTurnConfig) -> bool:
    where = (ctx.scenario.metadata.location or "").lower()
    return any(name in where for name in cfg.left_hand_traffic)


def _protected(ctx: ScenarioContext, m: MapContext, r: int, first: int, last: int) -> bool:
    """Whether a green arrow was shown to the lane the turner was on during the turn."""
    tl = ctx.scenario.traffic_lights
    if tl is None:
        return False
    lanes = m.lane[r, first : last + 1]
    ids = {str(m.lanes.feature_ids[int(x)]) for x in lanes[lanes >= 0].tolist()}
    for i, lid in enumerate(tl.lane_ids.tolist()):
        if lid in ids:
            states = tl.state[i, first : last + 1][tl.valid[i, first : last + 1]]
            if np.any(states == TrafficLightState.ARROW_GO):
                return True
    return False


def unprotected_turn(ctx: ScenarioContext, cfg: UnprotectedTurnConfig) -> list[Event]:
    """Turns across opposing traffic through an intersection with an oncoming vehicle within ``max_gap_s``."""
    m = ctx.map
    if m is None:
        return []
    across = "right" if _left_hand(ctx, cfg) else "left"
    k = ctx.kinematics
    xy = ctx.tracks.xy_m
    veh = ctx.of_type(ObjectType.VEHICLE)
    out = []
    for turn in find_turns(ctx, cfg.min_turn_deg):
        r, f, la = turn.track, turn.first, turn.last
        if turn.direction != across or not veh[r] or not m.in_intersection[r, f : la + 1].any():
            continue
        if _protected(ctx, m, r, f, la):
            continue
        h0 = k.travel_heading_rad[r, f]
        best: tuple[float, int] | None = None
        for t in range(f, la + 1):
            if not ctx.valid[r, t]:
                continue
            others = np.flatnonzero(veh & ctx.valid[:, t] & (np.arange(ctx.num_tracks) != r))
            if others.size == 0:
                continue
            ho = k.travel_heading_rad[others, t]
            so = k.speed_mps[others, t]
            opposing = np.abs(wrap_angle(ho - h0 - np.pi)) <= np.deg2rad(45.0)
            rel = xy[r, t] - xy[others, t]  # from the oncoming vehicle to the turner
            vel = np.stack([k.vx_mps[others, t], k.vy_mps[others, t]], axis=1)
            dist = np.hypot(rel[:, 0], rel[:, 1])
            with np.errstate(invalid="ignore", divide="ignore"):
                approaching = (rel * vel).sum(axis=1) > 0
                gap = dist / so
                ok = opposing & approaching & (so >= cfg.min_oncoming_speed_mps) & (gap <= cfg.max_gap_s)
            if ok.any():
                j = int(np.nanargmin(np.where(ok, gap, np.inf)))
                if best is None or gap[j] < best[0]:
                    best = (float(gap[j]), int(others[j]))
        if best is None:
            continue
        gap_s, o = best
        out.append(
            make_event(
                ctx,
                "unprotected_turn",
                [r, o],
                f,
                la,
                max(0.0, cfg.critical_gap_s - gap_s),
                min_gap_s=gap_s,
                direction=turn.direction,
                turn_deg=float(np.degrees(turn.turn_rad)),
            )
        )
    return out


def dense_traffic(ctx: ScenarioContext, cfg: DenseTrafficConfig) -> list[Event]:
    """Vehicle density around the ego, per lane-kilometre, at or above the LOS-F density."""
    m = ctx.map
    if m is None or ctx.ego_index is None:
        return []
    e = ctx.ego_index
    k = ctx.kinematics
    xy = ctx.tracks.xy_m
    veh = ctx.of_type(ObjectType.VEHICLE) & ~ctx.is_ego
    he = k.travel_heading_rad[e]  # (T,)
    d = np.hypot(xy[:, :, 0] - xy[e, None, :, 0], xy[:, :, 1] - xy[e, None, :, 1])  # (A, T)
    with np.errstate(invalid="ignore"):
        same_dir = np.abs(wrap_angle(k.travel_heading_rad - he[None, :])) <= np.deg2rad(45.0)
        in_path = np.abs(m.lane_lateral_m) <= cfg.max_lateral_m  # parked at the kerb is not traffic
        near = veh[:, None] & ctx.valid & (m.lane >= 0) & in_path & (d <= cfg.radius_m) & same_dir
    count = near.sum(axis=0).astype(np.float64)  # (T,)
    num_lanes = np.full(ctx.num_steps, np.nan)
    for t in np.flatnonzero(ctx.valid[e] & (m.lane[e] >= 0)).tolist():
        num_lanes[t] = _same_direction_lanes(m, int(m.lane[e, t]))
    density = count / (2.0 * cfg.radius_m / 1000.0) / num_lanes
    mask = np.zeros_like(ctx.valid)
    with np.errstate(invalid="ignore"):
        mask[e] = density >= cfg.min_density_veh_per_km_lane
    _rows, first, last = ctx.runs(mask, min_duration_s=cfg.min_duration_s)
    out = []
    for f, la in zip(first.tolist(), last.tolist(), strict=True):
        peak = float(np.nanmax(density[f : la + 1]))
        out.append(
            make_event(
                ctx,
                "dense_traffic",
                [e],
                f,
                la,
                peak,
                peak_density_veh_per_km_lane=peak,
                peak_vehicles=int(count[f : la + 1].max()),
            )
        )
    return out


def _same_direction_lanes(m: MapContext, lane: int) -> int:
    """The lane plus its neighbours, left and right, that run the same way (at most 8 each side)."""
    lanes = m.lanes
    n = 1
    for side in (lanes.left, lanes.right):
        cur, steps = lane, 0
        while side[cur] >= 0 and steps < 8:
            nxt = int(side[cur])
            if not _parallel(m, cur, nxt):
                break
            cur, n, steps = nxt, n + 1, steps + 1
    return n


def _parallel(m: MapContext, a: int, b: int) -> bool:
    idx = m.lanes.index
    if idx is None:
        return False
    sel_a = idx.seg_feature == a
    sel_b = idx.seg_feature == b
    if not sel_a.any() or not sel_b.any():
        return False
    ha = np.arctan2(np.sin(idx.seg_heading[sel_a]).sum(), np.cos(idx.seg_heading[sel_a]).sum())
    hb = np.arctan2(np.sin(idx.seg_heading[sel_b]).sum(), np.cos(idx.seg_heading[sel_b]).sum())
    return bool(abs(float(wrap_angle(ha - hb))) <= np.pi / 4)
