"""From a :class:`~datadrive.core.scenario.Scenario` to what the simulator steps: a :class:`SimScenario`.

Three explicit steps, each named in the scenario's problems when it fails:

1. **Resample** onto the simulator's fixed grid (:func:`resample`): logs come
   at 10 Hz (AV2, Waymo, INTERACTION), 20 Hz (nuPlan) or irregularly; states
   are interpolated linearly (headings along the shorter arc) at
   ``t0 + k * dt``; a grid step is valid only where both bracketing samples
   are valid and at most ``max_gap_s`` apart. Traffic-light states take the
   last sample at or before the grid time.
2. **Select agents**: the ego first (row 0), then the other tracks nearest to
   the ego at the first step, at most ``max_agents`` in all.
3. **Lanes**: every vehicle valid at the first step is matched to a lane
   (heading-aware); a matched vehicle gets a path (its lane and successors,
   resampled every metre, choosing at forks the successor nearest to its own
   logged future) and the paths of up to two lanes on each side (the
   neighbours' chains), with their arc-length offsets and lateral offsets,
   so IDM/MOBIL can run along them. The ego's **route** is the chain of
   lanes its logged trajectory follows (the expert route of nuPlan's
   progress metric), or the logged trajectory itself where no lane matches.

Bad input raises :class:`~datadrive.errors.SimulationInputError` naming the
scenario and the reason: no ego, a zero-length scenario (fewer than two grid
steps), NaN states, an ego that starts off the map.

Notation:
    A: agents kept (ego at row 0). T: grid steps. K: path points.
    P: parallel paths per agent (5: two left, own, two right). M: stop lines per path.
    L: traffic-light-controlled lanes. R: route points.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from datadrive.core.scenario import ObjectType, Scenario, Tracks, TrafficLights, TrafficLightState
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt, NDArrayStr
from datadrive.errors import SimulationInputError
from datadrive.sim.lanes import DEFAULT_HALF_WIDTH_M, LaneGraph, chain_path, resample_polyline

__all__ = ["NUM_PATHS", "OWN_PATH", "PrepareConfig", "SimScenario", "prepare", "resample"]

NUM_PATHS = 5
"""Parallel paths per agent: two lanes to the left, its own, two to the right."""
OWN_PATH = 2
"""Index of the agent's own lane among its parallel paths."""
MAX_STOPS = 4

_STOP_STATES = (TrafficLightState.STOP, TrafficLightState.ARROW_STOP, TrafficLightState.FLASHING_STOP)
_CAUTION_STATES = (TrafficLightState.CAUTION, TrafficLightState.ARROW_CAUTION)


@dataclass(frozen=True)
class PrepareConfig:
    """How scenarios become simulator input.

    Attributes:
        dt_s: The simulator's fixed step.
        max_gap_s: Longest gap between two source samples that is interpolated across.
        max_agents: Agents kept per scenario (the ego and the nearest others).
        path_step_m: Spacing of path points.
        path_points: Points per path (``path_step_m * path_points`` metres ahead of the lane start).
        lane_match_m: Farthest an agent may be from a lane centerline and still follow it.
        max_steps: Cut scenarios to this many grid steps (``None``: all).
    """

    dt_s: float = 0.1
    max_gap_s: float = 0.35
    max_agents: int = 64
    path_step_m: float = 1.0
    path_points: int = 256
    lane_match_m: float = 2.5
    max_steps: int | None = None


