"""Per-region locks that serialise commits (and audit appends) across processes.

A Delta commit is atomic per table, but an ingest batch touches several
tables and must check the idempotency ledger before it writes; the check and
the writes happen under one region lock, so four concurrent ``datadrive
ingest`` processes cannot both insert the same file.

Local roots use ``flock(2)`` on ``<root>/_datadrive/locks/<name>.lock``. The
kernel drops the lock when its holder dies, ``kill -9`` included, so a crash
never leaves a stale lock behind. ``flock`` locks belong to an open file
description, so two threads (or two lake objects) in one process exclude each
other as two processes do. Not for NFS, where ``flock`` is unreliable.

Object-store roots (S3 and Azure Blob Storage alike) use a lease held in an
object, ``<root>/_datadrive/locks/<name>.lock`` (:class:`LeaseLock`): taken
with ``PUT If-None-Match: *``, renewed by a heartbeat with ``PUT If-Match:
<etag>``, released with ``DELETE If-Match``. A holder that dies stops
renewing; once the object is older than its lease (measured on the server's
clock) the next process takes it over with ``If-Match`` on the stale ETag, so
exactly one contender wins. The lock needs nothing but those conditional
writes (:class:`~datadrive.lake.conditional.ConditionalStore`), which both
stores offer; the safety argument and its limits are in
``docs/lake-storage.md``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from datadrive.errors import StorageError
from datadrive.lake.conditional import (
    ConditionalStore,
    ObjectInfo,
    PreconditionFailedError,
    check_conditional_writes,
    owner_label,
)
from datadrive.lake.storage import StorageRoot, storage_error

__all__ = ["DEFAULT_LEASE_S", "LeaseLock", "LockLostError", "LockTimeoutError", "region_lock"]

DEFAULT_LEASE_S = 30.0
"""How long an object-store lock outlives its holder's last heartbeat."""

STALE_SLACK_S = 2.0
"""Added to a lease before a lock counts as stale: ``Last-Modified`` and
``Date`` have whole-second resolution."""


class LockTimeoutError(StorageError):
    """Another process held the region lock for longer than the timeout."""


class LockLostError(StorageError):
    """An object-store lock was taken over while held (its heartbeats stopped for a whole lease)."""


