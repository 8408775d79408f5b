"""Car Genius on the vehicle's own driving events, as the mining layer tagged them in a real lake.

The lake: synthetic-fleet scenarios (``datadrive.sim.fleet``: lead cars braking
hard, cut-ins, pedestrians crossing) stamped as the logs of two vehicles
(``extras["vehicle_id"]``, pseudonymised by the lake), ingested, then tagged
by the mining layer for real (``datadrive.mining.tag_lake``); one more
scenario of the first vehicle is ingested after the tagging (not mined).
The expected answers are read straight from the lake's ``events``,
``scenarios`` and ``mining_index`` tables with DuckDB SQL, not through the
assistant's code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from assistant_helpers import SampleLake

from datadrive.assistant import Assistant, load_vehicle
from datadrive.assistant.ego_events import EVENT_LABELS, scenario_vehicles
from datadrive.assistant.intents import parse_question
from datadrive.errors import UnknownVehicleError
from datadrive.lake import Lake, LakeConfig, Principal, RegionConfig, StorageRoot, TenantConfig

REGION = "eu-central"


@dataclass(frozen=True)
class FleetLake:
    lake: Lake
    vehicles: dict[str, str]  # stamped name -> pseudonymised id in the lake
    before_mining: dict[str, Any]  # an answer given before the mining layer ran
    late_scenario: str


FLEET_MAPS = (
    "av2_motion_forecasting/0a1e6f0a-1817-4a98-b02e-db8c9327d151",
    "waymo_open_motion/scenario_637f20cafde22ff8",
)


def _fleet_maps(samples: Path) -> tuple[str, ...]:
    for m in FLEET_MAPS:
        if not (samples / m).exists():
            pytest.skip(f"sample map {samples / m} not found")
    return tuple(str(samples / m) for m in FLEET_MAPS)


@pytest.fixture(scope="module")
def fleet_lake(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> FleetLake:
    from datadrive.mining import tag_lake
    from datadrive.sim.fleet import FleetConfig, generate_chunk

    cfg = FleetConfig(
        maps=_fleet_maps(samples),
        seed=5,
        event_rates={"cut_in": 0.8, "hard_braking": 0.6, "pedestrian_crossing": 0.3},
    )
    scenarios = generate_chunk(cfg, np.arange(21))
    stamped = []
    for i, s in enumerate(scenarios):
        extras = {**s.metadata.extras, "vehicle_id": "fleet-car-A" if i % 2 == 0 else "fleet-car-B"}
        stamped.append(replace(s, metadata=replace(s.metadata, extras=extras)))
    root = tmp_path_factory.mktemp("ego_events_lake")
    config = LakeConfig(
        regions={REGION: RegionConfig(REGION, StorageRoot(str(root / "eu")))},
        tenants={"bmw": TenantConfig("bmw", bytes(range(32)))},
    )
    lake = Lake(config, Principal("ana", "bmw", REGION))
    lake.init()
    lake.ingest_records(stamped[:-1], REGION, name="fleet")
    snap = lake.snapshot(REGION)
    vehicles = {}
    for vid, keys in scenario_vehicles(snap).items():
        name = "fleet-car-A" if ("synthetic", stamped[0].scenario_id) in keys else "fleet-car-B"
        vehicles[name] = vid
    assert len(vehicles) == 2
    assert "fleet-car-A" not in vehicles.values()
    before = Assistant(load_vehicle(snap, vehicles["fleet-car-A"]), store=False).ask("any near misses?")
    report = tag_lake(lake, REGION)
    assert report.failures == ()
    assert report.tagged == 20
    lake.ingest_records([stamped[-1]], REGION, name="one more drive, not mined yet")
    return FleetLake(lake, vehicles, before.to_json(), stamped[-1].scenario_id)


def _expected(fl: FleetLake, vehicle: str) -> list[dict[str, Any]]:
    """The vehicle's ego events, straight from the lake's tables in SQL."""
    snap = fl.lake.snapshot(REGION)
    scen = snap.sql("SELECT source, scenario_id, extras_json, start_time_ns FROM scenarios").table.to_pylist()
    mine = {
        (r["source"], r["scenario_id"]): r["start_time_ns"]
        for r in scen
        if json.loads(r["extras_json"]).get("vehicle_id") == vehicle
    }
    version = snap.sql("SELECT DISTINCT tagger_version FROM mining_index").table.column(0).to_pylist()
    assert len(version) == 1
    rows = snap.sql(
        "SELECT source, scenario_id, event_type, start_ns, end_ns, severity, track_ids FROM events "
        f"WHERE ego_involved AND tagger_version = '{version[0]}' ORDER BY scenario_id, start_ns"
    ).table.to_pylist()
    out = []
    for r in rows:
        key = (r["source"], r["scenario_id"])
        if key in mine:
            r["t0_s"] = (r["start_ns"] - mine[key]) / 1e9
            r["t1_s"] = (r["end_ns"] - mine[key]) / 1e9
            out.append(r)
    return out


def _ask(fl: FleetLake, name: str, question: str) -> Any:
    logs = load_vehicle(fl.lake.snapshot(REGION), fl.vehicles[name])
    return Assistant(logs, store=False).ask(question)


@pytest.mark.parametrize("name", ["fleet-car-A", "fleet-car-B"])
def test_every_mined_ego_event_of_the_vehicle_is_cited(fleet_lake: FleetLake, name: str) -> None:
    expected = _expected(fleet_lake, fleet_lake.vehicles[name])
    assert len({e["event_type"] for e in expected}) >= 2  # the fixture is worth testing on
    answer = _ask(fleet_lake, name, "show my mined events")
    assert answer.answered, answer.text
    assert answer.check.ok, answer.text
    (result,) = answer.results
    assert result.tool == "ego_events"
    assert result.fact("count") == len(expected)
    got = sorted((it["scenario"].value, it["type"].value, round(it["start"].value, 6)) for it in result.items)
    assert got == sorted((e["scenario_id"], e["event_type"], round(e["t0_s"], 6)) for e in expected)
    by_key = {
        (it["scenario"].value, it["type"].value, round(it["start"].value, 6)): it for it in result.items
    }
    for e in expected:
        it = by_key[(e["scenario_id"], e["event_type"], round(e["t0_s"], 6))]
        assert it["severity"].value == pytest.approx(e["severity"])
        assert it["end"].value == pytest.approx(e["t1_s"])
    # the answer text cites each event shown: its scenario, window and severity
    for e in expected[:10]:
        line = next(
            (
                ln
                for ln in answer.text.splitlines()
                if f"`{e['scenario_id']}` from {e['t0_s']:.1f} s to {e['t1_s']:.1f} s" in ln
                and ln.startswith(f"- {EVENT_LABELS[e['event_type']]} ")
            ),
            None,
        )
        assert line is not None, (e, answer.text)
        assert "ego" in line
    # the other vehicle's scenarios are not this one's
    other = next(v for k, v in fleet_lake.vehicles.items() if k != name)
    theirs = {e["scenario_id"] for e in _expected(fleet_lake, other)}
    assert not theirs & {it["scenario"].value for it in result.items}


def test_the_fleet_lake_holds_the_event_types_asked_about(fleet_lake: FleetLake) -> None:
    """Guards the tests below against an empty fixture: the ego brakes hard and has a near miss somewhere."""
    types = {e["event_type"] for v in fleet_lake.vehicles.values() for e in _expected(fleet_lake, v)}
    assert {"hard_braking", "near_miss", "vru_crossing"} <= types, types


@pytest.mark.parametrize(
    ("question", "event_type"),
    [
        ("did I brake hard?", "hard_braking"),
        ("any near misses on my drives", "near_miss"),
        ("did anyone cut in on me", "cut_in"),
        ("were there pedestrians crossing ahead of me", "vru_crossing"),
        ("did I corner hard", "high_lateral_acceleration"),
    ],
)
def test_questions_about_one_event_type_count_only_that_type(
    fleet_lake: FleetLake, question: str, event_type: str
) -> None:
    for name, vid in fleet_lake.vehicles.items():
        expected = [e for e in _expected(fleet_lake, vid) if e["event_type"] == event_type]
        answer = _ask(fleet_lake, name, question)
        assert answer.answered, answer.text
        assert answer.check.ok, answer.text
        (result,) = answer.results
        assert result.args["kinds"] == [event_type]
        assert result.fact("count") == len(expected) == result.fact(f"{event_type}_count")
        if expected:
            assert f"found {len(expected)} {EVENT_LABELS[event_type]}" in answer.text
            worst = max(expected, key=lambda e: e["severity"])
            assert f"{worst['t0_s']:.1f} s to {worst['t1_s']:.1f} s" in answer.text
        else:
            assert f"found no {EVENT_LABELS[event_type]}" in answer.text


def test_the_answer_gives_the_event_times_on_the_wall_clock(fleet_lake: FleetLake) -> None:
    """The fleet's clock is Unix time: each event's start is shown in UTC and passes the number check."""
    from datetime import UTC, datetime

    vid = fleet_lake.vehicles["fleet-car-B"]
    first = _expected(fleet_lake, vid)[0]
    answer = _ask(fleet_lake, "fleet-car-B", "show my mined events")
    when = datetime.fromtimestamp(first["start_ns"] / 1e9, UTC)
    assert f"at {when:%H:%M:%S} UTC on {when:%Y-%m-%d}" in answer.text
    assert answer.check.ok


def test_scenarios_not_yet_mined_are_named_not_counted(fleet_lake: FleetLake) -> None:
    answer = _ask(fleet_lake, "fleet-car-A", "show my mined events")
    (result,) = answer.results
    assert result.fact("untagged") == 1
    assert result.fact("mined_scenarios") == 10
    assert result.fact("scenarios") == 11
    assert "1 of its scenarios is not tagged yet" in answer.text
    assert fleet_lake.late_scenario not in {it["scenario"].value for it in result.items}


def test_before_mining_runs_the_answer_says_so(fleet_lake: FleetLake) -> None:
    before = fleet_lake.before_mining
    assert not before["answered"]
    assert "not tagged by the mining layer" in before["answer"] or "none of this vehicle" in before["answer"]
    assert "datadrive index" in before["answer"]
    assert not re.search(r"\bfound\b", before["answer"])


def test_other_questions_for_a_vehicle_without_telemetry_are_refused_clearly(fleet_lake: FleetLake) -> None:
    answer = _ask(fleet_lake, "fleet-car-A", "what was my top speed")
    assert not answer.answered
    assert answer.check.ok
    assert "no telemetry" in answer.text
    assert "mining layer" in answer.text


def test_an_unknown_vehicle_names_the_scenario_vehicles(fleet_lake: FleetLake) -> None:
    with pytest.raises(UnknownVehicleError, match=fleet_lake.vehicles["fleet-car-A"]):
        load_vehicle(fleet_lake.lake.snapshot(REGION), "no-such-car")


def test_a_telemetry_vehicle_is_told_that_its_drives_are_not_mined(sample_lake: SampleLake) -> None:
    logs = load_vehicle(sample_lake.lake().snapshot(REGION), sample_lake.comma_vehicle)
    answer = Assistant(logs, store=False).ask("any cut-ins on my last drive?")
    assert not answer.answered
    assert answer.check.ok
    assert "telemetry logs" in answer.text
    assert "mining does not tag" in answer.text
    # the telemetry's own harsh-event tool still answers hard braking
    assert Assistant(logs, store=False).ask("did I brake hard").results[0].tool == "harsh_events"


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("did someone cut me off", "cut_in"),
        ("were there any cut-ins", "cut_in"),
        ("any close calls today", "near_miss"),
        ("how many lane changes did I make", "lane_change"),
        ("was I speeding", "ego_speeding"),
        ("did a cyclist cross in front of me", "vru_crossing"),
        ("list my mined events", None),
        ("events from the mining of my scenarios", None),
    ],
)
def test_mined_event_questions_parse(question: str, kind: str | None) -> None:
    intent = parse_question(question)
    assert intent.kind == "ego_events"
    assert intent.event_kind == kind
