"""The lake: region-pinned, versioned, audited Delta Lake tables with SQL.

Start with :class:`Lake` (built from a :class:`LakeConfig` and a
:class:`Principal`, or in one call by :func:`open_lake` from a
``datadrive.toml``: see :mod:`datadrive.lake.settings`); ``docs/lake.md``
describes the tables, the commit protocol, residency, the audit chain and
the SQL views.
"""

from datadrive.lake.artefacts import ExportReport
from datadrive.lake.audit import AuditVerification
from datadrive.lake.check import CheckReport
from datadrive.lake.config import (
    DERIVED_KINDS,
    EXTERNAL,
    ExportPolicy,
    Grant,
    LakeConfig,
    Principal,
    RegionConfig,
    TenantConfig,
)
from datadrive.lake.erase import EraseReport, Erasure, ErasureKeys
from datadrive.lake.geo import CoordinatePublisher, Gcj02Publisher, Wgs84Publisher
from datadrive.lake.ingest import IngestEvent, IngestOptions, IngestReport, InputOutcome
from datadrive.lake.lake import Lake
from datadrive.lake.pseudonym import Pseudonymizer
from datadrive.lake.schema import LAKE_SCHEMA_VERSION
from datadrive.lake.settings import (
    CONFIG_NAME,
    generate_key,
    init_lake,
    load_config,
    load_document,
    open_lake,
    read_key,
    resolve_principal,
    write_config,
)
from datadrive.lake.snapshot import Snapshot
from datadrive.lake.sql import SqlResult
from datadrive.lake.storage import StorageRoot
from datadrive.lake.tables import LakeVersion

__all__ = [
    "CONFIG_NAME",
    "DERIVED_KINDS",
    "EXTERNAL",
    "LAKE_SCHEMA_VERSION",
    "AuditVerification",
    "CheckReport",
    "CoordinatePublisher",
    "EraseReport",
    "Erasure",
    "ErasureKeys",
    "ExportPolicy",
    "ExportReport",
    "Gcj02Publisher",
    "Grant",
    "IngestEvent",
    "IngestOptions",
    "IngestReport",
    "InputOutcome",
    "Lake",
    "LakeConfig",
    "LakeVersion",
    "Principal",
    "Pseudonymizer",
    "RegionConfig",
    "Snapshot",
    "SqlResult",
    "StorageRoot",
    "TenantConfig",
    "Wgs84Publisher",
    "generate_key",
    "init_lake",
    "load_config",
    "load_document",
    "open_lake",
    "read_key",
    "resolve_principal",
    "write_config",
]