@contextlib.contextmanager
def region_lock(
    root: StorageRoot, name: str = "commit", timeout_s: float = 60.0, *, lease_s: float | None = None
) -> Iterator[None]:
    """Hold the region-wide lock ``name`` for the duration of the ``with`` block.

    Args:
        root: The region's storage root.
        name: Which lock: ``"commit"`` for table commits, ``"audit"`` for the
            audit chain.
        timeout_s: How long to wait for another holder before giving up.
        lease_s: Object-store roots only: how long after its holder's last
            heartbeat a lock may be taken over (local locks die with their
            holder). Default: the root's ``datadrive_lock_lease_s`` storage
            option, else :data:`DEFAULT_LEASE_S`.

    Raises:
        LockTimeoutError: if the lock stays taken for ``timeout_s``.
        LockLostError: object-store roots: if the lock was taken over while
            held (the block ran, but not alone).
        StorageError: if the lock file cannot be created (permissions, disk);
            object stores: if the endpoint does not answer, refuses the
            credentials, has no such bucket or container, or does not enforce
            conditional writes (each checked before anything is written).
        NotImplementedError: for schemes other than local folders, S3 and Azure.
    """
    if not root.is_local:
        client = root.lock_client()
        root.check_access()
        check_conditional_writes(client, root.meta_key("locks"), root=root.uri)
        lease = lease_s if lease_s is not None else (root.lock_lease_s or DEFAULT_LEASE_S)
        lock = LeaseLock(client, root.meta_key("locks", f"{name}.lock"), lease_s=lease)
        with lock.hold(timeout_s):
            yield
        return
    folder = os.path.join(root.uri, "_datadrive", "locks")
    path = os.path.join(folder, f"{name}.lock")
    try:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    except PermissionError:
        # An existing lock file can still be opened read-only by a reader without write access.
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise storage_error(root, f"take the {name} lock", exc) from exc
    except OSError as exc:
        raise storage_error(root, f"take the {name} lock", exc) from exc
    try:
        deadline = time.monotonic() + timeout_s
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise storage_error(root, f"take the {name} lock", exc) from exc
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(
                        f"{root.uri}: the {name} lock was held by another process for {timeout_s:.0f} s"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


class LeaseLock:
    """A mutual-exclusion lease held in one object of an object store (S3, Azure Blob Storage).

    The object's body names its holder (a random token, ``host:pid``, the
    lease) and changes on every renewal, so every write has a fresh ETag.

    * acquire: ``PUT If-None-Match: *``. If the object exists, GET it; if it
      is older than its lease (server clock), replace it with ``PUT
      If-Match: <its etag>``: of several contenders exactly one succeeds.
    * hold: a daemon thread renews every ``lease_s / 3`` with ``PUT If-Match:
      <our etag>``; a refused renewal means the lock was taken over.
    * release: ``DELETE If-Match: <our etag>``.

    A PUT whose answer is lost (a dropped connection) is resolved by reading
    the object back: if it carries our token, we hold the lock.

    Args:
        client: Conditional-write client of the root's bucket or container.
        key: Object key of the lock.
        lease_s: Lease length; a holder silent for longer may be replaced.
    """

    def __init__(self, client: ConditionalStore, key: str, *, lease_s: float = DEFAULT_LEASE_S) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        self.client = client
        self.key = key
        self.lease_s = float(lease_s)
        self.token = uuid.uuid4().hex
        self.took_over: dict[str, Any] | None = None
        self._seq = 0
        self._etag: str | None = None
        self._lost = False
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"LeaseLock({self.client!r}, {self.key!r})"

    def _body(self) -> bytes:
        self._seq += 1
        return json.dumps(
            {"owner": self.token, "holder": owner_label(), "lease_s": self.lease_s, "seq": self._seq},
            sort_keys=True,
        ).encode()

    def _parse(self, info: ObjectInfo) -> dict[str, Any]:
        try:
            doc = json.loads(info.body)
            return doc if isinstance(doc, dict) else {}
        except ValueError:
            return {}

    @property
    def lost(self) -> bool:
        """Whether a renewal was refused: someone else took the lock."""
        return self._lost

    # ------------------------------------------------------------------ acquire / release

    def acquire(self, timeout_s: float) -> None:
        """Take the lock, waiting up to ``timeout_s``.

        Raises:
            LockTimeoutError: naming the holder, if it stays taken.
            StorageError: if the store fails or ignores conditional writes.
        """
        prefix = self.key.rsplit("/", 1)[0] if "/" in self.key else ""
        check_conditional_writes(self.client, prefix)
        deadline = time.monotonic() + timeout_s
        delay = 0.02
        holder: dict[str, Any] = {}
        for _ in range(int(timeout_s / 0.01) + 10):  # the deadline ends it; the count bounds it regardless
            try:
                self._etag = self.client.put(self.key, self._body(), if_none_match=True)
                break
            except PreconditionFailedError:
                pass
            except StorageError:
                if time.monotonic() >= deadline:
                    raise
            info = self.client.get(self.key)
            if info is not None:
                holder = self._parse(info)
                if holder.get("owner") == self.token:  # our PUT landed but its answer was lost
                    self._etag = info.etag
                    break
                lease = _as_float(holder.get("lease_s"), DEFAULT_LEASE_S)
                if info.age_s > lease + STALE_SLACK_S:
                    try:
                        self._etag = self.client.put(self.key, self._body(), if_match=info.etag)
                        self.took_over = holder
                        break
                    except PreconditionFailedError:
                        pass  # renewed by its holder, or another contender won
            if time.monotonic() >= deadline:
                who = holder.get("holder", "another process")
                raise LockTimeoutError(
                    f"{self.client.location(self.key)}: held by {who} for longer than {timeout_s:.0f} s"
                )
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)
        else:  # pragma: no cover - the deadline ends the loop first
            raise LockTimeoutError(f"{self.client.location(self.key)}: gave up")
        self._lost = False
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, name=f"lease:{self.key}", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        interval = self.lease_s / 3
        while not self._stop.wait(interval):
            with self._mutex:
                if self._etag is None:
                    return
                try:
                    self._etag = self.client.put(self.key, self._body(), if_match=self._etag)
                except PreconditionFailedError:
                    self._lost = True
                    return
                except StorageError:
                    continue  # a transient failure: the next beat retries, well within the lease

    def release(self) -> None:
        """Stop renewing and delete the lock object if it is still ours.

        Raises:
            LockLostError: if the lock had been taken over.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.client.timeout_s + 5)
            self._thread = None
        with self._mutex:
            etag, self._etag = self._etag, None
        if etag is None:
            return
        still_ours = not self._lost and self.client.delete(self.key, if_match=etag)
        if not still_ours:
            self._lost = True
            raise LockLostError(
                f"{self.client.location(self.key)}: the lock was taken over while held (no heartbeat for "
                f"{self.lease_s:.0f} s); another writer may have run at the same time"
            )

    @contextlib.contextmanager
    def hold(self, timeout_s: float) -> Iterator[None]:
        """``acquire`` ... ``release`` around a ``with`` block.

        A lost lock raises :class:`LockLostError` at release, unless the
        block itself raised (that error is the one the caller sees).
        """
        self.acquire(timeout_s)
        try:
            yield
        except BaseException:
            with contextlib.suppress(StorageError):
                self.release()
            raise
        self.release()


def _as_float(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default
