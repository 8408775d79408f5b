"""Features and the cache: frames, segments, resampling, shards, resume, added columns, versions, size."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from datadrive.compute import InlineEngine
from datadrive.core.frames import from_frame
from datadrive.core.scenario import MapBuilder, MapFeatureKind
from datadrive.curate import (
    AV2_FEATURES,
    FEATURE_GROUPS,
    GROUP_COLUMNS,
    WOMD_FEATURES,
    FeatureCache,
    build_cache,
    epoch_batches,
    featurize_arrays,
    featurize_scenario,
    load_dataset,
    map_segments,
    read_cache_manifest,
    resample_scenario,
    shard_arrays,
)
from datadrive.curate.columns import MAP_COLUMNS, SCENARIO_COLUMNS, TRACK_COLUMNS
from datadrive.curate.observation import observation_batch, segment_map
from datadrive.errors import CacheVersionError, FeatureCacheError
from datadrive.sources import DEFAULT_REGISTRY
from learning_fixtures import SampleLake


def read(folder: Path) -> list:  # type: ignore[type-arg]
    return [r for a, u in DEFAULT_REGISTRY.discover(folder).units for r in a.read(u) if hasattr(r, "tracks")]


def test_map_segments_by_hand() -> None:
    b = MapBuilder()
    b.add("lane", MapFeatureKind.LANE_CENTERLINE, np.array([[0.0, 0.0], [10.0, 0.0], [40.0, 0.0]]))
    b.add("edge", MapFeatureKind.ROAD_EDGE, np.array([[0.0, 5.0], [0.0, 10.0]]))
    b.add("stop", MapFeatureKind.STOP_LINE, np.array([[3.0, 3.0]]))
    b.add("area", MapFeatureKind.DRIVABLE_AREA, np.array([[0.0, 0.0], [1.0, 1.0]]))
    xy, kind = map_segments(b.build(), AV2_FEATURES.map_kinds, 15.0, 5)
    # 40 m lane -> 3 pieces of 13.33 m; 5 m edge -> 1; the stop line (one point) -> 1; drivable area not asked for
    assert xy.shape == (5, 5, 2)
    assert kind.tolist() == [MapFeatureKind.LANE_CENTERLINE] * 3 + [
        MapFeatureKind.ROAD_EDGE,
        MapFeatureKind.STOP_LINE,
    ]
    np.testing.assert_allclose(xy[0, :, 0], np.linspace(0, 40 / 3, 5))
    np.testing.assert_allclose(xy[2, -1], [40.0, 0.0])
    np.testing.assert_allclose(xy[3, :, 1], np.linspace(5, 10, 5))
    np.testing.assert_allclose(xy[4], np.full((5, 2), 3.0))


def test_batches_are_in_the_target_frame_and_reproduce_the_world(sample_lake: SampleLake) -> None:
    lake = sample_lake.lake()
    cache = FeatureCache(sample_lake.cache_path)
    batch = cache.batch(np.arange(min(40, cache.num_samples)))
    np.testing.assert_allclose(batch.agent_xy_m[:, 0, -1], 0.0, atol=1e-5)  # the target at the origin
    np.testing.assert_allclose(batch.agent_heading_rad[:, 0, -1], 0.0, atol=1e-6)  # heading along +x
    info = cache.sample_info(batch.sample_index)
    scen = {
        f"{s.metadata.tenant}/{s.source}/{s.scenario_id}": s for s in lake.snapshot("eu-central").scenarios()
    }
    for i in range(batch.size):
        s = scen[info["scenario_key"][i]]
        a = list(s.tracks.track_ids).index(info["track_id"][i])
        t0 = int(np.searchsorted(s.timestamps_ns, info["t0_ns"][i]))
        world = from_frame(
            batch.future_xy_m[i].astype(float), batch.origin_xy_m[i], batch.origin_heading_rad[i]
        )
        np.testing.assert_allclose(world, s.tracks.xy_m[a, t0 + 1 : t0 + 61], atol=2e-3)  # float32 storage
        hist = from_frame(
            batch.agent_xy_m[i, 0].astype(float), batch.origin_xy_m[i], batch.origin_heading_rad[i]
        )
        valid = batch.agent_valid[i, 0]
        np.testing.assert_allclose(hist[valid], s.tracks.xy_m[a, t0 - 49 : t0 + 1][valid], atol=2e-3)


def test_observation_batch_matches_the_cache(sample_lake: SampleLake, samples: Path) -> None:
    """The simulator's input path gives the cache's input for the same agent and time."""
    s = next(
        x
        for x in read(samples / "av2_motion_forecasting")
        if x.num_steps == 110 and "0a1e6f0a" in x.scenario_id
    )
    cfg = AV2_FEATURES
    feats = featurize_scenario([s], cfg)
    j = 0  # the first sample: the focal track
    a_row = int(feats.sample_agent[j])
    track = int(feats.agent_track[a_row])
    t0 = int(feats.window_t0[0])
    tr = s.tracks
    h = slice(t0 - cfg.history_steps + 1, t0 + 1)
    seg = segment_map(s.map, cfg)
    obs = observation_batch(
        tr.xy_m[None, :, h],
        tr.heading_rad[None, :, h],
        np.nan_to_num(tr.velocity_mps[None, :, h]),
        tr.valid[None, :, h],
        tr.object_type[None].astype(np.int64),
        tr.size_m[None, :, :2],
        ego=np.array([track]),
        maps=[seg],
        map_index=np.array([0]),
        config=cfg,
    )
    # the same neighbours, in the same order, at the same places
    nb = feats.neighbor_rows[feats.neighbor_offsets[j] : feats.neighbor_offsets[j + 1]]
    want_tracks = [track, *feats.agent_track[nb].tolist()]
    got = obs.agent_xy_m[0, : len(want_tracks), -1]
    expect = from_frame(np.zeros(2), tr.xy_m[track, t0], tr.heading_rad[track, t0])
    assert obs.agent_mask[0].sum() == len(want_tracks)
    np.testing.assert_allclose(obs.origin_xy_m[0], expect)
    for k, t in enumerate(want_tracks):
        if tr.valid[t, t0]:
            world = from_frame(got[k].astype(float), obs.origin_xy_m[0], obs.origin_heading_rad[0])
            np.testing.assert_allclose(world, tr.xy_m[t, t0], atol=1e-3)
    n_seg = feats.segment_offsets[j + 1] - feats.segment_offsets[j]
    assert obs.map_mask[0].sum() == n_seg


def test_other_rates_are_skipped_unless_resampled_explicitly(samples: Path) -> None:
    nuplan = read(samples / "nuplan")
    assert nuplan
    rate = 1e9 / np.median(np.diff(nuplan[0].timestamps_ns))
    assert rate == pytest.approx(20.0, rel=0.05)
    plain = featurize_scenario(nuplan[:1], AV2_FEATURES)
    assert plain.num_samples == 0
    assert "resample explicitly" in plain.skipped[0].reason
    res = featurize_scenario(nuplan[:1], replace(AV2_FEATURES, resample=True))
    assert res.resampled
    assert res.num_samples > 0
    r = resample_scenario(nuplan[0], 10.0)
    assert np.median(np.diff(r.timestamps_ns)) == pytest.approx(1e8)
    # a resampled state that lands on a source state equals it
    src = nuplan[0].tracks
    k = int(np.flatnonzero(src.valid[0])[4])
    grid_i = np.flatnonzero(r.timestamps_ns == nuplan[0].timestamps_ns[k])
    if grid_i.size:
        np.testing.assert_allclose(r.tracks.xy_m[0, grid_i[0]], src.xy_m[0, k])


def test_cache_is_smaller_than_the_raw_files(sample_lake: SampleLake, samples: Path, tmp_path: Path) -> None:
    """The AV2 samples: raw parquet + map JSON against their cache (maps stored once per map)."""
    from datadrive.curate import DatasetQuery, create_dataset

    lake = sample_lake.lake()
    m = create_dataset(
        lake,
        "av2only",
        "eu-central",
        DatasetQuery.sql("SELECT scenario_id FROM scenarios WHERE source = 'av2_motion_forecasting'"),
    )
    report = build_cache(lake, m, AV2_FEATURES, directory=tmp_path / "c", engine=InlineEngine())
    raw = sum(p.stat().st_size for p in (samples / "av2_motion_forecasting").rglob("*") if p.is_file())
    assert report.samples > 0
    assert report.bytes < raw, (report.bytes, raw)


def test_killed_build_resumes_redoing_only_the_missing_shard(sample_lake: SampleLake, tmp_path: Path) -> None:
    lake = sample_lake.lake()
    m = load_dataset(lake, "samples", "eu-central")
    path = tmp_path / "cache"
    first = build_cache(lake, m, AV2_FEATURES, directory=path, shard_size=8, engine=InlineEngine())
    assert first.built == first.shards >= 3
    stamps = {d.name: (d / "agent_xy_m.npy").stat().st_mtime_ns for d in path.glob("shard-*")}
    # a kill mid-shard: shard 1 never got renamed into place, a temporary folder is left behind
    shutil.rmtree(path / "shard-00001")
    (path / ".shard-00001.tmp-99999").mkdir()
    second = build_cache(lake, m, AV2_FEATURES, directory=path, shard_size=8, engine=InlineEngine())
    assert (second.built, second.reused) == (1, first.shards - 1)
    assert not list(path.glob(".shard-*"))
    for d in path.glob("shard-*"):
        if d.name != "shard-00001":
            assert (d / "agent_xy_m.npy").stat().st_mtime_ns == stamps[d.name]
    assert FeatureCache(path).num_samples == first.samples == second.samples
    shutil.rmtree(path / "shard-00000")
    with pytest.raises(FeatureCacheError, match="incomplete"):
        FeatureCache(path)


def test_default_shard_size_keeps_the_plan_and_gives_every_worker_a_shard(
    sample_lake: SampleLake, tmp_path: Path
) -> None:
    from datadrive.compute import ProcessPoolEngine
    from datadrive.curate.cache import DEFAULT_SHARD_SIZE, _default_shard_size

    lake = sample_lake.lake()
    m = load_dataset(lake, "samples", "eu-central")
    n = len(m.keys())
    path = tmp_path / "cache"
    # no cache there: one shard per process-pool worker at least, never more than the default size
    assert _default_shard_size(path, n, InlineEngine()) == min(n, DEFAULT_SHARD_SIZE)
    assert _default_shard_size(path, 100, ProcessPoolEngine(2)) == 50
    assert _default_shard_size(path, 101, ProcessPoolEngine(2)) == 51
    assert _default_shard_size(path, 10_000, ProcessPoolEngine(2)) == DEFAULT_SHARD_SIZE
    first = build_cache(lake, m, AV2_FEATURES, directory=path, shard_size=8, engine=InlineEngine())
    # a later build that names no size keeps the plan on disk: every shard is reused, none refused
    again = build_cache(lake, m, AV2_FEATURES, directory=path, engine=InlineEngine())
    assert (again.shards, again.reused, again.built) == (first.shards, first.shards, 0)
    assert json.loads((path / "cache.json").read_text())["shard_size"] == 8


def test_adding_a_group_writes_only_its_columns(sample_lake: SampleLake, tmp_path: Path) -> None:
    lake = sample_lake.lake()
    m = load_dataset(lake, "samples", "eu-central")
    path = tmp_path / "cache"
    build_cache(
        lake,
        m,
        AV2_FEATURES,
        directory=path,
        shard_size=16,
        engine=InlineEngine(),
        groups=["samples", "agents", "future"],
    )
    cache = FeatureCache(path)
    assert "map" not in cache.groups
    assert not cache.batch(np.arange(4)).map_mask.any()
    before = {p: p.stat().st_mtime_ns for p in path.glob("shard-*/*.npy")}
    report = build_cache(lake, m, AV2_FEATURES, directory=path, shard_size=16, engine=InlineEngine())
    assert report.built == report.shards
    after = {p: p.stat().st_mtime_ns for p in path.glob("shard-*/*.npy")}
    assert all(after[p] == t for p, t in before.items())  # nothing rewritten
    assert {p.name for p in set(after) - set(before)} == {
        f"{c}.npy"
        for c in (
            "window_map",
            "map_origin_xy_m",
            "map_keys",
            "segment_xy_m",
            "segment_kind",
            "segment_map",
            "segment_offsets",
            "segment_rows",
        )
    }
    assert FeatureCache(path, require=("samples", "map")).batch(np.arange(4)).map_mask.any()


def test_a_cache_of_another_featuriser_version_is_refused(sample_lake: SampleLake, tmp_path: Path) -> None:
    path = tmp_path / "cache"
    shutil.copytree(sample_lake.cache_path, path)
    marker = path / "shard-00000" / "_complete.json"
    doc = json.loads(marker.read_text())
    doc["groups"]["agents"] = FEATURE_GROUPS["agents"] + 1
    marker.write_text(json.dumps(doc))
    with pytest.raises(CacheVersionError, match="rebuild"):
        FeatureCache(path)
    lake = sample_lake.lake()
    m = load_dataset(lake, "samples", "eu-central")
    with pytest.raises(CacheVersionError, match="--rebuild"):
        build_cache(lake, m, AV2_FEATURES, directory=path, shard_size=8, engine=InlineEngine())
    build_cache(lake, m, AV2_FEATURES, directory=path, shard_size=8, engine=InlineEngine(), rebuild=True)
    assert FeatureCache(path).num_samples > 0


def test_epoch_plan_is_deterministic_grouped_and_split_between_ranks(sample_lake: SampleLake) -> None:
    cache = FeatureCache(sample_lake.cache_path)
    idx = cache.split_indices("train")
    a = epoch_batches(cache, idx, 8, seed=1, epoch=2)
    b = epoch_batches(cache, idx, 8, seed=1, epoch=2)
    assert [x.tolist() for x in a] == [x.tolist() for x in b]
    assert sorted(np.concatenate(a).tolist()) == sorted(idx.tolist())
    assert [x.tolist() for x in a] != [x.tolist() for x in epoch_batches(cache, idx, 8, seed=1, epoch=3)]
    r0 = epoch_batches(cache, idx, 8, seed=1, epoch=2, rank=0, world_size=2)
    r1 = epoch_batches(cache, idx, 8, seed=1, epoch=2, rank=1, world_size=2)
    assert len(r0) == len(r1)
    assert not set(np.concatenate(r0).tolist()) & set(np.concatenate(r1).tolist())
    # size grouping: within a batch, sizes are closer than in a random batch of the same samples
    size = cache.num_agents * 50 + cache.num_segments * 8
    spread = np.mean([np.ptp(size[x]) for x in a if x.size > 1])
    rng = np.random.default_rng(0)
    random_spread = np.mean([np.ptp(size[rng.choice(idx, x.size, replace=False)]) for x in a if x.size > 1])
    assert spread < random_spread


def _assert_same_features(got: object, want: object) -> None:
    for group in GROUP_COLUMNS.values():
        for name in group:
            if name == "sample_split":
                continue
            a, b = getattr(got, name), getattr(want, name)
            assert a.dtype == b.dtype, name
            assert a.shape == b.shape, name
            np.testing.assert_array_equal(a, b, err_msg=name)
    assert got.skipped == want.skipped  # type: ignore[attr-defined]
    assert got.resampled == want.resampled  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "config",
    [
        AV2_FEATURES,
        replace(WOMD_FEATURES, rate_hz=5.0, history_steps=6, future_steps=40, resample=True),
        replace(AV2_FEATURES, max_targets_per_window=1),
    ],
    ids=["av2", "womd-resampled-5hz", "focal-only"],
)
def test_features_from_columns_equal_the_scenario_featuriser(sample_lake: SampleLake, config: object) -> None:
    """The cache's path (a shard's columns, no Scenario objects) against the reference on the lake's Scenarios."""
    import pyarrow.dataset as pads

    snap = sample_lake.lake().snapshot("eu-central")
    scenarios = snap.scenarios()
    keys = [(s.metadata.tenant or "", s.source, s.scenario_id) for s in scenarios][
        ::-1
    ]  # not the table's order
    by_key = dict(zip(keys[::-1], scenarios, strict=True))
    flt = pads.field("scenario_id").isin([k[2] for k in keys])
    rows = snap.table(
        "scenarios", columns=list(SCENARIO_COLUMNS), filter=flt & pads.field("telemetry_id").is_null()
    )
    tracks = snap.table("tracks", columns=list(TRACK_COLUMNS), filter=flt)
    maps = snap.table("map_features", columns=list(MAP_COLUMNS), filter=flt)
    shuffled = np.random.default_rng(0)
    arrays = shard_arrays(keys, rows, tracks, maps)
    # rows in any order (a scenario's rows apart from each other: its values are gathered)
    mixed = shard_arrays(
        keys,
        rows,
        tracks.take(shuffled.permutation(tracks.num_rows)),
        maps.take(shuffled.permutation(maps.num_rows)),
    )
    names = ["/".join(k) for k in keys]
    got = featurize_arrays(arrays, config, keys=names)  # type: ignore[arg-type]
    want = featurize_scenario([by_key[k] for k in keys], config, keys=names)  # type: ignore[arg-type]
    assert want.num_samples > 0
    assert {"av2_motion_forecasting", "interaction", "scenarionet"} <= {s.source for s in scenarios}
    assert bool(want.resampled) == config.resample  # type: ignore[attr-defined]  # 10 Hz sources at 5 Hz
    _assert_same_features(got, want)
    _assert_same_features(featurize_arrays(mixed, config, keys=names), want)  # type: ignore[arg-type]


