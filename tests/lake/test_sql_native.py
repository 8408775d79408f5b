"""SQL reads local tables with DuckDB's own Parquet reader, over exactly the permitted files.

The native scan must answer exactly what the tenant-filtered Arrow dataset
answers, open no file of another tenant (even named by its exact path), and
leave tables it cannot read that way (not partitioned by tenant, empty) on
the Arrow path.
"""

from __future__ import annotations

from pathlib import Path

import lake_synth
import pytest
from lake_helpers import two_region_config

from datadrive.errors import LakeError, ResidencyError
from datadrive.lake import Erasure, Lake, Principal
from datadrive.lake.snapshot import readable_tables
from datadrive.lake.sql import SqlSession, parquet_scan

QUERIES = [
    "SELECT source, scenario_id, track_id, max(vx_mps) AS v FROM states GROUP BY ALL ORDER BY ALL",
    "SELECT tenant, source, count(*) AS n FROM tracks GROUP BY ALL ORDER BY ALL",
    "SELECT * FROM scenarios ORDER BY scenario_id",
    "SELECT kind_name, count(*) AS n FROM map_points GROUP BY ALL ORDER BY ALL",
]


@pytest.fixture
def two_tenants(lake_root: Path, inputs) -> tuple[Lake, Lake]:
    config = two_region_config(lake_root)
    bmw = Lake(config, Principal("ana", "bmw", "cn-north"))
    bmw.ingest(inputs(range(3), scenarios=2), "cn-north", registry=lake_synth.REGISTRY)
    tencent = Lake(config, Principal("li", "tencent", "cn-north"))
    tencent.ingest(inputs(range(3, 5), folder="t"), "cn-north", registry=lake_synth.REGISTRY)
    return bmw, tencent


def _sessions(lake: Lake) -> tuple[SqlSession, SqlSession, dict]:
    snap = lake.snapshot("cn-north")
    datasets = {name: snap._dataset(name) for name in readable_tables()}
    native = {n: s for n, d in snap._raw.items() if (s := parquet_scan(d, snap.tenants))}
    return SqlSession(datasets), SqlSession(datasets, native=native), native


def _run(session: SqlSession, query: str):
    def refuse(action, obj, exc):
        return exc

    return session.run(query, audit=lambda *a: None, refuse=refuse)


@pytest.mark.parametrize("query", QUERIES)
def test_native_scan_answers_what_the_arrow_dataset_answers(two_tenants, query) -> None:
    bmw, _ = two_tenants
    arrow, native, scans = _sessions(bmw)
    assert {"tracks", "scenarios", "map_features"} <= set(scans)
    a, b = _run(arrow, query), _run(native, query)
    assert a.num_rows > 0
    assert a.schema == b.schema
    assert repr(a.to_pylist()) == repr(b.to_pylist())  # NaN inside lists (repr: equal, ==: not)


def test_only_the_permitted_tenants_files_are_listed(two_tenants) -> None:
    bmw, _ = two_tenants
    _, _, scans = _sessions(bmw)
    for scan in scans.values():
        assert scan.paths
        assert all("tenant=bmw" in p for p in scan.paths)
        assert {dict(keys)["tenant"] for keys, _ in scan.groups} == {"bmw"}


def test_another_tenants_file_cannot_be_read_by_its_path(two_tenants, lake_root) -> None:
    bmw, _ = two_tenants
    theirs = sorted((lake_root / "cn-north" / "tracks").glob("tenant=tencent/**/*.parquet"))
    assert theirs
    with pytest.raises(ResidencyError, match="outside the lake's tables"):
        bmw.sql(f"SELECT count(*) FROM read_parquet('{theirs[0]}')", region="cn-north")
    mine = sorted((lake_root / "cn-north" / "tracks").glob("tenant=bmw/**/*.parquet"))
    with pytest.raises(ResidencyError):  # a glob is not one of the listed files
        bmw.sql(f"SELECT count(*) FROM read_parquet('{mine[0].parent}/*.parquet')", region="cn-north")


def test_a_tenant_with_no_rows_sees_empty_tables(lake_root, inputs) -> None:
    config = two_region_config(lake_root)
    Lake(config, Principal("ana", "bmw", "cn-north")).ingest(
        inputs(range(2)), "cn-north", registry=lake_synth.REGISTRY
    )
    outsider = Lake(config, Principal("wu", "baidu", "cn-north"))
    snap = outsider.snapshot("cn-north")
    snap.sql("SELECT 1")
    assert not any(parquet_scan(d, snap.tenants) for d in snap._raw.values())
    n = outsider.sql("SELECT count(*) AS n FROM states", region="cn-north").table.column("n")[0].as_py()
    assert n == 0


def test_the_ingests_log_stays_on_arrow(two_tenants) -> None:
    bmw, _ = two_tenants
    snap = bmw.snapshot("cn-north")
    snap.sql("SELECT 1")
    assert "ingests" not in {n for n, d in snap._raw.items() if parquet_scan(d, snap.tenants)}
    rows = bmw.sql("SELECT count(*) AS n FROM ingests", region="cn-north").table.column("n")[0].as_py()
    assert rows >= 1


def test_a_held_snapshot_whose_files_were_vacuumed_says_so(two_tenants) -> None:
    bmw, _ = two_tenants
    snap = bmw.snapshot("cn-north")
    victim = snap.scenarios()[0].scenario_id
    query = f"SELECT count(*) AS n FROM tracks WHERE scenario_id = '{victim}'"
    assert snap.sql(query).table.column("n")[0].as_py() > 0
    bmw.erase("cn-north", Erasure(tenant="bmw", scenario_ids=(victim,)))
    with pytest.raises(LakeError, match="SQL error"):  # its files are gone: nothing may answer
        snap.sql(query)
    assert bmw.sql(query, region="cn-north").table.column("n")[0].as_py() == 0
