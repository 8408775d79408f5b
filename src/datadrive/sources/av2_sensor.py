"""Argoverse 2 sensor-dataset and scenario-mining logs (one log folder each).

A log folder holds ``annotations.feather`` (sensor dataset) or
``annotations_with_ego.feather`` (scenario mining, RefAV), the ego poses
``city_SE3_egovehicle.feather`` and optionally ``map/log_map_archive_*.json``.
Lidar sweeps, calibration and rasters in the folder are not read. When a
folder has both annotation files, ``annotations_with_ego.feather`` is read.

What the reader makes of it:

* **Time grid**: the sorted distinct annotation timestamps (one per annotated
  lidar sweep, 10 Hz).
* **Ego pose at a step**: the ``city_SE3_egovehicle`` row with exactly that
  timestamp (true of every annotated sweep in the samples: poses are logged
  at ~200 Hz and include each sweep time). Otherwise the pose is interpolated
  between the two poses around it, linearly in translation and by quaternion
  slerp in rotation, as av2's ``interpolate_pose``; ``extras["num_interpolated_poses"]``
  counts such steps. A step outside the pose stream is an error.
* **Objects**: one track per ``track_uuid``, in order of first appearance.
  Cuboids are in the ego frame of their timestamp; position and yaw are
  moved to the city frame with that step's pose (``city_SE3_ego * ego_SE3_object``,
  yaw = ``atan2(R[1, 0], R[0, 0])`` of the composed rotation, i.e. the z angle
  of av2's ``mat_to_xyz``). ``z_m`` is the city height of the cuboid centre.
  Quaternions are normalised first, as scipy (hence av2) does.
* **Size**: per track, the median of its cuboids' length, width and height
  (AV2 keeps a track's dims constant, so this is that constant).
* **Category**: the AV2 label a track carries most often (a track keeps one
  label in AV2); coarse types from :data:`AV2_SENSOR_OBJECT_TYPES`.
* **Ego**: a ``vehicle`` track valid at every step, at the pose of each step.
  In ``annotations_with_ego.feather`` the ``EGO_VEHICLE`` rows are the ego
  (their ``track_uuid`` is kept; a step without such a row takes the pose).
  With plain ``annotations.feather`` a track ``"ego"`` (category
  ``EGO_VEHICLE``) is appended, sized 4.877 x 2.0 x 1.473 m: the cuboid AV2
  gives its own ego vehicle in the scenario-mining annotations (the same Ford
  Fusion Hybrid fleet records the sensor dataset).
* **Velocity**: the annotations carry none, so it is derived in the city frame
  by finite differences over the grid: central ``(p[t+1] - p[t-1]) /
  (ts[t+1] - ts[t-1])`` where both neighbouring steps are valid, one-sided
  where only one is, NaN for a state with no valid neighbour. Gaps are never
  bridged.
* Frame ``"av2_city"``: ``xy_sum_m`` of ``datadrive inspect`` is in city metres.

Notation:
    N: annotation rows. A: tracks. T: steps. P: ego poses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import numpy as np

from datadrive.core.scenario import MapFeatures, ObjectType, Scenario, Tracks
from datadrive.core.typing import NDArrayAny, NDArrayBool, NDArrayFloat, NDArrayInt
from datadrive.errors import (
    CorruptFileError,
    EmptyLogError,
    InvalidValueError,
    SchemaMismatchError,
)
from datadrive.sources.av2_map import MapFile
from datadrive.sources.base import Adapter, files_sha256

if TYPE_CHECKING:  # imported where a file is read (lazy adapter imports, see datadrive.sources)
    import pyarrow as pa

__all__ = [
    "AV2_EGO_SIZE_M",
    "AV2_SENSOR_OBJECT_TYPES",
    "Av2SensorAdapter",
    "finite_difference_velocity",
    "quat_to_mat",
]

FRAME: Final[str] = "av2_city"
EGO_CATEGORY: Final[str] = "EGO_VEHICLE"
EGO_TRACK_ID: Final[str] = "ego"
MAX_CELLS: Final[int] = 50_000_000
"""Refuse more than this many (track, step) cells (~3 GB of arrays); AV2 logs have ~20,000-100,000."""
AV2_EGO_SIZE_M: Final[tuple[float, float, float]] = (4.877, 2.0, 1.473)
"""Length, width, height of the ``EGO_VEHICLE`` cuboid in AV2's scenario-mining annotations."""