def test_cache_shards_equal_the_scenario_featuriser(sample_lake: SampleLake) -> None:
    """Every shard of the session's cache holds what the reference featuriser computes from Scenarios."""
    manifest = sample_lake.manifest
    snap = sample_lake.lake().snapshot("eu-central", manifest.lake_version)  # type: ignore[attr-defined]
    by_key = {(s.metadata.tenant or "", s.source, s.scenario_id): s for s in snap.scenarios()}
    keys = manifest.keys()  # type: ignore[attr-defined]
    doc = read_cache_manifest(sample_lake.cache_path)
    assert len(doc["shards"]) > 1
    for shard in doc["shards"]:
        ks = keys[shard["first"] : shard["first"] + shard["count"]]
        want = featurize_scenario([by_key[k] for k in ks], AV2_FEATURES, keys=["/".join(k) for k in ks])
        for group in GROUP_COLUMNS.values():
            for name in group:
                if name != "sample_split":
                    on_disk = np.load(sample_lake.cache_path / shard["name"] / f"{name}.npy")
                    np.testing.assert_array_equal(on_disk, getattr(want, name), err_msg=name)


def test_shard_columns_that_do_not_fit_are_refused_naming_the_scenario(sample_lake: SampleLake) -> None:
    import pyarrow as pa
    import pyarrow.dataset as pads

    from datadrive.errors import DatasetError, ValidationError

    snap = sample_lake.lake().snapshot("eu-central")
    flt = pads.field("source") == "av2_motion_forecasting"
    rows = snap.table(
        "scenarios", columns=list(SCENARIO_COLUMNS), filter=flt & pads.field("telemetry_id").is_null()
    )
    tracks = snap.table("tracks", columns=list(TRACK_COLUMNS), filter=flt)
    maps = snap.table("map_features", columns=list(MAP_COLUMNS), filter=flt)
    keys = [
        (t, s, i)
        for t, s, i in zip(
            *(rows.column(c).to_pylist() for c in ("tenant", "source", "scenario_id")), strict=True
        )
    ]
    # one scenario's timestamps a step short: its tracks no longer fit
    ts = rows.column("timestamps_ns").to_pylist()
    ts[0] = ts[0][:-1]
    short = rows.set_column(
        rows.schema.get_field_index("timestamps_ns"),
        "timestamps_ns",
        pa.array(ts, rows.schema.field("timestamps_ns").type),
    )
    with pytest.raises(ValidationError, match=f"tracks of {'/'.join(keys[0])}"):
        shard_arrays(keys, short, tracks, maps)
    with pytest.raises(DatasetError, match="have no row"):
        shard_arrays([*keys, ("bmw", "av2_motion_forecasting", "no-such-scenario")], rows, tracks, maps)


