"""INTERACTION dataset recordings (``vehicle_tracks_*.csv`` + pedestrians + Lanelet2 map).

The dataset ships one folder per location with numbered recordings, and one
Lanelet2 map per location::

    recorded_trackfiles/<LOCATION>/vehicle_tracks_000.csv
    recorded_trackfiles/<LOCATION>/pedestrian_tracks_000.csv   (not every recording)
    maps/<LOCATION>.osm

The unit is a **recording**: the adapter claims ``vehicle_tracks_<n>.csv`` and
reads ``pedestrian_tracks_<n>.csv`` beside it when present. A pedestrian file
is claimed too, but only to say which vehicle file to read instead
(``UnsupportedFormatError``, which ``inspect`` reports as skipped in a
folder); a pedestrian file without its vehicle file is read on its own.

Windows:
    A recording is minutes long; it is cut into fixed windows of
    ``InteractionConfig.window_s`` (default 11 s, 110 frames at 10 Hz: the
    length of an AV2 or WOMD scenario). Window ``w`` holds frames
    ``[f0 + w*W, f0 + (w+1)*W)`` where ``f0`` is the recording's first frame
    and ``W`` the window length in frames; every CSV row lands in exactly one
    window. The last window is kept even when it is shorter (it ends at the
    recording's last frame), so nothing is dropped; windows without a single
    row (a gap in the recording) are skipped. A track that crosses a window
    border appears in both windows, each holding its own rows.
    ``scenario_id`` is ``<LOCATION>_<recording>_<w:03d>`` (e.g.
    ``DR_USA_Intersection_EP0_000_004``).

Time:
    ``timestamp_ms`` must be an affine function of ``frame_id`` (it is
    ``100 * frame_id`` in the dataset); ``timestamps_ns`` are those times in
    ns, one per frame of the window, so steps stay at the native 10 Hz even
    across frames without rows.

Tracks:
    * vehicles: ``car`` (and ``truck``/``bus``/``van``) -> ``vehicle``, the raw
      label kept as ``category``; ``x``, ``y``, ``vx``, ``vy``, ``psi_rad``;
      size = per-track median ``length``, ``width`` (height unknown: NaN).
    * ``pedestrian/bicycle`` (the pedestrian file's only label): the dataset
      does not say which rows are cyclists, so these are ``pedestrian`` with
      ``category`` ``"pedestrian/bicycle"``; no speed heuristic is applied
      (it would guess, and a guess cannot be undone downstream; mining can
      split fast VRUs by speed). Pedestrian rows have no heading and no size:
      heading is the direction of ``(vx, vy)`` where the speed is at least
      :data:`HEADING_MIN_SPEED_MPS`, carried forward (then backward) over
      slower rows of the same track, 0 for a track that never moves; size is
      NaN.
    * z is NaN (the dataset is 2-D); there is no ego (drone recordings).

Map and frame:
    ``maps/<LOCATION>.osm`` (looked up relative to the recording folder, or in
    ``InteractionConfig.maps_dir``) is read by
    :func:`datadrive.sources.lanelet2_map.read_lanelet2_map` with the origin
    fixed at ``(0, 0)``, the projection of the dataset's own scripts
    (``UtmProjector(Origin(0, 0))``), so map and tracks share the frame
    ``"interaction_local_<LOCATION>"``. A missing map is not an error: the
    tracks are the recording, the map is context, so the scenarios are read
    with ``map=None`` and ``extras["map_file"] = None``; a map that exists
    but is broken raises (naming the map file).

Bad input raises: missing columns (``SchemaMismatchError``), values that are
not numbers, empty or NaN positions/ids/times, infinite values, two rows for
one track and frame, timestamps that do not follow frames
(``InvalidValueError``), a CSV without rows (``EmptyLogError``).

Notation:
    R: number of CSV rows (vehicles and pedestrians together).
    A: tracks in a window. T: frames in a window.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from datadrive.core.scenario import MapFeatures, ObjectType, Scenario, Tracks
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt, NDArrayStr
from datadrive.errors import (
    ConfigError,
    CorruptFileError,
    EmptyLogError,
    InvalidValueError,
    SchemaMismatchError,
    UnsupportedFormatError,
)
from datadrive.sources.base import Adapter
from datadrive.sources.lanelet2_map import parse_lanelet2_map

if TYPE_CHECKING:  # imported where a file is read (lazy adapter imports, see datadrive.sources)
    import pyarrow as pa

__all__ = [
    "HEADING_MIN_SPEED_MPS",
    "MAX_WINDOW_CELLS",
    "PEDESTRIAN_COLUMNS",
    "VEHICLE_COLUMNS",
    "InteractionAdapter",
    "InteractionConfig",
    "agent_object_type",
]

VEHICLE_COLUMNS: Final[Mapping[str, str]] = {
    "track_id": "string",
    "frame_id": "int64",
    "timestamp_ms": "int64",
    "agent_type": "string",
    "x": "double",
    "y": "double",
    "vx": "double",
    "vy": "double",
    "psi_rad": "double",
    "length": "double",
    "width": "double",
}
"""Columns of ``vehicle_tracks_*.csv`` and their Arrow types (``pyarrow.type_for_alias`` names)."""

PEDESTRIAN_COLUMNS: Final[Mapping[str, str]] = {
    k: VEHICLE_COLUMNS[k]
    for k in ("track_id", "frame_id", "timestamp_ms", "agent_type", "x", "y", "vx", "vy")
}
"""Columns of ``pedestrian_tracks_*.csv`` (no heading, no size)."""

HEADING_MIN_SPEED_MPS: Final[float] = 0.2
"""Below this speed a pedestrian's velocity direction is noise; its heading is carried over."""

