"""Fixtures for lake tests: a two-region lake on local folders, principals, synthetic inputs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from datadrive.lake import (
    Lake,
    LakeConfig,
    Principal,
)

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from lake_helpers import two_region_config  # noqa: E402


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
