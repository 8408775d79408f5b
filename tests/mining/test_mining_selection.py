"""What other layers call: ``tag_lake`` and ``select_scenarios``, checked against in-memory mining.

The expected answers are computed from the snapshot's scenarios in memory
(``tag_scenario``, ``mine``), a path that never reads the lake's mining
tables; the selection reads those tables.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from datadrive.errors import DescriptionError, MiningError, QueryError
from datadrive.lake import Lake
from datadrive.mining import EVENT_TYPES, mine, select_scenarios, tag_lake, tag_scenario, tagger_version

REGION = "eu-central"


def _key(s: Any) -> tuple[str | None, str, str]:
    return (s.metadata.tenant, s.source, s.scenario_id)


@pytest.fixture(scope="module")
def truth(mined_lake: Lake) -> dict[str, Any]:
    snap = mined_lake.snapshot(REGION)
    scenarios = snap.scenarios()
    events = {_key(s): sorted({e.event_type for e in tag_scenario(s).events}) for s in scenarios}
    return {"snap": snap, "scenarios": scenarios, "events": events}


def test_tag_lake_is_the_entry_point_and_incremental(mined_lake: Lake) -> None:
    import datadrive.mining

    assert callable(datadrive.mining.tag_lake)  # what the demo loop looks up
    before = mined_lake.snapshot(REGION).version
    again = tag_lake(mined_lake, REGION)
    assert (again.indexed, again.tagged, again.lake_version_after) == (0, 0, before)


def test_events_select_the_scenarios_tagged_in_memory(truth: dict[str, Any]) -> None:
    snap, events = truth["snap"], truth["events"]
    counts = Counter(t for types in events.values() for t in types)
    assert counts, "the samples have events"
    for kind in counts:
        pick = select_scenarios(snap, events=[kind])
        assert list(pick.keys) == sorted(k for k, types in events.items() if kind in types), kind
        assert pick.event_types == (kind,)
        assert pick.lake_version == snap.version
        assert pick.tagger_version == tagger_version()
        for k in pick.keys:
            assert pick.events_by_scenario[k] == tuple(events[k])
    two = sorted(counts)[:2]
    either = select_scenarios(snap, events=two)
    assert set(either.keys) == {k for k, types in events.items() if set(two) & set(types)}


def test_expressions_and_descriptions_select_the_scenarios_with_hits(truth: dict[str, Any]) -> None:
    snap, scenarios, events = truth["snap"], truth["scenarios"], truth["events"]
    for text in ("pedestrian and moving", "vehicle and stopped and near(ego, within=15m)", "bus"):
        want = sorted({_key(s) for s in scenarios if len(mine(text, [s]))})
        pick = select_scenarios(snap, expression=text)
        assert list(pick.keys) == want, text
        assert pick.expression is not None
        assert pick.events_by_scenario == {}
    said = select_scenarios(snap, description="a pedestrian walking", with_events=True)
    assert said.expression == "pedestrian and moving"
    assert list(said.keys) == sorted({_key(s) for s in scenarios if len(mine("pedestrian and moving", [s]))})
    assert all(said.events_by_scenario[k] == tuple(events[k]) for k in said.keys)
    # both: the scenarios that satisfy the expression and have the event
    kind = Counter(t for types in events.values() for t in types).most_common(1)[0][0]
    both = select_scenarios(snap, expression="vehicle and moving", events=[kind])
    moving = {_key(s) for s in scenarios if len(mine("vehicle and moving", [s]))}
    assert set(both.keys) == {k for k in moving if kind in events[k]}


def test_the_selection_sql_reproduces_it_and_curates_a_dataset(
    mined_lake: Lake, truth: dict[str, Any]
) -> None:
    from datadrive.curate import DatasetQuery, SplitSpec, create_dataset

    snap = truth["snap"]
    pick = select_scenarios(snap, expression="pedestrian and moving")
    assert 0 < len(pick) < len(truth["scenarios"])
    rows = snap.sql(pick.sql()).table.to_pylist()
    assert [(r["tenant"], r["source"], r["scenario_id"]) for r in rows] == list(pick.keys)
    empty = select_scenarios(snap, expression="animal")
    assert len(empty) == 0
    assert snap.sql(empty.sql()).table.num_rows == 0
    manifest = create_dataset(
        mined_lake,
        "walkers",
        REGION,
        DatasetQuery.sql(pick.sql()),
        split=SplitSpec.parse("100/0"),
        as_of=snap.version,
    )
    assert manifest.lake_version == snap.version
    assert sorted(zip(manifest.tenants, manifest.sources, manifest.scenario_ids, strict=True)) == list(
        pick.keys
    )


def test_bad_requests_are_refused_clearly(mined_lake: Lake, truth: dict[str, Any]) -> None:
    snap = truth["snap"]
    with pytest.raises(MiningError, match=r"unknown event type 'hard_brakes'; known: hard_braking"):
        select_scenarios(snap, events=["hard_brakes"])
    assert "cut_in" in EVENT_TYPES
    with pytest.raises(MiningError, match="not both"):
        select_scenarios(snap, expression="car", description="a car")
    with pytest.raises(QueryError):
        select_scenarios(snap, expression="car and")
    with pytest.raises(DescriptionError, match="'frobnicating'"):
        select_scenarios(snap, description="a car frobnicating")
    # events of a version nobody tagged with: refused, not an empty answer
    from datadrive.mining.events import HardBrakingConfig, TaggerConfig

    other = TaggerConfig(hard_braking=HardBrakingConfig(decel_mps2=2.5))
    with pytest.raises(MiningError, match=r"not tagged with tagger version .* run `datadrive index`"):
        select_scenarios(snap, events=["hard_braking"], taggers=other)
