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
  changes to the parallel paths, decided every ``lane_change_period_s``,
  the lateral offset relaxing to the new lane's centre with time constant
  ``lateral_time_constant_s``;
* **everything else** replays its log (non-reactive), appearing and
  disappearing with its valid mask.

Determinism: the only random draw (each agent's phase in the lane-change
period) comes from the seed, so a run is a function of (scenarios, policy,
config, seed).

Notation:
    S: scenarios in the batch. A: agents (ego at 0). T: steps.
    P: parallel paths per agent. K: points per path. M: stop lines per path.
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
    seed: int = 0


class SimBatch:
    """Prepared scenarios packed into padded backend arrays (see the module docstring for shapes).

    Args:
        scenarios: Up to S prepared scenarios.
        xp: The backend that holds the arrays.
    """

    def __init__(self, scenarios: Sequence[SimScenario], xp: Backend) -> None:
        self.xp = xp
        self.scenarios = list(scenarios)
        S = len(self.scenarios)
        A = max(s.num_agents for s in self.scenarios)
        T = max(s.num_steps for s in self.scenarios)
        P, K = NUM_PATHS, self.scenarios[0].path_xy_m.shape[2]
        M = self.scenarios[0].stop_s_m.shape[2]
        L = max(1, max(s.light_stop.shape[0] for s in self.scenarios))
        R = max(s.route_xy_m.shape[0] for s in self.scenarios)
        self.shape = (S, A, T)
        self.num_paths, self.path_points = P, K
        self.path_step_m = 1.0
        self.dt_s = self.scenarios[0].dt_s

        def pad(name: str, shape: tuple[int, ...], fill: float | bool | int, dtype: Any) -> NDArrayFloat:
            out = np.full(shape, fill, dtype=dtype)
            for i, s in enumerate(self.scenarios):
                v = getattr(s, name)
                out[(i, *[slice(0, d) for d in v.shape])] = v  # type: ignore[index]
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
        for k, s in enumerate(self.scenarios):
            agent[k, : s.num_agents] = True
            steps[k] = s.num_steps
        self.agent_mask_np = agent
        self.agent_mask = xp.asarray(agent, "bool")
        self.num_steps_np = steps
        self.reactive_ok = xp.asarray(pad("reactive_ok", (S, A), False, b), "bool")
        path = pad("path_xy_m", (S, A, P, K, 2), 0.0, f)
        self.path_x = xp.asarray(path[..., 0].reshape(S, A, P * K))
        self.path_y = xp.asarray(path[..., 1].reshape(S, A, P * K))
        dh = np.diff(path, axis=3)
        ph = np.arctan2(dh[..., 1], dh[..., 0])
        ph = np.concatenate([ph, ph[..., -1:]], axis=3)
        self.path_heading = xp.asarray(ph.reshape(S, A, P * K))
        self.path_ok = xp.asarray(pad("path_ok", (S, A, P), False, b), "bool")
        self.path_lateral = xp.asarray(pad("path_lateral_m", (S, A, P), 0.0, f))
        self.s0 = xp.asarray(pad("s0_m", (S, A), 0.0, f))
        self.d0 = xp.asarray(pad("d0_m", (S, A), 0.0, f))
        self.desired_speed = xp.asarray(pad("desired_speed_mps", (S, A), 10.0, f))
        self.stop_s = xp.asarray(np.minimum(pad("stop_s_m", (S, A, P, M), np.inf, f), 1e9))
        self.stop_light = xp.asarray(pad("stop_light", (S, A, P, M), -1, i64), "int")
        self.light_stop = xp.asarray(pad("light_stop", (S, L, T), False, b), "bool")
        self.light_caution = xp.asarray(pad("light_caution", (S, L, T), False, b), "bool")
        route = np.zeros((S, R, 2))
        for k, s in enumerate(self.scenarios):
            r = s.route_xy_m
            route[k, : r.shape[0]] = r
            route[k, r.shape[0] :] = r[-1]
        self.route_np = route
        self.route_xy = xp.asarray(route)


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

    # ------------------------------------------------------------------ path geometry

    def _on_path(self, b: SimBatch, p: Array, s: Array, d: Array) -> tuple[Array, Array, Array]:
        """Position and heading at arc ``s`` on path ``p`` with lateral offset ``d``: ``(S, A)`` each."""
        xp = self.xp
        K = b.path_points
        u = s / b.path_step_m
        i = xp.clip(xp.floor(u), 0, K - 2)
        frac = u - i  # beyond either end: linear extrapolation along the end segment
        ii = xp.astype(i, "int") + p * K
        idx = xp.stack([ii, ii + 1], axis=-1)
        px = xp.gather(b.path_x, idx, axis=2)
        py = xp.gather(b.path_y, idx, axis=2)
        h = xp.gather(b.path_heading, ii[..., None], axis=2)[..., 0]
        x = px[..., 0] + frac * (px[..., 1] - px[..., 0])
        y = py[..., 0] + frac * (py[..., 1] - py[..., 0])
        return x - xp.sin(h) * d, y + xp.cos(h) * d, h

    # ------------------------------------------------------------------ the loop

    def run(self, batch: SimBatch, policy: Policy) -> Rollout:
        """Roll a batch out from its first step to its last, the policy driving the egos."""
        xp, cfg = self.xp, self.config
        S, A, T = batch.shape
        dt = cfg.dt_s
        # state
        x = batch.log_x[:, :, 0]
        y = batch.log_y[:, :, 0]
        h = batch.log_heading[:, :, 0]
        v = batch.log_speed[:, :, 0]
        present = batch.log_valid[:, :, 0] & batch.agent_mask
        not_ego = xp.asarray(np.arange(A) > 0, "bool")[None, :]
        reactive = (
            batch.reactive_ok & not_ego & batch.agent_mask if cfg.reactive else batch.reactive_ok & False
        )
        s_arc = batch.s0
        d_lat = batch.d0
        p_idx = xp.full((S, A), OWN_PATH, "int")
        phase = xp.floor(
            batch.xp.random_uniform((S, A), cfg.seed) * max(1, round(cfg.lane_change_period_s / dt))
        )
        phase = xp.astype(phase, "int")
        period = max(1, round(cfg.lane_change_period_s / dt))
        lane_changes = xp.zeros((S,), "int")
        hist_x, hist_y, hist_h, hist_v, hist_valid, hist_a = [x], [y], [h], [v], [present], [xp.zeros((S,))]
        policy.setup(batch)
        try:
            for t in range(T - 1):
                obs = self._observation(batch, t, x, y, h, v, present)
                action = policy.act(obs)
                # --- ego
                ex, ey, eh, ev, ea = self._ego_step(batch, action, x[:, 0], y[:, 0], h[:, 0], v[:, 0], t)
                # --- log replay for the rest
                lx, ly = batch.log_x[:, :, t + 1], batch.log_y[:, :, t + 1]
                lh, lv = batch.log_heading[:, :, t + 1], batch.log_speed[:, :, t + 1]
                lvalid = batch.log_valid[:, :, t + 1] & batch.agent_mask
                # --- reactive agents
                if cfg.reactive:
                    rx, ry, rh, rv, s_arc, d_lat, p_idx, changed = self._reactive_step(
                        batch, t, x, y, h, v, present, reactive, s_arc, d_lat, p_idx, phase, period
                    )
                    lane_changes = lane_changes + xp.sum(xp.astype(changed & reactive, "int"), axis=1)
                    lx = xp.where(reactive, rx, lx)
                    ly = xp.where(reactive, ry, ly)
                    lh = xp.where(reactive, rh, lh)
                    lv = xp.where(reactive, rv, lv)
                    lvalid = lvalid | reactive
                ego_col = ~not_ego
                x = xp.where(ego_col, ex[:, None], lx)
                y = xp.where(ego_col, ey[:, None], ly)
                h = xp.where(ego_col, eh[:, None], lh)
                v = xp.where(ego_col, ev[:, None], lv)
                present = xp.where(ego_col, True, lvalid)
                hist_x.append(x)
                hist_y.append(y)
                hist_h.append(h)
                hist_v.append(v)
                hist_valid.append(present)
                hist_a.append(ea)
        finally:
            policy.teardown()

        def stack(xs: list[Array]) -> NDArrayFloat:
            return xp.to_numpy(xp.stack(xs, axis=-1))

        return Rollout(
            x_m=stack(hist_x),
            y_m=stack(hist_y),
            heading_rad=stack(hist_h),
            speed_mps=stack(hist_v),
            valid=xp.to_numpy(xp.stack(hist_valid, axis=-1)).astype(bool),
            reactive=xp.to_numpy(reactive).astype(bool),
            accel_mps2=stack(hist_a),
            num_steps=batch.num_steps_np,
            lane_changes=xp.to_numpy(lane_changes),
        )

    def _observation(
        self, b: SimBatch, t: int, x: Array, y: Array, h: Array, v: Array, present: Array
    ) -> Observation:
        xp = self.xp
        not_ego = xp.asarray(np.arange(b.shape[1]) > 0, "bool")[None, :]
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
            batch=b,
        )

    def _ego_step(
        self, b: SimBatch, action: Action, x: Array, y: Array, h: Array, v: Array, t: int
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
    ) -> tuple[Array, Array, Array, Array, Array, Array, Array, Array]:
        xp, cfg = self.xp, self.config
        dt = cfg.dt_s
        idm, mob = cfg.idm, cfg.mobil
        S, A, _ = b.shape
        # path heading at the agent: the frame in which others are ahead or behind
        _, _, ph = self._on_path(b, p_idx, s_arc, d_lat * 0.0)
        hh = xp.where(reactive, ph, h)
        c, sn = xp.cos(hh), xp.sin(hh)
        dxw = x[:, None, :] - x[:, :, None]  # [s, i, j]: j relative to i
        dyw = y[:, None, :] - y[:, :, None]
        lon = c[:, :, None] * dxw + sn[:, :, None] * dyw
        lat = -sn[:, :, None] * dxw + c[:, :, None] * dyw
        half_len = (b.length[:, :, None] + b.length[:, None, :]) / 2.0
        if idm.gap_reference == "center":
            half_len = half_len * 0.0
        others = present[:, None, :] & ~xp.asarray(np.eye(A, dtype=bool), "bool")[None]
        v_proj = v[:, None, :] * xp.cos(h[:, None, :] - hh[:, :, None])  # others' speed along my heading
        big = 1e9

        own_lat = xp.gather(b.path_lateral, p_idx[..., None], axis=2)[..., 0]

        def lane_neighbours(offset: Array) -> tuple[Array, Array, Array, Array]:
            """Leader gap/speed and follower index/gap in the lane ``offset`` metres to the left."""
            in_lane = others & (xp.abs(lat - (offset - d_lat)[:, :, None]) < cfg.lane_half_width_m)
            ahead = in_lane & (lon > 0)
            gap_ahead = xp.where(ahead, lon - half_len, big)
            lead = xp.argmin(gap_ahead, axis=2)
            lead_gap = xp.min(gap_ahead, axis=2)
            lead_v = xp.gather(v_proj, lead[..., None], axis=2)[..., 0]
            behind = in_lane & (lon <= 0)
            gap_behind = xp.where(behind, -lon - half_len, big)
            foll = xp.argmin(gap_behind, axis=2)
            foll_gap = xp.min(gap_behind, axis=2)
            return lead_gap, lead_v, foll, foll_gap

        lead_gap, lead_v, foll, foll_gap = lane_neighbours(own_lat * 0.0)
        # red lights on the current path: a stopped leader at the stop line
        M = b.stop_s.shape[-1]
        pidx = xp.stack([p_idx] * M, axis=-1)[:, :, None, :]
        st_s = xp.gather(b.stop_s, pidx, axis=2)[:, :, 0, :]
        st_l = xp.gather(b.stop_light, pidx, axis=2)[:, :, 0, :]
        L = b.light_stop.shape[1]
        red_now = b.light_stop[:, :, t]
        caution_now = b.light_caution[:, :, t]
        li = xp.clip(st_l, 0, L - 1).reshape(S, A * M)
        red = xp.gather(red_now, li, axis=1).reshape(S, A, M)
        amber = xp.gather(caution_now, li, axis=1).reshape(S, A, M)
        light_gap = st_s - s_arc[..., None] - b.length[..., None] / 2.0
        can_stop = light_gap > (v * v)[..., None] / (2.0 * idm.b_comf_mps2)
        stop_here = (st_l >= 0) & (red | (amber & can_stop)) & (light_gap > -1.0)
        lg = xp.min(xp.where(stop_here, light_gap, big), axis=2)
        use_light = lg < lead_gap
        lead_gap = xp.where(use_light, lg, lead_gap)
        lead_v = xp.where(use_light, 0.0, lead_v)
        has_lead = lead_gap < big / 2
        v0 = b.desired_speed
        acc = idm_accel(xp, v, v0, lead_gap, v - lead_v, has_lead, idm)

        changed = xp.zeros((S, A), "bool")
        if mob.enabled:
            due = (xp.astype(phase, "int") == (t % period)) & reactive & (v > 1.0)
            best_gain = xp.full((S, A), -big)
            best_p = p_idx
            for side in (-1, 1):
                cand = xp.clip(p_idx + side, 0, NUM_PATHS - 1)
                ok = xp.gather(b.path_ok, cand[..., None], axis=2)[..., 0] & (p_idx + side >= 0)
                ok = ok & (p_idx + side < NUM_PATHS)
                tgt_lat = xp.gather(b.path_lateral, cand[..., None], axis=2)[..., 0]
                n_gap, n_v, n_f, n_fgap = lane_neighbours(tgt_lat - own_lat)
                n_has = n_gap < big / 2
                f_has = n_fgap < big / 2
                fv = xp.gather(v, n_f, axis=1)
                fv0 = xp.gather(v0, n_f, axis=1)
                # the new follower now (behind its leader = my new leader) and after (behind me)
                f_lead_gap = n_gap + n_fgap + b.length
                f_a = idm_accel(xp, fv, fv0, f_lead_gap, fv - n_v, n_has, idm)
                f_pred_a = idm_accel(xp, fv, fv0, n_fgap, fv - v, f_has, idm)
                safe = ~f_has | (f_pred_a >= -mob.safe_braking_mps2)
                self_pred = idm_accel(xp, v, v0, n_gap, v - n_v, n_has, idm)
                of_has = foll_gap < big / 2
                ofv = xp.gather(v, foll, axis=1)
                ofv0 = xp.gather(v0, foll, axis=1)
                of_a = idm_accel(xp, ofv, ofv0, foll_gap, ofv - v, of_has, idm)
                of_pred = idm_accel(
                    xp, ofv, ofv0, foll_gap + lead_gap + b.length, ofv - lead_v, has_lead, idm
                )
                gain = (
                    self_pred
                    - acc
                    + mob.politeness
                    * (xp.where(f_has, f_pred_a - f_a, 0.0) + xp.where(of_has, of_pred - of_a, 0.0))
                )
                good = due & ok & safe & (gain >= mob.gain_threshold_mps2) & (gain > best_gain)
                best_gain = xp.where(good, gain, best_gain)
                best_p = xp.where(good, cand, best_p)
            changed = best_p != p_idx
            new_lat = xp.gather(b.path_lateral, best_p[..., None], axis=2)[..., 0]
            d_lat = xp.where(changed, d_lat + own_lat - new_lat, d_lat)
            p_idx = best_p
        # integrate (explicit Euler: position with the old speed, as highway-env and nuPlan do)
        s_new = s_arc + v * dt
        v_new = xp.maximum(v + acc * dt, 0.0)
        d_new = d_lat * float(np.exp(-dt / cfg.lateral_time_constant_s))
        nx, ny, nh = self._on_path(b, p_idx, s_new, d_new)
        d_rate = (d_new - d_lat) / dt
        nh = xp.wrap_angle(nh + xp.atan2(d_rate, xp.maximum(v_new, 0.5)))
        s_arc = xp.where(reactive, s_new, s_arc)
        d_lat = xp.where(reactive, d_new, d_lat)
        return nx, ny, nh, v_new, s_arc, d_lat, p_idx, changed
