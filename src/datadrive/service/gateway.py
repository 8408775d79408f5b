"""The service's door to the lake: one :class:`~datadrive.lake.Lake` per caller, snapshots reused.

Every call goes through the library as the caller's principal, so residency,
tenant visibility and the audit log are the library's. What the gateway adds
is speed for a long-lived process: a snapshot (the pinned, tenant-filtered
table versions of one region, with its SQL session's warm DuckDB cursors) is
kept per principal and region while no newer lake version has landed, and
replaced by the first read after one has. Reads through a kept snapshot are
still audited, one row each, by the library.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import replace

from datadrive.errors import NotFoundError
from datadrive.lake import Grant, Lake, LakeConfig, Principal, Snapshot
from datadrive.service.ops import stage

__all__ = ["LakeGateway"]


class LakeGateway:
    """Lakes and snapshots for principals.

    Args:
        config: The lake's configuration.
        ttl_s: How long a kept snapshot is answered with before the ledger is
            looked at again (0: before every read, so a commit is visible to
            the next one).
        max_snapshots: Snapshots kept at most (least recently used dropped first).
    """

    def __init__(self, config: LakeConfig, ttl_s: float = 0.0, max_snapshots: int = 256) -> None:
        self.config = config
        self.ttl_s = ttl_s
        self.max_snapshots = max_snapshots
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
            return snap

    def _keep(self, key: tuple[Principal, str, int | None], snap: Snapshot, at: float) -> None:
        with self._lock:
            self._snapshots[key] = (at, snap)
            self._snapshots.move_to_end(key)
            while len(self._snapshots) > self.max_snapshots:
                dropped, _ = self._snapshots.popitem(last=False)
                self._taking.pop(dropped, None)

    def forget(self, region: str | None = None) -> None:
        """Drop kept snapshots (of ``region``, or all): after a write the next read sees it."""
        with self._lock:
            for key in [k for k in self._snapshots if region is None or k[1] == region]:
                del self._snapshots[key]
