"""Ingest of synthetic inputs: lossless round trip, idempotency, bad input among good, batching."""

from __future__ import annotations

from pathlib import Path

import lake_synth
import numpy as np
import pyarrow.dataset as ds
import pytest

from datadrive.compute import InlineEngine, ProcessPoolEngine
from datadrive.core import Scenario, Telemetry, scenarios_equal, summarize
from datadrive.lake import IngestOptions, Pseudonymizer
from datadrive.lake.geo import publisher_for
from datadrive.lake.records import prepare
from datadrive.lake.schema import INGESTS, TRACKS
from datadrive.lake.tables import RegionStore


def _expected(paths: list[Path], *, key: bytes, region: str, crs: str, tenant: str = "bmw") -> list:
    out = []
    for p in paths:
        for rec in lake_synth.records_of(p):
            out.append(
                prepare(
                    rec,
                    region=region,
                    tenant=tenant,
                    pseudonyms=Pseudonymizer(key),
                    publisher=publisher_for(crs),
                )
            )
    return out


def _telemetry_equal(a: Telemetry, b: Telemetry) -> bool:
    if (a.telemetry_id, a.source, a.metadata) != (b.telemetry_id, b.source, b.metadata):
        return False
    if len(a.signals) != len(b.signals):
        return False
    for x, y in zip(a.signals, b.signals, strict=True):
        if (x.name, x.unit, x.channels, x.channel_units) != (y.name, y.unit, y.channels, y.channel_units):
            return False
        if not (np.array_equal(x.timestamps_ns, y.timestamps_ns) and np.array_equal(x.values, y.values)):
            return False
    if (a.ego is None) != (b.ego is None):
        return False
    return a.ego is None or scenarios_equal(a.ego, b.ego)  # type: ignore[arg-type]


@pytest.mark.parametrize("region", ["eu-central", "cn-north"], ids=["wgs84-region", "gcj02-region"])
def test_round_trip_is_lossless_apart_from_pseudonyms(make_lake, inputs, config, region) -> None:
    paths = inputs(range(3), scenarios=2, telemetry=True)
    lake = make_lake(home=region)
    report = lake.ingest(paths, region, registry=lake_synth.REGISTRY)
    assert report.counts() == {"ingested": 3, "duplicate": 0, "unsupported": 0, "failed": 0}
    snap = lake.snapshot(region)
    got_s = {s.scenario_id: s for s in snap.scenarios()}
    got_t = {t.telemetry_id: t for t in snap.telemetry()}
    expected = _expected(
        paths, key=config.tenant("bmw").key, region=region, crs=config.region(region).publish_crs
    )
    exp_s = [r for r in expected if isinstance(r, Scenario)]
    exp_t = [r for r in expected if isinstance(r, Telemetry)]
    assert sorted(got_s) == sorted(s.scenario_id for s in exp_s)
    for e in exp_s:
        assert scenarios_equal(e, got_s[e.scenario_id]), e.scenario_id
        got_s[e.scenario_id].validate()
    assert sorted(got_t) == sorted(t.telemetry_id for t in exp_t)
    for e in exp_t:
        assert _telemetry_equal(e, got_t[e.telemetry_id]), e.telemetry_id


def test_counts_match_the_raw_records(make_lake, inputs) -> None:
    paths = inputs(range(4), scenarios=3, tracks=5, steps=7)
    lake = make_lake(home="eu-central")
    lake.ingest(paths, "eu-central", registry=lake_synth.REGISTRY)
    raw = [summarize(r) for p in paths for r in lake_synth.records_of(p)]
    res = lake.snapshot("eu-central").sql(
        "SELECT count(*) AS n, sum(num_tracks) AS a, sum(num_valid_states) AS v, sum(xy_sum_m) AS xy "
        "FROM scenarios"
    )
    row = res.table.to_pylist()[0]
    assert row["n"] == len(raw) == 12
    assert row["a"] == sum(r["num_tracks"] for r in raw)
    assert row["v"] == sum(r["num_valid_states"] for r in raw)
    assert row["xy"] == pytest.approx(sum(r["xy_sum_m"] for r in raw), rel=1e-12)
    states = (
        lake.snapshot("eu-central")
        .sql("SELECT count(*) AS v, sum(x_m + y_m) AS xy FROM states")
        .table.to_pylist()[0]
    )
    assert states["v"] == row["v"]
    assert states["xy"] == pytest.approx(row["xy"], rel=1e-12)


