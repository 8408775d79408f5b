"""The training loop: one process on a CPU or a GPU, or one rank of a DDP / Ray Train group.

:func:`fit_task` trains any :class:`~datadrive.train.task.TrainTask` (a
model, its data and its loss); :func:`fit` is the same loop for a registered
forecaster on a feature cache's training split. Either writes, in ``run_dir``:

* ``checkpoints/last.pt``: every ``checkpoint_every`` steps and at each
  epoch end (see :mod:`datadrive.train.checkpoint`); a crashed or killed
  run started again with ``resume=True`` continues from it and ends with
  the weights an uninterrupted run would have had;
* ``model.pt``: the trained model (:mod:`datadrive.models.io`);
* ``run.json``: the config, per-epoch metrics, step times and status.

Time per step is measured for every step and summarised per epoch
(``step_ms_p50``), so a slowdown over a run shows in the history. A loss
that is not finite stops the run with
:class:`~datadrive.errors.NonFiniteLossError` before the optimizer applies
it; the last checkpoint stays the last good state.

Under DDP (``world_size > 1``, the process group initialised by the
launcher: ``torchrun`` or Ray Train) each rank takes every
``world_size``-th batch of the same epoch plan, gradients are averaged by
``DistributedDataParallel``, and only rank 0 writes files and tracks.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from datadrive.curate.loader import FeatureCache
from datadrive.errors import NonFiniteLossError, TrainingError
from datadrive.models.policy import resolve_device
from datadrive.train.checkpoint import Position, load_checkpoint, save_checkpoint, wait_for_checkpoint
from datadrive.train.config import TrainConfig
from datadrive.train.task import ForecastTask, TrainTask

__all__ = ["Distributed", "StepInfo", "Tracker", "TrainResult", "fit", "fit_task"]


@dataclass(frozen=True)
class Distributed:
    """This process's place in a data-parallel group.

    Attributes:
        rank: Its rank (0 writes files and tracks).
        world_size: Processes in the group (1: no DDP).
        local_rank: Its index on its machine (its GPU under CUDA).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class StepInfo:
    """Progress after one optimizer step (for a progress bar)."""

    epoch: int
    epochs: int
    batch: int
    batches: int
    step: int
    loss: float
    samples_per_s: float
    learning_rate: float


