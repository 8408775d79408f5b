"""What every forecasting model shares: tensor batches, outputs, the winner-takes-all loss, a registry.

A model is a :class:`Forecaster` (a ``torch.nn.Module``) built from a
:class:`ModelSpec` (its name and a plain-JSON config) for a feature config
(horizons, points per map segment). The spec, the model's code version and
the feature horizons are what a checkpoint records, so a checkpoint of
another model, config or horizon is refused instead of loaded half-way.

Notation:
    B: samples. A: agents (target first). H: history steps. L: map segments.
    Q: points per segment. F: future steps. K: modes.
"""

from __future__ import annotations

import itertools
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from datadrive.curate.features import FeatureConfig
from datadrive.curate.loader import FeatureBatch
from datadrive.errors import CheckpointError, ConfigError

__all__ = [
    "MODELS",
    "Forecast",
    "Forecaster",
    "LossTerms",
    "ModelOutput",
    "ModelSpec",
    "TensorBatch",
    "agent_step_features",
    "build_model",
    "constant_velocity",
    "init_linear",
    "mlp",
    "to_tensors",
    "wta_loss",
]


@dataclass(frozen=True)
class TensorBatch:
    """A :class:`~datadrive.curate.loader.FeatureBatch` as tensors on a device (same fields, same shapes)."""

    agent_xy_m: Tensor
    agent_heading_rad: Tensor
    agent_velocity_mps: Tensor
    agent_valid: Tensor
    agent_type: Tensor
    agent_size_m: Tensor
    agent_mask: Tensor
    map_xy_m: Tensor
    map_kind: Tensor
    map_mask: Tensor
    future_xy_m: Tensor
    future_heading_rad: Tensor
    future_valid: Tensor

    @property
    def size(self) -> int:
        return int(self.agent_xy_m.shape[0])


def to_tensors(batch: FeatureBatch, device: torch.device | str = "cpu") -> TensorBatch:
    """Wrap a batch's arrays as tensors (no copy on the CPU) and move them to ``device``."""
    dev = torch.device(device)
    non_blocking = dev.type == "cuda"

    def t(x: Any) -> Tensor:
        return torch.from_numpy(x).to(dev, non_blocking=non_blocking)

    return TensorBatch(
        agent_xy_m=t(batch.agent_xy_m),
        agent_heading_rad=t(batch.agent_heading_rad),
        agent_velocity_mps=t(batch.agent_velocity_mps),
        agent_valid=t(batch.agent_valid),
        agent_type=t(batch.agent_type),
        agent_size_m=t(batch.agent_size_m),
        agent_mask=t(batch.agent_mask),
        map_xy_m=t(batch.map_xy_m),
        map_kind=t(batch.map_kind),
        map_mask=t(batch.map_mask),
        future_xy_m=t(batch.future_xy_m),
        future_heading_rad=t(batch.future_heading_rad),
        future_valid=t(batch.future_valid),
    )


def agent_step_features(x: TensorBatch, scale_m: float, agents: int | None = None) -> Tensor:
    """``(B, A, H, 7)`` per step: x, y, cos and sin of heading, vx, vy, valid (0 where invalid).

    Positions and velocities are divided by ``scale_m`` (metres, metres per second).
    ``agents`` keeps only the first agents (the target and its nearest
    neighbours), for a model that reads no others: the same values as
    ``agent_step_features(x, scale_m)[:, :agents]``, without computing the rest.
    """
    keep = slice(None, agents)
    valid = x.agent_valid[:, keep].to(x.agent_xy_m.dtype)
    h = x.agent_heading_rad[:, keep]
    feats = torch.cat(
        [
            x.agent_xy_m[:, keep] / scale_m,
            torch.cos(h).unsqueeze(-1),
            torch.sin(h).unsqueeze(-1),
            x.agent_velocity_mps[:, keep] / scale_m,
            valid.unsqueeze(-1),
        ],
        dim=-1,
    )
    return feats * valid.unsqueeze(-1)


def constant_velocity(x: TensorBatch, times_s: Tensor) -> Tensor:
    """``(B, F, 2)`` the target's position if it kept its velocity at ``t0`` (``times_s``: ``(F,)``)."""
    v = x.agent_velocity_mps[:, 0, -1]
    return v[:, None, :] * times_s[None, :, None]


@dataclass(frozen=True)
class ModelOutput:
    """What a forward pass returns.

    Attributes:
        trajectories: ``(B, K, F, 2)`` in the target's frame, metres.
        logits: ``(B, K)`` mode scores (softmax gives probabilities).
        plan_xy: ``(B, F, 2)`` the planning head's trajectory, when the model has one.
        plan_heading: ``(B, F)`` its headings, when it has one.
    """

    trajectories: Tensor
    logits: Tensor
    plan_xy: Tensor | None = None
    plan_heading: Tensor | None = None


@dataclass(frozen=True)
class Forecast:
    """Forecasts ready to score (numpy, target frame).

    Attributes:
        trajectories: ``(B, K, F, 2)``.
        probabilities: ``(B, K)`` summing to 1.
    """

    trajectories: Any
    probabilities: Any


@dataclass(frozen=True)
class LossTerms:
    """A training loss and its parts (for logging)."""

    total: Tensor
    parts: Mapping[str, float]


