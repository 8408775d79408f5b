"""A multi-layer perceptron forecaster: the target's history, its nearest agents and map, flattened.

The target's history (``H`` steps), the last states of its ``context_agents``
nearest neighbours and a max-pooled encoding of its ``context_segments``
nearest map segments are concatenated and mapped to K corrections of the target's constant-velocity
extrapolation and K mode logits. Trained with the winner-takes-all loss, like the transformer.
"""

from __future__ import annotations

from typing import Any

import torch

from datadrive.curate.features import FeatureConfig
from datadrive.models.base import (
    Forecaster,
    LossTerms,
    ModelOutput,
    TensorBatch,
    agent_step_features,
    constant_velocity,
    init_linear,
    mlp,
    wta_loss,
)

__all__ = ["MlpForecaster"]


class MlpForecaster(Forecaster):
    """K trajectories from one MLP over a flat summary of the scene.

    Args:
        features: Horizons.
        modes: K.
        hidden: Width of the hidden layers.
        layers: Hidden layers.
        context_agents: Neighbours whose last state is an input.
        context_segments: Map segments pooled into the input.
        scale_m: Positions are divided by this before the network.
        classification_weight: Weight of the mode-classification loss.
    """

    name = "mlp"

    def __init__(
        self,
        features: FeatureConfig,
        modes: int = 6,
        hidden: int = 256,
        layers: int = 3,
        context_agents: int = 8,
        context_segments: int = 32,
        scale_m: float = 10.0,
        classification_weight: float = 1.0,
    ) -> None:
        super().__init__(features, modes)
        self.hidden = hidden
        self.layers = layers
        self.context_agents = context_agents
        self.context_segments = context_segments
        self.scale_m = scale_m
        self.classification_weight = classification_weight
        q = features.segment_points
        self.map_encoder = mlp([q * 2 + 1, 64, 64])
        size_in = features.history_steps * 7 + context_agents * 7 + 64
        self.body = mlp([size_in] + [hidden] * layers, last_activation=True)
        self.head = torch.nn.Linear(hidden, modes * (features.future_steps * 2 + 1))
        self.apply(init_linear)
        # the corrections start small: an untrained model forecasts about constant velocity
        torch.nn.init.normal_(self.head.weight, std=1e-3)

    def spec_config(self) -> dict[str, Any]:
        return {
            "modes": self.modes,
            "hidden": self.hidden,
            "layers": self.layers,
            "context_agents": self.context_agents,
            "context_segments": self.context_segments,
            "scale_m": self.scale_m,
            "classification_weight": self.classification_weight,
        }

    def forward(self, x: TensorBatch) -> ModelOutput:
        b = x.size
        n = self.context_agents
        # (B, <=1 + n, H, 7): only the target and the neighbours read below (a cache keeps up to 32)
        steps = agent_step_features(x, self.scale_m, agents=1 + n)
        target = steps[:, 0].flatten(1)
        others = steps[:, 1 : 1 + n, -1]  # (B, <=n, 7) last state of the nearest agents
        if others.shape[1] < n:
            others = torch.nn.functional.pad(others, (0, 0, 0, n - others.shape[1]))
        seg = x.map_xy_m[:, : self.context_segments] / self.scale_m  # (B, L', Q, 2)
        seg_mask = x.map_mask[:, : self.context_segments]
        seg_in = torch.cat([seg.flatten(2), seg_mask.unsqueeze(-1).to(seg.dtype)], dim=-1)
        enc = self.map_encoder(seg_in)
        enc = enc.masked_fill(~seg_mask.unsqueeze(-1), float("-inf")).amax(dim=1)
        enc = torch.where(torch.isfinite(enc), enc, torch.zeros_like(enc))
        h = self.body(torch.cat([target, others.flatten(1), enc], dim=1))
        out = self.head(h).view(b, self.modes, -1)
        base = constant_velocity(x, self.future_times_s(x.agent_xy_m.device, x.agent_xy_m.dtype))
        traj = base[:, None] + out[..., :-1].view(b, self.modes, self.future_steps, 2) * self.scale_m
        return ModelOutput(traj, out[..., -1])

    def loss(self, out: ModelOutput, x: TensorBatch) -> LossTerms:
        return wta_loss(out, x, classification_weight=self.classification_weight, scale_m=self.scale_m)
