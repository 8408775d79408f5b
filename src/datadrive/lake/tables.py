"""The Delta tables of one region root, and what a lake version pins.

**Lake version N is ``ingests`` version N**: its commit metadata records the
version of every versioned table it saw, and reading lake version N reads
each table at the version recorded there (a table created after that lake
version reads as empty). How versions are made, and unmade after a crash, is
:mod:`datadrive.lake.commit`.
"""

from __future__ import annotations

import json
import os
import posixpath
import threading
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from datadrive.errors import LakeError, ResidencyError, SchemaVersionError, StorageError, one_line
from datadrive.lake.config import RegionConfig
from datadrive.lake.schema import (
    AUDIT,
    INGESTS,
    LAKE_SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
    TableSpec,
    lake_tables,
    versioned_tables,
)
from datadrive.lake.storage import StorageRoot, storage_error

__all__ = [
    "AUDIT_CHECKPOINT_INTERVAL",
    "CHECKPOINT_INTERVAL",
    "COMMIT_KEY",
    "UNREFERENCED_GRACE_HOURS",
    "LakeVersion",
    "RegionStore",
    "check_schema_version",
    "commit_record",
    "delta_log_problem",
    "empty_dataset",
    "fsync_paths",
    "parse_record",
    "publish_commit",
    "sql_quote",
    "table_configuration",
    "writer_properties",
]

COMMIT_KEY = "datadrive"
"""Commit-metadata key under which datadrive records what a commit did."""

_MARKER = "region.json"

CHECKPOINT_INTERVAL = 20
"""Commits between Delta checkpoints of the data tables and the ledger: opening a table reads
the last checkpoint and at most this many commit files, however long its history."""

UNREFERENCED_GRACE_HOURS = 6
"""Data files no version refers to are vacuumed only once this old: younger ones may belong to an
ingest still running (its workers write their files before the commit adds them to the log)."""

AUDIT_CHECKPOINT_INTERVAL = 100
"""The audit log grows by one commit per audited read, each adding a file: its checkpoints,
which list every file, are written less often."""


def table_configuration(spec: TableSpec) -> dict[str, str]:
    """The Delta table properties datadrive sets on ``spec``'s table.

    Besides the schema version and the statistics columns: Delta checkpoints
    every :data:`CHECKPOINT_INTERVAL` commits (written by the commit itself),
    and the log's commit files are never cleaned up, so that every lake
    version stays readable and its history complete (erasure removes data
    files, never the log, which holds no identifiers).
    """
    return {
        SCHEMA_VERSION_KEY: str(LAKE_SCHEMA_VERSION),
        "delta.dataSkippingStatsColumns": ",".join(spec.stats_columns),
        "delta.checkpointInterval": str(
            AUDIT_CHECKPOINT_INTERVAL if spec.name == "audit" else CHECKPOINT_INTERVAL
        ),
        "delta.enableExpiredLogCleanup": "false",
    }


@dataclass(frozen=True)
class LakeVersion:
    """One lake version: the commit to ``ingests`` and the table versions it pins.

    Attributes:
        version: The ``ingests`` table version.
        table_versions: Data table name -> version pinned by this lake version.
        operation: ``"create"``, ``"ingest"``, ``"erase"``, ``"optimize"``, ...
        time: Commit time (UTC).
        info: The rest of the commit record (batch id, who, counts).
    """

    version: int
    table_versions: Mapping[str, int]
    operation: str
    time: datetime
    info: Mapping[str, Any]


def sql_quote(value: str) -> str:
    """A SQL string literal for Delta predicates."""
    return "'" + value.replace("'", "''") + "'"


def writer_properties(spec: TableSpec) -> Any:
    """Delta writer properties for ``spec`` (its row-group size), or ``None`` for the defaults."""
    if spec.row_group_rows is None:
        return None
    from deltalake import WriterProperties

    return WriterProperties(
        max_row_group_size=spec.row_group_rows,
        # delta-rs writes UNCOMPRESSED once writer properties are given: compress as staged files do
        # (zstd level 1, datadrive.lake.staging), and in pages of a whole group (at most 8 MiB) rather
        # than 20,000 rows: ~40 % fewer bytes, fewer pages for a reader to decode
        compression="ZSTD",
        compression_level=1,
        data_page_row_count_limit=spec.row_group_rows,
        data_page_size_limit=8 << 20,
    )


