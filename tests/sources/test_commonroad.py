"""CommonRoad XML: every value checked against the XML read here with ElementTree.

The centerline rule (``center_vertices`` = the bounds' point-wise midpoint) and
the traffic-light cycle (``get_state_at_time_step``) are commonroad-io's,
re-implemented below in their plain form.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from fuzzing import INNER_FUZZ, assert_reads_or_refuses, text_mutations
from hypothesis import given, seed, settings
from reader_checks import assert_arrow_round_trip, invoke_inspect_json

from datadrive.core import (
    MapFeatureKind,
    MapRelation,
    ObjectType,
    Scenario,
    TrafficLightState,
    summarize,
)
from datadrive.errors import (
    CorruptFileError,
    InputError,
    InvalidValueError,
    SchemaMismatchError,
    UnsupportedFormatError,
)
from datadrive.sources import DEFAULT_REGISTRY
from datadrive.sources.commonroad import CommonRoadAdapter, obstacle_object_type

FILES = ["USA_US101-3_3_T-1.xml", "USA_Lanker-1_1_T-1.xml", "USA_Peach-4_8_T-1.xml"]
IDS = ["us101_2018b", "lanker_2018b", "peach_2020a"]
ADAPTER = CommonRoadAdapter()


@pytest.fixture(scope="module", params=FILES, ids=IDS)
def case(request: pytest.FixtureRequest, samples: Path) -> tuple[ET.Element, Scenario]:
    path = samples / "commonroad_ngsim" / request.param
    (scenario,) = ADAPTER.read_all(path)
    assert isinstance(scenario, Scenario)
    return ET.parse(path).getroot(), scenario


def obstacles(root: ET.Element) -> list[ET.Element]:
    return [e for e in root if e.tag in ("obstacle", "dynamicObstacle", "staticObstacle")]


def exact(element: ET.Element, tag: str) -> float:
    return float(element.findtext(f"{tag}/exact", ""))


def all_states(obstacle: ET.Element) -> list[ET.Element]:
    initial = obstacle.find("initialState")
    assert initial is not None
    return [initial, *obstacle.findall("trajectory/state")]


def lanelets(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.findall("lanelet") if e.find("leftBound") is not None]


def bound(lanelet: ET.Element, tag: str) -> np.ndarray:
    return np.array(
        [[float(p.findtext("x", "")), float(p.findtext("y", ""))] for p in lanelet.findall(f"{tag}/point")]
    )


def relations(s: Scenario, relation: MapRelation) -> set[tuple[str, str]]:
    assert s.map is not None
    ids = s.map.feature_ids
    return {(str(ids[a]), str(ids[b])) for a, b, r in s.map.relations.tolist() if r == relation}


# --------------------------------------------------------------------------- values


def test_sources_md_facts(case: tuple[ET.Element, Scenario]) -> None:
    root, s = case
    facts = {
        "USA_US101-3_3_T-1": ("2018b", 12, 12, 31),
        "USA_Lanker-1_1_T-1": ("2018b", 91, 24, 40),
        "USA_Peach-4_8_T-1": ("2020a", 79, 9, 60),
    }[s.scenario_id]
    version, num_lanelets, num_obstacles, last_step = facts
    assert root.get("commonRoadVersion") == version == s.metadata.extras["commonroad_version"]
    assert s.map is not None
    assert s.map.num_lanes == num_lanelets
    assert s.num_tracks == num_obstacles
    assert s.num_steps == last_step + 1


def test_tracks_match_the_xml(case: tuple[ET.Element, Scenario]) -> None:
    root, s = case
    obs = obstacles(root)
    assert s.tracks.track_ids.tolist() == [o.get("id") for o in obs]
    assert s.tracks.category.tolist() == [o.findtext("type") for o in obs]
    assert summarize(s)["num_valid_states"] == sum(len(all_states(o)) for o in obs)
    xy_sum = math.fsum(
        float(st_.findtext("position/point/x", "")) + float(st_.findtext("position/point/y", ""))
        for o in obs
        for st_ in all_states(o)
    )
    assert summarize(s)["xy_sum_m"] == pytest.approx(xy_sum, rel=1e-12, abs=1e-9)
    for a, o in enumerate(obs):
        rect = o.find("shape/rectangle")
        assert rect is not None
        assert s.tracks.size_m[a, :2].tolist() == [
            float(rect.findtext("length", "")),
            float(rect.findtext("width", "")),
        ]
        for st_ in all_states(o):
            t = int(exact(st_, "time"))
            assert s.tracks.valid[a, t]
            assert s.tracks.xy_m[a, t].tolist() == [
                float(st_.findtext("position/point/x", "")),
                float(st_.findtext("position/point/y", "")),
            ]
            heading, speed = exact(st_, "orientation"), exact(st_, "velocity")
            assert s.tracks.heading_rad[a, t] == heading
            np.testing.assert_allclose(
                s.tracks.velocity_mps[a, t],
                [speed * math.cos(heading), speed * math.sin(heading)],
                atol=1e-12,
            )
    np.testing.assert_array_equal(s.timestamps_ns, np.arange(s.num_steps) * 100_000_000)
    assert s.ego_index is None
    assert s.metadata.frame == f"commonroad_{root.get('benchmarkID')}"


def test_map_matches_the_xml(case: tuple[ET.Element, Scenario]) -> None:
    root, s = case
    assert s.map is not None
    index = {fid: i for i, fid in enumerate(s.map.feature_ids.tolist())}
    successors, lefts, rights = set(), set(), set()
    for el in lanelets(root):
        fid = f"lanelet_{el.get('id')}"
        left, right = bound(el, "leftBound"), bound(el, "rightBound")
        np.testing.assert_allclose(s.map.points(index[fid])[:, :2], (left + right) / 2, atol=1e-12)
        np.testing.assert_array_equal(s.map.points(index[f"{fid}_left"])[:, :2], left)
        successors |= {(fid, f"lanelet_{x.get('ref')}") for x in el.findall("successor")}
        for tag, out in (("adjacentLeft", lefts), ("adjacentRight", rights)):
            adj = el.find(tag)
            if adj is not None and adj.get("drivingDir") == "same":
                out.add((fid, f"lanelet_{adj.get('ref')}"))
    assert relations(s, MapRelation.SUCCESSOR) == successors
    assert relations(s, MapRelation.LEFT_NEIGHBOR) == lefts
    assert relations(s, MapRelation.RIGHT_NEIGHBOR) == rights
    assert {(a, b) for a, b in relations(s, MapRelation.LEFT_BOUNDARY)} == {
        (f"lanelet_{el.get('id')}", f"lanelet_{el.get('id')}_left") for el in lanelets(root)
    }


def test_planning_problems_kept_not_as_ego(case: tuple[ET.Element, Scenario]) -> None:
    root, s = case
    problems = s.metadata.extras["planning_problems"]
    xml_problems = root.findall("planningProblem")
    assert [p["id"] for p in problems] == [int(p.get("id", "")) for p in xml_problems]
    for p, x in zip(problems, xml_problems, strict=True):
        assert p["initialState"]["velocity"]["exact"] == float(x.findtext("initialState/velocity/exact", ""))
        assert p["goalState"]["time"]["intervalEnd"] == int(x.findtext("goalState/time/intervalEnd", ""))
    assert s.ego_index is None
    json.dumps(dict(s.metadata.extras), allow_nan=False)


def cycle_state(colors: list[str], durations: list[int], offset: int, step: int) -> str:
    """commonroad-io's ``TrafficLightCycle.get_state_at_time_step``."""
    init = np.insert(np.cumsum(durations) + offset, 0, offset)
    mod = ((step - offset) % (init[-1] - offset)) + offset
    return colors[int(np.argmax(mod < init)) - 1]


