"""comma2k19 segment reader: signals, CAN frames and the ENU ego track against the raw .npy files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from fuzzing import FIXTURE_FUZZ, assert_reads_or_refuses, mutated_file
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from reader_checks import assert_arrow_round_trip, run_inspect, run_inspect_json, sample_path, writable_copy

from datadrive.core import Scenario, summarize
from datadrive.core.summary import summarize_telemetry
from datadrive.core.telemetry import Telemetry
from datadrive.errors import (
    CorruptFileError,
    EmptyLogError,
    InvalidValueError,
    SchemaMismatchError,
    UnsafePickleError,
)
from datadrive.sources import DEFAULT_REGISTRY, files_sha256
from datadrive.sources.comma2k19 import Comma2k19Adapter

ADAPTER = Comma2k19Adapter()
SEGMENT = "comma2k19/b0c9d2329ad1606b_2018-08-02--08-34-47/40"

# signal name -> (folder under processed_log, unit, rows per SOURCES.md, channels)
LOGS = {
    "can/speed": ("CAN/speed", "m/s", 4974, 1),
    "can/steering_angle": ("CAN/steering_angle", "deg", 4974, 1),
    "can/wheel_speed": ("CAN/wheel_speed", "m/s", 4974, 4),
    "can/radar": ("CAN/radar", "mixed", 10100, 7),
    "imu/accelerometer": ("IMU/accelerometer", "m/s^2", 6256, 3),
    "imu/gyro": ("IMU/gyro", "rad/s", 6256, 3),
    "imu/gyro_bias": ("IMU/gyro_bias", "rad/s", 6256, 3),
    "imu/gyro_uncalibrated": ("IMU/gyro_uncalibrated", "rad/s", 6256, 3),
    "imu/magnetometer": ("IMU/magnetometer", "uT", 592, 3),
    "imu/magnetometer_uncalibrated": ("IMU/magnetometer_uncalibrated", "uT", 592, 3),
    "gnss/live_ublox": ("GNSS/live_gnss_ublox", "mixed", 579, 6),
    "gnss/live_qcom": ("GNSS/live_gnss_qcom", "mixed", 30, 6),
    "gnss/raw_ublox": ("GNSS/raw_gnss_ublox", "mixed", 9228, 10),
    "gnss/raw_qcom": ("GNSS/raw_gnss_qcom", "mixed", 600, 10),
}
POSES = {
    "pose/position_ecef": ("frame_positions", "m", 3),
    "pose/velocity_ecef": ("frame_velocities", "m/s", 3),
    "pose/orientation_ecef": ("frame_orientations", "1", 4),
    "pose/gps_time": ("frame_gps_times", "mixed", 2),
}


@pytest.fixture(scope="module")
def segment(samples: Path) -> Path:
    return sample_path(samples, SEGMENT, folder=True)


@pytest.fixture(scope="module")
def telemetry(segment: Path) -> Telemetry:
    records = ADAPTER.read_all(segment)
    assert len(records) == 1
    assert isinstance(records[0], Telemetry)
    return records[0]


def load(path: Path) -> np.ndarray:
    return np.asarray(np.load(path, allow_pickle=False))


def as_ns(t: np.ndarray) -> np.ndarray:
    return np.array([round(float(x) * 1e9) for x in t], dtype=np.int64)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("name", sorted(LOGS), ids=sorted(LOGS))
def test_processed_log_signals(segment: Path, telemetry: Telemetry, name: str) -> None:
    folder, unit, rows, channels = LOGS[name]
    t = load(segment / "processed_log" / folder / "t")
    value = load(segment / "processed_log" / folder / "value").reshape(t.shape[0], -1)
    sig = telemetry.signal(name)
    assert t.shape == (rows,)
    assert value.shape == (rows, channels)
    assert sig.unit == unit
    assert len(sig.channels) == channels
    assert np.array_equal(sig.timestamps_ns, as_ns(t))
    assert np.array_equal(sig.values, value.astype(np.float64), equal_nan=True)
    assert sig.duration_s == pytest.approx(float(t[-1] - t[0]), abs=1e-8)
    assert sig.rate_hz == pytest.approx((rows - 1) / float(t[-1] - t[0]), rel=1e-8)
    if unit == "mixed":
        assert len(sig.channel_units) == channels


@pytest.mark.parametrize("name", sorted(POSES), ids=sorted(POSES))
def test_pose_signals(segment: Path, telemetry: Telemetry, name: str) -> None:
    file, unit, channels = POSES[name]
    t = load(segment / "global_pose" / "frame_times")
    value = load(segment / "global_pose" / file)
    sig = telemetry.signal(name)
    assert t.shape == (1200,)
    assert sig.unit == unit
    assert len(sig.channels) == channels
    assert np.array_equal(sig.timestamps_ns, as_ns(t))
    assert np.array_equal(sig.values, value)
    assert sig.rate_hz == pytest.approx(20.0, abs=0.01)


def test_documented_channel_meanings(telemetry: Telemetry) -> None:
    assert telemetry.signal("can/wheel_speed").channels == (
        "front_left",
        "front_right",
        "rear_left",
        "rear_right",
    )
    assert telemetry.signal("imu/gyro").channels == ("forward", "right", "down")
    fix = telemetry.signal("gnss/live_ublox")
    assert fix.unit_of("latitude") == "deg"
    assert fix.unit_of("speed") == "m/s"
    # the fixes' "utc_timestamp" is in ms: 2018-08-02, the route's date
    assert fix.values[0, fix.channels.index("utc_time")] / 1e3 == pytest.approx(1533226488.299)
    raw = telemetry.signal("gnss/raw_ublox")
    assert raw.unit_of("pseudorange") == "m"
    assert raw.unit_of("carrier_phase") == "cycles"
    # an accelerometer reads specific force: -9.8 m/s^2 on a "down" axis, about 0 forward and right
    accel = telemetry.signal("imu/accelerometer")
    assert np.median(accel.values, axis=0) == pytest.approx([0.0, 0.0, -9.8], abs=0.7)
    # the Earth's field is 25-65 uT
    mag = np.linalg.norm(telemetry.signal("imu/magnetometer").values, axis=1)
    assert 20 < float(np.median(mag)) < 70


def test_raw_can_frames(segment: Path, telemetry: Telemetry) -> None:
    folder = segment / "processed_log" / "CAN" / "raw_can"
    t, src, address, data = (load(folder / n) for n in ("t", "src", "address", "data"))
    can = telemetry.can_frames
    assert can is not None
    assert can.timestamps_ns.shape == (135468,) == t.shape
    assert summarize_telemetry(telemetry)["num_can_frames"] == 135468
    assert np.array_equal(can.timestamps_ns, as_ns(t))
    assert np.array_equal(can.bus, src)
    assert np.array_equal(can.address, address)
    raw_bytes = np.frombuffer(data.tobytes(), dtype=np.uint8).reshape(-1, 8)
    assert np.array_equal(can.data, raw_bytes)
    assert can.length.tolist() == expected_lengths(src, address, data)


def expected_lengths(src: np.ndarray, address: np.ndarray, data: np.ndarray) -> list[int]:
    """Per (bus, address), the longest payload without trailing zero bytes, by hand."""
    longest: dict[tuple[int, int], int] = {}
    for s, a, d in zip(src.tolist(), address.tolist(), data.tolist(), strict=True):
        longest[(s, a)] = max(longest.get((s, a), 0), len(d.rstrip(b"\0")))
    return [longest[(s, a)] for s, a in zip(src.tolist(), address.tolist(), strict=True)]


def test_provenance_hashes_every_file_read(segment: Path, telemetry: Telemetry) -> None:
    read = [f for f in segment.rglob("*") if f.is_file() and f.name != "preview.png"]
    assert len(read) == 37
    assert telemetry.metadata.provenance.sha256 == files_sha256(segment, read)
    assert telemetry.ego is not None
    assert telemetry.ego.metadata.provenance.sha256 == telemetry.metadata.provenance.sha256


def test_ego_track_enu_matches_proj(segment: Path, telemetry: Telemetry) -> None:
    pyproj = pytest.importorskip("pyproj")
    ego = telemetry.ego
    assert ego is not None
    ecef = load(segment / "global_pose" / "frame_positions")
    to_geodetic = pyproj.Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)
    lon0, lat0, alt0 = to_geodetic.transform(*ecef[0])
    topo = pyproj.Transformer.from_pipeline(
        f"+proj=topocentric +ellps=WGS84 +lat_0={lat0} +lon_0={lon0} +h_0={alt0}"
    )
    e, n, u = topo.transform(ecef[:, 0], ecef[:, 1], ecef[:, 2])
    assert np.abs(ego.tracks.xy_m[0] - np.stack([e, n], axis=-1)).max() < 1e-3
    assert np.abs(ego.tracks.z_m[0] - u).max() < 1e-3
    origin = telemetry.metadata.extras["enu_origin"]
    assert origin["lat_deg"] == pytest.approx(lat0, abs=1e-10)
    assert origin["lon_deg"] == pytest.approx(lon0, abs=1e-10)
    assert ego.metadata.frame == telemetry.metadata.frame
    assert ego.metadata.frame.startswith("enu_wgs84@37.72")
    assert np.array_equal(ego.timestamps_ns, as_ns(load(segment / "global_pose" / "frame_times")))
    assert ego.ego_track_id == "ego"
    assert ego.tracks.valid.all()


def test_ego_speed_agrees_with_can_speed(segment: Path, telemetry: Telemetry) -> None:
    ego = telemetry.ego
    assert ego is not None
    can_t = load(segment / "processed_log" / "CAN" / "speed" / "t")
    can_v = load(segment / "processed_log" / "CAN" / "speed" / "value")[:, 0]
    pose_t = load(segment / "global_pose" / "frame_times")
    speed = np.linalg.norm(ego.tracks.velocity_mps[0], axis=1)
    can_on_pose = np.interp(pose_t, can_t, can_v)
    assert float(np.median(np.abs(speed - can_on_pose))) < 0.5


def test_ego_heading_follows_the_direction_of_travel(telemetry: Telemetry) -> None:
    ego = telemetry.ego
    assert ego is not None
    v = ego.tracks.velocity_mps[0]
    moving = np.linalg.norm(v, axis=1) > 5.0
    assert moving.sum() > 100
    travel = np.arctan2(v[moving, 1], v[moving, 0])
    diff = np.angle(np.exp(1j * (travel - ego.tracks.heading_rad[0, moving])))
    assert float(np.degrees(np.median(np.abs(diff)))) < 5.0
    # and the ENU displacement between frames points the same way as the velocity
    step = np.diff(ego.tracks.xy_m[0], axis=0)
    heading_of_step = np.arctan2(step[:, 1], step[:, 0])
    diff = np.angle(np.exp(1j * (heading_of_step - ego.tracks.heading_rad[0, 1:])))[moving[1:]]
    assert float(np.degrees(np.median(np.abs(diff)))) < 5.0


def test_clock_offsets_and_identity(segment: Path, telemetry: Telemetry) -> None:
    extras = telemetry.metadata.extras
    gps = load(segment / "global_pose" / "frame_gps_times")
    t = load(segment / "global_pose" / "frame_times")
    assert extras["gps_time_minus_boot_time_s"] == pytest.approx(
        float(np.median(gps[:, 0] * 604800 + gps[:, 1] - t)), abs=1e-6
    )
    # Unix = GPS + 315964800 - 18 leap seconds (2018); the fixes' UTC agrees within the fix latency
    unix_from_gps = extras["gps_time_minus_boot_time_s"] + 315964800 - 18
    assert extras["unix_time_minus_boot_time_s"] == pytest.approx(unix_from_gps, abs=0.5)
    assert telemetry.telemetry_id == "b0c9d2329ad1606b|2018-08-02--08-34-47--40"
    assert extras["dongle_id"] == "b0c9d2329ad1606b"
    assert extras["segment"] == 40
    assert extras["vehicle"] == "toyota_rav4"


def test_ego_arrow_round_trip(telemetry: Telemetry) -> None:
    assert telemetry.ego is not None
    assert_arrow_round_trip([telemetry.ego])


def test_registry_and_inspect(segment: Path, telemetry: Telemetry) -> None:
    assert DEFAULT_REGISTRY.detect(segment).name == "comma2k19"
    [obj] = run_inspect_json(segment.parent, timeout_s=120)
    assert obj == json.loads(json.dumps(summarize_telemetry(telemetry)))
    assert set(obj) == {"telemetry_id", "source", "signals", "num_can_frames", "ego"}
    speed = next(s for s in obj["signals"] if s["name"] == "can/speed")
    assert speed["num_samples"] == 4974
    assert speed["unit"] == "m/s"
    assert speed["duration_s"] == pytest.approx(60, abs=0.1)
    assert obj["ego"] == json.loads(json.dumps(summarize(telemetry.ego)))  # type: ignore[arg-type]
    result = run_inspect(segment, timeout_s=120, env={**os.environ, "COLUMNS": "250"})
    assert result.returncode == 0, result.stderr
    table = result.stdout
    for expected in (
        "can/speed",
        "imu/gyro",
        "rad/s",
        "pose/position_ecef",
        "135468 raw CAN frames",
        "latitude[deg]",
    ):
        assert expected in table


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def copy(tmp_path: Path, segment: Path) -> Path:
    dst = tmp_path / "b0c9d2329ad1606b_2018-08-02--08-34-47" / "40"
    return writable_copy(segment, dst, ignore=shutil.ignore_patterns("preview.png"))


def save(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as fh:  # np.save would append ".npy"
        np.save(fh, array, allow_pickle=True)


def test_truncated_npy(copy: Path) -> None:
    target = copy / "processed_log" / "CAN" / "speed" / "value"
    target.write_bytes(target.read_bytes()[:-100])
    with pytest.raises(
        CorruptFileError, match=r"CAN/speed/value: holds \d+ data bytes, its header says 39792"
    ):
        ADAPTER.read_all(copy)


def test_corrupt_npy_header(copy: Path) -> None:
    target = copy / "processed_log" / "IMU" / "gyro" / "t"
    target.write_bytes(b"\x00garbage" + target.read_bytes()[8:])
    with pytest.raises(CorruptFileError, match=r"IMU/gyro/t: not a readable \.npy"):
        ADAPTER.read_all(copy)


def test_pickled_object_array_is_refused(copy: Path) -> None:
    target = copy / "processed_log" / "CAN" / "steering_angle" / "value"
    save(target, np.array([{"a": 1}] * 4974, dtype=object))
    with pytest.raises(UnsafePickleError, match="Python objects"):
        ADAPTER.read_all(copy)


@pytest.mark.parametrize(
    ("relative", "array", "match"),
    [
        ("processed_log/CAN/speed/value", np.array(["fast"] * 4974), "expected numbers"),
        ("processed_log/IMU/gyro/value", np.zeros((6256, 2)), r"expected \(6256, 3\)"),
        ("processed_log/CAN/wheel_speed/value", np.zeros((10, 4)), r"expected \(4974, 4\)"),
        ("processed_log/CAN/raw_can/data", np.zeros(135468, dtype="S12"), "up to 8 bytes"),
        ("global_pose/frame_positions", np.zeros((1200, 2)), r"expected \(1200, 3\)"),
    ],
    ids=["strings", "wrong-channels", "wrong-length", "long-can-payload", "pose-2d"],
)
def test_wrong_dtype_or_shape(copy: Path, relative: str, array: np.ndarray, match: str) -> None:
    save(copy / relative, array)
    with pytest.raises(SchemaMismatchError, match=match):
        ADAPTER.read_all(copy)


@pytest.mark.parametrize(
    "relative",
    [
        "processed_log/CAN/speed/value",
        "processed_log/GNSS/live_gnss_ublox/t",
        "global_pose/frame_orientations",
    ],
    ids=["can-value", "gnss-t", "pose-orientation"],
)
def test_missing_array(copy: Path, relative: str) -> None:
    (copy / relative).unlink()
    with pytest.raises(SchemaMismatchError, match=f"{relative}: array file is missing"):
        ADAPTER.read_all(copy)


def test_all_nan_positions(copy: Path) -> None:
    save(copy / "global_pose" / "frame_positions", np.full((1200, 3), np.nan))
    with pytest.raises(InvalidValueError, match="no frame has a finite position"):
        ADAPTER.read_all(copy)


def test_some_nan_positions_are_invalid_steps(copy: Path, telemetry: Telemetry) -> None:
    positions = load(copy / "global_pose" / "frame_positions").copy()
    positions[[0, 500, 501]] = np.nan
    save(copy / "global_pose" / "frame_positions", positions)
    [again] = ADAPTER.read_all(copy)
    assert isinstance(again, Telemetry)
    assert again.ego is not None
    assert telemetry.ego is not None
    valid = again.ego.tracks.valid[0]
    assert valid.sum() == 1197
    assert not valid[[0, 500, 501]].any()
    # the origin moved to the first valid pose (frame 1); relative geometry is unchanged
    ours, ref = again.ego.tracks.xy_m[0, valid], telemetry.ego.tracks.xy_m[0, valid]
    assert np.allclose(ours - ours[0], ref - ref[0], atol=1e-3)


def test_position_off_the_earth(copy: Path) -> None:
    positions = load(copy / "global_pose" / "frame_positions").copy()
    positions[7] = [1.0, 2.0, 3.0]
    save(copy / "global_pose" / "frame_positions", positions)
    with pytest.raises(InvalidValueError, match="not near the Earth's surface"):
        ADAPTER.read_all(copy)


def test_nan_timestamps(copy: Path) -> None:
    t = load(copy / "processed_log" / "IMU" / "accelerometer" / "t").copy()
    t[10] = np.nan
    save(copy / "processed_log" / "IMU" / "accelerometer" / "t", t)
    with pytest.raises(InvalidValueError, match="accelerometer/t: a timestamp is NaN"):
        ADAPTER.read_all(copy)


def test_can_bus_out_of_range(copy: Path) -> None:
    src = load(copy / "processed_log" / "CAN" / "raw_can" / "src").copy()
    src[3] = 4096
    save(copy / "processed_log" / "CAN" / "raw_can" / "src", src)
    with pytest.raises(InvalidValueError, match="bus number or address"):
        ADAPTER.read_all(copy)


def test_extended_29_bit_can_ids(copy: Path) -> None:
    folder = copy / "processed_log" / "CAN" / "raw_can"
    address = load(folder / "address").copy()
    address[::3] += 0x18DA0000  # 29-bit ids on every third frame
    save(folder / "address", address)
    [again] = ADAPTER.read_all(copy)
    assert isinstance(again, Telemetry)
    assert again.can_frames is not None
    assert np.array_equal(again.can_frames.address, address)
    src, data = load(folder / "src"), load(folder / "data")
    assert again.can_frames.length.tolist() == expected_lengths(src, address, data)


def test_out_of_order_rows_are_kept_and_sorted(copy: Path) -> None:
    folder = copy / "processed_log" / "CAN" / "steering_angle"
    t, v = load(folder / "t").copy(), load(folder / "value").copy()
    t[[10, 11]], v[[10, 11]] = t[[11, 10]], v[[11, 10]]
    save(folder / "t", t)
    save(folder / "value", v)
    [again] = ADAPTER.read_all(copy)
    assert isinstance(again, Telemetry)
    sig = again.signal("can/steering_angle")
    assert sig.timestamps_ns.shape == (4974,)
    assert np.array_equal(np.sort(sig.values[:, 0]), np.sort(v.astype(np.float64)))
    assert again.metadata.extras["reordered_by_time"] == ["can/steering_angle"]


def test_empty_arrays(tmp_path: Path) -> None:
    folder = tmp_path / "seg" / "0"
    (folder / "processed_log" / "CAN" / "speed").mkdir(parents=True)
    save(folder / "processed_log" / "CAN" / "speed" / "t", np.zeros(0))
    save(folder / "processed_log" / "CAN" / "speed" / "value", np.zeros((0, 1)))
    assert ADAPTER.claims(folder)
    with pytest.raises(EmptyLogError, match="no CAN, IMU, GNSS or pose samples"):
        ADAPTER.read_all(folder)


def test_older_eight_column_raw_gnss_and_unknown_logs(copy: Path) -> None:
    folder = copy / "processed_log" / "GNSS" / "raw_gnss_qcom"
    value = load(folder / "value")[:, :8].copy()  # the README's layout, before C/N0 and carrier phase
    save(folder / "value", value)
    (copy / "processed_log" / "CAN" / "gas_pedal").mkdir()
    [again] = ADAPTER.read_all(copy)
    assert isinstance(again, Telemetry)
    raw = again.signal("gnss/raw_qcom")
    assert raw.channels[-1] == "pseudorange_rate_std"
    assert len(raw.channel_units) == 8
    assert np.array_equal(raw.values, value, equal_nan=True)
    assert again.metadata.extras["unread_logs"] == ["CAN/gas_pedal"]
    save(folder / "value", np.zeros((600, 5)))
    with pytest.raises(SchemaMismatchError, match=r"expected \(600, 10\)"):
        ADAPTER.read_all(copy)


def test_segment_without_global_pose_has_no_ego(copy: Path) -> None:
    shutil.rmtree(copy / "global_pose")
    [again] = ADAPTER.read_all(copy)
    assert isinstance(again, Telemetry)
    assert again.ego is None
    assert "pose/position_ecef" not in {s.name for s in again.signals}
    assert again.metadata.frame.startswith("none")


# --------------------------------------------------------------------------- fuzz


@pytest.fixture(scope="module")
def fuzz_copy(tmp_path_factory: pytest.TempPathFactory, segment: Path) -> Path:
    dst = tmp_path_factory.mktemp("comma_fuzz") / "b0c9d2329ad1606b_2018-08-02--08-34-47" / "40"
    return writable_copy(segment, dst, ignore=shutil.ignore_patterns("preview.png"))


@seed(20_251_124)
@settings(FIXTURE_FUZZ, max_examples=100, deadline=10_000)
@given(data=st.data())
def test_fuzz_mutated_files(fuzz_copy: Path, data: st.DataObject) -> None:
    files = sorted(f for f in fuzz_copy.rglob("*") if f.is_file())
    target = data.draw(st.sampled_from(files), label="file")
    with mutated_file(target, data.draw, head=128):  # half the edits in the .npy header (first 128 bytes)
        assert_reads_or_refuses(ADAPTER, fuzz_copy, Telemetry)


def test_ego_is_a_scenario(telemetry: Telemetry) -> None:
    assert isinstance(telemetry.ego, Scenario)
    assert telemetry.ego.metadata.extras["heading_from"].startswith("the camera's forward axis")
