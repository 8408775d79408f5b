"""``make demo``'s loop: lake -> mining -> dataset -> a short training -> evaluation -> HTML report.

Real samples (AV2, nuScenes, INTERACTION, Waymo through ScenarioNet) and a
synthetic fleet on the samples' AV2 maps (``datadrive.sim.fleet``, with cut-ins,
hard braking, pedestrian crossings and stopped vehicles injected at known
rates) are ingested into a fresh two-region lake in ``out/lake``; a dataset is
curated by SQL; its feature cache built on 2 processes; a small transformer
forecaster and the constant-velocity baseline are trained; the transformer
is scored against the baseline with the official AV2 and WOMD metrics, per
event type, and the report is written to ``out/eval/index.html``.

The mining layer indexes and tags every scenario (``datadrive.mining.tag_lake``);
the evaluation is cut per event type from its ``events`` table, at the
dataset's lake version and the current tagger version (recorded in the
results).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["LoopReport", "run_loop"]

REAL_SOURCES = ("av2_motion_forecasting", "scenarionet_nuscenes", "interaction", "scenarionet_waymo")
REGION = "eu-central"


@dataclass
class LoopReport:
    """What the loop did."""

    scenarios: int
    dataset: str
    samples: int
    runs: list[str]
    report: Path | None
    events_from: str
    notes: list[str]


def _hook_fleet(
    lake: Any, samples: Path, count: int, notes: list[str], progress: Callable[[int, int], None]
) -> int:
    """The synthetic fleet (simulation layer), when it is installed and the AV2 sample maps are there."""
    try:
        from datadrive.sim.fleet import FleetConfig, generate_into_lake
    except ImportError:
        notes.append("synthetic fleet: not installed (datadrive.sim), real samples only")
        return 0
    folder = samples / "av2_motion_forecasting"
    maps = tuple(str(d) for d in sorted(folder.iterdir()) if d.is_dir()) if folder.is_dir() else ()
    if not maps or count <= 0:
        notes.append("synthetic fleet: no AV2 sample maps to drive on")
        return 0
    report = generate_into_lake(
        lake,
        REGION,
        FleetConfig(maps=maps, num_steps=110),
        count,
        commit_every=max(1, count // 4),
        progress=progress,
    )
    notes.append(
        f"synthetic fleet: {report.scenarios} scenarios on {len(maps)} AV2 maps, events {report.events}"
    )
    return int(report.scenarios)


def _hook_mining(lake: Any, engine: Any, notes: list[str], progress: Callable[[int, int], None]) -> None:
    """Index and tag every scenario of the region with the mining layer (its ``events`` table)."""
    from datadrive.mining import tag_lake

    report = tag_lake(lake, REGION, engine=engine, progress=progress)
    notes.append(
        f"mining: {report.tagged} scenarios tagged, {report.events} events "
        f"({len(report.failures)} failed batches)"
    )


def run_loop(
    samples: Path,
    out: Path,
    *,
    console: Console,
    fleet: int = 120,
    epochs: int = 4,
    workers: int = 2,
) -> LoopReport:
    """Run the loop on the samples under ``samples`` into ``out`` (``out/lake``, ``out/eval``)."""
    from datadrive.compute import InlineEngine, ProcessPoolEngine
    from datadrive.curate import (
        AV2_FEATURES,
        DatasetQuery,
        FeatureCache,
        SplitSpec,
        build_cache,
        create_dataset,
        dataset_events,
    )
    from datadrive.evaluate import compare_results, evaluate_model, write_report
    from datadrive.lake import (
        ExportPolicy,
        Lake,
        LakeConfig,
        Principal,
        RegionConfig,
        StorageRoot,
        TenantConfig,
    )
    from datadrive.lake.ingest import INGEST_PRELOAD
    from datadrive.models import ModelSpec, load_model
    from datadrive.train import TrackingSettings, TrainConfig, train_run

    notes: list[str] = []
    root = out / "lake"
    shutil.rmtree(root, ignore_errors=True)
    config = LakeConfig(
        regions={
            "cn-north": RegionConfig(
                "cn-north",
                StorageRoot(str(root / "cn-north")),
                publish_crs="gcj02",
                export=ExportPolicy(derived=frozenset({"metrics", "aggregate"}), to=frozenset({REGION})),
            ),
            REGION: RegionConfig(
                REGION,
                StorageRoot(str(root / REGION)),
                export=ExportPolicy(
                    derived=frozenset({"metrics", "aggregate", "model"}), to=frozenset({"cn-north"})
                ),
            ),
        },
        tenants={"demo": TenantConfig("demo", b"datadrive-demo-key-not-secret-0001")},
    )
    lake = Lake(config, Principal("demo", "demo", REGION))
    lake.init()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        inputs = [samples / s for s in REAL_SOURCES if (samples / s).exists()]
        t = bar.add_task("ingest real samples", total=None)
        engine = ProcessPoolEngine(workers, preload=INGEST_PRELOAD) if workers > 1 else InlineEngine()
        rep = lake.ingest(inputs, region=REGION, engine=engine, progress=lambda e: bar.advance(t))
        bar.update(t, total=len(rep.outcomes), completed=len(rep.outcomes))
        ft = bar.add_task("synthetic fleet", total=fleet)
        n_fleet = _hook_fleet(lake, samples, fleet, notes, lambda done, total: bar.update(ft, completed=done))
        mt = bar.add_task("mining: index and tag", total=None)
        _hook_mining(
            lake,
            ProcessPoolEngine(workers, preload=("datadrive.mining",)) if workers > 1 else InlineEngine(),
            notes,
            lambda done, total: bar.update(mt, completed=done, total=total),
        )
        manifest = create_dataset(
            lake,
            "demo",
            REGION,
            DatasetQuery.sql("SELECT scenario_id FROM scenarios WHERE num_steps >= 110"),
            split=SplitSpec.parse("80/20"),
        )
        ct = bar.add_task("feature cache", total=None)
        features = replace(AV2_FEATURES, max_targets_per_window=4)
        cache_report = build_cache(
            lake,
            manifest,
            features,
            engine=ProcessPoolEngine(workers, preload=("datadrive.curate.cache",), window_per_worker=1)
            if workers > 1
            else InlineEngine(),
            shard_size=64,
            progress=lambda p: bar.update(ct, completed=p.done, total=p.total),
        )
        cache = FeatureCache(cache_report.path)
        runs = []
        for name, spec, ep in (
            (
                "demo-transformer",
                ModelSpec(
                    "transformer", {"d_model": 32, "heads": 2, "encoder_layers": 1, "decoder_layers": 1}
                ),
                epochs,
            ),
            ("demo-cv", ModelSpec("constant_velocity"), 1),
        ):
            tt = bar.add_task(f"train {name}", total=None)

            def step(info: Any, task: Any = tt) -> None:
                bar.update(
                    task,
                    completed=info.step,
                    total=None,
                    description=f"train ({info.samples_per_s:,.0f} samples/s)",
                )

            train_run(
                lake,
                manifest,
                cache,
                TrainConfig(model=spec, epochs=ep, batch_size=32, checkpoint_every=100),
                run_name=name,
                tracking=TrackingSettings(enabled=_has_mlflow()),
                progress=step,
            )
            runs.append(name)
        mined = dataset_events(lake, manifest)
        events, events_version = mined if mined is not None else (None, None)
        events_from = f"the mining layer's events (tagger {events_version})" if mined else "none"
        results = []
        for name in runs:
            data, _ = lake.read_derived(REGION, f"derived/model/{name}/model.pt")
            model, _, _ = load_model(data)
            results.append(
                evaluate_model(
                    model,
                    cache,
                    run=name,
                    dataset=f"demo@v{manifest.version}",
                    split="val",
                    events=events,
                    events_version=events_version,
                )
            )
    comparison = compare_results(results[1], results[0], resamples=1000)
    histories = {}
    for name in runs:
        import json

        doc = json.loads(
            (Path(config.region(REGION).root.path("derived", "model", name)) / "run.json").read_text()
        )
        histories[name] = doc.get("history", [])
    index = write_report(
        out / "eval",
        results,
        histories=histories,
        comparison=comparison,
        title="datadrive demo: forecasting loop",
    )
    scenarios = len(rep.outcomes) + n_fleet
    console.print(
        f"loop: {scenarios} inputs ingested ({n_fleet} synthetic), dataset demo@v{manifest.version} "
        f"({len(manifest)} scenarios, {cache.num_samples} samples), trained {', '.join(runs)}; "
        f"minFDE_6 {results[0].overall.get('minFDE_6', float('nan')):.2f} m vs constant velocity "
        f"{results[1].overall.get('minFDE_6', float('nan')):.2f} m; per-event cuts from {events_from}. "
        f"Report: {index}",
        highlight=False,
    )
    for note in notes:
        console.print(f"  {note}", highlight=False)
    return LoopReport(
        scenarios, f"demo@v{manifest.version}", cache.num_samples, runs, index, events_from, notes
    )


def _has_mlflow() -> bool:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return False
    return True