_V, _C, _P, _O = ObjectType.VEHICLE, ObjectType.CYCLIST, ObjectType.PEDESTRIAN, ObjectType.OTHER
AV2_SENSOR_OBJECT_TYPES: Final[dict[str, ObjectType]] = {
    # every av2.datasets.sensor.constants.AnnotationCategories member, plus the RefAV ego
    "REGULAR_VEHICLE": _V,
    "LARGE_VEHICLE": _V,
    "BUS": _V,
    "ARTICULATED_BUS": _V,
    "SCHOOL_BUS": _V,
    "BOX_TRUCK": _V,
    "TRUCK": _V,
    "TRUCK_CAB": _V,
    "VEHICULAR_TRAILER": _V,  # towed by a vehicle, moves with traffic
    "RAILED_VEHICLE": _V,  # trams, trains
    EGO_CATEGORY: _V,
    "BICYCLIST": _C,
    "MOTORCYCLIST": _C,
    "WHEELED_RIDER": _C,  # a person riding a scooter, skateboard, ...
    "PEDESTRIAN": _P,
    "OFFICIAL_SIGNALER": _P,  # a person directing traffic on foot
    "WHEELCHAIR": _P,  # a person in a wheelchair moves like, and where, pedestrians do
    "BICYCLE": _O,  # riderless
    "MOTORCYCLE": _O,  # riderless
    "WHEELED_DEVICE": _O,  # riderless scooter, skateboard, ...
    "STROLLER": _O,
    "DOG": _O,
    "ANIMAL": _O,
    "BOLLARD": _O,
    "CONSTRUCTION_BARREL": _O,
    "CONSTRUCTION_CONE": _O,
    "SIGN": _O,
    "STOP_SIGN": _O,
    "MOBILE_PEDESTRIAN_CROSSING_SIGN": _O,
    "MESSAGE_BOARD_TRAILER": _O,  # parked construction equipment
    "TRAFFIC_LIGHT_TRAILER": _O,
}
"""AV2 sensor annotation category -> coarse type; an unlisted label is ``OTHER``."""

_ANNOTATION_FILES: Final[tuple[str, ...]] = ("annotations_with_ego.feather", "annotations.feather")
_POSES_FILE: Final[str] = "city_SE3_egovehicle.feather"
_QUAT: Final[list[str]] = ["qw", "qx", "qy", "qz"]
_TRANS: Final[list[str]] = ["tx_m", "ty_m", "tz_m"]
_ANNOTATION_COLUMNS: Final[list[str]] = [
    "timestamp_ns",
    "track_uuid",
    "category",
    "length_m",
    "width_m",
    "height_m",
    *_QUAT,
    *_TRANS,
]
_POSE_COLUMNS: Final[list[str]] = ["timestamp_ns", *_QUAT, *_TRANS]
_CITY_NAMES: Final[dict[str, str]] = {
    "PIT": "pittsburgh",
    "WDC": "washington-dc",
    "MIA": "miami",
    "ATX": "austin",
    "PAO": "palo-alto",
    "DTW": "dearborn",
}
_MAP_NAME = re.compile(r"____([A-Z]{3})_city_(\d+)\.json$")


