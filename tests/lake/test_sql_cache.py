"""Fast snapshots: reused snapshots, the SQL session's cache of scenario-level columns, Delta checkpoints."""

from __future__ import annotations

from pathlib import Path

import lake_synth
import pytest

from datadrive.errors import LakeError
from datadrive.lake import Erasure, IngestOptions
from datadrive.lake.schema import table_spec
from datadrive.lake.snapshot import readable_tables
from datadrive.lake.sql import SqlSession

QUERIES = [
    "SELECT source, num_tracks, num_valid_states FROM scenarios WHERE scenario_id = '{sid}'",
    "SELECT source, count(*) AS n, sum(num_valid_states) AS states FROM scenarios GROUP BY source",
    "SELECT count(*) FROM scenarios",
    "SELECT * FROM scenarios",
    "SELECT s FROM scenarios s",
    "SELECT scenario_id, len(timestamps_ns) AS steps FROM scenarios",
    "SELECT count(*) FROM scenarios WHERE extras_json LIKE '%veh%'",
    "SELECT scenarios.* EXCLUDE (map_relations) FROM scenarios",
    "SELECT COLUMNS('num_.*') FROM scenarios",
    "SELECT object_type_name, count(*) AS n FROM states GROUP BY 1",
    "SELECT count(*) FROM map_points",
    "SELECT signal, count(*) AS n FROM signal_samples GROUP BY 1",
    "SELECT s.scenario_id, count(*) AS tracks "
    "FROM scenarios s JOIN tracks t USING (tenant, source, scenario_id) GROUP BY 1",
    "SELECT input_path, num_scenarios FROM ingests",
    "SELECT * FROM ingests",
    "SELECT max(start_time_ns) - min(start_time_ns) AS span FROM scenarios WHERE num_pedestrians > 0",
]


def _rows(table) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(repr(r) for r in table.to_pylist())


@pytest.fixture
def lake(make_lake, inputs):  # type: ignore[no-untyped-def]
    lk = make_lake(home="eu-central")
    lk.ingest(inputs(range(4), telemetry=True), "eu-central", registry=lake_synth.REGISTRY)
    return lk


def _session(snap) -> SqlSession:  # type: ignore[no-untyped-def]
    datasets = {name: snap.dataset(name) for name in readable_tables()}
    cacheable = {
        n: spec.wide_columns for n in readable_tables() if (spec := table_spec(n)) and spec.sql_cache
    }
    return SqlSession(datasets, cacheable=cacheable)


def test_the_cache_answers_exactly_what_the_datasets_answer(lake) -> None:
    snap = lake.snapshot("eu-central")
    sid = snap.table("scenarios", columns=["scenario_id"]).column(0)[0].as_py()
    plain = _session(snap)
    cached = _session(snap)
    audited: list[str] = []

    def audit(action: str, obj: str, detail: object) -> None:
        audited.append(obj)

    def refuse(action: str, obj: str, exc: Exception) -> Exception:
        return exc

    cached.run("SELECT 1", audit=audit, refuse=refuse)  # the second query builds the cache
    from_memory = []
    for template in QUERIES:
        query = template.format(sid=sid)
        want = plain.run(query, audit=audit, refuse=refuse)
        plain.drop_cache()  # the reference never answers from memory
        hits = cached.cache_hits
        got = cached.run(query, audit=audit, refuse=refuse)
        if cached.cache_hits > hits:
            from_memory.append(query)
        assert cached.cached
        assert got.schema == want.schema, query
        assert _rows(got) == _rows(want), query
        assert got.num_rows > 0, query
    assert len(audited) == 1 + 2 * len(QUERIES), "every query is audited once, from memory or not"
    needs_wide = {QUERIES[i] for i in (3, 4, 5, 6, 7, 9)}  # a list, extras_json, or a view over them
    fell_back = {q.format(sid=sid) for q in QUERIES} - set(from_memory)
    assert fell_back == needs_wide, "only queries that need an uncached column run over the datasets"
    assert plain.cache_hits == 0


def test_errors_are_the_same_from_the_cache(lake) -> None:
    snap = lake.snapshot("eu-central")
    session = _session(snap)
    for _ in range(2):
        with pytest.raises(LakeError, match="SQL error"):
            session.run(
                "SELECT no_such_column FROM scenarios", audit=lambda *a: None, refuse=lambda a, o, e: e
            )
        with pytest.raises(LakeError, match="SQL error"):
            session.run("SELECT * FROM no_such_table", audit=lambda *a: None, refuse=lambda a, o, e: e)
    assert session.cached