class RegionStore:
    """Access to the Delta tables under one region's root.

    Args:
        region: The region; its root must hold only this region's data (a
            marker file pins the root to the region name).
    """

    def __init__(self, region: RegionConfig) -> None:
        self.region = region
        self.root: StorageRoot = region.root
        self._fs: pafs.FileSystem | None = None
        self._latest: dict[str, Any] = {}
        self._lock = threading.RLock()
        # the tables' identities when ensure last found every table with every column (local roots)
        self._ensured: tuple[tuple[int, int], ...] | None = None
        self._synced_dirs: dict[str, int] = {}  # folder -> inode, whose entry in its parent is durable
        self._synced_files: set[str] = set()  # staged data files synced ahead of their commit (presync)

    # ------------------------------------------------------------------ basics

    @property
    def fs(self) -> pafs.FileSystem:
        if self._fs is None:
            self.root.check_access()
            self._fs = self.root.filesystem()
        return self._fs

    def uri(self, spec: TableSpec) -> str:
        return self.root.table_uri(spec.name)

    def exists(self, spec: TableSpec) -> bool:
        """Whether the table exists.

        Raises:
            StorageError: if an object-store root cannot be reached (a
                missing table is not confused with an unreachable one).
        """
        from deltalake import DeltaTable

        if spec.name in self._latest:  # tables are never dropped: a table seen once exists
            return True
        self.root.check_access()
        try:
            return bool(DeltaTable.is_deltatable(self.uri(spec), storage_options=self.root.storage_options()))
        except Exception:
            return False

    def table(self, spec: TableSpec, version: int | None = None) -> Any:
        """The ``DeltaTable`` for ``spec``, at ``version`` or the latest.

        Raises:
            LakeError: if the table does not exist or the version is gone.
            SchemaVersionError: if the table was written by a newer datadrive.
        """
        from deltalake import DeltaTable

        self.root.check_access()
        try:
            dt = DeltaTable(self.uri(spec), version=version, storage_options=self.root.storage_options())
        except Exception as exc:
            if not self.exists(spec):
                raise LakeError(
                    f"region {self.region.name}: table {spec.name} does not exist under {self.root.uri} "
                    "(run `datadrive lake init` or ingest something first)"
                ) from exc
            where = "latest" if version is None else f"version {version}"
            raise LakeError(
                f"region {self.region.name}: cannot open {spec.name} at {where}: {delta_log_problem(exc)}"
            ) from exc
        check_schema_version(dt, spec, self.region.name)
        return dt

    def latest(self, spec: TableSpec) -> Any:
        """The ``DeltaTable`` of ``spec`` at its latest version, from a handle this store keeps.

        Each call brings the handle up to date by reading only the commits
        added since (``update_incremental``), so a long-lived process asking
        "what is the latest version" often does not replay the log each time.
        Use it under :attr:`lock` when other threads may share the store.
        """
        with self._lock:
            dt = self._latest.get(spec.name)
            if dt is not None and self.root.is_local and not os.path.exists(self._next_commit(spec, dt)):
                # nothing committed since (a stat, where deltalake's update costs ~1 ms of CPU): as it was,
                # and still refused if it was (a newer writer's version this handle was brought up to)
                check_schema_version(dt, spec, self.region.name)
                return dt
            if dt is not None:
                try:
                    dt.update_incremental()
                except Exception:  # the table was replaced or its log cannot be read: open it afresh
                    del self._latest[spec.name]
                else:
                    check_schema_version(dt, spec, self.region.name)  # a newer writer may have moved on
                    return dt
            dt = self.table(spec)
            self._latest[spec.name] = dt
            return dt

    def _next_commit(self, spec: TableSpec, dt: Any) -> str:
        """The path of the commit file after ``dt``'s version (local roots)."""
        return os.path.join(self.root.path(spec.name, "_delta_log"), f"{int(dt.version()) + 1:020d}.json")

    @property
    def lock(self) -> threading.RLock:
        """Serialises this store's use of its kept table handles between threads."""
        return self._lock

    # ------------------------------------------------------------------ creation

    def check_marker(self) -> bool:
        """Whether the root's marker exists; it must name this region.

        Raises:
            ResidencyError: if the root belongs to another region.
        """
        path = self.root.meta_path(_MARKER)
        try:
            with self.fs.open_input_stream(path) as fh:
                marker = json.loads(fh.read().decode("utf-8"))
        except FileNotFoundError:
            return False
        except OSError as exc:
            if "not found" in str(exc).lower() or "no such file" in str(exc).lower():
                return False
            raise storage_error(self.root, "read the region marker", exc) from exc
        if marker.get("region") != self.region.name:
            raise ResidencyError(
                f"{self.root.uri} holds region {marker.get('region')!r}, not {self.region.name!r}: "
                "a root holds exactly one region's data (fix the config)"
            )
        return True

    def ensure(self, now: datetime) -> None:
        """Create the marker and any missing table. Call under the commit lock.

        What it finds once (every table there, with every column this
        datadrive defines) this store does not look for again while the
        tables are the same ones (on a local root: their version-0 commit
        files, by inode and time, 11 ``stat`` calls; a table replaced behind
        the lake's back, e.g. restored from an older backup, is looked at
        again): opening every table to compare its columns cost more than
        the rest of a small commit. The marker and the audit log's presence
        are checked on every call.

        Raises:
            StorageError: if the root cannot be written.
        """
        try:
            had_marker = self.check_marker()
            # ingests is created last, after the audit table: a region with ingests had an audit log
            if not self.exists(AUDIT) and self.exists(INGESTS):
                # a region whose audit log disappeared must not start a new one: that would hide the loss
                raise StorageError(
                    f"region {self.region.name}: its audit log is missing from {self.root.uri} (the audit "
                    "table was deleted); datadrive will not start a new one silently: restore it from backup"
                )
            identity = self._identity()
            if had_marker and identity is not None and identity == self._ensured:
                return
            if self._ensured is not None:  # a table was replaced: its kept handle is of the old one
                with self._lock:
                    self._latest.clear()
            if not had_marker:
                self.fs.create_dir(self.root.meta_path(), recursive=True)
                self.write_file(
                    self.root.meta_path(_MARKER),
                    json.dumps(
                        {
                            "format": "datadrive-lake",
                            "region": self.region.name,
                            "schema_version": LAKE_SCHEMA_VERSION,
                            "created_at": now.isoformat(),
                        },
                        indent=2,
                    ).encode(),
                )
            missing = [spec for spec in lake_tables() if not self.exists(spec)]
            created: set[str] = set()
            # ingests last: its version 0 commit records the data tables' versions
            for spec in sorted(missing, key=lambda s: s is INGESTS):
                if self._create(spec, now, created):
                    created.add(spec.name)
            for spec in lake_tables():  # a table made before a column was added gains it
                if spec not in missing:
                    self._add_new_columns(spec)
            self._ensured = self._identity()
        except (LakeError, ResidencyError):
            raise
        except Exception as exc:
            raise storage_error(self.root, "create the region's tables", exc) from exc

    def _identity(self) -> tuple[tuple[int, int], ...] | None:
        """(inode, mtime) of each table's version-0 commit file; ``None``: unknown (object store, missing)."""
        if not self.root.is_local:
            return None
        out = []
        for spec in lake_tables():
            try:
                st = os.stat(os.path.join(self.root.path(spec.name, "_delta_log"), f"{0:020d}.json"))
            except OSError:
                return None
            out.append((st.st_ino, st.st_mtime_ns))
        return tuple(out)

    def _create(self, spec: TableSpec, now: datetime, created: Collection[str]) -> bool:
        """Create ``spec``'s empty table (version 0); ``True`` if this call made it, ``False``: it was there.

        On a local root the version-0 commit is written here, as delta-rs
        writes it (the same ``protocol`` and ``metaData`` actions; a test
        compares them): ``DeltaTable.create`` costs ~5-10 ms a table, and a
        lake has eleven. It is published with ``link(2)``, which refuses an
        existing version: a table another process created meanwhile is left
        as it is. Object-store roots, and a schema that needs a newer
        protocol, go through ``DeltaTable.create``.

        Args:
            created: The tables this :meth:`ensure` made (their version is 0).
        """
        from deltalake import CommitProperties, DeltaTable

        config = table_configuration(spec)
        record = None
        if spec is INGESTS:
            versions = {t.name: 0 if t.name in created else self.head(t) for t in versioned_tables()}
            record = commit_record("create", versions, now=now)
        if self.root.is_local:
            action = _create_actions(spec, config)
            if action is not None:
                log = self.root.path(spec.name, "_delta_log")
                os.makedirs(log, exist_ok=True)
                info = {
                    "timestamp": int(time.time() * 1000),
                    "operation": "CREATE TABLE",
                    "operationParameters": {"mode": "ErrorIfExists", "location": self.uri(spec)},
                    "engineInfo": "datadrive",
                    **(record or {}),
                }
                try:
                    publish_commit(log, 0, info, action, durable=False)
                except FileExistsError:
                    return False
                return True
        DeltaTable.create(
            self.uri(spec),
            spec.schema,
            mode="ignore",
            partition_by=list(spec.partition_by) or None,
            name=spec.name,
            description=spec.description,
            configuration=config,
            storage_options=self.root.storage_options(),
            commit_properties=None if record is None else CommitProperties(custom_metadata=record),
            raise_if_key_not_exists=False,
        )
        return True

    def _add_new_columns(self, spec: TableSpec) -> None:
        """Add the nullable columns a newer datadrive defines to a table created before them.

        Earlier versions of the table keep reading (the missing column reads as NULL,
        "unknown"); rows written from now on carry the column.
        """
        from deltalake.schema import Field

        dt = self.table(spec)
        have = set(dt.schema().to_arrow().names)
        new = [f for f in spec.schema if f.name not in have]
        if not new:
            return
        if any(not f.nullable for f in new):
            raise LakeError(f"{spec.name}: cannot add the non-nullable column(s) {[f.name for f in new]}")
        dt.alter.add_columns([Field.from_arrow(f) for f in new])

    # ------------------------------------------------------------------ versions

    def head(self, spec: TableSpec) -> int:
        """Latest version of a table."""
        with self._lock:
            return int(self.latest(spec).version())

    def lake_version(self) -> int:
        """The latest lake version (``ingests`` version)."""
        return self.head(INGESTS)

    def resolve(self, version: int | None = None) -> LakeVersion:
        """The lake version ``version`` (latest when ``None``) and what it pins.

        Raises:
            LakeError: if the version does not exist.
        """
        with self._lock:
            dt = self.latest(INGESTS)
            latest = int(dt.version())
            want = latest if version is None else int(version)
            if want < 0 or want > latest:
                raise LakeError(f"region {self.region.name} has no lake version {want} (latest is {latest})")
            entries = dt.history(latest - want + 1 + 8)
        for entry in entries:
            v = int(entry.get("version", -1))
            if v > want:
                continue
            record = parse_record(entry)
            if record is not None:
                _check_record_version(record, self.region.name, v)
                return LakeVersion(
                    version=want,
                    table_versions={k: int(x) for k, x in record["versions"].items()},
                    operation=str(record.get("op", "")),
                    time=_commit_time(entry),
                    info=record,
                )
        raise LakeError(f"region {self.region.name}: lake version {want} has no datadrive commit record")

    def history(self, limit: int | None = None) -> Iterator[LakeVersion]:
        """Every lake version (the last ``limit`` commits, if given), newest first."""
        with self._lock:
            entries = self.latest(INGESTS).history(limit)
        for entry in entries:
            record = parse_record(entry)
            if record is None:
                continue
            yield LakeVersion(
                version=int(entry["version"]),
                table_versions={k: int(x) for k, x in record["versions"].items()},
                operation=str(record.get("op", "")),
                time=_commit_time(entry),
                info=record,
            )

    def arrow(self, spec: TableSpec, version: int | None = None) -> ds.Dataset:
        """The table (latest or at ``version``) as an Arrow dataset, read through a pyarrow filesystem.

        Reading through deltalake's own filesystem handler can abort the
        process at exit (``docs/lake-storage.md``); a pyarrow filesystem
        rooted at the table does not.
        """
        with self._lock:
            dt = self._handle(spec, version)
            try:
                return dt.to_pyarrow_dataset(filesystem=self.root.table_filesystem(spec.name))
            except Exception as exc:
                raise LakeError(f"region {self.region.name}: cannot read {spec.name}: {exc}") from exc

    def _handle(self, spec: TableSpec, version: int | None) -> Any:
        """The table at ``version`` (latest: ``None``): the kept handle when it is at that version.

        A fresh ``DeltaTable`` replays the log (a few ms a table); the kept
        one already holds the state. Use it under :attr:`lock`; a dataset
        made from it holds its own file list, whatever the handle does next.
        """
        if version is None:
            return self.latest(spec)
        kept = self._latest.get(spec.name)
        if kept is not None and int(kept.version()) == version:
            return kept
        return self.table(spec, version)

    def dataset(self, spec: TableSpec, version: int) -> ds.Dataset:
        """The table at ``version`` as an Arrow dataset (no copy).

        Raises:
            LakeError: if files of that version were vacuumed away.
        """
        with self._lock:
            dt = self._handle(spec, version)
            self._check_files(dt, spec, version)
            try:
                return dt.to_pyarrow_dataset(filesystem=self.root.table_filesystem(spec.name))
            except Exception as exc:
                raise LakeError(
                    f"region {self.region.name}: cannot read {spec.name} v{version}: {exc}"
                ) from exc

    def _check_files(self, dt: Any, spec: TableSpec, version: int) -> None:
        uris = dt.file_uris()
        if not uris:
            return
        # the URIs are percent-encoded (a root with a space reads "my%20lake"); the filesystem wants paths
        paths = [
            unquote(u[len("file://") :] if u.startswith("file://") else u.split("://", 1)[-1]) for u in uris
        ]
        infos = self.fs.get_file_info(paths)
        missing = sum(1 for i in infos if i.type == pafs.FileType.NotFound)
        if missing:
            raise LakeError(
                f"region {self.region.name}: {spec.name} version {version} can no longer be read: "
                f"{missing} of its {len(paths)} files were removed by vacuum (erasure or retention); "
                "read a later lake version"
            )

    def vacuum(self, spec: TableSpec, *, retention_hours: float) -> int:
        """Delete the table's files that versions older than the retention needed; returns how many.

        Files removed by a commit (an erasure's rewrite, a compaction) go once
        the retention has passed (0: now). Files no version ever referred to
        (a crashed writer's) go once they are older than the retention and
        :data:`UNREFERENCED_GRACE_HOURS`, because a younger one may be the
        staged file of an ingest still running in another process.
        """
        dt = self.table(spec)
        removed = dt.vacuum(
            retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False, full=False
        )
        unreferenced = dt.vacuum(
            retention_hours=max(retention_hours, UNREFERENCED_GRACE_HOURS),
            dry_run=False,
            enforce_retention_duration=False,
            full=True,
        )
        return len(removed) + len(unreferenced)

    # ------------------------------------------------------------------ durability

    def make_durable(self, spec: TableSpec, after: int, upto: int) -> int:
        """Flush to disk every file that versions ``after+1 .. upto`` of a table added (local roots only).

        delta-rs neither fsyncs the data files it writes nor its
        ``_delta_log`` commit files, so on a local disk a power cut right
        after a commit can take what the lake reported as committed. This
        fsyncs, once per commit and in one batch: each commit file, the
        files their ``add`` actions name (less those a later one of them
        removes), the checkpoints of those versions and
        ``_last_checkpoint``, then every folder between them and the region
        root (their new entries). Version 0 (the table's creation, written
        unsynced) goes with the first versions synced after it (``after``
        0). Object stores are durable on PUT: a no-op.

        Returns:
            The number of files and folders synced.

        Raises:
            StorageError: if a file cannot be synced (the commit is then not
                reported).
        """
        return self._sync({spec.name: (after, upto)})

    def make_pins_durable(self, previous: LakeVersion, versions: Mapping[str, int]) -> int:
        """:meth:`make_durable` every versioned table from ``previous``'s pin to its pin in ``versions``.

        Call before the ledger commit that pins ``versions``: a commit file
        that outlives a power cut must not pin table versions that did not.
        The tables' files are synced in one batch, each folder once (the
        region root and the folders the tables share are not synced once
        per table).
        """
        return self._sync(
            {
                spec.name: (previous.table_versions.get(spec.name, -1), versions[spec.name])
                for spec in versioned_tables()
                if spec.name in versions
            }
        )

    def _sync(self, ranges: Mapping[str, tuple[int, int]]) -> int:
        """fsync what versions ``after+1 .. upto`` of each table (name -> range) added (see make_durable)."""
        ranges = {name: r for name, r in ranges.items() if r[1] > r[0]}
        if not self.root.is_local or not ranges:
            return 0
        base = self.root.local_path()
        files: list[str] = []
        try:
            for name, (after, upto) in ranges.items():
                files.extend(_added_files(Path(self.root.path(name)), after, upto))
            with self._lock:
                presynced = self._synced_files.intersection(files)
            files = [f for f in files if f not in presynced]
            folders, entered = self._new_entries(base, files)
            fsync_paths([*files, *folders])
        except (OSError, ValueError, KeyError) as exc:
            what = ", ".join(f"{name} versions {a + 1}..{u}" for name, (a, u) in ranges.items())
            raise storage_error(self.root, f"sync {what} to disk", exc) from exc
        with self._lock:
            self._synced_dirs.update(entered)
            self._synced_files.difference_update(presynced)
        return len(files) + len(folders)

    def presync(self, files: Iterable[tuple[str, str]]) -> None:
        """Make staged data files durable ahead of the commit that will add them (local roots; best effort).

        An ingest calls it, from a thread of its own, as each input's files
        arrive, so that their fsyncs overlap the reading instead of
        lengthening the commit: :meth:`make_pins_durable` then skips the
        files synced here (a staged file is never written again) and syncs
        only what is left. A file that fails here is simply synced by the
        commit.

        Args:
            files: ``(table name, path relative to the table)`` of each file.
        """
        if not self.root.is_local:
            return
        paths = [str(Path(self.root.path(table)) / path) for table, path in files]
        if not paths:
            return
        try:
            folders, entered = self._new_entries(self.root.local_path(), paths)
            fsync_paths([*paths, *folders])
        except (OSError, ValueError, StorageError):
            return
        with self._lock:
            self._synced_dirs.update(entered)
            self._synced_files.update(paths)

    def forget_presynced(self) -> None:
        """Drop the record of files synced ahead (an ingest ends; its rejected inputs' files are gone).

        Only costs a later commit a second fsync of a file still to be committed.
        """
        with self._lock:
            self._synced_files.clear()

    def _new_entries(self, base: Path, files: Sequence[str]) -> tuple[list[str], dict[str, int]]:
        """The folders to fsync after ``files`` so that every one of them is reachable after a power cut.

        Each file's folder (its new entry); then, up to the region root, the
        folder above each folder whose own entry is not known to be durable.
        A folder is known durable once its parent was synced while it (the
        same inode) was there: a folder the lake uses is never renamed, so an
        unchanged inode is the same entry.

        Returns:
            The folders, deepest first, and the folders (-> inode) whose
            entries syncing them makes durable.
        """
        root = str(base)
        out: dict[str, None] = {}
        pending: dict[str, int] = {}
        for f in files:
            folder = os.path.dirname(f)
            out[folder] = None
            while folder.startswith(root) and folder != root:
                ino = os.stat(folder).st_ino
                with self._lock:
                    known = self._synced_dirs.get(folder) == ino
                if known or folder in pending:
                    break
                pending[folder] = ino
                folder = os.path.dirname(folder)
                out[folder] = None
        return sorted(out, key=len, reverse=True), pending

    # ------------------------------------------------------------------ small files

    def write_file(self, path: str, data: bytes, *, durable: bool = False) -> None:
        """Write a small file; ``durable``: fsync it and its folder before returning (local roots)."""
        with self.fs.open_output_stream(path) as fh:
            fh.write(data)
        if durable and self.root.is_local:
            fsync_paths([path, os.path.dirname(path)])

    def log_holes(self, spec: TableSpec) -> list[int]:
        """Versions missing between the first and last commit file of the table's Delta log.

        Log clean-up removes only a prefix (after a checkpoint); a hole is a
        commit file someone deleted. A checkpoint can hide it from readers
        (they start there), not from this listing.
        """
        names = [posixpath.basename(p) for p in self.list_files(self.root.path(spec.name, "_delta_log"))]
        versions = sorted(int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit())
        return sorted(set(range(versions[0], versions[-1] + 1)) - set(versions)) if versions else []

    def list_files(self, folder: str) -> list[str]:
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        except OSError as exc:
            raise storage_error(self.root, f"list {folder}", exc) from exc
        return sorted(i.path for i in infos if i.type == pafs.FileType.File)

    def delete_file(self, path: str) -> None:
        self.root.delete_file(path)


