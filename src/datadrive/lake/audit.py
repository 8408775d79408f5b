"""The audit log: append-only, hash-chained, one per region.

Every ingest, read through the library, export, erasure and refusal appends
one row: who (principal, tenant, home region), where (region), what (action,
object), which lake version, when, and the outcome. Row ``n`` stores
``prev_hash`` (row ``n - 1``'s ``row_hash``) and its own ``row_hash``::

    row_hash = sha256(json([seq, time_us, who, tenant, home_region, region,
                            action, object, lake_version, outcome, detail, prev_hash]))

so :func:`verify` detects a removed row (a gap in ``seq`` or a broken link),
an altered row (a hash that no longer matches), and any Delta commit on the
audit table other than an append or a compaction.

**The anchor.** A chain alone cannot tell its last rows were cut off (drop
the audit table's last commits and what is left is a valid, shorter chain).
So every lake commit (each commit to ``ingests``: ingest, derive, erase,
optimize) records the audit head of that moment, ``{"seq", "hash"}``, in
its commit record (:func:`anchor`), and every append writes the new head to
``_datadrive/audit_head.json``: both outside the audit table. :func:`verify`
and ``lake check`` check that every anchored row is still in the chain with
that hash (:func:`anchor_problems`). A region whose audit table is gone is
refused, never silently given a new one
(:meth:`~datadrive.lake.tables.RegionStore.ensure`). Someone who can
rewrite the table, the head file and the ``ingests`` log together can still
forge a shorter history: publish :attr:`AuditVerification.head_hash`
elsewhere (a ticket, another region) to pin the chain against that too.

Appends are serialised by the region's ``audit`` lock; the head (last seq
and hash) travels in each commit's metadata. An append is a synchronous
Delta commit, durable before the read it records returns; never deferred.

**The direct commit (local roots).** What an append through ``deltalake``
costs grows with the table: ``write_deltalake`` rebuilds the table state
(every file's ``add``) around its commit, about 60 µs a file, and its
handle has to be brought up to date first (``docs/lake.md`` has the
profile). On a local root an append therefore writes its commit itself, as
the Delta protocol defines one: under the audit lock, one Parquet file of
its rows and one commit file (``commitInfo`` with the head, one ``add``),
published with ``link(2)``, which fails if that version exists (the same
put-if-absent delta-rs uses locally). Four syncs, in an order that never
lets a commit outlive a power cut without its data: fdatasync of the data
file, fsync of the table folder (its name), fdatasync of the commit's
temporary file, ``link``, fsync of ``_delta_log``. The process keeps the tip
(version, next seq, last hash) between appends. Before each append it
checks that its last commit file is still there (a removed commit or table
sends it back to the table) and reads the commits made since, if any,
from their files (:func:`_follow`): another process's append carries its
head, a compaction changes no row; anything else sends it back to the
table. Every :data:`~datadrive.lake.tables.AUDIT_CHECKPOINT_INTERVAL`
versions the append starts, in a thread beside the appends, what
delta-rs's post-commit hook did in front of them: a checkpoint, preceded
by a compaction (an ``OPTIMIZE`` commit) once the table holds more than
:data:`COMPACT_FILES` files, so neither the appends nor the readers of the
log slow down as it grows. Object-store roots keep ``write_deltalake``
(its conditional PUT is the commit). Group commit (the appends of one
process that arrive while a commit is being written go together into the
next one, one row each) applies to both.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc

from datadrive.errors import LakeError, StorageError, one_line
from datadrive.lake.locks import region_lock
from datadrive.lake.schema import AUDIT, INGESTS, conform
from datadrive.lake.storage import storage_error
from datadrive.lake.tables import (
    AUDIT_CHECKPOINT_INTERVAL,
    COMMIT_KEY,
    RegionStore,
    fsync_paths,
    publish_commit,
)

__all__ = [
    "ANCHOR_KEY",
    "COMPACT_FILES",
    "COMPACT_SMALL_BYTES",
    "COMPACT_TARGET_BYTES",
    "DIRECT_COMMITS",
    "GENESIS_HASH",
    "AuditEvent",
    "AuditVerification",
    "anchor",
    "anchor_problems",
    "append",
    "read",
    "row_hash",
    "verify",
    "version_problems",
]

ANCHOR_KEY = "audit_head"
"""Key of the audit head (``{"seq": int, "hash": str}``) in a lake commit's record."""

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first row."""

COMPACT_FILES = 64
"""The checkpoint that an append starts compacts the audit table first when it holds more files than this."""

COMPACT_TARGET_BYTES = 8 << 20
"""Compaction merges the audit table's files up to this size and leaves bigger ones alone."""

