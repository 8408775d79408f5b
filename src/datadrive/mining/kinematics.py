"""Per-state kinematics from a scenario's own timestamps, vectorised over (tracks, steps).

Every derivative is a windowed difference over the source's real
timestamps, never an assumed ``dt``: for state ``(a, t)`` the two samples
used are the last one at or before ``ts[t] - h`` and the first one at or
after ``ts[t] + h`` (at least one step away on each side), clipped to the
run of consecutive valid states that contains ``t``. A gap in a track is
never bridged; a state whose run has a single sample gets NaN. With
``h = 0`` this is the central difference (one-sided at the ends of a run).

What is computed, and from what:

* **velocity** ``(vx, vy)``: the source's own velocity where it is finite
  (trackers' velocities are smoother than differences of their jittery
  boxes), else the windowed derivative of the position. A source velocity
  of zero at the first or last state of a run, where the positions say the
  track moves faster than ``source_velocity_tolerance_mps``, is replaced by
  the derivative: some converters write 0 there (ScenarioNet's nuScenes
  tracks end at 0 m/s);
* **speed**: the norm of that velocity;
* **acceleration**: the windowed derivative of the velocity *vector*,
  split into a longitudinal part (along the direction of travel, negative
  when braking) and a lateral part (positive to the left). The direction of
  travel is the velocity's direction when the speed is above
  ``KinematicsConfig.heading_from_velocity_mps``, else the box heading;
* **jerk**: the windowed derivative of the longitudinal acceleration;
* **yaw rate**: the windowed derivative of the heading, wrapped (positive is
  counter-clockwise, i.e. turning left).

Unknown values are NaN (SQL ``NULL`` once written to the lake).

Notation:
    A: tracks. T: steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datadrive.core.frames import wrap_angle
from datadrive.core.scenario import Scenario
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt

__all__ = ["Kinematics", "KinematicsConfig", "compute_kinematics", "valid_runs", "windowed_derivative"]


@dataclass(frozen=True)
class KinematicsConfig:
    """How derivatives are taken.

    Attributes:
        velocity_window_s: Half-window for velocities derived from positions.
            0 is the central difference of neighbouring samples.
        accel_window_s: Half-window for the acceleration (derivative of velocity).
            0.5 s: trackers' velocities jitter by up to 1 m/s from one 10 Hz
            step to the next (Waymo, Lyft), which a 1 s difference brings to
            about 1 m/s^2; a braking manoeuvre lasts longer than that.
        jerk_window_s: Half-window for the jerk (derivative of acceleration).
        yaw_rate_window_s: Half-window for the yaw rate.
        prefer_source_velocity: Use the source's velocity where it is finite.
        source_velocity_tolerance_mps: A zero source velocity at the end of a
            run is replaced where the positions move faster than this.
        heading_from_velocity_mps: Above this speed, the direction of travel is
            the velocity's; below it, the box heading (a parked car's velocity
            direction is noise).
    """

    velocity_window_s: float = 0.0
    accel_window_s: float = 0.5
    jerk_window_s: float = 0.5
    yaw_rate_window_s: float = 0.25
    prefer_source_velocity: bool = True
    source_velocity_tolerance_mps: float = 1.5
    heading_from_velocity_mps: float = 1.0


@dataclass(frozen=True)
class Kinematics:
    """Kinematic quantities per state; NaN where unknown (and on invalid states).

    Attributes:
        vx_mps: ``(A, T)`` velocity x in the scenario's frame.
        vy_mps: ``(A, T)`` velocity y.
        speed_mps: ``(A, T)`` norm of the velocity.
        accel_mps2: ``(A, T)`` longitudinal acceleration (negative: braking).
        lat_accel_mps2: ``(A, T)`` lateral acceleration, positive to the left.
        jerk_mps3: ``(A, T)`` derivative of ``accel_mps2``.
        yaw_rate_rps: ``(A, T)`` heading rate, positive counter-clockwise.
        travel_heading_rad: ``(A, T)`` direction of travel (velocity's above the
            config's speed, else the box heading).
    """

    vx_mps: NDArrayFloat
    vy_mps: NDArrayFloat
    speed_mps: NDArrayFloat
    accel_mps2: NDArrayFloat
    lat_accel_mps2: NDArrayFloat
    jerk_mps3: NDArrayFloat
    yaw_rate_rps: NDArrayFloat
    travel_heading_rad: NDArrayFloat


def valid_runs(valid: NDArrayBool) -> tuple[NDArrayInt, NDArrayInt]:
    """First and last step of the run of consecutive valid states around each state.

    Args:
        valid: ``(A, T)`` bool.

    Returns:
        ``(A, T)`` run start and ``(A, T)`` run end (inclusive); meaningless on
        invalid states.
    """
    a, t = valid.shape
    steps = np.broadcast_to(np.arange(t, dtype=np.int64), (a, t))
    prev = np.zeros_like(valid)
    prev[:, 1:] = valid[:, :-1]
    nxt = np.zeros_like(valid)
    nxt[:, :-1] = valid[:, 1:]
    starts = np.where(valid & ~prev, steps, 0)
    run_start: NDArrayInt = np.maximum.accumulate(starts, axis=1)
    ends = np.where(valid & ~nxt, steps, t - 1)
    run_end: NDArrayInt = np.minimum.accumulate(ends[:, ::-1], axis=1)[:, ::-1]
    return run_start, run_end


def _window_bounds(
    valid: NDArrayBool, timestamps_ns: NDArrayInt, half_window_s: float
) -> tuple[NDArrayInt, NDArrayInt, NDArrayFloat]:
    """``(A, T)`` lower and upper sample indices and the time between them (NaN: no pair)."""
    t = timestamps_ns.shape[0]
    ts = timestamps_ns.astype(np.int64)
    h_ns = round(half_window_s * 1e9)
    steps = np.arange(t, dtype=np.int64)
    lo_t = np.searchsorted(ts, ts - h_ns, side="right") - 1  # last sample at or before ts - h
    hi_t = np.searchsorted(ts, ts + h_ns, side="left")  # first sample at or after ts + h
    lo_t = np.minimum(np.maximum(lo_t, 0), np.maximum(steps - 1, 0))
    hi_t = np.maximum(np.minimum(hi_t, t - 1), np.minimum(steps + 1, t - 1))
    run_start, run_end = valid_runs(valid)
    lo = np.maximum(lo_t[None, :], run_start)
    hi = np.minimum(hi_t[None, :], run_end)
    dt_s = (ts[hi] - ts[lo]).astype(np.float64) / 1e9
    dt_s = np.where(valid & (hi > lo), dt_s, np.nan)
    return lo, hi, dt_s


def windowed_derivative(
    values: NDArrayFloat,
    valid: NDArrayBool,
    timestamps_ns: NDArrayInt,
    half_window_s: float,
    *,
    angle: bool = False,
    times_s: NDArrayFloat | None = None,
) -> NDArrayFloat:
    """Derivative of per-state values by windowed differences over real timestamps.

    Args:
        values: ``(A, T)`` or ``(A, T, D)`` values; NaN propagates.
        valid: ``(A, T)`` bool.
        timestamps_ns: ``(T,)`` int64, strictly increasing.
        half_window_s: Half-window (see the module docstring).
        angle: Wrap differences into ``[-pi, pi)`` (headings).
        times_s: ``(A, T)`` the time each value refers to, when not its
            step's timestamp (a difference quotient refers to the middle of
            its two samples); the window is still chosen by timestamps.

    Returns:
        The derivative per second, same shape as ``values``, NaN where there is
        no pair of samples.
    """
    a, t = valid.shape
    if t < 2 or a == 0:
        return np.full(values.shape, np.nan)
    lo, hi, dt_s = _window_bounds(valid, timestamps_ns, half_window_s)
    rows = np.arange(a)[:, None]
    if times_s is not None:
        dt_s = np.where(np.isfinite(dt_s), times_s[rows, hi] - times_s[rows, lo], np.nan)
        dt_s = np.where(dt_s > 0, dt_s, np.nan)
    diff = values[rows, hi] - values[rows, lo]
    if angle:
        diff = wrap_angle(diff)
    if values.ndim == 3:
        out: NDArrayFloat = diff / dt_s[..., None]
    else:
        out = diff / dt_s
    return out


def _reference_times(valid: NDArrayBool, timestamps_ns: NDArrayInt, half_window_s: float) -> NDArrayFloat:
    """``(A, T)`` the time a windowed difference refers to: the middle of its two samples."""
    lo, hi, dt_s = _window_bounds(valid, timestamps_ns, half_window_s)
    t_s = (timestamps_ns - timestamps_ns[0]).astype(np.float64) / 1e9
    out: NDArrayFloat = np.where(np.isfinite(dt_s), (t_s[lo] + t_s[hi]) / 2.0, np.nan)
    return out


def compute_kinematics(scenario: Scenario, config: KinematicsConfig | None = None) -> Kinematics:
    """Velocity, speed, acceleration, jerk and yaw rate of every state of ``scenario``.

    Args:
        scenario: A validated scenario.
        config: Window sizes and choices (defaults documented on :class:`KinematicsConfig`).

    Returns:
        :class:`Kinematics`, every array ``(A, T)``.
    """
    cfg = config or KinematicsConfig()
    tr = scenario.tracks
    valid = tr.valid
    ts = scenario.timestamps_ns
    vel = windowed_derivative(tr.xy_m, valid, ts, cfg.velocity_window_s)
    t_s = (ts - ts[0]).astype(np.float64) / 1e9 if ts.shape[0] else np.zeros(0)
    vel_t = (
        _reference_times(valid, ts, cfg.velocity_window_s)
        if ts.shape[0] > 1
        else np.full(valid.shape, np.nan)
    )
    known = np.zeros(valid.shape, dtype=bool)
    if cfg.prefer_source_velocity:
        source = tr.velocity_mps
        derived_speed = np.hypot(vel[..., 0], vel[..., 1])
        source_speed = np.hypot(source[..., 0], source[..., 1])
        run_start, run_end = valid_runs(valid)
        steps = np.arange(valid.shape[1])[None, :]
        end = (run_start == steps) | (run_end == steps)
        with np.errstate(invalid="ignore"):
            zeroed = end & (source_speed == 0.0) & (derived_speed > cfg.source_velocity_tolerance_mps)
        known = np.isfinite(source).all(axis=-1) & valid & ~zeroed
        vel = np.where(known[..., None], source, vel)
    vel_t = np.where(known, t_s[None, :], vel_t)  # a measured velocity refers to its own step
    vel = np.where(valid[..., None], vel, np.nan)
    speed = np.hypot(vel[..., 0], vel[..., 1])
    moving = speed > cfg.heading_from_velocity_mps
    travel = np.where(moving, np.arctan2(vel[..., 1], vel[..., 0]), tr.heading_rad)
    travel = np.where(valid, travel, np.nan)
    acc_vec = windowed_derivative(vel, valid, ts, cfg.accel_window_s, times_s=vel_t)
    c, s = np.cos(travel), np.sin(travel)
    accel = acc_vec[..., 0] * c + acc_vec[..., 1] * s
    lat = -acc_vec[..., 0] * s + acc_vec[..., 1] * c
    accel_t = vel_t
    if ts.shape[0] > 1 and valid.shape[0]:
        rows = np.arange(valid.shape[0])[:, None]
        lo, hi, _ = _window_bounds(valid, ts, cfg.accel_window_s)
        accel_t = (vel_t[rows, lo] + vel_t[rows, hi]) / 2.0  # the time each acceleration refers to
    jerk = windowed_derivative(accel, valid, ts, cfg.jerk_window_s, times_s=accel_t)
    heading = np.where(valid, tr.heading_rad, np.nan)
    yaw_rate = windowed_derivative(heading, valid, ts, cfg.yaw_rate_window_s, angle=True)
    return Kinematics(
        vx_mps=vel[..., 0],
        vy_mps=vel[..., 1],
        speed_mps=speed,
        accel_mps2=accel,
        lat_accel_mps2=lat,
        jerk_mps3=jerk,
        yaw_rate_rps=yaw_rate,
        travel_heading_rad=travel,
    )