def wta_loss(
    out: ModelOutput,
    x: TensorBatch,
    *,
    classification_weight: float = 1.0,
    plan_weight: float = 0.0,
    scale_m: float = 1.0,
) -> LossTerms:
    """Winner-takes-all regression plus mode classification (and the planning head's imitation loss).

    The winner is the mode with the smallest mean displacement over the
    valid future steps; only it is regressed (smooth L1, in units of
    ``scale_m``), and the mode logits are trained to pick it (cross-entropy).
    The planning head, if any, regresses the target's own future (L1 on
    positions, plus heading as ``1 - cos``).
    """
    valid = x.future_valid.to(out.trajectories.dtype)  # (B, F)
    count = valid.sum(dim=-1).clamp(min=1.0)
    err = torch.linalg.vector_norm(out.trajectories - x.future_xy_m[:, None], dim=-1)  # (B, K, F)
    ade = (err * valid[:, None]).sum(dim=-1) / count[:, None]
    best = ade.argmin(dim=1)
    rows = torch.arange(best.shape[0], device=best.device)
    winner = out.trajectories[rows, best]  # (B, F, 2)
    reg = nn.functional.smooth_l1_loss(winner / scale_m, x.future_xy_m / scale_m, reduction="none").sum(-1)
    reg_loss = ((reg * valid).sum(dim=-1) / count).mean()
    total = reg_loss
    parts = {"regression": float(reg_loss.detach())}
    if out.logits.shape[1] > 1 and classification_weight > 0:
        cls = nn.functional.cross_entropy(out.logits, best)
        total = total + classification_weight * cls
        parts["classification"] = float(cls.detach())
    if out.plan_xy is not None and plan_weight > 0:
        pl = (torch.abs(out.plan_xy - x.future_xy_m).sum(-1) / scale_m * valid).sum(-1) / count
        plan = pl.mean()
        if out.plan_heading is not None:
            dh = 1.0 - torch.cos(out.plan_heading - x.future_heading_rad)
            plan = plan + ((dh * valid).sum(-1) / count).mean()
        total = total + plan_weight * plan
        parts["plan"] = float(plan.detach())
    parts["minADE"] = float(ade.min(dim=1).values.mean().detach())
    return LossTerms(total, parts)


@dataclass(frozen=True)
class ModelSpec:
    """A model by name with its config (plain JSON values).

    Attributes:
        name: A key of :data:`MODELS`.
        config: Constructor arguments of that model's config.
    """

    name: str
    config: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "config": dict(self.config)}


class Forecaster(nn.Module):
    """Base of every model: forward, loss, predict; ``spec`` and ``version`` for checkpoints.

    Attributes:
        name: Registry name.
        version: Bump when the parameters' meaning or layout changes:
            checkpoints of another version are refused.
        trainable: Whether gradient steps apply (baselines have no parameters).
    """

    name: str = "forecaster"
    version: int = 1
    trainable: bool = True

    def __init__(self, features: FeatureConfig, modes: int) -> None:
        super().__init__()
        self.history_steps = features.history_steps
        self.future_steps = features.future_steps
        self.segment_points = features.segment_points
        self.dt_s = features.dt_s
        self.modes = modes

    @abstractmethod
    def forward(self, x: TensorBatch) -> ModelOutput:  # pragma: no cover - abstract
        """Forecasts of the batch's targets."""

    def spec_config(self) -> dict[str, Any]:
        """The config this model was built with (recorded in checkpoints)."""
        return {}

    def loss(self, out: ModelOutput, x: TensorBatch) -> LossTerms:
        return wta_loss(out, x)

    def fit_examples(self, batches: Iterable[TensorBatch]) -> None:
        """Non-parametric models learn here from training batches (parametric ones ignore it)."""
        return None

    @torch.no_grad()
    def predict(self, x: TensorBatch) -> Forecast:
        """Trajectories and mode probabilities as numpy arrays."""
        was = self.training
        self.eval()
        try:
            out = self(x)
        finally:
            self.train(was)
        probs = torch.softmax(out.logits.float(), dim=-1)
        return Forecast(out.trajectories.float().cpu().numpy(), probs.cpu().numpy())

    def check_compatible(self, meta: Mapping[str, Any], where: str) -> None:
        """Refuse a checkpoint of another model, version, config or horizon.

        Raises:
            CheckpointError: naming what differs.
        """
        expect = self.checkpoint_meta()
        for key in ("name", "version", "config", "history_steps", "future_steps", "segment_points"):
            if meta.get(key) != expect[key]:
                raise CheckpointError(
                    f"{where} is a checkpoint of {meta.get('name')!r} (version {meta.get('version')}, "
                    f"{key} = {meta.get(key)!r}); this run builds {expect['name']!r} "
                    f"with {key} = {expect[key]!r}"
                )

    def checkpoint_meta(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "config": self.spec_config(),
            "history_steps": self.history_steps,
            "future_steps": self.future_steps,
            "segment_points": self.segment_points,
        }

    def future_times_s(self, device: torch.device, dtype: torch.dtype) -> Tensor:
        """``(F,)`` seconds after ``t0`` of each future step."""
        return torch.arange(1, self.future_steps + 1, device=device, dtype=dtype) * self.dt_s


MODELS: dict[str, Callable[..., Forecaster]] = {}
"""Model name -> constructor ``(features, **config)``; filled by :mod:`datadrive.models`."""


def build_model(spec: ModelSpec, features: FeatureConfig) -> Forecaster:
    """Build a registered model.

    Raises:
        ConfigError: for an unknown name or config key.
    """
    try:
        ctor = MODELS[spec.name]
    except KeyError:
        raise ConfigError(f"unknown model {spec.name!r}; known: {', '.join(sorted(MODELS))}") from None
    try:
        return ctor(features, **dict(spec.config))
    except TypeError as exc:
        raise ConfigError(f"model {spec.name!r}: {exc}") from exc


def init_linear(module: nn.Module) -> None:
    """Xavier-uniform weights and zero biases (deterministic under a seeded generator)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def mlp(sizes: Iterable[int], *, last_activation: bool = False) -> nn.Sequential:
    """A stack of Linear + LayerNorm + ReLU layers."""
    dims = list(sizes)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2 or last_activation:
            layers.append(nn.LayerNorm(b))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
