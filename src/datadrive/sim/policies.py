"""Policies: one batched ``Observation -> Action`` interface for every way of driving the ego.

A policy gets :meth:`Policy.setup` once per batch (load what it needs: a
model's weights are loaded once per worker in the constructor, not per
scenario), :meth:`Policy.act` once per step for all scenarios of the batch at
once, and :meth:`Policy.teardown` after the batch (also after an error).

Built in:

* :class:`LogReplayPolicy` (``log``): the ego follows its recorded poses
  exactly (teleported), as nuPlan's log-future planner with a perfect tracker;
* :class:`ConstantVelocityPolicy` (``cv``): keeps its speed and heading;
* :class:`IdmRoutePolicy` (``idm``): a PDM-Closed-style rule planner: it
  follows the route centerline (pure pursuit), and picks its target speed
  from a set of proposals (fractions of its desired speed, IDM behind the
  nearest agent or red light on the route), each forward-simulated 4 s
  against constant-velocity forecasts of the other agents and rejected if its
  boxes meet theirs; the fastest collision-free proposal wins;
* :class:`TrajectoryPolicy` (``model:MODULE:ATTR``): the adapter for any
  trained model with a planning head: the model implements :class:`Planner`
  (ego-frame waypoints from an :class:`PlanningInput`), the adapter tracks
  the waypoints with pure pursuit and a speed controller.

Notation:
    S: scenarios. A: agents. R: route points. H: planned waypoints. N: proposals.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from datadrive.core.typing import NDArrayFloat
from datadrive.errors import ConfigError
from datadrive.sim.backend import Array, Backend
from datadrive.sim.geometry import obb_overlap
from datadrive.sim.simulator import IdmParams, Observation, SimBatch, idm_accel

__all__ = [
    "POLICIES",
    "Action",
    "ConstantVelocityPolicy",
    "IdmRoutePolicy",
    "LogReplayPolicy",
    "Planner",
    "PlanningInput",
    "Policy",
    "TrajectoryPolicy",
    "make_policy",
]


@dataclass
class Action:
    """What a policy asks of the egos: ``(S,)`` acceleration and steering, or poses to teleport to.

    Attributes:
        accel_mps2: Longitudinal acceleration.
        steer_rad: Front-wheel steering angle.
        teleport: ``(S,)`` bool, set the pose instead (log replay); ``None``: never.
        pose_x_m, pose_y_m, pose_heading_rad, pose_speed_mps: The poses to teleport to.
    """

    accel_mps2: Array
    steer_rad: Array
    teleport: Array | None = None
    pose_x_m: Array | None = None
    pose_y_m: Array | None = None
    pose_heading_rad: Array | None = None
    pose_speed_mps: Array | None = None


class Policy:
    """Drives the egos of a batch. Subclasses implement :meth:`act`; the hooks default to nothing."""

    name: str = "policy"

    def setup(self, batch: SimBatch) -> None:
        """Called before the first step of a batch."""

    def act(self, obs: Observation) -> Action:
        raise NotImplementedError

    def teardown(self) -> None:
        """Called after the last step of a batch (also after an error)."""


class LogReplayPolicy(Policy):
    """The ego replays its log; where the log has a gap, it keeps its speed and heading."""

    name = "log"

    def act(self, obs: Observation) -> Action:
        b = obs.batch
        xp = b.xp
        t1 = min(obs.step + 1, b.shape[2] - 1)
        ok = b.log_valid[:, 0, t1]
        dt = b.dt_s
        cvx = obs.ego_x_m + obs.ego_speed_mps * xp.cos(obs.ego_heading_rad) * dt
        cvy = obs.ego_y_m + obs.ego_speed_mps * xp.sin(obs.ego_heading_rad) * dt
        zero = obs.ego_speed_mps * 0.0
        return Action(
            accel_mps2=zero,
            steer_rad=zero,
            teleport=ok | True,
            pose_x_m=xp.where(ok, b.log_x[:, 0, t1], cvx),
            pose_y_m=xp.where(ok, b.log_y[:, 0, t1], cvy),
            pose_heading_rad=xp.where(ok, b.log_heading[:, 0, t1], obs.ego_heading_rad),
            pose_speed_mps=xp.where(ok, b.log_speed[:, 0, t1], obs.ego_speed_mps),
        )


class ConstantVelocityPolicy(Policy):
    """Keeps the ego's speed and heading (NAVSIM's constant-velocity baseline)."""

    name = "cv"

    def act(self, obs: Observation) -> Action:
        zero = obs.ego_speed_mps * 0.0
        return Action(accel_mps2=zero, steer_rad=zero)


def pure_pursuit(
    xp: Backend, obs: Observation, target_x: Array, target_y: Array, wheelbase_ratio: float = 0.6
) -> Array:
    """``(S,)`` steering toward a target point (pure pursuit on the bicycle's wheelbase)."""
    dx = target_x - obs.ego_x_m
    dy = target_y - obs.ego_y_m
    c, s = xp.cos(obs.ego_heading_rad), xp.sin(obs.ego_heading_rad)
    lx = c * dx + s * dy
    ly = -s * dx + c * dy
    ld2 = xp.maximum(lx * lx + ly * ly, 1e-3)
    wheelbase = obs.ego_length_m * wheelbase_ratio
    return xp.atan(2.0 * wheelbase * ly / ld2)


def _route_progress(xp: Backend, obs: Observation) -> tuple[Array, Array]:
    """``(S,)`` index of the route point nearest the ego (1 m spacing), and its lateral distance."""
    r = obs.route_xy_m
    d2 = (r[..., 0] - obs.ego_x_m[:, None]) ** 2 + (r[..., 1] - obs.ego_y_m[:, None]) ** 2
    return xp.argmin(d2, axis=1), xp.sqrt(xp.min(d2, axis=1))


def _route_point(xp: Backend, obs: Observation, index: Array) -> tuple[Array, Array]:
    R = obs.route_xy_m.shape[1]
    i = xp.clip(index, 0, R - 1)[:, None]
    return (
        xp.gather(obs.route_xy_m[..., 0], i, axis=1)[:, 0],
        xp.gather(obs.route_xy_m[..., 1], i, axis=1)[:, 0],
    )


class IdmRoutePolicy(Policy):
    """A PDM-Closed-style rule planner (see the module docstring).

    Args:
        idm: IDM parameters of the ego.
        speed_fractions: Target-speed proposals, as fractions of the desired speed.
        horizon_s: Forward simulation of each proposal.
        proposal_dt_s: Its step.
        lookahead_min_m: Least pure-pursuit lookahead (grows with speed, 1 s ahead).
        desired_speed_mps: Desired speed; ``None``: 1.1x the ego's fastest logged speed (at least 5 m/s).
    """

    name = "idm"

    def __init__(
        self,
        idm: IdmParams = IdmParams(a_max_mps2=1.5, b_comf_mps2=2.0, s0_m=2.0),  # noqa: B008
        speed_fractions: tuple[float, ...] = (1.0, 0.8, 0.6, 0.4, 0.2, 0.0),
        horizon_s: float = 4.0,
        proposal_dt_s: float = 0.5,
        lookahead_min_m: float = 4.0,
        desired_speed_mps: float | None = None,
    ) -> None:
        self.idm = idm
        self.fractions = speed_fractions
        self.horizon_s = horizon_s
        self.proposal_dt_s = proposal_dt_s
        self.lookahead_min_m = lookahead_min_m
        self.desired = desired_speed_mps
        self._v0: Array | None = None

    def setup(self, batch: SimBatch) -> None:
        xp = batch.xp
        if self.desired is not None:
            self._v0 = xp.full((batch.shape[0],), self.desired)
        else:
            logged = xp.where(batch.log_valid[:, 0, :], batch.log_speed[:, 0, :], 0.0)
            self._v0 = xp.maximum(xp.max(logged, axis=1) * 1.1, 5.0)

    def act(self, obs: Observation) -> Action:
        b = obs.batch
        xp = b.xp
        assert self._v0 is not None
        S, _A, _ = b.shape
        R = obs.route_xy_m.shape[1]
        i0, _ = _route_progress(xp, obs)
        v = obs.ego_speed_mps
        # leader on the route: agents whose centre lies within half a lane of a route point ahead
        r = obs.route_xy_m
        ax, ay = obs.agents_x_m, obs.agents_y_m
        d2 = (r[:, None, :, 0] - ax[..., None]) ** 2 + (r[:, None, :, 1] - ay[..., None]) ** 2  # (S, A, R)
        j = xp.argmin(d2, axis=2)
        lat = xp.sqrt(xp.min(d2, axis=2))
        on_route = obs.agents_valid & (lat < (obs.agents_width_m + obs.ego_width_m[:, None]) / 2.0 + 0.5)
        ahead = on_route & (j > i0[:, None])
        gap = xp.astype(j - i0[:, None], "float") - (obs.agents_length_m + obs.ego_length_m[:, None]) / 2.0
        big = 1e9
        gap = xp.where(ahead, gap, big)
        lead = xp.argmin(gap, axis=1)
        lead_gap = xp.min(gap, axis=1)
        lead_h = xp.gather(obs.agents_heading_rad, lead[:, None], axis=1)[:, 0]
        lead_v = xp.gather(obs.agents_speed_mps, lead[:, None], axis=1)[:, 0]
        route_h = self._route_heading(xp, obs, xp.gather(j, lead[:, None], axis=1)[:, 0])
        lead_v = lead_v * xp.cos(lead_h - route_h)
        has_lead = lead_gap < big / 2
        # proposals: IDM toward fractions of the desired speed, rolled out along the route, all at once
        N = len(self.fractions)
        frac = xp.asarray(np.asarray(self.fractions, dtype=np.float64))[None, :]
        v0 = xp.maximum(self._v0[:, None] * frac, 0.1)
        stop_only = frac == 0.0
        steps = max(1, round(self.horizon_s / self.proposal_dt_s))
        dtp = self.proposal_dt_s
        s_e = xp.zeros((S, N))
        v_e = v[:, None] + s_e
        g = lead_gap[:, None] + s_e
        lv = lead_v[:, None] + s_e
        has = has_lead[:, None] & (s_e == 0.0)
        collide = xp.zeros((S, N), "bool")
        a0 = s_e
        for k in range(steps):
            a = idm_accel(xp, v_e, v0, g, v_e - lv, has, self.idm)
            a = xp.where(stop_only, xp.minimum(a, -self.idm.b_comf_mps2) * xp.where(v_e > 0, 1.0, 0.0), a)
            if k == 0:
                a0 = a
            s_e = s_e + v_e * dtp
            v_e = xp.maximum(v_e + a * dtp, 0.0)
            g = g - (v_e - lv) * dtp
            collide = collide | self._boxes_meet(xp, obs, i0, s_e, (k + 1) * dtp)
        # the first collision-free proposal in order of preference (fastest first)
        free = ~collide
        rank = xp.where(free, xp.arange(N, "float")[None, :], float(N))
        pick = xp.argmin(rank, axis=1)
        chosen = xp.gather(a0, pick[:, None], axis=1)[:, 0]
        none_free = ~xp.any(free, axis=1)
        # nothing collision-free: brake twice as hard as comfortable
        chosen = xp.where(none_free, -2.0 * self.idm.b_comf_mps2, chosen)
        look = xp.maximum(v * 1.0, self.lookahead_min_m)
        tx, ty = _route_point(xp, obs, i0 + xp.astype(xp.floor(look), "int"))
        steer = pure_pursuit(xp, obs, tx, ty)
        near_end = (i0 + 2) >= R
        steer = xp.where(near_end, 0.0, steer)
        return Action(accel_mps2=chosen, steer_rad=steer)

    def _route_heading(self, xp: Backend, obs: Observation, index: Array) -> Array:
        x0, y0 = _route_point(xp, obs, index)
        x1, y1 = _route_point(xp, obs, index + 1)
        return xp.atan2(y1 - y0, x1 - x0)

    def _boxes_meet(self, xp: Backend, obs: Observation, i0: Array, s_e: Array, t_s: float) -> Array:
        """``(S, N)`` the ego ``s_e`` metres along the route meets a constant-velocity agent at ``t_s``."""
        R = obs.route_xy_m.shape[1]
        k = xp.clip(i0[:, None] + xp.astype(xp.floor(s_e), "int"), 0, R - 2)
        rx, ry = obs.route_xy_m[..., 0], obs.route_xy_m[..., 1]
        ex, ey = xp.gather(rx, k, axis=1), xp.gather(ry, k, axis=1)
        eh = xp.atan2(xp.gather(ry, k + 1, axis=1) - ey, xp.gather(rx, k + 1, axis=1) - ex)
        h = obs.agents_heading_rad
        axp = obs.agents_x_m + obs.agents_speed_mps * xp.cos(h) * t_s
        ayp = obs.agents_y_m + obs.agents_speed_mps * xp.sin(h) * t_s
        hit = obb_overlap(
            ex[..., None], ey[..., None], eh[..., None],
            obs.ego_length_m[:, None, None], obs.ego_width_m[:, None, None],
            axp[:, None], ayp[:, None], h[:, None], obs.agents_length_m[:, None], obs.agents_width_m[:, None],
            xp,
        ) & obs.agents_valid[:, None, :]  # fmt: skip
        return xp.any(hit, axis=2)


# --------------------------------------------------------------------------- trained models


@dataclass
class PlanningInput:
    """What a planning model gets each step (numpy, ego frame: x forward, y left, at the ego's centre).

    Attributes:
        agents_xy_m: ``(S, A, 2)`` other agents' positions; ``agents_heading_rad (S, A)``,
            ``agents_velocity_mps (S, A, 2)``, ``agents_size_m (S, A, 2)`` (length, width),
            ``agents_type (S, A)``, ``agents_valid (S, A)``.
        ego_speed_mps: ``(S,)``.
        route_xy_m: ``(S, R, 2)`` the route.
        time_s: Time since the start.
    """

    agents_xy_m: NDArrayFloat
    agents_heading_rad: NDArrayFloat
    agents_velocity_mps: NDArrayFloat
    agents_size_m: NDArrayFloat
    agents_type: Any
    agents_valid: Any
    ego_speed_mps: NDArrayFloat
    route_xy_m: NDArrayFloat
    time_s: float


@runtime_checkable
class Planner(Protocol):
    """What a trained model with a planning head provides to the simulator.

    ``plan`` returns ``(S, H, 2)`` ego-frame waypoints (x forward, y left),
    one every ``waypoint_dt_s`` seconds from ``waypoint_dt_s`` on. A model in
    :mod:`datadrive.models` exposes this (or is wrapped to), and
    ``datadrive simulate --policy model:MODULE:ATTR`` loads it: ``ATTR`` is a
    Planner or a zero-argument factory returning one, called once per worker.
    """

    waypoint_dt_s: float

    def plan(self, inputs: PlanningInput) -> NDArrayFloat: ...


def planning_input(obs: Observation) -> PlanningInput:
    """The observation in the ego frame, on the CPU, for a :class:`Planner`."""
    xp = obs.batch.xp
    ex, ey, eh = (xp.to_numpy(a) for a in (obs.ego_x_m, obs.ego_y_m, obs.ego_heading_rad))
    c, s = np.cos(eh)[:, None], np.sin(eh)[:, None]

    def frame(px: NDArrayFloat, py: NDArrayFloat) -> NDArrayFloat:
        dx, dy = px - ex[:, None], py - ey[:, None]
        return np.stack([c * dx + s * dy, -s * dx + c * dy], axis=-1)

    ax, ay, ah, av = (
        xp.to_numpy(a) for a in (obs.agents_x_m, obs.agents_y_m, obs.agents_heading_rad, obs.agents_speed_mps)
    )
    rel_h = (ah - eh[:, None] + np.pi) % (2 * np.pi) - np.pi
    route = xp.to_numpy(obs.route_xy_m)
    return PlanningInput(
        agents_xy_m=frame(ax, ay),
        agents_heading_rad=rel_h,
        agents_velocity_mps=np.stack([av * np.cos(rel_h), av * np.sin(rel_h)], axis=-1),
        agents_size_m=np.stack([xp.to_numpy(obs.agents_length_m), xp.to_numpy(obs.agents_width_m)], axis=-1),
        agents_type=xp.to_numpy(obs.agents_type),
        agents_valid=xp.to_numpy(obs.agents_valid).astype(bool),
        ego_speed_mps=xp.to_numpy(obs.ego_speed_mps),
        route_xy_m=frame(route[..., 0], route[..., 1]),
        time_s=obs.time_s,
    )


class TrajectoryPolicy(Policy):
    """Drives the ego along a :class:`Planner`'s waypoints (pure pursuit + a proportional speed controller).

    Args:
        planner: The model.
        replan_every: Steps between calls to the model (its waypoints are followed in between).
        speed_gain: Proportional gain of the speed controller (1/s).
    """

    name = "model"

    def __init__(self, planner: Planner, *, replan_every: int = 1, speed_gain: float = 1.5) -> None:
        self.planner = planner
        self.replan_every = max(1, replan_every)
        self.speed_gain = speed_gain
        self._plan: NDArrayFloat | None = None
        self._origin: tuple[NDArrayFloat, NDArrayFloat, NDArrayFloat] | None = None
        self._planned_at = 0

    def setup(self, batch: SimBatch) -> None:
        self._plan, self._origin, self._planned_at = None, None, 0

    def act(self, obs: Observation) -> Action:
        xp = obs.batch.xp
        if self._plan is None or obs.step - self._planned_at >= self.replan_every:
            wp = np.asarray(self.planner.plan(planning_input(obs)), dtype=np.float64)
            if wp.ndim != 3 or wp.shape[-1] < 2 or wp.shape[0] != obs.batch.shape[0]:
                raise ConfigError(f"a planner returned waypoints of shape {wp.shape}; expected (S, H, 2)")
            ex, ey, eh = (xp.to_numpy(a) for a in (obs.ego_x_m, obs.ego_y_m, obs.ego_heading_rad))
            c, s = np.cos(eh)[:, None], np.sin(eh)[:, None]
            wx = ex[:, None] + c * wp[..., 0] - s * wp[..., 1]
            wy = ey[:, None] + s * wp[..., 0] + c * wp[..., 1]
            self._plan = np.stack([wx, wy], axis=-1)
            self._planned_at = obs.step
        plan = self._plan
        dtw = float(self.planner.waypoint_dt_s)
        elapsed = (obs.step - self._planned_at) * obs.batch.dt_s
        H = plan.shape[1]
        k = min(H - 1, max(0, round((elapsed + 1.0) / dtw) - 1))  # a point about 1 s ahead
        tx, ty = xp.asarray(plan[:, k, 0]), xp.asarray(plan[:, k, 1])
        steer = pure_pursuit(xp, obs, tx, ty)
        # target speed: the distance between the waypoints around the next one, per second
        k1 = min(H - 1, max(0, round((elapsed + dtw) / dtw) - 1))
        k0 = k1 - 1
        prev = plan[:, k0] if k0 >= 0 else np.stack([xp.to_numpy(obs.ego_x_m), xp.to_numpy(obs.ego_y_m)], -1)
        target_v = xp.asarray(np.hypot(*(plan[:, k1] - prev).T) / dtw)
        accel = self.speed_gain * (target_v - obs.ego_speed_mps)
        return Action(accel_mps2=accel, steer_rad=steer)


POLICIES: dict[str, Callable[[], Policy]] = {
    "log": LogReplayPolicy,
    "cv": ConstantVelocityPolicy,
    "idm": IdmRoutePolicy,
}
"""Built-in policies by name (``model:MODULE:ATTR`` loads a trained planner)."""


def make_policy(spec: str) -> Policy:
    """A policy from its name: ``log``, ``cv``, ``idm``, or ``model:MODULE:ATTR``.

    Raises:
        ConfigError: unknown name, or a model that cannot be loaded.
    """
    if spec in POLICIES:
        return POLICIES[spec]()
    if spec.startswith("model:"):
        target = spec[len("model:") :]
        module_name, _, attr = target.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attr or "planner")
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"--policy {spec}: cannot load it ({exc})") from exc
        planner = found if isinstance(found, Planner) else found() if callable(found) else found
        if not isinstance(planner, Planner):
            raise ConfigError(f"--policy {spec}: {target} is not a Planner (plan(inputs) and waypoint_dt_s)")
        return TrajectoryPolicy(planner)
    raise ConfigError(f"unknown policy {spec!r}: choose {', '.join(POLICIES)} or model:MODULE:ATTR")
