"""Waymo Open Motion Dataset (WOMD) ``Scenario`` TFRecords, read without TensorFlow.

A WOMD file (``training.tfrecord-00000-of-01000``, or one-scenario test files)
is a TFRecord stream whose every record is a serialized
``waymo.open_dataset.Scenario`` proto. Each record becomes one
:class:`~datadrive.core.scenario.Scenario`:

* time: ``timestamps_seconds`` rounded to integer nanoseconds, ~10 Hz, 91 steps
  (1.1 s history, the current step at ``current_time_index``, 8 s future);
* tracks: every ``Track`` in file order; the ego is ``sdc_track_index``;
  ``TYPE_VEHICLE``/``PEDESTRIAN``/``CYCLIST`` map to the coarse types of the same
  name and ``TYPE_OTHER``/``TYPE_UNSET`` to ``other``; ``category`` keeps Waymo's
  enum name. ``size_m`` is the per-track **median** over valid steps of the box
  length/width/height (Waymo stores a box per step; the median ignores the odd
  mis-sized box);
* map: lanes, road lines, road edges, stop signs (a point, CONTROLS the lanes
  it lists), crosswalks, speed bumps and driveways, with lane topology
  (entry/exit lanes, left/right neighbours, left/right boundaries); a lane's
  ``speed_limit_mph`` becomes ``speed_limit_mps`` (0, proto3's "unset", is unknown);
* traffic lights: ``dynamic_map_states`` as one row per lane seen at any step;
* extras: ``scenario_id``, ``current_time_index``, ``sdc_track_index``,
  ``tracks_to_predict`` (track id, index, difficulty), ``objects_of_interest``
  and ``lane_speed_limits_mps`` (lane feature id -> the lane's posted limit,
  ``speed_limit_mph`` converted to m/s, for lanes that state one).

Positions are metres in the scenario's global frame (an arbitrary origin per
region), named ``waymo_scenario_global``.

Records that are not Scenarios (the WOMD ``tf.Example`` release, perception
``Frame`` files, which share the ``.tfrecord`` extension) are recognised from
their wire structure and rejected with
:class:`~datadrive.errors.UnsupportedFormatError`.

Speed: protobuf's Python API gives no column access to repeated *message*
fields, so per-state values are pulled with ``map(attrgetter(...))`` straight
into ``np.fromiter``: the only per-state work is protobuf's own attribute
access, done from C, never a Python loop body. Repeated scalar fields
(timestamps, lane ids) are read column-wise.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence
from operator import attrgetter, methodcaller
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from datadrive.core.scenario import (
    MapBuilder,
    MapFeatureKind,
    MapFeatures,
    MapRelation,
    ObjectType,
    Scenario,
    Tracks,
    TrafficLights,
)
from datadrive.core.typing import NDArrayAny, NDArrayFloat, NDArrayInt, NDArrayStr
from datadrive.errors import CorruptFileError, EmptyLogError, InvalidValueError, UnsupportedFormatError
from datadrive.sources.base import Adapter, Record, file_sha256
from datadrive.sources.tfrecord import TFRecord, iter_tfrecords

if TYPE_CHECKING:  # imported where a file is read (lazy adapter imports, see datadrive.sources)
    from datadrive.sources.waymo_protos import map_pb2, scenario_pb2

__all__ = ["WaymoMotionAdapter", "describe_non_scenario"]

FRAME = "waymo_scenario_global"

# Track.ObjectType code -> coarse type; Waymo's enum is closed (0..4), so this covers every value.
_COARSE_TYPE = np.array(
    [ObjectType.OTHER, ObjectType.VEHICLE, ObjectType.PEDESTRIAN, ObjectType.CYCLIST, ObjectType.OTHER],
    dtype=np.uint8,
)


@functools.cache
def _type_names() -> NDArrayStr:
    """``(5,)`` Waymo's Track.ObjectType names, by code."""
    from datadrive.sources.waymo_protos import scenario_pb2

    return np.array([scenario_pb2.Track.ObjectType.Name(i) for i in range(len(_COARSE_TYPE))])


