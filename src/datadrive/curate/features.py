"""Agent-centric forecasting features, computed once per scenario, vectorised.

A *window* is one cut of a scenario at a current step ``t0``: ``H`` steps
of history (``t0`` included) and ``F`` steps of future. A *sample* is one
target agent of one window. What is stored is designed to be small and
to turn into the target's frame cheaply at batch time
(:mod:`datadrive.curate.loader`):

* per window, every agent seen in the history, once, relative to a window
  origin (float32 positions, headings, velocities, a valid mask, type, size);
* per map, its polylines once, cut into segments of at most
  ``segment_length_m`` and resampled to ``segment_points`` points, relative
  to a map origin (never once per sample);
* per sample, the target's row, the rows of its nearest agents and map
  segments (int32 indices), and its future (supervision).

The target's frame (origin at its position at ``t0``, x along its heading,
via :mod:`datadrive.core.frames`) is applied by the loader, so one stored
window serves every target in it.

Sources at another rate than ``FeatureConfig.rate_hz`` are resampled to it
only when the config says so (``resample=True``, linear interpolation on the
real timestamps, headings unwrapped first); otherwise they are skipped with
the reason, never converted silently.

Notation:
    W: windows. A: agents, all windows together. S: samples.
    H: history steps (``t0`` last). F: future steps. G: map segments.
    Q: points per segment. N: neighbours of a sample. L: segments of a sample.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from datadrive.core.frames import wrap_angle
from datadrive.core.scenario import MapFeatureKind, MapFeatures, ObjectType, Scenario, Tracks
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt

__all__ = [
    "AV2_FEATURES",
    "FEATURE_GROUPS",
    "WOMD_FEATURES",
    "FeatureConfig",
    "ScenarioArrays",
    "ScenarioFeatures",
    "SkippedScenario",
    "TargetKind",
    "concat_features",
    "featurize_arrays",
    "featurize_scenario",
    "map_segments",
    "resample_scenario",
]

FEATURE_GROUPS: Mapping[str, int] = {
    "samples": 1,  # windows, targets, neighbours: defines the sample set
    "agents": 1,  # per-window agent histories
    "future": 1,  # the targets' futures (supervision)
    "map": 1,  # map segments and each sample's nearest ones
}
"""Column groups of the feature cache and the version of the code that computes each.

