"""Per-state kinematics and map context, on hand-built scenarios with known answers and on real samples."""

from __future__ import annotations

import numpy as np
import pytest
from mining_build import C, P, V, line, road, scenario

from datadrive.core.geometry import PolylineIndex
from datadrive.mining.context import ScenarioContext, mask_runs
from datadrive.mining.kinematics import KinematicsConfig, compute_kinematics, windowed_derivative
from datadrive.mining.map_context import compute_map_context


def test_constant_acceleration_on_uneven_timestamps() -> None:
    """x = 0.5 a t^2 sampled at irregular times: speed a*t, acceleration a, jerk 0, exactly (central)."""
    rng = np.random.default_rng(7)
    t = np.cumsum(rng.uniform(0.05, 0.15, 60))
    a = -2.5
    v0 = 20.0
    x = v0 * t + 0.5 * a * t**2
    s = scenario(np.stack([x, np.zeros_like(x)], axis=1)[None], t_s=t)
    k = compute_kinematics(s, KinematicsConfig(accel_window_s=0.0, jerk_window_s=0.0))
    # a central difference of a quadratic over unequal steps is exact at the midpoint of the two samples
    lo, hi = t[:-2], t[2:]
    expect = v0 + a * (lo + hi) / 2
    np.testing.assert_allclose(k.speed_mps[0, 1:-1], expect, rtol=0, atol=1e-6)
    inner = k.accel_mps2[0, 3:-3]
    np.testing.assert_allclose(inner, a, atol=1e-6)  # velocities refer to mid-sample times: exact again
    assert abs(np.nanmedian(k.accel_mps2[0])) - abs(a) < 0.05
    assert np.nanmax(np.abs(k.jerk_mps3[0, 6:-6])) < 5.0


def test_timestamps_are_used_not_an_assumed_dt() -> None:
    """The same positions at 5 Hz instead of 10 Hz give half the speed."""
    x = np.arange(20) * 1.0
    xy = np.stack([x, np.zeros(20)], axis=1)[None]
    fast = compute_kinematics(scenario(xy, t_s=np.arange(20) * 0.1)).speed_mps
    slow = compute_kinematics(scenario(xy, t_s=np.arange(20) * 0.2)).speed_mps
    np.testing.assert_allclose(fast[0], 10.0)
    np.testing.assert_allclose(slow[0], 5.0)


def test_yaw_rate_and_lateral_acceleration_on_a_circle() -> None:
    """Uniform circular motion: yaw rate v/r (left turn positive), lateral acceleration v^2/r to the left."""
    r, v = 20.0, 10.0
    t = np.arange(80) * 0.1
    ang = v / r * t
    xy = np.stack([r * np.sin(ang), r - r * np.cos(ang)], axis=1)[None]
    heading = ang[None]
    s = scenario(xy, heading=heading)
    k = compute_kinematics(s)
    inner = slice(10, -10)
    np.testing.assert_allclose(k.yaw_rate_rps[0, inner], v / r, rtol=1e-3)
    np.testing.assert_allclose(k.speed_mps[0, inner], v, rtol=1e-3)
    np.testing.assert_allclose(k.lat_accel_mps2[0, inner], v**2 / r, rtol=2e-2)
    np.testing.assert_allclose(k.accel_mps2[0, inner], 0.0, atol=0.05)


def test_gaps_are_not_bridged_and_unknown_is_nan() -> None:
    t = np.arange(30) * 0.1
    xy = line(0, 0, 10, 0, t)[None]
    valid = np.ones((1, 30), dtype=bool)
    valid[0, 10:15] = False
    valid[0, 20] = True
    valid[0, 19] = False
    valid[0, 21] = False  # step 20 alone: no neighbour, no velocity
    xy = xy.copy()
    xy[0, 15:] += [100.0, 0.0]  # a jump across the gap must not show as a speed
    s = scenario(xy, valid=valid)
    k = compute_kinematics(s)
    assert np.isnan(k.speed_mps[0, 10:15]).all()
    assert np.isnan(k.speed_mps[0, 20])
    np.testing.assert_allclose(k.speed_mps[0, :10], 10.0)
    np.testing.assert_allclose(k.speed_mps[0, 15:19], 10.0)