_STATE_FIELDS = (
    "center_x",
    "center_y",
    "center_z",
    "length",
    "width",
    "height",
    "heading",
    "velocity_x",
    "velocity_y",
)
_STATE_DTYPE = np.dtype([(name, np.float64) for name in _STATE_FIELDS] + [("valid", np.bool_)])
_get_state = attrgetter(*_STATE_FIELDS, "valid")
_get_states = attrgetter("states")
_get_id = attrgetter("id")
_get_object_type = attrgetter("object_type")
_get_xyz = attrgetter("x", "y", "z")
_XYZ_DTYPE = np.dtype((np.float64, 3))

_LANE_STATE_DTYPE = np.dtype(
    [("lane", np.int64), ("state", np.int64), ("x", np.float64), ("y", np.float64), ("z", np.float64)]
)
_get_lane_state = attrgetter("lane", "state", "stop_point.x", "stop_point.y", "stop_point.z")
_get_lane_states = attrgetter("lane_states")
_has_stop_point = methodcaller("HasField", "stop_point")

# MapFeature oneof case -> (kind, field holding its points; the stop sign's is one optional point).
_MAP_KINDS: dict[str, tuple[MapFeatureKind, str]] = {
    "lane": (MapFeatureKind.LANE_CENTERLINE, "polyline"),
    "road_line": (MapFeatureKind.LANE_BOUNDARY, "polyline"),
    "road_edge": (MapFeatureKind.ROAD_EDGE, "polyline"),
    "stop_sign": (MapFeatureKind.STOP_SIGN, "position"),
    "crosswalk": (MapFeatureKind.CROSSWALK, "polygon"),
    "speed_bump": (MapFeatureKind.SPEED_BUMP, "polygon"),
    "driveway": (MapFeatureKind.DRIVEWAY, "polygon"),
}


@functools.cache
def _subtype_enums() -> dict[str, Any]:
    """MapFeature oneof case -> the enum naming its subtype."""
    from datadrive.sources.waymo_protos import map_pb2

    return {
        "lane": map_pb2.LaneCenter.LaneType,
        "road_line": map_pb2.RoadLine.RoadLineType,
        "road_edge": map_pb2.RoadEdge.RoadEdgeType,
    }


# Scenario field number -> wire types a writer may use (repeated scalars packed or not).
_SCENARIO_WIRE_TYPES: dict[int, tuple[int, ...]] = {
    1: (1, 2),  # timestamps_seconds
    2: (2,),  # tracks
    4: (0, 2),  # objects_of_interest
    5: (2,),  # scenario_id
    6: (0,),  # sdc_track_index
    7: (2,),  # dynamic_map_states
    8: (2,),  # map_features
    10: (0,),  # current_time_index
    11: (2,),  # tracks_to_predict
    12: (2,),  # compressed_frame_laser_data (not decoded)
    13: (2,),  # frame_camera_tokens (not decoded)
}
_WOMD_EXAMPLE_PREFIXES = ("state/", "roadgraph_samples/", "traffic_light_state/", "scenario/")
_MAX_TIMESTAMP_S = 9.2e9  # int64 nanoseconds overflow past ~292 years


class WaymoMotionAdapter(Adapter):
    """Waymo Open Motion Dataset ``Scenario`` TFRecord files (one Scenario per record)."""

    name: ClassVar[str] = "waymo_open_motion"
    version: ClassVar[str] = "2"  # 2: lane speed limits in extras
    unit: ClassVar[Literal["file", "dir"]] = "file"
    licence: ClassVar[str] = "Waymo Dataset License Agreement for Non-Commercial Use"
    download_hint: ClassVar[str] = (
        "https://waymo.com/open/download (Motion dataset, uncompressed/scenario/*.tfrecord-*)"
    )

    def claims(self, path: Path) -> bool:
        return ".tfrecord" in path.name.lower() and path.is_file()

    def _read(self, path: Path) -> Iterator[Record]:
        if not self.claims(path):
            raise UnsupportedFormatError(path, "not a TFRecord file (expected a name containing '.tfrecord')")
        records = iter_tfrecords(path)
        first = next(records, None)
        if first is None:
            raise EmptyLogError(path, "the TFRecord file holds no records")
        second = next(records, None)  # one record of look-ahead: a single-record file has member ""
        sha256 = file_sha256(path)
        ahead = [first] if second is None else [first, second]
        for record in itertools.chain(ahead, records):
            member = "" if second is None else f"record {record.index}"
            yield self._scenario(path, sha256, record, member)

    def _scenario(self, path: Path, sha256: str, record: TFRecord, member: str) -> Scenario:
        where = f"record {record.index} at byte {record.offset}"
        msg = _parse_scenario(path, record, where)
        timestamps_ns = _timestamps_ns(path, msg, where)
        tracks = _tracks(path, msg, timestamps_ns.shape[0], where)
        ego_index: int | None = None
        if msg.HasField("sdc_track_index"):
            ego_index = int(msg.sdc_track_index)
            if not 0 <= ego_index < tracks.num_tracks:
                raise InvalidValueError(
                    path, f"{where}: sdc_track_index {ego_index} is outside the {tracks.num_tracks} tracks"
                )
        extras = _extras(path, msg, tracks, ego_index, where)
        return Scenario(
            scenario_id=msg.scenario_id,
            source=self.name,
            timestamps_ns=timestamps_ns,
            tracks=tracks,
            metadata=self.metadata(path, sha256, frame=FRAME, member=member, extras=extras),
            map=_map(path, msg, where),
            ego_index=ego_index,
            traffic_lights=_traffic_lights(path, msg, timestamps_ns.shape[0], where),
        )