COMPACT_SMALL_BYTES = COMPACT_TARGET_BYTES // 16
"""Files under this size (the appends' own, and what merging them made so far) are merged on their own.

Merging every file under :data:`COMPACT_TARGET_BYTES` at each checkpoint
rewrote the whole table, up to 8 MB, every 100 appends, beside a busy
service's reads (0.75 s of a core and a 2 MB sync at 25k rows, measured):
now the small files are merged among themselves, and the files between
the two sizes only once there are more than :data:`COMPACT_FILES` of them.
"""

_LOG = logging.getLogger(__name__)

DIRECT_COMMITS = True
"""Whether appends to a local root write their Delta commit directly (see the module docstring).

``False`` sends them through ``write_deltalake`` as object-store roots are:
``benchmarks/lake.py`` sets it to compare the two paths in one run.
"""

_ALLOWED_OPERATIONS = {"CREATE TABLE", "WRITE", "OPTIMIZE", "VACUUM START", "VACUUM END"}


@dataclass(frozen=True)
class AuditEvent:
    """What happened, before it gets its place in the chain.

    Attributes:
        who: Principal name.
        tenant: The principal's tenant.
        home_region: Where the principal is.
        region: The region whose data was touched.
        action: ``ingest``, ``read``, ``sql``, ``export``, ``erase``, ...
        object: What was touched (a table, a batch, a query, an artefact).
        lake_version: The lake version read or written (-1 when none).
        outcome: ``ok``, ``refused`` or ``failed``.
        detail: JSON-serialisable facts (counts, the reason of a refusal).
    """

    who: str
    tenant: str
    home_region: str
    region: str
    action: str
    object: str
    lake_version: int
    outcome: str = "ok"
    detail: Mapping[str, Any] = field(default_factory=dict)


