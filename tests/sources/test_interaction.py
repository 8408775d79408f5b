"""INTERACTION recordings: windows, values and map checked against the raw CSVs.

Expected values are computed here from the CSVs with the ``csv`` module and
from SOURCES.md (14,118 vehicle rows, 74 vehicles, 3958 pedestrian rows, 23
pedestrians, frames 1-3007 at 10 Hz).
"""

from __future__ import annotations

import csv
import math
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from fuzzing import INNER_FUZZ, assert_reads_or_refuses, text_mutations
from hypothesis import given, seed, settings
from reader_checks import assert_arrow_round_trip, invoke_inspect_json

from datadrive.core import (
    MapFeatureKind,
    ObjectType,
    Scenario,
    summarize,
)
from datadrive.errors import (
    ConfigError,
    CorruptFileError,
    EmptyLogError,
    InputError,
    InvalidValueError,
    SchemaMismatchError,
    UnsupportedFormatError,
)
from datadrive.sources import DEFAULT_REGISTRY
from datadrive.sources.interaction import HEADING_MIN_SPEED_MPS, InteractionAdapter, InteractionConfig

LOCATION = "DR_USA_Intersection_EP0"
RECORDING = f"interaction/recorded_trackfiles/{LOCATION}"
ADAPTER = InteractionAdapter()


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def raw(samples: Path) -> dict[str, list[dict[str, str]]]:
    return {
        "vehicle": csv_rows(samples / RECORDING / "vehicle_tracks_000.csv"),
        "pedestrian": csv_rows(samples / RECORDING / "pedestrian_tracks_000.csv"),
    }


@pytest.fixture(scope="module")
def windows(samples: Path) -> list[Scenario]:
    out = ADAPTER.read_all(samples / RECORDING / "vehicle_tracks_000.csv")
    assert all(isinstance(s, Scenario) for s in out)
    return out  # type: ignore[return-value]


def states(windows: list[Scenario]) -> dict[tuple[str, int], tuple[Scenario, int, int]]:
    """``(track id, frame) -> (scenario, track row, step)`` over every valid state of every window."""
    out: dict[tuple[str, int], tuple[Scenario, int, int]] = {}
    for s in windows:
        first = s.metadata.extras["first_frame_id"]
        for a, t in zip(*np.nonzero(s.tracks.valid), strict=True):
            key = (str(s.tracks.track_ids[a]), first + int(t))
            assert key not in out, f"{key} lands in two windows"
            out[key] = (s, int(a), int(t))
    return out


# --------------------------------------------------------------------------- the sample


def test_sources_md_facts(raw: dict[str, list[dict[str, str]]]) -> None:
    assert len(raw["vehicle"]) == 14118
    assert len({r["track_id"] for r in raw["vehicle"]}) == 74
    assert len(raw["pedestrian"]) == 3958
    assert len({r["track_id"] for r in raw["pedestrian"]}) == 23


def test_every_row_lands_in_exactly_one_window(
    windows: list[Scenario], raw: dict[str, list[dict[str, str]]]
) -> None:
    rows = raw["vehicle"] + raw["pedestrian"]
    assert sum(summarize(s)["num_valid_states"] for s in windows) == len(rows)
    expected_xy = math.fsum(float(r["x"]) + float(r["y"]) for r in rows)
    assert math.isclose(sum(summarize(s)["xy_sum_m"] for s in windows), expected_xy, rel_tol=1e-12)
    found = states(windows)
    assert set(found) == {(r["track_id"], int(r["frame_id"])) for r in rows}


def test_windows_are_eleven_seconds_and_the_last_is_kept(windows: list[Scenario]) -> None:
    frames = 3007 - 1 + 1
    assert len(windows) == math.ceil(frames / 110)
    assert [s.num_steps for s in windows[:-1]] == [110] * (len(windows) - 1)
    assert windows[-1].num_steps == frames - 110 * (len(windows) - 1)
    assert [s.scenario_id for s in windows[:2]] == [f"{LOCATION}_000_000", f"{LOCATION}_000_001"]
    for w, s in enumerate(windows):
        assert s.metadata.extras["window_index"] == w
        assert s.metadata.provenance.member == f"window_{w:03d}"
        assert s.metadata.extras["first_frame_id"] == 1 + 110 * w
        assert summarize(s)["dt_s"] == 0.1
        np.testing.assert_array_equal(
            s.timestamps_ns, (1 + 110 * w + np.arange(s.num_steps)) * 100 * 1_000_000
        )  # timestamp_ms = 100 * frame_id in this recording


