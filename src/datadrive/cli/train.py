"""``datadrive train`` and ``datadrive evaluate``: from a dataset version to a registered, scored model.

This is the edge: it reads the torchrun environment (``RANK``,
``WORLD_SIZE``, ...) and ``RAY_ADDRESS``, and the git commit of the
source tree, and hands the library frozen configs.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from datadrive.cli.curate import ensure_cache, feature_config, git_commit, progress_bar
from datadrive.cli.shell import LakeOpt, Who, command, open_lake
from datadrive.cli.shell import err as shell_err
from datadrive.cli.shell import out as shell_out
from datadrive.errors import ConfigError

__all__ = ["evaluate_cmd", "parse_model_config", "register", "train_cmd"]

_out = shell_out
_err = shell_err


def parse_model_config(items: list[str] | None) -> dict[str, Any]:
    """``key=value`` pairs (values parsed as JSON when they are, else strings)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: write key=value, e.g. --set d_model=64")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


@command
def train_cmd(
    lake: LakeOpt,
    region: Annotated[str, typer.Option("--region", help="The dataset's region (training stays there).")],
    who: Who,
    dataset: Annotated[
        str, typer.Option("--dataset", help="NAME or NAME@vN (a REGION/ prefix must be --region).")
    ],
    model: Annotated[
        str, typer.Option("--model", help="transformer, mlp, nearest_neighbor, constant_velocity.")
    ] = "transformer",
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Model config key=value (repeatable).")
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs")] = 10,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 32,
    lr: Annotated[
        float, typer.Option("--lr", help="Peak learning rate (AdamW, warm-up then cosine).")
    ] = 1e-3,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N or auto.")] = "cpu",
    amp: Annotated[bool, typer.Option("--amp/--no-amp", help="bfloat16 autocast on a GPU.")] = True,
    threads: Annotated[
        int, typer.Option("--threads", help="torch threads per process (0: torch's default).")
    ] = 1,
    engine: Annotated[
        str, typer.Option("--engine", help="local (this process or a torchrun rank) or ray.")
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="Ray cluster (default RAY_ADDRESS).")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="Ray Train workers.")] = 2,
    run: Annotated[str | None, typer.Option("--run", help="Run name (default: dataset-model-time).")] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue the run's last checkpoint.")
    ] = True,
    features: Annotated[
        str, typer.Option("--features", help="av2 (5 s + 6 s) or womd (1.1 s + 8 s).")
    ] = "av2",
    resample: Annotated[bool, typer.Option("--resample", help="Resample sources at another rate.")] = False,
    cache_workers: Annotated[
        int | None, typer.Option("--cache-workers", help="Processes building the cache.")
    ] = None,
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", help="Steps between checkpoints.")
    ] = 200,
    max_steps: Annotated[int, typer.Option("--max-steps", help="Stop after this many steps (0: none).")] = 0,
    tracking_uri: Annotated[
        str | None, typer.Option("--tracking-uri", help="MLflow server (default: in-region store).")
    ] = None,
    track: Annotated[
        bool, typer.Option("--track/--no-track", help="Track in MLflow and register the model.")
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Train a model on a dataset version: cache (built if missing), train, store as the region's model, register."""
    from datadrive.curate import FeatureCache, load_dataset
    from datadrive.models import ModelSpec
    from datadrive.train import (
        RaySettings,
        TrackingSettings,
        TrainConfig,
        distributed_from_env,
        init_process_group,
        train_run,
    )

    dist = distributed_from_env(dict(os.environ)) if engine == "local" else None
    if dist is not None:
        init_process_group(dist, device)
    lk = open_lake(lake, who, region)
    manifest = load_dataset(lk, dataset, region)
    fcfg = feature_config(features, resample)
    is_main = dist is None or dist.is_main
    if is_main:
        report = ensure_cache(
            lk, manifest, fcfg, workers=cache_workers, engine_name="process", shard_size=None, quiet=quiet
        )
        cache_path = report.path
    if dist is not None:
        import torch.distributed

        torch.distributed.barrier()
        from datadrive.curate import cache_dir_for

        cache_path = cache_dir_for(lk, manifest, fcfg)
    cache = FeatureCache(cache_path)
    config = TrainConfig(
        model=ModelSpec(model, parse_model_config(set_)),
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=lr,
        seed=seed,
        device=device,
        amp=amp,
        threads=threads,
        checkpoint_every=checkpoint_every,
        max_steps=max_steps,
    )
    name = run or f"{manifest.name}-{model}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    if dist is not None and run is None:
        raise ConfigError("under torchrun give every rank the same --run NAME")
    with progress_bar(disable=quiet or not is_main) as bar:
        task = bar.add_task(f"train {name}", total=None, extra="")

        def on_step(info: Any) -> None:
            bar.update(
                task,
                completed=info.batch,
                total=info.batches,
                description=f"epoch {info.epoch + 1}/{info.epochs}",
                extra=f"loss {info.loss:.3f} · {info.samples_per_s:,.0f} samples/s · lr {info.learning_rate:.2e}",
            )

        result = train_run(
            lk,
            manifest,
            cache,
            config,
            run_name=name,
            code={"git_commit": git_commit()},
            tracking=TrackingSettings(enabled=track, tracking_uri=tracking_uri),
            engine=engine,
            ray=RaySettings(
                address=ray_address or os.environ.get("RAY_ADDRESS") or None, num_workers=workers
            ),
            dist=dist,
            resume=resume,
            progress=on_step,
        )
    if is_main:
        _print_history(result.history)
        _out.print(
            f"run {result.run_name}: {result.steps} steps, {result.samples_per_s:,.0f} samples/s; model "
            f"{result.model_object} in {manifest.region}"
            + (
                f"; MLflow run {result.mlflow_run_id}, model version {result.model_version}"
                if result.mlflow_run_id
                else ""
            ),
            highlight=False,
        )


def _print_history(history: list[dict[str, float]]) -> None:
    if not history:
        return
    keys = [
        k
        for k in (
            "epoch",
            "train_loss",
            "val_loss",
            "val_minADE",
            "samples_per_s",
            "step_ms_p50",
            "learning_rate",
        )
        if k in history[0]
    ]
    table = Table(title="epochs")
    for k in keys:
        table.add_column(k, justify="right")
    for h in history:
        table.add_row(*[f"{h[k]:.4g}" if k != "epoch" else str(int(h[k])) for k in keys])
    _out.print(table)


def _read_history(lk: Any, region: str, run: str) -> list[dict[str, float]]:
    root = lk.config.region(region).root
    if not root.is_local:
        return []
    path = Path(root.path("derived", "model", run, "run.json"))
    try:
        return [dict(h) for h in json.loads(path.read_text()).get("history", [])]
    except (OSError, ValueError):
        return []


@command
def evaluate_cmd(
    run: Annotated[
        str, typer.Argument(help="The run to score (its model artefact derived/model/RUN/model.pt).")
    ],
    lake: LakeOpt,
    region: Annotated[str, typer.Option("--region", help="The region of the run and dataset.")],
    who: Who,
    dataset: Annotated[str, typer.Option("--dataset", help="NAME or NAME@vN.")],
    split: Annotated[str, typer.Option("--split", help="The split to score.")] = "val",
    against: Annotated[
        str | None, typer.Option("--against", help="A baseline run: compare with bootstrap intervals.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Report folder (default out/eval-RUN).")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")] = "cpu",
    resamples: Annotated[int, typer.Option("--resamples", help="Bootstrap resamples.")] = 2000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Score a run on a dataset split with the official AV2 and WOMD metrics; compare with --against; HTML report."""
    from datadrive.curate import FeatureCache, dataset_events, load_dataset
    from datadrive.evaluate import compare_results, evaluate_model, write_report
    from datadrive.models import load_model

    lk = open_lake(lake, who, region)
    manifest = load_dataset(lk, dataset, region)
    results = []
    mined = dataset_events(lk, manifest)
    events, events_version = mined if mined is not None else (None, None)
    for name in [run] + ([against] if against else []):
        data, _ = lk.read_derived(region, f"derived/model/{name}/model.pt")
        model, fcfg, _ = load_model(data, f"derived/model/{name}/model.pt")
        report = ensure_cache(
            lk, manifest, fcfg, workers=None, engine_name="process", shard_size=None, quiet=quiet
        )
        cache = FeatureCache(report.path)
        results.append(
            evaluate_model(
                model,
                cache,
                run=name,
                dataset=f"{manifest.name}@v{manifest.version}",
                split=split,
                events=events,
                events_version=events_version,
                device=device,
            )
        )
    comparison = None
    if against:
        comparison = compare_results(results[1], results[0], resamples=resamples)
    snap = lk.snapshot(region, manifest.lake_version)
    for r in results:
        lk.put_derived(
            region, "metrics", f"evaluations/{r.run}/{manifest.name}-v{manifest.version:04d}-{split}.json", r.dumps(),
            derived_from=snap,
        )  # fmt: skip
    folder = out or Path("out") / f"eval-{run}"
    histories = {r.run: _read_history(lk, region, r.run) for r in results}
    index = write_report(
        folder, results, histories=histories, comparison=comparison, title=f"evaluation of {run}"
    )
    if as_json:
        doc: dict[str, Any] = {
            r.run: {"overall": r.overall, "by_event": r.by_event, "info": r.info} for r in results
        }
        doc["metrics_version"] = results[0].metrics_version
        if comparison is not None:
            doc["regressions"] = comparison.regressions
        sys.stdout.write(json.dumps(doc, default=float) + "\n")
    else:
        _print_results(results, comparison)
        _out.print(f"report: {index}", highlight=False)


def _print_results(results: list[Any], comparison: Any) -> None:
    r0 = results[0]
    names = [m for m in r0.overall if not m.startswith("womd_") or "@" not in m]
    table = Table(title=f"{r0.dataset} · {r0.split} · {r0.metrics_version}")
    table.add_column("run")
    table.add_column("samples", justify="right")
    for m in names:
        table.add_column(m, justify="right")
    for r in results:
        table.add_row(
            escape(r.run), str(r.info["samples"]), *[f"{r.overall.get(m, float('nan')):.3f}" for m in names]
        )
    _out.print(table)
    if comparison is not None:
        t = Table(title=f"{comparison.b} - {comparison.a} ({comparison.confidence:.0%} bootstrap intervals)")
        for col in ("metric", "a", "b", "b - a", "interval", ""):
            t.add_column(col, justify="right")
        for d in comparison.overall:
            flag = "[red]regression[/]" if d.regression else "[green]better[/]" if d.improvement else ""
            t.add_row(
                d.metric,
                f"{d.a:.3f}",
                f"{d.b:.3f}",
                f"{d.delta:+.3f}",
                f"[{d.low:+.3f}, {d.high:+.3f}]",
                flag,
            )
        _out.print(t)
        if comparison.regressions:
            _out.print(f"regressions: {', '.join(comparison.regressions)}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``evaluate`` to the top-level app."""
    app.command("train")(train_cmd)
    app.command("evaluate")(evaluate_cmd)
