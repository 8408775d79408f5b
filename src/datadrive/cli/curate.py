"""``datadrive dataset create|show|list|diff|cache``: curated datasets and their feature caches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from datadrive.cli.shell import LakeOpt, Who, command, open_lake
from datadrive.cli.shell import err as shell_err
from datadrive.cli.shell import out as shell_out
from datadrive.errors import ConfigError

__all__ = ["dataset_app", "feature_config", "git_commit", "progress_bar", "register"]

dataset_app = typer.Typer(
    name="dataset",
    help="Curated datasets: create (query -> versioned, split by log), show, list, diff, cache.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_out = shell_out
_err = shell_err

RegionReq = Annotated[
    str, typer.Option("--region", help="The region the dataset is built in (and stays in).")
]


def git_commit() -> str:
    """The git commit of the datadrive source tree, or ``unknown`` (an installed wheel has none)."""
    import datadrive

    src = Path(datadrive.__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def feature_config(preset: str, resample: bool) -> Any:
    """The feature config of a preset (``av2``: 5 s + 6 s; ``womd``: 1.1 s + 8 s; at 10 Hz)."""
    from dataclasses import replace

    from datadrive.curate import AV2_FEATURES, WOMD_FEATURES

    presets = {"av2": AV2_FEATURES, "womd": WOMD_FEATURES}
    if preset not in presets:
        raise ConfigError(f"--features {preset!r}: choose {', '.join(presets)}")
    return replace(presets[preset], resample=resample)


def progress_bar(disable: bool = False) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[extra]}"),
        console=_err,
        disable=disable,
        transient=False,
    )


@dataset_app.command("create")
@command
def create_cmd(
    name: Annotated[str, typer.Argument(help="The dataset's name (a new version if it exists).")],
    lake: LakeOpt,
    region: RegionReq,
    who: Who,
    sql: Annotated[
        str | None,
        typer.Option("--sql", help="SELECT returning scenario_id (and optionally source, tenant)."),
    ] = None,
    query: Annotated[
        str | None,
        typer.Option("--query", help="A mining expression: 'vehicle and braking(hard)' (docs/mining.md)."),
    ] = None,
    describe: Annotated[
        str | None,
        typer.Option("--describe", help="Plain English, translated offline to a mining expression."),
    ] = None,
    events: Annotated[
        list[str] | None,
        typer.Option("--events", help="Event types (repeat or comma-separate); a scenario needs one."),
    ] = None,
    balance_by: Annotated[
        str | None,
        typer.Option("--balance-by", help="event_type: as many scenarios of each event type as the rarest."),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="Fractions: 80/10/10 (train/val/test), 90/10, ...")
    ] = "80/10/10",
    split_by: Annotated[
        str, typer.Option("--split-by", help="The scenarios column that keeps a log in one split.")
    ] = "input_sha256",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split.")] = 0,
    as_of: Annotated[int | None, typer.Option("--as-of", help="Lake version (default: the latest).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Select scenarios with a query, split them by log, store the result as a versioned dataset in the region."""
    from datadrive.curate import DatasetQuery, SplitSpec, create_dataset

    kinds = [k for k, v in (("--sql", sql), ("--query", query), ("--describe", describe)) if v is not None]
    event_types = [e.strip() for item in events or [] for e in item.split(",") if e.strip()]
    if len(kinds) > 1 or (sql is not None and event_types):
        raise ConfigError(
            f"give one of --sql, --query, --describe (with --events or not); got {' and '.join(kinds)}"
        )
    if sql is not None:
        q = DatasetQuery.sql(sql)
    elif query is not None or describe is not None or event_types:
        q = DatasetQuery.mining(expression=query, events=event_types, description=describe)
    else:
        raise ConfigError(
            'say what selects the scenarios: --sql "SELECT ...", --query EXPR, --describe TEXT or --events TYPE'
        )
    lk = open_lake(lake, who, region)
    spec = SplitSpec.parse(split, group_by=split_by, seed=seed)
    m = create_dataset(
        lk,
        name,
        region,
        q,
        split=spec,
        balance_by=balance_by,
        code={"git_commit": git_commit()},
        as_of=as_of,
    )
    _show(m, as_json)


