"""Read-only SQL over a snapshot, in an embedded DuckDB.

The snapshot's tables are registered as Arrow datasets (DuckDB scans them
in place, no copy), already pinned to the lake version and filtered to the
tenants the principal may read. Before any user SQL runs, the connection is
locked down: no file system access (``enable_external_access = false``: no
``read_parquet`` of another region's folder, no ``COPY ... TO``, no
``ATTACH``, no extension install), and the configuration is locked so a
query cannot undo it. Only ``SELECT`` (and ``EXPLAIN``) statements are
accepted; anything else is refused with a clear error and audited, as is a
query DuckDB stops for touching files.

Tables: ``scenarios``, ``tracks``, ``map_features``, ``telemetry``,
``ingests``. Views:

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from datadrive.core.scenario import MapFeatureKind, ObjectType
from datadrive.errors import AccessDeniedError, LakeError, ResidencyError

__all__ = ["VIEWS", "SqlResult", "SqlSession"]


def _case(column: str, names: dict[int, str]) -> str:
    whens = " ".join(f"WHEN {k} THEN '{v}'" for k, v in names.items())
    return f"CASE {column} {whens} END"


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
                   unnest(t.x_m) AS x_m, unnest(t.y_m) AS y_m, unnest(t.z_m) AS z_m,
                   unnest(t.heading_rad) AS heading_rad, unnest(t.vx_mps) AS vx_mps,
                   unnest(t.vy_mps) AS vy_mps, unnest(t.valid) AS valid
            FROM tracks t JOIN scenarios s USING (tenant, source, scenario_id)
        )
        WHERE valid
    """,
    "map_points": f"""
        SELECT tenant, source, scenario_id, feature_index, feature_id, kind, {_KIND_NAME} AS kind_name,
               subtype, is_intersection, unnest(range(len(x_m))) AS point_index,
               unnest(x_m) AS x_m, unnest(y_m) AS y_m, unnest(z_m) AS z_m
        FROM map_features
    """,
    "signal_samples": """
        SELECT tenant, source, telemetry_id, signal, unit, channels, crs, sample, timestamp_ns,
               list_slice(vals, sample * len(channels) + 1, (sample + 1) * len(channels)) AS sample_values
        FROM (
            SELECT tenant, source, telemetry_id, name AS signal, unit, channels, crs, "values" AS vals,
                   unnest(range(len(timestamps_ns))) AS sample, unnest(timestamps_ns) AS timestamp_ns
            FROM telemetry WHERE row_kind = 'signal'
        )
    """,
}
"""The convenience views, by name."""

_ALLOWED = {"SELECT", "EXPLAIN"}
_FILE_STATEMENTS = {"COPY", "EXPORT", "ATTACH", "DETACH", "LOAD", "COPY_DATABASE", "EXTENSION"}


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


