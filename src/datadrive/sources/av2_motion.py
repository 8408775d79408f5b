"""Argoverse 2 motion-forecasting scenarios (``scenario_<id>.parquet``).

One parquet file is one scenario: one row per (track, timestep), columns
``observed, track_id, object_type, object_category, timestep, position_x,
position_y, heading, velocity_x, velocity_y`` plus scenario-level columns
repeated on every row (``scenario_id, start_timestamp, end_timestamp,
num_timestamps, focal_track_id, city`` and, in some files, ``map_id,
slice_id``). The reader keeps av2's semantics
(``av2.datasets.motion_forecasting.scenario_serialization.load_argoverse_scenario_parquet``):

* timestamps are ``np.linspace(start_timestamp, end_timestamp, num_timestamps)``
  of the first row, as int64 ns (the float values are integers at this
  magnitude, so the conversion is exact);
* one track per distinct ``track_id``, in order of first appearance; its
  ``object_type`` and ``object_category`` are those of its first row;
* scenario-level facts come from the first row.

Coarse types: ``vehicle``/``bus`` -> vehicle, ``pedestrian`` -> pedestrian,
``cyclist``/``motorcyclist`` -> cyclist, anything else (``riderless_bicycle``,
``static``, ``background``, ``construction``, ``unknown``) -> other; the
category keeps the AV2 string. The ego is the track ``"AV"``. AV2 gives no
object sizes (NaN) and no heights (z is NaN). Frame ``"av2_city"``.

The map ``log_map_archive_<id>.json`` beside the parquet (``<id>`` from the
file name, else the ``scenario_id`` column) is read with
:mod:`datadrive.sources.av2_map` when present; without one the scenario has
``map=None``.

``metadata.extras``: ``focal_track_id``; ``track_category``, per track (in
track order) its AV2 ``object_category`` (0 track fragment, 1 unscored,
2 scored, 3 focal); ``city``; ``map_id`` and ``slice_id`` (``None`` where the
file lacks the column); ``num_observed_steps``, the last timestep with
``observed`` true plus one (50 in AV2: 5 s of history); ``map_file`` and
``map_sha256`` of the map JSON read (provenance's ``sha256`` is the parquet's).

Where av2 would not fail but the data cannot be one scenario, the reader
refuses it: two rows for one (track, timestep) (av2 keeps both states in its
list), a timestep outside ``[0, num_timestamps)``, NaN or infinite positions
or headings (``InvalidValueError``). Missing columns are a
``SchemaMismatchError`` naming them; bytes that are not Parquet, or a
truncated file, a ``CorruptFileError``; a file without rows an
``EmptyLogError``.

Speed (see ``docs/benchmarks.md``): the file is read once (hashed and
decoded from the same bytes); scenario-level columns come from the
row-group statistics when these prove them constant, else from decoding
their first row only; ``track_id``/``object_type`` are read as dictionaries;
states are scattered into ``(A, T)`` arrays with one numpy assignment per
quantity. There is no per-row Python.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import numpy as np

from datadrive.core.scenario import MapFeatures, ObjectType, Scenario, Tracks
from datadrive.core.typing import NDArrayAny
from datadrive.errors import (
    CorruptFileError,
    EmptyLogError,
    InvalidValueError,
    SchemaMismatchError,
)
from datadrive.sources.av2_map import MapFile
from datadrive.sources.base import Adapter

if TYPE_CHECKING:  # imported where a file is read (see datadrive.sources: lazy adapter imports)
    import pyarrow as pa
    import pyarrow.parquet as pq

__all__ = ["AV2_MF_OBJECT_TYPES", "MAX_STEPS", "Av2MotionForecastingAdapter"]

FRAME: Final[str] = "av2_city"

AV2_MF_OBJECT_TYPES: Final[dict[str, ObjectType]] = {
    "vehicle": ObjectType.VEHICLE,
    "bus": ObjectType.VEHICLE,
    "pedestrian": ObjectType.PEDESTRIAN,
    "cyclist": ObjectType.CYCLIST,
    "motorcyclist": ObjectType.CYCLIST,
    "riderless_bicycle": ObjectType.OTHER,
    "static": ObjectType.OTHER,
    "background": ObjectType.OTHER,
    "construction": ObjectType.OTHER,
    "unknown": ObjectType.OTHER,
}
"""AV2 ``object_type`` -> coarse type; a label not listed here is ``OTHER``."""

MAX_STEPS: Final[int] = 10_000
"""Refuse ``num_timestamps`` above this (AV2 has 110; 10,000 steps is 1,000 s at 10 Hz): a corrupt
count must not allocate gigabytes."""

MAX_CELLS: Final[int] = 50_000_000
"""Refuse more than this many (track, step) cells (~3 GB of arrays); AV2 scenarios have ~10,000."""

EGO_TRACK_ID: Final[str] = "AV"

_KINDS: Final[dict[str, Literal["bool", "int", "float", "str"]]] = {
    "observed": "bool",
    "track_id": "str",
    "object_type": "str",
    "object_category": "int",
    "timestep": "int",
    "position_x": "float",
    "position_y": "float",
    "heading": "float",
    "velocity_x": "float",
    "velocity_y": "float",
    "scenario_id": "str",
    "start_timestamp": "float",
    "end_timestamp": "float",
    "num_timestamps": "int",
    "focal_track_id": "str",
    "city": "str",
}
_OPTIONAL_KINDS: Final[dict[str, Literal["bool", "int", "float", "str"]]] = {
    "map_id": "int",
    "slice_id": "str",
}
_ALL_KINDS: Final = _KINDS | _OPTIONAL_KINDS
_PER_ROW: Final[list[str]] = [
    "observed",
    "track_id",
    "object_type",
    "object_category",
    "timestep",
    "position_x",
    "position_y",
    "heading",
    "velocity_x",
    "velocity_y",
]
_SCENARIO_LEVEL: Final[list[str]] = [
    "scenario_id",
    "start_timestamp",
    "end_timestamp",
    "num_timestamps",
    "focal_track_id",
    "city",
]


_DICTIONARY_COLUMNS: Final[list[int]] = [1, 2]
"""``track_id`` and ``object_type`` in AV2's column order, read as dictionaries (pyarrow ignores the hint
for a non-string column, so another column order only costs speed)."""


@functools.cache
def _fast_ok() -> dict[str, frozenset[pa.DataType]]:
    """The column types that need no further look, per kind (built once pyarrow is imported)."""
    import pyarrow as pa

    return {
        "float": frozenset({pa.float64(), pa.float32(), pa.int64(), pa.int32()}),
        "int": frozenset({pa.int64(), pa.int32(), pa.uint64(), pa.uint32()}),
        "bool": frozenset({pa.bool_()}),
        "str": frozenset({pa.string(), pa.large_string(), pa.dictionary(pa.int32(), pa.string())}),
    }


def _kind_ok(dtype: pa.DataType, kind: str) -> bool:
    import pyarrow as pa

    if dtype in _fast_ok()[kind]:
        return True
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if kind == "float":
        return bool(pa.types.is_floating(dtype) or pa.types.is_integer(dtype))
    if kind == "int":
        return bool(pa.types.is_integer(dtype))
    if kind == "bool":
        return bool(pa.types.is_boolean(dtype))
    return bool(pa.types.is_string(dtype) or pa.types.is_large_string(dtype))


def _value_ok(value: Any, kind: str) -> bool:
    if value is None:
        return True  # reported as a null where the value is needed
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float) if kind == "float" else isinstance(value, int)


class Av2MotionForecastingAdapter(Adapter):
    """Reads ``scenario_*.parquet`` files of the AV2 motion-forecasting dataset.

    Args:
        with_map: Read the ``log_map_archive_<id>.json`` beside each scenario
            (default). ``False`` skips maps entirely (``map=None``).
    """

    name: ClassVar[str] = "av2_motion_forecasting"
    version: ClassVar[str] = "1"
    unit: ClassVar[Literal["file", "dir"]] = "file"
    licence: ClassVar[str] = "CC BY-NC-SA 4.0"
    download_hint: ClassVar[str] = (
        "Argoverse 2 Motion Forecasting: https://www.argoverse.org/av2.html#download-link "
        "(s5cmd --no-sign-request cp 's3://argoverse/datasets/av2/motion-forecasting/*' .)"
    )

    def __init__(self, *, with_map: bool = True) -> None:
        self.with_map = with_map

    def claims(self, path: Path) -> bool:
        return path.name.startswith("scenario_") and path.suffix == ".parquet"

    def _read(self, path: Path) -> Iterator[Scenario]:
        import pyarrow as pa

        data = path.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        pf, names = _open_parquet(path, data)
        try:
            level = _scenario_level(pf, names, path)
            table = pf.read(columns=_PER_ROW, use_threads=False)
        except (pa.ArrowException, OSError, StopIteration) as exc:
            raise CorruptFileError(path, f"cannot decode the Parquet data ({exc})") from exc
        yield self._scenario(path, sha256, _rows(table, path), level)

    def _scenario(
        self, path: Path, sha256: str, rows: dict[str, pa.Array], level: dict[str, Any]
    ) -> Scenario:
        scenario_id = str(_level(level, "scenario_id", path))
        timestamps_ns = _timestamps(path, level)
        num_steps = int(timestamps_ns.shape[0])

        track_ids, codes, first_row = _group(rows["track_id"])
        num_tracks = int(track_ids.shape[0])
        category, object_type = _categories(rows["object_type"], first_row)
        track_category = _numpy(rows["object_category"]).astype(np.int64, copy=False)[first_row]

        timestep = _numpy(rows["timestep"]).astype(np.int64, copy=False)
        if int(timestep.min()) < 0 or int(timestep.max()) >= num_steps:
            raise InvalidValueError(path, f"timestep outside [0, {num_steps}) given by num_timestamps")
        flat = codes * num_steps + timestep
        px = _numpy(rows["position_x"]).astype(np.float64, copy=False)
        py = _numpy(rows["position_y"]).astype(np.float64, copy=False)
        heading = _numpy(rows["heading"]).astype(np.float64, copy=False)
        if not (np.isfinite(px).all() and np.isfinite(py).all()):
            raise InvalidValueError(path, "a state has a NaN or infinite position")
        if not np.isfinite(heading).all():
            raise InvalidValueError(path, "a state has a NaN or infinite heading")

        size = num_tracks * num_steps
        if size > MAX_CELLS:
            raise InvalidValueError(
                path, f"{num_tracks} tracks x {num_steps} steps is beyond {MAX_CELLS} states"
            )
        valid = np.zeros(size, dtype=np.bool_)
        valid[flat] = True
        if int(np.count_nonzero(valid)) != flat.shape[0]:
            dup = int(np.flatnonzero(np.bincount(flat, minlength=size) > 1)[0])
            raise InvalidValueError(
                path, f"track {track_ids[dup // num_steps]} has two rows for timestep {dup % num_steps}"
            )
        xy = np.zeros((size, 2), dtype=np.float64)
        xy[flat, 0] = px
        xy[flat, 1] = py
        yaw = np.zeros(size, dtype=np.float64)
        yaw[flat] = heading
        vel = np.full((size, 2), np.nan, dtype=np.float64)
        vel[flat, 0] = _numpy(rows["velocity_x"])
        vel[flat, 1] = _numpy(rows["velocity_y"])

        ego = np.flatnonzero(track_ids == EGO_TRACK_ID)
        ego_index = int(ego[0]) if ego.shape[0] else None
        if ego_index is not None:
            object_type[ego_index] = ObjectType.VEHICLE  # the ego is a vehicle whatever its label

        observed = _numpy(rows["observed"]).astype(np.bool_, copy=False)
        last_observed = int(np.max(timestep, where=observed, initial=-1))
        tracks = Tracks(
            track_ids=track_ids,
            object_type=object_type,
            category=category,
            xy_m=xy.reshape(num_tracks, num_steps, 2),
            z_m=np.full((num_tracks, num_steps), np.nan, dtype=np.float64),
            heading_rad=yaw.reshape(num_tracks, num_steps),
            velocity_mps=vel.reshape(num_tracks, num_steps, 2),
            size_m=np.full((num_tracks, 3), np.nan, dtype=np.float64),
            valid=valid.reshape(num_tracks, num_steps),
        )
        map_features, map_extras = self._map(path, scenario_id)
        city = str(_level(level, "city", path))
        map_id = level.get("map_id")
        slice_id = level.get("slice_id")
        extras: dict[str, Any] = {
            "focal_track_id": str(_level(level, "focal_track_id", path)),
            "track_category": track_category.tolist(),
            "city": city,
            "map_id": None if map_id is None else int(map_id),
            "slice_id": None if slice_id is None else str(slice_id),
            "num_observed_steps": last_observed + 1,
            **map_extras,
        }
        return Scenario(
            scenario_id=scenario_id,
            source=self.name,
            timestamps_ns=timestamps_ns,
            tracks=tracks,
            metadata=self.metadata(path, sha256, frame=FRAME, location=city, extras=extras),
            map=map_features,
            ego_index=ego_index,
        )

    def _map(self, path: Path, scenario_id: str) -> tuple[MapFeatures | None, dict[str, Any]]:
        if not self.with_map:
            return None, {"map_file": None}
        stem_id = path.stem.removeprefix("scenario_")
        for candidate in dict.fromkeys((stem_id, scenario_id)):
            map_path = path.parent / f"log_map_archive_{candidate}.json"
            try:  # one failed open() is cheaper than stat() + open() on the common no-map path
                map_file = MapFile(map_path)
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                continue
            else:
                return map_file.parse(), {
                    "map_file": map_path.name,
                    "map_sha256": hashlib.sha256(map_file.data).hexdigest(),
                }
        return None, {"map_file": None}


def _open_parquet(path: Path, data: bytes) -> tuple[pq.ParquetFile, list[str]]:
    """The file's Parquet reader and column names, after checking magic bytes and columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if len(data) < 12 or data[:4] != b"PAR1":
        raise CorruptFileError(path, "not a Parquet file (no PAR1 magic at the start)")
    if data[-4:] != b"PAR1":
        raise CorruptFileError(path, "truncated Parquet file (no PAR1 magic at the end)")
    try:
        pf = pq.ParquetFile(pa.BufferReader(data), read_dictionary=_DICTIONARY_COLUMNS)
        names: list[str] = pf.schema.names
        num_rows = pf.metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise CorruptFileError(path, f"cannot read the Parquet footer ({exc})") from exc
    present = set(names)
    missing = [c for c in _KINDS if c not in present]
    if missing:
        raise SchemaMismatchError(path, f"missing column(s): {', '.join(missing)}")
    if num_rows == 0 or pf.metadata.num_row_groups == 0:
        raise EmptyLogError(path, "the scenario has no rows")
    return pf, names


