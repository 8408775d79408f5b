"""The service's door to the lake: one :class:`~datadrive.lake.Lake` per caller, snapshots reused.

Every call goes through the library as the caller's principal, so residency,
tenant visibility and the audit log are the library's. What the gateway adds
is speed for a long-lived process: a snapshot (the pinned, tenant-filtered
table versions of one region, with its SQL session's warm DuckDB cursors) is
kept per principal and region while no newer lake version has landed, and
replaced by the first read after one has. Reads through a kept snapshot are
still audited, one row each, by the library.

It also keeps **whole answers** (:class:`KeptAnswers`): the rows of a
read-only query at one lake version, as the tenants that read them may see
them, so that paging through them is a slice of memory rather than a sort of
every matching row per request. A lake version is immutable, so its answers
are too; a page is answered from them only while that version is the
region's latest (no erasure or vacuum since), and every page is still one
audit row of the library's, appended through the caller's own lake.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from datadrive.errors import NotFoundError
from datadrive.lake import Grant, Lake, LakeConfig, Principal, Snapshot
from datadrive.service.ops import stage

__all__ = ["KeptAnswers", "KeptPages", "LakeGateway"]


class LakeGateway:
    """Lakes and snapshots for principals.

    Args:
        config: The lake's configuration.
        ttl_s: How long a kept snapshot is answered with before the ledger is
            looked at again (0: before every read, so a commit is visible to
            the next one).
        max_snapshots: Snapshots kept at most (least recently used dropped first).
        answers_bytes: Memory for kept whole answers (:meth:`page`), least
            recently used dropped first; 0 keeps none (every page is its own query).
    """

    def __init__(
        self,
        config: LakeConfig,
        ttl_s: float = 0.0,
        max_snapshots: int = 256,
        answers_bytes: int = 512 << 20,
    ) -> None:
        self.config = config
        self.ttl_s = ttl_s
        self.max_snapshots = max_snapshots
        self.answers = KeptAnswers(answers_bytes)
        self._snapshots: OrderedDict[tuple[Principal, str, int | None], tuple[float, Snapshot]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()
        self._taking: dict[tuple[Principal, str, int | None], threading.Lock] = {}
        self._lakes: OrderedDict[Principal, Lake] = OrderedDict()

    def region(self, name: str) -> str:
        """``name`` if the lake has such a region.

        Raises:
            NotFoundError: otherwise.
        """
        if name not in self.config.regions:
            raise NotFoundError(f"no region {name!r}")
        return name

    def lake(self, principal: Principal) -> Lake:
        """The lake as ``principal`` sees it."""
        return Lake(self.config, principal)

    def _snapshot_lake(self, principal: Principal) -> Lake:
        """One kept :class:`Lake` per principal for taking snapshots (it may hand back its latest one)."""
        with self._lock:
            lake = self._lakes.get(principal)
            if lake is None:
                lake = self._lakes[principal] = Lake(self.config, principal)
            self._lakes.move_to_end(principal)
            while len(self._lakes) > self.max_snapshots:
                self._lakes.popitem(last=False)
            return lake

    def shared_lake(self, principal: Principal, owner: str, region: str) -> Lake:
        """The lake as ``principal`` sees it with ``owner``'s data in ``region`` granted to it.

        Used only to read one object an owner shared through the service: the
        library then judges the read (residency, the region's policy, audit)
        exactly as it judges a configured ``[[grants]]`` entry.
        """
        grant = Grant(owner=owner, grantee=principal.tenant, regions=frozenset({region}))
        return Lake(replace(self.config, grants=(*self.config.grants, grant)), principal)

    def snapshot(self, principal: Principal, region: str, version: int | None = None) -> Snapshot:
        """A snapshot of ``region`` (at ``version``, or the latest) for ``principal``.

        A kept latest snapshot is answered with while no newer lake version
        has landed (:meth:`~datadrive.lake.Snapshot.is_latest`, one file
        check, made when it is ``ttl_s`` old or older: before every read by
        default), so its warm SQL session and cursor pool serve request after
        request. Once the ledger has moved, the next read takes a new
        snapshot (one thread per key takes it; the others wait for it) and so
        sees the commit; the old one is dropped with its session.
        """
        with stage("snapshot"):
            return self._snapshot(principal, region, version)

    def _snapshot(self, principal: Principal, region: str, version: int | None) -> Snapshot:
        key = (principal, self.region(region), version)
        now = time.monotonic()
        with self._lock:
            hit = self._snapshots.get(key)
            if hit is not None:
                self._snapshots.move_to_end(key)
            taking = self._taking.setdefault(key, threading.Lock())
        if hit is not None and (version is not None or now - hit[0] < self.ttl_s or hit[1].is_latest()):
            return hit[1]
        with taking:  # one new snapshot per key at a time: the others wait for it and use it
            with self._lock:
                kept = self._snapshots.get(key)
            if kept is not None and kept is not hit and (version is not None or kept[1].is_latest()):
                return kept[1]
            snap = self._snapshot_lake(principal).snapshot(region, version)
            self._keep(key, snap, time.monotonic())
            if version is None:  # answers of older versions are never handed out again (erased rows)
                self.answers.drop_before(snap.region, snap.version)
            return snap

    def _keep(self, key: tuple[Principal, str, int | None], snap: Snapshot, at: float) -> None:
        with self._lock:
            self._snapshots[key] = (at, snap)
            self._snapshots.move_to_end(key)
            while len(self._snapshots) > self.max_snapshots:
                dropped, _ = self._snapshots.popitem(last=False)
                self._taking.pop(dropped, None)

    def pages(self, principal: Principal) -> KeptPages:
        """Pages of kept whole answers, read as ``principal`` (:class:`KeptPages`)."""
        return KeptPages(self, principal)

    def _kept(
        self, snap: Snapshot, query: str, timeout_s: float | None, group_by: str | None
    ) -> tuple[_Kept, bool] | None:
        """``query``'s kept answer on ``snap`` (built now if need be) and whether this call built it."""
        if not self.answers.max_bytes or not snap.is_latest():
            return None
        key = (snap.region, snap.version, tuple(sorted(snap.tenants)), query, group_by)

        def build() -> _Kept:
            return _Kept.of(snap.sql(query, timeout_s=timeout_s).table, group_by)

        return self.answers.get_or_build(key, build)

    def _audit_page(
        self, principal: Principal, snap: Snapshot, asked: str, rows: int, offset: int, total: int
    ) -> None:
        shown, digest = _audit_text(asked)
        self._snapshot_lake(principal).audit_event(
            snap.region,
            "read",
            f"page of {shown}",
            lake_version=snap.version,
            detail={
                "rows": rows,
                "offset": int(offset),
                "total": total,
                "sha256": digest,
                "answered_from": "the service's kept answer of this lake version",
            },
        )

    def forget(self, region: str | None = None) -> None:
        """Drop kept snapshots (of ``region``, or all): after a write the next read sees it."""
        with self._lock:
            for key in [k for k in self._snapshots if region is None or k[1] == region]:
                del self._snapshots[key]


@functools.lru_cache(maxsize=1024)
def _audit_text(query: str) -> tuple[str, str]:
    """A query as the audit log shows it (the library's masking: no literals) and its text's SHA-256."""
    from datadrive.lake.sql import masked

    shown = masked(query.strip())
    shown = shown if len(shown) <= 2000 else shown[:2000] + "..."
    return shown, hashlib.sha256(query.strip().encode()).hexdigest()


@dataclass(frozen=True)
class KeptPages:
    """Pages of whole answers the gateway keeps per lake version, read as one principal.

    The whole answer of a query is asked of the library once per lake
    version and visible tenants (:class:`KeptAnswers`: that request's audit
    row is its query's, ``rows`` the whole answer); each later page is a
    slice of it, audited by the library as a ``read`` of that page by the
    principal (one row per page: the query the caller asked, masked as the
    library masks it, the lake version, the rows handed out). A query must
    order its rows completely, so that a page does not depend on how ties
    fall. A page is answered from memory only while the snapshot is its
    region's latest version (an erasure since would be a later version);
    otherwise, and where an answer is too big to keep, the methods return
    None and the caller asks the library for the page itself.
    """

    gateway: LakeGateway
    principal: Principal

    def page(
        self, snap: Snapshot, query: str, *, limit: int, offset: int, timeout_s: float | None = None
    ) -> tuple[Any, int] | None:
        """Rows ``offset`` to ``offset + limit`` of ``query``'s answer on ``snap``, and how many it has.

        Raises:
            Whatever ``snap.sql`` raises for the query (it is the library's read).
        """
        kept = self.gateway._kept(snap, query, timeout_s, None)
        if kept is None:
            return None
        answer, built_now = kept
        total = answer.rows.num_rows
        page = answer.rows.slice(min(offset, total), limit)
        if not built_now:  # the request that built it was audited by its query
            self.gateway._audit_page(self.principal, snap, query, page.num_rows, offset, total)
        return page, total

    def group_page(
        self,
        snap: Snapshot,
        query: str,
        column: str,
        value: str,
        asked: str,
        *,
        limit: int,
        offset: int,
        timeout_s: float | None = None,
    ) -> tuple[Any, int] | None:
        """A page of the rows of ``query``'s answer whose ``column`` is ``value``, and how many there are.

        ``query`` orders its rows by ``column`` first, then as ``asked`` (the
        query of those rows alone, what the caller asked and the audit row
        names) orders them: one group's rows are then a run of the answer,
        found by a lookup (each group's run is indexed when the answer is
        built).

        Raises:
            Whatever ``snap.sql`` raises for the query (it is the library's read).
        """
        kept = self.gateway._kept(snap, query, timeout_s, column)
        if kept is None:
            return None
        answer, built_now = kept
        first, end = answer.groups.get(value, (0, 0)) if answer.groups is not None else (0, 0)
        total = end - first
        page = answer.rows.slice(first + min(offset, total), min(limit, max(0, total - offset)))
        if not built_now:
            self.gateway._audit_page(self.principal, snap, asked, page.num_rows, offset, total)
        return page, total


@dataclass(frozen=True)
class _Kept:
    rows: Any  # pa.Table
    groups: dict[str, tuple[int, int]] | None
    nbytes: int

    @staticmethod
    def of(rows: Any, group_by: str | None) -> _Kept:
        """An answer to keep: string columns dictionary-encoded where that is smaller (the same values
        come out), and with ``group_by``, each value's run of rows (the answer is ordered by it)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        groups = None
        if group_by is not None:  # before encoding: runs of plain strings, found vectorised
            keys = rows.column(group_by).combine_chunks()
            if len(keys):
                starts = np.concatenate(
                    [[0], pc.indices_nonzero(pc.not_equal(keys[1:], keys[:-1])).to_numpy() + 1]
                ).astype(np.int64)
                ends = np.append(starts[1:], len(keys))
                names = pc.take(keys, pa.array(starts)).to_pylist()
                groups = dict(zip(names, zip(starts.tolist(), ends.tolist(), strict=True), strict=True))
            else:
                groups = {}
        for i, field in enumerate(rows.schema):
            if pa.types.is_string(field.type) and rows.num_rows:
                encoded = pc.dictionary_encode(rows.column(i))
                if encoded.nbytes < rows.column(i).nbytes:
                    rows = rows.set_column(i, field.name, encoded)
        extra = 0 if groups is None else 100 * len(groups)  # the index: a string and two ints a group
        return _Kept(rows, groups, int(rows.nbytes) + extra)


class KeptAnswers:
    """Whole answers of read-only queries, by (region, lake version, visible tenants, query), in memory.

    An answer is built once (by whichever request first asks for it; the
    others asking at the same time wait for it) and kept while its memory
    fits ``max_bytes``, least recently used dropped first. An answer bigger
    than a quarter of ``max_bytes`` is not kept, and that key is remembered
    so later requests do not build it again (their pages are then asked of
    the library one by one). The key names everything an answer depends on:
    a lake version's rows never change, and a snapshot shows the rows of
    its visible tenants only. Keys begin with the region and the lake
    version (:meth:`drop_before` frees a region's older versions' answers).

    Args:
        max_bytes: Memory for the kept answers (Arrow buffers).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._kept: OrderedDict[tuple[Any, ...], _Kept] = OrderedDict()
        self._too_big: OrderedDict[tuple[Any, ...], None] = OrderedDict()
        self._building: dict[tuple[Any, ...], threading.Lock] = {}
        self._lock = threading.Lock()
        self.builds = 0
        """Answers built so far (a measurement for tests and benchmarks)."""

    @property
    def nbytes(self) -> int:
        """Memory the kept answers hold now."""
        with self._lock:
            return sum(k.nbytes for k in self._kept.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)

    def drop_before(self, region: str, version: int) -> None:
        """Free the answers of ``region``'s lake versions before ``version``."""
        with self._lock:
            for key in [k for k in self._kept if k[0] == region and k[1] < version]:
                del self._kept[key]

    def _get(self, key: tuple[Any, ...]) -> _Kept | None:
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                self._kept.move_to_end(key)
            return kept

    def get_or_build(self, key: tuple[Any, ...], build: Callable[[], _Kept]) -> tuple[_Kept, bool] | None:
        """The kept answer of ``key`` and whether this call built it (``build()``), or None if too big."""
        kept = self._get(key)
        if kept is not None:
            return kept, False
        with self._lock:
            if key in self._too_big:
                return None
            building = self._building.setdefault(key, threading.Lock())
        with building:
            kept = self._get(key)
            if kept is not None:
                return kept, False
            with self._lock:
                if key in self._too_big:  # built meanwhile by another request, and not kept
                    return None
            try:
                answer = build()
            except BaseException:
                with self._lock:
                    self._building.pop(key, None)
                raise
            with self._lock:  # kept (or marked too big) before its lock goes: no second build of it
                self.builds += 1
                self._building.pop(key, None)
                if answer.nbytes > self.max_bytes // 4:
                    self._too_big[key] = None
                    while len(self._too_big) > 1024:
                        self._too_big.popitem(last=False)
                    return answer, True
                self._kept[key] = answer
                held = sum(k.nbytes for k in self._kept.values())
                while held > self.max_bytes and len(self._kept) > 1:
                    _, dropped = self._kept.popitem(last=False)
                    held -= dropped.nbytes
            return answer, True
