"""The service's door to the lake: one :class:`~datadrive.lake.Lake` per caller, snapshots reused.

Every call goes through the library as the caller's principal, so residency,
tenant visibility and the audit log are the library's. What the gateway adds
is speed for a long-lived process: a snapshot (the pinned, tenant-filtered
table versions of one region) is kept per principal and region, and
renewed in the background once it is ``ttl_s`` seconds old. Reads through a
kept snapshot are still audited, one row each, by the library.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import replace

from datadrive.errors import NotFoundError
from datadrive.lake import Grant, Lake, LakeConfig, Principal, Snapshot

__all__ = ["LakeGateway"]


class LakeGateway:
    """Lakes and snapshots for principals.

    Args:
        config: The lake's configuration.
        ttl_s: How long a snapshot is reused before the latest version is looked up again.
        max_snapshots: Snapshots kept at most (least recently used dropped first).
    """

    def __init__(self, config: LakeConfig, ttl_s: float = 2.0, max_snapshots: int = 256) -> None:
        self.config = config
        self.ttl_s = ttl_s
        self.max_snapshots = max_snapshots
        self._snapshots: OrderedDict[tuple[Principal, str, int | None], tuple[float, Snapshot]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()
        self._refreshing: set[tuple[Principal, str, int | None]] = set()
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
        """A snapshot of ``region`` (at ``version``, or the latest within ``ttl_s``) for ``principal``.

        A kept latest snapshot older than ``ttl_s`` is still answered with
        while a newer one is taken in the background (one at a time per key):
        taking a snapshot opens every table's files, which at 100k scenarios
        takes long enough to show in every reader's latency if readers waited
        for it. Reads through any snapshot are pinned to its version, so a
        reader never sees a mix; after a write, :meth:`forget` makes the next
        read wait for a fresh one.
        """
        key = (principal, self.region(region), version)
        now = time.monotonic()
        with self._lock:
            hit = self._snapshots.get(key)
            if hit is not None:
                self._snapshots.move_to_end(key)
                if version is None and now - hit[0] >= self.ttl_s and key not in self._refreshing:
                    self._refreshing.add(key)
                    threading.Thread(target=self._refresh, args=(key,), daemon=True).start()
                return hit[1]
        snap = self._snapshot_lake(principal).snapshot(region, version)
        self._keep(key, snap, now)
        return snap

    def _refresh(self, key: tuple[Principal, str, int | None]) -> None:
        try:
            snap = self._snapshot_lake(key[0]).snapshot(key[1], key[2])
        except Exception:  # the next request that finds no snapshot raises it itself
            with self._lock:
                self._snapshots.pop(key, None)
        else:
            with self._lock:
                kept = self._snapshots.get(key)
            if kept is not None and kept[1].version == snap.version:
                # the lake has not moved: keep the snapshot readers already use (and what it has
                # cached, e.g. its SQL session's in-memory scenario columns), only its age is renewed
                snap = kept[1]
            self._keep(key, snap, time.monotonic())
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def _keep(self, key: tuple[Principal, str, int | None], snap: Snapshot, at: float) -> None:
        with self._lock:
            self._snapshots[key] = (at, snap)
            self._snapshots.move_to_end(key)
            while len(self._snapshots) > self.max_snapshots:
                self._snapshots.popitem(last=False)

    def forget(self, region: str | None = None) -> None:
        """Drop kept snapshots (of ``region``, or all): after a write the next read sees it."""
        with self._lock:
            for key in [k for k in self._snapshots if region is None or k[1] == region]:
                del self._snapshots[key]
