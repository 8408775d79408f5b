"""AV2 sensor and scenario-mining logs: city-frame cuboids against av2's own CuboidList/SE3 utilities."""

from __future__ import annotations

import json
import shutil
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pytest
from fuzzing import FIXTURE_FUZZ, assert_reads_or_refuses, mutated_file
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from reader_checks import assert_arrow_round_trip, assert_summary_equal, invoke_inspect

from datadrive.core import (
    SUMMARY_KEYS,
    ObjectType,
    Scenario,
)
from datadrive.errors import (
    CorruptFileError,
    EmptyLogError,
    InputError,
    InvalidValueError,
    SchemaMismatchError,
)
from datadrive.sources import DEFAULT_REGISTRY
from datadrive.sources.av2_sensor import AV2_SENSOR_OBJECT_TYPES, Av2SensorAdapter

cuboid = pytest.importorskip("av2.structures.cuboid")
av2_io = pytest.importorskip("av2.utils.io")
geometry = pytest.importorskip("av2.geometry.geometry")
interpolate = pytest.importorskip("av2.geometry.interpolate")

ADAPTER = Av2SensorAdapter()

# SOURCES.md: annotation rows, distinct track_uuids, annotated sweeps, lanes in the map.
LOGS = {
    "av2_sensor/adcf7d18-0510-35b0-a2fa-b4cea13a6d76": (12078, 146, 156, 199),
    "av2_sensor/7fab2350-7eaf-3b7e-a39d-6937a4c1bede": (11364, 114, 156, 183),
    "av2_scenario_mining/3bffdcff-c3a7-38b6-a0f2-64196d130958": (12342, 116, 156, 211),
}
IDS = ["adcf7d18", "7fab2350", "3bffdcff-mining"]

# Coarse types, written out from the task's definition and av2's AnnotationCategories.
VEHICLE = {
    "REGULAR_VEHICLE", "LARGE_VEHICLE", "BUS", "ARTICULATED_BUS", "SCHOOL_BUS", "BOX_TRUCK", "TRUCK",
    "TRUCK_CAB", "VEHICULAR_TRAILER", "RAILED_VEHICLE", "EGO_VEHICLE",
}  # fmt: skip
CYCLIST = {"BICYCLIST", "MOTORCYCLIST", "WHEELED_RIDER"}
PEDESTRIAN = {"PEDESTRIAN", "OFFICIAL_SIGNALER", "WHEELCHAIR"}


def coarse(label: str) -> str:
    if label in VEHICLE:
        return "vehicle"
    if label in CYCLIST:
        return "cyclist"
    if label in PEDESTRIAN:
        return "pedestrian"
    return "other"


def annotations_file(log: Path) -> Path:
    with_ego = log / "annotations_with_ego.feather"
    return with_ego if with_ego.is_file() else log / "annotations.feather"


def read_one(log: Path) -> Scenario:
    (record,) = ADAPTER.read_all(log)
    assert isinstance(record, Scenario)
    return record


def reference(log: Path, poses: dict[int, Any] | None = None) -> dict[str, Any]:
    """City-frame cuboids computed with av2: ``CuboidList.from_feather`` moved by ``read_city_SE3_ego``."""
    path = annotations_file(log)
    cuboids = cuboid.CuboidList.from_feather(path)
    poses = av2_io.read_city_SE3_ego(log) if poses is None else poses
    moved = [c.transform(poses[int(c.timestamp_ns)]) for c in cuboids.cuboids]
    raw = feather.read_table(path)
    return {
        "uuid": raw.column("track_uuid").to_pylist(),
        "category": raw.column("category").to_pylist(),
        "ts": np.array([int(c.timestamp_ns) for c in cuboids.cuboids]),
        "xyz": np.array([c.dst_SE3_object.translation for c in moved]),
        "yaw": np.array([geometry.mat_to_xyz(c.dst_SE3_object.rotation)[2] for c in moved]),
        "dims": np.array([c.dims_lwh_m for c in cuboids.cuboids]),
        "poses": poses,
    }


@pytest.fixture(scope="module", params=list(LOGS), ids=IDS)
def case(request: pytest.FixtureRequest, samples: Path) -> tuple[str, Path, Scenario, dict[str, Any]]:
    log = samples / request.param
    return request.param, log, read_one(log), reference(log)


def angle_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs((a - b + np.pi) % (2 * np.pi) - np.pi)


# --------------------------------------------------------------------------- values against av2


