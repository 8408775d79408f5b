"""A scenario as the UI's bird's-eye viewer draws it: JSON of rounded arrays, and an SVG thumbnail.

Notation: ``A`` tracks, ``T`` steps (after striding), ``P`` map points.

Positions are shifted by an ``origin`` (the ego's first valid position, or
the mean of valid positions) so the numbers stay small; the viewer adds it
back when it labels axes. Long scenarios are strided to at most
``max_steps`` steps and maps to at most ``max_map_points`` points, so a
scene stays a few hundred kilobytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datadrive.core.scenario import MapFeatureKind, ObjectType, Scenario

__all__ = ["scene_json", "thumbnail_svg"]

_TYPES = {int(t): t.name.lower() for t in ObjectType}
_KINDS = {int(k): k.name.lower() for k in MapFeatureKind}
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


def scene_json(
    scenario: Scenario,
    *,
    events: list[dict[str, Any]] | None = None,
    max_steps: int = 400,
    max_map_points: int = 20_000,
) -> dict[str, Any]:
    """The viewer's scene: timeline, tracks as ``(T,)`` rounded arrays with nulls, map polylines.

    Args:
        scenario: The scenario.
        events: Intervals to mark on the timeline: ``{"label", "t_start_s", "t_end_s", "track_ids"}``.
        max_steps: Steps kept at most (strided evenly, the last one kept).
        max_map_points: Map points kept at most.
    """
    tr = scenario.tracks
    num_steps = len(scenario.timestamps_ns)
    steps = np.arange(0, num_steps, max(1, int(np.ceil(num_steps / max_steps))))
    if num_steps and steps[-1] != num_steps - 1:
        steps = np.r_[steps, num_steps - 1]
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
        "events": list(events or []),
    }


def thumbnail_svg(scenario: Scenario, size_px: int = 160) -> str:
    """A small SVG: map lines in grey, each track's path in its type's colour, the ego in white."""
    scene = scene_json(scenario, max_steps=60, max_map_points=3000)
    pts: list[list[float]] = [p for f in scene["map"] for p in f["pts"]]
    for t in scene["tracks"]:
        pts += [[x, y] for x, y in zip(t["x"], t["y"], strict=True) if x is not None]
    arr = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    if len(arr) == 0:
        arr = np.zeros((1, 2))
    lo, hi = arr.min(axis=0), arr.max(axis=0)
    span = float(max(hi[0] - lo[0], hi[1] - lo[1], 10.0)) * 1.05
    centre = (lo + hi) / 2

    def xy(p: list[float]) -> str:
        u = (p[0] - centre[0]) / span * size_px + size_px / 2
        v = size_px / 2 - (p[1] - centre[1]) / span * size_px
        return f"{u:.1f},{v:.1f}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size_px} {size_px}" '
        f'width="{size_px}" height="{size_px}"><rect width="100%" height="100%" fill="#11151c"/>'
    ]
    for f in scene["map"]:
        if len(f["pts"]) > 1 and f["kind"] in ("lane_centerline", "lane_boundary", "road_edge"):
            colour = "#2a3240" if f["kind"] == "lane_centerline" else "#3a4456"
            points = " ".join(xy(p) for p in f["pts"])
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1" points="{points}"/>')
    for t in sorted(scene["tracks"], key=lambda t: t["ego"]):
        path = [xy([x, y]) for x, y in zip(t["x"], t["y"], strict=True) if x is not None]
        if len(path) < 2:
            continue
        colour = "#ffffff" if t["ego"] else _COLOURS.get(t["type"], "#8b95a7")
        width = 2.2 if t["ego"] else 1.2
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-opacity="0.9" stroke-width="{width}" '
            f'points="{" ".join(path)}"/>'
        )
    parts.append("</svg>")
    return "".join(parts)