@dataclass
class SimScenario:
    """One scenario ready for the simulator (numpy, CPU), ego at row 0.

    Attributes:
        scenario_id, source: As in the Scenario.
        num_steps: T.
        dt_s: Grid step.
        track_ids: ``(A,)``.
        object_type: ``(A,)`` :class:`ObjectType` codes.
        length_m, width_m: ``(A,)`` box size (defaults filled where unknown).
        xy_m: ``(A, T, 2)`` logged positions on the grid.
        heading_rad: ``(A, T)``.
        speed_mps: ``(A, T)`` signed speed along the heading.
        valid: ``(A, T)``.
        reactive_ok: ``(A,)`` the agent has a lane path (may be driven by IDM/MOBIL).
        path_xy_m: ``(A, P, K, 2)`` parallel paths; ``path_ok (A, P)``.
        path_s_offset_m: ``(A, P)`` arc length on path p of the point beside arc 0 of the own path.
        path_lateral_m: ``(A, P)`` lateral offset of path p from the own path (left positive).
        s0_m, d0_m: ``(A,)`` initial arc length and lateral offset on the own path.
        desired_speed_mps: ``(A,)`` IDM desired speed.
        stop_s_m: ``(A, P, M)`` arc lengths (on each path) where traffic lights stop it.
        stop_light: ``(A, P, M)`` row in the light arrays, -1 none.
        light_stop: ``(L, T)`` the light says stop; ``light_caution (L, T)``.
        route_xy_m: ``(R, 2)`` the ego's route polyline (1 m spacing).
        lanes: The map's lane graph (``None`` without lanes).
        scenario: The resampled scenario (map, metadata) for metrics and renders.
        lane_speed_limit_mps: ``(F_lanes,)`` speed limit per lane of ``lanes``, NaN unknown.
    """

    scenario_id: str
    source: str
    num_steps: int
    dt_s: float
    track_ids: NDArrayStr
    object_type: NDArrayInt
    length_m: NDArrayFloat
    width_m: NDArrayFloat
    xy_m: NDArrayFloat
    heading_rad: NDArrayFloat
    speed_mps: NDArrayFloat
    valid: NDArrayBool
    reactive_ok: NDArrayBool
    path_xy_m: NDArrayFloat
    path_ok: NDArrayBool
    path_s_offset_m: NDArrayFloat
    path_lateral_m: NDArrayFloat
    s0_m: NDArrayFloat
    d0_m: NDArrayFloat
    desired_speed_mps: NDArrayFloat
    stop_s_m: NDArrayFloat
    stop_light: NDArrayInt
    light_stop: NDArrayBool
    light_caution: NDArrayBool
    route_xy_m: NDArrayFloat
    lanes: LaneGraph | None
    scenario: Scenario
    lane_speed_limit_mps: NDArrayFloat
    notes: list[str] = field(default_factory=list)

    @property
    def num_agents(self) -> int:
        return int(self.track_ids.shape[0])


# --------------------------------------------------------------------------- resampling