def test_every_av2_category_has_the_coarse_type_of_the_task() -> None:
    constants = pytest.importorskip("av2.datasets.sensor.constants")
    for category in constants.AnnotationCategories:
        assert category.value in AV2_SENSOR_OBJECT_TYPES, category
        assert AV2_SENSOR_OBJECT_TYPES[category.value].name.lower() == coarse(category.value)


def test_registry_claims_the_log_folder(samples: Path) -> None:
    for folder in LOGS:
        assert DEFAULT_REGISTRY.detect(samples / folder).name == "av2_sensor"


def test_city_frame_states_equal_av2(case: tuple[str, Path, Scenario, dict[str, Any]]) -> None:
    _, _, ours, ref = case
    tr = ours.tracks
    row = {tid: i for i, tid in enumerate(tr.track_ids.tolist())}
    step = {int(t): i for i, t in enumerate(ours.timestamps_ns.tolist())}
    i = np.array([row[u] for u in ref["uuid"]])
    j = np.array([step[int(t)] for t in ref["ts"]])
    np.testing.assert_allclose(tr.xy_m[i, j], ref["xyz"][:, :2], rtol=0, atol=1e-9)
    np.testing.assert_allclose(tr.z_m[i, j], ref["xyz"][:, 2], rtol=0, atol=1e-9)
    assert angle_diff(tr.heading_rad[i, j], ref["yaw"]).max() < 1e-9
    assert tr.valid[i, j].all()


def test_counts_match_sources(case: tuple[str, Path, Scenario, dict[str, Any]]) -> None:
    folder, _, ours, ref = case
    rows, tracks, steps, lanes = LOGS[folder]
    has_ego_rows = "EGO_VEHICLE" in ref["category"]
    assert len(ref["uuid"]) == rows
    assert len(set(ref["uuid"])) == tracks
    assert ours.num_steps == steps
    assert ours.num_tracks == tracks + (0 if has_ego_rows else 1)
    assert int(ours.tracks.valid.sum()) == rows + (0 if has_ego_rows else steps)
    np.testing.assert_array_equal(ours.timestamps_ns, np.unique(ref["ts"]))
    assert ours.map is not None
    assert ours.map.num_lanes == lanes
    assert ours.metadata.frame == "av2_city"
    assert ours.metadata.location == "pittsburgh"


def test_ego_is_one_vehicle_at_the_pose_of_every_step(
    case: tuple[str, Path, Scenario, dict[str, Any]],
) -> None:
    _, _, ours, ref = case
    assert ours.ego_index is not None
    tr = ours.tracks
    ego = ours.ego_index
    assert tr.object_type[ego] == ObjectType.VEHICLE
    assert tr.category[ego] == "EGO_VEHICLE"
    assert tr.valid[ego].all()
    assert int(np.count_nonzero(tr.category == "EGO_VEHICLE")) == 1
    poses = [ref["poses"][int(t)] for t in ours.timestamps_ns]
    np.testing.assert_allclose(tr.xy_m[ego], np.array([p.translation[:2] for p in poses]), rtol=0, atol=1e-9)
    yaw = np.array([geometry.mat_to_xyz(p.rotation)[2] for p in poses])
    assert angle_diff(tr.heading_rad[ego], yaw).max() < 1e-9
    ego_rows = [u for u, c in zip(ref["uuid"], ref["category"], strict=True) if c == "EGO_VEHICLE"]
    assert ours.ego_track_id == (ego_rows[0] if ego_rows else "ego")


def test_plain_ego_size_is_the_av2_ego_cuboid(samples: Path) -> None:
    """The size given to an added ego is the EGO_VEHICLE cuboid of AV2's own scenario-mining annotations."""
    raw = feather.read_table(
        samples / next(k for k in LOGS if "mining" in k) / "annotations_with_ego.feather"
    )
    ego = raw.filter(pc.equal(raw["category"], "EGO_VEHICLE"))
    dims = {
        tuple(r) for r in zip(*(ego[c].to_pylist() for c in ("length_m", "width_m", "height_m")), strict=True)
    }
    (expected,) = dims
    ours = read_one(samples / "av2_sensor/adcf7d18-0510-35b0-a2fa-b4cea13a6d76")
    assert ours.ego_index is not None
    np.testing.assert_array_equal(ours.tracks.size_m[ours.ego_index], expected)


