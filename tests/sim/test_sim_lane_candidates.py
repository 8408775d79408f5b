"""Lane queries' candidate segments: each distinct segment once, and the same answers as without."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from builders import straight_map

import datadrive.sim.lanes as lanes_mod
from datadrive.errors import UnsupportedFormatError
from datadrive.sim.lanes import LaneGraph, _distinct
from datadrive.sources import DEFAULT_REGISTRY


def _distinct_by_hand(seg: np.ndarray, real: np.ndarray) -> list[list[int]]:
    out = []
    for row, ok in zip(seg.tolist(), real.tolist(), strict=True):
        seen: list[int] = []
        for s, r in zip(row, ok, strict=True):
            if r and s not in seen:
                seen.append(s)
        out.append(seen)
    return out


@pytest.mark.parametrize("seed", range(40))
def test_distinct_keeps_first_appearances_in_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    q, c = int(rng.integers(1, 30)), int(rng.integers(1, 40))
    seg = rng.integers(0, int(rng.integers(1, 12)), (q, c))
    real = rng.random((q, c)) < rng.uniform(0.0, 1.0)
    got, keep = _distinct(seg, real)
    want = _distinct_by_hand(seg, real)
    assert got.shape[1] == keep.shape[1] == max(1, max(len(w) for w in want))
    assert [g[k].tolist() for g, k in zip(got, keep, strict=True)] == want
    # kept entries come first in each row, padding after them
    assert all(not k[len(w) :].any() and k[: len(w)].all() for k, w in zip(keep, want, strict=True))


@pytest.mark.parametrize("seed", range(20))
def test_first_minimum_over_distinct_segments_is_the_same_segment(seed: int) -> None:
    """The argument for bit-identical queries: argmin (first of equal costs) picks the same segment."""
    rng = np.random.default_rng(100 + seed)
    q, c, nseg = 50, 24, 6
    seg = rng.integers(0, nseg, (q, c))
    real = rng.random((q, c)) < 0.9
    cost_of_seg = rng.integers(0, 3, (q, nseg)).astype(float)  # many ties between different segments
    full = np.where(real, np.take_along_axis(cost_of_seg, seg, axis=1), np.inf)
    got, keep = _distinct(seg, real)
    short = np.where(keep, np.take_along_axis(cost_of_seg, got, axis=1), np.inf)
    r = np.arange(q)
    jf, js = np.argmin(full, axis=1), np.argmin(short, axis=1)
    assert np.array_equal(full[r, jf], short[r, js])
    finite = np.isfinite(full[r, jf])
    assert np.array_equal(seg[r, jf][finite], got[r, js][finite])


_FIELDS = (
    ("membership", ("lane", "excess_m", "s_m")),
    ("match", ("lane", "s_m", "lateral_m", "distance_m", "heading_error_rad")),
)


def _answers(graph: LaneGraph, q: np.ndarray, h: np.ndarray) -> dict[str, np.ndarray]:
    mem, mat = graph.membership(q), graph.match(q, h)
    out = {f"membership.{n}": getattr(mem, n) for n in _FIELDS[0][1]}
    out.update({f"match.{n}": getattr(mat, n) for n in _FIELDS[1][1]})
    return out


def _same_without_distinct(monkeypatch: pytest.MonkeyPatch, m: object, q: np.ndarray, h: np.ndarray) -> None:
    """Answers with distinct candidates, then with the full list (``_distinct`` off): equal bit for bit."""
    new = _answers(LaneGraph(m), q, h)  # type: ignore[arg-type]
    with monkeypatch.context() as mp:
        mp.setattr(lanes_mod, "_distinct", lambda seg, real: (seg, real))
        old = _answers(LaneGraph(m), q, h)  # type: ignore[arg-type]
    for name, a in new.items():
        assert np.array_equal(a, old[name], equal_nan=True), name


def test_queries_match_the_full_candidate_list_on_a_straight_road(monkeypatch: pytest.MonkeyPatch) -> None:
    m = straight_map(600.0, lanes=4)
    rng = np.random.default_rng(3)
    # points on vertices and lane edges too (ties between segments), and random ones
    xs = np.concatenate([np.arange(-100.0, 500.0, 10.0), rng.uniform(-120, 520, 2000)])
    ys = np.concatenate([np.full(60, 1.85), rng.uniform(-8, 20, 2000)])
    q = np.stack([xs, ys], 1)
    h = rng.uniform(-np.pi, np.pi, q.shape[0])
    _same_without_distinct(monkeypatch, m, q, h)


def test_queries_match_the_full_candidate_list_on_real_maps(
    samples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    maps = []
    for folder in (
        "av2_motion_forecasting",
        "waymo_open_motion/scenario_637f20cafde22ff8",
        "scenarionet_nuscenes",
    ):
        for adapter, unit in DEFAULT_REGISTRY.discover(samples / folder).units:
            try:
                maps += [s.map for s in adapter.read(unit) if s.map is not None][:1]
            except UnsupportedFormatError:
                continue
    assert maps, "no sample maps"
    rng = np.random.default_rng(5)
    for m in maps:
        graph = LaneGraph(m)
        if graph.num_lanes == 0:
            continue
        pts = np.concatenate(graph.points)
        q = pts[rng.integers(0, pts.shape[0], 3000)] + rng.normal(0, 2.5, (3000, 2))
        q = np.concatenate([q, pts[:500]])  # exactly on centerline vertices: ties between segments
        h = rng.uniform(-np.pi, np.pi, q.shape[0])
        _same_without_distinct(monkeypatch, m, q, h)
