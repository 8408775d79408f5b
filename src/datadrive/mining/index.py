"""Mining's tables in the lake: the per-state index, the events, the bookkeeping that keeps both incremental.

Three derived per-scenario tables (declared in :mod:`datadrive.lake.schema`,
kept by the lake like its own: versioned, time-travelled, tenant-filtered,
audited, erased with their scenarios, visible to ``datadrive sql``):

* ``mining_states``: one row per valid ``(scenario, track, step)`` with the
  kinematics of :mod:`datadrive.mining.kinematics` and the map context of
  :mod:`datadrive.mining.map_context`, computed once at index time. Unknown
  values are ``NULL`` (never NaN). Rows are partitioned by tenant and
  source (a query on a source reads only its files) and, inside each
  batch's file, ordered by place, then scenario, track-major, step-minor
  (:func:`cluster_states`): a spatial query skips the row groups of other
  places by their min/max statistics, and a window over a track's steps
  needs no sort. ``datadrive lake optimize`` puts the whole table in that
  order across its files (the :class:`~datadrive.lake.schema.Clustering`
  of its spec; :mod:`datadrive.lake.clustering`).
* ``events``: one row per tagged :class:`~datadrive.mining.events.Event`,
  with its tagger version.
* ``mining_index``: one row per scenario and indexing run: the feature and
  tagger versions it was processed with, and which taggers were skipped.

:func:`index_region` brings a region up to date: it finds the scenarios of
the latest lake version whose states were not computed with the current
:data:`FEATURE_VERSION`, or whose events were not tagged with the current
:func:`~datadrive.mining.events.tagger_version`, computes what is missing on
a compute engine (inline, process pool or Ray), and appends the rows of
every ``commit_scenarios`` scenarios to the three tables in **one** lake version
(:meth:`datadrive.lake.Lake.append_derived_tables`). Running it again does
nothing until new scenarios are ingested or a version changes.

Notation:
    A: tracks. T: steps. N: valid states.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datadrive.compute import Engine, InlineEngine, UnitFailure
from datadrive.core.scenario import ObjectType, Scenario
from datadrive.lake.clustering import place_codes
from datadrive.lake.schema import EVENTS, MINING_INDEX, MINING_STATES, TableSpec
from datadrive.mining.context import FeatureConfig, ScenarioContext
from datadrive.mining.events import TaggerConfig, TagReport, tag_scenario, tagger_version

__all__ = [
    "EVENT_SCHEMA",
    "FEATURE_VERSION",
    "INDEX_SCHEMA",
    "PLACE_CELL_M",
    "STATE_SCHEMA",
    "IndexReport",
    "cluster_states",
    "current_events",
    "event_table",
    "index_region",
    "pending_keys",
    "state_table",
]

FEATURE_VERSION = "1"
"""Bumped whenever the per-state features change; stale scenarios are re-indexed."""

Key = tuple[str, str, str]

_LAKE_FILLS = ("batch_id", "derived_at", "derived_from_version")


def _schema(spec: TableSpec) -> pa.Schema:
    """A derived table's columns without those the lake fills at commit."""
    return pa.schema([f for f in spec.schema if f.name not in _LAKE_FILLS])


STATE_SCHEMA = _schema(MINING_STATES)
EVENT_SCHEMA = _schema(EVENTS)
INDEX_SCHEMA = _schema(MINING_INDEX)

_TYPE_NAMES = np.array([t.name.lower() for t in ObjectType] + ["other"] * (256 - len(ObjectType)))


def _f32(values: np.ndarray) -> pa.Array:
    """float32 column with NaN (and inf) as NULL."""
    v = np.asarray(values, dtype=np.float32)
    return pa.array(v, type=pa.float32(), mask=~np.isfinite(v))


def _keys(scenario: Scenario, n: int) -> dict[str, pa.Array]:
    return {
        "tenant": pa.array([scenario.metadata.tenant or ""] * n, pa.string()),
        "source": pa.array([scenario.source] * n, pa.string()),
        "scenario_id": pa.array([scenario.scenario_id] * n, pa.string()),
    }


