"""Datasets, training and evaluation in the service: three job kinds over the learning layers.

- ``dataset``: a SQL selection of a region's scenarios, split by log, stored
  by the library as the next version of a curated dataset (a ``dataset``
  artefact in the region), and registered as a shareable ``dataset``.
- ``train``: the dataset version's feature cache (built if missing, in the
  region), then a training run on the CPU (one thread); the weights are the
  library's ``model`` artefact, registered as a shareable ``model`` whose
  meta keeps the run's per-epoch history (the loss curves).
- ``evaluate``: a model scored on a dataset split with the official AV2 and
  WOMD metrics; the result is a ``metrics`` artefact, added to the model as a
  part, and its overall figures to the model's meta (the metric tables).

The service adds bounds (epochs, steps, batch size, a model of the registry,
never a module path) and the catalogue entries; everything else is the
library's, as ``datadrive dataset`` and ``datadrive train`` call it.
Experiment tracking (MLflow) is off in jobs: the run's history is in the
model's meta and its ``run.json``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from datadrive.errors import InputError, NotFoundError

if TYPE_CHECKING:
    from datadrive.service.jobs.framework import JobContext

__all__ = [
    "DATASET_TYPE",
    "MODEL_TYPE",
    "check_dataset",
    "check_evaluate",
    "check_train",
    "dataset_job",
    "dataset_summary",
    "evaluate_job",
    "train_job",
]

DATASET_TYPE = "dataset"
MODEL_TYPE = "model"
MAX_EPOCHS = 50
MAX_STEPS = 100_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}(@v?\d{1,6})?$")
_SPLIT = re.compile(r"^[A-Za-z0-9=.,/ ]{1,80}$")


def _int(params: Mapping[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InputError(f"params.{name}", f"an integer from {lo} to {hi}")
    return value


def _text(
    params: Mapping[str, Any], name: str, pattern: re.Pattern[str], what: str, default: str | None = None
) -> str:
    value = params.get(name, default)
    if not isinstance(value, str) or not pattern.match(value):
        raise InputError(f"params.{name}", what)
    return value


def check_dataset(params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """A dataset job's parameters: a name, one SELECT returning ``scenario_id``, a split."""
    sql = params.get("sql")
    if not isinstance(sql, str) or not sql.strip() or len(sql) > 20_000:
        raise InputError("params.sql", "one SELECT returning scenario_id (at most 20,000 characters)")
    return {
        "name": _text(params, "name", _NAME, "a dataset name: letters, digits, . _ - (at most 64)"),
        "sql": sql.strip(),
        "split": _text(
            params, "split", _SPLIT, "fractions like 80/10/10 or train=8,val=1,test=1", "80/10/10"
        ),
        "seed": _int(params, "seed", 0, 0, 2**31 - 1),
    }


