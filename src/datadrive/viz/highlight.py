"""Bird's-eye views of a moment: some tracks highlighted over a time window, as a PNG or an animated GIF.

Used to look at query hits and events: the map and every track are drawn
faintly (their whole valid history), the *referred* tracks (what a query
selected) in red and the *related* ones (what they were related to) in
orange, thick over the time window and thin outside it, with their boxes at
the window's last step. The title names the window in seconds from the
scenario's start. :func:`animate_highlight` draws one frame per step of the
window (plus a little context) with every box at that step.

Notation:
    A: tracks. T: steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from datadrive.core.scenario import Scenario
from datadrive.core.typing import NDArrayBool, NDArrayFloat
from datadrive.viz.bev import _MAP_STYLE, _segments

__all__ = ["animate_highlight", "render_highlight"]

_REFERRED = "#d62728"
_RELATED = "#ff7f0e"
_BACKGROUND = "#9a9a9a"
_EGO = "#1f77b4"


def _corners(
    xy: NDArrayFloat, heading: NDArrayFloat, length: NDArrayFloat, width: NDArrayFloat
) -> NDArrayFloat:
    c, s = np.cos(heading), np.sin(heading)
    hl, hw = length / 2, width / 2
    dx = np.stack([hl, -hl, -hl, hl], axis=-1)
    dy = np.stack([hw, hw, -hw, -hw], axis=-1)
    x = xy[..., 0:1] + c[..., None] * dx - s[..., None] * dy
    y = xy[..., 1:2] + s[..., None] * dx + c[..., None] * dy
    return np.stack([x, y], axis=-1)


def _draw_map(ax: Any, scenario: Scenario) -> None:
    from matplotlib.collections import LineCollection, PolyCollection

    m = scenario.map
    if m is None or not m.num_features:
        return
    for kind, (colour, width, fill) in _MAP_STYLE.items():
        segs = _segments(m.xyz_m, m.offsets, np.flatnonzero(m.kind == kind))
        if not segs:
            continue
        if fill:
            ax.add_collection(
                PolyCollection(segs, facecolors=colour, edgecolors="#cccccc", linewidths=0.3, zorder=1)
            )
        else:
            ax.add_collection(LineCollection(segs, colors=colour, linewidths=width * 0.8, zorder=2))


def _sizes(scenario: Scenario) -> tuple[NDArrayFloat, NDArrayFloat]:
    size = scenario.tracks.size_m
    length = np.where(size[:, 0] > 0, size[:, 0], 1.0)
    width = np.where(size[:, 1] > 0, size[:, 1], 1.0)
    return length, width


def _view(ax: Any, scenario: Scenario, focus: NDArrayBool, window: tuple[int, int]) -> None:
    tr = scenario.tracks
    first, last = window
    pts = tr.xy_m[:, first : last + 1][focus[:, first : last + 1]]
    if pts.shape[0] == 0:
        pts = tr.xy_m[tr.valid]
    if pts.shape[0] == 0 and scenario.map is not None:
        pts = scenario.map.xyz_m[:, :2]
    if pts.shape[0] == 0:
        return
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre = (lo + hi) / 2
    half = max(float(np.max(hi - lo)) / 2 + 20.0, 25.0)
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)


def _frame(
    ax: Any,
    scenario: Scenario,
    referred: NDArrayBool,
    related: NDArrayBool,
    window: tuple[int, int],
    step: int,
) -> list[Any]:
    """Draw tracks and the boxes at ``step``; return the artists added."""
    from matplotlib.collections import LineCollection, PolyCollection

    added: list[Any] = []

    tr = scenario.tracks
    first, last = window
    ego = scenario.ego_index
    ref_rows = np.flatnonzero(referred[:, first : last + 1].any(axis=1))
    rel_rows = np.setdiff1d(np.flatnonzero(related[:, first : last + 1].any(axis=1)), ref_rows)
    other = np.setdiff1d(np.arange(tr.num_tracks), np.concatenate([ref_rows, rel_rows]))
    faint = [tr.xy_m[r][tr.valid[r]] for r in other]
    faint = [f for f in faint if f.shape[0] > 1]
    if faint:
        added.append(
            ax.add_collection(LineCollection(faint, colors=_BACKGROUND, linewidths=0.6, alpha=0.5, zorder=3))
        )
    length, width = _sizes(scenario)
    for rows, colour in ((rel_rows, _RELATED), (ref_rows, _REFERRED)):
        for r in rows.tolist():
            v = tr.valid[r]
            whole = tr.xy_m[r][v]
            if whole.shape[0] > 1:
                added += ax.plot(whole[:, 0], whole[:, 1], color=colour, linewidth=0.8, alpha=0.5, zorder=4)
            inside = v.copy()
            inside[:first] = False
            inside[last + 1 :] = False
            seg = tr.xy_m[r][inside]
            if seg.shape[0] > 1:
                added += ax.plot(seg[:, 0], seg[:, 1], color=colour, linewidth=2.4, zorder=5)
    shown = np.flatnonzero(tr.valid[:, step])
    if shown.size:
        boxes = _corners(tr.xy_m[shown, step], tr.heading_rad[shown, step], length[shown], width[shown])
        colours = [
            _REFERRED
            if referred[r, step] or r in set(ref_rows.tolist())
            else _RELATED
            if r in set(rel_rows.tolist())
            else (_EGO if r == ego else "#cfcfcf")
            for r in shown.tolist()
        ]
        added.append(
            ax.add_collection(
                PolyCollection(
                    list(boxes), facecolors=colours, edgecolors="#333333", linewidths=0.4, alpha=0.9, zorder=6
                )
            )
        )
    return added


def _setup(scenario: Scenario, dpi: int) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 7), dpi=dpi)
    ax.set_facecolor("white")
    ax.set_aspect("equal")
    ax.set_xlabel(f"x [m] ({scenario.metadata.frame})")
    ax.set_ylabel("y [m]")
    return fig, ax


def _title(scenario: Scenario, window: tuple[int, int], title: str | None) -> str:
    t = (scenario.timestamps_ns - scenario.timestamps_ns[0]) / 1e9
    span = f"t = {t[window[0]]:.1f}-{t[window[1]]:.1f} s"
    return (
        f"{title}\n{scenario.source}: {scenario.scenario_id} ({span})"
        if title
        else f"{scenario.scenario_id} ({span})"
    )


def render_highlight(
    scenario: Scenario,
    path: Path,
    *,
    referred: NDArrayBool,
    related: NDArrayBool | None = None,
    window: tuple[int, int] | None = None,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """One PNG: the map, every track, the referred and related tracks highlighted over ``window``.

    Args:
        scenario: A validated scenario.
        path: Output PNG; parent folders are created.
        referred: ``(A, T)`` states to highlight in red.
        related: ``(A, T)`` states to highlight in orange.
        window: ``(first, last)`` steps (inclusive); default: where ``referred`` holds.
        title: A first title line (the query, an event type).
        dpi: Resolution.
    """
    import matplotlib.pyplot as plt

    related = np.zeros_like(referred) if related is None else related
    steps = np.flatnonzero(referred.any(axis=0))
    if window is None:
        window = (int(steps[0]), int(steps[-1])) if steps.size else (0, scenario.num_steps - 1)
    fig, ax = _setup(scenario, dpi)
    _draw_map(ax, scenario)
    _frame(ax, scenario, referred, related, window, window[1])
    _view(ax, scenario, referred | related, window)
    ax.set_title(_title(scenario, window, title), fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def animate_highlight(
    scenario: Scenario,
    path: Path,
    *,
    referred: NDArrayBool,
    related: NDArrayBool | None = None,
    window: tuple[int, int] | None = None,
    title: str | None = None,
    context_s: float = 1.0,
    max_frames: int = 40,
    dpi: int = 70,
) -> Path:
    """An animated GIF of the window (and ``context_s`` either side), boxes moving step by step."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    related = np.zeros_like(referred) if related is None else related
    steps = np.flatnonzero(referred.any(axis=0))
    if window is None:
        window = (int(steps[0]), int(steps[-1])) if steps.size else (0, scenario.num_steps - 1)
    t = (scenario.timestamps_ns - scenario.timestamps_ns[0]) / 1e9
    lo = int(np.searchsorted(t, t[window[0]] - context_s, side="left"))
    hi = int(np.searchsorted(t, t[window[1]] + context_s, side="right")) - 1
    frames = np.arange(lo, max(hi, lo) + 1)
    if frames.size > max_frames:
        frames = frames[np.linspace(0, frames.size - 1, max_frames).round().astype(int)]
    fig, ax = _setup(scenario, dpi)
    _draw_map(ax, scenario)
    _view(ax, scenario, referred | related, window)
    current: list[Any] = []

    def draw(step: int) -> list[Any]:
        while current:
            current.pop().remove()
        current.extend(_frame(ax, scenario, referred, related, window, int(step)))
        ax.set_title(_title(scenario, window, title) + f"\nstep t = {t[int(step)]:.1f} s", fontsize=8)
        return current

    dt = float(np.median(np.diff(t))) if t.shape[0] > 1 else 0.1
    anim = FuncAnimation(fig, draw, frames=list(frames), blit=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    anim.save(str(path), writer=PillowWriter(fps=max(1, round(1.0 / max(dt, 1e-3)))))
    plt.close(fig)
    return path