def state_table(
    scenario: Scenario, context: ScenarioContext | None = None, *, feature_version: str | None = None
) -> pa.Table:
    """One row per valid state of ``scenario`` (the ``mining_states`` layout, lake columns aside).

    Args:
        scenario: A validated scenario.
        context: Its :class:`ScenarioContext` (features computed on demand).
        feature_version: Recorded in every row (default: :data:`FEATURE_VERSION`, read when called).

    Returns:
        Rows in track-major, step-minor order; unknown values NULL.
    """
    ctx = context or ScenarioContext(scenario)
    tr = scenario.tracks
    rows, cols = np.nonzero(tr.valid)
    n = int(rows.shape[0])
    k = ctx.kinematics
    m = ctx.map
    out: dict[str, pa.Array] = _keys(scenario, n)
    ego = np.zeros(n, dtype=bool) if scenario.ego_index is None else rows == scenario.ego_index
    out.update(
        {
            "track_index": pa.array(rows.astype(np.int32)),
            "track_id": pa.array(tr.track_ids[rows].astype(object), pa.string()),
            "object_type": pa.array(tr.object_type[rows].astype(np.int8)),
            "object_type_name": pa.array(_TYPE_NAMES[tr.object_type[rows]].astype(object), pa.string()),
            "category": pa.array(tr.category[rows].astype(object), pa.string()),
            "is_ego": pa.array(ego),
            "step": pa.array(cols.astype(np.int32)),
            "timestamp_ns": pa.array(scenario.timestamps_ns[cols]),
            "x_m": pa.array(tr.xy_m[rows, cols, 0]),
            "y_m": pa.array(tr.xy_m[rows, cols, 1]),
            "z_m": _f32(tr.z_m[rows, cols]),
            "heading_rad": _f32(tr.heading_rad[rows, cols]),
            "vx_mps": _f32(k.vx_mps[rows, cols]),
            "vy_mps": _f32(k.vy_mps[rows, cols]),
            "speed_mps": _f32(k.speed_mps[rows, cols]),
            "accel_mps2": _f32(k.accel_mps2[rows, cols]),
            "lat_accel_mps2": _f32(k.lat_accel_mps2[rows, cols]),
            "jerk_mps3": _f32(k.jerk_mps3[rows, cols]),
            "yaw_rate_rps": _f32(k.yaw_rate_rps[rows, cols]),
        }
    )
    if m is not None:
        lane = m.lane[rows, cols]
        ids = np.where(lane >= 0, m.lanes.feature_ids[np.maximum(lane, 0)] if m.lanes.num_lanes else "", "")
        out["lane_id"] = pa.array(ids.astype(object), pa.string(), mask=lane < 0)
        out["lane_lateral_m"] = _f32(m.lane_lateral_m[rows, cols])
        out["lane_heading_diff_rad"] = _f32(m.lane_heading_diff_rad[rows, cols])
        out["in_drivable_area"] = pa.array(m.in_drivable_area[rows, cols])
        out["in_intersection"] = pa.array(m.in_intersection[rows, cols])
        out["in_crosswalk"] = pa.array(m.in_crosswalk[rows, cols])
        out["next_intersection_m"] = _f32(m.next_intersection_m[rows, cols])
        out["next_crosswalk_m"] = _f32(m.next_crosswalk_m[rows, cols])
        out["next_stop_line_m"] = _f32(m.next_stop_line_m[rows, cols])
        out["speed_limit_mps"] = _f32(m.speed_limit_mps[rows, cols])
    else:  # no map: every map column is unknown
        for name in ("lane_id",):
            out[name] = pa.nulls(n, pa.string())
        for name in ("in_drivable_area", "in_intersection", "in_crosswalk"):
            out[name] = pa.nulls(n, pa.bool_())
        for name in (
            "lane_lateral_m",
            "lane_heading_diff_rad",
            "next_intersection_m",
            "next_crosswalk_m",
            "next_stop_line_m",
            "speed_limit_mps",
        ):
            out[name] = pa.nulls(n, pa.float32())
    out["feature_version"] = pa.array([feature_version or FEATURE_VERSION] * n, pa.string())
    return pa.table(out).select(STATE_SCHEMA.names).cast(STATE_SCHEMA)


