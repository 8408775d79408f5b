"""Official open-loop motion-forecasting metrics: Argoverse 2 and Waymo Open Motion, vectorised.

Every function here reproduces a published definition exactly; the
formulas and their sources are in ``docs/evaluation.md``. Results carry
:data:`METRICS_VERSION`, so numbers computed by two different
implementations are never compared silently: bump it whenever a definition
or its edge cases change.

**Argoverse 2** (minADE, minFDE, miss rate, brier-minFDE for K = 1 and 6).
The per-trajectory primitives are those of
``av2.datasets.motion_forecasting.eval.metrics`` (``compute_ade``,
``compute_fde``, ``compute_is_missed_prediction``, ``compute_brier_fde``);
the per-agent procedure is the Argoverse challenge's
(``argoverse.evaluation.eval_forecasting.get_displacement_errors_and_miss_rate``):

1. keep the K most probable forecasts (stable sort by descending
   probability) and renormalise their probabilities to sum to 1;
2. the *best* forecast ``k*`` is the one with the smallest endpoint error
   (the first one on ties);
3. ``minFDE = FDE[k*]``, ``minADE = ADE[k*]`` (the ADE of the best-endpoint
   forecast, not the smallest ADE), ``miss = minFDE > 2 m``,
   ``brier-minFDE = minFDE + (1 - p[k*])**2``.

**Waymo Open Motion** (minADE, minFDE, miss rate at 3, 5 and 8 s), as
``waymo_open_dataset/metrics/motion_metrics.cc`` computes them with
``GetChallengeConfig()``: predictions at 2 Hz against tracks at 10 Hz, the
first K predictions *in the order given* (confidences are not used by these
three metrics), ground-truth steps that are not valid skipped, and a miss
judged per step in the ground truth's frame with lateral and longitudinal
thresholds scaled by the object's speed at the current step.

Notation:
    N: number of forecast targets (agents, or joint groups for WOMD).
    K: number of forecasts (modes) per target.
    T: number of future steps (AV2: 60 at 10 Hz).
    J: agents in one joint prediction (1 for the marginal challenge).
    S: track steps (WOMD: history + current + future, 91).
    P: prediction steps (WOMD: 16 at 2 Hz).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from datadrive.core.scenario import ObjectType
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt
from datadrive.errors import MetricInputError

__all__ = [
    "AV2_MISS_THRESHOLD_M",
    "METRICS_VERSION",
    "WOMD_CHALLENGE",
    "Av2AgentMetrics",
    "MeasurementStep",
    "WomdConfig",
    "WomdObjectMetrics",
    "av2_agent_metrics",
    "av2_summary",
    "womd_object_metrics",
    "womd_summary",
]

METRICS_VERSION = "datadrive-metrics/1"
"""The version of these definitions; recorded with every result."""

AV2_MISS_THRESHOLD_M = 2.0
"""Argoverse 2's miss threshold on the endpoint error."""


# --------------------------------------------------------------------------- Argoverse 2


@dataclass(frozen=True)
class Av2AgentMetrics:
    """Argoverse 2 metrics of each target at one K.

    Attributes:
        k: The number of forecasts kept.
        min_ade_m: ``(N,)`` ADE of the best-endpoint forecast.
        min_fde_m: ``(N,)`` smallest endpoint error.
        missed: ``(N,)`` bool, ``min_fde_m > 2 m``.
        brier_min_fde_m: ``(N,)`` ``min_fde_m + (1 - p[k*])**2``.
        best_mode: ``(N,)`` index (into the forecasts as given) of the best forecast.
    """

    k: int
    min_ade_m: NDArrayFloat
    min_fde_m: NDArrayFloat
    missed: NDArrayBool
    brier_min_fde_m: NDArrayFloat
    best_mode: NDArrayInt


