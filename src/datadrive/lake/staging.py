"""Parquet files written by whoever converts the rows, added to the Delta log by the commit.

An ingest worker converts an input's records to rows and writes them itself,
as Parquet data files under the tables' folders (:func:`stage_rows`), so the
rows never travel back to the committing process and their encoding runs in
parallel. A file stays invisible until a lake commit adds it to its table's
log (:func:`add_actions`); the committing process only sends the log entries.

Every staged file holds rows of one batch, in one partition (the batch id is
in the rows, so erasure's whole-batch rewrites keep working): a worker's file
the rows of one input; the commit's ``scenarios`` file those of every input
of the batch it accepted (an input's row or two, ~70 columns, cost more as a
file of their own than to send to the commit).
A file whose commit never happens (a crash, an input found to be a duplicate
at the commit) is not referenced by any version: readers never see it, the
commit deletes the ones it rejects, and ``optimize`` / erasure vacuums
remove the ones a crashed run left.

Files are written the way the lake reads them: the table's Delta schema
without its partition columns (their values are in the log), Parquet
statistics on every scalar column (they let a scan skip a file; an erased
file takes its footer with it), and as cheaply as the bytes allow, since
encoding is a large cost of an ingest after reading (docs/benchmarks.md,
the lake notes): zstd level 1 with dictionaries for text only (float lists
gain nothing from them). LZ4 would save ~0.03 s CPU of the samples' ~1.5 s
ingest but store ~1.25x the bytes, and ``optimize`` leaves a partition's
only file as it is, so that would stay. A file of a row or two is written
uncompressed and without dictionaries, where the per-column codec set-up
costs more than the few bytes it saves. ``optimize`` rewrites small files
with the lake's writer.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc

from datadrive.lake.schema import TableSpec
from datadrive.lake.storage import StorageRoot, storage_error

__all__ = ["StagedFile", "add_actions", "delete_staged", "file_schema", "missing_staged", "stage_rows"]

COMPRESSION = "zstd"
"""The page codec of staged files."""
COMPRESSION_LEVEL = 1
"""zstd's fastest level: on the samples ~0.8x the bytes of LZ4 for ~1.35x its encoding CPU."""
SMALL_FILE_BYTES = 64 * 1024
"""Rows under this many Arrow bytes are written uncompressed, without dictionaries."""
WRITE_BUFFER_BYTES = 1 << 20
"""Bytes gathered before each write to a staged file."""


@dataclass(frozen=True)
class StagedFile:
    """A Parquet data file written for a batch, not yet in its table's log.

    Attributes:
        table: The table's name.
        path: Its path relative to the table's root (``/``-separated).
        size: Bytes.
        partition_values: ``(column, value)`` of the table's partition columns.
        num_records: Rows in it.
        stats: Delta statistics (JSON) of the table's statistics columns.
        modification_time_ms: When it was written.
    """

    table: str
    path: str
    size: int
    partition_values: tuple[tuple[str, str | None], ...]
    num_records: int
    stats: str
    modification_time_ms: int


def file_schema(table_schema: pa.Schema, spec: TableSpec) -> pa.Schema:
    """The schema of a data file of ``spec``'s table: its Delta schema without the partition columns."""
    return pa.schema([f for f in table_schema if f.name not in spec.partition_by])


@functools.lru_cache(maxsize=64)
def _writer_options(schema: pa.Schema, small: bool = False) -> dict[str, Any]:
    """How a file of ``schema`` is written: zstd 1, dictionaries for text, statistics for scalars.

    ``small``: the rows are under :data:`SMALL_FILE_BYTES`: no compression, no dictionaries.
    """

    def nested(t: pa.DataType) -> bool:
        return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))

    def texty(t: pa.DataType) -> bool:
        if nested(t):
            return texty(t.value_type)
        return bool(pa.types.is_string(t) or pa.types.is_large_string(t))

    return {
        "compression": "none" if small else COMPRESSION,
        "compression_level": None if small else COMPRESSION_LEVEL,
        "use_dictionary": False if small else [f.name for f in schema if texty(f.type)],
        "write_statistics": [f.name for f in schema if not nested(f.type)],
    }


def _stats(rows: pa.Table, spec: TableSpec) -> str:
    """Delta's per-file statistics for the table's statistics columns."""
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for name in spec.stats_columns:
        if name not in rows.column_names or name in spec.partition_by:
            continue
        col = rows.column(name)
        nulls[name] = col.null_count
        if col.null_count == len(col):
            continue
        t = col.type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_string(t)):
            continue
        mm = pc.min_max(col)
        mins[name], maxs[name] = mm["min"].as_py(), mm["max"].as_py()
    return json.dumps(
        {"numRecords": rows.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls},
        separators=(",", ":"),
    )