def test_the_lake_hands_out_its_snapshot_of_the_latest_version_again(lake, inputs) -> None:
    first = lake.snapshot("eu-central")
    assert lake.snapshot("eu-central") is first
    assert lake.snapshot("eu-central", first.version) is first
    lake.ingest(inputs([40]), "eu-central", registry=lake_synth.REGISTRY)
    second = lake.snapshot("eu-central")
    assert second is not first
    assert second.version == first.version + 1
    assert lake.snapshot("eu-central", first.version) is not first, "older versions are opened afresh"
    before = len(lake.audit_log("eu-central"))
    for _ in range(3):
        lake.sql("SELECT count(*) FROM scenarios", region="eu-central")
    log = lake.audit_log("eu-central")
    sql_rows = [a for a in log.column("action").to_pylist()[before:] if a == "sql"]
    assert len(sql_rows) == 3, "a reused snapshot still audits every query"


def test_a_held_snapshot_stops_answering_from_memory_once_rows_are_erased(make_lake, lake) -> None:
    snap = lake.snapshot("eu-central")
    victim = snap.scenarios()[0].scenario_id
    query = f"SELECT count(*) AS n FROM scenarios WHERE scenario_id = '{victim}'"
    assert snap.sql(query).table.column("n")[0].as_py() == 1
    assert snap.sql(query).table.column("n")[0].as_py() == 1  # now from memory
    other = make_lake(name="dpo", home="eu-central")  # another process erases
    other.erase("eu-central", Erasure(tenant="bmw", scenario_ids=(victim,)))
    with pytest.raises(LakeError, match="SQL error"):  # its files are vacuumed: nothing may answer
        snap.sql(query)
    assert lake.sql(query, region="eu-central").table.column("n")[0].as_py() == 0


def test_tables_write_checkpoints_and_keep_every_version(make_lake, inputs, lake_root: Path) -> None:
    lake = make_lake(home="eu-central")
    lake.ingest(
        inputs(range(24)), "eu-central", registry=lake_synth.REGISTRY, options=IngestOptions(batch_inputs=1)
    )
    log = lake_root / "eu-central" / "ingests" / "_delta_log"
    assert list(log.glob("*.checkpoint.parquet")), "the ledger has a checkpoint"
    assert list((lake_root / "eu-central" / "scenarios" / "_delta_log").glob("*.checkpoint.parquet"))
    assert len(list(log.glob("*.json"))) == 25, "no commit file is cleaned up"
    assert [v.version for v in lake.history("eu-central")] == list(range(24, -1, -1))
    for version in (0, 1, 12, 24):
        count = lake.sql("SELECT count(*) AS n FROM scenarios", region="eu-central", version=version)
        assert count.table.column("n")[0].as_py() == version


def test_event_pages_with_their_track_ids_are_answered_from_memory(lake) -> None:
    import pyarrow as pa

    snap = lake.snapshot("eu-central")
    keys = snap.table("scenarios", columns=["tenant", "source", "scenario_id"]).to_pylist()
    rows = [
        {
            **k,
            "event_type": "hard_braking",
            "track_ids": [f"t{i}", "ego"],
            "severity": float(i),
            "details_json": "{}",
        }
        for k in keys
        for i in range(3)
    ]
    lake.append_derived("eu-central", "events", pa.Table.from_pylist(rows), derived_from=snap)
    snap = lake.snapshot("eu-central")
    specs = {n: spec for n in readable_tables() if (spec := table_spec(n)) and spec.sql_cache}
    assert "track_ids" in specs["events"].cached_lists
    datasets = {name: snap.dataset(name) for name in readable_tables()}
    cacheable = {n: spec.wide_columns for n, spec in specs.items()}
    session = SqlSession(
        datasets, cacheable=cacheable, cached_lists={n: spec.cached_lists for n, spec in specs.items()}
    )
    plain = _session(snap)  # without cached_lists: the list column is left out of its cache
    audit, refuse = (lambda *a: None), (lambda a, o, e: e)
    session.run("SELECT 1", audit=audit, refuse=refuse)
    plain.run("SELECT 1", audit=audit, refuse=refuse)
    page = (
        "SELECT scenario_id, event_type, track_ids, severity FROM events ORDER BY severity DESC, scenario_id"
    )
    answers = []
    for s in (session, plain):
        hits = s.cache_hits
        answers.append(s.run(page, audit=audit, refuse=refuse))
        assert s.cached
        assert (s.cache_hits > hits) == (s is session), (
            "only the kept list column lets the page hit the cache"
        )
    assert answers[0].num_rows == len(rows)
    assert answers[0].to_pylist() == answers[1].to_pylist()
    hits = session.cache_hits
    session.run("SELECT details_json FROM events", audit=audit, refuse=refuse)
    assert session.cache_hits == hits, "a wide column still runs over the datasets"
