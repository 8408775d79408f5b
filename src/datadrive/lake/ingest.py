"""Ingest: files -> records -> pseudonymised rows -> batched, idempotent commits.

The pipeline, for ``datadrive ingest PATH... --region R --tenant T``:

1. **Discover** every input under the paths (:meth:`Registry.scan
   <datadrive.sources.Registry.scan>`: one unit per file, or per folder for
   folder-shaped formats); every path and unclaimed file is accounted for.
   The inputs are put in batches, largest first, before any is read.
2. **Read** each input in the engine, one pass (:class:`UnitReader`): the
   worker hashes it where it must (a folder; a file when the ledger holds
   anything, so that an input already there is a duplicate without being
   read), reads it through the shared read path, stamps region and tenant,
   pseudonymises identifiers, publishes coordinates in the region's datum,
   converts the records to rows and writes them as staged Parquet files of
   its batch (:mod:`datadrive.lake.staging`), or reports why it failed. One
   bad file never stops the run. ``(tenant, sha256)`` is the idempotency key.
   Only an input's ``scenarios`` rows (a row or two) travel back.
3. **Commit** each batch once its inputs are done, in a background thread
   while the workers go on, under the region's commit lock: re-check the
   ledger (another process may have ingested the same file meanwhile) and
   the scenario ids, write the accepted inputs' ``scenarios`` rows (one file
   per partition for the batch), add the batch's files to the data tables,
   then the ledger rows with the pinned table versions — the lake commit
   (:mod:`datadrive.lake.commit`). A crash anywhere leaves the lake at its
   previous version; the rows written before the crash are invisible and
   deleted by the next commit.

In-memory records (:func:`ingest_records`) take the same path from step 2's
conversion on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from datadrive.compute.engines import Engine, InlineEngine
from datadrive.errors import (
    DatadriveError,
    InputError,
    StorageError,
    UnsupportedFormatError,
    ValidationError,
)
from datadrive.lake import commit
from datadrive.lake.config import Principal, RegionConfig, TenantConfig
from datadrive.lake.geo import publisher_for
from datadrive.lake.locks import region_lock
from datadrive.lake.pseudonym import Pseudonymizer
from datadrive.lake.records import UnitTables, prepare, unit_tables
from datadrive.lake.schema import INGESTS, SCENARIOS, TELEMETRY, versioned_tables
from datadrive.lake.staging import StagedFile, delete_staged, file_schema, missing_staged, stage_rows
from datadrive.lake.storage import StorageRoot
from datadrive.lake.tables import RegionStore
from datadrive.sources import READER_MODULES
from datadrive.sources.base import (
    Adapter,
    Record,
    Registry,
    Unit,
    file_sha256,
    files_sha256,
    folder_files,
    input_kind,
    read_units,
)

__all__ = [
    "INGEST_PRELOAD",
    "Committed",
    "IngestEvent",
    "IngestInput",
    "IngestOptions",
    "IngestReport",
    "InputOutcome",
    "InputStatus",
    "ReadResult",
    "UnitReader",
    "UnitTask",
    "commit_units",
    "ingest_paths",
    "ingest_records",
    "prepare_records",
    "records_sha256",
    "unit_sha256",
]

InputStatus = Literal["ingested", "duplicate", "unsupported", "failed"]


@dataclass(frozen=True)
class IngestOptions:
    """How an ingest batches its commits.

    Attributes:
        batch_inputs: Inputs per batch (one lake commit each). The rows are
            written by the workers, so a batch's size bounds no memory; it
            trades commits (and small files) against how soon rows are visible.
            A commit costs ~0.05-0.1 s of CPU in the committing process
            whatever its size (the ledger and id checks, a Delta commit per
            table, the ledger commit, fsyncs, an audit row), as much as
            reading a few of the samples: fewer, larger batches keep it a
            small share (the samples' 43 inputs commit once).
        lock_timeout_s: How long to wait for another process's commit.
    """

    batch_inputs: int = 64
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
        stage: ``discover``, ``read`` (an input read, converted and written) or
            ``commit`` (a batch committed).
        done: Units finished in this stage.
        total: Units in this stage.
        message: One line about the latest step.
    """

    stage: str
    done: int
    total: int
    message: str = ""


# --------------------------------------------------------------------------- worker side


INGEST_PRELOAD = ("datadrive.lake.ingest", *READER_MODULES)
"""What a process pool's fork server imports before forking ingest workers: the pipeline and every
reader's heavy dependencies, so each worker starts warm (``ProcessPoolEngine(preload=INGEST_PRELOAD)``)."""


@dataclass(frozen=True)
class BatchStamp:
    """The batch columns of every row of one batch, decided before its inputs are read.

    Attributes:
        batch_id: The batch (its rows' ``batch_id``, its ledger rows', its marker's).
        ingest_date: ISO date: the partition its rows go to.
        ingested_at: When the run that made it started (UTC).
        ingested_by: Who ran it.
    """

    batch_id: str
    ingest_date: str
    ingested_at: datetime
    ingested_by: str

    @classmethod
    def new(cls, now: datetime, who: str) -> BatchStamp:
        return cls(uuid.uuid4().hex, now.date().isoformat(), now, who)

    def columns(self) -> dict[str, Any]:
        """The batch columns' values (``records.BATCH_COLUMNS``)."""
        return {
            "batch_id": self.batch_id,
            "ingest_date": self.ingest_date,
            "ingested_at": self.ingested_at,
            "ingested_by": self.ingested_by,
        }


@dataclass(frozen=True)
class UnitTask:
    """One input for a worker: where it is, which adapter reads it, the batch it goes to."""

    index: int
    path: str
    adapter: Adapter
    unit: str
    stamp: BatchStamp


@dataclass(frozen=True)
class ReadResult:
    """What a worker made of one input: its rows (written as staged files, or in memory), or why not.

    Attributes:
        index: The input's position in the run.
        tables: Its rows, when they were not written as files.
        files: The data files its rows were written to, not yet committed.
        scenario_rows: Its ``scenarios`` rows (a row or two, ~70 columns), kept in
            memory: the commit writes them with its batch's others, one file
            per partition, where a file per input cost more to write than its rows.
        input_sha256: Its idempotency hash, when known.
        duplicate: The hash is already in the ledger: not read.
        error: Why it failed (or is unsupported).
        unsupported: A variant datadrive does not read.
        storage_error: The region root refused the files: the run stops.
        seconds: Time the worker spent on it.
    """

    index: int
    tables: UnitTables | None
    num_scenarios: int = 0
    num_telemetry: int = 0
    scenario_keys: tuple[tuple[str, str], ...] = ()
    telemetry_keys: tuple[tuple[str, str], ...] = ()
    error: str | None = None
    unsupported: bool = False
    seconds: float = 0.0
    input_sha256: str | None = None
    duplicate: bool = False
    files: tuple[StagedFile, ...] = ()
    storage_error: str | None = None
    scenario_rows: pa.Table | None = field(default=None, repr=False)

    @property
    def has_rows(self) -> bool:
        return self.error is None and (
            self.tables is not None or bool(self.files) or self.scenario_rows is not None
        )


def unit_sha256(path: Path, unit: str) -> str:
    """The idempotency hash of an input: a file's SHA-256, or a folder's over every file in it.

    Hidden files count (a Lyft zarr's ``.zarray`` is data): two folders whose
    bytes differ anywhere never share a key.

    Raises:
        InputError: if the input, or anything in the folder, is not a regular
            file (a FIFO, a device, a link loop).
        OSError: if a file cannot be read.
    """
    if input_kind(path) != unit:
        raise InputError(path, f"is no longer a {'folder' if unit == 'dir' else 'file'}")
    if unit == "dir":
        return files_sha256(path, folder_files(path))
    return file_sha256(path)


def _provenance_sha256(records: Sequence[Record], path: str) -> str | None:
    """The file's SHA-256 as its adapter computed it while reading (every record's provenance agrees)."""
    shas = {r.metadata.provenance.sha256 for r in records if r.metadata.provenance.source_path == path}
    if len(shas) == 1 and all(r.metadata.provenance.source_path == path for r in records):
        return shas.pop()
    return None


def stage_result(
    result: ReadResult, root: StorageRoot, schemas: Mapping[str, pa.Schema], name: str
) -> ReadResult:
    """``result`` with its rows (stamped with their batch) written as staged files, not committed.

    The ``scenarios`` rows stay in the result (``scenario_rows``): :func:`commit_units`
    writes them, one file per partition for the whole batch.
    """
    if result.tables is None:
        return result
    scenarios = result.tables.scenarios
    try:
        files = stage_rows(
            root,
            [(spec, rows) for spec, rows in result.tables.items() if spec is not SCENARIOS],
            schemas,
            name=name,
        )
    except StorageError as exc:
        return dataclasses.replace(result, tables=None, storage_error=str(exc))
    return dataclasses.replace(
        result, tables=None, files=files, scenario_rows=scenarios if scenarios.num_rows else None
    )


@dataclass(frozen=True)
class UnitReader:
    """The worker side of an ingest: hash, read, prepare, convert and write one input (see :meth:`__call__`).

    Built once per run and shipped to each worker once (with the ledger's
    hashes); its calls never raise for bad input.

    Attributes:
        region: The region ingested into.
        tenant: The owner.
        key: The tenant's pseudonymisation key.
        key_id: Its public fingerprint.
        crs: The region's published datum.
        root: The region's storage root, where the rows are written.
        schemas: Table name -> its data files' schema (``staging.file_schema``).
        known: Hashes already in the ledger for this tenant.
    """

    region: str
    tenant: str
    key: bytes = field(repr=False)
    key_id: str
    crs: str
    root: StorageRoot
    schemas: Mapping[str, pa.Schema] = field(repr=False)
    known: frozenset[str] = field(default=frozenset(), repr=False)

    def __call__(self, task: UnitTask) -> ReadResult:
        """The input's rows, written as staged data files of its batch, or why it has none.

        A folder is hashed first (every file in it); so is a file when the
        ledger holds anything, and an input already there is reported as a
        duplicate without being read. Otherwise a file is read once: its
        adapter hashes the bytes it reads for provenance, and that hash is
        the input's (one pass over the bytes). The rows are written by this
        worker (:mod:`datadrive.lake.staging`): they never travel back.
        """
        t0 = time.perf_counter()
        path = Path(task.path)
        sha: str | None = None
        try:
            if task.unit == "dir" or self.known:
                sha = unit_sha256(path, task.unit)
                if sha in self.known:
                    return ReadResult(task.index, None, input_sha256=sha, duplicate=True)
        except InputError as exc:
            return ReadResult(task.index, None, error=f"{type(exc).__name__}: {exc.reason}")
        except OSError as exc:
            return ReadResult(task.index, None, error=f"cannot read ({exc.strerror or exc})")
        records: list[Record] = []
        for _, item in read_units([Unit(task.adapter, path)]):
            if isinstance(item, InputError):
                unsupported = isinstance(item, UnsupportedFormatError)
                return ReadResult(
                    task.index,
                    None,
                    input_sha256=sha or _quiet_sha256(path, task.unit),
                    error=item.reason if unsupported else f"{type(item).__name__}: {item.reason}",
                    unsupported=unsupported,
                )
            records.append(item)
        if sha is None:
            sha = _provenance_sha256(records, task.path) or _quiet_sha256(path, task.unit)
        if sha is None:
            return ReadResult(task.index, None, error="cannot read (the file changed or vanished while read)")
        result = prepare_records(
            task.index,
            records,
            region=self.region,
            tenant=self.tenant,
            key=self.key,
            key_id=self.key_id,
            crs=self.crs,
            input_sha256=sha,
            stamp=task.stamp,
        )
        result = stage_result(result, self.root, self.schemas, f"{task.stamp.batch_id}-{task.index:06d}")
        return dataclasses.replace(result, input_sha256=sha, seconds=time.perf_counter() - t0)


def _quiet_sha256(path: Path, unit: str) -> str | None:
    try:
        return unit_sha256(path, unit)
    except (OSError, InputError):
        return None


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
    stamp: BatchStamp | None = None,
) -> ReadResult:
    """The rows of one input's validated records, as the lake stores them (see :func:`prepare`).

    Stamps region and tenant, pseudonymises with the tenant's key, publishes
    coordinates in the region's datum, and converts to the data tables' rows
    (with the batch columns of ``stamp``, when given). A failure is reported
    in the result, not raised.
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
        tables = unit_tables(
            prepared,
            input_sha256=input_sha256,
            key_id=key_id,
            crs=publisher.crs,
            batch=None if stamp is None else stamp.columns(),
        )
    except DatadriveError as exc:
        reason = exc.reason if isinstance(exc, InputError) else str(exc)
        return ReadResult(index, None, error=f"{type(exc).__name__}: {reason}")
    except MemoryError:
        return ReadResult(index, None, error="MemoryError: the input does not fit in memory")
    return result_from_tables(index, tables)


def result_from_tables(index: int, tables: UnitTables, *, seconds: float = 0.0) -> ReadResult:
    """A successful :class:`ReadResult` for one input's rows."""
    # a few rows per input: plain lists, not compute kernels (each call costs ~0.3 ms to dispatch)
    scen = tables.scenarios
    tel = tables.telemetry
    logs = [i for i, kind in enumerate(tel.column("row_kind").to_pylist()) if kind == "log"]
    tel_sources = tel.column("source").to_pylist()
    tel_ids = tel.column("telemetry_id").to_pylist()
    return ReadResult(
        index=index,
        tables=tables,
        num_scenarios=scen.column("telemetry_id").null_count,  # the others are telemetry logs' ego paths
        num_telemetry=len(logs),
        scenario_keys=tuple(
            zip(scen.column("source").to_pylist(), scen.column("scenario_id").to_pylist(), strict=True)
        ),
        telemetry_keys=tuple((tel_sources[i], tel_ids[i]) for i in logs),
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


def ledger(store: RegionStore, tenant: str) -> dict[str, str]:
    """``input_sha256 -> batch_id`` of every input the tenant has in the region (latest version)."""
    import pyarrow.dataset as ds

    if not store.exists(INGESTS):
        return {}
    dataset = store.arrow(INGESTS)
    t = dataset.to_table(columns=["input_sha256", "batch_id"], filter=ds.field("tenant") == tenant)
    return dict(zip(t.column("input_sha256").to_pylist(), t.column("batch_id").to_pylist(), strict=True))


def _existing_keys(
    store: RegionStore,
    spec: Any,
    id_column: str,
    tenant: str,
    keys: set[tuple[str, str]],
    versions: Mapping[str, int] | None = None,
) -> set[tuple[str, str]]:
    """Which of ``keys`` ((source, id) pairs) the tenant already has in the table (latest version).

    Scans one column of the tenant's partitions of those sources; identifiers
    carry no Delta statistics (see :mod:`datadrive.lake.schema`), so files
    cannot be skipped by id. ``versions``: the latest lake version's table versions, when known.
    """
    import pyarrow.dataset as ds

    if not keys:
        return set()
    versions = versions if versions is not None else store.resolve(None).table_versions
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
    stamp: BatchStamp,
    tenant: TenantConfig,
    principal: Principal,
    now: Callable[[], datetime],
    lock_timeout_s: float,
    schemas: Mapping[str, pa.Schema],
) -> Committed:
    """Commit one batch of read inputs atomically (see the module docstring).

    Their rows are the staged files their readers wrote, all stamped with
    ``stamp``, and their ``scenarios`` rows: the commit re-checks the ledger
    and the scenario ids under the lock, writes the accepted inputs'
    ``scenarios`` rows (one file per partition; ``schemas`` as for
    :func:`stage_rows`), adds the files to the tables' logs and the inputs
    to the ledger, and deletes the files of the inputs it rejects.

    Raises:
        StorageError: if the root refuses a write; the lake stays at its
            previous version.
    """
    outcomes: dict[int, InputOutcome] = {}
    rejected: list[ReadResult] = []
    with region_lock(store.root, "commit", lock_timeout_s):
        store.ensure(now())
        commit.recover(store, now)
        known = ledger(store, tenant.name)
        pinned = store.resolve(None).table_versions
        taken_s = _existing_keys(
            store,
            SCENARIOS,
            "scenario_id",
            tenant.name,
            {k for _, r in units for k in r.scenario_keys},
            pinned,
        )
        taken_t = _existing_keys(
            store,
            TELEMETRY,
            "telemetry_id",
            tenant.name,
            {k for _, r in units for k in r.telemetry_keys},
            pinned,
        )
        gone = {(f.table, f.path) for f in missing_staged(store.root, [f for _, r in units for f in r.files])}
        accepted: list[tuple[IngestInput, ReadResult]] = []
        for u, r in units:
            sha = u.sha256 or ""
            name = u.adapter_name
            clash = [k for k in r.scenario_keys if k in taken_s] + [
                k for k in r.telemetry_keys if k in taken_t
            ]
            if sha in known:
                outcome = InputOutcome(
                    u.path, "duplicate", name, sha, reason="already in the lake", batch_id=known[sha]
                )
            elif clash:
                src, sid = clash[0]
                outcome = InputOutcome(
                    u.path,
                    "failed",
                    name,
                    sha,
                    reason=f"{src} {sid!r} is already in the lake from another input "
                    "(erase it first to replace it)",
                )
            elif any((f.table, f.path) in gone for f in r.files):
                outcome = InputOutcome(
                    u.path,
                    "failed",
                    name,
                    sha,
                    reason="its data files were removed before the commit (a vacuum with no retention "
                    "ran meanwhile): ingest it again",
                )
            else:
                known[sha] = "(this batch)"
                taken_s.update(r.scenario_keys)
                taken_t.update(r.telemetry_keys)
                accepted.append((u, r))
                continue
            outcomes[u.index] = outcome
            rejected.append(r)
        if accepted:
            batch_id = stamp.batch_id
            rows = [r.scenario_rows for _, r in accepted if r.scenario_rows is not None]
            files = [f for _, r in accepted for f in r.files]
            if rows:  # before the marker: a crash leaves an unreferenced file, which a vacuum removes
                files += stage_rows(
                    store.root, [(SCENARIOS, pa.concat_tables(rows))], schemas, name=f"{batch_id}-scenarios"
                )
            commit.start(
                store,
                batch_id,
                {
                    "op": "ingest",
                    "batch_id": batch_id,
                    "time": now().isoformat(),
                    "files": [[f.table, f.path] for f in files],
                },
            )
            versions = commit.add_files(store, files)
            pseudonyms = Pseudonymizer(tenant.key)
            n = len(accepted)
            ledger_rows = {
                "tenant": [tenant.name] * n,
                "input_sha256": [u.sha256 for u, _ in accepted],
                "input_path": [pseudonyms.text(u.adapter_name or "", u.path) for u, _ in accepted],
                "unit": [u.unit for u, _ in accepted],
                "adapter": [u.adapter_name for u, _ in accepted],
                "adapter_version": [u.adapter.version if u.adapter else None for u, _ in accepted],
                "num_scenarios": [r.num_scenarios for _, r in accepted],
                "num_telemetry": [r.num_telemetry for _, r in accepted],
                "batch_id": [batch_id] * n,
                "region": [store.region.name] * n,
                "ingest_date": [stamp.ingest_date] * n,
                "ingested_at": [stamp.ingested_at] * n,
                "ingested_by": [stamp.ingested_by] * n,
            }
            version = commit.commit_version(
                store,
                "ingest",
                versions,
                now=now(),
                ledger_rows=pa.table(ledger_rows),
                batch_id=batch_id,
                who=principal.name,
                tenant=tenant.name,
                inputs=n,
                scenarios=sum(r.num_scenarios for _, r in accepted),
                telemetry=sum(r.num_telemetry for _, r in accepted),
            )
            commit.finish(store, batch_id)
    delete_staged(store.root, [f for r in rejected for f in r.files])
    if not accepted:
        return Committed(outcomes, None, None)
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


