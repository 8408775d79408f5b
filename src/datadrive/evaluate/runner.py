"""Scoring a trained run on a dataset split: official metrics overall and per event type, comparisons.

:func:`evaluate_model` forecasts every sample of a split of a dataset's
feature cache and scores the forecasts with :mod:`datadrive.evaluate.metrics`:

* Argoverse 2 at K = 1 and K = 6, on the samples whose future is observed
  at every step (AV2 scores only such tracks);
* Waymo Open Motion minADE / minFDE / miss rate at the measurement steps
  the horizon covers (3 and 5 s for a 6 s future; 3, 5 and 8 s for 8 s),
  with predictions subsampled to 2 Hz as the devkit expects.

Per-sample values are kept, so results can be cut by event type (from the
mining layer's events, when given) and two runs compared with a paired
bootstrap (:func:`compare_results`). Every result records
:data:`~datadrive.evaluate.metrics.METRICS_VERSION`; comparing results of
two metric versions is refused.

Notation:
    N: samples scored. K: modes. F: future steps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from datadrive.core.typing import NDArrayBool, NDArrayFloat
from datadrive.curate.loader import FeatureCache, epoch_batches
from datadrive.errors import MetricInputError
from datadrive.evaluate.metrics import (
    METRICS_VERSION,
    WOMD_CHALLENGE,
    WomdConfig,
    av2_agent_metrics,
    womd_object_metrics,
)

__all__ = [
    "HEADLINE_METRICS",
    "Comparison",
    "EvaluationResult",
    "MetricDelta",
    "compare_results",
    "evaluate_model",
]

HEADLINE_METRICS = ("minADE_6", "minFDE_6", "MR_6", "brier-minFDE_6", "minADE_1", "minFDE_1", "MR_1")
"""Per-sample metrics kept for cuts and comparisons (lower is better for all)."""


@dataclass
class EvaluationResult:
    """A run scored on one split.

    Attributes:
        run: The run's name.
        dataset: ``name@vN`` of the dataset.
        split: The split scored.
        metrics_version: The metric implementation's version.
        overall: Metric name -> value over every scored sample.
        by_event: Event type -> (metric name -> value, plus ``count``).
        per_sample: Metric name -> ``(N,)`` values (NaN where not scored).
        sample_keys: ``(N,)`` ``scenario_key#track_id@t0_ns`` of every sample.
        sample_events: ``(N,)`` the event types of each sample.
        info: Counts and notes (samples, AV2-scored samples, WOMD steps used).
        examples: A few samples' trajectories for plots.
    """

    run: str
    dataset: str
    split: str
    metrics_version: str
    overall: dict[str, float]
    by_event: dict[str, dict[str, float]]
    per_sample: dict[str, NDArrayFloat]
    sample_keys: list[str]
    sample_events: list[list[str]]
    info: dict[str, Any] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "dataset": self.dataset,
            "split": self.split,
            "metrics_version": self.metrics_version,
            "overall": self.overall,
            "by_event": self.by_event,
            "info": self.info,
            "per_sample": {
                k: [None if np.isnan(x) else float(x) for x in v] for k, v in self.per_sample.items()
            },
            "sample_keys": self.sample_keys,
            "sample_events": self.sample_events,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> EvaluationResult:
        return cls(
            run=doc["run"],
            dataset=doc["dataset"],
            split=doc["split"],
            metrics_version=doc["metrics_version"],
            overall=dict(doc["overall"]),
            by_event={k: dict(v) for k, v in doc["by_event"].items()},
            per_sample={
                k: np.array([np.nan if x is None else x for x in v], dtype=np.float64)
                for k, v in doc["per_sample"].items()
            },
            sample_keys=list(doc["sample_keys"]),
            sample_events=[list(x) for x in doc["sample_events"]],
            info=dict(doc.get("info", {})),
        )

    def dumps(self) -> bytes:
        return json.dumps(self.to_json(), indent=1, allow_nan=False).encode()


def _mean(x: NDArrayFloat, mask: NDArrayBool) -> float:
    sel = x[mask & ~np.isnan(x)]
    return float(sel.mean()) if sel.size else float("nan")


def evaluate_model(
    model: Any,
    cache: FeatureCache,
    *,
    run: str,
    dataset: str,
    split: str = "val",
    events: Mapping[str, Sequence[str]] | None = None,
    events_version: str | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    womd: WomdConfig = WOMD_CHALLENGE,
    examples: int = 6,
) -> EvaluationResult:
    """Forecast and score every sample of ``split``.

    Args:
        model: A :class:`~datadrive.models.Forecaster`.
        cache: The dataset's feature cache.
        run: The run's name (recorded).
        dataset: ``name@vN`` (recorded).
        split: The split to score.
        events: Scenario key (``tenant/source/id``) -> event types in it
            (from the mining layer); samples are cut by them.
        events_version: The mining tagger version the events came from
            (recorded, so per-event numbers of different taggers are told apart).
        batch_size: Samples per forward pass.
        device: Where the model runs.
        womd: The WOMD config; its measurement steps are cut to the horizon.
        examples: Samples whose forecasts are kept for plots.

    Raises:
        MetricInputError: if the split has no sample.
    """
    import torch

    from datadrive.models.base import to_tensors
    from datadrive.models.policy import resolve_device

    dev = resolve_device(device)
    model = model.to(dev).eval()
    idx = cache.split_indices(split)
    if idx.size == 0:
        raise MetricInputError(f"the {split!r} split of {cache.path} has no sample to score")
    cfg = cache.config
    womd_cfg = womd.within(cfg.future_steps)
    womd_cfg = WomdConfig(
        track_steps_per_second=round(cfg.rate_hz),
        prediction_steps_per_second=womd_cfg.prediction_steps_per_second,
        track_history_samples=cfg.history_steps - 1,
        track_future_samples=cfg.future_steps,
        speed_lower_bound_mps=womd_cfg.speed_lower_bound_mps,
        speed_upper_bound_mps=womd_cfg.speed_upper_bound_mps,
        speed_scale_lower=womd_cfg.speed_scale_lower,
        speed_scale_upper=womd_cfg.speed_scale_upper,
        steps=womd_cfg.steps,
        max_predictions=womd_cfg.max_predictions,
    )
    use_womd = bool(womd_cfg.steps) and round(cfg.rate_hz) % womd_cfg.prediction_steps_per_second == 0
    parts: dict[str, list[NDArrayFloat]] = {}
    kept: list[dict[str, Any]] = []
    order: list[np.ndarray] = []
    for b in epoch_batches(cache, idx, batch_size, seed=0, epoch=0, shuffle=False, group_by_size=False):
        batch = cache.batch(b)
        with torch.no_grad():
            fc = model.predict(to_tensors(batch, dev))
        traj = fc.trajectories.astype(np.float64)  # (B, K, F, 2)
        probs = fc.probabilities.astype(np.float64)
        truth = batch.future_xy_m.astype(np.float64)
        full = batch.future_valid.all(axis=1)
        order.append(batch.sample_index)
        for k in (1, 6):
            m = av2_agent_metrics(traj, np.clip(probs, 0.0, 1.0), truth, k=k)
            for name, values in (
                (f"minADE_{k}", m.min_ade_m),
                (f"minFDE_{k}", m.min_fde_m),
                (f"MR_{k}", m.missed.astype(np.float64)),
                (f"brier-minFDE_{k}", m.brier_min_fde_m),
            ):
                parts.setdefault(name, []).append(np.where(full, values, np.nan))
        if use_womd:
            h = cfg.history_steps
            track_xy = np.concatenate([batch.agent_xy_m[:, 0], batch.future_xy_m], axis=1).astype(np.float64)
            track_valid = np.concatenate([batch.agent_valid[:, 0], batch.future_valid], axis=1)
            track_heading = np.concatenate([batch.agent_heading_rad[:, 0], batch.future_heading_rad], axis=1)
            vel = np.zeros(track_xy.shape)
            vel[:, h - 1] = batch.agent_velocity_mps[:, 0, h - 1]
            ratio = womd_cfg.ratio
            pred = traj[:, :, None, ratio - 1 :: ratio, :]  # (B, K, 1, P, 2)
            w = womd_object_metrics(
                pred,
                track_xy[:, None],
                track_valid[:, None],
                track_heading[:, None].astype(np.float64),
                vel[:, None],
                batch.agent_type[:, :1],
                womd_cfg,
            )
            for col, step in enumerate(womd_cfg.steps):
                sec = womd_cfg.seconds(step)
                for name, values in (("minADE", w.min_ade_m), ("minFDE", w.min_fde_m), ("MR", w.miss)):
                    parts.setdefault(f"womd_{name}@{sec:g}s", []).append(values[:, col])
        for i in range(min(batch.size, examples - len(kept))):
            kept.append(
                {
                    "sample": int(batch.sample_index[i]),
                    "agents_xy": batch.agent_xy_m[i][batch.agent_mask[i]].tolist(),
                    "agents_valid": batch.agent_valid[i][batch.agent_mask[i]].tolist(),
                    "map_xy": batch.map_xy_m[i][batch.map_mask[i]].tolist(),
                    "future_xy": batch.future_xy_m[i].tolist(),
                    "forecast_xy": traj[i].tolist(),
                    "probabilities": probs[i].tolist(),
                }
            )
    sample_index = np.concatenate(order)
    per_sample = {k: np.concatenate(v) for k, v in parts.items()}
    info = cache.sample_info(sample_index)
    keys = [
        f"{sk}#{tid}@{t0}"
        for sk, tid, t0 in zip(
            info["scenario_key"].tolist(), info["track_id"].tolist(), info["t0_ns"].tolist(), strict=True
        )
    ]
    sample_events = [sorted(set((events or {}).get(sk, ()))) for sk in info["scenario_key"].tolist()]
    everything = np.ones(sample_index.size, dtype=np.bool_)
    overall = {k: _mean(v, everything) for k, v in per_sample.items()}
    for name in ("minADE", "minFDE", "MR"):
        cols = [k for k in per_sample if k.startswith(f"womd_{name}@")]
        finite = [overall[c] for c in cols if not np.isnan(overall[c])]
        if finite:
            overall[f"womd_{name}"] = float(np.mean(finite))
    by_event: dict[str, dict[str, float]] = {}
    for et in sorted({e for evs in sample_events for e in evs}):
        mask = np.array([et in evs for evs in sample_events])
        by_event[et] = {k: _mean(v, mask) for k, v in per_sample.items()} | {"count": float(mask.sum())}
    for ex in kept:
        pos = int(np.flatnonzero(sample_index == ex["sample"])[0])
        ex["key"] = keys[pos]
    return EvaluationResult(
        run=run,
        dataset=dataset,
        split=split,
        metrics_version=METRICS_VERSION,
        overall=overall,
        by_event=by_event,
        per_sample=per_sample,
        sample_keys=keys,
        sample_events=sample_events,
        info={
            "samples": int(sample_index.size),
            "av2_scored": int((~np.isnan(per_sample["minADE_6"])).sum()),
            "womd_steps_s": [womd_cfg.seconds(s) for s in womd_cfg.steps] if use_womd else [],
            "events_from_mining": events is not None,
            "events_tagger_version": events_version,
            "model": getattr(model, "name", type(model).__name__),
        },
        examples=kept,
    )


@dataclass(frozen=True)
class MetricDelta:
    """``b - a`` of one metric over the samples both runs scored, with a bootstrap interval.

    Attributes:
        metric: Its name.
        a: Mean of run a.
        b: Mean of run b.
        delta: ``b - a``.
        low: Lower end of the confidence interval of ``delta``.
        high: Upper end.
        regression: ``b`` is worse (higher) and the interval excludes 0.
        improvement: ``b`` is better (lower) and the interval excludes 0.
        samples: Samples in the comparison.
    """

    metric: str
    a: float
    b: float
    delta: float
    low: float
    high: float
    regression: bool
    improvement: bool
    samples: int


@dataclass(frozen=True)
class Comparison:
    """Run b against run a (the baseline), per metric and per event type."""

    a: str
    b: str
    confidence: float
    resamples: int
    overall: tuple[MetricDelta, ...]
    by_event: Mapping[str, tuple[MetricDelta, ...]]

    @property
    def regressions(self) -> list[str]:
        out = [d.metric for d in self.overall if d.regression]
        out += [f"{et}:{d.metric}" for et, ds in self.by_event.items() for d in ds if d.regression]
        return out


def _paired(
    a: NDArrayFloat, b: NDArrayFloat, rng: np.random.Generator, resamples: int, confidence: float, metric: str
) -> MetricDelta | None:
    ok = ~np.isnan(a) & ~np.isnan(b)
    n = int(ok.sum())
    if n == 0:
        return None
    da, db = a[ok], b[ok]
    diff = db - da
    draws = rng.integers(0, n, size=(resamples, n))
    means = diff[draws].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return MetricDelta(
        metric, float(da.mean()), float(db.mean()), float(diff.mean()), float(low), float(high),
        bool(low > 0), bool(high < 0), n,
    )  # fmt: skip


def compare_results(
    a: EvaluationResult,
    b: EvaluationResult,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    metrics: Sequence[str] = HEADLINE_METRICS,
) -> Comparison:
    """Paired bootstrap of ``b - a`` per metric (overall and per event type); every metric is lower-is-better.

    Samples are matched by key; only samples both runs scored count. A
    difference is a regression (or an improvement) when its
    ``confidence`` interval lies entirely above (below) zero.

    Raises:
        MetricInputError: if the results come from different metric
            versions or share no sample.
    """
    if a.metrics_version != b.metrics_version:
        raise MetricInputError(
            f"{a.run} was scored by {a.metrics_version} and {b.run} by {b.metrics_version}: "
            "re-evaluate both with the same metrics before comparing"
        )
    pos_b = {k: i for i, k in enumerate(b.sample_keys)}
    common = [(i, pos_b[k]) for i, k in enumerate(a.sample_keys) if k in pos_b]
    if not common:
        raise MetricInputError(f"{a.run} and {b.run} share no scored sample (other datasets or splits?)")
    ia = np.array([i for i, _ in common])
    ib = np.array([j for _, j in common])
    rng = np.random.default_rng(seed)

    def deltas(mask: NDArrayBool) -> tuple[MetricDelta, ...]:
        out = []
        for m in metrics:
            if m in a.per_sample and m in b.per_sample:
                d = _paired(
                    a.per_sample[m][ia][mask], b.per_sample[m][ib][mask], rng, resamples, confidence, m
                )
                if d is not None:
                    out.append(d)
        return tuple(out)

    everything = np.ones(len(common), dtype=np.bool_)
    events = [a.sample_events[i] for i in ia]
    by_event = {
        et: deltas(np.array([et in evs for evs in events]))
        for et in sorted({e for evs in events for e in evs})
    }
    return Comparison(a.run, b.run, confidence, resamples, deltas(everything), by_event)