class Tracker(Protocol):
    """Where a run's parameters and metrics go (MLflow, or nothing)."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...


@dataclass
class TrainResult:
    """A finished (or resumed-and-finished) run.

    Attributes:
        run_dir: Its folder.
        model_path: The trained model file.
        history: One dict of metrics per epoch.
        steps: Optimizer steps in all.
        samples_per_s: Training samples per second over the whole run (this process).
        step_ms: Per-step wall times of this process (milliseconds), this session only.
        resumed_from: The step a resume started at (None: a fresh run).
    """

    run_dir: Path
    model_path: Path
    history: list[dict[str, float]]
    steps: int
    samples_per_s: float
    step_ms: list[float] = field(default_factory=list)
    resumed_from: int | None = None


def _schedule(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    warm = max(0, config.warmup_steps)

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if config.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def fit(
    cache: FeatureCache,
    config: TrainConfig,
    run_dir: Path,
    *,
    resume: bool = True,
    fingerprint: Mapping[str, Any] | None = None,
    tracker: Tracker | None = None,
    progress: Callable[[StepInfo], None] | None = None,
    dist: Distributed | None = None,
) -> TrainResult:
    """Train ``config.model`` on ``cache``; resume from ``run_dir``'s last checkpoint if there is one.

    Args:
        cache: The opened feature cache.
        config: The training config.
        run_dir: The run's folder (created).
        resume: Continue from ``checkpoints/last.pt`` when present (a
            checkpoint of another model, dataset or config is refused).
        fingerprint: What a checkpoint must match to be resumed (dataset,
            cache); the training config is always included.
        tracker: Gets per-epoch metrics (rank 0 only).
        progress: Called after every step (rank 0 only); may raise to stop.
        dist: This process's DDP rank, when in a group.

    Raises:
        DeviceError: if a GPU is requested and there is none.
        NonFiniteLossError: if the loss stops being finite.
        CheckpointError: if the checkpoint to resume does not fit.
    """
    torch.manual_seed(config.seed)  # the model's initial weights
    task = ForecastTask(cache, config.model, shards_at_once=config.shards_at_once)
    if task.trainable and cache.split_indices(config.train_split).size == 0:
        raise TrainingError(f"the {config.train_split!r} split of {cache.path} has no samples")
    return fit_task(
        task,
        config,
        run_dir,
        resume=resume,
        fingerprint=fingerprint,
        tracker=tracker,
        progress=progress,
        dist=dist,
    )


def fit_task(
    task: TrainTask,
    config: TrainConfig,
    run_dir: Path,
    *,
    resume: bool = True,
    fingerprint: Mapping[str, Any] | None = None,
    tracker: Tracker | None = None,
    progress: Callable[[StepInfo], None] | None = None,
    dist: Distributed | None = None,
) -> TrainResult:
    """Train ``task.model`` on the task's data with its loss (see :mod:`datadrive.train.task`).

    The same loop as :func:`fit`: AdamW with ``config``'s schedule,
    checkpoints every ``checkpoint_every`` steps and at each epoch end with
    exact resume, per-step timing, NaN detection, tracking, DDP. ``config.model``
    only names the run (the task builds the model).

    Raises:
        DeviceError: if a GPU is requested and there is none.
        NonFiniteLossError: if the loss stops being finite.
        CheckpointError: if the checkpoint to resume does not fit.
        TrainingError: if the training split is empty.
    """
    dist = dist or Distributed()
    device = resolve_device(config.device)
    if device.type == "cuda" and dist.world_size > 1:
        device = torch.device("cuda", dist.local_rank)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "checkpoints" / "last.pt"
    fp = {"train_config": config.as_json(), **dict(fingerprint or {})}
    model = task.model
    plans = [
        task.plan(
            config.train_split,
            config.batch_size,
            seed=config.seed,
            epoch=e,
            rank=dist.rank,
            world_size=dist.world_size,
        )
        for e in range(config.epochs)
    ]
    total_steps = sum(len(p) for p in plans)
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    if total_steps == 0:
        raise TrainingError(
            f"no training step: the {config.train_split!r} split, batch size {config.batch_size}, "
            f"{dist.world_size} processes"
        )
    model.to(device)
    history: list[dict[str, float]] = []
    partial: dict[str, Any] = {}  # the running sums of an epoch a checkpoint cut in two
    position = Position(0, 0, 0)
    resumed_from: int | None = None
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = (
        # fused: one kernel over all parameters instead of a dozen ops per tensor (~7 % of a
        # transformer step on one CPU thread); the same update, deterministic, so resume stays exact
        torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True)
        if task.trainable and params
        else None
    )
    scheduler = (
        torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, total_steps))
        if optimizer is not None
        else None
    )
    wait_for_checkpoint(ckpt)  # a write of a run in this process that stopped early
    if resume and ckpt.exists():
        doc = load_checkpoint(ckpt, model, fp, check=task.check_compatible)
        if optimizer is not None and doc["optimizer"] is not None:
            optimizer.load_state_dict(doc["optimizer"])
        if scheduler is not None and doc["scheduler"] is not None:
            scheduler.load_state_dict(doc["scheduler"])
        torch.set_rng_state(doc["rng"])
        p = doc["position"]
        position = Position(int(p["epoch"]), int(p["batch"]), int(p["step"]))
        history = [dict(h) for h in doc["history"].get("epochs", [])]
        partial = dict(doc["history"].get("partial") or {})
        resumed_from = position.step
    wrapped: torch.nn.Module = model
    if dist.world_size > 1 and optimizer is not None:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    use_amp = config.amp and device.type == "cuda"
    step_ms: list[float] = []
    samples_done = 0
    t_run = time.perf_counter()

    def checkpoint(pos: Position, sums: Mapping[str, Any] | None = None) -> None:
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            raise NonFiniteLossError(
                f"the weights became NaN or infinite by step {pos.step} (learning rate too high?); "
                f"nothing was saved: the last good checkpoint is {ckpt}"
            )
        if dist.is_main:
            save_checkpoint(
                ckpt,
                model,
                optimizer=optimizer,
                scheduler=scheduler,
                scaler=None,
                position=pos,
                history={"epochs": history, "partial": dict(sums or {})},
                fingerprint=fp,
                meta=task.checkpoint_meta(),
                background=True,  # the file lands while the next steps run; waited for below
            )
        if dist.world_size > 1:
            torch.distributed.barrier()

    if not task.trainable:
        if position.step == 0:
            task.fit_without_gradients(plans[0], device)
            val = _validate(task, config, device)
            history.append({"epoch": 0.0, **val})
            position = Position(config.epochs, 0, 1)
            checkpoint(position)
        epochs_iter: range = range(0)
    else:
        epochs_iter = range(position.epoch, config.epochs)
    step = position.step
    stopped = False
    for epoch in epochs_iter:
        plan = plans[epoch]
        skip = position.batch if epoch == position.epoch else 0
        wrapped.train()
        t_epoch = time.perf_counter()
        carried = partial if (epoch == position.epoch and skip) else {}
        loss_sum = float(carried.get("loss_sum", 0.0))
        n_batches = int(carried.get("batches", 0))
        parts_sum: dict[str, float] = dict(carried.get("parts", {}))
        epoch_ms: list[float] = []
        n_samples = int(carried.get("samples", 0))
        session_samples = 0
        t_step = time.perf_counter()
        for i, x in enumerate(task.batches(plan[skip:], device, prefetch=config.prefetch), start=skip):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                terms = task.loss(wrapped, x)
            loss = terms.total
            bad = torch.tensor(0.0 if torch.isfinite(loss.detach()) else 1.0, device=device)
            if dist.world_size > 1:
                torch.distributed.all_reduce(bad)
            if float(bad) > 0:
                raise NonFiniteLossError(
                    f"the loss became {float(loss.detach())} at epoch {epoch + 1}, batch {i + 1} "
                    f"(step {step + 1}); nothing was applied or saved. The last good checkpoint is {ckpt} "
                    "(lower the learning rate, or check the data of this batch)"
                )
            if optimizer is None or scheduler is None:  # trainable models always have both
                raise TrainingError("internal error: a trainable model without an optimizer")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            size = task.batch_size(x)
            n_samples += size
            session_samples += size
            last_loss = float(loss.detach())
            loss_sum += last_loss
            n_batches += 1
            for k, v in terms.parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v
            now = time.perf_counter()
            ms = (now - t_step) * 1e3
            t_step = now
            step_ms.append(ms)
            epoch_ms.append(ms)
            last_of_epoch = i + 1 == len(plan)
            if step % config.checkpoint_every == 0 and not last_of_epoch:
                checkpoint(
                    Position(epoch, i + 1, step),
                    {"loss_sum": loss_sum, "batches": n_batches, "parts": parts_sum, "samples": n_samples},
                )
            if progress is not None and dist.is_main:
                progress(
                    StepInfo(
                        epoch,
                        config.epochs,
                        i + 1,
                        len(plan),
                        step,
                        last_loss,
                        session_samples * dist.world_size / max(1e-9, now - t_epoch),
                        float(scheduler.get_last_lr()[0]),
                    )
                )
            if config.max_steps and step >= config.max_steps:
                stopped = True
                break
        samples_done += session_samples
        wall = time.perf_counter() - t_epoch
        record: dict[str, float] = {
            "epoch": float(epoch + 1),
            "train_loss": loss_sum / n_batches if n_batches else float("nan"),
            **{f"train_{k}": v / max(1, n_batches) for k, v in parts_sum.items()},
            "samples_per_s": session_samples * dist.world_size / max(1e-9, wall),
            "step_ms_mean": float(np.mean(epoch_ms)) if epoch_ms else float("nan"),
            "step_ms_p50": float(np.median(epoch_ms)) if epoch_ms else float("nan"),
            "learning_rate": float(scheduler.get_last_lr()[0]) if scheduler is not None else 0.0,
        }
        record.update(_validate(task, config, device))
        history.append(record)
        if tracker is not None and dist.is_main:
            tracker.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch + 1)
        checkpoint(Position(epoch + 1, 0, step))
        if stopped:
            break
    wait_for_checkpoint(ckpt)  # the last checkpoint is on disk when fit returns
    model_path = run_dir / "model.pt"
    if dist.is_main:
        task.save(model_path, {"run_dir": run_dir.name, "steps": step, "epochs": len(history)})
        _write_run_json(run_dir, config, history, step, step_ms, resumed_from)
    if dist.world_size > 1:
        torch.distributed.barrier()
    elapsed = time.perf_counter() - t_run
    return TrainResult(
        run_dir=run_dir,
        model_path=model_path,
        history=history,
        steps=step,
        samples_per_s=samples_done / max(1e-9, elapsed),
        step_ms=step_ms,
        resumed_from=resumed_from,
    )


@torch.no_grad()
def _validate(task: TrainTask, config: TrainConfig, device: torch.device) -> dict[str, float]:
    """Validation loss and its parts (training-time definitions; official metrics come from evaluate)."""
    if config.val_split is None:
        return {}
    plan = task.plan(config.val_split, config.batch_size, seed=0, epoch=0, shuffle=False)
    if not plan:
        return {}
    model = task.model
    was = model.training
    model.eval()
    sums: dict[str, float] = {}
    n = 0
    for x in task.batches(plan, device):
        terms = task.loss(model, x)
        size = task.batch_size(x)
        for k, v in {"loss": float(terms.total), **terms.parts}.items():
            sums[k] = sums.get(k, 0.0) + v * size
        n += size
    model.train(was)
    return {f"val_{k}": v / n for k, v in sums.items()}


def _write_run_json(
    run_dir: Path,
    config: TrainConfig,
    history: list[dict[str, float]],
    steps: int,
    step_ms: list[float],
    resumed_from: int | None,
) -> None:
    path = run_dir / "run.json"
    doc: dict[str, Any] = {}
    if path.exists():
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            doc = {}
    ms = np.asarray(step_ms) if step_ms else np.zeros(0)
    tenth = max(1, ms.size // 10)
    doc.update(
        {
            "config": config.as_json(),
            "history": history,
            "steps": steps,
            "resumed_from": resumed_from,
            "step_time": {
                "steps_this_session": int(ms.size),
                "p50_ms": float(np.median(ms)) if ms.size else None,
                "first_tenth_p50_ms": float(np.median(ms[:tenth])) if ms.size else None,
                "last_tenth_p50_ms": float(np.median(ms[-tenth:])) if ms.size else None,
            },
            "pid": os.getpid(),
        }
    )
    tmp = path.with_name("run.json.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)
