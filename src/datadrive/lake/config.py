"""The lake's configuration: frozen dataclasses, built at the edge from TOML.

Library code never reads files or environment variables for its settings;
the CLI (or the service) reads ``datadrive.toml`` and the tenants' key
files and calls :meth:`LakeConfig.from_mapping`. A ``datadrive.toml``::

    [lake]
    name = "alliance"

    [regions.cn-north]
    root = "regions/cn-north"          # relative to the file, s3://bucket/prefix or az://container/prefix
    publish_crs = "gcj02"              # latitude/longitude published in GCJ-02
    raw_readers = ["cn-north"]         # home regions whose principals may read raw rows
    [regions.cn-north.export]
    derived = ["aggregate", "metrics"] # derived kinds that may leave the region
    to = ["eu-central"]                # where to ("external": outside every region)
    raw_to = []                        # raw tables: nowhere (the default)

    [tenants.bmw]
    key_file = "keys/bmw.key"          # HMAC key for pseudonyms; never stored in the lake

    [[grants]]
    owner = "bmw"
    grantee = "tencent"
    regions = ["cn-north"]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from datadrive.errors import ConfigError
from datadrive.lake.storage import StorageRoot

__all__ = [
    "DERIVED_KINDS",
    "EXTERNAL",
    "ExportPolicy",
    "Grant",
    "LakeConfig",
    "Principal",
    "RegionConfig",
    "TenantConfig",
]

DERIVED_KINDS = ("aggregate", "metrics", "model", "features", "dataset", "conversations")
"""Kinds of derived artefact a region's policy may let leave: aggregates
(event statistics), evaluation metrics, model weights, anonymised feature
tables, curated dataset manifests (a query, a lake version and the scenario
ids it selected), conversations (an assistant's turns about a vehicle's
data: no policy should let them leave, but the kind is named like the others)."""

EXTERNAL = "external"
"""Export destination meaning "outside every configured region"."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,62}$")
_CRS = ("wgs84", "gcj02")