def test_size_category_and_types(case: tuple[str, Path, Scenario, dict[str, Any]]) -> None:
    _, _, ours, ref = case
    tr = ours.tracks
    row = {tid: i for i, tid in enumerate(tr.track_ids.tolist())}
    dims: dict[str, list[list[float]]] = {}
    labels: dict[str, Counter[str]] = {}
    for u, c, d in zip(ref["uuid"], ref["category"], ref["dims"].tolist(), strict=True):
        dims.setdefault(u, []).append(d)
        labels.setdefault(u, Counter())[c] += 1
    for u, i in ((u, row[u]) for u in dims):
        expected = [statistics.median(col) for col in zip(*dims[u], strict=True)]
        np.testing.assert_allclose(tr.size_m[i], expected, rtol=0, atol=1e-12)
        assert tr.category[i] == labels[u].most_common(1)[0][0]
        assert ObjectType(tr.object_type[i]).name.lower() == coarse(str(tr.category[i]))


def test_velocity_is_finite_differences_in_the_city_frame(
    case: tuple[str, Path, Scenario, dict[str, Any]],
) -> None:
    _, _, ours, ref = case
    grid = [int(t) for t in ours.timestamps_ns]
    by_track: dict[str, dict[int, np.ndarray]] = {}
    for u, t, p in zip(ref["uuid"], ref["ts"].tolist(), ref["xyz"][:, :2], strict=True):
        by_track.setdefault(u, {})[int(t)] = p
    row = {tid: i for i, tid in enumerate(ours.tracks.track_ids.tolist())}
    for u in sorted(by_track)[:25]:
        states = by_track[u]
        for k, t in enumerate(grid):
            got = ours.tracks.velocity_mps[row[u], k]
            if t not in states:
                assert np.isnan(got).all()
                continue
            before = k > 0 and grid[k - 1] in states
            after = k + 1 < len(grid) and grid[k + 1] in states
            lo = grid[k - 1] if before else t
            hi = grid[k + 1] if after else t
            if lo == hi:
                assert np.isnan(got).all()
            else:
                expected = (states[hi] - states[lo]) / ((hi - lo) / 1e9)
                np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-8)  # positions agree to ~1e-12 m


def test_arrow_round_trip(case: tuple[str, Path, Scenario, dict[str, Any]]) -> None:
    assert_arrow_round_trip([case[2]])


# --------------------------------------------------------------------------- poses between sweeps


def copy_log(src: Path, dst: Path, with_map: bool = True) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(annotations_file(src), dst / annotations_file(src).name)
    shutil.copyfile(src / "city_SE3_egovehicle.feather", dst / "city_SE3_egovehicle.feather")
    if with_map:
        (dst / "map").mkdir(exist_ok=True)
        for f in (src / "map").glob("log_map_archive_*.json"):
            shutil.copyfile(f, dst / "map" / f.name)
    return dst


def test_poses_between_sweeps_are_interpolated_like_av2(samples: Path, tmp_path: Path) -> None:
    src = samples / "av2_sensor/adcf7d18-0510-35b0-a2fa-b4cea13a6d76"
    log = copy_log(src, tmp_path / src.name, with_map=False)
    poses = feather.read_table(log / "city_SE3_egovehicle.feather")
    sweeps = pa.array(np.unique(feather.read_table(log / "annotations.feather")["timestamp_ns"].to_numpy()))
    kept = poses.filter(pc.invert(pc.is_in(poses["timestamp_ns"], value_set=sweeps)))
    feather.write_feather(kept, log / "city_SE3_egovehicle.feather")

    all_poses = av2_io.read_city_SE3_ego(log)  # the poses that are left, keyed by time
    times = np.array(sorted(all_poses))
    at_sweeps = {}
    for t in sweeps.to_pylist():
        k = int(np.searchsorted(times, t))
        t0, t1 = int(times[k - 1]), int(times[k])
        at_sweeps[t] = interpolate.interpolate_pose((t0, t1), (all_poses[t0], all_poses[t1]), t)
    ref = reference(log, poses=at_sweeps)
    ours = read_one(log)
    assert ours.metadata.extras["num_interpolated_poses"] == len(sweeps)
    row = {tid: i for i, tid in enumerate(ours.tracks.track_ids.tolist())}
    step = {int(t): i for i, t in enumerate(ours.timestamps_ns.tolist())}
    i = np.array([row[u] for u in ref["uuid"]])
    j = np.array([step[int(t)] for t in ref["ts"]])
    # av2's Slerp takes the times as float64 (~3e17 ns, so 64 ns apart): its rotation is off by up to
    # ~1e-8 rad from exact slerp, ~1e-6 m at 100 m; ours interpolates with exact integer times
    np.testing.assert_allclose(ours.tracks.xy_m[i, j], ref["xyz"][:, :2], rtol=0, atol=1e-6)
    assert angle_diff(ours.tracks.heading_rad[i, j], ref["yaw"]).max() < 1e-7


