"""Bird's-eye GIFs of rollouts: the map, every agent's box, the ego in red, its route dashed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from datadrive.core.scenario import MapFeatureKind, ObjectType
from datadrive.sim.geometry import box_corners
from datadrive.sim.prepare import SimScenario

__all__ = ["render_gif"]

_COLOURS = {
    int(ObjectType.VEHICLE): "#1f77b4",
    int(ObjectType.CYCLIST): "#2ca02c",
    int(ObjectType.PEDESTRIAN): "#ff7f0e",
    int(ObjectType.OTHER): "#8c8c8c",
}


def render_gif(
    sim: SimScenario,
    rollout: dict[str, Any],
    path: Path,
    *,
    title: str = "",
    every: int = 2,
    view_m: float = 60.0,
    fps: int = 5,
) -> Path:
    """Write a GIF following the ego.

    Args:
        sim: The prepared scenario.
        rollout: ``x``, ``y``, ``h``, ``valid`` arrays ``(A, T)`` of this scenario.
        path: Output file (parents are created).
        title: Shown above the frames.
        every: Draw every n-th step.
        view_m: Half width of the view around the ego.
        fps: Frames per second of the GIF.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter
    from matplotlib.collections import LineCollection, PolyCollection

    x, y, h, valid = rollout["x"], rollout["y"], rollout["h"], rollout["valid"]
    A, T = x.shape
    fig, ax = plt.subplots(figsize=(5, 5), dpi=80)
    m = sim.scenario.map
    if m is not None:
        for kind, colour, fill in (
            (MapFeatureKind.DRIVABLE_AREA, "#eeeeee", True),
            (MapFeatureKind.CROSSWALK, "#d8cff0", True),
            (MapFeatureKind.ROAD_EDGE, "#444444", False),
            (MapFeatureKind.LANE_BOUNDARY, "#bbbbbb", False),
            (MapFeatureKind.LANE_CENTERLINE, "#c6dbef", False),
        ):
            segs = [m.xyz_m[m.offsets[f] : m.offsets[f + 1], :2] for f in np.flatnonzero(m.kind == kind)]
            segs = [s for s in segs if s.shape[0] > 1]
            if not segs:
                continue
            if fill:
                ax.add_collection(PolyCollection(segs, facecolors=colour, edgecolors="none", zorder=1))
            else:
                ax.add_collection(LineCollection(segs, colors=colour, linewidths=0.7, zorder=2))
    ax.plot(sim.route_xy_m[:, 0], sim.route_xy_m[:, 1], "--", color="#d62728", lw=0.8, alpha=0.6, zorder=3)
    colours = [("#d62728" if a == 0 else _COLOURS.get(int(sim.object_type[a]), "#8c8c8c")) for a in range(A)]
    boxes = PolyCollection([], zorder=5, edgecolors="black", linewidths=0.4)
    ax.add_collection(boxes)
    ax.set_aspect("equal")
    ax.set_title(title or f"{sim.source}: {sim.scenario_id}", fontsize=8)
    label = ax.text(0.02, 0.97, "", transform=ax.transAxes, fontsize=7, va="top")
    frames = list(range(0, T, max(1, every)))

    def draw(t: int) -> Any:
        c = box_corners(x[:, t], y[:, t], h[:, t], sim.length_m, sim.width_m)
        live = valid[:, t]
        boxes.set_verts([c[a] for a in range(A) if live[a]])
        boxes.set_facecolor([colours[a] for a in range(A) if live[a]])
        ax.set_xlim(x[0, t] - view_m, x[0, t] + view_m)
        ax.set_ylim(y[0, t] - view_m, y[0, t] + view_m)
        label.set_text(f"t = {t * sim.dt_s:.1f} s")
        return (boxes, label)

    path.parent.mkdir(parents=True, exist_ok=True)
    anim = FuncAnimation(fig, draw, frames=frames, blit=False)
    anim.save(str(path), writer=PillowWriter(fps=fps))
    plt.close(fig)
    return path
