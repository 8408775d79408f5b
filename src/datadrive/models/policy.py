"""A trained model as a driving policy: ``plan(ego-centric features) -> future ego trajectory``.

This is the interface the simulator drives (``datadrive.sim``): batched,
numpy in and out, no torch types in the signature.

>>> policy = PlanningPolicy.from_file(Path("model.pt"))                  # doctest: +SKIP
>>> obs = observation_batch(xy, heading, vel, valid, types, sizes, ego=ego,
...                         maps=maps, map_index=map_index, config=policy.features)  # doctest: +SKIP
>>> plan = policy.plan(obs)                                              # doctest: +SKIP
>>> plan.world_xy_m.shape                                                # (B, F, 2)

A model with a planning head (the transformer) plans with it. Any other
forecaster plans with its most probable mode (headings from the direction
of travel), so a baseline can be simulated the same way.

Notation:
    B: rows (planning agents). F: future steps (``policy.features.future_steps``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from datadrive.core.frames import from_frame, wrap_angle
from datadrive.core.typing import NDArrayFloat
from datadrive.curate.features import FeatureConfig
from datadrive.curate.loader import FeatureBatch
from datadrive.errors import DeviceError
from datadrive.models.base import Forecaster, to_tensors
from datadrive.models.io import load_model

__all__ = ["ModelPlanner", "Plan", "PlanningPolicy", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """``"cpu"``, ``"cuda"`` (``"cuda:N"``) or ``"auto"`` (a GPU when there is one).

    Raises:
        DeviceError: if a GPU is asked for and none is available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {name!r} was requested, but this machine has no CUDA GPU visible to torch "
                f"(torch {torch.__version__}); use --device cpu or auto"
            )
        index = torch.device(name).index
        if index is not None and index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {name!r} was requested; this machine has {torch.cuda.device_count()} GPUs"
            )
    elif name != "cpu":
        raise DeviceError(f"unknown device {name!r}: use cpu, cuda, cuda:N or auto")
    return torch.device(name)


@dataclass(frozen=True)
class Plan:
    """Planned futures of a batch of planning agents.

    Attributes:
        xy_m: ``(B, F, 2)`` in each agent's frame at the current step.
        heading_rad: ``(B, F)`` relative to its current heading.
        world_xy_m: ``(B, F, 2)`` in the world frame.
        world_heading_rad: ``(B, F)`` in the world frame.
        dt_s: Seconds between steps (step 0 is ``dt_s`` after now).
    """

    xy_m: NDArrayFloat
    heading_rad: NDArrayFloat
    world_xy_m: NDArrayFloat
    world_heading_rad: NDArrayFloat
    dt_s: float


class PlanningPolicy:
    """Plans with a forecaster for a batch of ego-centric observations.

    Args:
        model: A trained model (the transformer's planning head is used when present).
        features: The feature config it was trained with (the inputs must match it).
        device: Where to run it (``cpu``, ``cuda``, ``auto``).
    """

    def __init__(self, model: Forecaster, features: FeatureConfig, device: str = "cpu") -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.features = features

    @classmethod
    def from_file(cls, path: Path, device: str = "cpu") -> PlanningPolicy:
        """A policy from a model file (see :mod:`datadrive.models.io`)."""
        model, features, _ = load_model(path)
        return cls(model, features, device)

    @torch.no_grad()
    def plan(self, batch: FeatureBatch) -> Plan:
        """The planned future of every row's planning agent (agent 0 of each row)."""
        x = to_tensors(batch, self.device)
        out = self.model(x)
        if out.plan_xy is not None and out.plan_heading is not None:
            xy = out.plan_xy.float().cpu().numpy().astype(np.float64)
            heading = out.plan_heading.float().cpu().numpy().astype(np.float64)
        else:
            best = out.logits.argmax(dim=1)
            traj = out.trajectories[torch.arange(best.shape[0], device=best.device), best]
            xy = traj.float().cpu().numpy().astype(np.float64)
            step = np.diff(np.concatenate([np.zeros((xy.shape[0], 1, 2)), xy], axis=1), axis=1)
            moving = np.linalg.norm(step, axis=-1) > 1e-3
            raw = np.arctan2(step[..., 1], step[..., 0])
            # standing still keeps the last heading (0 at the start: the agent's own)
            heading = np.where(moving, raw, np.nan)
            heading = _forward_fill(heading)
        heading = wrap_angle(heading)
        world = from_frame(xy, batch.origin_xy_m[:, None, :], batch.origin_heading_rad[:, None])
        world_heading = wrap_angle(heading + batch.origin_heading_rad[:, None])
        return Plan(xy, heading, world, world_heading, self.features.dt_s)


