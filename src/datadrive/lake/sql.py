"""Read-only SQL over a snapshot, in an embedded DuckDB.

The snapshot's tables are scanned in place (no copy), pinned to the lake
version and filtered to the tenants the principal may read. A table on the
local disk partitioned by tenant is read by DuckDB's own Parquet reader,
over exactly the files of its pinned version in the permitted tenants'
partitions (an order of magnitude faster than scanning it through Arrow);
any other table (object storage, not partitioned by tenant, empty) is
registered as the tenant-filtered Arrow dataset. Before any user SQL runs,
the connection is locked down: no file system access beyond those files
(``enable_external_access = false`` with ``allowed_paths`` the files above:
no ``read_parquet`` of another region's folder or another tenant's
partition, no ``COPY ... TO``, no ``ATTACH``, no extension install), and the
configuration is locked so a query cannot undo it. Only ``SELECT``
statements (and ``EXPLAIN`` of one) are accepted, judged by the statement
type DuckDB's own parser gives (an ``EXPLAIN ANALYZE`` is judged by the
statement it runs); anything else is refused with a clear error naming the
statement and audited, as is a query DuckDB stops for touching files.

Tables: ``scenarios``, ``tracks``, ``map_features``, ``telemetry``,
``ingests``, and the derived per-scenario tables (mining's ``mining_states``,
``events``, ``mining_index``, ``mining_results``). Views (unknown values are
``NULL``, never NaN: DuckDB sorts NaN above every number):

* ``states``: one row per valid (scenario, track, step) with its timestamp,
  ``x_m``, ``y_m``, ``z_m``, ``heading_rad``, ``vx_mps``, ``vy_mps`` and
  ``object_type_name``;
* ``map_points``: one row per map point with the feature's kind name;
* ``signal_samples``: one row per telemetry sample, ``sample_values`` a list
  in the order of ``channels``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from datadrive.core.scenario import MapFeatureKind, ObjectType
from datadrive.errors import AccessDeniedError, LakeError, QueryTimeoutError, ResidencyError, one_line

__all__ = [
    "DEFAULT_POOL_SIZE",
    "VIEWS",
    "ParquetScan",
    "SqlResult",
    "SqlSession",
    "Statement",
    "classify",
    "masked",
    "parquet_scan",
]


def _case(column: str, names: dict[int, str]) -> str:
    whens = " ".join(f"WHEN {k} THEN '{v}'" for k, v in names.items())
    return f"CASE {column} {whens} END"


def _null_nan(expr: str) -> str:
    """``expr`` with NaN as NULL: DuckDB sorts NaN above every number (``ORDER BY x DESC`` puts it
    first, ``max`` returns it), so an unknown value must be NULL in anything meant for SQL."""
    return f"nullif({expr}, 'NaN'::DOUBLE)"


_TYPE_NAME = _case("t.object_type", {int(t): t.name.lower() for t in ObjectType})
_KIND_NAME = _case("kind", {int(k): k.name.lower() for k in MapFeatureKind})

VIEWS: dict[str, str] = {
    "states": f"""
        SELECT tenant, source, scenario_id, track_index, track_id, object_type, object_type_name, category,
               step, timestamp_ns, x_m, y_m, z_m, heading_rad, vx_mps, vy_mps
        FROM (
            SELECT t.tenant, t.source, t.scenario_id, t.track_index, t.track_id, t.object_type,
                   {_TYPE_NAME} AS object_type_name, t.category,
                   unnest(range(len(t.valid))) AS step, unnest(s.timestamps_ns) AS timestamp_ns,
                   {_null_nan("unnest(t.x_m)")} AS x_m, {_null_nan("unnest(t.y_m)")} AS y_m,
                   {_null_nan("unnest(t.z_m)")} AS z_m, {_null_nan("unnest(t.heading_rad)")} AS heading_rad,
                   {_null_nan("unnest(t.vx_mps)")} AS vx_mps, {_null_nan("unnest(t.vy_mps)")} AS vy_mps,
                   unnest(t.valid) AS valid
            FROM tracks t JOIN scenarios s USING (tenant, source, scenario_id)
        )
        WHERE valid
    """,
    "map_points": f"""
        SELECT tenant, source, scenario_id, feature_index, feature_id, kind, {_KIND_NAME} AS kind_name,
               subtype, is_intersection, unnest(range(len(x_m))) AS point_index,
               unnest(x_m) AS x_m, unnest(y_m) AS y_m, {_null_nan("unnest(z_m)")} AS z_m
        FROM map_features
    """,
    "signal_samples": f"""
        SELECT tenant, source, telemetry_id, signal, unit, channels, crs, sample, timestamp_ns,
               list_transform(
                   list_slice(vals, sample * len(channels) + 1, (sample + 1) * len(channels)),
                   lambda v: {_null_nan("v")}
               ) AS sample_values
        FROM (
            SELECT tenant, source, telemetry_id, name AS signal, unit, channels, crs, "values" AS vals,
                   unnest(range(len(timestamps_ns))) AS sample, unnest(timestamps_ns) AS timestamp_ns
            FROM telemetry WHERE row_kind = 'signal'
        )
    """,
}
"""The convenience views, by name."""

_ALLOWED = {"SELECT"}
_FILE_LABELS = {"COPY", "EXPORT", "IMPORT", "ATTACH", "DETACH", "LOAD", "INSTALL", "UPDATE EXTENSIONS"}
"""Statements (by their first words) that read or write files: refused as residency breaches."""
_LABEL_WORDS = 3


@dataclass(frozen=True)
class Statement:
    """What one SQL statement is, as DuckDB's own parser sees it.

    Attributes:
        kind: DuckDB's statement type of the statement that would run: for
            ``EXPLAIN [ANALYZE] [(options)] X``, the type of ``X`` (looked
            at recursively), since ``EXPLAIN ANALYZE`` runs ``X``.
        label: Its first keywords as typed (``COPY FROM DATABASE``,
            ``INSTALL``, ``DROP VIEW``), what a refusal names: DuckDB files
            some statements under another type (``INSTALL`` under LOAD,
            ``USE`` under SET, ``CHECKPOINT`` under CALL).
    """

    kind: str
    label: str

    @property
    def reads_files(self) -> bool:
        """Whether the statement's purpose is to read or write files (or fetch extensions)."""
        first = self.label.split(" ")[0]
        return self.kind in ("COPY", "EXPORT", "ATTACH", "DETACH", "LOAD", "COPY_DATABASE", "EXTENSION") or (
            first in _FILE_LABELS or self.label.startswith("UPDATE EXTENSIONS")
        )