def test_values_match_the_csv(windows: list[Scenario], raw: dict[str, list[dict[str, str]]]) -> None:
    found = states(windows)
    for r in raw["vehicle"][::37]:
        s, a, t = found[(r["track_id"], int(r["frame_id"]))]
        tr = s.tracks
        assert tr.xy_m[a, t].tolist() == [float(r["x"]), float(r["y"])]
        assert tr.velocity_mps[a, t].tolist() == [float(r["vx"]), float(r["vy"])]
        assert tr.heading_rad[a, t] == float(r["psi_rad"])
        assert tr.size_m[a, :2].tolist() == [float(r["length"]), float(r["width"])]  # constant per track
        assert tr.object_type[a] == ObjectType.VEHICLE
        assert tr.category[a] == "car"
        assert np.isnan(tr.z_m[a, t])
        assert np.isnan(tr.size_m[a, 2])
        assert s.timestamps_ns[t] == int(r["timestamp_ms"]) * 1_000_000
    for r in raw["pedestrian"][::23]:
        s, a, t = found[(r["track_id"], int(r["frame_id"]))]
        tr = s.tracks
        vx, vy = float(r["vx"]), float(r["vy"])
        assert tr.xy_m[a, t].tolist() == [float(r["x"]), float(r["y"])]
        assert tr.object_type[a] == ObjectType.PEDESTRIAN
        assert tr.category[a] == "pedestrian/bicycle"
        assert np.isnan(tr.size_m[a]).all()
        if math.hypot(vx, vy) >= HEADING_MIN_SPEED_MPS:
            assert tr.heading_rad[a, t] == pytest.approx(math.atan2(vy, vx), abs=1e-12)


def test_pedestrian_heading_values(samples: Path, raw: dict[str, list[dict[str, str]]]) -> None:
    """Direction of (vx, vy) when fast enough, else carried from the last fast row (or the next one)."""
    (whole,) = InteractionAdapter(InteractionConfig(window_s=1000.0)).read_all(
        samples / RECORDING / "vehicle_tracks_000.csv"
    )
    assert isinstance(whole, Scenario)
    row = {str(t): a for a, t in enumerate(whole.tracks.track_ids)}
    by_track: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in raw["pedestrian"]:
        by_track[r["track_id"]].append(r)
    slow = 0
    for tid, rows in by_track.items():
        rows.sort(key=lambda r: int(r["frame_id"]))
        heading = [
            math.atan2(float(r["vy"]), float(r["vx"]))
            if math.hypot(float(r["vx"]), float(r["vy"])) >= HEADING_MIN_SPEED_MPS
            else None
            for r in rows
        ]
        carried = next((h for h in heading if h is not None), 0.0)
        for r, h in zip(rows, heading, strict=True):
            slow += h is None
            carried = h if h is not None else carried
            t = int(r["frame_id"]) - 1
            assert whole.tracks.heading_rad[row[tid], t] == pytest.approx(carried, abs=1e-12)
    assert slow > 0


