"""The trainer's configuration: one frozen dataclass, built at the edge (CLI, service, notebook)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from datadrive.models.base import ModelSpec

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        model: The model and its config.
        epochs: Passes over the training split.
        batch_size: Samples per step (per process under DDP).
        learning_rate: Peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: Linear warm-up steps before the schedule.
        schedule: ``"cosine"`` (to 1% of the peak at the last step) or ``"constant"``.
        grad_clip: Gradient norm clip (0: none).
        seed: Seeds the weights and the data order.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        amp: Mixed precision on a GPU (bfloat16 autocast); ignored on the CPU.
        threads: torch intra-op threads per process (0: torch's default).
            On shared CPUs, 1 avoids threads spinning against each other.
        checkpoint_every: Steps between checkpoints (and at every epoch end).
        train_split: The split trained on.
        val_split: The split validated on after each epoch (``None``: none).
        shards_at_once: Shards shuffled together (see :func:`~datadrive.curate.loader.epoch_batches`).
        prefetch: Batches assembled ahead in a background thread.
        max_steps: Stop after this many steps in all (0: no limit).
    """

    model: ModelSpec = field(default_factory=lambda: ModelSpec("transformer"))
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    schedule: str = "cosine"
    grad_clip: float = 5.0
    seed: int = 0
    device: str = "cpu"
    amp: bool = True
    threads: int = 1
    checkpoint_every: int = 200
    train_split: str = "train"
    val_split: str | None = "val"
    shards_at_once: int = 4
    prefetch: int = 2
    max_steps: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be cosine or constant, not {self.schedule!r}")
        if self.checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["model"] = self.model.as_json()
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> TrainConfig:
        d = dict(doc)
        m = d.pop("model")
        return cls(model=ModelSpec(m["name"], dict(m.get("config", {}))), **d)

    def params(self) -> dict[str, Any]:
        """Flat key/value pairs for experiment tracking."""
        out: dict[str, Any] = {k: v for k, v in self.as_json().items() if k != "model"}
        out["model"] = self.model.name
        for k, v in self.model.config.items():
            out[f"model.{k}"] = v
        return out