def event_table(scenario: Scenario, report: TagReport) -> pa.Table:
    """One row per event of ``report`` (the ``events`` layout, lake columns aside)."""
    ev = report.events
    n = len(ev)
    out = _keys(scenario, n)
    out.update(
        {
            "event_type": pa.array([e.event_type for e in ev], pa.string()),
            "actor_track_id": pa.array([e.actor for e in ev], pa.string()),
            "track_ids": pa.array([list(e.track_ids) for e in ev], pa.list_(pa.string())),
            "start_step": pa.array([e.start_step for e in ev], pa.int32()),
            "end_step": pa.array([e.end_step for e in ev], pa.int32()),
            "start_ns": pa.array([e.start_ns for e in ev], pa.int64()),
            "end_ns": pa.array([e.end_ns for e in ev], pa.int64()),
            "duration_s": pa.array([e.duration_s for e in ev], pa.float64()),
            "severity": pa.array([e.severity for e in ev], pa.float64()),
            "severity_unit": pa.array([e.severity_unit for e in ev], pa.string()),
            "ego_involved": pa.array([e.ego_involved for e in ev], pa.bool_()),
            "details_json": pa.array([json.dumps(dict(e.details), sort_keys=True) for e in ev], pa.string()),
            "tagger_version": pa.array([report.tagger_version] * n, pa.string()),
        }
    )
    return pa.table(out).select(EVENT_SCHEMA.names).cast(EVENT_SCHEMA)


def _picklable(s: Scenario) -> Scenario:
    """``s`` with plain-dict extras (a read-only mapping proxy does not pickle to a worker)."""
    return replace(s, metadata=replace(s.metadata, extras=dict(s.metadata.extras)))


@dataclass(frozen=True)
class _Unit:
    """One batch of work for an engine: the scenarios, and what each needs."""

    scenarios: tuple[Scenario, ...]
    states: tuple[bool, ...]
    events: tuple[bool, ...]
    features: FeatureConfig
    taggers: TaggerConfig


@dataclass(frozen=True)
class _Rows:
    states: pa.Table | None
    events: pa.Table | None
    index: pa.Table
    num_states: int
    num_events: int
    track_steps: int
    skipped: dict[str, int]


PLACE_CELL_M = MINING_STATES.clustering.cell_m if MINING_STATES.clustering else 256.0
"""Side of the grid cells :func:`cluster_states` orders scenarios by (a scenario spans ~100-300 m)."""


def cluster_states(states: pa.Table) -> pa.Table:
    """``mining_states`` rows in the order the lake stores them: by place, then key.

    Scenarios are ordered by the Z-order code of the :data:`PLACE_CELL_M`
    grid cell of their states' mean position (in the scenario's frame), then
    by ``(tenant, source, scenario_id)``; inside a scenario rows stay
    track-major, step-minor. Every batch written is one file per partition,
    so each Parquet row group then covers few places: a spatial query
    (``x_m``/``y_m`` bounds) skips the other groups by their min/max
    statistics, and a scenario's rows stay together (its per-track columns
    compress to runs).
    """
    if states.num_rows == 0:
        return states
    keys = pc.binary_join_element_wise(
        states.column("tenant"), states.column("source"), states.column("scenario_id"), "\x1f"
    )
    encoded = pc.dictionary_encode(keys).combine_chunks()
    scen = encoded.indices.to_numpy().astype(np.int64)
    names = encoded.dictionary
    n = len(names)
    by_key = np.empty(n, dtype=np.int64)
    by_key[pc.sort_indices(names).to_numpy()] = np.arange(n)
    mean = {}
    for c in ("x_m", "y_m"):  # the mean of the known positions, as lake optimize computes it
        v = states.column(c)
        known = np.asarray(pc.is_valid(v).to_numpy(zero_copy_only=False), dtype=np.float64)
        values = np.asarray(pc.fill_null(v, 0.0).to_numpy(), dtype=np.float64)
        total = np.bincount(scen, weights=values, minlength=n)
        seen = np.bincount(scen, weights=known, minlength=n)
        mean[c] = np.where(seen > 0, total / np.maximum(seen, 1.0), np.nan)
    codes = place_codes(mean["x_m"], mean["y_m"], PLACE_CELL_M)
    rank = np.empty(n, dtype=np.int64)
    rank[np.lexsort((by_key, codes))] = np.arange(n)  # one place: by key
    order = np.lexsort(
        (
            states.column("step").to_numpy(),
            states.column("track_index").to_numpy(),
            rank[scen],
        )
    )
    return states.take(pa.array(order))