def av2_agent_metrics(
    forecast_xy_m: NDArrayFloat,
    probability: NDArrayFloat,
    truth_xy_m: NDArrayFloat,
    *,
    k: int,
    miss_threshold_m: float = AV2_MISS_THRESHOLD_M,
) -> Av2AgentMetrics:
    """Per-target Argoverse 2 metrics at ``k`` forecasts.

    Args:
        forecast_xy_m: ``(N, K, T, 2)`` forecasts, any frame (the truth's).
        probability: ``(N, K)`` forecast probabilities in ``[0, 1]``; only
            their order and ratios matter (the kept ones are renormalised).
        truth_xy_m: ``(N, T, 2)`` ground truth, every step observed (AV2
            scores only fully observed tracks).
        k: How many forecasts to keep (1 or 6 in the challenge); fewer are
            kept when fewer are given.
        miss_threshold_m: The miss threshold on the endpoint error.

    Raises:
        MetricInputError: on shapes that do not match, non-finite values,
            probabilities outside ``[0, 1]``, or kept probabilities summing to 0.
    """
    f = np.asarray(forecast_xy_m, dtype=np.float64)
    p = np.asarray(probability, dtype=np.float64)
    g = np.asarray(truth_xy_m, dtype=np.float64)
    if f.ndim != 4 or f.shape[-1] != 2:
        raise MetricInputError(f"forecasts must have shape (N, K, T, 2), not {f.shape}")
    n, num_modes, t, _ = f.shape
    if p.shape != (n, num_modes):
        raise MetricInputError(f"probabilities must have shape {(n, num_modes)}, not {p.shape}")
    if g.shape != (n, t, 2):
        raise MetricInputError(f"ground truth must have shape {(n, t, 2)}, not {g.shape}")
    if k < 1:
        raise MetricInputError(f"k must be at least 1, not {k}")
    if t < 1 or num_modes < 1:
        raise MetricInputError("need at least one forecast of at least one step")
    if not (np.isfinite(f).all() and np.isfinite(g).all() and np.isfinite(p).all()):
        raise MetricInputError("forecasts, probabilities and ground truth must be finite")
    if ((p < 0.0) | (p > 1.0)).any():
        raise MetricInputError("at least one forecast probability falls outside [0, 1]")
    kept = min(k, num_modes)
    order = np.argsort(-p, axis=1, kind="stable")[:, :kept]  # (N, k) most probable first
    rows = np.arange(n)[:, None]
    p_kept = p[rows, order]
    total = p_kept.sum(axis=1, keepdims=True)
    if (total <= 0.0).any():
        raise MetricInputError("the kept forecast probabilities of a target sum to 0")
    p_kept = p_kept / total
    f_kept = f[rows, order]  # (N, k, T, 2)
    errors = np.linalg.norm(f_kept - g[:, None], axis=-1)  # (N, k, T)
    fde = errors[..., -1]
    best = np.argmin(fde, axis=1)  # first minimum on ties, as the challenge's strict "<"
    ar = np.arange(n)
    min_fde = fde[ar, best]
    min_ade = errors[ar, best].mean(axis=-1)
    brier = min_fde + np.square(1.0 - p_kept[ar, best])
    return Av2AgentMetrics(
        k=k,
        min_ade_m=min_ade,
        min_fde_m=min_fde,
        missed=min_fde > miss_threshold_m,
        brier_min_fde_m=brier,
        best_mode=order[ar, best].astype(np.int64),
    )


def av2_summary(metrics: Av2AgentMetrics, mask: NDArrayBool | None = None) -> dict[str, float]:
    """Means over targets (optionally a subset), keyed ``minADE_K`` ... as the leaderboard names them.

    Returns NaN values when no target is selected.
    """
    sel = np.ones_like(metrics.missed) if mask is None else np.asarray(mask, dtype=np.bool_)
    k = metrics.k
    count = int(sel.sum())

    def mean(x: NDArrayFloat) -> float:
        return float(x[sel].mean()) if count else float("nan")

    return {
        f"minADE_{k}": mean(metrics.min_ade_m),
        f"minFDE_{k}": mean(metrics.min_fde_m),
        f"MR_{k}": mean(metrics.missed.astype(np.float64)),
        f"brier-minFDE_{k}": mean(metrics.brier_min_fde_m),
    }


# --------------------------------------------------------------------------- Waymo Open Motion


@dataclass(frozen=True)
class MeasurementStep:
    """One measurement step of the WOMD metrics.

    Attributes:
        prediction_step: Index into the predictions (2 Hz: 5 is 3 s, 9 is 5 s, 15 is 8 s).
        lateral_miss_threshold_m: Lateral miss threshold before speed scaling.
        longitudinal_miss_threshold_m: Longitudinal miss threshold before speed scaling.
    """

    prediction_step: int
    lateral_miss_threshold_m: float
    longitudinal_miss_threshold_m: float


