"""The lake: region-pinned, versioned, audited storage, as one object.

>>> lake = Lake(config, Principal("ana", tenant="bmw", home_region="cn-north"))  # doctest: +SKIP
>>> report = lake.ingest(["logs/"], region="cn-north")                            # doctest: +SKIP
>>> snap = lake.snapshot("cn-north")                                              # doctest: +SKIP
>>> snap.sql("SELECT source, count(*) FROM scenarios GROUP BY 1").table          # doctest: +SKIP

Residency lives here, in the library, not in the CLI: every method judges
the principal (its tenant and its home region) against the region's policy
(:class:`~datadrive.lake.access.Access`), and every refusal raises and
appends an audit row before it does. The work itself is delegated: ingest
(:mod:`~datadrive.lake.ingest`), the commit protocol and crash recovery
(:mod:`~datadrive.lake.commit`), erasure and optimisation
(:mod:`~datadrive.lake.maintenance`), artefacts and exports
(:mod:`~datadrive.lake.artefacts`), snapshots and SQL
(:mod:`~datadrive.lake.snapshot`, :mod:`~datadrive.lake.sql`).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from datadrive.compute.engines import Engine
from datadrive.errors import AccessDeniedError, ConfigError, LakeError, ResidencyError, StorageError
from datadrive.lake import artefacts, commit
from datadrive.lake import audit as audit_log
from datadrive.lake.access import Access, utc_now
from datadrive.lake.artefacts import ExportReport
from datadrive.lake.audit import AuditVerification
from datadrive.lake.check import CheckReport, check_region
from datadrive.lake.config import LakeConfig, Principal
from datadrive.lake.erase import EraseReport, Erasure, ErasureKeys
from datadrive.lake.ingest import (
    Committed,
    IngestEvent,
    IngestOptions,
    IngestReport,
    ingest_paths,
    ingest_records,
)
from datadrive.lake.locks import region_lock
from datadrive.lake.maintenance import erase_region, optimize_region
from datadrive.lake.records import origin_of
from datadrive.lake.schema import DERIVED_COLUMNS, conform, derived_tables
from datadrive.lake.snapshot import Snapshot
from datadrive.lake.sql import SqlResult
from datadrive.lake.tables import LakeVersion, RegionStore
from datadrive.sources.base import Record, Registry

__all__ = ["Lake"]


class Lake:
    """A multi-region lake as seen by one principal.

    Args:
        config: Regions, tenants, grants.
        principal: Who acts, for which tenant, from which region.
        clock: Source of "now" (tests pin it).
    """

    def __init__(
        self, config: LakeConfig, principal: Principal, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.config = config
        self.principal = principal
        self._access = Access(config, principal, clock)
        self._latest: dict[str, Snapshot] = {}
        self._latest_lock = threading.Lock()

    @property
    def access(self) -> Access:
        """The gate this lake's operations pass (judgements and the audit row)."""
        return self._access

    def _store(self, region: str) -> RegionStore:
        return self._access.store(region)

    def region_name(self, region: str | None = None) -> str:
        """``region``, or else the principal's home region, or else the lake's only region.

        Raises:
            ConfigError: if none of these decides it.
        """
        return self._access.region_name(region)

    # ------------------------------------------------------------------ set-up

    def init(self, regions: Iterable[str] | None = None) -> dict[str, int]:
        """Create every table of the given regions (all by default) and audit it.

        Returns:
            Region name -> its latest lake version.
        """
        a = self._access
        out: dict[str, int] = {}
        for name in regions or list(self.config.regions):
            a.check_tenant(name, "init", "lake")
            store = a.store(name)
            with region_lock(store.root, "commit"):
                store.ensure(a.clock())
            out[name] = store.lake_version()
            a.audit(name, "init", "lake", out[name])
        return out

    # ------------------------------------------------------------------ reads

    def snapshot(self, region: str | None = None, version: int | None = None) -> Snapshot:
        """A read-only view of ``region`` at lake ``version`` (latest by default).

        A snapshot of the latest lake version is kept and handed out again
        while that version stays the latest, with its open tables and SQL
        session (a long-lived process, a service, pays for opening a version
        once); every read through it is still judged and audited.

        Raises:
            ResidencyError: if the principal's home region may not read the
                region's raw data (audited).
            AccessDeniedError: if the principal's tenant is not in the lake (audited).
            LakeError: if the version does not exist or was vacuumed.
        """
        a = self._access
        name = a.region_name(region)
        rc = self.config.region(name)
        what = "snapshot" if version is None else f"snapshot v{version}"
        a.check_raw_read(rc, "read", what)
        store = a.store(name)
        latest = store.lake_version()
        tenants = a.visible_tenants(name)
        if version is None or version == latest:
            with self._latest_lock:
                kept = self._latest.get(name)
            if kept is not None and kept.version == latest and kept.tenants == tenants:
                return kept
        lv = store.resolve(version)

        def audit(action: str, obj: str, detail: Mapping[str, Any]) -> None:
            a.audit(name, action, obj, lv.version, "ok", detail)

        def refuse(action: str, obj: str, exc: Exception) -> Exception:
            return a.refuse(name, action, obj, exc, lv.version)

        snap = Snapshot(store, lv, tenants, audit, refuse)
        snap.check_readable()  # fail now, clearly, if the version's files were vacuumed
        if lv.version == latest:
            with self._latest_lock:
                old, self._latest[name] = self._latest.get(name), snap
            if old is not None and old is not snap:
                old.close()
        return snap

    def _forget_snapshots(self, region: str) -> None:
        with self._latest_lock:
            old = self._latest.pop(region, None)
        if old is not None:
            old.close()

    def sql(
        self,
        query: str,
        region: str | None = None,
        version: int | None = None,
        *,
        timeout_s: float | None = None,
    ) -> SqlResult:
        """Run one read-only query over ``region`` at ``version`` (see :mod:`datadrive.lake.sql`)."""
        return self.snapshot(self._access.region_name(region), version).sql(query, timeout_s=timeout_s)

    def history(self, region: str | None = None) -> list[LakeVersion]:
        """Every lake version of ``region``, newest first (commit metadata only). Audited."""
        a = self._access
        name = a.region_name(region)
        a.check_tenant(name, "history", "lake")
        versions = list(a.store(name).history())
        a.audit(name, "history", "lake", versions[0].version if versions else None)
        return versions

    def audit_log(self, region: str | None = None) -> pa.Table:
        """The region's audit rows, oldest first. Audited (as a read of the audit log)."""
        a = self._access
        name = a.region_name(region)
        a.check_raw_read(self.config.region(name), "read", "audit")
        store = a.store(name)
        table = audit_log.read(store)
        a.audit(name, "read", "audit", store.lake_version(), "ok", {"rows": table.num_rows})
        return table

    def verify_audit(self, region: str | None = None) -> AuditVerification:
        """Check the region's audit chain (see :func:`datadrive.lake.audit.verify`)."""
        a = self._access
        name = a.region_name(region)
        a.check_raw_read(self.config.region(name), "verify", "audit")
        store = a.store(name)
        result = audit_log.verify(store)
        try:
            a.audit(
                name,
                "verify",
                "audit",
                store.lake_version(),
                "ok" if result.ok else "failed",
                {"rows": result.rows, "head_hash": result.head_hash, "problems": len(result.problems)},
            )
        except (StorageError, LakeError):
            if result.ok:
                raise
            # a damaged log cannot record its own verification; the problems are the answer
        return result

    def check(self, region: str | None = None, version: int | None = None) -> CheckReport:
        """Check that the region's lake is whole (see :mod:`datadrive.lake.check`). Audited."""
        a = self._access
        name = a.region_name(region)
        a.check_raw_read(self.config.region(name), "check", "lake")
        report = check_region(a.store(name), version)
        try:
            a.audit(
                name,
                "check",
                "lake",
                report.version,
                "ok" if report.ok else "failed",
                {"problems": len(report.problems), "pending": report.pending, **report.counts},
            )
        except (StorageError, LakeError):
            if report.ok:
                raise
            # a damaged audit log cannot record the check that found it; the problems are the answer
        return report

    # ------------------------------------------------------------------ writes

    def ingest(
        self,
        paths: Iterable[str | os.PathLike[str]],
        region: str,
        *,
        registry: Registry | None = None,
        engine: Engine | None = None,
        options: IngestOptions | None = None,
        progress: Callable[[IngestEvent], None] | None = None,
    ) -> IngestReport:
        """Ingest every input under ``paths`` into ``region`` for the principal's tenant.

        See :mod:`datadrive.lake.ingest`. Every committed batch and the run
        itself are audited.
        """
        from datadrive.sources import DEFAULT_REGISTRY

        a = self._access
        rc = self.config.region(region)
        a.check_tenant(region, "ingest", "run")
        tenant = self.config.tenant(self.principal.tenant)

        def on_commit(c: Committed) -> None:
            n = [o for o in c.outcomes.values() if o.status == "ingested"]
            a.audit(
                region,
                "ingest",
                f"batch {c.batch_id}",
                c.lake_version,
                "ok",
                {
                    "inputs": len(n),
                    "scenarios": sum(o.num_scenarios for o in n),
                    "telemetry": sum(o.num_telemetry for o in n),
                    "input_sha256": sorted(o.input_sha256 or "" for o in n),
                },
            )

        report = ingest_paths(
            a.store(region),
            paths,
            region=rc,
            tenant=tenant,
            principal=self.principal,
            registry=registry or DEFAULT_REGISTRY,
            engine=engine,
            options=options,
            now=a.clock,
            on_commit=on_commit,
            progress=progress,
        )
        try:
            a.audit(
                region,
                "ingest",
                "run",
                report.lake_version_after,
                "ok" if report.ok else "failed",
                {**report.counts(), "inputs": len(report.outcomes), "storage_error": report.storage_error},
            )
        except StorageError:
            if report.storage_error is None:
                raise
        return report

    def ingest_records(
        self, records: Iterable[Record], region: str, *, name: str = "records", batch_size: int = 256
    ) -> IngestReport:
        """Ingest in-memory records (a dataset build, a synthetic fleet), streamed in batches.

        Every record is validated before it is written; each batch of
        ``batch_size`` records is one input of the ledger (``<name>#<k>``),
        committed as one lake version, so only one batch is in memory and
        running the same stream again skips the batches already there. Records
        that carry a region (every record read back from the lake does) may
        only be written to that region: copying raw data to another region
        this way is refused and audited in both regions.

        Raises:
            ValidationError: at the first invalid record; it and the records
                after it are not written (earlier batches stay committed).
            ResidencyError: at the first record of another region (audited).
        """
        a = self._access
        rc = self.config.region(region)
        a.check_tenant(region, "ingest", name)
        tenant = self.config.tenant(self.principal.tenant)

        def judge(record: Record) -> None:
            # the region its data was read from (not editable), else the one its metadata names
            claims = (origin_of(record), record.metadata.region)
            foreign = next((r for r in claims if r not in (None, region)), None)
            if foreign is None:
                return
            exc = ResidencyError(
                f"records of region {foreign} cannot be written to region {region}: "
                "raw data stays in the region where it was recorded"
            )
            if foreign in self.config.regions:
                a.refuse(str(foreign), "export", f"{name} -> {region}", exc)
            raise a.refuse(region, "ingest", name, exc)

        def on_commit(c: Committed) -> None:
            for o in c.outcomes.values():
                a.audit(region, "ingest", o.path, c.lake_version, "ok", {"status": o.status})

        report = ingest_records(
            a.store(region),
            records,
            region=rc,
            tenant=tenant,
            principal=self.principal,
            name=name,
            batch_size=batch_size,
            now=a.clock,
            judge=judge,
            on_commit=on_commit,
        )
        a.audit(
            region,
            "ingest",
            name,
            report.lake_version_after,
            "ok" if report.ok else "failed",
            {**report.counts(), "batches": len(report.outcomes)},
        )
        return report

    def append_derived(self, region: str, table: str, rows: pa.Table, *, derived_from: Snapshot) -> int:
        """Append rows to a derived per-scenario table (``schema.DERIVED_TABLES``) as one lake version.

        The rows follow the lake's commit protocol (a crash leaves the lake at
        its previous version), time travel with every other table, and are
        erased with their scenarios.

        Args:
            region: The region of the scenarios they were derived from.
            table: The derived table's name.
            rows: ``tenant``, ``source``, ``scenario_id`` of a scenario in
                ``derived_from``, then the table's own columns; the lake
                fills ``batch_id``, ``derived_at`` and ``derived_from_version``.
            derived_from: The snapshot they were computed from (same region).

        Returns:
            The lake version that holds them.

        Raises:
            ResidencyError: if ``derived_from`` is a snapshot of another region (audited).
            LakeError: if the table is not a derived table, or a row names a
                scenario that ``derived_from`` does not hold.
        """
        return self.append_derived_tables(region, {table: rows}, derived_from=derived_from)

    def append_derived_tables(
        self, region: str, rows_by_table: Mapping[str, pa.Table], *, derived_from: Snapshot
    ) -> int:
        """Append rows to several derived tables in **one** lake version (see :meth:`append_derived`).

        A layer that derives several tables from the same scenarios (mining's
        states, events and index) commits them together: a reader sees all of
        them or none.
        """
        a = self._access
        if not rows_by_table:
            raise LakeError("nothing to append: no derived table given")
        specs = []
        for table in rows_by_table:
            spec = next((t for t in derived_tables() if t.name == table), None)
            if spec is None:
                known = ", ".join(t.name for t in derived_tables()) or "none declared"
                raise LakeError(f"{table!r} is not a derived per-scenario table (derived tables: {known})")
            specs.append(spec)
        names = ", ".join(rows_by_table)
        a.check_tenant(region, "derive", names)
        if derived_from.region != region:
            raise a.refuse(
                derived_from.region,
                "export",
                f"{names} -> {region}",
                ResidencyError(
                    f"rows derived from region {derived_from.region} stay in {derived_from.region}; "
                    f"they cannot be written to {region}"
                ),
            )
        held = derived_from.table("scenarios", columns=["tenant", "source", "scenario_id"])
        for table, rows in rows_by_table.items():
            missing = [n for n, _ in DERIVED_COLUMNS[:3] if n not in rows.column_names]
            if missing:
                raise LakeError(f"rows for {table} need the columns {', '.join(missing)}")
            keys = rows.select(["tenant", "source", "scenario_id"]).group_by(
                ["tenant", "source", "scenario_id"]
            )
            wanted = keys.aggregate([])
            unknown = wanted.join(held, keys=["tenant", "source", "scenario_id"], join_type="left anti")
            if unknown.num_rows:
                first = unknown.slice(0, 1).to_pylist()[0]
                raise LakeError(
                    f"{unknown.num_rows} row key(s) of {table} name no scenario of lake version "
                    f"{derived_from.version} visible to {self.principal.tenant}, e.g. {first}"
                )
        store = a.store(region)
        batch_id = uuid.uuid4().hex
        now = a.clock()
        stamped_all = []
        counts: dict[str, int] = {}
        for spec, rows in zip(specs, rows_by_table.values(), strict=True):
            n = rows.num_rows
            counts[spec.name] = n
            if n == 0:
                continue
            stamped = conform(
                spec,
                rows.drop_columns(
                    [c for c in ("batch_id", "derived_at", "derived_from_version") if c in rows.column_names]
                )
                .append_column("batch_id", pa.array([batch_id] * n, pa.string()))
                .append_column("derived_at", pa.array([now] * n, pa.timestamp("us", tz="UTC")))
                .append_column("derived_from_version", pa.array([derived_from.version] * n, pa.int64())),
            )
            stamped_all.append((spec, stamped))
        with region_lock(store.root, "commit"):
            store.ensure(now)
            commit.recover(store, a.clock)
            commit.start(store, batch_id, {"op": "derive", "batch_id": batch_id, "time": now.isoformat()})
            versions = commit.append_batch(store, stamped_all)
            version = commit.commit_version(
                store,
                "derive",
                versions,
                now=now,
                batch_id=batch_id,
                who=self.principal.name,
                tenant=self.principal.tenant,
                table=names,
                rows=sum(counts.values()),
                derived_from=derived_from.version,
            )
            commit.finish(store, batch_id)
        a.audit(
            region, "derive", names, version, "ok", {"rows": counts, "derived_from": derived_from.version}
        )
        return version

    def erase(self, region: str, erasure: Erasure) -> EraseReport:
        """Erase records for good: delete, commit, vacuum (see :mod:`datadrive.lake.erase`).

        Raises:
            AccessDeniedError: if the principal erases another tenant's data (audited).
        """
        a = self._access
        rc = self.config.region(region)
        a.check_raw_read(rc, "erase", "records")
        if erasure.tenant != self.principal.tenant:
            raise a.refuse(
                region,
                "erase",
                f"tenant {erasure.tenant}",
                AccessDeniedError(
                    f"{self.principal.name} of {self.principal.tenant} cannot erase {erasure.tenant}'s data"
                ),
            )
        if erasure.is_empty:
            raise ConfigError("an erasure needs at least one criterion (ids, sources, inputs or a date)")
        self._forget_snapshots(region)
        report = erase_region(a.store(region), erasure, a.clock)
        a.audit(
            region,
            "erase",
            f"tenant {erasure.tenant}",
            report.lake_version,
            "ok",
            {
                "scenarios": report.scenarios,
                "telemetry": report.telemetry,
                "inputs": report.inputs,
                "files_removed": report.files_removed,
                "derived": report.derived,
                "ids_sha256": report.ids_sha256,
            },
        )
        return report

    def optimize(
        self,
        region: str,
        *,
        vacuum_retention_hours: int = 168,
        cluster: bool = True,
        memory_limit: str = "2GB",
        temp_dir: str | None = None,
        tables: Collection[str] | None = None,
    ) -> dict[str, Any]:
        """Compact small files of every table (cluster those that declare it); vacuum old files.

        See :func:`datadrive.lake.maintenance.optimize_region`.
        """
        a = self._access
        a.check_raw_read(self.config.region(region), "optimize", "lake")
        self._forget_snapshots(region)
        stats = optimize_region(
            a.store(region),
            a.clock,
            who=self.principal.name,
            vacuum_retention_hours=vacuum_retention_hours,
            cluster=cluster,
            memory_limit=memory_limit,
            temp_dir=temp_dir,
            tables=tables,
        )
        version = stats.pop("lake_version")
        a.audit(region, "optimize", "lake", version, "ok", stats)
        stats["lake_version"] = version
        return stats

    # ------------------------------------------------------------------ derived artefacts and export

    def put_derived(
        self,
        region: str,
        kind: str,
        name: str,
        data: bytes,
        *,
        derived_from: Snapshot | None = None,
        erase_with: ErasureKeys | None = None,
    ) -> str:
        """Store a derived artefact (aggregate, metrics, model, features) in ``region``.

        Args:
            region: Where it is stored: the region of the data it was derived from.
            kind: One of :data:`~datadrive.lake.config.DERIVED_KINDS`.
            name: A file name (``eval/2024-06.json``).
            data: Its bytes.
            derived_from: The snapshot it was computed from; its region and
                lake version are recorded beside the artefact.
            erase_with: The scenarios and telemetry logs it was made from: an
                erasure of any of them deletes it too (see :mod:`datadrive.lake.erase`).

        Returns:
            The artefact's name for :meth:`export`: ``derived/<kind>/<name>``.

        Raises:
            ResidencyError: if ``derived_from`` is a snapshot of another region.
        """
        return artefacts.put_derived(
            self._access, region, kind, name, data, derived_from=derived_from, erase_with=erase_with
        )

    def delete_derived(self, region: str, obj: str) -> bool:
        """Delete one of the tenant's derived artefacts (and its provenance); audited.

        Returns:
            Whether there was one to delete.

        Raises:
            AccessDeniedError: if it belongs to another tenant (audited).
        """
        return artefacts.delete_derived(self._access, region, obj)

    def list_derived(self, region: str, kind: str, prefix: str = "") -> list[str]:
        """Names of the derived artefacts of ``kind`` in ``region`` (``derived/<kind>/<name>``), sorted.

        Provenance files are not listed. Audited; judged like :meth:`read_derived`.
        """
        return artefacts.list_derived(self._access, region, kind, prefix)

    def read_derived(self, region: str, obj: str) -> tuple[bytes, dict[str, Any]]:
        """A derived artefact's bytes and provenance.

        Readable by principals at home in the region, or in a region its
        kind may be exported to (reading it from there is an export).
        Audited; a refusal raises :class:`ResidencyError` and is audited.
        """
        return artefacts.read_derived(self._access, region, obj)

    def local_derived_dir(
        self, region: str, kind: str, name: str, *, derived_from: Snapshot | None = None
    ) -> Path:
        """A folder on this machine for a derived artefact made of many files (a feature cache).

        The folder is ``<root>/derived/<kind>/<name>/`` of a local region
        root, so what is derived from a region stays under its root. It is
        created, and its provenance (kind, tenant, lake version) written beside
        it, on first use. Audited.

        Raises:
            ResidencyError: if ``derived_from`` is a snapshot of another region (audited).
            ConfigError: if the region's root is not a local folder.
        """
        return artefacts.local_derived_dir(self._access, region, kind, name, derived_from=derived_from)

    def export(
        self, obj: str, *, region: str, to: str, dest_path: str | os.PathLike[str] | None = None
    ) -> ExportReport:
        """Copy a table or a derived artefact out of ``region``, if its policy allows.

        Args:
            obj: A table name (raw data: ``scenarios``, ``tracks``, ...) or
                ``derived/<kind>/<name>``.
            region: Where it is.
            to: A region name, or ``"external"`` (a folder outside every
                region, ``dest_path``).
            dest_path: The folder for ``to="external"``.

        Raises:
            ResidencyError: if the policy does not allow it (audited).
        """
        return artefacts.export(
            self._access, obj, region=region, to=to, dest_path=dest_path, snapshot=self.snapshot
        )

    # ------------------------------------------------------------------ transfers and records

    def authorize_transfer(self, region: str, to: str, obj: str, *, kind: str = "raw") -> None:
        """Judge (and audit) sending data of ``region`` somewhere other than a table or artefact copy.

        A language model endpoint, a partner's API: anything that receives a
        region's data, or anything derived from it, is judged like an export
        (``DESIGN.md``: the context sent to a model inherits the region).
        Staying in the region is always allowed; raw data may go only where
        ``export.raw_to`` lists the destination; a derived ``kind`` only
        where ``export.derived`` lists the kind and ``export.to`` the
        destination. Both outcomes are audited (action ``export``).

        Args:
            region: Where the data lives.
            to: The destination's region (or :data:`EXTERNAL`).
            obj: What is sent, for the audit log (no identifiers in it).
            kind: ``"raw"`` or one of :data:`DERIVED_KINDS`.

        Raises:
            ResidencyError: if the region's policy does not allow it (audited).
        """
        artefacts.authorize_transfer(self._access, region, to, obj, kind=kind)

    def audit_event(
        self,
        region: str,
        action: str,
        obj: str,
        *,
        lake_version: int | None = None,
        outcome: str = "ok",
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one row to the region's audit log for work done outside the lake (a training run).

        A refusal a higher layer decides (a dataset materialised in the wrong
        region) is recorded with ``outcome="refused"``.
        """
        self.config.region(region)
        self._access.audit(region, action, obj, lake_version, outcome, detail)

    def record(self, region: str, action: str, obj: str, detail: Mapping[str, Any] | None = None) -> None:
        """Append an audit row for an action done on the region's data outside the lake's own methods.

        Layers above the lake that keep their own in-region records (the
        assistant's conversations) audit their writes and erasures here.
        """
        self.config.region(region)
        self._access.check_tenant(region, action, obj)
        self._access.audit(region, action, obj, None, "ok", detail)
