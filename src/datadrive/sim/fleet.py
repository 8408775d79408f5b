"""A synthetic fleet: traffic on the real maps of the samples, with events injected at controlled rates.

Each synthetic scenario is an ordinary :class:`~datadrive.core.scenario.Scenario`
with ``source = "synthetic"``; its metadata names the generator, its seed, its
index and every parameter (``extras["generator"]``, ``["seed"]``,
``["params"]``), and the events injected into it (``extras["events"]``: type,
track, step), so it is never mistaken for recorded data and can be
reproduced exactly.

How one scenario is made (:func:`generate_scenario`, deterministic given
``(seed, index)``):

* a map from ``maps`` (any file a datadrive reader reads that carries lanes:
  AV2 map JSON, Waymo, INTERACTION/Lanelet2 OSM, CommonRoad XML), cropped to
  ``crop_radius_m`` around the ego's start;
* the ego on a random lane, driving along a random successor chain; 6-20
  other vehicles on lanes near it (never overlapping), with desired speeds
  drawn around the lanes' speed limit (``speed_limit_mps``, also written to
  ``extras["lane_speed_limits_mps"]``);
* every vehicle follows its lane chain with IDM behind the nearest vehicle
  ahead of it in its lane (9.1 s at 10 Hz by default);
* independently, with their rates: a **cut-in** (a vehicle in the lane beside
  the ego, 6-15 m ahead, moves into the ego's lane over 2.5 s), **hard braking
  ahead** (the vehicle ahead of the ego brakes at 6-8 m/s² to a stop), a
  **pedestrian crossing** (a pedestrian walks across the ego's lane 25-45 m
  ahead at 1.2-1.6 m/s), a **stopped vehicle** (a vehicle standing in the
  ego's lane 30-60 m ahead).

:func:`generate_into_lake` streams generated scenarios into a lake region in
commits of ``commit_every`` scenarios through ``Lake.ingest_records`` (the
library's own ingest path, with its validation, pseudonyms and audit), on
any compute engine; nothing but one chunk per worker is ever in memory.

Notation:
    N: vehicles of a scenario. T: steps. K: path points.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datadrive.core.scenario import (
    MapFeatures,
    ObjectType,
    Provenance,
    Scenario,
    ScenarioMetadata,
    Tracks,
)
from datadrive.core.typing import NDArrayFloat
from datadrive.errors import ConfigError
from datadrive.sim.lanes import LaneGraph, chain_path, resample_polyline

if TYPE_CHECKING:
    from datadrive.compute import Engine
    from datadrive.lake import Lake

__all__ = [
    "EVENT_TYPES",
    "FleetConfig",
    "FleetMap",
    "generate",
    "generate_into_lake",
    "generate_scenario",
    "load_map",
]

GENERATOR = "datadrive.sim.fleet/1"
EVENT_TYPES = ("cut_in", "hard_braking", "pedestrian_crossing", "stopped_vehicle")


@dataclass(frozen=True)
class FleetConfig:
    """What to generate.

    Attributes:
        maps: Map files (or folders) to draw from.
        seed: The fleet's seed; scenario ``k`` uses ``(seed, k)``.
        num_steps: Steps per scenario at ``dt_s``.
        dt_s: The step.
        vehicles: Range of other vehicles per scenario.
        speed_limit_mps: Speed limit given to every lane.
        event_rates: Probability per scenario of each event type.
        crop_radius_m: Map features kept around the ego's start.
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
    crop_radius_m: float = 120.0

    def params(self) -> dict[str, Any]:
        d = asdict(self)
        d["maps"] = [Path(m).name for m in self.maps]
        return d


@dataclass
class FleetMap:
    """A map the fleet drives on."""

    name: str
    frame: str
    location: str | None
    licence: str | None
    features: MapFeatures
    lanes: LaneGraph
    usable: np.ndarray[Any, Any]  # lanes long enough to start on


