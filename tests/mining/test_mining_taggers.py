"""Every tagger on hand-built scenarios whose answer is known, and how tagging degrades."""

from __future__ import annotations

import numpy as np
import pytest
from mining_build import P, V, line, road, scenario

from datadrive.mining.context import ScenarioContext
from datadrive.mining.events import (
    EVENT_TYPES,
    HardBrakingConfig,
    TaggerConfig,
    events_in_window,
    tag_scenario,
    tagger_version,
)
from datadrive.mining.index import state_table

T = np.arange(100) * 0.1  # 10 s at 10 Hz


def braking_profile(v0: float, decel: float, t0: float, t1: float, t: np.ndarray) -> np.ndarray:
    """x(t) for speed v0, braking at ``decel`` between t0 and t1."""
    v = np.where(t < t0, v0, np.where(t < t1, v0 - decel * (t - t0), v0 - decel * (t1 - t0)))
    x = np.concatenate([[0.0], np.cumsum((v[1:] + v[:-1]) / 2 * np.diff(t))])
    return x


def one(events: list, event_type: str):  # type: ignore[no-untyped-def]
    found = [e for e in events if e.event_type == event_type]
    assert len(found) == 1, found
    return found[0]


def test_hard_braking_with_known_deceleration() -> None:
    x_hard = braking_profile(20.0, 5.0, 2.0, 4.0, T)
    x_soft = braking_profile(20.0, 2.0, 2.0, 4.0, T)
    xy = np.stack([np.stack([x_hard, np.zeros_like(T)], 1), np.stack([x_soft, np.full_like(T, 10.0)], 1)])
    rep = tag_scenario(scenario(xy), event_types=["hard_braking"])
    e = one(list(rep.events), "hard_braking")
    assert e.actor == "t0"
    assert e.severity == pytest.approx(5.0, abs=0.05)  # the 1 s window is fully inside the braking
    assert 1.4 <= (e.start_ns - 1e9) / 1e9 <= 2.6
    assert 3.4 <= (e.end_ns - 1e9) / 1e9 <= 4.6
    # a stricter threshold finds nothing
    cfg = TaggerConfig(hard_braking=HardBrakingConfig(decel_mps2=6.0))
    assert not tag_scenario(scenario(xy), cfg, event_types=["hard_braking"]).events


def test_hard_acceleration_known_and_below_threshold() -> None:
    x_hard = braking_profile(2.0, -4.0, 1.0, 3.0, T)  # +4 m/s^2
    x_soft = braking_profile(2.0, -2.5, 1.0, 3.0, T)
    xy = np.stack([np.stack([x_hard, np.zeros_like(T)], 1), np.stack([x_soft, np.full_like(T, 10.0)], 1)])
    e = one(list(tag_scenario(scenario(xy), event_types=["hard_acceleration"]).events), "hard_acceleration")
    assert e.actor == "t0"
    assert e.severity == pytest.approx(4.0, abs=0.05)


def circle(r: float, v: float, y0: float) -> tuple[np.ndarray, np.ndarray]:
    ang = v / r * T
    return np.stack([r * np.sin(ang), y0 + r - r * np.cos(ang)], 1), ang


def test_high_lateral_acceleration_v2_over_r() -> None:
    tight, h1 = circle(50.0, 15.0, 0.0)  # 4.5 m/s^2
    wide, h2 = circle(150.0, 15.0, 500.0)  # 1.5 m/s^2
    s = scenario(np.stack([tight, wide]), heading=np.stack([h1, h2]))
    e = one(
        list(tag_scenario(s, event_types=["high_lateral_acceleration"]).events), "high_lateral_acceleration"
    )
    assert e.actor == "t0"
    assert e.severity == pytest.approx(4.5, rel=0.03)


def test_swerve_but_not_a_lane_change() -> None:
    v = 15.0
    y_swerve = np.where((T >= 3) & (T <= 5), 0.4 * np.sin(np.pi * (T - 3)), 0.0)  # out and back in 2 s
    y_change = np.where(T < 3, 0.0, np.where(T > 8, 3.6, 1.8 * (1 - np.cos(np.pi * (T - 3) / 5))))
    a = np.stack([v * T, y_swerve], 1)
    b = np.stack([v * T, 50 + y_change], 1)
    rep = tag_scenario(scenario(np.stack([a, b])), event_types=["swerve"])
    e = one(list(rep.events), "swerve")
    assert e.actor == "t0"
    # amplitude 0.4 m at pi rad/s: lateral acceleration peaks at 0.4 pi^2 = 3.95 m/s^2 each way; the 1 s
    # difference window passes sin(pi/2)/(pi/2) = 0.64 of a 0.5 Hz sine: about 2.5 m/s^2 each way
    expected = 2 * 0.4 * np.pi**2 * (np.sin(np.pi / 2) / (np.pi / 2))
    assert 0.9 * expected <= e.severity <= 1.02 * expected