def row_hash(
    seq: int,
    time_us: int,
    event_fields: tuple[str, str, str, str, str, str, int, str, str],
    prev_hash: str,
) -> str:
    """The hash of one audit row (see the module docstring)."""
    payload = json.dumps([seq, time_us, *event_fields, prev_hash], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _fields(e: AuditEvent, detail_json: str) -> tuple[str, str, str, str, str, str, int, str, str]:
    return (
        e.who,
        e.tenant,
        e.home_region,
        e.region,
        e.action,
        e.object,
        int(e.lake_version),
        e.outcome,
        detail_json,
    )


class _Slot:
    """One event waiting to be appended, and what became of it."""

    __slots__ = ("done", "error", "event", "result")

    def __init__(self, event: AuditEvent) -> None:
        self.event = event
        self.done = False
        self.result: tuple[int, str] = (-1, "")
        self.error: BaseException | None = None


class _Queue:
    """The events of one process waiting for a region's audit table, and the one writing them."""

    def __init__(self) -> None:
        self.pending: list[_Slot] = []
        self.guard = threading.Lock()  # the pending list
        self.writer = threading.Lock()  # one batch written at a time by this process
        self.tip: _Tip | None = None  # after this process's last direct commit (under ``writer``)
        self.maintenance: threading.Thread | None = None  # the checkpoint/compaction running, if any


@dataclass(frozen=True)
class _Tip:
    """The audit table's last version as this process committed it: the next row's seq and prev hash."""

    version: int
    next_seq: int
    prev_hash: str


_QUEUES: dict[tuple[str, str], _Queue] = {}
"""The queue of each region (by name and storage root) this process appends to."""
_QUEUES_GUARD = threading.Lock()


def append(store: RegionStore, event: AuditEvent, now: Callable[[], datetime]) -> tuple[int, str]:
    """Append ``event`` to the region's audit table; returns once its row is committed.

    Appends of one process to one region that arrive while another is being
    written are committed together, in one Delta commit of one row each
    (a group commit): each caller still waits until its own row is durable,
    but many concurrent reads no longer queue for one commit each. The rows
    keep their own ``seq``, time and chained hashes. On a local root the
    commit is written directly (the module docstring), otherwise through
    ``write_deltalake``.

    Returns:
        The row's ``(seq, row_hash)``.

    Raises:
        StorageError: if the row cannot be written (the caller must then not
            hand out data: a read that cannot be audited does not happen).
    """
    key = (store.region.name, store.root.uri)  # one queue per region, whichever principal's store
    with _QUEUES_GUARD:
        queue = _QUEUES.get(key)
        if queue is None:
            queue = _QUEUES[key] = _Queue()
    # a table this process appended to exists (tables are never dropped; a deleted one is caught below)
    if queue.tip is None and not store.exists(AUDIT):  # by the caller, who may hold the commit lock already
        with region_lock(store.root, "commit"):  # tables are created under the commit lock only
            store.ensure(now())
    slot = _Slot(event)
    with queue.guard:
        queue.pending.append(slot)
    with queue.writer:
        if not slot.done:  # no one has written it yet: write it and everything waiting with it
            with queue.guard:
                batch, queue.pending = queue.pending, []
            try:
                if DIRECT_COMMITS and store.root.is_local:
                    results = _write_direct(store, queue, [s.event for s in batch], now)
                else:
                    results = _write(store, [s.event for s in batch], now)
            except BaseException as exc:
                for s in batch:
                    s.error, s.done = exc, True
            else:
                for s, result in zip(batch, results, strict=True):
                    s.result, s.done = result, True
    if slot.error is not None:
        raise slot.error
    return slot.result


def _write(
    store: RegionStore, events: list[AuditEvent], now: Callable[[], datetime]
) -> list[tuple[int, str]]:
    """Append ``events`` to the region's audit table in one commit; their ``(seq, row_hash)``s."""
    from deltalake import CommitProperties, write_deltalake

    with region_lock(store.root, "audit"), store.lock:
        dt = store.latest(AUDIT)
        seq, prev = _head(store, dt)
        _check_head_file(store, seq, prev)
        table, out = _rows(events, seq, prev, now)
        head = json.dumps({"op": "audit", "head_seq": out[-1][0], "head_hash": out[-1][1]})
        before = int(dt.version())
        try:
            write_deltalake(
                dt,
                table,
                mode="append",
                storage_options=store.root.storage_options(),
                commit_properties=CommitProperties(custom_metadata={COMMIT_KEY: head}),
            )
        except Exception as exc:
            raise storage_error(store.root, "append to the audit log", exc) from exc
        # durable before a lake commit anchors it, or a read it records is answered
        store.make_durable(AUDIT, before, store.head(AUDIT))
        _write_head_file(store, *out[-1])
        return out


def _check_head_file(store: RegionStore, seq: int, prev: str) -> None:
    recorded = _read_head_file(store)
    if recorded is not None and _behind(recorded, seq, prev):
        # rows the head file saw are gone: appending would bury the loss under a valid, shorter chain
        raise StorageError(
            f"region {store.region.name}: the audit log ends before the head recorded beside it "
            f"(row {recorded.get('seq')}): rows were removed; nothing more is audited (so nothing is "
            "read) until it is restored from a backup (`datadrive lake audit --verify` says more)"
        )


def _rows(
    events: list[AuditEvent], seq: int, prev: str, now: Callable[[], datetime]
) -> tuple[pa.Table, list[tuple[int, str]]]:
    """The rows of ``events`` chained after ``(seq, prev)``, and each row's ``(seq, row_hash)``."""
    rows: dict[str, list[Any]] = {name: [] for name in AUDIT.schema.names}
    out: list[tuple[int, str]] = []
    for event in events:
        detail_json = json.dumps(dict(event.detail), sort_keys=True, default=str)
        t = now().astimezone(UTC)
        time_us = int(t.timestamp() * 1_000_000)
        h = row_hash(seq, time_us, _fields(event, detail_json), prev)
        for name, value in (
            ("seq", seq),
            ("time", time_us),
            ("who", event.who),
            ("tenant", event.tenant),
            ("home_region", event.home_region),
            ("region", event.region),
            ("action", event.action),
            ("object", event.object),
            ("lake_version", int(event.lake_version)),
            ("outcome", event.outcome),
            ("detail", detail_json),
            ("prev_hash", prev),
            ("row_hash", h),
        ):
            rows[name].append(value)
        out.append((seq, h))
        seq, prev = seq + 1, h
    columns = dict(rows)
    columns["time"] = pa.array(rows["time"], pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    return conform(AUDIT, pa.table(columns)), out


def _write_direct(
    store: RegionStore, queue: _Queue, events: list[AuditEvent], now: Callable[[], datetime]
) -> list[tuple[int, str]]:
    """Append ``events`` to a local root's audit table in one Delta commit written here (module docstring)."""
    log = os.path.join(store.root.path(AUDIT.name), "_delta_log")
    with region_lock(store.root, "audit"):
        for _ in range(8):  # a compaction may take the next version meanwhile: then the one after it
            tip = queue.tip
            if tip is not None and not os.path.exists(_commit_path(log, tip.version)):
                tip = None  # a commit this process made is gone (or the table): read the table
                if not os.path.isdir(log):
                    queue.tip = None
                    raise StorageError(
                        f"region {store.region.name}: its audit log is missing from {store.root.uri} (the "
                        "audit table was deleted); datadrive will not start a new one silently: restore it "
                        "from backup"
                    )
            tip = _follow(log, tip) if tip is not None else None  # commits made since by others
            if tip is None:
                tip = _tip_from_table(store)
            queue.tip = tip
            _check_head_file(store, tip.next_seq, tip.prev_hash)
            table, out = _rows(events, tip.next_seq, tip.prev_hash, now)
            try:
                version = _commit_direct(store, log, tip.version + 1, table, out[-1])
            except FileExistsError:  # taken since we looked (a compaction, which holds no lock)
                continue
            except OSError as exc:
                queue.tip = None
                raise storage_error(store.root, "append to the audit log", exc) from exc
            queue.tip = _Tip(version, out[-1][0] + 1, out[-1][1])
            _write_head_file(store, *out[-1])
            if version % AUDIT_CHECKPOINT_INTERVAL == 0:
                _maintain_in_background(store, queue)
            return out
    queue.tip = None
    raise StorageError(
        f"region {store.region.name}: the audit table's next version was taken eight times in a row "
        "while the audit lock was held: something writes the audit table without the lock"
    )


def _follow(log: str, tip: _Tip) -> _Tip | None:
    """``tip`` moved past the commits made after it (another process's appends, a compaction).

    Each is read from its commit file: an append carries its head, a
    compaction changes no row. ``None`` when one is anything else (or
    unreadable): then the table itself says where the chain ends.
    """
    version, seq, prev = tip.version, tip.next_seq, tip.prev_hash
    while True:
        try:
            with open(_commit_path(log, version + 1), "rb") as fh:
                first = json.loads(fh.readline())
        except FileNotFoundError:
            return _Tip(version, seq, prev)
        except (OSError, ValueError):
            return None
        info = first.get("commitInfo") if isinstance(first, dict) else None
        if not isinstance(info, dict):
            return None
        raw = info.get(COMMIT_KEY)
        if info.get("operation") == "WRITE" and isinstance(raw, str):
            try:
                record = json.loads(raw)
                seq, prev = int(record["head_seq"]) + 1, str(record["head_hash"])
            except (ValueError, KeyError, TypeError):
                return None
            if record.get("op") != "audit":
                return None
        elif info.get("operation") != "OPTIMIZE":
            return None
        version += 1


def _commit_path(log: str, version: int) -> str:
    return os.path.join(log, f"{version:020d}.json")


def _tip_from_table(store: RegionStore) -> _Tip:
    with store.lock:
        dt = store.latest(AUDIT)
        seq, prev = _head(store, dt)
        return _Tip(int(dt.version()), seq, prev)


def _commit_direct(store: RegionStore, log: str, version: int, table: pa.Table, head: tuple[int, str]) -> int:
    """Write ``table`` as version ``version`` of the audit table, durably; ``FileExistsError``: taken."""
    folder = os.path.dirname(log)
    name, add = _write_data_file(folder, table, data_change=True)
    record = json.dumps({"op": "audit", "head_seq": head[0], "head_hash": head[1]})
    info = {
        "operation": "WRITE",
        "operationParameters": {"mode": "Append"},
        "operationMetrics": {"num_added_files": 1, "num_added_rows": table.num_rows},
        COMMIT_KEY: record,
    }
    try:
        _publish(log, version, info, [{"add": add}])
    except FileExistsError:
        os.unlink(os.path.join(folder, name))
        raise
    return version


def _write_data_file(folder: str, table: pa.Table, *, data_change: bool) -> tuple[str, dict[str, Any]]:
    """Write ``table`` as a new Parquet file in ``folder``, durably; its name and its ``add`` action."""
    import pyarrow.parquet as pq

    name = f"part-00000-{uuid.uuid4()}-c000.zstd.parquet"
    with open(os.path.join(folder, name), "xb") as fh:
        pq.write_table(table, fh, compression="zstd", compression_level=1)
        fh.flush()
        os.fdatasync(fh.fileno())
        size = fh.tell()
    fsync_paths([folder])  # its name too, before a commit that names it can outlive a power cut
    seqs = table.column("seq")
    stats = {
        "numRecords": table.num_rows,
        "minValues": {"seq": pc.min(seqs).as_py()},
        "maxValues": {"seq": pc.max(seqs).as_py()},
        "nullCount": {"seq": 0},
    }
    add = {
        "path": name,
        "partitionValues": {},
        "size": size,
        "modificationTime": int(time.time() * 1000),
        "dataChange": data_change,
        "stats": json.dumps(stats, separators=(",", ":")),
    }
    return name, add


def _publish(log: str, version: int, info: Mapping[str, Any], actions: list[dict[str, Any]]) -> None:
    """Publish Delta commit ``version`` (``commitInfo`` + ``actions``) durably; ``FileExistsError``: taken.

    See :func:`~datadrive.lake.tables.publish_commit` (``link(2)``: of two
    writers of one version exactly one wins).
    """
    commit_info = {"timestamp": int(time.time() * 1000), "engineInfo": "datadrive-audit", **info}
    publish_commit(log, version, commit_info, actions)  # durable before the read it records is answered


def _maintain_in_background(store: RegionStore, queue: _Queue) -> None:
    """Start :func:`_maintain` in a thread of its own, unless one is still running.

    Not a daemon: a process that ends meanwhile waits for it, rather than
    leaving a checkpoint half written.
    """
    with queue.guard:
        if queue.maintenance is not None and queue.maintenance.is_alive():
            return
        thread = threading.Thread(
            target=_maintain, args=(store,), name="datadrive-audit-maintenance", daemon=False
        )
        queue.maintenance = thread
    thread.start()


def _maintain(store: RegionStore) -> None:
    """Compact the audit table when it has many small files, then checkpoint it; durably.

    Runs at the versions where delta-rs's post-commit hook would checkpoint,
    beside the appends rather than in front of them (a failure loses
    nothing, the rows are committed already: it is logged, and the next
    mark tries again).
    """
    log = os.path.join(store.root.path(AUDIT.name), "_delta_log")
    try:
        _compact(store, log)
        dt = store.table(AUDIT)
        dt.create_checkpoint()
        version = int(dt.version())
        store.make_durable(AUDIT, version - 1, version)  # the checkpoint and ``_last_checkpoint``
    except Exception as exc:  # the rows are safe; a checkpoint or compaction just did not happen
        _LOG.warning("region %s: audit table maintenance failed: %s", store.region.name, one_line(str(exc)))


def _compact(store: RegionStore, log: str) -> bool:
    """Merge the audit table's small files into one, in an ``OPTIMIZE`` commit written here; whether it did.

    The merging is done outside the audit lock, the commit under it, after
    checking that every commit since the files were listed only added files
    (appends): the rows are the same, so verify, the head and the appenders'
    tips are unaffected (:func:`_follow` moves past it). The work stays
    bounded as the log grows: the small files (under
    :data:`COMPACT_SMALL_BYTES`) are merged among themselves, the bigger
    ones only when they alone are too many, and files of
    :data:`COMPACT_TARGET_BYTES` and more never. (delta-rs's own compaction,
    without the lock, lost its commit to the appends of a busy service:
    "Failed to commit transaction: 15" retries.)
    """
    import pyarrow.parquet as pq

    dt = store.table(AUDIT)
    base = int(dt.version())
    adds = pa.table(dt.get_add_actions(flatten=True)).to_pydict()  # an Arrow C-stream table
    files = [(str(path), int(size)) for path, size in zip(adds["path"], adds["size_bytes"], strict=True)]
    small = [f for f in files if f[1] < COMPACT_SMALL_BYTES]
    if len(small) <= COMPACT_FILES:  # the next tier, rarely: the merged files of the small ones
        small = [f for f in files if COMPACT_SMALL_BYTES <= f[1] < COMPACT_TARGET_BYTES]
        if len(small) <= COMPACT_FILES:
            return False
    folder = os.path.dirname(log)
    merged = pa.concat_tables(
        [conform(AUDIT, pq.read_table(os.path.join(folder, unquote(path)))) for path, _ in small]
    ).sort_by("seq")
    name, add = _write_data_file(folder, merged, data_change=False)
    now_ms = int(time.time() * 1000)
    removes = [
        {
            "remove": {
                "path": path,
                "deletionTimestamp": now_ms,
                "dataChange": False,
                "extendedFileMetadata": True,
                "partitionValues": {},
                "size": size,
            }
        }
        for path, size in small
    ]
    info = {
        "operation": "OPTIMIZE",
        "operationParameters": {"targetSize": str(COMPACT_TARGET_BYTES)},
        "operationMetrics": {"numFilesAdded": 1, "numFilesRemoved": len(small)},
    }
    with region_lock(store.root, "audit"):
        version = base
        while os.path.exists(_commit_path(log, version + 1)):
            with open(_commit_path(log, version + 1), "rb") as fh:
                actions = [json.loads(line) for line in fh if line.strip()]
            if any(set(a) - {"commitInfo", "add"} for a in actions):  # not a pure append: leave it be
                os.unlink(os.path.join(folder, name))
                return False
            version += 1
        try:
            _publish(log, version + 1, info, [*removes, {"add": add}])
        except BaseException:
            os.unlink(os.path.join(folder, name))
            raise
    return True


_HEAD_FILE = "audit_head.json"
"""``_datadrive/audit_head.json``: the head after the last append (the anchor of the tail)."""


def _write_head_file(store: RegionStore, seq: int, h: str) -> None:
    """Record the head beside the table (under the audit lock). Best effort: a crash leaves an older head."""
    data = json.dumps({"seq": seq, "hash": h}).encode()
    with contextlib.suppress(OSError):
        if store.root.is_local:  # plain file I/O: a third of the cost of a pyarrow output stream
            with open(store.root.meta_path(_HEAD_FILE), "wb") as fh:
                fh.write(data)
        else:
            store.write_file(store.root.meta_path(_HEAD_FILE), data)


def _behind(recorded: Mapping[str, Any], next_seq: int, last_hash: str) -> bool:
    """Whether the table (next row ``next_seq``, last hash ``last_hash``) lost rows the head file recorded."""
    try:
        seq, h = int(recorded["seq"]), str(recorded["hash"])
    except (KeyError, TypeError, ValueError):
        return False  # an unreadable head file is rewritten by this append; verify reports it meanwhile
    return seq >= next_seq or (seq == next_seq - 1 and h != last_hash)


def _read_head_file(store: RegionStore) -> dict[str, Any] | None:
    try:
        with store.fs.open_input_stream(store.root.meta_path(_HEAD_FILE)) as fh:
            record = json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _head(store: RegionStore, dt: Any) -> tuple[int, str]:
    entries = dt.history(1)
    if entries:
        raw = entries[0].get(COMMIT_KEY)
        if isinstance(raw, str):
            try:
                record = json.loads(raw)
                if record.get("op") == "audit":
                    return int(record["head_seq"]) + 1, str(record["head_hash"])
            except (ValueError, KeyError, TypeError):
                pass
    # last commit was not an append by us (a compaction, a foreign write, the table's creation): scan
    if not dt.file_uris():  # no rows (a new table): nothing to scan
        return 0, GENESIS_HASH
    table = store.arrow(AUDIT).to_table(columns=["seq", "row_hash"])
    if table.num_rows == 0:
        return 0, GENESIS_HASH
    i = int(pc.index(table.column("seq"), pc.max(table.column("seq"))).as_py())
    return int(table.column("seq")[i].as_py()) + 1, str(table.column("row_hash")[i].as_py())


def anchor(store: RegionStore) -> dict[str, Any] | None:
    """The audit head now (``{"seq", "hash"}`` of its last row) for a lake commit's record; ``None``: empty.

    Reads one commit of the audit log (the head travels in each append's
    commit metadata); no lock is needed: any row read is a real row.
    """
    if not store.exists(AUDIT):
        return None
    with store.lock:
        seq, prev = _head(store, store.latest(AUDIT))
    return None if seq == 0 else {"seq": seq - 1, "hash": prev}


def anchor_problems(store: RegionStore, hashes: Mapping[int, str]) -> list[str]:
    """How the chain (``seq -> row_hash``) disagrees with the heads the lake commits recorded.

    Each lake commit anchored the audit head of its moment; every anchored
    row must still be in the chain with the same hash. A log cut short
    (its last commits dropped) or rewritten fails here even when what is
    left is a valid chain.
    """
    last = max(hashes) if hashes else -1
    anchors: list[tuple[str, Any]] = [("the audit head file", _read_head_file(store))]
    if store.exists(INGESTS):
        anchors += [(f"lake version {lv.version}", lv.info.get(ANCHOR_KEY)) for lv in store.history()]
    for where, head in anchors:
        if head is None:
            continue
        try:
            seq, h = int(head["seq"]), str(head["hash"])
        except (KeyError, TypeError, ValueError):
            return [f"{where}: its record of the audit head is unreadable"]
        if seq not in hashes:  # one sentence is enough: older anchors say the same
            return [
                f"{where} recorded audit row {seq} as the head, but the audit log ends at row {last}: "
                "rows were removed (its last commits were dropped?)"
            ]
        if hashes[seq] != h:
            return [f"audit row {seq} is not the row {where} recorded (the log was rewritten)"]
    return []


def version_problems(store: RegionStore, newest_recorded: int) -> list[str]:
    """The audit log records a lake version the lake no longer has: commits of ``ingests`` were removed.

    A lake commit is made before its audit row, so the audit never names a
    version ahead of the lake, even after a crash between the two.
    """
    if newest_recorded < 0 or not store.exists(INGESTS):
        return []
    latest = store.lake_version()
    if newest_recorded > latest:
        return [
            f"the audit log records lake version {newest_recorded}, but the lake's latest is {latest}: "
            "commits of the ingests table were removed"
        ]
    return []


def read(store: RegionStore) -> pa.Table:
    """The whole audit log, ordered by ``seq``."""
    table = conform(AUDIT, store.arrow(AUDIT).to_table())
    return table.sort_by("seq")


@dataclass(frozen=True)
class AuditVerification:
    """The result of :func:`verify`.

    Attributes:
        ok: Whether the chain is intact.
        rows: Number of rows checked.
        head_hash: ``row_hash`` of the last row (publish it to anchor the chain).
        problems: One line per problem found.
    """

    ok: bool
    rows: int
    head_hash: str
    problems: tuple[str, ...]


def verify(store: RegionStore) -> AuditVerification:
    """Check the chain, the row hashes and the table's commit history."""
    problems: list[str] = []
    if not store.exists(AUDIT):
        problems.append("the audit table is missing (it was deleted)")
        return AuditVerification(ok=False, rows=0, head_hash="", problems=tuple(problems))
    try:
        dt = store.table(AUDIT)
    except LakeError as exc:
        return AuditVerification(ok=False, rows=0, head_hash="", problems=(str(exc),))
    history = dt.history()
    gaps = store.log_holes(AUDIT)  # a checkpoint hides a hole from the history deltalake reports
    if gaps:  # log clean-up removes only a prefix; a hole is a commit file someone deleted
        problems.append(
            f"audit table commit {gaps[0]} is missing from its log"
            + (f" (and {len(gaps) - 1} more)" if len(gaps) > 1 else "")
            + ": a commit file was deleted"
        )
    for entry in history:
        op = str(entry.get("operation", ""))
        mode = str((entry.get("operationParameters") or {}).get("mode", ""))
        if op not in _ALLOWED_OPERATIONS or (op == "WRITE" and mode not in ("Append", "")):
            problems.append(
                f"audit table version {entry.get('version')}: {op} {mode}".rstrip()
                + " (only appends are allowed: rows were changed or removed)"
            )
    try:
        table = read(store)
    except Exception as exc:  # a file changed or removed behind Delta's back
        problems.append(
            f"the audit table cannot be read (its files were changed or removed): {one_line(str(exc), 300)}"
        )
        return AuditVerification(ok=False, rows=0, head_hash="", problems=tuple(problems))
    times_us = table.column("time").cast(pa.int64()).to_pylist()
    rows = table.drop_columns(["time"]).to_pylist()
    prev = GENESIS_HASH
    expected_seq = 0
    for r, time_us in zip(rows, times_us, strict=True):
        seq = int(r["seq"])
        if seq != expected_seq:
            if seq > expected_seq:
                problems.append(f"rows {expected_seq}..{seq - 1} are missing")
            else:
                problems.append(f"row {seq} appears twice")
        if r["prev_hash"] != prev:
            problems.append(f"row {seq}: prev_hash does not match row {seq - 1}'s hash (a row was removed)")
        fields = (
            r["who"],
            r["tenant"],
            r["home_region"],
            r["region"],
            r["action"],
            r["object"],
            int(r["lake_version"]),
            r["outcome"],
            r["detail"],
        )
        if row_hash(seq, int(time_us or 0), fields, r["prev_hash"]) != r["row_hash"]:
            problems.append(f"row {seq}: contents do not match its hash (the row was altered)")
        prev = r["row_hash"]
        expected_seq = seq + 1
    entries = dt.history(1)
    raw = entries[0].get(COMMIT_KEY) if entries else None
    if isinstance(raw, str) and rows:
        try:
            head = json.loads(raw)
        except ValueError:
            head = {}
        if head.get("op") == "audit" and (
            int(head.get("head_seq", -1)) != int(rows[-1]["seq"]) or head.get("head_hash") != prev
        ):
            problems.append("the last commit's recorded head does not match the last row (rows were removed)")
    hashes = {int(r["seq"]): str(r["row_hash"]) for r in rows}
    problems += anchor_problems(store, hashes)
    problems += version_problems(store, max((int(r["lake_version"]) for r in rows), default=-1))
    return AuditVerification(ok=not problems, rows=len(rows), head_hash=prev, problems=tuple(problems))