def test_traffic_lights_follow_their_cycles(samples: Path) -> None:
    path = samples / "commonroad_ngsim" / "USA_Peach-4_8_T-1.xml"
    (s,) = ADAPTER.read_all(path)
    assert isinstance(s, Scenario)
    assert s.traffic_lights is not None
    root = ET.parse(path).getroot()
    lights = {t.get("id"): t for t in root.findall("trafficLight")}
    expected_lanes = [
        f"lanelet_{el.get('id')}" for el in lanelets(root) if el.find("trafficLightRef") is not None
    ]
    assert s.traffic_lights.lane_ids.tolist() == expected_lanes
    codes = {
        "red": TrafficLightState.STOP,
        "green": TrafficLightState.GO,
        "yellow": TrafficLightState.CAUTION,
        "redYellow": TrafficLightState.STOP,
    }
    for row, el in enumerate(el for el in lanelets(root) if el.find("trafficLightRef") is not None):
        ref = el.find("trafficLightRef")
        assert ref is not None
        light = lights[ref.get("ref")]
        colors = [c.findtext("color", "") for c in light.findall("cycle/cycleElement")]
        durations = [int(c.findtext("duration", "")) for c in light.findall("cycle/cycleElement")]
        offset = int(light.findtext("cycle/timeOffset") or 0)
        for t in range(s.num_steps):
            assert s.traffic_lights.state[row, t] == codes[cycle_state(colors, durations, offset, t)]
    assert s.traffic_lights.valid.all()
    assert s.map is not None
    stop_lines = int(np.count_nonzero(s.map.kind == MapFeatureKind.STOP_LINE))
    assert stop_lines == sum(el.find("stopLine") is not None for el in lanelets(root))


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("car", ObjectType.VEHICLE),
        ("bus", ObjectType.VEHICLE),
        ("parkedVehicle", ObjectType.VEHICLE),
        ("bicycle", ObjectType.CYCLIST),
        ("motorcycle", ObjectType.CYCLIST),
        ("pedestrian", ObjectType.PEDESTRIAN),
        ("train", ObjectType.OTHER),
        ("constructionZone", ObjectType.OTHER),
        ("unknown", ObjectType.OTHER),
    ],
    ids=["car", "bus", "parked", "bicycle", "motorcycle", "pedestrian", "train", "construction", "unknown"],
)
def test_object_types(label: str, expected: ObjectType) -> None:
    assert obstacle_object_type(label) == expected