# --------------------------------------------------------------------------- decoding


def _parse_scenario(path: Path, record: TFRecord, where: str) -> scenario_pb2.Scenario:
    """The record as a Scenario message, after checking it is shaped like one."""
    from google.protobuf.message import DecodeError

    from datadrive.sources.waymo_protos import scenario_pb2

    payload = record.payload
    if not payload:
        raise EmptyLogError(path, f"{where} is empty (0 bytes)")
    try:
        fields = _wire_fields(payload, 0, len(payload))
    except _WireError as exc:
        raise CorruptFileError(path, f"{where} is not a protobuf message ({exc})") from None
    other = describe_non_scenario(payload, fields)
    if other is not None:
        raise UnsupportedFormatError(path, f"{where} is {other}")
    for number, wire_type, _, _ in fields:
        expected = _SCENARIO_WIRE_TYPES.get(number)
        if expected is not None and wire_type not in expected:
            raise CorruptFileError(
                path, f"{where} does not decode as a Waymo Scenario: field {number} has wire type {wire_type}"
            )
    if not any(number == 5 for number, *_ in fields):
        raise CorruptFileError(path, f"{where} does not decode as a Waymo Scenario: it has no scenario_id")
    msg = scenario_pb2.Scenario()
    try:
        msg.ParseFromString(payload)
    except DecodeError as exc:
        raise CorruptFileError(path, f"{where} does not decode as a Waymo Scenario ({exc})") from None
    scenario_id: object = msg.scenario_id  # proto2 strings are not UTF-8 checked: upb hands back bytes
    if not isinstance(scenario_id, str):
        raise CorruptFileError(path, f"{where} does not decode as a Waymo Scenario: scenario_id is not UTF-8")
    if not scenario_id:
        raise InvalidValueError(path, f"{where} has an empty scenario_id")
    return msg


def _timestamps_ns(path: Path, msg: scenario_pb2.Scenario, where: str) -> NDArrayInt:
    """``(T,)`` int64 ns from ``timestamps_seconds``, rounded to the nearest ns."""
    n = len(msg.timestamps_seconds)
    if n == 0:
        raise EmptyLogError(path, f"{where} (scenario {msg.scenario_id!r}) has no timestamps")
    seconds = np.fromiter(msg.timestamps_seconds, dtype=np.float64, count=n)
    if not np.all(np.isfinite(seconds) & (np.abs(seconds) < _MAX_TIMESTAMP_S)):
        raise InvalidValueError(path, f"{where}: timestamps_seconds holds a NaN, infinite or absurd value")
    return np.rint(seconds * 1e9).astype(np.int64)


