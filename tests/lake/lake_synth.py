"""A tiny synthetic log format for lake tests: ``*.ddsynth`` JSON files.

Each file names a seed and sizes; the reader generates the scenarios (and,
optionally, a telemetry log with a GNSS fix) deterministically from them, so
a test can make hundreds of distinct small inputs and know exactly what each
holds without reading our own lake. ``{"corrupt": true}`` or bytes that are
not JSON make the reader fail with a :class:`CorruptFileError`;
``sleep_s`` slows a read down (for kill tests).

Used in-process (``REGISTRY``) and by subprocesses through
``datadrive ingest --adapters lake_synth:REGISTRY`` with ``tests/lake`` on
``PYTHONPATH``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from datadrive.core import (
    MapBuilder,
    MapFeatureKind,
    MapRelation,
    ObjectType,
    Provenance,
    Scenario,
    ScenarioMetadata,
    Signal,
    Telemetry,
    Tracks,
    TrafficLights,
)
from datadrive.errors import CorruptFileError
from datadrive.sources import DEFAULT_REGISTRY, Adapter, Record, Registry, file_sha256

SUFFIX = ".ddsynth"


def make_scenario(
    seed: int,
    index: int = 0,
    *,
    num_tracks: int = 4,
    num_steps: int = 6,
    with_map: bool = True,
    vehicle: str = "veh-7",
    source: str = "synthetic",
    path: str = "x.ddsynth",
    sha: str = "0" * 64,
) -> Scenario:
    """A deterministic scenario; its id embeds the vehicle name (an identifier)."""
    rng = np.random.default_rng([seed, index])
    ids = np.array([f"t{i}" for i in range(num_tracks)])
    types = np.array([i % 4 for i in range(num_tracks)], dtype=np.uint8)
    types[0] = ObjectType.VEHICLE
    tracks = Tracks.allocate(ids, types, np.array(["car"] * num_tracks), num_steps)
    tracks.xy_m[:] = rng.normal(1000.0, 50.0, size=tracks.xy_m.shape)
    tracks.z_m[:] = rng.normal(size=tracks.z_m.shape)
    tracks.heading_rad[:] = rng.uniform(-np.pi, np.pi, size=tracks.heading_rad.shape)
    tracks.velocity_mps[:] = rng.normal(size=tracks.velocity_mps.shape)
    tracks.valid[:] = rng.random(tracks.valid.shape) > 0.3
    tracks.size_m[1:] = [4.5, 1.9, 1.6]
    map_features = None
    lights = None
    if with_map:
        b = MapBuilder()
        b.add("lane_a", MapFeatureKind.LANE_CENTERLINE, rng.normal(size=(5, 3)), subtype="VEHICLE")
        b.add("lane_b", MapFeatureKind.LANE_CENTERLINE, rng.normal(size=(3, 2)), is_intersection=True)
        b.add("cw", MapFeatureKind.CROSSWALK, rng.normal(size=(4, 3)))
        b.relate("lane_b", MapRelation.PREDECESSOR, "lane_a")
        b.relate("lane_a", MapRelation.SUCCESSOR, "lane_b")
        map_features = b.build()
        lights = TrafficLights(
            lane_ids=np.array(["lane_a"]),
            state=np.full((1, num_steps), 4, dtype=np.int8),
            stop_point_m=np.array([[1.0, 2.0, np.nan]]),
            valid=np.ones((1, num_steps), dtype=np.bool_),
        )
    return Scenario(
        scenario_id=f"2021.09.16_{vehicle}_{seed:05d}_{index:03d}",
        source=source,
        timestamps_ns=np.arange(num_steps, dtype=np.int64) * 100_000_000 + seed * 10**9,
        tracks=tracks,
        metadata=ScenarioMetadata(
            frame="synthetic_local",
            provenance=Provenance(path, sha, "synthetic", "1", member=f"scenario {index}"),
            location="testville",
            licence="CC0",
            extras={"vehicle_name": vehicle, "focal_track_id": "t1", "tags": ["a", "b"]},
        ),
        map=map_features,
        ego_index=0,
        traffic_lights=lights,
    )


def make_telemetry(seed: int, *, vehicle: str, lat0: float, lon0: float, path: str, sha: str) -> Telemetry:
    """A telemetry log with a GNSS signal around (lat0, lon0) and a speed signal."""
    n = 20
    t = np.arange(n, dtype=np.int64) * 100_000_000
    lat = lat0 + np.linspace(0.0, 1e-3, n)
    lon = lon0 + np.linspace(0.0, 2e-3, n)
    gnss = Signal(
        "gnss/fix",
        "mixed",
        t,
        np.stack([lat, lon, np.full(n, 40.0)], axis=1),
        ("latitude", "longitude", "altitude"),
        ("deg", "deg", "m"),
    )
    speed = Signal("can/speed", "m/s", t, np.linspace(0, 10, n).reshape(n, 1), ("speed",))
    ego = make_scenario(
        seed, 99, num_tracks=1, num_steps=5, with_map=False, vehicle=vehicle, path=path, sha=sha
    )
    return Telemetry(
        telemetry_id=f"{vehicle}|route-{seed}",
        source="synthetic",
        signals=(gnss, speed),
        metadata=ScenarioMetadata(
            frame=f"enu_wgs84@{lat0:.9f},{lon0:.9f},40.0000",
            provenance=Provenance(path, sha, "synthetic", "1"),
            extras={"dongle_id": vehicle, "enu_origin": {"lat_deg": lat0, "lon_deg": lon0, "alt_m": 40.0}},
        ),
        ego=ego,
    )


def spec(path: Path) -> dict[str, Any]:
    """The parameters of a synthetic file (raises on bad bytes)."""
    doc = json.loads(path.read_text())
    if not isinstance(doc, dict) or doc.get("corrupt"):
        raise ValueError("corrupt synthetic file")
    return doc


def records_of(path: Path) -> list[Record]:
    """What the reader yields for ``path``, computed here, not read from any lake."""
    doc = spec(path)
    seed = int(doc["seed"])
    vehicle = str(doc.get("vehicle", f"veh-{seed % 5}"))
    sha = file_sha256(path)
    out: list[Record] = [
        make_scenario(
            seed,
            i,
            num_tracks=int(doc.get("tracks", 4)),
            num_steps=int(doc.get("steps", 6)),
            with_map=bool(doc.get("map", True)),
            vehicle=vehicle,
            path=str(path),
            sha=sha,
        )
        for i in range(int(doc.get("scenarios", 1)))
    ]
    if doc.get("telemetry"):
        lat0, lon0 = doc.get("latlon", [39.915, 116.404])
        out.append(
            make_telemetry(seed, vehicle=vehicle, lat0=float(lat0), lon0=float(lon0), path=str(path), sha=sha)
        )
    return out


class SyntheticAdapter(Adapter):
    name: ClassVar[str] = "synthetic"
    version: ClassVar[str] = "1"
    unit: ClassVar[Literal["file", "dir"]] = "file"
    licence: ClassVar[str] = "CC0"
    download_hint: ClassVar[str] = "generated by tests/lake/lake_synth.py"

    def claims(self, path: Path) -> bool:
        return path.name.endswith(SUFFIX)

    def _read(self, path: Path) -> Iterator[Record]:
        try:
            doc = spec(path)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptFileError(path, f"not a synthetic log ({exc})") from exc
        time.sleep(float(doc.get("sleep_s", 0.0)))
        yield from records_of(path)


REGISTRY = Registry(adapters=(SyntheticAdapter(), *DEFAULT_REGISTRY.adapters))
"""The synthetic format plus every shipped adapter."""


def write_inputs(folder: Path, seeds: range | list[int], **params: Any) -> list[Path]:
    """One synthetic file per seed under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        p = folder / f"log_{seed:05d}{SUFFIX}"
        p.write_text(json.dumps({"seed": seed, **params}))
        paths.append(p)
    return paths
