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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from datadrive.core.scenario import MapFeatureKind, ObjectType
from datadrive.errors import AccessDeniedError, LakeError, QueryTimeoutError, ResidencyError

if TYPE_CHECKING:
    from datadrive.lake.snapshot import Snapshot

__all__ = ["VIEWS", "SqlResult", "run_query"]


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


def _connect(snapshot: Snapshot) -> Any:
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
    for name, data in snapshot._datasets_for_sql().items():
        con.register(name, data)
    for name, body in VIEWS.items():
        con.execute(f"CREATE VIEW {name} AS {body}")
    con.execute("SET lock_configuration = true")
    return con


def run_query(snapshot: Snapshot, query: str, *, timeout_s: float | None = None) -> SqlResult:
    """Run ``query`` against ``snapshot`` (see the module docstring).

    Args:
        snapshot: What to query.
        query: One SELECT statement.
        timeout_s: Interrupt the query after this many seconds (no limit by default).

    Raises:
        QueryTimeoutError: if it ran past ``timeout_s`` (audited).
        AccessDeniedError: for a statement other than SELECT/EXPLAIN.
        ResidencyError: for a statement or function that reads or writes
            files (COPY, EXPORT, ATTACH, read_parquet of a path, ...).
        LakeError: for a query DuckDB cannot run (syntax, unknown column).
    """
    import duckdb

    text = query.strip()
    digest = hashlib.sha256(text.encode()).hexdigest()
    shown = text if len(text) <= 2000 else text[:2000] + "..."
    con = _connect(snapshot)
    try:
        try:
            statements = con.extract_statements(text)
        except duckdb.Error as exc:
            raise LakeError(f"SQL error: {exc}") from exc
        if not statements:
            raise LakeError("SQL error: no statement given")
        if len(statements) > 1:
            raise snapshot._refuse("sql", shown, AccessDeniedError("one statement per query, please"))
        kind = statements[0].type.name
        if kind in _FILE_STATEMENTS:
            raise snapshot._refuse(
                "sql",
                shown,
                ResidencyError(
                    f"{kind} is refused: SQL over the lake cannot read or write files "
                    "(raw data leaves a region only through `datadrive lake export`, as its policy allows)"
                ),
            )
        if kind not in _ALLOWED:
            raise snapshot._refuse(
                "sql",
                shown,
                AccessDeniedError(f"{kind} is refused: SQL over the lake is read-only (SELECT only)"),
            )
        timer = None
        if timeout_s is not None:
            import threading

            timer = threading.Timer(timeout_s, con.interrupt)
            timer.daemon = True
            timer.start()
        try:
            relation = con.sql(text)
            table = relation.to_arrow_table() if relation is not None else pa.table({})
        except duckdb.InterruptException as exc:
            raise snapshot._refuse(
                "sql", shown, QueryTimeoutError(f"the query ran past its time limit of {timeout_s:g} s")
            ) from exc
        except duckdb.PermissionException as exc:
            raise snapshot._refuse(
                "sql",
                shown,
                ResidencyError(
                    f"the query tried to reach files outside the lake's tables, which is refused ({exc})"
                ),
            ) from exc
        except duckdb.Error as exc:
            raise LakeError(f"SQL error: {exc}") from exc
        finally:
            if timer is not None:
                timer.cancel()
    finally:
        con.close()
    snapshot._audit("sql", shown, {"rows": table.num_rows, "sha256": digest})
    return SqlResult(table=table, region=snapshot.region, version=snapshot.version)
