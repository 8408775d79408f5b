"""Training checkpoints: everything an exact resume needs, as plain data.

A checkpoint holds the model's weights (with its spec, as a model file
does), the optimizer's and schedule's states, the AMP scaler's, the torch
random state, and where the run was (epoch, batch within it, global step).
The data order is a pure function of ``(seed, epoch)``, so resuming at
"epoch e, batch i" replays exactly the batches an uninterrupted run would
have seen. Files are written to a temporary name and renamed, so a crash
while saving leaves the previous checkpoint intact; they are read with
``weights_only=True``.

The trainer writes in the background (``background=True``): the state is
serialised in the caller's thread, at the step it describes, and only the
file write and rename (an I/O wait: ext4 flushes a file renamed over
another, 6-25 ms per checkpoint on a busy disk) go to a writer thread, so
training goes on meanwhile. The next save of the same file, a load of it
and :func:`wait_for_checkpoint` wait for that write first (and raise its
error, if it failed); a process that exits waits for it too.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from datadrive.errors import CheckpointError
from datadrive.models.base import Forecaster

__all__ = ["CHECKPOINT_FORMAT", "Position", "load_checkpoint", "save_checkpoint", "wait_for_checkpoint"]

CHECKPOINT_FORMAT = "datadrive-checkpoint/1"


@dataclass(frozen=True)
class Position:
    """Where a run is.

    Attributes:
        epoch: The epoch in progress (or the next one, at an epoch end).
        batch: Batches of that epoch already done.
        step: Optimizer steps done in all.
    """

    epoch: int
    batch: int
    step: int


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None,
    scheduler: Any,
    scaler: Any,
    position: Position,
    history: Mapping[str, Any],
    fingerprint: Mapping[str, Any],
    meta: Mapping[str, Any] | None = None,
    background: bool = False,
) -> Path:
    """Write a checkpoint atomically (the state as it is now, whenever the file lands).

    Args:
        path: Where.
        model: The (unwrapped) model.
        meta: What the model is (name, version, config); default: a
            forecaster's ``checkpoint_meta()``.
        optimizer: Its optimizer (``None`` for models without parameters).
        scheduler: The learning-rate schedule (or ``None``).
        scaler: The AMP grad scaler (or ``None``).
        position: Where the run is.
        history: Per-epoch metrics so far (restored with the run).
        fingerprint: What must match on resume (dataset, cache, config).
        background: Serialise now, write the file in a writer thread (see
            the module docstring); :func:`wait_for_checkpoint` waits for it.
    """
    doc = {
        "format": CHECKPOINT_FORMAT,
        "meta": dict(meta) if meta is not None else _forecaster(model).checkpoint_meta(),
        "fingerprint": dict(fingerprint),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "scaler": None if scaler is None else scaler.state_dict(),
        "rng": torch.get_rng_state(),
        "position": {"epoch": position.epoch, "batch": position.batch, "step": position.step},
        "history": dict(history),
    }
    buf = io.BytesIO()
    torch.save(doc, buf)
    data = buf.getvalue()
    wait_for_checkpoint(path)  # writes of one file land in order
    if not background:
        _write(path, data)
        return path
    pending = _Pending()
    thread = threading.Thread(target=pending.run, args=(path, data), name="datadrive-checkpoint")
    pending.thread = thread
    with _LOCK:
        _PENDING[str(path)] = pending
    thread.start()
    return path


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


class _Pending:
    """One background write and its outcome."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def run(self, path: Path, data: bytes) -> None:
        try:
            _write(path, data)
        except BaseException as exc:  # raised in the trainer's thread by wait_for_checkpoint
            self.error = exc


_LOCK = threading.Lock()
_PENDING: dict[str, _Pending] = {}


def wait_for_checkpoint(path: Path) -> None:
    """Return when no background write of ``path`` is in flight.

    Raises:
        CheckpointError: if the last background write of ``path`` failed.
    """
    with _LOCK:
        pending = _PENDING.pop(str(path), None)
    if pending is None or pending.thread is None:
        return
    pending.thread.join()
    if pending.error is not None:
        raise CheckpointError(
            f"{path}: the checkpoint could not be written ({type(pending.error).__name__}: {pending.error})"
        ) from pending.error


def _forecaster(model: torch.nn.Module) -> Forecaster:
    if not isinstance(model, Forecaster):
        raise TypeError(f"{type(model).__name__} is no forecaster: pass the checkpoint's meta and check")
    return model


def load_checkpoint(
    path: Path,
    model: torch.nn.Module,
    fingerprint: Mapping[str, Any],
    *,
    check: Callable[[Mapping[str, Any], str], None] | None = None,
) -> dict[str, Any]:
    """Read a checkpoint and load its weights into ``model``.

    ``check(meta, where)`` refuses a checkpoint of another model (default: a
    forecaster's ``check_compatible``).

    Returns:
        The document (optimizer, scheduler, scaler states, rng, position, history).

    Raises:
        CheckpointError: if it is unreadable, of another model, config or
            horizon, or made for another dataset, cache or training config.
    """
    wait_for_checkpoint(path)
    try:
        doc = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no checkpoint") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a datadrive training checkpoint")
    (check or _forecaster(model).check_compatible)(doc["meta"], str(path))
    theirs = doc.get("fingerprint", {})
    for key, value in fingerprint.items():
        if theirs.get(key) != value:
            raise CheckpointError(
                f"{path} was saved by a run with another {key} ({theirs.get(key)!r}, this run: {value!r}); "
                "start a new run instead of resuming this one"
            )
    try:
        model.load_state_dict(doc["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: its weights do not fit the model ({exc})") from exc
    return doc