def test_ego_stationary_duration() -> None:
    x = np.where(T < 2, 5 * T, np.where(T < 5, 10.0, 10 + 5 * (T - 5)))
    s = scenario(np.stack([x, np.zeros_like(T)], 1)[None], ego_index=0)
    e = one(list(tag_scenario(s, event_types=["ego_stationary"]).events), "ego_stationary")
    assert 2.5 <= e.duration_s <= 3.1
    assert e.ego_involved


def test_ego_speeding_only_with_limits() -> None:
    m = road(lanes=1)
    fast = line(-90, 0, 13.0, 0, T)
    ok = line(-90, 0, 10.5, 0, T)
    limits = {"lane_speed_limits_mps": {"L0_0": 10.0}}
    s = scenario(fast[None], map=m, ego_index=0, extras=limits)
    e = one(list(tag_scenario(s, event_types=["ego_speeding"]).events), "ego_speeding")
    assert e.severity == pytest.approx(3.0, abs=1e-6)
    assert e.details["limit_mps"] == 10.0
    assert not tag_scenario(
        scenario(ok[None], map=m, ego_index=0, extras=limits), event_types=["ego_speeding"]
    ).events
    rep = tag_scenario(scenario(fast[None], map=m, ego_index=0), event_types=["ego_speeding"])
    assert "ego_speeding" in rep.skipped
    assert "speed limit" in rep.skipped["ego_speeding"]


def lane_change_y(t: np.ndarray, t0: float, dur: float, y0: float, y1: float) -> np.ndarray:
    u = np.clip((t - t0) / dur, 0, 1)
    return y0 + (y1 - y0) * (1 - np.cos(np.pi * u)) / 2


def test_lane_change_left_between_neighbours() -> None:
    m = road(lanes=2)
    xy = np.stack([-90 + 12 * T, lane_change_y(T, 3, 4, 0.0, 3.6)], 1)
    rep = tag_scenario(scenario(xy[None], map=m), event_types=["lane_change"])
    e = one(list(rep.events), "lane_change")
    assert e.details["direction"] == "left"
    assert e.details["from_lane"] == "L0_0"
    assert e.details["to_lane"] == "L1_0"
    assert 2.9 <= (e.start_ns - 1e9) / 1e9 <= 5.0 <= (e.end_ns - 1e9) / 1e9 <= 7.1
    # peak lateral speed of a cosine lane change: (3.6 / 2) * pi / 4
    assert e.severity == pytest.approx(1.8 * np.pi / 4, rel=0.03)


def test_cut_in_close_ahead_of_the_ego_not_far_ahead() -> None:
    m = road(lanes=2)
    follower = np.stack([-90 + 15 * T, np.full_like(T, 3.6)], 1)
    close = np.stack([-75 + 15 * T, lane_change_y(T, 2, 3, 0.0, 3.6)], 1)  # ends 15 m ahead: 10.5 m gap
    far = np.stack([-30 + 15 * T, lane_change_y(T, 2, 3, 0.0, 3.6)], 1)  # ends 60 m ahead
    s = scenario(np.stack([follower, close]), map=m, ego_index=0)
    e = one(list(tag_scenario(s, event_types=["cut_in"]).events), "cut_in")
    assert e.track_ids == ("t1", "t0")
    assert e.details["follower_is_ego"] is True
    assert e.ego_involved
    assert e.details["min_gap_m"] == pytest.approx(15.0 - 4.5, abs=0.5)
    assert e.details["min_headway_s"] == pytest.approx(10.5 / 15.0, abs=0.05)
    s2 = scenario(np.stack([follower, far]), map=m, ego_index=0)
    assert not tag_scenario(s2, event_types=["cut_in"]).events
    assert tag_scenario(s2, event_types=["lane_change"]).events  # still a lane change


def test_near_miss_by_post_encroachment_time() -> None:
    """B crosses A's path first; A's box reaches the crossing 0.6 s after B's box left it."""
    a = np.stack([-2.4 + 10 * T, np.zeros_like(T)], 1)
    b = np.stack([np.full_like(T, 20.0), -10 + 10 * T], 1)
    heading = np.stack([np.zeros_like(T), np.full_like(T, np.pi / 2)])
    e = one(
        list(tag_scenario(scenario(np.stack([a, b]), heading=heading), event_types=["near_miss"]).events),
        "near_miss",
    )
    assert set(e.track_ids) == {"t0", "t1"}
    assert 0.5 <= e.details["min_pet_s"] <= 0.75
    # 2 s later instead: no conflict
    a2 = np.stack([-22.4 + 10 * T, np.zeros_like(T)], 1)
    assert not tag_scenario(scenario(np.stack([a2, b]), heading=heading), event_types=["near_miss"]).events