def _partitions(rows: pa.Table, spec: TableSpec) -> list[tuple[tuple[tuple[str, str | None], ...], pa.Table]]:
    """The rows split by the values of the partition columns."""
    cols = list(spec.partition_by)
    if not cols:
        return [((), rows)]
    uniques = [pc.unique(rows.column(c)) for c in cols]
    if all(len(u) == 1 for u in uniques):  # one input's rows: almost always one partition
        return [(tuple((c, u[0].as_py()) for c, u in zip(cols, uniques, strict=True)), rows)]
    # one grouping pass, then one take per partition (a batch's rows: a partition per source); the
    # commit's rows come as one chunk per input, and a take over ~70 columns of 30-odd chunks costs
    # ~5x one over a single chunk (combining is a copy of a few KiB)
    rows = rows.combine_chunks()
    groups = (
        rows.select(cols)
        .append_column("_row", pa.array(range(rows.num_rows), pa.int64()))
        .group_by(cols, use_threads=False)
        .aggregate([("_row", "list")])
    )
    keys = {c: groups.column(c).to_pylist() for c in cols}
    positions = groups.column("_row_list")
    return [
        (tuple((c, keys[c][g]) for c in cols), rows.take(positions[g].values)) for g in range(groups.num_rows)
    ]


def _partition_dir(values: Sequence[tuple[str, str | None]]) -> str:
    return "/".join(
        f"{c}={'__HIVE_DEFAULT_PARTITION__' if v is None else quote(str(v), safe='')}" for c, v in values
    )


def stage_rows(
    root: StorageRoot,
    tables: Iterable[tuple[TableSpec, pa.Table]],
    schemas: Mapping[str, pa.Schema],
    *,
    name: str,
) -> tuple[StagedFile, ...]:
    """Write rows as Parquet data files under their tables (not committed).

    Args:
        root: The region root.
        tables: ``(table, rows)``; rows have the table's lake schema.
        schemas: Table name -> its data file schema (:func:`file_schema`).
        name: What the files' names start with (the batch id and the input).

    Returns:
        The files written.

    Raises:
        StorageError: if the root refuses a write; the files written before
            it are deleted.
    """
    import pyarrow.parquet as pq

    fs = root.filesystem()
    written: list[StagedFile] = []
    folders: set[str] = set()
    try:
        for spec, rows in tables:
            if rows.num_rows == 0:
                continue
            schema = schemas[spec.name]
            for k, (values, part) in enumerate(_partitions(rows, spec)):
                relative = "/".join(
                    p
                    for p in (_partition_dir(values), f"part-{name}-{k:03d}-{uuid.uuid4().hex[:8]}.parquet")
                    if p
                )
                data = part.select(schema.names)
                if data.schema != schema:
                    data = data.cast(schema)
                path = root.path(spec.name, *relative.split("/"))
                try:
                    folder = path.rsplit("/", 1)[0]
                    if folder not in folders:
                        fs.create_dir(folder, recursive=True)
                        folders.add(folder)
                    # buffered: the writer emits every page and footer piece as its own write
                    with fs.open_output_stream(path, buffer_size=WRITE_BUFFER_BYTES) as sink:
                        pq.write_table(data, sink, **_writer_options(schema, data.nbytes < SMALL_FILE_BYTES))
                        size = int(sink.tell())  # the footer is written: the file's length, without a stat
                except Exception as exc:
                    with contextlib.suppress(OSError):  # a partly written file holds the space it took
                        fs.delete_file(path)
                    raise storage_error(root, f"write the batch to {spec.name}", exc) from exc
                written.append(
                    StagedFile(
                        table=spec.name,
                        path=relative,
                        size=size,
                        partition_values=tuple(values),
                        num_records=part.num_rows,
                        stats=_stats(part, spec),
                        modification_time_ms=int(time.time() * 1000),
                    )
                )
    except BaseException:
        delete_staged(root, written)
        raise
    return tuple(written)


def delete_staged(root: StorageRoot, files: Iterable[StagedFile]) -> None:
    """Delete staged files (those a commit rejected); missing ones are fine."""
    fs = root.filesystem()
    for f in files:
        with contextlib.suppress(OSError):  # FileNotFoundError included
            fs.delete_file(root.path(f.table, *f.path.split("/")))


def missing_staged(root: StorageRoot, files: Sequence[StagedFile]) -> list[StagedFile]:
    """The staged files no longer there (a vacuum with zero retention ran meanwhile)."""
    import pyarrow.fs as pafs

    if not files:
        return []
    fs = root.filesystem()
    infos = fs.get_file_info([root.path(f.table, *f.path.split("/")) for f in files])
    return [f for f, i in zip(files, infos, strict=True) if i.type == pafs.FileType.NotFound]


def add_actions(files: Iterable[StagedFile]) -> dict[str, list[Any]]:
    """Table name -> the Delta add actions of its staged files."""
    from deltalake.transaction import AddAction

    out: dict[str, list[Any]] = {}
    for f in files:
        out.setdefault(f.table, []).append(
            AddAction(
                path=f.path,
                size=f.size,
                partition_values=dict(f.partition_values),
                modification_time=f.modification_time_ms,
                data_change=True,
                stats=f.stats,
            )
        )
    return out
