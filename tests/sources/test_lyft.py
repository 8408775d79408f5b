"""Lyft Level 5 zarr reader: values against zarr-python's own decoding of the sample scene."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzzing import FIXTURE_FUZZ, assert_reads_or_refuses, mutated_file
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from reader_checks import assert_arrow_round_trip, run_inspect_json, sample_path, writable_copy

from datadrive.core import (
    SUMMARY_KEYS,
    ObjectType,
    Scenario,
    summarize,
)
from datadrive.errors import (
    CorruptFileError,
    EmptyLogError,
    InvalidValueError,
    SchemaMismatchError,
    UnsupportedFormatError,
)
from datadrive.sources import DEFAULT_REGISTRY
from datadrive.sources.lyft import LyftZarrAdapter, _group_median

zarr = pytest.importorskip("zarr")  # zarr 2: the reference decoder (the reader itself does not use it)
numcodecs = pytest.importorskip("numcodecs")

ADAPTER = LyftZarrAdapter()

# The coarse types, written out from the task's definition (independent of the reader's table).
VEHICLE = {"CAR", "VAN", "TRAM", "BUS", "TRUCK", "EMERGENCY_VEHICLE", "OTHER_VEHICLE"}
CYCLIST = {"CYCLIST", "MOTORCYCLIST"}


def coarse(label: str) -> str:
    short = label.removeprefix("PERCEPTION_LABEL_")
    if short in VEHICLE:
        return "vehicle"
    if short in CYCLIST:
        return "cyclist"
    if short == "PEDESTRIAN":
        return "pedestrian"
    return "other"


@pytest.fixture(scope="module")
def zarr_path(samples: Path) -> Path:
    return sample_path(samples, "lyft_l5kit/single_scene.zarr", folder=True)


@pytest.fixture(scope="module")
def raw(zarr_path: Path) -> dict[str, Any]:
    group = zarr.open_group(str(zarr_path), mode="r")
    return {
        "scenes": group["scenes"][:],
        "frames": group["frames"][:],
        "agents": group["agents"][:],
        "tl": group["traffic_light_faces"][:],
        "labels": list(group.attrs["labels"]),
    }


@pytest.fixture(scope="module")
def scenario(zarr_path: Path) -> Scenario:
    records = ADAPTER.read_all(zarr_path)
    assert len(records) == 1
    assert isinstance(records[0], Scenario)
    return records[0]


def write_zarr(
    path: Path,
    arrays: dict[str, np.ndarray],
    labels: list[str],
    chunks: dict[str, int],
    *,
    compress: bool = True,
) -> Path:
    """A Lyft-layout zarr written by zarr-python 2 (blosc lz4, like l5kit)."""
    group = zarr.open_group(str(path), mode="w")
    compressor = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE) if compress else None
    for name, data in arrays.items():
        group.create_dataset(name, data=data, chunks=(chunks.get(name, 10_000),), compressor=compressor)
    group.attrs["format_version"] = 2
    group.attrs["labels"] = labels
    return path


def arrays_of(raw: dict[str, Any]) -> dict[str, np.ndarray]:
    return {
        "scenes": raw["scenes"].copy(),
        "frames": raw["frames"].copy(),
        "agents": raw["agents"].copy(),
        "traffic_light_faces": raw["tl"].copy(),
    }


# --------------------------------------------------------------------------- values


def test_sample_facts_from_sources_md(raw: dict[str, Any], scenario: Scenario) -> None:
    assert raw["frames"].shape == (248,)
    assert raw["agents"].shape == (20802,)
    assert np.unique(raw["agents"]["track_id"]).shape == (1653,)
    assert raw["tl"].shape == (3216,)
    assert scenario.num_steps == 248
    assert scenario.num_tracks == 1653 + 1
    assert scenario.dt_s == pytest.approx(0.1, abs=1e-3)
    assert scenario.metadata.frame == "lyft_l5_world"
    assert scenario.map is None
    assert scenario.traffic_lights is None
    assert scenario.metadata.extras["host"] == "host-a101"


def test_every_agent_row_is_one_state(raw: dict[str, Any], scenario: Scenario) -> None:
    frames, agents = raw["frames"], raw["agents"]
    tr = scenario.tracks
    row_of = {tid: i for i, tid in enumerate(tr.track_ids.tolist())}
    expected_valid = np.zeros_like(tr.valid)
    expected_valid[row_of["ego"]] = True
    for t, (start, end) in enumerate(frames["agent_index_interval"]):
        for agent in agents[start:end]:
            r = row_of[str(int(agent["track_id"]))]
            expected_valid[r, t] = True
            assert tr.xy_m[r, t].tolist() == agent["centroid"].tolist()
            assert tr.heading_rad[r, t] == float(agent["yaw"])
            assert tr.velocity_mps[r, t].tolist() == [float(v) for v in agent["velocity"]]
    assert np.array_equal(tr.valid, expected_valid)
    assert int(tr.valid.sum()) == agents.shape[0] + frames.shape[0]
    assert np.isnan(tr.z_m[1:]).all()


def test_ego_from_frames(raw: dict[str, Any], scenario: Scenario) -> None:
    frames = raw["frames"]
    tr, e = scenario.tracks, scenario.ego_index
    assert e is not None
    assert scenario.ego_track_id == "ego"
    assert tr.object_type[e] == ObjectType.VEHICLE
    assert np.array_equal(scenario.timestamps_ns, frames["timestamp"].astype(np.int64))
    assert np.array_equal(tr.xy_m[e], frames["ego_translation"][:, :2])
    assert np.array_equal(tr.z_m[e], frames["ego_translation"][:, 2])
    rot = frames["ego_rotation"]
    # yaw of a rotation matrix, written out as l5kit's rotation33_as_yaw computes it (scipy "xyz" euler)
    yaw = [np.arctan2(r[1][0], r[0][0]) for r in rot]
    assert tr.heading_rad[e] == pytest.approx(yaw, abs=1e-12)
    travelled = np.linalg.norm(np.diff(frames["ego_translation"][:, :2], axis=0), axis=1).sum()
    assert travelled == pytest.approx(268, abs=5)  # SOURCES.md: "the ego travels about 268 m"


def test_labels_sizes_and_types_per_track(raw: dict[str, Any], scenario: Scenario) -> None:
    agents, labels = raw["agents"], raw["labels"]
    probs: dict[int, np.ndarray] = defaultdict(lambda: np.zeros(len(labels)))
    extents: dict[int, list[np.ndarray]] = defaultdict(list)
    for agent in agents:
        probs[int(agent["track_id"])] += agent["label_probabilities"]
        extents[int(agent["track_id"])].append(agent["extent"].astype(np.float64))
    tr = scenario.tracks
    counts = {"vehicle": 1, "cyclist": 0, "pedestrian": 0, "other": 0}  # the ego
    for i, tid in enumerate(tr.track_ids.tolist()):
        if tid == "ego":
            continue
        label = labels[int(np.argmax(probs[int(tid)]))]
        assert tr.category[i] == label
        assert ObjectType(int(tr.object_type[i])).name.lower() == coarse(label)
        counts[coarse(label)] += 1
        assert tr.size_m[i] == pytest.approx(np.median(np.stack(extents[int(tid)]), axis=0), abs=1e-12)
    assert summarize(scenario)["track_type_counts"] == counts


def test_summary_contract(raw: dict[str, Any], scenario: Scenario) -> None:
    summary = summarize(scenario)
    assert tuple(summary) == SUMMARY_KEYS
    xy_sum = raw["agents"]["centroid"].sum() + raw["frames"]["ego_translation"][:, :2].sum()
    assert summary["xy_sum_m"] == pytest.approx(float(xy_sum), rel=1e-12)
    assert summary["num_valid_states"] == 20802 + 248
    assert summary["num_map_lanes"] is None
    assert summary["ego_track_id"] == "ego"


def test_traffic_light_faces_in_extras(raw: dict[str, Any], scenario: Scenario) -> None:
    tl = raw["tl"]
    extras = scenario.metadata.extras["traffic_light_faces"]
    status = ["ACTIVE", "INACTIVE", "UNKNOWN"]
    expected = {name: 0 for name in status}
    for face in tl:
        expected[status[int(np.argmax(face["traffic_light_face_status"]))]] += 1
    assert extras["status_counts"] == expected
    assert extras["rows"] == 3216
    assert extras["faces"] == len(set(tl["face_id"].tolist()))
    assert extras["lights"] == len(set(tl["traffic_light_id"].tolist()))
    iv = raw["frames"]["traffic_light_faces_index_interval"]
    assert extras["rows_per_frame"] == (iv[:, 1] - iv[:, 0]).tolist()


def test_arrow_round_trip(scenario: Scenario) -> None:
    assert_arrow_round_trip([scenario])


def test_registry_detects_the_zarr_folder(zarr_path: Path) -> None:
    assert DEFAULT_REGISTRY.detect(zarr_path).name == "lyft_l5kit"
    units = DEFAULT_REGISTRY.discover(zarr_path.parent).units
    assert [(a.name, p) for a, p in units] == [("lyft_l5kit", zarr_path)]
    assert not ADAPTER.claims(zarr_path / "agents")


def test_inspect_json_contract(zarr_path: Path, raw: dict[str, Any]) -> None:
    [obj] = run_inspect_json(zarr_path, timeout_s=120)
    assert tuple(obj) == SUMMARY_KEYS
    assert obj["num_tracks"] == 1654
    assert obj["num_steps"] == 248
    assert obj["num_map_lanes"] is None


def test_many_scenes_and_chunk_boundaries(tmp_path: Path, raw: dict[str, Any], scenario: Scenario) -> None:
    """Two scenes split at frame 100, agents in 997-row chunks: the states are the same."""
    arrays = arrays_of(raw)
    frames = arrays["frames"]
    scenes = np.zeros(2, dtype=raw["scenes"].dtype)
    scenes["frame_index_interval"] = [[0, 100], [100, 248]]
    scenes["host"] = "host-a101"
    scenes["start_time"] = frames["timestamp"][[0, 100]]
    scenes["end_time"] = frames["timestamp"][[99, 247]]
    arrays["scenes"] = scenes
    path = write_zarr(
        tmp_path / "two.zarr",
        arrays,
        raw["labels"],
        {"agents": 997, "frames": 64, "traffic_light_faces": 500, "scenes": 1},
    )
    parts = ADAPTER.read_all(path)
    assert [p.scenario_id for p in parts if isinstance(p, Scenario)] == ["two/0", "two/1"]
    for part, (f0, f1) in zip(parts, [(0, 100), (100, 248)], strict=True):
        assert isinstance(part, Scenario)
        assert np.array_equal(part.timestamps_ns, scenario.timestamps_ns[f0:f1])
        ref, got = scenario.tracks, part.tracks
        for i, tid in enumerate(got.track_ids.tolist()):
            j = int(np.flatnonzero(ref.track_ids == tid)[0])
            assert np.array_equal(got.valid[i], ref.valid[j, f0:f1])
            assert np.array_equal(got.xy_m[i][got.valid[i]], ref.xy_m[j, f0:f1][ref.valid[j, f0:f1]])
        assert int(got.valid.sum()) == int(scenario.tracks.valid[:, f0:f1].sum())


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_group_median_matches_numpy(dtype: type) -> None:
    rng = np.random.default_rng(3)
    values: np.ndarray = rng.normal(0.0, 10.0, size=(4000, 3)).astype(dtype)
    values[::7] = -values[::7] * 1e-30  # tiny negatives, zeros and signed zeros
    values[::11] = 0.0
    values[::13] = -0.0
    group = rng.integers(0, 250, 4000)
    group[:250] = np.arange(250)
    expected = np.stack([np.median(values[group == g].astype(np.float64), axis=0) for g in range(250)])
    assert np.array_equal(_group_median(values, group, 250), expected)


def test_uncompressed_chunks(tmp_path: Path, raw: dict[str, Any], scenario: Scenario) -> None:
    path = write_zarr(tmp_path / "raw.zarr", arrays_of(raw), raw["labels"], {"agents": 5000}, compress=False)
    [again] = ADAPTER.read_all(path)
    assert isinstance(again, Scenario)
    assert np.array_equal(again.tracks.xy_m, scenario.tracks.xy_m)
    assert np.array_equal(again.tracks.valid, scenario.tracks.valid)
    chunk = path / "agents" / "1"
    chunk.write_bytes(chunk.read_bytes()[:-1])
    with pytest.raises(CorruptFileError, match="agents/1: has"):
        ADAPTER.read_all(path)


# --------------------------------------------------------------------------- bad input


@pytest.fixture
def copy(tmp_path: Path, zarr_path: Path) -> Path:
    return writable_copy(zarr_path, tmp_path / "copy.zarr")


def rewrite_zarray(path: Path, change: Any) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def test_truncated_chunk(copy: Path) -> None:
    chunk = copy / "agents" / "0"
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    with pytest.raises(CorruptFileError, match=r"agents/0.*truncated"):
        ADAPTER.read_all(copy)


def test_corrupt_compressed_bytes(copy: Path) -> None:
    chunk = copy / "frames" / "0"
    data = chunk.read_bytes()
    chunk.write_bytes(data[:16] + b"\xff" * (len(data) - 16))
    with pytest.raises(CorruptFileError, match=r"frames/0.*blosc"):
        ADAPTER.read_all(copy)


def test_corrupt_blosc_header(copy: Path) -> None:
    chunk = copy / "frames" / "0"
    data = bytearray(chunk.read_bytes())
    data[4:8] = (12345).to_bytes(4, "little")  # nbytes
    chunk.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="decompresses to 12345 bytes"):
        ADAPTER.read_all(copy)


def test_missing_chunk(copy: Path) -> None:
    (copy / "agents" / "1").unlink()
    with pytest.raises(CorruptFileError, match="chunk 1 of agents is missing"):
        ADAPTER.read_all(copy)


@pytest.mark.parametrize("array", ["agents", "frames", "scenes"], ids=["agents", "frames", "scenes"])
def test_missing_array(copy: Path, array: str) -> None:
    shutil.rmtree(copy / array)
    with pytest.raises(SchemaMismatchError, match=f"array '{array}'"):
        ADAPTER.read_all(copy)


@pytest.mark.parametrize(
    ("array", "field", "dtype", "error", "match"),
    [
        ("frames", "timestamp", "<f8", SchemaMismatchError, "frames.timestamp"),
        ("agents", "centroid", "<i8", SchemaMismatchError, "agents.centroid"),
        ("agents", "track_id", "|O", SchemaMismatchError, "Python objects"),
    ],
    ids=["float-timestamps", "integer-centroids", "object-track-ids"],
)
def test_wrong_dtype(copy: Path, array: str, field: str, dtype: str, error: type, match: str) -> None:
    def change(meta: dict[str, Any]) -> None:
        for item in meta["dtype"]:
            if item[0] == field:
                item[1] = dtype

    rewrite_zarray(copy / array / ".zarray", change)
    with pytest.raises(error, match=match):
        ADAPTER.read_all(copy)


def test_missing_field(copy: Path) -> None:
    rewrite_zarray(
        copy / "agents" / ".zarray", lambda m: m.update(dtype=[d for d in m["dtype"] if d[0] != "yaw"])
    )
    with pytest.raises(SchemaMismatchError, match="no field 'yaw'"):
        ADAPTER.read_all(copy)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda m: m.update(zarr_format=3), UnsupportedFormatError, "zarr_format 3"),
        (lambda m: m.update(compressor={"id": "zstd", "level": 1}), UnsupportedFormatError, "blosc only"),
        (lambda m: m.update(filters=[{"id": "delta", "dtype": "<i8"}]), UnsupportedFormatError, "filters"),
        (lambda m: m.update(shape=[10, 2]), SchemaMismatchError, "1-D"),
    ],
    ids=["zarr-v3", "zstd", "filters", "2-d"],
)
def test_unsupported_zarray(copy: Path, change: Any, error: type, match: str) -> None:
    rewrite_zarray(copy / "frames" / ".zarray", change)
    with pytest.raises(error, match=match):
        ADAPTER.read_all(copy)


def test_zarray_not_json(copy: Path) -> None:
    (copy / "agents" / ".zarray").write_bytes(b"{not json")
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        ADAPTER.read_all(copy)


def test_label_count_mismatch(copy: Path) -> None:
    attrs = json.loads((copy / ".zattrs").read_text())
    attrs["labels"] = attrs["labels"][:-1]
    (copy / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(SchemaMismatchError, match="17 columns"):
        ADAPTER.read_all(copy)


def test_nan_positions(tmp_path: Path, raw: dict[str, Any]) -> None:
    arrays = arrays_of(raw)
    arrays["agents"]["centroid"][5] = np.nan
    path = write_zarr(tmp_path / "nan.zarr", arrays, raw["labels"], {"agents": 20000})
    with pytest.raises(InvalidValueError, match="agent row 5 has a NaN centroid"):
        ADAPTER.read_all(path)
    arrays = arrays_of(raw)
    arrays["frames"]["ego_translation"][3, 0] = np.inf
    path = write_zarr(tmp_path / "inf.zarr", arrays, raw["labels"], {"agents": 20000})
    with pytest.raises(InvalidValueError, match="ego translation"):
        ADAPTER.read_all(path)


def test_empty_arrays(tmp_path: Path, raw: dict[str, Any]) -> None:
    arrays = arrays_of(raw)
    arrays["scenes"] = arrays["scenes"][:0]
    with pytest.raises(EmptyLogError, match="no scenes"):
        ADAPTER.read_all(write_zarr(tmp_path / "none.zarr", arrays, raw["labels"], {}))
    arrays = arrays_of(raw)
    arrays["scenes"]["frame_index_interval"] = [[5, 5]]
    with pytest.raises(EmptyLogError, match="scene 0 has no frames"):
        ADAPTER.read_all(write_zarr(tmp_path / "empty.zarr", arrays, raw["labels"], {}))


def test_scene_agents_may_be_empty(tmp_path: Path, raw: dict[str, Any]) -> None:
    arrays = arrays_of(raw)
    arrays["frames"]["agent_index_interval"] = 0
    arrays["agents"] = arrays["agents"][:0]
    [only] = ADAPTER.read_all(write_zarr(tmp_path / "ego_only.zarr", arrays, raw["labels"], {}))
    assert isinstance(only, Scenario)
    assert only.num_tracks == 1
    assert int(only.tracks.valid.sum()) == 248


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda a: a["frames"]["timestamp"].__setitem__(10, 0), "not strictly increasing"),
        (lambda a: a["frames"]["agent_index_interval"].__setitem__((247, 1), 10**7), "outside"),
        (lambda a: a["frames"]["agent_index_interval"].__setitem__((4, 0), 300), "not contiguous"),
        (lambda a: a["agents"]["track_id"].__setitem__(1, a["agents"]["track_id"][0]), "appears twice"),
        (lambda a: a["scenes"]["frame_index_interval"].__setitem__((0, 1), 500), "outside frames"),
    ],
    ids=[
        "timestamps-backwards",
        "interval-out-of-range",
        "interval-gap",
        "duplicate-track",
        "scene-too-long",
    ],
)
def test_broken_invariants(tmp_path: Path, raw: dict[str, Any], mutate: Any, match: str) -> None:
    arrays = arrays_of(raw)
    mutate(arrays)
    with pytest.raises(InvalidValueError, match=match):
        ADAPTER.read_all(write_zarr(tmp_path / "bad.zarr", arrays, raw["labels"], {}))


def test_zarr_v3_folder_is_not_claimed(tmp_path: Path) -> None:
    folder = tmp_path / "v3.zarr"
    folder.mkdir()
    (folder / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
    assert not ADAPTER.claims(folder)


# --------------------------------------------------------------------------- fuzz


@pytest.fixture(scope="module")
def fuzz_copy(tmp_path_factory: pytest.TempPathFactory, zarr_path: Path) -> Path:
    return writable_copy(zarr_path, tmp_path_factory.mktemp("lyft_fuzz") / "fuzz.zarr")


@seed(20_251_124)
@settings(FIXTURE_FUZZ, max_examples=150, deadline=10_000)
@given(data=st.data())
def test_fuzz_mutated_files(fuzz_copy: Path, data: st.DataObject) -> None:
    files = sorted(f for f in fuzz_copy.rglob("*") if f.is_file())
    target = data.draw(st.sampled_from(files), label="file")
    with mutated_file(target, data.draw, head=64):  # half the edits in the first 64 bytes (headers)
        assert_reads_or_refuses(ADAPTER, fuzz_copy)
