"""Scoring runs: real model predictions against av2's functions, event cuts, bootstrap comparisons, the report."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from datadrive.curate import FeatureCache
from datadrive.errors import MetricInputError
from datadrive.evaluate import METRICS_VERSION, compare_results, evaluate_model, write_report
from datadrive.models import ModelSpec, build_model, to_tensors
from datadrive.train import TrainConfig, fit
from learning_fixtures import SampleLake

av2_metrics = pytest.importorskip("av2.datasets.motion_forecasting.eval.metrics")


@pytest.fixture(scope="module")
def cache(sample_lake: SampleLake) -> FeatureCache:
    return FeatureCache(sample_lake.cache_path)


@pytest.fixture(scope="module")
def trained(cache: FeatureCache, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    spec = ModelSpec("transformer", {"d_model": 16, "heads": 2, "encoder_layers": 1, "decoder_layers": 1})
    r = fit(cache, TrainConfig(model=spec, epochs=2, batch_size=8), tmp_path_factory.mktemp("run"))
    from datadrive.models import load_model

    return load_model(r.model_path)[0], r


def test_real_predictions_agree_with_av2_to_1e9(cache: FeatureCache, trained) -> None:  # type: ignore[no-untyped-def]
    """A trained model's forecasts of real samples, scored by evaluate_model and by av2's own functions."""
    model, _ = trained
    result = evaluate_model(model, cache, run="t", dataset="samples@v1", split="train")
    idx = cache.split_indices("train")
    batch = cache.batch(idx)
    fc = model.predict(to_tensors(batch))
    order = {int(s): i for i, s in enumerate(idx)}
    keys = result.sample_keys
    assert len(keys) == idx.size
    info = cache.sample_info(idx)
    want_keys = [
        f"{a}#{b}@{c}" for a, b, c in zip(info["scenario_key"], info["track_id"], info["t0_ns"], strict=True)
    ]
    pos = {k: i for i, k in enumerate(want_keys)}
    checked = 0
    for j, key in enumerate(keys):
        i = pos[key]
        if not batch.future_valid[i].all():
            assert np.isnan(result.per_sample["minADE_6"][j])
            continue
        truth = batch.future_xy_m[i].astype(np.float64)
        for k in (1, 6):
            order_k = np.argsort(-fc.probabilities[i], kind="stable")[:k]
            f = fc.trajectories[i][order_k].astype(np.float64)
            p = fc.probabilities[i][order_k].astype(np.float64)
            fde = av2_metrics.compute_fde(f, truth)
            best = int(np.argmin(fde))
            assert abs(result.per_sample[f"minFDE_{k}"][j] - fde[best]) <= 1e-9 * max(1.0, fde[best])
            assert abs(result.per_sample[f"minADE_{k}"][j] - av2_metrics.compute_ade(f, truth)[best]) <= 1e-6
            brier = av2_metrics.compute_brier_fde(f, truth, p, normalize=True)[best]
            assert abs(result.per_sample[f"brier-minFDE_{k}"][j] - brier) <= 1e-6
        checked += 1
    assert checked >= 10
    assert result.metrics_version == METRICS_VERSION
    assert result.info["womd_steps_s"] == [3.0, 5.0]
    _ = order


def test_events_cut_the_results(cache: FeatureCache, trained) -> None:  # type: ignore[no-untyped-def]
    model, _ = trained
    info = cache.sample_info(cache.split_indices("train"))
    first = str(info["scenario_key"][0])
    result = evaluate_model(
        model, cache, run="t", dataset="d", split="train", events={first: ["cut_in", "hard_braking"]}
    )
    assert set(result.by_event) == {"cut_in", "hard_braking"}
    mask = np.array([first == k.split("#")[0] for k in result.sample_keys])
    assert result.by_event["cut_in"]["count"] == mask.sum()
    assert result.by_event["cut_in"]["minFDE_6"] == pytest.approx(
        np.nanmean(result.per_sample["minFDE_6"][mask])
    )


def test_bootstrap_flags_a_regression_and_not_a_tie(cache: FeatureCache, trained) -> None:  # type: ignore[no-untyped-def]
    model, _ = trained
    a = evaluate_model(model, cache, run="a", dataset="d", split="train")
    same = compare_results(a, replace(a, run="a2"))
    assert same.regressions == []
    worse = replace(
        a,
        run="worse",
        per_sample={k: v + (0.5 if k.startswith("min") else 0.0) for k, v in a.per_sample.items()},
    )
    cmp = compare_results(a, worse)
    flagged = {d.metric for d in cmp.overall if d.regression}
    assert {"minADE_6", "minFDE_6", "minADE_1", "minFDE_1"} <= flagged
    d = next(d for d in cmp.overall if d.metric == "minADE_6")
    assert d.delta == pytest.approx(0.5)
    assert d.low <= 0.5 <= d.high
    better = compare_results(worse, a)
    assert any(x.improvement for x in better.overall)
    assert better.regressions == []


def test_results_of_another_metric_version_are_not_compared(cache: FeatureCache, trained) -> None:  # type: ignore[no-untyped-def]
    model, _ = trained
    a = evaluate_model(model, cache, run="a", dataset="d", split="train")
    with pytest.raises(MetricInputError, match="re-evaluate"):
        compare_results(a, replace(a, run="b", metrics_version="datadrive-metrics/0"))


def test_results_round_trip_as_json(cache: FeatureCache, trained) -> None:  # type: ignore[no-untyped-def]
    import json

    from datadrive.evaluate import EvaluationResult

    model, _ = trained
    a = evaluate_model(model, cache, run="a", dataset="d", split="train")
    back = EvaluationResult.from_json(json.loads(a.dumps()))
    assert back.overall == pytest.approx(a.overall, nan_ok=True)
    np.testing.assert_array_equal(back.per_sample["minFDE_6"], a.per_sample["minFDE_6"])
    assert back.metrics_version == METRICS_VERSION


def test_html_report_has_tables_and_plots(cache: FeatureCache, trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model, run = trained
    a = evaluate_model(model, cache, run="tiny", dataset="d", split="train")
    cv = build_model(ModelSpec("constant_velocity"), cache.config)
    b = evaluate_model(cv, cache, run="cv", dataset="d", split="train")
    index = write_report(
        tmp_path, [a, b], histories={"tiny": run.history}, comparison=compare_results(b, a, resamples=200)
    )
    text = index.read_text()
    assert METRICS_VERSION in text
    assert "minFDE_6" in text
    assert "bootstrap" in text
    for png in ("loss.png", "metrics_by_cut.png", "example_0.png"):
        assert (tmp_path / png).stat().st_size > 1000
        assert png in text


def test_an_empty_split_cannot_be_scored(cache: FeatureCache, trained) -> None:  # type: ignore[no-untyped-def]
    model, _ = trained
    with pytest.raises(Exception, match="no split"):
        evaluate_model(model, cache, run="a", dataset="d", split="nope")
    torch.manual_seed(0)
