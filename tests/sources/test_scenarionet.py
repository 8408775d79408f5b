"""ScenarioNet reader: values against the raw pickles (loaded with plain, trusted pickle) and SOURCES.md."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzzing import INNER_FUZZ, assert_reads_or_refuses, mutations
from hypothesis import given, seed, settings
from reader_checks import assert_arrow_round_trip, assert_summary_equal, run_inspect, run_inspect_json

from datadrive.core import (
    MapFeatureKind,
    MapRelation,
    ObjectType,
    Scenario,
    TrafficLightState,
    summarize,
)
from datadrive.errors import (
    CorruptFileError,
    EmptyLogError,
    InvalidValueError,
    SchemaMismatchError,
    UnsafePickleError,
    UnsupportedFormatError,
)
from datadrive.sources import DEFAULT_REGISTRY
from datadrive.sources.scenarionet import ScenarioNetAdapter

NUSCENES = {  # SOURCES.md: scene -> (steps, tracks, map)
    "scene-0061": (191, 226, "singapore-onenorth"),
    "scene-0103": (196, 122, "boston-seaport"),
    "scene-0553": (201, 57, "boston-seaport"),
    "scene-0655": (201, 141, "boston-seaport"),
    "scene-0757": (201, 30, "boston-seaport"),
    "scene-0796": (196, 52, "singapore-queenstown"),
    "scene-0916": (201, 95, "singapore-queenstown"),
    "scene-1077": (201, 73, "singapore-hollandvillage"),
}
WAYMO = "scenarionet_waymo/sd_waymo_v1.2_eb4b91b10ca94ff2.pkl"
FILES = [f"scenarionet_nuscenes/sd_nuscenes_v1.0-mini_{scene}.pkl" for scene in NUSCENES] + [WAYMO]
REFAV = "av2_scenario_mining/refav_gt_3bffdcff-c3a7-38b6-a0f2-64196d130958.pkl"

ADAPTER = ScenarioNetAdapter()


def ids(name: str) -> str:
    return name.split("/")[-1].removesuffix(".pkl")


@pytest.fixture(scope="module")
def raw(samples: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for name in FILES:
        with (samples / name).open("rb") as fh:
            out[name] = pickle.load(fh)  # trusted samples: the reference
    return out


@pytest.fixture(scope="module")
def read(samples: Path) -> dict[str, Scenario]:
    out = {}
    for name in FILES:
        [scenario] = ADAPTER.read_all(samples / name)
        assert isinstance(scenario, Scenario)
        out[name] = scenario
    return out


# --------------------------------------------------------------------------- independent expectations

_COARSE = {"VEHICLE": "vehicle", "PEDESTRIAN": "pedestrian", "CYCLIST": "cyclist"}


def expected_summary(sd: dict[str, Any]) -> dict[str, Any]:
    """The inspect summary, computed from the raw dict with plain numpy."""
    counts = {"vehicle": 0, "cyclist": 0, "pedestrian": 0, "other": 0}
    valid_states = 0
    xy_sum = 0.0
    for track in sd["tracks"].values():
        counts[_COARSE.get(track["type"], "other")] += 1
        valid = np.asarray(track["state"]["valid"]) != 0
        valid_states += int(valid.sum())
        xy_sum += float(np.asarray(track["state"]["position"], dtype=np.float64)[valid, :2].sum())
    ts_ns = np.round(np.asarray(sd["metadata"]["ts"], dtype=np.float64) * 1e9).astype(np.int64)
    return {
        "scenario_id": sd["id"],
        "source": "scenarionet",
        "num_tracks": len(sd["tracks"]),
        "num_steps": sd["length"],
        "dt_s": round(float(np.median(np.diff(ts_ns))) / 1e9, 9),
        "num_valid_states": valid_states,
        "track_type_counts": counts,
        "ego_track_id": str(sd["metadata"]["sdc_id"]),
        "num_map_lanes": sum(1 for f in sd["map_features"].values() if f["type"].startswith("LANE_")),
        "xy_sum_m": xy_sum,
    }


@pytest.mark.parametrize("name", FILES, ids=ids)
def test_summary_matches_the_raw_pickle(raw: dict[str, Any], read: dict[str, Scenario], name: str) -> None:
    assert_summary_equal(summarize(read[name]), expected_summary(raw[name]))


@pytest.mark.parametrize("scene", list(NUSCENES), ids=str)
def test_nuscenes_facts_from_sources_md(read: dict[str, Scenario], scene: str) -> None:
    steps, tracks, location = NUSCENES[scene]
    s = read[f"scenarionet_nuscenes/sd_nuscenes_v1.0-mini_{scene}.pkl"]
    assert (s.scenario_id, s.num_steps, s.num_tracks) == (scene, steps, tracks)
    assert s.metadata.location == location
    assert s.metadata.frame == "nuscenes_global"
    assert s.ego_track_id == "ego"
    assert s.dt_s == pytest.approx(0.1)
    assert s.traffic_lights is None  # dynamic_map_states is empty for nuScenes


def test_scene_0061_type_breakdown_from_sources_md(read: dict[str, Scenario]) -> None:
    """71 cone, 65 barrier, 60 ped, 24 veh, 6 cyc."""
    s = read["scenarionet_nuscenes/sd_nuscenes_v1.0-mini_scene-0061.pkl"]
    counts = summarize(s)["track_type_counts"]
    assert counts == {"vehicle": 24, "cyclist": 6, "pedestrian": 60, "other": 71 + 65}
    categories, n = np.unique(s.tracks.category, return_counts=True)
    assert dict(zip(categories.tolist(), n.tolist(), strict=True))["TRAFFIC_CONE"] == 71


def test_waymo_facts_from_sources_md(read: dict[str, Scenario]) -> None:
    s = read[WAYMO]
    assert (s.scenario_id, s.num_steps, s.num_tracks, s.ego_track_id) == ("eb4b91b10ca94ff2", 199, 45, "51")
    assert np.all(s.tracks.object_type == ObjectType.VEHICLE)
    assert s.map is not None
    assert s.map.num_features == 209
    assert s.traffic_lights is not None
    assert s.traffic_lights.lane_ids.shape == (14,)
    assert s.metadata.frame == "waymo_scenario_global"
    assert s.dt_s == pytest.approx(0.1, abs=2e-4)
    assert s.timestamps_ns[-1] == pytest.approx(19.8e9, rel=1e-3)
    assert s.metadata.extras["source_file"] == "training_20s.tfrecord-00956-of-01000"
    assert s.metadata.extras["objects_of_interest"] == ["11", "17"]


def test_inspect_json_on_the_sample_folders(samples: Path, raw: dict[str, Any]) -> None:
    for folder, names in (
        ("scenarionet_nuscenes", [n for n in FILES if n.startswith("scenarionet_nuscenes")]),
        ("scenarionet_waymo", [WAYMO]),
    ):
        lines = run_inspect_json(samples / folder, timeout_s=300)
        assert len(lines) == len(names)
        for got, name in zip(lines, sorted(names), strict=True):
            assert_summary_equal(got, expected_summary(raw[name]))


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("name", FILES, ids=ids)
def test_track_states_equal_the_raw_arrays(raw: dict[str, Any], read: dict[str, Scenario], name: str) -> None:
    s, sd = read[name], raw[name]
    assert s.tracks.track_ids.tolist() == [str(k) for k in sd["tracks"]]
    for row, track in enumerate(sd["tracks"].values()):
        state = track["state"]
        valid = np.asarray(state["valid"]) != 0
        np.testing.assert_array_equal(s.tracks.valid[row], valid)
        position = np.asarray(state["position"], dtype=np.float64)
        np.testing.assert_array_equal(s.tracks.xy_m[row][valid], position[valid, :2])
        np.testing.assert_array_equal(s.tracks.z_m[row][valid], position[valid, 2])
        heading = np.asarray(state["heading"], dtype=np.float64).reshape(-1)
        np.testing.assert_array_equal(s.tracks.heading_rad[row][valid], heading[valid])
        velocity = np.asarray(state["velocity"], dtype=np.float64)
        np.testing.assert_array_equal(s.tracks.velocity_mps[row][valid], velocity[valid])
        assert s.tracks.category[row] == track["type"]
        if valid.any():  # size: the median over valid steps
            for col, key in enumerate(("length", "width", "height")):
                values = np.asarray(state[key], dtype=np.float64).reshape(-1)[valid]
                assert s.tracks.size_m[row, col] == np.median(values)
    ts = np.asarray(sd["metadata"]["ts"], dtype=np.float64)
    np.testing.assert_array_equal(s.timestamps_ns, np.round(ts * 1e9).astype(np.int64))


def test_valid_is_read_from_floats(raw: dict[str, Any]) -> None:
    """nuScenes conversions store valid as float64 0.0/1.0; some tracks are partly invalid."""
    sd = raw["scenarionet_nuscenes/sd_nuscenes_v1.0-mini_scene-0061.pkl"]
    valids = [t["state"]["valid"] for t in sd["tracks"].values()]
    assert all(v.dtype == np.float64 for v in valids)
    assert any(0 < v.sum() < v.size for v in valids)


_KINDS = {
    "CROSSWALK": MapFeatureKind.CROSSWALK,
    "SPEED_BUMP": MapFeatureKind.SPEED_BUMP,
    "STOP_SIGN": MapFeatureKind.STOP_SIGN,
    "DRIVEWAY": MapFeatureKind.DRIVEWAY,
}


def expected_kind(type_name: str) -> MapFeatureKind:
    if type_name.startswith("LANE_"):
        return MapFeatureKind.LANE_CENTERLINE
    if type_name.startswith("ROAD_LINE_"):
        return MapFeatureKind.LANE_BOUNDARY
    if type_name.startswith(("ROAD_EDGE_", "BOUNDARY_")):
        return MapFeatureKind.ROAD_EDGE
    return _KINDS.get(type_name, MapFeatureKind.OTHER)


@pytest.mark.parametrize("name", [FILES[0], FILES[4], WAYMO], ids=ids)
def test_map_features_equal_the_raw_map(raw: dict[str, Any], read: dict[str, Scenario], name: str) -> None:
    m, features = read[name].map, raw[name]["map_features"]
    assert m is not None
    # the file's features first, in order; then a DRIVABLE_AREA per lane polygon (nuScenes)
    polygons = [str(k) for k, f in features.items() if f["type"].startswith("LANE_") and "polygon" in f]
    assert m.feature_ids.tolist() == [str(k) for k in features] + [f"{k}#polygon" for k in polygons]
    for i, feature in enumerate(features.values()):
        assert m.subtype[i] == feature["type"]
        assert m.kind[i] == expected_kind(feature["type"])
        key = next(k for k in ("polyline", "polygon", "position") if k in feature)
        points = np.asarray(feature[key], dtype=np.float64).reshape(-1, np.shape(feature[key])[-1])
        np.testing.assert_array_equal(m.points(i)[:, : points.shape[1]], points[:, :3])
    for k, fid in enumerate(polygons, start=len(features)):
        assert m.kind[k] == MapFeatureKind.DRIVABLE_AREA
        want = np.asarray(features[fid]["polygon"], dtype=np.float64)
        np.testing.assert_array_equal(m.points(k)[:, : want.shape[1]], want[:, :3])


def test_lane_speed_limits_come_from_the_raw_lanes(raw: dict[str, Any], read: dict[str, Scenario]) -> None:
    m, features = read[WAYMO].map, raw[WAYMO]["map_features"]
    assert m is not None
    limits = m.speed_limits()
    checked = 0
    for i, feature in enumerate(features.values()):
        if feature["type"].startswith("LANE_") and "speed_limit_kmh" in feature:
            assert limits[i] == pytest.approx(float(feature["speed_limit_kmh"]) / 3.6, rel=1e-12)
            checked += 1
        else:
            assert np.isnan(limits[i])
    assert checked == 107  # every lane of the sample: 40, 15 and 65 mph
    nuscenes = read[FILES[0]].map
    assert nuscenes is not None
    assert nuscenes.speed_limit_mps is None  # nuScenes conversions carry placeholders only, not read


def test_waymo_lane_links_become_relations(raw: dict[str, Any], read: dict[str, Scenario]) -> None:
    m, features = read[WAYMO].map, raw[WAYMO]["map_features"]
    assert m is not None
    index = {fid: i for i, fid in enumerate(m.feature_ids.tolist())}
    expected = set()
    fields = {
        "entry_lanes": MapRelation.PREDECESSOR,
        "exit_lanes": MapRelation.SUCCESSOR,
        "left_neighbor": MapRelation.LEFT_NEIGHBOR,
        "right_neighbor": MapRelation.RIGHT_NEIGHBOR,
        "left_boundaries": MapRelation.LEFT_BOUNDARY,
        "right_boundaries": MapRelation.RIGHT_BOUNDARY,
    }
    for fid, feature in features.items():
        for field, relation in fields.items():
            for item in feature.get(field, []):
                target = str(
                    item
                    if not isinstance(item, dict)
                    else item.get("feature_id", item.get("boundary_feature_id"))
                )
                if target in index:
                    expected.add((index[str(fid)], index[target], int(relation)))
        if feature["type"] == "STOP_SIGN":
            expected |= {
                (index[str(fid)], index[str(lane)], int(MapRelation.CONTROLS)) for lane in feature["lane"]
            }
    got = {tuple(int(v) for v in row) for row in m.relations}
    assert got == expected
    assert (index["144"], index["277"], int(MapRelation.SUCCESSOR)) in got  # lane 144 exits into 277


def test_waymo_traffic_lights(raw: dict[str, Any], read: dict[str, Scenario]) -> None:
    lights, states = read[WAYMO].traffic_lights, raw[WAYMO]["dynamic_map_states"]
    assert lights is not None
    assert lights.lane_ids.tolist() == [str(v["lane"]) for v in states.values()]
    codes = {"LANE_STATE_STOP": 4, "LANE_STATE_GO": 6, "LANE_STATE_UNKNOWN": 0, "LANE_STATE_ARROW_STOP": 1}
    for row, light in enumerate(states.values()):
        seq = light["state"]["object_state"]
        np.testing.assert_array_equal(lights.valid[row], [v is not None for v in seq])
        np.testing.assert_array_equal(lights.state[row], [codes.get(v, 0) if v else 0 for v in seq])
        np.testing.assert_array_equal(
            lights.stop_point_m[row], np.asarray(light["stop_point"], dtype=np.float64)
        )
    assert int(lights.valid.sum()) == 414 + 780 + 60 + 237  # number_summary of the file
    assert TrafficLightState.GO == 6


def test_arrow_round_trip(read: dict[str, Scenario]) -> None:
    assert_arrow_round_trip(list(read.values()))


# --------------------------------------------------------------------------- claims and other pickles


def test_claims_and_detection(samples: Path) -> None:
    assert ADAPTER.claims(Path("x.pkl"))
    assert not ADAPTER.claims(Path("x.db"))
    assert DEFAULT_REGISTRY.detect(samples / WAYMO).name == "scenarionet"


def test_refav_pickle_is_unsupported_and_says_what_it_is(samples: Path) -> None:
    with pytest.raises(UnsupportedFormatError, match=r"RefAV") as info:
        ADAPTER.read_all(samples / REFAV)
    assert str(samples / REFAV) in str(info.value)


def test_other_pickles_are_unsupported(tmp_path: Path) -> None:
    for obj, words in (([1, 2], "list"), ({"a": 1}, "lacking"), ({"x.pkl": {}}, "dataset_summary")):
        path = tmp_path / "other.pkl"
        path.write_bytes(pickle.dumps(obj))
        with pytest.raises(UnsupportedFormatError, match=words):
            ADAPTER.read_all(path)


# --------------------------------------------------------------------------- bad input


def write(tmp_path: Path, sd: Any) -> Path:
    path = tmp_path / "case.pkl"
    path.write_bytes(pickle.dumps(sd, protocol=4))
    return path


@pytest.fixture
def waymo(raw: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(raw[WAYMO])


def test_truncated_pickle_is_corrupt(samples: Path, tmp_path: Path) -> None:
    data = (samples / WAYMO).read_bytes()
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(CorruptFileError, match="truncated"):
        ADAPTER.read_all(path)


def test_hostile_pickle_is_refused_through_the_registry(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "sd_evil.pkl"
    path.write_bytes(b"cposix\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    adapter = DEFAULT_REGISTRY.detect(path)
    with pytest.raises(UnsafePickleError, match=r"posix\.system"):
        adapter.read_all(path)
    assert not marker.exists()


def test_nan_position_at_a_valid_step(tmp_path: Path, waymo: dict[str, Any]) -> None:
    waymo["tracks"]["7"]["state"]["position"][5, 0] = np.nan
    with pytest.raises(InvalidValueError, match=r"track '7'.*NaN"):
        ADAPTER.read_all(write(tmp_path, waymo))


def test_size_is_the_median_of_the_keys_a_track_has(tmp_path: Path, waymo: dict[str, Any]) -> None:
    """A track without some of length/width/height keeps NaN (unknown) there; the others: their medians."""
    state = waymo["tracks"]["7"]["state"]
    del state["width"]
    state["height"] = np.arange(len(state["height"]), dtype=np.float64)  # a median worth checking
    state["length"][np.asarray(state["valid"]) == 0] = np.nan  # NaN where invalid: ignored
    [s] = ADAPTER.read_all(write(tmp_path, waymo))
    assert isinstance(s, Scenario)
    row = s.tracks.track_ids.tolist().index("7")
    valid = np.asarray(state["valid"]) != 0
    expected_length = np.median(np.asarray(state["length"], dtype=np.float64).reshape(-1)[valid])
    assert s.tracks.size_m[row, 0] == expected_length
    assert np.isnan(s.tracks.size_m[row, 1])
    assert s.tracks.size_m[row, 2] == np.median(np.flatnonzero(valid).astype(np.float64))


def test_nan_position_at_an_invalid_step_is_ignored(tmp_path: Path, waymo: dict[str, Any]) -> None:
    state = waymo["tracks"]["7"]["state"]
    state["valid"][5] = False
    state["position"][5] = np.nan
    [s] = ADAPTER.read_all(write(tmp_path, waymo))
    assert isinstance(s, Scenario)
    assert not s.tracks.valid[7, 5]


def test_missing_position_is_a_schema_mismatch(tmp_path: Path, waymo: dict[str, Any]) -> None:
    del waymo["tracks"]["3"]["state"]["position"]
    with pytest.raises(SchemaMismatchError, match=r"track '3'.*position"):
        ADAPTER.read_all(write(tmp_path, waymo))


def test_state_of_the_wrong_length(tmp_path: Path, waymo: dict[str, Any]) -> None:
    waymo["tracks"]["3"]["state"]["heading"] = waymo["tracks"]["3"]["state"]["heading"][:-1]
    with pytest.raises(InvalidValueError, match=r"heading"):
        ADAPTER.read_all(write(tmp_path, waymo))


def test_no_tracks_is_an_empty_log(tmp_path: Path, waymo: dict[str, Any]) -> None:
    waymo["tracks"] = {}
    with pytest.raises(EmptyLogError):
        ADAPTER.read_all(write(tmp_path, waymo))


def test_times_that_go_backwards(tmp_path: Path, waymo: dict[str, Any]) -> None:
    waymo["metadata"]["ts"][10] = 0.0
    with pytest.raises(InvalidValueError, match="strictly increasing"):
        ADAPTER.read_all(write(tmp_path, waymo))


def test_without_ts_the_step_is_sample_rate(tmp_path: Path, waymo: dict[str, Any]) -> None:
    del waymo["metadata"]["ts"]
    waymo["metadata"]["sample_rate"] = 0.5
    [s] = ADAPTER.read_all(write(tmp_path, waymo))
    assert isinstance(s, Scenario)
    assert s.dt_s == 0.5
    assert s.timestamps_ns[-1] == 198 * 500_000_000


def test_recentred_conversion_names_its_frame(tmp_path: Path, raw: dict[str, Any]) -> None:
    """Newer converters subtract the ego's first position: the frame says so, nothing is moved back."""
    sd = copy.deepcopy(raw["scenarionet_nuscenes/sd_nuscenes_v1.0-mini_scene-0757.pkl"])
    origin = sd["tracks"]["ego"]["state"]["position"][0, :2].copy()
    for track in sd["tracks"].values():
        valid = track["state"]["valid"] != 0
        track["state"]["position"][valid, :2] -= origin
    [s] = ADAPTER.read_all(write(tmp_path, sd))
    assert isinstance(s, Scenario)
    assert s.metadata.frame == "nuscenes_ego_start"
    assert s.metadata.extras["recentred_on_ego_start"] is True
    np.testing.assert_array_equal(s.tracks.xy_m[s.ego_index, 0], [0.0, 0.0])


def test_unknown_sdc_leaves_no_ego(tmp_path: Path, waymo: dict[str, Any]) -> None:
    waymo["metadata"]["sdc_id"] = "no-such-track"
    [s] = ADAPTER.read_all(write(tmp_path, waymo))
    assert isinstance(s, Scenario)
    assert s.ego_index is None
    assert "sdc_id" in s.metadata.extras["ego_note"]


def test_cli_prints_one_line_and_exits_2_on_a_hostile_pickle(tmp_path: Path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    result = run_inspect(path, "--json", timeout_s=300)
    assert result.returncode == 2
    assert "builtins.eval" in result.stderr
    assert result.stdout == ""


# --------------------------------------------------------------------------- fuzz


def test_fuzz_mutated_pickles_read_or_raise_input_errors(samples: Path, tmp_path: Path) -> None:
    data = (samples / WAYMO).read_bytes()
    path = tmp_path / "fuzz.pkl"

    @seed(20261127)
    @settings(INNER_FUZZ, max_examples=25, deadline=10_000)
    @given(mutated=mutations(data))
    def check(mutated: bytes) -> None:
        path.write_bytes(mutated)
        assert_reads_or_refuses(ADAPTER, path)

    check()