@dataclass(frozen=True)
class WomdConfig:
    """``MotionMetricsConfig`` of the Waymo devkit (defaults: ``GetChallengeConfig()``).

    Attributes:
        track_steps_per_second: Rate of the ground-truth tracks.
        prediction_steps_per_second: Rate of the predictions (a divisor of the track rate).
        track_history_samples: Track steps before the current one.
        track_future_samples: Track steps after the current one.
        speed_lower_bound_mps: Below it the thresholds scale by ``speed_scale_lower``.
        speed_upper_bound_mps: Above it they scale by ``speed_scale_upper``.
        speed_scale_lower: Scale at low speed.
        speed_scale_upper: Scale at high speed (linear in between).
        steps: The measurement steps.
        max_predictions: K: how many predictions (in the order given) count.
    """

    track_steps_per_second: int = 10
    prediction_steps_per_second: int = 2
    track_history_samples: int = 10
    track_future_samples: int = 80
    speed_lower_bound_mps: float = 1.4
    speed_upper_bound_mps: float = 11.0
    speed_scale_lower: float = 0.5
    speed_scale_upper: float = 1.0
    steps: tuple[MeasurementStep, ...] = field(
        default_factory=lambda: (
            MeasurementStep(5, 1.0, 2.0),
            MeasurementStep(9, 1.8, 3.6),
            MeasurementStep(15, 3.0, 6.0),
        )
    )
    max_predictions: int = 6

    @property
    def ratio(self) -> int:
        """Track steps per prediction step."""
        return self.track_steps_per_second // self.prediction_steps_per_second

    @property
    def num_prediction_steps(self) -> int:
        """P: prediction steps covering the future."""
        return self.track_future_samples * self.prediction_steps_per_second // self.track_steps_per_second

    def prediction_to_track_step(self, prediction_step: int) -> int:
        """The track step a prediction step is measured against (``PredictionToTrackStep``)."""
        return (prediction_step + 1) * self.ratio + self.track_history_samples

    def seconds(self, step: MeasurementStep) -> float:
        """The horizon of a measurement step in seconds."""
        return (step.prediction_step + 1) / self.prediction_steps_per_second

    def validate(self) -> WomdConfig:
        """Check the config as the devkit's ``ValidateConfig`` does (and a little more).

        Raises:
            MetricInputError: if it is inconsistent.
        """
        if self.prediction_steps_per_second > self.track_steps_per_second:
            raise MetricInputError("prediction_steps_per_second cannot exceed track_steps_per_second")
        if self.track_steps_per_second % self.prediction_steps_per_second:
            raise MetricInputError("track_steps_per_second must be a multiple of prediction_steps_per_second")
        if self.speed_lower_bound_mps >= self.speed_upper_bound_mps:
            raise MetricInputError("the speed upper bound must be greater than the lower bound")
        for s in self.steps:
            if not 0 <= s.prediction_step < self.num_prediction_steps:
                raise MetricInputError(
                    f"measurement step {s.prediction_step} is outside the {self.num_prediction_steps} "
                    "prediction steps"
                )
        return self

    def within(self, future_samples: int) -> WomdConfig:
        """This config for a shorter future: only the measurement steps it covers are kept."""
        from dataclasses import replace

        shorter = replace(self, track_future_samples=future_samples)
        steps = tuple(s for s in self.steps if s.prediction_step < shorter.num_prediction_steps)
        return replace(shorter, steps=steps)


WOMD_CHALLENGE = WomdConfig()
"""The Waymo Open Motion challenge configuration (``GetChallengeConfig()``)."""

# Waymo's object type priority for a joint prediction's bucket (GetObjectTypePriority),
# in datadrive's ObjectType codes: cyclist > pedestrian > vehicle > other.
_TYPE_PRIORITY = {
    int(ObjectType.OTHER): 1,
    int(ObjectType.VEHICLE): 2,
    int(ObjectType.PEDESTRIAN): 3,
    int(ObjectType.CYCLIST): 4,
}


@dataclass(frozen=True)
class WomdObjectMetrics:
    """WOMD metrics per prediction (object, or joint group) and measurement step.

    Values are NaN where the devkit adds no measurement (no valid ground
    truth at the steps the metric needs).

    Attributes:
        config: The config they were computed with.
        object_type: ``(N,)`` uint8 :class:`ObjectType` of each prediction's bucket.
        min_ade_m: ``(N, M)`` for the M measurement steps.
        min_fde_m: ``(N, M)``.
        miss: ``(N, M)`` 1.0 (miss), 0.0 (hit) or NaN.
    """

    config: WomdConfig
    object_type: NDArrayInt
    min_ade_m: NDArrayFloat
    min_fde_m: NDArrayFloat
    miss: NDArrayFloat