def _summary(m: Any) -> dict[str, Any]:
    from collections import Counter

    return {
        "dataset": f"{m.name}@v{m.version}",
        "region": m.region,
        "tenant": m.tenant,
        "lake_version": m.lake_version,
        "query": m.query.as_json(),
        "split": m.split.as_json(),
        "counts": m.counts(),
        "sources": dict(Counter(m.sources)),
        "groups": len(set(m.groups)),
        "code": dict(m.code),
        "created_by": m.created_by,
        "created_at": m.created_at,
        "ids_sha256": m.ids_digest(),
        "balance": None if m.balance is None else dict(m.balance),
        "object": m.object_name,
    }


def _show(m: Any, as_json: bool) -> None:
    doc = _summary(m)
    if as_json:
        sys.stdout.write(json.dumps(doc) + "\n")
        return
    table = Table(title=f"dataset {m.name}@v{m.version} ({m.region})", show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for k, v in doc.items():
        table.add_row(k, escape(json.dumps(v) if isinstance(v, dict | list) else str(v)))
    _out.print(table)


@dataset_app.command("show")
@command
def show_cmd(
    name: Annotated[str, typer.Argument(help="NAME or NAME@vN.")],
    lake: LakeOpt,
    region: RegionReq,
    who: Who,
    ids: Annotated[bool, typer.Option("--ids", help="Also list every scenario with its split.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show a dataset version: query, lake version, code versions, counts per split and source."""
    from datadrive.curate import load_dataset

    lk = open_lake(lake, who, region)
    m = load_dataset(lk, name, region)
    _show(m, as_json)
    if ids:
        for (t, s, i), sp in zip(m.keys(), m.splits, strict=True):
            sys.stdout.write(f"{sp}\t{t}\t{s}\t{i}\n")


@dataset_app.command("list")
@command
def list_cmd(
    lake: LakeOpt,
    region: RegionReq,
    who: Who,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per dataset.")] = False,
) -> None:
    """The datasets of a region (their latest versions)."""
    from datadrive.curate import list_datasets

    lk = open_lake(lake, who, region)
    found = list_datasets(lk, region)
    if as_json:
        for m in found:
            sys.stdout.write(json.dumps(_summary(m)) + "\n")
        return
    table = Table(title=f"datasets in {region}")
    for col in ("name", "version", "scenarios", "splits", "lake version", "query", "created"):
        table.add_column(col)
    for m in found:
        table.add_row(
            m.name,
            str(m.version),
            str(len(m)),
            " ".join(f"{k}={v}" for k, v in m.counts().items()),
            str(m.lake_version),
            escape(m.query.text[:60]),
            m.created_at[:19],
        )
    _out.print(table)


@dataset_app.command("diff")
@command
def diff_cmd(
    a: Annotated[str, typer.Argument(help="NAME@vN (the older).")],
    b: Annotated[str, typer.Argument(help="NAME@vM (the newer).")],
    lake: LakeOpt,
    region: RegionReq,
    who: Who,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """What changed between two dataset versions: scenarios added, removed, moved between splits; query, lake version."""
    from datadrive.curate import diff_datasets, load_dataset

    lk = open_lake(lake, who, region)
    d = diff_datasets(load_dataset(lk, a, region), load_dataset(lk, b, region))
    doc: dict[str, Any] = {
        "a": f"{d.a.name}@v{d.a.version}",
        "b": f"{d.b.name}@v{d.b.version}",
        "added": ["/".join(k) for k in d.added],
        "removed": ["/".join(k) for k in d.removed],
        "moved": [{"scenario": "/".join(k), "from": f, "to": t} for k, f, t in d.moved],
        "changed": {k: {"a": va, "b": vb} for k, (va, vb) in d.changed.items()},
    }
    if as_json:
        sys.stdout.write(json.dumps(doc) + "\n")
        return
    _out.print(
        f"{doc['a']} -> {doc['b']}: {len(d.added)} added, {len(d.removed)} removed, "
        f"{len(d.moved)} moved between splits"
        + ("" if not d.changed else f"; changed: {', '.join(d.changed)}"),
        highlight=False,
    )
    for k in doc["added"][:50]:
        _out.print(f"  + {escape(k)}", highlight=False)
    for k in doc["removed"][:50]:
        _out.print(f"  - {escape(k)}", highlight=False)
    for mv in doc["moved"][:50]:
        _out.print(f"  ~ {escape(mv['scenario'])}: {mv['from']} -> {mv['to']}", highlight=False)
    for k, v in doc["changed"].items():
        _out.print(f"  {k}: {escape(json.dumps(v['a']))} -> {escape(json.dumps(v['b']))}", highlight=False)


def ensure_cache(
    lk: Any,
    manifest: Any,
    features: Any,
    *,
    workers: int | None,
    engine_name: str,
    shard_size: int | None,
    rebuild: bool = False,
    quiet: bool = False,
    cache_dir: Path | None = None,
) -> Any:
    """Build (or finish) a dataset's feature cache with a progress bar; return the report."""
    from datadrive.compute import InlineEngine, ProcessPoolEngine
    from datadrive.curate import build_cache

    if engine_name == "inline" or workers == 1:
        engine: Any = InlineEngine()
    elif engine_name == "process":
        engine = ProcessPoolEngine(workers, preload=("datadrive.curate.cache",), window_per_worker=1)
    elif engine_name == "ray":
        from datadrive.compute import RayEngine

        engine = RayEngine(None)
    else:
        raise ConfigError(f"--cache-engine {engine_name!r}: choose process, inline or ray")
    with progress_bar(disable=quiet) as bar:
        task = bar.add_task("feature cache", total=None, extra="")

        def on_shard(p: Any) -> None:
            bar.update(task, completed=p.done, total=p.total, extra=f"{p.failed} failed" if p.failed else "")

        report = build_cache(
            lk, manifest, features, directory=cache_dir, engine=engine, shard_size=shard_size, rebuild=rebuild,
            progress=on_shard,
        )  # fmt: skip
    if report.failed:
        raise ConfigError(
            f"{len(report.failed)} cache shards failed (first: {report.failed[0]}); run the command again to retry them"
        )
    return report


@dataset_app.command("cache")
@command
def cache_cmd(
    name: Annotated[str, typer.Argument(help="NAME or NAME@vN.")],
    lake: LakeOpt,
    region: RegionReq,
    who: Who,
    features: Annotated[
        str, typer.Option("--features", help="Horizons: av2 (5 s + 6 s) or womd (1.1 s + 8 s).")
    ] = "av2",
    resample: Annotated[
        bool, typer.Option("--resample", help="Resample sources at another rate (explicitly).")
    ] = False,
    workers: Annotated[int | None, typer.Option("--workers", help="Processes (default: all cores).")] = None,
    engine: Annotated[str, typer.Option("--engine", help="process, inline or ray.")] = "process",
    shard_size: Annotated[
        int | None,
        typer.Option(
            "--shard-size",
            help="Scenarios per shard (default: the existing cache's, else at most 256 and one shard per worker at least).",
        ),
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Rebuild groups of another featuriser version.")
    ] = False,
) -> None:
    """Build (or finish after a crash) the feature cache of a dataset version, beside it in its region."""
    from datadrive.curate import load_dataset

    lk = open_lake(lake, who, region)
    m = load_dataset(lk, name, region)
    r = ensure_cache(
        lk, m, feature_config(features, resample), workers=workers, engine_name=engine, shard_size=shard_size,
        rebuild=rebuild,
    )  # fmt: skip
    _out.print(
        f"{r.samples} samples in {r.shards} shards ({r.built} built, {r.reused} reused), "
        f"{r.bytes / 1e6:.1f} MB, {len(r.skipped)} scenarios gave no sample, {r.resampled} resampled, "
        f"{r.seconds:.1f} s: {r.path}",
        highlight=False,
    )
    reasons: dict[str, int] = {}
    for s in r.skipped:
        reasons[s.reason] = reasons.get(s.reason, 0) + 1
    for reason, n in sorted(reasons.items(), key=lambda x: -x[1])[:8]:
        _out.print(f"  skipped {n}: {escape(reason)}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``dataset`` group to the top-level app."""
    app.add_typer(dataset_app, name="dataset")
