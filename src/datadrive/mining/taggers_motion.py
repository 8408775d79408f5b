"""Taggers on one track's own motion: braking, accelerating, cornering, swerving, the ego's speed.

Each tagger builds an ``(A, T)`` mask of qualifying states from the
kinematics of :class:`~datadrive.mining.context.ScenarioContext` (one
vectorised expression), takes its runs of consecutive steps, and turns the
runs that last long enough into events. The acceleration taggers consider
only states at least one acceleration half-window inside their track's valid
run, where the estimate is two-sided. Thresholds and their sources are on
the config classes in :mod:`datadrive.mining.events`.

Notation:
    A: tracks. T: steps. R: runs.
"""

from __future__ import annotations

import numpy as np

from datadrive.core.frames import wrap_angle
from datadrive.core.scenario import ObjectType
from datadrive.core.typing import NDArrayBool, NDArrayFloat
from datadrive.mining.context import ScenarioContext
from datadrive.mining.events import (
    EgoSpeedingConfig,
    EgoStationaryConfig,
    Event,
    HardAccelerationConfig,
    HardBrakingConfig,
    LateralAccelerationConfig,
    SwerveConfig,
    make_event,
)

__all__ = [
    "ego_speeding",
    "ego_stationary",
    "hard_acceleration",
    "hard_braking",
    "high_lateral_acceleration",
    "swerve",
]


def _vehicles(ctx: ScenarioContext) -> NDArrayBool:
    """Vehicle states far enough inside their valid run for a two-sided acceleration estimate."""
    margin = ctx.config.kinematics.accel_window_s
    out: NDArrayBool = ctx.of_type(ObjectType.VEHICLE)[:, None] & ctx.interior(margin)
    return out


def _peak_events(
    ctx: ScenarioContext,
    event_type: str,
    mask: NDArrayBool,
    values: NDArrayFloat,
    min_duration_s: float,
    detail: str,
    max_plausible: float,
) -> list[Event]:
    """One event per run of ``mask``; severity the run's peak of ``values`` (implausible peaks dropped)."""
    rows, first, last = ctx.runs(mask, min_duration_s=min_duration_s)
    out = []
    for r, f, la in zip(rows.tolist(), first.tolist(), last.tolist(), strict=True):
        seg = values[r, f : la + 1]
        peak = float(np.nanmax(seg))
        if peak > max_plausible:
            continue
        out.append(make_event(ctx, event_type, [r], f, la, peak, **{detail: peak}))
    return out


def hard_braking(ctx: ScenarioContext, cfg: HardBrakingConfig) -> list[Event]:
    """Vehicles decelerating at ``cfg.decel_mps2`` or more while moving (see :class:`HardBrakingConfig`)."""
    k = ctx.kinematics
    with np.errstate(invalid="ignore"):
        mask = _vehicles(ctx) & (k.accel_mps2 <= -cfg.decel_mps2) & (k.speed_mps >= cfg.min_speed_mps)
    return _peak_events(
        ctx,
        "hard_braking",
        mask,
        -k.accel_mps2,
        cfg.min_duration_s,
        "peak_decel_mps2",
        cfg.max_plausible_mps2,
    )


def hard_acceleration(ctx: ScenarioContext, cfg: HardAccelerationConfig) -> list[Event]:
    """Vehicles accelerating at ``cfg.accel_mps2`` or more (see :class:`HardAccelerationConfig`)."""
    k = ctx.kinematics
    with np.errstate(invalid="ignore"):
        mask = _vehicles(ctx) & (k.accel_mps2 >= cfg.accel_mps2)
    return _peak_events(
        ctx,
        "hard_acceleration",
        mask,
        k.accel_mps2,
        cfg.min_duration_s,
        "peak_accel_mps2",
        cfg.max_plausible_mps2,
    )


def high_lateral_acceleration(ctx: ScenarioContext, cfg: LateralAccelerationConfig) -> list[Event]:
    """Moving vehicles with ``|lateral acceleration| >= cfg.lat_accel_mps2``."""
    k = ctx.kinematics
    lat = np.abs(k.lat_accel_mps2)
    with np.errstate(invalid="ignore"):
        mask = _vehicles(ctx) & (lat >= cfg.lat_accel_mps2) & (k.speed_mps >= cfg.min_speed_mps)
    return _peak_events(
        ctx,
        "high_lateral_acceleration",
        mask,
        lat,
        cfg.min_duration_s,
        "peak_lat_accel_mps2",
        cfg.max_plausible_mps2,
    )