def _derive(unit: _Unit) -> _Rows:
    """Compute a batch's rows (runs in a worker; module level so it pickles)."""
    states, events, index = [], [], []
    n_states = n_events = cells = 0
    skipped: Counter[str] = Counter()
    version = tagger_version(unit.taggers)
    for s, need_states, need_events in zip(unit.scenarios, unit.states, unit.events, strict=True):
        ctx = ScenarioContext(s, unit.features)
        cells += s.tracks.num_tracks * s.num_steps
        ns = 0
        if need_states:
            t = state_table(s, ctx)
            ns = t.num_rows
            n_states += ns
            states.append(t)
        report = None
        if need_events:
            report = tag_scenario(s, unit.taggers, context=ctx)
            events.append(event_table(s, report))
            n_events += len(report.events)
            skipped.update(report.skipped.keys())
        keys = _keys(s, 1)
        index.append(
            pa.table(
                {
                    **keys,
                    "feature_version": pa.array([FEATURE_VERSION if need_states else None], pa.string()),
                    "tagger_version": pa.array([version if need_events else None], pa.string()),
                    "num_states": pa.array([ns if need_states else None], pa.int64()),
                    "num_events": pa.array([len(report.events) if report else None], pa.int32()),
                    "skipped_taggers": pa.array(
                        [sorted(report.skipped) if report else None], pa.list_(pa.string())
                    ),
                }
            )
        )
    return _Rows(
        states=cluster_states(pa.concat_tables(states)) if states else None,
        events=pa.concat_tables(events) if events else None,
        index=pa.concat_tables(index),
        num_states=n_states,
        num_events=n_events,
        track_steps=cells,
        skipped=dict(skipped),
    )


def pending_keys(snapshot: Any, taggers: TaggerConfig | None = None) -> tuple[list[Key], set[Key], set[Key]]:
    """Every scenario of ``snapshot``, and those whose states / events are not yet current.

    Returns:
        ``(all keys, keys needing states, keys needing events)``.
    """
    from datadrive.mining.api import scenario_keys

    every = [(str(t), s, i) for t, s, i in scenario_keys(snapshot)]
    done = snapshot.table(
        "mining_index", columns=["tenant", "source", "scenario_id", "feature_version", "tagger_version"]
    )
    version = tagger_version(taggers)
    with_states = pc.equal(done.column("feature_version"), FEATURE_VERSION)
    with_events = pc.equal(done.column("tagger_version"), version)

    def keyset(mask: pa.ChunkedArray) -> set[Key]:
        t = done.filter(pc.fill_null(mask, False))
        return set(
            zip(
                t.column("tenant").to_pylist(),
                t.column("source").to_pylist(),
                t.column("scenario_id").to_pylist(),
                strict=True,
            )
        )

    have_states, have_events = keyset(with_states), keyset(with_events)
    return every, {k for k in every if k not in have_states}, {k for k in every if k not in have_events}


@dataclass(frozen=True)
class IndexReport:
    """What :func:`index_region` did.

    Attributes:
        region: The region.
        lake_version_before: The lake version it indexed.
        lake_version_after: The lake version after its last commit.
        scenarios: Scenarios in the region.
        indexed: Scenarios whose states were written.
        tagged: Scenarios whose events were written.
        states: State rows written.
        events: Event rows written.
        track_steps: ``tracks x steps`` cells processed (the tagging workload).
        skipped_taggers: Tagger -> how many scenarios it was skipped on.
        failures: Batches whose computation failed (nothing of theirs was written).
        seconds: Wall time.
    """

    region: str
    lake_version_before: int
    lake_version_after: int
    scenarios: int
    indexed: int
    tagged: int
    states: int
    events: int
    track_steps: int
    skipped_taggers: dict[str, int] = field(default_factory=dict)
    failures: tuple[UnitFailure, ...] = ()
    seconds: float = 0.0


