"""Mining's tables in a real lake: incremental indexing, versions, time travel, tenants, erasure, results."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from datadrive.compute import InlineEngine, ProcessPoolEngine
from datadrive.errors import MiningError, ResidencyError
from datadrive.lake import (
    Erasure,
    Grant,
    Lake,
    LakeConfig,
    Principal,
    RegionConfig,
    StorageRoot,
    TenantConfig,
)
from datadrive.mining.api import candidate_keys, mine_snapshot, prefilter_sql
from datadrive.mining.events import HardBrakingConfig, TaggerConfig, tagger_version
from datadrive.mining.index import FEATURE_VERSION, index_region, state_table
from datadrive.mining.store import list_result_sets, load_result_set, save_result_set
from datadrive.mining.vocabulary import compile_query

KEYS = {"bmw": bytes(range(32)), "tencent": bytes(range(32, 64))}


def _config(root: Path) -> LakeConfig:
    return LakeConfig(
        regions={
            "eu-central": RegionConfig("eu-central", StorageRoot(str(root / "eu"))),
            "cn-north": RegionConfig("cn-north", StorageRoot(str(root / "cn"))),
        },
        tenants={n: TenantConfig(n, k) for n, k in KEYS.items()},
        grants=(Grant("bmw", "tencent", frozenset({"eu-central"})),),
    )


@pytest.fixture
def lake(tmp_path: Path, samples: Path) -> Lake:
    """A lake with the three AV2 motion-forecasting scenarios for bmw, in eu-central."""
    lk = Lake(_config(tmp_path), Principal("ana", "bmw", "eu-central"))
    first = tmp_path / "in1"
    first.mkdir()
    for d in sorted((samples / "av2_motion_forecasting").iterdir())[:2]:
        shutil.copytree(d, first / d.name)
    report = lk.ingest([first], "eu-central")
    assert report.ok
    return lk


def test_rows_have_one_schema_whatever_the_scenario(samples: Path, tmp_path: Path) -> None:
    """A map-only input (no track, one step) and a scenario without a map index side by side."""
    from mining_build import scenario

    from datadrive.mining.index import STATE_SCHEMA, state_table

    empty = scenario(np.zeros((0, 1, 2)), types=[])
    one = scenario(np.zeros((1, 3, 2)))
    tables = [state_table(empty), state_table(one)]
    assert all(t.schema == STATE_SCHEMA for t in tables)
    assert pa.concat_tables(tables).num_rows == 3
    lk = Lake(_config(tmp_path), Principal("ana", "bmw", "eu-central"))
    lk.ingest([samples / "lanelet2_map" / "mapping_example.osm", samples / "ngsim_roadway"], "eu-central")
    report = index_region(lk, "eu-central")
    assert report.failures == ()
    assert report.indexed == report.scenarios == 3


def count(lake: Lake, sql: str, version: int | None = None) -> int:
    return int(lake.sql(sql, "eu-central", version).table.column(0)[0].as_py())


def test_index_is_incremental_and_a_lake_version(lake: Lake, samples: Path, tmp_path: Path) -> None:
    v0 = lake.snapshot("eu-central").version
    r1 = index_region(lake, "eu-central")
    assert (r1.scenarios, r1.indexed, r1.tagged) == (2, 2, 2)
    assert r1.lake_version_after == v0 + 1  # both scenarios in one batch: one lake version
    snap = lake.snapshot("eu-central")
    valid = count(lake, "SELECT sum(num_valid_states) FROM scenarios")
    assert count(lake, "SELECT count(*) FROM mining_states") == valid == r1.states
    assert count(lake, "SELECT count(*) FROM mining_states", v0) == 0  # time travel: not there before
    assert lake.history("eu-central")[0].operation == "derive"
    r2 = index_region(lake, "eu-central")
    assert (r2.indexed, r2.tagged, r2.lake_version_after) == (0, 0, snap.version)  # nothing to do
    # a new input: only its scenario is indexed
    more = tmp_path / "in2"
    more.mkdir()
    third = sorted((samples / "av2_motion_forecasting").iterdir())[2]
    shutil.copytree(third, more / third.name)
    lake.ingest([more], "eu-central")
    r3 = index_region(lake, "eu-central", batch_size=1)
    assert (r3.scenarios, r3.indexed, r3.tagged) == (3, 1, 1)
    # a new tagger version re-tags every scenario, leaves the states alone
    strict = TaggerConfig(hard_braking=HardBrakingConfig(decel_mps2=2.0))
    r4 = index_region(lake, "eu-central", taggers=strict)
    assert (r4.indexed, r4.tagged) == (0, 3)
    versions = {
        row["tagger_version"]
        for row in lake.sql("SELECT DISTINCT tagger_version FROM events", "eu-central").table.to_pylist()
    }
    assert versions == {tagger_version(), tagger_version(strict)}
    assert lake.check("eu-central").ok


def test_a_new_feature_version_reindexes_and_readers_see_only_its_rows(
    lake: Lake, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datadrive.mining import index as index_module
    from datadrive.mining.index import pending_keys

    r1 = index_region(lake, "eu-central")
    valid = count(lake, "SELECT sum(num_valid_states) FROM scenarios")
    query = compile_query("vehicle and speed(min=5 m/s)")
    before = candidate_keys(lake.snapshot("eu-central"), query)
    assert before
    monkeypatch.setattr(index_module, "FEATURE_VERSION", "test-next")
    assert len(pending_keys(lake.snapshot("eu-central"))[1]) == r1.scenarios  # every scenario is stale
    assert candidate_keys(lake.snapshot("eu-central"), query) is None  # the index cannot tell until rebuilt
    r2 = index_region(lake, "eu-central")
    assert (r2.indexed, r2.tagged, r2.states) == (r1.scenarios, 0, valid)  # states again, the events stand
    snap = lake.snapshot("eu-central")
    assert pending_keys(snap)[1] == set()
    # the old rows stay in the append-only table (time travel reads them) and readers filter by version
    assert count(lake, "SELECT count(*) FROM mining_states") == 2 * valid
    current = "SELECT count(*) FROM mining_states WHERE feature_version = 'test-next'"
    assert count(lake, current) == valid
    assert candidate_keys(snap, query) == before  # each scenario once, from the current rows
    assert index_region(lake, "eu-central").indexed == 0


def test_units_are_gathered_into_commits_of_commit_scenarios(lake: Lake, tmp_path: Path) -> None:
    v0 = lake.snapshot("eu-central").version
    one = index_region(lake, "eu-central", batch_size=1, commit_scenarios=2)
    assert one.indexed == 2
    assert one.lake_version_after == v0 + 1, "two units, one lake version"
    states = lake.snapshot("eu-central").table("mining_states")
    assert len(set(states.column("batch_id").to_pylist())) == 1
    assert states.num_rows == one.states
    other = Lake(_config(tmp_path / "b"), Principal("ana", "bmw", "eu-central"))
    other.ingest([tmp_path / "in1"], "eu-central")
    w0 = other.snapshot("eu-central").version
    each = index_region(other, "eu-central", batch_size=1, commit_scenarios=1)
    assert each.lake_version_after == w0 + 2, "a lake version per unit"

    def ordered(t: pa.Table) -> pa.Table:
        t = t.drop_columns(["batch_id", "derived_at", "derived_from_version"])
        return t.sort_by([(c, "ascending") for c in ("scenario_id", "track_index", "step")])

    assert ordered(states).equals(ordered(other.snapshot("eu-central").table("mining_states")))


def test_rows_are_clustered_by_place_then_key() -> None:
    from datadrive.mining.index import PLACE_CELL_M, cluster_states

    def rows(sid: str, x0: float, tracks: int, steps: int) -> pa.Table:
        n = tracks * steps
        return pa.table(
            {
                "tenant": ["bmw"] * n,
                "source": ["test"] * n,
                "scenario_id": [sid] * n,
                "track_index": np.repeat(np.arange(tracks, dtype=np.int32), steps),
                "step": np.tile(np.arange(steps, dtype=np.int32), tracks),
                "x_m": np.full(n, x0) + np.tile(np.arange(steps, dtype=np.float64), tracks),
                "y_m": np.zeros(n),
            }
        )

    far = 50 * PLACE_CELL_M
    # written in arrival order: places a, b, a, c, b; a's scenarios and b's are in one cell each
    parts = [rows("s1", 10.0, 2, 3), rows("s2", far, 1, 4), rows("s3", 20.0, 3, 2), rows("s4", -far, 2, 2)]
    parts.append(rows("s0", far + 5, 1, 3))
    table = pa.concat_tables(parts)
    shuffled = table.take(pa.array(np.random.default_rng(7).permutation(table.num_rows)))
    out = cluster_states(shuffled)
    assert out.num_rows == table.num_rows

    def as_rows(t: pa.Table) -> list[tuple[object, ...]]:
        return sorted(zip(*(t.column(c).to_pylist() for c in t.column_names), strict=True))

    assert as_rows(out) == as_rows(table)  # a permutation of the rows
    ids = out.column("scenario_id").to_pylist()
    order = [k for i, k in enumerate(ids) if i == 0 or k != ids[i - 1]]
    assert sorted(order) == ["s0", "s1", "s2", "s3", "s4"]  # each scenario's rows are contiguous
    assert abs(order.index("s0") - order.index("s2")) == 1  # one place, one run
    assert abs(order.index("s1") - order.index("s3")) == 1
    assert order.index("s0") < order.index("s2")  # one place: by key
    assert order.index("s1") < order.index("s3")
    for sid in order:  # inside a scenario: track-major, step-minor
        one = out.filter(pc.equal(out.column("scenario_id"), sid))
        keys = list(zip(one.column("track_index").to_pylist(), one.column("step").to_pylist(), strict=True))
        assert keys == sorted(keys)


def test_state_rows_match_the_in_memory_features_with_null_for_unknown(lake: Lake) -> None:
    index_region(lake, "eu-central")
    snap = lake.snapshot("eu-central")
    s = snap.scenarios()[0]
    expect = state_table(s)
    got = lake.sql(
        f"SELECT * FROM mining_states WHERE scenario_id = '{s.scenario_id}' ORDER BY track_index, step",
        "eu-central",
    ).table
    assert got.num_rows == expect.num_rows == int(s.tracks.valid.sum())
    for col in ("track_id", "step", "timestamp_ns", "x_m", "speed_mps", "lane_id", "next_crosswalk_m"):
        assert got.column(col).to_pylist() == expect.column(col).to_pylist(), col
    assert set(got.column("feature_version").to_pylist()) == {FEATURE_VERSION}
    for col in ("speed_mps", "accel_mps2", "lane_lateral_m", "next_intersection_m"):
        values = got.column(col).to_pylist()
        assert not any(isinstance(v, float) and math.isnan(v) for v in values), col
    # unknown is NULL: DuckDB's ORDER BY ... DESC puts NULLs last, so the top speed is a number
    top = lake.sql("SELECT max(speed_mps) AS m FROM mining_states", "eu-central").table.column(0)[0].as_py()
    worst = (
        lake.sql("SELECT speed_mps FROM mining_states ORDER BY speed_mps DESC LIMIT 1", "eu-central")
        .table.column(0)[0]
        .as_py()
    )
    assert worst == top
    assert math.isfinite(top)


def test_the_states_view_has_null_not_nan(lake: Lake) -> None:
    t = lake.sql(
        "SELECT sqrt(vx_mps * vx_mps + vy_mps * vy_mps) AS v FROM states ORDER BY v DESC LIMIT 5",
        "eu-central",
    ).table
    assert all(v is not None and math.isfinite(v) for v in t.column("v").to_pylist())


def test_erasing_a_scenario_leaves_no_mining_row(lake: Lake) -> None:
    index_region(lake, "eu-central")
    snap = lake.snapshot("eu-central")
    run = mine_snapshot(snap, "vehicle and moving", use_index=False)
    save_result_set(lake, snap, run.result, "movers")
    victim = snap.scenarios()[0].scenario_id
    lake.erase("eu-central", Erasure(tenant="bmw", scenario_ids=(victim,)))
    for table in ("mining_states", "events", "mining_index", "mining_results"):
        n = count(lake, f"SELECT count(*) FROM {table} WHERE scenario_id = '{victim}'")
        assert n == 0, table
    assert count(lake, "SELECT count(*) FROM mining_states") > 0  # the other scenario's rows stay
    assert lake.check("eu-central").ok


def test_tenants_see_only_what_they_may_and_residency_holds(lake: Lake, tmp_path: Path) -> None:
    index_region(lake, "eu-central")
    total = count(lake, "SELECT count(*) FROM mining_states")
    grantee = Lake(lake.config, Principal("li", "tencent", "eu-central"))
    assert (
        int(grantee.sql("SELECT count(*) FROM mining_states", "eu-central").table.column(0)[0].as_py())
        == total
    )
    stranger_cfg = LakeConfig(lake.config.regions, lake.config.tenants, grants=())
    stranger = Lake(stranger_cfg, Principal("li", "tencent", "eu-central"))
    assert (
        int(stranger.sql("SELECT count(*) FROM mining_states", "eu-central").table.column(0)[0].as_py()) == 0
    )
    # rows derived from eu-central stay there: writing them to another region is refused (and audited)
    lake.init(["cn-north"])
    eu = lake.snapshot("eu-central")
    with pytest.raises(ResidencyError, match="stay in eu-central"):
        lake.append_derived_tables("cn-north", {"mining_index": eu.table("mining_index")}, derived_from=eu)


@pytest.mark.slow
def test_process_pool_gives_the_same_rows_as_inline(lake: Lake, tmp_path: Path, samples: Path) -> None:
    twin = Lake(_config(tmp_path / "twin"), Principal("ana", "bmw", "eu-central"))
    src = tmp_path / "in1"
    twin.ingest([src], "eu-central")
    index_region(lake, "eu-central", engine=InlineEngine())
    index_region(twin, "eu-central", engine=ProcessPoolEngine(2), batch_size=1)
    q = "SELECT scenario_id, track_id, step, speed_mps, lane_id FROM mining_states ORDER BY 1, 2, 3"
    assert lake.sql(q, "eu-central").table.equals(twin.sql(q, "eu-central").table)
    e = "SELECT scenario_id, event_type, actor_track_id, start_ns, severity FROM events ORDER BY 1, 2, 3, 4"
    assert lake.sql(e, "eu-central").table.equals(twin.sql(e, "eu-central").table)


def test_prefilter_is_necessary_and_gives_the_same_answer(lake: Lake) -> None:
    index_region(lake, "eu-central")
    snap = lake.snapshot("eu-central")
    for q in (
        "car and stopped",
        "vehicle and moving and near(pedestrian, within=20m)",
        "braking or stopped",
        "during(vehicle and speed(min=5), pedestrian)",
        "not moving",
    ):
        full = mine_snapshot(snap, q, use_index=False).result
        narrow = mine_snapshot(snap, q, use_index=True).result
        assert [h.track_id for h in full] == [h.track_id for h in narrow], q
    assert prefilter_sql(compile_query("not moving")) is None
    assert candidate_keys(snap, "near(ego)") is None  # no per-state condition: no narrowing
    keys = candidate_keys(snap, "speed(min=1000)")
    assert keys == []


def test_result_sets_are_named_versioned_and_loaded(lake: Lake) -> None:
    snap = lake.snapshot("eu-central")
    r = mine_snapshot(snap, "vehicle and stopped").result
    assert save_result_set(lake, snap, r, "parked")[1] == 1
    snap2 = lake.snapshot("eu-central")
    r2 = mine_snapshot(snap2, "vehicle and stopped").result
    name, version, _ = save_result_set(lake, snap2, r2, "parked")
    assert (name, version) == ("parked", 2)
    back = load_result_set(lake.snapshot("eu-central"), "parked")
    assert [(h.scenario_id, h.track_id, h.intervals_ns) for h in back] == [
        (h.scenario_id, h.track_id, h.intervals_ns) for h in r2
    ]
    assert back.expression == "vehicle and stopped"
    listing = list_result_sets(lake.snapshot("eu-central")).to_pylist()
    assert [(x["result_name"], x["result_version"]) for x in listing] == [("parked", 1), ("parked", 2)]
    with pytest.raises(MiningError, match="no stored result set"):
        load_result_set(lake.snapshot("eu-central"), "nothing")
    with pytest.raises(MiningError, match="use 1-64"):
        save_result_set(lake, snap2, r2, "../escape")


def test_a_large_unfiltered_scan_is_refused_until_confirmed(lake: Lake) -> None:
    snap = lake.snapshot("eu-central")
    with pytest.raises(MiningError, match="would evaluate all 2 scenarios"):
        mine_snapshot(snap, "near(ego)", full_scan_limit=1)
    assert (
        mine_snapshot(snap, "near(ego)", full_scan_limit=1, allow_full_scan=True).result.scenarios_searched
        == 2
    )
    assert mine_snapshot(snap, "near(ego)", full_scan_limit=1, sources=["av2_motion_forecasting"]).result
