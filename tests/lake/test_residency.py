"""Residency: every path that could move raw data across regions is refused and audited.

Paths tried: export of each raw table (to a region, to a folder), SQL that
copies or reads files (COPY, EXPORT DATABASE, ATTACH, read_parquet of the
other region's folder, INSTALL/LOAD), a read by a principal abroad (library,
SQL), a dataset build that writes records read in one region into another,
and storing an artefact derived from one region in another.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import lake_synth
import pytest
from lake_helpers import root_paths, two_region_config

from datadrive.errors import AccessDeniedError, ResidencyError
from datadrive.lake import ExportPolicy, Grant, Lake, Principal
from datadrive.lake import audit as audit_log
from datadrive.lake.tables import RegionStore

RAW_TABLES = ["scenarios", "tracks", "map_features", "telemetry", "ingests", "audit"]


def last_audit(lake: Lake, region: str) -> dict:
    """The newest audit row, read without a principal (so without adding a row)."""
    rows = audit_log.read(RegionStore(lake.config.region(region))).to_pylist()
    return rows[-1]


@pytest.fixture
def cn_lake(make_lake, inputs) -> Lake:
    lake = make_lake("ana", "bmw", "cn-north")
    lake.ingest(inputs(range(3), scenarios=2, telemetry=True), "cn-north", registry=lake_synth.REGISTRY)
    lake.init(["eu-central"])
    return lake


def assert_refused(lake: Lake, region: str, action: str, error: str) -> None:
    row = last_audit(lake, region)
    assert row["outcome"] == "refused"
    assert row["action"] == action
    assert row["who"] == lake.principal.name
    assert json.loads(row["detail"])["error"] == error


@pytest.mark.parametrize("table", RAW_TABLES)
@pytest.mark.parametrize("to", ["eu-central", "external"])
def test_export_of_raw_tables_is_refused_and_audited(cn_lake, table, to, tmp_path) -> None:
    with pytest.raises(ResidencyError, match="raw data of region cn-north"):
        cn_lake.export(table, region="cn-north", to=to, dest_path=tmp_path / "out")
    assert_refused(cn_lake, "cn-north", "export", "ResidencyError")
    assert not (tmp_path / "out").exists()
    assert not [p for p in root_paths(cn_lake.config.region("eu-central").root) if p.startswith("imports/")]


SQL_ESCAPES = {
    "copy-to-file": "COPY (SELECT * FROM tracks) TO '{eu}/stolen.parquet' (FORMAT parquet)",
    "copy-table": "COPY scenarios TO '{eu}/stolen.csv'",
    "export-database": "EXPORT DATABASE '{eu}/dump'",
    "attach": "ATTACH '{eu}/other.duckdb' AS other",
    "read-other-region": "SELECT count(*) FROM read_parquet('{eu}/**/*.parquet')",
    "read-own-files": "SELECT count(*) FROM read_parquet('{cn}/tracks/**/*.parquet')",
    "glob": "SELECT * FROM glob('{cn}/**')",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
}


@pytest.mark.parametrize("query", list(SQL_ESCAPES.values()), ids=list(SQL_ESCAPES))
def test_sql_that_touches_files_is_refused_and_audited(cn_lake, query) -> None:
    roots = {k: cn_lake.config.region(r).root.uri for k, r in (("cn", "cn-north"), ("eu", "eu-central"))}
    with pytest.raises(ResidencyError):
        cn_lake.sql(query.format(**roots), region="cn-north")
    assert_refused(cn_lake, "cn-north", "sql", "ResidencyError")
    eu_files = root_paths(cn_lake.config.region("eu-central").root)
    assert not [p for p in eu_files if p.startswith(("stolen", "dump", "other.duckdb"))]


@pytest.mark.parametrize(
    "query",
    [
        "CREATE TABLE x AS SELECT 1",
        "INSERT INTO scenarios SELECT * FROM scenarios",
        "SET threads = 1",
        "SELECT 1; SELECT 2",
    ],
    ids=["create", "insert", "set", "two-statements"],
)
def test_sql_that_is_not_a_select_is_refused_and_audited(cn_lake, query) -> None:
    with pytest.raises(AccessDeniedError):
        cn_lake.sql(query, region="cn-north")
    assert_refused(cn_lake, "cn-north", "sql", "AccessDeniedError")


def test_reads_from_abroad_count_as_export(cn_lake, config) -> None:
    abroad = Lake(config, Principal("eve", "bmw", "eu-central"))
    for attempt in (
        lambda: abroad.snapshot("cn-north"),
        lambda: abroad.sql("SELECT count(*) FROM scenarios", region="cn-north"),
        lambda: abroad.audit_log("cn-north"),
    ):
        with pytest.raises(ResidencyError, match="is in eu-central"):
            attempt()
        row = last_audit(abroad, "cn-north")
        assert row["outcome"] == "refused"
        assert row["who"] == "eve"
        assert row["home_region"] == "eu-central"


def test_a_policy_can_let_principals_abroad_read(lake_root, inputs) -> None:
    config = two_region_config(lake_root)
    eu = config.regions["eu-central"]
    regions = dict(config.regions)
    regions["eu-central"] = replace(eu, raw_readers=frozenset({"cn-north"}))
    config = replace(config, regions=regions)
    Lake(config, Principal("ana", "bmw", "eu-central")).ingest(
        inputs(range(2)), "eu-central", registry=lake_synth.REGISTRY
    )
    visitor = Lake(config, Principal("li", "bmw", "cn-north"))
    assert (
        visitor.sql("SELECT count(*) AS n FROM scenarios", region="eu-central").table.column("n")[0].as_py()
        == 2
    )


def test_dataset_build_cannot_write_one_regions_records_into_another(cn_lake) -> None:
    records = cn_lake.snapshot("cn-north").scenarios()
    assert all(r.metadata.region == "cn-north" for r in records)
    with pytest.raises(ResidencyError, match="stays in the region"):
        cn_lake.ingest_records(records, "eu-central", name="dataset-build")
    assert_refused(cn_lake, "eu-central", "ingest", "ResidencyError")
    assert_refused(cn_lake, "cn-north", "export", "ResidencyError")
    eu = RegionStore(cn_lake.config.region("eu-central"))
    assert eu.lake_version() == 0, "nothing was written to eu-central"


def test_derived_artefact_of_one_region_cannot_be_stored_in_another(cn_lake) -> None:
    snap = cn_lake.snapshot("cn-north")
    with pytest.raises(ResidencyError, match="use export"):
        cn_lake.put_derived("eu-central", "metrics", "m.json", b"{}", derived_from=snap)
    assert_refused(cn_lake, "cn-north", "export", "ResidencyError")


def test_derived_exports_follow_the_policy(cn_lake, tmp_path) -> None:
    snap = cn_lake.snapshot("cn-north")
    metrics = cn_lake.put_derived(
        "cn-north", "metrics", "eval/run1.json", b'{"minADE": 1.2}', derived_from=snap
    )
    model = cn_lake.put_derived("cn-north", "model", "weights.pt", b"\x00" * 64, derived_from=snap)
    report = cn_lake.export(metrics, region="cn-north", to="eu-central")
    dest = cn_lake.config.region(
        "eu-central"
    ).root  # a folder or an object store: read it through its filesystem
    assert report.destination == dest.table_uri(metrics)
    fs, copied = dest.filesystem(), dest.path(*metrics.split("/"))
    with fs.open_input_stream(copied) as fh:
        assert fh.read() == b'{"minADE": 1.2}'
    with fs.open_input_stream(copied + ".provenance.json") as fh:
        provenance = json.loads(fh.read())
    assert provenance["derived_from"] == {"region": "cn-north", "lake_version": snap.version}
    assert last_audit(cn_lake, "eu-central")["action"] == "import"
    assert last_audit(cn_lake, "cn-north")["outcome"] == "ok"
    with pytest.raises(ResidencyError, match="does not let model artefacts leave"):
        cn_lake.export(model, region="cn-north", to="eu-central")
    assert_refused(cn_lake, "cn-north", "export", "ResidencyError")
    with pytest.raises(ResidencyError, match="does not allow exports to external"):
        cn_lake.export(metrics, region="cn-north", to="external", dest_path=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_raw_export_happens_only_where_the_policy_says_so(lake_root, inputs) -> None:
    config = two_region_config(lake_root)
    regions = dict(config.regions)
    regions["eu-central"] = replace(
        regions["eu-central"], export=ExportPolicy(raw_to=frozenset({"cn-north"}))
    )
    config = replace(config, regions=regions)
    lake = Lake(config, Principal("ana", "bmw", "eu-central"))
    lake.ingest(inputs(range(2)), "eu-central", registry=lake_synth.REGISTRY)
    lake.init(["cn-north"])
    report = lake.export("scenarios", region="eu-central", to="cn-north")
    assert report.size == 2
    assert last_audit(lake, "cn-north")["action"] == "import"


def test_tenants_see_only_their_rows_unless_granted(lake_root, inputs) -> None:
    config = two_region_config(lake_root)
    Lake(config, Principal("ana", "bmw", "cn-north")).ingest(
        inputs(range(2)), "cn-north", registry=lake_synth.REGISTRY
    )
    outsider = Lake(config, Principal("li", "tencent", "cn-north"))
    assert outsider.snapshot("cn-north").scenarios() == []
    assert (
        outsider.sql("SELECT count(*) AS n FROM tracks", region="cn-north").table.column("n")[0].as_py() == 0
    )
    granted = replace(config, grants=(Grant("bmw", "tencent", frozenset({"cn-north"})),))
    partner = Lake(granted, Principal("li", "tencent", "cn-north"))
    assert len(partner.snapshot("cn-north").scenarios()) == 2
    elsewhere = replace(config, grants=(Grant("bmw", "tencent", frozenset({"eu-central"})),))
    assert Lake(elsewhere, Principal("li", "tencent", "cn-north")).snapshot("cn-north").scenarios() == []


def test_unknown_tenant_is_refused_and_audited(cn_lake, config) -> None:
    stranger = Lake(config, Principal("mallory", "acme", "cn-north"))
    with pytest.raises(AccessDeniedError, match="not a tenant"):
        stranger.snapshot("cn-north")
    assert last_audit(stranger, "cn-north")["who"] == "mallory"


def test_a_root_holds_one_region(cn_lake, config) -> None:
    regions = dict(config.regions)
    regions["eu-central"] = replace(regions["eu-central"], root=regions["cn-north"].root)
    with pytest.raises(ResidencyError, match="holds region 'cn-north'"):
        RegionStore(regions["eu-central"]).check_marker()


def test_raw_files_stay_under_their_region_root(cn_lake, config) -> None:
    cn = Path(config.region("cn-north").root.uri)
    eu = Path(config.region("eu-central").root.uri)
    cn_files = [p for p in cn.rglob("*.parquet")]
    assert cn_files
    assert not [p for p in eu.rglob("*.parquet") if "audit" not in p.parts]