def test_near_miss_by_time_to_collision_with_an_evasive_lane_change() -> None:
    leader = np.stack([np.full_like(T, 30.0), np.zeros_like(T)], 1)  # stopped
    follower = np.stack([10 * T, lane_change_y(T, 1.5, 1.0, 0.0, 3.6)], 1)
    beside = np.stack([10 * T, np.full_like(T, 3.6)], 1)
    s = scenario(np.stack([leader, follower]))
    e = one(list(tag_scenario(s, event_types=["near_miss"]).events), "near_miss")
    assert e.track_ids[0] == "t1"  # the faster one is the actor
    # gap 30 - 4.5 = 25.5 m at 10 m/s: TTC falls below 1.5 s from t = 1.05 s until the swerve
    assert 0.9 <= e.details["min_ttc_s"] <= 1.5
    assert not tag_scenario(scenario(np.stack([leader, beside])), event_types=["near_miss"]).events


def test_vru_crossing_ahead_but_not_far_or_behind() -> None:
    car = np.stack([5 * T, np.zeros_like(T)], 1)
    ped_near = np.stack(
        [np.full_like(T, 2.25 + 5 * 4 + 8), -6 + 1.5 * T], 1
    )  # 8 m ahead of the bumper at t=4
    ped_far = np.stack([np.full_like(T, 2.25 + 5 * 4 + 30), -6 + 1.5 * T], 1)
    ped_behind = np.stack([np.full_like(T, 5 * 4 - 10), -6 + 1.5 * T], 1)
    s = scenario(np.stack([car, ped_near, ped_far, ped_behind]), types=[V, P, P, P])
    e = one(list(tag_scenario(s, event_types=["vru_crossing"]).events), "vru_crossing")
    assert e.track_ids == ("t1", "t0")
    assert e.details["distance_ahead_m"] == pytest.approx(8.0, abs=0.2)
    assert (e.start_ns - 1e9) / 1e9 <= 4.0 <= (e.end_ns - 1e9) / 1e9


def test_stopped_in_lane_not_queued_not_at_a_junction() -> None:
    m = road(lanes=2, intersection=(40.0, 60.0))
    lead = np.tile([[-20.0, 0.0]], (100, 1))  # stopped 40 m before the intersection
    queued = np.tile([[-26.0, 0.0]], (100, 1))  # 6 m behind it: a queue
    at_junction = np.tile([[32.0, 3.6]], (100, 1))  # 8 m before the intersection
    moving = np.stack([-90 + 10 * T, np.full_like(T, 3.6)], 1)
    s = scenario(np.stack([lead, queued, at_junction, moving]), heading=np.zeros((4, 100)), map=m)
    e = one(list(tag_scenario(s, event_types=["stopped_in_lane"]).events), "stopped_in_lane")
    assert e.actor == "t0"
    assert e.details["lane"] == "L0_0"
    assert e.duration_s == pytest.approx(9.9, abs=1e-6)


def test_unprotected_left_turn_with_oncoming_traffic() -> None:
    m = road(lanes=1, intersection=(0.0, 20.0), opposite=True)
    r = 10.0
    # east at 6 m/s to x=5 (t=2 s), then a quarter circle left (radius 10), then north
    ang = np.clip((T - 2) * 6 / r, 0, np.pi / 2)
    x = np.where(T < 2, 5 + 6 * (T - 2), 5 + r * np.sin(ang))
    y = np.where(T < 2, 0.0, r - r * np.cos(ang))
    after = 2 + (np.pi / 2) * r / 6 < T
    y = np.where(after, r + 6 * (T - 2 - (np.pi / 2) * r / 6), y)
    turner = np.stack([x, y], 1)
    h_turn = np.where(T < 2, 0.0, ang)
    oncoming = np.stack([70 - 10 * T, np.full_like(T, 3.6)], 1)
    heading = np.stack([h_turn, np.full_like(T, np.pi)])
    s = scenario(np.stack([turner, oncoming]), heading=heading, map=m, location="pittsburgh")
    e = one(list(tag_scenario(s, event_types=["unprotected_turn"]).events), "unprotected_turn")
    assert e.track_ids == ("t0", "t1")
    assert e.details["direction"] == "left"
    assert e.details["min_gap_s"] <= 6.0
    # where traffic drives on the left, a left turn does not cross the oncoming lanes
    s_lht = scenario(np.stack([turner, oncoming]), heading=heading, map=m, location="singapore-onenorth")
    assert not tag_scenario(s_lht, event_types=["unprotected_turn"]).events


