"""NGSIM roadway text: points checked against the raw text and against pyproj.

pyproj converts EPSG:2229 (California zone 5, US survey feet) to EPSG:26945
(the same zone in metres) independently of the reader; SOURCES.md gives the
counts (12 boundaries, 6 centerlines, 2726 centerline points).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fuzzing import INNER_FUZZ, assert_reads_or_refuses, text_mutations
from hypothesis import given, seed, settings
from reader_checks import assert_arrow_round_trip, invoke_inspect_json

from datadrive.core import MapFeatureKind, Scenario
from datadrive.errors import (
    CorruptFileError,
    EmptyLogError,
    InputError,
    InvalidValueError,
    SchemaMismatchError,
)
from datadrive.sources import DEFAULT_REGISTRY
from datadrive.sources.ngsim_roadway import METRES_PER_US_SURVEY_FOOT, NgsimRoadwayAdapter

FILES = ["boundaries101.txt", "centerlines101.txt"]
ADAPTER = NgsimRoadwayAdapter()


def raw_polylines(path: Path) -> dict[str, list[tuple[float, float]]]:
    """The file parsed the plain way: name -> points in feet."""
    out: dict[str, list[tuple[float, float]]] = {}
    lines = path.read_text().split("\n")
    i, k = 2, 0
    while k < int(lines[1]):
        k += 1
        if lines[i].strip() == "CENTERLINE":
            name, i = lines[i + 1].strip(), i + 2
        else:
            name, i = f"boundary_{k}", i + 1
        n = int(lines[i])
        out[name] = [(float(a), float(b)) for a, b in (lines[j].split() for j in range(i + 1, i + 1 + n))]
        i += 1 + n
    return out


@pytest.fixture(scope="module", params=FILES, ids=["boundaries", "centerlines"])
def case(request: pytest.FixtureRequest, samples: Path) -> tuple[Path, Scenario]:
    path = samples / "ngsim_roadway" / request.param
    (scenario,) = ADAPTER.read_all(path)
    assert isinstance(scenario, Scenario)
    return path, scenario


def test_counts_from_sources_md(samples: Path) -> None:
    (b,) = ADAPTER.read_all(samples / "ngsim_roadway/boundaries101.txt")
    (c,) = ADAPTER.read_all(samples / "ngsim_roadway/centerlines101.txt")
    assert isinstance(b, Scenario)
    assert isinstance(c, Scenario)
    assert b.map is not None
    assert c.map is not None
    assert b.map.num_features == 12
    assert b.map.num_lanes == 0
    assert c.map.num_lanes == 6
    assert c.map.xyz_m.shape[0] == 2726


def test_points_are_the_file_in_us_survey_feet(case: tuple[Path, Scenario]) -> None:
    path, s = case
    raw = raw_polylines(path)
    assert s.map is not None
    assert s.map.feature_ids.tolist() == list(raw)
    for i, (name, pts) in enumerate(raw.items()):
        np.testing.assert_array_equal(s.map.points(i)[:, :2], np.array(pts) * (1200.0 / 3937.0), err_msg=name)
        assert np.isnan(s.map.points(i)[:, 2]).all()
    kind = MapFeatureKind.LANE_BOUNDARY if "boundaries" in path.name else MapFeatureKind.LANE_CENTERLINE
    assert set(s.map.kind.tolist()) == {kind}
    assert s.map.relations.shape == (0, 3)
    assert s.num_tracks == 0
    assert s.timestamps_ns.tolist() == [0]


def test_metres_are_california_zone_5_per_pyproj(case: tuple[Path, Scenario]) -> None:
    """EPSG:2229 -> EPSG:26945 agrees to 1 mm; the international foot would miss by metres."""
    pyproj = pytest.importorskip("pyproj")
    path, s = case
    raw = np.array([p for pts in raw_polylines(path).values() for p in pts])
    to_metres = pyproj.Transformer.from_crs("EPSG:2229", "EPSG:26945", always_xy=True)
    e, n = to_metres.transform(raw[:, 0], raw[:, 1])
    assert s.map is not None
    np.testing.assert_allclose(s.map.xyz_m[:, :2], np.stack([e, n], axis=1), rtol=0, atol=1e-3)
    assert np.abs(raw[:, 0] * 0.3048 - e).min() > 1.0  # the international foot is the wrong unit here
    lon, lat = pyproj.Transformer.from_crs("EPSG:2229", "EPSG:4326", always_xy=True).transform(
        raw[0, 0], raw[0, 1]
    )
    assert abs(lat - 34.135) < 0.02
    assert abs(lon - (-118.36)) < 0.02
    assert s.metadata.frame == "state_plane_epsg_26945"
    assert s.metadata.extras["metres_per_source_unit"] == METRES_PER_US_SURVEY_FOOT
    assert s.metadata.location == "US-101"


def test_inspect_json(samples: Path) -> None:
    lines = {x["scenario_id"]: x for x in invoke_inspect_json(samples / "ngsim_roadway")}
    assert lines["ngsim_centerlines101"]["num_map_lanes"] == 6
    assert lines["ngsim_boundaries101"]["num_map_lanes"] == 0
    assert all(x["num_tracks"] == 0 and x["num_steps"] == 1 and x["xy_sum_m"] == 0.0 for x in lines.values())


def test_arrow_round_trip(case: tuple[Path, Scenario]) -> None:
    assert_arrow_round_trip([case[1]])


def test_registry(samples: Path) -> None:
    for name in FILES:
        assert DEFAULT_REGISTRY.detect(samples / "ngsim_roadway" / name).name == "ngsim_roadway"


def test_unknown_roadway_gets_a_generic_frame(tmp_path: Path) -> None:
    path = tmp_path / "centerlines_i5.txt"
    path.write_text("CENTERLINES\n1\nCENTERLINE\nlane\n2\n 0 0\n 3937 1200\n")
    (s,) = ADAPTER.read_all(path)
    assert isinstance(s, Scenario)
    assert s.map is not None
    assert s.metadata.frame == "ngsim_i5_state_plane_m"
    assert s.metadata.extras["crs"] is None
    np.testing.assert_allclose(s.map.xyz_m[1, :2], [1200.0, 1200.0 * 1200.0 / 3937.0], rtol=1e-12)


GOOD = "BOUNDARIES\n2\nBOUNDARY 1\n2\n 1.0 2.0\n 3.0 4.0\nBOUNDARY 2\n1\n 5.0 6.0\n"


@pytest.mark.parametrize(
    ("text", "error", "reason"),
    [
        ("", CorruptFileError, "not BOUNDARIES or CENTERLINES"),
        ("LANES\n1\n", CorruptFileError, "not BOUNDARIES or CENTERLINES"),
        (GOOD.split("1\n 5.0")[0], CorruptFileError, "file ends"),
        (GOOD.replace("\n2\nBOUNDARY 1", "\ntwo\nBOUNDARY 1"), InvalidValueError, "not an integer"),
        (GOOD.replace("BOUNDARY 2", "BOUNDARY 7"), SchemaMismatchError, "expected 'BOUNDARY 2'"),
        (GOOD.replace("3.0 4.0", "3.0 x"), InvalidValueError, "not a number"),
        (GOOD.replace("3.0 4.0", "3.0 nan"), InvalidValueError, "NaN or infinite"),
        (GOOD.replace("3.0 4.0", "3.0 4.0 5.0"), InvalidValueError, "exactly two numbers"),
        (GOOD.replace("BOUNDARY 2\n1\n", "BOUNDARY 2\n5\n"), CorruptFileError, "declares 5 points"),
        (GOOD + "BOUNDARY 3\n", CorruptFileError, "follows the last"),
        ("BOUNDARIES\n0\n", EmptyLogError, "no polylines"),
        ("BOUNDARIES\n-1\n", InvalidValueError, "negative"),
        (
            "CENTERLINES\n2\nCENTERLINE\na\n1\n 0 0\nCENTERLINE\na\n1\n 1 1\n",
            InvalidValueError,
            "share a name",
        ),
        ("BOUNDARIES\n1\nBOUNDARY 1\n0\n", InvalidValueError, "no points"),
        ("BOUNDARIES\n1\nBOUNDARY 1\n1\n 1.0 2.\xe90\n", CorruptFileError, "not an ASCII"),
    ],
    ids=[
        "empty",
        "wrong_header",
        "truncated",
        "bad_count",
        "wrong_block",
        "text_coordinate",
        "nan",
        "three_numbers",
        "short_block",
        "trailing_block",
        "no_polylines",
        "negative_count",
        "duplicate_name",
        "no_points",
        "not_ascii",
    ],
)
def test_bad_input(tmp_path: Path, text: str, error: type[InputError], reason: str) -> None:
    path = tmp_path / "boundaries101.txt"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(error, match=reason) as info:
        ADAPTER.read_all(path)
    assert info.value.path == str(path)


def test_claims(tmp_path: Path) -> None:
    good = tmp_path / "boundaries80.txt"
    good.write_text(GOOD)
    other = tmp_path / "boundaries.csv"
    other.write_text(GOOD)
    notes = tmp_path / "centerlines_notes.txt"
    notes.write_text("some notes\n")
    assert ADAPTER.claims(good)
    assert not ADAPTER.claims(other)
    assert not ADAPTER.claims(notes)


@pytest.mark.parametrize("name", FILES, ids=["boundaries", "centerlines"])
def test_fuzz(samples: Path, tmp_path: Path, name: str) -> None:
    """Mutated files: validated records or an InputError, nothing else (seeded: replays)."""
    original = (samples / "ngsim_roadway" / name).read_bytes()
    path = tmp_path / name

    @seed(20261124)
    @settings(INNER_FUZZ, max_examples=60, deadline=5_000)
    @given(data=text_mutations(original, [b"\n", b" ", b"\x00", b"nan", b"-", b"1e999", b"9"]))
    def check(data: bytes) -> None:
        path.write_bytes(data)
        assert_reads_or_refuses(ADAPTER, path)

    check()