@pytest.mark.slow  # starts a process pool (a few seconds on a busy machine)
def test_small_build_runs_in_process_and_a_pool_build_writes_the_same_columns(
    sample_lake: SampleLake, tmp_path: Path
) -> None:
    from datadrive.compute import ProcessPoolEngine
    from datadrive.curate.cache import INLINE_BELOW

    lake = sample_lake.lake()
    m = load_dataset(lake, "samples", "eu-central")
    n = len(m.keys())
    assert 1 < n < INLINE_BELOW
    pool = ProcessPoolEngine(2, preload=("datadrive.curate.cache",), window_per_worker=1)
    # below INLINE_BELOW the pool is not started: the build is one shard (not one per worker)
    small = build_cache(lake, m, AV2_FEATURES, directory=tmp_path / "small", engine=pool)
    assert small.ok
    assert small.shards == 1
    # inline_below=0: the pool's workers build the shards, the same bytes as this process would
    pooled = build_cache(
        lake, m, AV2_FEATURES, directory=tmp_path / "pool", engine=pool, shard_size=4, inline_below=0
    )
    inline = build_cache(
        lake, m, AV2_FEATURES, directory=tmp_path / "inline", engine=InlineEngine(), shard_size=4
    )
    assert pooled.ok
    assert pooled.built == pooled.shards == inline.shards >= 2
    done = json.loads((tmp_path / "pool" / "shard-00000" / "_complete.json").read_text())
    assert done["samples"] > 0
    for d in sorted((tmp_path / "inline").glob("shard-*")):
        for f in sorted(d.glob("*.npy")):
            np.testing.assert_array_equal(
                np.load(f), np.load(tmp_path / "pool" / d.name / f.name), err_msg=str(f)
            )
    a, b = FeatureCache(tmp_path / "small"), FeatureCache(tmp_path / "inline")
    assert a.num_samples == b.num_samples == small.samples
    idx = np.arange(a.num_samples)
    np.testing.assert_array_equal(a.batch(idx).agent_xy_m, b.batch(idx).agent_xy_m)
