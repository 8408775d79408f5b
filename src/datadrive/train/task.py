"""What :func:`~datadrive.train.trainer.fit_task` trains: any model, dataset and loss.

The trainer's machinery (checkpoints with exact resume, the learning-rate
schedule, progress with samples/s, tracking, DDP) needs only five things of
a training job, collected in the :class:`TrainTask` protocol:

* ``model``: the ``torch.nn.Module`` whose parameters AdamW updates;
* ``plan(split, batch_size, seed=, epoch=, shuffle=, rank=, world_size=)``:
  the epoch's batches as *keys* (index arrays, shard lists), a pure function
  of its arguments, so a resumed run replays the same batches, and each DDP
  rank takes its own share;
* ``batches(plan, device)``: the batches of a plan, in order, on the device
  (prefetching is the task's business);
* ``loss(model, batch)``: a :class:`~datadrive.models.base.LossTerms` from the
  (possibly DDP-wrapped) model on a batch, and ``batch_size(batch)``;
* ``checkpoint_meta()`` (what a checkpoint must match to be resumed) and
  ``save(path, extra)`` (the trained model's file).

:class:`ForecastTask` is the curate feature cache with a registered
forecaster (what :func:`~datadrive.train.trainer.fit` trains);
:class:`TensorTask` is any in-memory dataset of tensors with a loss function
(the wake word trains through it).

Notation:
    N: samples in a dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from datadrive.curate.loader import BatchLoader, FeatureCache, epoch_batches
from datadrive.errors import CheckpointError
from datadrive.models.base import Forecaster, LossTerms, ModelSpec, build_model, to_tensors
from datadrive.models.io import save_model

__all__ = ["ForecastTask", "TensorTask", "TrainTask"]


@runtime_checkable
class TrainTask(Protocol):
    """A training job: model, data, loss (see the module docstring)."""

    model: torch.nn.Module

    @property
    def trainable(self) -> bool: ...

    def plan(
        self,
        split: str,
        batch_size: int,
        *,
        seed: int,
        epoch: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> list[Any]: ...

    def batches(self, plan: Sequence[Any], device: torch.device, *, prefetch: int = 0) -> Iterable[Any]: ...

    def loss(self, model: torch.nn.Module, batch: Any) -> LossTerms: ...

    def batch_size(self, batch: Any) -> int: ...

    def checkpoint_meta(self) -> dict[str, Any]: ...

    def check_compatible(self, meta: Mapping[str, Any], where: str) -> None: ...

    def fit_without_gradients(self, plan: Sequence[Any], device: torch.device) -> None: ...

    def save(self, path: Path, extra: Mapping[str, Any]) -> None: ...


class ForecastTask:
    """A registered forecaster on a curate feature cache (the trainer's original job)."""

    def __init__(self, cache: FeatureCache, spec: ModelSpec, *, shards_at_once: int = 4) -> None:
        self.cache = cache
        self.shards_at_once = shards_at_once
        self.forecaster: Forecaster = build_model(spec, cache.config)
        self.model: torch.nn.Module = self.forecaster

    @property
    def trainable(self) -> bool:
        return self.forecaster.trainable

    def plan(
        self,
        split: str,
        batch_size: int,
        *,
        seed: int,
        epoch: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> list[Any]:
        idx = self.cache.split_indices(split)
        if idx.size == 0:
            return []
        return epoch_batches(
            self.cache,
            idx,
            batch_size,
            seed=seed,
            epoch=epoch,
            shuffle=shuffle,
            shards_at_once=self.shards_at_once,
            rank=rank,
            world_size=world_size,
        )

    def batches(self, plan: Sequence[Any], device: torch.device, *, prefetch: int = 0) -> Iterator[Any]:
        for batch in BatchLoader(self.cache, list(plan), prefetch=prefetch):
            yield to_tensors(batch, device)

    def loss(self, model: torch.nn.Module, batch: Any) -> LossTerms:
        return self.forecaster.loss(model(batch), batch)

    def batch_size(self, batch: Any) -> int:
        return int(batch.size)

    def checkpoint_meta(self) -> dict[str, Any]:
        return self.forecaster.checkpoint_meta()

    def check_compatible(self, meta: Mapping[str, Any], where: str) -> None:
        self.forecaster.check_compatible(meta, where)

    def fit_without_gradients(self, plan: Sequence[Any], device: torch.device) -> None:
        self.forecaster.fit_examples(to_tensors(self.cache.batch(b), device) for b in plan)

    def save(self, path: Path, extra: Mapping[str, Any]) -> None:
        save_model(path, self.forecaster, self.cache.config, extra=dict(extra))


@dataclass
class TensorTask:
    """Any model on in-memory tensors, with a loss function.

    Attributes:
        model: The network.
        inputs: ``(N, ...)`` inputs (kept on the CPU; batches move to the device).
        targets: ``(N, ...)`` targets.
        splits: Split name -> sample indices (``{"train": ..., "val": ...}``).
        loss_fn: ``(model, inputs, targets) -> LossTerms`` (augmentation goes here).
        meta: What a checkpoint must match (model name, version, its config).
        save_fn: Writes the trained model (``(path, model, extra)``); default
            ``torch.save`` of the state dict with ``meta``.
    """

    model: torch.nn.Module
    inputs: torch.Tensor
    targets: torch.Tensor
    splits: Mapping[str, np.ndarray]
    loss_fn: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor], LossTerms]
    meta: Mapping[str, Any] = field(default_factory=dict)
    save_fn: Callable[[Path, torch.nn.Module, Mapping[str, Any]], None] | None = None

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.model.parameters())

    def plan(
        self,
        split: str,
        batch_size: int,
        *,
        seed: int,
        epoch: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> list[Any]:
        """Index batches: a permutation seeded by ``(seed, epoch)``, every ``world_size``-th batch for a rank.

        Each rank gets the same number of batches (a DDP all-reduce waits for every rank).
        """
        idx = np.asarray(self.splits.get(split, np.zeros(0, np.int64)), dtype=np.int64)
        if shuffle:
            idx = idx[np.random.default_rng([seed, epoch]).permutation(idx.shape[0])]
        out = [idx[i : i + batch_size] for i in range(0, idx.shape[0], batch_size)]
        if world_size > 1:
            usable = len(out) // world_size * world_size
            out = out[rank:usable:world_size]
        return out

    def batches(self, plan: Sequence[Any], device: torch.device, *, prefetch: int = 0) -> Iterator[Any]:
        for b in plan:
            i = torch.from_numpy(np.asarray(b))
            yield self.inputs[i].to(device), self.targets[i].to(device)

    def loss(self, model: torch.nn.Module, batch: Any) -> LossTerms:
        x, y = batch
        return self.loss_fn(model, x, y)

    def batch_size(self, batch: Any) -> int:
        return int(batch[0].shape[0])

    def checkpoint_meta(self) -> dict[str, Any]:
        return dict(self.meta)

    def check_compatible(self, meta: Mapping[str, Any], where: str) -> None:
        if dict(meta) != dict(self.meta):
            raise CheckpointError(
                f"{where} is a checkpoint of {dict(meta)!r}; this run builds {dict(self.meta)!r}"
            )

    def fit_without_gradients(self, plan: Sequence[Any], device: torch.device) -> None:
        return None

    def save(self, path: Path, extra: Mapping[str, Any]) -> None:
        if self.save_fn is not None:
            self.save_fn(path, self.model, extra)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {"meta": dict(self.meta), "extra": dict(extra), "state": self.model.state_dict()}, str(path)
        )