Bump a group's version when its values change: caches built by another
version are refused (:class:`~datadrive.errors.CacheVersionError`) until
rebuilt. ``samples`` decides which samples exist; the other groups can be
added to, or rebuilt in, an existing cache on their own."""


class TargetKind:
    """Why an agent is a target (codes stored per sample)."""

    FOCAL = 0  # AV2 focal track
    REQUIRED = 1  # AV2 scored track, WOMD tracks_to_predict
    EGO = 2  # the recording vehicle
    OTHER = 3  # any other agent that meets the criteria

    NAMES = ("focal", "required", "ego", "other")


_DEFAULT_MAP_KINDS = (
    int(MapFeatureKind.LANE_CENTERLINE),
    int(MapFeatureKind.ROAD_EDGE),
    int(MapFeatureKind.CROSSWALK),
    int(MapFeatureKind.STOP_LINE),
)


@dataclass(frozen=True)
class FeatureConfig:
    """How scenarios become samples.

    Attributes:
        rate_hz: The feature rate; sources at other rates need ``resample``.
        history_steps: H, the current step included (AV2: 50 = 5 s at 10 Hz).
        future_steps: F (AV2: 60 = 6 s).
        window_stride_steps: Steps between the current steps of successive
            windows of a long scenario. Sources that name their current step
            (AV2, WOMD) get one window there when it fits.
        max_targets_per_window: Targets per window: the source's own
            (focal, scored, to-predict, ego) first, then others by distance
            moved.
        target_types: :class:`ObjectType` codes that may be targets.
        min_history_valid: Valid history steps a target needs.
        require_full_future: Targets must be observed at every future step
            (the AV2 definition of a scored track); otherwise at ``t0 + F``.
        max_neighbors: Nearest other agents kept per sample.
        neighbor_radius_m: And within this distance of the target at ``t0``.
        map_kinds: :class:`MapFeatureKind` codes turned into segments.
        segment_length_m: Polylines are cut into pieces at most this long.
        segment_points: Points per piece (Q).
        max_segments: Nearest segments kept per sample.
        map_radius_m: And within this distance of the target at ``t0``.
        resample: Resample sources at another rate (explicit; off by default).
        rate_tolerance: Relative rate difference still taken as equal.
    """

    rate_hz: float = 10.0
    history_steps: int = 50
    future_steps: int = 60
    window_stride_steps: int = 50
    max_targets_per_window: int = 8
    target_types: tuple[int, ...] = (
        int(ObjectType.VEHICLE),
        int(ObjectType.CYCLIST),
        int(ObjectType.PEDESTRIAN),
    )
    min_history_valid: int = 2
    require_full_future: bool = True
    max_neighbors: int = 32
    neighbor_radius_m: float = 80.0
    map_kinds: tuple[int, ...] = _DEFAULT_MAP_KINDS
    segment_length_m: float = 15.0
    segment_points: int = 8
    max_segments: int = 96
    map_radius_m: float = 60.0
    resample: bool = False
    rate_tolerance: float = 0.02

    def __post_init__(self) -> None:
        for name in ("history_steps", "future_steps", "window_stride_steps", "segment_points"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.history_steps < 2:
            raise ValueError("history_steps must be at least 2 (a velocity needs two states)")
        if self.rate_hz <= 0:
            raise ValueError("rate_hz must be positive")

    @property
    def dt_s(self) -> float:
        return 1.0 / self.rate_hz

    def as_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> FeatureConfig:
        known = {f for f in cls.__dataclass_fields__}
        kwargs: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in doc.items() if k in known
        }
        return cls(**kwargs)

    def fingerprint(self) -> str:
        """A short hash of every setting: caches of different configs never mix."""
        return hashlib.sha256(json.dumps(self.as_json(), sort_keys=True).encode()).hexdigest()[:12]


AV2_FEATURES = FeatureConfig()
"""Argoverse 2 motion forecasting horizons: 5 s of history and 6 s of future at 10 Hz."""

WOMD_FEATURES = replace(FeatureConfig(), history_steps=11, future_steps=80, window_stride_steps=40)
"""Waymo Open Motion horizons: 1.1 s of history (10 steps and the current one) and 8 s of future at 10 Hz."""


@dataclass(frozen=True)
class SkippedScenario:
    """A scenario that gave no sample, and why."""

    scenario_id: str
    source: str
    reason: str


@dataclass(frozen=True)
class ScenarioFeatures:
    """Features of one or more scenarios (a shard is their concatenation).

    Window, agent, segment and map indices are local to this object; the
    ``*_row`` arrays point into its own tables.

    Attributes:
        window_scenario: ``(W,)`` int32 index into ``scenario_keys``.
        window_t0: ``(W,)`` int32 the current step (at the feature rate).
        window_t0_ns: ``(W,)`` int64 timestamp of the current step.
        window_origin_xy_m: ``(W, 2)`` float64, world position that window coordinates are relative to.
        window_map: ``(W,)`` int32 index into ``map_origin_xy_m``; -1 without a map.
        window_agent_offsets: ``(W + 1,)`` int64 the window's rows of the agent arrays.
        agent_xy_m: ``(A, H, 2)`` float32 relative to the window origin; 0 where invalid.
        agent_heading_rad: ``(A, H)`` float32.
        agent_velocity_mps: ``(A, H, 2)`` float32 (finite differences where the source has none).
        agent_valid: ``(A, H)`` bool.
        agent_type: ``(A,)`` uint8 :class:`ObjectType`.
        agent_size_m: ``(A, 2)`` float32 length, width (0 when unknown).
        agent_track: ``(A,)`` int32 track index in its scenario.
        sample_window: ``(S,)`` int32.
        sample_agent: ``(S,)`` int32 the target's agent row.
        sample_kind: ``(S,)`` uint8 :class:`TargetKind`.
        neighbor_offsets: ``(S + 1,)`` int64.
        neighbor_rows: ``(sum N,)`` int32 agent rows, nearest first.
        future_xy_m: ``(S, F, 2)`` float32 relative to the window origin.
        future_heading_rad: ``(S, F)`` float32.
        future_valid: ``(S, F)`` bool.
        map_origin_xy_m: ``(M, 2)`` float64.
        map_keys: ``(M,)`` str, what identifies a map (the lake's map id or a content hash).
        segment_xy_m: ``(G, Q, 2)`` float32 relative to their map's origin.
        segment_kind: ``(G,)`` uint8 :class:`MapFeatureKind`.
        segment_map: ``(G,)`` int32.
        segment_offsets: ``(S + 1,)`` int64.
        segment_rows: ``(sum L,)`` int32 segment rows, nearest first.
        scenario_keys: ``(n,)`` str ``source/scenario_id``.
        sample_track_ids: ``(S,)`` str.
        skipped: Scenarios that gave no sample.
        resampled: Scenarios that were resampled (``source/scenario_id``).
    """

    window_scenario: NDArrayInt
    window_t0: NDArrayInt
    window_t0_ns: NDArrayInt
    window_origin_xy_m: NDArrayFloat
    window_map: NDArrayInt
    window_agent_offsets: NDArrayInt
    agent_xy_m: np.ndarray
    agent_heading_rad: np.ndarray
    agent_velocity_mps: np.ndarray
    agent_valid: NDArrayBool
    agent_type: np.ndarray
    agent_size_m: np.ndarray
    agent_track: NDArrayInt
    sample_window: NDArrayInt
    sample_agent: NDArrayInt
    sample_kind: np.ndarray
    neighbor_offsets: NDArrayInt
    neighbor_rows: NDArrayInt
    future_xy_m: np.ndarray
    future_heading_rad: np.ndarray
    future_valid: NDArrayBool
    map_origin_xy_m: NDArrayFloat
    map_keys: np.ndarray
    segment_xy_m: np.ndarray
    segment_kind: np.ndarray
    segment_map: NDArrayInt
    segment_offsets: NDArrayInt
    segment_rows: NDArrayInt
    scenario_keys: np.ndarray
    sample_track_ids: np.ndarray
    skipped: tuple[SkippedScenario, ...] = ()
    resampled: tuple[str, ...] = ()

    @property
    def num_samples(self) -> int:
        return int(self.sample_window.shape[0])

    @property
    def num_windows(self) -> int:
        return int(self.window_scenario.shape[0])


@dataclass(frozen=True)
class ScenarioArrays:
    """What the featuriser reads of one scenario: arrays, no Python object per track or point.

    Built from a :class:`Scenario` (:meth:`of`, no copies) or straight from
    the lake's columns, a shard at a time (:func:`datadrive.curate.columns.shard_arrays`),
    where the columns the features do not use are not read: ``tracks.z_m``
    is zeros and ``tracks.category`` empty strings there, and ``map`` holds
    only ``kind``, ``offsets`` and the x, y of ``xyz_m`` (z zero; ids,
    subtypes and relations empty).

    Attributes:
        scenario_id: Its id.
        source: Its source.
        timestamps_ns: ``(T,)`` int64.
        tracks: Its tracks.
        map: Its map, or None.
        extras: The source's extras (focal track, observed steps, ...).
        ego_index: The recording vehicle's track index, or None.
    """

    scenario_id: str
    source: str
    timestamps_ns: NDArrayInt
    tracks: Tracks
    map: MapFeatures | None
    extras: Mapping[str, Any]
    ego_index: int | None

    @classmethod
    def of(cls, s: Scenario) -> ScenarioArrays:
        return cls(
            scenario_id=s.scenario_id,
            source=s.source,
            timestamps_ns=s.timestamps_ns,
            tracks=s.tracks,
            map=s.map,
            extras=s.metadata.extras,
            ego_index=s.ego_index,
        )


# ---------------------------------------------------------------------------- resampling


def scenario_rate_hz(s: Scenario | ScenarioArrays) -> float | None:
    """The scenario's rate from the median step of its timestamps (None with fewer than 2 steps)."""
    if s.timestamps_ns.shape[0] < 2:
        return None
    dt = float(np.median(np.diff(s.timestamps_ns))) * 1e-9
    return None if dt <= 0 else 1.0 / dt


def resample_scenario(s: Scenario, rate_hz: float) -> Scenario:
    """``s`` on a regular grid at ``rate_hz``, by linear interpolation on its real timestamps.

    The grid starts at the first timestamp. A resampled state is valid only
    where both source states around it are valid; headings are interpolated
    unwrapped. The map and metadata are kept.
    """
    timestamps_ns, tracks = _resample_tracks(s.timestamps_ns, s.tracks, rate_hz)
    return replace(s, timestamps_ns=timestamps_ns, tracks=tracks, traffic_lights=None)


def _resample_tracks(timestamps_ns: NDArrayInt, tr: Tracks, rate_hz: float) -> tuple[NDArrayInt, Tracks]:
    """The grid's timestamps and the tracks on it (see :func:`resample_scenario`)."""
    t = timestamps_ns.astype(np.float64)
    step_ns = 1e9 / rate_hz
    n = int(np.floor((t[-1] - t[0]) / step_ns + 1e-6)) + 1
    grid = t[0] + np.arange(n) * step_ns
    hi = np.clip(np.searchsorted(t, grid, side="right"), 1, len(t) - 1)
    lo = hi - 1
    span = t[hi] - t[lo]
    w = np.where(span > 0, (grid - t[lo]) / np.where(span > 0, span, 1.0), 0.0)
    exact = np.isclose(grid, t[lo], rtol=0, atol=1.0)
    v_lo, v_hi = tr.valid[:, lo], tr.valid[:, hi]
    valid = np.where(exact[None], v_lo, v_lo & v_hi)

    def lerp(x: NDArrayFloat) -> NDArrayFloat:
        a, b = x[:, lo], x[:, hi]
        ww = w.reshape((1, -1) + (1,) * (x.ndim - 2))
        out: NDArrayFloat = a + (b - a) * ww
        return out

    heading = np.unwrap(np.where(tr.valid, tr.heading_rad, 0.0), axis=1)
    tracks = Tracks(
        track_ids=tr.track_ids,
        object_type=tr.object_type,
        category=tr.category,
        xy_m=np.where(valid[..., None], lerp(tr.xy_m), 0.0),
        z_m=lerp(tr.z_m),
        heading_rad=np.where(valid, wrap_angle(lerp(heading)), 0.0),
        velocity_mps=lerp(tr.velocity_mps),
        size_m=tr.size_m,
        valid=valid,
    )
    return np.rint(grid).astype(np.int64), tracks


# ---------------------------------------------------------------------------- map segments


def map_segments(
    m: MapFeatures, kinds: Sequence[int], segment_length_m: float, points: int
) -> tuple[NDArrayFloat, np.ndarray]:
    """Polylines of the given kinds, cut into pieces of at most ``segment_length_m``, resampled.

    Every piece of a polyline has the same length; each is resampled to
    ``points`` points evenly spaced by arc length (a single-point feature
    gives a piece of ``points`` equal points). Fully vectorised: one
    ``np.interp`` over all polylines, each on its own stretch of a global
    arc-length axis.

    Returns:
        ``(G, Q, 2)`` float64 world points and ``(G,)`` uint8 kinds.
    """
    sel = np.flatnonzero(np.isin(m.kind, np.asarray(kinds, dtype=np.uint8)))
    if sel.size == 0:
        return np.zeros((0, points, 2)), np.zeros((0,), dtype=np.uint8)
    starts, stops = m.offsets[sel], m.offsets[sel + 1]
    lengths = stops - starts
    keep = lengths > 0
    sel, starts, lengths = sel[keep], starts[keep], lengths[keep]
    if sel.size == 0:
        return np.zeros((0, points, 2)), np.zeros((0,), dtype=np.uint8)
    f = sel.size
    idx = np.repeat(starts, lengths) + (
        np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    )
    xy = m.xyz_m[idx, :2]
    feat = np.repeat(np.arange(f), lengths)
    step = np.r_[0.0, np.linalg.norm(np.diff(xy, axis=0), axis=1)]
    step[np.r_[True, feat[1:] != feat[:-1]]] = 0.0  # no arc across two polylines
    arc = np.cumsum(step)
    first = np.cumsum(lengths) - lengths
    local = arc - arc[first][feat]  # arc length within each polyline
    total = local[first + lengths - 1]  # (f,) polyline lengths
    offset = np.arange(f) * (float(total.max()) + 1.0)  # each polyline on its own stretch of one axis
    global_arc = local + offset[feat]
    pieces = np.maximum(1, np.ceil(total / segment_length_m - 1e-9)).astype(np.int64)
    piece_feat = np.repeat(np.arange(f), pieces)
    piece_index = np.arange(pieces.sum()) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    piece_len = total[piece_feat] / pieces[piece_feat]
    u = np.linspace(0.0, 1.0, points)
    q = (piece_index[:, None] + u[None, :]) * piece_len[:, None] + offset[piece_feat][:, None]  # (G, Q)
    x = np.interp(q.ravel(), global_arc, xy[:, 0]).reshape(q.shape)
    y = np.interp(q.ravel(), global_arc, xy[:, 1]).reshape(q.shape)
    return np.stack([x, y], axis=-1), m.kind[sel][piece_feat].astype(np.uint8)


# ---------------------------------------------------------------------------- targets


def _designated(s: ScenarioArrays) -> dict[int, int]:
    """Track index -> :class:`TargetKind` for the targets the source names itself."""
    out: dict[int, int] = {}
    ids = {str(t): i for i, t in enumerate(s.tracks.track_ids.tolist())}
    ex = s.extras
    cats = ex.get("track_category")
    if isinstance(cats, list) and len(cats) == s.tracks.num_tracks:
        for i, c in enumerate(cats):
            if c == 2:
                out[i] = TargetKind.REQUIRED
    for item in ex.get("tracks_to_predict") or []:
        tid = item.get("track_id") if isinstance(item, Mapping) else item
        if str(tid) in ids:
            out[ids[str(tid)]] = TargetKind.REQUIRED
    if s.ego_index is not None:
        out.setdefault(s.ego_index, TargetKind.EGO)
    focal = ex.get("focal_track_id")
    if focal is not None and str(focal) in ids:
        out[ids[str(focal)]] = TargetKind.FOCAL
    return out


def _source_t0(s: ScenarioArrays) -> int | None:
    """The current step a source names (AV2: last observed step; WOMD: current_time_index)."""
    ex = s.extras
    if isinstance(ex.get("num_observed_steps"), int):
        return int(ex["num_observed_steps"]) - 1
    if isinstance(ex.get("current_time_index"), int):
        return int(ex["current_time_index"])
    return None


def _velocities(tr: Tracks, dt_s: float) -> NDArrayFloat:
    """The source's velocities, or finite differences of positions where it has none."""
    missing = ~np.isfinite(tr.velocity_mps).all(axis=-1)
    if not missing.any():  # the usual case: no copy, no differences
        return np.where(tr.valid[..., None], tr.velocity_mps, 0.0)
    vel = tr.velocity_mps.copy()
    fd = np.zeros_like(tr.xy_m)
    both = tr.valid[:, 1:] & tr.valid[:, :-1]  # pair (k, k + 1) observed
    d = (tr.xy_m[:, 1:] - tr.xy_m[:, :-1]) / dt_s
    fd[:, 1:][both] = d[both]  # backward difference where there is one
    first = both & ~np.concatenate([np.zeros_like(both[:, :1]), both[:, :-1]], axis=1)
    fd[:, :-1][first] = d[first]  # forward difference at the first state of a run
    vel[missing] = fd[missing]
    return np.where(tr.valid[..., None] & np.isfinite(vel), vel, 0.0)


# ---------------------------------------------------------------------------- one scenario


@dataclass
class _Builder:
    """Accumulates windows of many scenarios, then packs them (Python lists of arrays, one per window)."""

    cfg: FeatureConfig
    scenario_keys: list[str] = field(default_factory=list)
    window: dict[str, list[Any]] = field(default_factory=dict)
    agent: dict[str, list[np.ndarray]] = field(default_factory=dict)
    sample: dict[str, list[Any]] = field(default_factory=dict)
    neighbor_rows: list[np.ndarray] = field(default_factory=list)
    neighbor_counts: list[int] = field(default_factory=list)
    segment_rows: list[np.ndarray] = field(default_factory=list)
    segment_counts: list[int] = field(default_factory=list)
    maps: dict[str, int] = field(default_factory=dict)
    map_origin: list[np.ndarray] = field(default_factory=list)
    segment_xy: list[np.ndarray] = field(default_factory=list)
    segment_kind: list[np.ndarray] = field(default_factory=list)
    segment_map: list[np.ndarray] = field(default_factory=list)
    segment_base: dict[str, int] = field(default_factory=dict)
    segment_world: dict[str, np.ndarray] = field(default_factory=dict)
    bare_maps: set[str] = field(default_factory=set)
    num_agents: int = 0
    num_segments: int = 0
    skipped: list[SkippedScenario] = field(default_factory=list)
    resampled: list[str] = field(default_factory=list)

    def add(self, s: ScenarioArrays, map_key: str | None = None, key: str | None = None) -> None:
        cfg = self.cfg
        key = key or f"{s.source}/{s.scenario_id}"
        rate = scenario_rate_hz(s)
        if rate is None:
            self.skipped.append(SkippedScenario(s.scenario_id, s.source, "fewer than two time steps"))
            return
        if abs(rate - cfg.rate_hz) > cfg.rate_tolerance * cfg.rate_hz:
            if not cfg.resample:
                self.skipped.append(
                    SkippedScenario(
                        s.scenario_id,
                        s.source,
                        f"recorded at {rate:.3g} Hz, features are at {cfg.rate_hz:g} Hz "
                        "(resample explicitly: FeatureConfig(resample=True), --resample)",
                    )
                )
                return
            timestamps_ns, tracks = _resample_tracks(s.timestamps_ns, s.tracks, cfg.rate_hz)
            s = replace(s, timestamps_ns=timestamps_ns, tracks=tracks)
            self.resampled.append(key)
        h, f = cfg.history_steps, cfg.future_steps
        t = int(s.timestamps_ns.shape[0])
        named = _source_t0(s)
        if named is not None and h - 1 <= named <= t - 1 - f and key not in self.resampled:
            t0s = [named]
        else:
            t0s = list(range(h - 1, t - f, cfg.window_stride_steps))
        if not t0s:
            self.skipped.append(
                SkippedScenario(
                    s.scenario_id, s.source, f"{t} steps: too short for {h} history and {f} future steps"
                )
            )
            return
        tr = s.tracks
        vel = _velocities(tr, cfg.dt_s)
        designated = _designated(s)
        map_row = -1
        if s.map is not None:
            # a map shared by several scenarios (same key) is cut and resampled once
            mk = map_key or _map_hash(s.map)
            if mk not in self.maps and mk not in self.bare_maps:
                seg_xy_world, seg_kind = map_segments(
                    s.map, cfg.map_kinds, cfg.segment_length_m, cfg.segment_points
                )
                if seg_kind.shape[0]:
                    origin = seg_xy_world.reshape(-1, 2).mean(axis=0)
                    self.maps[mk] = len(self.map_origin)
                    self.map_origin.append(origin)
                    self.segment_xy.append((seg_xy_world - origin).astype(np.float32))
                    self.segment_kind.append(seg_kind)
                    self.segment_map.append(np.full(seg_kind.shape[0], self.maps[mk], dtype=np.int32))
                    self.segment_base[mk] = self.num_segments
                    self.num_segments += seg_kind.shape[0]
                    # distances are measured on the stored (float32, map-relative) points
                    self.segment_world[mk] = self.segment_xy[-1].astype(np.float64) + origin
                else:
                    self.bare_maps.add(mk)
            if mk in self.maps:
                map_row = self.maps[mk]
                seg_base = self.segment_base[mk]
                seg_world = self.segment_world[mk]
        scenario_row = len(self.scenario_keys)
        added = 0
        for t0 in t0s:
            hist = slice(t0 - h + 1, t0 + 1)
            fut = slice(t0 + 1, t0 + 1 + f)
            hv = tr.valid[:, hist]
            present = np.flatnonzero(hv.any(axis=1))
            fv = tr.valid[:, fut]
            ok_future = fv.all(axis=1) if cfg.require_full_future else fv[:, -1]
            eligible = (
                tr.valid[:, t0]
                & (hv.sum(axis=1) >= cfg.min_history_valid)
                & ok_future
                & np.isin(tr.object_type, np.asarray(cfg.target_types, dtype=np.uint8))
            )
            cand = np.flatnonzero(eligible)
            if cand.size == 0:
                continue
            kinds = np.array([designated.get(int(i), TargetKind.OTHER) for i in cand])
            moved = np.linalg.norm(tr.xy_m[cand, t0 + f] - tr.xy_m[cand, t0], axis=1)
            order = np.lexsort((-moved, kinds))  # designated kinds first, then those that move most
            targets = cand[order][: cfg.max_targets_per_window]
            target_kinds = kinds[order][: cfg.max_targets_per_window]
            # the window: every agent present in the history, stored once
            origin = tr.xy_m[targets[0], t0].copy()
            agents = present
            a_valid = hv[agents]
            a_xy = np.where(a_valid[..., None], tr.xy_m[agents, hist] - origin, 0.0)
            a_head = np.where(a_valid, tr.heading_rad[agents, hist], 0.0)
            a_vel = np.where(a_valid[..., None], vel[agents, hist], 0.0)
            size = tr.size_m[agents, :2]
            row_of = np.full(tr.num_tracks, -1, dtype=np.int64)
            row_of[agents] = self.num_agents + np.arange(agents.size)
            # last valid history position of every agent, for distances
            last = h - 1 - np.argmax(a_valid[:, ::-1], axis=1)
            last_xy = a_xy[np.arange(agents.size), last]
            target_local = row_of[targets] - self.num_agents
            d = np.linalg.norm(last_xy[None, :, :] - last_xy[target_local][:, None, :], axis=-1)  # (n_t, A_w)
            d[np.arange(targets.size), target_local] = np.inf
            d[d > cfg.neighbor_radius_m] = np.inf
            nb_order = np.argsort(d, axis=1, kind="stable")[:, : cfg.max_neighbors]
            if map_row >= 0:
                tpos = tr.xy_m[targets, t0]  # (n_t, 2) world
                dist = np.linalg.norm(seg_world[None] - tpos[:, None, None, :], axis=-1).min(
                    axis=-1
                )  # (n_t, G)
                dist[dist > cfg.map_radius_m] = np.inf
                seg_order = np.argsort(dist, axis=1, kind="stable")[:, : cfg.max_segments]
            w_index = len(self.window.setdefault("t0", []))
            self.window["t0"].append(t0)
            self.window.setdefault("scenario", []).append(scenario_row)
            self.window.setdefault("t0_ns", []).append(int(s.timestamps_ns[t0]))
            self.window.setdefault("origin", []).append(origin)
            self.window.setdefault("map", []).append(map_row)
            self.window.setdefault("num_agents", []).append(agents.size)
            self.agent.setdefault("xy", []).append(a_xy.astype(np.float32))
            self.agent.setdefault("heading", []).append(a_head.astype(np.float32))
            self.agent.setdefault("velocity", []).append(a_vel.astype(np.float32))
            self.agent.setdefault("valid", []).append(a_valid)
            self.agent.setdefault("type", []).append(tr.object_type[agents].astype(np.uint8))
            self.agent.setdefault("size", []).append(np.nan_to_num(size, nan=0.0).astype(np.float32))
            self.agent.setdefault("track", []).append(agents.astype(np.int32))
            for j, (ti, tk) in enumerate(zip(targets.tolist(), target_kinds.tolist(), strict=True)):
                nb = nb_order[j][np.isfinite(d[j, nb_order[j]])]
                self.neighbor_rows.append((self.num_agents + nb).astype(np.int32))
                self.neighbor_counts.append(int(nb.size))
                if map_row >= 0:
                    sg = seg_order[j][np.isfinite(dist[j, seg_order[j]])]
                    self.segment_rows.append((seg_base + sg).astype(np.int32))
                    self.segment_counts.append(int(sg.size))
                else:
                    self.segment_rows.append(np.zeros(0, dtype=np.int32))
                    self.segment_counts.append(0)
                self.sample.setdefault("window", []).append(w_index)
                self.sample.setdefault("agent", []).append(int(row_of[ti]))
                self.sample.setdefault("kind", []).append(tk)
                self.sample.setdefault("track_id", []).append(str(tr.track_ids[ti]))
                self.sample.setdefault("future_xy", []).append(tr.xy_m[ti, fut] - origin)
                self.sample.setdefault("future_heading", []).append(tr.heading_rad[ti, fut])
                self.sample.setdefault("future_valid", []).append(fv[ti])
            self.num_agents += agents.size
            added += targets.size
        if added == 0:
            self.skipped.append(SkippedScenario(s.scenario_id, s.source, "no agent qualifies as a target"))
        self.scenario_keys.append(key)

    def build(self) -> ScenarioFeatures:
        cfg = self.cfg
        h, f, q = cfg.history_steps, cfg.future_steps, cfg.segment_points
        nw = len(self.window.get("t0", []))
        ns = len(self.sample.get("window", []))

        def cat(parts: list[np.ndarray], empty_shape: tuple[int, ...], dtype: Any) -> np.ndarray:
            return (
                np.concatenate(parts).astype(dtype, copy=False)
                if parts
                else np.zeros(empty_shape, dtype=dtype)
            )

        def offsets(counts: Sequence[int]) -> NDArrayInt:
            out = np.zeros(len(counts) + 1, dtype=np.int64)
            np.cumsum(np.asarray(counts, dtype=np.int64), out=out[1:])
            return out

        def stack(name: str, empty: tuple[int, ...], dtype: Any) -> np.ndarray:
            vals = self.sample.get(name, [])
            return np.stack(vals).astype(dtype, copy=False) if vals else np.zeros(empty, dtype=dtype)

        return ScenarioFeatures(
            window_scenario=np.asarray(self.window.get("scenario", []), dtype=np.int32),
            window_t0=np.asarray(self.window.get("t0", []), dtype=np.int32),
            window_t0_ns=np.asarray(self.window.get("t0_ns", []), dtype=np.int64),
            window_origin_xy_m=np.asarray(self.window.get("origin", []), dtype=np.float64).reshape(nw, 2),
            window_map=np.asarray(self.window.get("map", []), dtype=np.int32),
            window_agent_offsets=offsets(self.window.get("num_agents", [])),
            agent_xy_m=cat(self.agent.get("xy", []), (0, h, 2), np.float32),
            agent_heading_rad=cat(self.agent.get("heading", []), (0, h), np.float32),
            agent_velocity_mps=cat(self.agent.get("velocity", []), (0, h, 2), np.float32),
            agent_valid=cat(self.agent.get("valid", []), (0, h), np.bool_),
            agent_type=cat(self.agent.get("type", []), (0,), np.uint8),
            agent_size_m=cat(self.agent.get("size", []), (0, 2), np.float32),
            agent_track=cat(self.agent.get("track", []), (0,), np.int32),
            sample_window=np.asarray(self.sample.get("window", []), dtype=np.int32),
            sample_agent=np.asarray(self.sample.get("agent", []), dtype=np.int32),
            sample_kind=np.asarray(self.sample.get("kind", []), dtype=np.uint8),
            neighbor_offsets=offsets(self.neighbor_counts),
            neighbor_rows=cat(self.neighbor_rows, (0,), np.int32),
            future_xy_m=stack("future_xy", (0, f, 2), np.float32),
            future_heading_rad=stack("future_heading", (0, f), np.float32),
            future_valid=stack("future_valid", (0, f), np.bool_),
            map_origin_xy_m=np.asarray(self.map_origin, dtype=np.float64).reshape(-1, 2),
            map_keys=np.asarray(list(self.maps), dtype=np.str_).reshape(-1),
            segment_xy_m=cat(self.segment_xy, (0, q, 2), np.float32),
            segment_kind=cat(self.segment_kind, (0,), np.uint8),
            segment_map=cat(self.segment_map, (0,), np.int32),
            segment_offsets=offsets(self.segment_counts),
            segment_rows=cat(self.segment_rows, (0,), np.int32),
            scenario_keys=np.asarray(self.scenario_keys, dtype=np.str_).reshape(-1),
            sample_track_ids=np.asarray(self.sample.get("track_id", []), dtype=np.str_).reshape(ns),
            skipped=tuple(self.skipped),
            resampled=tuple(self.resampled),
        )


def _map_hash(m: MapFeatures) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(m.offsets).tobytes())
    h.update(np.ascontiguousarray(m.xyz_m[:, :2]).tobytes())
    h.update(np.ascontiguousarray(m.kind).tobytes())
    return "sha256:" + h.hexdigest()[:24]