def classify(text: str) -> Statement:
    """The :class:`Statement` one statement's text is, by DuckDB's parser and tokenizer (never by regex).

    Raises:
        LakeError: if DuckDB cannot parse it, or it holds no statement or
            more than one (the caller checks the count first).
    """
    import duckdb

    tokens = duckdb.tokenize(text)
    try:
        statements = duckdb.extract_statements(text)
        if len(statements) != 1:
            raise LakeError(f"SQL error: expected one statement, found {len(statements)}")
        kind = statements[0].type.name
    except ValueError:  # parsed, but a statement type this Python package has no name for
        return Statement("UNKNOWN", _label(text, tokens) or "UNKNOWN")
    except duckdb.Error as exc:
        raise LakeError(f"SQL error: {one_line(str(exc))}") from exc
    words = [
        (offset, _token_text(text, tokens, i)) for i, (offset, t) in enumerate(tokens) if t.name != "comment"
    ]
    if kind != "EXPLAIN":
        return Statement(kind, _label(text, tokens))
    # EXPLAIN [ANALYZE] [(options)] <statement>: ANALYZE runs it, so it is judged by what it wraps
    k = 1
    if k < len(words) and words[k][1].upper() in ("ANALYZE", "ANALYSE"):
        k += 1
    if k < len(words) and words[k][1] == "(":
        depth = 0
        while k < len(words):
            depth += words[k][1] == "("
            depth -= words[k][1] == ")"
            k += 1
            if depth == 0:
                break
    if k >= len(words):
        return Statement("EXPLAIN", "EXPLAIN")
    inner = classify(text[words[k][0] :])
    return inner if inner.kind != "SELECT" else Statement("SELECT", "EXPLAIN " + inner.label)