# --------------------------------------------------------------------------- inspect --json


def expected_summary(log: Path, ref: dict[str, Any]) -> dict[str, Any]:
    """The inspect contract from the raw files (pyarrow) and av2's city-frame cuboids."""
    grid = sorted(set(ref["ts"].tolist()))
    has_ego_rows = "EGO_VEHICLE" in ref["category"]
    first: dict[str, Counter[str]] = {}
    for u, c in zip(ref["uuid"], ref["category"], strict=True):
        first.setdefault(u, Counter())[c] += 1
    counts = Counter(coarse(c.most_common(1)[0][0]) for c in first.values())
    xy_sum = float(ref["xyz"][:, :2].sum())
    if not has_ego_rows:
        counts["vehicle"] += 1
        xy_sum += float(sum(ref["poses"][t].translation[:2].sum() for t in grid))
    (map_json,) = (log / "map").glob("log_map_archive_*.json")
    ego = next((u for u, c in zip(ref["uuid"], ref["category"], strict=True) if c == "EGO_VEHICLE"), "ego")
    return {
        "scenario_id": log.name,
        "source": "av2_sensor",
        "num_tracks": len(first) + (0 if has_ego_rows else 1),
        "num_steps": len(grid),
        "dt_s": round(float(np.median(np.diff(grid))) / 1e9, 9),
        "num_valid_states": len(ref["uuid"]) + (0 if has_ego_rows else len(grid)),
        "track_type_counts": {k: counts.get(k, 0) for k in ("vehicle", "cyclist", "pedestrian", "other")},
        "ego_track_id": ego,
        "num_map_lanes": len(json.loads(map_json.read_text())["lane_segments"]),
        "xy_sum_m": xy_sum,
    }


@pytest.mark.parametrize("folder", ["av2_sensor", "av2_scenario_mining"])
def test_inspect_json_matches_raw_files(samples: Path, folder: str) -> None:
    result = invoke_inspect(samples / folder)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    got = {row["scenario_id"]: row for row in lines if row["source"] == "av2_sensor"}
    logs = [k for k in LOGS if k.startswith(folder + "/")]
    assert set(got) == {Path(k).name for k in logs}
    for key in logs:
        log = samples / key
        expected = expected_summary(log, reference(log))
        row = got[log.name]
        assert list(row) == list(SUMMARY_KEYS)
        assert_summary_equal(row, expected)


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def log_copy(samples: Path, tmp_path: Path) -> Path:
    src = samples / "av2_sensor/adcf7d18-0510-35b0-a2fa-b4cea13a6d76"
    return copy_log(src, tmp_path / src.name, with_map=False)


def edit_annotations(log: Path, edit: Any) -> Path:
    path = log / "annotations.feather"
    feather.write_feather(edit(feather.read_table(path)), path)
    return path


def set_column(t: pa.Table, name: str, values: Any) -> pa.Table:
    return t.set_column(t.schema.get_field_index(name), name, values)


def with_value(t: pa.Table, name: str, row: int, value: float) -> pa.Table:
    values = t.column(name).to_numpy().copy()
    values[row] = value
    return set_column(t, name, pa.array(values))


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda t: t.drop_columns(["qw", "tx_m"]), SchemaMismatchError, "qw, tx_m"),
        (lambda t: set_column(t, "tx_m", pc.cast(t["tx_m"], pa.string())), SchemaMismatchError, "tx_m"),
        (lambda t: t.slice(0, 0), EmptyLogError, "no annotations"),
        (lambda t: with_value(t, "tx_m", 10, np.nan), InvalidValueError, "tx_m"),
        (lambda t: with_value(with_value(t, "qw", 3, 0.0), "qz", 3, 0.0), InvalidValueError, "zero norm"),
        (lambda t: pa.concat_tables([t, t.slice(5, 1)]), InvalidValueError, "two cuboids"),
        (
            lambda t: set_column(t, "timestamp_ns", pc.add(t["timestamp_ns"], 10**11)),
            InvalidValueError,
            "poses only",
        ),
    ],
    ids=[
        "missing-columns",
        "string-translation",
        "empty",
        "nan-translation",
        "zero-quaternion",
        "duplicate-cuboid",
        "after-the-poses",
    ],
)
def test_bad_annotations_raise_specific_errors(
    log_copy: Path, edit: Any, error: type[InputError], message: str
) -> None:
    edit_annotations(log_copy, edit)
    with pytest.raises(error, match=message) as info:
        read_one(log_copy)
    assert Path(info.value.path).parent == log_copy  # the file at fault (annotations, or poses they outrun)


