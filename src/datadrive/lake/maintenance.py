"""Erasure and optimisation (compaction, clustering) of a region, under its commit lock, after recovery.

The :class:`~datadrive.lake.Lake` facade judges the principal and audits;
these functions do the work. Both hold the region's commit lock, first
finish what a crashed writer left (:func:`datadrive.lake.commit.recover`),
and commit a lake version of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from datadrive.errors import LakeError, StorageError
from datadrive.lake import commit
from datadrive.lake.artefacts import erase_keyed_artefacts
from datadrive.lake.clustering import cluster_table, memory_bytes
from datadrive.lake.erase import EraseReport, Erasure, finish_erase, ids_digest, plan_erase
from datadrive.lake.locks import region_lock
from datadrive.lake.schema import AUDIT, INGESTS, versioned_tables
from datadrive.lake.storage import storage_error
from datadrive.lake.tables import RegionStore, commit_record, table_configuration, writer_properties

__all__ = ["erase_region", "optimize_region"]


def erase_region(store: RegionStore, erasure: Erasure, now: Callable[[], datetime]) -> EraseReport:
    """Plan an erasure, save the plan, apply it, commit, vacuum (see :mod:`datadrive.lake.erase`)."""
    with region_lock(store.root, "commit"):
        store.ensure(now())
        commit.recover(store, now)
        plan = plan_erase(store, erasure)
        digest = ids_digest(plan)
        # derived data keyed by the erased records, or by the ids the erasure names (records that
        # an earlier erasure already took leave their keyed artefacts to this one)
        scenario_ids = {k[1] for k in plan["scenario_keys"]} | set(erasure.scenario_ids)
        telemetry_ids = {k[1] for k in plan["telemetry_keys"]} | set(erasure.telemetry_ids)
        if not (plan["scenario_keys"] or plan["telemetry_keys"] or plan["inputs"]):
            derived = erase_keyed_artefacts(store.root, erasure.tenant, scenario_ids, telemetry_ids)
            return EraseReport(0, 0, 0, None, 0, digest, len(derived))
        # the keys travel in the saved plan: a crash before the artefacts go is finished by recovery
        plan["derived_keys"] = {"scenario_ids": sorted(scenario_ids), "telemetry_ids": sorted(telemetry_ids)}
        marker = f"erase-{plan['erase_id']}"
        commit.start(store, marker, plan)
        version, removed = finish_erase(store, plan, now)
        derived = erase_keyed_artefacts(store.root, erasure.tenant, scenario_ids, telemetry_ids)
        commit.finish(store, marker)
    return EraseReport(
        len(plan["scenario_keys"]),
        len(plan["telemetry_keys"]),
        len(plan["inputs"]),
        version,
        removed,
        digest,
        len(derived),
    )


def optimize_region(
    store: RegionStore,
    now: Callable[[], datetime],
    *,
    who: str,
    vacuum_retention_hours: int,
    cluster: bool = True,
    memory_limit: str = "2GB",
    temp_dir: str | None = None,
    tables: Collection[str] | None = None,
) -> dict[str, Any]:
    """Compact every table's small files, or cluster them; vacuum files older than the retention.

    A table whose spec declares a :class:`~datadrive.lake.schema.Clustering`
    (``mining_states``) is rewritten in that order across its files instead
    of compacted (:func:`datadrive.lake.clustering.cluster_table`: the same
    rows, bigger files, row groups of a few places each); partitions already
    clustered with nothing added since are left as they are. Compaction and
    clustering keep every row and every readable version; the vacuum
    removes files no version younger than the retention needs, and files a
    crashed writer never committed (``full`` mode: the commit lock is held,
    so no writer has files in flight). The audit table is compacted under
    its own lock and never vacuumed. Tables made by an older datadrive get
    the current table properties (checkpoints, kept logs), and every table
    a checkpoint.

    Args:
        store: The region's tables.
        now: The clock.
        who: Recorded in the commit record.
        vacuum_retention_hours: Files removed longer ago than this are deleted.
        cluster: Cluster the tables that declare it (``False``: compact them like the rest).
        memory_limit: DuckDB's memory limit for a clustering sort (it spills to disk beyond).
        temp_dir: Where that sort spills (default: the system's temporary folder).
        tables: Compact (or cluster) only these tables (default: every one);
            the vacuum and checkpoints still cover them all.

    Returns:
        Files added and removed per table (and, for a clustered table, its
        partitions rewritten, rows and seconds), files vacuumed, and the lake version.
    """
    memory_bytes(memory_limit)  # a bad limit is refused before anything is written
    known = {spec.name for spec in (*versioned_tables(), INGESTS)}
    unknown = sorted(set(tables or ()) - known)
    if unknown:
        raise LakeError(f"optimize: no table {', '.join(unknown)} (tables: {', '.join(sorted(known))})")
    stats: dict[str, Any] = {}
    with region_lock(store.root, "commit"):
        store.ensure(now())
        commit.recover(store, now)
        try:
            _upgrade_properties(store, now)
            ledger_before = store.head(INGESTS)
            for spec in (*versioned_tables(), INGESTS):
                if tables is not None and spec.name not in tables:
                    continue
                if cluster and spec.clustering is not None:
                    report = cluster_table(store, spec, memory_limit=memory_limit, temp_dir=temp_dir)
                    stats[spec.name] = {"clustered": True, **report.as_dict()}
                    continue
                metrics = store.table(spec).optimize.compact(writer_properties=writer_properties(spec))
                stats[spec.name] = {
                    "files_added": metrics.get("numFilesAdded"),
                    "files_removed": metrics.get("numFilesRemoved"),
                }
            versions = {spec.name: store.head(spec) for spec in versioned_tables()}
            store.make_durable(INGESTS, ledger_before, store.head(INGESTS))  # the pins above sync the rest
            commit.commit_version(store, "optimize", versions, now=now(), who=who)
            removed = 0
            for spec in (*versioned_tables(), INGESTS):
                removed += store.vacuum(spec, retention_hours=vacuum_retention_hours)
            stats["files_vacuumed"] = removed
            with region_lock(store.root, "audit"):
                audit_before = store.head(AUDIT)
                metrics = store.table(AUDIT).optimize.compact()
                store.table(AUDIT).create_checkpoint()
                store.make_durable(AUDIT, audit_before, store.head(AUDIT))
            for spec in (*versioned_tables(), INGESTS):
                dt = store.table(spec)
                dt.create_checkpoint()
                store.make_durable(spec, dt.version() - 1, dt.version())  # the checkpoint, _last_checkpoint
            stats["audit"] = {
                "files_added": metrics.get("numFilesAdded"),
                "files_removed": metrics.get("numFilesRemoved"),
            }
        except (LakeError, StorageError):
            raise
        except Exception as exc:
            raise storage_error(store.root, "optimize", exc) from exc
        stats["lake_version"] = store.lake_version()
    return stats


def _upgrade_properties(store: RegionStore, now: Callable[[], datetime]) -> None:
    """Set the table properties this datadrive writes (checkpoints, kept logs) where they are missing.

    The ledger's property change is a commit of ``ingests``, so it carries a
    commit record (``settings``) pinning the same table versions: it is a
    lake version like any other, with the same data.
    """
    from deltalake import CommitProperties

    for spec in (*versioned_tables(), INGESTS, AUDIT):
        dt = store.table(spec)
        wanted = {k: v for k, v in table_configuration(spec).items() if k.startswith("delta.")}
        have = dt.metadata().configuration or {}
        missing = {k: v for k, v in wanted.items() if have.get(k) != v}
        if not missing:
            continue
        props = None
        if spec is INGESTS:
            pinned = store.resolve(None).table_versions
            record = commit_record("settings", pinned, now=now(), properties=sorted(missing))
            props = CommitProperties(custom_metadata=record)
        dt.alter.set_table_properties(missing, raise_if_not_exists=False, commit_properties=props)
