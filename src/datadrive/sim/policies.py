"""Policies: one batched ``Observation -> Action`` interface for every way of driving the ego.

A policy gets :meth:`Policy.setup` once per batch (load what it needs: a
model's weights are loaded once per worker in the constructor, not per
scenario), :meth:`Policy.act` once per step for all scenarios of the batch at
once, and :meth:`Policy.teardown` after the batch (also after an error).

Built in:

* :class:`LogReplayPolicy` (``log``): the ego follows its recorded poses
  exactly (teleported), as nuPlan's log-future planner with a perfect tracker;
* :class:`ConstantVelocityPolicy` (``cv``): keeps its speed and heading;
* :class:`IdmRoutePolicy` (``idm``): a PDM-Closed-style planner: proposals
  of lateral offsets from the route centerline x target speeds (IDM behind
  the nearest agent or red light in each corridor), rolled out 4 s against
  constant-velocity forecasts and scored with the PDM score's terms; the
  best one is followed (pure pursuit, bounded jerk);
* :class:`TrajectoryPolicy` (``model:PATH``, ``model:run:NAME``,
  ``model:MODULE:ATTR``): the adapter for any trained model with a planning
  head: the model implements :class:`Planner` (ego-frame waypoints from a
  :class:`PlanningInput`); ``datadrive.models``' ``ModelPlanner`` does), the
  adapter tracks the waypoints with pure pursuit and a speed controller.

Notation:
    S: scenarios. A: agents. R: route points. H: planned waypoints or proposal steps. Y: lateral offsets.
    F: target speeds. J: poses tested per proposal. C: agents checked against the proposals.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from datadrive.core.scenario import ObjectType
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
    "PdmConfig",
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


_BIG = 1e9


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


@dataclass(frozen=True)
class PdmConfig:
    """The PDM-Closed-style planner's settings (defaults: tuPlan Garage's ``pdm_closed_planner.yaml``).

    Attributes:
        idm: The proposals' IDM (BatchIDMPolicy: a_max 1.5, decel 3.0 m/s², headway 1.5 s, min gap 1 m).
        speed_fractions: Target speeds as fractions of the speed limit.
        lateral_offsets_m: Proposal paths beside the route centerline (the centerline is always one).
        fallback_speed_mps: Target where the map gives no speed limit (or the ego's initial speed if faster).
        horizon_s: How far each proposal is simulated and scored.
        proposal_dt_s: Step of that simulation (PDM-Closed: 0.1 s; coarser is cheaper, see docs/sim.md).
        lateral_time_constant_s: How fast a proposal moves from the ego's lateral offset to its own.
        candidates: Agents (nearest first, among the simulator's neighbours) checked against the proposals.
        emergency_time_s: Brake when the chosen proposal collides within this time ...
        emergency_speed_mps: ... and the ego is at most this fast (PDMEmergencyBrake).
        lookahead_min_m: Least pure-pursuit lookahead (grows with speed, 1 s ahead).
        max_jerk_mps3: How fast the commanded acceleration may change (the tracker's smoothing: PDM-Closed
            tracks its trajectory with an LQR controller); braking for a proposal that is not free of
            collision and TTC risk is not limited.
    """

    idm: IdmParams = field(
        default_factory=lambda: IdmParams(
            a_max_mps2=1.5, b_comf_mps2=3.0, time_headway_s=1.5, s0_m=1.0, a_min_mps2=-3.0
        )
    )
    speed_fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    lateral_offsets_m: tuple[float, ...] = (-1.0, 1.0)
    fallback_speed_mps: float = 15.0
    horizon_s: float = 4.0
    proposal_dt_s: float = 0.5
    lateral_time_constant_s: float = 1.0
    candidates: int = 8
    emergency_time_s: float = 2.0
    emergency_speed_mps: float = 5.0
    lookahead_min_m: float = 4.0
    max_jerk_mps3: float = 3.0


_PROGRESS_THRESHOLD_M = 0.1  # PDM scorer: below this best progress, every proposal gets full progress
_WEIGHTS = (5.0, 5.0, 2.0)  # progress, TTC, comfort (PDM scorer / NAVSIM v1)
_TTC_LOOKAHEAD = (1, 2)  # proposal steps the ego is projected at constant velocity for the TTC check
_LON_ACCEL = (-4.05, 2.40)  # nuPlan's comfort bounds
_LON_JERK = 4.13


class IdmRoutePolicy(Policy):
    """A PDM-Closed-style planner: IDM speed proposals on the route centerline and beside it, scored.

    Each step, every scenario of the batch at once (see :class:`PdmConfig` and docs/sim.md):

    1. the ego's place on its route: a windowed nearest-point search around last step's index;
    2. the agents near it (the simulator's broad phase: the ego's nearest neighbours) projected onto
       the route (coarse-to-fine, in a window ahead): arc length and lateral offset;
    3. proposals: every lateral offset (the centerline and ``lateral_offsets_m``) x every target speed
       (``speed_fractions`` of the route's speed limit); each is rolled out for ``horizon_s`` with IDM
       behind the nearest agent (or red light) in its corridor, the agents moving at constant velocity;
    4. each proposal is scored as PDM-Closed scores (NAVSIM v1's PDM score terms): at-fault collision
       (oriented boxes, only pairs whose circles touch are tested), drivable area (the route's
       drivable profile), time to collision (the ego projected at constant velocity), ego progress
       (normalised by the best proposal), comfort (longitudinal acceleration and jerk bounds);
       ``score = NC * DAC * (5 EP + 5 TTC + 2 C) / 12``; the best wins (ties: the first, centerline
       and slowest first, as PDM-Closed orders them);
    5. PDM's emergency brake: the winner collides within 2 s while the ego is slower than 5 m/s;
    6. the winner's first acceleration, and pure-pursuit steering toward its path 1 s ahead.
    """

    name = "idm"

    def __init__(self, config: PdmConfig | None = None) -> None:
        self.cfg = config or PdmConfig()
        self._route_index: Array | None = None
        self._fallback: Array | None = None
        self._a_prev: Array | None = None

    def setup(self, batch: SimBatch) -> None:
        xp = batch.xp
        r = batch.route_xy
        d2 = (r[..., 0] - batch.log_x[:, 0, 0][:, None]) ** 2 + (
            r[..., 1] - batch.log_y[:, 0, 0][:, None]
        ) ** 2
        self._route_index = xp.argmin(d2, axis=1)
        self._fallback = xp.maximum(xp.abs(batch.log_speed[:, 0, 0]), self.cfg.fallback_speed_mps)
        self._a_prev = xp.zeros((batch.shape[0],))

    # ------------------------------------------------------------------ the route

    def _locate(self, xp: Backend, b: SimBatch, px: Array, py: Array, i0: Array, lo: int, hi: int) -> Array:
        """``px``/``py`` ``(S, n)`` -> nearest route index in ``i0 + [lo, hi)`` (``(S, n)``)."""
        R = b.route_x.shape[1]
        w = xp.clip(i0[:, None, None] + xp.arange(hi - lo)[None, None, :] + lo, 0, R - 1)  # (S, 1, W)
        S = px.shape[0]
        ww = w.reshape(S, -1)
        rx = xp.gather(b.route_x, ww, axis=1)[:, None, :]
        ry = xp.gather(b.route_y, ww, axis=1)[:, None, :]
        d2 = (rx - px[..., None]) ** 2 + (ry - py[..., None]) ** 2
        j = xp.argmin(d2, axis=2)
        return xp.gather(w[:, 0, :], j, axis=1)

    def _arc_and_offset(
        self, xp: Backend, b: SimBatch, px: Array, py: Array, j: Array
    ) -> tuple[Array, Array]:
        """Arc length (route index units, fractional) and signed lateral offset at nearest index ``j``."""
        R = b.route_x.shape[1]
        j = xp.clip(j, 0, R - 2)
        rx, ry = xp.gather(b.route_x, j, axis=1), xp.gather(b.route_y, j, axis=1)
        rh = xp.gather(b.route_heading, j, axis=1)
        c, s = xp.cos(rh), xp.sin(rh)
        dx, dy = px - rx, py - ry
        along = c * dx + s * dy
        return xp.astype(j, "float") + along, -s * dx + c * dy

    def _pose(self, xp: Backend, b: SimBatch, arc: Array, d: Array) -> tuple[Array, Array, Array]:
        """World pose at fractional route arc ``arc`` and lateral offset ``d`` (any ``(S, ...)`` shape)."""
        S = arc.shape[0]
        R = b.route_x.shape[1]
        flat = arc.reshape(S, -1)
        i = xp.clip(xp.floor(flat), 0, R - 2)
        f = flat - i
        ii = xp.astype(i, "int")
        x0, y0 = xp.gather(b.route_x, ii, axis=1), xp.gather(b.route_y, ii, axis=1)
        x1, y1 = xp.gather(b.route_x, ii + 1, axis=1), xp.gather(b.route_y, ii + 1, axis=1)
        h = xp.gather(b.route_heading, ii, axis=1).reshape(arc.shape)
        x = (x0 + f * (x1 - x0)).reshape(arc.shape)
        y = (y0 + f * (y1 - y0)).reshape(arc.shape)
        return x - xp.sin(h) * d, y + xp.cos(h) * d, h

    # ------------------------------------------------------------------ one step

    def act(self, obs: Observation) -> Action:
        b, cfg = obs.batch, self.cfg
        xp = b.xp
        if self._route_index is None or self._fallback is None or self._a_prev is None:
            raise RuntimeError("IdmRoutePolicy.act before setup()")
        S = b.shape[0]
        R = b.route_x.shape[1]
        ex, ey, eh, v = obs.ego_x_m, obs.ego_y_m, obs.ego_heading_rad, obs.ego_speed_mps
        le, we = obs.ego_length_m, obs.ego_width_m
        # 1. the ego on its route (windowed; a full search where it is lost)
        i0 = self._locate(xp, b, ex[:, None], ey[:, None], self._route_index, -4, 28)[:, 0]
        lost = xp.nonzero_flat(
            (xp.gather(b.route_x, i0[:, None], axis=1)[:, 0] - ex) ** 2
            + (xp.gather(b.route_y, i0[:, None], axis=1)[:, 0] - ey) ** 2
            > 64.0
        )
        if int(lost.shape[0]):
            d2 = (b.route_x[lost] - ex[lost][:, None]) ** 2 + (b.route_y[lost] - ey[lost][:, None]) ** 2
            i0 = xp.put(i0, lost, xp.argmin(d2, axis=1))
        self._route_index = i0
        s_e, d_e = self._arc_and_offset(xp, b, ex[:, None], ey[:, None], i0[:, None])
        s_e, d_e = s_e[:, 0], d_e[:, 0]
        # 2. the nearest agents, projected onto the route ahead (coarse-to-fine)
        nb, nb_ok = obs.neighbors[:, 0, :], obs.neighbors_ok[:, 0, :]
        ax, ay = xp.gather(obs.agents_x_m, nb, axis=1), xp.gather(obs.agents_y_m, nb, axis=1)
        d2_now = (ax - ex[:, None]) ** 2 + (ay - ey[:, None]) ** 2
        valid = nb_ok & xp.gather(obs.agents_valid, nb, axis=1)
        C = min(cfg.candidates, int(nb.shape[1]))
        pick = xp.smallest_k(xp.where(valid, d2_now, _BIG), C)
        nb = xp.gather(nb, pick, axis=1)
        valid = xp.gather(valid, pick, axis=1)
        ax, ay = xp.gather(ax, pick, axis=1), xp.gather(ay, pick, axis=1)
        ah = xp.gather(obs.agents_heading_rad, nb, axis=1)
        av = xp.gather(obs.agents_speed_mps, nb, axis=1)
        al = xp.gather(obs.agents_length_m, nb, axis=1)
        aw = xp.gather(obs.agents_width_m, nb, axis=1)
        at = xp.gather(obs.agents_type, nb, axis=1)
        j = self._locate_near(xp, b, ax, ay, self._locate_strided(xp, b, ax, ay, i0))
        s_a, d_a = self._arc_and_offset(xp, b, ax, ay, j)
        rh_a = xp.gather(b.route_heading, xp.clip(j, 0, R - 1), axis=1)
        v_along = av * xp.cos(ah - rh_a)
        # 3. proposals (S, Y, F): lateral offsets x target speeds
        offsets = (0.0, *cfg.lateral_offsets_m)
        Y, F = len(offsets), len(cfg.speed_fractions)
        off = xp.asarray(np.asarray(offsets, dtype=np.float64))[None, :, None]  # (1, Y, 1)
        frac = xp.asarray(np.asarray(cfg.speed_fractions, dtype=np.float64))[None, None, :]
        lim = xp.gather(b.route_speed_limit, i0[:, None], axis=1)[:, 0]
        target = xp.where(lim == lim, lim, self._fallback)  # NaN: no limit known
        v0 = xp.maximum(target[:, None, None] * frac, 0.1)  # (S, 1, F)
        # leader per lateral offset: the nearest agent ahead whose box overlaps the proposal's corridor
        corridor = (aw[:, None, :] + we[:, None, None]) / 2.0  # (S, 1, C)
        in_corr = valid[:, None, :] & (xp.abs(d_a[:, None, :] - off[..., 0][..., None]) < corridor)
        in_corr = in_corr & (s_a[:, None, :] > s_e[:, None, None])
        gap0 = xp.where(
            in_corr, s_a[:, None, :] - s_e[:, None, None] - (al[:, None, :] + le[:, None, None]) / 2, _BIG
        )
        k = xp.argmin(gap0, axis=2)  # (S, Y)
        lead_gap = xp.gather(gap0, k[..., None], axis=2)[..., 0]
        lead_v = xp.maximum(xp.gather(v_along, k, axis=1), 0.0)
        # red lights on the route: a stopped leader at the stop line, for every offset
        L = b.light_stop.shape[1]
        red = xp.gather(b.light_stop[:, :, obs.step], xp.clip(b.route_stop_light, 0, L - 1), axis=1)
        stop_gap = b.route_stop_s - s_e[:, None] - le[:, None] / 2.0
        stop_gap = xp.where(red & (b.route_stop_light >= 0) & (stop_gap > -1.0), stop_gap, _BIG)
        # the end of the route: PDM-Closed's "leading agent" when nothing else is ahead
        end_gap = xp.astype(b.route_len - 1, "float") - s_e - le / 2.0
        lg = xp.minimum(xp.min(stop_gap, axis=1), xp.maximum(end_gap, 0.0))[:, None]
        use_light = lg < lead_gap
        lead_gap = xp.where(use_light, lg, lead_gap)
        lead_v = xp.where(use_light, 0.0, lead_v)
        has = (lead_gap < _BIG / 2)[..., None]  # (S, Y, 1)
        lead_s = (s_e[:, None] + lead_gap + le[:, None] / 2.0)[..., None]  # where the leader's rear is
        lv = lead_v[..., None]
        H = max(1, round(cfg.horizon_s / cfg.proposal_dt_s))
        dtp = cfg.proposal_dt_s
        s_p = s_e[:, None, None] + (v0 + off) * 0.0  # (S, Y, F)
        v_p = v[:, None, None] + s_p * 0.0
        a_hist, s_hist, v_hist = [], [s_p], [v_p]
        for step in range(H):
            gap = lead_s + lv * (step * dtp) - s_p - le[:, None, None] / 2.0
            a = idm_accel(xp, v_p, v0, gap, v_p - lv, has, cfg.idm)
            a_hist.append(a)
            s_p = xp.maximum(s_p + v_p * dtp + 0.5 * a * dtp * dtp, s_p)  # IDM never reverses
            v_p = xp.maximum(v_p + a * dtp, 0.0)
            s_hist.append(s_p)
            v_hist.append(v_p)
        arcs = xp.stack(s_hist, axis=-1)  # (S, Y, F, H + 1)
        speeds = xp.stack(v_hist, axis=-1)
        times = xp.asarray(np.arange(H + 1) * dtp)
        tau = cfg.lateral_time_constant_s
        relax = xp.asarray(np.exp(-np.arange(H + 1) * dtp / tau))
        lat = off[..., None] + (d_e[:, None, None, None] - off[..., None]) * relax + arcs * 0.0
        px, py, ph = self._pose(xp, b, arcs, lat)  # (S, Y, F, H + 1)
        # 4. score: collisions (broad phase, then boxes), drivable area, TTC, progress, comfort
        reach = (xp.hypot(le, we)[:, None] + xp.hypot(al, aw)) / 2.0  # (S, C)
        behind = self._behind(xp, ex, ey, eh, le, ax, ay)  # (S, C) agents coming from behind: not at fault
        already = obb_overlap(
            ex[:, None], ey[:, None], eh[:, None], le[:, None], we[:, None], ax, ay, ah, al, aw, xp
        )
        fault_ok = valid & ~behind & ~already
        # the proposal poses, and (TTC) the ego projected at constant velocity from them k steps later,
        # all tested at once: (S, Y, F, J) poses against the agents at the matching times
        qx, qy, qh, tix, kind = [px], [py], [ph], [np.arange(H + 1)], [np.zeros(H + 1, dtype=np.int64)]
        for j, k in enumerate(_TTC_LOOKAHEAD, start=1):
            if k > H:
                continue
            m = H + 1 - k
            pv = speeds[..., :m]
            far = xp.where(pv > 5e-3, 0.0, _BIG)  # a stopped ego has no time to collision
            qx.append(px[..., :m] + pv * xp.cos(ph[..., :m]) * (k * dtp) + far)
            qy.append(py[..., :m] + pv * xp.sin(ph[..., :m]) * (k * dtp))
            qh.append(ph[..., :m])
            tix.append(np.arange(k, H + 1))
            kind.append(np.full(m, j, dtype=np.int64))
        pose_t = np.concatenate(tix)  # (J,) the time index of every pose
        collide = xp.asarray(np.concatenate(kind) == 0, "bool")
        # the agents at constant velocity at the poses' times, (S, C, J)
        tq = times[xp.asarray(pose_t, "int")][None, None, :]
        fx = ax[..., None] + (av * xp.cos(ah))[..., None] * tq
        fy = ay[..., None] + (av * xp.sin(ah))[..., None] * tq
        hit_any, hit_agent = self._hits(
            xp, xp.concat(qx, axis=3), xp.concat(qy, axis=3), xp.concat(qh, axis=3),
            fx, fy, ah, le, we, al, aw, at, reach, fault_ok,
        )  # fmt: skip
        hit_agent = xp.any(hit_agent & collide, axis=3)
        hit_object = xp.any(hit_any & collide, axis=3) & ~hit_agent
        nc = xp.where(hit_agent, 0.0, xp.where(hit_object, 0.5, 1.0))
        qt = xp.asarray(np.arange(H + 1) * dtp)[xp.asarray(pose_t, "int")]
        first_hit = xp.min(xp.where(hit_any & collide, qt, _BIG), axis=3)
        ttc = xp.where(xp.any(hit_any & ~collide, axis=3), 0.0, 1.0)
        # drivable area: the ego's lateral extent within the route's drivable profile at every pose
        ri = xp.astype(xp.clip(xp.floor(arcs), 0, R - 1), "int").reshape(S, -1)
        free_l = xp.gather(b.route_free_left, ri, axis=1).reshape(arcs.shape)
        free_r = xp.gather(b.route_free_right, ri, axis=1).reshape(arcs.shape)
        half_w = we[:, None, None, None] / 2.0
        inside = (lat + half_w <= free_l + 1e-9) & (lat - half_w >= -free_r - 1e-9)
        unknown = (free_l + free_r) <= 0.0  # the route leaves the mapped road: not the proposal's doing
        dac = xp.where(xp.all(inside | unknown, axis=3), 1.0, 0.0)
        # progress, normalised by the best proposal's (multiplied) progress
        mult = nc * dac
        raw = (arcs[..., -1] - arcs[..., 0]) * mult
        best = xp.max(xp.max(raw, axis=2), axis=1)[:, None, None]
        ep = xp.where(
            best > _PROGRESS_THRESHOLD_M, raw / xp.maximum(best, 1e-9), xp.where(mult > 0, 1.0, 0.0)
        )
        # comfort: longitudinal acceleration and jerk bounds over the horizon (from the last command)
        acc = xp.stack(a_hist, axis=-1)
        prev = self._a_prev[:, None, None, None] + acc[..., :1] * 0.0
        jerk = xp.abs(xp.concat([acc[..., :1] - prev, acc[..., 1:] - acc[..., :-1]], axis=-1)) / dtp
        comfy = xp.all((acc >= _LON_ACCEL[0]) & (acc <= _LON_ACCEL[1]) & (jerk <= _LON_JERK), axis=3)
        c = xp.where(comfy, 1.0, 0.0)
        score = mult * (_WEIGHTS[0] * ep + _WEIGHTS[1] * ttc + _WEIGHTS[2] * c) / sum(_WEIGHTS)
        flat = score.reshape(S, Y * F)
        best_i = xp.argmin(-flat + xp.asarray(np.arange(Y * F) * 1e-9)[None, :], axis=1)  # first of the best
        chosen_a = xp.gather(acc[..., 0].reshape(S, Y * F), best_i[:, None], axis=1)[:, 0]
        chosen_o = xp.take(xp.asarray(np.repeat(np.asarray(offsets, dtype=np.float64), F)), best_i)
        t_hit = xp.gather(first_hit.reshape(S, Y * F), best_i[:, None], axis=1)[:, 0]
        safe = xp.gather((nc * ttc).reshape(S, Y * F), best_i[:, None], axis=1)[:, 0] >= 1.0
        step_j = cfg.max_jerk_mps3 * b.dt_s
        low = xp.where(safe, self._a_prev - step_j, -_BIG)
        chosen_a = xp.clip(chosen_a, low, self._a_prev + step_j)
        # 5. PDM's emergency brake
        brake = (t_hit <= cfg.emergency_time_s) & (v <= cfg.emergency_speed_mps)
        chosen_a = xp.where(brake, xp.clip(-10.0 * v, _LON_ACCEL[0], _LON_ACCEL[1]), chosen_a)
        self._a_prev = chosen_a
        # 6. steering: pure pursuit toward the chosen path, 1 s ahead
        look = xp.maximum(v * 1.0, cfg.lookahead_min_m)
        lat_look = chosen_o + (d_e - chosen_o) * xp.exp(-look / xp.maximum(v, 1.0) / tau)
        tx, ty, _ = self._pose(xp, b, (s_e + look)[:, None], lat_look[:, None])
        steer = pure_pursuit(xp, obs, tx[:, 0], ty[:, 0])
        near_end = (i0 + 2) >= (b.route_len - 1)
        steer = xp.where(near_end, 0.0, steer)
        return Action(accel_mps2=chosen_a, steer_rad=steer)

    def _locate_near(self, xp: Backend, b: SimBatch, px: Array, py: Array, j0: Array) -> Array:
        """Nearest route point to each ``(S, n)`` point within 3 m of its own guess ``j0`` (the fine pass)."""
        R = b.route_x.shape[1]
        S, n = px.shape
        w = xp.clip(j0[..., None] + xp.arange(7)[None, None, :] - 3, 0, R - 1)  # (S, n, 7)
        ww = w.reshape(S, n * 7)
        rx = xp.gather(b.route_x, ww, axis=1).reshape(S, n, 7)
        ry = xp.gather(b.route_y, ww, axis=1).reshape(S, n, 7)
        d2 = (rx - px[..., None]) ** 2 + (ry - py[..., None]) ** 2
        return xp.gather(w, xp.argmin(d2, axis=2)[..., None], axis=2)[..., 0]

    def _locate_strided(self, xp: Backend, b: SimBatch, px: Array, py: Array, i0: Array) -> Array:
        """Nearest route point among every 4th in ``i0 + [-12, 120)`` (the coarse pass)."""
        R = b.route_x.shape[1]
        w = xp.clip(i0[:, None] + xp.arange(33)[None, :] * 4 - 12, 0, R - 1)  # (S, W)
        rx, ry = xp.gather(b.route_x, w, axis=1), xp.gather(b.route_y, w, axis=1)
        d2 = (rx[:, None, :] - px[..., None]) ** 2 + (ry[:, None, :] - py[..., None]) ** 2
        return xp.gather(w, xp.argmin(d2, axis=2), axis=1)

    @staticmethod
    def _behind(xp: Backend, ex: Array, ey: Array, eh: Array, le: Array, ax: Array, ay: Array) -> Array:
        """``(S, C)`` agents more than 150 degrees off the ego's heading, seen from its rear axle (nuPlan)."""
        rx = ex - xp.cos(eh) * 0.3 * le
        ry = ey - xp.sin(eh) * 0.3 * le
        dx, dy = ax - rx[:, None], ay - ry[:, None]
        n = xp.sqrt(dx * dx + dy * dy)
        cos_angle = (xp.cos(eh)[:, None] * dx + xp.sin(eh)[:, None] * dy) / xp.maximum(n, 1e-9)
        return cos_angle < float(np.cos(np.deg2rad(150.0)))

    @staticmethod
    def _hits(
        xp: Backend, px: Array, py: Array, ph: Array, fx: Array, fy: Array, ah: Array,
        le: Array, we: Array, al: Array, aw: Array, at: Array, reach: Array, ok: Array,
    ) -> tuple[Array, Array]:  # fmt: skip
        """``(S, Y, F, J)`` whether each ego pose meets an agent (``fx``/``fy`` ``(S, C, J)``: the agents at
        the poses' times), and whether that agent is a road user; oriented boxes are tested only
        where the enclosing circles touch.

        Two broad phases: a box per (scenario, agent, time) (the ego's poses at that time over every
        proposal), then circles for the (agent, time) left against the poses at that time, laid out
        ``(left, Y F)``; the exact oriented-box test runs only where the circles touch. Every pose and agent
        pair that the circles let through passes the box too, so the hits are those of testing all pairs.
        """
        S, Y, F, J = px.shape
        C = fx.shape[1]
        YF = Y * F
        W = YF * J
        # per (scenario, agent, time): the box around the ego's poses at that time (over every proposal)
        # against the agent then, grown by the reach; only the (agent, time) left are tested pose by pose
        # (about 7 % of them on the benchmark's traffic: the agents beside or ahead move with the ego)
        fpx, fpy = px.reshape(S, YF, J), py.reshape(S, YF, J)
        real = fpx < _BIG / 2  # a stopped ego's TTC poses are sent far away
        lo_x = xp.min(xp.where(real, fpx, _BIG), axis=1)[:, None, :]  # (S, 1, J)
        hi_x = xp.max(xp.where(real, fpx, -_BIG), axis=1)[:, None, :]
        lo_y, hi_y = xp.min(fpy, axis=1)[:, None, :], xp.max(fpy, axis=1)[:, None, :]
        r = reach[..., None]
        near = (
            ok[..., None]
            & (fx - r <= hi_x) & (fx + r >= lo_x)
            & (fy - r <= hi_y) & (fy + r >= lo_y)
        )  # fmt: skip
        none = xp.zeros(px.shape, "bool")
        sel = xp.nonzero_flat(near)  # flat indices into (S, C, J)
        if not int(sel.shape[0]):
            return none, none
        agent_of = sel // J  # flat index into (S, C)
        # (m, Y F): the ego's poses at that time, every proposal; the circle test, squares in place
        poses = ((agent_of // C) * W + sel % J)[:, None] + (xp.arange(YF) * J)[None, :]
        dx = xp.take(px, poses)
        dx -= xp.take(fx, sel)[:, None]
        dy = xp.take(py, poses)
        dy -= xp.take(fy, sel)[:, None]
        dx *= dx
        dy *= dy
        dx += dy
        rr = xp.take(reach, agent_of)[:, None]
        idx = xp.nonzero_flat(dx <= rr * rr)
        if not int(idx.shape[0]):
            return none, none
        k = idx // YF
        pose = xp.take(poses, idx)  # flat index into (S, Y, F, J)
        agent = xp.take(agent_of, k)  # flat index into (S, C)
        scen = agent // C
        at_time = xp.take(sel, k)  # flat index into (S, C, J)
        hit = obb_overlap(
            xp.take(px, pose), xp.take(py, pose), xp.take(ph, pose), xp.take(le, scen),
            xp.take(we, scen), xp.take(fx, at_time), xp.take(fy, at_time), xp.take(ah, agent),
            xp.take(al, agent), xp.take(aw, agent), xp,
        )  # fmt: skip
        road_user = xp.take(at, agent)
        road_user = (
            (road_user == int(ObjectType.VEHICLE))
            | (road_user == int(ObjectType.PEDESTRIAN))
            | (road_user == int(ObjectType.CYCLIST))
        )
        # only True is written, so a pose that meets several agents keeps True
        hits = xp.nonzero_flat(hit)
        hit_pose = xp.put(none, xp.take(pose, hits), xp.take(hit, hits))
        users = xp.nonzero_flat(hit & road_user)
        user_pose = xp.put(none, xp.take(pose, users), xp.take(hit, users))
        return hit_pose, user_pose


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
"""Built-in policies by name (``model:...`` loads a trained planner: see :func:`make_policy`)."""


def make_policy(spec: str, *, model_bytes: bytes | None = None, device: str | None = None) -> Policy:
    """A policy from its name.

    * ``log``, ``cv``, ``idm``: the built-in policies;
    * ``model:PATH``: a trained model file (``datadrive.models``; a training run's ``model.pt``),
      driven through its planning head (:class:`~datadrive.models.ModelPlanner`);
    * ``model:run:NAME``: a training run's model in the lake (the caller reads it: ``model_bytes``;
      :func:`~datadrive.sim.runner.simulate_lake` does);
    * ``model:MODULE:ATTR``: any :class:`Planner`, or a zero-argument factory of one.

    Args:
        model_bytes: The model file's bytes (for ``model:run:NAME``).
        device: Where a trained model runs (``cpu``, ``cuda``; default ``cpu``).

    Raises:
        ConfigError: unknown name, or a model that cannot be loaded.
    """
    if spec in POLICIES:
        return POLICIES[spec]()
    if spec.startswith("model:"):
        target = spec[len("model:") :]
        if model_bytes is not None or target.startswith("run:") or Path(target).is_file():
            return TrajectoryPolicy(_trained_planner(spec, target, model_bytes, device or "cpu"))
        module_name, _, attr = target.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attr or "planner")
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"--policy {spec}: cannot load it ({exc}); give a model file, run:NAME or MODULE:ATTR"
            ) from exc
        planner = found if isinstance(found, Planner) else found() if callable(found) else found
        if not isinstance(planner, Planner):
            raise ConfigError(f"--policy {spec}: {target} is not a Planner (plan(inputs) and waypoint_dt_s)")
        return TrajectoryPolicy(planner)
    raise ConfigError(
        f"unknown policy {spec!r}: choose {', '.join(POLICIES)}, "
        "model:PATH, model:run:NAME or model:MODULE:ATTR"
    )


def _trained_planner(spec: str, target: str, model_bytes: bytes | None, device: str) -> Planner:
    """A ``datadrive.models`` model (a file, or a run's bytes) as a :class:`Planner`."""
    if model_bytes is None and target.startswith("run:"):
        raise ConfigError(f"--policy {spec}: a training run's model is read from a lake (datadrive simulate)")
    try:
        from datadrive.models import ModelPlanner, PlanningPolicy, load_model
    except ImportError as exc:  # pragma: no cover - the models layer is part of datadrive
        raise ConfigError(f"--policy {spec}: trained models need datadrive.models and torch ({exc})") from exc
    from datadrive.errors import DatadriveError

    try:
        model, features, _ = load_model(model_bytes if model_bytes is not None else Path(target), spec)
        planner = ModelPlanner(PlanningPolicy(model, features, device))
    except DatadriveError as exc:
        raise ConfigError(f"--policy {spec}: {exc}") from exc
    if not isinstance(planner, Planner):  # pragma: no cover - ModelPlanner implements it
        raise ConfigError(f"--policy {spec}: the model does not plan")
    return planner