def index_region(
    lake: Any,
    region: str,
    *,
    engine: Engine | None = None,
    features: FeatureConfig | None = None,
    taggers: TaggerConfig | None = None,
    batch_size: int = 32,
    commit_scenarios: int = 512,
    progress: Callable[[int, int], None] | None = None,
) -> IndexReport:
    """Bring ``region``'s mining tables up to date with its latest lake version (see the module docstring).

    Args:
        lake: A :class:`~datadrive.lake.Lake`.
        region: The region (the principal must be allowed to read it).
        engine: Where the features and events are computed (default: inline).
        features: Feature parameters.
        taggers: Tagger thresholds (their digest is the tagger version).
        batch_size: Scenarios per engine unit.
        commit_scenarios: Scenarios per lake version: the rows of consecutive
            units are gathered until they cover this many, then committed
            together (one file per partition; fewer, bigger files than a
            commit per unit, ordered by place across the units). A crash
            loses at most the gathered units' work, never a committed row.
        progress: Called with (scenarios done, scenarios to do).

    Returns:
        An :class:`IndexReport`.
    """
    t0 = time.perf_counter()
    feats = features or FeatureConfig()
    tags = taggers or TaggerConfig()
    eng = engine or InlineEngine()
    snap = lake.snapshot(region)
    every, need_states, need_events = pending_keys(snap, tags)
    todo = [k for k in every if k in need_states or k in need_events]

    def units() -> Iterator[_Unit]:
        for i in range(0, len(todo), batch_size):
            batch = todo[i : i + batch_size]
            wanted = set(batch)
            found = {
                (str(s.metadata.tenant), s.source, s.scenario_id): s
                for s in snap.scenarios(ids=sorted({k[2] for k in batch}))
                if (str(s.metadata.tenant), s.source, s.scenario_id) in wanted
            }
            keys = [k for k in batch if k in found]
            yield _Unit(
                scenarios=tuple(_picklable(found[k]) for k in keys),
                states=tuple(k in need_states for k in keys),
                events=tuple(k in need_events for k in keys),
                features=feats,
                taggers=tags,
            )

    version = snap.version
    totals = Counter[str]()
    skipped: Counter[str] = Counter()
    failures: list[UnitFailure] = []
    pending: list[_Rows] = []
    done = 0

    def commit() -> int:
        """One lake version for the units gathered so far (rows of several units: one file per partition)."""
        states = [r.states for r in pending if r.states is not None and r.states.num_rows]
        events = [r.events for r in pending if r.events is not None and r.events.num_rows]
        tables: dict[str, pa.Table] = {"mining_index": pa.concat_tables([r.index for r in pending])}
        if states:
            tables["mining_states"] = (
                states[0] if len(states) == 1 else cluster_states(pa.concat_tables(states))
            )
        if events:
            tables["events"] = pa.concat_tables(events)
        made = int(lake.append_derived_tables(region, tables, derived_from=snap))
        for rows in pending:
            totals["indexed"] += int(pc.sum(pc.is_valid(rows.index.column("feature_version"))).as_py() or 0)
            totals["tagged"] += int(pc.sum(pc.is_valid(rows.index.column("tagger_version"))).as_py() or 0)
            totals["states"] += rows.num_states
            totals["events"] += rows.num_events
            totals["cells"] += rows.track_steps
            skipped.update(rows.skipped)
        pending.clear()
        return made

    gathered = 0
    for outcome in eng.imap(_derive, units()):
        if outcome.failure is not None or outcome.value is None:
            if outcome.failure is not None:
                failures.append(outcome.failure)
            continue
        pending.append(outcome.value)
        gathered += outcome.value.index.num_rows
        if gathered >= commit_scenarios:
            version = commit()
            gathered = 0
        done += outcome.value.index.num_rows
        if progress is not None:
            progress(done, len(todo))
    if pending:
        version = commit()
    return IndexReport(
        region=region,
        lake_version_before=snap.version,
        lake_version_after=version,
        scenarios=len(every),
        indexed=totals["indexed"],
        tagged=totals["tagged"],
        states=totals["states"],
        events=totals["events"],
        track_steps=totals["cells"],
        skipped_taggers=dict(skipped),
        failures=tuple(failures),
        seconds=time.perf_counter() - t0,
    )


def current_events(snapshot: Any, *, taggers: TaggerConfig | None = None) -> pa.Table:
    """The ``events`` rows of the current tagger version (older versions' rows stay in the table)."""
    import pyarrow.dataset as pds

    version = tagger_version(taggers)
    return snapshot.table("events", filter=pds.field("tagger_version") == version)