def resample(scenario: Scenario, dt_s: float = 0.1, *, max_gap_s: float = 0.35) -> Scenario:
    """The scenario on a uniform grid ``t0 + k * dt_s`` (see the module docstring).

    A scenario already on that grid is returned unchanged.

    Raises:
        SimulationInputError: fewer than two grid steps.
    """
    ts = scenario.timestamps_ns
    dt_ns = round(dt_s * 1e9)
    if ts.shape[0] < 2:
        raise SimulationInputError(scenario.scenario_id, "zero-length scenario: it has fewer than two steps")
    span = int(ts[-1] - ts[0])
    n = span // dt_ns + 1
    if n < 2:
        raise SimulationInputError(scenario.scenario_id, f"zero-length scenario: it spans {span / 1e9:.3f} s")
    grid = ts[0] + dt_ns * np.arange(n, dtype=np.int64)
    if ts.shape[0] == n and np.all(np.abs(ts - grid) <= dt_ns // 100):
        return scenario
    tr = scenario.tracks
    # bracketing source samples of every grid time
    hi = np.clip(np.searchsorted(ts, grid, side="left"), 1, ts.shape[0] - 1)
    lo = hi - 1
    exact = ts[hi] == grid
    lo = np.where(exact, hi, lo)
    span_ns = (ts[hi] - ts[lo]).astype(np.float64)
    w = np.where(span_ns > 0, (grid - ts[lo]) / np.where(span_ns > 0, span_ns, 1.0), 0.0)
    ok_gap = span_ns <= max_gap_s * 1e9
    valid = tr.valid[:, lo] & tr.valid[:, hi] & ok_gap[None, :]

    def lerp(x: NDArrayFloat) -> NDArrayFloat:
        out: NDArrayFloat = (
            x[:, lo] * (1.0 - w)[None, :, *([None] * (x.ndim - 2))]
            + x[:, hi] * w[None, :, *([None] * (x.ndim - 2))]
        )
        return out

    dh = (tr.heading_rad[:, hi] - tr.heading_rad[:, lo] + np.pi) % (2 * np.pi) - np.pi
    heading = (tr.heading_rad[:, lo] + w[None, :] * dh + np.pi) % (2 * np.pi) - np.pi
    xy = lerp(tr.xy_m)
    xy = np.where(valid[..., None], xy, 0.0)
    tracks = Tracks(
        track_ids=tr.track_ids,
        object_type=tr.object_type,
        category=tr.category,
        xy_m=xy,
        z_m=lerp(tr.z_m),
        heading_rad=np.where(valid, heading, 0.0),
        velocity_mps=lerp(tr.velocity_mps),
        size_m=tr.size_m,
        valid=valid,
    )
    tl = scenario.traffic_lights
    if tl is not None:
        last = np.clip(np.searchsorted(ts, grid, side="right") - 1, 0, ts.shape[0] - 1)
        tl = TrafficLights(tl.lane_ids, tl.state[:, last], tl.stop_point_m, tl.valid[:, last])
    return replace(scenario, timestamps_ns=grid, tracks=tracks, traffic_lights=tl)


# --------------------------------------------------------------------------- preparation

_DEFAULT_SIZE = {
    int(ObjectType.VEHICLE): (4.5, 1.9),
    int(ObjectType.CYCLIST): (1.8, 0.7),
    int(ObjectType.PEDESTRIAN): (0.6, 0.6),
    int(ObjectType.OTHER): (1.0, 1.0),
}


def prepare(scenario: Scenario, config: PrepareConfig = PrepareConfig()) -> SimScenario:
    """Resample, select agents, match lanes and build paths (see the module docstring).

    Raises:
        SimulationInputError: naming the scenario and the reason.
    """
    sid = scenario.scenario_id
    if scenario.ego_index is None:
        raise SimulationInputError(sid, "the scenario has no ego track to control")
    tr0 = scenario.tracks
    e0 = scenario.ego_index
    bad = tr0.valid & ~(np.isfinite(tr0.xy_m).all(axis=-1) & np.isfinite(tr0.heading_rad))
    if bad.any():
        a, t = np.argwhere(bad)[0]
        raise SimulationInputError(
            sid, f"NaN state: track {tr0.track_ids[a]} at step {t} is valid but has a NaN position or heading"
        )
    s = resample(scenario, config.dt_s, max_gap_s=config.max_gap_s)
    tr = s.tracks
    if config.max_steps is not None and s.num_steps > config.max_steps:
        cut = config.max_steps
        tr = Tracks(
            tr.track_ids,
            tr.object_type,
            tr.category,
            tr.xy_m[:, :cut],
            tr.z_m[:, :cut],
            tr.heading_rad[:, :cut],
            tr.velocity_mps[:, :cut],
            tr.size_m,
            tr.valid[:, :cut],
        )
        tl = s.traffic_lights
        if tl is not None:
            tl = TrafficLights(tl.lane_ids, tl.state[:, :cut], tl.stop_point_m, tl.valid[:, :cut])
        s = replace(s, timestamps_ns=s.timestamps_ns[:cut], tracks=tr, traffic_lights=tl)
    num_steps = s.num_steps
    if num_steps < 2:
        raise SimulationInputError(sid, "zero-length scenario: fewer than two simulation steps")
    if not tr.valid[e0, 0]:
        first = np.flatnonzero(tr.valid[e0])
        if first.size == 0:
            raise SimulationInputError(sid, "the ego track has no valid state on the 0.1 s grid")
        raise SimulationInputError(
            sid, f"the ego track is not valid at the first step (first valid step {int(first[0])})"
        )
    # agents: ego first, then nearest at step 0 (tracks never valid are dropped)
    ego_xy = tr.xy_m[e0, 0]
    first_valid = np.argmax(tr.valid, axis=1)
    has = tr.valid.any(axis=1)
    pos0 = tr.xy_m[np.arange(tr.num_tracks), first_valid]
    dist = np.where(has, np.hypot(*(pos0 - ego_xy).T), np.inf)
    dist[e0] = -1.0
    order = np.argsort(dist, kind="stable")
    order = order[np.isfinite(dist[order])][: config.max_agents]
    A = int(order.size)
    xy = tr.xy_m[order]
    heading = tr.heading_rad[order]
    valid = tr.valid[order]
    otype = tr.object_type[order].astype(np.int64)
    size = tr.size_m[order]
    defaults = np.asarray([_DEFAULT_SIZE[int(t)] for t in otype]).reshape(A, 2)
    length = np.where(np.isfinite(size[:, 0]) & (size[:, 0] > 0.1), size[:, 0], defaults[:, 0])
    width = np.where(np.isfinite(size[:, 1]) & (size[:, 1] > 0.1), size[:, 1], defaults[:, 1])
    speed = _speed_along_heading(tr.velocity_mps[order], xy, heading, valid, config.dt_s)

    K, P = config.path_points, NUM_PATHS
    path_xy = np.zeros((A, P, K, 2))
    path_ok = np.zeros((A, P), dtype=bool)
    s_off = np.zeros((A, P))
    lat_off = np.zeros((A, P))
    s0 = np.zeros(A)
    d0 = np.zeros(A)
    stop_s = np.full((A, P, MAX_STOPS), np.inf)
    stop_light = np.full((A, P, MAX_STOPS), -1, dtype=np.int64)
    m = s.map
    lanes = LaneGraph(m) if m is not None else None
    if lanes is not None and lanes.num_lanes == 0:
        lanes = None
    notes: list[str] = []
    light_lanes: dict[int, int] = {}
    tl = s.traffic_lights
    if tl is not None and lanes is not None:
        by_id = {str(x): i for i, x in enumerate(lanes.lane_ids.tolist())}
        for row, lid in enumerate(tl.lane_ids.tolist()):
            if str(lid) in by_id:
                light_lanes[by_id[str(lid)]] = row
    if lanes is not None:
        cand = valid[:, 0] & (otype == ObjectType.VEHICLE)
        match = lanes.match(xy[:, 0], heading[:, 0], max_distance_m=config.lane_match_m)
        for a in np.flatnonzero(cand & (match.lane >= 0)):
            _build_paths(
                int(a), int(match.lane[a]), float(match.s_m[a]), xy, valid, lanes, config,
                path_xy, path_ok, s_off, lat_off, light_lanes, stop_s, stop_light,
            )  # fmt: skip
            s0[a] = match.s_m[a]
            d0[a] = match.lateral_m[a]
        if not path_ok[0, OWN_PATH]:
            m0 = lanes.match(xy[:1, 0], None, max_distance_m=10.0)
            if m0.lane[0] < 0 and not _on_drivable_polygon(s, xy[0, 0]):
                raise SimulationInputError(
                    sid, "agent off the map: the ego starts more than 10 m from every lane"
                )
            notes.append("the ego matches no lane in its direction of travel")
    else:
        raise SimulationInputError(
            sid,
            "the map has no lanes" if m is not None else "the scenario has no map",
        ) from None
    dead = sum(1 for x in lanes.successors if not x)
    if dead == lanes.num_lanes and lanes.num_lanes > 1:
        notes.append(f"disconnected lanes: none of the {lanes.num_lanes} lanes has a successor")
    reactive_ok = path_ok[:, OWN_PATH].copy()
    observed = np.where(valid, np.abs(speed), 0.0)
    desired = np.maximum(np.max(observed, axis=1) * 1.1, 5.0)
    n_lights = 0 if tl is None else int(tl.lane_ids.shape[0])
    light_stop = np.zeros((n_lights, num_steps), dtype=bool)
    light_caution = np.zeros((n_lights, num_steps), dtype=bool)
    if tl is not None:
        light_stop = np.isin(tl.state, [int(x) for x in _STOP_STATES]) & tl.valid
        light_caution = np.isin(tl.state, [int(x) for x in _CAUTION_STATES]) & tl.valid
    route = _ego_route(xy[0], heading[0], valid[0], lanes, config)
    limits = np.full(0 if lanes is None else lanes.num_lanes, np.nan)
    raw = s.metadata.extras.get("lane_speed_limits_mps") if s.metadata.extras else None
    if isinstance(raw, dict) and lanes is not None:
        for i, lid in enumerate(lanes.lane_ids.tolist()):
            v = raw.get(str(lid))
            if isinstance(v, int | float):
                limits[i] = float(v)
    return SimScenario(
        scenario_id=sid,
        source=s.source,
        num_steps=num_steps,
        dt_s=config.dt_s,
        track_ids=tr.track_ids[order],
        object_type=otype,
        length_m=length,
        width_m=width,
        xy_m=np.where(valid[..., None], xy, 0.0),
        heading_rad=np.where(valid, heading, 0.0),
        speed_mps=speed,
        valid=valid,
        reactive_ok=reactive_ok,
        path_xy_m=path_xy,
        path_ok=path_ok,
        path_s_offset_m=s_off,
        path_lateral_m=lat_off,
        s0_m=s0,
        d0_m=d0,
        desired_speed_mps=desired,
        stop_s_m=stop_s,
        stop_light=stop_light,
        light_stop=light_stop,
        light_caution=light_caution,
        route_xy_m=route,
        lanes=lanes,
        scenario=s,
        lane_speed_limit_mps=limits,
        notes=notes,
    )


def _speed_along_heading(
    velocity: NDArrayFloat, xy: NDArrayFloat, heading: NDArrayFloat, valid: NDArrayBool, dt_s: float
) -> NDArrayFloat:
    """Signed speed along the heading: from velocities where known, else from position differences."""
    v = velocity[..., 0] * np.cos(heading) + velocity[..., 1] * np.sin(heading)
    diff = np.zeros_like(heading)
    step = np.diff(xy, axis=1)
    fwd = (step[..., 0] * np.cos(heading[:, :-1]) + step[..., 1] * np.sin(heading[:, :-1])) / dt_s
    both = valid[:, 1:] & valid[:, :-1]
    diff[:, :-1] = np.where(both, fwd, 0.0)
    diff[:, -1] = diff[:, -2] if diff.shape[1] > 1 else 0.0
    out: NDArrayFloat = np.where(np.isfinite(v), v, diff)
    return np.where(valid, out, 0.0)


def _build_paths(
    a: int,
    lane: int,
    s_on_lane: float,
    xy: NDArrayFloat,
    valid: NDArrayBool,
    lanes: LaneGraph,
    config: PrepareConfig,
    path_xy: NDArrayFloat,
    path_ok: NDArrayBool,
    s_off: NDArrayFloat,
    lat_off: NDArrayFloat,
    light_lanes: dict[int, int],
    stop_s: NDArrayFloat,
    stop_light: NDArrayInt,
) -> None:
    K, step = config.path_points, config.path_step_m
    future = xy[a][valid[a]]
    target = future[-1] if future.shape[0] else xy[a, 0]

    def toward_log(_cur: int, succ: list[int]) -> int:
        # the successor that passes nearest to where the agent was logged last
        d = [float(np.min(np.hypot(*(lanes.points[n] - target).T))) for n in succ]
        return succ[int(np.argmin(d))]

    own, starts = chain_path(lanes, lane, K * step, toward_log)
    path_xy[a, OWN_PATH] = resample_polyline(own, step, K)
    path_ok[a, OWN_PATH] = True
    _stops(a, OWN_PATH, starts, light_lanes, stop_s, stop_light)
    own_pts = path_xy[a, OWN_PATH]
    side = {OWN_PATH - 1: lanes.left[lane], OWN_PATH + 1: lanes.right[lane]}
    side2 = {
        OWN_PATH - 2: lanes.left[lanes.left[lane]] if lanes.left[lane] >= 0 else -1,
        OWN_PATH + 2: lanes.right[lanes.right[lane]] if lanes.right[lane] >= 0 else -1,
    }
    for p, nb in (*side.items(), *side2.items()):
        if nb < 0:
            continue
        # a neighbour pointing the other way is not a lane to change into
        seg = lanes.points[nb]
        hd = np.arctan2(*(seg[-1] - seg[0])[::-1])
        ho = np.arctan2(*(lanes.points[lane][-1] - lanes.points[lane][0])[::-1])
        if abs((hd - ho + np.pi) % (2 * np.pi) - np.pi) > np.pi / 2:
            continue

        def parallel(_cur: int, succ: list[int]) -> int:
            d = [
                float(np.min(np.hypot(*(lanes.points[n][:, None, :] - own_pts[None, ::8]).T).min()))
                for n in succ
            ]
            return succ[int(np.argmin(d))]

        pts, starts_nb = chain_path(lanes, nb, K * step + 50.0, parallel)
        # where the agent's own arc 0 sits on the neighbour: project own path's start onto it
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
        dd = np.hypot(*(pts - own_pts[0]).T)
        j = int(np.argmin(dd))
        offset = float(arc[j])
        resampled = resample_polyline(pts, step, K, start_m=offset)
        path_xy[a, p] = resampled
        path_ok[a, p] = True
        s_off[a, p] = 0.0  # resampled so that arc 0 of path p lies beside arc 0 of the own path
        h0 = np.arctan2(own_pts[1, 1] - own_pts[0, 1], own_pts[1, 0] - own_pts[0, 0])
        rel = resampled[min(int(s_on_lane / step), K - 1)] - own_pts[min(int(s_on_lane / step), K - 1)]
        lat_off[a, p] = float(-np.sin(h0) * rel[0] + np.cos(h0) * rel[1])
        _stops(a, p, [(ln, st - offset) for ln, st in starts_nb], light_lanes, stop_s, stop_light)


def _stops(
    a: int,
    p: int,
    starts: list[tuple[int, float]],
    light_lanes: dict[int, int],
    stop_s: NDArrayFloat,
    stop_light: NDArrayInt,
) -> None:
    k = 0
    for ln, st in starts:
        if ln in light_lanes and k < MAX_STOPS and st > 0.0:
            stop_s[a, p, k] = st
            stop_light[a, p, k] = light_lanes[ln]
            k += 1


def _on_drivable_polygon(s: Scenario, xy: NDArrayFloat) -> bool:
    from datadrive.sim.geometry import drivable_polygons, points_in_polygons

    polys = drivable_polygons(s)
    if polys is None:
        return False
    return bool(points_in_polygons(xy[None, :], *polys)[0])


def _ego_route(
    xy: NDArrayFloat,
    heading: NDArrayFloat,
    valid: NDArrayBool,
    lanes: LaneGraph | None,
    config: PrepareConfig,
) -> NDArrayFloat:
    """The ego's expert route as a 1 m polyline: its matched lane chain, else its logged path."""
    pts = xy[valid]
    logged = resample_polyline(pts, 1.0, max(2, int(_length(pts)) + 2)) if pts.shape[0] >= 2 else pts
    if lanes is None or pts.shape[0] < 2:
        return logged
    idx = np.flatnonzero(valid)[::5]
    m = lanes.match(xy[idx], heading[idx], max_distance_m=config.lane_match_m)
    seq: list[int] = []
    for ln in m.lane.tolist():
        if ln >= 0 and (not seq or seq[-1] != ln):
            seq.append(ln)
    if not seq or np.mean(m.lane >= 0) < 0.6:
        return logged
    chain = [lanes.points[seq[0]]]
    for prev, ln in itertools.pairwise(seq):
        if ln == prev:
            continue
        chain.append(lanes.points[ln])
    # continue past the expert's last lane so a policy that drives further still gains progress
    tail, _ = chain_path(lanes, seq[-1], float(lanes.lengths_m[seq[-1]]) + 60.0, lambda _c, s: s[0])
    chain.append(tail[len(lanes.points[seq[-1]]) :])
    route = np.concatenate([c for c in chain if c.shape[0]])
    return resample_polyline(route, 1.0, max(2, int(_length(route)) + 1))


def _length(pts: NDArrayFloat) -> float:
    return float(np.sum(np.hypot(*np.diff(pts[:, :2], axis=0).T))) if pts.shape[0] > 1 else 0.0


def half_width_default() -> float:
    return DEFAULT_HALF_WIDTH_M


def describe(s: SimScenario) -> dict[str, Any]:
    """A short summary (for logs and reports)."""
    return {
        "scenario_id": s.scenario_id,
        "agents": s.num_agents,
        "steps": s.num_steps,
        "reactive_ok": int(s.reactive_ok.sum()),
        "lanes": 0 if s.lanes is None else s.lanes.num_lanes,
        "notes": list(s.notes),
    }
