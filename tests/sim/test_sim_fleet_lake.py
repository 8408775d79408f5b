"""The fleet into a lake: a lake version per chunk, a lake that checks, scenarios that read back exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_bad_input_and_fleet import _maps


def test_fleet_chunks_are_lake_versions_and_read_back_bit_for_bit(tmp_path: Path, samples: Path) -> None:
    from datadrive.lake import Lake, LakeConfig, Principal, RegionConfig, StorageRoot, TenantConfig
    from datadrive.sim.fleet import FleetConfig, generate_chunk, generate_into_lake

    config = LakeConfig(
        regions={"eu": RegionConfig("eu", StorageRoot(str(tmp_path / "eu")))},
        tenants={"t": TenantConfig("t", bytes(range(32)))},
    )
    lake = Lake(config, Principal("ana", "t", "eu"))
    lake.init(["eu"])
    before = lake.snapshot("eu").version
    cfg = FleetConfig(maps=_maps(samples)[:2], seed=9)
    report = generate_into_lake(lake, "eu", cfg, 6, commit_every=3)
    assert report.scenarios == 6
    assert report.commits == 2
    assert report.lake_version == before + 2  # a chunk is one lake version, not one per ingest batch
    check = lake.check("eu")
    assert check.ok, check.problems
    stored = {
        int(s.metadata.extras["index"]): s for s in lake.snapshot("eu").scenarios(sources=["synthetic"])
    }
    assert sorted(stored) == list(range(6))
    for made in generate_chunk(cfg, np.arange(6)):
        back = stored[int(made.metadata.extras["index"])]
        # what the fleet writes is on its grids (1/1024 m, 1/4096 rad, 1/256 m/s); the lake keeps it exactly
        for a, step in ((made.tracks.xy_m, 2**-10), (made.tracks.velocity_mps, 2**-8)):
            assert np.array_equal(a / step, np.round(a / step))
        h = made.tracks.heading_rad * 2**12
        inside = np.abs(made.tracks.heading_rad) < np.pi
        assert np.array_equal(h[inside], np.round(h[inside]))
        assert made.map is not None
        assert back.map is not None
        xyz = made.map.xyz_m[np.isfinite(made.map.xyz_m)] * 2**10
        assert np.array_equal(xyz, np.round(xyz))
        np.testing.assert_array_equal(back.tracks.xy_m, made.tracks.xy_m)
        np.testing.assert_array_equal(back.tracks.heading_rad, made.tracks.heading_rad)
        np.testing.assert_array_equal(back.tracks.velocity_mps, made.tracks.velocity_mps)
        np.testing.assert_array_equal(back.tracks.valid, made.tracks.valid)
        np.testing.assert_array_equal(back.map.xyz_m, made.map.xyz_m)
        assert back.metadata.extras["events"] == made.metadata.extras["events"]
