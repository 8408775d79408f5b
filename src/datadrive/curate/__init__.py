"""Curated datasets and the feature cache: from mined scenarios to training-ready tensors.

* :mod:`datadrive.curate.dataset`: versioned, in-region datasets (a query,
  the lake version it ran on, the selected scenario ids, splits by log),
  ``create``/``load``/``list``/``diff``.
* :mod:`datadrive.curate.features`: agent-centric features, vectorised per
  scenario (windows, agents, map segments stored once, targets' futures).
* :mod:`datadrive.curate.columns`: a shard's scenarios as arrays straight
  from the lake's columns (what the cache featurises; no ``Scenario``
  objects rebuilt).
* :mod:`datadrive.curate.cache`: memory-mappable shards beside the dataset
  version, built on the shared compute engines, resumable, extensible by
  column group.
* :mod:`datadrive.curate.loader`: size-grouped batches in the target's
  frame, read from the memory-mapped shards.

May import: ``core``, ``compute``, ``lake`` and ``mining`` (never the
layers above: models, train, evaluate, sim). ``docs/datasets.md`` is the
user guide.
"""

from datadrive.curate.cache import (
    CACHE_FORMAT,
    GROUP_COLUMNS,
    CacheReport,
    ShardResult,
    build_cache,
    cache_dir_for,
    read_cache_manifest,
    shard_groups,
)
from datadrive.curate.columns import shard_arrays
from datadrive.curate.dataset import (
    DATASET_FORMAT,
    DEFAULT_SPLIT,
    DatasetDiff,
    DatasetManifest,
    DatasetQuery,
    DatasetRef,
    SplitSpec,
    assign_splits,
    create_dataset,
    dataset_events,
    diff_datasets,
    list_datasets,
    load_dataset,
)
from datadrive.curate.features import (
    AV2_FEATURES,
    FEATURE_GROUPS,
    WOMD_FEATURES,
    FeatureConfig,
    ScenarioArrays,
    ScenarioFeatures,
    SkippedScenario,
    TargetKind,
    concat_features,
    featurize_arrays,
    featurize_scenario,
    map_segments,
    resample_scenario,
)
from datadrive.curate.loader import BatchLoader, FeatureBatch, FeatureCache, epoch_batches

__all__ = [
    "AV2_FEATURES",
    "CACHE_FORMAT",
    "DATASET_FORMAT",
    "DEFAULT_SPLIT",
    "FEATURE_GROUPS",
    "GROUP_COLUMNS",
    "WOMD_FEATURES",
    "BatchLoader",
    "CacheReport",
    "DatasetDiff",
    "DatasetManifest",
    "DatasetQuery",
    "DatasetRef",
    "FeatureBatch",
    "FeatureCache",
    "FeatureConfig",
    "ScenarioArrays",
    "ScenarioFeatures",
    "ShardResult",
    "SkippedScenario",
    "SplitSpec",
    "TargetKind",
    "assign_splits",
    "build_cache",
    "cache_dir_for",
    "concat_features",
    "create_dataset",
    "dataset_events",
    "diff_datasets",
    "epoch_batches",
    "featurize_arrays",
    "featurize_scenario",
    "list_datasets",
    "load_dataset",
    "map_segments",
    "read_cache_manifest",
    "resample_scenario",
    "shard_arrays",
    "shard_groups",
]