class Av2SensorAdapter(Adapter):
    """Reads an AV2 sensor-dataset or scenario-mining log folder."""

    name: ClassVar[str] = "av2_sensor"
    version: ClassVar[str] = "1"
    unit: ClassVar[Literal["file", "dir"]] = "dir"
    licence: ClassVar[str] = "CC BY-NC-SA 4.0"
    download_hint: ClassVar[str] = (
        "Argoverse 2 Sensor Dataset: https://www.argoverse.org/av2.html#download-link "
        "(s5cmd --no-sign-request cp 's3://argoverse/datasets/av2/sensor/val/<log_id>/*' .); "
        "scenario mining: https://github.com/CainanD/RefAV"
    )

    def claims(self, path: Path) -> bool:
        return path.is_dir() and any((path / f).is_file() for f in _ANNOTATION_FILES)

    def _read(self, path: Path) -> Iterator[Scenario]:
        ann_path = next((path / f for f in _ANNOTATION_FILES if (path / f).is_file()), None)
        if ann_path is None:
            raise SchemaMismatchError(path, f"the log has neither {' nor '.join(_ANNOTATION_FILES)}")
        poses_path = path / _POSES_FILE
        if not poses_path.is_file():
            raise SchemaMismatchError(path, f"the log has no {_POSES_FILE} (ego poses)")
        ann = _read_feather(ann_path, _ANNOTATION_COLUMNS)
        poses = _read_feather(poses_path, _POSE_COLUMNS)
        if ann.num_rows == 0:
            raise EmptyLogError(ann_path, "no annotations")
        if poses.num_rows == 0:
            raise EmptyLogError(poses_path, "no ego poses")
        map_path = _map_path(path)
        map_features = MapFile(map_path).parse() if map_path is not None else None
        files = [ann_path, poses_path] + ([map_path] if map_path is not None else [])
        yield self._scenario(path, ann_path, ann, poses_path, poses, map_path, map_features, files)

    def _scenario(
        self,
        path: Path,
        ann_path: Path,
        ann: pa.Table,
        poses_path: Path,
        poses: pa.Table,
        map_path: Path | None,
        map_features: MapFeatures | None,
        files: list[Path],
    ) -> Scenario:
        ts_row = _ints(ann, "timestamp_ns", ann_path)
        timestamps_ns = np.unique(ts_row)
        num_steps = int(timestamps_ns.shape[0])
        step = np.searchsorted(timestamps_ns, ts_row)

        city_R_ego, city_t_ego, num_interpolated = _poses_at(poses, timestamps_ns, poses_path)  # noqa: N806

        track_ids, codes = _encode(ann.column("track_uuid"), ann_path, "track_uuid")
        cat_values, cat_codes = _encode(ann.column("category"), ann_path, "category")
        num_tracks = int(track_ids.shape[0])
        counts = np.bincount(
            codes * cat_values.shape[0] + cat_codes, minlength=num_tracks * cat_values.shape[0]
        )
        category = cat_values[counts.reshape(num_tracks, -1).argmax(axis=1)]

        if num_tracks * num_steps > MAX_CELLS:
            raise InvalidValueError(
                ann_path, f"{num_tracks} tracks x {num_steps} steps is beyond {MAX_CELLS} states"
            )
        flat = codes * num_steps + step
        valid_flat = np.zeros(num_tracks * num_steps, dtype=np.bool_)
        valid_flat[flat] = True
        if int(np.count_nonzero(valid_flat)) != flat.shape[0]:
            dup = int(np.flatnonzero(np.bincount(flat) > 1)[0])
            raise InvalidValueError(
                ann_path,
                f"track {track_ids[dup // num_steps]} has two cuboids at {timestamps_ns[dup % num_steps]}",
            )

        ego_R_obj = quat_to_mat(_floats(ann, _QUAT, ann_path), ann_path)  # noqa: N806  (N, 3, 3)
        ego_t_obj = _floats(ann, _TRANS, ann_path)  # (N, 3)
        rot = city_R_ego[step]  # (N, 3, 3)
        city_t_obj = np.einsum("nij,nj->ni", rot, ego_t_obj) + city_t_ego[step]
        heading_col = np.einsum("nij,nj->ni", rot, ego_R_obj[:, :, 0])  # first column of city_R_obj
        yaw = np.arctan2(heading_col[:, 1], heading_col[:, 0])

        xyz_flat = np.zeros((num_tracks * num_steps, 3), dtype=np.float64)
        xyz_flat[flat] = city_t_obj
        heading_flat = np.zeros(num_tracks * num_steps, dtype=np.float64)
        heading_flat[flat] = yaw
        dims = _floats(ann, ["length_m", "width_m", "height_m"], ann_path)
        size = _group_median(dims, codes, num_tracks)

        xyz = xyz_flat.reshape(num_tracks, num_steps, 3)
        heading = heading_flat.reshape(num_tracks, num_steps)
        valid = valid_flat.reshape(num_tracks, num_steps)
        ego_yaw = np.arctan2(city_R_ego[:, 1, 0], city_R_ego[:, 0, 0])
        ego_rows = np.flatnonzero(category == EGO_CATEGORY)
        if ego_rows.shape[0] > 1:
            raise InvalidValueError(ann_path, f"{ego_rows.shape[0]} tracks are labelled {EGO_CATEGORY}")
        if ego_rows.shape[0] == 1:
            ego_index = int(ego_rows[0])
            missing = ~valid[ego_index]  # steps without an EGO_VEHICLE row take the pose
            xyz[ego_index, missing] = city_t_ego[missing]
            heading[ego_index, missing] = ego_yaw[missing]
            valid[ego_index] = True
            ego_source = "annotations"
        else:
            ego_index = num_tracks
            track_ids = np.append(track_ids, EGO_TRACK_ID)
            category = np.append(category, EGO_CATEGORY)
            xyz = np.concatenate([xyz, city_t_ego[None]])
            heading = np.concatenate([heading, ego_yaw[None]])
            valid = np.concatenate([valid, np.ones((1, num_steps), dtype=np.bool_)])
            size = np.concatenate([size, np.array([AV2_EGO_SIZE_M])])
            ego_source = "poses"
        object_type = np.array(
            [AV2_SENSOR_OBJECT_TYPES.get(c, ObjectType.OTHER) for c in category.tolist()], dtype=np.uint8
        )
        object_type[ego_index] = ObjectType.VEHICLE

        xy = np.ascontiguousarray(xyz[..., :2])
        tracks = Tracks(
            track_ids=np.asarray(track_ids, dtype=np.str_),
            object_type=object_type,
            category=np.asarray(category, dtype=np.str_),
            xy_m=xy,
            z_m=np.where(valid, xyz[..., 2], np.nan),
            heading_rad=heading,
            velocity_mps=finite_difference_velocity(xy, valid, timestamps_ns),
            size_m=size,
            valid=valid,
        )
        city_code, map_city_id = _city(map_path)
        location = _CITY_NAMES.get(city_code, city_code) if city_code else None
        extras: dict[str, Any] = {
            "log_id": path.resolve().name,
            "annotations_file": ann_path.name,
            "ego_source": ego_source,
            "num_interpolated_poses": num_interpolated,
            "velocity": "finite differences of city-frame positions (central, one-sided at gaps and ends)",
            "size": "median of the track's cuboid dims",
            "city_code": city_code,
            "map_city_id": map_city_id,
            "map_file": None if map_path is None else map_path.name,
        }
        return Scenario(
            scenario_id=path.resolve().name,
            source=self.name,
            timestamps_ns=timestamps_ns.astype(np.int64),
            tracks=tracks,
            metadata=self.metadata(
                path, files_sha256(path, files), frame=FRAME, location=location, extras=extras
            ),
            map=map_features,
            ego_index=ego_index,
        )


