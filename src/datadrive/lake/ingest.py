"""Ingest: files -> records -> pseudonymised rows -> batched, idempotent commits.

The pipeline, for ``datadrive ingest PATH... --region R --tenant T``:

1. **Discover** every input under the paths (one unit per file, or per folder
   for folder-shaped formats); every path and unclaimed file is accounted for.
2. **Hash** every unit in the engine (a file's SHA-256; a folder's over all its
   files): ``(tenant, sha256)`` is the idempotency key.
3. **Skip** units already in the region's ledger (``ingests``) or repeated in
   this run: reported as duplicates, not read again.
4. **Read** the rest in the engine; each worker reads one unit with its
   adapter, stamps region and tenant, pseudonymises identifiers, publishes
   coordinates in the region's datum, and returns Arrow rows, or the reason
   it failed. One bad file never stops the run.
5. **Commit** in batches under the region's commit lock: re-check the ledger
   (another process may have ingested the same file meanwhile), write the
   data tables, then the ledger rows with the pinned table versions — the
   lake commit. A crash anywhere leaves the lake at its previous version; the
   rows written before the crash are invisible and deleted by the next commit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from datadrive.compute.engines import Engine, InlineEngine
from datadrive.errors import (
    DatadriveError,
    InputError,
    LakeError,
    StorageError,
    UnsupportedFormatError,
    ValidationError,
)
from datadrive.lake.config import Principal, RegionConfig, TenantConfig
from datadrive.lake.geo import publisher_for
from datadrive.lake.locks import region_lock
from datadrive.lake.pseudonym import Pseudonymizer
from datadrive.lake.records import UnitTables, prepare, stamp_batch, unit_tables
from datadrive.lake.schema import DATA_TABLES, INGESTS, SCENARIOS, TELEMETRY, conform
from datadrive.lake.storage import storage_error
from datadrive.lake.tables import RegionStore, commit_record, sql_quote
from datadrive.sources.base import Adapter, Record, Registry, Unit, file_sha256, files_sha256, read_units

__all__ = [
    "Committed",
    "IngestEvent",
    "IngestInput",
    "IngestOptions",
    "IngestReport",
    "InputOutcome",
    "InputStatus",
    "ReadResult",
    "commit_units",
    "hash_unit",
    "ingest_paths",
    "ingest_records",
    "prepare_records",
    "read_unit",
    "records_sha256",
    "recover",
]

InputStatus = Literal["ingested", "duplicate", "unsupported", "failed"]


@dataclass(frozen=True)
class IngestOptions:
    """How an ingest batches its commits.

    Attributes:
        batch_inputs: Commit after this many read inputs.
        batch_bytes: ... or once their rows take this many bytes in memory.
        lock_timeout_s: How long to wait for another process's commit.
    """

    batch_inputs: int = 32
    batch_bytes: int = 256 << 20
    lock_timeout_s: float = 300.0


@dataclass(frozen=True)
class InputOutcome:
    """What happened to one input.

    Attributes:
        path: The input as discovered.
        status: ``ingested``, ``duplicate`` (already in the lake, or the same
            bytes earlier in this run), ``unsupported`` (no reader for this
            file or variant) or ``failed``.
        adapter: The adapter that claimed it.
        input_sha256: Its idempotency hash, once computed.
        num_scenarios: Scenarios it added (ingested) or holds (duplicate: 0).
        num_telemetry: Telemetry logs it added.
        reason: Why it was skipped or failed.
        batch_id: The batch it was committed in (or, for a duplicate, the
            batch that holds it).
        lake_version: The lake version that committed it.
    """

    path: str
    status: InputStatus
    adapter: str | None = None
    input_sha256: str | None = None
    num_scenarios: int = 0
    num_telemetry: int = 0
    reason: str | None = None
    batch_id: str | None = None
    lake_version: int | None = None


@dataclass(frozen=True)
class IngestReport:
    """Every input of one ingest run and what became of it."""

    region: str
    tenant: str
    outcomes: tuple[InputOutcome, ...]
    lake_version_before: int | None
    lake_version_after: int | None
    seconds: float
    storage_error: str | None = None

    def counts(self) -> dict[str, int]:
        """Inputs per status; the values add up to ``len(outcomes)``."""
        out = {"ingested": 0, "duplicate": 0, "unsupported": 0, "failed": 0}
        for o in self.outcomes:
            out[o.status] += 1
        return out

    @property
    def failed(self) -> list[InputOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def ok(self) -> bool:
        """No input failed."""
        return not self.failed

    @property
    def num_scenarios(self) -> int:
        return sum(o.num_scenarios for o in self.outcomes if o.status == "ingested")

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "tenant": self.tenant,
            "counts": self.counts(),
            "inputs": len(self.outcomes),
            "scenarios": self.num_scenarios,
            "lake_version_before": self.lake_version_before,
            "lake_version_after": self.lake_version_after,
            "seconds": round(self.seconds, 3),
            "storage_error": self.storage_error,
            "outcomes": [o.__dict__ for o in self.outcomes],
        }


@dataclass(frozen=True)
class IngestEvent:
    """Progress of a run, for a progress bar.

    Attributes:
        stage: ``discover``, ``hash``, ``read`` or ``commit``.
        done: Units finished in this stage.
        total: Units in this stage.
        message: One line about the latest step.
    """

    stage: str
    done: int
    total: int
    message: str = ""


# --------------------------------------------------------------------------- worker side


@dataclass(frozen=True)
class HashTask:
    index: int
    path: str
    unit: str


def hash_unit(task: HashTask) -> tuple[int, str | None, str | None]:
    """``(index, sha256, None)`` or ``(index, None, reason)``; never raises for bad input."""
    try:
        p = Path(task.path)
        if task.unit == "dir":
            files = [f for f in p.rglob("*") if f.is_file() and not any(x.startswith(".") for x in f.parts)]
            return task.index, files_sha256(p, files), None
        return task.index, file_sha256(p), None
    except OSError as exc:
        return task.index, None, f"cannot read ({exc.strerror or exc})"


@dataclass(frozen=True)
class ReadTask:
    """Everything a worker needs to read and prepare one input."""

    index: int
    path: str
    adapter: Adapter
    input_sha256: str
    region: str
    tenant: str
    key: bytes = field(repr=False)
    key_id: str
    crs: str


@dataclass(frozen=True)
class ReadResult:
    index: int
    tables: UnitTables | None
    num_scenarios: int = 0
    num_telemetry: int = 0
    scenario_keys: tuple[tuple[str, str], ...] = ()
    telemetry_keys: tuple[tuple[str, str], ...] = ()
    error: str | None = None
    unsupported: bool = False
    seconds: float = 0.0


def read_unit(task: ReadTask) -> ReadResult:
    """Read, prepare and convert one input; report bad input instead of raising.

    Reads through the same path as every other tool
    (:func:`datadrive.sources.read_units`), then :func:`prepare_records`.
    """
    t0 = time.perf_counter()
    records: list[Record] = []
    for _, item in read_units([Unit(task.adapter, Path(task.path))]):
        if isinstance(item, UnsupportedFormatError):
            return ReadResult(task.index, None, error=item.reason, unsupported=True)
        if isinstance(item, InputError):
            return ReadResult(task.index, None, error=f"{type(item).__name__}: {item.reason}")
        records.append(item)
    result = prepare_records(
        task.index,
        records,
        region=task.region,
        tenant=task.tenant,
        key=task.key,
        key_id=task.key_id,
        crs=task.crs,
        input_sha256=task.input_sha256,
    )
    return dataclasses.replace(result, seconds=time.perf_counter() - t0)


def prepare_records(
    index: int,
    records: Iterable[Record],
    *,
    region: str,
    tenant: str,
    key: bytes,
    key_id: str,
    crs: str,
    input_sha256: str,
) -> ReadResult:
    """The rows of one input's validated records, as the lake stores them (see :func:`prepare`).

    Stamps region and tenant, pseudonymises with the tenant's key, publishes
    coordinates in the region's datum, and converts to the data tables' rows.
    A failure is reported in the result, not raised.
    """
    try:
        pseudonyms = Pseudonymizer(key)
        publisher = publisher_for(crs)
        prepared = [
            prepare(rec, region=region, tenant=tenant, pseudonyms=pseudonyms, publisher=publisher)
            for rec in records
        ]
        if not prepared:
            return ReadResult(index, None, error="EmptyLogError: holds no records")
        tables = unit_tables(prepared, input_sha256=input_sha256, key_id=key_id, crs=publisher.crs)
    except DatadriveError as exc:
        reason = exc.reason if isinstance(exc, InputError) else str(exc)
        return ReadResult(index, None, error=f"{type(exc).__name__}: {reason}")
    except MemoryError:
        return ReadResult(index, None, error="MemoryError: the input does not fit in memory")
    return result_from_tables(index, tables)


def result_from_tables(index: int, tables: UnitTables, *, seconds: float = 0.0) -> ReadResult:
    """A successful :class:`ReadResult` for one input's rows."""
    scen = tables.scenarios
    tel = tables.telemetry.filter(pc.equal(tables.telemetry.column("row_kind"), "log"))
    return ReadResult(
        index=index,
        tables=tables,
        num_scenarios=int(pc.sum(pc.is_null(scen.column("telemetry_id"))).as_py() or 0),
        num_telemetry=tel.num_rows,
        scenario_keys=tuple(
            zip(scen.column("source").to_pylist(), scen.column("scenario_id").to_pylist(), strict=True)
        ),
        telemetry_keys=tuple(
            zip(tel.column("source").to_pylist(), tel.column("telemetry_id").to_pylist(), strict=True)
        ),
        seconds=seconds,
    )


