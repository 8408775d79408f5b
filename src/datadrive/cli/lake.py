"""``datadrive ingest``, ``datadrive sql`` and ``datadrive lake ...``: the lake's commands.

Thin over the library: the lake is opened with :func:`datadrive.cli.shell.open_lake`
(``datadrive.toml``, the tenants' keys and who the principal is come from
:mod:`datadrive.lake.settings`), and every command is wrapped with
:func:`~datadrive.cli.shell.command` (one-line errors, exit status 2; the
shared ``--user``/``--tenant``/``--home`` options).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from datadrive.cli.shell import (
    JsonOpt,
    LakeOpt,
    RegionOpt,
    Who,
    command,
    err,
    fail,
    json_value,
    make_engine,
    open_lake,
    out,
    print_rows,
    say,
)
from datadrive.errors import ConfigError

if TYPE_CHECKING:
    from datadrive.lake import IngestReport
    from datadrive.sources import Registry

__all__ = ["lake_app", "register"]

lake_app = typer.Typer(
    name="lake",
    help="Manage a region-pinned lake: init, history, audit, export, erase, optimize.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _registry(spec: str | None) -> Registry:
    from datadrive.sources import DEFAULT_REGISTRY, Registry

    if not spec:
        return DEFAULT_REGISTRY
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        found = getattr(module, attr or "REGISTRY")
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--adapters {spec}: cannot load it ({exc})") from exc
    if not isinstance(found, Registry):
        raise ConfigError(f"--adapters {spec}: not a datadrive.sources.Registry")
    return found


# --------------------------------------------------------------------------- lake init


@lake_app.command("init")
@command
def init_cmd(
    folder: Annotated[Path, typer.Argument(help="Folder for datadrive.toml (and local region roots).")],
    region: Annotated[
        list[str] | None,
        typer.Option(
            "--region", help="NAME=ROOT (a folder relative to FOLDER, s3://..., az://...). Repeatable."
        ),
    ] = None,
    tenant: Annotated[list[str] | None, typer.Option("--tenant", help="Tenant name. Repeatable.")] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="Who you are (default: DATADRIVE_USER or your login).")
    ] = None,
) -> None:
    """Create a lake: datadrive.toml, one key file per tenant, and every table of every region.

    Regions named cn-* publish latitude/longitude in GCJ-02 and may be read
    only from China; other regions read from anywhere in their own region.
    Edit datadrive.toml to change policies, then run init again: it only
    creates what is missing.
    """
    from datadrive.lake.settings import CONFIG_NAME, init_lake

    regions: list[tuple[str, str]] = []
    for spec in region or ():
        name, sep, root = spec.partition("=")
        if not sep or not name or not root:
            raise ConfigError(f"--region {spec!r}: write NAME=ROOT, e.g. cn-north=regions/cn-north")
        regions.append((name, root))
    config, versions, wrote = init_lake(
        folder, env=os.environ, regions=regions or None, tenants=tenant or None, user=user
    )
    if wrote:
        out.print(f"wrote {folder / CONFIG_NAME}", highlight=False, markup=False)
    for name, version in versions.items():
        out.print(
            f"region {name}: {config.region(name).root.uri} ready (lake version {version})",
            highlight=False,
            markup=False,
        )


# --------------------------------------------------------------------------- ingest


@command
def ingest_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders of logs.")],
    lake: LakeOpt,
    region: Annotated[str, typer.Option("--region", help="The region where the logs were recorded.")],
    who: Who,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Reader processes (default: all cores).")
    ] = None,
    engine: Annotated[str, typer.Option("--engine", help="process, inline or ray.")] = "process",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address", help="Ray cluster for --engine ray (default: RAY_ADDRESS, else a local Ray)."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Inputs per commit.")] = 64,
    adapters: Annotated[
        str | None,
        typer.Option("--adapters", help="MODULE:ATTR of a Registry to use instead of the built-in one."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Ingest logs into REGION: auto-detect formats, read in parallel, commit in batches.

    Idempotent (a file already in the lake for this tenant is skipped) and
    resumable (after a crash, run it again). The summary accounts for every
    input; exit status 2 if any failed.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from datadrive.lake import IngestEvent, IngestOptions
    from datadrive.lake.ingest import INGEST_PRELOAD

    lk = open_lake(lake, who, region)
    registry = _registry(adapters)
    eng = make_engine(engine, workers, ray_address, preload=INGEST_PRELOAD)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=as_json or not err.is_terminal,
    )
    tasks: dict[str, Any] = {}

    def on_event(e: IngestEvent) -> None:
        if e.stage not in ("read", "commit"):
            return
        label = "reading"  # a commit reports how far reading got when it landed
        if label not in tasks:
            tasks[label] = progress.add_task(label, total=e.total)
        progress.update(tasks[label], completed=e.done, total=e.total)

    with progress:
        report = lk.ingest(
            paths,
            region,
            registry=registry,
            engine=eng,
            options=IngestOptions(batch_inputs=max(1, batch_size)),
            progress=on_event,
        )
    if as_json:
        sys.stdout.write(json.dumps(json_value(report.to_json())) + "\n")
    else:
        _print_report(report, paths)
    if report.storage_error:
        say("error", report.storage_error)
    if not report.ok or report.storage_error:
        raise typer.Exit(code=2)


def _short(path: str, roots: Sequence[Path]) -> str:
    """``path`` relative to the argument it was found under (tables stay readable)."""
    p = Path(path)
    for root in roots:
        base = root if root.is_dir() else root.parent
        try:
            rel = p.relative_to(base)
        except ValueError:
            continue
        return str(Path(base.name) / rel) if str(rel) != "." else base.name
    return path


def _print_report(report: IngestReport, roots: Sequence[Path]) -> None:
    counts = report.counts()
    shown = (
        [o for o in report.outcomes if o.status != "ingested"]
        if len(report.outcomes) > 40
        else list(report.outcomes)
    )
    if shown:
        table = Table(title=escape(f"ingest into {report.region} (tenant {report.tenant})"))
        for col, justify in (
            ("status", "left"),
            ("input", "left"),
            ("format", "left"),
            ("scenarios", "right"),
            ("telemetry", "right"),
            ("reason", "left"),
        ):
            table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
        style = {"ingested": "green", "duplicate": "cyan", "unsupported": "yellow", "failed": "bold red"}
        for o in shown:
            table.add_row(
                f"[{style[o.status]}]{o.status}[/]",
                escape(_short(o.path, roots)),
                escape(o.adapter or "-"),
                str(o.num_scenarios) if o.status == "ingested" else "-",
                str(o.num_telemetry) if o.status == "ingested" else "-",
                escape(o.reason or ""),
            )
        out.print(table)
    total = len(report.outcomes)
    parts = ", ".join(f"{counts[k]} {k}" for k in ("ingested", "duplicate", "unsupported", "failed"))
    out.print(
        f"{total} inputs: {parts} · {report.num_scenarios} scenarios added · "
        f"lake version {report.lake_version_before} -> {report.lake_version_after} · {report.seconds:.1f} s",
        highlight=False,
        markup=False,
    )


# --------------------------------------------------------------------------- sql


@command
def sql_cmd(
    lake: LakeOpt,
    who: Who,
    query: Annotated[
        str | None,
        typer.Argument(
            help="One SELECT statement ('-' or none with --file: read it from stdin or the file)."
        ),
    ] = None,
    query_file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Read the statement from this file ('-': stdin).")
    ] = None,
    region: RegionOpt = None,
    as_of: Annotated[
        int | None, typer.Option("--as-of", help="Lake version to read (default: latest).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Query the lake with SQL (DuckDB over the Delta tables, read-only).

    Tables: scenarios, tracks, map_features, telemetry, ingests. Views:
    states (one row per valid track state), map_points, signal_samples.
    A statement that starts with '-' (an SQL comment) goes after '--'
    (datadrive sql --lake L -- "-- note ..."), in a file (--file q.sql) or on
    stdin (--file - or the argument '-').
    """
    text = _query_text(query, query_file)
    result = open_lake(lake, who, region).sql(text, region=region, version=as_of)
    print_rows(result.table, as_json=as_json, title=f"{result.region} @ lake version {result.version}")
    if not as_json:
        out.print(f"{result.table.num_rows} rows", highlight=False)