def featurize_scenario(
    scenarios: Sequence[Scenario],
    config: FeatureConfig,
    map_keys: Sequence[str | None] | None = None,
    keys: Sequence[str] | None = None,
) -> ScenarioFeatures:
    """Windows, agents, samples, futures and map segments of ``scenarios``.

    Scenarios that share a map key share one copy of its segments.

    Args:
        scenarios: The scenarios, validated.
        config: Horizons, rates, selection.
        map_keys: Per scenario, what identifies its map (the lake's
            ``map_id``); a content hash when absent.
        keys: Per scenario, the key recorded in ``scenario_keys``
            (default ``source/scenario_id``).
    """
    return featurize_arrays([ScenarioArrays.of(s) for s in scenarios], config, map_keys=map_keys, keys=keys)


def featurize_arrays(
    scenarios: Sequence[ScenarioArrays],
    config: FeatureConfig,
    map_keys: Sequence[str | None] | None = None,
    keys: Sequence[str] | None = None,
) -> ScenarioFeatures:
    """:func:`featurize_scenario` on the arrays of scenarios (read straight from columns, see
    :mod:`datadrive.curate.columns`): the same features, no :class:`Scenario` needed."""
    b = _Builder(config)
    for i, s in enumerate(scenarios):
        b.add(s, None if map_keys is None else map_keys[i], None if keys is None else keys[i])
    return b.build()


