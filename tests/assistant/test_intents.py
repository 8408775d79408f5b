"""The offline intent parser on phrasings the question set does not contain."""

from __future__ import annotations

import pytest

from datadrive.assistant.intents import parse_question, words_to_numbers


@pytest.mark.parametrize(
    ("question", "kind", "quantity", "stat"),
    [
        ("What was my top speed on the last drive?", "stat", "speed", "max"),
        ("how quick was I going at the fastest", "stat", "speed", "max"),
        ("Tell me the average velocity during the last minute", "stat", "speed", "mean"),
        ("what's the lowest elevation we reached", "stat", "altitude", "min"),
        ("peak yaw rate", "stat", "yaw_rate", "max"),
        ("how hard did I corner? max lateral acceleration", "stat", "lateral_acceleration", "max"),
        ("what was the following distance to the car ahead at its closest", "stat", "radar_distance", "min"),
        ("why did the car brake hard around 08:35", "brake_why", None, None),
        ("what made us slow down at 9:15?", "brake_why", None, None),
        ("is the steering-angle sensor healthy", "health", "steering_angle", None),
        ("any glitches in the wheel speed sensors?", "health", "wheel_speed", None),
        ("summarise this trip", "trip", None, None),
        ("give me an overview of my journey", "trip", None, None),
        ("how many kilometres did I cover", "distance", None, None),
        ("how long was the ride", "duration", None, None),
        ("how long did I spend over 100 km/h", "threshold", "speed", None),
        ("how long was I stopped", "threshold", "speed", None),
        ("did I slam on the brakes", "events", None, None),
        ("were there any sharp turns", "events", None, None),
        ("did any CAN messages stop or change rate", "can", None, None),
        ("what can you do", "capabilities", None, None),
        ("what is the tyre pressure", "unknown", None, None),
        ("take me from Kauppatori to Hakaniemi", "route", None, None),
        ("find food on the way from Kamppi to Kallio", "pois", None, None),
    ],
)
def test_intents(question: str, kind: str, quantity: str | None, stat: str | None) -> None:
    intent = parse_question(question)
    assert intent.kind == kind
    if quantity is not None:
        assert intent.quantity == quantity
    if stat is not None:
        assert intent.stat == stat


def test_time_expressions() -> None:
    i = parse_question("average speed between 09:14:50 and 09:15:20")
    assert i.start is not None
    assert i.end is not None
    assert i.start.kind == "clock"
    assert i.end.seconds - i.start.seconds == 30
    i = parse_question("top speed in the first thirty seconds")
    assert i.end is not None
    assert i.end.kind == "offset"
    assert i.end.seconds == 30
    i = parse_question("what was my speed around nine fifteen")
    assert i.point is not None
    assert i.point.seconds == 9 * 3600 + 15 * 60
    i = parse_question("lowest speed during the last 2 minutes")
    assert i.last_s == 120
    i = parse_question("speed at 9:15 pm")
    assert i.point is not None
    assert i.point.seconds == 21 * 3600 + 15 * 60
    i = parse_question("how long was I above sixty miles per hour")
    assert i.threshold == 60
    assert i.threshold_unit == "mph"


def test_places_keep_their_case_and_order() -> None:
    i = parse_question("route from Kauppatori to Hakaniemi via Stockmann")
    assert i.places == ("Kauppatori", "Stockmann", "Hakaniemi")
    i = parse_question("take me to Helsinki Cathedral then Hakaniemi")
    assert i.places == ("Helsinki Cathedral", "Hakaniemi")


def test_number_words() -> None:
    assert words_to_numbers("thirty five seconds and one hundred twenty") == "35 seconds and 120"
    assert words_to_numbers("half a minute") == "30 seconds"
