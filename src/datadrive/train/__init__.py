"""The trainer: one process on a CPU or a GPU, torchrun DDP, Ray Train; checkpoints; MLflow tracking.

* :func:`fit_task` (:mod:`datadrive.train.trainer`): the loop for any
  :class:`~datadrive.train.task.TrainTask` (model, data, loss), with exact resume
  from checkpoints, a learning-rate schedule, per-step timing, AMP on GPUs,
  and NaN-loss detection; :func:`fit` runs it for a registered forecaster
  on a feature cache (:class:`~datadrive.train.task.ForecastTask`),
  :class:`~datadrive.train.task.TensorTask` for any in-memory tensors.
* :func:`train_run` (:mod:`datadrive.train.run`): a run with its lineage,
  stored as the region's ``model`` artefact and registered in MLflow.
* :mod:`datadrive.train.distributed`: torchrun and Ray Train.

May import: ``core``, ``compute``, ``lake``, ``mining``, ``curate``,
``models`` (never ``evaluate``, ``sim`` or the CLI). torch is the ``[train]``
extra, MLflow the ``[track]`` extra, Ray Train the ``[ray]`` extra.
``docs/training.md`` is the user guide.
"""

from datadrive.train.checkpoint import (
    CHECKPOINT_FORMAT,
    Position,
    load_checkpoint,
    save_checkpoint,
    wait_for_checkpoint,
)
from datadrive.train.config import TrainConfig
from datadrive.train.distributed import RaySettings, distributed_from_env, fit_on_ray, init_process_group
from datadrive.train.run import RunReport, TrackingSettings, lineage_tags, run_folder, train_run
from datadrive.train.task import ForecastTask, TensorTask, TrainTask
from datadrive.train.trainer import Distributed, StepInfo, Tracker, TrainResult, fit, fit_task

__all__ = [
    "CHECKPOINT_FORMAT",
    "Distributed",
    "ForecastTask",
    "Position",
    "RaySettings",
    "RunReport",
    "StepInfo",
    "TensorTask",
    "Tracker",
    "TrackingSettings",
    "TrainConfig",
    "TrainResult",
    "TrainTask",
    "distributed_from_env",
    "fit",
    "fit_on_ray",
    "fit_task",
    "init_process_group",
    "lineage_tags",
    "load_checkpoint",
    "run_folder",
    "save_checkpoint",
    "train_run",
    "wait_for_checkpoint",
]