def _size(path: Path, unit: str) -> int:
    """Bytes of an input (a folder's files summed); 0 if it cannot be told."""
    try:
        if unit == "dir":
            return sum(f.stat().st_size for f in folder_files(path))
        return path.stat().st_size
    except (OSError, InputError):
        return 0


def file_schemas(store: RegionStore, now: Callable[[], datetime]) -> dict[str, pa.Schema]:
    """Table name -> the schema of its data files, from the tables' logs (created if missing)."""
    with region_lock(store.root, "commit"):
        store.ensure(now())
    out: dict[str, pa.Schema] = {}
    for spec in versioned_tables():
        with store.lock:
            delta_schema = store.latest(spec).schema()
        out[spec.name] = file_schema(pa.schema(delta_schema.to_arrow()), spec)
    return out


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

    One pass through the engine: each worker hashes (where it must), reads,
    pseudonymises, converts and writes an input (:class:`UnitReader`), the
    largest inputs first so that the run does not end waiting on a big one.
    Inputs are assigned to batches of ``options.batch_inputs`` before they
    are read; a batch whose inputs are all done is committed in a background
    thread while the workers go on, one commit at a time.

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
    known = ledger(store, tenant.name)
    reader = UnitReader(
        region=region.name,
        tenant=tenant.name,
        key=tenant.key,
        key_id=tenant.key_id,
        crs=region.publish_crs,
        root=store.root,
        schemas=file_schemas(store, now) if units else {},
        known=frozenset(known),
    )
    order = sorted((u for u in units if u.adapter is not None), key=lambda u: -_size(Path(u.path), u.unit))
    started = now()
    stamps: list[BatchStamp] = []
    tasks: list[UnitTask] = []
    batch_of: dict[int, int] = {}
    for k in range(0, len(order), options.batch_inputs):
        stamps.append(BatchStamp.new(started, principal.name))
        for u in order[k : k + options.batch_inputs]:
            batch_of[u.index] = len(stamps) - 1
            tasks.append(UnitTask(u.index, u.path, u.adapter, u.unit, stamps[-1]))  # type: ignore[arg-type]
    waiting = [0] * len(stamps)
    for b in batch_of.values():
        waiting[b] += 1
    batches: list[list[tuple[IngestInput, ReadResult]]] = [[] for _ in stamps]
    submitted: set[int] = set()

    outcomes: dict[int, InputOutcome] = {}
    first_of: dict[str, int] = {}  # hash -> the input of this run that carries it
    after = before
    read_done = 0
    committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="datadrive-commit")
    syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="datadrive-presync")
    pending: Future[Committed] | None = None
    failure: StorageError | None = None

    def merge() -> None:
        """Take in the commit in flight (waiting for it): its outcomes, the lake version, the audit."""
        nonlocal pending, after
        if pending is None:
            return
        fut, pending = pending, None
        committed = fut.result()
        outcomes.update(committed.outcomes)
        if committed.lake_version is not None:
            after = committed.lake_version
            if on_commit is not None:
                on_commit(committed)
        notify(IngestEvent("commit", read_done, len(tasks), f"lake version {after}"))

    def submit(b: int) -> None:
        nonlocal pending
        submitted.add(b)
        if not batches[b]:
            return
        merge()  # one commit at a time
        pending = committer.submit(
            commit_units,
            store,
            batches[b],
            stamp=stamps[b],
            tenant=tenant,
            principal=principal,
            now=now,
            lock_timeout_s=options.lock_timeout_s,
            schemas=reader.schemas,
        )

    def duplicate(u: IngestInput, r: ReadResult, reason: str, batch_id: str | None = None) -> None:
        outcomes[u.index] = InputOutcome(
            u.path, "duplicate", u.adapter_name, u.sha256, reason=reason, batch_id=batch_id
        )
        delete_staged(store.root, r.files)

    def take(u: IngestInput, r: ReadResult) -> None:
        """Decide what becomes of one read input: a place in its batch, or an outcome now."""
        name = u.adapter_name
        sha = r.input_sha256
        if r.duplicate or (sha is not None and sha in known):
            duplicate(dataclasses.replace(u, sha256=sha), r, "already in the lake", known.get(sha or ""))
            return
        if not r.has_rows or sha is None:
            status: InputStatus = "unsupported" if r.unsupported else "failed"
            outcomes[u.index] = InputOutcome(u.path, status, name, sha, reason=r.error or "not read")
            return
        item = dataclasses.replace(u, sha256=sha)
        other = first_of.get(sha)
        if other is not None:
            b = batch_of[other]
            placed = next((k for k, (x, _) in enumerate(batches[b]) if x.index == other), None)
            if other < u.index or placed is None or b in submitted:  # the first (or committing) one keeps it
                duplicate(item, r, f"same bytes as {units[other].path}")
                return
            earlier, dropped = batches[b].pop(placed)  # this one comes first in discovery order
            duplicate(earlier, dropped, f"same bytes as {u.path}")
        first_of[sha] = u.index
        batches[batch_of[u.index]].append((item, r))
        # its files' fsyncs overlap the reading rather than lengthen its batch's commit
        syncer.submit(store.presync, [(f.table, f.path) for f in r.files])

    results = engine.imap(reader, tasks)
    try:
        for out in results:
            read_done += 1
            task = tasks[out.index]
            u = units[task.index]
            b = batch_of[u.index]
            if out.failure is not None:
                outcomes[u.index] = InputOutcome(u.path, "failed", u.adapter_name, reason=str(out.failure))
            elif out.value is not None and out.value.storage_error is not None:
                raise StorageError(out.value.storage_error)
            elif out.value is not None:
                take(u, out.value)
            notify(IngestEvent("read", read_done, len(tasks), u.path))
            waiting[b] -= 1
            if pending is not None and pending.done():
                merge()
            if waiting[b] == 0:
                submit(b)
        merge()
    except StorageError as exc:
        failure = exc
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()
        if pending is not None:  # a commit was in flight when reading stopped: it decides its inputs
            try:
                merge()
            except StorageError as exc:
                failure = failure or exc
        committer.shutdown(wait=True)
        syncer.shutdown(wait=True, cancel_futures=True)
        store.forget_presynced()

    if failure is not None:
        for b, batch in enumerate(batches):
            if b in submitted:  # its commit started: its marker lists the files, recovery deals with them
                continue
            for u, r in batch:
                if u.index not in outcomes:
                    delete_staged(store.root, r.files)  # never in a commit: nothing refers to them
        for u in units:
            if u.index not in outcomes:
                outcomes[u.index] = InputOutcome(
                    u.path,
                    "failed",
                    u.adapter_name,
                    first_sha(first_of, u.index),
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


def first_sha(first_of: Mapping[str, int], index: int) -> str | None:
    """The hash an input of the run carries, if it got that far."""
    return next((sha for sha, i in first_of.items() if i == index), None)


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
    schemas = file_schemas(store, now)

    def flush() -> None:
        nonlocal batch, after
        k = len(outcomes)
        sha = records_sha256(batch)
        stamp = BatchStamp.new(now(), principal.name)
        result = prepare_records(
            k,
            batch,
            region=region.name,
            tenant=tenant.name,
            key=tenant.key,
            key_id=tenant.key_id,
            crs=region.publish_crs,
            input_sha256=sha,
            stamp=stamp,
        )
        batch = []
        item = IngestInput(k, f"{name}#{k}", "records", None, sha)
        if result.error is not None:  # records were validated: a conversion failure is a bug or a limit
            outcomes.append(InputOutcome(item.path, "failed", None, sha, reason=result.error))
            return
        result = stage_result(result, store.root, schemas, f"{stamp.batch_id}-{k:06d}")
        if result.storage_error is not None:
            raise StorageError(result.storage_error)
        committed = commit_units(
            store,
            [(item, result)],
            stamp=stamp,
            tenant=tenant,
            principal=principal,
            now=now,
            lock_timeout_s=lock_timeout_s,
            schemas=schemas,
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