# --------------------------------------------------------------------------- contract


def test_inspect_json(samples: Path) -> None:
    folder = samples / "commonroad_ngsim"
    lines = {x["scenario_id"]: x for x in invoke_inspect_json(folder)}
    for name in FILES:
        root = ET.parse(folder / name).getroot()
        line = lines[root.get("benchmarkID", "")]
        obs = obstacles(root)
        assert line["num_tracks"] == len(obs)
        assert line["num_valid_states"] == sum(len(all_states(o)) for o in obs)
        assert line["num_map_lanes"] == len(lanelets(root))
        assert line["dt_s"] == float(root.get("timeStepSize", ""))
        assert line["ego_track_id"] is None
        assert line["track_type_counts"] == {"vehicle": len(obs), "cyclist": 0, "pedestrian": 0, "other": 0}


def test_arrow_round_trip(case: tuple[ET.Element, Scenario]) -> None:
    assert_arrow_round_trip([case[1]])


def test_registry(samples: Path) -> None:
    for name in FILES:
        assert DEFAULT_REGISTRY.detect(samples / "commonroad_ngsim" / name).name == "commonroad"


# --------------------------------------------------------------------------- synthetic files

LANELET = """<lanelet id="1">
  <leftBound><point><x>0</x><y>3</y></point><point><x>10</x><y>3</y></point><lineMarking>solid</lineMarking></leftBound>
  <rightBound><point><x>0</x><y>0</y></point><point><x>10</x><y>0</y></point></rightBound>
  <laneletType>urban</laneletType>
</lanelet>"""
OBSTACLE = """<dynamicObstacle id="7"><type>bicycle</type>
  <shape><circle><radius>0.5</radius></circle></shape>
  <initialState><position><point><x>1</x><y>1</y></point></position><orientation><exact>0</exact></orientation>
    <time><exact>0</exact></time><velocity><exact>2</exact></velocity></initialState>
  <trajectory><state><position><point><x>1.2</x><y>1</y><z>0.5</z></point></position>
    <orientation><intervalStart>0.1</intervalStart><intervalEnd>0.3</intervalEnd></orientation>
    <time><exact>2</exact></time><velocity><exact>2</exact></velocity><velocityY><exact>1</exact></velocityY></state>
  </trajectory></dynamicObstacle>
<staticObstacle id="8"><type>parkedVehicle</type>
  <shape><rectangle><length>4</length><width>2</width></rectangle></shape>
  <initialState><position><point><x>5</x><y>-2</y></point></position><orientation><exact>1.5</exact></orientation>
    <time><exact>0</exact></time></initialState></staticObstacle>"""


