"""Where a region's bytes live: a storage root (a local folder, or an ``s3://`` prefix).

A :class:`StorageRoot` names one region's root. The lake keeps each table as
a Delta table under ``<root>/<table>`` and its own small files (the region
marker, pending-batch markers, locks, derived artefacts) under
``<root>/_datadrive/``. Everything that touches storage goes through this
module, so a new backend changes one place.

>>> root = StorageRoot("/data/lake/cn-north")
>>> root.table_uri("scenarios")
'/data/lake/cn-north/scenarios'
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from datadrive.errors import StorageError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = ["META_DIR", "StorageRoot", "storage_error"]

META_DIR = "_datadrive"
"""Folder under a root for the lake's own (non-Delta) files."""


@dataclass(frozen=True)
class StorageRoot:
    """The root of one region's storage.

    Attributes:
        uri: A local folder (absolute after construction; ``file://`` is
            accepted) or an ``s3://bucket/prefix`` URI.
        options: Backend settings passed to ``deltalake`` as
            ``storage_options`` (for S3: endpoint, region, credentials).
            Empty for local folders.
    """

    uri: str
    options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        uri = self.uri
        if uri.startswith("file://"):
            uri = uri[len("file://") :]
        if "://" not in uri:
            uri = os.path.abspath(os.path.expanduser(uri))
        else:
            uri = uri.rstrip("/")
        object.__setattr__(self, "uri", uri)
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def __repr__(self) -> str:  # options may hold credentials: never print them
        return f"StorageRoot({self.uri!r})"

    @property
    def is_local(self) -> bool:
        """Whether the root is a folder on this machine."""
        return "://" not in self.uri

    @property
    def scheme(self) -> str:
        """``"file"`` for local roots, else the URI scheme (``"s3"``)."""
        return "file" if self.is_local else self.uri.split("://", 1)[0]

    def table_uri(self, name: str) -> str:
        """URI of the Delta table ``name`` under this root, for ``deltalake``."""
        _check_name(name)
        return posixpath.join(self.uri, name)

    def storage_options(self) -> dict[str, str] | None:
        """``storage_options`` for ``deltalake`` (``None`` when there are none)."""
        return dict(self.options) or None

    @property
    def base_path(self) -> str:
        """The root as a path inside :meth:`filesystem` (no scheme)."""
        return self.uri if self.is_local else self.uri.split("://", 1)[1]

    def path(self, *parts: str) -> str:
        """Path of a non-Delta file under the root, inside :meth:`filesystem`."""
        for p in parts:
            _check_name(p)
        return posixpath.join(self.base_path, *parts)

    def meta_path(self, *parts: str) -> str:
        """Path under ``<root>/_datadrive/`` inside :meth:`filesystem`."""
        return self.path(META_DIR, *parts)

    def filesystem(self) -> pafs.FileSystem:
        """A pyarrow filesystem for the lake's own files under this root.

        Raises:
            NotImplementedError: for schemes other than local folders (S3
                support lives with the object-store backend).
        """
        import pyarrow.fs as pafs

        if self.is_local:
            return pafs.LocalFileSystem()
        raise NotImplementedError(f"storage scheme {self.scheme!r} is not supported yet ({self.uri})")

    def local_path(self) -> Path:
        """The root as a local :class:`Path`.

        Raises:
            NotImplementedError: for a remote root.
        """
        if not self.is_local:
            raise NotImplementedError(f"{self.uri} is not a local folder")
        return Path(self.uri)


_NAME = re.compile(r"^[A-Za-z0-9_.=\-][A-Za-z0-9_.=\-/]*$")


def _check_name(name: str) -> None:
    if not _NAME.match(name) or ".." in name.split("/"):
        raise ValueError(f"not a safe storage name: {name!r}")


_ERRNO_TEXT = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "the file system is read-only",
    errno.EIO: "input/output error",
}
_OS_ERROR = re.compile(r"os error (\d+)")


def storage_error(root: StorageRoot, action: str, exc: BaseException) -> StorageError:
    """A clear :class:`StorageError` for a failed storage operation.

    ``deltalake`` reports OS failures inside its own messages (``... (os
    error 28)``); this recovers the errno so the user reads "no space left
    on the device" rather than a Rust backtrace.

    Args:
        root: The region root the operation touched.
        action: What was being done, e.g. ``"commit a batch to tracks"``.
        exc: The exception raised by the storage layer.
    """
    code: int | None = exc.errno if isinstance(exc, OSError) else None
    if code is None:
        m = _OS_ERROR.search(str(exc))
        code = int(m.group(1)) if m else None
    reason = _ERRNO_TEXT.get(code, "") if code is not None else ""
    if not reason:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = text[:300]
    return StorageError(f"{root.uri}: cannot {action}: {reason}")
