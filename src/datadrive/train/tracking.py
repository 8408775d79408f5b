"""Experiment tracking and the model registry, in MLflow.

By default a run is tracked in an embedded MLflow store inside the region
(a SQLite file and an artifact folder under ``<root>/derived/metrics/mlflow/``),
so what is derived from a region's data stays there; give a tracking URI
(``http://host:5000``) to use a tracking server instead. Every run records
its parameters, per-epoch metrics, and lineage tags: the dataset (name,
version, region), the lake version, the feature cache, the git commit and
the datadrive version. The trained model is registered as a model version
with the same tags.

MLflow is the ``[track]`` extra; the client is used directly
(``MlflowClient``), never MLflow's global "active run" state.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from datadrive.errors import ConfigError, TrainingError

__all__ = ["MlflowTracker", "embedded_tracking_uri"]


def embedded_tracking_uri(folder: Path) -> str:
    """The embedded store in ``folder``: ``sqlite:///<folder>/mlflow.db``."""
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}"


class MlflowTracker:
    """One MLflow run (created, or resumed by id) with its metrics, artifacts and model versions.

    Args:
        tracking_uri: ``sqlite:///...`` (embedded) or ``http://host:port`` (a server).
        experiment: The experiment's name (created if missing).
        artifact_location: Where a new experiment keeps artifacts (embedded stores).
        log_level: The level set on MLflow's own ``mlflow`` logger once it is
            imported (MLflow sets it at import, from ``MLFLOW_LOGGING_LEVEL``);
            ``None`` leaves it.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        artifact_location: str | None = None,
        *,
        log_level: str | None = None,
    ) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(
                "tracking needs MLflow: pip install 'datadrive[track]' (or train with --no-track)"
            ) from exc
        if log_level is not None:
            logging.getLogger("mlflow").setLevel(log_level)
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        try:
            found = self.client.get_experiment_by_name(experiment)
            self.experiment_id = (
                found.experiment_id
                if found is not None
                else self.client.create_experiment(experiment, artifact_location=artifact_location)
            )
        except Exception as exc:
            raise TrainingError(
                f"MLflow at {tracking_uri}: cannot open experiment {experiment!r} ({exc})"
            ) from exc
        self.run_id: str | None = None

    def start(
        self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str], run_id: str | None = None
    ) -> str:
        """Create the run (or reopen ``run_id``) and record params and tags once."""
        from mlflow.entities import Param, RunTag

        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
            self.run_id = run_id
            return run_id
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=dict(tags))
        self.run_id = run.info.run_id
        self.client.log_batch(
            self.run_id,
            params=[Param(k, str(v)[:6000]) for k, v in sorted(params.items())],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )
        return self.run_id

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        if self.run_id is None:
            return
        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items() if math.isfinite(float(v))]
        if items:
            self.client.log_batch(self.run_id, metrics=items)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        if self.run_id is not None:
            self.client.log_artifact(self.run_id, str(path), artifact_path=folder)

    def register_model(self, name: str, path: Path, tags: Mapping[str, str]) -> str:
        """Log ``path`` under the run's ``model/`` artifacts and register it as a new version of ``name``."""
        if self.run_id is None:
            raise TrainingError("register_model before start")
        self.client.log_artifact(self.run_id, str(path), artifact_path="model")
        try:
            self.client.create_registered_model(name)
        except Exception as exc:  # already registered
            if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise
        run = self.client.get_run(self.run_id)
        source = f"{run.info.artifact_uri.rstrip('/')}/model/{path.name}"
        version = self.client.create_model_version(name, source, run_id=self.run_id, tags=dict(tags))
        return str(version.version)

    def end(self, status: str = "FINISHED") -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)
