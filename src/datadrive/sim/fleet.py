"""A synthetic fleet: traffic on the real maps of the samples, with events injected at controlled rates.

Each synthetic scenario is an ordinary :class:`~datadrive.core.scenario.Scenario`
with ``source = "synthetic"``; its metadata names the generator, its seed, its
index and every parameter (``extras["generator"]``, ``["seed"]``,
``["params"]``), and the events injected into it (``extras["events"]``: type,
track, step), so it is never mistaken for recorded data and can be
reproduced exactly: scenario ``k`` depends only on ``(seed, k)`` and the
parameters, never on how the work was split into chunks or workers.

How scenarios are made (:func:`generate_chunk`, many scenarios at once as
one array program):

* **a map** from ``maps`` (any file a datadrive reader reads that carries
  lanes: AV2 map JSON, Waymo, INTERACTION/Lanelet2 OSM, CommonRoad XML).
  Once per map and process, a **library of lane chains** is built: from every
  lane at least 8 m long, a few chains of successors (fixed random choices),
  resampled every metre, with each point's heading and a speed cap: the
  lane's speed limit (the map's ``speed_limit_mps``, else
  ``FleetConfig.speed_limit_mps``) and the curve speed
  ``sqrt(max_lat_accel / curvature)``, looked 15 m ahead;
* **agents**: the ego on a random chain, 6-20 other vehicles on chains near it
  (never within 9 m of another), each with a desired speed drawn around its
  cap;
* **traffic**: IDM behind the nearest vehicle or pedestrian in its corridor,
  now or 1.5 s ahead at constant velocity (a vehicle yields to a crossing
  vehicle that comes before it in the scenario's order, and to every
  pedestrian), with the speed cap ahead as its desired speed and its jerk
  bounded (3 m/s³) unless it must brake hard; a warm-up of ``warmup_s``
  before the recording starts lets the traffic settle;
* **events**, independently, with their rates: a **cut-in** (a vehicle in the
  lane beside the ego, 6-15 m ahead, moves into the ego's lane over 2.5 s),
  **hard braking ahead** (the vehicle ahead of the ego brakes at 6-8 m/s² to a
  stop), a **pedestrian crossing** (a pedestrian walks across the ego's lane
  25-45 m ahead at 1.2-1.6 m/s), a **stopped vehicle** (a vehicle standing in
  the ego's lane 30-60 m ahead);
* **the map** of each scenario is the source map cropped to the box its
  agents move in, ``crop_margin_m`` wider, with the speed limits the traffic
  obeyed.

:func:`generate_into_lake` streams chunks into a lake region through
``Lake.ingest_records`` (the library's own ingest path, with its
validation, pseudonyms and audit), one commit per chunk, on any compute
engine: workers generate, the caller commits; at most the engine's window
of chunks is in memory, whatever the number of scenarios.

Notation:
    n: scenarios of a chunk. V: vehicles (ego first). T: recorded steps.
    C: chains of a map's library. K: points per chain.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datadrive.core.scenario import (
    MapFeatureKind,
    MapFeatures,
    ObjectType,
    Provenance,
    Scenario,
    ScenarioMetadata,
    Tracks,
)
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt
from datadrive.errors import ConfigError
from datadrive.sim.lanes import LaneGraph, chain_path, resample_polyline

if TYPE_CHECKING:
    from datadrive.compute import Engine
    from datadrive.lake import Lake

__all__ = [
    "EVENT_TYPES",
    "FleetConfig",
    "FleetMap",
    "FleetReport",
    "generate",
    "generate_chunk",
    "generate_into_lake",
    "load_map",
]

GENERATOR = "datadrive.sim.fleet/6"  # /6: what it writes is rounded to binary grids (see _XY_STEP_M)
EVENT_TYPES = ("cut_in", "hard_braking", "pedestrian_crossing", "stopped_vehicle")

_CHAINS_PER_LANE = 3
_START_RANGE_M = 150.0  # how far along its first lane a vehicle may start
_NEAR_M = 60.0  # other vehicles start within this distance of the ego
_MIN_GAP_M = 9.0
_CANDIDATES = 28  # background placement attempts per scenario
_JERK_MPS3 = 3.0
_IDM = (1.5, 2.0, 1.5, 2.0)  # a_max, b_comf, time headway, jam distance
_LOOK_S = 1.5  # anticipation: others' positions this far ahead count too
_HALF_CORRIDOR_M = 1.6
_PED_START_M = 4.5  # the pedestrian waits this far beside the ego's path (at the kerb of a 3.5 m lane)
# what the fleet writes is rounded to binary grids finer than any sensor's or map's precision: a float64
# rounded to 2^-k has its low mantissa bits zero, which the lake's zstd compresses (tracks 26 -> 7 KiB per
# scenario); far below what mining's thresholds, training's features or the simulator resolve
_XY_STEP_M = 2.0**-10  # about 1 mm (positions, the map's polylines)
_HEADING_STEP_RAD = 2.0**-12  # about 0.014 degrees
_SPEED_STEP_MPS = 2.0**-8  # about 4 mm/s
_BUCKET = 128  # scenarios stepped together by the traffic simulation (32 cost a third more CPU)


@dataclass(frozen=True)
class FleetConfig:
    """What to generate.

    Attributes:
        maps: Map files (or folders) to draw from; scenario ``k`` uses map ``k % len(maps)``.
        seed: The fleet's seed; scenario ``k`` uses ``(seed, k)``.
        num_steps: Recorded steps per scenario at ``dt_s``.
        dt_s: The step.
        vehicles: Range of other vehicles per scenario.
        speed_limit_mps: Speed limit of lanes whose map gives none.
        event_rates: Probability per scenario of each event type.
        crop_margin_m: Map features kept within this margin of where the agents move.
        warmup_s: Traffic simulated before the recording starts.
        max_lat_accel_mps2: Lateral acceleration drivers keep to in curves.
    """

    maps: tuple[str, ...]
    seed: int = 0
    num_steps: int = 91
    dt_s: float = 0.1
    vehicles: tuple[int, int] = (6, 20)
    speed_limit_mps: float = 13.9
    event_rates: dict[str, float] = field(
        default_factory=lambda: {
            "cut_in": 0.2,
            "hard_braking": 0.2,
            "pedestrian_crossing": 0.15,
            "stopped_vehicle": 0.15,
        }
    )
    crop_margin_m: float = 40.0
    warmup_s: float = 2.0
    max_lat_accel_mps2: float = 2.0

    def params(self) -> dict[str, Any]:
        d = asdict(self)
        d["maps"] = [Path(m).name for m in self.maps]
        return d


@dataclass
class FleetMap:
    """A map the fleet drives on, with its library of lane chains (see the module docstring).

    Attributes:
        lib_xy: ``(C, K, 2)`` chain points, 1 m apart.
        lib_heading: ``(C, K)``.
        lib_vcap: ``(C, K)`` speed cap at each point (speed limit and curves ahead).
        lib_start_len: ``(C,)`` how far along its first lane a vehicle may start.
        lib_len: ``(C,)`` how far the chain's lanes reach (the map ends there; points beyond continue
            straight and are never driven on).
        lib_clear: ``(C, K)`` a vehicle standing at this point is clear of junctions: not on an
            intersection lane (the map's flag; where a map flags none, lanes that cross another lane
            that is not their successor or predecessor) and more than 15 m before one or a stop line.
        lib_neighbor: ``(C,)`` a chain beside this one in the same direction (-1 none);
            ``lib_nb_offset (C,)`` arc length on it beside this chain's arc 0.
        lib_nb_ok: ``(C, K)`` at this chain's arc, the lanes under it and under its neighbour chain are
            map neighbours (left/right, either way) and neither is an intersection lane: a lane change
            between them is a lane change in the map's terms (where mining's tagger looks for one).
        sample_chain, sample_arc: Start positions (every 2 m) for the nearest-chain search.
        limits: ``(F,)`` speed limit of every map feature (lanes; the default where the map has none).
    """

    name: str
    frame: str
    location: str | None
    licence: str | None
    features: MapFeatures
    lanes: LaneGraph
    lib_xy: NDArrayFloat
    lib_heading: NDArrayFloat
    lib_vcap: NDArrayFloat
    lib_clear: NDArrayBool
    lib_start_len: NDArrayFloat
    lib_len: NDArrayFloat
    lib_neighbor: NDArrayInt
    lib_nb_offset: NDArrayFloat
    sample_chain: NDArrayInt
    sample_arc: NDArrayFloat
    sample_tree: Any
    feature_lo: NDArrayFloat
    feature_hi: NDArrayFloat
    limits: NDArrayFloat
    lib_nb_ok: NDArrayBool


@cache
def load_map(path: str, speed_limit_mps: float = 13.9, max_lat_accel_mps2: float = 2.0) -> FleetMap:
    """The first map with lanes that a datadrive reader finds at ``path``, with its chain library.

    Cached per process: a worker builds each map's library once.

    Raises:
        ConfigError: no reader, or no lanes.
    """
    from datadrive.errors import InputError
    from datadrive.sources import DEFAULT_REGISTRY

    p = Path(path)
    try:
        units = DEFAULT_REGISTRY.discover(p).units if p.is_dir() else [(DEFAULT_REGISTRY.detect(p), p)]
        for adapter, unit in units:
            for record in adapter.read(unit):
                if isinstance(record, Scenario) and record.map is not None and record.map.num_lanes > 0:
                    lanes = LaneGraph(record.map)
                    if not np.any(lanes.lengths_m >= 8.0):
                        continue
                    md = record.metadata
                    return _library(p.stem, md, record.map, lanes, speed_limit_mps, max_lat_accel_mps2)
    except InputError as exc:
        raise ConfigError(f"--maps {path}: {exc.reason}") from exc
    raise ConfigError(f"--maps {path}: no map with lanes found there")


def _smooth(pts: NDArrayFloat, half: int = 4) -> NDArrayFloat:
    """A moving average over ``2 half + 1`` points 1 m apart: lane polylines have corners, drivers do not."""
    k = 2 * half + 1
    padded = np.concatenate([np.repeat(pts[:1], half, 0), pts, np.repeat(pts[-1:], half, 0)])
    c = np.cumsum(np.concatenate([np.zeros((1, 2)), padded]), axis=0)
    out: NDArrayFloat = (c[k:] - c[:-k]) / k
    out[: half + 1] = pts[: half + 1]  # the ends stay where they are
    out[-half - 1 :] = pts[-half - 1 :]
    return out


def _library(
    name: str, md: ScenarioMetadata, m: MapFeatures, lanes: LaneGraph, default_limit: float, lat_accel: float
) -> FleetMap:
    # cars start on car lanes: not on bicycle lanes (AV2's BIKE, Lanelet2's bicycle_lane, ...)
    subtype = np.char.upper(m.subtype[lanes.feature_index].astype(np.str_))
    for_cars = ~(
        (np.char.find(subtype, "BIKE") >= 0) | (np.char.find(subtype, "BICYCLE") >= 0)
        | (np.char.find(subtype, "CYCLE") >= 0)
    )  # fmt: skip
    usable = np.flatnonzero((lanes.lengths_m >= 8.0) & for_cars)
    if not usable.size:
        usable = np.flatnonzero(lanes.lengths_m >= 8.0)
        for_cars[:] = True

    def pick(_lane: int, nxt: list[int]) -> int:
        cars = [x for x in nxt if for_cars[x]] or nxt
        return cars[int(rng.integers(len(cars)))]

    rng = np.random.default_rng(zlib.crc32(name.encode()))
    start_len = np.minimum(lanes.lengths_m - 5.0, _START_RANGE_M)
    K = int(_START_RANGE_M + 330.0)  # a start, 9 s at highway speed, the warm-up, and some
    chains: list[NDArrayFloat] = []
    chain_lanes: list[list[tuple[int, float]]] = []
    chain_len: list[float] = []
    first: dict[int, int] = {}
    for lane in usable.tolist():
        for _ in range(_CHAINS_PER_LANE):
            pts, starts = chain_path(lanes, lane, K + 10.0, pick)
            first.setdefault(lane, len(chains))
            chains.append(_smooth(resample_polyline(pts, 1.0, K)))
            chain_lanes.append(starts)
            # the chain is a car's as far as car lanes go
            bike = [a for ln, a in starts if not for_cars[ln]]
            chain_len.append(bike[0] if bike else starts[-1][1] + float(lanes.lengths_m[starts[-1][0]]))
    C = len(chains)
    xy = np.stack(chains)
    d = np.diff(xy, axis=1)
    heading = np.arctan2(d[..., 1], d[..., 0])
    heading = np.concatenate([heading, heading[:, -1:]], axis=1)
    # curvature over +-3 m, the curve speed, the lane's limit; the cap is the lowest of the next 15 m
    dh = (np.roll(heading, -3, axis=1) - np.roll(heading, 3, axis=1) + np.pi) % (2 * np.pi) - np.pi
    kappa = np.abs(dh) / 6.0
    kappa[:, :3] = kappa[:, 3:4]
    kappa[:, -3:] = kappa[:, -4:-3]
    v_curve = np.sqrt(lat_accel / np.maximum(kappa, 1e-4))
    lane_limit = np.where(np.isfinite(lanes.speed_limit_mps), lanes.speed_limit_mps, default_limit)
    limit = np.empty((C, K))
    lane_at = np.empty((C, K), dtype=np.int64)  # the lane under each chain point
    arc = np.arange(K, dtype=np.float64)
    for c, starts in enumerate(chain_lanes):
        at = np.searchsorted(np.asarray([a for _, a in starts]), arc, side="right") - 1
        lane_at[c] = np.asarray([ln for ln, _ in starts])[np.maximum(at, 0)]
        limit[c] = lane_limit[lane_at[c]]
    cap = np.minimum(limit, v_curve)
    clear = _clear_of_junctions(m, lanes, xy, chain_lanes, lane_at)
    ahead = cap.copy()
    for k in range(1, 16):
        ahead[:, :-k] = np.minimum(ahead[:, :-k], cap[:, k:])
    # a same-direction neighbour's chain for cut-ins, and where along it this chain's start lies
    neighbor = np.full(C, -1, dtype=np.int64)
    nb_offset = np.zeros(C)
    for c, starts in enumerate(chain_lanes):
        lane = starts[0][0]
        for nb in (lanes.left[lane], lanes.right[lane]):
            if nb >= 0 and nb in first:
                o = first[nb]
                if np.dot(xy[c, 10] - xy[c, 0], xy[o, 10] - xy[o, 0]) <= 0:
                    continue
                j = int(np.argmin(np.hypot(*(xy[o, :200] - xy[c, 0]).T)))
                neighbor[c], nb_offset[c] = o, float(j)
                break
    # where along each chain its neighbour chain still runs in a neighbouring lane (chains pick their
    # successors independently, so beyond a junction they may part or meet)
    nb_ok = np.zeros((C, K), dtype=bool)
    has_nb = np.flatnonzero(neighbor >= 0)
    if has_nb.size:
        own = lane_at[has_nb]  # (c, K)
        beside = np.clip(arc[None, :] + nb_offset[has_nb, None], 0, K - 1).astype(np.int64)
        other = lane_at[neighbor[has_nb, None], beside]
        left, right = np.asarray(lanes.left, dtype=np.int64), np.asarray(lanes.right, dtype=np.int64)
        junction = _junction_lanes(lanes)
        paired = (left[other] == own) | (right[other] == own) | (left[own] == other) | (right[own] == other)
        paired &= ~junction[own] & ~junction[other]
        inside = (arc[None, :] < np.asarray(chain_len)[has_nb, None]) & (
            arc[None, :] + nb_offset[has_nb, None] < np.asarray(chain_len)[neighbor[has_nb], None]
        )
        nb_ok[has_nb] = paired & inside
    from scipy.spatial import cKDTree

    start_of = np.asarray([start_len[s[0][0]] for s in chain_lanes])
    sc, sa = [], []
    for c in range(C):
        a = np.arange(0.0, max(start_of[c], 0.0) + 1e-9, 2.0)
        sc.append(np.full(a.size, c))
        sa.append(a)
    sample_chain = np.concatenate(sc).astype(np.int64)
    sample_arc = np.concatenate(sa)
    tree = cKDTree(xy[sample_chain, sample_arc.astype(np.int64)])
    counts = np.diff(m.offsets)
    owner = np.repeat(np.arange(m.num_features), counts)
    lo = np.full((m.num_features, 2), np.inf)
    hi = np.full((m.num_features, 2), -np.inf)
    np.minimum.at(lo, owner, m.xyz_m[:, :2])
    np.maximum.at(hi, owner, m.xyz_m[:, :2])
    limits = np.where(
        m.kind == MapFeatureKind.LANE_CENTERLINE,
        np.where(np.isfinite(m.speed_limits()), m.speed_limits(), default_limit),
        np.nan,
    )
    return FleetMap(
        name, md.frame, md.location, md.licence, m, lanes, xy, heading, ahead, clear, start_of,
        np.asarray(chain_len), neighbor, nb_offset, sample_chain, sample_arc, tree, lo, hi, limits, nb_ok,
    )  # fmt: skip


def _clear_of_junctions(
    m: MapFeatures, lanes: LaneGraph, xy: NDArrayFloat, chain_lanes: list[list[tuple[int, float]]],
    lane_at: NDArrayInt,
) -> NDArrayBool:  # fmt: skip
    """``(C, K)``: where a vehicle may stand clear of junctions (see :class:`FleetMap`'s ``lib_clear``)."""
    from scipy.spatial import cKDTree

    bad = _junction_lanes(lanes)[lane_at]
    stops = np.flatnonzero(m.kind == MapFeatureKind.STOP_LINE)
    if stops.size:
        stop_pts = np.concatenate([m.xyz_m[m.offsets[f] : m.offsets[f + 1], :2] for f in stops])
        C, K = lane_at.shape
        near = cKDTree(stop_pts).query(xy.reshape(-1, 2), distance_upper_bound=2.5)[0]
        bad |= np.isfinite(near).reshape(C, K)
    # clear: no junction from 2 m behind to 17 m ahead (mining's stopped_in_lane wants 15 m)
    window = np.zeros_like(bad)
    for k in range(-2, 18):
        lo, hi = max(0, -k), bad.shape[1] - max(0, k)
        window[:, lo:hi] |= bad[:, lo + k : hi + k]
    clear: NDArrayBool = ~window
    return clear


def _junction_lanes(lanes: LaneGraph) -> NDArrayBool:
    """``(lanes,)`` junction lanes: the map's intersection flag; on maps that flag none, lanes that cross
    another lane that is not their successor or predecessor (at more than 20 degrees)."""
    from scipy.spatial import cKDTree

    junction = np.asarray(lanes.is_intersection, dtype=bool).copy()
    if not junction.any() and lanes.num_lanes > 1:
        # a map that flags no intersection lane: lanes crossing an unrelated lane at more than 20 degrees
        pts, owner, hd = [], [], []
        for i, p in enumerate(lanes.points):
            r = resample_polyline(p, 1.0, max(2, int(np.hypot(*np.diff(p, axis=0).T).sum()) + 1))
            d = np.diff(r, axis=0)
            pts.append(r[:-1])
            owner.append(np.full(len(d), i))
            hd.append(np.arctan2(d[:, 1], d[:, 0]))
        P, own, H = np.concatenate(pts), np.concatenate(owner), np.concatenate(hd)
        related = {(a, b) for a in range(lanes.num_lanes) for b in lanes.successors[a]}
        related |= {(b, a) for a, b in related}
        for a, b in cKDTree(P).query_pairs(0.7, output_type="ndarray").tolist():
            la, lb = int(own[a]), int(own[b])
            if la == lb or (la, lb) in related:
                continue
            if abs((H[a] - H[b] + np.pi) % (2 * np.pi) - np.pi) > np.radians(20.0):
                junction[la] = junction[lb] = True
    return junction


# --------------------------------------------------------------------------- random draws

# one block of uniform draws per scenario, always the same layout: scenario k depends on (seed, k) only
_U_EGO = 0  # chain, start, speed factor, initial speed factor
_U_EVENTS = 4  # 20 numbers: 5 per event type
_U_WANT = 24
_U_BG = 25  # 4 per candidate: sample, speed factor, length, initial speed factor
_DRAWS = _U_BG + 4 * _CANDIDATES


def _draws(seed: int, indices: NDArrayInt) -> NDArrayFloat:
    """``(n, D)`` uniform draws, one generator per scenario ``(seed, k)``."""
    return np.stack([np.random.default_rng([seed, int(k)]).random(_DRAWS) for k in indices])


def _at(fm: FleetMap, chain: NDArrayInt, s: NDArrayFloat) -> tuple[NDArrayFloat, NDArrayFloat]:
    """Position ``(..., 2)`` and heading at arc ``s`` on chain ``chain`` (straight past the end)."""
    K = fm.lib_xy.shape[1]
    i = np.clip(np.floor(s).astype(np.int64), 0, K - 2)
    f = (s - i)[..., None]
    p0, p1 = fm.lib_xy[chain, i], fm.lib_xy[chain, i + 1]
    return p0 + f * (p1 - p0), fm.lib_heading[chain, i]


# --------------------------------------------------------------------------- a chunk


def generate_chunk(
    cfg: FleetConfig, indices: NDArrayInt | list[int], *, validate: bool = True
) -> list[Scenario]:
    """Scenarios ``indices`` of the fleet, generated together (see the module docstring).

    ``validate=False`` skips :meth:`Scenario.validate` for callers that validate anyway: the lake's
    ingest validates every record it writes, so :func:`generate_into_lake`'s workers do not do it twice.
    """
    if not cfg.maps:
        raise ConfigError("the fleet needs at least one map (--maps)")
    idx = np.asarray(indices, dtype=np.int64)
    out: dict[int, Scenario] = {}
    for m, path in enumerate(cfg.maps):
        mine = idx[idx % len(cfg.maps) == m]
        if mine.size:
            fm = load_map(path, cfg.speed_limit_mps, cfg.max_lat_accel_mps2)
            for s in _chunk_on_map(fm, cfg, mine):
                out[int(s.metadata.extras["index"])] = s.validate() if validate else s
    return [out[int(k)] for k in idx]


def _chunk_on_map(fm: FleetMap, cfg: FleetConfig, idx: NDArrayInt) -> list[Scenario]:
    n = idx.size
    u = _draws(cfg.seed, idx)
    dt, T = cfg.dt_s, cfg.num_steps
    W = max(0, round(cfg.warmup_s / dt))
    rates = cfg.event_rates
    V = 1 + 3 + cfg.vehicles[1]
    chain = np.zeros((n, V), dtype=np.int64)
    s0 = np.zeros((n, V))
    vd = np.zeros((n, V))
    v_init = np.zeros((n, V))
    length = np.full((n, V), 4.6)
    active = np.zeros((n, V), dtype=bool)
    rows = np.arange(n)
    # the ego
    need = cfg.speed_limit_mps * (W + T) * dt + 20.0  # about how far the ego drives
    long_enough = np.flatnonzero(fm.lib_len >= need)
    pool = long_enough if long_enough.size else np.flatnonzero(fm.lib_len == fm.lib_len.max())
    ego_chain = pool[np.minimum((u[:, _U_EGO] * pool.size).astype(np.int64), pool.size - 1)]
    # a scenario drawn for a cut-in starts the ego on a chain whose neighbour runs beside it in a
    # neighbouring lane for a while (where the map has such chains): cut-ins are rare otherwise
    wants_cut = u[:, _U_EVENTS + 10] < rates.get("cut_in", 0.0)
    besides = np.flatnonzero(fm.lib_nb_ok[:, 20:250].sum(axis=1) >= 40)
    cut_pool = np.intersect1d(pool, besides)
    if cut_pool.size and wants_cut.any():
        pick = cut_pool[np.minimum((u[:, _U_EGO] * cut_pool.size).astype(np.int64), cut_pool.size - 1)]
        ego_chain = np.where(wants_cut, pick, ego_chain)
    chain[:, 0] = ego_chain
    room = np.clip(fm.lib_len[ego_chain] - need, 0.0, None)
    s0[:, 0] = u[:, _U_EGO + 1] * np.minimum(np.maximum(fm.lib_start_len[ego_chain], 0.0), room)
    cap0 = fm.lib_vcap[ego_chain, s0[:, 0].astype(np.int64)]
    vd[:, 0] = np.inf  # the ego keeps to the caps (limits, curves) exactly: a law-abiding expert
    v_init[:, 0] = cap0 * (0.7 + 0.3 * u[:, _U_EGO + 3]) * (0.8 + 0.2 * u[:, _U_EGO + 2])
    length[:, 0] = 4.8
    active[:, 0] = True
    ego_xy, _ = _at(fm, ego_chain, s0[:, 0])
    # events (slots 1, 2, 3): stopped vehicle, hard braking, cut-in; the pedestrian separately
    e = u[:, _U_EVENTS : _U_EVENTS + 20].reshape(n, 4, 5)
    stopped = e[:, 0, 0] < rates.get("stopped_vehicle", 0.0)
    braking = e[:, 1, 0] < rates.get("hard_braking", 0.0)
    nb = fm.lib_neighbor[ego_chain]
    cut_in = (e[:, 2, 0] < rates.get("cut_in", 0.0)) & (nb >= 0)
    ped = e[:, 3, 0] < rates.get("pedestrian_crossing", 0.0)
    # the stopped vehicle: 30-60 m ahead, moved on (up to 30 m) to a point clear of junctions
    chain[:, 1] = ego_chain
    first = (s0[:, 0] + 30.0 + 30.0 * e[:, 0, 1]).astype(np.int64)
    K = fm.lib_xy.shape[1]
    tries = np.clip(first[:, None] + np.arange(0, 31, 2)[None], 0, K - 1)
    ok = fm.lib_clear[ego_chain[:, None], tries] & (tries < fm.lib_len[ego_chain][:, None] - 10.0)
    s0[:, 1] = tries[rows, np.argmax(ok, axis=1)].astype(np.float64)
    stopped &= ok.any(axis=1)
    chain[:, 2], s0[:, 2] = ego_chain, s0[:, 0] + 15.0 + 15.0 * e[:, 1, 1]
    brake_step = (0.5 / dt + e[:, 1, 2] * (2.0 / dt)).astype(np.int64)  # early: small maps end soon
    brake_decel = 6.0 + 2.0 * e[:, 1, 3]
    chain[:, 3] = np.maximum(nb, 0)
    s0[:, 3] = fm.lib_nb_offset[ego_chain] + s0[:, 0] + 8.0 + 10.0 * e[:, 2, 1]
    cut_step = (1.0 / dt + e[:, 2, 2] * (2.5 / dt)).astype(np.int64)
    vd[:, 1:4] = cap0[:, None]
    # the cut-in keeps about the ego's starting speed: the ego closes in slowly, so the gap it cuts into
    # is a short one (a faster car would pull away and never cut in close)
    vd[:, 3] = v_init[:, 0] * (0.85 + 0.15 * e[:, 2, 3])
    v_init[:, 2] = vd[:, 2] * 0.9
    v_init[:, 3] = vd[:, 3]
    placed_xy = np.full((n, V, 2), np.inf)
    placed_xy[:, 0] = ego_xy

    def place(slot: int, wanted: NDArrayBool, gap: float) -> NDArrayBool:
        pos, _ = _at(fm, chain[:, slot], s0[:, slot])
        d = np.min(np.hypot(*(placed_xy - pos[:, None, :]).transpose(2, 0, 1)), axis=1)
        ok = wanted & (d > gap)
        placed_xy[ok, slot] = pos[ok]
        active[:, slot] = ok
        out: NDArrayBool = ok
        return out

    stopped = place(1, stopped, _MIN_GAP_M)
    braking = place(2, braking, _MIN_GAP_M)
    cut_in = place(3, cut_in, 6.0)
    # background: candidates among chain starts near the ego, accepted while they keep their distance
    want = cfg.vehicles[0] + (u[:, _U_WANT] * (cfg.vehicles[1] - cfg.vehicles[0] + 1)).astype(np.int64)
    near = fm.sample_tree.query_ball_point(ego_xy, _NEAR_M)
    bg = u[:, _U_BG:].reshape(n, _CANDIDATES, 4)
    cand_chain = np.zeros((n, _CANDIDATES), dtype=np.int64)
    cand_arc = np.zeros((n, _CANDIDATES))
    has = np.zeros(n, dtype=bool)
    for i in range(n):
        pool = np.asarray(near[i], dtype=np.int64)
        if pool.size:
            pick = pool[np.minimum((bg[i, :, 0] * pool.size).astype(np.int64), pool.size - 1)]
            cand_chain[i], cand_arc[i] = fm.sample_chain[pick], fm.sample_arc[pick]
            has[i] = True
    count = np.zeros(n, dtype=np.int64)
    slot_of = 4 + np.zeros(n, dtype=np.int64)
    for j in range(_CANDIDATES):
        open_ = has & (count < want) & (slot_of < V)
        if not open_.any():
            break
        slot = np.minimum(slot_of, V - 1)
        pos, _ = _at(fm, cand_chain[:, j], cand_arc[:, j])
        d = np.min(np.hypot(*(placed_xy - pos[:, None, :]).transpose(2, 0, 1)), axis=1)
        ok = open_ & (d > _MIN_GAP_M)
        r = rows[ok]
        chain[r, slot[ok]] = cand_chain[ok, j]
        s0[r, slot[ok]] = cand_arc[ok, j]
        cap = fm.lib_vcap[cand_chain[ok, j], cand_arc[ok, j].astype(np.int64)]
        vd[r, slot[ok]] = cap * (0.6 + 0.5 * bg[ok, j, 1])
        v_init[r, slot[ok]] = vd[r, slot[ok]] * (0.7 + 0.3 * bg[ok, j, 3])
        length[r, slot[ok]] = 4.2 + bg[ok, j, 2]
        active[r, slot[ok]] = True
        placed_xy[r, slot[ok]] = pos[ok]
        count += ok
        slot_of += ok
    v_init[:, 1] = 0.0
    # the pedestrian: beside the ego's path ahead, crossing it (placed in _simulate)
    p_ahead = 1.5 + 2.0 * e[:, 3, 1]
    p_side = np.where(e[:, 3, 2] < 0.5, 1.0, -1.0)
    p_start = np.zeros((n, 2))
    p_dir = np.zeros((n, 2))
    p_speed = 1.2 + 0.4 * e[:, 3, 3]
    p_step = (e[:, 3, 4] * 2.0 / dt).astype(np.int64)
    params = cfg.params()
    params_pair = (params, json.dumps(params, sort_keys=True))
    # simulate in buckets of scenarios with about as many vehicles: the pairwise work is V^2 per scenario
    role = np.argsort(~active, axis=1, kind="stable")  # active slots first, in their original order
    n_active = active.sum(axis=1)
    order = np.argsort(n_active, kind="stable")
    xy = np.zeros((n, V, T, 2))
    heading = np.zeros((n, V, T))
    on_map = np.zeros((n, V, T), dtype=bool)
    for lo in range(0, n, _BUCKET):
        b = order[lo : lo + _BUCKET]
        Vb = int(n_active[b].max())
        r = role[b, :Vb]

        def g(a: Any, b: NDArrayInt = b, r: NDArrayInt = r) -> Any:
            return np.take_along_axis(a[b], r, axis=1)

        out, started = _simulate(
            fm, cfg, g(chain), g(s0), g(vd), g(v_init), g(length), g(active), r, ego_chain[b],
            stopped[b], braking[b], brake_step[b], brake_decel[b], cut_in[b], cut_step[b],
            ped[b], p_ahead[b], p_side[b], p_speed[b], p_step[b], W,
        )  # fmt: skip
        rows_b = b[:, None]
        xy[rows_b, r], heading[rows_b, r], on_map[rows_b, r] = out
        brake_step[b], cut_step[b], p_step[b], p_start[b], p_dir[b] = started
    # an event happens only where its trigger came within the recording (see _simulate)
    braking &= brake_step >= 0
    cut_in &= cut_step >= 0
    ped &= p_step >= 0
    return [
        _scenario(
            fm,
            cfg,
            int(idx[i]),
            xy[i],
            heading[i],
            on_map[i],
            length[i],
            active[i],
            {
                "stopped_vehicle": bool(stopped[i]),
                "hard_braking": bool(braking[i]),
                "cut_in": bool(cut_in[i]),
            },
            (int(brake_step[i]), int(cut_step[i])),
            (p_start[i], p_dir[i], float(p_speed[i]), int(p_step[i])) if ped[i] else None,
            params_pair,
        )
        for i in range(n)
    ]


def _simulate(
    fm: FleetMap, cfg: FleetConfig, chain: NDArrayInt, s0: NDArrayFloat, vd: NDArrayFloat,
    v_init: NDArrayFloat,
    length: NDArrayFloat, active: NDArrayBool, role: NDArrayInt, ego_chain: NDArrayInt, stopped: NDArrayBool,
    braking: NDArrayBool, brake_step: NDArrayInt, brake_decel: NDArrayFloat, cut_in: NDArrayBool,
    cut_step: NDArrayInt, ped: NDArrayBool, p_ahead_s: NDArrayFloat, p_side: NDArrayFloat,
    p_speed: NDArrayFloat, p_step: NDArrayInt, W: int,
) -> tuple[
    tuple[NDArrayFloat, NDArrayFloat, NDArrayBool],
    tuple[NDArrayInt, NDArrayInt, NDArrayInt, NDArrayFloat, NDArrayFloat],
]:  # fmt: skip
    """IDM traffic of a bucket: ``(n, V, T, 2)`` positions, ``(n, V, T)`` headings and on-map masks.

    ``role`` is each vehicle's slot in the scenario: 0 the ego, 1 the stopped vehicle, 2 the braking
    one, 3 the cut-in, 4+ the others (also the priority order at crossings).

    The scripted events start when the situation they stand for is there, not at a fixed time: a
    vehicle brakes hard only from 5 m/s or more; the cut-in vehicle moves over while it is 3 m to 9 m or
    1.8 s of the ego's speed ahead of the ego's front bumper (a gap a follower would call a cut-in),
    both moving (2.5 and 2 m/s or more: a lane change in a queue is no cut-in); the pedestrian waits at
    the kerb (``p_side``: left or right) of a crossing point where the ego will be ``p_ahead_s`` after
    the recording starts (6 m more; at its lanes' end at most) and steps out when the ego is about 2 s
    (plus 6 m) from it. Each waits for its earliest step (``brake_step``, ``cut_step``, ``p_step``)
    and must leave time to be seen in the recording. Returned besides the traffic: the steps they
    started at (-1: never, the event did not happen), the pedestrian's ``(n, 2)`` start and unit
    direction.
    """
    n, V = chain.shape
    dt, T = cfg.dt_s, cfg.num_steps
    a_max, b_comf, th, jam = _IDM
    K = fm.lib_xy.shape[1]
    s = s0.copy()
    v = np.where(active, v_init, 0.0)
    a_prev = np.zeros((n, V))
    xy = np.zeros((n, V, T, 2))
    hd = np.zeros((n, V, T))
    on_map = np.zeros((n, V, T), dtype=bool)
    ends = fm.lib_len[chain]  # where each vehicle's mapped lanes end
    same_chain = chain[:, :, None] == chain[:, None, :]
    is_stopped = (role == 1) & stopped[:, None]
    is_brake = (role == 2) & braking[:, None]
    is_cut = (role == 3) & cut_in[:, None]
    # the ego (and the vehicles scripted into its lane) stay on the map: they stop before its end;
    # any other vehicle leaves the recording where its lanes end, as agents leave a logged scene
    keeps = role < 4
    width = np.where(role == 0, 2.0, 1.9)
    corridor = (width[:, :, None] + width[:, None, :]) / 2.0 + 0.3
    yields = role[:, None, :] < role[:, :, None]  # [i, j]: i yields to j's anticipated position (j first)
    eye = np.eye(V, dtype=bool)[None]
    nb_off = fm.lib_nb_offset[ego_chain][:, None]
    half_len = (length[:, :, None] + length[:, None, :]) / 2.0
    brake_at = np.full(n, -1, dtype=np.int64)
    cut_at = np.full(n, -1, dtype=np.int64)
    ped_at = np.full(n, -1, dtype=np.int64)
    p_arc = np.zeros(n)
    p_start = np.full((n, 2), 1e9)  # no pedestrian during the warm-up
    p_dir = np.zeros((n, 2))
    last_start = T - round(3.0 / dt)  # an event needs about 3 s of recording to be seen
    prev = None
    for t in range(-W, T):
        pos, h = _at(fm, chain, s)
        if t == 0:  # the pedestrian's kerb, ahead of where the ego now is
            # where the ego will be in 1.5-3.5 s, and on its mapped lanes
            p_arc = np.minimum(s[:, 0] + 6.0 + p_ahead_s * v[:, 0], ends[:, 0] - 1.0)
            p_at, p_h = _at(fm, ego_chain, p_arc)
            normal = np.stack([-np.sin(p_h), np.cos(p_h)], axis=1)
            p_start = p_at + p_side[:, None] * _PED_START_M * normal
            p_dir = -p_side[:, None] * normal
        # triggers (see the docstring)
        if 0 <= t <= last_start:
            v_ego = v[:, 0]
            v_brake = np.where(is_brake, v, 0.0).max(axis=1)
            go = braking & (brake_at < 0) & (t >= brake_step) & (v_brake >= 5.0)
            brake_at[go] = t
            s_cut = np.where(is_cut, s - nb_off, -np.inf).max(axis=1)
            len_cut = np.where(is_cut, length, 0.0).max(axis=1)
            cut_gap = s_cut - s[:, 0] - (len_cut + length[:, 0]) / 2.0
            go = cut_in & (cut_at < 0) & (t >= cut_step) & (cut_gap >= 3.0)
            go &= cut_gap <= np.maximum(6.0, 0.8 * v_ego)  # close: < 2 s at the crossing after the ego brakes
            go &= (np.where(is_cut, v, 0.0).max(axis=1) >= 2.5) & (v_ego >= 2.0)  # in traffic that moves
            # the lanes stay map neighbours, clear of intersections, from here to past the manoeuvre's end
            # (where the car moves is a lane change in the map's terms: the lanes it leaves and enters)
            v_cut = np.where(is_cut, v, 0.0).max(axis=1)
            reach = 10.0 + 3.5 * v_cut  # 5 m behind to 5 m past where it is after 3.5 s
            span = s_cut[:, None] - 5.0 + np.linspace(0.0, 1.0, 12)[None, :] * reach[:, None]
            at = np.clip(np.nan_to_num(span, neginf=0.0), 0, K - 1).astype(np.int64)
            go &= fm.lib_nb_ok[ego_chain[:, None], at].all(axis=1)
            cut_at[go] = t
            ego_gap = p_arc - s[:, 0] - length[:, 0] / 2.0
            go = ped & (ped_at < 0) & (t >= p_step) & (ego_gap <= 2.0 * v_ego + 6.0) & (ego_gap > 0.5)
            ped_at[go] = t
        # the cut-in vehicle moves into the ego's lane over 2.5 s
        if is_cut.any():
            w = np.clip((t - cut_at[:, None]) / (2.5 / dt), 0.0, 1.0)
            w = np.where(is_cut & (cut_at[:, None] >= 0), 0.5 - 0.5 * np.cos(np.pi * w), 0.0)
            target, h_target = _at(fm, np.broadcast_to(ego_chain[:, None], chain.shape), s - nb_off)
            pos = (1 - w[..., None]) * pos + w[..., None] * target
            h = np.where(w > 0.5, h_target, h)
        # pedestrians: standing at the curb until they step out, then walking across
        walking = ped_at >= 0
        walk = np.where(walking, np.maximum(t - ped_at, 0), 0) * dt * p_speed
        p_pos = p_start + walk[:, None] * p_dir
        p_vel = np.where(walking[:, None], p_speed[:, None] * p_dir, 0.0)
        gone = ~keeps & (s > ends + 2.0)
        if t >= 0:
            xy[:, :, t] = pos
            hd[:, :, t] = h
            on_map[:, :, t] = active & ~gone
        # leaders: others in my corridor ahead now, or in 1.5 s: a crossing vehicle before me in order,
        # any vehicle moving my way (a cut-in), pedestrians
        c, sn = np.cos(h), np.sin(h)
        vel = v[..., None] * np.stack([c, sn], -1) if prev is None else (pos - prev) / dt
        prev = pos
        rx = pos[:, None, :, 0] - pos[:, :, None, 0]  # [i, j] j relative to i
        ry = pos[:, None, :, 1] - pos[:, :, None, 1]
        ci, si = c[:, :, None], sn[:, :, None]
        lon = ci * rx + si * ry
        lat = -si * rx + ci * ry
        fx, fy = rx + _LOOK_S * vel[:, None, :, 0], ry + _LOOK_S * vel[:, None, :, 1]  # where they will be
        lon_f = ci * fx + si * fy
        lat_f = -si * fx + ci * fy
        other = (active & ~gone)[:, None, :] & ~eye
        cos_dh = ci * c[:, None, :] + si * sn[:, None, :]
        # on my own chain the gap is the arc length between us (exact on curves); elsewhere, geometry
        along = s[:, None, :] - s[:, :, None]
        chain_ahead = other & same_chain & (along > 0)
        alat = np.abs(lat)
        now_in = other & ~same_chain & (lon > 0) & (alat < corridor)
        # whatever is right in front of me, in a wider corridor, counts too (merges, tight crossings)
        now_in |= (
            other & ~same_chain & (lon > 0) & (lon < half_len + 2.0 + v[..., None]) & (alat < corridor + 0.7)
        )
        soon_in = other & ~same_chain & (yields | (cos_dh > 0.87)) & (lon_f > 0) & (np.abs(lat_f) < corridor)
        soon_in &= lon > -2.0
        gap = (
            np.where(
                chain_ahead,
                along,
                np.where(now_in, lon, np.where(soon_in, np.minimum(np.maximum(lon, 0.0), lon_f), np.inf)),
            )
            - half_len
        )
        now_in |= chain_ahead
        lead = np.argmin(gap, axis=2)[..., None]
        g = np.take_along_axis(gap, lead, axis=2)[..., 0]
        lead_v = np.take_along_axis(np.where(now_in, cos_dh * v[:, None, :], 0.0), lead, axis=2)[..., 0]
        # a pedestrian in my corridor (now or soon): stop 2 m before it
        pr = p_pos[:, None, :] - pos
        p_lon = c * pr[..., 0] + sn * pr[..., 1]
        p_lat = -sn * pr[..., 0] + c * pr[..., 1]
        pf = pr + _LOOK_S * p_vel[:, None, :]
        pf_lat = -sn * pf[..., 0] + c * pf[..., 1]
        p_in = (
            ped[:, None]
            & (p_lon > 0)
            & ((np.abs(p_lat) < _HALF_CORRIDOR_M + 0.5) | (np.abs(pf_lat) < _HALF_CORRIDOR_M))
        )
        p_gap = np.where(p_in, p_lon - length / 2.0 - 2.0, np.inf)
        use_p = p_gap < g
        g = np.where(use_p, p_gap, g)
        lead_v = np.where(use_p, 0.0, lead_v)
        # the end of the map: a wall for those who stay on it
        wall = np.where(keeps, ends - s - length / 2.0 - 2.0, np.inf)
        use_w = wall < g
        g = np.where(use_w, wall, g)
        lead_v = np.where(use_w, 0.0, lead_v)
        has = np.isfinite(g)
        # desired speed: the cap 10 m ahead (curves, limits), never above the driver's own
        ci_ = np.clip(s + 10.0, 0, K - 1).astype(np.int64)
        v0 = np.minimum(vd, fm.lib_vcap[chain, ci_])
        s_star = jam + np.maximum(0.0, v * th + v * (v - lead_v) / (2 * np.sqrt(a_max * b_comf)))
        inter = np.where(has, (s_star / np.maximum(np.where(has, g, 1.0), 0.1)) ** 2, 0.0)
        a = np.clip(a_max * (1.0 - (v / np.maximum(v0, 0.1)) ** 4 - inter), -9.0, a_max)
        # bounded jerk, unless braking hard is what it takes
        smooth = np.clip(a, a_prev - _JERK_MPS3 * dt, a_prev + _JERK_MPS3 * dt)
        a = np.where((a < -2.5) & (a < smooth), a, smooth)
        # the cut-in car, until it moves over, keeps station beside and ahead of the ego: it steers its
        # bumper gap to the middle of the trigger window (left to IDM and its desired speed, the gap
        # drifted out of the window in most scenarios: 5 of 80 triggered on the two maps that allow
        # cut-ins); it still brakes for a leader of its own (IDM's interaction term)
        waiting = is_cut & (cut_at[:, None] < 0)
        if waiting.any():
            v_ego = v[:, 0]
            s_cut = np.where(is_cut, s - nb_off, -np.inf).max(axis=1)
            len_cut = np.where(is_cut, length, 0.0).max(axis=1)
            cut_gap = s_cut - s[:, 0] - (len_cut + length[:, 0]) / 2.0
            target = 0.5 * (3.0 + np.maximum(6.0, 0.8 * v_ego))
            v_want = np.maximum(v_ego - 0.4 * (cut_gap - target), 0.0)
            a_keep = np.clip(v_want[:, None] - v, -3.0, 2.0)  # reach it in about a second
            a_lead = np.clip(a_max * (1.0 - inter), -9.0, a_max)
            a = np.where(waiting, np.minimum(a_keep, a_lead), a)
        # scripts: the stopped vehicle stands, the braking one brakes from its step on
        a = np.where(is_stopped, 0.0, a)
        hard = is_brake & (brake_at[:, None] >= 0)
        a = np.where(hard, np.where(v > 0, -brake_decel[:, None], 0.0), a)
        v = np.where(is_stopped, 0.0, v)
        a = np.where(active & ~gone, a, 0.0)
        s = s + v * dt  # explicit Euler, as the simulator integrates
        v = np.maximum(v + a * dt, 0.0)
        a_prev = a
    return (xy, hd, on_map), (brake_at, cut_at, ped_at, p_start, p_dir)


def _scenario(
    fm: FleetMap,
    cfg: FleetConfig,
    index: int,
    xy_v: NDArrayFloat,
    hd_v: NDArrayFloat,
    valid_v: NDArrayBool,
    length_v: NDArrayFloat,
    active: NDArrayBool,
    scripted: dict[str, bool],
    steps: tuple[int, int],
    pedestrian: tuple[NDArrayFloat, NDArrayFloat, float, int] | None,
    params_pair: tuple[dict[str, Any], str],
) -> Scenario:
    """One scenario from its rows of a chunk."""
    T, dt = cfg.num_steps, cfg.dt_s
    slots = np.flatnonzero(active & valid_v.any(axis=1))
    xy = _quantize(xy_v[slots], _XY_STEP_M)
    vel: NDArrayFloat = np.gradient(xy, dt, axis=1)
    speed = np.hypot(vel[..., 0], vel[..., 1])
    heading = np.where(speed > 0.3, np.arctan2(vel[..., 1], vel[..., 0]), hd_v[slots])
    heading = np.clip(_quantize(heading, _HEADING_STEP_RAD), -np.pi, np.pi)
    vel = _quantize(vel, _SPEED_STEP_MPS)
    valid = valid_v[slots]
    names = ["ego"] + [f"veh_{k:03d}" for k in range(1, slots.size)]
    kinds = [int(ObjectType.VEHICLE)] * slots.size
    sizes = [[4.8 if k == 0 else float(length_v[k]), 2.0 if k == 0 else 1.9, 1.6] for k in slots.tolist()]
    cats = ["synthetic_car"] * slots.size
    name_of = {int(k): names[i] for i, k in enumerate(slots.tolist())}
    scripted = {
        k: v and {"stopped_vehicle": 1, "hard_braking": 2, "cut_in": 3}[k] in name_of
        for k, v in scripted.items()
    }
    events: list[dict[str, Any]] = []
    if scripted["stopped_vehicle"]:
        events.append({"type": "stopped_vehicle", "track_id": name_of[1], "step": 0})
    if scripted["hard_braking"]:
        events.append({"type": "hard_braking", "track_id": name_of[2], "step": steps[0]})
    if scripted["cut_in"]:
        events.append({"type": "cut_in", "track_id": name_of[3], "step": steps[1]})
    all_xy, all_h, all_v, all_valid = [xy], [heading], [vel], [valid]
    if pedestrian is not None:
        start, direction, speed_p, step = pedestrian
        t_idx = np.arange(T)
        walked = np.maximum(t_idx - step, 0) * dt * speed_p
        all_xy.append(_quantize((start[None] + walked[:, None] * direction[None])[None], _XY_STEP_M))
        all_h.append(_quantize(np.full((1, T), np.arctan2(direction[1], direction[0])), _HEADING_STEP_RAD))
        all_v.append(
            _quantize(
                np.where((t_idx >= step)[:, None], speed_p * direction[None], 0.0)[None], _SPEED_STEP_MPS
            )
        )
        all_valid.append(np.ones((1, T), dtype=bool))
        names.append("ped_001")
        kinds.append(int(ObjectType.PEDESTRIAN))
        sizes.append([0.6, 0.6, 1.75])
        cats.append("synthetic_pedestrian")
        events.append({"type": "pedestrian_crossing", "track_id": "ped_001", "step": int(step)})
    A = len(names)
    tracks = Tracks(
        track_ids=np.asarray(names, dtype=np.str_),
        object_type=np.asarray(kinds, dtype=np.uint8),
        category=np.asarray(cats, dtype=np.str_),
        xy_m=np.concatenate(all_xy),
        z_m=np.full((A, T), np.nan),
        heading_rad=np.concatenate(all_h),
        velocity_mps=np.concatenate(all_v),
        size_m=np.asarray(sizes, dtype=np.float64),
        valid=np.concatenate(all_valid),
    )
    pts = tracks.xy_m[tracks.valid]
    lo, hi = pts.min(axis=0) - cfg.crop_margin_m, pts.max(axis=0) + cfg.crop_margin_m
    params, params_json = params_pair
    sid = f"synthetic-{cfg.seed}-{index:07d}"
    digest = hashlib.sha256(f"{GENERATOR}|{cfg.seed}|{index}|{fm.name}|{params_json}".encode()).hexdigest()
    md = ScenarioMetadata(
        frame=fm.frame,
        provenance=Provenance(f"synthetic://{GENERATOR}/{cfg.seed}/{index}", digest, "synthetic", GENERATOR),
        location=fm.location,
        licence=f"synthetic traffic (datadrive); map: {fm.licence or 'see the map source'}",
        extras={
            "generator": GENERATOR,
            "seed": cfg.seed,
            "index": index,
            "params": params,
            "map": fm.name,
            "events": sorted(events, key=lambda x: (x["step"], x["type"])),
        },
    )
    t0 = 1_700_000_000_000_000_000 + index * 1_000_000_000_000
    ts = t0 + np.arange(T, dtype=np.int64) * round(dt * 1e9)
    return Scenario(sid, "synthetic", ts, tracks, md, map=_crop(fm, lo, hi), ego_index=0)


def _quantize(x: NDArrayFloat, step: float) -> NDArrayFloat:
    """``x`` on a grid of ``step`` (a power of two: the float64's low mantissa bits become zeros that
    compress; see ``_XY_STEP_M``). NaN stays NaN."""
    out: NDArrayFloat = np.round(x / step) * step
    return out


def _crop(fm: FleetMap, lo: NDArrayFloat, hi: NDArrayFloat) -> MapFeatures:
    """The map within the box ``[lo, hi]``: features that reach into it, clipped to the stretch of each
    between its first and last point in the box (one point more on each side), relations between kept
    features, and the speed limits."""
    m = fm.features
    keep = np.all(fm.feature_hi >= lo, axis=1) & np.all(fm.feature_lo <= hi, axis=1)
    idx = np.flatnonzero(keep)
    counts_all = np.diff(m.offsets)
    counts = counts_all[idx]
    starts = np.repeat(m.offsets[idx], counts)
    rank = np.arange(int(counts.sum())) - np.repeat(np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    pts = m.xyz_m[starts + rank]
    inside = np.all((pts[:, :2] >= lo) & (pts[:, :2] <= hi), axis=1)
    # per feature: first and last point inside (features crossing the box between two points: all of them)
    owner = np.repeat(np.arange(idx.size), counts)
    first = np.full(idx.size, np.iinfo(np.int64).max)
    last = np.full(idx.size, -1)
    np.minimum.at(first, owner[inside], rank[inside])
    np.maximum.at(last, owner[inside], rank[inside])
    none = last < 0
    first = np.where(none, 0, np.maximum(first - 1, 0))
    last = np.where(none, counts - 1, np.minimum(last + 1, counts - 1))
    keep_pt = (rank >= first[owner]) & (rank <= last[owner])
    # a polygon (crosswalk, drivable area, ...) stays whole: clipping would open it
    closed = np.isin(m.kind[idx], (MapFeatureKind.CROSSWALK, MapFeatureKind.DRIVABLE_AREA,
                                   MapFeatureKind.SPEED_BUMP, MapFeatureKind.DRIVEWAY))  # fmt: skip
    keep_pt |= closed[owner]
    new_counts = np.bincount(owner[keep_pt], minlength=idx.size)
    offsets = np.concatenate([[0], np.cumsum(new_counts)]).astype(np.int64)
    new = np.full(m.num_features, -1, dtype=np.int64)
    new[idx] = np.arange(idx.size)
    rel = m.relations
    ok = keep[rel[:, 0]] & keep[rel[:, 1]] if rel.shape[0] else np.zeros(0, dtype=bool)
    rel = rel[ok].copy()
    rel[:, 0], rel[:, 1] = new[rel[:, 0]], new[rel[:, 1]]
    limits = fm.limits[idx]
    return MapFeatures(
        m.feature_ids[idx], m.kind[idx], m.subtype[idx], m.is_intersection[idx], offsets,
        _quantize(pts[keep_pt], _XY_STEP_M), rel,
        limits if np.isfinite(limits).any() else None,
    )  # fmt: skip


# --------------------------------------------------------------------------- many


def generate(cfg: FleetConfig, start: int, count: int, *, chunk: int = 256) -> Iterator[Scenario]:
    """Scenarios ``start .. start + count - 1`` of the fleet, generated ``chunk`` at a time."""
    if not cfg.maps:
        raise ConfigError("the fleet needs at least one map (--maps)")
    for lo in range(start, start + count, chunk):
        yield from generate_chunk(cfg, np.arange(lo, min(lo + chunk, start + count)))


@dataclass
class FleetReport:
    """What a fleet generation wrote.

    Attributes:
        scenarios: Scenarios written.
        commits: Lake commits (one per chunk).
        lake_version: The region's lake version after the last commit.
        events: Injected events by type.
        seconds: Wall time of the whole run.
        generate_seconds: Time the workers spent generating (summed over workers).
        ingest_seconds: Time the caller spent in the lake's ingest path (conversion and commits).
    """

    scenarios: int
    commits: int
    lake_version: int | None
    events: dict[str, int]
    seconds: float
    generate_seconds: float = 0.0
    ingest_seconds: float = 0.0


def _chunk_task(args: tuple[FleetConfig, int, int]) -> tuple[list[Scenario], float]:
    cfg, lo, hi = args
    t0 = time.process_time()
    out = generate_chunk(cfg, np.arange(lo, hi), validate=False)  # the lake validates on ingest
    return out, time.process_time() - t0


def generate_into_lake(
    lake: Lake,
    region: str,
    cfg: FleetConfig,
    count: int,
    *,
    start: int = 0,
    commit_every: int = 500,
    engine: Engine | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FleetReport:
    """Generate ``count`` scenarios into ``region``, a commit per ``commit_every`` (see the module docstring).

    This is also the function ``make demo`` calls for its volume: ``progress(done, total)`` is called
    after every commit.

    Raises:
        ConfigError: no maps, a map that cannot be read, a failed chunk.
    """
    from datadrive.compute import InlineEngine

    if not cfg.maps:
        raise ConfigError("the fleet needs at least one map (--maps)")
    if count < 0:
        raise ConfigError("the number of scenarios must not be negative")
    for m in cfg.maps:  # fail early on a bad map, in this process
        load_map(m, cfg.speed_limit_mps, cfg.max_lat_accel_mps2)
    eng = engine or InlineEngine()
    tasks = [
        (cfg, lo, min(lo + commit_every, start + count)) for lo in range(start, start + count, commit_every)
    ]
    t0 = time.perf_counter()
    done = commits = 0
    version = None
    gen_s = ingest_s = 0.0
    counts = dict.fromkeys(EVENT_TYPES, 0)
    for outcome in eng.imap(_chunk_task, tasks):
        if outcome.failure is not None:
            raise ConfigError(f"fleet generation failed: {outcome.failure}")
        batch, spent = outcome.value or ([], 0.0)
        gen_s += spent
        lo = tasks[outcome.index][1]
        t1 = time.perf_counter()
        # the chunk is one lake version (the lake's default batch would split it into several commits)
        report = lake.ingest_records(
            batch, region, name=f"{GENERATOR}/{cfg.seed}/{lo}", batch_size=max(1, len(batch))
        )
        ingest_s += time.perf_counter() - t1
        version = report.lake_version_after
        commits += 1
        for s in batch:
            for ev in s.metadata.extras.get("events", []):
                counts[ev["type"]] = counts.get(ev["type"], 0) + 1
        done += len(batch)
        del batch
        if progress is not None:
            progress(done, count)
    return FleetReport(done, commits, version, counts, time.perf_counter() - t0, gen_s, ingest_s)
