"""A consistent, read-only view of one region at one lake version.

A :class:`Snapshot` pins every table at the versions its lake version
recorded and shows only the rows of tenants the principal may read (its own
and those that granted it access). It is what a dataset build holds on to:
``snapshot.version`` is the lake version it read.

Every read method appends an audit row before it returns data; a read that
cannot be audited does not happen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from datadrive.core.scenario import Scenario
from datadrive.core.telemetry import Telemetry
from datadrive.errors import LakeError
from datadrive.lake.records import mark_origin, scenarios_from_rows, telemetry_from_rows
from datadrive.lake.schema import (
    INGESTS,
    MAP_FEATURES,
    SCENARIOS,
    TELEMETRY,
    TRACKS,
    conform,
    table_spec,
    versioned_tables,
)
from datadrive.lake.sql import SqlResult, SqlSession, parquet_scan
from datadrive.lake.tables import LakeVersion, RegionStore, empty_dataset

__all__ = ["Snapshot", "readable_tables"]


def readable_tables() -> tuple[str, ...]:
    """Tables a snapshot reads (and SQL sees): every versioned table, and the ledger."""
    return (*(t.name for t in versioned_tables()), INGESTS.name)


class Snapshot:
    """One region at one lake version, as one principal may see it.

    Build one with :meth:`datadrive.lake.Lake.snapshot`.

    Attributes:
        region: The region's name.
        version: The lake version.
        table_versions: The data table versions it pins.
        tenants: The tenants whose rows are visible.
    """

    def __init__(
        self,
        store: RegionStore,
        lake_version: LakeVersion,
        tenants: Sequence[str],
        audit: Callable[[str, str, Mapping[str, Any]], None],
        refuse: Callable[[str, str, Exception], Exception],
    ) -> None:
        self._store = store
        self._lv = lake_version
        self.region = store.region.name
        self.version = lake_version.version
        self.table_versions = dict(lake_version.table_versions)
        self.tenants = tuple(tenants)
        self._audit = audit
        self._refuse = refuse
        self._datasets: dict[str, ds.Dataset] = {}
        self._raw: dict[str, ds.Dataset] = {}
        self._lock = threading.Lock()
        self._session: SqlSession | None = None

    def __repr__(self) -> str:
        return f"Snapshot(region={self.region!r}, version={self.version}, tenants={self.tenants})"

    # ------------------------------------------------------------------ datasets

    def _dataset(self, name: str) -> ds.Dataset:
        """The tenant-filtered dataset of a table at its pinned version (not audited)."""
        with self._lock:
            if name not in self._datasets:
                spec = table_spec(name)
                if spec is None or name not in readable_tables():
                    raise LakeError(f"no table {name!r} (tables: {', '.join(readable_tables())})")
                if name == INGESTS.name:
                    data = self._store.arrow(INGESTS, self.version)
                elif name not in self.table_versions or self.table_versions[name] == 0:
                    # created after this lake version, or pinned at its creation (version 0 of a lake
                    # table is its empty CREATE TABLE commit): empty in it, and nothing to open
                    data = empty_dataset(spec)
                else:
                    data = self._store.dataset(spec, self.table_versions[name])
                    self._raw[name] = data
                self._datasets[name] = data.filter(ds.field("tenant").isin(list(self.tenants)))
            return self._datasets[name]

    def check_readable(self) -> None:
        """Open every table at its pinned version now (not audited).

        Raises:
            LakeError: if a table's files for this version were vacuumed
                (an erasure, a retention limit), naming the table.
        """
        for name in readable_tables():
            self._dataset(name)

    def dataset(self, name: str) -> ds.Dataset:
        """A table as a lazy Arrow dataset (no copy), pinned and tenant-filtered. Audited."""
        data = self._dataset(name)
        self._audit("read", f"dataset {name}", {})
        return data

    def table(
        self, name: str, *, columns: Sequence[str] | None = None, filter: ds.Expression | None = None
    ) -> pa.Table:
        """A table's rows (optionally some columns, a filter) as one Arrow table. Audited."""
        spec = table_spec(name)
        t = self._dataset(name).to_table(columns=list(columns) if columns else None, filter=filter)
        if spec is not None and not columns:
            t = conform(spec, t)
        self._audit("read", f"table {name}", {"rows": t.num_rows, "filtered": filter is not None})
        return t

    # ------------------------------------------------------------------ records

    def scenarios(
        self,
        *,
        ids: Iterable[str] | None = None,
        sources: Iterable[str] | None = None,
        filter: ds.Expression | None = None,
        include_telemetry_egos: bool = False,
    ) -> list[Scenario]:
        """Scenarios as :class:`Scenario` objects (lossless apart from pseudonymisation). Audited.

        Args:
            ids: Only these scenario ids.
            sources: Only these sources.
            filter: Any further filter on ``scenarios`` columns.
            include_telemetry_egos: Also the ego trajectories of telemetry logs.
        """
        flt = _and(
            None if ids is None else ds.field("scenario_id").isin(list(ids)),
            None if sources is None else ds.field("source").isin(list(sources)),
            filter,
            None if include_telemetry_egos else ds.field("telemetry_id").is_null(),
        )
        out = self._scenarios(flt)
        self._audit("read", "scenarios", {"scenarios": len(out)})
        return out

    def _scenarios(self, flt: ds.Expression | None) -> list[Scenario]:
        rows = conform(SCENARIOS, self._dataset(SCENARIOS.name).to_table(filter=flt))
        if rows.num_rows == 0:
            return []
        sub = _keys_filter(rows)
        tracks = self._dataset(TRACKS.name).to_table(filter=sub)
        maps = self._dataset(MAP_FEATURES.name).to_table(filter=sub)
        out = scenarios_from_rows(rows, tracks, maps)
        mark_origin(out, self.region)  # where they came from, beyond the reach of an edited field
        return out

    def telemetry(
        self, *, ids: Iterable[str] | None = None, sources: Iterable[str] | None = None
    ) -> list[Telemetry]:
        """Telemetry logs as :class:`Telemetry` objects, egos included. Audited."""
        flt = _and(
            None if ids is None else ds.field("telemetry_id").isin(list(ids)),
            None if sources is None else ds.field("source").isin(list(sources)),
        )
        rows = self._dataset(TELEMETRY.name).to_table(filter=flt)
        tel_ids = sorted({x for x in rows.column("telemetry_id").to_pylist() if x is not None})
        egos: dict[tuple[str, str, str], Scenario] = {}
        if tel_ids:
            for s in self._scenarios(ds.field("telemetry_id").isin(tel_ids)):
                egos[(s.metadata.tenant or "", s.source, s.scenario_id)] = s
        out = telemetry_from_rows(rows, egos)
        mark_origin(out, self.region)
        self._audit("read", "telemetry", {"telemetry": len(out)})
        return out

    # ------------------------------------------------------------------ SQL

    def sql(self, query: str, *, timeout_s: float | None = None) -> SqlResult:
        """Run one read-only SQL query in DuckDB over this snapshot. Audited.

        ``timeout_s`` stops a query that runs longer (``QueryTimeoutError``, audited).

        The snapshot keeps one locked-down DuckDB session for all its
        queries, with a pool of cursors so that threads query it at once
        (the service's requests reuse it rather than each opening DuckDB and
        registering the pinned tables); from the second query on,
        scenario-level tables are answered from memory (see
        :class:`~datadrive.lake.sql.SqlSession` for the views, the pool, the
        cache and what is refused). The cache is dropped for good once
        the region has erased or vacuumed anything since this lake version,
        so erased rows are never answered from memory.
        """
        with self._lock:
            session = self._session
        if session is None:
            datasets = {name: self._dataset(name) for name in readable_tables()}
            cached_specs = [
                spec
                for name in readable_tables()
                if (spec := table_spec(name)) is not None and spec.sql_cache
            ]
            cacheable = {spec.name: spec.wide_columns for spec in cached_specs}
            cached_lists = {spec.name: spec.cached_lists for spec in cached_specs}
            with self._lock:
                raw = dict(self._raw)
            native = {name: scan for name, d in raw.items() if (scan := parquet_scan(d, self.tenants))}
            with self._lock:
                if self._session is None:
                    self._session = SqlSession(
                        datasets, cacheable=cacheable, cached_lists=cached_lists, native=native
                    )
                session = self._session
        if not self._nothing_erased_since():
            session.drop_cache()
        table = session.run(query, audit=self._audit, refuse=self._refuse, timeout_s=timeout_s)
        return SqlResult(table=table, region=self.region, version=self.version)

    def is_latest(self) -> bool:
        """Whether no lake version after this one has landed in the region (not audited: no data).

        One look for the ledger's next commit file, cheap enough to ask
        before every read: a long-lived reader (the service) keeps a snapshot
        and its warm SQL session while this holds, and takes a new one as
        soon as it does not, so a commit is visible to the next read.
        """
        import pyarrow.fs as pafs

        name = f"{self.version + 1:020d}.json"
        try:
            info = self._store.fs.get_file_info(self._store.root.path(INGESTS.name, "_delta_log", name))
        except OSError:
            return False  # cannot tell: the caller takes a new snapshot, which raises what is wrong
        return bool(info.type == pafs.FileType.NotFound)

    def _nothing_erased_since(self) -> bool:
        """No erasure or vacuum (optimize) committed after this lake version."""
        if self.is_latest():  # one file check, asked before every query: no lock shared with writers
            return True
        latest = self._store.lake_version()
        if latest <= self.version:
            return True
        return not any(
            v.version > self.version and v.operation in ("erase", "optimize")
            for v in self._store.history(limit=latest - self.version)
        )

    def close(self) -> None:
        """Release the SQL session (a snapshot that is dropped releases it too)."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()


def _and(*parts: ds.Expression | None) -> ds.Expression | None:
    out: ds.Expression | None = None
    for p in parts:
        if p is None:
            continue
        out = p if out is None else out & p
    return out


def _keys_filter(rows: pa.Table) -> ds.Expression:
    """Rows of the same (tenant, source, scenario_id) in tracks / map_features."""
    by: dict[tuple[str, str], list[str]] = {}
    for t, s, i in zip(
        rows.column("tenant").to_pylist(),
        rows.column("source").to_pylist(),
        rows.column("scenario_id").to_pylist(),
        strict=True,
    ):
        by.setdefault((t, s), []).append(i)
    parts = [
        (ds.field("tenant") == t) & (ds.field("source") == s) & ds.field("scenario_id").isin(ids)
        for (t, s), ids in by.items()
    ]
    out = parts[0] if parts else ds.scalar(False)
    for part in parts[1:]:
        out = out | part
    return out