def masked(text: str) -> str:
    """``text`` as the audit log keeps it: string literals become ``?`` and comments go.

    What a user types into a query's literals (``LIKE '%veh-45%'``, a
    dongle id) can identify a vehicle or a person, and the audit log is
    append-only: it cannot be erased from there later. So the log keeps the
    query's shape and the SHA-256 of its full text (which proves what ran to
    anyone who holds the text), never the literals. Tokens are DuckDB's own.
    """
    import duckdb

    try:
        with _PARSE_LOCK:  # the module-level tokenizer shares the default connection (not thread-safe)
            tokens = duckdb.tokenize(text)
    except Exception:
        return f"<{len(text)} characters>"
    out: list[str] = []
    pos = 0
    for i, (offset, t) in enumerate(tokens):
        end = tokens[i + 1][0] if i + 1 < len(tokens) else len(text)
        if t.name not in ("string_const", "comment"):
            continue
        piece = text[offset:end]
        body = piece.rstrip()
        out.append(text[pos:offset])
        out.append("?" if t.name == "string_const" else "")
        out.append(piece[len(body) :])
        pos = end
    out.append(text[pos:])
    return " ".join("".join(out).split())


def _token_text(text: str, tokens: Sequence[tuple[int, Any]], i: int) -> str:
    end = tokens[i + 1][0] if i + 1 < len(tokens) else len(text)
    return text[tokens[i][0] : end].strip()


def _label(text: str, tokens: Sequence[tuple[int, Any]]) -> str:
    """The statement's leading keywords, upper case (at most a few)."""
    words: list[str] = []
    for i, (_, t) in enumerate(tokens):
        if t.name == "comment":
            continue
        if t.name != "keyword" or len(words) == _LABEL_WORDS:
            break
        words.append(_token_text(text, tokens, i).upper())
    return " ".join(words)


@dataclass(frozen=True)
class ParquetScan:
    """A table's local Parquet files at one version, grouped by partition values, for DuckDB to read.

    Attributes:
        columns: The table's columns, in its schema's order.
        groups: (partition column -> value, absolute file paths) per partition.
    """

    columns: tuple[str, ...]
    groups: tuple[tuple[tuple[tuple[str, str], ...], tuple[str, ...]], ...]

    @property
    def paths(self) -> list[str]:
        """Every file, for DuckDB's ``allowed_paths``."""
        return [f for _, files in self.groups for f in files]

    def select(self) -> str:
        """SQL reading the table: one ``read_parquet`` per partition, partition values as literals."""
        parts = []
        for keys, files in self.groups:
            values = dict(keys)
            cols = ", ".join(
                f"{_literal(values[c])} AS {_quote(c)}" if c in values else _quote(c) for c in self.columns
            )
            listed = ", ".join(_literal(f) for f in files)
            parts.append(f"SELECT {cols} FROM read_parquet([{listed}], hive_partitioning = false)")
        return " UNION ALL ".join(parts)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def parquet_scan(data: ds.Dataset, tenants: Sequence[str]) -> ParquetScan | None:
    """The files of ``data`` (an unfiltered table version) that ``tenants`` may read, if DuckDB can read them.

    ``None`` (scan the tenant-filtered Arrow dataset instead) unless the
    dataset is Parquet on the local file system, every file sits in a
    ``tenant`` partition (so a file holds one tenant's rows and listing only
    the permitted tenants' files filters by tenant), the partition values are
    strings, and at least one file is permitted.
    """
    if not isinstance(data, ds.FileSystemDataset) or not isinstance(data.format, ds.ParquetFileFormat):
        return None
    fs, base = data.filesystem, ""
    if isinstance(fs, pafs.SubTreeFileSystem):
        fs, base = fs.base_fs, fs.base_path
    if not isinstance(fs, pafs.LocalFileSystem):
        return None
    allowed = set(tenants)
    string_fields = {
        f.name for f in data.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    }
    groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for fragment in data.get_fragments():
        keys = ds.get_partition_keys(fragment.partition_expression)
        if "tenant" not in keys or any(
            k not in string_fields or not isinstance(v, str) for k, v in keys.items()
        ):
            return None
        if keys["tenant"] in allowed:
            path = fragment.path if not base else base.rstrip("/") + "/" + fragment.path.lstrip("/")
            groups.setdefault(tuple(sorted(keys.items())), []).append(path)
    if not groups:
        return None
    return ParquetScan(
        columns=tuple(data.schema.names),
        groups=tuple((keys, tuple(files)) for keys, files in sorted(groups.items())),
    )


