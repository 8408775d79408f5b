"""The lake: region-pinned, versioned, audited storage, as one object.

>>> lake = Lake(config, Principal("ana", tenant="bmw", home_region="cn-north"))  # doctest: +SKIP
>>> report = lake.ingest(["logs/"], region="cn-north")                            # doctest: +SKIP
>>> snap = lake.snapshot("cn-north")                                              # doctest: +SKIP
>>> snap.sql("SELECT source, count(*) FROM scenarios GROUP BY 1").table          # doctest: +SKIP

Residency lives here, in the library, not in the CLI: every method judges
the principal (its tenant and its home region) against the region's policy,
and every refusal raises and appends an audit row before it does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from datadrive.compute.engines import Engine
from datadrive.errors import AccessDeniedError, ConfigError, LakeError, ResidencyError, StorageError
from datadrive.lake import audit as audit_log
from datadrive.lake.audit import AuditVerification
from datadrive.lake.check import CheckReport, check_region
from datadrive.lake.config import DERIVED_KINDS, EXTERNAL, LakeConfig, Principal, RegionConfig
from datadrive.lake.erase import (
    EraseReport,
    Erasure,
    ErasureKeys,
    erase_keyed_artefacts,
    finish_erase,
    ids_digest,
    plan_erase,
)
from datadrive.lake.ingest import (
    Committed,
    IngestEvent,
    IngestOptions,
    IngestReport,
    ingest_paths,
    ingest_records,
    recover,
)
from datadrive.lake.locks import region_lock
from datadrive.lake.schema import AUDIT, DATA_TABLES, INGESTS, TABLES
from datadrive.lake.snapshot import Snapshot
from datadrive.lake.sql import SqlResult
from datadrive.lake.storage import StorageRoot, storage_error
from datadrive.lake.tables import LakeVersion, RegionStore, commit_record
from datadrive.sources.base import Record, Registry

__all__ = ["ExportReport", "Lake", "utc_now"]


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class ExportReport:
    """What an export copied.

    Attributes:
        object: What was exported (a table or ``derived/<kind>/<name>``).
        region: Where it came from.
        to: The destination region, or ``"external"``.
        destination: Where the copy is.
        size: Rows (tables) or bytes (artefacts) copied.
    """

    object: str
    region: str
    to: str
    destination: str
    size: int


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
        self._clock = clock
        self._stores: dict[str, RegionStore] = {}

    # ------------------------------------------------------------------ plumbing

    def _store(self, region: str) -> RegionStore:
        """The storage of ``region`` (no access check: callers check first)."""
        if region not in self._stores:
            self._stores[region] = RegionStore(self.config.region(region))
        return self._stores[region]

    def _audit(
        self,
        region: str,
        action: str,
        obj: str,
        version: int | None,
        outcome: str = "ok",
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        p = self.principal
        event = audit_log.AuditEvent(
            who=p.name,
            tenant=p.tenant,
            home_region=p.home_region,
            region=region,
            action=action,
            object=obj,
            lake_version=-1 if version is None else int(version),
            outcome=outcome,
            detail=dict(detail or {}),
        )
        audit_log.append(self._store(region), event, self._clock)

    def _refuse(
        self, region: str, action: str, obj: str, exc: Exception, version: int | None = None
    ) -> Exception:
        """Audit a refusal and return ``exc`` for the caller to raise."""
        try:
            self._audit(
                region, action, obj, version, "refused", {"reason": str(exc), "error": type(exc).__name__}
            )
        except StorageError as storage_exc:
            return StorageError(f"{exc} (and the refusal could not be audited: {storage_exc})")
        return exc

    def _check_tenant(self, region: str, action: str, obj: str) -> None:
        if self.principal.tenant not in self.config.tenants:
            raise self._refuse(
                region,
                action,
                obj,
                AccessDeniedError(f"tenant {self.principal.tenant!r} is not a tenant of this lake"),
            )

    def _check_raw_read(self, region: RegionConfig, action: str, obj: str) -> None:
        self._check_tenant(region.name, action, obj)
        home = self.principal.home_region
        if not region.may_read_raw(home):
            allowed = ", ".join(sorted({region.name} | region.raw_readers))
            raise self._refuse(
                region.name,
                action,
                obj,
                ResidencyError(
                    f"{self.principal.name} is in {home}; raw data of region {region.name} may be read only "
                    f"from {allowed}. Answering would export it, and its policy does not allow that"
                ),
            )

    def _region_name(self, region: str | None) -> str:
        if region is not None:
            return region
        if self.principal.home_region in self.config.regions:
            return self.principal.home_region
        if len(self.config.regions) == 1:
            return next(iter(self.config.regions))
        raise ConfigError("say which region (--region): the principal's home region is not one of the lake's")

    # ------------------------------------------------------------------ set-up

    def init(self, regions: Iterable[str] | None = None) -> dict[str, int]:
        """Create every table of the given regions (all by default) and audit it.

        Returns:
            Region name -> its latest lake version.
        """
        out: dict[str, int] = {}
        for name in regions or list(self.config.regions):
            self._check_tenant(name, "init", "lake")
            store = self._store(name)
            with region_lock(store.root, "commit"):
                store.ensure(self._clock())
            out[name] = store.lake_version()
            self._audit(name, "init", "lake", out[name])
        return out

    # ------------------------------------------------------------------ reads

    def snapshot(self, region: str | None = None, version: int | None = None) -> Snapshot:
        """A read-only view of ``region`` at lake ``version`` (latest by default).

        Raises:
            ResidencyError: if the principal's home region may not read the
                region's raw data (audited).
            AccessDeniedError: if the principal's tenant is not in the lake (audited).
            LakeError: if the version does not exist or was vacuumed.
        """
        name = self._region_name(region)
        rc = self.config.region(name)
        what = "snapshot" if version is None else f"snapshot v{version}"
        self._check_raw_read(rc, "read", what)
        store = self._store(name)
        lv = store.resolve(version)
        tenants = self.config.visible_tenants(self.principal.tenant, name)

        def audit(action: str, obj: str, detail: Mapping[str, Any]) -> None:
            self._audit(name, action, obj, lv.version, "ok", detail)

        def refuse(action: str, obj: str, exc: Exception) -> Exception:
            return self._refuse(name, action, obj, exc, lv.version)

        snap = Snapshot(store, lv, tenants, audit, refuse)
        for spec in DATA_TABLES:  # fail now, clearly, if the version's files were vacuumed
            snap._dataset(spec.name)
        return snap

    def sql(self, query: str, region: str | None = None, version: int | None = None) -> SqlResult:
        """Run one read-only query over ``region`` at ``version`` (see :mod:`datadrive.lake.sql`)."""
        return self.snapshot(self._region_name(region), version).sql(query)

    def history(self, region: str | None = None) -> list[LakeVersion]:
        """Every lake version of ``region``, newest first (commit metadata only). Audited."""
        name = self._region_name(region)
        self._check_tenant(name, "history", "lake")
        store = self._store(name)
        versions = list(store.history())
        self._audit(name, "history", "lake", versions[0].version if versions else None)
        return versions

    def audit_log(self, region: str | None = None) -> pa.Table:
        """The region's audit rows, oldest first. Audited (as a read of the audit log)."""
        name = self._region_name(region)
        self._check_raw_read(self.config.region(name), "read", "audit")
        store = self._store(name)
        table = audit_log.read(store)
        self._audit(name, "read", "audit", store.lake_version(), "ok", {"rows": table.num_rows})
        return table

    def verify_audit(self, region: str | None = None) -> AuditVerification:
        """Check the region's audit chain (see :func:`datadrive.lake.audit.verify`)."""
        name = self._region_name(region)
        self._check_raw_read(self.config.region(name), "verify", "audit")
        store = self._store(name)
        result = audit_log.verify(store)
        self._audit(
            name,
            "verify",
            "audit",
            store.lake_version(),
            "ok" if result.ok else "failed",
            {"rows": result.rows, "head_hash": result.head_hash, "problems": len(result.problems)},
        )
        return result

    def check(self, region: str | None = None, version: int | None = None) -> CheckReport:
        """Check that the region's lake is whole (see :mod:`datadrive.lake.check`). Audited."""
        name = self._region_name(region)
        self._check_raw_read(self.config.region(name), "check", "lake")
        report = check_region(self._store(name), version)
        self._audit(
            name,
            "check",
            "lake",
            report.version,
            "ok" if report.ok else "failed",
            {"problems": len(report.problems), "pending": report.pending, **report.counts},
        )
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

        rc = self.config.region(region)
        self._check_tenant(region, "ingest", "run")
        tenant = self.config.tenant(self.principal.tenant)
        store = self._store(region)

        def on_commit(c: Committed) -> None:
            n = [o for o in c.outcomes.values() if o.status == "ingested"]
            self._audit(
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
            store,
            paths,
            region=rc,
            tenant=tenant,
            principal=self.principal,
            registry=registry or DEFAULT_REGISTRY,
            engine=engine,
            options=options,
            now=self._clock,
            on_commit=on_commit,
            progress=progress,
        )
        try:
            self._audit(
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
        rc = self.config.region(region)
        self._check_tenant(region, "ingest", name)
        tenant = self.config.tenant(self.principal.tenant)

        def judge(record: Record) -> None:
            foreign = record.metadata.region
            if foreign in (None, region):
                return
            exc = ResidencyError(
                f"records of region {foreign} cannot be written to region {region}: "
                "raw data stays in the region where it was recorded"
            )
            if foreign in self.config.regions:
                self._refuse(str(foreign), "export", f"{name} -> {region}", exc)
            raise self._refuse(region, "ingest", name, exc)

        def on_commit(c: Committed) -> None:
            for o in c.outcomes.values():
                self._audit(region, "ingest", o.path, c.lake_version, "ok", {"status": o.status})

        report = ingest_records(
            self._store(region),
            records,
            region=rc,
            tenant=tenant,
            principal=self.principal,
            name=name,
            batch_size=batch_size,
            now=self._clock,
            judge=judge,
            on_commit=on_commit,
        )
        self._audit(
            region,
            "ingest",
            name,
            report.lake_version_after,
            "ok" if report.ok else "failed",
            {**report.counts(), "batches": len(report.outcomes)},
        )
        return report

    def erase(self, region: str, erasure: Erasure) -> EraseReport:
        """Erase records for good: delete, commit, vacuum (see :mod:`datadrive.lake.erase`).

        Raises:
            AccessDeniedError: if the principal erases another tenant's data (audited).
        """
        rc = self.config.region(region)
        self._check_raw_read(rc, "erase", "records")
        if erasure.tenant != self.principal.tenant:
            raise self._refuse(
                region,
                "erase",
                f"tenant {erasure.tenant}",
                AccessDeniedError(
                    f"{self.principal.name} of {self.principal.tenant} cannot erase {erasure.tenant}'s data"
                ),
            )
        if erasure.is_empty:
            raise ConfigError("an erasure needs at least one criterion (ids, sources, inputs or a date)")
        store = self._store(region)
        with region_lock(store.root, "commit"):
            store.ensure(self._clock())
            recover(store, self._clock)
            plan = plan_erase(store, erasure)
            digest = ids_digest(plan)
            if not (plan["scenario_keys"] or plan["telemetry_keys"] or plan["inputs"]):
                report = EraseReport(0, 0, 0, None, 0, digest)
            else:
                marker = store.root.meta_path("pending", f"erase-{plan['erase_id']}.json")
                try:
                    store.fs.create_dir(store.root.meta_path("pending"), recursive=True)
                    store.write_file(marker, json.dumps(plan).encode())
                except Exception as exc:
                    raise storage_error(store.root, "start an erasure", exc) from exc
                version, removed = finish_erase(store, plan, self._clock)
                store.delete_file(marker)
                report = EraseReport(
                    len(plan["scenario_keys"]),
                    len(plan["telemetry_keys"]),
                    len(plan["inputs"]),
                    version,
                    removed,
                    digest,
                )
            # derived data keyed by the erased records, or by the ids the erasure names
            derived = erase_keyed_artefacts(
                store.root,
                erasure.tenant,
                {k[1] for k in plan["scenario_keys"]} | set(erasure.scenario_ids),
                {k[1] for k in plan["telemetry_keys"]} | set(erasure.telemetry_ids),
            )
            report = replace(report, derived=len(derived))
        self._audit(
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

    def optimize(self, region: str, *, vacuum_retention_hours: int = 168) -> dict[str, Any]:
        """Compact small files of every table; vacuum files older than the retention.

        Compaction keeps every row and every readable version; the vacuum
        removes files no version younger than the retention needs, and files
        a crashed writer never committed (``full`` mode: the commit lock is
        held, so no writer has files in flight). The audit table is compacted
        under its own lock and never vacuumed.
        """
        from deltalake import CommitProperties, write_deltalake

        rc = self.config.region(region)
        self._check_raw_read(rc, "optimize", "lake")
        store = self._store(region)
        stats: dict[str, Any] = {}
        with region_lock(store.root, "commit"):
            store.ensure(self._clock())
            recover(store, self._clock)
            try:
                for spec in (*DATA_TABLES, INGESTS):
                    metrics = store.table(spec).optimize.compact()
                    stats[spec.name] = {
                        "files_added": metrics.get("numFilesAdded"),
                        "files_removed": metrics.get("numFilesRemoved"),
                    }
                versions = {spec.name: store.head(spec) for spec in DATA_TABLES}
                write_deltalake(
                    store.uri(INGESTS),
                    INGESTS.schema.empty_table(),
                    mode="append",
                    storage_options=store.root.storage_options(),
                    commit_properties=CommitProperties(
                        custom_metadata=commit_record(
                            "optimize", versions, now=self._clock(), who=self.principal.name
                        )
                    ),
                )
                removed = 0
                for spec in (*DATA_TABLES, INGESTS):
                    removed += len(
                        store.table(spec).vacuum(
                            retention_hours=vacuum_retention_hours,
                            dry_run=False,
                            enforce_retention_duration=False,
                            full=True,
                        )
                    )
                stats["files_vacuumed"] = removed
                with region_lock(store.root, "audit"):
                    metrics = store.table(AUDIT).optimize.compact()
                stats["audit"] = {
                    "files_added": metrics.get("numFilesAdded"),
                    "files_removed": metrics.get("numFilesRemoved"),
                }
            except (LakeError, StorageError):
                raise
            except Exception as exc:
                raise storage_error(store.root, "optimize", exc) from exc
            version = store.lake_version()
        self._audit(region, "optimize", "lake", version, "ok", stats)
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
        if kind not in DERIVED_KINDS:
            raise ConfigError(f"unknown derived kind {kind!r}; known: {', '.join(DERIVED_KINDS)}")
        rc = self.config.region(region)
        obj = f"derived/{kind}/{name}"
        self._check_tenant(region, "derive", obj)
        if derived_from is not None and derived_from.region != region:
            raise self._refuse(
                derived_from.region,
                "export",
                f"{obj} -> {region}",
                ResidencyError(
                    f"an artefact derived from region {derived_from.region} is stored in "
                    f"{derived_from.region}; use export to move it to {region}, "
                    "as that region's policy allows"
                ),
            )
        store = self._store(region)
        provenance: dict[str, Any] = {
            "kind": kind,
            "tenant": self.principal.tenant,
            "region": rc.name,
            "derived_from": None
            if derived_from is None
            else {"region": derived_from.region, "lake_version": derived_from.version},
            "sha256": hashlib.sha256(data).hexdigest(),
            "created_by": self.principal.name,
            "created_at": self._clock().isoformat(),
        }
        if erase_with is not None:
            provenance["erase_with"] = erase_with.as_json()
            # data erasable with personal records names no person: the creator's keyed pseudonym
            key = self.config.tenant(self.principal.tenant).key
            provenance["created_by"] = (
                "user-" + hmac.new(key, self.principal.name.encode(), hashlib.sha256).hexdigest()[:16]
            )
        self._write_artefact(store.root, obj, data, provenance)
        self._audit(
            region,
            "derive",
            obj,
            None if derived_from is None else derived_from.version,
            "ok",
            {"bytes": len(data)},
        )
        return obj

    def delete_derived(self, region: str, obj: str) -> bool:
        """Delete one of the tenant's derived artefacts (and its provenance); audited.

        Returns:
            Whether there was one to delete.

        Raises:
            AccessDeniedError: if it belongs to another tenant (audited).
        """
        import pyarrow.fs as pafs

        parts = obj.split("/")
        if len(parts) < 3 or parts[0] != "derived" or parts[1] not in DERIVED_KINDS:
            raise LakeError(f"{obj!r} is not a derived artefact (derived/<kind>/<name>)")
        self._check_tenant(region, "delete", obj)
        root = self._store(region).root
        fs = root.filesystem()
        path = root.path(*parts)
        try:
            if fs.get_file_info(path + ".provenance.json").type != pafs.FileType.File:
                self._audit(region, "delete", obj, None, "ok", {"deleted": 0})
                return False
            with fs.open_input_stream(path + ".provenance.json") as fh:
                owner = json.loads(fh.read().decode()).get("tenant")
        except (OSError, ValueError) as exc:
            raise storage_error(root, f"read {obj}", exc) from exc
        if owner != self.principal.tenant:
            raise self._refuse(region, "delete", obj, AccessDeniedError(f"{obj} belongs to tenant {owner!r}"))
        try:
            if fs.get_file_info(path).type == pafs.FileType.File:
                fs.delete_file(path)
            fs.delete_file(path + ".provenance.json")
        except Exception as exc:
            raise storage_error(root, f"delete {obj}", exc) from exc
        self._audit(region, "delete", obj, None, "ok", {"deleted": 1})
        return True

    def _check_derived_read(self, region: RegionConfig, kind: str, obj: str) -> None:
        """A derived artefact may be read at home, or from a region its kind may be exported to."""
        self._check_tenant(region.name, "read", obj)
        home = self.principal.home_region
        if home == region.name or (kind in region.export.derived and home in region.export.to):
            return
        raise self._refuse(
            region.name,
            "read",
            obj,
            ResidencyError(
                f"{self.principal.name} is in {home}; {kind} artefacts of region {region.name} may not be "
                f"read from there (its policy lets {', '.join(sorted(region.export.derived)) or 'no'} "
                f"artefacts go to {', '.join(sorted(region.export.to)) or 'nowhere'})"
            ),
        )

    def list_derived(self, region: str, kind: str, prefix: str = "") -> list[str]:
        """Names of the derived artefacts of ``kind`` in ``region`` (``derived/<kind>/<name>``), sorted.

        Provenance files are not listed. Audited; judged like :meth:`read_derived`.
        """
        import pyarrow.fs as pafs

        if kind not in DERIVED_KINDS:
            raise ConfigError(f"unknown derived kind {kind!r}; known: {', '.join(DERIVED_KINDS)}")
        rc = self.config.region(region)
        obj = f"derived/{kind}/{prefix}"
        self._check_derived_read(rc, kind, obj)
        root = self._store(region).root
        fs = root.filesystem()
        base = root.path("derived", kind)
        try:
            infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        except Exception as exc:
            raise storage_error(root, f"list {obj}", exc) from exc
        names = sorted(
            f"derived/{kind}/{info.path[len(base) + 1 :]}"
            for info in infos
            if info.type == pafs.FileType.File and not info.path.endswith(".provenance.json")
        )
        out = [n for n in names if n.startswith(obj)]
        self._audit(region, "list", obj, None, "ok", {"artefacts": len(out)})
        return out

    def read_derived(self, region: str, obj: str) -> tuple[bytes, dict[str, Any]]:
        """A derived artefact's bytes and provenance.

        Readable by principals at home in the region, or in a region its
        kind may be exported to (reading it from there is an export).
        Audited; a refusal raises :class:`ResidencyError` and is audited.
        """
        parts = obj.split("/")
        if len(parts) < 3 or parts[0] != "derived" or parts[1] not in DERIVED_KINDS:
            raise LakeError(f"{obj!r} is not a derived artefact (derived/<kind>/<name>)")
        rc = self.config.region(region)
        self._check_derived_read(rc, parts[1], obj)
        data, provenance = self._read_artefact(self._store(region).root, obj)
        if provenance.get("tenant") not in self.config.visible_tenants(self.principal.tenant, region):
            raise self._refuse(
                region,
                "read",
                obj,
                AccessDeniedError(f"{obj} belongs to tenant {provenance.get('tenant')!r}"),
            )
        self._audit(region, "read", obj, None, "ok", {"bytes": len(data)})
        return data, provenance

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
        if kind not in DERIVED_KINDS:
            raise ConfigError(f"unknown derived kind {kind!r}; known: {', '.join(DERIVED_KINDS)}")
        rc = self.config.region(region)
        obj = f"derived/{kind}/{name}"
        self._check_tenant(region, "derive", obj)
        if derived_from is not None and derived_from.region != region:
            raise self._refuse(
                derived_from.region,
                "export",
                f"{obj} -> {region}",
                ResidencyError(
                    f"an artefact derived from region {derived_from.region} must stay in "
                    f"{derived_from.region}; it cannot be materialised in {region}"
                ),
            )
        root = self._store(region).root
        if not root.is_local:
            raise ConfigError(
                f"region {region} is stored at {root.uri}: a local folder is needed for {obj} "
                "(give the command a local cache folder)"
            )
        path = Path(root.path("derived", kind, *name.split("/")))
        try:
            path.mkdir(parents=True, exist_ok=True)
            prov = path.with_name(path.name + ".provenance.json")
            if not prov.exists():
                prov.write_text(
                    json.dumps(
                        {
                            "kind": kind,
                            "tenant": self.principal.tenant,
                            "region": rc.name,
                            "derived_from": None
                            if derived_from is None
                            else {"region": derived_from.region, "lake_version": derived_from.version},
                            "created_by": self.principal.name,
                            "created_at": self._clock().isoformat(),
                        },
                        indent=2,
                    )
                )
        except OSError as exc:
            raise StorageError(f"cannot create {path}: {exc.strerror or exc}") from exc
        self._audit(region, "derive", obj, None if derived_from is None else derived_from.version, "ok", {})
        return path

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
        self._audit(region, action, obj, lake_version, outcome, detail)

    def _write_artefact(
        self, root: StorageRoot, obj: str, data: bytes, provenance: Mapping[str, Any]
    ) -> None:
        store_fs = root.filesystem()
        path = root.path(*obj.split("/"))
        try:
            store_fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            with store_fs.open_output_stream(path) as fh:
                fh.write(data)
            with store_fs.open_output_stream(path + ".provenance.json") as fh:
                fh.write(json.dumps(provenance, indent=2).encode())
        except Exception as exc:
            raise storage_error(root, f"write {obj}", exc) from exc

    def _read_artefact(self, root: StorageRoot, obj: str) -> tuple[bytes, dict[str, Any]]:
        store_fs = root.filesystem()
        path = root.path(*obj.split("/"))
        try:
            with store_fs.open_input_stream(path) as fh:
                data = fh.read()
            with store_fs.open_input_stream(path + ".provenance.json") as fh:
                provenance = json.loads(fh.read().decode())
        except FileNotFoundError:
            raise LakeError(f"no artefact {obj} in {root.uri}") from None
        except OSError as exc:
            if "not found" in str(exc).lower() or "no such file" in str(exc).lower():
                raise LakeError(f"no artefact {obj} in {root.uri}") from None
            raise storage_error(root, f"read {obj}", exc) from exc
        return bytes(data), provenance

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
        rc = self.config.region(region)
        self._check_tenant(region, "export", obj)
        if to != EXTERNAL:
            self.config.region(to)
        elif dest_path is None:
            raise ConfigError("an export to 'external' needs a destination folder")
        target = f"{obj} -> {to}" + (f" ({dest_path})" if dest_path is not None else "")
        if obj in TABLES:
            if obj == "audit" or to not in rc.export.raw_to:
                allowed = ", ".join(sorted(rc.export.raw_to)) or "nowhere"
                raise self._refuse(
                    region,
                    "export",
                    target,
                    ResidencyError(
                        f"{obj} is raw data of region {region}; it may not be copied to {to} "
                        f"(its policy lets raw tables go to: {allowed})"
                    ),
                )
            self._check_raw_read(rc, "export", target)
            snap = self.snapshot(region)
            rows = snap.table(obj)
            from deltalake import write_deltalake

            dest_store = self._store(to)
            uri = dest_store.root.table_uri(f"imports/{region}/{obj}")
            try:
                write_deltalake(
                    uri, rows, mode="overwrite", storage_options=dest_store.root.storage_options()
                )
            except Exception as exc:
                raise storage_error(dest_store.root, f"write the export of {obj}", exc) from exc
            self._audit(region, "export", target, snap.version, "ok", {"rows": rows.num_rows})
            self._audit(to, "import", f"{obj} <- {region}", None, "ok", {"rows": rows.num_rows})
            return ExportReport(obj, region, to, uri, rows.num_rows)
        parts = obj.split("/")
        if len(parts) < 3 or parts[0] != "derived" or parts[1] not in DERIVED_KINDS:
            raise LakeError(
                f"cannot export {obj!r}: name a table ({', '.join(TABLES)}) or a derived artefact "
                f"derived/<kind>/<name> with kind one of {', '.join(DERIVED_KINDS)}"
            )
        kind = parts[1]
        if kind not in rc.export.derived or to not in rc.export.to:
            why = (
                f"its policy does not let {kind} artefacts leave"
                if kind not in rc.export.derived
                else f"its policy does not allow exports to {to}"
            )
            raise self._refuse(
                region, "export", target, ResidencyError(f"cannot export {obj} from {region}: {why}")
            )
        data, provenance = self._read_artefact(self._store(region).root, obj)
        if provenance.get("tenant") not in self.config.visible_tenants(self.principal.tenant, region):
            raise self._refuse(
                region,
                "export",
                target,
                AccessDeniedError(f"{obj} belongs to tenant {provenance.get('tenant')!r}"),
            )
        provenance = {
            **provenance,
            "exported_from": region,
            "exported_by": self.principal.name,
            "exported_at": self._clock().isoformat(),
        }
        if to == EXTERNAL:
            dest = Path(dest_path or ".") / Path(*parts[1:])
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
                dest.with_name(dest.name + ".provenance.json").write_text(json.dumps(provenance, indent=2))
            except OSError as exc:
                raise StorageError(f"cannot write the export to {dest}: {exc.strerror or exc}") from exc
            destination = str(dest)
        else:
            dest_root = self._store(to).root
            self._write_artefact(dest_root, obj, data, provenance)
            destination = dest_root.table_uri(obj)
            self._audit(to, "import", f"{obj} <- {region}", None, "ok", {"bytes": len(data)})
        self._audit(
            region, "export", target, None, "ok", {"bytes": len(data), "sha256": provenance.get("sha256")}
        )
        return ExportReport(obj, region, to, destination, len(data))

    # ------------------------------------------------------------------ transfers out of the lake's tables

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
        rc = self.config.region(region)
        self._check_tenant(region, "export", obj)
        target = f"{obj} -> {to}"
        if to != region:
            if kind == "raw":
                allowed = to in rc.export.raw_to
                why = f"its policy lets raw data go to: {', '.join(sorted(rc.export.raw_to)) or 'nowhere'}"
            else:
                if kind not in DERIVED_KINDS:
                    raise ConfigError(
                        f"unknown derived kind {kind!r}; known: raw, {', '.join(DERIVED_KINDS)}"
                    )
                allowed = kind in rc.export.derived and to in rc.export.to
                kinds = ", ".join(sorted(rc.export.derived)) or "no"
                where = ", ".join(sorted(rc.export.to)) or "nowhere"
                why = f"its policy lets {kinds} artefacts go to {where}"
            if not allowed:
                raise self._refuse(
                    region,
                    "export",
                    target,
                    ResidencyError(
                        f"{obj} is {'data' if kind == 'raw' else kind} of region {region}; "
                        f"sending it to {to} "
                        f"would export it, and {why}"
                    ),
                )
        self._audit(region, "export", target, None, "ok", {"kind": kind})

    def record(self, region: str, action: str, obj: str, detail: Mapping[str, Any] | None = None) -> None:
        """Append an audit row for an action done on the region's data outside the lake's own methods.

        Layers above the lake that keep their own in-region records (the
        assistant's conversations) audit their writes and erasures here.
        """
        self.config.region(region)
        self._check_tenant(region, action, obj)
        self._audit(region, action, obj, None, "ok", detail)
