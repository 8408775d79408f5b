"""S3-compatible object storage: settings, filesystems and conditional writes.

A region root may be an ``s3://bucket/prefix`` URI. Three clients touch it:

* ``deltalake`` writes and reads the Delta tables; it takes the root's
  ``storage_options`` (see :func:`delta_storage_options`);
* ``pyarrow.fs.S3FileSystem`` reads and writes the lake's own small files and
  reads the tables' Parquet files (see :meth:`S3Settings.filesystem`);
* :class:`S3Client`, a small SigV4 client on the standard library, makes the
  conditional writes (``If-None-Match: *``, ``If-Match: <etag>``) that the
  region lock needs and that neither pyarrow nor deltalake's Python API
  exposes.

All three are configured from one mapping, the region's ``storage_options``
in ``datadrive.toml``, with the keys ``deltalake`` (object_store) understands::

    [regions.eu-central.storage_options]
    AWS_ENDPOINT_URL = "http://127.0.0.1:8333"   # omit for AWS itself
    AWS_REGION = "us-east-1"
    AWS_ACCESS_KEY_ID = "..."
    AWS_SECRET_ACCESS_KEY = "..."
    AWS_ALLOW_HTTP = "true"                      # only with an http:// endpoint

Library code never reads the environment: credentials come from these
options only (``docs/lake-storage.md``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from datadrive.errors import ConfigError, StorageError, StorageUnreachableError
from datadrive.lake.conditional import (
    REQUEST_TIMEOUT_S,
    ObjectInfo,
    PreconditionFailedError,
    check_conditional_writes,
    fingerprint,
    owner_label,
    send,
    server_age_s,
    transport_reason,
)

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = [
    "ObjectInfo",
    "PreconditionFailedError",
    "S3Client",
    "S3Settings",
    "check_conditional_writes",
    "delta_storage_options",
    "owner_label",
    "split_s3_uri",
]

S3_SCHEMES = ("s3", "s3a")

# object_store's names for each setting (lower-case; the first is canonical)
_ENDPOINT = ("aws_endpoint_url", "aws_endpoint", "endpoint_url", "endpoint", "aws_endpoint_url_s3")
_REGION = ("aws_region", "region", "aws_default_region", "default_region")
_KEY_ID = ("aws_access_key_id", "access_key_id")
_SECRET = ("aws_secret_access_key", "secret_access_key")
_TOKEN = ("aws_session_token", "session_token", "aws_token", "token")
_ALLOW_HTTP = ("aws_allow_http", "allow_http")
_VIRTUAL = ("aws_virtual_hosted_style_request", "virtual_hosted_style_request")
_CONDITIONAL_PUT = ("aws_conditional_put", "conditional_put")

_TRUE = ("1", "true", "yes", "on")


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``("bucket", "prefix")`` of ``s3://bucket/prefix`` (prefix without slashes at the ends).

    Raises:
        ConfigError: if the URI has no bucket.
    """
    scheme, _, rest = uri.partition("://")
    if scheme not in S3_SCHEMES:
        raise ConfigError(f"{uri}: not an s3:// URI")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ConfigError(f"{uri}: an s3:// root needs a bucket (s3://bucket/prefix)")
    return bucket, prefix.strip("/")


