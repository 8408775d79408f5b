"""Fixtures for lake tests: a two-region lake on local folders, principals, synthetic inputs."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from datadrive.lake import (
    ExportPolicy,
    Grant,
    Lake,
    LakeConfig,
    Principal,
    RegionConfig,
    StorageRoot,
    TenantConfig,
)

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

KEYS = {"bmw": bytes(range(32)), "tencent": bytes(range(32, 64)), "baidu": bytes(range(64, 96))}


def two_region_config(root: Path, *, grants: tuple[Grant, ...] = ()) -> LakeConfig:
    """cn-north (GCJ-02, raw readable only from cn-north, metrics may go to eu-central) and eu-central."""
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
        tenants={name: TenantConfig(name, key) for name, key in KEYS.items()},
        grants=grants,
    )


def root_objects(root: StorageRoot) -> Iterator[tuple[str, bytes]]:
    """``(path, bytes)`` of every file under a region root, local or on an object store."""
    import pyarrow.fs as pafs

    fs = root.filesystem()
    for info in fs.get_file_info(pafs.FileSelector(root.base_path, recursive=True, allow_not_found=True)):
        if info.type == pafs.FileType.File:
            with fs.open_input_stream(info.path) as fh:
                yield info.path, fh.read()


def root_paths(root: StorageRoot) -> list[str]:
    """Paths (relative to the root) of every file under a region root, local or on an object store."""
    import pyarrow.fs as pafs

    infos = root.filesystem().get_file_info(
        pafs.FileSelector(root.base_path, recursive=True, allow_not_found=True)
    )
    start = len(root.base_path) + 1
    return sorted(i.path[start:] for i in infos if i.type == pafs.FileType.File)


@pytest.fixture
def lake_root(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def config(lake_root: Path) -> LakeConfig:
    return two_region_config(lake_root)


@pytest.fixture
def make_lake(config: LakeConfig) -> Callable[..., Lake]:
    """``make_lake(name, tenant, home)`` -> a Lake for that principal."""

    def make(name: str = "ana", tenant: str = "bmw", home: str = "cn-north") -> Lake:
        return Lake(config, Principal(name, tenant, home))

    return make


@pytest.fixture
def inputs(tmp_path: Path) -> Callable[..., list[Path]]:
    """``inputs(seeds, folder="in", **params)`` -> synthetic input files."""
    import lake_synth

    def make(seeds: range | list[int], folder: str = "in", **params: object) -> list[Path]:
        return lake_synth.write_inputs(tmp_path / folder, seeds, **params)

    return make
