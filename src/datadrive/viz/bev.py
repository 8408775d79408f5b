"""Bird's-eye renders of a scenario: map, tracks, the ego highlighted.

Drawing is vectorised: every polyline class goes into one ``LineCollection``,
every track type into one collection, so a scenario with thousands of map
features renders in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from datadrive.core.scenario import MapFeatureKind, ObjectType, Scenario
from datadrive.core.typing import NDArrayFloat, NDArrayInt

__all__ = ["TYPE_COLOURS", "render_bev"]

TYPE_COLOURS = {
    ObjectType.VEHICLE: "#1f77b4",
    ObjectType.CYCLIST: "#2ca02c",
    ObjectType.PEDESTRIAN: "#ff7f0e",
    ObjectType.OTHER: "#8c8c8c",
}
_EGO_COLOUR = "#d62728"

# (kind, colour, line width, fill polygon)
_MAP_STYLE = {
    MapFeatureKind.DRIVABLE_AREA: ("#eeeeee", 0.5, True),
    MapFeatureKind.CROSSWALK: ("#c7b8ea", 0.6, True),
    MapFeatureKind.SPEED_BUMP: ("#f5d0a9", 0.6, True),
    MapFeatureKind.DRIVEWAY: ("#e8e8d0", 0.5, True),
    MapFeatureKind.ROAD_EDGE: ("#444444", 0.9, False),
    MapFeatureKind.LANE_BOUNDARY: ("#b0b0b0", 0.5, False),
    MapFeatureKind.LANE_CENTERLINE: ("#9ecae1", 0.7, False),
    MapFeatureKind.STOP_LINE: ("#d62728", 1.0, False),
    MapFeatureKind.OTHER: ("#dddddd", 0.4, False),
}


def _segments(xyz: NDArrayFloat, offsets: NDArrayInt, indices: NDArrayInt) -> list[NDArrayFloat]:
    return [xyz[offsets[i] : offsets[i + 1], :2] for i in indices if offsets[i + 1] - offsets[i] > 1]


def render_bev(scenario: Scenario, path: Path, *, title: str | None = None, dpi: int = 110) -> Path:
    """Render ``scenario`` from above into a PNG at ``path``.

    The view is centred on the tracks (or the map, if there are none), in the
    scenario's own frame, metres on both axes.

    Args:
        scenario: A validated scenario.
        path: Output file; parent folders are created.
        title: Plot title; defaults to ``source: scenario_id``.
        dpi: Resolution.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PolyCollection

    fig, ax = plt.subplots(figsize=(8, 8), dpi=dpi)
    ax.set_facecolor("white")
    tracks = scenario.tracks
    m = scenario.map
    if m is not None and m.num_features:
        for kind, (colour, width, fill) in _MAP_STYLE.items():
            idx = np.flatnonzero(m.kind == kind)
            segs = _segments(m.xyz_m, m.offsets, idx)
            if not segs:
                continue
            if fill:
                ax.add_collection(
                    PolyCollection(segs, facecolors=colour, edgecolors="#bbbbbb", linewidths=0.3, zorder=1)
                )
            else:
                ax.add_collection(LineCollection(segs, colors=colour, linewidths=width, zorder=2))
        signs = m.xyz_m[m.offsets[:-1][m.kind == MapFeatureKind.STOP_SIGN]]
        if signs.size:
            ax.scatter(signs[:, 0], signs[:, 1], marker="8", s=25, c="#d62728", zorder=3)

    for otype, colour in TYPE_COLOURS.items():
        rows = np.flatnonzero(tracks.object_type == otype)
        if scenario.ego_index is not None:
            rows = rows[rows != scenario.ego_index]
        segs = [tracks.xy_m[r][tracks.valid[r]] for r in rows]
        segs = [s for s in segs if s.shape[0] > 1]
        if segs:
            ax.add_collection(LineCollection(segs, colors=colour, linewidths=1.0, alpha=0.8, zorder=4))
        last = _last_positions(scenario, rows)
        if last.size:
            ax.scatter(last[:, 0], last[:, 1], s=9, c=colour, zorder=5, label=otype.name.lower())
    if scenario.ego_index is not None:
        e = scenario.ego_index
        ego_xy = tracks.xy_m[e][tracks.valid[e]]
        if ego_xy.size:
            ax.plot(ego_xy[:, 0], ego_xy[:, 1], color=_EGO_COLOUR, linewidth=2.5, zorder=6)
            ax.scatter(ego_xy[-1:, 0], ego_xy[-1:, 1], s=60, marker="*", c=_EGO_COLOUR, zorder=7, label="ego")

    _frame_view(ax, scenario)
    ax.set_aspect("equal")
    ax.set_xlabel(f"x [m] ({scenario.metadata.frame})")
    ax.set_ylabel("y [m]")
    ax.set_title(title or f"{scenario.source}: {scenario.scenario_id}", fontsize=10)
    handles, _labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _last_positions(scenario: Scenario, rows: NDArrayInt) -> NDArrayFloat:
    """``(R, 2)`` last valid position of each track in ``rows`` that has one."""
    valid = scenario.tracks.valid[rows]
    has = valid.any(axis=1)
    last_step = valid.shape[1] - 1 - np.argmax(valid[:, ::-1], axis=1)
    picked: NDArrayFloat = scenario.tracks.xy_m[rows[has], last_step[has]]
    return picked


def _frame_view(ax: Any, scenario: Scenario) -> None:
    """Fit the axes to the tracks (robustly), else to the map."""
    tracks = scenario.tracks
    pts = tracks.xy_m[tracks.valid]
    if pts.shape[0] == 0 and scenario.map is not None:
        pts = scenario.map.xyz_m[:, :2]
    if pts.shape[0] == 0:
        return
    lo = np.percentile(pts, 1, axis=0)
    hi = np.percentile(pts, 99, axis=0)
    centre = (lo + hi) / 2
    half = max(float(np.max(hi - lo)) / 2 + 15.0, 30.0)
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