@cache
def load_map(path: str) -> FleetMap:
    """The first map with lanes that a datadrive reader finds at ``path`` (cached per process).

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
                    usable = np.flatnonzero(lanes.lengths_m >= 8.0)
                    if usable.size == 0:
                        continue
                    md = record.metadata
                    return FleetMap(p.stem, md.frame, md.location, md.licence, record.map, lanes, usable)
    except InputError as exc:
        raise ConfigError(f"--maps {path}: {exc.reason}") from exc
    raise ConfigError(f"--maps {path}: no map with lanes found there")


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def _crop(m: MapFeatures, centre: NDArrayFloat, radius: float) -> MapFeatures:
    """Features with a point within ``radius`` of ``centre``; relations between kept features."""
    d = np.hypot(m.xyz_m[:, 0] - centre[0], m.xyz_m[:, 1] - centre[1])
    owner = np.repeat(np.arange(m.num_features), np.diff(m.offsets))
    keep = np.zeros(m.num_features, dtype=bool)
    keep[owner[d <= radius]] = True
    idx = np.flatnonzero(keep)
    new = np.full(m.num_features, -1, dtype=np.int64)
    new[idx] = np.arange(idx.size)
    counts = np.diff(m.offsets)[idx]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    pts = np.concatenate([m.xyz_m[m.offsets[f] : m.offsets[f + 1]] for f in idx]) if idx.size else m.xyz_m[:0]
    rel = m.relations
    ok = keep[rel[:, 0]] & keep[rel[:, 1]] if rel.shape[0] else np.zeros(0, dtype=bool)
    rel = rel[ok].copy()
    rel[:, 0], rel[:, 1] = new[rel[:, 0]], new[rel[:, 1]]
    return MapFeatures(
        m.feature_ids[idx], m.kind[idx], m.subtype[idx], m.is_intersection[idx], offsets, pts, rel
    )


def _random_chain(fm: FleetMap, lane: int, length: float, rng: np.random.Generator) -> NDArrayFloat:
    pts, _ = chain_path(fm.lanes, lane, length, lambda _c, s: s[int(rng.integers(len(s)))])
    return pts


def generate_scenario(fm: FleetMap, cfg: FleetConfig, index: int, map_index: int = 0) -> Scenario:
    """Synthetic scenario ``index`` of the fleet on map ``fm`` (see the module docstring)."""
    rng = _rng(cfg.seed, index)
    T, dt = cfg.num_steps, cfg.dt_s
    lanes = fm.lanes
    K = 400  # 1 m path points: 400 m is more than 9 s at highway speed plus the start offset
    # --- the ego
    ego_lane = int(fm.usable[rng.integers(fm.usable.size)])
    s_ego = float(rng.uniform(0.0, max(lanes.lengths_m[ego_lane] - 5.0, 0.1)))
    paths = [resample_polyline(_random_chain(fm, ego_lane, s_ego + K, rng), 1.0, K)]
    s0 = [s_ego]
    v_des = [cfg.speed_limit_mps * float(rng.uniform(0.8, 1.0))]
    kinds = [int(ObjectType.VEHICLE)]
    sizes = [(4.8, 2.0)]
    start_xy = paths[0][int(s_ego)]
    ego_path = paths[0]
    events: list[dict[str, Any]] = []
    scripts: dict[int, dict[str, Any]] = {}

    def free(path: NDArrayFloat, s: float, min_gap: float = 9.0) -> bool:
        p = path[int(np.clip(s, 0, K - 1))]
        return all(
            np.hypot(*(q[int(np.clip(si, 0, K - 1))] - p)) > min_gap for q, si in zip(paths, s0, strict=True)
        )

    def add(path: NDArrayFloat, s: float, vd: float, size: tuple[float, float] = (4.6, 1.9)) -> int:
        paths.append(path)
        s0.append(s)
        v_des.append(vd)
        kinds.append(int(ObjectType.VEHICLE))
        sizes.append(size)
        return len(paths) - 1

    # --- events first (they need room near the ego)
    rates = cfg.event_rates
    if rng.random() < rates.get("stopped_vehicle", 0.0):
        s = s_ego + float(rng.uniform(30.0, 60.0))
        if free(ego_path, s):
            a = add(ego_path, s, 0.0)
            scripts[a] = {"stopped": True}
            events.append({"type": "stopped_vehicle", "agent": a, "step": 0})
    if rng.random() < rates.get("hard_braking", 0.0):
        s = s_ego + float(rng.uniform(15.0, 30.0))
        if free(ego_path, s):
            a = add(ego_path, s, v_des[0])
            step = int(rng.integers(int(1.5 / dt), int(4.0 / dt)))
            scripts[a] = {"brake_at": step, "decel": float(rng.uniform(6.0, 8.0))}
            events.append({"type": "hard_braking", "agent": a, "step": step})
    nb = lanes.left[ego_lane] if lanes.left[ego_lane] >= 0 else lanes.right[ego_lane]
    if nb >= 0 and rng.random() < rates.get("cut_in", 0.0):
        own = lanes.points[ego_lane]
        other = lanes.points[nb]
        same_dir = np.dot(own[-1] - own[0], other[-1] - other[0]) > 0
        if same_dir:
            chain = _random_chain(fm, nb, K + 60.0, rng)
            j = int(np.argmin(np.hypot(*(chain - start_xy).T)))
            arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(chain, axis=0).T))])
            nb_path = resample_polyline(chain, 1.0, K, start_m=float(arc[j]) - s_ego)
            s = s_ego + float(rng.uniform(6.0, 15.0))
            if free(nb_path, s, 6.0):
                a = add(nb_path, s, v_des[0] * float(rng.uniform(0.85, 1.0)))
                step = int(rng.integers(int(1.0 / dt), int(3.5 / dt)))
                scripts[a] = {"cut_in_at": step, "target": ego_path, "duration": int(2.5 / dt)}
                events.append({"type": "cut_in", "agent": a, "step": step})
    pedestrian: dict[str, Any] | None = None
    if rng.random() < rates.get("pedestrian_crossing", 0.0):
        s = s_ego + float(rng.uniform(25.0, 45.0))
        k = int(np.clip(s, 1, K - 2))
        d = ego_path[k + 1] - ego_path[k - 1]
        normal = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-6)
        side = 1.0 if rng.random() < 0.5 else -1.0
        speed = float(rng.uniform(1.2, 1.6))
        step = int(rng.integers(0, int(2.0 / dt)))
        pedestrian = {
            "start": ego_path[k] + side * 6.0 * normal,
            "dir": -side * normal,
            "speed": speed,
            "step": step,
        }
    # --- background traffic on lanes near the ego
    near = lanes.match(start_xy[None], None, max_distance_m=1.0)  # warm the index
    del near
    centre_d = np.asarray([float(np.min(np.hypot(*(lanes.points[i] - start_xy).T))) for i in fm.usable])
    nearby = fm.usable[centre_d < 60.0]
    want = int(rng.integers(cfg.vehicles[0], cfg.vehicles[1] + 1))
    tries = 0
    while len(paths) - 1 < want and tries < want * 6 and nearby.size:
        tries += 1
        ln = int(nearby[rng.integers(nearby.size)])
        s = float(rng.uniform(0.0, lanes.lengths_m[ln]))
        path = resample_polyline(_random_chain(fm, ln, s + K, rng), 1.0, K)
        if free(path, s):
            add(
                path,
                s,
                cfg.speed_limit_mps * float(rng.uniform(0.6, 1.1)),
                (float(rng.uniform(4.2, 5.2)), 1.9),
            )
    # --- simulate: IDM along each path
    N = len(paths)
    P = np.stack(paths)  # (N, K, 2)
    s_arr: NDArrayFloat = np.asarray(s0, dtype=np.float64)
    vd = np.asarray(v_des)
    v = vd * rng.uniform(0.7, 1.0, N)
    v[[a for a, sc in scripts.items() if sc.get("stopped")]] = 0.0
    L = np.asarray([z[0] for z in sizes])
    xy = np.zeros((N, T, 2))
    for t in range(T):
        pos = _at(P, s_arr)
        for a, sc in scripts.items():
            if "cut_in_at" in sc and t >= sc["cut_in_at"]:
                w = min(1.0, (t - sc["cut_in_at"]) / sc["duration"])
                w = 0.5 - 0.5 * np.cos(np.pi * w)
                pos[a] = (1 - w) * pos[a] + w * _at(sc["target"][None], s_arr[a : a + 1])[0]
        xy[:, t] = pos
        heading = _heading(P, s_arr)
        acc = _idm(pos, heading, v, vd, L)
        for a, sc in scripts.items():
            if sc.get("stopped"):
                acc[a], v[a] = 0.0, 0.0
            elif "brake_at" in sc and t >= sc["brake_at"]:
                acc[a] = -sc["decel"] if v[a] > 0 else 0.0
        s_arr = s_arr + v * dt
        v = np.maximum(v + acc * dt, 0.0)
    # headings and velocities from the trajectories (what a recording would give)
    vel: NDArrayFloat = np.asarray(np.gradient(xy, dt, axis=1))
    speed_t = np.hypot(vel[..., 0], vel[..., 1])
    hd = np.arctan2(vel[..., 1], vel[..., 0])
    path_h = _heading_series(P, xy)
    hd = np.where(speed_t > 0.3, hd, path_h)
    names = ["ego", *[f"veh_{i:03d}" for i in range(1, N)]]
    all_xy: list[NDArrayFloat] = [xy]
    all_h: list[NDArrayFloat] = [hd]
    all_v: list[NDArrayFloat] = [vel]
    size_rows = [[z[0], z[1], 1.6] for z in sizes]
    cats = ["synthetic_car"] * N
    if pedestrian is not None:
        t_idx = np.arange(T)
        moving = np.maximum(t_idx - pedestrian["step"], 0) * dt
        pxy = pedestrian["start"][None] + moving[:, None] * pedestrian["speed"] * pedestrian["dir"][None]
        pv = np.where(
            (t_idx >= pedestrian["step"])[:, None], pedestrian["speed"] * pedestrian["dir"][None], 0.0
        )
        all_xy.append(pxy[None])
        all_h.append(np.full((1, T), np.arctan2(pedestrian["dir"][1], pedestrian["dir"][0])))
        all_v.append(pv[None])
        names.append("ped_001")
        kinds.append(int(ObjectType.PEDESTRIAN))
        size_rows.append([0.6, 0.6, 1.75])
        cats.append("synthetic_pedestrian")
        events.append({"type": "pedestrian_crossing", "agent": len(names) - 1, "step": pedestrian["step"]})
    A = len(names)
    tracks = Tracks(
        track_ids=np.asarray(names, dtype=np.str_),
        object_type=np.asarray(kinds, dtype=np.uint8),
        category=np.asarray(cats, dtype=np.str_),
        xy_m=np.concatenate(all_xy),
        z_m=np.full((A, T), np.nan),
        heading_rad=np.concatenate(all_h),
        velocity_mps=np.concatenate(all_v),
        size_m=np.asarray(size_rows, dtype=np.float64),
        valid=np.ones((A, T), dtype=bool),
    )
    cropped = _crop(fm.features, start_xy, cfg.crop_radius_m)
    lane_ids = cropped.feature_ids[cropped.kind == 0].tolist()
    params = cfg.params()
    ev_out = [{"type": e["type"], "track_id": names[e["agent"]], "step": int(e["step"])} for e in events]
    sid = f"synthetic-{cfg.seed}-{index:07d}"
    digest = hashlib.sha256(json.dumps([GENERATOR, cfg.seed, index, params, fm.name]).encode()).hexdigest()
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
            "events": ev_out,
            "lane_speed_limits_mps": {str(i): cfg.speed_limit_mps for i in lane_ids},
        },
    )
    t0 = 1_700_000_000_000_000_000 + index * 1_000_000_000_000
    ts = t0 + np.arange(T, dtype=np.int64) * round(dt * 1e9)
    return Scenario(sid, "synthetic", ts, tracks, md, map=cropped, ego_index=0).validate()


def _at(P: NDArrayFloat, s: NDArrayFloat) -> NDArrayFloat:
    K = P.shape[1]
    i = np.clip(np.floor(s).astype(np.int64), 0, K - 2)
    f = (s - i)[:, None]
    rows = np.arange(P.shape[0])
    out: NDArrayFloat = P[rows, i] + f * (P[rows, i + 1] - P[rows, i])
    return out


def _heading(P: NDArrayFloat, s: NDArrayFloat) -> NDArrayFloat:
    K = P.shape[1]
    i = np.clip(np.floor(s).astype(np.int64), 0, K - 2)
    rows = np.arange(P.shape[0])
    d = P[rows, i + 1] - P[rows, i]
    out: NDArrayFloat = np.arctan2(d[:, 1], d[:, 0])
    return out


def _heading_series(P: NDArrayFloat, xy: NDArrayFloat) -> NDArrayFloat:
    d = np.diff(xy, axis=1, append=xy[:, -1:] + (xy[:, -1:] - xy[:, -2:-1]))
    out: NDArrayFloat = np.arctan2(d[..., 1], d[..., 0])
    return out


def _idm(
    pos: NDArrayFloat, heading: NDArrayFloat, v: NDArrayFloat, vd: NDArrayFloat, L: NDArrayFloat
) -> NDArrayFloat:
    """IDM (a=1.5, b=2.0, T=1.5 s, s0=2 m) behind the nearest vehicle ahead in the same lane corridor."""
    c, s = np.cos(heading), np.sin(heading)
    dx = pos[None, :, 0] - pos[:, None, 0]
    dy = pos[None, :, 1] - pos[:, None, 1]
    lon = c[:, None] * dx + s[:, None] * dy
    lat = -s[:, None] * dx + c[:, None] * dy
    ahead = (lon > 0) & (np.abs(lat) < 1.8)
    np.fill_diagonal(ahead, False)
    gap = np.where(ahead, lon - (L[:, None] + L[None, :]) / 2.0, np.inf)
    lead = np.argmin(gap, axis=1)
    g = gap[np.arange(v.size), lead]
    has = np.isfinite(g)
    dv = v - v[lead]
    a_max, b, th, s0 = 1.5, 2.0, 1.5, 2.0
    s_star = s0 + np.maximum(0.0, v * th + v * dv / (2 * np.sqrt(a_max * b)))
    free = 1.0 - (v / np.maximum(vd, 0.1)) ** 4
    inter = np.where(has, (s_star / np.maximum(np.where(has, g, 1.0), 0.1)) ** 2, 0.0)
    out: NDArrayFloat = np.clip(a_max * (free - inter), -9.0, a_max)
    return out


def _chunk(args: tuple[FleetConfig, int, int]) -> list[Scenario]:
    cfg, lo, hi = args
    maps = [load_map(m) for m in cfg.maps]
    return [generate_scenario(maps[k % len(maps)], cfg, k) for k in range(lo, hi)]


def generate(cfg: FleetConfig, start: int, count: int) -> Iterator[Scenario]:
    """Scenarios ``start .. start + count - 1`` of the fleet, one at a time."""
    if not cfg.maps:
        raise ConfigError("the fleet needs at least one map (--maps)")
    maps = [load_map(m) for m in cfg.maps]
    for k in range(start, start + count):
        yield generate_scenario(maps[k % len(maps)], cfg, k)


@dataclass
class FleetReport:
    """What a fleet generation wrote."""

    scenarios: int
    commits: int
    lake_version: int | None
    events: dict[str, int]
    seconds: float


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
    """Generate ``count`` scenarios into ``region``, committing every ``commit_every``.

    Memory stays bounded: generation runs in chunks on the engine, and each
    chunk is ingested (``Lake.ingest_records``) and dropped before the next is
    awaited beyond the engine's window.
    """
    import time

    from datadrive.compute import InlineEngine

    if not cfg.maps:
        raise ConfigError("the fleet needs at least one map (--maps)")
    for m in cfg.maps:  # fail early on a bad map, in this process
        load_map(m)
    eng = engine or InlineEngine()
    tasks = [
        (cfg, lo, min(lo + commit_every, start + count)) for lo in range(start, start + count, commit_every)
    ]
    t0 = time.perf_counter()
    done = 0
    commits = 0
    version = None
    counts = dict.fromkeys(EVENT_TYPES, 0)
    for outcome in eng.imap(_chunk, tasks):
        if outcome.failure is not None:
            raise ConfigError(f"fleet generation failed: {outcome.failure}")
        batch = outcome.value or []
        lo = tasks[outcome.index][1]
        report = lake.ingest_records(batch, region, name=f"{GENERATOR}/{cfg.seed}/{lo}")
        version = report.lake_version_after
        commits += 1
        for s in batch:
            for e in s.metadata.extras.get("events", []):
                counts[e["type"]] = counts.get(e["type"], 0) + 1
        done += len(batch)
        del batch
        if progress is not None:
            progress(done, count)
    return FleetReport(done, commits, version, counts, time.perf_counter() - t0)
