"""Per-scenario facts computed once and shared by the taggers and the query engine.

A :class:`ScenarioContext` wraps one :class:`~datadrive.core.scenario.Scenario`
and computes, lazily and at most once, what mining asks of it: kinematics
(:mod:`datadrive.mining.kinematics`), map context
(:mod:`datadrive.mining.map_context`), box footprints and corners, and
helpers to turn per-state masks into time intervals.

Notation:
    A: tracks. T: steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from datadrive.core.scenario import ObjectType, Scenario
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt
from datadrive.mining.kinematics import Kinematics, KinematicsConfig, compute_kinematics
from datadrive.mining.map_context import MapContext, MapContextConfig, compute_map_context
from datadrive.mining.shapes import box_corners, footprint_size

__all__ = ["FeatureConfig", "ScenarioContext", "mask_runs"]


@dataclass(frozen=True)
class FeatureConfig:
    """How per-state features are computed (kinematic windows, lane matching)."""

    kinematics: KinematicsConfig = field(default_factory=KinematicsConfig)
    map: MapContextConfig = field(default_factory=MapContextConfig)


def mask_runs(mask: NDArrayBool) -> tuple[NDArrayInt, NDArrayInt, NDArrayInt]:
    """Runs of consecutive True values in each row of ``mask``.

    Args:
        mask: ``(A, T)`` bool.

    Returns:
        ``(R,)`` row, ``(R,)`` first step and ``(R,)`` last step (inclusive) of
        every run, ordered by row then step.
    """
    a, t = mask.shape
    if a == 0 or t == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    padded = np.zeros((a, t + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    sr, sc = np.nonzero(d == 1)
    _er, ec = np.nonzero(d == -1)
    return sr.astype(np.int64), sc.astype(np.int64), (ec - 1).astype(np.int64)


class ScenarioContext:
    """One scenario and what mining computes from it, computed on first use.

    Args:
        scenario: A validated scenario.
        config: Feature parameters.
    """

    def __init__(self, scenario: Scenario, config: FeatureConfig | None = None) -> None:
        self.scenario = scenario
        self.config = config or FeatureConfig()
        self.tracks = scenario.tracks
        self.valid: NDArrayBool = scenario.tracks.valid
        self.timestamps_ns = scenario.timestamps_ns
        self.ego_index = scenario.ego_index
        self.cache: dict[object, object] = {}
        """Results shared by taggers and predicates (lane changes, turns), keyed by what made them."""

    @property
    def num_tracks(self) -> int:
        return self.tracks.num_tracks

    @property
    def num_steps(self) -> int:
        return self.scenario.num_steps

    @cached_property
    def t_s(self) -> NDArrayFloat:
        """``(T,)`` seconds since the first step."""
        out: NDArrayFloat = (self.timestamps_ns - self.timestamps_ns[0]).astype(np.float64) / 1e9
        return out

    @cached_property
    def kinematics(self) -> Kinematics:
        return compute_kinematics(self.scenario, self.config.kinematics)

    @cached_property
    def map(self) -> MapContext | None:
        """The map context, ``None`` without a map (or a map with no lanes and no areas)."""
        return compute_map_context(self.scenario, config=self.config.map)

    @property
    def has_lanes(self) -> bool:
        return self.map is not None and self.map.lanes.num_lanes > 0

    @cached_property
    def footprint(self) -> tuple[NDArrayFloat, NDArrayFloat]:
        """``(A,)`` length and ``(A,)`` width (defaults by type where unknown)."""
        return footprint_size(self.tracks.size_m, self.tracks.object_type)

    @cached_property
    def corners(self) -> NDArrayFloat:
        """``(A, T, 4, 2)`` box corners (meaningless on invalid states)."""
        length, width = self.footprint
        return box_corners(self.tracks.xy_m, self.tracks.heading_rad, length[:, None], width[:, None])

    def of_type(self, *types: ObjectType) -> NDArrayBool:
        """``(A,)`` tracks of the given coarse types."""
        out: NDArrayBool = np.isin(self.tracks.object_type, [int(t) for t in types])
        return out

    @cached_property
    def is_ego(self) -> NDArrayBool:
        out = np.zeros(self.num_tracks, dtype=bool)
        if self.ego_index is not None:
            out[self.ego_index] = True
        return out

    def interior(self, margin_s: float) -> NDArrayBool:
        """``(A, T)`` valid states with at least ``margin_s`` of the same valid run on both sides.

        Derivatives near the ends of a run are one-sided and amplify noise
        (a track that starts mid-turn, a box that jumps when it is first
        seen); the acceleration taggers look only at interior states.
        """
        from datadrive.mining.kinematics import valid_runs

        key = ("interior", margin_s)
        if key not in self.cache:
            start, end = valid_runs(self.valid)
            t = self.t_s[None, :]
            ok = (
                self.valid & (t - self.t_s[start] >= margin_s - 1e-9) & (self.t_s[end] - t >= margin_s - 1e-9)
            )
            self.cache[key] = ok
        out: NDArrayBool = self.cache[key]  # type: ignore[assignment]
        return out

    def duration_s(self, first: NDArrayInt, last: NDArrayInt) -> NDArrayFloat:
        """Seconds between steps ``first`` and ``last`` (arrays)."""
        out: NDArrayFloat = self.t_s[last] - self.t_s[first]
        return out

    def runs(
        self, mask: NDArrayBool, *, min_duration_s: float = 0.0, max_gap_s: float = 0.0
    ) -> tuple[NDArrayInt, NDArrayInt, NDArrayInt]:
        """Runs of True per track, gaps up to ``max_gap_s`` bridged, shorter than ``min_duration_s`` dropped.

        Returns:
            ``(R,)`` track, first step, last step (inclusive).
        """
        rows, first, last = mask_runs(mask)
        if rows.size and max_gap_s > 0:
            keep = np.ones(rows.size, dtype=bool)
            gap = np.zeros(rows.size, dtype=bool)
            gap[1:] = (rows[1:] == rows[:-1]) & (self.t_s[first[1:]] - self.t_s[last[:-1]] <= max_gap_s)
            # merge each run flagged `gap` into the previous kept run
            new_last = last.copy()
            for i in np.flatnonzero(gap):
                j = i - 1
                while not keep[j]:
                    j -= 1
                new_last[j] = last[i]
                keep[i] = False
            rows, first, last = rows[keep], first[keep], new_last[keep]
        if min_duration_s > 0 and rows.size:
            ok = self.duration_s(first, last) >= min_duration_s - 1e-9
            rows, first, last = rows[ok], first[ok], last[ok]
        return rows, first, last
