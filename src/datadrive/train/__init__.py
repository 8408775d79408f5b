"""The trainer: one process on a CPU or a GPU, torchrun DDP, Ray Train; checkpoints; MLflow tracking.

* :func:`fit` (:mod:`datadrive.train.trainer`): the loop, with exact resume
  from checkpoints, a learning-rate schedule, per-step timing, AMP on GPUs,
  and NaN-loss detection.
* :func:`train_run` (:mod:`datadrive.train.run`): a run with its lineage,
  stored as the region's ``model`` artefact and registered in MLflow.
* :mod:`datadrive.train.distributed`: torchrun and Ray Train.

May import: ``core``, ``compute``, ``lake``, ``mining``, ``curate``,
``models`` (never ``evaluate``, ``sim`` or the CLI). torch is the ``[train]``
extra, MLflow the ``[track]`` extra, Ray Train the ``[ray]`` extra.
``docs/training.md`` is the user guide.
"""

from datadrive.train.checkpoint import CHECKPOINT_FORMAT, Position, load_checkpoint, save_checkpoint
from datadrive.train.config import TrainConfig
from datadrive.train.distributed import RaySettings, distributed_from_env, fit_on_ray, init_process_group
from datadrive.train.run import RunReport, TrackingSettings, lineage_tags, run_folder, train_run
from datadrive.train.trainer import Distributed, StepInfo, Tracker, TrainResult, fit

__all__ = [
    "CHECKPOINT_FORMAT",
    "Distributed",
    "Position",
    "RaySettings",
    "RunReport",
    "StepInfo",
    "Tracker",
    "TrackingSettings",
    "TrainConfig",
    "TrainResult",
    "distributed_from_env",
    "fit",
    "fit_on_ray",
    "init_process_group",
    "lineage_tags",
    "load_checkpoint",
    "run_folder",
    "save_checkpoint",
    "train_run",
]
