"""The text form of queries: parsing, printing, binding, errors that point at the token; fuzzed."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datadrive.errors import QueryError
from datadrive.mining.query import And, Call, Name, Not, Number, Or, Text, parse, q, to_text
from datadrive.mining.vocabulary import CATEGORIES, PREDICATES, bind, compile_query

CASES = [
    ("car and stopped", And((Name("car"), Name("stopped")))),
    ("car & stopped | bus", Or((And((Name("car"), Name("stopped"))), Name("bus")))),
    ("not (car or bus)", Not(Or((Name("car"), Name("bus"))))),
    ("NOT car AND moving", And((Not(Name("car")), Name("moving")))),
    ("near(pedestrian, within=5m)", Call("near", (Name("pedestrian"),), (("within", Number(5.0, "m")),))),
    ("speed(min = 30 km/h)", Call("speed", (), (("min", Number(30.0, "km/h")),))),
    ("accelerating(min=1.5 m/s^2)", Call("accelerating", (), (("min", Number(1.5, "m/s^2")),))),
    ("turning(left)", Call("turning", (Name("left"),))),
    ("event('hard_braking')", Call("event", (Text("hard_braking"),))),
    ("at_least(3, pedestrian)", Call("at_least", (Number(3.0), Name("pedestrian")))),
    ("speed(max=-.5)", Call("speed", (), (("max", Number(-0.5)),))),
]


@pytest.mark.parametrize(("text", "tree"), CASES, ids=[c[0] for c in CASES])
def test_parse_by_hand_and_round_trip(text: str, tree: object) -> None:
    assert parse(text) == tree
    assert parse(to_text(parse(text))) == tree


def test_python_builder_matches_text() -> None:
    built = q.pedestrian & q.crossing(q.vehicle & q.moving, forward="15m") & ~q.at_crosswalk
    assert built == parse("pedestrian and crossing(vehicle and moving, forward=15 m) and not at_crosswalk")
    assert str(q.turning("left")) == "turning(left)"
    assert q.near(q.ego, within=3.5) == parse("near(ego, within=3.5)")


ERRORS = [
    ("car and", 7, "expected a category"),
    ("car stopped", 4, "combine conditions"),
    ("near(car,", 9, "expected a category"),
    ("(car", 4, "expected ')'"),
    ("car & & x", 6, "expected a category"),
    ("5m", 0, "cannot stand alone"),
    ("near(car, within=5 parsecs)", 19, "unknown unit"),
    ("near(car, within=5pc)", 18, "unknown unit"),
    ("car $ bus", 4, "unexpected character"),
    ("near(car, within=1, within=2)", 20, "given twice"),
    ("near(within=1, car)", 15, "positional argument cannot follow"),
    ("'open", 0, "unterminated string"),
]


@pytest.mark.parametrize(("text", "pos", "reason"), ERRORS, ids=[e[0] for e in ERRORS])
def test_syntax_errors_point_at_the_offending_token(text: str, pos: int, reason: str) -> None:
    with pytest.raises(QueryError) as info:
        parse(text)
    err = info.value
    assert err.position == pos
    assert reason in err.reason
    lines = str(err).split("\n")
    assert lines[1].strip() == text.strip()
    assert lines[2].index("^") - 2 == pos


BIND_ERRORS = [
    ("car and flying", 8, "unknown category or predicate 'flying'"),
    ("spaceship", 0, "stopped, moving"),  # the known names are listed
    ("near(car, radius=3m)", 0, "has no argument 'radius'; its arguments: of, within, min"),
    ("near(car, within=3s)", 17, "is a length"),
    ("turning(sideways)", 8, "not one of any, left, right"),
    ("at_least(2.5, car)", 9, "whole number"),
    ("near(5m)", 5, "must be an expression"),
    ("car(3)", 0, "is a category and takes no arguments"),
    ("event(teleport)", 6, "hard_braking"),
    ("lane_type", 0, "needs its argument 'kind'"),
    ("stopped(1, 2)", 0, "at most 1 argument"),
]


@pytest.mark.parametrize(("text", "pos", "reason"), BIND_ERRORS, ids=[e[0] for e in BIND_ERRORS])
def test_unknown_names_and_bad_arguments(text: str, pos: int, reason: str) -> None:
    with pytest.raises(QueryError) as info:
        compile_query(text)
    assert reason in info.value.reason
    assert info.value.position == pos


def test_units_are_converted_to_si() -> None:
    b = compile_query("speed(min=36 km/h, max=50 mph) and near(ego, within=30 ft) and facing(car, angle=45)")
    speed, near, facing = b.children
    assert speed.params["min"] == pytest.approx(10.0)
    assert speed.params["max"] == pytest.approx(22.352)
    assert near.params["within"] == pytest.approx(9.144)
    assert facing.params["angle"] == pytest.approx(math.pi / 4)  # bare angles are degrees
    assert compile_query("cars").op == "category"  # plurals of categories


def test_every_vocabulary_word_binds_with_its_defaults() -> None:
    from datadrive.mining.vocabulary import REQUIRED

    required_values = {
        "set": "car",
        "choice": "bike",
        "event": "hard_braking",
        "count": "2",
        "duration": "2s",
    }
    for name in CATEGORIES:
        assert compile_query(name).params["name"] == name
    for name, spec in PREDICATES.items():
        args = [f"{p.name}={required_values[p.kind]}" for p in spec.params if p.default is REQUIRED]
        text = f"{name}({', '.join(args)})"
        bound = compile_query(text)
        assert bound.op == name, text
        assert set(bound.params) == {p.name for p in spec.params}


def _no_required(name: str) -> bool:
    from datadrive.mining.vocabulary import REQUIRED

    return all(x.default is not REQUIRED for x in PREDICATES[name].params)


_names = st.sampled_from(sorted(CATEGORIES) + [p for p in PREDICATES if _no_required(p)])


def _trees() -> st.SearchStrategy[object]:
    leaves = _names.map(Name)
    return st.recursive(
        leaves,
        lambda kids: st.one_of(
            st.tuples(kids, kids).map(lambda ab: ab[0] & ab[1]),
            st.tuples(kids, kids).map(lambda ab: ab[0] | ab[1]),
            kids.map(lambda k: ~k),
            st.tuples(kids, st.floats(0.5, 100, allow_nan=False)).map(
                lambda kv: Call("near", (kv[0],), (("within", Number(round(kv[1], 3), "m")),))
            ),
        ),
        max_leaves=8,
    )


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_trees())
def test_printing_then_parsing_gives_the_same_tree(tree: object) -> None:
    assert parse(to_text(tree)) == tree  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.text(alphabet="carnd stope()=,.5m&|!~'\"xyz_km/h^-", max_size=40))
def test_fuzzed_text_raises_only_query_errors(text: str) -> None:
    position = -1
    try:
        bind(parse(text), text)
    except QueryError as exc:
        position = exc.position
    assert position <= len(text)