def test_second_run_skips_everything_as_duplicate(make_lake, inputs) -> None:
    paths = inputs(range(5))
    lake = make_lake(home="eu-central")
    first = lake.ingest(paths, "eu-central", registry=lake_synth.REGISTRY)
    second = lake.ingest(paths, "eu-central", registry=lake_synth.REGISTRY)
    assert first.counts()["ingested"] == 5
    assert second.counts() == {"ingested": 0, "duplicate": 5, "unsupported": 0, "failed": 0}
    assert second.lake_version_after == first.lake_version_after
    assert {o.batch_id for o in second.outcomes} == {o.batch_id for o in first.outcomes}
    n = lake.snapshot("eu-central").sql("SELECT count(*) AS n FROM scenarios").table.column("n")[0].as_py()
    assert n == 5


def test_same_bytes_under_two_names_are_one_input(make_lake, inputs, tmp_path) -> None:
    (a,) = inputs([7])
    b = tmp_path / "copy" / "other_name.ddsynth"
    b.parent.mkdir()
    b.write_bytes(a.read_bytes())
    report = make_lake(home="eu-central").ingest([a, b], "eu-central", registry=lake_synth.REGISTRY)
    assert [o.status for o in report.outcomes] == ["ingested", "duplicate"]
    assert report.outcomes[1].reason is not None
    assert str(a) in report.outcomes[1].reason


def test_another_tenant_ingests_the_same_file_separately(make_lake, inputs) -> None:
    paths = inputs(range(2))
    make_lake("ana", "bmw", "eu-central").ingest(paths, "eu-central", registry=lake_synth.REGISTRY)
    report = make_lake("li", "tencent", "eu-central").ingest(
        paths, "eu-central", registry=lake_synth.REGISTRY
    )
    assert report.counts()["ingested"] == 2
    bmw_ids = {
        s.scenario_id for s in make_lake("ana", "bmw", "eu-central").snapshot("eu-central").scenarios()
    }
    ten_ids = {
        s.scenario_id for s in make_lake("li", "tencent", "eu-central").snapshot("eu-central").scenarios()
    }
    assert len(bmw_ids) == len(ten_ids) == 2
    assert not bmw_ids & ten_ids, "pseudonyms are keyed per tenant"


def test_corrupt_file_among_good_ones(make_lake, inputs, tmp_path) -> None:
    inputs(range(4))
    bad = tmp_path / "in" / "broken.ddsynth"
    bad.write_bytes(b"\x00\xffnot json")
    missing = tmp_path / "nope.ddsynth"
    unknown = tmp_path / "in" / "notes.txt"
    unknown.write_text("hello")
    report = make_lake(home="eu-central").ingest(
        [tmp_path / "in", missing], "eu-central", registry=lake_synth.REGISTRY
    )
    by_path = {Path(o.path).name: o for o in report.outcomes}
    assert by_path["broken.ddsynth"].status == "failed"
    assert "CorruptFileError" in (by_path["broken.ddsynth"].reason or "")
    assert by_path["nope.ddsynth"].status == "failed"
    assert by_path["notes.txt"].status == "unsupported"
    assert sum(report.counts().values()) == len(report.outcomes) == 7
    assert report.counts()["ingested"] == 4
    assert not report.ok


def test_scenario_id_clash_from_another_file_fails_that_file(make_lake, inputs, tmp_path) -> None:
    (a,) = inputs([3])
    clash = tmp_path / "clash" / "same_ids.ddsynth"
    clash.parent.mkdir()
    clash.write_text('{"seed": 3, "sleep_s": 0.0}')  # same scenarios, different bytes
    lake = make_lake(home="eu-central")
    lake.ingest([a], "eu-central", registry=lake_synth.REGISTRY)
    report = lake.ingest([clash], "eu-central", registry=lake_synth.REGISTRY)
    assert report.outcomes[0].status == "failed"
    assert "already in the lake from another input" in (report.outcomes[0].reason or "")