def _query_text(query: str | None, query_file: Path | None) -> str:
    """The statement from the argument, a file or stdin (exactly one of them)."""
    if query is not None and query != "-" and query_file is not None:
        raise ConfigError("give the statement as an argument or with --file, not both")
    if query_file is not None and str(query_file) != "-":
        try:
            return query_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--file {query_file}: cannot be read ({exc})") from exc
    if query is None and query_file is None:
        raise ConfigError("no statement given: pass one as an argument, or with --file (a file or '-')")
    if query is not None and query != "-":
        return query
    return sys.stdin.read()


# --------------------------------------------------------------------------- lake history / audit / check


@lake_app.command("history")
@command
def history_cmd(lake: LakeOpt, who: Who, region: RegionOpt = None, as_json: JsonOpt = False) -> None:
    """Every lake version of a region: what each commit did and which table versions it pins."""
    import pyarrow as pa

    versions = open_lake(lake, who, region).history(region)
    rows = [
        {
            "version": v.version,
            "time": v.time.isoformat(timespec="seconds"),
            "operation": v.operation,
            "batch_id": v.info.get("batch_id"),
            "who": v.info.get("who"),
            "inputs": v.info.get("inputs"),
            "scenarios": v.info.get("scenarios"),
            "telemetry": v.info.get("telemetry"),
            "tables": " ".join(f"{k}={x}" for k, x in sorted(v.table_versions.items())),
        }
        for v in versions
    ]
    print_rows(pa.Table.from_pylist(rows) if rows else pa.table({}), as_json=as_json, title="lake history")


