"""Indexing (features and tagging) on a 2-node Ray cluster on 127.0.0.1: the same rows as inline."""

from __future__ import annotations

from pathlib import Path

import pytest

from datadrive.compute.ray_engine import RayEngine
from datadrive.lake import Lake, LakeConfig, Principal, RegionConfig, StorageRoot, TenantConfig
from datadrive.mining.index import index_region
from services import RayCluster, ray_cluster

__all__ = ["ray_cluster"]  # the fixture, imported so pytest finds it here

pytestmark = [pytest.mark.service, pytest.mark.slow]


def _lake(root: Path, samples: Path) -> Lake:
    config = LakeConfig(
        regions={"eu-central": RegionConfig("eu-central", StorageRoot(str(root)))},
        tenants={"bmw": TenantConfig("bmw", bytes(range(32)))},
    )
    lake = Lake(config, Principal("ana", "bmw", "eu-central"))
    lake.ingest([samples / "av2_motion_forecasting"], "eu-central")
    return lake


def test_ray_index_equals_inline(samples: Path, tmp_path: Path, ray_cluster: RayCluster) -> None:
    on_ray = _lake(tmp_path / "ray", samples)
    inline = _lake(tmp_path / "inline", samples)
    engine = RayEngine(ray_cluster.address)
    try:
        report = index_region(on_ray, "eu-central", engine=engine, batch_size=1)
    finally:
        engine.close()
    assert report.failures == ()
    assert report.indexed == report.tagged == 3
    index_region(inline, "eu-central")
    for q in (
        "SELECT scenario_id, track_id, step, speed_mps, accel_mps2, lane_id FROM mining_states "
        "ORDER BY 1, 2, 3",
        "SELECT scenario_id, event_type, actor_track_id, start_ns, severity FROM events ORDER BY 1, 2, 3, 4",
    ):
        assert on_ray.sql(q, "eu-central").table.equals(inline.sql(q, "eu-central").table)
