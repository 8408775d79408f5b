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
