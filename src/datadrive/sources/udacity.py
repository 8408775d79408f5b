"""Udacity self-driving-car steering CSVs (Challenge 2 training logs) as :class:`Telemetry`.

The Udacity challenge drives (2016, a Lincoln MKZ with a Dataspeed drive-by-
wire kit) were published as ROS bags and as CSV exports of the steering
report, one row per camera frame: ``index`` (a datetime string),
``timestamp`` (ns), ``filename`` (``center/<ns>.jpg``), ``angle`` (steering
wheel angle, rad), ``torque`` (steering wheel torque, N m), ``speed`` (m/s),
plus path columns. The adapter claims a ``.csv``/``.txt`` file whose header
names ``timestamp`` and ``angle``; it needs ``torque`` and ``speed`` too.

Signals (names shared with the other CAN-derived telemetry):
``can/steering_angle`` (rad), ``can/steering_torque`` (N m) and ``can/speed``
(m/s); ``gnss/fix`` (lat deg, lon deg, alt m) when the export has ``lat``,
``long`` and ``alt`` columns. Empty cells become NaN.

Timestamps: the ``timestamp`` column is not exact. The exporter wrote it
through a float64, so integer-looking values are rounded to float64 spacing
(256 ns at 1.5e18; ``1479424215880976321`` is written ``1479424215880976384``)
and some are in float notation with 13 significant digits
(``1.479424223682e+18``). The digits in ``filename`` and the ``index``
datetime agree to the nanosecond on every row of the sample, so the exact
time is taken from ``filename``, else from ``index``, else (with a note in
``metadata.extras``) from ``timestamp``; the ``timestamp`` column must agree
with it to the precision it is written in. Timestamps are Unix ns (UTC).

There is no pose, so there is no ego track (``Telemetry.ego`` is ``None``):
dead-reckoning one from speed and steering angle would need the steering
ratio and wheelbase, which the file does not give.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from datadrive.core.telemetry import Signal, Telemetry
from datadrive.core.typing import NDArrayFloat, NDArrayInt
from datadrive.errors import (
    CorruptFileError,
    EmptyLogError,
    InvalidValueError,
    SchemaMismatchError,
)
from datadrive.sources.base import Adapter, Record

if TYPE_CHECKING:  # imported where a file is read (lazy adapter imports, see datadrive.sources)
    import pyarrow as pa

__all__ = ["UdacitySteeringAdapter"]

_REQUIRED = ("timestamp", "angle", "torque", "speed")
_SIGNALS = (
    ("angle", "can/steering_angle", "rad"),
    ("torque", "can/steering_torque", "N m"),
    ("speed", "can/speed", "m/s"),
)
_INTEGER_TOLERANCE_NS = 1024
_USED = frozenset({"index", "timestamp", "filename", "angle", "torque", "speed", "lat", "long", "alt"})
_HEADER_BYTES = 4096


def _header(raw: bytes) -> list[str] | None:
    """Column names of the first line, or None if it is not a CSV header line."""
    end = raw.find(b"\n")
    line = (raw if end < 0 else raw[:end]).rstrip(b"\r")
    if b"\0" in line:
        return None
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    return [c.strip() for c in next(csv.reader([text]), [])]


class UdacitySteeringAdapter(Adapter):
    """Reads a Udacity steering-report CSV into a :class:`Telemetry`."""

    name: ClassVar[str] = "udacity_steering"
    version: ClassVar[str] = "1"
    unit = "file"
    licence: ClassVar[str] = "MIT (udacity/self-driving-car datasets)"
    download_hint: ClassVar[str] = "https://github.com/udacity/self-driving-car/tree/master/datasets"

    def claims(self, path: Path) -> bool:
        if path.suffix.lower() not in (".csv", ".txt") or not path.is_file():
            return False
        with path.open("rb") as fh:
            names = _header(fh.read(_HEADER_BYTES))
        return names is not None and "timestamp" in names and "angle" in names

    def _read(self, path: Path) -> Iterator[Record]:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pcsv

        raw = path.read_bytes()
        if not raw or raw.isspace():
            raise EmptyLogError(path, "the file is empty")
        names = _header(raw)
        if names is None:
            raise CorruptFileError(path, "the first line is not a CSV header")
        missing = [c for c in _REQUIRED if c not in names]
        if missing:
            raise SchemaMismatchError(
                path, f"missing column(s) {', '.join(missing)} (has {', '.join(names)})"
            )
        if len(set(names)) != len(names):
            raise SchemaMismatchError(path, "the header repeats a column name")
        try:
            table = pcsv.read_csv(
                io.BytesIO(raw),
                convert_options=pcsv.ConvertOptions(
                    column_types={n: pa.string() for n in names},
                    strings_can_be_null=True,
                    include_columns=[n for n in names if n in _USED],  # not the path columns
                ),
            )
        except pa.ArrowInvalid as exc:
            raise CorruptFileError(path, f"malformed CSV ({exc})") from exc
        if table.num_rows == 0:
            raise EmptyLogError(path, "the CSV has a header but no rows")

        timestamps, extras = self._timestamps(path, table)
        values = {c: self._numbers(path, table, c) for c in ("angle", "torque", "speed")}
        order = np.argsort(timestamps, kind="stable")
        if bool(np.any(np.diff(timestamps) < 0)):
            extras["reordered_by_time"] = True  # every row kept, in time order
        ts = timestamps[order]
        signals = [
            Signal(name, unit, ts, values[column][order].reshape(-1, 1), (column,))
            for column, name, unit in _SIGNALS
        ]
        if all(c in names for c in ("lat", "long", "alt")):
            fix = np.stack([self._numbers(path, table, c) for c in ("lat", "long", "alt")], axis=-1)
            signals.append(
                Signal(
                    "gnss/fix",
                    "mixed",
                    ts,
                    fix[order],
                    ("latitude", "longitude", "altitude"),
                    ("deg", "deg", "m"),
                )
            )
        if "filename" in names:
            camera, _ = _split_last(pc.fill_null(table.column("filename"), ""), "/")
            counts = pc.value_counts(pc.fill_null(camera, "")).to_pylist()
            extras["camera_frames"] = {
                c["values"]: int(c["counts"]) for c in sorted(counts, key=lambda c: str(c["values"]))
            }
        extras["timestamps"] = "int64 ns since the Unix epoch (UTC)"
        yield Telemetry(
            telemetry_id=path.stem,
            source=self.name,
            signals=tuple(signals),
            metadata=self.metadata(
                path, hashlib.sha256(raw).hexdigest(), frame="none (no pose)", extras=extras
            ),
        )

    @staticmethod
    def _numbers(path: Path, table: pa.Table, column: str) -> NDArrayFloat:
        import pyarrow as pa
        import pyarrow.compute as pc

        col = pc.utf8_trim_whitespace(table.column(column))
        col = pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)
        try:
            numbers = pc.cast(col, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            bad = next(
                (i, v) for i, v in enumerate(col.to_pylist()) if v is not None and not _is_float(v)
            )  # the error path only: find the row to name
            raise InvalidValueError(
                path, f"column {column!r} row {bad[0] + 1} holds {bad[1]!r}, not a number"
            ) from exc
        return np.asarray(numbers.to_numpy(zero_copy_only=False), dtype=np.float64)

    @staticmethod
    def _timestamps(path: Path, table: pa.Table) -> tuple[NDArrayInt, dict[str, Any]]:
        import pyarrow as pa
        import pyarrow.compute as pc

        extras: dict[str, Any] = {}
        candidates: list[tuple[str, NDArrayInt]] = []
        names = table.column_names
        if "filename" in names:
            from_name = _filename_ns(table.column("filename"))
            if from_name is not None:
                candidates.append(("filename", from_name))
        if "index" in names:
            try:
                dt = pc.cast(table.column("index"), pa.timestamp("ns"))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                dt = None
            if dt is not None and dt.null_count == 0:
                candidates.append(("index", np.asarray(dt.cast(pa.int64()).to_numpy(), dtype=np.int64)))
        column, written_ns, tolerance_ns = _timestamp_column(path, table)
        if candidates:
            source, exact = candidates[0]
            for other, values in candidates[1:]:
                if not bool(np.array_equal(exact, values)):
                    row = int(np.flatnonzero(exact != values)[0])
                    raise InvalidValueError(path, f"row {row + 1}: {source} and {other} give different times")
            off = np.abs(written_ns - exact)
            bad = np.flatnonzero(off > tolerance_ns)
            if bad.shape[0]:
                row = int(bad[0])
                written = column[row].as_py()
                raise InvalidValueError(
                    path,
                    f"row {row + 1}: timestamp {written!r} disagrees with the {source} time {exact[row]}",
                )
            extras["timestamps_from"] = source
            extras["timestamp_column_max_error_ns"] = int(off.max())
        else:
            exact = written_ns
            extras["timestamps_from"] = "timestamp column (exact only to float64 precision)"
        extras["float_notation_timestamps"] = int(np.count_nonzero(tolerance_ns > _INTEGER_TOLERANCE_NS))
        return exact, extras


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split_last(column: pa.ChunkedArray | pa.Array, separator: str) -> tuple[pa.Array, pa.Array]:
    """``(head, tail)`` of each string split at its last ``separator`` (head is null without one)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = pc.split_pattern(column, separator, max_splits=1, reverse=True)
    if isinstance(parts, pa.ChunkedArray):
        parts = parts.combine_chunks()
    two = pc.equal(pc.list_value_length(parts), 2)
    flat = pc.list_flatten(parts)
    ends = np.asarray(parts.offsets.to_numpy()[1:], dtype=np.int64)
    tail = flat.take(pa.array(ends - 1))
    head = pc.if_else(two, flat.take(pa.array(np.maximum(ends - 2, 0))), pa.scalar(None, pa.string()))
    return head, tail