def _name(kind: str, value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(
            f"{kind} name {value!r} must be lower-case letters, digits, '-' or '_' (at most 63 characters)"
        )
    return value


@dataclass(frozen=True)
class ExportPolicy:
    """What may leave a region.

    Attributes:
        derived: Derived kinds (:data:`DERIVED_KINDS`) that may be exported.
        to: Destinations they may go to: region names, or :data:`EXTERNAL`.
        raw_to: Regions raw tables may be copied to. Empty by default: raw
            bytes never leave unless a policy says so.
    """

    derived: frozenset[str] = frozenset()
    to: frozenset[str] = frozenset()
    raw_to: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RegionConfig:
    """One region: its storage root and its rules.

    Attributes:
        name: Region name, e.g. ``"cn-north"``.
        root: Where its tables live.
        publish_crs: ``"wgs84"``, or ``"gcj02"`` where latitude/longitude
            must be published in GCJ-02 (China).
        raw_readers: Home regions whose principals may read raw rows (the
            region itself always may). A query answered to anyone else is an
            export of raw data, and is refused.
        export: What may leave.
    """

    name: str
    root: StorageRoot
    publish_crs: str = "wgs84"
    raw_readers: frozenset[str] = frozenset()
    export: ExportPolicy = field(default_factory=ExportPolicy)

    def may_read_raw(self, home_region: str) -> bool:
        """Whether a principal at home in ``home_region`` may read raw rows here."""
        return home_region == self.name or home_region in self.raw_readers

    def may_receive(self, kind: str, home_region: str) -> bool:
        """Whether a derived artefact of ``kind`` from here may reach a principal at home in ``home_region``.

        ``kind`` is a derived kind, or ``"raw"`` for raw rows. Inside the
        region (or a raw reader's region) everything may; elsewhere only
        kinds the export policy lets leave, to destinations it names.
        """
        if self.may_read_raw(home_region):
            return True
        return kind != "raw" and kind in self.export.derived and home_region in self.export.to


@dataclass(frozen=True)
class TenantConfig:
    """An alliance member that owns data.

    Attributes:
        name: Tenant name.
        key: Secret HMAC key for its pseudonyms (never written to the lake).
    """

    name: str
    key: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        """A short public fingerprint of the key, recorded beside pseudonyms."""
        import hashlib

        return hashlib.sha256(b"datadrive-key-id\0" + self.key).hexdigest()[:12]


@dataclass(frozen=True)
class Grant:
    """``owner`` lets ``grantee`` read its data (in ``regions``, or everywhere when empty)."""

    owner: str
    grantee: str
    regions: frozenset[str] = frozenset()

    def covers(self, region: str) -> bool:
        return not self.regions or region in self.regions


@dataclass(frozen=True)
class Principal:
    """Who is asking, and from where.

    A read is judged by where the reader is, not only where the bytes are.

    Attributes:
        name: The person or service account.
        tenant: The tenant it acts for.
        home_region: The region it is in.
    """

    name: str
    tenant: str
    home_region: str


@dataclass(frozen=True)
class LakeConfig:
    """Regions, tenants and grants of one lake.

    Attributes:
        regions: Region name -> :class:`RegionConfig`.
        tenants: Tenant name -> :class:`TenantConfig`.
        grants: Explicit sharing between tenants.
        name: The lake's name.
        home_region: Where this deployment runs, if configured: the default
            home region of principals built at the edge.
    """

    regions: Mapping[str, RegionConfig]
    tenants: Mapping[str, TenantConfig]
    grants: tuple[Grant, ...] = ()
    name: str = "datadrive"
    home_region: str | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # read-only mappings do not pickle: rebuild them, so workers (a feature-cache build) get the config
        return (
            _rebuild_config,
            (dict(self.regions), dict(self.tenants), self.grants, self.name, self.home_region),
        )

    def region(self, name: str) -> RegionConfig:
        """The region called ``name``.

        Raises:
            ConfigError: if there is none.
        """
        try:
            return self.regions[name]
        except KeyError:
            known = ", ".join(sorted(self.regions)) or "none"
            raise ConfigError(f"unknown region {name!r} (configured: {known})") from None

    def tenant(self, name: str) -> TenantConfig:
        """The tenant called ``name``.

        Raises:
            ConfigError: if there is none.
        """
        try:
            return self.tenants[name]
        except KeyError:
            known = ", ".join(sorted(self.tenants)) or "none"
            raise ConfigError(f"unknown tenant {name!r} (configured: {known})") from None

    def visible_tenants(self, tenant: str, region: str) -> tuple[str, ...]:
        """Tenants whose rows in ``region`` a principal of ``tenant`` may read: its own and granted ones."""
        owners = {g.owner for g in self.grants if g.grantee == tenant and g.covers(region)}
        return tuple(sorted({tenant} | owners))

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], *, base_dir: Path, keys: Mapping[str, bytes]) -> LakeConfig:
        """Build a config from a parsed ``datadrive.toml``.

        Args:
            doc: The parsed TOML document.
            base_dir: Folder that relative ``root`` paths are relative to.
            keys: Tenant name -> HMAC key bytes, read by the caller from
                each tenant's ``key_file``.

        Raises:
            ConfigError: naming the first wrong or missing setting.
        """
        regions_doc = _table(doc, "regions")
        if not regions_doc:
            raise ConfigError("the lake config has no [regions.<name>] table")
        regions: dict[str, RegionConfig] = {}
        for rname, rdoc in regions_doc.items():
            _name("region", rname)
            if not isinstance(rdoc, Mapping):
                raise ConfigError(f"[regions.{rname}] must be a table")
            regions[rname] = _region(rname, rdoc, base_dir)
        for r in regions.values():
            for dest in r.export.to | r.export.raw_to | r.raw_readers:
                if dest not in regions and dest != EXTERNAL:
                    raise ConfigError(f"[regions.{r.name}] names unknown region {dest!r}")
            if EXTERNAL in r.export.raw_to:
                raise ConfigError(f"[regions.{r.name}.export] raw_to cannot be {EXTERNAL!r}")
        places = [(r.root.location, r.root.uri) for r in regions.values()]  # Azure: the account counts too
        for i, (a, a_uri) in enumerate(places):
            for b, b_uri in places[i + 1 :]:
                if a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/"):
                    raise ConfigError(f"region roots must not overlap: {a_uri} and {b_uri}")
        tenants: dict[str, TenantConfig] = {}
        for tname in _table(doc, "tenants"):
            _name("tenant", tname)
            key = keys.get(tname)
            if not key or len(key) < 16:
                raise ConfigError(f"tenant {tname!r} has no pseudonymisation key of at least 16 bytes")
            tenants[tname] = TenantConfig(tname, bytes(key))
        grants: list[Grant] = []
        for g in doc.get("grants", []) or []:
            if not isinstance(g, Mapping) or "owner" not in g or "grantee" not in g:
                raise ConfigError("each [[grants]] needs owner and grantee")
            grant = Grant(str(g["owner"]), str(g["grantee"]), frozenset(_strings(g, "regions", "grants")))
            for t in (grant.owner, grant.grantee):
                if t not in tenants:
                    raise ConfigError(f"[[grants]] names unknown tenant {t!r}")
            grants.append(grant)
        lake = _table(doc, "lake")
        home = _table(doc, "deployment").get("home_region")
        if home is not None and home not in regions:
            raise ConfigError(f"[deployment] home_region {home!r} is not a configured region")
        return cls(
            regions=MappingProxyType(regions),
            tenants=MappingProxyType(tenants),
            grants=tuple(grants),
            name=str(lake.get("name", "datadrive")),
            home_region=home,
        )


