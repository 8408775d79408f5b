"""Waymo Open Motion Scenario TFRecords: values against the raw bytes, bad input, fuzz.

Expected values come from SOURCES.md and from a minimal protobuf wire-format
walker written here (plain Python over the file's bytes, independent of the
adapter, of protobuf and of our TFRecord module).
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np
import pytest
from fuzzing import INNER_FUZZ, assert_reads_or_refuses, mutations
from hypothesis import given, seed, settings
from reader_checks import assert_arrow_round_trip, run_inspect_json, sample_path

from datadrive.core import (
    MapFeatureKind,
    MapRelation,
    ObjectType,
    Scenario,
)
from datadrive.errors import (
    CorruptFileError,
    EmptyLogError,
    InputError,
    InvalidValueError,
    UnsupportedFormatError,
)
from datadrive.sources import DEFAULT_REGISTRY
from datadrive.sources.waymo_motion import WaymoMotionAdapter
from datadrive.sources.waymo_protos import map_pb2, scenario_pb2

ADAPTER = WaymoMotionAdapter()
SCENARIO_FILE = Path("waymo_open_motion/scenario_637f20cafde22ff8/motion_data_one_scenario.tfrecord")
EXAMPLE_FILE = Path("waymo_open_motion/tf_example_a3bb37c25ce56418/motion_data_one_example.tfrecord")
FRAME_FILE = Path("waymo_open_perception/v1_frame/pvps_data_one_frame.tfrecord")

# Waymo's enum names, as published in scenario.proto / map.proto.
OBJECT_TYPE_NAMES = ["TYPE_UNSET", "TYPE_VEHICLE", "TYPE_PEDESTRIAN", "TYPE_CYCLIST", "TYPE_OTHER"]
LANE_TYPE_NAMES = ["TYPE_UNDEFINED", "TYPE_FREEWAY", "TYPE_SURFACE_STREET", "TYPE_BIKE_LANE"]
ROAD_LINE_NAMES = [
    "TYPE_UNKNOWN",
    "TYPE_BROKEN_SINGLE_WHITE",
    "TYPE_SOLID_SINGLE_WHITE",
    "TYPE_SOLID_DOUBLE_WHITE",
    "TYPE_BROKEN_SINGLE_YELLOW",
    "TYPE_BROKEN_DOUBLE_YELLOW",
    "TYPE_SOLID_SINGLE_YELLOW",
    "TYPE_SOLID_DOUBLE_YELLOW",
    "TYPE_PASSING_DOUBLE_YELLOW",
]
ROAD_EDGE_NAMES = ["TYPE_UNKNOWN", "TYPE_ROAD_EDGE_BOUNDARY", "TYPE_ROAD_EDGE_MEDIAN"]
DIFFICULTY_NAMES = ["NONE", "LEVEL_1", "LEVEL_2"]


# --------------------------------------------------------------------------- an independent wire walker


def varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def walk(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """``(field number, wire type, value)``: an int for varints, bytes otherwise."""
    pos = 0
    while pos < len(buf):
        key, pos = varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        value: Any
        if wire_type == 0:
            value, pos = varint(buf, pos)
        elif wire_type == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire_type == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        elif wire_type == 2:
            size, pos = varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise ValueError(f"wire type {wire_type}")
        yield number, wire_type, value


def int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def ints(wire_type: int, value: Any) -> list[int]:
    """A repeated varint field entry, packed or not."""
    if wire_type == 0:
        return [int64(value)]
    out, pos = [], 0
    while pos < len(value):
        v, pos = varint(value, pos)
        out.append(int64(v))
    return out


def point(buf: bytes) -> tuple[float, float, float]:
    xyz = [0.0, 0.0, 0.0]
    for number, _, value in walk(buf):
        if number in (1, 2, 3):
            xyz[number - 1] = struct.unpack("<d", value)[0]
    return (xyz[0], xyz[1], xyz[2])


STATE_DOUBLES = {2: "center_x", 3: "center_y", 4: "center_z"}
STATE_FLOATS = {5: "length", 6: "width", 7: "height", 8: "heading", 9: "velocity_x", 10: "velocity_y"}


@dataclass
class RawTrack:
    id: int = 0
    type: int = 0
    states: list[dict[str, float]] = field(default_factory=list)


@dataclass
class RawFeature:
    id: int = 0
    case: int = 0  # oneof field number: 3 lane, 4 road_line, 5 road_edge, 7 stop_sign, 8/9/10 polygons
    type: int = 0
    points: list[tuple[float, float, float]] = field(default_factory=list)
    related: list[tuple[str, int]] = field(default_factory=list)  # (relation name, other feature id)
    speed_limit_mph: float = 0.0  # LaneCenter field 1 (double)


@dataclass
class RawScenario:
    scenario_id: str = ""
    timestamps: list[float] = field(default_factory=list)
    current_time_index: int | None = None
    sdc: int | None = None
    tracks: list[RawTrack] = field(default_factory=list)
    features: list[RawFeature] = field(default_factory=list)
    lights: list[list[tuple[int, int, tuple[float, float, float] | None]]] = field(default_factory=list)
    to_predict: list[tuple[int, int]] = field(default_factory=list)
    of_interest: list[int] = field(default_factory=list)


def decode_track(buf: bytes) -> RawTrack:
    track = RawTrack()
    for number, _, value in walk(buf):
        if number == 1:
            track.id = int64(value)
        elif number == 2:
            track.type = value
        elif number == 3:
            state = {"valid": 0.0} | dict.fromkeys([*STATE_DOUBLES.values(), *STATE_FLOATS.values()], 0.0)
            for n, _, v in walk(value):
                if n in STATE_DOUBLES:
                    state[STATE_DOUBLES[n]] = struct.unpack("<d", v)[0]
                elif n in STATE_FLOATS:
                    state[STATE_FLOATS[n]] = struct.unpack("<f", v)[0]
                elif n == 11:
                    state["valid"] = float(v)
            track.states.append(state)
    return track


def decode_feature(buf: bytes) -> RawFeature:
    feature = RawFeature()
    for number, _, value in walk(buf):
        if number == 1:
            feature.id = int64(value)
            continue
        feature.case = number
        for n, wt, v in walk(value):
            if number == 3:  # LaneCenter
                if n == 1:
                    feature.speed_limit_mph = struct.unpack("<d", v)[0]
                elif n == 2:
                    feature.type = v
                elif n == 8:
                    feature.points.append(point(v))
                elif n in (9, 10):
                    name = "PREDECESSOR" if n == 9 else "SUCCESSOR"
                    feature.related += [(name, i) for i in ints(wt, v)]
                elif n in (11, 12):
                    other = next(int64(x) for m, _, x in walk(v) if m == 1)
                    feature.related.append(("LEFT_NEIGHBOR" if n == 11 else "RIGHT_NEIGHBOR", other))
                elif n in (13, 14):
                    other = next(int64(x) for m, _, x in walk(v) if m == 3)
                    feature.related.append(("LEFT_BOUNDARY" if n == 13 else "RIGHT_BOUNDARY", other))
            elif number in (4, 5):  # RoadLine, RoadEdge
                if n == 1:
                    feature.type = v
                elif n == 2:
                    feature.points.append(point(v))
            elif number == 7:  # StopSign
                if n == 1:
                    feature.related += [("CONTROLS", i) for i in ints(wt, v)]
                elif n == 2:
                    feature.points.append(point(v))
            elif n == 1:  # Crosswalk, SpeedBump, Driveway polygons
                feature.points.append(point(v))
    return feature


def decode_scenario(buf: bytes) -> RawScenario:
    raw = RawScenario()
    for number, wire_type, value in walk(buf):
        if number == 1:
            raw.timestamps += [x for (x,) in struct.iter_unpack("<d", value)]  # packed or not
        elif number == 2:
            raw.tracks.append(decode_track(value))
        elif number == 4:
            raw.of_interest += ints(wire_type, value)
        elif number == 5:
            raw.scenario_id = value.decode()
        elif number == 6:
            raw.sdc = value
        elif number == 7:
            step = []
            for _, _, lane_state in walk(value):
                lane, state, stop = 0, 0, None
                for n, _, v in walk(lane_state):
                    if n == 1:
                        lane = int64(v)
                    elif n == 2:
                        state = v
                    elif n == 3:
                        stop = point(v)
                step.append((lane, state, stop))
            raw.lights.append(step)
        elif number == 8:
            raw.features.append(decode_feature(value))
        elif number == 10:
            raw.current_time_index = value
        elif number == 11:
            fields = {n: v for n, _, v in walk(value)}
            raw.to_predict.append((fields.get(1, 0), fields.get(2, 0)))
    return raw


def first_payload(data: bytes) -> bytes:
    """The payload of a single-record TFRecord file, by its documented framing."""
    (length,) = struct.unpack_from("<Q", data, 0)
    return data[12 : 12 + length]


def masked_crc(data: bytes) -> int:
    crc = int(google_crc32c.value(data))
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def frame(payload: bytes) -> bytes:
    """One TFRecord with correct CRCs, computed here (not by the code under test)."""
    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", masked_crc(length)) + payload + struct.pack("<I", masked_crc(payload))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def scenario_path(samples: Path) -> Path:
    return sample_path(samples, SCENARIO_FILE)


@pytest.fixture(scope="module")
def raw(scenario_path: Path) -> RawScenario:
    return decode_scenario(first_payload(scenario_path.read_bytes()))


@pytest.fixture(scope="module")
def scenario(scenario_path: Path) -> Scenario:
    records = ADAPTER.read_all(scenario_path)
    assert len(records) == 1
    record = records[0]
    assert isinstance(record, Scenario)
    return record


# --------------------------------------------------------------------------- values on the sample


def test_walker_reads_the_facts_sources_md_states(raw: RawScenario) -> None:
    """Guards the independent walker itself before it judges the adapter."""
    assert raw.scenario_id == "637f20cafde22ff8"
    assert len(raw.timestamps) == 91
    assert len(raw.tracks) == 83
    assert sum(s["valid"] for t in raw.tracks for s in t.states) == 4596
    assert raw.sdc == 82
    assert len(raw.to_predict) == 3
    assert len(raw.features) == 301
    assert len(raw.lights) == 91
    assert raw.current_time_index == 10


def test_sample_matches_sources_md(scenario: Scenario) -> None:
    tr = scenario.tracks
    assert scenario.scenario_id == "637f20cafde22ff8"
    assert scenario.source == "waymo_open_motion"
    assert scenario.num_steps == 91
    assert scenario.dt_s == pytest.approx(0.1, abs=1e-3)
    assert (scenario.timestamps_ns[-1] - scenario.timestamps_ns[0]) / 1e9 == pytest.approx(9.0, abs=1e-2)
    assert tr.num_tracks == 83
    counts = np.bincount(tr.object_type, minlength=4)
    assert counts[ObjectType.VEHICLE] == 70
    assert counts[ObjectType.PEDESTRIAN] == 10
    assert counts[ObjectType.CYCLIST] == 3
    assert counts[ObjectType.OTHER] == 0
    assert int(tr.valid.sum()) == 4596
    assert scenario.ego_index == 82
    ego = scenario.ego_index
    ego_xy = tr.xy_m[ego][tr.valid[ego]]
    assert np.ptp(ego_xy, axis=0).max() < 0.5  # "the SDC is stationary"
    md = scenario.metadata
    assert md.frame == "waymo_scenario_global"
    assert md.extras["current_time_index"] == 10
    assert len(md.extras["tracks_to_predict"]) == 3
    assert md.provenance.member == ""
    m = scenario.map
    assert m is not None
    kinds = np.bincount(m.kind, minlength=len(MapFeatureKind))
    assert m.num_features == 301
    assert kinds[MapFeatureKind.LANE_CENTERLINE] == 199
    assert kinds[MapFeatureKind.LANE_BOUNDARY] == 59
    assert kinds[MapFeatureKind.ROAD_EDGE] == 28
    assert kinds[MapFeatureKind.STOP_SIGN] == 8
    assert kinds[MapFeatureKind.CROSSWALK] == 4
    assert kinds[MapFeatureKind.SPEED_BUMP] == 3
    assert scenario.traffic_lights is not None
    assert scenario.traffic_lights.state.shape[1] == 91


def test_timestamps_are_the_raw_seconds_in_ns(scenario: Scenario, raw: RawScenario) -> None:
    assert scenario.timestamps_ns.tolist() == [round(s * 1e9) for s in raw.timestamps]


def test_tracks_equal_the_raw_states(scenario: Scenario, raw: RawScenario) -> None:
    tr = scenario.tracks
    assert tr.track_ids.tolist() == [str(t.id) for t in raw.tracks]
    assert tr.category.tolist() == [OBJECT_TYPE_NAMES[t.type] for t in raw.tracks]
    coarse = {1: ObjectType.VEHICLE, 2: ObjectType.PEDESTRIAN, 3: ObjectType.CYCLIST}
    assert tr.object_type.tolist() == [coarse.get(t.type, ObjectType.OTHER) for t in raw.tracks]

    def column(name: str) -> np.ndarray[Any, Any]:
        return np.array([[s[name] for s in t.states] for t in raw.tracks])

    valid = column("valid").astype(bool)
    assert np.array_equal(tr.valid, valid)
    assert np.array_equal(tr.xy_m[..., 0][valid], column("center_x")[valid])
    assert np.array_equal(tr.xy_m[..., 1][valid], column("center_y")[valid])
    assert np.array_equal(tr.z_m[valid], column("center_z")[valid])
    assert np.array_equal(tr.heading_rad[valid], column("heading")[valid])
    assert np.array_equal(tr.velocity_mps[..., 0][valid], column("velocity_x")[valid])
    assert np.array_equal(tr.velocity_mps[..., 1][valid], column("velocity_y")[valid])
    assert np.isnan(tr.z_m[~valid]).all()
    assert np.isnan(tr.velocity_mps[~valid]).all()
    for i, t in enumerate(raw.tracks):
        steps = [s for s in t.states if s["valid"]]
        expected = [statistics.median(s[k] for s in steps) for k in ("length", "width", "height")]
        assert tr.size_m[i].tolist() == pytest.approx(expected, rel=1e-12), t.id


def test_map_equals_the_raw_features(scenario: Scenario, raw: RawScenario) -> None:
    m = scenario.map
    assert m is not None
    kind_of_case = {
        3: MapFeatureKind.LANE_CENTERLINE,
        4: MapFeatureKind.LANE_BOUNDARY,
        5: MapFeatureKind.ROAD_EDGE,
        7: MapFeatureKind.STOP_SIGN,
        8: MapFeatureKind.CROSSWALK,
        9: MapFeatureKind.SPEED_BUMP,
        10: MapFeatureKind.DRIVEWAY,
    }
    names = {3: LANE_TYPE_NAMES, 4: ROAD_LINE_NAMES, 5: ROAD_EDGE_NAMES}
    assert m.feature_ids.tolist() == [str(f.id) for f in raw.features]
    assert m.kind.tolist() == [kind_of_case[f.case] for f in raw.features]
    assert m.subtype.tolist() == [names[f.case][f.type] if f.case in names else "" for f in raw.features]
    assert np.diff(m.offsets).tolist() == [len(f.points) for f in raw.features]
    assert np.array_equal(m.xyz_m, np.array([p for f in raw.features for p in f.points]))
    stop_signs = [f for f in raw.features if f.case == 7]
    assert all(len(f.points) == 1 for f in stop_signs)
    ids = {f.id for f in raw.features}
    expected = {(f.id, rel, dst) for f in raw.features for rel, dst in f.related if dst in ids}
    got = {
        (int(m.feature_ids[s]), MapRelation(r).name, int(m.feature_ids[d]))
        for s, d, r in m.relations.tolist()
    }
    assert got == expected
    assert m.relations.shape[0] == len(expected)
    assert any(rel == "CONTROLS" for _, rel, _ in got)


def test_lane_speed_limits_are_the_raw_mph_in_mps(scenario: Scenario, raw: RawScenario) -> None:
    m = scenario.map
    assert m is not None
    mph = np.array([f.speed_limit_mph if f.case == 3 else 0.0 for f in raw.features])
    want = np.where(mph > 0, mph * 0.44704, np.nan)  # 1 mph = 0.44704 m/s exactly; 0 is proto3's "unset"
    assert (mph > 0).sum() > 100  # the sample's lanes do carry limits
    np.testing.assert_allclose(m.speed_limits(), want, rtol=1e-12)


def test_traffic_lights_equal_the_raw_dynamic_states(scenario: Scenario, raw: RawScenario) -> None:
    tl = scenario.traffic_lights
    assert tl is not None
    lanes = sorted({lane for step in raw.lights for lane, _, _ in step})
    assert tl.lane_ids.tolist() == [str(lane) for lane in lanes]
    row = {lane: i for i, lane in enumerate(lanes)}
    state = np.zeros((len(lanes), 91), dtype=np.int8)
    valid = np.zeros((len(lanes), 91), dtype=bool)
    stop = np.full((len(lanes), 3), np.nan)
    for t, step in enumerate(raw.lights):
        for lane, code, stop_point in step:
            state[row[lane], t] = code
            valid[row[lane], t] = True
            if stop_point is not None and np.isnan(stop[row[lane]]).all():
                stop[row[lane]] = stop_point
    assert np.array_equal(tl.state, state)
    assert np.array_equal(tl.valid, valid)
    assert np.array_equal(tl.stop_point_m, stop, equal_nan=True)
    assert (tl.state == 4).any()  # LANE_STATE_STOP is seen in this scenario


def test_extras_name_prediction_targets(scenario: Scenario, raw: RawScenario) -> None:
    extras = scenario.metadata.extras
    assert extras["scenario_id"] == raw.scenario_id
    assert extras["sdc_track_index"] == raw.sdc
    assert extras["objects_of_interest"] == [str(i) for i in raw.of_interest]
    assert extras["tracks_to_predict"] == [
        {"track_id": str(raw.tracks[i].id), "track_index": i, "difficulty": DIFFICULTY_NAMES[d]}
        for i, d in raw.to_predict
    ]


def test_inspect_json_matches_the_raw_record(scenario_path: Path, raw: RawScenario) -> None:
    lines = run_inspect_json(scenario_path, timeout_s=120)
    assert len(lines) == 1
    summary = lines[0]
    valid_states = [s for t in raw.tracks for s in t.states if s["valid"]]
    type_names = {1: "vehicle", 2: "pedestrian", 3: "cyclist"}
    type_counts = dict.fromkeys(["vehicle", "cyclist", "pedestrian", "other"], 0)
    for t in raw.tracks:
        type_counts[type_names.get(t.type, "other")] += 1
    ns = [round(s * 1e9) for s in raw.timestamps]
    assert raw.sdc is not None
    assert summary == {
        "scenario_id": "637f20cafde22ff8",
        "source": "waymo_open_motion",
        "num_tracks": 83,
        "num_steps": 91,
        "dt_s": round(statistics.median(b - a for a, b in itertools.pairwise(ns)) / 1e9, 9),
        "num_valid_states": 4596,
        "track_type_counts": type_counts,
        "ego_track_id": str(raw.tracks[raw.sdc].id),
        "num_map_lanes": 199,
        "xy_sum_m": pytest.approx(math.fsum(s["center_x"] + s["center_y"] for s in valid_states), rel=1e-12),
    }


def test_arrow_round_trip_is_lossless(scenario: Scenario) -> None:
    assert_arrow_round_trip([scenario])


def test_registry_routes_tfrecords_here(scenario_path: Path, tmp_path: Path) -> None:
    assert DEFAULT_REGISTRY.detect(scenario_path) is DEFAULT_REGISTRY.get("waymo_open_motion")
    shard = tmp_path / "training.tfrecord-00000-of-01000"
    shard.write_bytes(b"")
    assert ADAPTER.claims(shard)
    other = tmp_path / "scenario.parquet"
    other.write_bytes(b"PAR1")
    assert not ADAPTER.claims(other)
    assert not ADAPTER.claims(tmp_path)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("relative", "phrase"),
    [
        (EXAMPLE_FILE, "a tf.Example (WOMD tf.Example format), not a Scenario proto"),
        (FRAME_FILE, "perception Frame (segment '1024360143612057520_3580_000_3600_000'), not a Scenario"),
    ],
    ids=["womd-tf-example", "perception-frame"],
)
def test_other_waymo_tfrecords_are_unsupported_with_a_reason(
    samples: Path, relative: Path, phrase: str
) -> None:
    path = samples / relative
    with pytest.raises(UnsupportedFormatError) as info:
        ADAPTER.read_all(path)
    assert info.value.path == str(path)
    assert phrase in info.value.reason


@pytest.mark.parametrize("name", ["scenario.bin", "scenario.pb", "tfrecord"], ids=["bin", "pb", "no-dot"])
def test_wrong_extension_is_unsupported(scenario_path: Path, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(scenario_path.read_bytes())
    with pytest.raises(UnsupportedFormatError, match="not a TFRecord file"):
        ADAPTER.read_all(path)


@pytest.mark.parametrize("where", ["payload-start", "payload-middle", "payload-crc"], ids=str)
def test_flipped_payload_byte_is_a_crc_error(scenario_path: Path, tmp_path: Path, where: str) -> None:
    data = bytearray(scenario_path.read_bytes())
    position = {"payload-start": 12, "payload-middle": len(data) // 2, "payload-crc": len(data) - 2}[where]
    data[position] ^= 0x01
    path = tmp_path / "flipped.tfrecord"
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError) as info:
        ADAPTER.read_all(path)
    assert "CRC" in info.value.reason
    assert "record 0 at byte 0" in info.value.reason
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "cut", [3, 12, 500_000, -5, -1], ids=["header", "after-header", "payload", "crc", "last"]
)
def test_truncated_file_is_corrupt(scenario_path: Path, tmp_path: Path, cut: int) -> None:
    path = tmp_path / "cut.tfrecord"
    path.write_bytes(scenario_path.read_bytes()[:cut])
    with pytest.raises(CorruptFileError, match="truncated"):
        ADAPTER.read_all(path)


def test_empty_file_is_an_empty_log(tmp_path: Path) -> None:
    path = tmp_path / "empty.tfrecord"
    path.write_bytes(b"")
    with pytest.raises(EmptyLogError):
        ADAPTER.read_all(path)


@pytest.mark.parametrize(
    ("payload", "error", "phrase"),
    [
        (b"", EmptyLogError, "empty"),
        (b"\xff\xff\xff\xff", CorruptFileError, "not a protobuf message"),
        (b"\x0b\x0c", CorruptFileError, "not a protobuf message"),
        (b"\x0a\x05abc", CorruptFileError, "not a protobuf message"),
        (b"\x10\x05", CorruptFileError, "field 2 has wire type 0"),
        (b"\x12\x00", CorruptFileError, "no scenario_id"),
        (b"\x2a\x03abc", EmptyLogError, "no timestamps"),
        (b"\x2a\x02\xff\xfe\x09" + bytes(8), CorruptFileError, "scenario_id is not UTF-8"),
        (b"\x2a\x00\x09" + bytes(8), InvalidValueError, "empty scenario_id"),
        (random.Random(7).randbytes(300), InputError, ""),
    ],
    ids=[
        "zero-bytes",
        "bad-varint",
        "group",
        "past-end",
        "tracks-as-varint",
        "no-id",
        "only-id",
        "bad-utf8",
        "empty-id",
        "random",
    ],
)
def test_garbage_with_valid_crcs(
    tmp_path: Path, payload: bytes, error: type[InputError], phrase: str
) -> None:
    path = tmp_path / "garbage.tfrecord"
    path.write_bytes(frame(payload))
    with pytest.raises(error) as info:
        ADAPTER.read_all(path)
    assert phrase in info.value.reason
    assert info.value.path == str(path)


# --------------------------------------------------------------------------- synthetic records


def synthetic(scenario_id: str = "synthetic-1", num_steps: int = 5) -> scenario_pb2.Scenario:
    """A small Scenario with every map feature kind and a light without a stop point."""
    msg = scenario_pb2.Scenario(scenario_id=scenario_id, current_time_index=1, sdc_track_index=0)
    msg.timestamps_seconds.extend(0.1 * i for i in range(num_steps))
    for track_id, object_type in [(7, 1), (8, 2), (9, 0), (10, 4)]:
        track = msg.tracks.add(id=track_id, object_type=object_type)
        for t in range(num_steps):
            valid = not (track_id == 9 and t % 2 == 0)
            track.states.add(
                center_x=track_id + t, center_y=-t, center_z=1.0, length=4.0 + t, width=2.0, height=1.5,
                heading=0.5, velocity_x=1.0, velocity_y=0.0, valid=valid,
            )  # fmt: skip
    msg.objects_of_interest.extend([7, 8])
    msg.tracks_to_predict.add(track_index=1, difficulty=2)
    lane = msg.map_features.add(id=100).lane
    lane.type = map_pb2.LaneCenter.TYPE_SURFACE_STREET
    lane.polyline.add(x=0.0, y=0.0, z=0.0)
    lane.polyline.add(x=1.0, y=0.0, z=0.0)
    lane.exit_lanes.extend([101, 999])  # 999 lies outside the crop
    lane.left_neighbors.add(feature_id=101)
    lane.left_boundaries.add(boundary_feature_id=200)
    lane2 = msg.map_features.add(id=101).lane
    lane2.polyline.add(x=1.0, y=0.0, z=0.0)
    lane2.entry_lanes.append(100)
    line = msg.map_features.add(id=200).road_line
    line.type = map_pb2.RoadLine.TYPE_SOLID_DOUBLE_YELLOW
    line.polyline.add(x=0.0, y=1.0, z=0.0)
    msg.map_features.add(id=300).stop_sign.lane.extend([100, 101])
    msg.map_features[-1].stop_sign.position.x = 5.0
    msg.map_features.add(id=400).driveway.polygon.add(x=3.0, y=3.0, z=0.0)
    msg.map_features.add(id=500)  # no payload at all
    for t in range(num_steps):
        step = msg.dynamic_map_states.add()
        if t >= 2:
            step.lane_states.add(lane=100, state=6)
        step.lane_states.add(lane=101, state=4).stop_point.x = 2.0
    return msg


def test_synthetic_record_decodes_every_feature_kind(tmp_path: Path) -> None:
    path = tmp_path / "synthetic.tfrecord"
    path.write_bytes(frame(synthetic().SerializeToString()))
    (s,) = ADAPTER.read_all(path)
    assert isinstance(s, Scenario)
    assert s.tracks.object_type.tolist() == [0, 2, 3, 3]
    assert s.tracks.category.tolist() == ["TYPE_VEHICLE", "TYPE_PEDESTRIAN", "TYPE_UNSET", "TYPE_OTHER"]
    assert s.tracks.valid[2].tolist() == [False, True, False, True, False]
    assert s.tracks.size_m[0].tolist() == [6.0, 2.0, 1.5]  # median length over 4, 5, 6, 7, 8
    assert s.tracks.size_m[2].tolist() == [6.0, 2.0, 1.5]  # median over the valid steps 1 and 3 only
    m = s.map
    assert m is not None
    assert m.kind.tolist() == [
        0,
        0,
        1,
        MapFeatureKind.STOP_SIGN,
        MapFeatureKind.DRIVEWAY,
        MapFeatureKind.OTHER,
    ]
    assert m.subtype.tolist() == [
        "TYPE_SURFACE_STREET",
        "TYPE_UNDEFINED",
        "TYPE_SOLID_DOUBLE_YELLOW",
        "",
        "",
        "",
    ]
    assert m.points(3).tolist() == [[5.0, 0.0, 0.0]]
    rel = {
        (str(m.feature_ids[a]), MapRelation(r).name, str(m.feature_ids[b]))
        for a, b, r in m.relations.tolist()
    }
    assert rel == {
        ("100", "SUCCESSOR", "101"),
        ("100", "LEFT_NEIGHBOR", "101"),
        ("100", "LEFT_BOUNDARY", "200"),
        ("101", "PREDECESSOR", "100"),
        ("300", "CONTROLS", "100"),
        ("300", "CONTROLS", "101"),
    }
    tl = s.traffic_lights
    assert tl is not None
    assert tl.lane_ids.tolist() == ["100", "101"]
    assert tl.valid.tolist() == [[False, False, True, True, True], [True] * 5]
    assert tl.state.tolist() == [[0, 0, 6, 6, 6], [4] * 5]
    assert np.isnan(tl.stop_point_m[0]).all()
    assert tl.stop_point_m[1].tolist() == [2.0, 0.0, 0.0]
    assert s.metadata.extras["tracks_to_predict"] == [
        {"track_id": "8", "track_index": 1, "difficulty": "LEVEL_2"}
    ]
    assert s.metadata.extras["objects_of_interest"] == ["7", "8"]


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_multi_record_file_yields_one_scenario_per_record(tmp_path: Path, compressed: bool) -> None:
    import gzip

    data = b"".join(frame(synthetic(f"s{i}").SerializeToString()) for i in range(3))
    path = tmp_path / "shard.tfrecord-00000-of-00001"
    path.write_bytes(gzip.compress(data) if compressed else data)
    records = ADAPTER.read_all(path)
    assert [r.scenario_id for r in records if isinstance(r, Scenario)] == ["s0", "s1", "s2"]
    assert [r.metadata.provenance.member for r in records if isinstance(r, Scenario)] == [
        "record 0",
        "record 1",
        "record 2",
    ]


def break_states(msg: scenario_pb2.Scenario) -> None:
    del msg.tracks[1].states[-1]


def duplicate_track_id(msg: scenario_pb2.Scenario) -> None:
    msg.tracks[1].id = 7


def nan_position(msg: scenario_pb2.Scenario) -> None:
    msg.tracks[1].states[2].center_x = float("nan")


def sdc_out_of_range(msg: scenario_pb2.Scenario) -> None:
    msg.sdc_track_index = 4


def sdc_is_pedestrian(msg: scenario_pb2.Scenario) -> None:
    msg.sdc_track_index = 1


def backwards_time(msg: scenario_pb2.Scenario) -> None:
    msg.timestamps_seconds[3] = 0.0


def nan_time(msg: scenario_pb2.Scenario) -> None:
    msg.timestamps_seconds[3] = float("inf")


def target_out_of_range(msg: scenario_pb2.Scenario) -> None:
    msg.tracks_to_predict.add(track_index=40)


def too_many_light_steps(msg: scenario_pb2.Scenario) -> None:
    msg.dynamic_map_states.add()


def duplicate_map_id(msg: scenario_pb2.Scenario) -> None:
    msg.map_features[1].id = 100


def negative_size(msg: scenario_pb2.Scenario) -> None:
    for state in msg.tracks[0].states:
        state.width = -2.0


BREAKAGES = [
    (break_states, "has 4 states, but the scenario has 5 timestamps"),
    (duplicate_track_id, "track ids are not unique"),
    (nan_position, "NaN"),
    (sdc_out_of_range, "sdc_track_index 4"),
    (sdc_is_pedestrian, "ego track must be a vehicle"),
    (backwards_time, "not strictly increasing"),
    (nan_time, "timestamps_seconds"),
    (target_out_of_range, "tracks_to_predict"),
    (too_many_light_steps, "dynamic_map_states"),
    (duplicate_map_id, "map feature ids are not unique"),
    (negative_size, "size"),
]


@pytest.mark.parametrize(("breakage", "phrase"), BREAKAGES, ids=[b.__name__ for b, _ in BREAKAGES])
def test_impossible_values_are_invalid(tmp_path: Path, breakage: Any, phrase: str) -> None:
    msg = synthetic()
    breakage(msg)
    path = tmp_path / "broken.tfrecord"
    path.write_bytes(frame(msg.SerializeToString()))
    with pytest.raises(InvalidValueError) as info:
        ADAPTER.read_all(path)
    assert phrase in info.value.reason
    assert info.value.path == str(path)


# --------------------------------------------------------------------------- fuzz


FUZZ = settings(INNER_FUZZ, max_examples=30, deadline=5000)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("waymo_fuzz")


@pytest.fixture(scope="module")
def sample_bytes(samples: Path) -> dict[str, bytes]:
    return {
        "scenario": (samples / SCENARIO_FILE).read_bytes(),
        "tf_example": (samples / EXAMPLE_FILE).read_bytes(),
        "frame": (samples / FRAME_FILE).read_bytes(),
        "synthetic": frame(synthetic().SerializeToString()),
    }


@pytest.mark.parametrize("kind", ["scenario", "tf_example", "frame", "synthetic"], ids=str)
def test_fuzz_raw_file_bytes(sample_bytes: dict[str, bytes], fuzz_dir: Path, kind: str) -> None:
    """Mutations of the framed file: mostly CRC and truncation errors."""
    path = fuzz_dir / f"raw_{kind}.tfrecord"

    @seed(20261124)
    @FUZZ
    @given(data=mutations(sample_bytes[kind]))
    def check(data: bytes) -> None:
        path.write_bytes(data)
        assert_reads_or_refuses(ADAPTER, path)

    check()


@pytest.mark.parametrize(
    ("kind", "examples"),
    [("scenario", 60), ("tf_example", 10), ("frame", 10), ("synthetic", 300)],
    ids=["scenario", "tf_example", "frame", "synthetic"],
)
def test_fuzz_payload_reframed_with_valid_crcs(
    sample_bytes: dict[str, bytes], fuzz_dir: Path, kind: str, examples: int
) -> None:
    """Mutations of the payload, framed with correct CRCs, so the proto decoder sees them."""
    path = fuzz_dir / f"payload_{kind}.tfrecord"

    @seed(20261125)
    @settings(FUZZ, max_examples=examples)
    @given(payload=mutations(first_payload(sample_bytes[kind])))
    def check(payload: bytes) -> None:
        path.write_bytes(frame(payload))
        assert_reads_or_refuses(ADAPTER, path)

    check()