def concat_features(parts: Sequence[ScenarioFeatures]) -> ScenarioFeatures:
    """One :class:`ScenarioFeatures` of several, with every index shifted; shared maps are not merged."""
    if len(parts) == 1:
        return parts[0]
    shift: dict[str, list[int]] = {k: [] for k in ("scen", "win", "agent", "map", "seg")}
    acc = {"scen": 0, "win": 0, "agent": 0, "map": 0, "seg": 0}
    for p in parts:
        shift["scen"].append(acc["scen"])
        shift["win"].append(acc["win"])
        shift["agent"].append(acc["agent"])
        shift["map"].append(acc["map"])
        shift["seg"].append(acc["seg"])
        acc["scen"] += p.scenario_keys.shape[0]
        acc["win"] += p.num_windows
        acc["agent"] += p.agent_type.shape[0]
        acc["map"] += p.map_origin_xy_m.shape[0]
        acc["seg"] += p.segment_kind.shape[0]

    def cat_offsets(arrs: list[NDArrayInt]) -> NDArrayInt:
        out = [np.zeros(1, dtype=np.int64)]
        base = 0
        for a in arrs:
            out.append(a[1:] + base)
            base += int(a[-1])
        return np.concatenate(out)

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])

    return ScenarioFeatures(
        window_scenario=np.concatenate(
            [p.window_scenario + s for p, s in zip(parts, shift["scen"], strict=True)]
        ),
        window_t0=cat("window_t0"),
        window_t0_ns=cat("window_t0_ns"),
        window_origin_xy_m=cat("window_origin_xy_m"),
        window_map=np.concatenate(
            [
                np.where(p.window_map >= 0, p.window_map + s, -1)
                for p, s in zip(parts, shift["map"], strict=True)
            ]
        ).astype(np.int32),
        window_agent_offsets=cat_offsets([p.window_agent_offsets for p in parts]),
        agent_xy_m=cat("agent_xy_m"),
        agent_heading_rad=cat("agent_heading_rad"),
        agent_velocity_mps=cat("agent_velocity_mps"),
        agent_valid=cat("agent_valid"),
        agent_type=cat("agent_type"),
        agent_size_m=cat("agent_size_m"),
        agent_track=cat("agent_track"),
        sample_window=np.concatenate([p.sample_window + s for p, s in zip(parts, shift["win"], strict=True)]),
        sample_agent=np.concatenate([p.sample_agent + s for p, s in zip(parts, shift["agent"], strict=True)]),
        sample_kind=cat("sample_kind"),
        neighbor_offsets=cat_offsets([p.neighbor_offsets for p in parts]),
        neighbor_rows=np.concatenate(
            [p.neighbor_rows + s for p, s in zip(parts, shift["agent"], strict=True)]
        ),
        future_xy_m=cat("future_xy_m"),
        future_heading_rad=cat("future_heading_rad"),
        future_valid=cat("future_valid"),
        map_origin_xy_m=cat("map_origin_xy_m"),
        map_keys=cat("map_keys"),
        segment_xy_m=cat("segment_xy_m"),
        segment_kind=cat("segment_kind"),
        segment_map=np.concatenate([p.segment_map + s for p, s in zip(parts, shift["map"], strict=True)]),
        segment_offsets=cat_offsets([p.segment_offsets for p in parts]),
        segment_rows=np.concatenate([p.segment_rows + s for p, s in zip(parts, shift["seg"], strict=True)]),
        scenario_keys=cat("scenario_keys"),
        sample_track_ids=cat("sample_track_ids"),
        skipped=tuple(x for p in parts for x in p.skipped),
        resampled=tuple(x for p in parts for x in p.resampled),
    )