# --------------------------------------------------------------------------- commit side


@dataclass(frozen=True)
class IngestInput:
    """One input as the commit sees it: a discovered unit, or a batch of in-memory records.

    Attributes:
        index: Its position in the run (outcomes are reported in this order).
        path: The input as discovered, or the name of a batch of records.
        unit: ``"file"``, ``"dir"`` or ``"records"``.
        adapter: The adapter that read it (``None`` for in-memory records).
        sha256: Its idempotency hash, once computed.
    """

    index: int
    path: str
    unit: str = "file"
    adapter: Adapter | None = None
    sha256: str | None = None

    @property
    def adapter_name(self) -> str | None:
        return self.adapter.name if self.adapter else None


@dataclass(frozen=True)
class Committed:
    """The outcome of one batch commit."""

    outcomes: dict[int, InputOutcome]
    lake_version: int | None
    batch_id: str | None


def _pending_path(store: RegionStore, name: str) -> str:
    return store.root.meta_path("pending", name)


def recover(store: RegionStore, now: Callable[[], datetime]) -> list[str]:
    """Finish or undo what a crashed writer left behind. Call under the commit lock.

    An ingest batch whose ledger commit never happened is deleted from the
    data tables; an erasure that started is finished.

    Returns:
        One line per action taken.
    """
    from datadrive.lake.erase import finish_erase

    actions: list[str] = []
    for path in store.list_files(store.root.meta_path("pending")):
        try:
            with store.fs.open_input_stream(path) as fh:
                record = json.loads(fh.read().decode("utf-8"))
        except (OSError, ValueError):
            record = {"op": "ingest", "batch_id": os.path.basename(path).removesuffix(".json")}
        op = record.get("op")
        if op == "ingest":
            batch = str(record.get("batch_id"))
            if _batch_committed(store, batch):
                actions.append(f"batch {batch} was committed; removed its marker")
            else:
                for spec in DATA_TABLES:
                    _delete(store, spec, f"batch_id = {sql_quote(batch)}")
                actions.append(f"deleted the rows of uncommitted batch {batch}")
        elif op == "erase":
            finish_erase(store, record, now)
            actions.append(f"finished erasure {record.get('erase_id')}")
        store.delete_file(path)
    return actions


