"""What the region lock needs from an object store, shared by S3 and Azure Blob Storage.

The lease lock (:class:`datadrive.lake.locks.LeaseLock`) and the startup
probe (:func:`check_conditional_writes`) use only three operations on single
small objects, each with an optional condition:

* ``put(key, body, if_none_match=True)``: create only if absent;
* ``put(key, body, if_match=etag)`` / ``delete(key, if_match=etag)``:
  replace or delete only if unchanged since ``etag`` was read;
* ``get(key)``: the object, its ETag, and its age on the server's clock.

A client for one bucket or container implements :class:`ConditionalStore`;
:class:`datadrive.lake.s3.S3Client` (SigV4) and
:class:`datadrive.lake.azure.AzureBlobClient` (Shared Key or SAS) do, both on
the standard library. Everything here is store-independent, so the lock's
safety argument (``docs/lake-storage.md``) is stated, and checked, once.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

from datadrive.errors import StorageError, StorageUnreachableError

__all__ = [
    "REQUEST_TIMEOUT_S",
    "ConditionalStore",
    "ObjectInfo",
    "PreconditionFailedError",
    "Response",
    "check_access",
    "check_conditional_writes",
    "fingerprint",
    "owner_label",
    "send",
    "server_age_s",
    "transport_reason",
]

REQUEST_TIMEOUT_S = 10.0
"""Socket timeout of one request made by a lock client."""


class PreconditionFailedError(Exception):
    """A conditional write lost: the object exists (``If-None-Match``) or changed (``If-Match``)."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a GET returned.

    Attributes:
        etag: The object's ETag, quotes included, as the server sent it.
        body: The object's bytes.
        age_s: Seconds between the object's ``Last-Modified`` and the
            response's ``Date``, both taken from the server's clock (whole
            seconds, so +-1 s).
    """

    etag: str
    body: bytes
    age_s: float


class ConditionalStore(Protocol):
    """Conditional writes on the small objects of one bucket or container.

    Attributes:
        timeout_s: Socket timeout of one request.
        ident: Identifies the store and the credentials (no secrets: a
            fingerprint), for once-per-process checks.
    """

    timeout_s: float

    @property
    def ident(self) -> tuple[str, ...]: ...

    def location(self, key: str) -> str:
        """``key`` as a URI for messages (``s3://bucket/key``, ``az://container/key``)."""
        ...

    def put(self, key: str, body: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        """Write ``key``; returns the new ETag.

        Raises:
            PreconditionFailedError: if a condition did not hold.
            StorageError: for any other failure.
        """
        ...

    def get(self, key: str) -> ObjectInfo | None:
        """The object ``key``, or ``None`` if there is none.

        Raises:
            StorageError: for failures other than "no such object" (a missing
                bucket or container among them).
        """
        ...

    def delete(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete ``key``; ``False`` when ``If-Match`` failed (the object changed or is gone).

        Raises:
            StorageError: for other failures.
        """
        ...

    def check_access(self, key: str) -> str | None:
        """Why the store cannot be used, in words naming the reason (``None`` when it can).

        One GET of ``key`` (which need not exist) tells an endpoint that does
        not answer, refused credentials and a missing bucket or container
        apart.
        """
        ...


@dataclass(frozen=True)
class Response:
    """One HTTP response: status, headers (lower-case names) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def send(
    scheme: str,
    netloc: str,
    method: str,
    target: str,
    *,
    body: bytes = b"",
    headers: Mapping[str, str],
    timeout_s: float,
    what: str,
) -> Response:
    """Send one request on a fresh connection.

    Args:
        scheme: ``http`` or ``https``.
        netloc: ``host[:port]``.
        method: HTTP method.
        target: Path and query, already encoded.
        body: Request body (sent for PUT and POST).
        headers: Request headers.
        timeout_s: Socket timeout.
        what: Names the object in messages (``s3://bucket/key``).

    Raises:
        StorageUnreachableError: if the endpoint cannot be reached or drops
            the connection (refused, timed out, unknown host, reset).
    """
    conn_type = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    conn = conn_type(netloc, timeout=timeout_s)
    try:
        conn.request(method, target, body=body if method in ("PUT", "POST") else None, headers=dict(headers))
        resp = conn.getresponse()
        data = resp.read()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    except (OSError, http.client.HTTPException) as exc:
        endpoint = f"{scheme}://{netloc}"
        raise StorageUnreachableError(
            f"{what}: {method} failed: the endpoint {endpoint} does not answer ({transport_reason(exc)})"
        ) from exc
    finally:
        conn.close()


def transport_reason(exc: BaseException | None) -> str:
    """A short reason for a failed connection: ``timed out``, ``[Errno 111] Connection refused``, ..."""
    if exc is None:
        return "no answer"
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        return "timed out"
    return str(exc) or type(exc).__name__


def server_age_s(headers: Mapping[str, str]) -> float:
    """``Date - Last-Modified`` of a response, in seconds (0 if either is missing)."""
    with contextlib.suppress(KeyError, TypeError, ValueError):
        modified = parsedate_to_datetime(headers["last-modified"])
        return (parsedate_to_datetime(headers["date"]) - modified).total_seconds()
    return 0.0


def fingerprint(*secrets: str | None) -> str:
    """A short, non-reversible tag of credentials, so caches tell two identities apart."""
    h = hashlib.sha256()
    for s in secrets:
        h.update(b"\0" + (s or "").encode())
    return h.hexdigest()[:16]


_ACCESSIBLE: set[tuple[str, ...]] = set()


def check_access(client: ConditionalStore, key: str, root: str) -> None:
    """Check, once per process and store, that the store answers and accepts the credentials.

    Raises:
        StorageError: one line, ``"<root>: <reason>"``, if it does not.
    """
    if client.ident in _ACCESSIBLE:
        return
    problem = client.check_access(key)
    if problem:
        raise StorageError(f"{root}: {problem}")
    _ACCESSIBLE.add(client.ident)


_CHECKED: set[tuple[str, ...]] = set()


def check_conditional_writes(client: ConditionalStore, key_prefix: str, *, root: str | None = None) -> None:
    """Check, once per process and store, that the store honours conditional writes.

    Delta commits on object stores and the region lock are only safe where
    ``If-None-Match: *`` and ``If-Match`` are enforced. A store that ignores
    them would let concurrent writers silently overwrite each other's
    commits (``docs/lake-storage.md`` shows it happening), so this refuses
    such a store before anything is written.

    The probe: create an object with ``If-None-Match: *``; create it again
    (must be refused); replace it with a wrong ``If-Match`` (refused); with
    the right one (accepted); delete it with the stale ETag (refused). The
    probe object is deleted whatever happens.

    Args:
        client: The store.
        key_prefix: Where the probe object goes (``<root>/_datadrive/locks``).
        root: The region root, for the message (default: the prefix's URI).

    Raises:
        StorageError: if a condition is ignored, naming the root.
    """
    if client.ident in _CHECKED:
        return
    key = f"{key_prefix.strip('/')}/.probe-{uuid.uuid4().hex}".lstrip("/")
    problem = ""
    try:
        etag = client.put(key, b"probe 1", if_none_match=True)
        try:
            client.put(key, b"probe 2", if_none_match=True)
            problem = "a PUT with If-None-Match: * replaced an existing object"
        except PreconditionFailedError:
            pass
        if not problem:
            try:
                client.put(key, b"probe 3", if_match='"00000000000000000000000000000000"')
                problem = "a PUT with a wrong If-Match ETag succeeded"
            except PreconditionFailedError:
                pass
        if not problem:
            try:
                client.put(key, b"probe 4", if_match=etag)
            except PreconditionFailedError:
                problem = "a PUT with the current If-Match ETag was refused"
        if not problem and client.delete(key, if_match=etag):
            problem = "a DELETE with a stale If-Match ETag deleted the object"
    finally:
        client.delete(key)
    if problem:
        raise StorageError(
            f"{root or client.location(key_prefix)}: the object store does not enforce conditional writes "
            f"({problem}); concurrent commits could be lost, so datadrive refuses to write there "
            "(see docs/lake-storage.md)"
        )
    _CHECKED.add(client.ident)


def owner_label() -> str:
    """``host:pid`` of this process, recorded in lock objects for humans."""
    return f"{socket.gethostname()}:{os.getpid()}"