def _scenario_level(pf: pq.ParquetFile, names: list[str], path: Path) -> dict[str, Any]:
    """The first row's value of every scenario-level column.

    A column whose row-group-0 statistics say min == max with no nulls holds
    that one value on every row of the group, the first row included, so it
    is not decoded (files written by pyarrow, as the released AV2 files are,
    carry such statistics); the others are decoded for their first row only.

    Raises:
        SchemaMismatchError: a value of the wrong type.
    """
    wanted = _SCENARIO_LEVEL + [c for c in _OPTIONAL_KINDS if c in names]
    rg = pf.metadata.row_group(0)
    level: dict[str, Any] = {}
    for name in wanted:
        chunk = rg.column(names.index(name))
        stats = chunk.statistics if chunk.is_stats_set and chunk.path_in_schema == name else None
        if stats is not None and stats.has_min_max and stats.null_count == 0 and stats.min == stats.max:
            level[name] = stats.min
    rest = [c for c in wanted if c not in level]
    if rest:
        first = next(pf.iter_batches(batch_size=1, columns=rest, use_threads=False)).to_pydict()
        level.update({c: first[c][0] for c in rest})
    wrong = [f"{c} holds {type(v).__name__}" for c, v in level.items() if not _value_ok(v, _ALL_KINDS[c])]
    if wrong:
        raise SchemaMismatchError(path, "wrong column type(s): " + "; ".join(wrong))
    return level


