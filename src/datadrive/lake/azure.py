"""Azure Blob Storage (and ADLS Gen2): settings, filesystems and conditional writes.

A region root may be ``az://container/prefix`` (the account named in the
options) or ``abfss://container@account.dfs.core.windows.net/prefix`` (the
account in the URI; ``az``, ``azure`` and ``abfs`` are accepted too). Three
clients touch it, as on S3 (``datadrive.lake.s3``):

* ``deltalake`` writes and reads the Delta tables; it takes the root's
  ``storage_options`` (see :func:`delta_storage_options`);
* ``pyarrow.fs.AzureFileSystem`` reads and writes the lake's own small files
  and reads the tables' Parquet files (see :meth:`AzureSettings.filesystem`);
* :class:`AzureBlobClient`, a small Shared Key / SAS client on the standard
  library, makes the conditional writes (``If-None-Match: *``, ``If-Match``)
  that the region lock needs.

All three are configured from one mapping, the region's ``storage_options``
in ``datadrive.toml``, with the keys ``deltalake`` (object_store) understands::

    [regions.eu-west.storage_options]
    azure_storage_account_name = "fleetlake"
    azure_storage_account_key = "..."      # or azure_storage_sas_token = "sv=...&sig=..."
    azure_storage_endpoint = "http://127.0.0.1:10000/devstoreaccount1"   # Azurite; omit for Azure
    azure_allow_http = "true"             # only with an http:// endpoint

Library code never reads the environment: credentials come from these
options only (``docs/lake-storage.md``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from datadrive.errors import ConfigError, StorageError, StorageUnreachableError
from datadrive.lake.conditional import (
    REQUEST_TIMEOUT_S,
    ObjectInfo,
    PreconditionFailedError,
    Response,
    fingerprint,
    send,
    server_age_s,
    transport_reason,
)

if TYPE_CHECKING:
    import pyarrow.fs as pafs

__all__ = [
    "API_VERSION",
    "AZURE_SCHEMES",
    "EMULATOR_ACCOUNT",
    "EMULATOR_ENDPOINT",
    "EMULATOR_KEY",
    "AzureBlobClient",
    "AzureLocation",
    "AzureSettings",
    "delta_storage_options",
    "settings_for",
    "shared_key_signature",
    "split_azure_uri",
]

AZURE_SCHEMES = ("az", "azure", "abfs", "abfss")

API_VERSION = "2021-08-06"
"""``x-ms-version`` of every request the lock client makes (served by Azure and Azurite 3.x)."""

EMULATOR_ACCOUNT = "devstoreaccount1"
EMULATOR_ENDPOINT = "http://127.0.0.1:10000"
# Azurite's account key, published in Microsoft's documentation and identical in every Azurite.
EMULATOR_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

# object_store's names for each setting (lower-case; the first is canonical)
_ACCOUNT = ("azure_storage_account_name", "account_name")
_KEY = (
    "azure_storage_account_key",
    "azure_storage_access_key",
    "azure_storage_master_key",
    "account_key",
    "access_key",
    "master_key",
)
_SAS = ("azure_storage_sas_token", "azure_storage_sas_key", "sas_token", "sas_key")
_ENDPOINT = ("azure_storage_endpoint", "azure_endpoint", "endpoint")
_EMULATOR = ("azure_storage_use_emulator", "use_emulator")
_ALLOW_HTTP = ("azure_allow_http", "allow_http")
_OTHER_AUTH = (
    "azure_storage_client_id",
    "azure_client_id",
    "client_id",
    "azure_storage_token",
    "bearer_token",
    "azure_use_azure_cli",
    "use_azure_cli",
    "azure_msi_endpoint",
    "azure_federated_token_file",
)
_NORMALISED = _ACCOUNT + _KEY + _SAS + _ENDPOINT + _EMULATOR + _ALLOW_HTTP
_TRUE = ("1", "true", "yes", "on")

_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
_ACCOUNT_HOST = re.compile(r"^([a-z0-9]+)\.(?:dfs|blob)\.core\.windows\.net$")


@dataclass(frozen=True)
class AzureLocation:
    """Where a root is: the account (``None`` when the URI does not say), container and prefix.

    Attributes:
        account: The storage account named in the URI, if any.
        container: The container (for ADLS Gen2, the file system).
        prefix: The path inside the container, without slashes at the ends.
    """

    account: str | None
    container: str
    prefix: str


def split_azure_uri(uri: str) -> AzureLocation:
    """The account, container and prefix of an Azure root URI.

    Accepted: ``az|azure|abfs|abfss://container/prefix`` and
    ``az|abfs|abfss://container@account.(dfs|blob).core.windows.net/prefix``.

    Raises:
        ConfigError: if the URI is not one of these or names an invalid
            container or account.
    """
    scheme, _, rest = uri.partition("://")
    if scheme not in AZURE_SCHEMES:
        raise ConfigError(f"{uri}: not an Azure URI ({', '.join(s + '://' for s in AZURE_SCHEMES)})")
    authority, _, path = rest.partition("/")
    account: str | None = None
    container = authority
    if "@" in authority:
        container, host = authority.split("@", 1)
        m = _ACCOUNT_HOST.match(host)
        if scheme == "azure" or m is None:
            raise ConfigError(
                f"{uri}: expected {scheme}://container@account.dfs.core.windows.net/prefix; for other "
                "endpoints write az://container/prefix and set azure_storage_account_name and "
                "azure_storage_endpoint in storage_options"
            )
        account = m.group(1)
    if not _CONTAINER.match(container):
        raise ConfigError(
            f"{uri}: {container!r} is not a valid container name (3-63 lower-case letters, digits and "
            "single hyphens, starting and ending with a letter or digit)"
        )
    return AzureLocation(account, container, path.strip("/"))


def _pick(options: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    lowered = {k.lower(): v for k, v in options.items()}
    for n in names:
        if n in lowered and str(lowered[n]) != "":
            return str(lowered[n])
    return None


@dataclass(frozen=True)
class AzureSettings:
    """Connection settings of one storage account, read from storage options.

    Attributes:
        account: The storage account name.
        blob_endpoint: URL of the account's Blob service, without a trailing
            slash: ``https://<account>.blob.core.windows.net`` (virtual-hosted)
            or ``http://host:port/<account>`` (path-style, as Azurite serves it).
        account_key: The account key (base64), for Shared Key signing.
        sas_token: A SAS token (the query string, without ``?``).
    """

    account: str
    blob_endpoint: str
    account_key: str | None = field(default=None, repr=False)
    sas_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_options(cls, options: Mapping[str, str], *, account: str | None = None) -> AzureSettings:
        """Settings from ``deltalake``-style storage options (keys case-insensitive).

        Args:
            options: The region's storage options.
            account: The account named in the root's URI, if any.

        Raises:
            ConfigError: for a missing or conflicting account, an endpoint
                that is not a URL (or plain HTTP without ``azure_allow_http``),
                no credentials or two kinds of them, or a key that is not base64.
        """
        named = _pick(options, _ACCOUNT)
        if account is not None and named is not None and named != account:
            raise ConfigError(
                f"the root's URI names storage account {account!r} but azure_storage_account_name "
                f"is {named!r}"
            )
        emulator = (_pick(options, _EMULATOR) or "").lower() in _TRUE
        account = account or named or (EMULATOR_ACCOUNT if emulator else None)
        if account is None:
            raise ConfigError(
                "an az:// root needs azure_storage_account_name in its storage_options "
                "(or write abfss://container@account.dfs.core.windows.net/prefix)"
            )
        if not _ACCOUNT_NAME.match(account):
            raise ConfigError(
                f"{account!r} is not a storage account name (3-24 lower-case letters and digits)"
            )
        endpoint = _pick(options, _ENDPOINT)
        if endpoint is None:
            endpoint = (
                f"{EMULATOR_ENDPOINT}/{account}" if emulator else f"https://{account}.blob.core.windows.net"
            )
        parsed = urllib.parse.urlsplit(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(
                f"Azure endpoint {endpoint!r} must be a URL such as https://{account}.blob.core.windows.net "
                f"or http://127.0.0.1:10000/{account}"
            )
        if (
            parsed.scheme == "http"
            and not emulator
            and (_pick(options, _ALLOW_HTTP) or "").lower() not in _TRUE
        ):
            raise ConfigError(
                f'Azure endpoint {endpoint} is plain HTTP: set azure_allow_http = "true" in the region\'s '
                "storage_options to allow it"
            )
        path = parsed.path.rstrip("/")
        if emulator and not path:
            path = f"/{account}"  # Azurite serves every account path-style
        if path and path != f"/{account}":
            raise ConfigError(
                f"Azure endpoint {endpoint}: a path-style endpoint must end in the account name "
                f"(http://host:port/{account})"
            )
        if not path and not (parsed.hostname or "").startswith(f"{account}."):
            raise ConfigError(
                f"Azure endpoint {endpoint}: expected https://{account}.<blob service domain> "
                f"or a path-style http://host:port/{account}"
            )
        key = _pick(options, _KEY)
        sas = _pick(options, _SAS)
        sas = sas.lstrip("?") if sas is not None else None
        if key is not None and sas is not None:
            raise ConfigError("give either azure_storage_account_key or azure_storage_sas_token, not both")
        if key is None and sas is None:
            if emulator and account == EMULATOR_ACCOUNT:
                key = EMULATOR_KEY
            else:
                other = [k for k in options if k.lower() in _OTHER_AUTH]
                extra = (
                    f" ({', '.join(sorted(other))}: Azure AD credentials are not supported by the "
                    "region lock)"
                    if other
                    else ""
                )
                raise ConfigError(
                    "an Azure root needs azure_storage_account_key or azure_storage_sas_token in its "
                    f"storage_options{extra}"
                )
        if key is not None:
            try:
                base64.b64decode(key, validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError(
                    "azure_storage_account_key is not base64 (copy it from the account's Access keys)"
                ) from None
        if sas is not None and "sig=" not in sas:
            raise ConfigError("azure_storage_sas_token does not look like a SAS token (it has no sig=...)")
        blob_endpoint = f"{parsed.scheme}://{parsed.netloc}{path}"
        return cls(account=account, blob_endpoint=blob_endpoint, account_key=key, sas_token=sas)

    @property
    def path_style(self) -> bool:
        """Whether the account is addressed as ``host/account`` (Azurite) rather than ``account.host``."""
        return urllib.parse.urlsplit(self.blob_endpoint).path != ""

    def filesystem(self) -> pafs.AzureFileSystem:
        """A pyarrow Azure filesystem on the account (paths are ``container/blob``)."""
        import pyarrow.fs as pafs

        parsed = urllib.parse.urlsplit(self.blob_endpoint)
        if self.path_style:
            blob = dfs = parsed.netloc  # Azurite has no DFS endpoint; pyarrow falls back to the Blob API
        else:
            # pyarrow builds "<account><authority>" when the authority starts with a dot
            blob = parsed.netloc[len(self.account) :]
            dfs = blob.replace(".blob.", ".dfs.", 1)
        kwargs: dict[str, object] = {
            "blob_storage_authority": blob,
            "blob_storage_scheme": parsed.scheme,
            "dfs_storage_authority": dfs,
            "dfs_storage_scheme": parsed.scheme,
        }
        if self.account_key is not None:
            kwargs["account_key"] = self.account_key
        else:
            kwargs["sas_token"] = f"?{self.sas_token}"  # pyarrow 26 joins it to the URL as given
        return pafs.AzureFileSystem(self.account, **kwargs)


def settings_for(uri: str, options: Mapping[str, str]) -> AzureSettings:
    """:meth:`AzureSettings.from_options` for the root ``uri`` (whose URI may name the account).

    Raises:
        ConfigError: naming the root, if the URI or the options are wrong.
    """
    account = split_azure_uri(uri).account
    try:
        return AzureSettings.from_options(options, account=account)
    except ConfigError as exc:
        raise ConfigError(f"{uri}: {exc}") from None


def delta_storage_options(uri: str, options: Mapping[str, str]) -> dict[str, str]:
    """``storage_options`` for ``deltalake`` on an Azure root.

    The account, endpoint and credentials are rewritten into one canonical
    form that ``deltalake`` and the other two clients read alike: the
    account name, ``azure_storage_endpoint`` always set (so
    ``azure_storage_use_emulator``, which makes ``deltalake`` read the
    endpoint from the environment variable ``AZURITE_BLOB_STORAGE_URL``, is
    never passed on), the key or SAS token, and ``azure_allow_http`` for an
    ``http://`` endpoint. Other options pass through unchanged.

    ``deltalake`` 1.x commits on Azure with ``PUT If-None-Match: *``; it has
    no option to turn that off (``docs/lake-storage.md``).

    Raises:
        ConfigError: if the options are wrong (see :meth:`AzureSettings.from_options`).
    """
    s = settings_for(uri, options)
    out = {str(k): str(v) for k, v in options.items() if str(k).lower() not in _NORMALISED}
    out["azure_storage_account_name"] = s.account
    out["azure_storage_endpoint"] = s.blob_endpoint
    if s.account_key is not None:
        out["azure_storage_account_key"] = s.account_key
    if s.sas_token is not None:
        out["azure_storage_sas_token"] = s.sas_token
    if s.blob_endpoint.startswith("http://"):
        out["azure_allow_http"] = "true"
    return out


# --------------------------------------------------------------------------- Shared Key / SAS client

# Standard headers in a Shared Key string-to-sign, in order (Content-Length empty when 0).
_SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


def shared_key_signature(
    account: str, key: str, method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str]
) -> str:
    """The ``Authorization`` value of a request signed with the account key (Shared Key).

    Args:
        account: Storage account.
        key: Account key (base64).
        method: HTTP method.
        path: The request's path, as sent (encoded).
        query: Query parameters (decoded).
        headers: Request headers, lower-case names.
    """
    standard = [
        "" if (h == "content-length" and headers.get(h, "") == "0") else headers.get(h, "")
        for h in _SIGNED_HEADERS
    ]
    ms = "".join(f"{k}:{' '.join(v.split())}\n" for k, v in sorted(headers.items()) if k.startswith("x-ms-"))
    resource = f"/{account}{path}" + "".join(f"\n{k.lower()}:{v}" for k, v in sorted(query.items()))
    to_sign = "\n".join([method, *standard]) + "\n" + ms + resource
    digest = hmac.new(base64.b64decode(key), to_sign.encode("utf-8"), hashlib.sha256).digest()
    return f"SharedKey {account}:{base64.b64encode(digest).decode()}"


class AzureBlobClient:
    """A minimal Blob client for single small blobs in one container, with conditional writes.

    Only what the region lock needs: Put Blob (optionally ``If-None-Match:
    *`` or ``If-Match``), Get Blob, Delete Blob (optionally ``If-Match``).
    Requests are signed with the account key (Shared Key) or carry the SAS
    token.

    Args:
        settings: Where the account is and how to authenticate.
        container: The container every blob lives in.
        timeout_s: Socket timeout of each request.
    """

    def __init__(self, settings: AzureSettings, container: str, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.settings = settings
        self.container = container
        self.timeout_s = timeout_s
        parsed = urllib.parse.urlsplit(settings.blob_endpoint)
        self._scheme, self._netloc, self._base = parsed.scheme, parsed.netloc, parsed.path

    def __repr__(self) -> str:
        return f"AzureBlobClient({self.settings.blob_endpoint}/{self.container})"

    @property
    def ident(self) -> tuple[str, ...]:
        """Endpoint, container and a fingerprint of the credentials."""
        creds = fingerprint(self.settings.account_key, self.settings.sas_token)
        return ("azure", self.settings.blob_endpoint, self.container, creds)

    def location(self, key: str) -> str:
        """``az://container/key``."""
        return f"az://{self.container}/{key}".rstrip("/")

    # ------------------------------------------------------------------ requests

    def _request(
        self, method: str, key: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Response:
        path = urllib.parse.quote(f"{self._base}/{self.container}/{key}", safe="/-_.~=")
        hdrs = {k.lower(): v for k, v in (headers or {}).items()}
        hdrs["x-ms-date"] = dt.datetime.now(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
        hdrs["x-ms-version"] = API_VERSION
        if method in ("PUT", "POST"):
            hdrs["content-length"] = str(len(body))
        target = path
        s = self.settings
        if s.account_key is not None:
            hdrs["authorization"] = shared_key_signature(s.account, s.account_key, method, path, {}, hdrs)
        elif s.sas_token is not None:
            target = f"{path}?{s.sas_token}"
        return send(
            self._scheme,
            self._netloc,
            method,
            target,
            body=body,
            headers=hdrs,
            timeout_s=self.timeout_s,
            what=self.location(key),
        )

    def _fail(self, method: str, key: str, resp: Response) -> StorageError:
        code = resp.headers.get("x-ms-error-code", "")
        hint = {
            403: " (check azure_storage_account_key / azure_storage_sas_token and its permissions)",
            404: " (does the container exist?)",
        }.get(resp.status, "")
        return StorageError(
            f"{self.location(key)}: {method} returned HTTP {resp.status} {code}{hint}".rstrip()
        )

    def put(self, key: str, body: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        """Write ``key`` as a block blob; returns the new ETag.

        Raises:
            PreconditionFailedError: if a condition did not hold (409
                ``BlobAlreadyExists`` or 412 ``ConditionNotMet``).
            StorageError: for any other failure.
        """
        headers = {"x-ms-blob-type": "BlockBlob", "content-type": "application/octet-stream"}
        if if_none_match:
            headers["if-none-match"] = "*"
        if if_match is not None:
            headers["if-match"] = if_match
        resp = self._request("PUT", key, body, headers)
        if resp.headers.get("x-ms-error-code") in ("BlobAlreadyExists", "ConditionNotMet"):
            raise PreconditionFailedError(self.location(key))
        if resp.status != 201:
            raise self._fail("PUT", key, resp)
        return resp.headers.get("etag", "")

    def get(self, key: str) -> ObjectInfo | None:
        """The blob ``key``, or ``None`` if there is none.

        Raises:
            StorageError: for other failures, a missing container included.
        """
        resp = self._request("GET", key)
        if resp.status == 404 and resp.headers.get("x-ms-error-code") == "BlobNotFound":
            return None
        if resp.status != 200:
            raise self._fail("GET", key, resp)
        return ObjectInfo(etag=resp.headers.get("etag", ""), body=resp.body, age_s=server_age_s(resp.headers))

    def delete(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete ``key``; ``False`` when ``If-Match`` failed (the blob changed, or is gone).

        Without ``If-Match``, a blob that is already gone counts as deleted.

        Raises:
            StorageError: for other failures.
        """
        headers = {"if-match": if_match} if if_match is not None else {}
        resp = self._request("DELETE", key, b"", headers)
        code = resp.headers.get("x-ms-error-code")
        if resp.status == 202:
            return True
        if code == "ConditionNotMet":
            return False
        if code == "BlobNotFound":
            return if_match is None
        raise self._fail("DELETE", key, resp)

    def check_access(self, key: str) -> str | None:
        """Why the container cannot be used (``None`` when a GET of ``key`` works or finds no blob)."""
        s = self.settings
        try:
            resp = self._request("GET", key)
        except StorageUnreachableError as exc:
            return f"the Azure endpoint {s.blob_endpoint} does not answer ({transport_reason(exc.__cause__)})"
        code = resp.headers.get("x-ms-error-code", "")
        if resp.status == 200 or code == "BlobNotFound":
            return None
        if code == "ContainerNotFound":
            return (
                f"container {self.container!r} does not exist in storage account {s.account!r} "
                "(create it first: datadrive does not create containers)"
            )
        if resp.status == 403:
            what = "SAS token" if s.sas_token is not None else "account key"
            return (
                f"Azure Storage refused the {what} for account {s.account!r} (HTTP 403"
                f"{' ' + code if code else ''}): check azure_storage_"
                f"{'sas_token (its permissions and expiry)' if s.sas_token is not None else 'account_key'}"
            )
        return f"Azure Storage at {s.blob_endpoint} answered HTTP {resp.status}{' ' + code if code else ''}"
