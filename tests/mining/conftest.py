"""Fixtures for mining tests: real sample scenarios, read once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from datadrive.core.scenario import Scenario

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from mining_sample_data import read_sample  # noqa: E402  (after the sys.path entry)


@pytest.fixture(scope="session")
def sample(samples: Path):  # type: ignore[no-untyped-def]
    """``sample("waymo")`` -> the first scenario of that sample."""

    def get(key: str, index: int = 0) -> Scenario:
        return read_sample(samples, key)[index]

    return get


@pytest.fixture(scope="session")
def mined_lake(samples: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A lake with real samples in eu-central (bmw), indexed and tagged: read it, do not change it.

    Two AV2 motion-forecasting scenarios and an AV2 sensor log (whose
    annotations leave a few velocities unknown: NaN in the raw tracks).
    """
    import shutil

    from datadrive.lake import Lake, LakeConfig, Principal, RegionConfig, StorageRoot, TenantConfig
    from datadrive.mining import tag_lake

    root = tmp_path_factory.mktemp("mined_lake")
    inputs = root / "in"
    inputs.mkdir()
    for d in sorted((samples / "av2_motion_forecasting").iterdir())[:2]:
        shutil.copytree(d, inputs / d.name)
    sensor = samples / "av2_sensor" / "7fab2350-7eaf-3b7e-a39d-6937a4c1bede"
    if not sensor.is_dir():
        pytest.skip(f"sample {sensor} not found")
    config = LakeConfig(
        regions={"eu-central": RegionConfig("eu-central", StorageRoot(str(root / "eu")))},
        tenants={"bmw": TenantConfig("bmw", bytes(range(32)))},
    )
    lake = Lake(config, Principal("ana", "bmw", "eu-central"))
    report = lake.ingest([inputs, sensor], "eu-central")
    assert report.ok, report
    tagged = tag_lake(lake, "eu-central")
    assert tagged.failures == ()
    assert tagged.indexed == tagged.scenarios == 3
    return lake