def _tracks(path: Path, msg: scenario_pb2.Scenario, num_steps: int, where: str) -> Tracks:
    """Every track of the record, ``(A, T)`` states decoded column by column."""
    protos = msg.tracks
    a, t = len(protos), num_steps
    ids = np.fromiter(map(_get_id, protos), dtype=np.int64, count=a)
    track_ids = ids.astype(np.str_)
    if np.unique(ids).shape[0] != a:
        raise InvalidValueError(path, f"{where}: track ids are not unique")
    lengths = np.fromiter(map(len, map(_get_states, protos)), dtype=np.int64, count=a)
    short = np.flatnonzero(lengths != t)
    if short.shape[0]:
        i = int(short[0])
        raise InvalidValueError(
            path,
            f"{where}: track {track_ids[i]} has {lengths[i]} states, but the scenario has {t} timestamps",
        )
    codes = np.fromiter(map(_get_object_type, protos), dtype=np.int64, count=a)
    codes = np.where((codes >= 0) & (codes < _COARSE_TYPE.shape[0]), codes, 0)
    states = np.fromiter(
        map(_get_state, itertools.chain.from_iterable(map(_get_states, protos))),
        dtype=_STATE_DTYPE,
        count=a * t,
    ).reshape(a, t)
    valid = states["valid"]
    xy = np.stack([states["center_x"], states["center_y"]], axis=-1)
    velocity = np.stack([states["velocity_x"], states["velocity_y"]], axis=-1)
    dims = np.stack([states["length"], states["width"], states["height"]], axis=-1)
    return Tracks(
        track_ids=track_ids,
        object_type=_COARSE_TYPE[codes],
        category=_type_names()[codes],
        xy_m=np.where(valid[..., None], xy, 0.0),
        z_m=np.where(valid, states["center_z"], np.nan),
        heading_rad=np.where(valid, states["heading"], 0.0),
        velocity_mps=np.where(valid[..., None], velocity, np.nan),
        size_m=_median_size(dims, valid),
        valid=valid,
    )


def _median_size(dims: NDArrayFloat, valid: NDArrayAny) -> NDArrayFloat:
    """``(A, 3)`` per-track median of ``dims (A, T, 3)`` over valid steps with finite boxes; NaN if none."""
    usable = valid & np.all(np.isfinite(dims), axis=-1)
    size = np.full((dims.shape[0], 3), np.nan, dtype=np.float64)
    has = np.any(usable, axis=1)
    if np.any(has):
        size[has] = np.nanmedian(np.where(usable[..., None], dims, np.nan)[has], axis=1)
    return size


def _extras(
    path: Path, msg: scenario_pb2.Scenario, tracks: Tracks, ego_index: int | None, where: str
) -> dict[str, Any]:
    from datadrive.sources.waymo_protos import scenario_pb2

    to_predict = []
    for required in msg.tracks_to_predict:
        index = int(required.track_index)
        if not 0 <= index < tracks.num_tracks:
            raise InvalidValueError(
                path,
                f"{where}: tracks_to_predict names track {index}, outside the {tracks.num_tracks} tracks",
            )
        to_predict.append(
            {
                "track_id": str(tracks.track_ids[index]),
                "track_index": index,
                "difficulty": scenario_pb2.RequiredPrediction.DifficultyLevel.Name(required.difficulty),
            }
        )
    return {
        "scenario_id": msg.scenario_id,
        "current_time_index": int(msg.current_time_index) if msg.HasField("current_time_index") else None,
        "sdc_track_index": ego_index,
        "tracks_to_predict": to_predict,
        "objects_of_interest": [str(i) for i in msg.objects_of_interest],
        "lane_speed_limits_mps": _speed_limits(msg),
    }


_MPH = 0.44704


def _speed_limits(msg: scenario_pb2.Scenario) -> dict[str, float]:
    """Lane id -> posted speed limit in m/s, for lanes whose ``speed_limit_mph`` is positive."""
    out: dict[str, float] = {}
    for feature in msg.map_features:
        if feature.WhichOneof("feature_data") == "lane":
            mph = float(feature.lane.speed_limit_mph)
            if mph > 0 and mph < 200:
                out[str(_get_id(feature))] = round(mph * _MPH, 6)
    return out


