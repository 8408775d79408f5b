"""``Lake.ingest_records``: in-memory records through the ingest path, validated, streamed in batches."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import lake_synth
import numpy as np
import pytest

from datadrive.core import Scenario, scenarios_equal
from datadrive.errors import ValidationError
from datadrive.lake.tables import RegionStore


def _records(n: int, start: int = 0) -> list[Scenario]:
    return [
        lake_synth.make_scenario(seed, vehicle=f"veh-{seed}", sha=f"{seed:064x}")
        for seed in range(start, start + n)
    ]


def test_records_round_trip_pseudonymised_and_stamped(make_lake) -> None:
    lake = make_lake(home="eu-central")
    records = _records(3)
    report = lake.ingest_records(records, "eu-central", name="fleet")
    assert report.counts() == {"ingested": 1, "duplicate": 0, "unsupported": 0, "failed": 0}
    assert report.num_scenarios == 3
    back = sorted(lake.snapshot("eu-central").scenarios(), key=lambda s: s.tracks.xy_m.sum())
    raw = sorted(records, key=lambda s: s.tracks.xy_m.sum())
    for got, want in zip(back, raw, strict=True):
        assert got.metadata.region == "eu-central"
        assert got.metadata.tenant == "bmw"
        assert want.scenario_id != got.scenario_id
        assert "veh-" in want.scenario_id
        assert "veh-" not in got.scenario_id, "vehicle name pseudonymised"
        np.testing.assert_array_equal(got.tracks.xy_m, want.tracks.xy_m)
        np.testing.assert_array_equal(got.tracks.valid, want.tracks.valid)


def test_an_invalid_record_is_refused_and_nothing_of_its_batch_is_written(make_lake) -> None:
    lake = make_lake(home="eu-central")
    lake.init(["eu-central"])
    good = _records(3)
    bad = lake_synth.make_scenario(99, vehicle="veh-99")
    xy = bad.tracks.xy_m.copy()
    xy[0, np.argmax(bad.tracks.valid[0])] = np.nan  # NaN position on a valid state
    bad = dataclasses.replace(bad, tracks=dataclasses.replace(bad.tracks, xy_m=xy))
    with pytest.raises(ValidationError, match=r"records: record 2 \(synthetic .*\) is not valid"):
        lake.ingest_records([good[0], good[1], bad, good[2]], "eu-central", batch_size=10)
    assert lake.history("eu-central")[0].operation == "create", "nothing was committed"
    assert (
        lake.sql("SELECT count(*) AS n FROM scenarios", region="eu-central").table.column("n")[0].as_py() == 0
    )


def test_streams_in_batches_one_lake_version_each(make_lake) -> None:
    lake = make_lake(home="eu-central")
    store = RegionStore(lake.config.region("eu-central"))
    lake.init(["eu-central"])
    pulled: list[int] = []

    def stream() -> Iterator[Scenario]:
        for i, record in enumerate(_records(5)):
            # batches of 2: record 2 is pulled only after records 0-1 are committed
            pulled.append(store.lake_version())
            yield record
            assert i < 5

    report = lake.ingest_records(stream(), "eu-central", name="build", batch_size=2)
    assert pulled == [0, 0, 1, 1, 2], "a batch is committed before the next records are pulled"
    assert [o.path for o in report.outcomes] == ["build#0", "build#1", "build#2"]
    assert [o.num_scenarios for o in report.outcomes] == [2, 2, 1]
    assert (report.lake_version_before, report.lake_version_after) == (0, 3)
    again = lake.ingest_records(_records(5), "eu-central", name="build", batch_size=2)
    assert again.counts()["duplicate"] == 3, "the same stream again is skipped batch by batch"
    assert lake.check("eu-central").ok


@pytest.mark.parametrize("region", ["eu-central", "cn-north"], ids=["wgs84", "gcj02"])
def test_records_read_back_are_written_again_unchanged(make_lake, inputs, region) -> None:
    """A dataset build writes what it read: pseudonyms are not hashed again, GCJ-02 not applied twice."""
    lake = make_lake(home=region)
    lake.ingest(inputs(range(2), telemetry=True), region, registry=lake_synth.REGISTRY)
    snap = lake.snapshot(region)
    scenarios = [dataclasses.replace(s, scenario_id=s.scenario_id + "-copy") for s in snap.scenarios()]
    logs = [dataclasses.replace(t, telemetry_id=t.telemetry_id + "-copy", ego=None) for t in snap.telemetry()]
    assert logs, "the synthetic inputs carry telemetry with a GNSS signal"
    report = lake.ingest_records([*scenarios, *logs], region, name="copy")
    assert report.ok
    after = lake.snapshot(region)
    back = {s.scenario_id: s for s in after.scenarios()}
    for s in scenarios:
        assert scenarios_equal(back[s.scenario_id], s)
    back_logs = {t.telemetry_id: t for t in after.telemetry()}
    for t in logs:
        got = back_logs[t.telemetry_id]
        assert got.metadata.frame == t.metadata.frame
        for a, b in zip(got.signals, t.signals, strict=True):
            np.testing.assert_array_equal(a.values, b.values)
