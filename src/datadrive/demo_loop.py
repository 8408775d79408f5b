"""``make demo``'s loop: lake -> (mining) -> dataset -> a short training -> evaluation -> HTML report.

Real samples (AV2, nuScenes, INTERACTION, Waymo through ScenarioNet) and a
synthetic fleet on the samples' AV2 maps (``datadrive.sim.fleet``, with cut-ins,
hard braking, pedestrian crossings and stopped vehicles injected at known
rates) are ingested into a fresh two-region lake in ``out/lake``; a dataset is
curated by SQL; its feature cache built on 2 processes; a small transformer
forecaster and the constant-velocity baseline are trained; the transformer
is scored against the baseline with the official AV2 and WOMD metrics, per
event type, and the report is written to ``out/eval/index.html``.

Events come from the mining layer's ``events`` table when the lake has one
(the mining layer, issue 8); until then, from the events the fleet injected
(``extras["events"]``), and the report says which.
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


def _hook_mining(lake: Any, notes: list[str]) -> None:
    """Tag events with the mining layer when it is installed (its API decides how; see issue 8)."""
    import importlib

    try:
        mining = importlib.import_module("datadrive.mining")
    except ImportError:
        notes.append("mining: not installed yet; events come from what the fleet injected")
        return
    tag = getattr(mining, "tag_lake", None)
    if tag is None:
        notes.append("mining: installed, but without tag_lake(); events come from what the fleet injected")
        return
    tag(lake, REGION)
    notes.append("mining: events tagged into the lake")


def _events(lake: Any, manifest: Any) -> tuple[dict[str, list[str]], str]:
    snap = lake.snapshot(REGION, manifest.lake_version)
    try:
        table = snap.sql("SELECT tenant, source, scenario_id, event_type FROM events").table
        out: dict[str, list[str]] = {}
        for t, s, i, e in zip(
            *(table.column(c).to_pylist() for c in ("tenant", "source", "scenario_id", "event_type")),
            strict=True,
        ):
            out.setdefault(f"{t}/{s}/{i}", []).append(str(e))
        return out, "mining events table"
    except Exception:  # no events table yet: the fleet's own record of what it injected
        rows = snap.sql(
            "SELECT tenant, source, scenario_id, extras_json FROM scenarios WHERE source = 'synthetic'"
        ).table.to_pylist()
        import json

        out = {}
        for r in rows:
            for e in json.loads(r["extras_json"]).get("events", []):
                out.setdefault(f"{r['tenant']}/{r['source']}/{r['scenario_id']}", []).append(str(e["type"]))
        return out, "events injected by the synthetic fleet (mining not merged yet)"


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
        engine = (
            ProcessPoolEngine(workers, preload=("datadrive.lake.ingest",)) if workers > 1 else InlineEngine()
        )
        rep = lake.ingest(inputs, region=REGION, engine=engine, progress=lambda e: bar.advance(t))
        bar.update(t, total=len(rep.outcomes), completed=len(rep.outcomes))
        ft = bar.add_task("synthetic fleet", total=fleet)
        n_fleet = _hook_fleet(lake, samples, fleet, notes, lambda done, total: bar.update(ft, completed=done))
        _hook_mining(lake, notes)
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
        events, events_from = _events(lake, manifest)
        results = []
        for name in runs:
            data, _ = lake.read_derived(REGION, f"derived/model/{name}/model.pt")
            model, _, _ = load_model(data)
            results.append(
                evaluate_model(
                    model, cache, run=name, dataset=f"demo@v{manifest.version}", split="val", events=events
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
