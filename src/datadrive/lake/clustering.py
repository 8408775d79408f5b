"""Ordering a table's rows by place across its files, for ``lake optimize``.

A per-state table is appended one batch at a time, each batch's rows in a
file of their own. Each file can be ordered by place (``mining.index``
does), but a batch holds scenarios from everywhere, so a spatial query
(a box on ``x_m``/``y_m``) still finds a row group of almost every file
whose min/max statistics overlap it, and compaction, which merges files as
they are, keeps that. :func:`cluster_table` rewrites every partition of a
table whose :class:`~datadrive.lake.schema.TableSpec` declares a
:class:`~datadrive.lake.schema.Clustering` in one global order: scenarios
by the Z-order (Morton) code of the grid cell of their mean position
(:func:`place_codes`), then by key; inside a scenario by the declared
columns (``track_index``, ``step``). Row groups then hold a few nearby
places each, and a box skips the rest by their statistics.

The rewrite is DuckDB's sort (``ORDER BY`` on two integers and the
declared columns, under a memory limit, spilling to a temporary folder),
streamed into Parquet files written the way the lake writes the table
(its row-group size, zstd level 1, statistics on every scalar column).
The new files replace the old in **one** Delta commit of the table whose
add and remove actions say ``dataChange: false`` (the rows are the same,
as for compaction); the caller pins it in a lake version. A crash before
that commit leaves files no version refers to (named
``part-cluster-...``), which the vacuum of a later ``optimize`` removes;
a crash after it leaves the table's head ahead of the lake's pin, which is
harmless: the head holds the same rows.

Notation:
    S: scenarios of a partition.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from datadrive.errors import LakeError
from datadrive.lake.schema import Clustering, TableSpec
from datadrive.lake.staging import _partition_dir, _writer_options, file_schema
from datadrive.lake.tables import RegionStore, sql_quote

__all__ = ["CLUSTER_FILE_PREFIX", "ClusterReport", "cluster_table", "memory_bytes", "place_codes"]

CLUSTER_FILE_PREFIX = "part-cluster-"
"""What the names of the files :func:`cluster_table` writes start with."""

_GROUPS_PER_FILE = 64
"""Row groups per file written (8.4M rows, ~60 MiB, for ``mining_states``)."""

_DEFAULT_GROUP_ROWS = 1 << 20

_SORT_BYTES_PER_ROW = 512
"""Memory a row of a per-state table takes in DuckDB's sort, generously: a bucket of
``memory limit / this`` rows sorts without spilling."""

_UNITS = {"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def memory_bytes(limit: str) -> int:
    """Bytes of a memory limit such as ``2GB`` or ``512MiB`` (DuckDB's units).

    Raises:
        LakeError: if it is not such a size.
    """
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]i?b)", limit.strip(), re.IGNORECASE)
    if m is None:
        raise LakeError(f"memory limit {limit!r}: give a size such as 2GB or 512MiB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def place_codes(x_m: npt.ArrayLike, y_m: npt.ArrayLike, cell_m: float) -> npt.NDArray[np.uint64]:
    """Z-order (Morton) codes of the ``cell_m`` grid cells holding the points: nearby cells, nearby codes.

    Args:
        x_m: ``(S,)`` x of each point (NaN: the cell of 0).
        y_m: ``(S,)`` y.
        cell_m: Side of a cell.

    Returns:
        ``(S,)`` codes: the cell's x and y, offset by 2**31 to be
        non-negative, bits interleaved (x in the even bits).
    """

    def cells(v: npt.ArrayLike) -> npt.NDArray[np.int64]:
        a = np.nan_to_num(np.asarray(v, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        out: npt.NDArray[np.int64] = np.clip(np.floor(a / cell_m) + 2**31, 0, 2**32 - 1).astype(np.int64)
        return out

    def spread(c: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
        v = c.astype(np.uint64) & np.uint64(0xFFFFFFFF)
        for shift, mask in (
            (16, 0x0000FFFF0000FFFF),
            (8, 0x00FF00FF00FF00FF),
            (4, 0x0F0F0F0F0F0F0F0F),
            (2, 0x3333333333333333),
            (1, 0x5555555555555555),
        ):
            v = (v | (v << np.uint64(shift))) & np.uint64(mask)
        return v

    return spread(cells(x_m)) | (spread(cells(y_m)) << np.uint64(1))


@dataclass(frozen=True)
class ClusterReport:
    """What :func:`cluster_table` did to one table.

    Attributes:
        partitions: Partitions rewritten.
        partitions_skipped: Partitions already in order (one clustering's files, nothing added since).
        files_removed: Files the new ones replace.
        files_added: Files written.
        rows: Rows rewritten.
        version: The table's version after the commit (``None``: nothing to do).
        seconds: Wall time.
    """

    partitions: int
    partitions_skipped: int
    files_removed: int
    files_added: int
    rows: int
    version: int | None
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "partitions": self.partitions,
            "partitions_skipped": self.partitions_skipped,
            "files_removed": self.files_removed,
            "files_added": self.files_added,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class _File:
    path: str  # as the log spells it (percent-encoded)
    size: int
    partition: tuple[tuple[str, str | None], ...]


def _live_files(dt: Any, spec: TableSpec) -> dict[tuple[tuple[str, str | None], ...], list[_File]]:
    """The table's live files by partition values."""
    actions = pa.table(dt.get_add_actions(flatten=True))
    paths = actions.column("path").to_pylist()
    sizes = actions.column("size_bytes").to_pylist()
    parts = [
        actions.column(f"partition.{c}").to_pylist()
        if f"partition.{c}" in actions.column_names
        else [None] * actions.num_rows
        for c in spec.partition_by
    ]
    out: dict[tuple[tuple[str, str | None], ...], list[_File]] = {}
    for i, (path, size) in enumerate(zip(paths, sizes, strict=True)):
        key = tuple((c, parts[j][i]) for j, c in enumerate(spec.partition_by))
        out.setdefault(key, []).append(_File(str(path), int(size), key))
    return out


def _clustered(files: list[_File]) -> bool:
    """Whether a partition is one clustering's output, nothing added since."""
    runs = {
        f.path.rsplit("/", 1)[-1][len(CLUSTER_FILE_PREFIX) :].split("-", 1)[0]
        for f in files
        if f.path.rsplit("/", 1)[-1].startswith(CLUSTER_FILE_PREFIX)
    }
    return len(runs) == 1 and all(f.path.rsplit("/", 1)[-1].startswith(CLUSTER_FILE_PREFIX) for f in files)


class _Stats:
    """Delta statistics of one file, merged over the chunks written to it."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self.rows = 0
        self.mins: dict[str, Any] = {}
        self.maxs: dict[str, Any] = {}
        self.nulls: dict[str, int] = dict.fromkeys(columns, 0)

    def add(self, chunk: pa.Table) -> None:
        self.rows += chunk.num_rows
        for name in self.columns:
            col = chunk.column(name)
            self.nulls[name] += col.null_count
            if col.null_count == len(col):
                continue
            mm = pc.min_max(col)
            lo, hi = mm["min"].as_py(), mm["max"].as_py()
            self.mins[name] = lo if name not in self.mins else min(self.mins[name], lo)
            self.maxs[name] = hi if name not in self.maxs else max(self.maxs[name], hi)

    def json(self) -> str:
        return json.dumps(
            {
                "numRecords": self.rows,
                "minValues": self.mins,
                "maxValues": self.maxs,
                "nullCount": self.nulls,
            },
            separators=(",", ":"),
        )


def _chunks(reader: Any, rows: int) -> Iterator[pa.Table]:
    """The reader's rows in tables of exactly ``rows`` (the last one shorter)."""
    pending: list[pa.RecordBatch] = []
    have = 0
    for batch in reader:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        have += batch.num_rows
        while have >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows).combine_chunks()
            rest = table.slice(rows)
            pending = rest.to_batches()
            have = rest.num_rows
    if have:
        yield pa.Table.from_batches(pending).combine_chunks()


class _Writer:
    """Sorted rows into files of :data:`_GROUPS_PER_FILE` row groups, with their Delta statistics."""

    def __init__(self, fs: Any, folder: str, stem: str, schema: pa.Schema, group_rows: int) -> None:
        self.fs, self.folder, self.stem, self.schema, self.group_rows = fs, folder, stem, schema, group_rows
        self.options = _writer_options(schema)
        self.done: list[tuple[str, int, str]] = []  # (path, bytes, stats JSON)
        self.rows = 0
        self._writer: Any = None
        self._sink: Any = None
        self._path = ""
        self._groups = 0
        self._stats = _Stats([])
        if folder:
            fs.create_dir(folder, recursive=True)

    def write(self, chunk: pa.Table, stats_columns: list[str]) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:
            name = f"{self.stem}-{len(self.done):05d}.parquet"
            self._path = f"{self.folder}/{name}" if self.folder else name
            self._sink = self.fs.open_output_stream(self._path, buffer_size=1 << 20)  # pages: few, big writes
            # one page per column and group, as the lake's writer (datadrive.lake.tables.writer_properties)
            self._writer = pq.ParquetWriter(self._sink, self.schema, data_page_size=8 << 20, **self.options)
            self._stats = _Stats(stats_columns)
            self._groups = 0
        self._writer.write_table(chunk, row_group_size=self.group_rows)
        self._stats.add(chunk)
        self.rows += chunk.num_rows
        self._groups += 1
        if self._groups >= _GROUPS_PER_FILE:
            self.close()

    def close(self) -> None:
        """Finish the open file (if any)."""
        if self._writer is None:
            return
        self._writer.close()
        size = int(self._sink.tell())
        self._sink.close()
        self.done.append((self._path, size, self._stats.json()))
        self._writer = self._sink = None

    def abandon(self) -> None:
        """Delete the file left open by a failure."""
        if self._writer is None:
            return
        with contextlib.suppress(Exception):
            self._writer.close()
            self._sink.close()
        with contextlib.suppress(OSError):
            self.fs.delete_file(self._path)
        self._writer = self._sink = None


def _sorted_batches(
    con: Any, stage: str, columns: list[str], key: str, within: tuple[str, ...], buckets: int, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """The rows of view ``src`` in place order (``ranks``: key -> place_rank, bucket), as record batches.

    One bucket: one sort. Several: one pass writes each row to its bucket's
    zstd Parquet files under ``stage`` (no sort), then each bucket is sorted
    on its own, in bucket order, and its files deleted: the disk holds about
    one compressed copy of the rows, not an uncompressed sort spill of all.
    """
    cols = ", ".join(f'"{c}"' for c in columns)
    order = ", ".join(["place_rank", *(f'"{c}"' for c in within)])
    joined = (
        f"SELECT {', '.join(f's.{chr(34)}{c}{chr(34)}' for c in columns)}, r.place_rank, r.bucket "
        f'FROM src s JOIN ranks r ON s."{key}" = r.k'
    )
    if buckets == 1:
        yield from con.sql(f"SELECT {cols} FROM ({joined}) ORDER BY {order}").to_arrow_reader(batch_rows)
        return
    con.execute(
        f"COPY ({joined}) TO {sql_quote(stage)} "
        "(FORMAT parquet, PARTITION_BY (bucket), COMPRESSION zstd, ROW_GROUP_SIZE 131072)"
    )
    for b in range(buckets):
        folder = f"{stage}/bucket={b}"
        files = sql_quote(f"{folder}/*.parquet")
        query = f"SELECT {cols} FROM read_parquet({files}, hive_partitioning = false) ORDER BY {order}"
        yield from con.sql(query).to_arrow_reader(batch_rows)
        shutil.rmtree(folder, ignore_errors=True)


def cluster_table(
    store: RegionStore,
    spec: TableSpec,
    *,
    memory_limit: str = "2GB",
    threads: int | None = None,
    temp_dir: str | None = None,
    commit_properties: Any = None,
) -> ClusterReport:
    """Rewrite ``spec``'s table in its declared clustering order (see the module docstring).

    Call under the region's commit lock, after recovery; pin the version it
    returns in a lake version.

    Args:
        store: The region's tables.
        spec: A table whose spec has a :class:`~datadrive.lake.schema.Clustering`.
        memory_limit: DuckDB's memory limit for the sort (it spills beyond).
        threads: DuckDB threads (default: DuckDB's, one per core).
        temp_dir: Where the sort spills (default: a fresh temporary folder, removed after).
        commit_properties: Delta ``CommitProperties`` of the table's commit.

    Returns:
        A :class:`ClusterReport`.

    Raises:
        ValueError: if the spec declares no clustering.
        Exception: whatever the storage raises; the files written so far are deleted.
    """
    import duckdb
    from deltalake.transaction import AddAction, RemoveAction

    if spec.clustering is None:
        raise ValueError(f"table {spec.name} declares no clustering")
    how: Clustering = spec.clustering
    key = spec.key_column or "scenario_id"
    t0 = time.perf_counter()
    dt = store.table(spec)
    by_partition = _live_files(dt, spec)
    todo = {k: v for k, v in sorted(by_partition.items()) if not _clustered(v)}
    if not todo:
        return ClusterReport(0, len(by_partition), 0, 0, 0, None, time.perf_counter() - t0)
    schema = file_schema(pa.schema(dt.schema().to_arrow()), spec)
    group_rows = spec.row_group_rows or _DEFAULT_GROUP_ROWS
    bucket_rows = max(group_rows, memory_bytes(memory_limit) // _SORT_BYTES_PER_ROW)
    stats_columns = [c for c in spec.stats_columns if c in schema.names]
    fs = store.root.table_filesystem(spec.name)
    run = uuid.uuid4().hex[:12]
    spill = tempfile.mkdtemp(prefix="datadrive-cluster-", dir=temp_dir)
    written: list[tuple[str, int, Mapping[str, str | None], str]] = []
    rows_total = 0
    committing = False
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"SET temp_directory = {sql_quote(spill)}")
        con.execute(f"SET memory_limit = '{memory_limit}'")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        for k, (partition, files) in enumerate(todo.items()):
            relative = [unquote(f.path) for f in files]
            if store.root.is_local:
                base = store.root.path(spec.name)
                listed = ", ".join(sql_quote(f"{base}/{p}") for p in relative)
                con.execute(
                    "CREATE OR REPLACE VIEW src AS SELECT * FROM "
                    f"read_parquet([{listed}], hive_partitioning = false)"
                )
            else:
                import pyarrow.dataset as pds

                data = pds.dataset(relative, schema=schema, format="parquet", filesystem=fs)
                con.register("src_arrow", data)
                con.execute("CREATE OR REPLACE VIEW src AS SELECT * FROM src_arrow")
            places = con.sql(
                f'SELECT "{key}" AS k, avg("{how.x_column}") AS x, avg("{how.y_column}") AS y, '
                f'count(*) AS n FROM src GROUP BY "{key}"'
            ).to_arrow_table()
            codes = place_codes(
                places.column("x").to_numpy(zero_copy_only=False),
                places.column("y").to_numpy(zero_copy_only=False),
                how.cell_m,
            )
            n = places.num_rows
            by_key = np.empty(n, dtype=np.int64)
            by_key[pc.sort_indices(places.column("k")).to_numpy()] = np.arange(n)
            order = np.lexsort((by_key, codes))
            rank = np.empty(n, dtype=np.int64)
            rank[order] = np.arange(n)
            # buckets of consecutive places, each small enough to sort in memory
            sizes = places.column("n").to_numpy(zero_copy_only=False).astype(np.int64)[order]
            bucket = np.empty(n, dtype=np.int64)
            bucket[order] = (np.cumsum(sizes) - sizes) // bucket_rows
            con.register(
                "ranks", pa.table({"k": places.column("k"), "place_rank": rank, "bucket": pa.array(bucket)})
            )
            out = _Writer(
                fs, _partition_dir(partition), f"{CLUSTER_FILE_PREFIX}{run}-{k:03d}", schema, group_rows
            )
            batches = _sorted_batches(
                con,
                f"{spill}/buckets-{k:03d}",
                schema.names,
                key,
                how.within,
                int(bucket.max()) + 1,
                group_rows,
            )
            try:
                for chunk in _chunks(batches, group_rows):
                    out.write(chunk if chunk.schema == schema else chunk.cast(schema), stats_columns)
                out.close()
            finally:
                written += [(p, size, dict(partition), js) for p, size, js in out.done]
                out.abandon()
            rows_total += out.rows
            con.unregister("ranks")
        now_ms = int(time.time() * 1000)
        removed = [
            RemoveAction(
                path=f.path,
                data_change=False,
                deletion_timestamp=now_ms,
                size=f.size,
                partition_values=dict(f.partition),
            )
            for files in todo.values()
            for f in files
        ]
        added = [
            AddAction(
                path=p,
                size=size,
                partition_values=dict(values),
                modification_time=now_ms,
                data_change=False,
                stats=stats_json,
            )
            for p, size, values, stats_json in written
        ]
        committing = True  # from here a failure may have landed: leave the files to vacuum
        dt.create_write_transaction(
            [*removed, *added],
            mode="append",
            schema=dt.schema(),
            partition_by=list(spec.partition_by) or None,
            commit_properties=commit_properties,
        )
    except BaseException:
        if not committing:
            for p, *_ in written:
                with contextlib.suppress(OSError):
                    fs.delete_file(p)
        raise
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    version = int(store.table(spec).version())
    return ClusterReport(
        partitions=len(todo),
        partitions_skipped=len(by_partition) - len(todo),
        files_removed=sum(len(v) for v in todo.values()),
        files_added=len(written),
        rows=rows_total,
        version=version,
        seconds=time.perf_counter() - t0,
    )
