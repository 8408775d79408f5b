"""AV2 motion forecasting: the reader against av2's ``load_argoverse_scenario_parquet``."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from fuzzing import FIXTURE_FUZZ, assert_reads_or_refuses, mutate
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from reader_checks import assert_arrow_round_trip, assert_summary_equal, invoke_inspect, invoke_inspect_json

from datadrive.core import (
    SUMMARY_KEYS,
    ObjectType,
    Scenario,
)
from datadrive.errors import (
    CorruptFileError,
    EmptyLogError,
    InputError,
    InvalidValueError,
    SchemaMismatchError,
)
from datadrive.sources import DEFAULT_REGISTRY
from datadrive.sources.av2_motion import AV2_MF_OBJECT_TYPES, Av2MotionForecastingAdapter

serialization = pytest.importorskip("av2.datasets.motion_forecasting.scenario_serialization")

ADAPTER = Av2MotionForecastingAdapter()

# SOURCES.md: rows, tracks per AV2 object_type, last timestep, lanes in the map.
SAMPLES = {
    "0a1e6f0a-1817-4a98-b02e-db8c9327d151": (
        2434,
        {"vehicle": 32, "pedestrian": 12, "static": 8, "riderless_bicycle": 4, "background": 2},
        109,
        71,
    ),
    "0a0a2bb7-c4f4-44cd-958a-9ee15cb34aca": (
        1790,
        {"vehicle": 29, "pedestrian": 5, "cyclist": 2, "riderless_bicycle": 2, "background": 2},
        109,
        53,
    ),
    "0a0af725-fbc3-41de-b969-3be718f694e2": (569, {"vehicle": 15, "static": 4}, 49, 134),
}
IDS = [k[:8] for k in SAMPLES]

# The coarse types, written out from the task's definition (independent of the reader's table).
COARSE = {
    "vehicle": "vehicle",
    "bus": "vehicle",
    "pedestrian": "pedestrian",
    "cyclist": "cyclist",
    "motorcyclist": "cyclist",
}


def coarse(label: str) -> str:
    return COARSE.get(label, "other")


def scenario_path(samples: Path, sid: str) -> Path:
    path = samples / "av2_motion_forecasting" / sid / f"scenario_{sid}.parquet"
    assert path.is_file(), path
    return path


def read_one(path: Path, adapter: Av2MotionForecastingAdapter = ADAPTER) -> Scenario:
    (record,) = adapter.read_all(path)
    assert isinstance(record, Scenario)
    return record


@pytest.fixture(scope="module", params=list(SAMPLES), ids=IDS)
def case(request: pytest.FixtureRequest, samples: Path) -> tuple[str, Path, Scenario, Any]:
    path = scenario_path(samples, request.param)
    return request.param, path, read_one(path), serialization.load_argoverse_scenario_parquet(path)


# --------------------------------------------------------------------------- values against av2


def test_every_av2_object_type_has_the_coarse_type_of_the_task() -> None:
    schema = pytest.importorskip("av2.datasets.motion_forecasting.data_schema")
    for object_type in schema.ObjectType:
        assert AV2_MF_OBJECT_TYPES[object_type.value].name.lower() == coarse(object_type.value)


def test_registry_detects_parquet_and_not_the_map(samples: Path) -> None:
    sid = next(iter(SAMPLES))
    assert DEFAULT_REGISTRY.detect(scenario_path(samples, sid)).name == "av2_motion_forecasting"
    found = DEFAULT_REGISTRY.discover(samples / "av2_motion_forecasting")
    assert sorted(p.name for a, p in found.units if a.name == "av2_motion_forecasting") == sorted(
        f"scenario_{s}.parquet" for s in SAMPLES
    )


def test_scenario_level_fields_equal_av2(case: tuple[str, Path, Scenario, Any]) -> None:
    sid, _, ours, ref = case
    assert ours.scenario_id == ref.scenario_id == sid
    assert ours.source == "av2_motion_forecasting"
    np.testing.assert_array_equal(ours.timestamps_ns, np.asarray(ref.timestamps_ns).astype(np.int64))
    assert ours.timestamps_ns.dtype == np.int64
    extras = ours.metadata.extras
    assert extras["focal_track_id"] == ref.focal_track_id
    assert extras["city"] == ref.city_name == ours.metadata.location
    assert extras["map_id"] == (None if ref.map_id is None else int(ref.map_id))
    assert extras["slice_id"] == ref.slice_id
    assert ours.metadata.frame == "av2_city"


def test_tracks_equal_av2(case: tuple[str, Path, Scenario, Any]) -> None:
    _, _, ours, ref = case
    tr = ours.tracks
    row = {tid: i for i, tid in enumerate(tr.track_ids.tolist())}
    assert set(row) == {t.track_id for t in ref.tracks}
    categories = dict(zip(tr.track_ids.tolist(), ours.metadata.extras["track_category"], strict=True))
    for track in ref.tracks:
        i = row[track.track_id]
        steps = np.array([s.timestep for s in track.object_states])
        assert np.flatnonzero(tr.valid[i]).tolist() == sorted(steps.tolist())
        np.testing.assert_array_equal(tr.xy_m[i, steps], np.array([s.position for s in track.object_states]))
        np.testing.assert_array_equal(
            tr.heading_rad[i, steps], np.array([s.heading for s in track.object_states])
        )
        np.testing.assert_array_equal(
            tr.velocity_mps[i, steps], np.array([s.velocity for s in track.object_states])
        )
        assert tr.category[i] == track.object_type.value
        expected_type = "vehicle" if track.track_id == "AV" else coarse(track.object_type.value)
        assert ObjectType(tr.object_type[i]).name.lower() == expected_type
        assert categories[track.track_id] == track.category.value
    assert np.isnan(tr.size_m).all()
    assert np.isnan(tr.z_m).all()
    assert ours.ego_index is not None
    assert tr.track_ids[ours.ego_index] == "AV"


def test_counts_match_sources(case: tuple[str, Path, Scenario, Any]) -> None:
    sid, _, ours, _ = case
    rows, per_type, last_step, lanes = SAMPLES[sid]
    tr = ours.tracks
    assert int(tr.valid.sum()) == rows
    assert dict(Counter(tr.category.tolist())) == per_type
    assert ours.num_steps == 110
    assert int(np.flatnonzero(tr.valid.any(axis=0)).max()) == last_step
    assert ours.metadata.extras["num_observed_steps"] == 50
    assert ours.map is not None
    assert ours.map.num_lanes == lanes


def test_arrow_round_trip(case: tuple[str, Path, Scenario, Any]) -> None:
    assert_arrow_round_trip([case[2]])


def test_without_the_map_json_map_is_none(samples: Path, tmp_path: Path) -> None:
    sid = next(iter(SAMPLES))
    path = tmp_path / f"scenario_{sid}.parquet"
    shutil.copyfile(scenario_path(samples, sid), path)
    ours = read_one(path)
    assert ours.map is None
    assert ours.metadata.extras["map_file"] is None
    assert read_one(scenario_path(samples, sid), Av2MotionForecastingAdapter(with_map=False)).map is None


def test_map_found_by_scenario_id_when_the_file_is_renamed(samples: Path, tmp_path: Path) -> None:
    sid = next(iter(SAMPLES))
    shutil.copyfile(scenario_path(samples, sid), tmp_path / "scenario_renamed.parquet")
    shutil.copyfile(
        samples / "av2_motion_forecasting" / sid / f"log_map_archive_{sid}.json",
        tmp_path / f"log_map_archive_{sid}.json",
    )
    ours = read_one(tmp_path / "scenario_renamed.parquet")
    assert ours.map is not None
    assert ours.map.num_lanes == SAMPLES[sid][3]


@pytest.mark.parametrize(
    ("shuffle", "dictionary"),
    [(False, False), (False, True), (True, False), (True, True)],
    ids=["plain", "dictionary", "interleaved-plain", "interleaved-dictionary"],
)
def test_rewritten_files_read_the_same(
    samples: Path, tmp_path: Path, shuffle: bool, dictionary: bool
) -> None:
    """Other writers (plain or dictionary pages, rows not grouped by track) give the same tracks as av2."""
    sid = next(iter(SAMPLES))
    table = pq.read_table(scenario_path(samples, sid))
    if shuffle:
        table = table.take(pa.array(np.random.default_rng(0).permutation(table.num_rows)))
    path = tmp_path / f"scenario_{sid}.parquet"
    pq.write_table(table, path, use_dictionary=dictionary, row_group_size=1000)
    ours, ref = read_one(path), serialization.load_argoverse_scenario_parquet(path)
    row = {tid: i for i, tid in enumerate(ours.tracks.track_ids.tolist())}
    assert set(row) == {t.track_id for t in ref.tracks}
    for track in ref.tracks:
        steps = [s.timestep for s in track.object_states]
        expected = np.array([s.position for s in track.object_states])
        np.testing.assert_array_equal(ours.tracks.xy_m[row[track.track_id], steps], expected)
        assert ours.tracks.category[row[track.track_id]] == track.object_type.value
    np.testing.assert_array_equal(ours.timestamps_ns, np.asarray(ref.timestamps_ns).astype(np.int64))


# --------------------------------------------------------------------------- inspect --json


def expected_summary(parquet: Path) -> dict[str, Any]:
    """The inspect contract computed from the raw files with pyarrow and the JSON module."""
    t = pq.read_table(parquet)
    col = {name: t.column(name).to_pylist() for name in t.column_names}
    first_type: dict[str, str] = {}
    for tid, otype in zip(col["track_id"], col["object_type"], strict=True):
        first_type.setdefault(tid, otype)
    counts = Counter("vehicle" if tid == "AV" else coarse(o) for tid, o in first_type.items())
    num = col["num_timestamps"][0]
    stamps = np.linspace(col["start_timestamp"][0], col["end_timestamp"][0], num).astype(np.int64)
    lanes = json.loads((parquet.parent / f"log_map_archive_{parquet.stem[9:]}.json").read_text())[
        "lane_segments"
    ]
    return {
        "scenario_id": col["scenario_id"][0],
        "source": "av2_motion_forecasting",
        "num_tracks": len(first_type),
        "num_steps": num,
        "dt_s": round(float(np.median(np.diff(stamps))) / 1e9, 9),
        "num_valid_states": t.num_rows,
        "track_type_counts": {k: counts.get(k, 0) for k in ("vehicle", "cyclist", "pedestrian", "other")},
        "ego_track_id": "AV" if "AV" in first_type else None,
        "num_map_lanes": len(lanes),
        "xy_sum_m": float(sum(col["position_x"]) + sum(col["position_y"])),
    }


def test_inspect_json_matches_raw_files(samples: Path) -> None:
    folder = samples / "av2_motion_forecasting"
    got = {row["scenario_id"]: row for row in invoke_inspect_json(folder)}
    assert set(got) == set(SAMPLES)
    for sid in SAMPLES:
        expected = expected_summary(scenario_path(samples, sid))
        row = got[sid]
        assert list(row) == list(SUMMARY_KEYS)
        assert_summary_equal(row, expected)


# --------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def raw_table(samples: Path) -> pa.Table:
    return pq.read_table(scenario_path(samples, next(iter(SAMPLES))))


def write(tmp_path: Path, table: pa.Table) -> Path:
    path = tmp_path / "scenario_bad.parquet"
    pq.write_table(table, path)
    return path


def set_column(table: pa.Table, name: str, values: Any) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def nan_position(t: pa.Table) -> pa.Table:
    x = t.column("position_x").to_numpy().copy()
    x[5] = np.nan
    return set_column(t, "position_x", pa.array(x))


def duplicate_state(t: pa.Table) -> pa.Table:
    return pa.concat_tables([t, t.slice(3, 1)])


def null_track(t: pa.Table) -> pa.Table:
    ids = t.column("track_id").to_pylist()
    ids[7] = None
    return set_column(t, "track_id", pa.array(ids, pa.string()))


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        (lambda t: t.drop_columns(["position_y", "heading"]), SchemaMismatchError, "position_y, heading"),
        (lambda t: t.drop_columns(["num_timestamps"]), SchemaMismatchError, "num_timestamps"),
        (
            lambda t: set_column(t, "position_x", pc.cast(t["position_x"], pa.string())),
            SchemaMismatchError,
            "x",
        ),
        (lambda t: t.slice(0, 0), EmptyLogError, "no rows"),
        (nan_position, InvalidValueError, "NaN"),
        (duplicate_state, InvalidValueError, "two rows"),
        (null_track, InvalidValueError, "null"),
        (
            lambda t: set_column(t, "timestep", pc.add(t["timestep"], 1)),
            InvalidValueError,
            "timestep outside",
        ),
        (lambda t: set_column(t, "num_timestamps", pa.array([10**9] * len(t))), InvalidValueError, "outside"),
        (
            lambda t: set_column(t, "end_timestamp", t["start_timestamp"]),
            InvalidValueError,
            "do not increase",
        ),
    ],
    ids=[
        "missing-columns",
        "missing-num-timestamps",
        "string-positions",
        "empty",
        "nan-position",
        "duplicate-state",
        "null-track-id",
        "timestep-out-of-range",
        "absurd-num-timestamps",
        "constant-timestamps",
    ],
)
def test_bad_tables_raise_specific_errors(
    raw_table: pa.Table, tmp_path: Path, edit: Any, error: type[InputError], message: str
) -> None:
    path = write(tmp_path, edit(raw_table))
    with pytest.raises(error, match=message) as info:
        read_one(path)
    assert info.value.path == str(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"observed,track_id\nTrue,AV\n", "not a Parquet file"),
        (None, "truncated"),
        (b"", "not a Parquet file"),
    ],
    ids=["csv-renamed", "truncated", "empty-file"],
)
def test_bad_bytes_are_corrupt(samples: Path, tmp_path: Path, content: bytes | None, message: str) -> None:
    original = scenario_path(samples, next(iter(SAMPLES))).read_bytes()
    path = tmp_path / "scenario_x.parquet"
    path.write_bytes(original[: len(original) // 2] if content is None else content)
    with pytest.raises(CorruptFileError, match=message):
        read_one(path)


def test_cli_reports_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "scenario_x.parquet"
    path.write_bytes(b"PAR1 not really")
    result = invoke_inspect(path)
    assert result.exit_code == 2
    assert "Parquet" in result.output
    assert len(result.output.strip().splitlines()) == 1


# --------------------------------------------------------------------------- fuzz


@seed(20_251_124)
@settings(FIXTURE_FUZZ, max_examples=200, deadline=5_000)
@given(data=st.data())
def test_fuzz_mutated_parquet(samples: Path, tmp_path: Path, data: st.DataObject) -> None:
    sid = data.draw(st.sampled_from(list(SAMPLES)), label="sample")
    path = tmp_path / "scenario_fuzz.parquet"
    # half the edits land in the footer (schema, statistics)
    path.write_bytes(mutate(scenario_path(samples, sid).read_bytes(), data.draw, tail=4096))
    assert_reads_or_refuses(ADAPTER, path)