@functools.cache
def _usual_row_schema() -> pa.Schema:
    """What the per-row columns of every AV2 file decode to; anything else is checked column by column."""
    import pyarrow as pa

    return pa.schema(
        [
            ("observed", pa.bool_()),
            ("track_id", pa.dictionary(pa.int32(), pa.string())),
            ("object_type", pa.dictionary(pa.int32(), pa.string())),
            ("object_category", pa.int64()),
            ("timestep", pa.int64()),
            *[(c, pa.float64()) for c in ("position_x", "position_y", "heading", "velocity_x", "velocity_y")],
        ]
    )


def _rows(table: pa.Table, path: Path) -> dict[str, pa.Array]:
    """The per-row columns as single arrays, after checking types and nulls."""
    import pyarrow as pa

    if not table.schema.equals(_usual_row_schema()):
        wrong = [
            f"{name} is {dtype}, expected {_KINDS[name]}"
            for name, dtype in zip(_PER_ROW, table.schema.types, strict=True)
            if not _kind_ok(dtype, _KINDS[name])
        ]
        if wrong:
            raise SchemaMismatchError(path, "wrong column type(s): " + "; ".join(wrong))
    rows: dict[str, pa.Array] = {}
    for name, col in zip(_PER_ROW, table.columns, strict=True):
        if col.null_count:
            raise InvalidValueError(path, f"{name} has null values")
        if col.num_chunks == 1:
            rows[name] = col.chunk(0)
        elif pa.types.is_dictionary(col.type):  # chunks may have different dictionaries
            rows[name] = pa.concat_arrays([c.dictionary_decode() for c in col.chunks])
        else:
            rows[name] = col.combine_chunks()
    return rows