def _filename_ns(filenames: pa.ChunkedArray) -> NDArrayInt | None:
    """The ns digits of ``<camera>/<ns>.<ext>`` names, or None unless every row has them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if filenames.null_count:
        return None
    _, name = _split_last(filenames, "/")
    digits, ext = _split_last(name, ".")
    if digits.null_count or not bool(
        pc.all(pc.is_in(pc.utf8_lower(ext), pa.array(["jpg", "jpeg", "png"]))).as_py()
    ):
        return None
    try:
        ns = pc.cast(digits, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if not bool(pc.all(pc.utf8_is_digit(digits)).as_py()):  # no signs, spaces or decimal points
        return None
    return np.asarray(ns.to_numpy(zero_copy_only=False), dtype=np.int64)


def _timestamp_column(path: Path, table: pa.Table) -> tuple[pa.Array, NDArrayInt, NDArrayInt]:
    """The ``timestamp`` column as text, as ns, and the precision each value is written to.

    Integer notation is trusted to 1024 ns (the exporter's float64 rounding is at
    most 128 ns for times between 2^60 and 2^61 ns, 2006 to 2043); float notation
    to half a unit of its last digit.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    col = pc.utf8_trim_whitespace(table.column("timestamp"))
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if col.null_count:
        row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise InvalidValueError(path, f"row {row + 1} has no timestamp")
    is_float = pc.or_(pc.match_substring(col, "."), pc.match_substring(col, "e", ignore_case=True))
    is_int = ~np.asarray(is_float.to_numpy(zero_copy_only=False), dtype=np.bool_)
    ns = np.zeros(len(col), dtype=np.int64)
    tolerance = np.full(len(col), _INTEGER_TOLERANCE_NS, dtype=np.int64)
    try:
        if is_int.any():
            ints = pc.cast(pc.filter(col, pa.array(is_int)), pa.int64())
            ns[is_int] = ints.to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(~is_int):  # rare: the sample has 33 of 4401
            text = str(col[int(i)].as_py())
            value = float(text)
            if not (np.isfinite(value) and abs(value) < 9.2e18):
                raise ValueError(text)
            ns[i] = round(value)
            mantissa, _, exponent = text.lower().partition("e")
            decimals = len(mantissa.partition(".")[2])
            tolerance[i] += int(0.5 * 10.0 ** max(int(exponent or 0) - decimals, 0))
    except (ValueError, OverflowError, pa.ArrowInvalid) as exc:
        raise InvalidValueError(path, f"a timestamp is not a number of ns ({exc})") from exc
    return col, ns, tolerance
