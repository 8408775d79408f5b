"""Shared fixtures: where the real sample data lives.

Samples are found through ``DATADRIVE_SAMPLES`` or ``../shared/data`` beside
the checkout. A test that needs them skips with a reason when they are
absent, except under ``CI=true``, where their absence fails the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def samples_root() -> Path | None:
    env = os.environ.get("DATADRIVE_SAMPLES")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return None


@pytest.fixture(scope="session")
def samples() -> Path:
    """The sample-data folder (see ``../shared/data/SOURCES.md``)."""
    root = samples_root()
    if root is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("sample data missing: set DATADRIVE_SAMPLES or place it at ../shared/data")
        pytest.skip("sample data not found: set DATADRIVE_SAMPLES or place it at ../shared/data")
    return root


# the lake of real samples shared by the curate, models, train and evaluate tests
pytest_plugins = ["learning_fixtures"]
