"""nuPlan log reader: values against direct sqlite3 queries on the raw logs and SOURCES.md."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzzing import INNER_FUZZ, assert_reads_or_refuses, mutations
from hypothesis import given, seed, settings
from reader_checks import assert_arrow_round_trip, assert_summary_equal, run_inspect_json

from datadrive.core import (
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
)
from datadrive.sources import DEFAULT_REGISTRY
from datadrive.sources import nuplan as nuplan_module
from datadrive.sources.nuplan import NuPlanAdapter

LOGS = {  # SOURCES.md: file -> (location, ego_pose, lidar_pc, lidar_box, tracks, scenario_tag, epsg)
    "test/2021.09.16.14.14.03_veh-45_00441_00502.db": (
        "us-pa-pittsburgh-hazelwood",
        6296,
        1220,
        1702,
        48,
        0,
        32617,
    ),
    "train_pittsburgh/2021.09.13.19.54.06_veh-45_00781_00843.db": (
        "us-pa-pittsburgh-hazelwood",
        6400,
        1240,
        2509,
        57,
        1149,
        32617,
    ),
    "train_singapore/2021.09.29.01.04.10_veh-49_00808_00872.db": (
        "sg-one-north",
        6591,
        1280,
        2129,
        35,
        1058,
        32648,
    ),
}
FILES = list(LOGS)
SMALLEST = FILES[0]
SINGAPORE = FILES[2]
ADAPTER = NuPlanAdapter()
PACIFICA_M = (4.049 + 1.127, 1.1485 * 2.0, 1.777)  # nuplan-devkit get_pacifica_parameters


def ids(name: str) -> str:
    return name.split("/")[0]


def nuplan(samples: Path) -> Path:
    return samples / "nuplan"


@pytest.fixture(scope="module")
def read(samples: Path) -> dict[str, Scenario]:
    out = {}
    for name in FILES:
        [scenario] = ADAPTER.read_all(nuplan(samples) / name)
        assert isinstance(scenario, Scenario)
        out[name] = scenario
    return out


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# --------------------------------------------------------------------------- independent expectations

_COARSE = {"vehicle": "vehicle", "bicycle": "cyclist", "pedestrian": "pedestrian"}


def expected_summary(path: Path) -> dict[str, Any]:
    """The inspect summary, from plain SQL on the raw log."""
    counts = {"vehicle": 1, "cyclist": 0, "pedestrian": 0, "other": 0}  # the ego
    for category, n in query(
        path,
        "SELECT c.name, COUNT(DISTINCT b.track_token) FROM lidar_box b"
        " JOIN track t ON t.token = b.track_token"
        " JOIN category c ON c.token = t.category_token GROUP BY c.name",
    ):
        counts[_COARSE.get(category, "other")] += n
    [(num_tracks,)] = query(path, "SELECT COUNT(DISTINCT track_token) FROM lidar_box")
    [(num_boxes, box_xy)] = query(path, "SELECT COUNT(*), SUM(x + y) FROM lidar_box")
    [(num_ego, ego_xy)] = query(
        path, "SELECT COUNT(*), SUM(e.x + e.y) FROM lidar_pc p JOIN ego_pose e ON e.token = p.ego_pose_token"
    )
    timestamps = np.array([t for (t,) in query(path, "SELECT timestamp FROM lidar_pc ORDER BY timestamp")])
    return {
        "scenario_id": path.stem,
        "source": "nuplan",
        "num_tracks": num_tracks + 1,
        "num_steps": len(timestamps),
        "dt_s": round(float(np.median(np.diff(timestamps * 1000))) / 1e9, 9),
        "num_valid_states": num_boxes + num_ego,
        "track_type_counts": counts,
        "ego_track_id": "ego",
        "num_map_lanes": None,
        "xy_sum_m": box_xy + ego_xy,
    }


@pytest.mark.parametrize("name", FILES, ids=ids)
def test_summary_matches_sql(samples: Path, read: dict[str, Scenario], name: str) -> None:
    assert_summary_equal(summarize(read[name]), expected_summary(nuplan(samples) / name))


@pytest.mark.parametrize("name", FILES, ids=ids)
def test_facts_from_sources_md(samples: Path, read: dict[str, Scenario], name: str) -> None:
    location, ego_poses, sweeps, boxes, tracks, tags, epsg = LOGS[name]
    s = read[name]
    assert s.scenario_id == Path(name).stem
    assert s.num_steps == sweeps
    assert s.num_tracks == tracks + 1
    assert int(s.tracks.valid[1:].sum()) == boxes  # every box is a state
    assert s.metadata.location == location
    assert s.metadata.frame == f"utm_epsg_{epsg}"
    assert s.metadata.extras["num_lidar_box"] == boxes
    assert sum(len(v) for v in s.metadata.extras["scenario_tags"].values()) == tags
    assert s.dt_s == pytest.approx(0.05, abs=1e-4)  # 20 Hz
    [(n,)] = query(nuplan(samples) / name, "SELECT COUNT(*) FROM ego_pose")
    assert n == ego_poses


def test_inspect_json_on_the_sample_folder(samples: Path) -> None:
    lines = run_inspect_json(nuplan(samples), timeout_s=300)
    assert len(lines) == len(FILES)
    for got, name in zip(lines, sorted(FILES), strict=True):
        assert_summary_equal(got, expected_summary(nuplan(samples) / name))


# --------------------------------------------------------------------------- values


def yaw_from_rotation_matrix(qw: float, qx: float, qy: float, qz: float) -> float:
    """Yaw of a unit quaternion via its rotation matrix (atan2 of R10, R00)."""
    norm = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
    qw, qx, qy, qz = qw / norm, qx / norm, qy / norm, qz / norm
    r00 = 1 - 2 * (qy * qy + qz * qz)
    r10 = 2 * (qx * qy + qw * qz)
    return math.atan2(r10, r00)


@pytest.mark.parametrize("name", FILES, ids=ids)
def test_ego_states(samples: Path, read: dict[str, Scenario], name: str) -> None:
    s = read[name]
    rows = query(
        nuplan(samples) / name,
        "SELECT p.timestamp, e.x, e.y, e.z, e.qw, e.qx, e.qy, e.qz, e.vx, e.vy FROM lidar_pc p"
        " JOIN ego_pose e ON e.token = p.ego_pose_token ORDER BY p.timestamp",
    )
    raw = np.array(rows, dtype=np.float64)
    assert s.ego_index == 0
    assert s.tracks.object_type[0] == ObjectType.VEHICLE
    np.testing.assert_array_equal(s.timestamps_ns, np.array([r[0] for r in rows], dtype=np.int64) * 1000)
    assert s.tracks.valid[0].all()
    np.testing.assert_array_equal(s.tracks.xy_m[0], raw[:, 1:3])
    np.testing.assert_array_equal(s.tracks.z_m[0], raw[:, 3])
    yaw = np.array([yaw_from_rotation_matrix(*r[4:8]) for r in rows])
    np.testing.assert_allclose(s.tracks.heading_rad[0], yaw, atol=1e-9)
    # vx/vy are ego-frame: rotated by the yaw they give the global velocity ...
    global_v = np.stack(
        [
            np.cos(yaw) * raw[:, 8] - np.sin(yaw) * raw[:, 9],
            np.sin(yaw) * raw[:, 8] + np.cos(yaw) * raw[:, 9],
        ],
        axis=1,
    )
    np.testing.assert_allclose(s.tracks.velocity_mps[0], global_v, atol=1e-9)
    # ... which matches the motion of the recorded positions (central differences over
    # the poses' own timestamps); the unrotated vx/vy would not.
    pose_t = query(
        nuplan(samples) / name,
        "SELECT e.timestamp FROM lidar_pc p JOIN ego_pose e ON e.token = p.ego_pose_token"
        " ORDER BY p.timestamp",
    )
    t_s = np.array(pose_t, dtype=np.float64)[:, 0] / 1e6
    moved = (s.tracks.xy_m[0, 2:] - s.tracks.xy_m[0, :-2]) / (t_s[2:] - t_s[:-2])[:, None]
    speed = np.linalg.norm(moved, axis=1)
    fast = speed > 1.0
    assert fast.sum() > 100
    error = np.linalg.norm(moved - s.tracks.velocity_mps[0, 1:-1], axis=1)[fast] / speed[fast]
    unrotated_error = np.linalg.norm(moved - raw[1:-1, 8:10], axis=1)[fast] / speed[fast]
    assert np.median(error) < 0.1  # vx/vy run a few % above the pose odometry
    assert np.median(unrotated_error) > 0.5
    np.testing.assert_allclose(s.tracks.size_m[0], PACIFICA_M)


@pytest.mark.parametrize("name", FILES, ids=ids)
def test_agent_states_equal_the_boxes(samples: Path, read: dict[str, Scenario], name: str) -> None:
    s = read[name]
    path = nuplan(samples) / name
    step_of = {
        t: i for i, (t,) in enumerate(query(path, "SELECT timestamp FROM lidar_pc ORDER BY timestamp"))
    }
    row_of = {tid: i for i, tid in enumerate(s.tracks.track_ids.tolist())}
    boxes = query(
        path,
        "SELECT lower(hex(b.track_token)), p.timestamp, b.x, b.y, b.z, b.yaw, b.vx, b.vy FROM lidar_box b"
        " JOIN lidar_pc p ON p.token = b.lidar_pc_token",
    )
    rows = np.array([row_of[b[0]] for b in boxes])
    steps = np.array([step_of[b[1]] for b in boxes])
    values = np.array([b[2:] for b in boxes], dtype=np.float64)
    assert s.tracks.valid[rows, steps].all()
    np.testing.assert_array_equal(s.tracks.xy_m[rows, steps], values[:, 0:2])
    np.testing.assert_array_equal(s.tracks.z_m[rows, steps], values[:, 2])
    np.testing.assert_array_equal(s.tracks.heading_rad[rows, steps], values[:, 3])
    np.testing.assert_array_equal(s.tracks.velocity_mps[rows, steps], values[:, 4:6])
    tracks = query(
        path,
        "SELECT lower(hex(t.token)), c.name, t.length, t.width, t.height FROM track t"
        " JOIN category c ON c.token = t.category_token",
    )
    for tid, category, length, width, height in tracks:
        row = row_of[tid]
        assert s.tracks.category[row] == category
        np.testing.assert_array_equal(s.tracks.size_m[row], [length, width, height])
        coarse = {
            "vehicle": ObjectType.VEHICLE,
            "bicycle": ObjectType.CYCLIST,
            "pedestrian": ObjectType.PEDESTRIAN,
        }
        assert s.tracks.object_type[row] == coarse.get(category, ObjectType.OTHER)


def test_extras_hold_the_log_facts(samples: Path, read: dict[str, Scenario]) -> None:
    s = read[FILES[1]]
    extras = s.metadata.extras
    [(vehicle, date, location, map_version)] = query(
        nuplan(samples) / FILES[1], "SELECT vehicle_name, date, location, map_version FROM log"
    )
    assert (extras["vehicle_name"], extras["date"], extras["map_version"]) == (vehicle, date, map_version)
    assert s.metadata.location == location
    scenes = extras["scenes"]
    assert [sc["name"] for sc in scenes] == ["scene-0001", "scene-0002", "scene-0003", "scene-0004"]
    assert sum(sc["num_steps"] for sc in scenes) == s.num_steps
    tag_rows = query(
        nuplan(samples) / FILES[1],
        "SELECT st.type, COUNT(DISTINCT st.lidar_pc_token) FROM scenario_tag st GROUP BY st.type",
    )
    assert {k: len(v) for k, v in extras["scenario_tags"].items()} == dict(tag_rows)
    json.dumps(dict(extras), allow_nan=False)


def test_traffic_lights(samples: Path, read: dict[str, Scenario]) -> None:
    lights = read[SINGAPORE].traffic_lights
    assert lights is not None
    rows = query(
        nuplan(samples) / SINGAPORE,
        "SELECT lane_connector_id, status, COUNT(*) FROM traffic_light_status GROUP BY 1, 2",
    )
    assert sorted(lights.lane_ids.tolist()) == sorted(str(r[0]) for r in rows)
    assert int(lights.valid.sum()) == sum(r[2] for r in rows) == 66  # SOURCES.md
    assert np.all(lights.state[lights.valid] == TrafficLightState.STOP)  # every status is "red"
    assert read[SMALLEST].traffic_lights is None


def test_arrow_round_trip(read: dict[str, Scenario]) -> None:
    assert_arrow_round_trip(list(read.values()))


def test_claims_and_detection(samples: Path) -> None:
    assert ADAPTER.claims(Path("x.db"))
    assert not ADAPTER.claims(Path("x.pkl"))
    assert DEFAULT_REGISTRY.detect(nuplan(samples) / SMALLEST).name == "nuplan"


# --------------------------------------------------------------------------- read-only


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in folder.iterdir()
    }


def test_reader_never_writes(samples: Path, tmp_path: Path) -> None:
    db = tmp_path / "log.db"
    shutil.copy2(nuplan(samples) / SMALLEST, db)
    before = snapshot(tmp_path)
    ADAPTER.read_all(db)
    assert snapshot(tmp_path) == before  # same bytes, same mtime, no -journal/-wal/-shm left


def test_reads_a_read_only_file_in_a_read_only_folder(samples: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "log.db"
    shutil.copy2(nuplan(samples) / SMALLEST, db)
    db.chmod(0o444)
    folder.chmod(0o555)
    try:
        [s] = ADAPTER.read_all(db)
        assert isinstance(s, Scenario)
        assert s.num_steps == 1220
    finally:
        folder.chmod(0o755)


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def log_copy(samples: Path, tmp_path: Path) -> Path:
    db = tmp_path / "case.db"
    shutil.copy2(nuplan(samples) / SMALLEST, db)
    return db


def edit(db: Path, *statements: str) -> None:
    con = sqlite3.connect(db)
    try:
        for sql in statements:
            con.execute(sql)
        con.commit()
    finally:
        con.close()


def test_truncated_db_is_corrupt(samples: Path, tmp_path: Path) -> None:
    data = (nuplan(samples) / SMALLEST).read_bytes()
    path = tmp_path / "cut.db"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="SQLite"):
        ADAPTER.read_all(path)


@pytest.mark.parametrize(
    "data",
    [b"", b"not a database at all\n" * 10, b"SQLite format 3\x00short"],
    ids=["empty", "text", "header-only"],
)
def test_db_that_is_not_sqlite_is_corrupt(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(data)
    with pytest.raises(CorruptFileError, match="SQLite"):
        ADAPTER.read_all(path)


def test_sqlite_without_the_nuplan_tables(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    edit(path, "CREATE TABLE log (token BLOB, vehicle_name TEXT)")
    with pytest.raises(SchemaMismatchError) as info:
        ADAPTER.read_all(path)
    for table in ("lidar_pc", "ego_pose", "lidar_box", "track", "category"):
        assert table in info.value.reason
    assert "log.location" in info.value.reason


def test_missing_column(log_copy: Path) -> None:
    edit(log_copy, "ALTER TABLE lidar_box DROP COLUMN yaw")
    with pytest.raises(SchemaMismatchError, match=r"lidar_box\.yaw"):
        ADAPTER.read_all(log_copy)


def test_log_without_sweeps_is_empty(log_copy: Path) -> None:
    edit(log_copy, "DELETE FROM lidar_box", "DELETE FROM lidar_pc")
    with pytest.raises(EmptyLogError, match="lidar_pc"):
        ADAPTER.read_all(log_copy)


def test_null_box_position(log_copy: Path) -> None:
    edit(log_copy, "UPDATE lidar_box SET x = NULL WHERE rowid = (SELECT MIN(rowid) FROM lidar_box)")
    with pytest.raises(InvalidValueError, match=r"lidar_box has 1 rows"):
        ADAPTER.read_all(log_copy)


def test_nan_ego_position(log_copy: Path) -> None:
    edit(
        log_copy,
        "UPDATE ego_pose SET y = NULL"
        " WHERE token = (SELECT ego_pose_token FROM lidar_pc ORDER BY timestamp LIMIT 1)",
    )
    with pytest.raises(InvalidValueError, match="ego_pose"):
        ADAPTER.read_all(log_copy)


def test_repeated_sweep_timestamps(log_copy: Path) -> None:
    edit(
        log_copy,
        "UPDATE lidar_pc SET timestamp = (SELECT MIN(timestamp) FROM lidar_pc)"
        " WHERE token = (SELECT token FROM lidar_pc ORDER BY timestamp LIMIT 1 OFFSET 1)",
    )
    with pytest.raises(InvalidValueError, match="repeat"):
        ADAPTER.read_all(log_copy)


def test_sweep_without_ego_pose_is_an_invalid_ego_state(log_copy: Path) -> None:
    edit(
        log_copy,
        "UPDATE lidar_pc SET ego_pose_token = x'00' WHERE timestamp = (SELECT MAX(timestamp) FROM lidar_pc)",
    )
    [s] = ADAPTER.read_all(log_copy)
    assert isinstance(s, Scenario)
    assert not s.tracks.valid[0, -1]
    assert s.tracks.valid[0, :-1].all()
    assert s.metadata.extras["steps_without_ego_pose"] == 1


def test_mixed_epsg_codes(log_copy: Path) -> None:
    edit(
        log_copy,
        "UPDATE ego_pose SET epsg = 32648 WHERE token = (SELECT ego_pose_token FROM lidar_pc LIMIT 1)",
    )
    with pytest.raises(InvalidValueError, match="EPSG"):
        ADAPTER.read_all(log_copy)


def test_queries_have_a_work_budget(log_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A corrupt file cannot make a read loop: past its budget SQLite aborts the query."""
    monkeypatch.setattr(nuplan_module, "_WORK_MIN_CALLS", 5)
    monkeypatch.setattr(nuplan_module, "_WORK_CALLS_PER_MB", 0)
    with pytest.raises(CorruptFileError, match="work budget"):
        ADAPTER.read_all(log_copy)


# --------------------------------------------------------------------------- fuzz


def test_fuzz_mutated_logs_read_or_raise_input_errors(samples: Path, tmp_path: Path) -> None:
    data = (nuplan(samples) / SMALLEST).read_bytes()
    path = tmp_path / "fuzz.db"

    @seed(20261128)
    @settings(INNER_FUZZ, max_examples=30, deadline=10_000)
    @given(mutated=mutations(data))
    def check(mutated: bytes) -> None:
        path.write_bytes(mutated)
        assert_reads_or_refuses(ADAPTER, path)

    check()