def test_source_velocity_preferred_but_a_zeroed_end_is_replaced() -> None:
    t = np.arange(20) * 0.1
    xy = line(0, 0, 8, 0, t)[None]
    vel = np.zeros((1, 20, 2))
    vel[0, :, 0] = 7.5  # the tracker says 7.5 m/s (positions say 8): trust the tracker
    vel[0, -1] = 0.0  # a converter's zero at the end of the track: positions say 8 m/s
    k = compute_kinematics(scenario(xy, velocity=vel))
    np.testing.assert_allclose(k.speed_mps[0, :-1], 7.5)
    np.testing.assert_allclose(k.speed_mps[0, -1], 8.0)


def test_windowed_derivative_shapes_and_single_step() -> None:
    valid = np.ones((2, 1), dtype=bool)
    out = windowed_derivative(np.zeros((2, 1, 2)), valid, np.array([0], dtype=np.int64), 0.5)
    assert out.shape == (2, 1, 2)
    assert np.isnan(out).all()


def test_mask_runs_by_hand() -> None:
    m = np.array([[0, 1, 1, 0, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=bool)
    rows, first, last = mask_runs(m)
    assert list(zip(rows.tolist(), first.tolist(), last.tolist(), strict=True)) == [
        (0, 1, 2),
        (0, 4, 4),
        (1, 0, 4),
    ]


# --------------------------------------------------------------------------- map context


def test_lane_offsets_heading_and_places_ahead() -> None:
    """A car in lane 1 (y = 3.6), 0.4 m left of its centre, 5 deg off, toward a crosswalk and stop line."""
    m = road(lanes=2, crosswalk_x=30.0, stop_line_x=20.0)
    t = np.arange(10) * 0.1
    car = line(-10, 3.6 + 0.4, 10, 0, t)
    heading = np.full((1, 10), np.deg2rad(5.0))
    s = scenario(car[None], heading=heading, map=m)
    mc = compute_map_context(s)
    assert mc is not None
    lane_ids = mc.lanes.feature_ids[mc.lane[0]]
    assert set(lane_ids.tolist()) == {"L1_0"}
    np.testing.assert_allclose(mc.lane_lateral_m[0], 0.4, atol=1e-9)
    np.testing.assert_allclose(mc.lane_heading_diff_rad[0], np.deg2rad(5.0), atol=1e-9)
    x = car[:, 0]
    np.testing.assert_allclose(mc.next_stop_line_m[0], 20.0 - x, atol=1e-6)
    # the crosswalk polygon starts at x = 28; lane samples every 1 m find its entry to within a metre
    assert np.all(np.abs(mc.next_crosswalk_m[0] - (28.0 - x)) <= 1.0 + 1e-9)
    assert np.isnan(mc.next_intersection_m[0]).all()  # none on this road
    assert mc.in_drivable_area[0].all()
    assert not mc.in_crosswalk[0].any()
    assert mc.lanes.width_m.min() == pytest.approx(3.6)


def test_intersection_distance_through_successors_and_inside() -> None:
    m = road(lanes=1, intersection=(0.0, 20.0))
    t = np.arange(40) * 0.5
    car = line(-30, 0.1, 2.5, 0, t)  # from x=-30 to x=67.5
    s = scenario(car[None], map=m)
    mc = compute_map_context(s)
    assert mc is not None
    x = car[:, 0]
    before = x < 0
    np.testing.assert_allclose(mc.next_intersection_m[0, before], -x[before], atol=1e-6)
    inside = (x >= 0) & (x <= 20)
    assert (mc.next_intersection_m[0, inside] == 0).all()
    assert mc.in_intersection[0, inside].all()
    assert np.isnan(mc.next_intersection_m[0, x > 20.5]).all()


def test_heading_picks_the_lane_driven_along_at_overlaps() -> None:
    """Two lanes cross at right angles; a car driving north on the crossing is put on the north lane."""
    from datadrive.core.scenario import MapBuilder, MapFeatureKind

    b = MapBuilder()
    b.add("east", MapFeatureKind.LANE_CENTERLINE, np.array([[-20.0, 0.0], [20.0, 0.0]]))
    b.add("north", MapFeatureKind.LANE_CENTERLINE, np.array([[0.0, -20.0], [0.0, 20.0]]))
    m = b.build()
    t = np.arange(5) * 0.1
    car = line(0.3, -0.2, 0, 5, t)  # nearer to "east" at first, but heading north
    s = scenario(car[None], heading=np.full((1, 5), np.pi / 2), map=m)
    mc = compute_map_context(s)
    assert mc is not None
    assert set(mc.lanes.feature_ids[mc.lane[0]].tolist()) == {"north"}
    # a pedestrian at the same spot (no heading weight) gets the nearest lane
    ped = scenario(car[None], heading=np.full((1, 5), np.pi / 2), map=m, types=[P])
    mp = compute_map_context(ped)
    assert mp is not None
    assert mp.lanes.feature_ids[mp.lane[0, 0]] == "east"
    assert mc.lanes.intersection_inferred
    assert mc.lanes.is_intersection.all()


def test_no_map_no_track_all_invalid() -> None:
    s = scenario(np.zeros((1, 3, 2)))
    assert compute_map_context(s) is None
    empty = scenario(np.zeros((0, 4, 2)), types=[], map=road())
    mc = compute_map_context(empty)
    assert mc is not None
    assert mc.lane.shape == (0, 4)
    invalid = scenario(np.zeros((2, 4, 2)), valid=np.zeros((2, 4), dtype=bool), types=[V, C], map=road())
    mc2 = compute_map_context(invalid)
    assert mc2 is not None
    assert (mc2.lane == -1).all()
    k = compute_kinematics(invalid)
    assert np.isnan(k.speed_mps).all()


def test_candidates_agree_with_brute_force() -> None:
    rng = np.random.default_rng(3)
    polylines = [
        np.cumsum(rng.normal(0, 3, (rng.integers(2, 8), 2)), axis=0) + rng.uniform(-30, 30, 2)
        for _ in range(25)
    ]
    counts = np.array([p.shape[0] for p in polylines])
    flat = np.concatenate(polylines)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    index = PolylineIndex(flat, offsets)
    q = rng.uniform(-40, 40, (300, 2))
    cand = index.candidates(q, max_distance_m=6.0, k=3, samples=64)

    def dist(p: np.ndarray, poly: np.ndarray) -> float:
        a, b = poly[:-1], poly[1:]
        d = b - a
        u = np.clip(((p - a) * d).sum(1) / np.maximum((d * d).sum(1), 1e-12), 0, 1)
        return float(np.min(np.hypot(*(p - (a + u[:, None] * d)).T)))

    for i in range(q.shape[0]):
        truth = sorted((dist(q[i], p), f) for f, p in enumerate(polylines))
        truth = [(d, f) for d, f in truth if d <= 6.0][:3]
        got = [(cand.distance_m[i, j], cand.feature[i, j]) for j in range(3) if cand.feature[i, j] >= 0]
        assert [f for _, f in got] == [f for _, f in truth]
        np.testing.assert_allclose([d for d, _ in got], [d for d, _ in truth], atol=1e-9)


def test_real_av2_log_has_lanes_places_and_kinematics(sample) -> None:  # type: ignore[no-untyped-def]
    """On the AV2 scenario-mining log: the ego drives on lanes, with intersections and crosswalks ahead."""
    s = sample("av2_mining")
    ctx = ScenarioContext(s)
    mc = ctx.map
    assert mc is not None
    e = s.ego_index
    assert e is not None
    on_lane = mc.lane[e] >= 0
    assert on_lane.mean() > 0.9  # the ego drives in a lane
    assert np.nanmax(np.abs(mc.lane_lateral_m[e])) < 2.5
    assert np.isfinite(mc.next_intersection_m[e]).any()
    assert np.isfinite(mc.next_crosswalk_m[e]).any()
    # speeds from the kinematics match the displacement of the ego's positions over the log
    dist = np.sum(np.hypot(*np.diff(s.tracks.xy_m[e], axis=0).T))
    duration = (s.timestamps_ns[-1] - s.timestamps_ns[0]) / 1e9
    assert np.nanmean(ctx.kinematics.speed_mps[e]) == pytest.approx(dist / duration, rel=0.05)
