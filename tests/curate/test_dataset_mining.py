"""Datasets selected by the mining layer: expressions, event types, balancing, the tagger version recorded."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from datadrive.compute import InlineEngine
from datadrive.curate import DatasetQuery, create_dataset, dataset_events
from datadrive.errors import DatasetError, EmptyDatasetError, MiningError
from datadrive.lake import Lake, Principal
from learning_fixtures import learning_config

REGION = "eu-central"


@pytest.fixture(scope="module")
def tagged(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The 8 nuScenes sample scenes, indexed and tagged by the mining layer."""
    from datadrive.mining import tag_lake

    root = tmp_path_factory.mktemp("mined") / "lake"
    lake = Lake(learning_config(root), Principal("ana", "bmw", REGION))
    lake.init()
    report = lake.ingest([samples / "scenarionet_nuscenes"], region=REGION, engine=InlineEngine())
    assert report.ok, report.counts()
    tagged = tag_lake(lake, REGION)
    assert not tagged.failures
    return lake


def events_by_scenario(lake: Lake) -> dict[str, set[str]]:
    """Scenario id -> event types, read straight from the events table (current tagger version)."""
    from datadrive.mining import tagger_version

    rows = (
        lake.snapshot(REGION)
        .sql(f"SELECT scenario_id, event_type FROM events WHERE tagger_version = '{tagger_version()}'")
        .table.to_pylist()
    )
    out: dict[str, set[str]] = {}
    for r in rows:
        out.setdefault(r["scenario_id"], set()).add(r["event_type"])
    return out


def test_events_select_exactly_the_scenarios_with_that_event(tagged: Lake) -> None:
    from datadrive.mining import tagger_version

    truth = events_by_scenario(tagged)
    kind = Counter(e for evs in truth.values() for e in evs).most_common(1)[0][0]
    m = create_dataset(tagged, "by-event", REGION, DatasetQuery.mining(events=[kind]))
    assert set(m.scenario_ids) == {sid for sid, evs in truth.items() if kind in evs}
    assert m.code["tagger_version"] == tagger_version()
    assert m.query.as_json() == {"kind": "events", "text": kind, "events": [kind]}
    # the manifest's query round-trips through its artefact
    from datadrive.curate import load_dataset

    assert load_dataset(tagged, "by-event", REGION).query == m.query


def test_an_expression_selects_what_mining_selects_and_records_the_tagger(tagged: Lake) -> None:
    from datadrive.mining import select_scenarios, tagger_version

    m = create_dataset(tagged, "stopped", REGION, DatasetQuery.mining(expression="vehicle and stopped"))
    pick = select_scenarios(tagged.snapshot(REGION, m.lake_version), expression="vehicle and stopped")
    assert sorted(m.scenario_ids) == pick.scenario_ids()
    assert len(m.scenario_ids) > 0
    assert m.code["tagger_version"] == tagger_version()


def test_a_mining_query_matching_nothing_is_a_clear_error(tagged: Lake) -> None:
    before = tagged.list_derived(REGION, "dataset", "nothing/")
    with pytest.raises(EmptyDatasetError, match="matched no scenario"):
        create_dataset(tagged, "nothing", REGION, DatasetQuery.mining(expression="stopped and not stopped"))
    assert tagged.list_derived(REGION, "dataset", "nothing/") == before  # nothing written


def test_unknown_event_types_and_bad_queries_are_refused(tagged: Lake) -> None:
    with pytest.raises(MiningError, match="unknown event type 'teleport'"):
        create_dataset(tagged, "x", REGION, DatasetQuery.mining(events=["teleport"]))
    with pytest.raises(DatasetError, match="only by event_type"):
        create_dataset(
            tagged, "x", REGION, DatasetQuery.sql("SELECT scenario_id FROM scenarios"), balance_by="log"
        )
    with pytest.raises(DatasetError, match="not both"):
        DatasetQuery.mining(expression="car", description="a car")


def test_balancing_by_event_type_keeps_the_rarest_types_count(tagged: Lake) -> None:
    truth = events_by_scenario(tagged)
    all_ids = {
        r["scenario_id"]
        for r in tagged.snapshot(REGION).sql("SELECT scenario_id FROM scenarios").table.to_pylist()
    }
    types = {sid: truth.get(sid, {"none"}) for sid in all_ids}
    before = Counter(e for evs in types.values() for e in evs)
    m = create_dataset(
        tagged,
        "balanced",
        REGION,
        DatasetQuery.sql("SELECT scenario_id FROM scenarios"),
        balance_by="event_type",
    )
    assert m.balance is not None
    assert m.balance["before"] == dict(sorted(before.items()))
    cap = min(before.values())
    after = Counter(e for sid in m.scenario_ids for e in types[sid])
    assert m.balance["after"] == dict(sorted({k: after.get(k, 0) for k in before}.items()))
    # every type is represented by at least min(cap, its count) scenarios, the rarest exactly by cap
    assert all(after[k] >= min(cap, n) for k, n in before.items())
    assert min(after[k] for k in before) == cap
    assert len(m.scenario_ids) < len(all_ids) or cap == max(before.values())
    assert "tagger_version" in m.code


def test_dataset_events_are_the_datasets_scenarios_events(tagged: Lake) -> None:
    from datadrive.mining import tagger_version

    m = create_dataset(tagged, "all", REGION, DatasetQuery.sql("SELECT scenario_id FROM scenarios"))
    found = dataset_events(tagged, m)
    assert found is not None
    events, version = found
    assert version == tagger_version()
    truth = events_by_scenario(tagged)
    assert {k.split("/")[-1]: set(v) for k, v in events.items()} == truth


def test_events_on_an_untagged_region_are_refused(samples: Path, tmp_path: Path) -> None:
    lake = Lake(learning_config(tmp_path / "lake"), Principal("ana", "bmw", REGION))
    lake.init()
    lake.ingest([samples / "scenarionet_nuscenes"], region=REGION, engine=InlineEngine())
    with pytest.raises(MiningError, match="not tagged"):
        create_dataset(lake, "x", REGION, DatasetQuery.mining(events=["cut_in"]))
