"""Erasure: delete a tenant's records and vacuum every old version that held them.

A GDPR request or a retention limit is met only when time travel can no
longer bring the data back: an erasure deletes the matching rows from
every versioned table (raw and derived) and the ledger, commits a new lake version, and then
vacuums each table with zero retention (``full`` mode, so files a crashed
writer never committed go too). Lake versions from before the erasure that
referenced the removed files can no longer be read; the reader says so.

The transaction log never held the identifiers in the first place: Delta
statistics are kept only for non-identifying columns (see
:mod:`datadrive.lake.schema`). The audit row of an erasure records counts
and a hash of the erased ids, not the ids.

An erasure interrupted by a crash is finished by the next writer: its
plan is saved in ``_datadrive/pending/`` before the first delete
(:func:`datadrive.lake.maintenance.erase_region`), and
:func:`datadrive.lake.commit.recover` finishes it.

**Derived data erased with its records.** A layer above the lake that
stores data derived from particular scenarios or telemetry logs (the
assistant's conversations about a vehicle's drives, say) stores it with
``Lake.put_derived(..., erase_with=ErasureKeys(...))``: the keys are kept in
the artefact's provenance, and every erasure that removes one of those
scenarios or logs, or names them, deletes the artefact too
(:func:`datadrive.lake.artefacts.erase_keyed_artefacts`). The lake needs to
know nothing of the layer: only which records the data came from.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from datadrive.errors import StorageError
from datadrive.lake.schema import INGESTS, SCENARIOS, TELEMETRY, TableSpec, conform, versioned_tables
from datadrive.lake.storage import storage_error
from datadrive.lake.tables import RegionStore, commit_record, sql_quote, writer_properties

__all__ = [
    "EraseReport",
    "Erasure",
    "ErasureKeys",
    "finish_erase",
    "ids_digest",
    "keys_filter",
    "plan_erase",
    "rewrite_without",
]


@dataclass(frozen=True)
class ErasureKeys:
    """The records a derived artefact was made from: erasing any of them erases it.

    Attributes:
        scenario_ids: Scenario ids (as stored: pseudonymised).
        telemetry_ids: Telemetry ids.
    """

    scenario_ids: tuple[str, ...] = ()
    telemetry_ids: tuple[str, ...] = ()

    def as_json(self) -> dict[str, list[str]]:
        return {
            "scenario_ids": sorted(set(self.scenario_ids)),
            "telemetry_ids": sorted(set(self.telemetry_ids)),
        }


@dataclass(frozen=True)
class Erasure:
    """What to erase; all given criteria must hold (within one tenant).

    Attributes:
        tenant: Whose data.
        scenario_ids: Scenario ids (as stored: pseudonymised).
        telemetry_ids: Telemetry ids.
        sources: Whole sources.
        input_sha256: Everything read from these inputs.
        ingested_before: ISO date; rows ingested before it (retention).
    """

    tenant: str
    scenario_ids: tuple[str, ...] = ()
    telemetry_ids: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    input_sha256: tuple[str, ...] = ()
    ingested_before: str | None = None

    @property
    def is_empty(self) -> bool:
        return not (
            self.scenario_ids
            or self.telemetry_ids
            or self.sources
            or self.input_sha256
            or self.ingested_before
        )


@dataclass(frozen=True)
class EraseReport:
    """What an erasure removed.

    Attributes:
        scenarios: Scenario rows removed (telemetry egos included).
        telemetry: Telemetry logs removed.
        inputs: Ledger rows removed (inputs with nothing left).
        lake_version: The lake version after the erasure (None if nothing matched).
        files_removed: Files deleted by the vacuum.
        ids_sha256: SHA-256 of the sorted erased keys (what the audit records).
        derived: Derived artefacts deleted with the records (see ``erase_with``).
    """

    scenarios: int
    telemetry: int
    inputs: int
    lake_version: int | None
    files_removed: int
    ids_sha256: str
    derived: int = 0


def _filter(e: Erasure, id_column: str, ids: Sequence[str]) -> ds.Expression:
    f = ds.field("tenant") == e.tenant
    if ids:
        f = f & ds.field(id_column).isin(list(ids))
    if e.sources:
        f = f & ds.field("source").isin(list(e.sources))
    if e.input_sha256:
        f = f & ds.field("input_sha256").isin(list(e.input_sha256))
    if e.ingested_before:
        f = f & (ds.field("ingest_date") < e.ingested_before)
    return f


def plan_erase(store: RegionStore, e: Erasure) -> dict[str, Any]:
    """The keys an erasure removes, resolved at the latest lake version."""
    versions = store.resolve(None).table_versions
    scen = store.arrow(SCENARIOS, versions[SCENARIOS.name])
    tel = store.arrow(TELEMETRY, versions[TELEMETRY.name])
    only_telemetry = bool(e.telemetry_ids) and not e.scenario_ids
    only_scenarios = bool(e.scenario_ids) and not e.telemetry_ids
    cols = ["source", "scenario_id", "telemetry_id", "input_sha256"]
    s_rows = (
        []
        if only_telemetry
        else scen.to_table(columns=cols, filter=_filter(e, "scenario_id", e.scenario_ids)).to_pylist()
    )
    t_filter = _filter(e, "telemetry_id", e.telemetry_ids) & (ds.field("row_kind") == "log")
    t_rows = (
        []
        if only_scenarios
        else tel.to_table(
            columns=["source", "telemetry_id", "input_sha256", "ego_scenario_id"], filter=t_filter
        ).to_pylist()
    )
    scenario_keys = {(r["source"], r["scenario_id"]) for r in s_rows}
    telemetry_keys = {(r["source"], r["telemetry_id"]) for r in t_rows}
    # a telemetry log and its ego trajectory go together
    telemetry_keys |= {(r["source"], r["telemetry_id"]) for r in s_rows if r["telemetry_id"]}
    scenario_keys |= {(r["source"], r["ego_scenario_id"]) for r in t_rows if r["ego_scenario_id"]}
    touched = {r["input_sha256"] for r in s_rows + t_rows}
    # inputs with nothing left leave the ledger; the others get their counts updated
    emptied: list[str] = []
    recount: dict[str, list[int]] = {}
    if touched:
        flt = (ds.field("tenant") == e.tenant) & ds.field("input_sha256").isin(sorted(touched))
        left_s = scen.to_table(columns=["input_sha256", "source", "scenario_id", "telemetry_id"], filter=flt)
        left_t = tel.to_table(
            columns=["input_sha256", "source", "telemetry_id"], filter=flt & (ds.field("row_kind") == "log")
        )
        for sha in sorted(touched):
            recount[sha] = [0, 0]
        for r in left_s.to_pylist():
            if (r["source"], r["scenario_id"]) not in scenario_keys and r["telemetry_id"] is None:
                recount[r["input_sha256"]][0] += 1
        for r in left_t.to_pylist():
            if (r["source"], r["telemetry_id"]) not in telemetry_keys:
                recount[r["input_sha256"]][1] += 1
        remaining = {
            r["input_sha256"]
            for r in left_s.to_pylist()
            if (r["source"], r["scenario_id"]) not in scenario_keys
        }
        remaining |= {
            r["input_sha256"]
            for r in left_t.to_pylist()
            if (r["source"], r["telemetry_id"]) not in telemetry_keys
        }
        emptied = sorted(touched - remaining)
        recount = {k: v for k, v in recount.items() if k not in emptied}
    return {
        "op": "erase",
        "erase_id": uuid.uuid4().hex,
        "tenant": e.tenant,
        "scenario_keys": sorted(scenario_keys),
        "telemetry_keys": sorted(telemetry_keys),
        "inputs": emptied,
        "recount": recount,
    }


def keys_filter(tenant: str, keys: Sequence[Sequence[str]], id_column: str) -> ds.Expression | None:
    """Rows of ``tenant`` whose (source, id) is one of ``keys``."""
    by_source: dict[str, list[str]] = {}
    for source, key in keys:
        by_source.setdefault(source, []).append(key)
    out: ds.Expression | None = None
    for source, ids in sorted(by_source.items()):
        part = (ds.field("tenant") == tenant) & (ds.field("source") == source) & ds.field(id_column).isin(ids)
        out = part if out is None else out | part
    return out


def rewrite_without(
    store: RegionStore, spec: TableSpec, tenant: str, erased: ds.Expression | None, props: Any = None
) -> bool:
    """Remove the rows matching ``erased`` by rewriting the batches that hold them.

    Each batch's rows live in files of their own, so rewriting whole batches
    (replace-where on ``batch_id``) removes the old files without a partial
    rewrite by the Delta engine.

    Returns:
        Whether a commit was made.
    """
    from deltalake import write_deltalake

    if erased is None:
        return False
    data = store.arrow(spec)
    hit = data.to_table(columns=["batch_id"], filter=erased)
    batches = sorted(set(hit.column("batch_id").to_pylist()))
    if not batches:
        return False
    in_batches = (ds.field("tenant") == tenant) & ds.field("batch_id").isin(batches)
    rows = conform(spec, data.to_table(filter=in_batches))
    remaining = rows.filter(~erased)
    predicate = f"tenant = {sql_quote(tenant)} AND batch_id IN ({', '.join(sql_quote(b) for b in batches)})"
    if remaining.num_rows:
        write_deltalake(
            store.uri(spec),
            remaining,
            mode="overwrite",
            predicate=predicate,
            partition_by=list(spec.partition_by),
            storage_options=store.root.storage_options(),
            commit_properties=props,
            writer_properties=writer_properties(spec),
        )
    else:
        store.table(spec).delete(predicate, commit_properties=props)
    return True


def _rewrite_ledger(
    store: RegionStore, tenant: str, emptied: list[str], recount: dict[str, list[int]], props: Any
) -> bool:
    """Drop emptied inputs from the ledger and update the counts of partly erased ones (one commit)."""
    from deltalake import write_deltalake

    touched = sorted(set(emptied) | set(recount))
    if not touched:
        return False
    data = store.arrow(INGESTS)
    flt = (ds.field("tenant") == tenant) & ds.field("input_sha256").isin(touched)
    batches = sorted(set(data.to_table(columns=["batch_id"], filter=flt).column("batch_id").to_pylist()))
    if not batches:
        return False
    rows = conform(
        INGESTS, data.to_table(filter=(ds.field("tenant") == tenant) & ds.field("batch_id").isin(batches))
    ).to_pylist()
    kept = []
    for r in rows:
        sha = r["input_sha256"]
        if sha in emptied:
            continue
        if sha in recount:
            r["num_scenarios"], r["num_telemetry"] = recount[sha]
        kept.append(r)
    predicate = f"tenant = {sql_quote(tenant)} AND batch_id IN ({', '.join(sql_quote(b) for b in batches)})"
    if kept:
        write_deltalake(
            store.uri(INGESTS),
            conform(INGESTS, pa.Table.from_pylist(kept, schema=INGESTS.schema)),
            mode="overwrite",
            predicate=predicate,
            partition_by=list(INGESTS.partition_by),
            storage_options=store.root.storage_options(),
            commit_properties=props,
        )
    else:
        store.table(INGESTS).delete(predicate, commit_properties=props)
    return True


def ids_digest(plan: Mapping[str, Any]) -> str:
    payload = json.dumps([plan["scenario_keys"], plan["telemetry_keys"], plan["inputs"]], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def finish_erase(store: RegionStore, plan: Mapping[str, Any], now: Callable[[], datetime]) -> tuple[int, int]:
    """Apply an erasure plan (idempotent), commit a lake version, vacuum.

    Returns:
        ``(lake_version, files_removed)``.
    """
    from deltalake import CommitProperties, write_deltalake

    tenant = str(plan["tenant"])
    try:
        previous = store.resolve(None)
        for spec in versioned_tables():
            if spec.key_column is None or not store.exists(spec):
                continue
            keys = plan["telemetry_keys"] if spec.key_column == "telemetry_id" else plan["scenario_keys"]
            rewrite_without(store, spec, tenant, keys_filter(tenant, keys, spec.key_column))
        versions = {spec.name: store.head(spec) for spec in versioned_tables()}
        record = commit_record(
            "erase",
            versions,
            now=now(),
            erase_id=plan.get("erase_id"),
            tenant=tenant,
            scenarios=len(plan["scenario_keys"]),
            telemetry=len(plan["telemetry_keys"]),
            inputs=len(plan["inputs"]),
            ids_sha256=ids_digest(plan),
        )
        props = CommitProperties(custom_metadata=record)
        store.make_pins_durable(previous, versions)
        if not _rewrite_ledger(store, tenant, list(plan["inputs"]), dict(plan.get("recount", {})), props):
            write_deltalake(
                store.uri(INGESTS),
                INGESTS.schema.empty_table(),
                mode="append",
                storage_options=store.root.storage_options(),
                commit_properties=props,
            )
        version = store.lake_version()
        store.make_durable(INGESTS, previous.version, version)  # before vacuum unlinks what it replaced
        removed = 0
        for spec in (*versioned_tables(), INGESTS):
            removed += store.vacuum(spec, retention_hours=0)
    except StorageError:
        raise
    except Exception as exc:
        raise storage_error(store.root, "erase", exc) from exc
    return version, removed
