"""One test per tagger on a real sample: something visible in the raw data agrees with what was tagged.

Each check recomputes its evidence from the raw arrays (positions, headings,
the official av2 map API), not from the tagger's own features.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datadrive.core.scenario import ObjectType, Scenario
from datadrive.mining.events import EgoSpeedingConfig, TaggerConfig, tag_scenario


def _row(s: Scenario, track_id: str) -> int:
    return int(np.flatnonzero(s.tracks.track_ids == track_id)[0])


def _raw_speed(s: Scenario, r: int, first: int, last: int) -> float:
    """Mean speed over steps [first, last] from positions alone."""
    xy = s.tracks.xy_m[r, first : last + 1]
    d = np.sum(np.hypot(*np.diff(xy, axis=0).T))
    return float(d / ((s.timestamps_ns[last] - s.timestamps_ns[first]) / 1e9))


def _clip_window(s: Scenario, r: int, step: int, half_s: float) -> tuple[int, int]:
    t = (s.timestamps_ns - s.timestamps_ns[0]) / 1e9
    lo = int(np.searchsorted(t, t[step] - half_s))
    hi = int(np.searchsorted(t, t[step] + half_s, side="right")) - 1
    valid = np.flatnonzero(s.tracks.valid[r])
    return max(lo, int(valid[0])), min(hi, int(valid[-1]))


def test_hard_braking_on_av2_sensor_slows_the_car_down(sample) -> None:  # type: ignore[no-untyped-def]
    s = sample("av2_sensor")
    events = tag_scenario(s, event_types=["hard_braking"]).events
    assert events
    for e in events:
        r = _row(s, e.actor)
        # speed 0.5 s before the event starts against 0.5 s after it ends, from positions (0.4 s chords)
        before = _clip_window(s, r, _clip_window(s, r, e.start_step, 0.5)[0], 0.2)
        after = _clip_window(s, r, _clip_window(s, r, e.end_step, 0.5)[1], 0.2)
        assert _raw_speed(s, r, *before) - _raw_speed(s, r, *after) >= 1.5, e


def test_hard_acceleration_on_nuscenes_speeds_the_car_up(sample) -> None:  # type: ignore[no-untyped-def]
    s = sample("nuscenes_0553")
    events = tag_scenario(s, event_types=["hard_acceleration"]).events
    assert events
    for e in events:
        r = _row(s, e.actor)
        before = _clip_window(s, r, _clip_window(s, r, e.start_step, 0.5)[0], 0.2)
        after = _clip_window(s, r, _clip_window(s, r, e.end_step, 0.5)[1], 0.2)
        assert _raw_speed(s, r, *after) - _raw_speed(s, r, *before) >= 1.5, e


def test_high_lateral_acceleration_on_av2_is_a_car_turning_at_speed(sample) -> None:  # type: ignore[no-untyped-def]
    s = sample("av2_mining")
    events = tag_scenario(s, event_types=["high_lateral_acceleration"]).events
    assert events
    for e in events:
        r = _row(s, e.actor)
        h = np.unwrap(s.tracks.heading_rad[r, e.start_step : e.end_step + 1])
        dt = (s.timestamps_ns[e.end_step] - s.timestamps_ns[e.start_step]) / 1e9
        yaw_rate = abs(h[-1] - h[0]) / dt
        v = _raw_speed(s, r, e.start_step, e.end_step)
        assert v * yaw_rate >= 2.0, (e, v, yaw_rate)  # lateral acceleration = v * yaw rate in a turn


def test_no_swerve_where_the_av2_ego_drives_smoothly(sample) -> None:  # type: ignore[no-untyped-def]
    s = sample("av2_mining")
    e = s.ego_index
    assert e is not None
    h = np.unwrap(s.tracks.heading_rad[e])
    rate = np.abs(np.diff(h)) / (np.diff(s.timestamps_ns) / 1e9)
    assert rate.max() < 0.5  # the ego's heading never changes quickly
    rep = tag_scenario(s, event_types=["swerve"])
    assert "swerve" not in rep.skipped
    assert not [x for x in rep.events if x.ego_involved]


def test_ego_stationary_on_waymo_covers_the_parked_sdc(sample) -> None:  # type: ignore[no-untyped-def]
    s = sample("waymo")
    e = s.ego_index
    assert e is not None
    xy = s.tracks.xy_m[e][s.tracks.valid[e]]
    assert np.hypot(*(xy.max(0) - xy.min(0))) < 0.5  # the SDC does not move (SOURCES.md)
    ev = tag_scenario(s, event_types=["ego_stationary"]).events
    assert len(ev) == 1
    assert ev[0].duration_s >= 8.5


def test_ego_speeding_checks_posted_limits_on_scenarionet_waymo(sample) -> None:  # type: ignore[no-untyped-def]
    s = sample("scenarionet_waymo")
    limits = s.metadata.extras["lane_speed_limits_mps"]
    assert set(np.round(list(limits.values()), 3)) >= {round(40 * 0.44704, 3)}  # 40 mph lanes in the file
    e = s.ego_index
    assert e is not None
    top = max(_raw_speed(s, e, i, i + 5) for i in range(0, s.num_steps - 6, 5))
    assert top < 40 * 0.44704  # the ego stays under 40 mph
    rep = tag_scenario(s, event_types=["ego_speeding"])
    assert "ego_speeding" not in rep.skipped
    assert not rep.events
    # with no tolerance and a limit at 40 % of the posted one, its fastest moments count as speeding
    strict = TaggerConfig(ego_speeding=EgoSpeedingConfig(tolerance_fraction=-0.6, min_duration_s=0.5))
    fast = tag_scenario(s, strict, event_types=["ego_speeding"]).events
    assert fast
    assert all(x.details["peak_speed_mps"] > 0.4 * 40 * 0.44704 for x in fast)


def test_nuscenes_placeholder_limits_are_not_limits(sample) -> None:  # type: ignore[no-untyped-def]
    s = sample("nuscenes_0553")
    limits = s.metadata.extras["lane_speed_limits_mps"]
    assert set(np.round(list(limits.values()), 2)) == {27.78}  # ScenarioNet's 100 km/h on every lane
    rep = tag_scenario(s, event_types=["ego_speeding"])
    assert "ego_speeding" in rep.skipped  # unknown limits: not judged
    assert not rep.events


def _av2_map(samples: Path, log: str):  # type: ignore[no-untyped-def]
    from av2.map.map_api import ArgoverseStaticMap

    return ArgoverseStaticMap.from_map_dir(samples / "av2_scenario_mining" / log / "map", build_raster=False)


def test_lane_changes_on_av2_are_between_neighbours_in_the_official_map(sample, samples: Path) -> None:  # type: ignore[no-untyped-def]
    s = sample("av2_mining")
    events = tag_scenario(s, event_types=["lane_change"]).events
    assert events
    avm = _av2_map(samples, s.scenario_id)
    for e in events:
        src = avm.vector_lane_segments[int(e.details["from_lane"])]
        dst = int(e.details["to_lane"])
        neighbour = src.left_neighbor_id if e.details["direction"] == "left" else src.right_neighbor_id
        assert neighbour == dst, e


def test_cut_in_on_av2_ends_ahead_of_the_follower_in_its_path(sample) -> None:  # type: ignore[no-untyped-def]
    s = sample("av2_mining")
    events = tag_scenario(s, event_types=["cut_in"]).events
    assert events
    for e in events:
        b, f = _row(s, e.track_ids[0]), _row(s, e.track_ids[1])

        def rel(t: int, b: int = b, f: int = f) -> tuple[float, float]:
            h = s.tracks.heading_rad[f, t]
            d = s.tracks.xy_m[b, t] - s.tracks.xy_m[f, t]
            return float(d[0] * np.cos(h) + d[1] * np.sin(h)), float(-d[0] * np.sin(h) + d[1] * np.cos(h))

        both = np.flatnonzero(s.tracks.valid[b] & s.tracks.valid[f])
        end = int(both[both <= e.end_step][-1])
        start = int(both[both >= e.start_step][0])
        ahead_end, side_end = rel(end)
        _, side_start = rel(start)
        assert 0 < ahead_end < 40, e
        assert abs(side_end) < 2.0, e
        assert abs(side_start) > abs(side_end) + 1.0, e  # it came in from the side


def test_near_misses_on_av2_bring_two_road_users_close(sample) -> None:  # type: ignore[no-untyped-def]
    s = sample("av2_mining")
    events = tag_scenario(s, event_types=["near_miss"]).events
    assert events
    for e in events:
        a, b = _row(s, e.track_ids[0]), _row(s, e.track_ids[1])
        steps = np.arange(e.start_step, e.end_step + 1)
        steps = steps[s.tracks.valid[a, steps] & s.tracks.valid[b, steps]]
        d = np.hypot(*(s.tracks.xy_m[a, steps] - s.tracks.xy_m[b, steps]).T)
        assert d.min() < 15.0, e
        assert ObjectType.VEHICLE in (s.tracks.object_type[a], s.tracks.object_type[b])


def test_pedestrians_on_waymo_cross_the_vehicles_centre_line_ahead(sample) -> None:  # type: ignore[no-untyped-def]
    s = sample("waymo")
    events = tag_scenario(s, event_types=["vru_crossing"]).events
    assert events
    for e in events:
        u, v = _row(s, e.track_ids[0]), _row(s, e.track_ids[1])
        steps = np.arange(e.start_step, e.end_step + 1)
        steps = steps[s.tracks.valid[u, steps] & s.tracks.valid[v, steps]]
        h = s.tracks.heading_rad[v, steps]
        d = s.tracks.xy_m[u, steps] - s.tracks.xy_m[v, steps]
        fwd = d[:, 0] * np.cos(h) + d[:, 1] * np.sin(h)
        left = -d[:, 0] * np.sin(h) + d[:, 1] * np.cos(h)
        assert left.min() < 0 < left.max(), e  # from one side of the car's axis to the other
        half = s.tracks.size_m[v, 0] / 2
        assert ((fwd - half >= 0) & (fwd - half <= 10.5)).any(), e
        assert s.tracks.object_type[u] in (ObjectType.PEDESTRIAN, ObjectType.CYCLIST)


def test_stopped_in_lane_on_av2_is_still_and_inside_the_official_lane(sample, samples: Path) -> None:  # type: ignore[no-untyped-def]
    from matplotlib.path import Path as MplPath

    s = sample("av2_mining")
    events = tag_scenario(s, event_types=["stopped_in_lane"]).events
    assert events
    avm = _av2_map(samples, s.scenario_id)
    for e in events:
        r = _row(s, e.actor)
        xy = s.tracks.xy_m[r, e.start_step : e.end_step + 1][s.tracks.valid[r, e.start_step : e.end_step + 1]]
        assert np.hypot(*(xy.max(0) - xy.min(0))) < 0.7, e
        polygon = avm.vector_lane_segments[int(e.details["lane"])].polygon_boundary[:, :2]
        assert MplPath(polygon).contains_points(xy).mean() > 0.9, e


def test_unprotected_turns_on_interaction_cross_oncoming_traffic(sample, samples: Path) -> None:  # type: ignore[no-untyped-def]
    from mining_sample_data import read_sample

    found = 0
    for s in read_sample(samples, "interaction")[:14]:
        for e in tag_scenario(s, event_types=["unprotected_turn"]).events:
            found += 1
            r, o = _row(s, e.track_ids[0]), _row(s, e.track_ids[1])
            vr = np.flatnonzero(s.tracks.valid[r, e.start_step : e.end_step + 1]) + e.start_step
            h = np.unwrap(s.tracks.heading_rad[r, vr])
            assert h[-1] - h[0] >= np.deg2rad(40), e  # a left turn (counter-clockwise)
            vo = np.flatnonzero(s.tracks.valid[o, e.start_step : e.end_step + 1]) + e.start_step
            diff = np.angle(np.exp(1j * (s.tracks.heading_rad[o, vo] - h[0])))
            assert (np.abs(diff) >= np.deg2rad(120)).any(), e  # the other car comes the other way
    assert found >= 2


def test_dense_traffic_on_nuscenes_counts_the_cars_around_the_ego(sample) -> None:  # type: ignore[no-untyped-def]
    s = sample("nuscenes_0553")
    events = tag_scenario(s, event_types=["dense_traffic"]).events
    assert events
    e0 = s.ego_index
    assert e0 is not None
    vehicles = (s.tracks.object_type == ObjectType.VEHICLE) & (np.arange(s.num_tracks) != e0)
    for e in events:
        raw = 0
        for t in range(e.start_step, e.end_step + 1):
            d = np.hypot(*(s.tracks.xy_m[:, t] - s.tracks.xy_m[e0, t]).T)
            raw = max(raw, int((vehicles & s.tracks.valid[:, t] & (d <= 50.0)).sum()))
        assert raw >= e.details["peak_vehicles"] >= 5, e


@pytest.mark.parametrize("key", ["av2_motion", "waymo", "lyft"], ids=["av2_motion", "waymo", "lyft"])
def test_every_tagger_runs_on_other_sources(sample, key: str) -> None:  # type: ignore[no-untyped-def]
    s = sample(key)
    rep = tag_scenario(s)
    assert set(rep.skipped) <= {
        "ego_speeding",
        "lane_change",
        "cut_in",
        "stopped_in_lane",
        "unprotected_turn",
        "dense_traffic",
        "ego_stationary",
    }
    for e in rep.events:
        assert s.timestamps_ns[e.start_step] == e.start_ns <= e.end_ns == s.timestamps_ns[e.end_step]
        assert np.isfinite(e.severity)
        assert e.severity >= 0
