"""A training run with its lineage: dataset version in, region-bound model artefact out, tracked.

:func:`train_run` is what ``datadrive train`` does:

1. the run's folder is made beside the region's derived models
   (``<root>/derived/model/<run>/``) from a snapshot of the dataset's own
   region and lake version: a dataset of one region cannot be trained on
   in another (refused and audited);
2. the feature cache must be the dataset version's (same name, version,
   scenario digest);
3. training runs locally (one process, or one rank of ``torchrun``), or on
   Ray Train (``engine="ray"``);
4. the trained model is stored as the region's ``model`` artefact
   (``derived/model/<run>/model.pt`` through :meth:`Lake.put_derived`, with
   its provenance): whether it may leave the region is the region's export
   policy (``datadrive lake export``), enforced and audited;
5. the run is tracked in MLflow (params, per-epoch metrics, lineage tags)
   and the model registered as a new model version with the same lineage.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datadrive.curate.dataset import DatasetManifest
from datadrive.curate.loader import FeatureCache
from datadrive.errors import ConfigError, FeatureCacheError
from datadrive.train.config import TrainConfig
from datadrive.train.distributed import RaySettings, fit_on_ray
from datadrive.train.trainer import Distributed, StepInfo, fit

if TYPE_CHECKING:
    from datadrive.lake import Lake

__all__ = ["RunReport", "TrackingSettings", "lineage_tags", "run_folder", "train_run"]

_RUN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")


@dataclass(frozen=True)
class TrackingSettings:
    """Where runs are tracked.

    Attributes:
        enabled: Track at all (MLflow must be installed).
        tracking_uri: A tracking server (``http://host:port``); ``None``: the
            embedded store in the region (``<root>/derived/metrics/mlflow``).
        experiment: The experiment name (default: the dataset's name).
        registered_model: The registry name (default ``<dataset>-<model>``).
        mlflow_log_level: The level of MLflow's own loggers while it tracks
            (``WARNING``: its INFO lines about creating tables and model
            versions stay off stderr, beside the progress bar); ``None``
            leaves MLflow's setting (``MLFLOW_LOGGING_LEVEL``).
    """

    enabled: bool = True
    tracking_uri: str | None = None
    experiment: str | None = None
    registered_model: str | None = None
    mlflow_log_level: str | None = "WARNING"


@dataclass(frozen=True)
class RunReport:
    """What a run produced.

    Attributes:
        run_name: The run's name.
        run_dir: Its folder (checkpoints, ``model.pt``, ``run.json``).
        model_object: The model artefact in the lake (``derived/model/<run>/model.pt``).
        history: Per-epoch metrics.
        steps: Optimizer steps.
        samples_per_s: Training samples per second (rank 0's view).
        mlflow_run_id: The MLflow run (None when not tracked).
        model_version: The registered model version (None when not tracked).
        tracking_uri: Where it was tracked.
        lineage: The lineage tags.
    """

    run_name: str
    run_dir: Path
    model_object: str
    history: list[dict[str, float]]
    steps: int
    samples_per_s: float
    mlflow_run_id: str | None
    model_version: str | None
    tracking_uri: str | None
    lineage: Mapping[str, str] = field(default_factory=dict)


def lineage_tags(
    manifest: DatasetManifest, cache: FeatureCache, config: TrainConfig, code: Mapping[str, str]
) -> dict[str, str]:
    """The tags that say what a model was trained on and with."""
    import datadrive

    return {
        "datadrive.dataset": manifest.name,
        "datadrive.dataset_version": str(manifest.version),
        "datadrive.dataset_ids_sha256": manifest.ids_digest(),
        "datadrive.region": manifest.region,
        "datadrive.tenant": manifest.tenant,
        "datadrive.lake_version": str(manifest.lake_version),
        "datadrive.feature_cache": cache.path.name,
        "datadrive.feature_config": str(cache.manifest.get("fingerprint")),
        "datadrive.model": config.model.name,
        "datadrive.version": datadrive.__version__,
        "git_commit": code.get("git_commit", "unknown"),
    }


def run_folder(lake: Lake, manifest: DatasetManifest, run_name: str) -> Path:
    """The run's folder in the dataset's region (refused and audited anywhere else)."""
    if not _RUN.match(run_name):
        raise ConfigError(f"run name {run_name!r}: letters, digits, '.', '-' and '_' only")
    snap = lake.snapshot(manifest.region, manifest.lake_version)
    return lake.local_derived_dir(manifest.region, "model", run_name, derived_from=snap)


def train_run(
    lake: Lake,
    manifest: DatasetManifest,
    cache: FeatureCache,
    config: TrainConfig,
    *,
    run_name: str,
    code: Mapping[str, str] | None = None,
    tracking: TrackingSettings | None = None,
    engine: str = "local",
    ray: RaySettings | None = None,
    ray_env: Mapping[str, str] | None = None,
    dist: Distributed | None = None,
    resume: bool = True,
    progress: Callable[[StepInfo], None] | None = None,
) -> RunReport:
    """Train ``config.model`` on a dataset version's cache, store and register the model with its lineage.

    Args:
        lake: The lake, as the principal running the training.
        manifest: The dataset version.
        cache: Its opened feature cache.
        config: The training config.
        run_name: The run's name (its folder and artefact name).
        code: Code versions for the lineage (``git_commit``).
        tracking: MLflow settings.
        engine: ``"local"`` (this process, or a torchrun rank) or ``"ray"``.
        ray: Cluster settings for ``engine="ray"``.
        ray_env: Environment for the Ray workers.
        dist: This process's torchrun rank (local engine).
        resume: Continue from the run folder's last checkpoint.
        progress: Called after each step (rank 0, local engine).

    Raises:
        ResidencyError: if the run would leave the dataset's region (audited).
        FeatureCacheError: if ``cache`` is not this dataset version's.
    """
    dist = dist or Distributed()
    ds = cache.dataset
    if (ds.get("name"), ds.get("version"), ds.get("ids_sha256")) != (
        manifest.name,
        manifest.version,
        manifest.ids_digest(),
    ):
        raise FeatureCacheError(
            f"{cache.path} is the cache of dataset {ds.get('name')}@v{ds.get('version')}, "
            f"not of {manifest.name}@v{manifest.version}"
        )
    tracking = tracking or TrackingSettings()
    run_dir = run_folder(lake, manifest, run_name)
    tags = lineage_tags(manifest, cache, config, code or {})
    fingerprint = {
        "dataset": f"{manifest.name}@v{manifest.version}:{manifest.ids_digest()}",
        "cache": cache.path.name,
    }
    tracker = None
    run_json = run_dir / "run.json"
    previous: dict[str, Any] = json.loads(run_json.read_text()) if run_json.exists() else {}
    tracking_uri: str | None = None
    if tracking.enabled and dist.is_main:
        from datadrive.train.tracking import MlflowTracker, embedded_tracking_uri

        if tracking.tracking_uri:
            tracking_uri = tracking.tracking_uri
            artifacts = None
        else:
            folder = lake.local_derived_dir(manifest.region, "metrics", "mlflow")
            tracking_uri = embedded_tracking_uri(folder)
            artifacts = (folder / "artifacts").resolve().as_uri()
        tracker = MlflowTracker(
            tracking_uri, tracking.experiment or manifest.name, artifacts, log_level=tracking.mlflow_log_level
        )
        same_store = previous.get("tracking_uri") == tracking_uri
        tracker.start(
            run_name,
            config.params(),
            tags,
            run_id=previous.get("mlflow_run_id") if resume and same_store else None,
        )
        _update_run_json(
            run_json, {"lineage": tags, "mlflow_run_id": tracker.run_id, "tracking_uri": tracking_uri}
        )
    status = "FAILED"
    try:
        if engine == "ray":
            fit_on_ray(
                cache.path,
                config,
                run_dir,
                ray or RaySettings(address=None),
                resume=resume,
                fingerprint=fingerprint,
                env=ray_env,
            )
            doc = json.loads(run_json.read_text())
            history = [dict(h) for h in doc.get("history", [])]
            steps = int(doc.get("steps", 0))
            samples_per_s = float(history[-1].get("samples_per_s", 0.0)) if history else 0.0
            if tracker is not None:
                for h in history:
                    tracker.log_metrics({k: v for k, v in h.items() if k != "epoch"}, step=int(h["epoch"]))
        elif engine == "local":
            result = fit(
                cache,
                config,
                run_dir,
                resume=resume,
                fingerprint=fingerprint,
                tracker=tracker,
                progress=progress,
                dist=dist,
            )
            history, steps, samples_per_s = result.history, result.steps, result.samples_per_s
        else:
            raise ConfigError(f"unknown training engine {engine!r}: local or ray")
        status = "FINISHED"
    finally:
        if tracker is not None and status != "FINISHED":
            tracker.end("FAILED")
    model_object = f"derived/model/{run_name}/model.pt"
    version: str | None = None
    if dist.is_main:
        snap = lake.snapshot(manifest.region, manifest.lake_version)
        data = (run_dir / "model.pt").read_bytes()
        model_object = lake.put_derived(
            manifest.region, "model", f"{run_name}/model.pt", data, derived_from=snap
        )
        if tracker is not None:
            tracker.log_artifact(run_dir / "run.json")
            version = tracker.register_model(
                tracking.registered_model or f"{manifest.name}-{config.model.name}",
                run_dir / "model.pt",
                tags,
            )
            tracker.end("FINISHED")
        _update_run_json(
            run_json,
            {
                "lineage": tags,
                "model_object": model_object,
                "model_version": version,
                "dataset": {"name": manifest.name, "version": manifest.version, "region": manifest.region},
                "cache": str(cache.path),
            },
        )
    return RunReport(
        run_name=run_name,
        run_dir=run_dir,
        model_object=model_object,
        history=history,
        steps=steps,
        samples_per_s=samples_per_s,
        mlflow_run_id=None if tracker is None else tracker.run_id,
        model_version=version,
        tracking_uri=tracking_uri,
        lineage=tags,
    )


def _update_run_json(path: Path, values: Mapping[str, Any]) -> None:
    doc: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    doc.update(values)
    tmp = path.with_name("run.json.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)
