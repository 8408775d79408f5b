"""The feature cache: memory-mappable shards of a dataset version's features, built once.

Layout, beside the dataset version in its region (``<root>/derived/features/
<dataset>/vNNNN/<config fingerprint>/``, or a folder the caller names)::

    cache.json                  the plan: dataset, feature config, shards
    shard-00000/
        _complete.json          groups present (with their code versions), counts
        agent_xy_m.npy ...      one .npy per column, read with mmap_mode="r"

Each column belongs to one *group* (:data:`GROUP_COLUMNS`): ``samples``
(which samples exist), ``agents``, ``future``, ``map``. A shard records the
version of the code that wrote each of its groups; opening a cache whose
groups were written by another version raises
:class:`~datadrive.errors.CacheVersionError`. Adding a group (or rebuilding
one) writes only that group's files into every shard; the others are left
as they are (their bytes are not rewritten).

Building: only the dataset's scenarios are read (by id, from the lake
version the dataset recorded), a shard of ``shard_size`` scenarios at a
time, on any :class:`~datadrive.compute.Engine`; each worker holds one shard
at a time, so peak memory follows the shard size, not the dataset size. A
shard is written to a temporary folder and renamed when whole, so a killed
build keeps every finished shard and redoes only the shards that were in
flight (one per worker).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datadrive.compute.engines import Engine, InlineEngine, ProcessPoolEngine, Progress
from datadrive.curate.columns import MAP_COLUMNS, SCENARIO_COLUMNS, TRACK_COLUMNS, shard_arrays
from datadrive.curate.dataset import DatasetManifest
from datadrive.curate.features import (
    FEATURE_GROUPS,
    FeatureConfig,
    ScenarioArrays,
    ScenarioFeatures,
    SkippedScenario,
    featurize_arrays,
)
from datadrive.errors import CacheVersionError, DatasetError, FeatureCacheError

if TYPE_CHECKING:
    from datadrive.lake import Lake, LakeConfig, Principal, Snapshot

__all__ = [
    "CACHE_FORMAT",
    "DEFAULT_SHARD_SIZE",
    "GROUP_COLUMNS",
    "INLINE_BELOW",
    "CacheReport",
    "ShardResult",
    "build_cache",
    "cache_dir_for",
    "read_cache_manifest",
    "shard_groups",
]

CACHE_FORMAT = "datadrive-feature-cache/1"

DEFAULT_SHARD_SIZE = 256
"""Scenarios per shard at most, when the caller names no shard size: a worker holds one shard."""

INLINE_BELOW = 128
"""A build of fewer scenarios than this runs in the calling process, whatever the engine.

