"""The batched closed-loop simulator: state arrays over (scenarios, agents), a fixed step.

One :class:`SimBatch` holds up to ``S`` prepared scenarios, padded to the
same number of agents ``A`` and steps ``T``, as arrays of one
:class:`~datadrive.sim.backend.Backend` (numpy, or torch on a device). The
:class:`Simulator` steps all of them at once:

* **the ego** (row 0 of every scenario) is driven by a policy's action
  through a kinematic bicycle model referenced at the centre of gravity
  (Kong et al., 2015; the same model highway-env integrates), explicit Euler:
  ``beta = atan(lr / (lf + lr) * tan(delta))``,
  ``x += v cos(h + beta) dt``, ``y += v sin(h + beta) dt``,
  ``h += v / lr * sin(beta) dt``, ``v += a dt``; or teleported to a pose
  (log replay);
* **reactive agents** (``reactive=True``; vehicles that start on a lane)
  drive along lane centerline paths: IDM (Treiber, Hennecke & Helbing, 2000)
  along the path, with the nearest agent ahead in the lane (or a red light's
  stop line) as the leader; MOBIL (Kesting, Treiber & Helbing, 2007) lane
  changes to the parallel paths, decided every ``lane_change_period_s`` (each
  step only the agents due decide, gathered into one small array), the
  lateral offset relaxing to the new lane's centre with time constant
  ``lateral_time_constant_s``. Leaders and followers are searched among each
  agent's ``neighbors`` nearest agents (the broad phase: an all-pairs distance
  once per ``neighbor_period_s``), so a step costs ``S x A x N``, not ``S x A x A``;
* **everything else** replays its log (non-reactive), appearing and
  disappearing with its valid mask.

Determinism: the only random draw (each agent's phase in the lane-change
period) comes from the seed, so a run is a function of (scenarios, policy,
config, seed).

Notation:
    S: scenarios in the batch. A: agents (ego at 0). T: steps. N: neighbours watched per agent.
    P: parallel paths per agent. U: pooled paths. K: points per path. M: stop lines per path.
    L: traffic lights. R: route points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from datadrive.core.scenario import ObjectType
from datadrive.core.typing import NDArrayBool, NDArrayFloat
from datadrive.sim.backend import Array, Backend, NumpyBackend
from datadrive.sim.prepare import NUM_PATHS, OWN_PATH, SimScenario

if TYPE_CHECKING:
    from datadrive.sim.policies import Action, Policy

__all__ = [
    "IdmParams",
    "MobilParams",
    "Observation",
    "Rollout",
    "SimBatch",
    "SimConfig",
    "Simulator",
    "idm_accel",
]


@dataclass(frozen=True)
class IdmParams:
    """Intelligent Driver Model parameters (Treiber's notation).

    Attributes:
        a_max_mps2: Maximum acceleration ``a``.
        b_comf_mps2: Comfortable deceleration ``b`` (positive).
        time_headway_s: Desired time gap ``T``.
        s0_m: Jam distance ``s0`` (bumper to bumper).
        delta: Free-road exponent.
        clamp_desired_gap: ``s* = s0 + max(0, vT + v dv / 2 sqrt(ab))`` (Treiber) when
            True; without the ``max`` (highway-env's form) when False.
        a_min_mps2: Hardest braking the model may command (negative).
        gap_reference: ``"bumper"``: the gap is bumper to bumper (Treiber); ``"center"``:
            centre to centre (highway-env's convention, with ``s0`` then including a length).
    """

    a_max_mps2: float = 1.0
    b_comf_mps2: float = 1.5
    time_headway_s: float = 1.5
    s0_m: float = 2.0
    delta: float = 4.0
    clamp_desired_gap: bool = True
    a_min_mps2: float = -9.0
    gap_reference: str = "bumper"


@dataclass(frozen=True)
class MobilParams:
    """MOBIL lane-change parameters (Kesting et al.; highway-env's defaults).

    Attributes:
        politeness: ``p`` in [0, 1].
        gain_threshold_mps2: ``a_th``, the least advantage worth a change.
        safe_braking_mps2: ``b_safe``, the hardest braking a change may impose on the new follower.
        enabled: Lane changes at all.
    """

    politeness: float = 0.0
    gain_threshold_mps2: float = 0.2
    safe_braking_mps2: float = 2.0
    enabled: bool = True


@dataclass(frozen=True)
class SimConfig:
    """How the simulator steps.

    Attributes:
        dt_s: The fixed step.
        reactive: Reactive agents (IDM/MOBIL) instead of log replay for vehicles on lanes.
        idm, mobil: Parameters of the reactive agents.
        lane_change_period_s: How often an agent considers a lane change.
        lateral_time_constant_s: How fast the lateral offset relaxes after a change.
        lane_half_width_m: Half width of the corridor in which another agent counts as in the lane.
        wheelbase_ratio: Ego wheelbase as a fraction of its length (0.6: a Chrysler Pacifica, nuPlan's ego).
        max_steer_rad: Steering limit of the ego.
        accel_limits_mps2: Acceleration limits of the ego (min, max).
        neighbors: How many nearest agents each agent watches (its leader, followers, the lanes beside).
            With at most that many other agents in a scenario, every agent watches every other.
        neighbor_period_s: How often the nearest-agent lists are rebuilt (from positions now and at the
            end of the period, so agents about to appear are included).
        seed: Seed of the random draws.
    """

    dt_s: float = 0.1
    reactive: bool = False
    idm: IdmParams = field(default_factory=IdmParams)
    mobil: MobilParams = field(default_factory=MobilParams)
    lane_change_period_s: float = 1.0
    lateral_time_constant_s: float = 0.8
    lane_half_width_m: float = 1.8
    wheelbase_ratio: float = 0.6
    max_steer_rad: float = 0.7
    accel_limits_mps2: tuple[float, float] = (-9.0, 4.0)
    neighbors: int = 16
    neighbor_period_s: float = 1.0
    seed: int = 0


def _pad_last(a: NDArrayFloat, K: int) -> NDArrayFloat:
    """``(..., k, 2)`` paths continued straight (along their last segment) to ``K`` points."""
    k = a.shape[-2]
    if k >= K:
        return a
    step = a[..., -1:, :] - a[..., -2:-1, :]
    extra = a[..., -1:, :] + step * np.arange(1, K - k + 1)[:, None]
    return np.concatenate([a, extra], axis=-2)


class SimBatch:
    """Prepared scenarios packed into padded backend arrays (see the module docstring for shapes).

    Args:
        scenarios: Up to S prepared scenarios.
        xp: The backend that holds the arrays.
    """

    def __init__(self, scenarios: Sequence[SimScenario], xp: Backend) -> None:
        self.xp = xp
        self.scenarios = list(scenarios)
        sc = self.scenarios
        S = len(sc)
        A = max(s.num_agents for s in sc)
        T = max(s.num_steps for s in sc)
        P = NUM_PATHS
        U = max(1, max(s.path_pool_xy_m.shape[0] for s in sc))
        K = max(2, max(s.path_pool_xy_m.shape[1] for s in sc))
        M = sc[0].pool_stop_s_m.shape[1]
        L = max(1, max(s.light_stop.shape[0] for s in sc))
        R = max(s.route_xy_m.shape[0] for s in sc)
        self.shape = (S, A, T)
        self.num_paths, self.path_points, self.num_pool = P, K, U
        self.path_step_m = 1.0
        self.dt_s = sc[0].dt_s

        def pad(name: str, shape: tuple[int, ...], fill: float | bool | int, dtype: Any) -> Any:
            out = np.full(shape, fill, dtype=dtype)
            for i, s in enumerate(sc):
                v = getattr(s, name)
                out[(i, *[slice(0, int(d)) for d in v.shape])] = v  # type: ignore[index]
            return out

        f, b, i64 = np.float64, np.bool_, np.int64
        log_xy = pad("xy_m", (S, A, T, 2), 0.0, f)
        self.log_x, self.log_y = xp.asarray(log_xy[..., 0]), xp.asarray(log_xy[..., 1])
        self.log_heading = xp.asarray(pad("heading_rad", (S, A, T), 0.0, f))
        self.log_speed = xp.asarray(pad("speed_mps", (S, A, T), 0.0, f))
        self.log_valid_np = pad("valid", (S, A, T), False, b)
        self.log_valid = xp.asarray(self.log_valid_np, "bool")
        self.length = xp.asarray(pad("length_m", (S, A), 1.0, f))
        self.width = xp.asarray(pad("width_m", (S, A), 1.0, f))
        self.object_type = xp.asarray(pad("object_type", (S, A), int(ObjectType.OTHER), i64), "int")
        agent = np.zeros((S, A), dtype=bool)
        steps = np.zeros(S, dtype=np.int64)
        for k, s in enumerate(sc):
            agent[k, : s.num_agents] = True
            steps[k] = s.num_steps
        self.agent_mask_np = agent
        self.agent_mask = xp.asarray(agent, "bool")
        self.num_steps_np = steps
        self.reactive_ok = xp.asarray(pad("reactive_ok", (S, A), False, b), "bool")
        # the path pools, flat per scenario: point k of pooled path u is column u * K + k
        # x, y, heading in one (3, S, U, K) table (one gather per step); pool_x/y/heading are its rows
        # built in the backend's float dtype, each scenario's headings computed in float64 and rounded
        # once on assignment (the values a float64 table converted afterwards would hold, without
        # writing and converting a float64 table of every scenario's paths); padding rows stay 0
        table = np.zeros((3, S, U, K), dtype=xp.numpy_float)
        for k, s in enumerate(sc):
            u = s.path_pool_xy_m.shape[0]
            if u:
                path = _pad_last(np.asarray(s.path_pool_xy_m, dtype=np.float64), K)
                table[0, k, :u], table[1, k, :u] = path[..., 0], path[..., 1]
                heading = np.arctan2(np.diff(path[..., 1], axis=1), np.diff(path[..., 0], axis=1))
                table[2, k, :u, :-1] = heading
                table[2, k, :u, -1] = heading[:, -1]
        self.pool_table = xp.asarray(table.reshape(3, S * U * K))
        self.pool_x = self.pool_table[0].reshape(S, U * K)
        self.pool_y = self.pool_table[1].reshape(S, U * K)
        self.pool_heading = self.pool_table[2].reshape(S, U * K)
        self.pool_base = xp.asarray((np.arange(S) * (U * K))[:, None], "int")
        pid = pad("path_id", (S, A, P), -1, i64)
        self.path_ok = xp.asarray(pid >= 0, "bool")
        self.path_id = xp.asarray(np.maximum(pid, 0), "int")
        self.path_s_offset = xp.asarray(pad("path_s_offset_m", (S, A, P), 0.0, f))
        self.path_lateral = xp.asarray(pad("path_lateral_m", (S, A, P), 0.0, f))
        self.d0 = xp.asarray(pad("d0_m", (S, A), 0.0, f))
        self.desired_speed = xp.asarray(pad("desired_speed_mps", (S, A), 10.0, f))
        stop_s = np.minimum(pad("pool_stop_s_m", (S, U, M), np.inf, f), 1e9)
        self.pool_stop_s = xp.asarray(stop_s.reshape(S, U * M))
        self.pool_stop_light = xp.asarray(pad("pool_stop_light", (S, U, M), -1, i64).reshape(S, U * M), "int")
        self.num_stops = M
        self.light_stop = xp.asarray(pad("light_stop", (S, L, T), False, b), "bool")
        self.light_caution = xp.asarray(pad("light_caution", (S, L, T), False, b), "bool")
        # no light is ever red or amber in the batch: the agents' light checks can be skipped
        self.any_light_np = bool(any(s.light_stop.any() or s.light_caution.any() for s in sc))
        # the egos' routes, padded by repeating the last point; profile arrays along them
        route = np.zeros((S, R, 2))
        route_len = np.zeros(S, dtype=np.int64)
        for k, s in enumerate(sc):
            r = s.route_xy_m
            route[k, : r.shape[0]] = r
            route[k, r.shape[0] :] = r[-1]
            route_len[k] = r.shape[0]
        dr = np.diff(route, axis=1)
        rh = np.arctan2(dr[..., 1], dr[..., 0])
        rh = np.concatenate([rh, rh[:, -1:]], axis=1)
        for k in range(S):  # past a route's end it keeps its last direction
            rh[k, max(route_len[k] - 1, 0) :] = rh[k, max(route_len[k] - 2, 0)]
        self.route_np = route
        self.route_len_np = route_len
        self.route_xy = xp.asarray(route)
        self.route_x = xp.asarray(route[..., 0])
        self.route_y = xp.asarray(route[..., 1])
        self.route_heading = xp.asarray(rh)
        self.route_len = xp.asarray(route_len, "int")
        self.route_speed_limit = xp.asarray(pad("route_speed_limit_mps", (S, R), np.nan, f))
        self.route_free_left = xp.asarray(pad("route_free_left_m", (S, R), 0.0, f))
        self.route_free_right = xp.asarray(pad("route_free_right_m", (S, R), 0.0, f))
        self.route_stop_s = xp.asarray(np.minimum(pad("route_stop_s_m", (S, M), np.inf, f), 1e9))
        self.route_stop_light = xp.asarray(pad("route_stop_light", (S, M), -1, i64), "int")


@dataclass
class Observation:
    """What a policy sees at one step (backend arrays, world frame).

    Attributes:
        step: Index of the current step; ``time_s`` its time from the start.
        ego_x_m, ego_y_m, ego_heading_rad, ego_speed_mps: ``(S,)`` the ego's state.
        ego_length_m, ego_width_m: ``(S,)``.
        agents_x_m, agents_y_m, agents_heading_rad, agents_speed_mps: ``(S, A)`` all agents (0: ego).
        agents_valid: ``(S, A)`` present now (padding and absent agents False; the ego False).
        agents_length_m, agents_width_m: ``(S, A)``; ``agents_type (S, A)`` :class:`ObjectType` codes.
        route_xy_m: ``(S, R, 2)`` the ego's route.
        neighbors: ``(S, A, N)`` indices of each agent's nearest agents (the simulator's broad phase);
            ``neighbors_ok (S, A, N)`` which entries are real.
        batch: The batch (static scenario data: the log, the map) for policies that need more.
    """

    step: int
    time_s: float
    ego_x_m: Array
    ego_y_m: Array
    ego_heading_rad: Array
    ego_speed_mps: Array
    ego_length_m: Array
    ego_width_m: Array
    agents_x_m: Array
    agents_y_m: Array
    agents_heading_rad: Array
    agents_speed_mps: Array
    agents_valid: Array
    agents_length_m: Array
    agents_width_m: Array
    agents_type: Array
    route_xy_m: Array
    neighbors: Array
    neighbors_ok: Array
    batch: SimBatch


@dataclass
class Rollout:
    """The simulated states of a batch, on the CPU (numpy).

    Attributes:
        x_m, y_m, heading_rad, speed_mps: ``(S, A, T)``.
        valid: ``(S, A, T)`` the agent exists at that step.
        reactive: ``(S, A)`` driven by IDM/MOBIL.
        accel_mps2: ``(S, T)`` the ego's applied longitudinal acceleration.
        num_steps: ``(S,)`` steps of each scenario (the rest of T is padding).
        lane_changes: ``(S,)`` lane changes the reactive agents made.
    """

    x_m: NDArrayFloat
    y_m: NDArrayFloat
    heading_rad: NDArrayFloat
    speed_mps: NDArrayFloat
    valid: NDArrayBool
    reactive: NDArrayBool
    accel_mps2: NDArrayFloat
    num_steps: Any
    lane_changes: Any


def idm_accel(
    xp: Backend, v: Array, v0: Array, gap: Array, dv: Array, has_leader: Array, p: IdmParams
) -> Array:
    """IDM acceleration.

    Args:
        v: Own speed. v0: Desired speed. gap: Bumper-to-bumper gap to the leader.
        dv: Approach rate ``v - v_leader``. has_leader: Whether there is a leader.
    """
    free = 1.0 - (xp.maximum(v, 0.0) / xp.maximum(v0, 0.1)) ** p.delta
    dyn = v * p.time_headway_s + v * dv / (2.0 * float(np.sqrt(p.a_max_mps2 * p.b_comf_mps2)))
    if p.clamp_desired_gap:
        dyn = xp.maximum(dyn, 0.0)
    s_star = p.s0_m + dyn
    inter = (s_star / xp.maximum(gap, 0.01)) ** 2
    a = p.a_max_mps2 * (free - xp.where(has_leader, inter, 0.0))
    return xp.clip(a, p.a_min_mps2, p.a_max_mps2)


_BIG = 1e9


class Simulator:
    """Steps batches of scenarios (see the module docstring).

    Args:
        config: How to step.
        xp: Backend (default numpy); ``backend_for("cuda")`` runs the same code on a GPU.
    """

    def __init__(self, config: SimConfig = SimConfig(), xp: Backend | None = None) -> None:
        self.config = config
        self.xp = xp or NumpyBackend()

    def batch(self, scenarios: Sequence[SimScenario]) -> SimBatch:
        return SimBatch(scenarios, self.xp)

    # ------------------------------------------------------------------ helpers

    def _on_path(self, b: SimBatch, row: Array, s: Array, d: Array) -> tuple[Array, Array, Array]:
        """``(S, A)`` position and heading at arc ``s`` on pooled path ``row``, lateral offset ``d``."""
        xp = self.xp
        K = b.path_points
        u = s / b.path_step_m
        i = xp.clip(xp.floor(u), 0, K - 2)
        frac = u - i  # beyond either end: linear extrapolation along the end segment
        ii = xp.astype(i, "int") + row * K + b.pool_base
        got = xp.take_columns(b.pool_table, xp.stack([ii, ii + 1], axis=0))  # (3, 2, S, A)
        x0, y0, h = got[0, 0], got[1, 0], got[2, 0]
        x1, y1 = got[0, 1], got[1, 1]
        x = x0 + frac * (x1 - x0)
        y = y0 + frac * (y1 - y0)
        return x - xp.sin(h) * d, y + xp.cos(h) * d, h

    def _pick(self, table: Array, p: Array) -> Array:
        """``(S, A)`` entries of an ``(S, A, P)`` table at path index ``p``."""
        return self.xp.gather(table, p[..., None], axis=2)[..., 0]

    def _neighbors(self, b: SimBatch, t: int, x: Array, y: Array, present: Array) -> tuple[Array, Array]:
        """``(S, A, N)`` each agent's nearest agents (now, or where they appear within the period)."""
        xp, cfg = self.xp, self.config
        S, A, T = b.shape
        N = min(cfg.neighbors, max(A - 1, 1))
        if cfg.neighbors >= A - 1:
            idx = np.stack([np.delete(np.arange(A), i) for i in range(A)]) if A > 1 else np.zeros((1, 1), int)
            nb = xp.asarray(
                np.broadcast_to(idx[None, :, : max(A - 1, 1)], (S, A, max(A - 1, 1))).copy(), "int"
            )
            return nb, xp.asarray(np.ones((S, A, max(A - 1, 1)), dtype=bool) & (A > 1), "bool")
        ahead = min(t + max(1, round(cfg.neighbor_period_s / cfg.dt_s)), T - 1)
        later = b.log_valid[:, :, ahead] & b.agent_mask
        px = xp.where(present, x, b.log_x[:, :, ahead])
        py = xp.where(present, y, b.log_y[:, :, ahead])
        exists = present | later
        d2 = (px[:, :, None] - px[:, None, :]) ** 2 + (py[:, :, None] - py[:, None, :]) ** 2
        eye = xp.asarray(np.eye(A, dtype=bool), "bool")[None]
        d2 = xp.where(exists[:, None, :] & ~eye, d2, _BIG)
        nb = xp.smallest_k(d2, N)
        ok = xp.gather(d2, nb, axis=2) < _BIG / 2
        return nb, ok

    def _of_neighbors(self, a: Array, nb: Array) -> Array:
        """``(S, A, N)`` values of an ``(S, A)`` array at each agent's neighbours."""
        S, A, N = nb.shape
        return self.xp.gather(a, nb.reshape(S, A * N), axis=1).reshape(S, A, N)

    # ------------------------------------------------------------------ the loop

    def run(self, batch: SimBatch, policy: Policy) -> Rollout:
        """Roll a batch out from its first step to its last, the policy driving the egos."""
        xp, cfg = self.xp, self.config
        S, A, T = batch.shape
        dt = cfg.dt_s
        x = batch.log_x[:, :, 0]
        y = batch.log_y[:, :, 0]
        h = batch.log_heading[:, :, 0]
        v = batch.log_speed[:, :, 0]
        present = batch.log_valid[:, :, 0] & batch.agent_mask
        not_ego_np = np.arange(A) > 0
        not_ego = xp.asarray(not_ego_np, "bool")[None, :]
        ego_col = ~not_ego
        reactive = batch.reactive_ok & not_ego & batch.agent_mask
        if not cfg.reactive:
            reactive = reactive & False
        any_reactive = cfg.reactive and bool(np.any(xp.to_numpy(reactive)))
        p_idx = xp.full((S, A), OWN_PATH, "int")
        s_arc = self._pick(batch.path_s_offset, p_idx)
        d_lat = batch.d0
        period = max(1, round(cfg.lane_change_period_s / dt))
        phase = xp.astype(xp.floor(xp.random_uniform((S, A), cfg.seed) * period), "int")
        lane_changes = xp.zeros((S,), "int")
        nb_period = max(1, round(cfg.neighbor_period_s / dt))
        hist_x, hist_y = xp.zeros((S, A, T)), xp.zeros((S, A, T))
        hist_h, hist_v = xp.zeros((S, A, T)), xp.zeros((S, A, T))
        hist_valid, hist_a = xp.zeros((S, A, T), "bool"), xp.zeros((S, T))
        hist_x[:, :, 0], hist_y[:, :, 0], hist_h[:, :, 0], hist_v[:, :, 0] = x, y, h, v
        hist_valid[:, :, 0] = present
        nb, nb_ok = self._neighbors(batch, 0, x, y, present)
        nb_static = self._neighbor_static(batch, nb)
        policy.setup(batch)
        try:
            for t in range(T - 1):
                if t > 0 and t % nb_period == 0 and cfg.neighbors < A - 1:
                    nb, nb_ok = self._neighbors(batch, t, x, y, present)
                    nb_static = self._neighbor_static(batch, nb)
                obs = self._observation(batch, t, x, y, h, v, present, not_ego, nb, nb_ok)
                action = policy.act(obs)
                ex, ey, eh, ev, ea = self._ego_step(batch, action, x[:, 0], y[:, 0], h[:, 0], v[:, 0])
                # log replay for the rest
                lx, ly = batch.log_x[:, :, t + 1], batch.log_y[:, :, t + 1]
                lh, lv = batch.log_heading[:, :, t + 1], batch.log_speed[:, :, t + 1]
                lvalid = batch.log_valid[:, :, t + 1] & batch.agent_mask
                if any_reactive:
                    rx, ry, rh, rv, s_arc, d_lat, p_idx, changed = self._reactive_step(
                        batch,
                        t,
                        x,
                        y,
                        h,
                        v,
                        present,
                        reactive,
                        s_arc,
                        d_lat,
                        p_idx,
                        phase,
                        period,
                        nb,
                        nb_ok,
                        nb_static,
                    )
                    lane_changes = lane_changes + xp.sum(xp.astype(changed & reactive, "int"), axis=1)
                    lx = xp.where(reactive, rx, lx)
                    ly = xp.where(reactive, ry, ly)
                    lh = xp.where(reactive, rh, lh)
                    lv = xp.where(reactive, rv, lv)
                    lvalid = lvalid | reactive
                x = xp.where(ego_col, ex[:, None], lx)
                y = xp.where(ego_col, ey[:, None], ly)
                h = xp.where(ego_col, eh[:, None], lh)
                v = xp.where(ego_col, ev[:, None], lv)
                present = lvalid | ego_col
                hist_x[:, :, t + 1], hist_y[:, :, t + 1] = x, y
                hist_h[:, :, t + 1], hist_v[:, :, t + 1] = h, v
                hist_valid[:, :, t + 1] = present
                hist_a[:, t + 1] = ea
        finally:
            policy.teardown()
        return Rollout(
            x_m=xp.to_numpy(hist_x),
            y_m=xp.to_numpy(hist_y),
            heading_rad=xp.to_numpy(hist_h),
            speed_mps=xp.to_numpy(hist_v),
            valid=xp.to_numpy(hist_valid).astype(bool),
            reactive=xp.to_numpy(reactive).astype(bool),
            accel_mps2=xp.to_numpy(hist_a),
            num_steps=batch.num_steps_np,
            lane_changes=xp.to_numpy(lane_changes),
        )

    def _observation(
        self,
        b: SimBatch,
        t: int,
        x: Array,
        y: Array,
        h: Array,
        v: Array,
        present: Array,
        not_ego: Array,
        nb: Array,
        nb_ok: Array,
    ) -> Observation:
        return Observation(
            step=t,
            time_s=t * self.config.dt_s,
            ego_x_m=x[:, 0],
            ego_y_m=y[:, 0],
            ego_heading_rad=h[:, 0],
            ego_speed_mps=v[:, 0],
            ego_length_m=b.length[:, 0],
            ego_width_m=b.width[:, 0],
            agents_x_m=x,
            agents_y_m=y,
            agents_heading_rad=h,
            agents_speed_mps=v,
            agents_valid=present & not_ego,
            agents_length_m=b.length,
            agents_width_m=b.width,
            agents_type=b.object_type,
            route_xy_m=b.route_xy,
            neighbors=nb,
            neighbors_ok=nb_ok,
            batch=b,
        )

    def _ego_step(
        self, b: SimBatch, action: Action, x: Array, y: Array, h: Array, v: Array
    ) -> tuple[Array, Array, Array, Array, Array]:
        xp, cfg = self.xp, self.config
        dt = cfg.dt_s
        a = xp.clip(action.accel_mps2, cfg.accel_limits_mps2[0], cfg.accel_limits_mps2[1])
        delta = xp.clip(action.steer_rad, -cfg.max_steer_rad, cfg.max_steer_rad)
        lr = b.length[:, 0] * cfg.wheelbase_ratio / 2.0
        beta = xp.atan(0.5 * xp.tan(delta))
        nx = x + v * xp.cos(h + beta) * dt
        ny = y + v * xp.sin(h + beta) * dt
        nh = xp.wrap_angle(h + v / lr * xp.sin(beta) * dt)
        nv = xp.maximum(v + a * dt, 0.0)
        applied = (nv - v) / dt
        if action.teleport is not None:
            tp = action.teleport
            nx = xp.where(tp, action.pose_x_m, nx)
            ny = xp.where(tp, action.pose_y_m, ny)
            nh = xp.where(tp, action.pose_heading_rad, nh)
            applied = xp.where(tp, (action.pose_speed_mps - v) / dt, applied)
            nv = xp.where(tp, action.pose_speed_mps, nv)
        return nx, ny, nh, nv, applied

    def _reactive_step(
        self,
        b: SimBatch,
        t: int,
        x: Array,
        y: Array,
        h: Array,
        v: Array,
        present: Array,
        reactive: Array,
        s_arc: Array,
        d_lat: Array,
        p_idx: Array,
        phase: Array,
        period: int,
        nb: Array,
        nb_ok: Array,
        nb_static: tuple[Array, Array],
    ) -> tuple[Array, Array, Array, Array, Array, Array, Array, Array]:
        xp, cfg = self.xp, self.config
        dt = cfg.dt_s
        idm = cfg.idm
        S, A, _ = b.shape
        K = b.path_points
        row = self._pick(b.path_id, p_idx)
        # path heading at the agent: the frame in which others are ahead, behind, beside
        i = xp.astype(xp.clip(xp.floor(s_arc / b.path_step_m), 0, K - 2), "int")
        hh = xp.where(reactive, xp.gather(b.pool_heading, i + row * K, axis=1), h)
        ch, sh = xp.cos(hh), xp.sin(hh)
        # every neighbour quantity in one gather: position, velocity, presence
        table = xp.stack([x, y, v * xp.cos(h), v * xp.sin(h), xp.astype(present, "float")], axis=0).reshape(
            5, S * A
        )
        flat, half_len = nb_static
        got = xp.take_columns(table, flat)  # (5, S, A, N)
        c, sn = ch[..., None], sh[..., None]
        # in place where a fresh array allows it: these (S, A, N) arrays are the step's biggest
        dx, dy = got[0], got[1]
        dx -= x[..., None]
        dy -= y[..., None]
        lon = c * dx
        lon += sn * dy
        rel_lat = c * dy
        rel_lat -= sn * dx
        rel_lat += d_lat[..., None]  # beside my own lane's centre
        others = (got[4] > 0.5) & nb_ok
        v_proj = got[2] * c
        v_proj += got[3] * sn  # the neighbour's velocity along my path
        hw = cfg.lane_half_width_m
        ahead = others & (xp.abs(rel_lat) < hw) & (lon > 0)
        gap_ahead = xp.where(ahead, lon - half_len, _BIG)
        lead = xp.argmin(gap_ahead, axis=2)
        lead_gap = xp.gather(gap_ahead, lead[..., None], axis=2)[..., 0]
        lead_v = xp.gather(v_proj, lead[..., None], axis=2)[..., 0]
        if b.any_light_np:
            lead_gap, lead_v = self._lights(b, t, row, s_arc, v, lead_gap, lead_v)
        has_lead = lead_gap < _BIG / 2
        v0 = b.desired_speed
        acc = idm_accel(xp, v, v0, lead_gap, v - lead_v, has_lead, idm)
        changed = xp.zeros((S, A), "bool")
        if cfg.mobil.enabled:
            due = (phase == (t % period)) & reactive & (v > 1.0)
            rows = xp.nonzero_flat(due)
            if int(rows.shape[0]):
                new_p = self._mobil(b, rows, p_idx, v, acc, lon, rel_lat, others, v_proj, half_len, nb)
                p_new = xp.put(p_idx, rows, new_p)
                changed = p_new != p_idx
                # the arc and lateral offset, measured from the new lane
                s_arc = s_arc - self._pick(b.path_s_offset, p_idx) + self._pick(b.path_s_offset, p_new)
                d_lat = d_lat + self._pick(b.path_lateral, p_idx) - self._pick(b.path_lateral, p_new)
                p_idx = p_new
                row = self._pick(b.path_id, p_idx)
        # integrate (explicit Euler: position with the old speed, as highway-env and nuPlan do)
        s_new = s_arc + v * dt
        v_new = xp.maximum(v + acc * dt, 0.0)
        d_new = d_lat * float(np.exp(-dt / cfg.lateral_time_constant_s))
        nx, ny, nh = self._on_path(b, row, s_new, d_new)
        d_rate = (d_new - d_lat) / dt
        nh = xp.wrap_angle(nh + xp.atan2(d_rate, xp.maximum(v_new, 0.5)))
        s_arc = xp.where(reactive, s_new, s_arc)
        d_lat = xp.where(reactive, d_new, d_lat)
        return nx, ny, nh, v_new, s_arc, d_lat, p_idx, changed

    def _lights(
        self, b: SimBatch, t: int, row: Array, s_arc: Array, v: Array, lead_gap: Array, lead_v: Array
    ) -> tuple[Array, Array]:
        """The leader where a red (or stoppable amber) light is on an agent's path: stopped at the line."""
        xp, idm = self.xp, self.config.idm
        S, A, _ = b.shape
        # red lights on the current path: a stopped leader at the stop line
        M = b.num_stops
        srow = (row * M)[..., None] + xp.arange(M)[None, None, :]
        st_s = xp.gather(b.pool_stop_s, srow.reshape(S, A * M), axis=1).reshape(S, A, M)
        st_l = xp.gather(b.pool_stop_light, srow.reshape(S, A * M), axis=1).reshape(S, A, M)
        L = b.light_stop.shape[1]
        li = xp.clip(st_l, 0, L - 1).reshape(S, A * M)
        red = xp.gather(b.light_stop[:, :, t], li, axis=1).reshape(S, A, M)
        amber = xp.gather(b.light_caution[:, :, t], li, axis=1).reshape(S, A, M)
        light_gap = st_s - s_arc[..., None] - b.length[..., None] / 2.0
        can_stop = light_gap > (v * v)[..., None] / (2.0 * idm.b_comf_mps2)
        stop_here = (st_l >= 0) & (red | (amber & can_stop)) & (light_gap > -1.0)
        lg = xp.min(xp.where(stop_here, light_gap, _BIG), axis=2)
        use_light = lg < lead_gap
        lead_gap = xp.where(use_light, lg, lead_gap)
        lead_v = xp.where(use_light, 0.0, lead_v)
        return lead_gap, lead_v

    def _neighbor_static(self, b: SimBatch, nb: Array) -> tuple[Array, Array]:
        """What stays fixed while the neighbour lists do: flat ``(S, A, N)`` indices, half length sums."""
        xp = self.xp
        S, A, _ = b.shape
        flat = nb + (xp.arange(S) * A)[:, None, None]
        nlen = xp.take(b.length, flat)
        if self.config.idm.gap_reference == "bumper":
            return flat, (b.length[..., None] + nlen) / 2.0
        return flat, nlen * 0.0

    def _mobil(
        self,
        b: SimBatch,
        rows: Array,
        p_idx: Array,
        v: Array,
        acc: Array,
        lon: Array,
        rel_lat: Array,
        others: Array,
        v_proj: Array,
        half_len: Array,
        nb: Array,
    ) -> Array:
        """MOBIL for the agents due to decide (``rows``, flat indices into ``(S, A)``): their new path."""
        xp, cfg = self.xp, self.config
        idm, mob = cfg.idm, cfg.mobil
        S, A, _ = b.shape
        N = nb.shape[2]
        P = NUM_PATHS

        def sub(a: Array) -> Array:  # the due agents' rows of an (S, A, ...) array
            return a.reshape(S * A, *a.shape[2:])[rows]

        scen = rows // A
        p0, vv, a0 = sub(p_idx), sub(v), sub(acc)
        lon_, rl, oth, vp, hl = sub(lon), sub(rel_lat), sub(others), sub(v_proj), sub(half_len)
        glob = scen[:, None] * A + sub(nb)  # (n, N) flat indices of each neighbour
        n_v, n_v0 = xp.take(v, glob), xp.take(b.desired_speed, glob)
        own_len, v0 = xp.take(b.length, rows), xp.take(b.desired_speed, rows)
        ok_p = xp.take(b.path_ok, (rows * P)[:, None] + xp.arange(P)[None, :])
        lat_p = xp.take(b.path_lateral, (rows * P)[:, None] + xp.arange(P)[None, :])
        own_lat = xp.gather(lat_p, p0[:, None], axis=1)[:, 0]
        hw = cfg.lane_half_width_m
        row_base = xp.arange(int(rows.shape[0])) * N  # (n,) where each due agent's row starts in (n, N)

        def neighbours_in(offset: Array) -> tuple[Array, Array, Array, Array, Array]:
            """Leader gap/speed, follower gap/speed/desired speed in the lane ``offset`` m to the left."""
            inl = oth & (xp.abs(rl - offset[:, None]) < hw)
            ga = xp.where(inl & (lon_ > 0), lon_ - hl, _BIG)
            gb = xp.where(inl & (lon_ <= 0), -lon_ - hl, _BIG)
            # flat indices of the leader and the follower: one take per field (the arrays are small,
            # so the per-call cost is what counts)
            la, fb = xp.argmin(ga, axis=1) + row_base, xp.argmin(gb, axis=1) + row_base
            return xp.take(ga, la), xp.take(vp, la), xp.take(gb, fb), xp.take(n_v, fb), xp.take(n_v0, fb)

        zero = vv * 0.0
        lead_gap, lead_v, foll_gap, ofv, ofv0 = neighbours_in(zero)
        has_lead, of_has = lead_gap < _BIG / 2, foll_gap < _BIG / 2
        of_a = idm_accel(xp, ofv, ofv0, foll_gap, ofv - vv, of_has, idm)
        of_pred = idm_accel(xp, ofv, ofv0, foll_gap + lead_gap + own_len, ofv - lead_v, has_lead, idm)
        best_gain = zero - _BIG
        best_p = p0
        for side in (-1, 1):
            cand = xp.clip(p0 + side, 0, P - 1)
            ok = xp.gather(ok_p, cand[:, None], axis=1)[:, 0] & (p0 + side >= 0) & (p0 + side < P)
            tgt = xp.gather(lat_p, cand[:, None], axis=1)[:, 0] - own_lat
            n_gap, nv_, n_fgap, fv, fv0 = neighbours_in(tgt)
            n_has, f_has = n_gap < _BIG / 2, n_fgap < _BIG / 2
            # the new follower now (behind its leader = my new leader) and after (behind me)
            f_a = idm_accel(xp, fv, fv0, n_gap + n_fgap + own_len, fv - nv_, n_has, idm)
            f_pred = idm_accel(xp, fv, fv0, n_fgap, fv - vv, f_has, idm)
            safe = ~f_has | (f_pred >= -mob.safe_braking_mps2)
            self_pred = idm_accel(xp, vv, v0, n_gap, vv - nv_, n_has, idm)
            gain = (
                self_pred
                - a0
                + mob.politeness
                * (xp.where(f_has, f_pred - f_a, 0.0) + xp.where(of_has, of_pred - of_a, 0.0))
            )
            good = ok & safe & (gain >= mob.gain_threshold_mps2) & (gain > best_gain)
            best_gain = xp.where(good, gain, best_gain)
            best_p = xp.where(good, cand, best_p)
        return best_p