def _next_true(mask: NDArrayBool) -> NDArrayFloat:
    """``(A, T)`` the first step at or after each step where ``mask`` holds (T if none), as float."""
    _a, t = mask.shape
    idx = np.where(mask, np.arange(t)[None, :], t).astype(np.float64)
    out: NDArrayFloat = np.minimum.accumulate(idx[:, ::-1], axis=1)[:, ::-1]
    return out


def swerve(ctx: ScenarioContext, cfg: SwerveConfig) -> list[Event]:
    """A lateral acceleration peak one way, then the other within ``cfg.window_s``, course kept."""
    k = ctx.kinematics
    t = ctx.num_steps
    with np.errstate(invalid="ignore"):
        moving = _vehicles(ctx) & (k.speed_mps >= cfg.min_speed_mps)
        left = moving & (k.lat_accel_mps2 >= cfg.lat_accel_mps2)
        right = moving & (k.lat_accel_mps2 <= -cfg.lat_accel_mps2)
    next_left, next_right = _next_true(left), _next_true(right)
    window_end = np.searchsorted(ctx.t_s, ctx.t_s + cfg.window_s, side="right") - 1  # (T,)
    opp = np.where(left, next_right, np.where(right, next_left, t))
    ok = (left | right) & (opp <= window_end[None, :])
    rows, starts = np.nonzero(ok)
    spans: dict[int, list[list[int]]] = {}
    for r, s in zip(rows.tolist(), starts.tolist(), strict=True):
        e = int(opp[r, s])
        if not ctx.valid[r, s : e + 1].all():
            continue
        turn = abs(float(wrap_angle(k.travel_heading_rad[r, e] - k.travel_heading_rad[r, s])))
        if np.degrees(turn) > cfg.max_heading_change_deg:
            continue
        track = spans.setdefault(r, [])
        if track and s <= track[-1][1]:
            track[-1][1] = max(track[-1][1], e)
        else:
            track.append([s, e])
    out = []
    for r, segs in spans.items():
        for s, e in segs:
            lat = k.lat_accel_mps2[r, s : e + 1]
            if float(np.nanmax(np.abs(lat))) > cfg.max_plausible_mps2:
                continue
            p2p = float(np.nanmax(lat) - np.nanmin(lat))
            first_left = bool(left[r, s])
            out.append(
                make_event(
                    ctx,
                    "swerve",
                    [r],
                    s,
                    e,
                    p2p,
                    peak_to_peak_lat_accel_mps2=p2p,
                    first_direction="left" if first_left else "right",
                )
            )
    return out


def ego_stationary(ctx: ScenarioContext, cfg: EgoStationaryConfig) -> list[Event]:
    """The ego below ``cfg.max_speed_mps`` for at least ``cfg.min_duration_s``."""
    if ctx.ego_index is None:
        return []
    e = ctx.ego_index
    k = ctx.kinematics
    mask = np.zeros_like(ctx.valid)
    with np.errstate(invalid="ignore"):
        mask[e] = ctx.valid[e] & (k.speed_mps[e] < cfg.max_speed_mps)
    _rows, first, last = ctx.runs(mask, min_duration_s=cfg.min_duration_s)
    out = []
    for f, la in zip(first.tolist(), last.tolist(), strict=True):
        dur = float(ctx.t_s[la] - ctx.t_s[f])
        out.append(
            make_event(
                ctx,
                "ego_stationary",
                [e],
                f,
                la,
                dur,
                duration_s=dur,
                max_speed_mps=float(np.nanmax(k.speed_mps[e, f : la + 1])),
            )
        )
    return out


def ego_speeding(ctx: ScenarioContext, cfg: EgoSpeedingConfig) -> list[Event]:
    """The ego above its lane's limit by more than ``cfg.tolerance_fraction``."""
    if ctx.ego_index is None or ctx.map is None:
        return []
    e = ctx.ego_index
    speed = ctx.kinematics.speed_mps[e]
    limit = ctx.map.speed_limit_mps[e]
    mask = np.zeros_like(ctx.valid)
    with np.errstate(invalid="ignore"):
        mask[e] = (speed > limit * (1.0 + cfg.tolerance_fraction)) & ctx.valid[e]
    _rows, first, last = ctx.runs(mask, min_duration_s=cfg.min_duration_s)
    out = []
    for f, la in zip(first.tolist(), last.tolist(), strict=True):
        excess = speed[f : la + 1] - limit[f : la + 1]
        peak = float(np.nanmax(excess))
        out.append(
            make_event(
                ctx,
                "ego_speeding",
                [e],
                f,
                la,
                peak,
                peak_excess_mps=peak,
                limit_mps=float(np.nanmin(limit[f : la + 1])),
                peak_speed_mps=float(np.nanmax(speed[f : la + 1])),
            )
        )
    return out