def _connect() -> Any:
    import duckdb

    return duckdb.connect(
        ":memory:",
        config={
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
        },
    )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqlSession:
    """Locked-down DuckDB connections over a set of Arrow datasets, for many queries.

    The datasets are registered (scanned in place, no copy) and the views
    created once; then file access, extension loading and configuration
    changes are switched off for good. Queries are serialised (one DuckDB
    connection at a time), so a session may be shared between threads.

    **The cache.** From its second query on, a session keeps the narrow
    columns of the tables named in ``cacheable`` (one row per scenario or per
    input: every column but lists, binaries and the ones listed as wide) as
    DuckDB tables in memory, so scenario-level queries no longer open every
    Parquet file of the table. A query runs there first; in that connection
    a wide column of a cached table raises when it is evaluated (so
    ``SELECT *`` or any use of a wide value cannot silently come back
    short), and views that need one do not exist, so such a query, and any
    other the cache cannot answer, runs again over the datasets. Answers are
    the same either way; only the time differs.

    Args:
        datasets: Table name -> dataset (already pinned and tenant-filtered).
        cacheable: Table name -> its wide columns, for the tables worth
            caching.
    """

    def __init__(
        self, datasets: Mapping[str, ds.Dataset], *, cacheable: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        self._datasets = dict(datasets)
        self._cacheable = {k: tuple(v) for k, v in (cacheable or {}).items() if k in self._datasets}
        self._full: Any = self._connection(self._datasets, cached={})
        self._fast: Any = None
        self._queries = 0
        self._cache_allowed = bool(self._cacheable)
        self._lock = threading.Lock()
        self.cache_hits = 0
        """Queries answered from the cache so far."""

    @staticmethod
    def _connection(
        datasets: Mapping[str, ds.Dataset], cached: Mapping[str, tuple[list[str], list[str]]]
    ) -> Any:
        """A locked-down connection: datasets registered, cached tables materialised, views created.

        Args:
            cached: Table name -> (narrow columns, all columns) for the tables
                to hold in memory (the rest are scanned from their datasets).
        """
        import duckdb

        con = _connect()
        for name, data in datasets.items():
            if name not in cached:
                con.register(name, data)
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
        return con

    def _build_cache(self) -> None:
        cached: dict[str, tuple[list[str], list[str]]] = {}
        for name, wide in self._cacheable.items():
            schema = self._datasets[name].schema
            narrow = [f.name for f in schema if f.name not in wide and not _is_wide_type(f.type)]
            cached[name] = (narrow, list(schema.names))
        self._fast = self._connection(self._datasets, cached)

    def drop_cache(self) -> None:
        """Stop answering from the cache (and free it): every later query scans the datasets."""
        with self._lock:
            self._cache_allowed = False
            if self._fast is not None:
                self._fast.close()
                self._fast = None

    @property
    def cached(self) -> bool:
        """Whether the cache is built and in use."""
        return self._fast is not None

    def close(self) -> None:
        """Close the connections."""
        with self._lock:
            self._full.close()
            if self._fast is not None:
                self._fast.close()
                self._fast = None

    def run(
        self,
        query: str,
        *,
        audit: Callable[[str, str, Mapping[str, Any]], None],
        refuse: Callable[[str, str, Exception], Exception],
    ) -> pa.Table:
        """Run one statement; audit it (``audit("sql", query, facts)``) before returning its rows.

        Raises:
            AccessDeniedError: for a statement other than SELECT/EXPLAIN (refused: audited).
            ResidencyError: for a statement or function that reads or writes
                files (COPY, EXPORT, ATTACH, read_parquet of a path, ...; audited).
            LakeError: for a query DuckDB cannot run (syntax, unknown column).
        """
        import duckdb

        text = query.strip()
        digest = hashlib.sha256(text.encode()).hexdigest()
        shown = text if len(text) <= 2000 else text[:2000] + "..."
        with self._lock:
            try:
                statements = self._full.extract_statements(text)
            except duckdb.Error as exc:
                raise LakeError(f"SQL error: {exc}") from exc
            if not statements:
                raise LakeError("SQL error: no statement given")
            if len(statements) > 1:
                raise refuse("sql", shown, AccessDeniedError("one statement per query, please"))
            kind = statements[0].type.name
            if kind in _FILE_STATEMENTS:
                raise refuse(
                    "sql",
                    shown,
                    ResidencyError(
                        f"{kind} is refused: SQL over the lake cannot read or write files (raw data "
                        "leaves a region only through `datadrive lake export`, as its policy allows)"
                    ),
                )
            if kind not in _ALLOWED:
                raise refuse(
                    "sql",
                    shown,
                    AccessDeniedError(f"{kind} is refused: SQL over the lake is read-only (SELECT only)"),
                )
            self._queries += 1
            if self._fast is None and self._cache_allowed and self._queries >= _CACHE_AFTER_QUERIES:
                self._build_cache()
            table = None
            if self._fast is not None:
                table = self._try(self._fast, text, shown, refuse, cached=True)
                self.cache_hits += table is not None
            if table is None:
                table = self._try(self._full, text, shown, refuse, cached=False)
            assert table is not None
        audit("sql", shown, {"rows": table.num_rows, "sha256": digest})
        return table

    @staticmethod
    def _try(
        con: Any, text: str, shown: str, refuse: Callable[[str, str, Exception], Exception], *, cached: bool
    ) -> pa.Table | None:
        """The query's rows from ``con``; ``None`` if the cache (``cached``) cannot answer it."""
        import duckdb

        try:
            relation = con.sql(text)
            return relation.to_arrow_table() if relation is not None else pa.table({})
        except duckdb.PermissionException as exc:
            raise refuse(
                "sql",
                shown,
                ResidencyError(
                    f"the query tried to reach files outside the lake's tables, which is refused ({exc})"
                ),
            ) from exc
        except (duckdb.CatalogException, duckdb.BinderException) as exc:
            if cached:
                return None
            raise LakeError(f"SQL error: {exc}") from exc
        except duckdb.InvalidInputException as exc:
            if cached and _NARROW_MARKER in str(exc):
                return None
            raise LakeError(f"SQL error: {exc}") from exc
        except duckdb.Error as exc:
            raise LakeError(f"SQL error: {exc}") from exc


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
