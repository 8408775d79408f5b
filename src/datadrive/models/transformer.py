"""A vectorised transformer forecaster with a planning head, in the spirit of Wayformer and QCNet.

Scene encoding (everything in the target's frame, as the loader gives it):

* **agent tokens**: each agent's history (``H`` steps of position, heading,
  velocity, validity) flattened through an MLP, plus a type embedding and
  an encoding of its size;
* **map tokens**: each map segment's ``Q`` points (positions and the step
  to the next point, in order) flattened through an MLP, plus a kind
  embedding. Segments are resampled to a fixed ``Q`` by the cache, so the
  flattened polyline is well defined and keeps the point order; it costs
  ``B * L`` rows where a point-wise PointNet costs ``B * L * Q`` (that was
  a third of a training step on the CPU);
* a transformer encoder over all tokens together (self-attention with
  padding masks), so agents attend to lanes and to each other.

Decoding: K learned *mode queries*, each summed with the target's encoded
token, cross-attend to the scene (a transformer decoder) and each becomes
one trajectory (``F`` x 2, a correction added to the target's
constant-velocity extrapolation) and one mode logit. Training is winner-takes-all
regression plus mode classification.

The **planning head** is one more learned query through the same decoder,
regressing a single future (positions and headings) of the target: trained
on every target's own future (behaviour cloning), it is what the simulator
drives as a policy (:class:`~datadrive.models.policy.PlanningPolicy`), with
the ego as the target.

Notation:
    B: samples. A: agents. L: map segments. Q: points per segment.
    H: history steps. F: future steps. K: modes. D: model width.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

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

__all__ = ["TransformerForecaster"]

_TYPES = 4  # ObjectType codes 0..3
_KINDS = 10  # MapFeatureKind codes 0..9


class TransformerForecaster(Forecaster):
    """Agent and map tokens, a transformer encoder, K mode queries, and a planning query.

    Args:
        features: Horizons.
        modes: K.
        d_model: Token width D.
        heads: Attention heads.
        encoder_layers: Self-attention layers over the scene.
        decoder_layers: Cross-attention layers of the mode and plan queries.
        dropout: Dropout in attention and feed-forward layers.
        scale_m: Positions are divided by this inside the network.
        classification_weight: Weight of the mode-classification loss.
        plan_weight: Weight of the planning head's imitation loss (0 turns it off).
    """

    name = "transformer"

    def __init__(
        self,
        features: FeatureConfig,
        modes: int = 6,
        d_model: int = 64,
        heads: int = 4,
        encoder_layers: int = 2,
        decoder_layers: int = 2,
        dropout: float = 0.0,
        scale_m: float = 10.0,
        classification_weight: float = 1.0,
        plan_weight: float = 0.5,
    ) -> None:
        super().__init__(features, modes)
        self.d_model = d_model
        self.heads = heads
        self.encoder_layers = encoder_layers
        self.decoder_layers = decoder_layers
        self.dropout = dropout
        self.scale_m = scale_m
        self.classification_weight = classification_weight
        self.plan_weight = plan_weight
        d = d_model
        h = features.history_steps
        self.agent_encoder = mlp([h * 7 + 2, 2 * d, d])
        self.agent_type = nn.Embedding(_TYPES + 1, d)
        self.segment_encoder = mlp([features.segment_points * 4, 2 * d, d])
        self.map_kind = nn.Embedding(_KINDS + 1, d)
        self.token_kind = nn.Embedding(2, d)  # agent or map
        enc = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(enc, encoder_layers, enable_nested_tensor=False)
        dec = nn.TransformerDecoderLayer(d, heads, 4 * d, dropout, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(dec, decoder_layers)
        self.mode_queries = nn.Parameter(torch.randn(modes, d) * 0.1)
        self.plan_query = nn.Parameter(torch.randn(1, d) * 0.1)
        self.traj_head = mlp([d, 2 * d, features.future_steps * 2])
        self.score_head = mlp([d, d, 1])
        self.plan_head = mlp([d, 2 * d, features.future_steps * 3])
        self.apply(init_linear)
        # the corrections start at zero: an untrained model forecasts constant velocity, not noise
        for head in (self.traj_head, self.plan_head):
            last = head[-1]
            assert isinstance(last, nn.Linear)
            nn.init.zeros_(last.weight)

    def spec_config(self) -> dict[str, Any]:
        return {
            "modes": self.modes,
            "d_model": self.d_model,
            "heads": self.heads,
            "encoder_layers": self.encoder_layers,
            "decoder_layers": self.decoder_layers,
            "dropout": self.dropout,
            "scale_m": self.scale_m,
            "classification_weight": self.classification_weight,
            "plan_weight": self.plan_weight,
        }

    def encode(self, x: TensorBatch) -> tuple[Tensor, Tensor]:
        """``(B, A + L, D)`` scene tokens and their ``(B, A + L)`` padding mask (True = padding)."""
        steps = agent_step_features(x, self.scale_m)  # (B, A, H, 7)
        size = x.agent_size_m / self.scale_m
        a = self.agent_encoder(torch.cat([steps.flatten(2), size], dim=-1))
        types = torch.where(
            x.agent_mask, x.agent_type.clamp(0, _TYPES - 1), torch.full_like(x.agent_type, _TYPES)
        )
        a = a + self.agent_type(types) + self.token_kind.weight[0]
        pts = x.map_xy_m / self.scale_m  # (B, L, Q, 2)
        direction = torch.diff(pts, dim=2, prepend=pts[:, :, :1])
        p = self.segment_encoder(torch.cat([pts, direction], dim=-1).flatten(2))  # (B, L, D)
        kinds = torch.where(x.map_mask, x.map_kind.clamp(0, _KINDS - 1), torch.full_like(x.map_kind, _KINDS))
        m = p + self.map_kind(kinds) + self.token_kind.weight[1]
        tokens = torch.cat([a, m], dim=1)
        padding = torch.cat([~x.agent_mask, ~x.map_mask], dim=1)
        return self.encoder(tokens, src_key_padding_mask=padding), padding

    def forward(self, x: TensorBatch) -> ModelOutput:
        b = x.size
        scene, padding = self.encode(x)
        target = scene[:, :1]  # (B, 1, D) the target's own token
        queries = torch.cat([self.mode_queries, self.plan_query], dim=0)[None].expand(b, -1, -1) + target
        decoded = self.decoder(queries, scene, memory_key_padding_mask=padding)  # (B, K + 1, D)
        modes = decoded[:, : self.modes]
        # every trajectory is a correction of the constant-velocity one: the network learns what changes
        base = constant_velocity(x, self.future_times_s(x.agent_xy_m.device, x.agent_xy_m.dtype))
        traj = base[:, None] + self.traj_head(modes).view(b, self.modes, self.future_steps, 2) * self.scale_m
        logits = self.score_head(modes).squeeze(-1)
        plan = self.plan_head(decoded[:, self.modes]).view(b, self.future_steps, 3)
        plan_xy = base + plan[..., :2] * self.scale_m
        plan_heading = plan[..., 2]
        return ModelOutput(traj, logits, plan_xy, plan_heading)

    def loss(self, out: ModelOutput, x: TensorBatch) -> LossTerms:
        return wta_loss(
            out,
            x,
            classification_weight=self.classification_weight,
            plan_weight=self.plan_weight,
            scale_m=self.scale_m,
        )
