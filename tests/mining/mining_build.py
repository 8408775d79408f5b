"""Hand-built scenarios and maps with known answers, for the mining tests.

Lanes of :func:`road` run along +x; lane ``k`` (0 = rightmost) is centred at
``y = k * width``, each lane the left neighbour of the one before. Every
position is in metres, every time in seconds from 0 unless stated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from datadrive.core.scenario import (
    MapBuilder,
    MapFeatureKind,
    MapFeatures,
    MapRelation,
    ObjectType,
    Provenance,
    Scenario,
    ScenarioMetadata,
    Tracks,
    TrafficLights,
)

V, C, P, OTHER = ObjectType.VEHICLE, ObjectType.CYCLIST, ObjectType.PEDESTRIAN, ObjectType.OTHER


def road(
    *,
    lanes: int = 2,
    length: float = 200.0,
    width: float = 3.6,
    start: float = -100.0,
    crosswalk_x: float | None = None,
    stop_line_x: float | None = None,
    intersection: tuple[float, float] | None = None,
    opposite: bool = False,
    bike_lane: bool = False,
) -> MapFeatures:
    """A straight road along +x (see the module docstring).

    Args:
        lanes: Same-direction lanes.
        length: Road length.
        width: Lane width (boundaries drawn at +-width/2).
        start: x of the road's start.
        crosswalk_x: A 4 m crosswalk across all lanes centred here.
        stop_line_x: A stop line across the lanes here.
        intersection: ``(x0, x1)``: the lanes are split there and the middle piece flagged as intersection.
        opposite: Add one lane in the opposite direction (heading -x), left of the others.
        bike_lane: Lane 0 is a bike lane.
    """
    b = MapBuilder()
    xs = [start, start + length]
    cuts = [start] + ([intersection[0], intersection[1]] if intersection else []) + [start + length]
    for k in range(lanes):
        y = k * width
        for j in range(len(cuts) - 1):
            lid = f"L{k}_{j}"
            x0, x1 = cuts[j], cuts[j + 1]
            pts = np.stack([np.linspace(x0, x1, 11), np.full(11, y)], axis=1)
            b.add(
                lid,
                MapFeatureKind.LANE_CENTERLINE,
                pts,
                subtype="BIKE" if (bike_lane and k == 0) else "VEHICLE",
                is_intersection=intersection is not None and j == 1,
            )
            for side, dy, rel in (
                ("l", width / 2, MapRelation.LEFT_BOUNDARY),
                ("r", -width / 2, MapRelation.RIGHT_BOUNDARY),
            ):
                bid = f"{lid}:{side}"
                b.add(bid, MapFeatureKind.LANE_BOUNDARY, pts + np.array([0.0, dy]))
                b.relate(lid, rel, bid)
            if j + 1 < len(cuts) - 1:
                b.relate(lid, MapRelation.SUCCESSOR, f"L{k}_{j + 1}")
            if k + 1 < lanes:
                b.relate(lid, MapRelation.LEFT_NEIGHBOR, f"L{k + 1}_{j}")
            if k > 0:
                b.relate(lid, MapRelation.RIGHT_NEIGHBOR, f"L{k - 1}_{j}")
    top = (lanes - 1) * width + width / 2
    if opposite:
        y = lanes * width
        pts = np.stack([np.linspace(xs[1], xs[0], 11), np.full(11, y)], axis=1)
        b.add("OPP", MapFeatureKind.LANE_CENTERLINE, pts, subtype="VEHICLE")
        top += width
    bottom = -width / 2
    ring = np.array([[xs[0], bottom], [xs[1], bottom], [xs[1], top], [xs[0], top]])
    b.add("DA", MapFeatureKind.DRIVABLE_AREA, np.concatenate([ring, ring[:1]]))
    if crosswalk_x is not None:
        cw = np.array(
            [
                [crosswalk_x - 2, bottom],
                [crosswalk_x + 2, bottom],
                [crosswalk_x + 2, top],
                [crosswalk_x - 2, top],
            ]
        )
        b.add("CW", MapFeatureKind.CROSSWALK, np.concatenate([cw, cw[:1]]))
    if stop_line_x is not None:
        b.add("SL", MapFeatureKind.STOP_LINE, np.array([[stop_line_x, bottom], [stop_line_x, top]]))
    return b.build()


def scenario(
    xy: np.ndarray,
    *,
    t_s: Sequence[float] | np.ndarray | None = None,
    heading: np.ndarray | None = None,
    velocity: np.ndarray | None = None,
    valid: np.ndarray | None = None,
    types: Sequence[ObjectType] | None = None,
    categories: Sequence[str] | None = None,
    sizes: np.ndarray | None = None,
    map: MapFeatures | None = None,
    traffic_lights: TrafficLights | None = None,
    ego_index: int | None = None,
    extras: dict[str, object] | None = None,
    location: str | None = None,
    scenario_id: str = "built",
    source: str = "test",
) -> Scenario:
    """A validated scenario from ``(A, T, 2)`` positions (heading from motion unless given)."""
    xy = np.asarray(xy, dtype=np.float64)
    a, t = xy.shape[:2]
    times = np.arange(t) * 0.1 if t_s is None else np.asarray(t_s, dtype=np.float64)
    ts = np.round(times * 1e9).astype(np.int64) + 1_000_000_000
    if valid is None:
        valid = np.ones((a, t), dtype=bool)
    if heading is None:
        d = np.gradient(xy, axis=1) if t > 1 else np.zeros_like(xy)
        heading = np.arctan2(d[..., 1], d[..., 0])
        still = np.hypot(d[..., 0], d[..., 1]) < 1e-9
        heading = np.where(still, 0.0, heading)
    types = list(types) if types is not None else [V] * a
    cats = list(categories) if categories is not None else [t_.name for t_ in types]
    size = (
        np.asarray(sizes, dtype=np.float64)
        if sizes is not None
        else np.array(
            [[4.5, 1.9, 1.5] if ty == V else [0.6, 0.6, 1.7] if ty == P else [1.8, 0.7, 1.7] for ty in types]
        ).reshape(-1, 3)
    )
    tracks = Tracks(
        track_ids=np.array([f"t{i}" for i in range(a)], dtype=np.str_).reshape(-1),
        object_type=np.array([int(x) for x in types], dtype=np.uint8),
        category=np.array(cats, dtype=np.str_).reshape(-1),
        xy_m=xy,
        z_m=np.full((a, t), np.nan),
        heading_rad=np.asarray(heading, dtype=np.float64),
        velocity_mps=np.full((a, t, 2), np.nan)
        if velocity is None
        else np.asarray(velocity, dtype=np.float64),
        size_m=size,
        valid=np.asarray(valid, dtype=bool),
    )
    md = ScenarioMetadata(
        frame="test_local",
        provenance=Provenance("built", "0" * 64, source, "1"),
        location=location,
        extras=dict(extras or {}),
    )
    return Scenario(
        scenario_id, source, ts, tracks, md, map=map, traffic_lights=traffic_lights, ego_index=ego_index
    ).validate()


def line(x0: float, y0: float, vx: float, vy: float, t: np.ndarray) -> np.ndarray:
    """``(T, 2)`` constant-velocity positions."""
    return np.stack([x0 + vx * t, y0 + vy * t], axis=1)