def _rebuild_config(
    regions: dict[str, RegionConfig],
    tenants: dict[str, TenantConfig],
    grants: tuple[Grant, ...],
    name: str,
    home_region: str | None,
) -> LakeConfig:
    return LakeConfig(MappingProxyType(regions), MappingProxyType(tenants), grants, name, home_region)


def _table(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"[{key}] must be a table")
    return value


def _strings(doc: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"[{where}] {key} must be a list of strings")
    return list(value)


def _region(name: str, doc: Mapping[str, Any], base_dir: Path) -> RegionConfig:
    root = doc.get("root")
    if not isinstance(root, str) or not root:
        raise ConfigError(f"[regions.{name}] needs a root (a folder, an s3:// or an az:// URI)")
    if "://" not in root and not root.startswith("/"):
        root = str((base_dir / root).resolve())
    options = doc.get("storage_options", {})
    if not isinstance(options, Mapping):
        raise ConfigError(f"[regions.{name}.storage_options] must be a table")
    crs = doc.get("publish_crs", "wgs84")
    if crs not in _CRS:
        raise ConfigError(f"[regions.{name}] publish_crs must be one of {', '.join(_CRS)}, not {crs!r}")
    export_doc = doc.get("export", {})
    if not isinstance(export_doc, Mapping):
        raise ConfigError(f"[regions.{name}.export] must be a table")
    where = f"regions.{name}.export"
    derived = frozenset(_strings(export_doc, "derived", where))
    unknown = derived - set(DERIVED_KINDS)
    if unknown:
        raise ConfigError(
            f"[{where}] unknown derived kinds {sorted(unknown)}; known: {', '.join(DERIVED_KINDS)}"
        )
    return RegionConfig(
        name=name,
        root=StorageRoot(root, {str(k): str(v) for k, v in options.items()}),
        publish_crs=crs,
        raw_readers=frozenset(_strings(doc, "raw_readers", f"regions.{name}")),
        export=ExportPolicy(
            derived=derived,
            to=frozenset(_strings(export_doc, "to", where)),
            raw_to=frozenset(_strings(export_doc, "raw_to", where)),
        ),
    )
