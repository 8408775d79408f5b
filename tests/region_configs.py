"""The two-region lake config most test folders use: cn-north under China's rules and eu-central.

cn-north publishes in GCJ-02 and lets only metrics and aggregates go to eu-central; eu-central lets
metrics, aggregates, models and features go to cn-north and outside. Each folder's helpers pick the
tenants (name -> 32-byte key) it needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from datadrive.lake import ExportPolicy, Grant, LakeConfig, RegionConfig, StorageRoot, TenantConfig

__all__ = ["two_region_config"]


def two_region_config(root: Path, keys: Mapping[str, bytes], *, grants: tuple[Grant, ...] = ()) -> LakeConfig:
    """cn-north and eu-central under ``root``, with a tenant per entry of ``keys``."""
    return LakeConfig(
        regions={
            "cn-north": RegionConfig(
                "cn-north",
                StorageRoot(str(root / "cn-north")),
                publish_crs="gcj02",
                export=ExportPolicy(
                    derived=frozenset({"metrics", "aggregate"}), to=frozenset({"eu-central"})
                ),
            ),
            "eu-central": RegionConfig(
                "eu-central",
                StorageRoot(str(root / "eu-central")),
                export=ExportPolicy(
                    derived=frozenset({"metrics", "aggregate", "model", "features"}),
                    to=frozenset({"cn-north", "external"}),
                ),
            ),
        },
        tenants={name: TenantConfig(name, key) for name, key in keys.items()},
        grants=grants,
    )
