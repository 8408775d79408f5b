"""A derived per-scenario table (as mining's events will be): versioned, time travel, erasure."""

from __future__ import annotations

import lake_synth
import pyarrow as pa
import pytest

from datadrive.errors import LakeError, ResidencyError
from datadrive.lake import Erasure, schema
from datadrive.lake.tables import RegionStore

EVENTS = schema.derived_table(
    "test_events",
    [("event", pa.string()), ("start_step", pa.int32())],
    description="test events, one row per scenario x event",
)


@pytest.fixture
def events_table(monkeypatch: pytest.MonkeyPatch) -> schema.TableSpec:
    """Declare the table as a layer would in ``schema.DERIVED_TABLES``."""
    monkeypatch.setattr(schema, "DERIVED_TABLES", (EVENTS,))
    return EVENTS


@pytest.fixture
def lake(make_lake, inputs, events_table):  # type: ignore[no-untyped-def]
    lk = make_lake(home="eu-central")
    lk.ingest(inputs(range(3)), "eu-central", registry=lake_synth.REGISTRY)
    return lk


def _events(snap, per_scenario: int = 2) -> pa.Table:  # type: ignore[no-untyped-def]
    keys = snap.table("scenarios", columns=["tenant", "source", "scenario_id"]).to_pylist()
    rows = [{**k, "event": f"e{i}", "start_step": i} for k in keys for i in range(per_scenario)]
    return pa.Table.from_pylist(rows)


def _count(lake, version=None) -> int:  # type: ignore[no-untyped-def]
    q = "SELECT count(*) AS n FROM test_events"
    return int(lake.sql(q, region="eu-central", version=version).table.column("n")[0].as_py())


def test_derived_rows_are_a_lake_version_and_time_travel(lake) -> None:
    snap = lake.snapshot("eu-central")
    before = snap.version
    version = lake.append_derived("eu-central", "test_events", _events(snap), derived_from=snap)
    assert version == before + 1
    assert _count(lake) == 6
    assert _count(lake, before) == 0, "lake versions before the derive do not see its rows"
    row = lake.snapshot("eu-central").table("test_events").to_pylist()[0]
    assert row["derived_from_version"] == before
    assert len(row["batch_id"]) == 32
    assert lake.history("eu-central")[0].operation == "derive"
    assert lake.check("eu-central").ok


def test_erasing_a_scenario_erases_its_derived_rows(lake) -> None:
    snap = lake.snapshot("eu-central")
    lake.append_derived("eu-central", "test_events", _events(snap), derived_from=snap)
    victim = snap.scenarios()[0].scenario_id
    lake.erase("eu-central", Erasure(tenant="bmw", scenario_ids=(victim,)))
    left = lake.snapshot("eu-central").table("test_events")
    assert victim not in left.column("scenario_id").to_pylist()
    assert left.num_rows == 4
    report = lake.check("eu-central")
    assert report.ok, report.problems


def test_a_crashed_derive_is_invisible_and_cleaned_by_the_next_writer(lake, inputs) -> None:
    from deltalake import write_deltalake

    from datadrive.lake import commit

    snap = lake.snapshot("eu-central")
    store = RegionStore(lake.config.region("eu-central"))
    # what append_derived does before its lake commit: the marker, then the rows
    rows = _events(snap).append_column("batch_id", pa.array(["deadbeef" * 4] * 6))
    commit.start(store, "deadbeef" * 4, {"op": "derive", "batch_id": "deadbeef" * 4})
    write_deltalake(
        store.uri(EVENTS), schema.conform(EVENTS, rows), mode="append", partition_by=["tenant", "source"]
    )
    # -- crash --
    assert _count(lake) == 0, "rows beyond the pinned version are invisible"
    lake.ingest(inputs([50]), "eu-central", registry=lake_synth.REGISTRY)  # the next writer recovers
    assert _count(lake) == 0
    assert RegionStore(lake.config.region("eu-central")).arrow(EVENTS).count_rows() == 0, "deleted"
    assert lake.check("eu-central").pending == 0


def test_rows_must_name_scenarios_of_the_snapshot(lake) -> None:
    snap = lake.snapshot("eu-central")
    bad = pa.table({"tenant": ["bmw"], "source": ["synthetic"], "scenario_id": ["nope"], "event": ["x"]})
    with pytest.raises(LakeError, match="name no scenario of lake version"):
        lake.append_derived("eu-central", "test_events", bad, derived_from=snap)
    with pytest.raises(LakeError, match="not a derived per-scenario table"):
        lake.append_derived("eu-central", "scenarios", bad, derived_from=snap)


def test_rows_derived_from_one_region_cannot_go_to_another(make_lake, inputs, events_table) -> None:
    cn = make_lake(home="cn-north")
    cn.ingest(inputs(range(1)), "cn-north", registry=lake_synth.REGISTRY)
    snap = cn.snapshot("cn-north")
    with pytest.raises(ResidencyError, match="stay in cn-north"):
        cn.append_derived("eu-central", "test_events", _events(snap), derived_from=snap)


def test_row_group_size_holds_on_append_erase_and_optimize(make_lake, inputs, monkeypatch, lake_root) -> None:
    import dataclasses

    import pyarrow.parquet as pq

    small = dataclasses.replace(EVENTS, row_group_rows=4)
    monkeypatch.setattr(schema, "DERIVED_TABLES", (small,))
    lake = make_lake(home="eu-central")
    lake.ingest(inputs(range(3)), "eu-central", registry=lake_synth.REGISTRY)
    snap = lake.snapshot("eu-central")
    lake.append_derived("eu-central", "test_events", _events(snap, per_scenario=10), derived_from=snap)

    def groups() -> list[int]:  # erasure and optimize vacuum: only live files are on disk
        files = sorted((lake_root / "eu-central" / "test_events").rglob("*.parquet"))
        return [
            pq.ParquetFile(f).metadata.row_group(i).num_rows
            for f in files
            for i in range(pq.ParquetFile(f).metadata.num_row_groups)
        ]

    def codecs() -> set[
        str
    ]:  # delta-rs writes UNCOMPRESSED unless told: these files are zstd like staged ones
        files = sorted((lake_root / "eu-central" / "test_events").rglob("*.parquet"))
        metas = [pq.ParquetFile(f).metadata for f in files if "_delta_log" not in f.parts]
        return {
            md.row_group(i).column(j).compression
            for md in metas
            for i in range(md.num_row_groups)
            for j in range(md.num_columns)
        }

    assert len(groups()) > 1
    assert max(groups()) == 4
    assert codecs() == {"ZSTD"}
    victim = snap.scenarios()[0].scenario_id
    lake.erase("eu-central", Erasure(tenant="bmw", scenario_ids=(victim,)))
    assert max(groups()) == 4
    assert codecs() == {"ZSTD"}
    lake.optimize("eu-central", vacuum_retention_hours=0)
    assert max(groups()) == 4
    assert codecs() == {"ZSTD"}
    assert _count(lake) == 20
