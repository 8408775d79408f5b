"""The gate every lake operation passes: who the principal is, what it may do, and the audit row.

:class:`Access` holds a lake's config, the principal and the clock, and the
storage of each region it has touched. The :class:`~datadrive.lake.Lake`
facade and the modules it delegates to (artefacts, ingest, erasure) judge
the principal here and only here: a refusal is audited before it is raised
(:meth:`Access.refuse`), and a read that cannot be audited does not happen
(:meth:`Access.audit` raises :class:`~datadrive.errors.StorageError`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from datadrive.errors import AccessDeniedError, ConfigError, ResidencyError, StorageError
from datadrive.lake import audit as audit_log
from datadrive.lake.config import LakeConfig, Principal, RegionConfig
from datadrive.lake.tables import RegionStore

__all__ = ["Access", "utc_now"]


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


class Access:
    """One principal's access to the regions of one lake.

    Args:
        config: Regions, tenants, grants.
        principal: Who acts, for which tenant, from which region.
        clock: Source of "now" (tests pin it).
    """

    def __init__(
        self, config: LakeConfig, principal: Principal, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.config = config
        self.principal = principal
        self.clock = clock
        self._stores: dict[str, RegionStore] = {}

    def store(self, region: str) -> RegionStore:
        """The storage of ``region`` (no access check: callers judge first)."""
        if region not in self._stores:
            self._stores[region] = RegionStore(self.config.region(region))
        return self._stores[region]

    def region_name(self, region: str | None) -> str:
        """``region``, or the principal's home region, or the lake's only region."""
        if region is not None:
            return region
        if self.principal.home_region in self.config.regions:
            return self.principal.home_region
        if len(self.config.regions) == 1:
            return next(iter(self.config.regions))
        raise ConfigError("say which region (--region): the principal's home region is not one of the lake's")

    # ------------------------------------------------------------------ the audit row

    def audit(
        self,
        region: str,
        action: str,
        obj: str,
        version: int | None,
        outcome: str = "ok",
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one row to ``region``'s audit log.

        Raises:
            StorageError: if the row cannot be written; the caller must then
                not hand out what it was about to.
        """
        p = self.principal
        event = audit_log.AuditEvent(
            who=p.name,
            tenant=p.tenant,
            home_region=p.home_region,
            region=region,
            action=action,
            object=obj,
            lake_version=-1 if version is None else int(version),
            outcome=outcome,
            detail=dict(detail or {}),
        )
        audit_log.append(self.store(region), event, self.clock)

    def refuse(
        self, region: str, action: str, obj: str, exc: Exception, version: int | None = None
    ) -> Exception:
        """Audit a refusal and return ``exc`` for the caller to raise."""
        try:
            self.audit(
                region, action, obj, version, "refused", {"reason": str(exc), "error": type(exc).__name__}
            )
        except StorageError as storage_exc:
            return StorageError(f"{exc} (and the refusal could not be audited: {storage_exc})")
        return exc

    # ------------------------------------------------------------------ judgements

    def check_tenant(self, region: str, action: str, obj: str) -> None:
        """Refuse (audited) a principal whose tenant is not in the lake."""
        if self.principal.tenant not in self.config.tenants:
            raise self.refuse(
                region,
                action,
                obj,
                AccessDeniedError(f"tenant {self.principal.tenant!r} is not a tenant of this lake"),
            )

    def check_raw_read(self, region: RegionConfig, action: str, obj: str) -> None:
        """Refuse (audited) a principal whose home region may not read ``region``'s raw rows."""
        self.check_tenant(region.name, action, obj)
        home = self.principal.home_region
        if not region.may_read_raw(home):
            allowed = ", ".join(sorted({region.name} | region.raw_readers))
            raise self.refuse(
                region.name,
                action,
                obj,
                ResidencyError(
                    f"{self.principal.name} is in {home}; raw data of region {region.name} may be read only "
                    f"from {allowed}. Answering would export it, and its policy does not allow that"
                ),
            )

    def visible_tenants(self, region: str) -> tuple[str, ...]:
        """Tenants whose rows in ``region`` the principal may read."""
        return self.config.visible_tenants(self.principal.tenant, region)