def _batch_committed(store: RegionStore, batch_id: str) -> bool:
    import pyarrow.dataset as ds

    dataset = store.arrow(INGESTS)
    hits = dataset.to_table(columns=["batch_id"], filter=ds.field("batch_id") == batch_id)
    return bool(hits.num_rows)


def _delete(store: RegionStore, spec: Any, predicate: str, metadata: dict[str, str] | None = None) -> None:
    from deltalake import CommitProperties

    try:
        dt = store.table(spec)
        dt.delete(
            predicate, commit_properties=CommitProperties(custom_metadata=metadata) if metadata else None
        )
    except (LakeError, StorageError):
        raise
    except Exception as exc:
        raise storage_error(store.root, f"delete from {spec.name}", exc) from exc


def ledger(store: RegionStore, tenant: str) -> dict[str, str]:
    """``input_sha256 -> batch_id`` of every input the tenant has in the region (latest version)."""
    import pyarrow.dataset as ds

    if not store.exists(INGESTS):
        return {}
    dataset = store.arrow(INGESTS)
    t = dataset.to_table(columns=["input_sha256", "batch_id"], filter=ds.field("tenant") == tenant)
    return dict(zip(t.column("input_sha256").to_pylist(), t.column("batch_id").to_pylist(), strict=True))