def _pick(options: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    lowered = {k.lower(): v for k, v in options.items()}
    for n in names:
        if n in lowered and str(lowered[n]) != "":
            return str(lowered[n])
    return None


@dataclass(frozen=True)
class S3Settings:
    """Connection settings of an S3-compatible store, read from storage options.

    Attributes:
        endpoint_url: ``scheme://host:port`` of the server; ``None`` for AWS.
        region: Signing region (``us-east-1`` when not given).
        access_key_id: Access key; requests are unsigned when ``None``.
        secret_access_key: Secret key.
        session_token: Temporary-credential token, if any.
        virtual_hosted: Address buckets as ``bucket.host`` rather than ``host/bucket``.
    """

    endpoint_url: str | None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    virtual_hosted: bool = False

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> S3Settings:
        """Settings from ``deltalake``-style storage options (keys case-insensitive).

        Raises:
            ConfigError: for an ``http://`` endpoint without ``AWS_ALLOW_HTTP``,
                an endpoint that is not a URL, or a key id without a secret.
        """
        endpoint = _pick(options, _ENDPOINT)
        if endpoint is not None:
            parsed = urllib.parse.urlsplit(endpoint)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ConfigError(f"S3 endpoint {endpoint!r} must be a URL such as http://127.0.0.1:8333")
            allow_http = (_pick(options, _ALLOW_HTTP) or "").lower() in _TRUE
            if parsed.scheme == "http" and not allow_http:
                raise ConfigError(
                    f'S3 endpoint {endpoint} is plain HTTP: set AWS_ALLOW_HTTP = "true" in the region\'s '
                    "storage_options to allow it"
                )
            endpoint = f"{parsed.scheme}://{parsed.netloc}"
        key_id = _pick(options, _KEY_ID)
        secret = _pick(options, _SECRET)
        if (key_id is None) != (secret is None):
            raise ConfigError(
                "S3 storage options need both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither"
            )
        return cls(
            endpoint_url=endpoint,
            region=_pick(options, _REGION) or "us-east-1",
            access_key_id=key_id,
            secret_access_key=secret,
            session_token=_pick(options, _TOKEN),
            virtual_hosted=(_pick(options, _VIRTUAL) or "").lower() in _TRUE,
        )

    def filesystem(self) -> pafs.S3FileSystem:
        """A pyarrow S3 filesystem (paths are ``bucket/key``), with bounded timeouts and retries."""
        import pyarrow.fs as pafs

        kwargs: dict[str, object] = {
            "region": self.region,
            "connect_timeout": 5.0,
            "request_timeout": 60.0,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3),
            "force_virtual_addressing": self.virtual_hosted,
        }
        if self.endpoint_url is not None:
            parsed = urllib.parse.urlsplit(self.endpoint_url)
            kwargs["endpoint_override"] = parsed.netloc
            kwargs["scheme"] = parsed.scheme
        if self.access_key_id is not None:
            kwargs["access_key"] = self.access_key_id
            kwargs["secret_key"] = self.secret_access_key
            if self.session_token is not None:
                kwargs["session_token"] = self.session_token
        else:
            kwargs["anonymous"] = True
        return pafs.S3FileSystem(**kwargs)


def delta_storage_options(options: Mapping[str, str]) -> dict[str, str]:
    """``storage_options`` for ``deltalake`` on an S3 root.

    The user's options pass through unchanged, plus ``conditional_put =
    etag`` unless set: commits to ``_delta_log/`` are then made with
    ``PUT If-None-Match: *``, so of two writers racing for one version
    exactly one wins and the other retries (``deltalake`` 1.x does this by
    default; saying it explicitly keeps it so if a default changes).
    """
    out = {str(k): str(v) for k, v in options.items()}
    if _pick(out, _CONDITIONAL_PUT) is None:
        out["conditional_put"] = "etag"
    return out


