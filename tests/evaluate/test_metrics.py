"""The official metrics against the official implementations.

AV2: every per-target value is recomputed with av2's own functions
(``av2.datasets.motion_forecasting.eval.metrics``), composed the way the
Argoverse challenge composes them (top-K by probability, renormalised; the
best forecast is the one with the smallest endpoint error), and must agree
to 1e-9, on random forecasts and on forecasts of the real AV2 samples.

WOMD: the cases and expected values of the Waymo devkit's own C++ tests
(``waymo_open_dataset/metrics/motion_metrics_test.cc``), transcribed, plus
cases computed by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datadrive.core.scenario import ObjectType
from datadrive.errors import MetricInputError
from datadrive.evaluate.metrics import (
    METRICS_VERSION,
    MeasurementStep,
    WomdConfig,
    av2_agent_metrics,
    av2_summary,
    womd_object_metrics,
    womd_summary,
)

av2_metrics = pytest.importorskip("av2.datasets.motion_forecasting.eval.metrics")

TOL = 1e-9


def av2_reference(
    forecasts: np.ndarray, probs: np.ndarray, truth: np.ndarray, k: int
) -> tuple[float, float, bool, float]:
    """One target's (minADE, minFDE, missed, brier-minFDE) from av2's primitives, challenge procedure."""
    order = np.argsort(-probs, kind="stable")[:k]
    f, p = forecasts[order], probs[order]
    fde = av2_metrics.compute_fde(f, truth)
    best = int(np.argmin(fde))
    ade = av2_metrics.compute_ade(f, truth)
    missed = av2_metrics.compute_is_missed_prediction(f, truth, miss_threshold_m=2.0)
    brier = av2_metrics.compute_brier_fde(f, truth, p, normalize=True)
    return float(ade[best]), float(fde[best]), bool(missed[best]), float(brier[best])


def check_against_av2(forecasts: np.ndarray, probs: np.ndarray, truth: np.ndarray) -> None:
    for k in (1, 6):
        ours = av2_agent_metrics(forecasts, probs, truth, k=k)
        for i in range(forecasts.shape[0]):
            ade, fde, missed, brier = av2_reference(forecasts[i], probs[i], truth[i], k)
            assert abs(ours.min_ade_m[i] - ade) <= TOL
            assert abs(ours.min_fde_m[i] - fde) <= TOL
            assert bool(ours.missed[i]) == missed
            assert abs(ours.brier_min_fde_m[i] - brier) <= TOL
        summary = av2_summary(ours)
        assert set(summary) == {f"minADE_{k}", f"minFDE_{k}", f"MR_{k}", f"brier-minFDE_{k}"}


@pytest.mark.parametrize("seed", [0, 1, 2, 3], ids=lambda s: f"seed{s}")
def test_av2_metrics_match_av2_on_random_forecasts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k, t = 64, 6, 60
    truth = np.cumsum(rng.normal(0, 1.0, (n, t, 2)), axis=1)
    forecasts = truth[:, None] + rng.normal(0, 2.0, (n, k, t, 2)) * rng.uniform(0.1, 3.0, (n, k, 1, 1))
    probs = rng.dirichlet(np.ones(k), size=n)
    probs[::7, 2] = probs[::7, 1]  # ties in probability: the stable order decides
    check_against_av2(forecasts, probs, truth)


def test_av2_metrics_with_ties_in_endpoint_error() -> None:
    truth = np.zeros((1, 10, 2))
    f = np.zeros((1, 6, 10, 2))
    f[0, :, -1, 0] = [3.0, 1.0, 1.0, 5.0, 1.0, 9.0]  # three forecasts tie for the best endpoint
    f[0, 2, :5, 1] = 4.0  # the tied ones differ in ADE: the first best endpoint decides
    probs = np.array([[0.1, 0.2, 0.3, 0.1, 0.2, 0.1]])
    check_against_av2(f, probs, truth)
    ours = av2_agent_metrics(f, probs, truth, k=6)
    assert ours.best_mode[0] == 2  # the most probable of the tied forecasts comes first after sorting


def test_av2_k1_uses_the_most_probable_forecast() -> None:
    truth = np.zeros((1, 5, 2))
    f = np.zeros((1, 3, 5, 2))
    f[0, 0, :, 0] = 10.0  # far, most probable
    f[0, 1, :, 0] = 0.5  # near, less probable
    f[0, 2, :, 1] = 7.0  # far, least probable
    probs = np.array([[0.6, 0.3, 0.1]])
    one = av2_agent_metrics(f, probs, truth, k=1)
    six = av2_agent_metrics(f, probs, truth, k=6)
    assert one.min_fde_m[0] == pytest.approx(10.0)
    assert one.brier_min_fde_m[0] == pytest.approx(10.0)  # one kept forecast has probability 1
    assert bool(one.missed[0])
    assert six.min_fde_m[0] == pytest.approx(0.5)
    assert six.brier_min_fde_m[0] == pytest.approx(0.5 + (1 - 0.3) ** 2)
    assert not bool(six.missed[0])


def test_av2_metrics_on_real_samples(samples: Path) -> None:
    """Forecasts of the real AV2 sample scenarios (constant velocity, perturbed modes) scored both ways."""
    from datadrive.sources import DEFAULT_REGISTRY

    folder = samples / "av2_motion_forecasting"
    scenarios = [
        s
        for adapter, unit in DEFAULT_REGISTRY.discover(folder).units
        for s in adapter.read(unit)
        if s.num_steps == 110
    ]
    assert scenarios, "expected AV2 sample scenarios with a future"
    truths, forecasts = [], []
    rng = np.random.default_rng(7)
    for s in scenarios:
        tr = s.tracks
        full = tr.valid.all(axis=1)  # scored: observed at every step
        for a in np.flatnonzero(full):
            xy = tr.xy_m[a]
            v = tr.velocity_mps[a, 49]
            cv = xy[49] + v[None] * (np.arange(1, 61) * 0.1)[:, None]
            modes = cv[None] + rng.normal(0, 1.5, (6, 1, 2)) * np.linspace(0, 1, 60)[None, :, None]
            truths.append(xy[50:])
            forecasts.append(modes)
    truth = np.stack(truths)
    fc = np.stack(forecasts)
    probs = rng.dirichlet(np.ones(6), size=len(truth))
    assert len(truth) >= 10  # the fully observed tracks of the two sample scenarios with a future
    check_against_av2(fc, probs, truth)


@pytest.mark.parametrize(
    ("what", "kwargs", "message"),
    [
        ("nan", {"nan": True}, "finite"),
        ("probability", {"prob": 1.5}, "outside"),
        ("shape", {"truth_t": 59}, "shape"),
    ],
    ids=["nan", "probability-above-1", "truth-shape"],
)
def test_av2_bad_input_is_refused(what: str, kwargs: dict[str, object], message: str) -> None:
    f = np.zeros((2, 6, 60, 2))
    g = np.zeros((2, int(kwargs.get("truth_t", 60)), 2))  # type: ignore[call-overload]
    p = np.full((2, 6), 1 / 6)
    if kwargs.get("nan"):
        f[0, 0, 0, 0] = np.nan
    if "prob" in kwargs:
        p[0, 0] = float(kwargs["prob"])  # type: ignore[arg-type]
    with pytest.raises(MetricInputError, match=message):
        av2_agent_metrics(f, p, g, k=6)


def test_metrics_version_is_recorded_text() -> None:
    assert METRICS_VERSION.startswith("datadrive-metrics/")


# ------------------------------------------------------------------- WOMD, the devkit's own test cases

# GetTestConfig() of motion_metrics_test.cc: 10 Hz tracks and predictions, no history, 4 future steps,
# measurement at step 3 with 1.0 m lateral / 2.0 m longitudinal, speed scaling switched off (1.0/1.0).
TEST_CONFIG = WomdConfig(
    track_steps_per_second=10,
    prediction_steps_per_second=10,
    track_history_samples=0,
    track_future_samples=4,
    speed_lower_bound_mps=1.4,
    speed_upper_bound_mps=11.0,
    speed_scale_lower=1.0,
    speed_scale_upper=1.0,
    steps=(MeasurementStep(3, 1.0, 2.0),),
    max_predictions=6,
)


def devkit_scenario(vel2: tuple[float, float] = (-10.0, 0.0)) -> dict[str, np.ndarray]:
    """CreateTestScenario(): object 1 runs diagonally (heading pi/4), object 2 runs along -x."""
    xy = np.zeros((2, 5, 2))
    xy[0, :, 0] = xy[0, :, 1] = [2, 4, 6, 8, 10]
    xy[1, :, 0] = [-1, -2, -3, -4, -5]
    heading = np.zeros((2, 5))
    heading[0] = 0.78539816
    heading[1] = 3.14159
    vel = np.zeros((2, 5, 2))
    vel[0, 0] = (20.0, 20.0)
    vel[1, 0] = vel2
    return {"xy": xy, "heading": heading, "vel": vel, "valid": np.ones((2, 5), dtype=bool)}


def joint(*modes: tuple[list[float], list[float], list[float], list[float]]) -> np.ndarray:
    """Joint predictions of objects 1 and 2: each mode is (x1, y1, x2, y2) over 4 steps -> (1, K, 2, 4, 2)."""
    out = np.zeros((1, len(modes), 2, 4, 2))
    for k, (x1, y1, x2, y2) in enumerate(modes):
        out[0, k, 0, :, 0], out[0, k, 0, :, 1] = x1, y1
        out[0, k, 1, :, 0], out[0, k, 1, :, 1] = x2, y2
    return out


def run_joint(pred: np.ndarray, scenario: dict[str, np.ndarray], config: WomdConfig = TEST_CONFIG):  # type: ignore[no-untyped-def]
    return womd_object_metrics(
        pred,
        scenario["xy"][None],
        scenario["valid"][None],
        scenario["heading"][None],
        scenario["vel"][None],
        np.zeros((1, 2), dtype=np.uint8),
        config,
    )


GOOD1 = ([4, 6, 8, 10], [4, 6, 8, 10])
GOOD2 = ([-2, -3, -4, -5], [0, 0, 0, 0])


@pytest.mark.parametrize(
    ("obj1", "obj2", "expected_miss"),
    [
        (GOOD1, GOOD2, 0.0),  # ComputeMissRateNoMisses
        (GOOD1, ([-2, -3, -4, -5], [1.01] * 4), 1.0),  # ComputeMissRateLateral_2
        (([4, 6, 8, 9.292], [4, 6, 8, 10.708]), GOOD2, 1.0),  # ComputeMissRateLateral_1
        (GOOD1, ([-2, -3, -4, -7.01], [0, 0, 0, 0]), 1.0),  # ComputeMissRateLongitudinal_2
        (([4, 6, 8, 11.415], [4, 6, 8, 11.415]), GOOD2, 1.0),  # ComputeMissRateLongitudinal_1
        (([4, 6, 8, 11.414], [4, 6, 8, 11.414]), GOOD2, 0.0),  # ComputeNoMissLongitudinal_1
        (([4, 6, 8, 9.294], [4, 6, 8, 10.706]), GOOD2, 0.0),  # ComputeNoMissLateral_2
    ],
    ids=[
        "no-miss",
        "lateral-2",
        "lateral-1",
        "longitudinal-2",
        "longitudinal-1",
        "no-miss-lon",
        "no-miss-lat",
    ],
)
def test_womd_miss_rate_devkit_cases(
    obj1: tuple[list[float], list[float]], obj2: tuple[list[float], list[float]], expected_miss: float
) -> None:
    result = run_joint(joint((*obj1, *obj2)), devkit_scenario())
    assert result.miss[0, 0] == expected_miss


@pytest.mark.parametrize(
    ("vx", "expected_miss"),
    [(-10.0, 0.0), (0.0, 1.0), (1.9999, 1.0), (2.001, 0.0)],
    ids=["fast", "stopped", "just-below", "just-above"],
)
@pytest.mark.parametrize("direction", ["lateral", "longitudinal"])
def test_womd_velocity_scaling_devkit_cases(direction: str, vx: float, expected_miss: float) -> None:
    """ComputeVelocityScalingLatitudinal / ...Longitudinal: scale 0.5 below 1 m/s, 1.0 above 3 m/s."""
    from dataclasses import replace

    config = replace(
        TEST_CONFIG,
        speed_scale_lower=0.5,
        speed_scale_upper=1.0,
        speed_lower_bound_mps=1.0,
        speed_upper_bound_mps=3.0,
    )
    obj2 = (
        ([-2, -3, -4, -5], [0, 0, 0, 0.75]) if direction == "lateral" else ([-2, -3, -4, -6.5], [0, 0, 0, 0])
    )
    result = run_joint(joint((*GOOD1, *obj2)), devkit_scenario(vel2=(vx, 0.0)), config)
    assert result.miss[0, 0] == expected_miss


def test_womd_two_joint_predictions_devkit_cases() -> None:
    scenario = devkit_scenario()
    miss_then_hit = joint(
        (*GOOD1, [-2, -3, -4, -7.01], [0, 0, 0, 0]), (*GOOD1, *GOOD2)
    )  # TwoJointPredictionsNoMiss
    assert run_joint(miss_then_hit, scenario).miss[0, 0] == 0.0
    both_miss = joint(
        (*GOOD1, [-2, -3, -4, -7.01], [0, 0, 0, 0]), ([4, 6, 8, 14], [4, 6, 8, 14], *GOOD2)
    )  # TwoJointPredictionsMiss
    assert run_joint(both_miss, scenario).miss[0, 0] == 1.0


def test_womd_min_ade_fde_devkit_case() -> None:
    """ComputeMinADE: expected minADE 5.97487 and minFDE 8.53553 (the devkit test's values, to 1e-4)."""
    pred = joint(
        ([4, 6, 8, 10], [0, 0, 0, 0], [0, 0, 0, 0], [2, 3, 4, 5]),
        ([14, 16, 18, 20], [0, 0, 0, 0], [0, 0, 0, 0], [22, 23, 24, 25]),
    )
    result = run_joint(pred, devkit_scenario())
    assert result.min_ade_m[0, 0] == pytest.approx(5.97487, abs=1e-4)
    assert result.min_fde_m[0, 0] == pytest.approx(8.53553, abs=1e-4)


def test_womd_challenge_config_by_hand() -> None:
    """Marginal predictions at 2 Hz on 10 Hz tracks, invalid steps skipped, computed by hand."""
    cfg = WomdConfig()
    s = cfg.track_history_samples + cfg.track_future_samples + 1
    xy = np.zeros((1, 1, s, 2))
    xy[0, 0, :, 0] = np.arange(s) * 1.0  # 10 m/s along +x
    vel = np.zeros((1, 1, s, 2))
    vel[0, 0, :, 0] = 10.0
    valid = np.ones((1, 1, s), dtype=bool)
    valid[0, 0, cfg.prediction_to_track_step(2)] = False  # one ground-truth step missing
    pred = np.repeat(xy[:, None, :, [cfg.prediction_to_track_step(i) for i in range(16)]], 2, axis=1)
    pred[0, 0, 0, :, 1] += 3.0  # mode 0: 3 m to the left everywhere
    pred[0, 1, 0, :, 0] += 1.0  # mode 1: 1 m ahead everywhere
    heading = np.zeros((1, 1, s))
    result = womd_object_metrics(pred, xy, valid, heading, vel, np.zeros((1, 1), dtype=np.uint8), cfg)
    np.testing.assert_allclose(result.min_ade_m[0], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(result.min_fde_m[0], [1.0, 1.0, 1.0])
    # speed 10 m/s: scale 0.5 + 0.5 * (10 - 1.4) / 9.6; 1 m longitudinal is within every threshold
    np.testing.assert_array_equal(result.miss[0], [0.0, 0.0, 0.0])
    summary = womd_summary(result)
    assert summary["womd_minADE@3s"] == pytest.approx(1.0)
    assert summary["womd_MR@8s"] == 0.0
    # mode 1 alone, pushed 1.9 m ahead: a miss at 3 s (2.0 m scaled by 0.948), a hit at 5 s (3.6 m)
    scale = 0.5 + 0.5 * (10 - 1.4) / (11.0 - 1.4)
    pred2 = pred[:, 1:].copy()
    pred2[..., 0] += 0.9
    result2 = womd_object_metrics(pred2, xy, valid, heading, vel, np.zeros((1, 1), dtype=np.uint8), cfg)
    assert 2.0 < 1.9 / scale < 3.6
    np.testing.assert_array_equal(result2.miss[0], [1.0, 0.0, 0.0])


def test_womd_invalid_measurement_step_gives_no_measurement() -> None:
    cfg = WomdConfig()
    s = 91
    xy = np.zeros((1, 1, s, 2))
    valid = np.ones((1, 1, s), dtype=bool)
    valid[0, 0, cfg.prediction_to_track_step(5)] = False
    pred = np.zeros((1, 1, 1, 16, 2))
    result = womd_object_metrics(
        pred, xy, valid, np.zeros((1, 1, s)), np.zeros((1, 1, s, 2)), np.zeros((1, 1), dtype=np.uint8), cfg
    )
    assert np.isnan(result.min_fde_m[0, 0])
    assert np.isnan(result.miss[0, 0])
    assert result.min_ade_m[0, 0] == 0.0  # ADE skips the invalid step, it still has others


def test_womd_config_within_a_shorter_future() -> None:
    six = WomdConfig().within(60)
    assert six.num_prediction_steps == 12
    assert [s.prediction_step for s in six.steps] == [5, 9]


def test_womd_joint_type_bucket_follows_devkit_priority() -> None:
    types = np.array([[ObjectType.VEHICLE, ObjectType.PEDESTRIAN]], dtype=np.uint8)
    sc = devkit_scenario()
    r = womd_object_metrics(
        joint((*GOOD1, *GOOD2)),
        sc["xy"][None],
        sc["valid"][None],
        sc["heading"][None],
        sc["vel"][None],
        types,
        TEST_CONFIG,
    )
    assert r.object_type[0] == ObjectType.PEDESTRIAN
