"""Every sample in ../shared/data into a two-region lake, read back by SQL and by the library.

Expected values come from the raw files through the readers (``summarize``,
what ``datadrive inspect --json`` prints), with the documented pseudonyms
applied to ids; the lake's answers come from DuckDB over the Delta tables and
from ``Snapshot.scenarios()``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from lake_helpers import KEYS, two_region_config

from datadrive.compute import ProcessPoolEngine
from datadrive.core import Scenario, Telemetry, summarize
from datadrive.core.summary import summarize_telemetry
from datadrive.errors import InputError, UnsupportedFormatError
from datadrive.lake import Lake, Principal, Pseudonymizer
from datadrive.sources import DEFAULT_REGISTRY

pytestmark = pytest.mark.slow
REGIONS = ("cn-north", "eu-central")


def _expected_summary(record: Scenario, pseudo: Pseudonymizer, extras: Any) -> dict[str, Any]:
    scrub = pseudo.scrubber(record.source, extras)
    s = summarize(record)
    s["scenario_id"] = scrub(s["scenario_id"])
    if s["ego_track_id"] is not None:
        s["ego_track_id"] = scrub(s["ego_track_id"])
    return s


@pytest.fixture(scope="module")
def sample_lake(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    units = DEFAULT_REGISTRY.discover(samples).units
    if not units:
        pytest.skip("no adapter in DEFAULT_REGISTRY reads the samples yet")
    pseudo = Pseudonymizer(KEYS["bmw"])
    by_region: dict[str, list[Path]] = defaultdict(list)
    expected: dict[str, dict[tuple[str, str], dict[str, Any]]] = {r: {} for r in REGIONS}
    expected_tel: dict[str, dict[tuple[str, str], dict[str, Any]]] = {r: {} for r in REGIONS}
    raw_failed: dict[str, str] = {}
    sources = sorted({a.name for a, _ in units})
    for adapter, unit in units:
        region = REGIONS[sources.index(adapter.name) % 2]  # alternate formats between the regions
        by_region[region].append(unit)
        try:
            records = adapter.read_all(unit)
        except UnsupportedFormatError:
            continue
        except InputError as exc:
            raw_failed[str(unit)] = exc.reason
            continue
        for r in records:
            if isinstance(r, Scenario):
                s = _expected_summary(r, pseudo, r.metadata.extras)
                expected[region][(s["source"], s["scenario_id"])] = s
            elif isinstance(r, Telemetry):
                t = summarize_telemetry(r)
                scrub = pseudo.scrubber(r.source, r.metadata.extras)
                t["telemetry_id"] = scrub(t["telemetry_id"])
                if r.ego is not None:
                    t["ego"] = _expected_summary(r.ego, pseudo, r.metadata.extras)
                expected_tel[region][(t["source"], t["telemetry_id"])] = t
    config = two_region_config(tmp_path_factory.mktemp("samples") / "lake")
    reports = {}
    for region in REGIONS:
        lake = Lake(config, Principal("ana", "bmw", region))
        reports[region] = lake.ingest(by_region[region], region, engine=ProcessPoolEngine(2))
    return {
        "config": config,
        "expected": expected,
        "expected_tel": expected_tel,
        "reports": reports,
        "raw_failed": raw_failed,
        "units": by_region,
    }


def _lake(sample_lake: dict[str, Any], region: str) -> Lake:
    return Lake(sample_lake["config"], Principal("ana", "bmw", region))


@pytest.mark.parametrize("region", REGIONS)
def test_every_input_is_accounted_for(sample_lake, region) -> None:
    report = sample_lake["reports"][region]
    assert len(report.outcomes) == len(sample_lake["units"][region])
    assert sum(report.counts().values()) == len(report.outcomes)
    failed = {o.path: o.reason for o in report.failed}
    raw_failed = {
        p: r
        for p, r in sample_lake["raw_failed"].items()
        if p in {str(u) for u in sample_lake["units"][region]}
    }
    assert set(failed) == set(raw_failed), "the lake fails exactly the inputs the readers fail"
    ingested = [o for o in report.outcomes if o.status == "ingested"]
    assert sum(o.num_scenarios for o in ingested) == len(sample_lake["expected"][region])


@pytest.mark.parametrize("region", REGIONS)
def test_sql_matches_inspect_of_the_raw_files(sample_lake, region) -> None:
    lake = _lake(sample_lake, region)
    expected = sample_lake["expected"][region]
    snap = lake.snapshot(region)
    rows = snap.sql(
        """
        SELECT s.source, s.scenario_id, s.num_tracks, s.num_steps, s.dt_s, s.ego_track_id, s.num_map_lanes,
               s.num_vehicles, s.num_cyclists, s.num_pedestrians, s.num_other,
               coalesce(st.n, 0) AS states, coalesce(st.xy, 0) AS xy, coalesce(tr.n, 0) AS tracks,
               coalesce(mf.lanes, 0) AS lanes, s.has_map
        FROM scenarios s
        LEFT JOIN (SELECT source, scenario_id, count(*) AS n, sum(x_m + y_m) AS xy
                   FROM states GROUP BY ALL) st USING (source, scenario_id)
        LEFT JOIN (SELECT source, scenario_id, count(*) AS n
                   FROM tracks GROUP BY ALL) tr USING (source, scenario_id)
        LEFT JOIN (SELECT source, scenario_id, count(*) FILTER (WHERE kind = 0) AS lanes
                   FROM map_features GROUP BY ALL) mf USING (source, scenario_id)
        WHERE s.telemetry_id IS NULL
        """
    ).table.to_pylist()
    got = {(r["source"], r["scenario_id"]): r for r in rows}
    assert set(got) == set(expected)
    for key, e in expected.items():
        r = got[key]
        assert r["num_tracks"] == r["tracks"] == e["num_tracks"], key
        assert r["num_steps"] == e["num_steps"], key
        assert r["states"] == e["num_valid_states"], key
        assert math.isclose(r["xy"], e["xy_sum_m"], rel_tol=1e-9, abs_tol=1e-6), key
        counts = e["track_type_counts"]
        assert (r["num_vehicles"], r["num_cyclists"], r["num_pedestrians"], r["num_other"]) == (
            counts["vehicle"],
            counts["cyclist"],
            counts["pedestrian"],
            counts["other"],
        ), key
        assert r["ego_track_id"] == e["ego_track_id"], key
        assert r["num_map_lanes"] == e["num_map_lanes"], key
        if e["num_map_lanes"] is not None:
            assert r["lanes"] == e["num_map_lanes"], key
        assert (r["dt_s"] is None) == (e["dt_s"] is None), key
        if e["dt_s"] is not None:
            assert r["dt_s"] == pytest.approx(e["dt_s"], abs=1e-9), key


@pytest.mark.parametrize("region", REGIONS)
def test_library_matches_inspect_of_the_raw_files(sample_lake, region) -> None:
    lake = _lake(sample_lake, region)
    snap = lake.snapshot(region)
    got = {(s.source, s.scenario_id): summarize(s) for s in snap.scenarios()}
    assert got == sample_lake["expected"][region]
    tel = {(t.source, t.telemetry_id): summarize_telemetry(t) for t in snap.telemetry()}
    assert tel == sample_lake["expected_tel"][region]


def test_each_region_holds_only_its_own_formats(sample_lake) -> None:
    seen = {}
    for region in REGIONS:
        lake = _lake(sample_lake, region)
        rows = lake.sql("SELECT DISTINCT source, region FROM scenarios", region=region).table.to_pylist()
        for r in rows:
            assert r["region"] == region
            assert r["source"] not in seen, "a source landed in two regions"
            seen[r["source"]] = region


def test_no_vehicle_identifier_of_the_samples_reaches_the_lake(sample_lake) -> None:
    config = sample_lake["config"]
    raw_ids = [b"veh-45", b"veh-49", b"b0c9d2329ad1606b", b"host-a101"]
    for region in REGIONS:
        root = Path(config.region(region).root.uri)
        for f in root.rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                for raw in raw_ids:
                    assert raw not in data, (f, raw)
