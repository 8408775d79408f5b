"""The service's door to the lake: one :class:`~datadrive.lake.Lake` per caller, snapshots reused.

Every call goes through the library as the caller's principal, so residency,
tenant visibility and the audit log are the library's. What the gateway adds
is speed for a long-lived process: a snapshot (the pinned, tenant-filtered
table versions of one region) is kept per principal and region for
``ttl_s`` seconds before the latest lake version is looked up again. Reads
through a kept snapshot are still audited, one row each, by the library.
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

    def shared_lake(self, principal: Principal, owner: str, region: str) -> Lake:
        """The lake as ``principal`` sees it with ``owner``'s data in ``region`` granted to it.

        Used only to read one object an owner shared through the service: the
        library then judges the read (residency, the region's policy, audit)
        exactly as it judges a configured ``[[grants]]`` entry.
        """
        grant = Grant(owner=owner, grantee=principal.tenant, regions=frozenset({region}))
        return Lake(replace(self.config, grants=(*self.config.grants, grant)), principal)

    def snapshot(self, principal: Principal, region: str, version: int | None = None) -> Snapshot:
        """A snapshot of ``region`` (at ``version``, or the latest within ``ttl_s``) for ``principal``."""
        key = (principal, self.region(region), version)
        now = time.monotonic()
        with self._lock:
            hit = self._snapshots.get(key)
            if hit is not None and (version is not None or now - hit[0] < self.ttl_s):
                self._snapshots.move_to_end(key)
                return hit[1]
        snap = self.lake(principal).snapshot(region, version)
        with self._lock:
            self._snapshots[key] = (now, snap)
            self._snapshots.move_to_end(key)
            while len(self._snapshots) > self.max_snapshots:
                self._snapshots.popitem(last=False)
        return snap

    def forget(self, region: str | None = None) -> None:
        """Drop kept snapshots (of ``region``, or all): after a write the next read sees it."""
        with self._lock:
            for key in [k for k in self._snapshots if region is None or k[1] == region]:
                del self._snapshots[key]
