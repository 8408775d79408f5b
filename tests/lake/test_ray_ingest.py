"""Ingest on a 2-node Ray cluster (``--engine ray``): every sample, the same lake as the process pool's.

The cluster is ``services.ray_cluster`` (127.0.0.1 only). The lake is
``test_samples``'s sample lake built with the Ray engine instead of a local
process pool; ``test_samples``' own assertions (every input accounted for,
SQL and library reads equal to the raw files) run on it, and its contents
are compared with the process-pool lake's, row by row.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kill_harness
import pyarrow as pa
import pytest
import test_samples

from datadrive.compute.ray_engine import RayEngine
from datadrive.core.scenario import scenarios_equal
from datadrive.lake import Lake, Principal
from services import RAY_ENV, RayCluster, ray_cluster

__all__ = ["ray_cluster"]  # the fixture, imported so pytest finds it here

pytestmark = [pytest.mark.service, pytest.mark.slow]
REGIONS = test_samples.REGIONS
VOLATILE = {"batch_id", "ingested_at", "ingested_by", "ingest_date"}
"""Columns that differ between two runs of the same ingest (when and by whom)."""


@contextlib.contextmanager
def _patched(module: Any, name: str, value: Any) -> Iterator[None]:
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


@pytest.fixture(scope="module")
def sample_lake(
    samples: Path, tmp_path_factory: pytest.TempPathFactory, ray_cluster: RayCluster
) -> dict[str, Any]:
    """``test_samples``'s sample lake, read on the Ray cluster (``ProcessPoolEngine(2)`` swapped for Ray)."""
    engines: list[RayEngine] = []

    def ray_engine(workers: int | None = None) -> RayEngine:
        engines.append(RayEngine(ray_cluster.address))
        return engines[-1]

    try:
        with _patched(test_samples, "ProcessPoolEngine", ray_engine):
            lake: dict[str, Any] = test_samples.sample_lake.__wrapped__(samples, tmp_path_factory)  # type: ignore[attr-defined]
    finally:
        for e in engines:
            e.close()
    assert len(engines) == len(REGIONS)
    return lake


@pytest.fixture(scope="module")
def process_pool_lake(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same lake built with the process pool, for comparison."""
    lake: dict[str, Any] = test_samples.sample_lake.__wrapped__(samples, tmp_path_factory)  # type: ignore[attr-defined]
    return lake


test_every_input_is_accounted_for = test_samples.test_every_input_is_accounted_for
test_sql_matches_inspect_of_the_raw_files = test_samples.test_sql_matches_inspect_of_the_raw_files
test_library_matches_inspect_of_the_raw_files = test_samples.test_library_matches_inspect_of_the_raw_files


def _stable(table: pa.Table, keys: list[str]) -> list[Any]:
    """Rows sorted by ``keys``, without :data:`VOLATILE` columns, NaN made comparable."""
    cols = [c for c in table.column_names if c not in VOLATILE]
    rows: list[Any] = _nan_safe(table.select(cols).sort_by([(k, "ascending") for k in keys]).to_pylist())
    return rows


def _nan_safe(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, list):
        return [_nan_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _nan_safe(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("region", REGIONS)
def test_same_lake_as_the_process_pool(
    sample_lake: dict[str, Any], process_pool_lake: dict[str, Any], region: str
) -> None:
    ray_lake = Lake(sample_lake["config"], Principal("ana", "bmw", region))
    pool_lake = Lake(process_pool_lake["config"], Principal("ana", "bmw", region))
    a, b = ray_lake.snapshot(region), pool_lake.snapshot(region)
    # every scenario exactly once, the same scenarios, equal array for array
    ra, rb = a.scenarios(), b.scenarios()
    ids = [(s.source, s.scenario_id) for s in ra]
    assert len(ids) == len(set(ids)) > 0
    by_id = {(s.source, s.scenario_id): s for s in rb}
    assert set(ids) == set(by_id)
    for s in ra:
        assert scenarios_equal(s, by_id[(s.source, s.scenario_id)]), s.scenario_id
    # table rows too, apart from when and by whom they were written
    for table, keys in (("scenarios", ["source", "scenario_id"]), ("ingests", ["input_sha256"])):
        assert _stable(a.table(table), keys) == _stable(b.table(table), keys), table
    assert sorted(t.telemetry_id for t in a.telemetry()) == sorted(t.telemetry_id for t in b.telemetry())


def test_cli_engine_ray(ray_cluster: RayCluster, samples: Path, tmp_path: Path) -> None:
    check_cli_engine_ray(kill_harness.make_lake(tmp_path / "lake"), ray_cluster, samples)


def check_cli_engine_ray(root: Path, ray_cluster: RayCluster, samples: Path) -> None:
    """``datadrive ingest --engine ray`` into the lake ``root``'s eu-central: every AV2 scenario once."""
    env = {**kill_harness.cli_env(), **RAY_ENV}  # the CLI is a Ray driver: it too stays on 127.0.0.1
    args = [
        "ingest",
        str(samples / "av2_motion_forecasting"),
        "--lake",
        str(root),
        "--region",
        "eu-central",
        "--tenant",
        "bmw",
        "--engine",
        "ray",
        "--ray-address",
        ray_cluster.address,
        "--json",
    ]
    out = kill_harness.cli(args, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["counts"]["ingested"] == 3
    again = kill_harness.cli(args, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["counts"]["duplicate"] == 3
