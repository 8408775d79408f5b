"""AV2 vector maps: every feature against av2's own ``ArgoverseStaticMap.from_json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzzing import FIXTURE_FUZZ, mutate
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from datadrive.core import (
    MapFeatureKind,
    MapFeatures,
    MapRelation,
    Provenance,
    Scenario,
    ScenarioMetadata,
    Tracks,
)
from datadrive.errors import CorruptFileError, InputError, InvalidValueError, SchemaMismatchError
from datadrive.sources.av2_map import lane_centerlines, read_av2_map

map_api = pytest.importorskip("av2.map.map_api")
interp = pytest.importorskip("av2.geometry.interpolate")

# (folder under the samples, lane segments per SOURCES.md)
MAPS = {
    "av2_motion_forecasting/0a1e6f0a-1817-4a98-b02e-db8c9327d151": 71,
    "av2_motion_forecasting/0a0a2bb7-c4f4-44cd-958a-9ee15cb34aca": 53,
    "av2_motion_forecasting/0a0af725-fbc3-41de-b969-3be718f694e2": 134,
    "av2_sensor/adcf7d18-0510-35b0-a2fa-b4cea13a6d76/map": 199,
    "av2_sensor/7fab2350-7eaf-3b7e-a39d-6937a4c1bede/map": 183,
    "av2_scenario_mining/3bffdcff-c3a7-38b6-a0f2-64196d130958/map": 211,
}


def map_file(samples: Path, folder: str) -> Path:
    found = sorted((samples / folder).glob("log_map_archive_*.json"))
    assert len(found) == 1, f"expected one map in {folder}"
    return found[0]


@pytest.fixture(scope="module", params=list(MAPS), ids=[k.split("/")[1][:8] for k in MAPS])
def pair(request: pytest.FixtureRequest, samples: Path) -> tuple[str, MapFeatures, Any]:
    path = map_file(samples, request.param)
    return request.param, read_av2_map(path), map_api.ArgoverseStaticMap.from_json(path)


def index(m: MapFeatures) -> dict[str, int]:
    return {fid: i for i, fid in enumerate(m.feature_ids.tolist())}


def relations(m: MapFeatures, src: int, kind: MapRelation) -> list[str]:
    rows = m.relations[(m.relations[:, 0] == src) & (m.relations[:, 2] == kind)]
    return sorted(m.feature_ids[rows[:, 1]].tolist())


def test_lane_count_matches_av2_and_sources(pair: tuple[str, MapFeatures, Any]) -> None:
    folder, ours, ref = pair
    assert ours.num_lanes == len(ref.vector_lane_segments) == MAPS[folder]
    assert int(np.count_nonzero(ours.kind == MapFeatureKind.LANE_BOUNDARY)) == 2 * MAPS[folder]


def test_centerlines_equal_av2(pair: tuple[str, MapFeatures, Any]) -> None:
    _, ours, ref = pair
    idx = index(ours)
    for lane_id in ref.get_scenario_lane_segment_ids():
        expected = ref.get_lane_segment_centerline(lane_id)
        got = ours.points(idx[str(lane_id)])
        assert got.shape[0] == expected.shape[0]
        np.testing.assert_allclose(got[:, : expected.shape[1]], expected, rtol=0, atol=1e-9)


def test_lane_attributes_and_boundaries_equal_av2(pair: tuple[str, MapFeatures, Any]) -> None:
    _, ours, ref = pair
    idx = index(ours)
    for lane_id, lane in ref.vector_lane_segments.items():
        i = idx[str(lane_id)]
        assert ours.kind[i] == MapFeatureKind.LANE_CENTERLINE
        assert ours.subtype[i] == lane.lane_type.value
        assert bool(ours.is_intersection[i]) == lane.is_intersection
        for side, relation, polyline, mark in (
            ("left", MapRelation.LEFT_BOUNDARY, lane.left_lane_boundary, lane.left_mark_type),
            ("right", MapRelation.RIGHT_BOUNDARY, lane.right_lane_boundary, lane.right_mark_type),
        ):
            (boundary_id,) = relations(ours, i, relation)
            b = idx[boundary_id]
            assert boundary_id == f"{lane_id}:{side}"
            assert ours.kind[b] == MapFeatureKind.LANE_BOUNDARY
            assert ours.subtype[b] == mark.value
            np.testing.assert_array_equal(ours.points(b), polyline.xyz)


def test_lane_graph_equals_av2(pair: tuple[str, MapFeatures, Any]) -> None:
    _, ours, ref = pair
    idx = index(ours)
    in_map = {str(k) for k in ref.vector_lane_segments}
    for lane_id, lane in ref.vector_lane_segments.items():
        i = idx[str(lane_id)]
        kept = lambda ids: sorted(str(x) for x in ids if str(x) in in_map)  # noqa: E731
        assert relations(ours, i, MapRelation.SUCCESSOR) == kept(lane.successors)
        assert relations(ours, i, MapRelation.PREDECESSOR) == kept(lane.predecessors)
        left, right = (
            ref.get_lane_segment_left_neighbor_id(lane_id),
            ref.get_lane_segment_right_neighbor_id(lane_id),
        )
        assert relations(ours, i, MapRelation.LEFT_NEIGHBOR) == kept([] if left is None else [left])
        assert relations(ours, i, MapRelation.RIGHT_NEIGHBOR) == kept([] if right is None else [right])


def test_crosswalks_and_drivable_areas_equal_av2(pair: tuple[str, MapFeatures, Any]) -> None:
    _, ours, ref = pair
    idx = index(ours)
    crossings = ref.get_scenario_ped_crossings()
    assert int(np.count_nonzero(ours.kind == MapFeatureKind.CROSSWALK)) == len(crossings)
    for pc in crossings:
        i = idx[f"crosswalk:{pc.id}"]
        np.testing.assert_array_equal(ours.points(i), pc.polygon)
    areas = ref.get_scenario_vector_drivable_areas()
    assert int(np.count_nonzero(ours.kind == MapFeatureKind.DRIVABLE_AREA)) == len(areas)
    for da in areas:
        np.testing.assert_array_equal(ours.points(idx[f"drivable_area:{da.id}"]), da.xyz)


def test_map_validates_inside_a_scenario(pair: tuple[str, MapFeatures, Any]) -> None:
    with_map(pair[1]).validate()


# --------------------------------------------------------------------------- the centerline computation


polyline = st.lists(
    st.tuples(*[st.floats(-1e4, 1e4, allow_nan=False) for _ in range(3)]), min_size=1, max_size=12
).map(lambda pts: np.array(pts, dtype=np.float64))


@seed(20_251_124)
@settings(max_examples=150, deadline=2_000, print_blob=True)
@given(left=polyline, right=polyline)
def test_lane_centerlines_match_compute_midpoint_line(left: np.ndarray, right: np.ndarray) -> None:
    (got,) = lane_centerlines([left], [right])
    with np.errstate(divide="ignore", invalid="ignore"):
        expected, _ = interp.compute_midpoint_line(left, right, interp.NUM_CENTERLINE_INTERP_PTS)
    assert got.shape == expected.shape
    assert np.all(np.isfinite(got))
    if np.all(np.isfinite(expected)):  # where av2 divides by zero, we skip zero-length segments
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-6)


def test_pivot_centerline_is_2d_like_av2() -> None:
    left = np.array([[0.0, 0.0, 1.0]])
    right = np.array([[2.0, 0.0, 1.0], [2.0, 4.0, 1.0], [2.0, 8.0, 1.0]])
    (got,) = lane_centerlines([left], [right])
    expected, _ = interp.compute_midpoint_line(left, right)
    np.testing.assert_array_equal(got, expected)
    assert got.shape == (3, 2)


def test_zero_length_end_segment_gives_a_finite_centerline() -> None:
    left = np.array([[0.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 10.0, 0.0]])  # av2 returns NaN here
    right = np.array([[4.0, 0.0, 0.0], [4.0, 10.0, 0.0]])
    (got,) = lane_centerlines([left], [right])
    np.testing.assert_allclose(got[:, 0], 2.0)
    np.testing.assert_allclose(got[:, 1], np.linspace(0, 10, 10), atol=1e-12)


# --------------------------------------------------------------------------- bad input


def small_map(samples: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(map_file(samples, next(iter(MAPS))).read_text())
    return doc


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "log_map_archive_bad.json"
    path.write_text(json.dumps(doc))
    return path


def first_lane(doc: dict[str, Any]) -> dict[str, Any]:
    lane: dict[str, Any] = next(iter(doc["lane_segments"].values()))
    return lane


def test_not_json_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "log_map_archive_x.json"
    path.write_bytes(b'{"lane_segments": {"1": [')
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        read_av2_map(path)


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda d: d.pop("lane_segments"), SchemaMismatchError, "lacks the key"),
        (lambda d: d.pop("drivable_areas"), SchemaMismatchError, "drivable_areas"),
        (lambda d: d.update(lane_segments=[1, 2]), SchemaMismatchError, "expected an object"),
        (lambda d: first_lane(d).pop("successors"), SchemaMismatchError, "successors"),
        (lambda d: first_lane(d)["left_lane_boundary"][0].pop("x"), SchemaMismatchError, "left boundary"),
        (lambda d: first_lane(d)["right_lane_boundary"][0].update(y="north"), SchemaMismatchError, "right"),
        (lambda d: first_lane(d).update(left_lane_boundary=[]), InvalidValueError, "non-empty"),
        (lambda d: first_lane(d).update(successors=7), SchemaMismatchError, "successors"),
    ],
    ids=[
        "no-lanes",
        "no-drivable-areas",
        "lanes-not-object",
        "lane-missing-key",
        "point-missing-x",
        "point-not-number",
        "empty-boundary",
        "successors-not-list",
    ],
)
def test_malformed_maps_raise_clear_errors(
    samples: Path, tmp_path: Path, edit: Any, error: type[InputError], message: str
) -> None:
    doc = small_map(samples)
    edit(doc)
    path = write(tmp_path, doc)
    with pytest.raises(error, match=message) as info:
        read_av2_map(path)
    assert info.value.path == str(path)


def test_nan_coordinate_is_invalid(samples: Path, tmp_path: Path) -> None:
    doc = small_map(samples)
    first_lane(doc)["left_lane_boundary"][1]["x"] = float("nan")  # json writes NaN, Python reads it back
    with pytest.raises(InvalidValueError, match="non-finite"):
        read_av2_map(write(tmp_path, doc))


def test_top_level_not_an_object(tmp_path: Path) -> None:
    with pytest.raises(SchemaMismatchError, match="expected an object"):
        read_av2_map(write(tmp_path, [1, 2, 3]))


def test_missing_pedestrian_crossings_is_allowed(samples: Path, tmp_path: Path) -> None:
    doc = small_map(samples)
    doc.pop("pedestrian_crossings")  # av2 logs an error and goes on with none
    m = read_av2_map(write(tmp_path, doc))
    assert not np.any(m.kind == MapFeatureKind.CROSSWALK)
    assert m.num_lanes == MAPS[next(iter(MAPS))]


# --------------------------------------------------------------------------- fuzz


def with_map(m: MapFeatures) -> Scenario:
    """A one-track scenario carrying ``m``, so that ``validate()`` checks the map's invariants."""
    tracks = Tracks.allocate(np.array(["t"]), np.array([0], dtype=np.uint8), np.array(["car"]), 1)
    meta = ScenarioMetadata(frame="av2_city", provenance=Provenance("m.json", "0" * 64, "test", "1"))
    return Scenario("s", "test", np.array([0], dtype=np.int64), tracks, meta, map=m)


@seed(20_251_124)
@settings(FIXTURE_FUZZ, max_examples=120, deadline=5_000)
@given(data=st.data())
def test_fuzz_mutated_map_json(samples: Path, tmp_path: Path, data: st.DataObject) -> None:
    original = map_file(samples, next(iter(MAPS))).read_bytes()
    path = tmp_path / "log_map_archive_fuzz.json"
    path.write_bytes(mutate(original, data.draw))
    try:
        m = read_av2_map(path)
    except InputError:
        return
    with_map(m).validate()
