"""The Scenario schema: validate() catches broken invariants; Arrow round-trips."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from datadrive.core import (
    MapBuilder,
    MapFeatureKind,
    MapRelation,
    ObjectType,
    Provenance,
    Scenario,
    ScenarioMetadata,
    Tracks,
    TrafficLights,
    scenarios_equal,
    scenarios_from_arrow,
    scenarios_to_arrow,
    summarize,
)
from datadrive.errors import ValidationError


def make_scenario(seed: int = 0, num_tracks: int = 4, num_steps: int = 6, with_map: bool = True) -> Scenario:
    rng = np.random.default_rng(seed)
    ids = np.array([f"t{i}" for i in range(num_tracks)])
    types = np.array([i % 4 for i in range(num_tracks)], dtype=np.uint8)
    types[0] = ObjectType.VEHICLE
    tracks = Tracks.allocate(ids, types, np.array(["car"] * num_tracks), num_steps)
    tracks.xy_m[:] = rng.normal(1000.0, 50.0, size=tracks.xy_m.shape)
    tracks.heading_rad[:] = rng.uniform(-np.pi, np.pi, size=tracks.heading_rad.shape)
    tracks.velocity_mps[:] = rng.normal(size=tracks.velocity_mps.shape)
    tracks.valid[:] = rng.random(tracks.valid.shape) > 0.3
    tracks.size_m[1:] = [4.5, 1.9, 1.6]
    builder = MapBuilder()
    builder.add("lane_a", MapFeatureKind.LANE_CENTERLINE, rng.normal(size=(5, 3)), subtype="VEHICLE")
    builder.add("lane_b", MapFeatureKind.LANE_CENTERLINE, rng.normal(size=(3, 2)), is_intersection=True)
    builder.add("cw", MapFeatureKind.CROSSWALK, rng.normal(size=(4, 3)))
    builder.relate("lane_b", MapRelation.PREDECESSOR, "lane_a")
    builder.relate("lane_a", MapRelation.SUCCESSOR, "lane_b")
    builder.relate("lane_a", MapRelation.SUCCESSOR, "outside_the_crop")
    lights = TrafficLights(
        lane_ids=np.array(["lane_a"]),
        state=np.full((1, num_steps), 4, dtype=np.int8),
        stop_point_m=np.array([[1.0, 2.0, np.nan]]),
        valid=np.ones((1, num_steps), dtype=np.bool_),
    )
    return Scenario(
        scenario_id=f"s{seed}",
        source="synthetic",
        timestamps_ns=np.arange(num_steps, dtype=np.int64) * 100_000_000,
        tracks=tracks,
        metadata=ScenarioMetadata(
            frame="test_frame",
            provenance=Provenance("x.bin", "0" * 64, "synthetic", "1"),
            location="nowhere",
            extras={"focal_track_id": "t1", "tags": ["a", "b"]},
        ),
        map=builder.build() if with_map else None,
        ego_index=0,
        traffic_lights=lights if with_map else None,
    )


def test_map_builder_resolves_and_sorts_relations() -> None:
    m = make_scenario().map
    assert m is not None
    assert m.relations.tolist() == [[0, 1, MapRelation.SUCCESSOR], [1, 0, MapRelation.PREDECESSOR]]
    assert m.num_lanes == 2
    assert np.isnan(m.points(1)[:, 2]).all()


def test_valid_scenario_passes_validate() -> None:
    make_scenario().validate()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: dataclasses.replace(s, timestamps_ns=s.timestamps_ns[::-1].copy()), "increasing"),
        (lambda s: dataclasses.replace(s, ego_index=99), "ego_index"),
        (lambda s: dataclasses.replace(s, scenario_id=""), "scenario_id"),
        (lambda s: dataclasses.replace(s, timestamps_ns=s.timestamps_ns.astype(np.float64)), "timestamps"),
    ],
    ids=["time-backwards", "ego-out-of-range", "empty-id", "float-timestamps"],
)
def test_validate_rejects(mutate, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match=message):
        mutate(make_scenario()).validate()


def test_validate_rejects_nan_position_of_valid_state() -> None:
    s = make_scenario()
    s.tracks.valid[1, 2] = True
    s.tracks.xy_m[1, 2, 0] = np.nan
    with pytest.raises(ValidationError, match="NaN"):
        s.validate()


def test_nan_position_of_invalid_state_is_fine() -> None:
    s = make_scenario()
    s.tracks.valid[1, 2] = False
    s.tracks.xy_m[1, 2, 0] = np.nan
    s.validate()


def test_arrow_round_trip_is_lossless() -> None:
    batch = [make_scenario(0), make_scenario(1, num_tracks=7, num_steps=3), make_scenario(2, with_map=False)]
    back = scenarios_from_arrow(scenarios_to_arrow(batch))
    assert len(back) == 3
    for a, b in zip(batch, back, strict=True):
        assert scenarios_equal(a, b)
        b.validate()


def test_round_trip_detects_a_change() -> None:
    a = make_scenario(0)
    b = scenarios_from_arrow(scenarios_to_arrow([a]))[0]
    b.tracks.xy_m[0, 0, 0] += 1e-9
    assert not scenarios_equal(a, b)


def test_summary_counts() -> None:
    s = make_scenario()
    summary = summarize(s)
    assert summary["num_tracks"] == 4
    assert summary["num_valid_states"] == int(s.tracks.valid.sum())
    assert summary["xy_sum_m"] == pytest.approx(float(s.tracks.xy_m[s.tracks.valid].sum()))
    assert summary["track_type_counts"] == {"vehicle": 1, "cyclist": 1, "pedestrian": 1, "other": 1}
    assert summary["ego_track_id"] == "t0"
    assert summary["num_map_lanes"] == 2
    assert summary["dt_s"] == pytest.approx(0.1)


def test_speed_limits_validate_and_round_trip_with_unknown_as_null() -> None:
    b = MapBuilder()
    b.add("fast", MapFeatureKind.LANE_CENTERLINE, np.asarray([[0.0, 0.0], [1.0, 0.0]]), speed_limit_mps=13.9)
    b.add("unknown", MapFeatureKind.LANE_CENTERLINE, np.asarray([[0.0, 1.0], [1.0, 1.0]]))
    b.add("edge", MapFeatureKind.ROAD_EDGE, np.asarray([[0.0, 2.0], [1.0, 2.0]]))
    m = b.build()
    assert m.speed_limit_mps is not None
    np.testing.assert_array_equal(m.speed_limits(), [13.9, np.nan, np.nan])
    s = dataclasses.replace(make_scenario(), map=m).validate()
    tables = scenarios_to_arrow([s])
    assert tables.map_features.column("speed_limit_mps").to_pylist() == [13.9, None, None]
    (back,) = scenarios_from_arrow(tables)
    assert scenarios_equal(back, s)
    np.testing.assert_array_equal(back.map.speed_limits(), [13.9, np.nan, np.nan])  # type: ignore[union-attr]
    # no known limit: None, the same as a map from a format without limits
    assert make_scenario().map.speed_limit_mps is None  # type: ignore[union-attr]
    (plain,) = scenarios_from_arrow(scenarios_to_arrow([make_scenario()]))
    assert plain.map.speed_limit_mps is None  # type: ignore[union-attr]
    for bad in (np.asarray([-1.0, np.nan, np.nan]), np.asarray([13.9, np.inf, 1.0]), np.asarray([1.0])):
        with pytest.raises(ValidationError, match="speed"):
            dataclasses.replace(s, map=dataclasses.replace(m, speed_limit_mps=bad)).validate()
