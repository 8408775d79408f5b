"""A scenario as the UI's bird's-eye viewer draws it: JSON of rounded arrays, and an SVG thumbnail.

Notation: ``A`` tracks, ``T`` steps (after striding), ``P`` map points.

Positions are shifted by an ``origin`` (the ego's first valid position, or
the mean of valid positions) so the numbers stay small; the viewer adds it
back when it labels axes. Long scenarios are strided to at most
``max_steps`` steps and maps to at most ``max_map_points`` points, so a
scene stays a few hundred kilobytes.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np

from datadrive.core.scenario import MapFeatureKind, ObjectType, Scenario, TrafficLightState

__all__ = ["rollout_scene_json", "scene_json", "thumbnail_svg"]

_TYPES = {int(t): t.name.lower() for t in ObjectType}
_KINDS = {int(k): k.name.lower() for k in MapFeatureKind}
# a light's colour class: the viewer draws stop red, caution amber, go green, unknown grey
_LIGHT = {
    int(TrafficLightState.UNKNOWN): "unknown",
    int(TrafficLightState.ARROW_STOP): "stop",
    int(TrafficLightState.STOP): "stop",
    int(TrafficLightState.FLASHING_STOP): "stop",
    int(TrafficLightState.ARROW_CAUTION): "caution",
    int(TrafficLightState.CAUTION): "caution",
    int(TrafficLightState.FLASHING_CAUTION): "caution",
    int(TrafficLightState.ARROW_GO): "go",
    int(TrafficLightState.GO): "go",
}
_COLOURS = {"vehicle": "#4c8dff", "cyclist": "#f5a524", "pedestrian": "#e5484d", "other": "#8b95a7"}


def _origin(scenario: Scenario) -> np.ndarray:
    tr = scenario.tracks
    if scenario.ego_index is not None and tr.valid[scenario.ego_index].any():
        first = int(np.argmax(tr.valid[scenario.ego_index]))
        return np.asarray(tr.xy_m[scenario.ego_index, first], dtype=np.float64)
    if tr.valid.any():
        return np.asarray(tr.xy_m[tr.valid].mean(axis=0), dtype=np.float64)
    if scenario.map is not None and len(scenario.map.xyz_m):
        return np.asarray(scenario.map.xyz_m[:, :2].mean(axis=0), dtype=np.float64)
    return np.zeros(2)


def _map_polylines(scenario: Scenario, origin: np.ndarray, max_points: int) -> list[dict[str, Any]]:
    m = scenario.map
    if m is None or len(m.offsets) < 2:
        return []
    stride = max(1, int(np.ceil(len(m.xyz_m) / max_points)))
    out = []
    for i in range(len(m.offsets) - 1):
        a, b = int(m.offsets[i]), int(m.offsets[i + 1])
        if b <= a:
            continue
        idx = np.unique(np.r_[np.arange(a, b, stride), b - 1])
        pts = np.round(m.xyz_m[idx, :2] - origin, 2)
        out.append({"kind": _KINDS.get(int(m.kind[i]), "other"), "pts": pts.tolist()})
    return out


def _kept_steps(num_steps: int, max_steps: int) -> np.ndarray:
    """Indices of the steps a scene keeps: every k-th so at most ``max_steps`` (plus the last one)."""
    steps = np.arange(0, num_steps, max(1, int(np.ceil(num_steps / max_steps))))
    if num_steps and steps[-1] != num_steps - 1:
        steps = np.r_[steps, num_steps - 1]
    return steps


def scene_json(
    scenario: Scenario,
    *,
    events: list[dict[str, Any]] | None = None,
    max_steps: int = 400,
    max_map_points: int = 20_000,
) -> dict[str, Any]:
    """The viewer's scene: timeline, tracks as ``(T,)`` rounded arrays with nulls, map polylines, lights.

    A track has ``x``, ``y`` (metres from ``origin``), ``heading`` (rad) and
    ``speed`` (m/s, from the recorded velocity; null where the source has
    none), each ``(T,)`` with nulls where the track has no state.

    Args:
        scenario: The scenario.
        events: Intervals to mark on the timeline: ``{"label", "t_start_s", "t_end_s", "track_ids"}``.
        max_steps: Steps kept at most (strided evenly, the last one kept).
        max_map_points: Map points kept at most.
    """
    tr = scenario.tracks
    num_steps = len(scenario.timestamps_ns)
    steps = _kept_steps(num_steps, max_steps)
    origin = _origin(scenario)
    t0 = int(scenario.timestamps_ns[0]) if num_steps else 0
    t_s = (scenario.timestamps_ns[steps] - t0) / 1e9
    tracks = []
    for a in range(len(tr.track_ids)):
        valid = tr.valid[a, steps]
        if not valid.any():
            continue
        xy = np.round(tr.xy_m[a, steps] - origin, 2)
        heading = np.round(tr.heading_rad[a, steps], 3)
        x = [float(v) if ok else None for v, ok in zip(xy[:, 0], valid, strict=True)]
        y = [float(v) if ok else None for v, ok in zip(xy[:, 1], valid, strict=True)]
        h = [float(v) if ok and np.isfinite(v) else None for v, ok in zip(heading, valid, strict=True)]
        speed = np.round(np.hypot(tr.velocity_mps[a, steps, 0], tr.velocity_mps[a, steps, 1]), 2)
        v = [float(s) if ok and np.isfinite(s) else None for s, ok in zip(speed, valid, strict=True)]
        size = tr.size_m[a]
        tracks.append(
            {
                "id": str(tr.track_ids[a]),
                "type": _TYPES.get(int(tr.object_type[a]), "other"),
                "category": str(tr.category[a]),
                "ego": scenario.ego_index == a,
                "length_m": float(size[0]) if np.isfinite(size[0]) else None,
                "width_m": float(size[1]) if np.isfinite(size[1]) else None,
                "x": x,
                "y": y,
                "heading": h,
                "speed": v,
            }
        )
    return {
        "scenario_id": scenario.scenario_id,
        "source": scenario.source,
        "frame": scenario.metadata.frame,
        "origin": [float(origin[0]), float(origin[1])],
        "t0_ns": t0,
        "t_s": np.round(t_s, 3).tolist(),
        "tracks": tracks,
        "map": _map_polylines(scenario, origin, max_map_points),
        "lights": _lights(scenario, origin, steps),
        "events": list(events or []),
    }


def _lights(scenario: Scenario, origin: np.ndarray, steps: np.ndarray) -> list[dict[str, Any]]:
    """Lights with a known stop point: where, and their state class per kept step (null: not observed)."""
    tl = scenario.traffic_lights
    if tl is None:
        return []
    out = []
    for i in range(len(tl.lane_ids)):
        p = tl.stop_point_m[i, :2]
        if not np.isfinite(p).all() or not tl.valid[i, steps].any():
            continue
        states = [
            _LIGHT.get(int(code), "unknown") if ok else None
            for code, ok in zip(tl.state[i, steps], tl.valid[i, steps], strict=True)
        ]
        xy = np.round(p - origin, 2)
        out.append({"lane": str(tl.lane_ids[i]), "x": float(xy[0]), "y": float(xy[1]), "state": states})
    return out


def thumbnail_svg(scenario: Scenario, size_px: int = 160, highlight: Collection[str] = ()) -> str:
    """A small SVG: map lines in grey, each track's path in its type's colour, the ego in white.

    The picture frames the ego's path (or every agent, when there is no ego)
    with 25 m around it; the map outside is cut off by the view box. Tracks
    in ``highlight`` (a mining hit's) are drawn last, thick and amber, with
    a dot where they end, and the rest dimmed.
    """
    scene = scene_json(scenario, max_steps=60, max_map_points=3000)
    # frame what moves (the ego's path, else the agents' 2-98 % extent) with a margin, so a small
    # scene on a city-sized map is not a speck; only the map has no agents to frame
    moving: list[list[float]] = []
    for t in scene["tracks"]:
        if t["ego"] or not any(u["ego"] for u in scene["tracks"]):
            moving += [[x, y] for x, y in zip(t["x"], t["y"], strict=True) if x is not None]
    if moving:
        arr = np.asarray(moving, dtype=np.float64)
        lo, hi = np.quantile(arr, 0.02, axis=0) - 25.0, np.quantile(arr, 0.98, axis=0) + 25.0
    else:
        mp = np.asarray([p for f in scene["map"] for p in f["pts"]] or [[0.0, 0.0]], dtype=np.float64)
        lo, hi = mp.min(axis=0), mp.max(axis=0)
    span = float(max(hi[0] - lo[0], hi[1] - lo[1], 40.0)) * 1.05
    centre = (lo + hi) / 2

    def xy(p: list[float]) -> str:
        u = (p[0] - centre[0]) / span * size_px + size_px / 2
        v = size_px / 2 - (p[1] - centre[1]) / span * size_px
        return f"{u:.1f},{v:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size_px} {size_px}" '
        f'width="{size_px}" height="{size_px}"><rect width="100%" height="100%" fill="#0e1219"/>'
    ]
    strokes = {"lane_centerline": "#263040", "lane_boundary": "#3a4456", "road_edge": "#5d6878"}
    for f in scene["map"]:
        if len(f["pts"]) > 2 and f["kind"] == "drivable_area":
            points = " ".join(xy(p) for p in f["pts"])
            parts.append(f'<polygon fill="#161d28" stroke="none" points="{points}"/>')
    for f in scene["map"]:
        if len(f["pts"]) > 1 and f["kind"] in strokes:
            points = " ".join(xy(p) for p in f["pts"])
            parts.append(
                f'<polyline fill="none" stroke="{strokes[f["kind"]]}" stroke-width="1" points="{points}"/>'
            )
    marked = set(highlight)
    for t in sorted(scene["tracks"], key=lambda t: (t["id"] in marked, t["ego"])):
        path = [xy([x, y]) for x, y in zip(t["x"], t["y"], strict=True) if x is not None]
        if len(path) < 2:
            continue
        colour = "#ffffff" if t["ego"] else _COLOURS.get(t["type"], "#8b95a7")
        width = 2.2 if t["ego"] else 1.2
        opacity = 0.45 if marked else 0.9
        if t["id"] in marked:
            colour, width, opacity = "#ffb020", 3.0, 1.0
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-opacity="{opacity}" stroke-width="{width}" '
            f'points="{" ".join(path)}"/>'
        )
        if t["id"] in marked:
            u, v = path[-1].split(",")
            parts.append(f'<circle cx="{u}" cy="{v}" r="3" fill="{colour}"/>')
    parts.append("</svg>")
    return "".join(parts)


def rollout_scene_json(
    logged: Scenario,
    *,
    track_ids: np.ndarray,
    x_m: np.ndarray,
    y_m: np.ndarray,
    heading_rad: np.ndarray,
    speed_mps: np.ndarray,
    valid: np.ndarray,
    label: str,
    events: list[dict[str, Any]] | None = None,
    max_steps: int = 400,
) -> dict[str, Any]:
    """The viewer's scene of ``logged`` with a simulated rollout of some of its agents on top.

    Notation: ``A`` simulated agents (row 0 the ego), ``T`` steps of ``logged``.

    Args:
        logged: The scenario on the simulator's time grid (what the agents did in the log).
        track_ids: ``(A,)`` the simulated agents' ids in ``logged``.
        x_m, y_m, heading_rad, speed_mps: ``(A, T)`` the rollout, in ``logged``'s frame.
        valid: ``(A, T)`` the agent exists at that step.
        label: What drove the ego (``"idm, reactive agents"``).
        events: Timeline marks (collisions, leaving the drivable area).
        max_steps: Steps kept at most (the same steps for the log and the rollout).
    """
    scene = scene_json(logged, events=events, max_steps=max_steps)
    steps = _kept_steps(len(logged.timestamps_ns), max_steps)
    origin = np.asarray(scene["origin"], dtype=np.float64)
    ego_id = str(logged.tracks.track_ids[logged.ego_index]) if logged.ego_index is not None else None
    tracks = []
    for a in range(len(track_ids)):
        ok = valid[a, steps]
        if not ok.any():
            continue

        def col(v: np.ndarray, digits: int, ok: np.ndarray = ok) -> list[float | None]:
            return [
                float(x) if good and np.isfinite(x) else None
                for x, good in zip(np.round(v, digits), ok, strict=True)
            ]

        tracks.append(
            {
                "id": str(track_ids[a]),
                "ego": str(track_ids[a]) == ego_id,
                "x": col(x_m[a, steps] - origin[0], 2),
                "y": col(y_m[a, steps] - origin[1], 2),
                "heading": col(heading_rad[a, steps], 3),
                "speed": col(speed_mps[a, steps], 2),
            }
        )
    scene["rollout"] = {"label": label, "tracks": tracks}
    return scene