MAX_WINDOW_CELLS: Final[int] = 20_000_000
"""A window of more track x frame cells than this is refused (it would take gigabytes)."""

_Number = TypeVar("_Number", np.int64, np.float64)
_ARROW_NUMPY: Final[Mapping[str, type[np.generic]]] = {
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "double": np.float64,
}

_VEHICLE_FILE = re.compile(r"vehicle_tracks_(\d+)\.csv")
_PEDESTRIAN_FILE = re.compile(r"pedestrian_tracks_(\d+)\.csv")
_VEHICLE_LABELS: Final[frozenset[str]] = frozenset({"car", "truck", "bus", "van", "vehicle"})
_CYCLIST_LABELS: Final[frozenset[str]] = frozenset({"bicycle", "cyclist", "motorcycle"})
_PEDESTRIAN_LABELS: Final[frozenset[str]] = frozenset({"pedestrian", "pedestrian/bicycle"})


def agent_object_type(agent_type: str) -> ObjectType:
    """The coarse type of an INTERACTION ``agent_type`` (see the module docstring)."""
    label = agent_type.strip().lower()
    if label in _VEHICLE_LABELS:
        return ObjectType.VEHICLE
    if label in _PEDESTRIAN_LABELS:
        return ObjectType.PEDESTRIAN
    if label in _CYCLIST_LABELS:
        return ObjectType.CYCLIST
    return ObjectType.OTHER


@dataclass(frozen=True)
class InteractionConfig:
    """How :class:`InteractionAdapter` cuts and completes recordings.

    Attributes:
        window_s: Length of one scenario window in seconds (default 11 s).
        with_map: Read the location's Lanelet2 map (default True).
        maps_dir: Folder of ``<LOCATION>.osm`` maps; None looks in ``maps/``
            two levels above the recording folder (the dataset's layout).
    """

    window_s: float = 11.0
    with_map: bool = True
    maps_dir: Path | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.window_s) and self.window_s > 0):
            raise ConfigError(f"window_s must be a positive number of seconds, not {self.window_s}")


