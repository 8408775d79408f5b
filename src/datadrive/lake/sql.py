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
from collections.abc import Callable, Mapping
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


class SqlSession:
    """A locked-down DuckDB connection over a set of Arrow datasets, for many queries.

    The datasets are registered (scanned in place, no copy) and the views
    created once; then file access, extension loading and configuration
    changes are switched off for good. Queries are serialised (one DuckDB
    connection), so a session may be shared between threads.

    Args:
        datasets: Table name -> dataset (already pinned and tenant-filtered).
    """

    def __init__(self, datasets: Mapping[str, ds.Dataset]) -> None:
        import duckdb

        con = duckdb.connect(
            ":memory:",
            config={
                "enable_external_access": False,
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "allow_community_extensions": False,
            },
        )
        for name, data in datasets.items():
            con.register(name, data)
        for name, body in VIEWS.items():
            con.execute(f"CREATE VIEW {name} AS {body}")
        con.execute("SET lock_configuration = true")
        self._con: Any = con
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._con.close()

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
            con = self._con
            try:
                statements = con.extract_statements(text)
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
            try:
                relation = con.sql(text)
                table = relation.to_arrow_table() if relation is not None else pa.table({})
            except duckdb.PermissionException as exc:
                raise refuse(
                    "sql",
                    shown,
                    ResidencyError(
                        f"the query tried to reach files outside the lake's tables, which is refused ({exc})"
                    ),
                ) from exc
            except duckdb.Error as exc:
                raise LakeError(f"SQL error: {exc}") from exc
        audit("sql", shown, {"rows": table.num_rows, "sha256": digest})
        return table