def _forward_fill(values: NDArrayFloat) -> NDArrayFloat:
    """``(B, F)`` NaN replaced by the last value before it (0 before the first)."""
    out = np.nan_to_num(values.copy(), nan=0.0)
    have = ~np.isnan(values)
    idx = np.where(have, np.arange(values.shape[1])[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    filled = np.take_along_axis(out, idx, axis=1)
    first = np.maximum.accumulate(have, axis=1)
    return np.where(first, filled, 0.0)


class ModelPlanner:
    """A trained model as the simulator's ``Planner`` (``datadrive.sim.policies.Planner``).

    The simulator hands a planner each step the current state of the agents
    in the ego's frame and the ego's route (``PlanningInput``: no history,
    no map). This adapter turns that into the model's inputs: histories are
    back-cast at each agent's current velocity over the model's history
    length (the simulator keeps no history per agent), the route becomes
    the map (a lane centreline, cut into segments as the cache does), and
    the ego is the planning agent at the origin. It returns the plan's
    positions as ``(S, F, 2)`` ego-frame waypoints, ``waypoint_dt_s`` apart.

    It only reads attributes of the input (duck typing), so this layer does
    not depend on the simulator.

    Args:
        policy: The planning policy (model, feature config, device).
    """

    def __init__(self, policy: PlanningPolicy) -> None:
        self.policy = policy
        self.waypoint_dt_s = policy.features.dt_s

    @classmethod
    def from_file(cls, path: Path, device: str = "cpu") -> ModelPlanner:
        return cls(PlanningPolicy.from_file(path, device))

    def plan(self, inputs: Any) -> NDArrayFloat:
        from datadrive.core.scenario import MapBuilder, MapFeatureKind
        from datadrive.curate.observation import observation_batch, segment_map

        cfg = self.policy.features
        xy = np.asarray(inputs.agents_xy_m, dtype=np.float64)  # (S, A, 2)
        s = xy.shape[0]
        heading = np.asarray(inputs.agents_heading_rad, dtype=np.float64)
        vel = np.asarray(inputs.agents_velocity_mps, dtype=np.float64)
        size = np.asarray(inputs.agents_size_m, dtype=np.float64)
        types = np.asarray(inputs.agents_type).astype(np.int64)
        valid = np.asarray(inputs.agents_valid, dtype=np.bool_)
        speed = np.asarray(inputs.ego_speed_mps, dtype=np.float64)
        route = np.asarray(inputs.route_xy_m, dtype=np.float64)  # (S, R, 2)
        h = cfg.history_steps
        back = (np.arange(h) - (h - 1)) * cfg.dt_s  # (H,) seconds, <= 0
        # row 0 of every scenario is the ego (origin, heading 0, its speed along x)
        all_xy = np.concatenate([np.zeros((s, 1, 2)), np.nan_to_num(xy)], axis=1)
        all_vel = np.concatenate(
            [np.stack([speed, np.zeros_like(speed)], -1)[:, None], np.nan_to_num(vel)], axis=1
        )
        all_head = np.concatenate([np.zeros((s, 1)), np.nan_to_num(heading)], axis=1)
        all_valid = np.concatenate([np.ones((s, 1), np.bool_), valid], axis=1)
        hist_xy = all_xy[:, :, None, :] + all_vel[:, :, None, :] * back[None, None, :, None]
        maps = []
        for r in range(s):
            b = MapBuilder()
            pts = route[r][np.isfinite(route[r]).all(axis=1)]
            if pts.shape[0] >= 2:
                b.add("route", MapFeatureKind.LANE_CENTERLINE, pts)
            maps.append(segment_map(b.build() if pts.shape[0] >= 2 else None, cfg))
        batch = observation_batch(
            hist_xy,
            np.repeat(all_head[:, :, None], h, axis=2),
            np.repeat(all_vel[:, :, None, :], h, axis=2),
            np.repeat(all_valid[:, :, None], h, axis=2),
            np.concatenate([np.zeros((s, 1), np.int64), types], axis=1),
            np.concatenate([np.full((s, 1, 2), [4.5, 2.0]), size], axis=1),
            ego=np.zeros(s, dtype=np.int64),
            maps=maps,
            map_index=np.arange(s),
            config=cfg,
        )
        return self.policy.plan(batch).xy_m