def womd_object_metrics(
    prediction_xy_m: NDArrayFloat,
    truth_xy_m: NDArrayFloat,
    truth_valid: NDArrayBool,
    truth_heading_rad: NDArrayFloat,
    truth_velocity_mps: NDArrayFloat,
    object_type: NDArrayInt,
    config: WomdConfig = WOMD_CHALLENGE,
) -> WomdObjectMetrics:
    """minADE, minFDE and miss rate of the Waymo devkit, per prediction and measurement step.

    Args:
        prediction_xy_m: ``(N, K, J, P, 2)`` predictions at the prediction
            rate; element 0 is one prediction step after the current time.
        truth_xy_m: ``(N, J, S, 2)`` tracks (history, current, future).
        truth_valid: ``(N, J, S)`` bool.
        truth_heading_rad: ``(N, J, S)``.
        truth_velocity_mps: ``(N, J, S, 2)``; only the current step is used.
        object_type: ``(N, J)`` :class:`ObjectType` codes.
        config: Rates, horizons and thresholds.

    Raises:
        MetricInputError: on shapes that do not match the config.
    """
    config.validate()
    pred = np.asarray(prediction_xy_m, dtype=np.float64)
    xy = np.asarray(truth_xy_m, dtype=np.float64)
    valid = np.asarray(truth_valid, dtype=np.bool_)
    heading = np.asarray(truth_heading_rad, dtype=np.float64)
    vel = np.asarray(truth_velocity_mps, dtype=np.float64)
    types = np.asarray(object_type)
    if pred.ndim != 5 or pred.shape[-1] != 2:
        raise MetricInputError(f"predictions must have shape (N, K, J, P, 2), not {pred.shape}")
    n, _, j, num_p, _ = pred.shape
    s = config.track_history_samples + config.track_future_samples + 1
    if num_p != config.num_prediction_steps:
        raise MetricInputError(
            f"predictions have {num_p} steps; the config expects {config.num_prediction_steps}"
        )
    for name, arr, shape in (
        ("tracks", xy, (n, j, s, 2)),
        ("valid", valid, (n, j, s)),
        ("heading", heading, (n, j, s)),
        ("velocity", vel, (n, j, s, 2)),
        ("object types", types, (n, j)),
    ):
        if arr.shape != shape:
            raise MetricInputError(f"{name} must have shape {shape}, not {arr.shape}")
    pred = pred[:, : config.max_predictions]  # the first K, in the order given
    track_steps = np.array([config.prediction_to_track_step(i) for i in range(num_p)])
    gt = xy[:, :, track_steps]  # (N, J, P, 2)
    gt_valid = valid[:, :, track_steps]  # (N, J, P)
    dist = np.hypot(*np.moveaxis(pred - gt[:, None], -1, 0))  # (N, K, J, P)

    # speed scale per object, from its current state
    cur = config.track_history_samples
    speed = np.hypot(vel[:, :, cur, 0], vel[:, :, cur, 1])  # (N, J)
    frac = (speed - config.speed_lower_bound_mps) / (
        config.speed_upper_bound_mps - config.speed_lower_bound_mps
    )
    scale = config.speed_scale_lower + (config.speed_scale_upper - config.speed_scale_lower) * frac
    scale = np.where(speed < config.speed_lower_bound_mps, config.speed_scale_lower, scale)
    scale = np.where(speed > config.speed_upper_bound_mps, config.speed_scale_upper, scale)

    m = len(config.steps)
    out_ade = np.full((n, m), np.nan)
    out_fde = np.full((n, m), np.nan)
    out_miss = np.full((n, m), np.nan)
    for col, step in enumerate(config.steps):
        ps = step.prediction_step
        # ADE of each (prediction, agent): mean over valid steps 0..ps; undefined without any
        v = gt_valid[:, None, :, : ps + 1]  # (N, 1, J, ps+1)
        counts = v.sum(axis=-1)  # (N, 1, J)
        sums = np.where(v, dist[..., : ps + 1], 0.0).sum(axis=-1)  # (N, K, J)
        with np.errstate(invalid="ignore", divide="ignore"):
            ade_kj = sums / counts
        joint_ade = _joint_mean(ade_kj, np.broadcast_to(counts > 0, ade_kj.shape))
        out_ade[:, col] = _nanmin_rows(joint_ade)
        fde_ok = np.broadcast_to(gt_valid[:, None, :, ps], dist.shape[:3])
        joint_fde = _joint_mean(dist[..., ps], fde_ok)
        out_fde[:, col] = _nanmin_rows(joint_fde)
        # miss: displacement in the truth's frame at the measurement step, thresholds scaled
        track_step = config.prediction_to_track_step(ps)
        d = pred[..., ps, :] - xy[:, None, :, track_step]  # (N, K, J, 2)
        h = heading[:, None, :, track_step]
        c, sn = np.cos(-h), np.sin(-h)
        lon = (c * d[..., 0] - sn * d[..., 1]) / scale[:, None]
        lat = (sn * d[..., 0] + c * d[..., 1]) / scale[:, None]
        agent_hit: NDArrayBool = np.asarray(
            (np.abs(lat) <= step.lateral_miss_threshold_m)
            & (np.abs(lon) <= step.longitudinal_miss_threshold_m),
            dtype=np.bool_,
        )  # (N, K, J)
        ok = valid[:, None, :, track_step]  # (N, 1, J)
        joint_measured: NDArrayBool = np.all(np.broadcast_to(ok, agent_hit.shape), axis=-1)  # (N, K)
        joint_hit: NDArrayBool = np.all(agent_hit, axis=-1) & joint_measured
        measured_any = np.any(joint_measured, axis=1)
        out_miss[:, col] = np.where(measured_any, np.where(np.any(joint_hit, axis=1), 0.0, 1.0), np.nan)
    lut = np.zeros(256, dtype=np.int64)
    for code, priority in _TYPE_PRIORITY.items():
        lut[code] = priority
    # the first agent of the highest priority, as the devkit's strict ">" picks it
    bucket = types[np.arange(n), np.argmax(lut[types.astype(np.int64)], axis=1)].astype(np.int64)
    return WomdObjectMetrics(config, bucket, out_ade, out_fde, out_miss)