A process pool first forks its workers and each opens the lake version
(replaying every table's Delta log) before it reads a row; at 100 AV2
scenarios on 2 busy cores that start-up cost more than the work it split
(the build took 1.7-2.5 s on a 2-worker pool against 0.8-1.3 s in the calling
process, which already has the snapshot open; load 6). Above this size the
pool's parallel reads and featurisation win.
"""

GROUP_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "samples": (
        "window_scenario",
        "window_t0",
        "window_t0_ns",
        "window_origin_xy_m",
        "window_agent_offsets",
        "sample_window",
        "sample_agent",
        "sample_kind",
        "sample_split",
        "neighbor_offsets",
        "neighbor_rows",
        "scenario_keys",
        "sample_track_ids",
    ),
    "agents": (
        "agent_xy_m",
        "agent_heading_rad",
        "agent_velocity_mps",
        "agent_valid",
        "agent_type",
        "agent_size_m",
        "agent_track",
    ),
    "future": ("future_xy_m", "future_heading_rad", "future_valid"),
    "map": (
        "window_map",
        "map_origin_xy_m",
        "map_keys",
        "segment_xy_m",
        "segment_kind",
        "segment_map",
        "segment_offsets",
        "segment_rows",
    ),
}
"""The columns (``.npy`` files) of each group."""

_COMPLETE = "_complete.json"


def cache_dir_for(lake: Lake, manifest: DatasetManifest, config: FeatureConfig) -> Path:
    """Where a dataset version's cache lives: under its region's root, beside the dataset.

    Residency: the folder is made through :meth:`Lake.local_derived_dir`
    from a snapshot of the dataset's own region and lake version, so it
    cannot be materialised in another region (refused and audited).
    """
    snap = lake.snapshot(manifest.region, manifest.lake_version)
    name = f"{manifest.name}/v{manifest.version:04d}/{config.fingerprint()}"
    return lake.local_derived_dir(manifest.region, "features", name, derived_from=snap)


@dataclass(frozen=True)
class _ShardTask:
    """One shard to build (picklable: it travels to process-pool and Ray workers)."""

    lake_config: LakeConfig
    principal: Principal
    region: str
    lake_version: int
    keys: tuple[tuple[str, str, str], ...]
    splits: tuple[int, ...]
    config: FeatureConfig
    groups: tuple[str, ...]
    directory: str
    name: str
    batches: tuple[str, ...] = ()
    build_id: str = ""
    reader_threads: bool = False


@dataclass(frozen=True)
class ShardResult:
    """What a shard build wrote.

    Attributes:
        name: The shard's folder name.
        groups: Group -> version now complete in the shard.
        scenarios: Scenarios read.
        samples: Samples written.
        windows: Windows written.
        bytes: Bytes of its column files.
        skipped: Scenarios that gave no sample, with the reason.
        resampled: Scenarios resampled to the feature rate.
    """

    name: str
    groups: Mapping[str, int]
    scenarios: int
    samples: int
    windows: int
    bytes: int
    skipped: tuple[SkippedScenario, ...] = ()
    resampled: tuple[str, ...] = ()


@dataclass(frozen=True)
class CacheReport:
    """A cache build.

    Attributes:
        path: The cache folder.
        shards: Shards in the plan.
        built: Shards written (or given new groups) by this build.
        reused: Shards already complete.
        failed: Shards that failed, with the reason.
        samples: Samples in the cache.
        bytes: Bytes of every column file.
        skipped: Scenarios that gave no sample.
        resampled: Scenarios resampled.
        seconds: Wall time of this build.
    """

    path: Path
    shards: int
    built: int
    reused: int
    failed: tuple[str, ...]
    samples: int
    bytes: int
    skipped: tuple[SkippedScenario, ...]
    resampled: int
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.failed


def _keys_digest(keys: Iterable[tuple[str, str, str]]) -> str:
    h = hashlib.sha256()
    for k in keys:
        h.update("\0".join(k).encode() + b"\n")
    return h.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def read_cache_manifest(path: Path) -> dict[str, Any]:
    """The plan of the cache at ``path``.

    Raises:
        FeatureCacheError: if there is no readable cache there.
    """
    try:
        doc: dict[str, Any] = json.loads((path / "cache.json").read_text())
    except FileNotFoundError:
        raise FeatureCacheError(
            f"{path}: no feature cache here (build it: datadrive dataset cache)"
        ) from None
    except (OSError, ValueError) as exc:
        raise FeatureCacheError(f"{path}/cache.json: unreadable ({exc})") from exc
    if doc.get("format") != CACHE_FORMAT:
        raise FeatureCacheError(
            f"{path}: cache format {doc.get('format')!r}; this datadrive reads {CACHE_FORMAT}"
        )
    return doc


def shard_groups(directory: Path) -> dict[str, int]:
    """Group -> version of the groups complete in a shard (empty if the shard is not there)."""
    try:
        doc = json.loads((directory / _COMPLETE).read_text())
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except (OSError, ValueError) as exc:
        raise FeatureCacheError(f"{directory}/{_COMPLETE}: unreadable ({exc})") from exc
    return {str(k): int(v) for k, v in doc.get("groups", {}).items()}


def _columns(features: ScenarioFeatures, splits: Sequence[int]) -> dict[str, np.ndarray]:
    """Every column of a shard, by name."""
    out = {
        name: getattr(features, name)
        for cols in GROUP_COLUMNS.values()
        for name in cols
        if name != "sample_split"
    }
    scen_split = np.asarray(splits, dtype=np.uint8)
    out["sample_split"] = (
        scen_split[features.window_scenario[features.sample_window]]
        if features.num_samples
        else np.zeros(0, dtype=np.uint8)
    )
    return out


# a worker keeps the snapshot of the build it works for: opening a lake version replays every
# table's Delta log (a few hundred ms), which every shard after the first would pay again
_KEPT: dict[str, Snapshot] = {}


def _shard_snapshot(task: _ShardTask) -> Snapshot:
    """The snapshot a shard reads, opened once per build in each worker process."""
    from datadrive.lake import Lake

    kept = _KEPT.get(task.build_id) if task.build_id else None
    if kept is not None:
        return kept
    snap = Lake(task.lake_config, task.principal).snapshot(task.region, task.lake_version)
    _KEPT.clear()  # one build at a time per worker: nothing outlives the next build
    if task.build_id:
        _KEPT[task.build_id] = snap
    return snap


def _read_arrays(snap: Snapshot, task: _ShardTask) -> list[ScenarioArrays]:
    """The shard's scenarios as arrays, in its key order, from the pinned snapshot.

    Each table is read once per shard (one audited read per table), only
    the columns the features use (:mod:`datadrive.curate.columns`), and
    the scenarios' ingest batch ids (when the plan knows them) prune the
    files of all three tables by the Delta statistics, so a shard opens the
    files of its own batches, not every file of the table: building a cache
    costs the dataset's size, not the lake's.
    """
    import pyarrow as pa
    import pyarrow.dataset as pads

    ids = sorted({k[2] for k in task.keys})
    sources = sorted({k[1] for k in task.keys})
    flt = pads.field("scenario_id").isin(ids) & pads.field("source").isin(sources)
    if task.batches:
        flt = flt & pads.field("batch_id").isin(list(task.batches))

    def read(name: str, columns: Sequence[str], where: pads.Expression) -> pa.Table:
        # one audited read per table; one thread when the engine runs shards side by side (a
        # reader's threads only fight the other workers for the cores, measured 2x slower on 2 busy
        # cores); the reader's threads when the build runs alone in the caller's process
        return snap.dataset(name).to_table(
            columns=list(columns), filter=where, use_threads=task.reader_threads
        )

    rows = read("scenarios", SCENARIO_COLUMNS, flt & pads.field("telemetry_id").is_null())
    tracks = read("tracks", TRACK_COLUMNS, flt)
    maps = read("map_features", MAP_COLUMNS, flt)
    try:
        return shard_arrays(task.keys, rows, tracks, maps)
    except DatasetError as exc:
        raise DatasetError(
            f"{exc} in lake version {task.lake_version}; erased since the dataset was built?"
        ) from exc


def _build_shard(task: _ShardTask) -> ShardResult:
    """Read a shard's scenarios from the lake, featurise them, write the requested groups."""
    arrays = _read_arrays(_shard_snapshot(task), task)
    features = featurize_arrays(arrays, task.config, keys=["/".join(k) for k in task.keys])
    del arrays
    columns = _columns(features, task.splits)
    directory = Path(task.directory)
    shard = directory / task.name
    existing = shard_groups(shard)
    if existing and "samples" in existing and "samples" not in task.groups:
        # adding groups to a shard: its samples must be the ones this code computes
        for name in GROUP_COLUMNS["samples"]:
            on_disk = np.load(shard / f"{name}.npy", mmap_mode="r")
            if not np.array_equal(on_disk, columns[name]):
                raise CacheVersionError(
                    f"{shard}: its samples differ from what this featuriser computes ({name}); "
                    "rebuild the whole cache (--rebuild)"
                )
    written: dict[str, int] = dict(existing)
    if not existing:
        tmp = directory / f".{task.name}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        for group in task.groups:
            for name in GROUP_COLUMNS[group]:
                np.save(tmp / f"{name}.npy", columns[name], allow_pickle=False)
            written[group] = FEATURE_GROUPS[group]
        _write_complete(tmp, written, features, task)
        if shard.exists():
            shutil.rmtree(shard)  # an incomplete shard of a killed build
        os.replace(tmp, shard)
    else:
        for group in task.groups:
            for name in GROUP_COLUMNS[group]:
                tmp_file = shard / f".{name}.npy.tmp-{os.getpid()}"
                with tmp_file.open("wb") as fh:
                    np.save(fh, columns[name], allow_pickle=False)
                os.replace(tmp_file, shard / f"{name}.npy")
            written[group] = FEATURE_GROUPS[group]
        _write_complete(shard, written, features, task)
    size = sum(p.stat().st_size for p in shard.glob("*.npy"))
    return ShardResult(
        name=task.name,
        groups=written,
        scenarios=len(task.keys),
        samples=features.num_samples,
        windows=features.num_windows,
        bytes=size,
        skipped=features.skipped,
        resampled=features.resampled,
    )


def _write_complete(
    directory: Path, groups: Mapping[str, int], features: ScenarioFeatures, task: _ShardTask
) -> None:
    doc = {
        "groups": dict(groups),
        "scenarios": len(task.keys),
        "samples": features.num_samples,
        "windows": features.num_windows,
        "keys_sha256": _keys_digest(task.keys),
        "skipped": [[s.source, s.scenario_id, s.reason] for s in features.skipped],
        "resampled": list(features.resampled),
    }
    _atomic_write(directory / _COMPLETE, json.dumps(doc).encode())


def build_cache(
    lake: Lake,
    manifest: DatasetManifest,
    config: FeatureConfig,
    *,
    directory: Path | None = None,
    engine: Engine | None = None,
    shard_size: int | None = None,
    groups: Sequence[str] | None = None,
    rebuild: bool = False,
    progress: Callable[[Progress], None] | None = None,
    inline_below: int = INLINE_BELOW,
) -> CacheReport:
    """Build (or finish, or extend) the feature cache of a dataset version.

    Args:
        lake: The lake, as the principal building the cache.
        manifest: The dataset version.
        config: The feature config (its fingerprint names the cache).
        directory: Where the cache goes (default :func:`cache_dir_for`).
        engine: Where shards are built (default inline).
        shard_size: Scenarios per shard. Default: the shard size of the
            cache already in ``directory`` (a resumed or extended build keeps
            its plan), else :data:`DEFAULT_SHARD_SIZE` or fewer, so that a
            process pool gets at least one shard per worker (100 scenarios
            on 2 workers: 2 shards of 50, not 1 shard that leaves a worker idle).
        groups: Groups to have in every shard (default: all of
            :data:`~datadrive.curate.features.FEATURE_GROUPS`). Groups
            already complete at the current version are not rebuilt.
        rebuild: Rebuild groups written by another code version (and, for
            ``samples``, the whole shard) instead of refusing.
        progress: Called after each shard.
        inline_below: Build in the calling process, not on ``engine``, when
            fewer scenarios than this are to be featurised (see
            :data:`INLINE_BELOW`; 0: always use ``engine``). A small build
            without a shard size is then one shard.

    Raises:
        CacheVersionError: if the cache has groups written by another
            version and ``rebuild`` is false.
        FeatureCacheError: if ``directory`` holds a cache of another plan.
    """
    t_start = time.perf_counter()
    want = tuple(groups or FEATURE_GROUPS)
    unknown = set(want) - set(FEATURE_GROUPS)
    if unknown:
        raise FeatureCacheError(
            f"unknown feature groups {sorted(unknown)}; known: {', '.join(FEATURE_GROUPS)}"
        )
    if "samples" not in want:
        want = ("samples", *want)
    path = directory or cache_dir_for(lake, manifest, config)
    keys = manifest.keys()
    eng = engine or InlineEngine()
    if shard_size is None:
        small = len(keys) < inline_below
        shard_size = _default_shard_size(path, len(keys), InlineEngine() if small else eng)
    if shard_size < 1:
        raise FeatureCacheError("shard_size must be at least 1")
    path.mkdir(parents=True, exist_ok=True)
    split_names = list(manifest.split.fractions)
    split_code = {n: i for i, n in enumerate(split_names)}
    splits = [split_code[s] for s in manifest.splits]
    plan: list[dict[str, Any]] = [
        {
            "name": f"shard-{i:05d}",
            "first": start,
            "count": len(keys[start : start + shard_size]),
            "keys_sha256": _keys_digest(keys[start : start + shard_size]),
        }
        for i, start in enumerate(range(0, len(keys), shard_size))
    ]
    doc = {
        "format": CACHE_FORMAT,
        "dataset": {
            "name": manifest.name,
            "version": manifest.version,
            "region": manifest.region,
            "lake_version": manifest.lake_version,
            "ids_sha256": manifest.ids_digest(),
        },
        "config": config.as_json(),
        "fingerprint": config.fingerprint(),
        "shard_size": shard_size,
        "splits": split_names,
        "shards": plan,
    }
    if (path / "cache.json").exists():
        old = read_cache_manifest(path)
        same = all(old.get(k) == doc[k] for k in ("dataset", "fingerprint", "shard_size", "shards"))
        if not same:
            if not rebuild:
                raise FeatureCacheError(
                    f"{path} holds a cache of another dataset version, config or shard size; "
                    "rebuild it (--rebuild) or choose another folder"
                )
            for d in path.glob("shard-*"):
                shutil.rmtree(d)
    _atomic_write(path / "cache.json", json.dumps(doc, indent=1).encode())
    tasks: list[_ShardTask] = []
    reused = 0
    for shard in plan:
        have = shard_groups(path / shard["name"])
        stale = {g for g, v in have.items() if g in FEATURE_GROUPS and v != FEATURE_GROUPS[g]}
        if stale and not rebuild:
            g = sorted(stale)[0]
            raise CacheVersionError(
                f"{path / shard['name']}: group {g} was written by featuriser version {have[g]}, "
                "this datadrive "
                f"has version {FEATURE_GROUPS[g]}; rebuild it (datadrive dataset cache --rebuild)"
            )
        if "samples" in stale:
            shutil.rmtree(path / shard["name"])
            have = {}
        todo = tuple(g for g in want if have.get(g) != FEATURE_GROUPS[g])
        if not todo:
            reused += 1
            continue
        first, count = int(shard["first"]), int(shard["count"])
        tasks.append(
            _ShardTask(
                lake_config=lake.config,
                principal=lake.principal,
                region=manifest.region,
                lake_version=manifest.lake_version,
                keys=tuple(keys[first : first + count]),
                splits=tuple(splits[first : first + count]),
                config=config,
                groups=todo,
                directory=str(path),
                name=str(shard["name"]),
            )
        )
    if tasks:
        snap = lake.snapshot(manifest.region, manifest.lake_version)
        # the dataset recorded where its scenarios' rows are (its batches); older ones did not
        batch_of = (
            {
                (t or "", s_, i): b
                for t, s_, i, b in zip(
                    manifest.tenants, manifest.sources, manifest.scenario_ids, manifest.batches, strict=True
                )
            }
            if manifest.batches
            else _batch_ids(snap, [k for t in tasks for k in t.keys])
        )
        build_id = f"{os.getpid()}-{time.time_ns()}"
        # shards built in this process (an inline engine) read through this open snapshot
        _KEPT.clear()
        _KEPT[build_id] = snap
        tasks = [replace(t, batches=_shard_batches(t.keys, batch_of), build_id=build_id) for t in tasks]
    if sum(len(t.keys) for t in tasks) < inline_below:
        eng = InlineEngine()  # the pool's start-up would cost more than the work (INLINE_BELOW)
    if isinstance(eng, InlineEngine):
        # one shard at a time in this process: the table reads may use every core
        tasks = [replace(t, reader_threads=True) for t in tasks]
    failed: list[str] = []
    for outcome in eng.imap(partial(_build_shard), tasks, progress=progress):
        if outcome.failure is not None:
            failed.append(
                f"{tasks[outcome.index].name}: {outcome.failure.error_type}: {outcome.failure.message}"
            )
    if tasks:
        _KEPT.pop(tasks[0].build_id, None)  # an inline build kept it in this process: let it go
    for tmp in path.glob(".shard-*.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    totals = _totals(path, plan)
    lake.audit_event(
        manifest.region,
        "derive",
        f"derived/features/{manifest.name}/v{manifest.version:04d}/{config.fingerprint()}",
        lake_version=manifest.lake_version,
        outcome="ok" if not failed else "failed",
        detail={"shards": len(plan), "built": len(tasks) - len(failed), "samples": totals["samples"]},
    )
    return CacheReport(
        path=path,
        shards=len(plan),
        built=len(tasks) - len(failed),
        reused=reused,
        failed=tuple(failed),
        samples=int(totals["samples"]),
        bytes=int(totals["bytes"]),
        skipped=tuple(totals["skipped"]),
        resampled=int(totals["resampled"]),
        seconds=time.perf_counter() - t_start,
    )


def _default_shard_size(path: Path, scenarios: int, engine: Engine) -> int:
    """The plan's shard size when the caller gives none (see :func:`build_cache`)."""
    try:
        return int(read_cache_manifest(path)["shard_size"])
    except (FeatureCacheError, KeyError, TypeError, ValueError):
        pass
    workers = engine.workers if isinstance(engine, ProcessPoolEngine) else 1
    return max(1, min(DEFAULT_SHARD_SIZE, -(-scenarios // workers)))


def _batch_ids(snap: Snapshot, keys: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    """Each scenario's ingest batch id, read once for the whole build (four narrow columns)."""
    import pyarrow.dataset as pads

    rows = snap.table(
        "scenarios",
        columns=["tenant", "source", "scenario_id", "batch_id"],
        filter=pads.field("scenario_id").isin(sorted({k[2] for k in keys}))
        & pads.field("telemetry_id").is_null(),
    ).to_pydict()
    return {
        (t or "", s, i): b
        for t, s, i, b in zip(
            rows["tenant"], rows["source"], rows["scenario_id"], rows["batch_id"], strict=True
        )
        if b is not None
    }


def _shard_batches(
    keys: Sequence[tuple[str, str, str]], batch_of: Mapping[tuple[str, str, str], str]
) -> tuple[str, ...]:
    """The batch ids of a shard's scenarios; none (no pruning) if one of them has no known batch."""
    batches = {batch_of.get((k[0] or "", k[1], k[2])) for k in keys}
    return () if None in batches else tuple(sorted(b for b in batches if b is not None))


def _totals(path: Path, plan: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    samples = size = resampled = 0
    skipped: list[SkippedScenario] = []
    for shard in plan:
        d = path / str(shard["name"])
        try:
            doc = json.loads((d / _COMPLETE).read_text())
        except (OSError, ValueError):
            continue
        samples += int(doc["samples"])
        resampled += len(doc.get("resampled", []))
        skipped += [SkippedScenario(i, s, r) for s, i, r in doc.get("skipped", [])]
        size += sum(p.stat().st_size for p in d.glob("*.npy"))
    return {"samples": samples, "bytes": size, "skipped": skipped, "resampled": resampled}
