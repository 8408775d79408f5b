"""The commit protocol, and recovery from a writer that crashed inside it.

**Lake version N is version N of the ``ingests`` table**, whose commit
metadata pins the version of every versioned table
(:func:`~datadrive.lake.schema.versioned_tables`). Every writer makes a lake
version the same way, under the region's commit lock:

1. :func:`recover` what a crashed writer left;
2. :func:`start` a pending marker, ``_datadrive/pending/<name>.json``, saying
   what is in flight (an ingest or derive batch: its id; an erasure: its plan);
3. add the rows (:func:`add_files`: the Parquet files the readers wrote,
   :mod:`datadrive.lake.staging`; or :func:`append_batch`: rows in memory),
   one Delta commit per table, every file holding only this batch's rows;
4. :func:`commit_version`: fsync what the table commits since the last lake
   version added (local roots; delta-rs syncs nothing), then commit to
   ``ingests`` (ledger rows, or none) with the table versions it pins and
   the audit chain's head (its anchor, see :mod:`datadrive.lake.audit`): the
   lake commit, itself fsynced before it is reported;
5. :func:`finish`: delete the marker.

A crash before step 4 leaves the lake at its previous version: the rows
beyond the pinned versions are invisible. :func:`recover` then deletes an
unfinished batch's rows from every versioned table (whole files: a batch
never shares one) and the files its marker lists, and finishes an erasure
whose plan is pending (an
erasure must complete; see :mod:`datadrive.lake.erase`). A batch whose
ledger commit did land just loses its marker. This module is the one place
that knows both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from datadrive.errors import LakeError, StorageError
from datadrive.lake import audit
from datadrive.lake.artefacts import erase_keyed_artefacts
from datadrive.lake.erase import finish_erase
from datadrive.lake.schema import INGESTS, TableSpec, conform, table_spec, versioned_tables
from datadrive.lake.staging import StagedFile, add_actions, delete_staged
from datadrive.lake.storage import storage_error
from datadrive.lake.tables import RegionStore, commit_record, sql_quote, writer_properties

__all__ = [
    "add_files",
    "append_batch",
    "batch_committed",
    "commit_version",
    "delete_rows",
    "finish",
    "marker_path",
    "recover",
    "start",
]


def marker_path(store: RegionStore, name: str) -> str:
    """Where the pending marker ``name`` lives: ``_datadrive/pending/<name>.json``."""
    return store.root.meta_path("pending", f"{name}.json")


def start(store: RegionStore, name: str, record: Mapping[str, Any]) -> None:
    """Write the pending marker ``name`` before the first write of an operation.

    Args:
        record: ``{"op": "ingest" | "derive", "batch_id": ...}`` or an
            erasure plan (``{"op": "erase", ...}``).

    Raises:
        StorageError: if it cannot be written (nothing was written yet).
    """
    try:
        store.fs.create_dir(store.root.meta_path("pending"), recursive=True)
        store.write_file(marker_path(store, name), json.dumps(record).encode(), durable=True)
    except Exception as exc:
        raise storage_error(store.root, f"start {record.get('op', 'a commit')}", exc) from exc


def finish(store: RegionStore, name: str) -> None:
    """Delete the pending marker ``name``: the operation is committed."""
    store.delete_file(marker_path(store, name))


def append_batch(store: RegionStore, tables: Sequence[tuple[TableSpec, pa.Table]]) -> dict[str, int]:
    """Append one batch's rows to their tables (step 3); empty tables are skipped.

    Returns:
        The version of every versioned table to pin: the new head of each
        table written, the latest lake version's pin of the others (or the
        head, for a table created since).

    Raises:
        StorageError: if the root refuses a write.
    """
    from deltalake import write_deltalake

    pinned = dict(store.resolve(None).table_versions)
    versions = {
        spec.name: pinned[spec.name] if spec.name in pinned else store.head(spec)
        for spec in versioned_tables()
    }
    for spec, rows in tables:
        if rows.num_rows == 0:
            continue
        try:
            write_deltalake(
                store.uri(spec),
                rows,
                mode="append",
                partition_by=list(spec.partition_by),
                storage_options=store.root.storage_options(),
                writer_properties=writer_properties(spec),
            )
        except Exception as exc:
            raise storage_error(store.root, f"write the batch to {spec.name}", exc) from exc
        versions[spec.name] = store.head(spec)
    return versions


def add_files(store: RegionStore, files: Sequence[StagedFile]) -> dict[str, int]:
    """Add staged Parquet files to their tables' logs (step 3), one Delta commit per table.

    Returns:
        The version of every versioned table to pin (see :func:`append_batch`).

    Raises:
        StorageError: if the root refuses a commit.
    """
    pinned = dict(store.resolve(None).table_versions)
    versions = {
        spec.name: pinned[spec.name] if spec.name in pinned else store.head(spec)
        for spec in versioned_tables()
    }
    for name, actions in add_actions(files).items():
        spec = table_spec(name)
        if spec is None:
            raise ValueError(f"no table {name!r}")
        try:
            with store.lock:
                dt = store.latest(spec)
                dt.create_write_transaction(
                    actions, mode="append", schema=dt.schema(), partition_by=list(spec.partition_by) or None
                )
        except Exception as exc:
            raise storage_error(store.root, f"commit the batch to {spec.name}", exc) from exc
        versions[spec.name] = store.head(spec)
    return versions


def commit_version(
    store: RegionStore,
    op: str,
    versions: Mapping[str, int],
    *,
    now: datetime,
    ledger_rows: pa.Table | None = None,
    **info: Any,
) -> int:
    """Commit to ``ingests`` (step 4), pinning ``versions``: the new lake version.

    Args:
        op: What the commit did (``ingest``, ``derive``, ``erase``, ``optimize``).
        versions: Table name -> version, for every versioned table.
        now: The commit time.
        ledger_rows: Rows for the ledger (ingested inputs), or none.
        info: More facts for the commit record (batch id, who, counts).

    Returns:
        The lake version made.

    Raises:
        StorageError: if the root refuses the commit.
    """
    from deltalake import CommitProperties, write_deltalake

    rows = INGESTS.schema.empty_table() if ledger_rows is None else conform(INGESTS, ledger_rows)
    previous = store.resolve(None)
    store.make_pins_durable(previous, versions)
    head = audit.anchor(store)  # the audit chain's head, anchored outside the audit table
    if head is not None:
        info = {**info, audit.ANCHOR_KEY: head}
    try:
        write_deltalake(
            store.uri(INGESTS),
            rows,
            mode="append",
            partition_by=list(INGESTS.partition_by),
            storage_options=store.root.storage_options(),
            commit_properties=CommitProperties(custom_metadata=commit_record(op, versions, now=now, **info)),
        )
    except Exception as exc:
        raise storage_error(store.root, f"commit the {op} to the ledger", exc) from exc
    version = store.lake_version()
    store.make_durable(INGESTS, previous.version, version)
    return version


def batch_committed(store: RegionStore, batch_id: str) -> bool:
    """Whether a lake version records ``batch_id`` (a ledger row, or a commit record naming it)."""
    dataset = store.arrow(INGESTS)
    if dataset.to_table(columns=["batch_id"], filter=ds.field("batch_id") == batch_id).num_rows:
        return True
    return any(v.info.get("batch_id") == batch_id for v in store.history(limit=64))


def delete_rows(store: RegionStore, spec: TableSpec, predicate: str) -> None:
    """Delete the rows matching a Delta SQL ``predicate`` from a table (one commit, if any matched).

    Raises:
        StorageError: if the root refuses it.
    """
    try:
        store.table(spec).delete(predicate)
    except (LakeError, StorageError):
        raise
    except Exception as exc:
        raise storage_error(store.root, f"delete from {spec.name}", exc) from exc


def recover(store: RegionStore, now: Callable[[], datetime]) -> list[str]:
    """Finish or undo what a crashed writer left behind. Call under the commit lock.

    Returns:
        One line per action taken.
    """
    actions: list[str] = []
    for path in store.list_files(store.root.meta_path("pending")):
        try:
            with store.fs.open_input_stream(path) as fh:
                record = json.loads(fh.read().decode("utf-8"))
        except (OSError, ValueError):
            record = {"op": "ingest", "batch_id": os.path.basename(path).removesuffix(".json")}
        op = record.get("op")
        if op in ("ingest", "derive"):
            batch = str(record.get("batch_id"))
            if batch_committed(store, batch):
                actions.append(f"batch {batch} was committed; removed its marker")
            else:
                for spec in versioned_tables():
                    if store.exists(spec):
                        delete_rows(store, spec, f"batch_id = {sql_quote(batch)}")
                delete_staged(store.root, _listed_files(record))
                actions.append(f"deleted the rows of uncommitted batch {batch}")
        elif op == "erase":
            finish_erase(store, record, now)
            keys = record.get("derived_keys") or {}
            erase_keyed_artefacts(
                store.root,
                str(record.get("tenant")),
                set(keys.get("scenario_ids", ())),
                set(keys.get("telemetry_ids", ())),
            )
            actions.append(f"finished erasure {record.get('erase_id')}")
        store.delete_file(path)
    return actions


def _listed_files(record: Mapping[str, Any]) -> list[StagedFile]:
    """The staged files a batch marker lists (``"files": [[table, path], ...]``)."""
    out = []
    for item in record.get("files") or ():
        if isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item):
            out.append(StagedFile(item[0], item[1], 0, (), 0, "{}", 0))
    return out
