"""Data-parallel training: ``torchrun`` DDP, and Ray Train on a Ray cluster.

Both run the same :func:`~datadrive.train.trainer.fit` in every process;
they differ only in who starts the processes and sets up the process group:

* **torchrun**: ``torchrun --nproc-per-node N -m datadrive.cli.main train ...``
  starts N processes with ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_*``
  in their environment; the CLI (the edge, which reads the environment) turns
  them into a :class:`~datadrive.train.trainer.Distributed` with
  :func:`distributed_from_env` and calls :func:`init_process_group` (gloo on
  CPUs, NCCL on GPUs).
* **Ray Train** (``datadrive train --engine ray``): :func:`fit_on_ray` runs
  ``fit`` in ``num_workers`` Ray Train workers (``TorchTrainer``), which set
  up the process group themselves. The feature cache and the run folder must
  be readable (and the run folder writable) at the same path on every node:
  a shared file system.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datadrive.errors import ConfigError, TrainingError
from datadrive.train.config import TrainConfig
from datadrive.train.trainer import Distributed, fit

__all__ = ["RaySettings", "distributed_from_env", "fit_on_ray", "init_process_group"]


def distributed_from_env(env: Mapping[str, str]) -> Distributed | None:
    """The DDP rank a launcher (torchrun) put in ``env``, or ``None`` outside a group.

    Raises:
        ConfigError: if the variables are present but not numbers.
    """
    if "WORLD_SIZE" not in env or int(env.get("WORLD_SIZE", "1") or 1) <= 1:
        return None
    try:
        return Distributed(
            rank=int(env["RANK"]),
            world_size=int(env["WORLD_SIZE"]),
            local_rank=int(env.get("LOCAL_RANK", "0")),
        )
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"a torchrun environment without a usable RANK/WORLD_SIZE ({exc})") from exc


def init_process_group(dist: Distributed, device: str) -> None:
    """Join the process group the launcher described (gloo for CPUs, NCCL for GPUs)."""
    import torch.distributed

    if torch.distributed.is_initialized():
        return
    backend = "nccl" if device.startswith("cuda") or (device == "auto" and _has_cuda()) else "gloo"
    torch.distributed.init_process_group(backend=backend, rank=dist.rank, world_size=dist.world_size)


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@dataclass(frozen=True)
class RaySettings:
    """Where and how wide to run on Ray.

    Attributes:
        address: The cluster's address (``host:port``); ``None`` starts a local Ray.
        num_workers: Training processes.
        use_gpu: One GPU per worker.
        cpus_per_worker: CPUs each worker reserves.
        storage_path: Where Ray Train keeps its own run state (a shared folder).
    """

    address: str | None
    num_workers: int = 2
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    storage_path: str | None = None


def _ray_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: open the cache, run ``fit`` as this rank."""
    import ray.train

    from datadrive.curate.loader import FeatureCache

    ctx = ray.train.get_context()
    dist = Distributed(ctx.get_world_rank(), ctx.get_world_size(), ctx.get_local_rank())
    config = TrainConfig.from_json(loop_config["config"])
    cache = FeatureCache(Path(loop_config["cache"]))
    result = fit(
        cache,
        config,
        Path(loop_config["run_dir"]),
        resume=bool(loop_config["resume"]),
        fingerprint=loop_config["fingerprint"],
        dist=dist,
    )
    ray.train.report({"steps": result.steps, "samples_per_s": result.samples_per_s})


def fit_on_ray(
    cache_path: Path,
    config: TrainConfig,
    run_dir: Path,
    settings: RaySettings,
    *,
    resume: bool = True,
    fingerprint: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Train on a Ray cluster with Ray Train's ``TorchTrainer`` (one ``fit`` per worker).

    Args:
        cache_path: The feature cache (same path on every node).
        config: The training config.
        run_dir: The run folder (same path on every node; rank 0 writes it).
        settings: Cluster address and width.
        resume: Resume from the run folder's checkpoint.
        fingerprint: What a resumed checkpoint must match.
        env: Environment variables for the workers (``runtime_env``), e.g.
            the loopback settings of a test cluster.

    Returns:
        The metrics rank 0 reported (steps, samples/s).

    Raises:
        TrainingError: if Ray Train fails.
    """
    try:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError("--engine ray needs Ray Train: pip install 'datadrive[ray]'") from exc
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if env:
            kwargs["runtime_env"] = {"env_vars": dict(env)}
        ray.init(address=settings.address, **kwargs)
        started = True
    try:
        trainer = TorchTrainer(
            _ray_worker,
            train_loop_config={
                "config": config.as_json(),
                "cache": str(cache_path),
                "run_dir": str(run_dir),
                "resume": resume,
                "fingerprint": dict(fingerprint or {}),
            },
            torch_config=TorchConfig(backend="nccl" if settings.use_gpu else "gloo"),
            scaling_config=ScalingConfig(
                num_workers=settings.num_workers,
                use_gpu=settings.use_gpu,
                resources_per_worker={"CPU": settings.cpus_per_worker},
            ),
            run_config=RunConfig(
                name=f"datadrive-{run_dir.name}",
                storage_path=settings.storage_path or str(run_dir.parent / "_ray"),
            ),
        )
        result = trainer.fit()
    except Exception as exc:
        raise TrainingError(f"Ray Train failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if started:
            ray.shutdown()
    if result.error is not None:
        raise TrainingError(f"Ray Train failed: {result.error}")
    return dict(result.metrics or {})