def _added_files(table: Path, after: int, upto: int) -> list[str]:
    """The files versions ``after+1 .. upto`` of the local table at ``table`` wrote (see ``make_durable``).

    Their commit files, the data files their ``add`` actions name (less those
    a later one of them removes), their checkpoints and ``_last_checkpoint``;
    from ``after`` 0, version 0's commit file too.
    """
    log = table / "_delta_log"
    files: list[str] = []
    added: dict[str, None] = {}  # data files live at ``upto``, in commit order
    for version in range(0 if after <= 0 else after + 1, upto + 1):
        entry = log / f"{version:020d}.json"
        files.append(str(entry))
        for line in entry.read_text(encoding="utf-8").splitlines():
            action = json.loads(line) if line.strip() else {}
            if action.get("add"):
                added[unquote(action["add"]["path"])] = None
            elif action.get("remove"):  # e.g. a crashed batch's rows, deleted by recovery (files gone)
                added.pop(unquote(action["remove"]["path"]), None)
        files.extend(str(p) for p in log.glob(f"{version:020d}.checkpoint*.parquet"))
    files.extend(str(table / path) for path in added)
    if (log / "_last_checkpoint").is_file():
        files.append(str(log / "_last_checkpoint"))
    return files


def fsync_paths(paths: Iterable[str]) -> None:
    """fsync each local file or folder in ``paths`` (a folder: its entries), in order.

    Raises:
        OSError: if one cannot be opened or synced.
    """
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def publish_commit(
    log: str, version: int, info: Mapping[str, Any], actions: list[dict[str, Any]], *, durable: bool = True
) -> None:
    """Write Delta commit ``version`` (``commitInfo`` ``info``, then ``actions``) into a local ``_delta_log``.

    The file is written under a temporary name and published with
    ``link(2)``, which refuses an existing name: of two writers of one
    version exactly one wins (``FileExistsError`` for the other), as with
    delta-rs's own local commit. ``durable``: the file's bytes and then its
    name are synced before returning.

    Raises:
        FileExistsError: if the version exists.
        OSError: if it cannot be written.
    """
    lines = [json.dumps({"commitInfo": dict(info)}, separators=(",", ":"))]
    lines += [json.dumps(action, separators=(",", ":")) for action in actions]
    tmp = os.path.join(log, f"_commit_{uuid.uuid4()}.json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, ("\n".join(lines) + "\n").encode("utf-8"))
        if durable:
            os.fdatasync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, os.path.join(log, f"{version:020d}.json"))  # FileExistsError if the version is taken
    finally:
        os.unlink(tmp)
    if durable:
        fsync_paths([log])


