"""Scenarios built by hand for the simulator's tests: straight roads, agents with known motion."""

from __future__ import annotations

import numpy as np

from datadrive.core.scenario import (
    MapBuilder,
    MapFeatureKind,
    MapRelation,
    ObjectType,
    Provenance,
    Scenario,
    ScenarioMetadata,
    Tracks,
)


def straight_map(
    length_m: float = 2000.0, *, lanes: int = 1, lane_width_m: float = 3.7, opposite: bool = False
):
    """Lanes along +x (lane k centred at y = k * lane_width), neighbours; optionally one the other way."""
    b = MapBuilder()
    xs = np.arange(-100.0, length_m + 1.0, 10.0)
    for k in range(lanes):
        b.add(
            f"lane{k}", MapFeatureKind.LANE_CENTERLINE, np.stack([xs, np.full_like(xs, k * lane_width_m)], 1)
        )
    for k in range(lanes - 1):
        b.relate(f"lane{k}", MapRelation.LEFT_NEIGHBOR, f"lane{k + 1}")
        b.relate(f"lane{k + 1}", MapRelation.RIGHT_NEIGHBOR, f"lane{k}")
    if opposite:
        b.add(
            "back", MapFeatureKind.LANE_CENTERLINE, np.stack([xs[::-1], np.full_like(xs, -lane_width_m)], 1)
        )
    return b.build()


def scenario(
    xy: np.ndarray,
    heading: np.ndarray,
    speed: np.ndarray,
    *,
    types: list[int] | None = None,
    size: tuple[float, float] = (4.0, 2.0),
    map_=None,
    dt_s: float = 0.1,
    sid: str = "built",
) -> Scenario:
    """A scenario from ``(A, T, 2)`` positions, ``(A, T)`` headings and speeds; agent 0 is the ego."""
    A, T = heading.shape
    vel = np.stack([speed * np.cos(heading), speed * np.sin(heading)], -1)
    tracks = Tracks(
        track_ids=np.asarray([f"a{i}" for i in range(A)]),
        object_type=np.asarray(types or [int(ObjectType.VEHICLE)] * A, dtype=np.uint8),
        category=np.asarray(["car"] * A),
        xy_m=xy.astype(np.float64),
        z_m=np.full((A, T), np.nan),
        heading_rad=heading.astype(np.float64),
        velocity_mps=vel,
        size_m=np.tile(np.asarray([[size[0], size[1], 1.5]]), (A, 1)),
        valid=np.ones((A, T), dtype=bool),
    )
    md = ScenarioMetadata("test_frame", Provenance("built", "0" * 64, "test", "1"))
    ts = (np.arange(T) * round(dt_s * 1e9)).astype(np.int64)
    return Scenario(
        sid, "test", ts, tracks, md, map=map_ if map_ is not None else straight_map(), ego_index=0
    ).validate()


def constant_motion(
    x0: list[float], y0: list[float], heading: list[float], speed: list[float], steps: int, dt_s=0.1
):
    """``(A, T, 2)``, ``(A, T)``, ``(A, T)`` for agents moving at constant velocity."""
    t = np.arange(steps) * dt_s
    h = np.asarray(heading)[:, None] * np.ones_like(t)[None]
    v = np.asarray(speed)[:, None] * np.ones_like(t)[None]
    x = np.asarray(x0)[:, None] + v * np.cos(h) * t[None]
    y = np.asarray(y0)[:, None] + v * np.sin(h) * t[None]
    return np.stack([x, y], -1), h, v