@dataclass(frozen=True)
class _Rows:
    """The rows of one or both CSVs, as arrays.

    Attributes:
        track_code: ``(R,)`` int64 index into ``track_names``.
        track_names: ``(K,)`` str, the distinct ``track_id`` values.
        frame: ``(R,)`` int64 ``frame_id``.
        timestamp_ms: ``(R,)`` int64.
        agent_code: ``(R,)`` int64 index into ``agent_names``.
        agent_names: the distinct ``agent_type`` values.
        xy: ``(R, 2)``; velocity ``(R, 2)``; heading ``(R,)`` (NaN for
            pedestrians); length_width ``(R, 2)`` (NaN for pedestrians).
    """

    track_code: NDArrayInt
    track_names: NDArrayStr
    frame: NDArrayInt
    timestamp_ms: NDArrayInt
    agent_code: NDArrayInt
    agent_names: NDArrayStr
    xy: NDArrayFloat
    velocity: NDArrayFloat
    heading: NDArrayFloat
    length_width: NDArrayFloat


def _header(path: Path, data: bytes) -> list[str]:
    first = data.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        return next(csv.reader([first.decode("utf-8-sig")]))
    except (UnicodeDecodeError, StopIteration, csv.Error) as exc:
        raise CorruptFileError(path, f"the CSV header cannot be read ({exc})") from None


