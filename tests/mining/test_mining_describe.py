"""Plain English to expressions: the offline translator by hand, unknown words named, fuzzed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datadrive.errors import DescriptionError
from datadrive.mining.describe import LEXICON, describe
from datadrive.mining.query import parse
from datadrive.mining.vocabulary import bind

CASES = [
    ("stopped car", "car and stopped"),
    ("pedestrians far from any vehicle", "pedestrian and not near(vehicle)"),
    ("a child running into the road", "pedestrian and speed(min=2.5 m/s) and on_road"),
    ("an ambulance near the ego", "emergency_vehicle and near(ego)"),
    ("a truck backing up", "truck and reversing"),
    ("car running a red light", "car and running_red_light"),
    ("a vehicle driving the wrong way", "vehicle and wrong_way"),
    ("a cyclist riding against traffic", "cyclist and moving and wrong_way"),
    ("car reversing out of a driveway", "car and reversing and in_drivable_area and not on_road"),
    ("a car turning right on red", "car and turning(right) and running_red_light(turn_on_red=none)"),
    (
        "a cyclist overtaking a bus",
        "cyclist and moving and heading(bus, same) and (left_of(bus) or right_of(bus))",
    ),
    ("a scooter on the sidewalk", "cyclist and not in_drivable_area"),
    ("ego stuck in traffic", "ego and stopped and has_ahead(vehicle and stopped, within=15m)"),
    (
        "a pedestrian stepping out behind a parked van",
        "pedestrian and moving and on_road and behind(car and stationary)",
    ),
    ("ego vehicle waiting at a red light", "ego and stopped and red_light"),
    ("a large truck turning left at an intersection", "truck and turning(left) and at_intersection"),
    ("trucks blocking the road", "truck and event(stopped_in_lane)"),
    ("a vehicle in the opposite lane", "vehicle and heading(ego, relation=opposite)"),
    ("pedestrians waiting to cross", "pedestrian and stopped and road_side"),
    ("a car turning left across oncoming traffic", "car and turning(left) and event(unprotected_turn)"),
    ("a pedestrian not far from a bus", "pedestrian and near(bus)"),
    ("a car within 10 meters of an intersection", "car and near_intersection(within=10m)"),
    ("a pedestrian near a crosswalk", "pedestrian and at_crosswalk(within=5m)"),
    ("a stopped truck away from the intersection", "truck and stopped and not near_intersection(within=5m)"),
    ("a car near a stop line", "car and at_stop_line(within=10m)"),
    ("a car near a pedestrian at a crosswalk", "car and near(pedestrian and at_crosswalk)"),
    ("A stopped car.", "car and stopped"),
    ("vehicle stopped in the middle of the road", "vehicle and stopped and on_road"),
    ("parked cars on the side of the road", "car and stationary and road_side"),
    ("a pedestrian crossing in front of a stopped bus", "pedestrian and crossing(bus and stopped)"),
    ("cars and trucks near the ego vehicle", "(car or truck) and near(ego)"),
    ("at least 3 pedestrians at a crosswalk", "at_least(3, pedestrian and at_crosswalk)"),
    ("more than 2 people near a stopped car", "at_least(3, pedestrian and near(car and stopped))"),
    ("a group of pedestrians near a bus", "at_least(3, pedestrian and near(bus))"),
    ("car with a pedestrian in front", "car and has_ahead(pedestrian)"),
    ("vehicle within 10 meters of a cyclist", "vehicle and near(cyclist, within=10m)"),
    ("car with at least 2 pedestrians within 5 m", "car and near(pedestrian, within=5m, min=2)"),
    ("car without pedestrians nearby", "car and not near(pedestrian)"),
    ("pedestrian with no vehicles nearby", "pedestrian and not near(vehicle)"),
    ("vehicle 20 m ahead of the ego", "vehicle and ahead_of(ego, within=20m)"),
    ("a truck behind", "truck and behind(ego)"),
    ("motorcycle behind a car", "motorcycle and behind(car)"),
    ("oncoming truck", "truck and heading(ego, relation=opposite)"),
    ("bus changing lanes to the left", "bus and changing_lanes(left)"),
    ("truck making a right turn", "truck and turning(right)"),
    (
        "ego vehicle turning left at an intersection while a pedestrian is at the crosswalk",
        "during(ego and turning(left) and at_intersection, pedestrian and at_crosswalk)",
    ),
    ("jaywalking pedestrian", "pedestrian and on_road and not at_crosswalk"),
    ("vehicle not moving in the bike lane", "vehicle and stopped and lane_type(bike)"),
    ("car driving faster than 30 km/h", "car and moving and speed(min=30 km/h)"),
    ("ego driving below 20 mph", "ego and moving and speed(max=20mph)"),
    ("vehicle following the ego for more than 3 seconds", "for_at_least(vehicle and following(ego), 3s)"),
    ("hard braking vehicle in front of us", "vehicle and event(hard_braking) and ahead_of(ego)"),
    ("the ego is stopped at a stop sign", "ego and stopped and at_stop_line"),
    ("pedestrian walking toward the ego vehicle", "pedestrian and heading_toward(ego)"),
    ("car cutting in front of the ego", "car and event(cut_in) and ahead_of(ego)"),
    ("two cyclists riding in the bike lane", "at_least(2, cyclist and moving and lane_type(bike))"),
    ("dog on the road", "animal and on_road"),
    ("cyclist in the bike lane or on the road", "cyclist and (lane_type(bike) or on_road)"),
    ("car not turning at an intersection", "car and not turning and at_intersection"),
    ("turning left", "any and turning(left)"),
    (
        "ego stopped before a pedestrian crosses the road",
        "before(ego and stopped, pedestrian and on_road and moving)",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0] for c in CASES])
def test_descriptions_translate_as_written_by_hand(text: str, expected: str) -> None:
    t = describe(text)
    assert t.expression == parse(expected), t.text
    bind(t.expression)


@pytest.mark.parametrize(
    ("text", "unknown"),
    [
        ("flying saucer near a car", ("flying", "saucer")),
        ("a truck jackknifing on the highway", ("jackknifing",)),
        ("car drifting around a roundabout", ("drifting", "roundabout")),
        ("pedestrian waiting at a bus stop", ("bus stop",)),
        ("car running a yellow light", ("yellow light",)),
    ],
)
def test_words_no_rule_places_are_named(text: str, unknown: tuple[str, ...]) -> None:
    with pytest.raises(DescriptionError) as info:
        describe(text)
    assert set(unknown) <= set(info.value.unknown_words)
    for w in unknown:
        assert repr(w) in str(info.value)


def test_empty_or_filler_only_descriptions() -> None:
    for text in ("", "   ", "the a an"):
        with pytest.raises(DescriptionError):
            describe(text)


_WORDS = sorted(
    {w for phrase in LEXICON["modifiers"] for w in str(phrase).split()}  # type: ignore[attr-defined]
    | set(LEXICON["categories"])  # type: ignore[arg-type]
    | {
        "the",
        "a",
        "and",
        "or",
        "not",
        "with",
        "near",
        "in",
        "front",
        "of",
        "while",
        "for",
        "3",
        "seconds",
        "10",
        "m",
    }
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=9))
def test_any_word_salad_translates_or_is_refused_cleanly(words: list[str]) -> None:
    text = " ".join(words)
    try:
        t = describe(text)
    except DescriptionError:
        return
    bind(t.expression)  # whatever comes out is a valid query