# --------------------------------------------------------------------------- file access


def _read_feather(path: Path, columns: list[str]) -> pa.Table:
    """The named columns of a Feather file, checked for presence, type and nulls."""
    import pyarrow as pa
    import pyarrow.feather as feather

    data = path.read_bytes()
    if data[:6] != b"ARROW1" and data[:4] != b"FEA1":
        raise CorruptFileError(path, "not a Feather/Arrow IPC file (bad magic bytes)")
    try:
        if data[:6] == b"ARROW1":  # Feather v2 = Arrow IPC file: the schema is in the footer
            schema_names = pa.ipc.open_file(pa.BufferReader(data)).schema.names
        else:
            schema_names = feather.read_table(pa.BufferReader(data), columns=[]).schema.names
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CorruptFileError(path, f"cannot read the Feather file ({exc})") from exc
    missing = [c for c in columns if c not in schema_names]
    if missing:
        raise SchemaMismatchError(path, f"missing column(s): {', '.join(missing)}")
    try:
        table = feather.read_table(pa.BufferReader(data), columns=columns, use_threads=False)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CorruptFileError(path, f"cannot decode the Feather data ({exc})") from exc
    wrong = []
    for name, dtype in zip(table.schema.names, table.schema.types, strict=True):
        if pa.types.is_dictionary(dtype):
            dtype = dtype.value_type
        if name == "timestamp_ns":
            ok = pa.types.is_integer(dtype)
        elif name in ("track_uuid", "category"):
            ok = pa.types.is_string(dtype) or pa.types.is_large_string(dtype)
        else:
            ok = pa.types.is_floating(dtype) or pa.types.is_integer(dtype)
        if not ok:
            wrong.append(f"{name} is {dtype}")
    if wrong:
        raise SchemaMismatchError(path, "wrong column type(s): " + "; ".join(wrong))
    nulls = [name for name, col in zip(table.schema.names, table.columns, strict=True) if col.null_count]
    if nulls:
        raise InvalidValueError(path, f"null values in {', '.join(nulls)}")
    return table