def test_tracks_lie_on_the_map(windows: list[Scenario]) -> None:
    """Most vehicle states are within 2 m of a lanelet centerline: map and tracks share a frame."""
    m = windows[0].map
    assert m is not None
    assert m.num_lanes == 59
    segments = [
        np.stack([m.points(i)[:-1, :2], m.points(i)[1:, :2]], axis=1)
        for i in np.flatnonzero(m.kind == MapFeatureKind.LANE_CENTERLINE)
    ]
    seg = np.concatenate(segments)
    a, ab = seg[:, 0], seg[:, 1] - seg[:, 0]
    length2 = np.where((ab * ab).sum(axis=1) > 0, (ab * ab).sum(axis=1), 1.0)
    xy = np.concatenate(
        [
            s.tracks.xy_m[s.tracks.valid & (s.tracks.object_type == ObjectType.VEHICLE)[:, None]]
            for s in windows
        ]
    )
    near = 0
    for chunk in np.array_split(xy, 20):
        ap = chunk[:, None, :] - a[None]
        t = np.clip((ap * ab).sum(axis=-1) / length2, 0.0, 1.0)
        d = np.hypot(*(ap - t[..., None] * ab).transpose(2, 0, 1)).min(axis=1)
        near += int(np.count_nonzero(d < 2.0))
    assert near / xy.shape[0] >= 0.9
    assert windows[0].metadata.frame == f"interaction_local_{LOCATION}"
    assert windows[0].metadata.extras["map_file"] == f"{LOCATION}.osm"


def test_window_length_is_configurable(samples: Path, raw: dict[str, list[dict[str, str]]]) -> None:
    out = InteractionAdapter(InteractionConfig(window_s=5.0)).read_all(
        samples / RECORDING / "vehicle_tracks_000.csv"
    )
    assert len(out) == math.ceil(3007 / 50)
    assert sum(summarize(s)["num_valid_states"] for s in out if isinstance(s, Scenario)) == 14118 + 3958
    with pytest.raises(ConfigError):
        InteractionConfig(window_s=0.0)
    with pytest.raises(ConfigError):
        InteractionConfig(window_s=float("nan"))


# --------------------------------------------------------------------------- layout: map, pedestrians


@pytest.fixture
def recording(tmp_path: Path, samples: Path) -> Path:
    """A copy of the dataset layout in tmp: recorded_trackfiles/<LOC>/*.csv and maps/<LOC>.osm."""
    folder = tmp_path / "recorded_trackfiles" / LOCATION
    folder.mkdir(parents=True)
    for name in ("vehicle_tracks_000.csv", "pedestrian_tracks_000.csv"):
        shutil.copy(samples / RECORDING / name, folder / name)
    (tmp_path / "maps").mkdir()
    shutil.copy(samples / f"interaction/maps/{LOCATION}.osm", tmp_path / "maps" / f"{LOCATION}.osm")
    return folder


def test_missing_map_reads_without_one(recording: Path) -> None:
    (recording.parent.parent / "maps" / f"{LOCATION}.osm").unlink()
    out = ADAPTER.read_all(recording / "vehicle_tracks_000.csv")
    assert all(isinstance(s, Scenario) and s.map is None for s in out)
    assert out[0].metadata.extras["map_file"] is None  # type: ignore[union-attr]
    assert summarize(out[0])["num_map_lanes"] is None  # type: ignore[arg-type]