def _map(path: Path, msg: scenario_pb2.Scenario, where: str) -> MapFeatures | None:
    """The static map, or ``None`` when the record has no map features."""
    features = msg.map_features
    if not features:
        return None
    ids = np.fromiter(map(_get_id, features), dtype=np.int64, count=len(features))
    if np.unique(ids).shape[0] != ids.shape[0]:
        raise InvalidValueError(path, f"{where}: map feature ids are not unique")
    feature_ids = ids.astype(np.str_).tolist()
    cases: list[str | None] = [f.WhichOneof("feature_data") for f in features]
    point_lists: list[Sequence[map_pb2.MapPoint]] = []
    for feature, case in zip(features, cases, strict=True):
        if case is None:
            point_lists.append(())
        elif case == "stop_sign":
            sign = feature.stop_sign
            point_lists.append((sign.position,) if sign.HasField("position") else ())
        else:
            point_lists.append(getattr(getattr(feature, case), _MAP_KINDS[case][1]))
    counts = np.fromiter(map(len, point_lists), dtype=np.int64, count=len(point_lists))
    xyz: NDArrayFloat = np.fromiter(
        map(_get_xyz, itertools.chain.from_iterable(point_lists)), dtype=_XYZ_DTYPE, count=int(counts.sum())
    )
    ends = np.cumsum(counts)
    builder = MapBuilder()
    relations: dict[
        tuple[str, MapRelation, str], None
    ] = {}  # ordered set: a neighbour may repeat per segment
    for i, (feature, case, fid) in enumerate(zip(features, cases, feature_ids, strict=True)):
        kind = _MAP_KINDS[case][0] if case is not None else MapFeatureKind.OTHER
        enum = _subtype_enums().get(case or "")
        payload = getattr(feature, case) if case is not None else None
        subtype = enum.Name(payload.type) if enum is not None and payload is not None else ""
        # speed_limit_mph: proto3's default 0 means "not set"
        limit = float(payload.speed_limit_mph) * _MPH if case == "lane" and payload is not None else 0.0
        builder.add(
            fid,
            kind,
            xyz[ends[i] - counts[i] : ends[i]],
            subtype=subtype,
            speed_limit_mps=limit if 0.0 < limit < 200.0 else float("nan"),
        )
        if case == "lane" and payload is not None:
            for rel, dst_ids in (
                (MapRelation.PREDECESSOR, payload.entry_lanes),
                (MapRelation.SUCCESSOR, payload.exit_lanes),
                (MapRelation.LEFT_NEIGHBOR, [n.feature_id for n in payload.left_neighbors]),
                (MapRelation.RIGHT_NEIGHBOR, [n.feature_id for n in payload.right_neighbors]),
                (MapRelation.LEFT_BOUNDARY, [b.boundary_feature_id for b in payload.left_boundaries]),
                (MapRelation.RIGHT_BOUNDARY, [b.boundary_feature_id for b in payload.right_boundaries]),
            ):
                for dst in dst_ids:
                    relations[(fid, rel, str(dst))] = None
        elif case == "stop_sign" and payload is not None:
            for lane in payload.lane:
                relations[(fid, MapRelation.CONTROLS, str(lane))] = None
    for src, rel, dst in relations:
        builder.relate(src, rel, dst)
    return builder.build()


def _traffic_lights(
    path: Path, msg: scenario_pb2.Scenario, num_steps: int, where: str
) -> TrafficLights | None:
    """``dynamic_map_states`` as ``(L, T)`` states, one row per lane seen at any step; ``None`` if none."""
    steps = msg.dynamic_map_states
    if len(steps) > num_steps:
        raise InvalidValueError(
            path,
            f"{where}: {len(steps)} dynamic_map_states for {num_steps} timestamps (at most one per step)",
        )
    counts = np.fromiter(map(len, map(_get_lane_states, steps)), dtype=np.int64, count=len(steps))
    n = int(counts.sum())
    if n == 0:
        return None
    flat = list(itertools.chain.from_iterable(map(_get_lane_states, steps)))
    rows = np.fromiter(map(_get_lane_state, flat), dtype=_LANE_STATE_DTYPE, count=n)
    has_stop = np.fromiter(map(_has_stop_point, flat), dtype=np.bool_, count=n)
    step = np.repeat(np.arange(len(steps)), counts)
    lanes, row = np.unique(rows["lane"], return_inverse=True)
    state = np.zeros((lanes.shape[0], num_steps), dtype=np.int8)
    valid = np.zeros((lanes.shape[0], num_steps), dtype=np.bool_)
    state[row, step] = rows["state"]  # a closed enum (0..8), identical to TrafficLightState
    valid[row, step] = True
    stop_point = np.full((lanes.shape[0], 3), np.nan, dtype=np.float64)
    with_stop = np.flatnonzero(has_stop)
    lane_rows, first = np.unique(row[with_stop], return_index=True)  # first observation that has a stop point
    chosen = rows[with_stop[first]]
    stop_point[lane_rows] = np.stack([chosen["x"], chosen["y"], chosen["z"]], axis=-1)
    return TrafficLights(lane_ids=lanes.astype(np.str_), state=state, stop_point_m=stop_point, valid=valid)


