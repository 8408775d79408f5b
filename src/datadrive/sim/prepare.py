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
3. **Lanes and paths**: every vehicle valid at the first step is matched to a
   lane (heading-aware); a matched vehicle gets a path along its lane and
   successors (choosing at forks the successor nearest to its own logged
   future) and the paths of up to two lanes on each side (the neighbours'
   chains), so IDM/MOBIL can run along them. Paths are resampled every
   ``path_step_m`` from a start a little behind the agents that use them and
   kept once per scenario in a **pool** (agents on the same lane chain share
   one), with each agent's arc-length offset and lateral offset on each of its
   paths. The ego's **route** is the chain of lanes its logged trajectory
   follows (the expert route of nuPlan's progress metric), or the logged
   trajectory itself where no lane matches, from a little behind its start to
   100 m past the expert's last position, with a **profile** along it for the
   planner: the speed limit (NaN unknown), how far the drivable area reaches
   to each side, and red-light stop lines.

Bad input raises :class:`~datadrive.errors.SimulationInputError` naming the
scenario and the reason: no ego, a zero-length scenario (fewer than two grid
steps), NaN states, an ego that starts off the map.

Notation:
    A: agents kept (ego at row 0). T: grid steps. U: pooled paths. K: path points.
    P: parallel paths per agent (5: two left, own, two right). M: stop lines per path.
    L: traffic-light-controlled lanes. R: route points (1 m apart).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from datadrive.core.scenario import ObjectType, Scenario, Tracks, TrafficLights, TrafficLightState
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt, NDArrayStr
from datadrive.errors import SimulationInputError
from datadrive.sim.geometry import drivable_polygons
from datadrive.sim.lanes import DEFAULT_HALF_WIDTH_M, DrivableArea, LaneGraph, chain_path, resample_polyline

__all__ = ["NUM_PATHS", "OWN_PATH", "PrepareConfig", "SimScenario", "prepare", "resample"]

NUM_PATHS = 5
"""Parallel paths per agent: two lanes to the left, its own, two to the right."""
OWN_PATH = 2
"""Index of the agent's own lane among its parallel paths."""
MAX_STOPS = 4
_CROP_QUANTUM_M = 25.0  # path starts are multiples of this: agents close together share a path
_PROFILE_OFFSETS_M = np.arange(0.25, 6.01, 0.25)  # lateral samples of the route's drivable profile

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
        path_back_m: How far behind an agent its path starts (at least; starts are quantised).
        max_path_points: Longest path kept (points); beyond it a path continues straight.
        lane_match_m: Farthest an agent may be from a lane centerline and still follow it.
        max_steps: Cut scenarios to this many grid steps (``None``: all).
    """

    dt_s: float = 0.1
    max_gap_s: float = 0.35
    max_agents: int = 64
    path_step_m: float = 1.0
    path_back_m: float = 20.0
    max_path_points: int = 1024
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
        path_pool_xy_m: ``(U, K, 2)`` the scenario's distinct paths, ``path_step_m`` apart.
        path_id: ``(A, P)`` row of each agent's parallel paths in the pool, -1 none.
        path_s_offset_m: ``(A, P)`` arc length on path p of the point beside the agent's start.
        path_lateral_m: ``(A, P)`` lateral offset of path p from the own path (left positive).
        d0_m: ``(A,)`` initial lateral offset from the own path.
        desired_speed_mps: ``(A,)`` IDM desired speed.
        pool_stop_s_m: ``(U, M)`` arc lengths on each pooled path where a traffic light stops it (inf none).
        pool_stop_light: ``(U, M)`` row in the light arrays, -1 none.
        light_stop: ``(L, T)`` the light says stop; ``light_caution (L, T)``.
        route_xy_m: ``(R, 2)`` the ego's route polyline (1 m spacing).
        route_speed_limit_mps: ``(R,)`` speed limit along the route, NaN unknown.
        route_free_left_m, route_free_right_m: ``(R,)`` how far the drivable area reaches to the left and
            right of the route centerline (0.25 m steps, at most 6 m).
        route_stop_s_m: ``(M,)`` arc lengths on the route of traffic-light stop lines (inf none);
            ``route_stop_light (M,)`` their light rows.
        lanes: The map's lane graph.
        drivable: The map's drivable area (lanes and drivable polygons).
        scenario: The resampled scenario (map, metadata) for metrics and renders.
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
    path_pool_xy_m: NDArrayFloat
    path_id: NDArrayInt
    path_s_offset_m: NDArrayFloat
    path_lateral_m: NDArrayFloat
    d0_m: NDArrayFloat
    desired_speed_mps: NDArrayFloat
    pool_stop_s_m: NDArrayFloat
    pool_stop_light: NDArrayInt
    light_stop: NDArrayBool
    light_caution: NDArrayBool
    route_xy_m: NDArrayFloat
    route_speed_limit_mps: NDArrayFloat
    route_free_left_m: NDArrayFloat
    route_free_right_m: NDArrayFloat
    route_stop_s_m: NDArrayFloat
    route_stop_light: NDArrayInt
    lanes: LaneGraph
    drivable: DrivableArea
    scenario: Scenario
    notes: list[str] = field(default_factory=list)

    @property
    def num_agents(self) -> int:
        return int(self.track_ids.shape[0])

    @property
    def path_ok(self) -> NDArrayBool:
        """``(A, P)`` the agent has path p."""
        out: NDArrayBool = self.path_id >= 0
        return out

    @property
    def s0_m(self) -> NDArrayFloat:
        """``(A,)`` the agent's initial arc length on its own path."""
        out: NDArrayFloat = self.path_s_offset_m[:, OWN_PATH]
        return out

    @property
    def lane_speed_limit_mps(self) -> NDArrayFloat:
        """``(F_lanes,)`` speed limit per lane of :attr:`lanes`, NaN unknown."""
        return self.lanes.speed_limit_mps


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


def _cut(s: Scenario, steps: int) -> Scenario:
    tr = s.tracks
    tracks = Tracks(
        tr.track_ids,
        tr.object_type,
        tr.category,
        tr.xy_m[:, :steps],
        tr.z_m[:, :steps],
        tr.heading_rad[:, :steps],
        tr.velocity_mps[:, :steps],
        tr.size_m,
        tr.valid[:, :steps],
    )
    tl = s.traffic_lights
    if tl is not None:
        tl = TrafficLights(tl.lane_ids, tl.state[:, :steps], tl.stop_point_m, tl.valid[:, :steps])
    return replace(s, timestamps_ns=s.timestamps_ns[:steps], tracks=tracks, traffic_lights=tl)


def prepare(scenario: Scenario, config: PrepareConfig = PrepareConfig()) -> SimScenario:
    """Resample, select agents, match lanes and build paths and the route (see the module docstring).

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
    if config.max_steps is not None and s.num_steps > config.max_steps:
        s = _cut(s, config.max_steps)
    tr = s.tracks
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
    m = s.map
    if m is None:
        raise SimulationInputError(sid, "the scenario has no map")
    lanes = LaneGraph(m)
    if lanes.num_lanes == 0:
        raise SimulationInputError(sid, "the map has no lanes")
    drivable = DrivableArea(lanes, drivable_polygons(s))
    # agents: ego first, then nearest at their first valid step (tracks never valid are dropped)
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
    # no vehicle is wider than long: such a box has its sides swapped (ScenarioNet's nuScenes
    # conversions store the ego so); the simulator needs the physical box
    swapped = (otype == ObjectType.VEHICLE) & (width > length * 1.2)
    length, width = np.where(swapped, width, length), np.where(swapped, length, width)
    speed = _speed_along_heading(tr.velocity_mps[order], xy, heading, valid, config.dt_s)
    observed = np.where(valid, np.abs(speed), 0.0)
    desired = np.maximum(np.max(observed, axis=1) * 1.1, 5.0)

    light_lanes: dict[int, int] = {}
    tl = s.traffic_lights
    if tl is not None:
        by_id = {str(x): i for i, x in enumerate(lanes.lane_ids.tolist())}
        for row, lid in enumerate(tl.lane_ids.tolist()):
            if str(lid) in by_id:
                light_lanes[by_id[str(lid)]] = row
    duration_s = (num_steps - 1) * config.dt_s
    travel_m = float(desired.max()) * duration_s  # as far as the fastest agent can drive
    pool = _PathPool(lanes, config.path_step_m, light_lanes)
    d0 = np.zeros(A)
    notes: list[str] = []
    if swapped.any():
        notes.append(f"{int(swapped.sum())} vehicle box(es) wider than long: length and width swapped")
    cand = valid[:, 0] & (otype == ObjectType.VEHICLE)
    match = lanes.match(xy[:, 0], heading[:, 0], max_distance_m=config.lane_match_m)
    for a in np.flatnonzero(cand & (match.lane >= 0)).tolist():
        target = xy[a][valid[a]][-1]
        _agent_paths(pool, a, int(match.lane[a]), float(match.s_m[a]), xy[a, 0], target, travel_m + 80.0)
        d0[a] = match.lateral_m[a]
    pool_xy, pool_stop_s, pool_stop_light, path_id, s_off, lat_off = pool.build(
        travel_m, config.path_back_m, config.max_path_points, A
    )
    if path_id[0, OWN_PATH] < 0:
        m0 = lanes.match(xy[:1, 0], None, max_distance_m=10.0)
        if m0.lane[0] < 0 and not (drivable.excess(xy[:1, 0])[0][0] <= 0):
            raise SimulationInputError(
                sid, "agent off the map: the ego starts more than 10 m from every lane"
            )
        notes.append("the ego matches no lane in its direction of travel")
    if lanes.num_lanes > 1 and not any(lanes.successors):
        notes.append(f"disconnected lanes: none of the {lanes.num_lanes} lanes has a successor")
    n_lights = 0 if tl is None else int(tl.lane_ids.shape[0])
    light_stop = np.zeros((n_lights, num_steps), dtype=bool)
    light_caution = np.zeros((n_lights, num_steps), dtype=bool)
    if tl is not None:
        light_stop = np.isin(tl.state, [int(x) for x in _STOP_STATES]) & tl.valid
        light_caution = np.isin(tl.state, [int(x) for x in _CAUTION_STATES]) & tl.valid
    route, route_starts = _ego_route(xy[0], heading[0], valid[0], lanes, config)
    route_stop_s = np.full(MAX_STOPS, np.inf)
    route_stop_light = np.full(MAX_STOPS, -1, dtype=np.int64)
    _stops(route_starts, light_lanes, route_stop_s, route_stop_light)
    limit, free_left, free_right = _route_profile(route, lanes, drivable)
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
        reactive_ok=path_id[:, OWN_PATH] >= 0,
        path_pool_xy_m=pool_xy,
        path_id=path_id,
        path_s_offset_m=s_off,
        path_lateral_m=lat_off,
        d0_m=d0,
        desired_speed_mps=desired,
        pool_stop_s_m=pool_stop_s,
        pool_stop_light=pool_stop_light,
        light_stop=light_stop,
        light_caution=light_caution,
        route_xy_m=route,
        route_speed_limit_mps=limit,
        route_free_left_m=free_left,
        route_free_right_m=free_right,
        route_stop_s_m=route_stop_s,
        route_stop_light=route_stop_light,
        lanes=lanes,
        drivable=drivable,
        scenario=s,
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


# --------------------------------------------------------------------------- paths


@dataclass
class _Request:
    """An agent's wish for a path: a lane chain, and where along it the agent stands."""

    agent: int
    slot: int  # which of the agent's parallel paths
    pts: NDArrayFloat
    starts: list[tuple[int, float]]
    arc_m: float
    lateral_m: float


class _PathPool:
    """A scenario's distinct paths: one per lane chain and stretch of it that agents stand on.

    Agents on the same chain share a path resampled from a little behind the
    rearmost of them; a chain whose agents spread further than one path can
    hold gets several paths.
    """

    def __init__(self, lanes: LaneGraph, step_m: float, light_lanes: dict[int, int]) -> None:
        self.lanes, self.step_m, self.light_lanes = lanes, step_m, light_lanes
        self.requests: list[_Request] = []

    def build(
        self, travel_m: float, back_m: float, max_points: int, A: int
    ) -> tuple[NDArrayFloat, NDArrayFloat, NDArrayInt, NDArrayInt, NDArrayFloat, NDArrayFloat]:
        """Pooled paths and stops, and per agent ``(A, P)`` path rows, arc offsets, lateral offsets."""
        path_id = np.full((A, NUM_PATHS), -1, dtype=np.int64)
        s_off = np.zeros((A, NUM_PATHS))
        lat_off = np.zeros((A, NUM_PATHS))
        ahead = travel_m + 30.0  # what a path must hold beyond its frontmost agent
        span = max(max_points * self.step_m - ahead - back_m - _CROP_QUANTUM_M, _CROP_QUANTUM_M)
        by_chain: dict[tuple[int, ...], list[_Request]] = {}
        for r in self.requests:
            by_chain.setdefault(tuple(ln for ln, _ in r.starts), []).append(r)
        groups: list[tuple[float, float, list[_Request]]] = []
        for reqs in by_chain.values():
            reqs.sort(key=lambda r: r.arc_m)
            k = 0
            while k < len(reqs):
                first = reqs[k].arc_m
                group = [r for r in reqs[k:] if r.arc_m <= first + span]
                k += len(group)
                crop = _crop(first, back_m)
                groups.append((crop, group[-1].arc_m - crop + ahead, group))
        length = max((g[1] for g in groups), default=2.0)
        K = int(min(max_points, math.ceil(length / self.step_m) + 1))
        points, stop_s, stop_light = [], [], []
        for row, (crop, _, group) in enumerate(groups):
            chain = max(group, key=lambda r: r.pts.shape[0])  # the longest of the (equal-lane) chains
            points.append(resample_polyline(chain.pts, self.step_m, K, start_m=crop))
            st = np.full(MAX_STOPS, np.inf)
            sl = np.full(MAX_STOPS, -1, dtype=np.int64)
            _stops([(ln, a - crop) for ln, a in chain.starts], self.light_lanes, st, sl)
            stop_s.append(st)
            stop_light.append(sl)
            for r in group:
                path_id[r.agent, r.slot] = row
                s_off[r.agent, r.slot] = r.arc_m - crop
                lat_off[r.agent, r.slot] = r.lateral_m
        if not points:
            empty = np.zeros((0, MAX_STOPS))
            return np.zeros((0, 2, 2)), empty, empty.astype(np.int64), path_id, s_off, lat_off
        return np.stack(points), np.stack(stop_s), np.stack(stop_light), path_id, s_off, lat_off


def _crop(s_m: float, back_m: float) -> float:
    return max(0.0, math.floor((s_m - back_m) / _CROP_QUANTUM_M) * _CROP_QUANTUM_M)


def _project(pts: NDArrayFloat, p: NDArrayFloat) -> tuple[float, NDArrayFloat, NDArrayFloat]:
    """Arc length of the foot of ``p`` on polyline ``pts``, the foot, and the segment's unit direction."""
    a, b = pts[:-1], pts[1:]
    d = b - a
    l2 = np.einsum("ij,ij->i", d, d)
    t = np.clip(np.einsum("ij,ij->i", p - a, d) / np.where(l2 > 0, l2, 1.0), 0.0, 1.0)
    foot = a + t[:, None] * d
    j = int(np.argmin(np.hypot(*(foot - p).T)))
    arc = float(np.sum(np.sqrt(l2[:j])) + t[j] * math.sqrt(l2[j]))
    return arc, foot[j], d[j] / max(math.sqrt(l2[j]), 1e-9)


def _agent_paths(
    pool: _PathPool,
    a: int,
    lane: int,
    s_on_lane: float,
    start_xy: NDArrayFloat,
    target: NDArrayFloat,
    length_m: float,
) -> None:
    """Agent ``a``'s own path and its neighbours' (see the module docstring), as requests to the pool."""
    lanes = pool.lanes

    def toward_log(_cur: int, succ: list[int]) -> int:
        # the successor that passes nearest to where the agent was logged last
        d = [float(np.min(np.hypot(*(lanes.points[n] - target).T))) for n in succ]
        return succ[int(np.argmin(d))]

    own, starts = chain_path(lanes, lane, s_on_lane + length_m, toward_log)
    pool.requests.append(_Request(a, OWN_PATH, own, starts, s_on_lane, 0.0))
    _, own_foot, own_dir = _project(own, start_xy)
    left1, right1 = lanes.left[lane], lanes.right[lane]
    sides = {
        OWN_PATH - 1: left1,
        OWN_PATH + 1: right1,
        OWN_PATH - 2: lanes.left[left1] if left1 >= 0 else -1,
        OWN_PATH + 2: lanes.right[right1] if right1 >= 0 else -1,
    }
    ho = np.arctan2(*(lanes.points[lane][-1] - lanes.points[lane][0])[::-1])
    sample = own[:: max(1, own.shape[0] // 32)]
    for p, nb in sides.items():
        if nb < 0:
            continue
        # a neighbour pointing the other way is not a lane to change into
        seg = lanes.points[nb]
        hd = np.arctan2(*(seg[-1] - seg[0])[::-1])
        if abs((hd - ho + np.pi) % (2 * np.pi) - np.pi) > np.pi / 2:
            continue

        def parallel(_cur: int, succ: list[int]) -> int:
            d = [float(np.min(np.hypot(*(lanes.points[n][:, None, :] - sample[None]).T))) for n in succ]
            return succ[int(np.argmin(d))]

        arc0 = _project(seg, start_xy)[0] if seg.shape[0] >= 2 else 0.0
        pts, starts_nb = chain_path(lanes, nb, arc0 + length_m + 50.0, parallel)
        arc, foot, _ = _project(pts, start_xy)
        rel = foot - own_foot
        lateral = float(-own_dir[1] * rel[0] + own_dir[0] * rel[1])
        pool.requests.append(_Request(a, p, pts, starts_nb, arc, lateral))


def _stops(
    starts: list[tuple[int, float]], light_lanes: dict[int, int], stop_s: NDArrayFloat, stop_light: NDArrayInt
) -> None:
    """Stop lines (the start of each light-controlled lane of a chain) into ``stop_s`` / ``stop_light``."""
    k = 0
    for ln, st in starts:
        if ln in light_lanes and k < stop_s.shape[0] and st > 0.0:
            stop_s[k] = st
            stop_light[k] = light_lanes[ln]
            k += 1


# --------------------------------------------------------------------------- the ego's route


def _ego_route(
    xy: NDArrayFloat,
    heading: NDArrayFloat,
    valid: NDArrayBool,
    lanes: LaneGraph,
    config: PrepareConfig,
) -> tuple[NDArrayFloat, list[tuple[int, float]]]:
    """The ego's expert route as a 1 m polyline (see the module docstring) and its lanes' start arcs.

    The lanes the expert drives on (matched every 0.5 s) become pieces of lane: a lane continues into
    its successor at its end; a change to a lane that does not succeed it (a lane change, an
    overlapping lane in a junction) cuts the first lane where the expert left it and joins the second
    where the expert entered it, so the route never runs backwards.
    """
    pts = xy[valid]
    starts: list[tuple[int, float]] = []
    full = pts
    if pts.shape[0] >= 2:
        idx = np.flatnonzero(valid)[::5]
        m = lanes.match(xy[idx], heading[idx], max_distance_m=config.lane_match_m)
        if np.mean(m.lane >= 0) >= 0.6:
            pieces: list[list[float]] = []  # [lane, from arc, to arc] (the lane as a float)
            for k in np.flatnonzero(m.lane >= 0).tolist():
                ln, s = float(m.lane[k]), float(m.s_m[k])
                if not pieces:
                    pieces.append([ln, s, s])
                elif pieces[-1][0] == ln:
                    pieces[-1][2] = max(pieces[-1][2], s)
                elif int(ln) in lanes.successors[int(pieces[-1][0])]:
                    pieces[-1][2] = float(lanes.lengths_m[int(pieces[-1][0])])
                    pieces.append([ln, 0.0, s])
                else:
                    pieces.append([ln, s, s])
            # continue past the expert's last lane so a policy that drives further still gains progress
            last = int(pieces[-1][0])
            pieces[-1][2] = float(lanes.lengths_m[last])
            nxt = last
            for _ in range(8):
                succ = lanes.successors[nxt]
                if not succ or sum(p[2] - p[1] for p in pieces) > 1e4:
                    break
                nxt = succ[0]
                pieces.append([float(nxt), 0.0, float(lanes.lengths_m[nxt])])
            chain, total = [], 0.0
            for ln, a, b in pieces:
                seg = _slice(lanes.points[int(ln)], a, b)
                if seg.shape[0] < 2:
                    continue
                starts.append((int(ln), total - a))
                chain.append(seg)
                total += _length(seg)
            if chain:
                full = np.concatenate(chain)
    if full.shape[0] < 2 or _length(full) < 1e-3:
        base = xy[0] if not pts.shape[0] else pts[0]
        return np.repeat(base[None], 2, axis=0), []
    # from a little behind the ego's start to 100 m past the expert's last position
    s_start = _project(full, xy[0])[0]
    s_end = _project(full, pts[-1])[0] if pts.shape[0] >= 2 else s_start
    crop = max(0.0, s_start - config.path_back_m)
    # 100 m past the expert's end, but never past the mapped lanes (the map ends there)
    end = min(max(s_end, s_start) + 100.0, max(_length(full), max(s_end, s_start) + 1.0))
    n = max(2, int(end - crop) + 1)
    route = resample_polyline(full, 1.0, n, start_m=crop)
    return route, [(ln, a - crop) for ln, a in starts]


def _slice(pts: NDArrayFloat, a: float, b: float) -> NDArrayFloat:
    """The part of a polyline between arc lengths ``a`` and ``b`` (interpolated ends)."""
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
    a, b = max(0.0, a), min(float(arc[-1]), b)
    if b <= a:
        return pts[:0]
    inner = pts[(arc > a) & (arc < b)]
    ends = np.stack([np.interp([a, b], arc, pts[:, 0]), np.interp([a, b], arc, pts[:, 1])], axis=1)
    return np.concatenate([ends[:1], inner, ends[1:]])


def _route_profile(
    route: NDArrayFloat, lanes: LaneGraph, drivable: DrivableArea
) -> tuple[NDArrayFloat, NDArrayFloat, NDArrayFloat]:
    """``(R,)`` speed limit, drivable reach to the left and to the right of the route centerline."""
    R = route.shape[0]
    d = np.gradient(route, axis=0) if R >= 2 else np.zeros_like(route)
    heading = np.arctan2(d[:, 1], d[:, 0])
    m = lanes.match(route, heading, max_distance_m=3.0)
    limit = np.where(m.lane >= 0, lanes.speed_limit_mps[np.maximum(m.lane, 0)], np.nan)
    # sample every 2nd route point at 0.25 m lateral steps; the reach is the last offset before a gap
    rows = np.arange(0, R, 2)
    normal = np.stack([-np.sin(heading[rows]), np.cos(heading[rows])], axis=1)
    offs = _PROFILE_OFFSETS_M
    out = []
    for sign in (1.0, -1.0):
        q = route[rows][:, None, :] + sign * offs[None, :, None] * normal[:, None, :]
        excess, _ = drivable.excess(q.reshape(-1, 2))
        ok = (excess <= 0.0).reshape(rows.size, offs.size)
        first_bad = np.where(ok.all(axis=1), offs.size, np.argmin(ok, axis=1))
        reach = np.where(first_bad > 0, offs[np.maximum(first_bad - 1, 0)], 0.0)
        full = np.repeat(reach, 2)[:R]
        out.append(full)
    return limit, out[0], out[1]


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
        "lanes": s.lanes.num_lanes,
        "paths": int(s.path_pool_xy_m.shape[0]),
        "route_points": int(s.route_xy_m.shape[0]),
        "notes": list(s.notes),
    }