def test_maps_dir_config(recording: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    (recording.parent.parent / "maps").rename(elsewhere)
    out = InteractionAdapter(InteractionConfig(maps_dir=elsewhere)).read_all(
        recording / "vehicle_tracks_000.csv"
    )
    assert out[0].map is not None  # type: ignore[union-attr]
    assert (
        InteractionAdapter(InteractionConfig(with_map=False))
        .read_all(recording / "vehicle_tracks_000.csv")[0]
        .map
        is None
    )  # type: ignore[union-attr]


def test_broken_map_names_the_map(recording: Path) -> None:
    map_path = recording.parent.parent / "maps" / f"{LOCATION}.osm"
    map_path.write_bytes(map_path.read_bytes()[:5000])
    with pytest.raises(CorruptFileError) as info:
        ADAPTER.read_all(recording / "vehicle_tracks_000.csv")
    assert info.value.path == str(map_path)


def test_pedestrian_file_points_to_its_recording(recording: Path) -> None:
    with pytest.raises(UnsupportedFormatError, match=r"vehicle_tracks_000\.csv"):
        ADAPTER.read_all(recording / "pedestrian_tracks_000.csv")
    lines = invoke_inspect_json(recording.parent.parent)
    assert {x["source"] for x in lines} == {"interaction", "lanelet2_map"}
    assert sum(x["num_valid_states"] for x in lines) == 14118 + 3958


def test_recording_without_pedestrians(recording: Path) -> None:
    (recording / "pedestrian_tracks_000.csv").unlink()
    out = ADAPTER.read_all(recording / "vehicle_tracks_000.csv")
    assert sum(summarize(s)["num_valid_states"] for s in out if isinstance(s, Scenario)) == 14118
    assert out[0].metadata.extras["pedestrian_file"] is None  # type: ignore[union-attr]


def test_pedestrians_alone(recording: Path) -> None:
    (recording / "vehicle_tracks_000.csv").unlink()
    out = ADAPTER.read_all(recording / "pedestrian_tracks_000.csv")
    assert sum(summarize(s)["num_valid_states"] for s in out if isinstance(s, Scenario)) == 3958
    assert all(
        set(s.tracks.object_type.tolist()) == {ObjectType.PEDESTRIAN} for s in out if isinstance(s, Scenario)
    )


# --------------------------------------------------------------------------- contract


def test_inspect_json(samples: Path, raw: dict[str, list[dict[str, str]]]) -> None:
    lines = invoke_inspect_json(samples / RECORDING / "vehicle_tracks_000.csv")
    assert len(lines) == 28
    assert sum(x["num_valid_states"] for x in lines) == len(raw["vehicle"]) + len(raw["pedestrian"])
    assert all(x["num_map_lanes"] == 59 and x["ego_track_id"] is None and x["dt_s"] == 0.1 for x in lines)
    whole_tracks = {r["track_id"] for r in raw["vehicle"]}
    assert max(x["track_type_counts"]["vehicle"] for x in lines) <= len(whole_tracks)


def test_arrow_round_trip(windows: list[Scenario]) -> None:
    assert_arrow_round_trip(windows[:3])


def test_registry(samples: Path) -> None:
    assert DEFAULT_REGISTRY.detect(samples / RECORDING / "vehicle_tracks_000.csv").name == "interaction"
    assert DEFAULT_REGISTRY.detect(samples / RECORDING / "pedestrian_tracks_000.csv").name == "interaction"


# --------------------------------------------------------------------------- bad input

HEADER = "track_id,frame_id,timestamp_ms,agent_type,x,y,vx,vy,psi_rad,length,width\n"
ROW = "1,1,100,car,965.783,988.577,-6.7,0.492,3.068,4.15,1.72\n"
ROW2 = "1,2,200,car,965.113,988.626,-6.701,0.489,3.069,4.15,1.72\n"


@pytest.mark.parametrize(
    ("text", "error", "reason"),
    [
        ("", EmptyLogError, "empty"),
        (HEADER, EmptyLogError, "no rows"),
        (HEADER.replace(",psi_rad", ""), SchemaMismatchError, "psi_rad"),
        (HEADER + ROW.replace("965.783", "abc"), InvalidValueError, "not of its column's type"),
        (HEADER + ROW.replace("965.783", "nan"), InvalidValueError, "empty or NaN"),
        (HEADER + ROW.replace("965.783", ""), InvalidValueError, "empty or NaN"),
        (HEADER + ROW.replace("965.783", "inf"), InvalidValueError, "infinite"),
        (HEADER + ROW.replace(",1,100,", ",,100,"), InvalidValueError, "frame_id has empty"),
        (HEADER + ROW + ROW, InvalidValueError, "two rows for frame_id 1"),
        (
            HEADER + ROW + ROW2.replace(",200,", ",250,") + ROW2.replace("1,2,200", "1,3,300"),
            InvalidValueError,
            "does not follow",
        ),
        (HEADER + ROW + ROW2.replace(",200,", ",100,"), InvalidValueError, "does not increase"),
        (HEADER + ROW + ROW2.replace(",car,", ",truck,"), InvalidValueError, "changes agent_type"),
        (HEADER + ROW.replace("4.15", "-4.15"), InvalidValueError, "negative"),
        (HEADER + ROW + "1,2,200\n", CorruptFileError, "not a well-formed CSV"),
        ("\xff\xfe\x00garbage\n", CorruptFileError, "header"),
    ],
    ids=[
        "empty_file",
        "header_only",
        "missing_column",
        "non_numeric",
        "nan_position",
        "empty_position",
        "infinite",
        "empty_frame",
        "duplicate_row",
        "off_rate_time",
        "time_not_increasing",
        "type_changes",
        "negative_size",
        "short_row",
        "binary",
    ],
)
def test_bad_input(tmp_path: Path, text: str, error: type[InputError], reason: str) -> None:
    folder = tmp_path / "recorded_trackfiles" / "LOC"
    folder.mkdir(parents=True)
    path = folder / "vehicle_tracks_007.csv"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(error, match=reason) as info:
        ADAPTER.read_all(path)
    assert info.value.path == str(path)


def test_bad_pedestrian_file_names_it(recording: Path) -> None:
    ped = recording / "pedestrian_tracks_000.csv"
    ped.write_text("track_id,frame_id,timestamp_ms,agent_type,x,y,vx\nP1,1,100,pedestrian/bicycle,1,2,3\n")
    with pytest.raises(SchemaMismatchError, match="vy") as info:
        ADAPTER.read_all(recording / "vehicle_tracks_000.csv")
    assert info.value.path == str(ped)


def test_far_apart_frames_stay_small(tmp_path: Path) -> None:
    """Two rows a billion frames apart: two windows, not a billion empty steps."""
    folder = tmp_path / "recorded_trackfiles" / "LOC"
    folder.mkdir(parents=True)
    far = ROW2.replace("1,2,200", "1,1000000001,100000000100")
    (folder / "vehicle_tracks_002.csv").write_text(HEADER + ROW + far)
    out = InteractionAdapter(InteractionConfig(with_map=False)).read_all(folder / "vehicle_tracks_002.csv")
    assert [s.num_steps for s in out if isinstance(s, Scenario)] == [110, 11]  # a full window, the last
    absurd = ROW2.replace("1,2,200", "1,1000000001,101")  # a nanosecond per frame: a billion-step window
    (folder / "vehicle_tracks_003.csv").write_text(HEADER + ROW + absurd)
    with pytest.raises(InvalidValueError, match="absurd"):
        InteractionAdapter(InteractionConfig(with_map=False)).read_all(folder / "vehicle_tracks_003.csv")


def test_small_recording_values(tmp_path: Path) -> None:
    folder = tmp_path / "recorded_trackfiles" / "LOC"
    folder.mkdir(parents=True)
    (folder / "vehicle_tracks_001.csv").write_text(HEADER + ROW + ROW2 + ROW.replace("1,1,100", "2,5,500"))
    (s,) = InteractionAdapter(InteractionConfig(with_map=False)).read_all(folder / "vehicle_tracks_001.csv")
    assert isinstance(s, Scenario)
    assert s.scenario_id == "LOC_001_000"
    assert s.num_steps == 5
    assert s.tracks.track_ids.tolist() == ["1", "2"]
    assert s.tracks.valid.tolist() == [[True, True, False, False, False], [False, False, False, False, True]]


# --------------------------------------------------------------------------- fuzz


@pytest.mark.parametrize(
    "name", ["vehicle_tracks_000.csv", "pedestrian_tracks_000.csv"], ids=["vehicle", "pedestrian"]
)
def test_fuzz(recording: Path, name: str) -> None:
    """Mutated CSVs (the other file and the map intact): validated scenarios or an InputError (seeded)."""
    target = recording / name
    original = target.read_bytes()
    vehicle = recording / "vehicle_tracks_000.csv"

    @seed(20261124)
    @settings(INNER_FUZZ, max_examples=30, deadline=10_000)
    @given(data=text_mutations(original, [b",", b"\n", b'"', b"nan", b"-", b"1e308", b"\x00"]))
    def check(data: bytes) -> None:
        target.write_bytes(data)
        assert_reads_or_refuses(ADAPTER, vehicle)

    check()