def _map_path(log: Path) -> Path | None:
    found = sorted((log / "map").glob("log_map_archive_*.json")) if (log / "map").is_dir() else []
    if len(found) > 1:
        raise InvalidValueError(log / "map", f"{len(found)} log_map_archive_*.json files, expected one")
    return found[0] if found else None


def _city(map_path: Path | None) -> tuple[str | None, int | None]:
    match = _MAP_NAME.search(map_path.name) if map_path is not None else None
    return (match.group(1), int(match.group(2))) if match else (None, None)


def _ints(table: pa.Table, name: str, path: Path) -> NDArrayInt:
    values: NDArrayInt = np.asarray(table.column(name).to_numpy()).astype(np.int64)
    return values


def _floats(table: pa.Table, names: list[str], path: Path) -> NDArrayFloat:
    """``(N, len(names))`` float64, refusing NaN or infinite values."""
    values = np.stack([np.asarray(table.column(n).to_numpy(), dtype=np.float64) for n in names], axis=1)
    if not np.isfinite(values).all():
        bad = [n for i, n in enumerate(names) if not np.isfinite(values[:, i]).all()]
        raise InvalidValueError(path, f"NaN or infinite values in {', '.join(bad)}")
    return values


def _encode(column: pa.ChunkedArray, path: Path, name: str) -> tuple[NDArrayAny, NDArrayInt]:
    """Distinct values in order of first appearance, and each row's index into them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = column.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    encoded = pc.dictionary_encode(arr)
    values = np.asarray(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=np.str_).reshape(-1)
    codes: NDArrayInt = np.asarray(encoded.indices).astype(np.int64)
    return values, codes


# --------------------------------------------------------------------------- geometry


def quat_to_mat(quat_wxyz: NDArrayFloat, path: Path) -> NDArrayFloat:
    """``(..., 3, 3)`` rotations of ``(..., 4)`` scalar-first quaternions, normalised first (as scipy)."""
    norm = np.linalg.norm(quat_wxyz, axis=-1, keepdims=True)
    if not np.all(norm > 0):
        raise InvalidValueError(path, "a quaternion has zero norm")
    q = quat_wxyz / norm
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    x2, y2, z2, w2 = x * x, y * y, z * z, w * w
    xy, zw, xz, yw, yz, xw = x * y, z * w, x * z, y * w, y * z, x * w
    mat = np.empty((*q.shape[:-1], 3, 3), dtype=np.float64)
    mat[..., 0, 0] = x2 - y2 - z2 + w2
    mat[..., 1, 0] = 2 * (xy + zw)
    mat[..., 2, 0] = 2 * (xz - yw)
    mat[..., 0, 1] = 2 * (xy - zw)
    mat[..., 1, 1] = -x2 + y2 - z2 + w2
    mat[..., 2, 1] = 2 * (yz + xw)
    mat[..., 0, 2] = 2 * (xz + yw)
    mat[..., 1, 2] = 2 * (yz - xw)
    mat[..., 2, 2] = -x2 - y2 + z2 + w2
    return mat


def _poses_at(
    poses: pa.Table, timestamps_ns: NDArrayInt, path: Path
) -> tuple[NDArrayFloat, NDArrayFloat, int]:
    """``city_SE3_ego`` at each step: ``(T, 3, 3)`` rotation, ``(T, 3)`` translation, and how many were
    interpolated."""
    pose_ts = _ints(poses, "timestamp_ns", path)
    quat = _floats(poses, _QUAT, path)
    trans = _floats(poses, _TRANS, path)
    order = np.argsort(pose_ts, kind="stable")
    pose_ts, quat, trans = pose_ts[order], quat[order], trans[order]
    if pose_ts.shape[0] > 1 and not bool(np.all(np.diff(pose_ts) > 0)):
        raise InvalidValueError(path, "two ego poses share a timestamp")
    if timestamps_ns[0] < pose_ts[0] or timestamps_ns[-1] > pose_ts[-1]:
        raise InvalidValueError(
            path,
            f"annotations span {timestamps_ns[0]}..{timestamps_ns[-1]} ns, "
            f"poses only {pose_ts[0]}..{pose_ts[-1]} ns",
        )
    hi = np.searchsorted(pose_ts, timestamps_ns)  # first pose at or after each step
    exact = pose_ts[hi] == timestamps_ns
    q = quat[hi] / np.linalg.norm(quat[hi], axis=1, keepdims=True)
    t = trans[hi].copy()
    between = np.flatnonzero(~exact)
    if between.shape[0]:
        i1 = hi[between]
        i0 = i1 - 1
        u = (timestamps_ns[between] - pose_ts[i0]) / (pose_ts[i1] - pose_ts[i0])
        t[between] = trans[i0] + (trans[i1] - trans[i0]) * u[:, None]
        q[between] = _slerp(quat[i0], quat[i1], u)
    return quat_to_mat(q, path), t, int(between.shape[0])


def _slerp(q0: NDArrayFloat, q1: NDArrayFloat, u: NDArrayFloat) -> NDArrayFloat:
    """``(K, 4)`` spherical interpolation of unit quaternions at fractions ``u`` (K,)."""
    q0 = q0 / np.linalg.norm(q0, axis=1, keepdims=True)
    q1 = q1 / np.linalg.norm(q1, axis=1, keepdims=True)
    dot = np.sum(q0 * q1, axis=1)
    q1 = np.where(dot[:, None] < 0, -q1, q1)  # the shorter arc
    # the angle between them; atan2 keeps full precision for nearby poses, where arccos(dot) loses half
    theta = 2.0 * np.arctan2(np.linalg.norm(q1 - q0, axis=1), np.linalg.norm(q1 + q0, axis=1))
    sin = np.sin(theta)
    small = sin < 1e-9
    safe = np.where(small, 1.0, sin)
    w0 = np.where(small, 1.0 - u, np.sin((1.0 - u) * theta) / safe)
    w1 = np.where(small, u, np.sin(u * theta) / safe)
    out: NDArrayFloat = w0[:, None] * q0 + w1[:, None] * q1
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def _group_median(values: NDArrayFloat, codes: NDArrayInt, num_groups: int) -> NDArrayFloat:
    """``(G, C)`` per-group median of ``(N, C)`` values; every group has at least one row."""
    first = np.full(num_groups, codes.shape[0], dtype=np.int64)
    np.minimum.at(first, codes, np.arange(codes.shape[0]))  # each group's first row
    if np.array_equal(values, values[first[codes]]):  # constant within every group (AV2 tracks are)
        constant: NDArrayFloat = values[first]
        return constant
    counts = np.bincount(codes, minlength=num_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    lo = starts + (counts - 1) // 2
    hi = starts + counts // 2
    out = np.empty((num_groups, values.shape[1]), dtype=np.float64)
    for c in range(values.shape[1]):
        sorted_values = values[np.lexsort((values[:, c], codes)), c]
        out[:, c] = (sorted_values[lo] + sorted_values[hi]) / 2.0
    return out


def finite_difference_velocity(
    xy_m: NDArrayFloat, valid: NDArrayBool, timestamps_ns: NDArrayInt
) -> NDArrayFloat:
    """Velocities from positions by finite differences over consecutive grid steps.

    Central ``(p[t+1] - p[t-1]) / (ts[t+1] - ts[t-1])`` where both neighbours
    are valid, forward or backward where only one is, NaN where neither is
    (and on invalid states).

    Args:
        xy_m: ``(A, T, 2)`` positions.
        valid: ``(A, T)`` bool.
        timestamps_ns: ``(T,)`` int64, strictly increasing.

    Returns:
        ``(A, T, 2)`` float64 velocity in m/s.
    """
    a, t = valid.shape
    if t < 2:
        return np.full((a, t, 2), np.nan, dtype=np.float64)
    ts_s = (timestamps_ns - timestamps_ns[0]).astype(np.float64) / 1e9
    prev_ok = np.zeros((a, t), dtype=np.bool_)
    next_ok = np.zeros((a, t), dtype=np.bool_)
    prev_ok[:, 1:] = valid[:, 1:] & valid[:, :-1]
    next_ok[:, :-1] = valid[:, :-1] & valid[:, 1:]
    prev_i = np.maximum(np.arange(t) - 1, 0)
    next_i = np.minimum(np.arange(t) + 1, t - 1)
    lo = np.where(prev_ok, prev_i[None, :], np.arange(t)[None, :])  # (A, T) step indices
    hi = np.where(next_ok, next_i[None, :], np.arange(t)[None, :])
    has = prev_ok | next_ok
    rows = np.arange(a)[:, None]
    dt = np.where(has, ts_s[hi] - ts_s[lo], np.nan)  # NaN where no neighbour: velocity NaN
    vel: NDArrayFloat = (xy_m[rows, hi] - xy_m[rows, lo]) / dt[..., None]
    return vel
