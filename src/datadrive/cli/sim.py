"""``datadrive simulate`` and ``datadrive fleet generate``: the simulation layer's commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from datadrive.cli.shell import LakeOpt, Who, command, err, fail, json_value, make_engine, open_lake, out

__all__ = ["fleet_app", "register"]

fleet_app = typer.Typer(
    name="fleet",
    help="A synthetic fleet: traffic with injected events on real maps, into a lake.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
SIM_PRELOAD = ("datadrive.sim.runner",)


def _progress(disable: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=disable or not err.is_terminal,
    )


@command
def simulate_cmd(
    lake: LakeOpt,
    who: Who,
    region: Annotated[str, typer.Option("--region", help="The region whose scenarios are simulated.")],
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            help="log, cv, idm, model:PATH (a model file), model:run:NAME (a training run's model) "
            "or model:MODULE:ATTR.",
        ),
    ] = "idm",
    query: Annotated[
        str | None,
        typer.Option("--query", help="SQL condition on the scenarios table, e.g. \"source = 'synthetic'\"."),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="A curated dataset, NAME[@vN] (at its lake version).")
    ] = None,
    split: Annotated[str | None, typer.Option("--split", help="Only this split of --dataset.")] = None,
    event_type: Annotated[
        list[str] | None,
        typer.Option("--event-type", help="Only scenarios where mining found this event type (repeatable)."),
    ] = None,
    mine: Annotated[
        str | None,
        typer.Option("--mine", help="Only scenarios a mining expression selects, e.g. 'car and stopped'."),
    ] = None,
    reactive: Annotated[
        bool, typer.Option("--reactive", help="IDM/MOBIL agents instead of log replay.")
    ] = False,
    engine: Annotated[str, typer.Option("--engine", help="process, inline or ray.")] = "process",
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Scenarios stepped together.")] = 16,
    device: Annotated[
        str | None, typer.Option("--device", help="torch device (cpu, cuda); default numpy.")
    ] = None,
    precision: Annotated[
        str | None, typer.Option("--precision", help="float64 or float32 (faster); default float64 on numpy.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_of: Annotated[int | None, typer.Option("--as-of", help="Lake version (default: latest).")] = None,
    render: Annotated[Path | None, typer.Option("--render", help="Write bird's-eye GIFs here.")] = None,
    render_count: Annotated[int, typer.Option("--render-count", help="How many scenarios to render.")] = 4,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON row per scenario, then the summary.")
    ] = False,
) -> None:
    """Closed-loop simulation of lake scenarios; scores stored in the region as a metrics artefact."""
    from datadrive.sim.runner import SimRequest, select_ids, simulate_lake

    if query is not None and dataset is not None:
        fail("give --query or --dataset, not both")
    lk = open_lake(lake, who, region)
    render_ids: tuple[str, ...] = ()
    if render is not None:
        _, ids = select_ids(
            lk, region, query=query, dataset=dataset, version=as_of, split=split,
            event_types=tuple(event_type or ()), mine=mine,
        )  # fmt: skip
        render_ids = tuple(ids[: max(0, render_count)])
    request = SimRequest(
        policy=policy,
        reactive=reactive,
        batch_size=max(1, batch_size),
        device=device,
        float_dtype=precision,
        seed=seed,
        render_dir=str(render) if render is not None else None,
        render_ids=render_ids,
    )
    from datadrive.sim.policies import make_policy

    if precision not in (None, "float32", "float64"):
        fail(f"--precision {precision}: choose float32 or float64")
    if not policy.startswith("model:run:"):  # a run's model is read from the lake by the run itself
        make_policy(policy, device=device)  # a bad --policy fails here, in one line
    eng = make_engine(engine, workers, preload=SIM_PRELOAD)
    progress = _progress(as_json)
    with progress:
        task = progress.add_task("simulating", total=None)

        def on_progress(p: Any) -> None:
            progress.update(task, completed=p.done, total=p.total)

        def emit(row: dict[str, Any]) -> None:  # --json streams rows as chunks finish
            sys.stdout.write(json.dumps(json_value(row), default=str) + "\n")

        report = simulate_lake(
            lk,
            region,
            request,
            query=query,
            dataset=dataset,
            version=as_of,
            split=split,
            event_types=tuple(event_type or ()),
            mine=mine,
            engine=eng,
            progress=on_progress,
            on_row=emit if as_json else None,
            keep_rows=0 if as_json else 200,
        )
    if as_json:
        sys.stdout.write(
            json.dumps(json_value({"summary": report.summary, "artefact": report.artefact})) + "\n"
        )
        return
    _print_summary(report)


def _print_summary(report: Any) -> None:
    table = Table(title=f"{report.summary['policy']} on {report.region} @ lake version {report.lake_version}")
    for col in (
        "scenario",
        "source",
        "status",
        "CLS",
        "PDMS",
        "NC",
        "DAC",
        "DDC",
        "EP",
        "TTC",
        "C",
        "reason",
    ):
        table.add_column(
            col, justify="left" if col in ("scenario", "source", "status", "reason") else "right"
        )
    for r in report.rows[:200]:
        ok = r.get("status") == "ok"

        def f(k: str, row: dict[str, Any] = r, ok: bool = ok) -> str:
            return f"{float(row[k]):.2f}" if ok and row.get(k) is not None else "-"

        table.add_row(
            escape(str(r.get("scenario_id"))[:40]),
            escape(str(r.get("source", "-"))),
            r.get("status", "-"),
            f("nuplan_cls"),
            f("navsim_pdms"),
            f("no_at_fault_collisions"),
            f("drivable_area_compliance"),
            f("driving_direction_compliance"),
            f("ego_progress_ratio"),
            f("ttc_within_bound"),
            f("ego_is_comfortable"),
            escape(str(r.get("reason") or "")),
        )
    out.print(table)
    s = report.summary
    means = s["means"]
    cls = "-" if means["nuplan_cls"] is None else f"{means['nuplan_cls']:.3f}"
    pdms = "-" if means["navsim_pdms"] is None else f"{means['navsim_pdms']:.3f}"
    if s.get("by_event_type") and set(s["by_event_type"]) != {"none"}:
        sources = s.get("event_types_from") or {}
        origin = ", ".join(f"{k}: {v}" for k, v in sources.items()) if sources else "injected"
        events = Table(title=f"by event type (a scenario counts under each of its events; from {origin})")
        for col in ("event type", "scenarios", "CLS", "PDMS"):
            events.add_column(col, justify="left" if col == "event type" else "right")
        for name, v in s["by_event_type"].items():
            events.add_row(
                escape(name), str(v["scenarios"]), f"{v['nuplan_cls']:.3f}", f"{v['navsim_pdms']:.3f}"
            )
        out.print(events)
    out.print(
        f"{s['scenarios']} scenarios: {s['ok']} simulated, {s['skipped']} skipped, {s['failed']} failed · "
        f"nuPlan CLS {cls} · NAVSIM PDMS {pdms} · stored {report.artefact}",
        highlight=False,
    )


@fleet_app.command("generate")
@command
def fleet_generate_cmd(
    lake: LakeOpt,
    who: Who,
    region: Annotated[str, typer.Option("--region", help="Where the synthetic scenarios are written.")],
    maps: Annotated[list[Path], typer.Option("--maps", help="Map files or folders (repeatable).")],
    scenarios: Annotated[int, typer.Option("--scenarios", help="How many scenarios.")] = 1000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    start: Annotated[int, typer.Option("--start", help="Index of the first scenario (resume).")] = 0,
    commit_every: Annotated[int, typer.Option("--commit-every", help="Scenarios per lake commit.")] = 500,
    rate: Annotated[
        list[str] | None, typer.Option("--rate", help="EVENT=P, e.g. cut_in=0.3 (repeatable).")
    ] = None,
    engine: Annotated[str, typer.Option("--engine", help="process, inline or ray.")] = "process",
    workers: Annotated[int | None, typer.Option("--workers")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Generate synthetic scenarios (source="synthetic") on real maps, streamed into the lake."""
    from datadrive.errors import ConfigError
    from datadrive.sim.fleet import EVENT_TYPES, FleetConfig, generate_into_lake

    rates = dict(FleetConfig(maps=()).event_rates)
    for spec in rate or []:
        name, sep, val = spec.partition("=")
        if not sep or name not in EVENT_TYPES:
            raise ConfigError(f"--rate {spec!r}: write EVENT=P with EVENT one of {', '.join(EVENT_TYPES)}")
        try:
            p = float(val)
        except ValueError:
            raise ConfigError(f"--rate {spec!r}: {val!r} is not a number") from None
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"--rate {spec!r}: a rate is a probability in [0, 1]")
        rates[name] = p
    if scenarios < 1:
        raise ConfigError("--scenarios must be at least 1")
    cfg = FleetConfig(maps=tuple(str(m) for m in maps), seed=seed, event_rates=rates)
    lk = open_lake(lake, who, region)
    eng = make_engine(engine, workers, preload=("datadrive.sim.fleet",))
    progress = _progress(as_json)
    with progress:
        task = progress.add_task("generating", total=scenarios)
        report = generate_into_lake(
            lk, region, cfg, scenarios, start=start, commit_every=max(1, commit_every), engine=eng,
            progress=lambda done, total: progress.update(task, completed=done),
        )  # fmt: skip
    if as_json:
        sys.stdout.write(json.dumps({**report.__dict__}) + "\n")
        return
    rate_s = report.scenarios / report.seconds if report.seconds > 0 else 0.0
    out.print(
        f"{report.scenarios} synthetic scenarios in {report.commits} commits · "
        f"lake version {report.lake_version} · "
        f"events {report.events} · {report.seconds:.1f} s ({rate_s:.1f} scenarios/s)",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``simulate`` and the ``fleet`` group to the top-level app."""
    app.command("simulate")(simulate_cmd)
    app.add_typer(fleet_app, name="fleet")
