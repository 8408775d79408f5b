"""Shared geometry: SE(2) frames and exact nearest-polyline projection (against brute force)."""

from __future__ import annotations

import numpy as np
import pytest

from datadrive.core.frames import from_frame, to_frame, wrap_angle
from datadrive.core.geometry import PolylineIndex, flatten_polylines, polyline_arc_lengths


def brute_force(q: np.ndarray, polylines: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Nearest polyline and distance for every point, by measuring every segment."""
    best_f = np.full(len(q), -1)
    best_d = np.full(len(q), np.inf)
    for f, line in enumerate(polylines):
        segs = [(line[i], line[i + 1]) for i in range(len(line) - 1)] or [(line[0], line[0])]
        for a, b in segs:
            d = b - a
            L2 = float(d @ d)
            t = np.clip(((q - a) @ d) / L2, 0, 1) if L2 > 0 else np.zeros(len(q))
            dist = np.linalg.norm(q - (a + t[:, None] * d), axis=1)
            better = dist < best_d
            best_d[better], best_f[better] = dist[better], f
    return best_f, best_d


def random_polylines(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    lines = []
    for _ in range(n):
        k = int(rng.integers(1, 8))
        start = rng.uniform(-100, 100, 2)
        steps = rng.normal(0, 8, (k - 1, 2))
        lines.append(np.vstack([start, start + np.cumsum(steps, axis=0)]) if k > 1 else start[None, :])
    return lines


@pytest.mark.parametrize("seed", [0, 1, 2, 3], ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("step_m", [0.5, 3.0], ids=["fine", "coarse"])
def test_projection_finds_the_true_nearest_segment(seed: int, step_m: float) -> None:
    rng = np.random.default_rng(seed)
    lines = random_polylines(rng, 40)
    points, _, offsets = flatten_polylines(lines)
    index = PolylineIndex(points, offsets, step_m=step_m)
    q = rng.uniform(-130, 130, (500, 2))
    proj = index.project(q, k=4)  # a small k forces the exact second pass too
    want_f, want_d = brute_force(q, lines)
    np.testing.assert_allclose(proj.distance_m, want_d, atol=1e-9)
    # random floats make ties between polylines vanishingly rare
    np.testing.assert_array_equal(proj.feature, want_f)
    # the foot point is at the reported distance
    np.testing.assert_allclose(np.linalg.norm(q - proj.xy_m, axis=1), want_d, atol=1e-9)


def test_lateral_offset_arc_length_and_heading_on_a_known_line() -> None:
    line = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    index = PolylineIndex(line, np.array([0, 3]))
    proj = index.project(np.array([[4.0, 2.0], [12.0, 5.0], [11.0, -1.0]]))
    np.testing.assert_allclose(proj.s_m, [4.0, 15.0, 10.0])
    np.testing.assert_allclose(proj.lateral_m[:2], [2.0, -2.0])  # left of +x is +y; right of +y is +x
    np.testing.assert_allclose(proj.heading_rad[:2], [0.0, np.pi / 2])
    np.testing.assert_allclose(proj.distance_m[2], np.sqrt(2.0))


def test_points_out_of_reach_and_nan_points_have_no_polyline() -> None:
    line = np.array([[0.0, 0.0], [10.0, 0.0]])
    index = PolylineIndex(line, np.array([0, 2]))
    proj = index.project(np.array([[5.0, 50.0], [np.nan, 0.0], [5.0, 1.0]]), max_distance_m=5.0)
    np.testing.assert_array_equal(proj.feature, [-1, -1, 0])
    assert np.isinf(proj.distance_m[:2]).all()
    assert np.isnan(proj.s_m[:2]).all()
    np.testing.assert_array_equal(proj.found, [False, False, True])


def test_empty_index_and_single_point_polylines() -> None:
    empty = PolylineIndex(np.zeros((0, 2)), np.zeros(1, dtype=np.int64))
    assert (empty.project(np.zeros((3, 2))).feature == -1).all()
    dots = PolylineIndex(np.array([[0.0, 0.0], [5.0, 5.0]]), np.array([0, 1, 2]))
    proj = dots.project(np.array([[4.0, 4.0]]))
    assert proj.feature[0] == 1
    np.testing.assert_allclose(proj.distance_m, [np.sqrt(2.0)])


def test_arc_lengths_restart_per_polyline() -> None:
    pts = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 5.0], [1.0, 1.0], [1.0, 2.0]])
    np.testing.assert_allclose(polyline_arc_lengths(pts, np.array([0, 3, 5])), [0, 5, 6, 0, 1])


def test_frames_round_trip_and_known_values() -> None:
    rng = np.random.default_rng(7)
    pts = rng.normal(size=(4, 5, 2))
    origin = rng.normal(size=(4, 1, 2))
    heading = rng.uniform(-np.pi, np.pi, (4, 1))
    np.testing.assert_allclose(from_frame(to_frame(pts, origin, heading), origin, heading), pts, atol=1e-12)
    # a point 1 m ahead of a car facing +y is at (1, 0) in the car's frame
    np.testing.assert_allclose(
        to_frame(np.array([2.0, 3.0]), np.array([2.0, 2.0]), np.pi / 2), [1.0, 0.0], atol=1e-12
    )
    np.testing.assert_allclose(
        wrap_angle(np.array([np.pi, 3 * np.pi / 2, -3 * np.pi])), [-np.pi, -np.pi / 2, -np.pi]
    )