# --------------------------------------------------------------------------- SigV4 client


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class S3Client:
    """A minimal S3 client for single small objects in one bucket, with conditional writes.

    Only what the region lock needs: PUT (optionally ``If-None-Match: *`` or
    ``If-Match``), GET, DELETE (optionally ``If-Match``). Requests are signed
    with AWS Signature Version 4 when the settings carry credentials.

    Args:
        settings: Where the server is and how to sign.
        bucket: The bucket every key lives in.
        timeout_s: Socket timeout of each request.
    """

    def __init__(self, settings: S3Settings, bucket: str, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.settings = settings
        self.bucket = bucket
        self.timeout_s = timeout_s
        if settings.endpoint_url is None:
            self._scheme, netloc = "https", f"s3.{settings.region}.amazonaws.com"
            virtual = True
        else:
            parsed = urllib.parse.urlsplit(settings.endpoint_url)
            self._scheme, netloc = parsed.scheme, parsed.netloc
            virtual = settings.virtual_hosted
        self._host = f"{bucket}.{netloc}" if virtual else netloc
        self._path_prefix = "" if virtual else f"/{bucket}"

    def __repr__(self) -> str:
        return f"S3Client({self._scheme}://{self._host}{self._path_prefix})"

    @property
    def ident(self) -> tuple[str, ...]:
        """Endpoint, bucket and a fingerprint of the credentials."""
        s = self.settings
        creds = fingerprint(s.access_key_id, s.secret_access_key, s.session_token)
        return ("s3", f"{self._scheme}://{self._host}{self._path_prefix}", creds)

    def location(self, key: str) -> str:
        """``s3://bucket/key``."""
        return f"s3://{self.bucket}/{key}".rstrip("/")

    def check_access(self, key: str) -> str | None:
        """Why the bucket cannot be used (``None`` when a GET of ``key`` works or finds nothing).

        Raises:
            Nothing: every failure becomes the returned reason.
        """
        where = f"{self._scheme}://{self._host}"
        try:
            status, _, data = self._request("GET", key)
        except StorageUnreachableError as exc:
            return f"the S3 endpoint {where} does not answer ({transport_reason(exc.__cause__)})"
        code = _error_code(data)
        if status in (200, 404) and code != "NoSuchBucket":
            return None
        if status == 404:
            return f"bucket {self.bucket!r} does not exist at {where} (create it first)"
        if status == 403:
            return (
                f"the S3 endpoint {where} refused the credentials (HTTP 403{' ' + code if code else ''}): "
                "check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the identity's permissions"
            )
        return f"the S3 endpoint {where} answered HTTP {status} {code}".rstrip()

    # ------------------------------------------------------------------ requests

    def _request(
        self, method: str, key: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        path = urllib.parse.quote(f"{self._path_prefix}/{key}", safe="/~")
        now = dt.datetime.now(dt.UTC)
        hdrs = {k.lower(): v for k, v in (headers or {}).items()}
        hdrs["host"] = self._host
        hdrs["x-amz-date"] = now.strftime("%Y%m%dT%H%M%SZ")
        hdrs["x-amz-content-sha256"] = _sha256_hex(body)
        s = self.settings
        if s.access_key_id is not None and s.secret_access_key is not None:
            if s.session_token is not None:
                hdrs["x-amz-security-token"] = s.session_token
            names = sorted(hdrs)
            canonical = "\n".join(
                [
                    method,
                    path,
                    "",
                    "".join(f"{n}:{' '.join(hdrs[n].split())}\n" for n in names),
                    ";".join(names),
                    hdrs["x-amz-content-sha256"],
                ]
            )
            day = now.strftime("%Y%m%d")
            scope = f"{day}/{s.region}/s3/aws4_request"
            to_sign = "\n".join(
                ["AWS4-HMAC-SHA256", hdrs["x-amz-date"], scope, _sha256_hex(canonical.encode())]
            )
            k = _hmac(
                _hmac(_hmac(_hmac(("AWS4" + s.secret_access_key).encode(), day), s.region), "s3"),
                "aws4_request",
            )
            signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
            hdrs["authorization"] = (
                f"AWS4-HMAC-SHA256 Credential={s.access_key_id}/{scope}, "
                f"SignedHeaders={';'.join(names)}, Signature={signature}"
            )
        resp = send(
            self._scheme,
            self._host,
            method,
            path,
            body=body,
            headers=hdrs,
            timeout_s=self.timeout_s,
            what=self.location(key),
        )
        return resp.status, dict(resp.headers), resp.body

    def _fail(self, method: str, key: str, status: int, data: bytes) -> StorageError:
        code = _error_code(data)
        hint = {
            403: " (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the identity's permissions)",
            404: " (does the bucket exist?)",
        }.get(status, "")
        return StorageError(
            f"s3://{self.bucket}/{key}: {method} returned HTTP {status} {code}{hint}".rstrip()
        )

    def put(self, key: str, body: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        """Write ``key``; returns the new ETag.

        Raises:
            PreconditionFailedError: if a condition did not hold (HTTP 412, or 409
                for a concurrent conditional write).
            StorageError: for any other failure.
        """
        headers = {"content-type": "application/octet-stream"}
        if if_none_match:
            headers["if-none-match"] = "*"
        if if_match is not None:
            headers["if-match"] = if_match
        status, hdrs, data = self._request("PUT", key, body, headers)
        if status in (409, 412):
            raise PreconditionFailedError(f"s3://{self.bucket}/{key}")
        if status != 200:
            raise self._fail("PUT", key, status, data)
        return hdrs.get("etag", "")

    def get(self, key: str) -> ObjectInfo | None:
        """The object ``key``, or ``None`` if there is none.

        Raises:
            StorageError: for failures other than "not found".
        """
        status, hdrs, data = self._request("GET", key)
        if status == 404 and _error_code(data) != "NoSuchBucket":
            return None
        if status != 200:
            raise self._fail("GET", key, status, data)
        return ObjectInfo(etag=hdrs.get("etag", ""), body=data, age_s=server_age_s(hdrs))

    def delete(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete ``key``; ``False`` when ``If-Match`` failed (the object changed or is gone).

        S3 answers 204 whether or not the key existed, when unconditional.

        Raises:
            StorageError: for other failures.
        """
        headers = {"if-match": if_match} if if_match is not None else {}
        status, _, data = self._request("DELETE", key, b"", headers)
        if status in (409, 412):
            return False
        if status == 404:  # gone: fine unless we named the object we meant (SeaweedFS answers 412 then)
            return if_match is None
        if status not in (200, 204):
            raise self._fail("DELETE", key, status, data)
        return True


def _error_code(data: bytes) -> str:
    """The ``<Code>`` of an S3 error document ('' if there is none)."""
    text = data.decode("utf-8", "replace")
    if "<Code>" not in text:
        return ""
    return text.split("<Code>", 1)[1].split("</Code>", 1)[0]
