"""Baselines: constant velocity, and nearest neighbours over the training set's histories.

Both are real forecasters with the common interface, so they are trained
(the nearest-neighbour one memorises its examples), checkpointed, evaluated
and compared like the learned models: every learned model must beat them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from datadrive.curate.features import FeatureConfig
from datadrive.models.base import Forecaster, ModelOutput, TensorBatch, constant_velocity

__all__ = ["ConstantVelocity", "NearestNeighbor"]


class ConstantVelocity(Forecaster):
    """The target keeps its velocity at ``t0`` (one mode, probability 1).

    The velocity is the source's (or the finite difference the featuriser
    made), in the target's frame.
    """

    name = "constant_velocity"
    trainable = False

    def __init__(self, features: FeatureConfig) -> None:
        super().__init__(features, modes=1)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def forward(self, x: TensorBatch) -> ModelOutput:
        t = self.future_times_s(x.agent_xy_m.device, x.agent_xy_m.dtype)
        traj = constant_velocity(x, t)[:, None]  # (B, 1, F, 2)
        return ModelOutput(traj, torch.zeros(x.size, 1, device=traj.device, dtype=traj.dtype))


class NearestNeighbor(Forecaster):
    """The futures of the K training targets whose recent history is closest.

    Histories are compared as the target's last ``match_steps`` positions
    and its velocity at ``t0`` (all in the target's frame, so the match is
    invariant to where and which way the agent drives). Mode probabilities
    are a softmax of ``-distance / temperature_m``.

    Args:
        features: Horizons.
        modes: K.
        match_steps: History steps compared.
        max_examples: Training examples kept (the first ones seen; a
            reservoir would need randomness the checkpoint must replay).
        temperature_m: Softness of the probabilities.
    """

    name = "nearest_neighbor"
    trainable = False

    def __init__(
        self,
        features: FeatureConfig,
        modes: int = 6,
        match_steps: int = 10,
        max_examples: int = 200_000,
        temperature_m: float = 2.0,
    ) -> None:
        super().__init__(features, modes=modes)
        self.match_steps = min(match_steps, features.history_steps)
        self.max_examples = max_examples
        self.temperature_m = temperature_m
        dim = self.match_steps * 2 + 2
        self.keys: Tensor
        self.futures: Tensor
        self.register_buffer("keys", torch.zeros(0, dim))
        self.register_buffer("futures", torch.zeros(0, features.future_steps, 2))

    def spec_config(self) -> dict[str, Any]:
        return {
            "modes": self.modes,
            "match_steps": self.match_steps,
            "max_examples": self.max_examples,
            "temperature_m": self.temperature_m,
        }

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any, **kwargs: Any) -> None:
        # the memorised examples are buffers whose length the checkpoint decides
        for name in ("keys", "futures"):
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _key(self, x: TensorBatch) -> Tensor:
        xy = x.agent_xy_m[:, 0, -self.match_steps :]  # (B, M, 2)
        valid = x.agent_valid[:, 0, -self.match_steps :, None]
        xy = torch.where(valid, xy, torch.zeros_like(xy))
        v = x.agent_velocity_mps[:, 0, -1]
        return torch.cat([xy.flatten(1), v], dim=1)

    def fit_examples(self, batches: Iterable[TensorBatch]) -> None:
        keys = [self.keys]
        futures = [self.futures]
        have = self.keys.shape[0]
        for x in batches:
            if have >= self.max_examples:
                break
            full = x.future_valid.all(dim=1)  # only fully observed futures are good answers
            k = self._key(x)[full][: self.max_examples - have]
            f = x.future_xy_m[full][: k.shape[0]]
            keys.append(k.to(self.keys))
            futures.append(f.to(self.futures))
            have += k.shape[0]
        self.keys = torch.cat(keys)
        self.futures = torch.cat(futures)

    def forward(self, x: TensorBatch) -> ModelOutput:
        b = x.size
        k = self.modes
        dtype = x.agent_xy_m.dtype
        if self.keys.shape[0] == 0:  # nothing learnt: stand still, evenly unsure
            traj = torch.zeros(b, k, self.future_steps, 2, device=x.agent_xy_m.device, dtype=dtype)
            return ModelOutput(traj, torch.zeros(b, k, device=traj.device, dtype=dtype))
        q = self._key(x).to(self.keys)
        d = torch.cdist(q, self.keys) / (self.match_steps**0.5)  # (B, N) metres, roughly per step
        kk = min(k, self.keys.shape[0])
        dist, idx = torch.topk(d, kk, dim=1, largest=False)
        traj = self.futures[idx]  # (B, kk, F, 2)
        logits = -dist / self.temperature_m
        if kk < k:  # fewer examples than modes: repeat the best, with no probability
            pad = k - kk
            traj = torch.cat([traj, traj[:, :1].expand(-1, pad, -1, -1)], dim=1)
            logits = torch.cat([logits, torch.full((b, pad), -1e4, device=logits.device)], dim=1)
        return ModelOutput(traj.to(dtype), logits.to(dtype))