@lake_app.command("audit")
@command
def audit_cmd(
    lake: LakeOpt,
    who: Who,
    region: RegionOpt = None,
    verify: Annotated[bool, typer.Option("--verify", help="Check the hash chain; exit 2 if broken.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="Show the last N rows (0: all).")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Show a region's audit log (who did what, when, at which lake version); --verify checks its chain."""
    lk = open_lake(lake, who, region)
    if verify:
        result = lk.verify_audit(region)
        if as_json:
            print(
                json.dumps(
                    {
                        "ok": result.ok,
                        "rows": result.rows,
                        "head_hash": result.head_hash,
                        "problems": list(result.problems),
                    }
                )
            )
        elif result.ok:
            out.print(f"audit chain intact: {result.rows} rows, head {result.head_hash}", highlight=False)
        else:
            for p in result.problems:
                say("tampered", p)
        if not result.ok:
            raise typer.Exit(code=2)
        return
    table = lk.audit_log(region)
    if limit > 0 and table.num_rows > limit:
        table = table.slice(table.num_rows - limit)
    table = table.drop_columns(["prev_hash"])
    if not as_json:  # the full hash and detail are in --json
        import pyarrow.compute as pc

        table = table.set_column(
            table.schema.get_field_index("row_hash"),
            "row_hash",
            pc.utf8_slice_codeunits(table.column("row_hash"), 0, 12),
        )
    print_rows(table, as_json=as_json, title="audit log", limit=max(limit, 1) if limit else table.num_rows)


@lake_app.command("check")
@command
def check_cmd(
    lake: LakeOpt,
    who: Who,
    region: RegionOpt = None,
    as_of: Annotated[
        int | None, typer.Option("--as-of", help="Lake version to check (default: latest).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check that a region is whole: every table reads, nothing duplicated or half-written. Exit 2 if not."""
    report = open_lake(lake, who, region).check(region, as_of)
    if as_json:
        print(
            json.dumps(
                {
                    "region": report.region,
                    "version": report.version,
                    "ok": report.ok,
                    "problems": list(report.problems),
                    "counts": report.counts,
                    "pending": report.pending,
                }
            )
        )
    elif report.ok:
        rows = ", ".join(f"{k} {v}" for k, v in report.counts.items())
        out.print(
            f"region {report.region} @ lake version {report.version}: whole "
            f"({rows}; {report.pending} batches pending clean-up)",
            highlight=False,
            markup=False,
        )
    else:
        for p in report.problems:
            say("problem", p)
    if not report.ok:
        raise typer.Exit(code=2)


# --------------------------------------------------------------------------- export, derived, erase, optimize


@lake_app.command("export")
@command
def export_cmd(
    obj: Annotated[str, typer.Argument(help="A table (scenarios, tracks, ...) or derived/<kind>/<name>.")],
    lake: LakeOpt,
    region: Annotated[str, typer.Option("--region", help="Where it is.")],
    to: Annotated[str, typer.Option("--to", help="A region, or 'external' (with --dest).")],
    who: Who,
    dest: Annotated[Path | None, typer.Option("--dest", help="Folder for --to external.")] = None,
) -> None:
    """Copy a derived artefact (or, where a policy allows, a raw table) out of a region.

    Raw tables are refused unless the region's policy lists the destination
    in raw_to; every refusal raises ResidencyError and is audited.
    """
    report = open_lake(lake, who, region).export(obj, region=region, to=to, dest_path=dest)
    out.print(
        f"exported {report.object} from {report.region} to {report.to}: {report.destination}",
        highlight=False,
        markup=False,
    )


@lake_app.command("put-derived")
@command
def put_derived_cmd(
    file: Annotated[Path, typer.Argument(help="The artefact (metrics JSON, weights, aggregate table).")],
    lake: LakeOpt,
    region: Annotated[str, typer.Option("--region", help="The region of the data it was derived from.")],
    kind: Annotated[str, typer.Option("--kind", help="aggregate, metrics, model or features.")],
    who: Who,
    name: Annotated[
        str | None, typer.Option("--name", help="Name in the lake (default: the file name).")
    ] = None,
    as_of: Annotated[int | None, typer.Option("--as-of", help="Lake version it was derived from.")] = None,
) -> None:
    """Store a derived artefact in a region, recording the lake version it came from."""
    lk = open_lake(lake, who, region)
    snap = lk.snapshot(region, as_of) if as_of is not None else None
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"{file}: cannot read ({exc.strerror or exc})")
    obj = lk.put_derived(region, kind, file.name if name is None else name, data, derived_from=snap)
    out.print(f"stored {obj} in {region}", highlight=False, markup=False)


@lake_app.command("erase")
@command
def erase_cmd(
    lake: LakeOpt,
    region: Annotated[str, typer.Option("--region", help="The region.")],
    who: Who,
    scenario: Annotated[
        list[str] | None, typer.Option("--scenario", help="Scenario id (as stored). Repeatable.")
    ] = None,
    telemetry: Annotated[
        list[str] | None, typer.Option("--telemetry", help="Telemetry id. Repeatable.")
    ] = None,
    source: Annotated[list[str] | None, typer.Option("--source", help="A whole source. Repeatable.")] = None,
    input_sha256: Annotated[
        list[str] | None, typer.Option("--input", help="Input SHA-256. Repeatable.")
    ] = None,
    before: Annotated[
        str | None, typer.Option("--before", help="Ingested before this date (YYYY-MM-DD).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do it (without this, nothing is erased).")] = False,
) -> None:
    """Erase your tenant's records for good (GDPR, retention): delete, then vacuum old versions.

    Time travel cannot bring erased data back: lake versions that held it
    become unreadable.
    """
    from datadrive.lake import Erasure

    lk = open_lake(lake, who, region)
    erasure = Erasure(
        tenant=lk.principal.tenant,
        scenario_ids=tuple(scenario or ()),
        telemetry_ids=tuple(telemetry or ()),
        sources=tuple(source or ()),
        input_sha256=tuple(input_sha256 or ()),
        ingested_before=before,
    )
    if erasure.is_empty:
        raise ConfigError("say what to erase: --scenario, --telemetry, --source, --input or --before")
    if not yes:
        fail("erasure cannot be undone: add --yes to erase")
    report = lk.erase(region, erasure)
    out.print(
        f"erased {report.scenarios} scenarios, {report.telemetry} telemetry logs, {report.inputs} inputs "
        f"and {report.derived} derived artefacts made from them "
        f"(lake version {report.lake_version}); vacuum removed {report.files_removed} files",
        highlight=False,
    )


@lake_app.command("optimize")
@command
def optimize_cmd(
    lake: LakeOpt,
    region: Annotated[str, typer.Option("--region", help="The region.")],
    who: Who,
    retention_hours: Annotated[
        int, typer.Option("--retention-hours", help="Keep files old versions need for this long.")
    ] = 168,
    cluster: Annotated[
        bool,
        typer.Option(
            "--cluster/--no-cluster",
            help="Order the tables that declare it (mining_states) by place across files; "
            "--no-cluster only compacts them.",
        ),
    ] = True,
    memory_limit: Annotated[
        str,
        typer.Option("--memory-limit", help="Memory for the clustering sort (it spills beyond), e.g. 2GB."),
    ] = "2GB",
    temp_dir: Annotated[
        Path | None,
        typer.Option("--temp-dir", help="Where the clustering sort spills (default: the system's)."),
    ] = None,
    table: Annotated[
        list[str] | None,
        typer.Option("--table", help="Compact or cluster only this table (repeatable; default: every one)."),
    ] = None,
) -> None:
    """Compact small files (cluster mining_states by place) and vacuum files older than the retention."""
    stats = open_lake(lake, who, region).optimize(
        region,
        vacuum_retention_hours=retention_hours,
        cluster=cluster,
        memory_limit=memory_limit,
        temp_dir=None if temp_dir is None else str(temp_dir),
        tables=table or None,
    )
    out.print(json.dumps(json_value(stats)), highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add ``ingest``, ``sql`` and the ``lake`` group."""
    app.command("ingest")(ingest_cmd)
    app.command("sql")(sql_cmd)
    app.add_typer(lake_app, name="lake")