_PROTOCOL_1_2_KEYS = {
    SCHEMA_VERSION_KEY,
    "delta.dataSkippingStatsColumns",
    "delta.checkpointInterval",
    "delta.enableExpiredLogCleanup",
}


def _create_actions(spec: TableSpec, config: Mapping[str, str]) -> list[dict[str, Any]] | None:
    """The ``protocol`` and ``metaData`` actions of ``spec``'s empty table; ``None``: leave it to delta-rs.

    Protocol (reader 1, writer 2) is what delta-rs gives a table with these
    properties and no type that needs a table feature (``timestamp_ntz``,
    ``variant``): any other table is created by delta-rs itself.
    """
    from deltalake import Schema

    schema = Schema.from_arrow(spec.schema).to_json()
    if '"timestamp_ntz"' in schema or '"variant"' in schema or set(config) - _PROTOCOL_1_2_KEYS:
        return None
    created_ms = int(time.time() * 1000)
    return [
        {"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}},
        {
            "metaData": {
                "id": str(uuid.uuid4()),
                "name": spec.name,
                "description": spec.description,
                "format": {"provider": "parquet", "options": {}},
                "schemaString": schema,
                "partitionColumns": list(spec.partition_by),
                "createdTime": created_ms,
                "configuration": dict(config),
            }
        },
    ]


def check_schema_version(dt: Any, spec: TableSpec, region: str) -> None:
    """Raise :class:`SchemaVersionError` if ``dt`` was written by a newer datadrive."""
    config = dt.metadata().configuration or {}
    raw = config.get(SCHEMA_VERSION_KEY)
    try:
        found = int(raw) if raw is not None else None
    except ValueError:
        found = None
    if found is None:
        raise SchemaVersionError(
            f"region {region}: table {spec.name} has no datadrive schema version; "
            "it was not written by datadrive"
        )
    if found > LAKE_SCHEMA_VERSION:
        from datadrive import __version__

        raise SchemaVersionError(
            f"region {region}: table {spec.name} has lake schema version {found}, but this datadrive "
            f"({__version__}) reads versions up to {LAKE_SCHEMA_VERSION}: upgrade datadrive to read it"
        )


def _check_record_version(record: Mapping[str, Any], region: str, version: int) -> None:
    found = int(record.get("schema_version", LAKE_SCHEMA_VERSION))
    if found > LAKE_SCHEMA_VERSION:
        from datadrive import __version__

        raise SchemaVersionError(
            f"region {region}: lake version {version} was written with lake schema version {found}, but "
            f"this datadrive ({__version__}) reads versions up to {LAKE_SCHEMA_VERSION}: "
            "upgrade datadrive to read it"
        )


def commit_record(op: str, versions: Mapping[str, int], *, now: datetime, **info: Any) -> dict[str, str]:
    """Commit metadata for a lake commit (one JSON string under :data:`COMMIT_KEY`)."""
    record = {
        "op": op,
        "versions": dict(versions),
        "schema_version": LAKE_SCHEMA_VERSION,
        "time": now.isoformat(),
        **info,
    }
    return {COMMIT_KEY: json.dumps(record, sort_keys=True)}


def parse_record(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """The datadrive commit record of a Delta history entry, or ``None``."""
    raw = entry.get(COMMIT_KEY)
    if raw is None:
        return None
    try:
        record = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (TypeError, ValueError):
        return None
    if not isinstance(record, dict) or "versions" not in record:
        return None
    return record


def _commit_time(entry: Mapping[str, Any]) -> datetime:
    from datetime import UTC

    return datetime.fromtimestamp(int(entry.get("timestamp", 0)) / 1000.0, tz=UTC)


def empty_dataset(spec: TableSpec) -> ds.Dataset:
    """An empty in-memory dataset with ``spec``'s schema."""
    return ds.dataset(pa.Table.from_batches([], schema=spec.schema))


def delta_log_problem(exc: BaseException) -> str:
    """What a ``deltalake`` failure to open a table means, in one sentence (not its Rust error chain)."""
    text = str(exc)
    if "ParsedLogPath" in text or "missing version" in text.lower() or "log segment" in text.lower():
        return (
            "its Delta log is missing a commit file (a file under _delta_log was deleted or is unreadable); "
            "restore _delta_log from a backup"
        )
    if "no such file" in text.lower() or "not found" in text.lower():
        return "a file of its Delta log is missing (restore _delta_log from a backup)"
    return one_line(text, limit=300)
