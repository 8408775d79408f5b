"""Renders of query hits and events: one bird's-eye PNG (or animated GIF) per hit.

Thin over :mod:`datadrive.viz.highlight`: each hit's track is drawn as the
referred object over the hit's interval, the tracks it relates to as
related objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from datadrive.core.scenario import Scenario
from datadrive.mining.engine import Selection
from datadrive.mining.results import Hit

__all__ = ["render_hits"]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80]


def render_hits(
    hits: Iterable[Hit],
    scenarios: Mapping[tuple[str | None, str, str], Scenario],
    out_dir: Path,
    *,
    title: str,
    animate: bool = False,
    selections: Mapping[tuple[str | None, str, str], Selection] | None = None,
    limit: int = 200,
) -> list[Path]:
    """One image per (hit, interval), at most ``limit``.

    Args:
        hits: From a :class:`~datadrive.mining.results.ResultSet`.
        scenarios: ``(tenant, source, scenario_id)`` -> the scenario.
        out_dir: Where the files go (created).
        title: First title line (the expression).
        animate: GIFs instead of PNGs.
        selections: The full selections per scenario, to draw every related object.
        limit: Most files written.
    """
    from datadrive.viz import animate_highlight, render_highlight

    out: list[Path] = []
    for h in hits:
        key = (h.tenant, h.source, h.scenario_id)
        s = scenarios.get(key)
        if s is None:
            continue
        ids = s.tracks.track_ids.tolist()
        r = ids.index(h.track_id)
        for i, (first, last) in enumerate(h.steps):
            if len(out) >= limit:
                return out
            referred = np.zeros_like(s.tracks.valid)
            referred[r, first : last + 1] = s.tracks.valid[r, first : last + 1]
            related = np.zeros_like(s.tracks.valid)
            sel = (selections or {}).get(key)
            if sel is not None:
                related[:, first : last + 1] = sel.related[:, first : last + 1]
            else:
                for t in h.related_track_ids:
                    if t in ids:
                        j = ids.index(t)
                        related[j, first : last + 1] = s.tracks.valid[j, first : last + 1]
            name = _safe(f"{h.scenario_id}__{h.track_id}__{i}") + (".gif" if animate else ".png")
            path = out_dir / name
            draw = animate_highlight if animate else render_highlight
            out.append(draw(s, path, referred=referred, related=related, window=(first, last), title=title))
    return out