def test_dense_traffic_by_lane_density() -> None:
    m = road(lanes=2, length=400, start=-200)
    ego = np.stack([-50 + 5 * T, np.zeros_like(T)], 1)
    others = [
        np.stack([-50 + dx + 5 * T, np.full_like(T, y)], 1)
        for dx, y in [(-40, 0), (-25, 0), (-10, 3.6), (10, 0), (25, 3.6), (40, 0), (-40, 3.6), (40, 3.6)]
    ]
    dense = scenario(np.stack([ego, *others]), map=m, ego_index=0)
    e = one(list(tag_scenario(dense, event_types=["dense_traffic"]).events), "dense_traffic")
    assert e.severity == pytest.approx(8 / 0.1 / 2)  # 8 vehicles in 100 m of a 2-lane road: 40 veh/km/lane
    sparse = scenario(np.stack([ego, *others[:4]]), map=m, ego_index=0)
    assert not tag_scenario(sparse, event_types=["dense_traffic"]).events


def test_degradation_without_map_ego_tracks_or_valid_states() -> None:
    no_map = scenario(np.stack([line(0, 0, 10, 0, T)]))
    rep = tag_scenario(no_map)
    lane_taggers = {n for n, et in EVENT_TYPES.items() if "map" in et.needs}
    ego_taggers = {n for n, et in EVENT_TYPES.items() if "ego" in et.needs}
    assert lane_taggers | ego_taggers == set(rep.skipped)
    assert all("map" in rep.skipped[n] or "ego" in rep.skipped[n] for n in rep.skipped)
    empty = scenario(np.zeros((0, 5, 2)), types=[], map=road())
    assert tag_scenario(empty).events == ()
    invalid = scenario(np.zeros((2, 5, 2)), valid=np.zeros((2, 5), dtype=bool), map=road(), ego_index=0)
    assert tag_scenario(invalid).events == ()
    single = scenario(np.zeros((1, 1, 2)), map=road(), ego_index=0)
    assert tag_scenario(single).events == ()


def test_version_follows_the_configuration_and_windows() -> None:
    assert tagger_version() == tagger_version(TaggerConfig())
    assert tagger_version() != tagger_version(TaggerConfig(hard_braking=HardBrakingConfig(decel_mps2=4.0)))
    x = np.where(T < 2, 5 * T, np.where(T < 5, 10.0, 10 + 5 * (T - 5)))
    s = scenario(np.stack([x, np.zeros_like(T)], 1)[None], ego_index=0)
    events = list(tag_scenario(s).events)
    t0 = int(s.timestamps_ns[0])
    assert events_in_window(events, t0 + int(3e9), t0 + int(3.5e9), ego_only=True)
    assert not events_in_window(events, t0 + int(8e9), t0 + int(9e9))
    with pytest.raises(KeyError, match="known"):
        tag_scenario(s, event_types=["teleport"])


@pytest.mark.parametrize(
    ("source", "dataset", "known"),
    [
        ("scenarionet", "nuscenes", False),  # the converter's constant 100 km/h: a placeholder
        ("scenarionet", "av2", False),  # Argoverse 2's constant highway value: a placeholder
        ("scenarionet", "waymo", True),  # Waymo's maps carry posted limits
        ("waymo_open_motion", None, True),
    ],
)
def test_scenarionet_placeholder_limits_are_unknown(source: str, dataset: str | None, known: bool) -> None:
    m = road(lanes=1)
    fast = line(-90, 0, 33.0, 0, T)  # 119 km/h, well over a 100 km/h limit
    extras: dict[str, object] = {"lane_speed_limits_mps": {"L0_0": 100 / 3.6}}
    if dataset is not None:
        extras["dataset"] = dataset
    s = scenario(fast[None], map=m, ego_index=0, extras=extras, source=source)
    rep = tag_scenario(s, event_types=["ego_speeding"])
    assert bool(rep.events) is known
    assert ("ego_speeding" in rep.skipped) is not known
    limits = state_table(s, ScenarioContext(s)).column("speed_limit_mps").to_pylist()
    on_road = [v for v in limits if v is not None]  # the road ends at x = 100 m; the car goes on
    assert on_road == ([pytest.approx(100 / 3.6)] * len(on_road) if known else [])
    assert len(on_road) > 30 or not known


def test_the_maps_own_limits_come_before_the_extras() -> None:
    from datadrive.core.scenario import MapFeatures

    m = road(lanes=1)
    limits = np.full(m.num_features, np.nan)
    limits[list(m.feature_ids).index("L0_0")] = 10.0
    m = MapFeatures(**{**{f: getattr(m, f) for f in m.__dataclass_fields__}, "speed_limit_mps": limits})
    s = scenario(
        line(-90, 0, 13.0, 0, T)[None],
        map=m,
        ego_index=0,
        extras={"lane_speed_limits_mps": {"L0_0": 100 / 3.6}},
    )
    e = one(list(tag_scenario(s, event_types=["ego_speeding"]).events), "ego_speeding")
    assert e.details["limit_mps"] == 10.0