@pytest.mark.parametrize("engine", [InlineEngine(), ProcessPoolEngine(2)], ids=["inline", "process-pool"])
def test_batches_commit_one_lake_version_each(make_lake, inputs, engine) -> None:
    paths = inputs(range(7))
    lake = make_lake(home="eu-central")
    report = lake.ingest(
        paths,
        "eu-central",
        registry=lake_synth.REGISTRY,
        engine=engine,
        options=IngestOptions(batch_inputs=3),
    )
    assert report.lake_version_before == 0 or report.lake_version_before is None
    assert report.lake_version_after == 3  # 3 + 3 + 1 inputs
    assert len({o.batch_id for o in report.outcomes}) == 3
    history = lake.history("eu-central")
    assert [v.operation for v in history] == ["ingest", "ingest", "ingest", "create"]
    # the raw Delta tables hold exactly the committed batches: no stray rows
    store = RegionStore(lake.config.region("eu-central"))
    batches = set(
        store.table(INGESTS)
        .to_pyarrow_dataset()
        .to_table(columns=["batch_id"])
        .column("batch_id")
        .to_pylist()
    )
    track_batches = set(
        store.table(TRACKS).to_pyarrow_dataset().to_table(columns=["batch_id"]).column("batch_id").to_pylist()
    )
    assert track_batches == batches


def test_partitioned_by_tenant_source_and_date(make_lake, inputs, lake_root) -> None:
    make_lake(home="eu-central").ingest(inputs(range(2)), "eu-central", registry=lake_synth.REGISTRY)
    parts = sorted(
        p.relative_to(lake_root / "eu-central" / "tracks").parts[:3]
        for p in (lake_root / "eu-central" / "tracks").rglob("*.parquet")
    )
    assert parts
    for tenant, source, day in parts:
        assert tenant == "tenant=bmw"
        assert source == "source=synthetic"
        assert day.startswith("ingest_date=20")


def test_library_reads_filter_by_id_and_source(make_lake, inputs) -> None:
    lake = make_lake(home="eu-central")
    lake.ingest(inputs(range(3), scenarios=2), "eu-central", registry=lake_synth.REGISTRY)
    snap = lake.snapshot("eu-central")
    everything = snap.scenarios()
    one = snap.scenarios(ids=[everything[0].scenario_id])
    assert len(one) == 1
    assert scenarios_equal(one[0], everything[0])
    assert snap.scenarios(sources=["nothing"]) == []
    assert len(snap.scenarios(filter=ds.field("num_tracks") >= 1)) == 6


def test_check_finds_a_whole_lake_whole_and_a_damaged_one_damaged(make_lake, inputs) -> None:
    from deltalake import DeltaTable

    lake = make_lake(home="eu-central")
    lake.ingest(inputs(range(3), scenarios=2, telemetry=True), "eu-central", registry=lake_synth.REGISTRY)
    report = lake.check("eu-central")
    assert report.ok, report.problems
    assert report.counts["scenarios"] == 9
    # damage: remove one scenario's tracks behind the lake's back, then commit a version that pins it
    store = RegionStore(lake.config.region("eu-central"))
    victim = lake.snapshot("eu-central").scenarios()[0].scenario_id
    DeltaTable(store.uri(TRACKS)).delete(f"scenario_id = '{victim}'")
    from datetime import UTC, datetime

    from deltalake import CommitProperties, write_deltalake

    from datadrive.lake.tables import commit_record

    versions = dict(store.resolve().table_versions, tracks=store.head(TRACKS))
    write_deltalake(
        store.uri(INGESTS),
        INGESTS.schema.empty_table(),
        mode="append",
        commit_properties=CommitProperties(commit_record("ingest", versions, now=datetime.now(UTC))),
    )
    damaged = lake.check("eu-central")
    assert not damaged.ok
    assert any("half-written" in p for p in damaged.problems)