def _joint_mean(values: NDArrayFloat, ok: NDArrayBool) -> NDArrayFloat:
    """``(N, K, J)`` -> ``(N, K)``: the mean over J, NaN where any agent has no value."""
    all_ok = ok.all(axis=-1)
    with np.errstate(invalid="ignore"):
        mean = np.where(ok, values, 0.0).sum(axis=-1) / values.shape[-1]
    return np.where(all_ok, mean, np.nan)


def _nanmin_rows(values: NDArrayFloat) -> NDArrayFloat:
    """``(N, K)`` -> ``(N,)`` minimum over K ignoring NaN; NaN where the row is all NaN."""
    filled = np.where(np.isnan(values), np.inf, values)
    best = filled.min(axis=1)
    return np.where(np.isinf(best), np.nan, best)


def womd_summary(metrics: WomdObjectMetrics, mask: NDArrayBool | None = None) -> dict[str, float]:
    """Accumulated means, as the devkit's ``MotionMetricsBundle`` (all object types together).

    Keys: ``womd_minADE@3s``, ``womd_minFDE@3s``, ``womd_MR@3s`` ... per
    measurement step, and their means over the steps (``womd_minADE``, ...),
    as the leaderboard's headline averages. NaN entries (no measurement) are
    left out of every mean, as the devkit's accumulators do.
    """
    sel = (
        np.ones(metrics.min_ade_m.shape[0], dtype=np.bool_)
        if mask is None
        else np.asarray(mask, dtype=np.bool_)
    )
    out: dict[str, float] = {}
    per_step: Mapping[str, NDArrayFloat] = {
        "minADE": metrics.min_ade_m,
        "minFDE": metrics.min_fde_m,
        "MR": metrics.miss,
    }
    for name, values in per_step.items():
        col_means = []
        for col, step in enumerate(metrics.config.steps):
            v = values[sel, col]
            v = v[~np.isnan(v)]
            mean = float(v.mean()) if v.size else float("nan")
            out[f"womd_{name}@{metrics.config.seconds(step):g}s"] = mean
            col_means.append(mean)
        finite = [x for x in col_means if not np.isnan(x)]
        out[f"womd_{name}"] = float(np.mean(finite)) if finite else float("nan")
    return out