def _existing_keys(
    store: RegionStore, spec: Any, id_column: str, tenant: str, keys: set[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which of ``keys`` ((source, id) pairs) the tenant already has in the table (latest version).

    Scans one column of the tenant's partitions of those sources; identifiers
    carry no Delta statistics (see :mod:`datadrive.lake.schema`), so files
    cannot be skipped by id.
    """
    import pyarrow.dataset as ds

    if not keys:
        return set()
    versions = store.resolve(None).table_versions
    dataset = store.arrow(spec, versions[spec.name])
    flt = (
        (ds.field("tenant") == tenant)
        & ds.field("source").isin(sorted({s for s, _ in keys}))
        & ds.field(id_column).isin(sorted({i for _, i in keys}))
    )
    if spec is TELEMETRY:
        flt = flt & (ds.field("row_kind") == "log")
    t = dataset.to_table(columns=["source", id_column], filter=flt)
    return set(zip(t.column("source").to_pylist(), t.column(id_column).to_pylist(), strict=True)) & keys


def commit_units(
    store: RegionStore,
    units: Sequence[tuple[IngestInput, ReadResult]],
    *,
    tenant: TenantConfig,
    principal: Principal,
    now: Callable[[], datetime],
    lock_timeout_s: float,
) -> Committed:
    """Commit one batch of read inputs atomically (see the module docstring).

    Raises:
        StorageError: if the root refuses a write; the lake stays at its
            previous version.
    """
    from deltalake import CommitProperties, write_deltalake

    outcomes: dict[int, InputOutcome] = {}
    with region_lock(store.root, "commit", lock_timeout_s):
        store.ensure(now())
        recover(store, now)
        known = ledger(store, tenant.name)
        taken_s = _existing_keys(
            store, SCENARIOS, "scenario_id", tenant.name, {k for _, r in units for k in r.scenario_keys}
        )
        taken_t = _existing_keys(
            store, TELEMETRY, "telemetry_id", tenant.name, {k for _, r in units for k in r.telemetry_keys}
        )
        accepted: list[tuple[IngestInput, ReadResult]] = []
        for u, r in units:
            sha = u.sha256 or ""
            name = u.adapter_name
            if sha in known:
                outcomes[u.index] = InputOutcome(
                    u.path, "duplicate", name, sha, reason="already in the lake", batch_id=known[sha]
                )
                continue
            clash = [k for k in r.scenario_keys if k in taken_s] + [
                k for k in r.telemetry_keys if k in taken_t
            ]
            if clash:
                src, sid = clash[0]
                outcomes[u.index] = InputOutcome(
                    u.path,
                    "failed",
                    name,
                    sha,
                    reason=f"{src} {sid!r} is already in the lake from another input "
                    "(erase it first to replace it)",
                )
                continue
            known[sha] = "(this batch)"
            taken_s.update(r.scenario_keys)
            taken_t.update(r.telemetry_keys)
            accepted.append((u, r))
        if not accepted:
            return Committed(outcomes, None, None)

        batch_id = uuid.uuid4().hex
        t = now()
        day = t.date().isoformat()
        marker = _pending_path(store, f"{batch_id}.json")
        try:
            store.fs.create_dir(store.root.meta_path("pending"), recursive=True)
            store.write_file(
                marker, json.dumps({"op": "ingest", "batch_id": batch_id, "time": t.isoformat()}).encode()
            )
        except Exception as exc:
            raise storage_error(store.root, "start a batch", exc) from exc
        tables = stamp_batch(
            UnitTables.concat([r.tables for _, r in accepted if r.tables is not None]),
            batch_id=batch_id,
            ingest_date=day,
            ingested_at=t,
            ingested_by=principal.name,
        )
        versions = dict(store.resolve(None).table_versions)
        for spec, rows in tables.items():
            if rows.num_rows == 0:
                continue
            try:
                write_deltalake(
                    store.uri(spec),
                    rows,
                    mode="append",
                    partition_by=list(spec.partition_by),
                    storage_options=store.root.storage_options(),
                )
            except Exception as exc:
                raise storage_error(store.root, f"write the batch to {spec.name}", exc) from exc
            versions[spec.name] = store.head(spec)
        pseudonyms = Pseudonymizer(tenant.key)
        ledger_rows = {
            "tenant": [tenant.name] * len(accepted),
            "input_sha256": [u.sha256 for u, _ in accepted],
            "input_path": [pseudonyms.text(u.adapter_name or "", u.path) for u, _ in accepted],
            "unit": [u.unit for u, _ in accepted],
            "adapter": [u.adapter_name for u, _ in accepted],
            "adapter_version": [u.adapter.version if u.adapter else None for u, _ in accepted],
            "num_scenarios": [r.num_scenarios for _, r in accepted],
            "num_telemetry": [r.num_telemetry for _, r in accepted],
            "batch_id": [batch_id] * len(accepted),
            "region": [store.region.name] * len(accepted),
            "ingest_date": [day] * len(accepted),
            "ingested_at": [t] * len(accepted),
            "ingested_by": [principal.name] * len(accepted),
        }
        record = commit_record(
            "ingest",
            versions,
            now=t,
            batch_id=batch_id,
            who=principal.name,
            tenant=tenant.name,
            inputs=len(accepted),
            scenarios=sum(r.num_scenarios for _, r in accepted),
            telemetry=sum(r.num_telemetry for _, r in accepted),
        )
        try:
            write_deltalake(
                store.uri(INGESTS),
                conform(INGESTS, pa.table(ledger_rows)),
                mode="append",
                partition_by=list(INGESTS.partition_by),
                storage_options=store.root.storage_options(),
                commit_properties=CommitProperties(custom_metadata=record),
            )
        except Exception as exc:
            raise storage_error(store.root, "commit the batch to the ledger", exc) from exc
        version = store.lake_version()
        store.delete_file(marker)
    for u, r in accepted:
        outcomes[u.index] = InputOutcome(
            path=u.path,
            status="ingested",
            adapter=u.adapter_name,
            input_sha256=u.sha256,
            num_scenarios=r.num_scenarios,
            num_telemetry=r.num_telemetry,
            batch_id=batch_id,
            lake_version=version,
        )
    return Committed(outcomes, version, batch_id)


# --------------------------------------------------------------------------- the run


def discover(
    paths: Iterable[str | os.PathLike[str]], registry: Registry
) -> tuple[list[IngestInput], list[InputOutcome]]:
    """Inputs to ingest, and outcomes already decided (missing, unclaimed), from :meth:`Registry.scan`."""
    found = registry.scan(paths)
    units = [IngestInput(i, str(u.path), u.adapter.unit, u.adapter) for i, u in enumerate(found.units)]
    decided = [InputOutcome(e.path, "failed", reason=e.reason) for e in found.errors]
    decided += [
        InputOutcome(
            str(f),
            "unsupported",
            reason="not a log datadrive reads (companion files, such as maps, are read with their log)",
        )
        for f in found.unclaimed
    ]
    return units, decided


def ingest_paths(
    store: RegionStore,
    paths: Iterable[str | os.PathLike[str]],
    *,
    region: RegionConfig,
    tenant: TenantConfig,
    principal: Principal,
    registry: Registry,
    engine: Engine | None = None,
    options: IngestOptions | None = None,
    now: Callable[[], datetime],
    on_commit: Callable[[Committed], None] | None = None,
    progress: Callable[[IngestEvent], None] | None = None,
) -> IngestReport:
    """Ingest every input under ``paths`` into ``region`` for ``tenant``.

    Returns:
        A report accounting for every input. A storage failure stops the run:
        the inputs not committed are reported as failed with the reason.
    """
    t0 = time.perf_counter()
    engine = engine or InlineEngine()
    options = options or IngestOptions()
    notify = progress or (lambda e: None)
    before: int | None = store.lake_version() if store.exists(INGESTS) else None

    units, decided = discover(paths, registry)
    notify(IngestEvent("discover", len(units), len(units), f"{len(units)} inputs"))
    outcomes: dict[int, InputOutcome] = {}

    # hash
    hashed: dict[int, str] = {}
    hashes = engine.map_unordered(hash_unit, [HashTask(u.index, u.path, u.unit) for u in units])
    for done, (index, sha, error) in enumerate(hashes, start=1):
        u = units[index]
        if sha is None:
            outcomes[index] = InputOutcome(u.path, "failed", u.adapter_name, reason=error)
        else:
            hashed[index] = sha
        notify(IngestEvent("hash", done, len(units), u.path))

    # skip what the ledger already holds, and repeats within the run
    known = ledger(store, tenant.name)
    first_of: dict[str, str] = {}
    to_read: list[IngestInput] = []
    for u in units:
        if u.index not in hashed:
            continue
        sha = hashed[u.index]
        u = IngestInput(u.index, u.path, u.unit, u.adapter, sha)
        units[u.index] = u
        name = u.adapter_name
        if sha in known:
            outcomes[u.index] = InputOutcome(
                u.path, "duplicate", name, sha, reason="already in the lake", batch_id=known[sha]
            )
        elif sha in first_of:
            outcomes[u.index] = InputOutcome(
                u.path, "duplicate", name, sha, reason=f"same bytes as {first_of[sha]}"
            )
        else:
            first_of[sha] = u.path
            to_read.append(u)

    # read and commit in batches
    tasks = [
        ReadTask(
            index=u.index,
            path=u.path,
            adapter=u.adapter,
            input_sha256=u.sha256 or "",
            region=region.name,
            tenant=tenant.name,
            key=tenant.key,
            key_id=tenant.key_id,
            crs=region.publish_crs,
        )
        for u in to_read
        if u.adapter is not None
    ]
    buffer: list[tuple[IngestInput, ReadResult]] = []
    buffered_bytes = 0
    failure: StorageError | None = None
    after = before
    read_done = 0

    def flush() -> None:
        nonlocal buffer, buffered_bytes, after
        if not buffer:
            return
        batch = buffer
        buffer, buffered_bytes = [], 0
        committed = commit_units(
            store,
            batch,
            tenant=tenant,
            principal=principal,
            now=now,
            lock_timeout_s=options.lock_timeout_s,
        )
        outcomes.update(committed.outcomes)
        if committed.lake_version is not None:
            after = committed.lake_version
            if on_commit is not None:
                on_commit(committed)
        notify(IngestEvent("commit", read_done, len(tasks), f"lake version {after}"))

    results = engine.map_unordered(read_unit, tasks)
    try:
        for result in results:
            read_done += 1
            u = units[result.index]
            name = u.adapter_name
            if result.error is not None:
                status: InputStatus = "unsupported" if result.unsupported else "failed"
                outcomes[u.index] = InputOutcome(u.path, status, name, u.sha256, reason=result.error)
            else:
                buffer.append((u, result))
                buffered_bytes += result.tables.nbytes if result.tables is not None else 0
            notify(IngestEvent("read", read_done, len(tasks), u.path))
            if len(buffer) >= options.batch_inputs or buffered_bytes >= options.batch_bytes:
                flush()
        flush()
    except StorageError as exc:
        failure = exc
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()

    if failure is not None:
        for u in units:
            if u.index not in outcomes:
                outcomes[u.index] = InputOutcome(
                    u.path,
                    "failed",
                    u.adapter_name,
                    u.sha256,
                    reason=f"not committed: {failure}",
                )
    ordered = [outcomes[u.index] for u in units] + decided
    return IngestReport(
        region=region.name,
        tenant=tenant.name,
        outcomes=tuple(ordered),
        lake_version_before=before,
        lake_version_after=after,
        seconds=time.perf_counter() - t0,
        storage_error=None if failure is None else str(failure),
    )


# --------------------------------------------------------------------------- in-memory records


def records_sha256(records: Iterable[Record]) -> str:
    """The idempotency hash of a batch of in-memory records: their sources, ids and provenance hashes."""
    digest = hashlib.sha256()
    for r in records:
        rid = r.scenario_id if hasattr(r, "scenario_id") else r.telemetry_id
        digest.update(f"{r.source}\0{rid}\0{r.metadata.provenance.sha256}\0".encode())
    return digest.hexdigest()


def _validated(record: Record, name: str, position: int) -> Record:
    try:
        record.validate()
    except ValidationError as exc:
        rid = record.scenario_id if hasattr(record, "scenario_id") else record.telemetry_id
        raise ValidationError(
            f"{name}: record {position} ({record.source} {rid!r}) is not valid, so it is not written: {exc}"
        ) from exc
    return record


def ingest_records(
    store: RegionStore,
    records: Iterable[Record],
    *,
    region: RegionConfig,
    tenant: TenantConfig,
    principal: Principal,
    name: str,
    batch_size: int,
    now: Callable[[], datetime],
    judge: Callable[[Record], None] = lambda r: None,
    on_commit: Callable[[Committed], None] | None = None,
    lock_timeout_s: float = IngestOptions().lock_timeout_s,
) -> IngestReport:
    """Ingest a stream of in-memory records, ``batch_size`` at a time, each batch one input.

    The same path as :func:`ingest_paths` after reading: every record is
    validated (as :meth:`Adapter.read <datadrive.sources.Adapter.read>` does)
    and judged by ``judge`` (residency) before it joins a batch; a batch is
    prepared with :func:`prepare_records` and committed with
    :func:`commit_units`, with the ledger path ``<name>#<k>`` and the hash
    :func:`records_sha256`, so running the same stream again skips what is
    already there. Only one batch is held in memory.

    Raises:
        ValidationError: at the first invalid record; its batch and the
            records after it are not written (batches before it stay committed).
        StorageError: if the root refuses a write.
    """
    t0 = time.perf_counter()
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    before: int | None = store.lake_version() if store.exists(INGESTS) else None
    after = before
    outcomes: list[InputOutcome] = []
    batch: list[Record] = []

    def flush() -> None:
        nonlocal batch, after
        k = len(outcomes)
        sha = records_sha256(batch)
        result = prepare_records(
            k,
            batch,
            region=region.name,
            tenant=tenant.name,
            key=tenant.key,
            key_id=tenant.key_id,
            crs=region.publish_crs,
            input_sha256=sha,
        )
        batch = []
        item = IngestInput(k, f"{name}#{k}", "records", None, sha)
        if result.error is not None:  # records were validated: a conversion failure is a bug or a limit
            outcomes.append(InputOutcome(item.path, "failed", None, sha, reason=result.error))
            return
        committed = commit_units(
            store,
            [(item, result)],
            tenant=tenant,
            principal=principal,
            now=now,
            lock_timeout_s=lock_timeout_s,
        )
        outcomes.append(committed.outcomes[k])
        if committed.lake_version is not None:
            after = committed.lake_version
            if on_commit is not None:
                on_commit(committed)

    for position, record in enumerate(records):
        judge(_validated(record, name, position))
        batch.append(record)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return IngestReport(
        region=region.name,
        tenant=tenant.name,
        outcomes=tuple(outcomes),
        lake_version_before=before,
        lake_version_after=after,
        seconds=time.perf_counter() - t0,
    )