@dataclass(frozen=True)
class SqlResult:
    """The answer to one query.

    Attributes:
        table: The rows.
        region: The region queried.
        version: The lake version they come from.
    """

    table: pa.Table
    region: str
    version: int


_NARROW_MARKER = "datadrive-narrow-cache: column "
"""Start of the error a cached table's uncached column raises (the query then runs on the datasets)."""

_CACHE_AFTER_QUERIES = 2
"""A session builds its cache at its second query: a one-shot process (``datadrive sql``) never pays it."""


def _connect(allowed_paths: Sequence[str] = ()) -> Any:
    """A DuckDB connection that may open no file but ``allowed_paths`` (and no extension)."""
    import duckdb

    con = duckdb.connect(
        ":memory:",
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
        },
    )
    # allowed_paths can only be set while external access is on; no user SQL has run yet
    con.execute("SET allowed_paths = ?", [sorted(set(allowed_paths))])
    con.execute("SET enable_external_access = false")
    return con


_PARSE_LOCK = threading.Lock()
"""DuckDB's module-level parser functions share one default connection, which is not thread-safe."""

DEFAULT_POOL_SIZE = 4
"""Queries one session runs at once (one DuckDB cursor each); more callers wait for a free cursor."""


class _Pool:
    """Cursors of one locked-down DuckDB connection, each used by one query at a time.

    A DuckDB connection is not thread-safe, but cursors of it (connections to
    the same in-memory database: its cached tables, views and lock-down) may
    run queries in parallel, one thread each. Arrow datasets registered on a
    connection are local to it, so each new cursor registers them again (no
    copy). The base connection only makes cursors; closing it closes them, so
    :meth:`close` waits for the cursors in use to come back.
    """

    def __init__(self, con: Any, registered: Mapping[str, ds.Dataset], size: int) -> None:
        self._base = con
        self._registered = dict(registered)
        self._size = max(1, size)
        self._idle: list[Any] = []
        self._open = 0
        self._busy = 0
        self._closed = False
        self._cond = threading.Condition()

    @contextmanager
    def cursor(self) -> Iterator[Any]:
        """A cursor for one query (waits while ``size`` are in use); ``None`` once the pool is closed."""
        with self._cond:
            while not self._closed and not self._idle and self._open >= self._size:
                self._cond.wait()
            if self._closed:
                cur = None
            elif self._idle:
                cur = self._idle.pop()
            else:
                cur = self._base.cursor()
                for name, data in self._registered.items():
                    cur.register(name, data)
                self._open += 1
            self._busy += cur is not None
        if cur is None:
            yield None
            return
        try:
            yield cur
        finally:
            with self._cond:
                self._busy -= 1
                self._idle.append(cur)
                if self._closed and self._busy == 0:
                    self._base.close()
                self._cond.notify()

    @property
    def size(self) -> int:
        """Cursors open now (idle or in use)."""
        with self._cond:
            return self._open

    def close(self) -> None:
        """Close the connection and its cursors (once the ones in use are returned)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            if self._busy == 0:
                self._base.close()
            self._cond.notify_all()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqlSession:
    """Locked-down DuckDB connections over a set of Arrow datasets, for many queries from many threads.

    The datasets are registered (scanned in place, no copy) and the views
    created once; then file access, extension loading and configuration
    changes are switched off for good.

    **The pool.** Queries run on cursors of that connection (connections to
    the same in-memory database, sharing its views, cached tables and
    lock-down), up to ``pool_size`` at once, one thread each; a cursor is
    kept for the next query, so a long-lived process (the service) pays for
    opening DuckDB, registering the pinned tables and creating the views
    once per snapshot rather than per request. A session may be shared
    between threads. It never outlives its snapshot: a new lake version is a
    new snapshot with a new session (the service's gateway takes one as soon
    as the ledger moves), so a pooled cursor never answers from a stale
    version. Every query is still judged and audited as before, one audit
    row each.

    **The cache.** From its second query on, a session keeps the narrow
    columns of the tables named in ``cacheable`` (one row per scenario, input
    or event: every column but lists, binaries and the ones listed as wide,
    save the short lists named in ``cached_lists``) as
    DuckDB tables in memory, so scenario-level queries no longer open every
    Parquet file of the table. A query runs there first; in that connection
    a wide column of a cached table raises when it is evaluated (so
    ``SELECT *`` or any use of a wide value cannot silently come back
    short), and views that need one do not exist, so such a query, and any
    other the cache cannot answer, runs again over the datasets. Answers are
    the same either way; only the time differs.

    **Native scans.** A table named in ``native`` (its permitted local
    Parquet files, see :func:`parquet_scan`) is read by DuckDB's own Parquet
    reader instead of its dataset (an order of magnitude faster for the
    per-state tables); those files are the only ones the connections may
    open. A table whose view cannot be created that way (a file without one
    of its columns) falls back to its dataset.

    Args:
        datasets: Table name -> dataset (already pinned and tenant-filtered).
        cacheable: Table name -> its wide columns, for the tables worth
            caching.
        cached_lists: Table name -> the list columns its cache keeps anyway.
        native: Table name -> its permitted local Parquet files.
        pool_size: Queries run at once (cursors per connection).
    """

    def __init__(
        self,
        datasets: Mapping[str, ds.Dataset],
        *,
        cacheable: Mapping[str, Sequence[str]] | None = None,
        cached_lists: Mapping[str, Sequence[str]] | None = None,
        native: Mapping[str, ParquetScan] | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
    ) -> None:
        self._datasets = dict(datasets)
        self._cacheable = {k: tuple(v) for k, v in (cacheable or {}).items() if k in self._datasets}
        self._cached_lists = {k: frozenset(v) for k, v in (cached_lists or {}).items()}
        self._native = {k: v for k, v in (native or {}).items() if k in self._datasets}
        self._pool_size = pool_size
        self._full = _Pool(*self._connection(self._datasets, cached={}, native=self._native), size=pool_size)
        self._fast: _Pool | None = None
        self._queries = 0
        self._building = False
        self._cache_allowed = bool(self._cacheable)
        self._lock = threading.Lock()
        self.cache_hits = 0
        """Queries answered from the cache so far."""

    @staticmethod
    def _connection(
        datasets: Mapping[str, ds.Dataset],
        cached: Mapping[str, tuple[list[str], list[str]]],
        native: Mapping[str, ParquetScan],
    ) -> tuple[Any, dict[str, ds.Dataset]]:
        """A locked-down connection (tables registered or read natively, cached tables materialised,
        views), and the datasets registered on it (each cursor of it registers them again).

        Args:
            cached: Table name -> (narrow columns, all columns) for the tables
                to hold in memory (the rest are scanned from their datasets
                or, where ``native`` names them, their Parquet files).
        """
        import duckdb

        con = _connect([p for scan in native.values() for p in scan.paths])
        registered: dict[str, ds.Dataset] = {}
        for name, data in datasets.items():
            if name in cached:
                continue
            scan = native.get(name)
            if scan is not None:
                try:
                    con.execute(f"CREATE VIEW {_quote(name)} AS {scan.select()}")
                    continue
                except duckdb.Error:
                    pass  # a file without one of the table's columns: read it through Arrow
            con.register(name, data)
            registered[name] = data
        wide_types: dict[str, dict[str, str]] = {}
        for name, (narrow, columns) in cached.items():
            source = f"__datadrive_source_{name}"
            con.register(source, datasets[name])
            types = {
                row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM {_quote(source)}").fetchall()
            }
            wide_types[name] = {c: types[c] for c in columns if c not in narrow}
            selected = ", ".join(_quote(c) for c in narrow)
            cache = _quote(f"__datadrive_cache_{name}")
            con.execute(f"CREATE TABLE {cache} AS SELECT {selected} FROM {_quote(source)}")
            con.unregister(source)
            con.execute(f"CREATE VIEW {_quote(name)} AS SELECT {selected} FROM {cache}")
        for name, body in VIEWS.items():
            try:
                con.execute(f"CREATE VIEW {name} AS {body}")
            except duckdb.BinderException:
                if not cached:
                    raise
                # the view needs a column the cache does not hold: queries on it use the datasets
        for name, (narrow, columns) in cached.items():
            parts = [
                _quote(c)
                if c in narrow
                else f"CAST(error('{_NARROW_MARKER}{c}') AS {wide_types[name][c]}) AS {_quote(c)}"
                for c in columns
            ]
            body = ", ".join(parts)
            cache = _quote(f"__datadrive_cache_{name}")
            con.execute(f"CREATE OR REPLACE VIEW {_quote(name)} AS SELECT {body} FROM {cache}")
        con.execute("SET lock_configuration = true")
        return con, registered

    def _build_cache(self) -> _Pool:
        cached: dict[str, tuple[list[str], list[str]]] = {}
        for name, wide in self._cacheable.items():
            schema = self._datasets[name].schema
            keep = self._cached_lists.get(name, frozenset())
            narrow = [
                f.name for f in schema if f.name not in wide and (f.name in keep or not _is_wide_type(f.type))
            ]
            cached[name] = (narrow, list(schema.names))
        return _Pool(*self._connection(self._datasets, cached, self._native), size=self._pool_size)

    def drop_cache(self) -> None:
        """Stop answering from the cache (and free it): every later query scans the datasets."""
        with self._lock:
            self._cache_allowed = False
            fast, self._fast = self._fast, None
        if fast is not None:
            fast.close()  # queries already running on it finish first

    @property
    def cached(self) -> bool:
        """Whether the cache is built and in use."""
        return self._fast is not None

    @property
    def cursors(self) -> int:
        """DuckDB cursors open now, over the datasets and the cache together (at most ``pool_size`` each)."""
        fast = self._fast
        return self._full.size + (fast.size if fast is not None else 0)

    def close(self) -> None:
        """Close the connections (each once the queries running on it are done)."""
        with self._lock:
            self._cache_allowed = False
            fast, self._fast = self._fast, None
        self._full.close()
        if fast is not None:
            fast.close()

    def run(
        self,
        query: str,
        *,
        audit: Callable[[str, str, Mapping[str, Any]], None],
        refuse: Callable[[str, str, Exception], Exception],
        timeout_s: float | None = None,
    ) -> pa.Table:
        """Run one statement; audit it (``audit("sql", query, facts)``) before returning its rows.

        ``timeout_s`` interrupts the statement once it has run that long
        (cache attempt and dataset scan together).

        Raises:
            QueryTimeoutError: if it ran past ``timeout_s`` (refused: audited).
            AccessDeniedError: for a statement other than SELECT/EXPLAIN (refused: audited).
            ResidencyError: for a statement or function that reads or writes
                files (COPY, EXPORT, ATTACH, read_parquet of a path, ...; audited).
            LakeError: for a query DuckDB cannot run (syntax, unknown column),
                or on a closed session.
        """
        import duckdb

        text = query.strip()
        digest = hashlib.sha256(text.encode()).hexdigest()
        shown = masked(text)
        shown = shown if len(shown) <= 2000 else shown[:2000] + "..."
        with _PARSE_LOCK:
            try:
                count = len(duckdb.extract_statements(text))
            except ValueError:  # parsed, but a statement type the Python package cannot name
                count = 2 if ";" in text.rstrip(" ;\n") else 1
            except duckdb.Error as exc:
                raise LakeError(f"SQL error: {one_line(str(exc))}") from exc
            if not count:
                raise LakeError("SQL error: no statement given")
            if count > 1:
                raise refuse("sql", shown, AccessDeniedError("one statement per query, please"))
            statement = classify(text)
        if statement.reads_files:
            raise refuse(
                "sql",
                shown,
                ResidencyError(
                    f"{statement.label} is refused: SQL over the lake cannot read or write files (raw "
                    "data leaves a region only through `datadrive lake export`, as its policy allows)"
                ),
            )
        if statement.kind not in _ALLOWED:
            raise refuse(
                "sql",
                shown,
                AccessDeniedError(
                    f"{statement.label or statement.kind} is refused: SQL over the lake is read-only "
                    "(SELECT only)"
                ),
            )
        with self._lock:
            self._queries += 1
            build = (
                self._fast is None
                and self._cache_allowed
                and not self._building
                and self._queries >= _CACHE_AFTER_QUERIES
            )
            self._building |= build
        if build:  # this query waits for the cache; others meanwhile run over the datasets
            try:
                built: _Pool | None = self._build_cache()
            finally:
                with self._lock:
                    self._building = False
            with self._lock:
                if self._cache_allowed and self._fast is None:
                    self._fast, built = built, None
            if built is not None:  # dropped or closed while it was being built
                built.close()
        table = None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        fast = self._fast
        if fast is not None:
            with fast.cursor() as cur:
                if cur is not None:
                    table = self._try(
                        cur, text, shown, refuse, cached=True, deadline=deadline, timeout_s=timeout_s
                    )
            if table is not None:
                with self._lock:
                    self.cache_hits += 1
        if table is None:
            with self._full.cursor() as cur:
                if cur is None:
                    raise LakeError("SQL error: this snapshot's SQL session is closed")
                table = self._try(
                    cur, text, shown, refuse, cached=False, deadline=deadline, timeout_s=timeout_s
                )
        assert table is not None
        audit("sql", shown, {"rows": table.num_rows, "sha256": digest})
        return table

    def _vacuumed(self) -> int:
        """How many of the natively read files are gone (vacuumed after an erasure or by retention)."""
        import os

        return sum(1 for scan in self._native.values() for f in scan.paths if not os.path.exists(f))

    def _try(
        self,
        con: Any,
        text: str,
        shown: str,
        refuse: Callable[[str, str, Exception], Exception],
        *,
        cached: bool,
        deadline: float | None = None,
        timeout_s: float | None = None,
    ) -> pa.Table | None:
        """The query's rows from ``con``; ``None`` if the cache (``cached``) cannot answer it.

        With a ``deadline`` (``time.monotonic()``), the connection is
        interrupted when it passes.
        """
        import duckdb

        timer = None
        if deadline is not None:
            timer = threading.Timer(max(0.0, deadline - time.monotonic()), con.interrupt)
            timer.daemon = True
            timer.start()
        try:
            relation = con.sql(text)
            return relation.to_arrow_table() if relation is not None else pa.table({})
        except duckdb.InterruptException as exc:
            raise refuse(
                "sql", shown, QueryTimeoutError(f"the query ran past its time limit of {timeout_s or 0:g} s")
            ) from exc
        except duckdb.PermissionException as exc:
            # DuckDB reads a missing file's path as a pattern, which the lock-down refuses
            gone = self._vacuumed()
            if gone:
                raise LakeError(
                    f"SQL error: {gone} files of this lake version were removed by vacuum (erasure or "
                    "retention); read a later lake version"
                ) from exc
            raise refuse(
                "sql",
                shown,
                ResidencyError(
                    "the query tried to reach files outside the lake's tables, which is refused "
                    f"({one_line(str(exc), limit=200)})"
                ),
            ) from exc
        except (duckdb.CatalogException, duckdb.BinderException) as exc:
            if cached:
                return None
            raise LakeError(f"SQL error: {one_line(str(exc))}") from exc
        except duckdb.InvalidInputException as exc:
            if cached and _NARROW_MARKER in str(exc):
                return None
            raise LakeError(f"SQL error: {one_line(str(exc))}") from exc
        except duckdb.Error as exc:
            raise LakeError(f"SQL error: {one_line(str(exc))}") from exc
        finally:
            if timer is not None:
                timer.cancel()


def _is_wide_type(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_struct(t)
        or pa.types.is_map(t)
    )