def test_size_is_the_median_when_dims_vary(log_copy: Path) -> None:
    def vary(t: pa.Table) -> pa.Table:
        factor = 1.0 + 0.01 * (np.arange(t.num_rows) % 7)
        return set_column(t, "length_m", pa.array(t["length_m"].to_numpy() * factor))

    path = edit_annotations(log_copy, vary)
    raw = feather.read_table(path)
    lengths: dict[str, list[float]] = {}
    for u, length in zip(raw["track_uuid"].to_pylist(), raw["length_m"].to_pylist(), strict=True):
        lengths.setdefault(u, []).append(length)
    ours = read_one(log_copy)
    row = {tid: i for i, tid in enumerate(ours.tracks.track_ids.tolist())}
    for u, values in lengths.items():
        assert ours.tracks.size_m[row[u], 0] == pytest.approx(statistics.median(values), rel=1e-12)


def test_absurdly_sparse_log_is_refused_before_allocating(log_copy: Path) -> None:
    """One cuboid per track and per timestamp would need rows x rows states: refused, not allocated."""

    def sparse(t: pa.Table) -> pa.Table:
        stamps = t["timestamp_ns"].to_numpy()
        unique = np.linspace(stamps.min(), stamps.max(), t.num_rows).astype(np.int64)
        t = set_column(t, "timestamp_ns", pa.array(unique))
        return set_column(t, "track_uuid", pa.array([f"t{i}" for i in range(t.num_rows)]))

    edit_annotations(log_copy, sparse)
    with pytest.raises(InvalidValueError, match="tracks x"):
        read_one(log_copy)


def test_missing_poses_file(log_copy: Path) -> None:
    (log_copy / "city_SE3_egovehicle.feather").unlink()
    with pytest.raises(SchemaMismatchError, match="city_SE3_egovehicle"):
        read_one(log_copy)


@pytest.mark.parametrize("how", ["truncate", "garbage"])
def test_corrupt_feather(log_copy: Path, how: str) -> None:
    path = log_copy / "city_SE3_egovehicle.feather"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "truncate" else b"not arrow at all" * 10)
    with pytest.raises(CorruptFileError):
        read_one(log_copy)


def test_two_maps_are_refused(samples: Path, tmp_path: Path) -> None:
    src = samples / "av2_sensor/adcf7d18-0510-35b0-a2fa-b4cea13a6d76"
    log = copy_log(src, tmp_path / src.name)
    (only,) = (log / "map").glob("log_map_archive_*.json")
    shutil.copyfile(only, log / "map" / "log_map_archive_other____PIT_city_1.json")
    with pytest.raises(InvalidValueError, match="expected one"):
        read_one(log)


def test_cli_reports_one_line_and_exit_2(log_copy: Path) -> None:
    (log_copy / "annotations.feather").write_bytes(b"ARROW1 but nothing else")
    result = invoke_inspect(log_copy)
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert "annotations.feather" in result.output


# --------------------------------------------------------------------------- fuzz


@pytest.fixture(scope="module")
def fuzz_log(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = samples / "av2_sensor/adcf7d18-0510-35b0-a2fa-b4cea13a6d76"
    return copy_log(src, tmp_path_factory.mktemp("av2_fuzz") / src.name, with_map=False)


@seed(20_251_124)
@settings(FIXTURE_FUZZ, max_examples=60, deadline=10_000)
@given(data=st.data())
def test_fuzz_mutated_feather(fuzz_log: Path, data: st.DataObject) -> None:
    target = data.draw(
        st.sampled_from([fuzz_log / "annotations.feather", fuzz_log / "city_SE3_egovehicle.feather"]),
        label="file",
    )
    with mutated_file(target, data.draw, tail=2048):  # half the edits in the last 2 KiB (the IPC footer)
        assert_reads_or_refuses(ADAPTER, fuzz_log)
