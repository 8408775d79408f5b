"""``datadrive mine`` and ``datadrive events``: search the lake, summarise tagged events.

Thin over :mod:`datadrive.mining`. Configuration (the lake, who you are,
the translator endpoint) is read here, at the edge.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from datadrive.cli.shell import Who, command, err, make_engine, open_lake, out, say
from datadrive.errors import ConfigError

if TYPE_CHECKING:
    from datadrive.mining.api import MiningRun
    from datadrive.mining.describe import Translation

__all__ = ["register"]

_out = out
_err = err


def _translate(description: str, endpoint: str | None, model: str | None, key_env: str | None) -> Translation:
    from datadrive.mining.describe import describe

    if endpoint is None:
        return describe(description)
    from datadrive.mining.llm import EndpointConfig, translate_remote

    if not model:
        raise ConfigError("--endpoint needs --model (the model name the server expects)")
    key = os.environ.get(key_env) if key_env else None
    if key_env and not key:
        raise ConfigError(f"--api-key-env {key_env}: the variable is not set")
    return translate_remote(description, EndpointConfig(url=endpoint, model=model, api_key=key))


def _mine_inputs(paths: list[Path], query: Any, description: str | None) -> MiningRun:
    from datadrive.core.scenario import Scenario
    from datadrive.errors import InputError
    from datadrive.mining.api import MiningRun
    from datadrive.mining.context import ScenarioContext
    from datadrive.mining.engine import evaluate
    from datadrive.mining.results import ResultSet, hits_of
    from datadrive.sources import DEFAULT_REGISTRY

    hits = []
    scenarios = {}
    selections = {}
    no_map = []
    n = 0
    scan = DEFAULT_REGISTRY.scan(list(paths))
    if scan.errors:
        raise scan.errors[0]
    if True:
        for _unit, item in DEFAULT_REGISTRY.read(scan.units):
            if isinstance(item, InputError):
                say("skipped", str(item), style="yellow")
                continue
            if not isinstance(item, Scenario):
                continue
            n += 1
            ctx = ScenarioContext(item)
            sel = evaluate(query, ctx)
            found = hits_of(item, sel)
            hits.extend(found)
            if ctx.cache.get("no_map"):
                no_map.append(item.scenario_id)
            if found or item.source == "av2_sensor":  # RefAV output needs every log, hits or not
                key = (item.metadata.tenant, item.source, item.scenario_id)
                scenarios[key] = item
                selections[key] = sel
    result = ResultSet(query.text, tuple(hits), n, tuple(no_map), description=description)
    return MiningRun(result, scenarios, selections)


def _seconds(h: Any, t0: dict[str, int]) -> str:
    base = t0.get(h.scenario_id, h.intervals_ns[0][0])
    return ", ".join(f"{(s - base) / 1e9:.1f}-{(e - base) / 1e9:.1f}s" for s, e in h.intervals_ns)


@command
def mine_cmd(
    *,
    who: Who,
    expression: Annotated[
        str | None, typer.Argument(help='A query expression, e.g. "car and stopped" (or use --describe).')
    ] = None,
    describe_text: Annotated[
        str | None, typer.Option("--describe", help="A plain-English description to translate and run.")
    ] = None,
    lake: Annotated[
        Path | None, typer.Option("--lake", help="The lake: a folder with datadrive.toml, or the file.")
    ] = None,
    region: Annotated[
        str | None, typer.Option("--region", help="Region (default: your home region).")
    ] = None,
    as_of: Annotated[
        int | None, typer.Option("--as-of", help="Lake version to read (default: latest).")
    ] = None,
    inputs: Annotated[
        list[Path] | None, typer.Option("--input", help="Mine log files/folders directly instead of a lake.")
    ] = None,
    source: Annotated[list[str] | None, typer.Option("--source", help="Only these sources.")] = None,
    scenario_id: Annotated[list[str] | None, typer.Option("--id", help="Only these scenario ids.")] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm a scan of a large lake with no filter.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per hit per line.")] = False,
    refav_out: Annotated[
        Path | None,
        typer.Option("--refav-out", help="Write a RefAV (AV2 scenario mining) submission pickle."),
    ] = None,
    render: Annotated[
        Path | None, typer.Option("--render", help="Write a bird's-eye PNG per hit here.")
    ] = None,
    animate: Annotated[bool, typer.Option("--animate", help="With --render: animated GIFs.")] = False,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="OpenAI-compatible base URL for --describe (optional).")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model name for --endpoint.")] = None,
    api_key_env: Annotated[
        str | None, typer.Option("--api-key-env", help="Environment variable holding the endpoint's key.")
    ] = None,
    save: Annotated[
        str | None, typer.Option("--save", help="Store the result set in the region under this name.")
    ] = None,
) -> None:
    """Find the tracks and moments an expression (or a description) selects.

    Prints the expression it runs, then one row per hit: scenario, track,
    time intervals, related tracks. See docs/mining.md for the language.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from datadrive.mining.vocabulary import compile_query

    if True:  # errors are one line, exit 2 (the shared handler of @command)
        if (expression is None) == (describe_text is None):
            raise ConfigError("give an expression or --describe TEXT (one of them)")
        description = describe_text
        if describe_text is not None:
            tr = _translate(describe_text, endpoint, model, api_key_env)
            say("expression", f"({tr.translator}) {tr.text}", style="bold", console=_err)
            query = compile_query(tr.expression)
        else:
            assert expression is not None
            query = compile_query(expression)
        if (lake is None) == (not inputs):
            raise ConfigError("say where to search: --lake LAKE (with --region) or --input PATH")
        if inputs:
            run = _mine_inputs(list(inputs), query, description)
        else:
            from datadrive.mining.api import mine_snapshot

            assert lake is not None
            lk = open_lake(lake, who, region)
            snap = lk.snapshot(region, as_of)
            if save and as_of is not None:
                raise ConfigError("--save stores results of the latest lake version: drop --as-of")
            bar = Progress(
                TextColumn("mining"), BarColumn(), MofNCompleteColumn(), console=_err, transient=True
            )
            with bar:
                task = bar.add_task("mining", total=None)
                run = mine_snapshot(
                    snap,
                    query,
                    sources=source,
                    ids=scenario_id,
                    description=description,
                    allow_full_scan=yes,
                    keep="all" if refav_out else bool(render),
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
            if save:
                from datadrive.mining.store import save_result_set

                name, version, lake_version = save_result_set(lk, snap, run.result, save)
                say("saved", f"{name} v{version} (lake version {lake_version})", style="bold", console=_err)
        result = run.result
        if refav_out is not None:
            from datadrive.mining.refav import write_refav

            prompt = description or result.expression
            entries = [
                (run.scenarios[k], run.selections[k], prompt)
                for k in run.scenarios
                if run.scenarios[k].source == "av2_sensor"
            ]
            if not entries:
                raise ConfigError("--refav-out: no AV2 sensor / scenario-mining log was searched")
            write_refav(refav_out, entries)
            _err.print(f"RefAV predictions for {len(entries)} log(s): {refav_out}", highlight=False)
        if render is not None:
            from datadrive.mining.render import render_hits

            files = render_hits(
                result.hits,
                run.scenarios,
                render,
                title=result.expression,
                animate=animate,
                selections=run.selections,
            )
            _err.print(f"{len(files)} render(s) in {render}", highlight=False)
    if result.scenarios_without_map:
        _err.print(
            f"[yellow]note:[/] {len(result.scenarios_without_map)} scenario(s) have no map: "
            "map predicates were false there",
            highlight=False,
        )
    if as_json:
        for row in result.to_json():
            sys.stdout.write(json.dumps(row) + "\n")
        return
    t0 = {s.scenario_id: int(s.timestamps_ns[0]) for s in run.scenarios.values()}
    table = Table(
        title=f"{result.expression}  ({len(result.scenario_ids())} of {result.scenarios_searched} scenarios)"
    )
    for col in ("source", "scenario", "track", "intervals", "related"):
        table.add_column(col, overflow="fold")
    for h in result.hits[:500]:
        table.add_row(
            h.source,
            h.scenario_id,
            h.track_id + (" (ego)" if h.is_ego else ""),
            _seconds(h, t0) if t0 else ", ".join(f"{s}-{e}" for s, e in h.intervals_ns),
            str(len(h.related_track_ids)) if h.related_track_ids else "",
        )
    _out.print(table)
    if len(result.hits) > 500:
        _out.print(f"... {len(result.hits) - 500} more hits (use --json for all)")


@command
def index_cmd(
    *,
    who: Who,
    lake: Annotated[
        Path, typer.Option("--lake", help="The lake: a folder with datadrive.toml, or the file.")
    ],
    region: Annotated[
        str | None, typer.Option("--region", help="Region (default: your home region).")
    ] = None,
    engine: Annotated[str, typer.Option("--engine", help="process, inline or ray.")] = "process",
    workers: Annotated[
        int | None, typer.Option("--workers", help="Worker processes (default: all cores).")
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address", help="Ray cluster for --engine ray (default: RAY_ADDRESS, else a local Ray)."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Scenarios per engine unit.")] = 32,
    commit_scenarios: Annotated[
        int, typer.Option("--commit-scenarios", help="Scenarios per lake version (units gathered).")
    ] = 512,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Bring the mining tables (per-state index, events) up to date with the latest lake version.

    Incremental: only scenarios not yet indexed with the current feature
    version, or not yet tagged by the current tagger version, are processed.
    Every --commit-scenarios scenarios are one lake version; `datadrive lake
    optimize` then orders mining_states by place across its files.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from datadrive.mining.index import index_region

    lk = open_lake(lake, who, region)
    name = region or lk.snapshot(region).region
    bar = Progress(
        TextColumn("indexing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err,
        transient=True,
    )
    with bar:
        task = bar.add_task("index", total=None)
        report = index_region(
            lk,
            name,
            engine=make_engine(engine, workers, ray_address),
            batch_size=batch_size,
            commit_scenarios=commit_scenarios,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if as_json:
        from dataclasses import asdict

        row = asdict(report)
        row["failures"] = [str(f) for f in report.failures]
        sys.stdout.write(json.dumps(row) + "\n")
    else:
        _out.print(
            f"region {report.region}: {report.scenarios} scenarios; indexed {report.indexed} "
            f"({report.states:,} states), tagged {report.tagged} ({report.events:,} events); "
            f"lake version {report.lake_version_before} -> {report.lake_version_after} "
            f"in {report.seconds:.1f} s",
            highlight=False,
        )
        for tagger, n in sorted(report.skipped_taggers.items()):
            say(
                "skipped",
                f"{tagger} on {n} scenario(s) (see docs/mining.md: what each tagger needs)",
                style="yellow",
                console=_err,
            )
    for f in report.failures:
        say("failed", str(f), console=_err)
    if report.failures:
        raise typer.Exit(code=2)


@command
def events_cmd(
    *,
    who: Who,
    lake: Annotated[
        Path, typer.Option("--lake", help="The lake: a folder with datadrive.toml, or the file.")
    ],
    region: Annotated[
        str | None, typer.Option("--region", help="Region (default: your home region).")
    ] = None,
    as_of: Annotated[
        int | None, typer.Option("--as-of", help="Lake version to read (default: latest).")
    ] = None,
    by: Annotated[
        str, typer.Option("--by", help="Group by: type, source, tenant, or a comma list (default all three).")
    ] = "type,source,tenant",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per row.")] = False,
) -> None:
    """Summarise tagged events: counts by type, source and tenant (current tagger version)."""
    from datadrive.cli.shell import print_rows
    from datadrive.mining.events import tagger_version

    columns = {"type": "event_type", "source": "source", "tenant": "tenant"}
    keys = [k.strip() for k in by.split(",") if k.strip()]
    bad = [k for k in keys if k not in columns]
    if bad or not keys:
        raise ConfigError(f"--by {by}: choose among {', '.join(columns)}")
    cols = ", ".join(columns[k] for k in keys)
    version = tagger_version()
    lk = open_lake(lake, who, region)
    result = lk.sql(
        f"SELECT {cols}, count(*) AS events, count(DISTINCT scenario_id) AS scenarios, "
        "sum(CASE WHEN ego_involved THEN 1 ELSE 0 END) AS with_ego, round(avg(severity), 3) AS mean_severity "
        f"FROM events WHERE tagger_version = '{version}' GROUP BY {cols} ORDER BY events DESC, {cols}",
        region,
        as_of,
    )
    tagged = (
        lk.sql(
            f"SELECT count(DISTINCT scenario_id) AS n FROM mining_index WHERE tagger_version = '{version}'",
            region,
            as_of,
        )
        .table.column("n")[0]
        .as_py()
    )
    print_rows(
        result.table,
        as_json=as_json,
        title=f"events of region {result.region} @ lake version {result.version} "
        f"({tagged} scenarios tagged, tagger {version})",
    )
    if not as_json and not tagged:
        say("note", "no scenario is tagged yet: run `datadrive index` first", style="yellow", console=_err)


def register(app: typer.Typer) -> None:
    """Add ``mine``, ``index`` and ``events`` to the top-level app."""
    app.command("mine")(mine_cmd)
    app.command("index")(index_cmd)
    app.command("events")(events_cmd)