def check_train(params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """A train job's parameters: a dataset of the region, a model of the registry, bounded sizes."""
    from datadrive.models import MODELS

    model = params.get("model", "mlp")
    if model not in MODELS:
        raise InputError("params.model", f"one of {', '.join(sorted(MODELS))}")
    lr = params.get("learning_rate", 1e-3)
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr <= 1:
        raise InputError("params.learning_rate", "a number in (0, 1]")
    features = params.get("features", "av2")
    if features not in ("av2", "womd"):
        raise InputError("params.features", "av2 (5 s + 6 s) or womd (1.1 s + 8 s)")
    return {
        "dataset": _text(params, "dataset", _REF, "a dataset of the region: NAME or NAME@vN"),
        "model": model,
        "features": features,
        "epochs": _int(params, "epochs", 5, 1, MAX_EPOCHS),
        "batch_size": _int(params, "batch_size", 32, 1, 512),
        "learning_rate": float(lr),
        "max_steps": _int(params, "max_steps", 0, 0, MAX_STEPS),
        "seed": _int(params, "seed", 0, 0, 2**31 - 1),
    }


def check_evaluate(params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """An evaluate job's parameters: a model object of the tenant, a dataset and a split."""
    run = params.get("model_id")
    if not isinstance(run, str) or not re.match(r"^obj_[A-Za-z0-9]{1,36}$", run):
        raise InputError("params.model_id", "the id of a model (a training run's object)")
    return {
        "model_id": run,
        "dataset": _text(params, "dataset", _REF, "a dataset of the region: NAME or NAME@vN"),
        "split": _text(params, "split", _NAME, "a split of the dataset (train, val, test)", "val"),
    }


# --------------------------------------------------------------------------- jobs (run in a worker)


def _features(preset: str) -> Any:
    from datadrive.curate import AV2_FEATURES, WOMD_FEATURES

    return {"av2": AV2_FEATURES, "womd": WOMD_FEATURES}[preset]


def dataset_summary(m: Any) -> dict[str, Any]:
    """A dataset version as the API shows it (no scenario ids)."""
    from collections import Counter

    return {
        "name": m.name,
        "version": m.version,
        "dataset": f"{m.name}@v{m.version}",
        "lake_version": m.lake_version,
        "query": m.query.as_json(),
        "split": m.split.as_json(),
        "counts": m.counts(),
        "sources": dict(Counter(m.sources)),
        "scenarios": len(m),
        "created_at": m.created_at,
        "object": m.object_name,
    }


def dataset_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Create the next version of a dataset from a SQL selection, split by log."""
    from datadrive.curate import DatasetQuery, SplitSpec, create_dataset

    region = ctx.region or params["region"]
    ctx.progress(0, 2, "selecting and splitting", force=True)
    m = create_dataset(
        ctx.lake,
        params["name"],
        region,
        DatasetQuery.sql(params["sql"]),
        split=SplitSpec.parse(params["split"], seed=params["seed"]),
        code={"service_job": ctx.job_id},
    )
    summary = dataset_summary(m)
    ctx.log(f"dataset {summary['dataset']}: {summary['scenarios']} scenarios, splits {summary['counts']}")
    object_id = ctx.register_object(
        DATASET_TYPE,
        summary["dataset"],
        region,
        parts={"manifest": {"kind": "dataset", "object": m.object_name}},
        meta=summary,
    )
    return {"object_id": object_id, **summary}


def train_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Build the dataset version's feature cache if missing, train on it, register the model."""
    from datadrive.compute import InlineEngine, Progress
    from datadrive.curate import FeatureCache, build_cache, load_dataset
    from datadrive.models import ModelSpec
    from datadrive.train import StepInfo, TrackingSettings, TrainConfig, train_run

    region = ctx.region or params["region"]
    manifest = load_dataset(ctx.lake, params["dataset"], region)
    features = _features(params["features"])

    def on_shard(p: Progress) -> None:
        ctx.progress(p.done, p.total or 1, f"feature cache: shard {p.done}/{p.total or '?'}")

    ctx.progress(0, 1, "building the feature cache", force=True)
    cache_report = build_cache(ctx.lake, manifest, features, engine=InlineEngine(), progress=on_shard)
    if cache_report.failed:
        raise InputError(
            "params.dataset", f"{len(cache_report.failed)} cache shards failed: {cache_report.failed[0]}"
        )
    ctx.log(
        f"feature cache: {cache_report.samples} samples "
        f"({cache_report.built} shards built, {cache_report.reused} reused)"
    )
    config = TrainConfig(
        model=ModelSpec(params["model"], {}),
        epochs=params["epochs"],
        batch_size=params["batch_size"],
        learning_rate=params["learning_rate"],
        seed=params["seed"],
        device="cpu",
        threads=1,
        max_steps=params["max_steps"],
        val_split="val" if manifest.counts().get("val") else None,
    )
    name = (
        f"{manifest.name}-{params['model']}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{ctx.job_id[-6:]}"
    )

    def on_step(info: StepInfo) -> None:
        done = info.epoch * max(info.batches, 1) + info.batch
        total = info.epochs * max(info.batches, 1)
        ctx.progress(done, total, f"epoch {info.epoch + 1}/{info.epochs}, loss {info.loss:.3f}")

    report = train_run(
        ctx.lake,
        manifest,
        FeatureCache(cache_report.path),
        config,
        run_name=name,
        code={"service_job": ctx.job_id},
        tracking=TrackingSettings(enabled=False),
        progress=on_step,
    )
    history = [
        {k: (float(v) if isinstance(v, int | float) and math.isfinite(v) else None) for k, v in h.items()}
        for h in report.history
    ]
    meta = {
        "run": report.run_name,
        "dataset": f"{manifest.name}@v{manifest.version}",
        "model": params["model"],
        "config": config.as_json(),
        "steps": report.steps,
        "samples_per_s": round(report.samples_per_s, 1),
        "history": history,
        "evaluations": {},
    }
    object_id = ctx.register_object(
        MODEL_TYPE,
        report.run_name,
        region,
        parts={"weights": {"kind": "model", "object": report.model_object}},
        meta=meta,
    )
    last = history[-1] if history else {}
    ctx.log(f"run {report.run_name}: {report.steps} steps; last epoch {json.dumps(last)}")
    return {
        "object_id": object_id,
        "run": report.run_name,
        "model_object": report.model_object,
        "steps": report.steps,
    }


def evaluate_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Score a model on a dataset split; store the metrics and add them to the model's catalogue entry."""
    from datadrive.compute import InlineEngine
    from datadrive.curate import FeatureCache, build_cache, load_dataset
    from datadrive.evaluate import evaluate_model
    from datadrive.models import load_model

    region = ctx.region or params["region"]
    entry = ctx.object(params["model_id"])
    if entry is None or entry["type"] != MODEL_TYPE or entry["region"] != region:
        raise NotFoundError(f"no model {params['model_id']!r} in region {region}")
    weights = str(entry["parts"]["weights"]["object"])
    data, _ = ctx.lake.read_derived(region, weights)
    model, features, _ = load_model(data, weights)
    manifest = load_dataset(ctx.lake, params["dataset"], region)
    ctx.progress(0, 2, "feature cache", force=True)
    cache_report = build_cache(ctx.lake, manifest, features, engine=InlineEngine())
    ctx.progress(1, 2, f"scoring the {params['split']} split", force=True)
    result = evaluate_model(
        model,
        FeatureCache(cache_report.path),
        run=str(entry["meta"].get("run", entry["name"])),
        dataset=f"{manifest.name}@v{manifest.version}",
        split=params["split"],
    )
    snap = ctx.lake.snapshot(region, manifest.lake_version)
    run = str(entry["meta"].get("run", entry["name"]))
    name = f"evaluations/{run}/{manifest.name}-v{manifest.version:04d}-{params['split']}.json"
    obj = ctx.lake.put_derived(region, "metrics", name, result.dumps(), derived_from=snap)
    overall = {k: (float(v) if math.isfinite(float(v)) else None) for k, v in result.overall.items()}
    key = f"{manifest.name}@v{manifest.version}:{params['split']}"
    ctx.update_object(
        params["model_id"],
        parts={f"eval {key}": {"kind": "metrics", "object": obj}},
        meta_key=("evaluations", key),
        meta_value={
            "overall": overall,
            "samples": result.info.get("samples"),
            "metrics_version": result.metrics_version,
        },
    )
    ctx.log(
        f"{key}: {result.info.get('samples')} samples; "
        + ", ".join(f"{k} {v:.3f}" for k, v in overall.items() if v is not None and "@" not in k)[:600]
    )
    return {"model_id": params["model_id"], "evaluation": key, "artefact": obj, "overall": overall}