def _numpy(arr: pa.Array) -> NDArrayAny:
    import pyarrow as pa

    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return np.asarray(arr.to_numpy(zero_copy_only=False))


def _categories(arr: pa.Array, first_row: NDArrayAny) -> tuple[NDArrayAny, NDArrayAny]:
    """``(A,)`` AV2 ``object_type`` of each track's first row, and its ``(A,)`` uint8 coarse type."""
    import pyarrow as pa

    if pa.types.is_dictionary(arr.type):
        codes = np.asarray(arr.indices)[first_row]
        labels = arr.dictionary.to_pylist()
    else:
        codes = np.arange(first_row.shape[0])
        labels = arr.take(pa.array(first_row)).to_pylist()
    coarse = np.array([AV2_MF_OBJECT_TYPES.get(c, ObjectType.OTHER) for c in labels], dtype=np.uint8)
    names = np.asarray(labels, dtype=np.str_).reshape(-1)
    return names[codes], coarse[codes]


def _group(track_col: pa.Array) -> tuple[NDArrayAny, NDArrayAny, NDArrayAny]:
    """Tracks of the rows, in order of first appearance.

    Returns:
        ``(A,)`` track ids, ``(N,)`` int64 track index of each row, ``(A,)``
        index of each track's first row.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(track_col.type):
        codes = np.asarray(track_col.indices).astype(np.int64)
        values = track_col.dictionary.to_pylist()
        # a parquet dictionary lists distinct values in order of first appearance; check, don't trust
        running = np.maximum.accumulate(codes)
        first_row = np.flatnonzero(np.concatenate(([True], running[1:] > running[:-1])))
        if (
            first_row.shape[0] == len(values)
            and int(codes[0]) == 0
            and int(running[-1]) == len(values) - 1
            and len(set(values)) == len(values)
        ):
            return np.asarray(values, dtype=np.str_).reshape(-1), codes, first_row
        track_col = track_col.dictionary_decode()
    runs = pc.run_end_encode(track_col)  # AV2 writes each track's rows together
    run_ids = runs.values.to_pylist()
    if len(set(run_ids)) == len(run_ids):
        ends = np.asarray(runs.run_ends).astype(np.int64)
        starts = np.concatenate(([0], ends[:-1]))
        codes = np.repeat(np.arange(len(run_ids), dtype=np.int64), ends - starts)
        return np.asarray(run_ids, dtype=np.str_).reshape(-1), codes, starts
    encoded = pc.dictionary_encode(track_col)  # tracks interleaved: codes follow first appearance
    codes = np.asarray(encoded.indices).astype(np.int64)
    running = np.maximum.accumulate(codes)
    first_row = np.flatnonzero(np.concatenate(([True], running[1:] > running[:-1])))
    track_ids = np.asarray(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=np.str_).reshape(-1)
    return track_ids, codes, first_row


def _level(level: dict[str, Any], name: str, path: Path) -> Any:
    value = level[name]
    if value is None:
        raise InvalidValueError(path, f"{name} is null in the first row")
    return value


def _timestamps(path: Path, level: dict[str, Any]) -> NDArrayAny:
    """av2's ``np.linspace(start, end, num)`` as int64 ns.

    The same float operations as numpy's ``linspace`` (``arange * step + start``,
    last value set to ``end``), without its generic-dtype overhead.
    """
    start = float(_level(level, "start_timestamp", path))
    end = float(_level(level, "end_timestamp", path))
    num = int(_level(level, "num_timestamps", path))
    if not 1 <= num <= MAX_STEPS:
        raise InvalidValueError(path, f"num_timestamps={num} is outside [1, {MAX_STEPS}]")
    if not (math.isfinite(start) and math.isfinite(end) and abs(start) < 2**62 and abs(end) < 2**62):
        raise InvalidValueError(path, f"start/end timestamps {start}, {end} are not valid nanoseconds")
    if num == 1:
        return np.array([start]).astype(np.int64)
    step = (end - start) / (num - 1)
    linspace = np.arange(num, dtype=np.float64)
    linspace *= step
    linspace += start
    linspace[-1] = end
    timestamps_ns = linspace.astype(np.int64)
    if not bool(np.all(timestamps_ns[1:] > timestamps_ns[:-1])):
        raise InvalidValueError(path, f"timestamps from {start} to {end} over {num} steps do not increase")
    return timestamps_ns
