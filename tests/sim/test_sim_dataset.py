"""Simulating a curated dataset: its scenarios, at the lake version it was built from, one split or all."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_bad_input_and_fleet import _maps

from datadrive.errors import ConfigError, DatasetError


@pytest.mark.slow
def test_simulate_a_curated_dataset_at_its_lake_version(tmp_path: Path, samples: Path) -> None:
    from datadrive.curate import DatasetQuery, SplitSpec, create_dataset
    from datadrive.lake import Lake, LakeConfig, Principal, RegionConfig, StorageRoot, TenantConfig
    from datadrive.sim import FleetConfig, SimRequest, generate_into_lake, simulate_lake
    from datadrive.sim.runner import select_ids

    config = LakeConfig(
        regions={"eu": RegionConfig("eu", StorageRoot(str(tmp_path / "eu")))},
        tenants={"t": TenantConfig("t", bytes(range(32)))},
    )
    lake = Lake(config, Principal("ana", "t", "eu"))
    lake.init(["eu"])
    fleet = FleetConfig(maps=_maps(samples)[:1], seed=2)
    generate_into_lake(lake, "eu", fleet, 6, commit_every=6)
    built = create_dataset(
        lake,
        "urban",
        "eu",
        DatasetQuery.sql("SELECT scenario_id FROM scenarios WHERE source = 'synthetic'"),
        split=SplitSpec.parse("50/50", group_by="scenario_id"),
    )
    generate_into_lake(lake, "eu", fleet, 3, start=6, commit_every=3)  # after the dataset: not in it
    assert len(select_ids(lake, "eu", query=None, dataset=None, version=None)[1]) == 9

    run = simulate_lake(lake, "eu", SimRequest(policy="log"), dataset="urban", store=False)
    assert run.lake_version == built.lake_version
    assert sorted(r["scenario_id"] for r in run.rows) == sorted(set(built.scenario_ids))
    assert all(r["status"] == "ok" for r in run.rows)

    version, val_ids = select_ids(lake, "eu", query=None, dataset="urban@v1", version=None, split="val")
    expected = sorted(i for _, _, i in built.keys("val"))
    assert (version, val_ids) == (built.lake_version, expected)
    assert 0 < len(val_ids) < 6

    with pytest.raises(ConfigError, match="built from lake version"):
        select_ids(lake, "eu", query=None, dataset="urban", version=built.lake_version + 1)
    with pytest.raises(ConfigError, match="give --dataset"):
        select_ids(lake, "eu", query=None, dataset=None, version=None, split="val")
    with pytest.raises(DatasetError):
        select_ids(lake, "eu", query=None, dataset="nope", version=None)
    with pytest.raises(DatasetError):
        select_ids(lake, "eu", query=None, dataset="urban", version=None, split="holdout")
