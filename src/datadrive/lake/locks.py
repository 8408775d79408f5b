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
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator

from datadrive.errors import StorageError
from datadrive.lake.storage import StorageRoot, storage_error

__all__ = ["LockTimeoutError", "region_lock"]


class LockTimeoutError(StorageError):
    """Another process held the region lock for longer than the timeout."""


@contextlib.contextmanager
def region_lock(root: StorageRoot, name: str = "commit", timeout_s: float = 60.0) -> Iterator[None]:
    """Hold the region-wide lock ``name`` for the duration of the ``with`` block.

    Args:
        root: The region's storage root.
        name: Which lock: ``"commit"`` for table commits, ``"audit"`` for the
            audit chain.
        timeout_s: How long to wait for another holder before giving up.

    Raises:
        LockTimeoutError: if the lock stays taken for ``timeout_s``.
        StorageError: if the lock file cannot be created (permissions, disk).
        NotImplementedError: for remote roots (the object-store backend
            provides its own lock).
    """
    if not root.is_local:
        raise NotImplementedError(f"region locks for {root.scheme}:// roots are not implemented yet")
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