def _read_csv(path: Path, data: bytes, columns: Mapping[str, str]) -> pa.Table:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if not data.strip():
        raise EmptyLogError(path, "the CSV file is empty")
    header = _header(path, data)
    missing = [c for c in columns if c not in header]
    if missing:
        raise SchemaMismatchError(path, f"missing column(s) {', '.join(missing)}; the header is {header}")
    try:
        return pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=False),
            convert_options=pacsv.ConvertOptions(
                column_types={k: pa.type_for_alias(v) for k, v in columns.items()},
                include_columns=list(columns),
                strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        message = str(exc).splitlines()[0]
        if "conversion error" in message:
            raise InvalidValueError(path, f"a value is not of its column's type ({message})") from None
        raise CorruptFileError(path, f"not a well-formed CSV ({message})") from None


def _primitive(array: pa.Array, dtype: type[_Number]) -> npt.NDArray[_Number]:
    """A numeric Arrow array as a numpy copy of ``dtype``; nulls become NaN (floats) or 0.

    Read through the Arrow buffers rather than ``to_numpy``: pyarrow's
    ``to_numpy`` imports pandas whenever pandas is installed (40 MiB and a
    third of a second on the first read), which this reader never needs.
    """
    stored = _ARROW_NUMPY[str(array.type)]
    values = np.frombuffer(array.buffers()[1], dtype=stored, count=len(array) + array.offset)[
        array.offset :
    ].astype(dtype)
    if array.null_count:
        bits = np.frombuffer(array.buffers()[0], dtype=np.uint8)
        valid = np.unpackbits(bits, bitorder="little")[array.offset : array.offset + len(array)].astype(
            np.bool_
        )
        values[~valid] = np.nan if np.issubdtype(dtype, np.floating) else 0
    return values


def _encoded(table: pa.Table, name: str, path: Path) -> tuple[NDArrayInt, NDArrayStr]:
    """A string column as ``(R,)`` codes into its ``(K,)`` distinct values (Arrow's dictionary encoding)."""
    import pyarrow.compute as pc

    column = table.column(name)
    if column.null_count:
        raise InvalidValueError(path, f"column {name} has empty values")
    encoded = pc.dictionary_encode(column.combine_chunks())
    codes = _primitive(encoded.indices, np.int64)
    return codes, np.asarray(encoded.dictionary.to_pylist(), dtype=np.str_).reshape(-1)


def _merge_codes(codes: list[NDArrayInt], names: list[NDArrayStr]) -> tuple[NDArrayInt, NDArrayStr]:
    """Codes of several files into one set of distinct values (equal names become one)."""
    offsets = np.cumsum([0] + [n.shape[0] for n in names[:-1]])
    unique, inverse = np.unique(np.concatenate(names), return_inverse=True)
    merged: NDArrayInt = inverse.reshape(-1)[
        np.concatenate([c + o for c, o in zip(codes, offsets, strict=True)])
    ]
    return merged, unique


def _ints(table: pa.Table, name: str, path: Path) -> NDArrayInt:
    column = table.column(name)
    if column.null_count:
        raise InvalidValueError(path, f"column {name} has empty values")
    return _primitive(column.combine_chunks(), np.int64)


def _floats(table: pa.Table, name: str, path: Path, *, required: bool) -> NDArrayFloat:
    column = table.column(name)
    if required and column.null_count:
        raise InvalidValueError(path, f"column {name} has empty or NaN values")
    values = _primitive(column.combine_chunks(), np.float64)
    if required and not np.isfinite(values).all():
        raise InvalidValueError(path, f"column {name} has NaN or infinite values")
    if np.isinf(values).any():
        raise InvalidValueError(path, f"column {name} has infinite values")
    return values


def _rows(path: Path, data: bytes, *, vehicles: bool) -> _Rows:
    table = _read_csv(path, data, VEHICLE_COLUMNS if vehicles else PEDESTRIAN_COLUMNS)
    n = table.num_rows
    xy = np.stack(
        [_floats(table, "x", path, required=True), _floats(table, "y", path, required=True)], axis=1
    )
    velocity = np.stack(
        [_floats(table, "vx", path, required=False), _floats(table, "vy", path, required=False)], axis=1
    )
    if vehicles:
        heading = _floats(table, "psi_rad", path, required=True)
        length_width = np.stack(
            [_floats(table, "length", path, required=False), _floats(table, "width", path, required=False)],
            axis=1,
        )
        if (length_width < 0).any():
            raise InvalidValueError(path, "a length or width is negative")
    else:
        heading = np.full(n, np.nan, dtype=np.float64)
        length_width = np.full((n, 2), np.nan, dtype=np.float64)
    track_code, track_names = _encoded(table, "track_id", path)
    agent_code, agent_names = _encoded(table, "agent_type", path)
    return _Rows(
        track_code=track_code,
        track_names=track_names,
        frame=_ints(table, "frame_id", path),
        timestamp_ms=_ints(table, "timestamp_ms", path),
        agent_code=agent_code,
        agent_names=agent_names,
        xy=xy,
        velocity=velocity,
        heading=heading,
        length_width=length_width,
    )


def _concat(parts: list[_Rows]) -> _Rows:
    if len(parts) == 1:
        return parts[0]
    track_code, track_names = _merge_codes([p.track_code for p in parts], [p.track_names for p in parts])
    agent_code, agent_names = _merge_codes([p.agent_code for p in parts], [p.agent_names for p in parts])
    per_row = ("frame", "timestamp_ms", "xy", "velocity", "heading", "length_width")
    return _Rows(
        track_code=track_code,
        track_names=track_names,
        agent_code=agent_code,
        agent_names=agent_names,
        **{f: np.concatenate([getattr(p, f) for p in parts]) for f in per_row},
    )


def _time_axis(path: Path, frame: NDArrayInt, timestamp_ms: NDArrayInt) -> tuple[int, float]:
    """``(ms at frame 0, ms per frame)``, checking that times follow frames."""
    if np.abs(timestamp_ms).max() >= 9_000_000_000_000:  # ns must fit int64
        raise InvalidValueError(path, "timestamp_ms is beyond the year 2255")
    frames, first = np.unique(frame, return_index=True)
    times = timestamp_ms[first].astype(np.float64)
    if frames.shape[0] == 1:
        step_ms = 100.0  # 10 Hz, the dataset's rate, when a file has a single frame
    else:
        step_ms = (times[-1] - times[0]) / float(frames[-1] - frames[0])
        if step_ms <= 0:
            raise InvalidValueError(path, "timestamp_ms does not increase with frame_id")
    offset = float(times[0] - step_ms * frames[0])
    expected = offset + step_ms * frame.astype(np.float64)
    off = np.abs(timestamp_ms - expected) > 0.5
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise InvalidValueError(
            path, f"timestamp_ms {timestamp_ms[i]} at frame_id {frame[i]} does not follow the frame rate"
        )
    return round(offset), step_ms


def _pedestrian_heading(codes: NDArrayInt, frame: NDArrayInt, velocity: NDArrayFloat) -> NDArrayFloat:
    """``(R,)`` heading from velocity, carried over slow rows within each track."""
    n = codes.shape[0]
    order = np.lexsort((frame, codes))
    c, v = codes[order], velocity[order]
    speed = np.hypot(v[:, 0], v[:, 1])
    moving = np.isfinite(speed) & (speed >= HEADING_MIN_SPEED_MPS)
    raw = np.where(moving, np.arctan2(v[:, 1], v[:, 0]), np.nan)
    starts = np.concatenate([[True], c[1:] != c[:-1]])
    idx = np.arange(n)
    # forward fill: last moving row of the same track at or before each row
    fwd = np.where(moving, idx, -1)
    fwd = np.maximum.accumulate(np.where(starts & ~moving, -1, fwd))
    track_start = np.maximum.accumulate(np.where(starts, idx, 0))
    filled = np.where(fwd >= track_start, raw[np.clip(fwd, 0, None)], np.nan)
    # backward fill for the slow rows before a track first moves
    bwd = np.where(moving, idx, n)
    ends = np.concatenate([c[1:] != c[:-1], [True]])
    bwd = np.minimum.accumulate(np.where(ends & ~moving, n, bwd)[::-1])[::-1]
    track_end = np.minimum.accumulate(np.where(ends, idx, n)[::-1])[::-1]
    back = np.where(bwd <= track_end, raw[np.clip(bwd, None, n - 1)], np.nan)
    heading_sorted = np.where(np.isfinite(filled), filled, np.where(np.isfinite(back), back, 0.0))
    heading = np.empty(n, dtype=np.float64)
    heading[order] = heading_sorted
    return heading


class InteractionAdapter(Adapter):
    """Reads INTERACTION recordings, one Scenario per time window.

    Args:
        config: Window length and map lookup; defaults to :class:`InteractionConfig`.
    """

    name: ClassVar[str] = "interaction"
    version: ClassVar[str] = "1"
    unit: ClassVar[Literal["file", "dir"]] = "file"
    licence: ClassVar[str] = "INTERACTION dataset terms (non-commercial, registration required)"
    download_hint: ClassVar[str] = "INTERACTION dataset: https://interaction-dataset.com (request access)"

    def __init__(self, config: InteractionConfig | None = None) -> None:
        self.config = config or InteractionConfig()

    def claims(self, path: Path) -> bool:
        return bool(_VEHICLE_FILE.fullmatch(path.name) or _PEDESTRIAN_FILE.fullmatch(path.name))

    def _read(self, path: Path) -> Iterator[Scenario]:
        vehicle_match = _VEHICLE_FILE.fullmatch(path.name)
        pedestrian_match = _PEDESTRIAN_FILE.fullmatch(path.name)
        if vehicle_match is None and pedestrian_match is None:
            raise UnsupportedFormatError(
                path, "not an INTERACTION vehicle_tracks_*.csv or pedestrian_tracks_*.csv"
            )
        recording = (vehicle_match or pedestrian_match).group(1)  # type: ignore[union-attr]
        vehicle_path = path.with_name(f"vehicle_tracks_{recording}.csv")
        pedestrian_path = path.with_name(f"pedestrian_tracks_{recording}.csv")
        if pedestrian_match is not None and vehicle_path.is_file():
            raise UnsupportedFormatError(
                path, f"pedestrian tracks are read with their recording, {vehicle_path.name}"
            )
        files: dict[str, tuple[Path, str]] = {}
        parts: list[_Rows] = []
        for role, file, vehicles in (("vehicle", vehicle_path, True), ("pedestrian", pedestrian_path, False)):
            if not file.is_file():
                continue
            data = file.read_bytes()
            files[role] = (file, hashlib.sha256(data).hexdigest())
            parts.append(_rows(file, data, vehicles=vehicles))
        rows = _concat(parts)
        if rows.frame.shape[0] == 0:
            raise EmptyLogError(path, "the recording has no rows")
        location = path.parent.name
        map_features, map_extras = self._map(location, path)
        yield from self._windows(path, rows, recording, location, files, map_features, map_extras)

    def _map(self, location: str, path: Path) -> tuple[MapFeatures | None, dict[str, Any]]:
        if not self.config.with_map:
            return None, {"map_file": None}
        maps_dir = self.config.maps_dir or path.parent.parent.parent / "maps"
        map_path = maps_dir / f"{location}.osm"
        if not map_path.is_file():
            return None, {"map_file": None}
        data = map_path.read_bytes()
        decoded = parse_lanelet2_map(data, map_path, origin_lat_lon=(0.0, 0.0))
        return decoded.map, {
            "map_file": map_path.name,
            "map_sha256": hashlib.sha256(data).hexdigest(),
            "map_origin_lat_lon": [0.0, 0.0],
            "map_num_warnings": decoded.extras["num_warnings"],
        }

    def _windows(
        self,
        path: Path,
        rows: _Rows,
        recording: str,
        location: str,
        files: Mapping[str, tuple[Path, str]],
        map_features: MapFeatures | None,
        map_extras: Mapping[str, Any],
    ) -> Iterator[Scenario]:
        offset_ms, step_ms = _time_axis(path, rows.frame, rows.timestamp_ms)
        window = max(1, round(self.config.window_s * 1000.0 / step_ms))

        # tracks in order of first appearance (vehicles first, as the files are concatenated)
        present, first_row = np.unique(rows.track_code, return_index=True)
        appearance = np.argsort(first_row, kind="stable")
        rank = np.zeros(rows.track_names.shape[0], dtype=np.int64)
        rank[present[appearance]] = np.arange(appearance.shape[0])
        codes = rank[rows.track_code]
        track_ids = rows.track_names[present[appearance]]
        first_row = first_row[appearance]
        track_agent = rows.agent_code[first_row]
        category = rows.agent_names[track_agent]
        object_type = np.array([agent_object_type(str(c)) for c in category], dtype=np.uint8)
        mixed = np.flatnonzero(rows.agent_code != track_agent[codes])
        if mixed.shape[0]:
            i = int(mixed[0])
            raise InvalidValueError(
                path,
                f"track {track_ids[codes[i]]} changes agent_type to {rows.agent_names[rows.agent_code[i]]!r}",
            )

        heading = rows.heading.copy()
        ped = np.isnan(heading)
        if ped.any():
            heading[ped] = _pedestrian_heading(codes[ped], rows.frame[ped], rows.velocity[ped])
        size = _median_size(codes, rows.length_width, track_ids.shape[0])

        f0, f_last = int(rows.frame.min()), int(rows.frame.max())
        window_of = (rows.frame - f0) // window
        order = np.argsort(window_of, kind="stable")
        present, first = np.unique(window_of[order], return_index=True)  # windows without rows are skipped
        bounds = np.append(first, order.shape[0])
        num_windows = int(window_of.max()) + 1
        vehicle_file = files.get("vehicle")
        pedestrian_file = files.get("pedestrian")
        main_sha = (vehicle_file or pedestrian_file or (path, ""))[1]
        for k, w in enumerate(present.tolist()):
            sel = order[bounds[k] : bounds[k + 1]]
            start = f0 + w * window
            stop = min(start + window, f_last + 1)
            local_tracks, local_codes = np.unique(codes[sel], return_inverse=True)
            step = rows.frame[sel] - start
            num_steps = stop - start
            if local_tracks.shape[0] * num_steps > MAX_WINDOW_CELLS:
                raise InvalidValueError(
                    path,
                    f"window {w} would hold {local_tracks.shape[0]} tracks x {num_steps} frames "
                    f"(more than {MAX_WINDOW_CELLS} states): frame_id/timestamp_ms are absurd",
                )
            flat = local_codes * num_steps + step
            size_flat = local_tracks.shape[0] * num_steps
            counts = np.bincount(flat, minlength=size_flat)
            if counts.max() > 1:
                dup = int(np.flatnonzero(counts > 1)[0])
                raise InvalidValueError(
                    path,
                    f"track {track_ids[local_tracks[dup // num_steps]]} has two rows for "
                    f"frame_id {start + dup % num_steps}",
                )
            tracks = Tracks.allocate(
                track_ids[local_tracks], object_type[local_tracks], category[local_tracks], num_steps
            )
            _fill(tracks, flat, rows, sel, heading)
            tracks.size_m[:] = size[local_tracks]
            frames = np.arange(start, stop, dtype=np.int64)
            timestamps_ns = np.rint((offset_ms + step_ms * frames) * 1e6).astype(np.int64)
            extras: dict[str, Any] = {
                "recording": recording,
                "window_index": w,
                "num_windows": num_windows,
                "window_s": self.config.window_s,
                "first_frame_id": start,
                "last_frame_id": stop - 1,
                "vehicle_file": None if vehicle_file is None else vehicle_file[0].name,
                "pedestrian_file": None if pedestrian_file is None else pedestrian_file[0].name,
                "pedestrian_sha256": None if pedestrian_file is None else pedestrian_file[1],
                **map_extras,
            }
            yield Scenario(
                scenario_id=f"{location}_{recording}_{w:03d}",
                source=self.name,
                timestamps_ns=timestamps_ns,
                tracks=tracks,
                metadata=self.metadata(
                    path,
                    main_sha,
                    frame=f"interaction_local_{location}",
                    member=f"window_{w:03d}",
                    location=location,
                    extras=extras,
                ),
                map=map_features,
            )


def _median_size(codes: NDArrayInt, length_width: NDArrayFloat, num_tracks: int) -> NDArrayFloat:
    """``(A, 3)`` per-track median length and width (NaN height, NaN where unknown)."""
    size = np.full((num_tracks, 3), np.nan, dtype=np.float64)
    known = np.isfinite(length_width).all(axis=1)
    c, lw = codes[known], length_width[known]
    for k in range(2):
        order = np.lexsort((lw[:, k], c))
        groups, values = c[order], lw[order, k]
        if groups.shape[0] == 0:
            break
        starts = np.flatnonzero(np.concatenate([[True], groups[1:] != groups[:-1]]))
        ends = np.concatenate([starts[1:], [groups.shape[0]]])
        lo = values[starts + (ends - starts - 1) // 2]
        hi = values[starts + (ends - starts) // 2]
        size[groups[starts], k] = (lo + hi) / 2.0
    return size


def _fill(tracks: Tracks, flat: NDArrayInt, rows: _Rows, sel: NDArrayInt, heading: NDArrayFloat) -> None:
    """Scatter the selected rows into the (just allocated) track arrays."""
    valid: NDArrayBool = tracks.valid.reshape(-1)
    valid[flat] = True
    tracks.xy_m.reshape(-1, 2)[flat] = rows.xy[sel]
    tracks.velocity_mps.reshape(-1, 2)[flat] = rows.velocity[sel]
    tracks.heading_rad.reshape(-1)[flat] = heading[sel]
