"""Session fixtures for the dataset, model, training and evaluation tests: a lake of real samples.

One two-region lake per test session holds the real AV2 motion-forecasting,
nuScenes (ScenarioNet) and INTERACTION samples in ``eu-central`` (tenant
``bmw``); a dataset of every scenario long enough for the AV2 horizons is
curated from it by SQL, and its feature cache built once. Tests that write
build their own lakes or copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from datadrive.lake import Lake, LakeConfig, Principal
from region_configs import two_region_config

SOURCES = ("av2_motion_forecasting", "scenarionet_nuscenes", "interaction")
SQL = "SELECT scenario_id FROM scenarios WHERE num_steps >= 110"


def learning_config(root: Path) -> LakeConfig:
    """cn-north: China rules (aggregates, metrics may go to eu-central); eu-central: models may leave."""
    return two_region_config(root, {"bmw": bytes(range(32))})


@dataclass
class SampleLake:
    """The session's lake, its dataset and the dataset's cache."""

    root: Path
    config: LakeConfig
    manifest: object
    cache_path: Path

    def lake(self, home: str = "eu-central", name: str = "ana") -> Lake:
        return Lake(self.config, Principal(name, "bmw", home))


@pytest.fixture(scope="session")
def sample_lake(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> SampleLake:
    from datadrive.compute import InlineEngine
    from datadrive.curate import AV2_FEATURES, DatasetQuery, build_cache, create_dataset

    root = tmp_path_factory.mktemp("learning") / "lake"
    config = learning_config(root)
    lake = Lake(config, Principal("ana", "bmw", "eu-central"))
    lake.init()
    report = lake.ingest([samples / s for s in SOURCES], region="eu-central", engine=InlineEngine())
    assert report.ok, report.counts()
    manifest = create_dataset(lake, "samples", "eu-central", DatasetQuery.sql(SQL))
    cache = build_cache(lake, manifest, AV2_FEATURES, shard_size=8, engine=InlineEngine())
    assert cache.ok, cache.failed
    return SampleLake(root, config, manifest, cache.path)


def subset_cache(source: Path, target: Path, train: int, val: int) -> Path:
    """A copy of the cache at ``source`` keeping the first ``train`` / ``val`` samples of those splits.

    The rest go to the third split (``test``), which the trainer does not
    read: the samples, shards and maps stay real, only fewer are trained on.
    """
    import shutil

    import numpy as np

    from datadrive.curate import FeatureCache

    shutil.copytree(source, target)
    full = FeatureCache(target)
    keep_train = full.split_indices("train")[:train]
    keep_val = full.split_indices("val")[:val]
    for d in sorted(target.glob("shard-*")):
        col = np.load(d / "sample_split.npy")
        lo = int(full._offsets[int(d.name.split("-")[1])])
        idx = np.arange(lo, lo + col.size)
        new = np.where(np.isin(idx, keep_train), 0, np.where(np.isin(idx, keep_val), 1, 2))
        np.save(d / "sample_split.npy", new.astype(np.uint8))
    return target


@pytest.fixture(scope="session")
def small_cache_path(sample_lake: SampleLake, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session cache with 12 training and 4 validation samples: for tests of the loop, not of learning."""
    return subset_cache(sample_lake.cache_path, tmp_path_factory.mktemp("small") / "cache", train=12, val=4)