# --------------------------------------------------------------------------- wire-format sniffing


class _WireError(ValueError):
    """Bytes that are not protobuf wire format."""


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise _WireError("a varint runs past the end of its message")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _WireError("a varint is longer than 10 bytes")


def _wire_fields(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """The fields of one message: ``(number, wire_type, value_start, value_end)`` in order.

    Only the outer level is walked; nested messages are left as byte ranges.
    Groups (wire types 3 and 4) are refused: none of the formats met here use them.
    """
    fields: list[tuple[int, int, int, int]] = []
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise _WireError(f"field number 0 at byte {pos}")
        if wire_type == 0:
            _, value_end = _varint(buf, pos, end)
        elif wire_type == 1:
            value_end = pos + 8
        elif wire_type == 2:
            size, pos = _varint(buf, pos, end)
            value_end = pos + size
        elif wire_type == 5:
            value_end = pos + 4
        else:
            raise _WireError(f"wire type {wire_type} at byte {pos}")
        if value_end > end:
            raise _WireError(f"field {number} runs past the end of its message")
        fields.append((number, wire_type, pos, value_end))
        pos = value_end
    return fields


def describe_non_scenario(
    payload: bytes, fields: list[tuple[int, int, int, int]] | None = None
) -> str | None:
    """What a TFRecord payload is, when it is recognisably *not* a WOMD Scenario.

    Recognises a ``tf.train.Example`` (``features`` map of named features; the
    WOMD tf.Example release is named as such) and a Waymo perception ``Frame``
    (``context`` with a segment name, an int64 ``timestamp_micros``, a pose).

    Args:
        payload: One record's bytes.
        fields: Its outer fields from the wire walker, if already computed.

    Returns:
        A phrase for an error message (``"a tf.Example (...), not a Scenario proto"``),
        or ``None`` when the bytes may be a Scenario.
    """
    try:
        if fields is None:
            fields = _wire_fields(payload, 0, len(payload))
        keys = _example_feature_keys(payload, fields)
        if keys is not None:
            if any(k.startswith(_WOMD_EXAMPLE_PREFIXES) for k in keys):
                return "a tf.Example (WOMD tf.Example format), not a Scenario proto"
            sample = ", ".join(repr(k) for k in keys[:3])
            return f"a tf.Example (features {sample}), not a Scenario proto"
        segment = _frame_segment_name(payload, fields)
        if segment is not None:
            return f"a Waymo Open Dataset perception Frame (segment {segment!r}), not a Scenario proto"
    except (_WireError, UnicodeDecodeError):
        return None
    return None


def _example_feature_keys(payload: bytes, fields: list[tuple[int, int, int, int]]) -> list[str] | None:
    """Feature names if ``payload`` is a tf.Example: one field 1 (Features) of map entries (key, Feature)."""
    if len(fields) != 1 or fields[0][:2] != (1, 2):
        return None
    entries = _wire_fields(payload, fields[0][2], fields[0][3])
    if not entries or any(e[:2] != (1, 2) for e in entries):
        return None
    keys: list[str] = []
    for _, _, start, end in entries:
        parts = _wire_fields(payload, start, end)
        if [p[:2] for p in parts] != [(1, 2), (2, 2)]:
            return None
        keys.append(payload[parts[0][2] : parts[0][3]].decode("utf-8"))
    return keys


def _frame_segment_name(payload: bytes, fields: list[tuple[int, int, int, int]]) -> str | None:
    """The segment name if ``payload`` is a perception Frame.

    A Frame has ``context`` (1, with the segment name as its field 1),
    ``timestamp_micros`` (2, a varint, where a Scenario has its tracks) and ``pose`` (3).
    """
    types = {number: wire_type for number, wire_type, _, _ in fields}
    if types.get(1) != 2 or types.get(2) != 0 or types.get(3) != 2:
        return None
    context = next(f for f in fields if f[0] == 1)
    names = [p for p in _wire_fields(payload, context[2], context[3]) if p[:2] == (1, 2)]
    if not names:
        return None
    return payload[names[0][2] : names[0][3]].decode("utf-8")