def document(body: str = LANELET + OBSTACLE, version: str = "2020a", dt: str = "0.1", head: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{head}\n'
        f'<commonRoad commonRoadVersion="{version}" benchmarkID="DEU_Test-1_1_T-1" timeStepSize="{dt}">\n'
        f"{body}\n</commonRoad>\n"
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.xml"
    path.write_text(text)
    return path


def test_synthetic_scenario(tmp_path: Path) -> None:
    (s,) = ADAPTER.read_all(write(tmp_path, document()))
    assert isinstance(s, Scenario)
    tr = s.tracks
    assert tr.track_ids.tolist() == ["7", "8"]
    assert s.num_steps == 3
    assert tr.object_type.tolist() == [ObjectType.CYCLIST, ObjectType.VEHICLE]
    assert tr.valid.tolist() == [[True, False, True], [True, True, True]]  # a static obstacle is always there
    assert tr.size_m[0, :2].tolist() == [1.0, 1.0]
    assert tr.size_m[1, :2].tolist() == [4.0, 2.0]
    assert tr.heading_rad[0, 2] == pytest.approx(0.2)
    assert tr.z_m[0, 2] == 0.5
    assert np.isnan(tr.z_m[0, 0])
    c, sn = math.cos(0.2), math.sin(0.2)
    np.testing.assert_allclose(tr.velocity_mps[0, 2], [2 * c - 1 * sn, 2 * sn + 1 * c])
    assert np.isnan(tr.velocity_mps[1]).all()
    assert s.map is not None
    assert s.map.subtype[1] == "solid"
    assert s.metadata.location == "DEU_Test"


@pytest.mark.parametrize(
    ("text", "error", "reason"),
    [
        (document()[:400], CorruptFileError, "not well-formed XML"),
        ("", CorruptFileError, "not well-formed XML"),
        (document(version="2017a"), UnsupportedFormatError, "version '2017a'"),
        (document().replace("commonRoad", "scenario"), UnsupportedFormatError, "not <commonRoad>"),
        (document(dt="0"), InvalidValueError, "not positive"),
        (document(dt="fast"), InvalidValueError, "timeStepSize is 'fast'"),
        (document().replace("<x>1.2</x>", "<x>NaN</x>"), InvalidValueError, "not a finite number"),
        (document().replace("<x>1.2</x>", "<x>a</x>"), InvalidValueError, "not a number"),
        (
            document().replace("<exact>2</exact></time>", "<exact>0</exact></time>"),
            InvalidValueError,
            "two states",
        ),
        (
            document().replace("<exact>2</exact></time>", "<exact>2.5</exact></time>"),
            InvalidValueError,
            "whole time step",
        ),
        (
            document().replace("<orientation><exact>0</exact></orientation>", ""),
            SchemaMismatchError,
            "no <orientation>",
        ),
        (
            document().replace(
                "<rightBound><point><x>0</x><y>0</y></point><point><x>10</x><y>0</y></point></rightBound>",
                "<rightBound></rightBound>",
            ),
            SchemaMismatchError,
            "has no points",
        ),
        (
            document().replace("<exact>2</exact></time>", "<exact>99999999</exact></time>"),
            InvalidValueError,
            "more than datadrive reads",
        ),
        (document(body=LANELET + OBSTACLE.replace('id="8"', 'id="7"')), InvalidValueError, "share an id"),
    ],
    ids=[
        "truncated",
        "empty",
        "old_version",
        "wrong_root",
        "zero_dt",
        "bad_dt",
        "nan_x",
        "text_x",
        "duplicate_time",
        "fractional_time",
        "no_orientation",
        "bound_without_points",
        "absurd_time",
        "duplicate_id",
    ],
)
def test_bad_input(tmp_path: Path, text: str, error: type[InputError], reason: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(error, match=reason) as info:
        ADAPTER.read_all(path)
    assert info.value.path == str(path)


@pytest.mark.parametrize(
    "head",
    [
        '<!DOCTYPE commonRoad [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>',
        '<!DOCTYPE commonRoad [<!ENTITY secret SYSTEM "file:///etc/hostname">]>',
    ],
    ids=["billion_laughs", "external_entity"],
)
def test_xml_bombs_are_refused(tmp_path: Path, head: str) -> None:
    entity = "&d;" if "laughs" in head else "&secret;"
    text = document(head=head).replace("<laneletType>urban", f"<laneletType>{entity}")
    with pytest.raises(CorruptFileError, match="DTD"):
        ADAPTER.read_all(write(tmp_path, text))


def test_claims(tmp_path: Path) -> None:
    assert ADAPTER.claims(write(tmp_path, document()))
    other = tmp_path / "other.xml"
    other.write_text("<?xml version='1.0'?><osm></osm>")
    assert not ADAPTER.claims(other)


# --------------------------------------------------------------------------- fuzz


@pytest.mark.parametrize("name", FILES, ids=IDS)
def test_fuzz(samples: Path, tmp_path: Path, name: str) -> None:
    """Mutated scenarios: validated records or an InputError, nothing else (seeded: replays)."""
    original = (samples / "commonroad_ngsim" / name).read_bytes()
    path = tmp_path / name

    @seed(20261124)
    @settings(INNER_FUZZ, max_examples=15, deadline=10_000)
    @given(data=text_mutations(original, [b"<", b">", b"\x00", b"nan", b"-", b"1e308", b"</x>"]))
    def check(data: bytes) -> None:
        path.write_bytes(data)
        assert_reads_or_refuses(ADAPTER, path)

    check()


def test_speed_limits_from_the_lanelets_max_speed_signs(case: tuple[ET.Element, Scenario]) -> None:
    root, s = case
    assert s.map is not None
    # R2-1 is the US maximum-speed sign; CommonRoad stores its value in m/s
    sign_speed = {
        t.get("id"): float(e.findtext("additionalValue", ""))
        for t in root.findall("trafficSign")
        for e in t.findall("trafficSignElement")
        if e.findtext("trafficSignID") == "R2-1"
    }
    index = {fid: i for i, fid in enumerate(s.map.feature_ids.tolist())}
    limits = s.map.speed_limits()
    for el in lanelets(root):
        refs = [sign_speed[r.get("ref")] for r in el.findall("trafficSignRef") if r.get("ref") in sign_speed]
        got = limits[index[f"lanelet_{el.get('id')}"]]
        if refs:
            assert got == min(refs)
        else:
            assert np.isnan(got)
    if root.get("commonRoadVersion") == "2020a":  # Peach: 25 and 35 mph signs
        assert sorted({round(v * 3.6 / 1.609344) for v in sign_speed.values()}) == [25, 35]
    else:
        assert s.map.speed_limit_mps is None  # 2018b has no traffic signs
