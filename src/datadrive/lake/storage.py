"""Where a region's bytes live: a storage root (a local folder, an ``s3://`` or an ``az://`` prefix).

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

import contextlib
import errno
import os
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from datadrive.errors import ConfigError, StorageError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

    from datadrive.lake.azure import AzureLocation, AzureSettings
    from datadrive.lake.conditional import ConditionalStore
    from datadrive.lake.s3 import S3Client, S3Settings

__all__ = ["LOCK_LEASE_OPTION", "META_DIR", "StorageRoot", "storage_error"]

META_DIR = "_datadrive"
"""Folder under a root for the lake's own (non-Delta) files."""

LOCK_LEASE_OPTION = "datadrive_lock_lease_s"
"""Storage option: the region lock's lease on an object store, in seconds (see ``locks.region_lock``).

Options that start with ``datadrive_`` are datadrive's own and are not passed to ``deltalake``.
"""

_OWN_OPTION_PREFIX = "datadrive_"
_AZURE_SCHEMES = ("az", "azure", "abfs", "abfss")


@dataclass(frozen=True)
class StorageRoot:
    """The root of one region's storage.

    Attributes:
        uri: A local folder (absolute after construction; ``file://`` is
            accepted), an ``s3://bucket/prefix`` URI, or an Azure one
            (``az://container/prefix``,
            ``abfss://container@account.dfs.core.windows.net/prefix``).
        options: Backend settings passed to ``deltalake`` as
            ``storage_options`` (for S3: endpoint, region, credentials; for
            Azure: account, key or SAS token, endpoint), plus datadrive's own
            ``datadrive_*`` options (:data:`LOCK_LEASE_OPTION`). Empty for
            local folders.

    Raises:
        ConfigError: for an Azure URI that names no valid container.
    """

    uri: str
    options: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        uri = self.uri
        if uri.startswith("file://"):
            uri = uri[len("file://") :]
        uri = os.path.abspath(os.path.expanduser(uri)) if "://" not in uri else uri.rstrip("/")
        if "://" not in uri and _URL_HOSTILE.search(uri):
            # deltalake (delta-rs 1.x) reads a local path as a URL: it panics on brackets (encoded or
            # not), loses the commit history under a '#' (a URL fragment), and decodes "%20" into a
            # space even from a file:// URL that encodes it as "%2520". Spaces, a lone '%' and
            # non-ASCII letters work (tests/lake/test_hardening.py).
            raise ConfigError(
                f"region root {uri!r}: deltalake cannot open a folder whose path holds '[', ']', '#' or "
                "a percent-escape such as '%20'; choose another path"
            )
        object.__setattr__(self, "uri", uri)
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        if self.is_azure:
            from datadrive.lake.azure import split_azure_uri

            split_azure_uri(uri)  # a bad container name is a config error now, not a storage error later

    def __repr__(self) -> str:  # options may hold credentials: never print them
        return f"StorageRoot({self.uri!r})"

    def __reduce__(self) -> tuple[type[StorageRoot], tuple[str, dict[str, str]]]:
        # the read-only options mapping does not pickle; workers (ingest, a feature-cache build) get a copy
        return (StorageRoot, (self.uri, dict(self.options)))

    @property
    def is_local(self) -> bool:
        """Whether the root is a folder on this machine."""
        return "://" not in self.uri

    @property
    def scheme(self) -> str:
        """``"file"`` for local roots, else the URI scheme (``"s3"``)."""
        return "file" if self.is_local else self.uri.split("://", 1)[0]

    @property
    def is_s3(self) -> bool:
        """Whether the root is on an S3-compatible object store (``s3://``, ``s3a://``)."""
        return self.scheme in ("s3", "s3a")

    @property
    def is_azure(self) -> bool:
        """Whether the root is on Azure Blob Storage / ADLS Gen2 (``az``, ``azure``, ``abfs``, ``abfss``)."""
        return self.scheme in _AZURE_SCHEMES

    def table_uri(self, name: str) -> str:
        """URI of the Delta table ``name`` under this root, for ``deltalake``."""
        _check_name(name)
        return posixpath.join(self.uri, name)

    def storage_options(self) -> dict[str, str] | None:
        """``storage_options`` for ``deltalake`` (``None`` when there are none).

        For S3 roots these are the configured options plus ``conditional_put
        = etag`` (see :func:`datadrive.lake.s3.delta_storage_options`); for
        Azure roots, the options in one canonical form
        (:func:`datadrive.lake.azure.delta_storage_options`). datadrive's own
        ``datadrive_*`` options are left out.

        Raises:
            ConfigError: if an object store's options are wrong.
        """
        options = {k: v for k, v in self.options.items() if not k.lower().startswith(_OWN_OPTION_PREFIX)}
        if self.is_s3:
            from datadrive.lake.s3 import delta_storage_options

            return delta_storage_options(options)
        if self.is_azure:
            from datadrive.lake.azure import delta_storage_options as azure_options

            return azure_options(self.uri, options)
        return options or None

    @property
    def location(self) -> str:
        """Where the root is, for telling roots apart: :attr:`uri`, except on Azure.

        An Azure root's location names the account too
        (``azure://<account>/<container>/<prefix>``), so ``az://lake/eu`` in
        two accounts are two places, and ``az://c/p`` and
        ``abfss://c@acct.dfs.core.windows.net/p`` in one account are one.

        Raises:
            ConfigError: for an Azure root whose options name no account.
        """
        if not self.is_azure:
            return self.uri
        loc = self._azure_location()
        return f"azure://{self.azure_settings().account}/{posixpath.join(loc.container, loc.prefix)}".rstrip(
            "/"
        )

    @property
    def base_path(self) -> str:
        """The root as a path inside :meth:`filesystem` (no scheme; ``container/prefix`` on Azure)."""
        if self.is_local:
            return self.uri
        if self.is_azure:
            loc = self._azure_location()
            return posixpath.join(loc.container, loc.prefix) if loc.prefix else loc.container
        return self.uri.split("://", 1)[1]

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

        Paths inside it are :attr:`base_path`-based (``bucket/prefix/...``
        for S3).

        Raises:
            ConfigError: if an object store's options are wrong.
            NotImplementedError: for schemes other than local folders, S3 and Azure.
        """
        import pyarrow.fs as pafs

        if self.is_local:
            return pafs.LocalFileSystem()
        if self.is_s3:
            return self.s3_settings().filesystem()
        if self.is_azure:
            return self.azure_settings().filesystem()
        raise NotImplementedError(f"storage scheme {self.scheme!r} is not supported yet ({self.uri})")

    def table_filesystem(self, name: str) -> pafs.FileSystem:
        """A pyarrow filesystem rooted at the Delta table ``name``.

        Pass it to ``DeltaTable.to_pyarrow_dataset(filesystem=...)`` /
        ``to_pyarrow_table``: without it deltalake reads through its own
        Python filesystem handler, and a process that did so aborts at exit
        now and then ("terminate called without an active exception", exit
        status 134; measured in ``docs/lake-storage.md``).
        """
        import pyarrow.fs as pafs

        _check_name(name)
        return pafs.SubTreeFileSystem(posixpath.join(self.base_path, name), self.filesystem())

    # ------------------------------------------------------------------ S3 roots

    def s3_settings(self) -> S3Settings:
        """Connection settings of an S3 root, from :attr:`options`.

        Raises:
            ConfigError: if the options are wrong.
            NotImplementedError: for roots that are not on S3.
        """
        from datadrive.lake.s3 import S3Settings

        if not self.is_s3:
            raise NotImplementedError(f"{self.uri} is not an s3:// root")
        return S3Settings.from_options(self.options)

    @property
    def bucket(self) -> str:
        """The bucket of an S3 root."""
        from datadrive.lake.s3 import split_s3_uri

        return split_s3_uri(self.uri)[0]

    def meta_key(self, *parts: str) -> str:
        """Object key (inside the bucket or container) of ``<root>/_datadrive/<parts>`` on an object store.

        Raises:
            NotImplementedError: for a local root.
        """
        from datadrive.lake.s3 import split_s3_uri

        for p in parts:
            _check_name(p)
        if self.is_azure:
            prefix = self._azure_location().prefix
        elif self.is_s3:
            prefix = split_s3_uri(self.uri)[1]
        else:
            raise NotImplementedError(f"{self.uri} is not on an object store")
        return posixpath.join(*([prefix] if prefix else []), META_DIR, *parts)

    def s3_client(self) -> S3Client:
        """A conditional-write client for the root's bucket (used by the region lock)."""
        from datadrive.lake.s3 import S3Client

        return S3Client(self.s3_settings(), self.bucket)

    # ------------------------------------------------------------------ Azure roots

    def _azure_location(self) -> AzureLocation:
        from datadrive.lake.azure import split_azure_uri

        return split_azure_uri(self.uri)

    def azure_settings(self) -> AzureSettings:
        """Connection settings of an Azure root, from :attr:`options` and the URI.

        Raises:
            ConfigError: naming the root, if the options are wrong.
            NotImplementedError: for roots that are not on Azure.
        """
        from datadrive.lake.azure import settings_for

        if not self.is_azure:
            raise NotImplementedError(f"{self.uri} is not an Azure root")
        return settings_for(self.uri, self.options)

    @property
    def container(self) -> str:
        """The container of an Azure root."""
        return self._azure_location().container

    # ------------------------------------------------------------------ object stores

    def lock_client(self) -> ConditionalStore:
        """The conditional-write client of an object-store root (the region lock's).

        Raises:
            ConfigError: if the options are wrong.
            NotImplementedError: for a local root.
        """
        if self.is_s3:
            return self.s3_client()
        if self.is_azure:
            from datadrive.lake.azure import AzureBlobClient

            return AzureBlobClient(self.azure_settings(), self.container)
        raise NotImplementedError(f"{self.uri} is not on an object store")

    @property
    def lock_lease_s(self) -> float | None:
        """The region lock's lease from :data:`LOCK_LEASE_OPTION` (``None``: the default).

        Raises:
            ConfigError: if the option is not a positive number of seconds.
        """
        value = {k.lower(): v for k, v in self.options.items()}.get(LOCK_LEASE_OPTION)
        if value is None:
            return None
        try:
            lease = float(value)
        except ValueError:
            lease = -1.0
        if not lease > 0:
            raise ConfigError(
                f"{self.uri}: {LOCK_LEASE_OPTION} must be a positive number of seconds, not {value!r}"
            )
        return lease

    def delete_file(self, path: str) -> None:
        """Delete one of the lake's own files (a path inside :meth:`filesystem`); nothing if it is absent.

        On object stores this is one DELETE through :meth:`lock_client`:
        pyarrow's ``AzureFileSystem.delete_file`` leases the blob, writes a
        directory-marker blob and, against Azurite, now and then stalls 7 or
        14 s retrying the lease release (``docs/lake-storage.md``).

        Raises:
            StorageError: if the store refuses.
        """
        if self.is_local:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            return
        bucket, _, key = path.partition("/")
        if bucket != self.base_path.split("/", 1)[0] or not key:
            raise ValueError(f"{path!r} is not a file under {self.uri}")
        self.lock_client().delete(key)

    def check_access(self) -> None:
        """Check, once per process, that an object-store root answers and takes the credentials.

        One GET of the region marker (which need not exist). Does nothing for
        local roots.

        Raises:
            StorageError: one line naming the root and the reason: the
                endpoint does not answer, the credentials are refused, the
                bucket or container does not exist.
        """
        if self.is_local:
            return
        from datadrive.lake.conditional import check_access

        check_access(self.lock_client(), self.meta_key("region.json"), self.uri)

    def local_path(self) -> Path:
        """The root as a local :class:`Path`.

        Raises:
            NotImplementedError: for a remote root.
        """
        if not self.is_local:
            raise NotImplementedError(f"{self.uri} is not a local folder")
        return Path(self.uri)


_URL_HOSTILE = re.compile(r"[\[\]#]|%[0-9A-Fa-f]{2}")
"""What deltalake cannot take in a local root's path (see :class:`StorageRoot`)."""

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
_OS_ERROR = re.compile(r"(?:os error|errno) (\d+)", re.IGNORECASE)


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
