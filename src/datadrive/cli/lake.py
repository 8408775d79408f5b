"""``datadrive ingest``, ``datadrive sql`` and ``datadrive lake ...``: the lake's commands.

This is the edge where configuration is read: ``datadrive.toml`` (found via
``--lake``, a folder or the file), the tenants' key files, and the few
environment variables that say who and where the user is
(``DATADRIVE_USER``, ``DATADRIVE_TENANT``, ``DATADRIVE_HOME_REGION``). The
library below only ever sees frozen dataclasses.
"""

from __future__ import annotations

import getpass
import importlib
import json
import math
import os
import secrets
import tomllib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from datadrive.errors import ConfigError, DatadriveError

if TYPE_CHECKING:
    import pyarrow as pa

    from datadrive.lake import IngestReport, Lake, LakeConfig, Principal
    from datadrive.sources import Registry

__all__ = ["CONFIG_NAME", "lake_app", "load_lake_config", "principal_from", "register"]

CONFIG_NAME = "datadrive.toml"
INGEST_PRELOAD = ("datadrive.lake.ingest",)
"""What the process pool's fork server imports before forking ingest workers."""

lake_app = typer.Typer(
    name="lake",
    help="Manage a region-pinned lake: init, history, audit, export, erase, optimize.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_out = Console()
_err = Console(stderr=True)


def _fail(message: str) -> None:
    _err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


# --------------------------------------------------------------------------- configuration (the edge)


def config_path(lake: Path) -> Path:
    """``lake`` itself if it is a file, else ``lake/datadrive.toml``."""
    return lake if lake.is_file() or lake.suffix == ".toml" else lake / CONFIG_NAME


def read_key(path: Path) -> bytes:
    """A tenant key file: hex text (as ``lake init`` writes it) or raw bytes."""
    raw = path.read_bytes()
    text = raw.strip()
    try:
        return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return raw


def load_lake_config(lake: Path) -> LakeConfig:
    """Read ``datadrive.toml`` and the tenants' key files into a :class:`LakeConfig`.

    Raises:
        ConfigError: if the file is missing or wrong.
    """
    from datadrive.lake import LakeConfig

    path = config_path(lake)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no lake config here (create one with `datadrive lake init {lake}`)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the lake config ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    keys: dict[str, bytes] = {}
    tenants = doc.get("tenants", {})
    if not isinstance(tenants, dict):
        raise ConfigError(f"{path}: [tenants] must be a table")
    for name, tdoc in tenants.items():
        if not isinstance(tdoc, dict):
            raise ConfigError(f"{path}: [tenants.{name}] must be a table")
        if "key_env" in tdoc:
            value = os.environ.get(str(tdoc["key_env"]), "")
            if not value:
                raise ConfigError(f"tenant {name}: environment variable {tdoc['key_env']} is not set")
            keys[name] = (
                bytes.fromhex(value) if all(c in "0123456789abcdefABCDEF" for c in value) else value.encode()
            )
        elif "key_file" in tdoc:
            key_path = (path.parent / str(tdoc["key_file"])).resolve()
            try:
                keys[name] = read_key(key_path)
            except OSError as exc:
                raise ConfigError(
                    f"tenant {name}: cannot read key file {key_path} ({exc.strerror or exc})"
                ) from exc
        else:
            raise ConfigError(f"[tenants.{name}] needs key_file (or key_env) for its pseudonymisation key")
    return LakeConfig.from_mapping(doc, base_dir=path.parent, keys=keys)


def principal_from(
    config: LakeConfig, *, user: str | None, tenant: str | None, home: str | None, region: str | None
) -> Principal:
    """Who is running this command, and from where.

    The home region comes from ``--home``, ``DATADRIVE_HOME_REGION``, the
    config's ``[deployment] home_region``, or else the region the command
    targets (a machine without a configured home is taken to be in the region
    it works on).
    """
    from datadrive.lake import Principal

    name = user or os.environ.get("DATADRIVE_USER") or _login()
    t = tenant or os.environ.get("DATADRIVE_TENANT")
    if not t:
        if len(config.tenants) != 1:
            known = ", ".join(sorted(config.tenants)) or "none"
            raise ConfigError(f"say which tenant you act for: --tenant (configured: {known})")
        t = next(iter(config.tenants))
    h = home or os.environ.get("DATADRIVE_HOME_REGION") or config.home_region or region
    if not h:
        if len(config.regions) != 1:
            raise ConfigError("say where you are: --home REGION (or [deployment] home_region in the config)")
        h = next(iter(config.regions))
    return Principal(name=name, tenant=t, home_region=h)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def _open(lake: Path, *, user: str | None, tenant: str | None, home: str | None, region: str | None) -> Lake:
    from datadrive.lake import Lake

    config = load_lake_config(lake)
    return Lake(config, principal_from(config, user=user, tenant=tenant, home=home, region=region))


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


# --------------------------------------------------------------------------- shared options

LakeOpt = Annotated[Path, typer.Option("--lake", help="The lake: a folder with datadrive.toml, or the file.")]
RegionOpt = Annotated[str | None, typer.Option("--region", help="Region (default: your home region).")]
UserOpt = Annotated[
    str | None, typer.Option("--user", help="Who you are (default: DATADRIVE_USER or login).")
]
TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", help="Tenant you act for (default: DATADRIVE_TENANT, or the only one)."),
]
HomeOpt = Annotated[
    str | None,
    typer.Option(
        "--home", help="Region you are in (default: DATADRIVE_HOME_REGION, [deployment], or --region)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _print_rows(table: pa.Table, *, as_json: bool, title: str, limit: int = 1000) -> None:
    import sys

    if as_json:
        for row in table.to_pylist():
            sys.stdout.write(json.dumps(_json_value(row), default=str) + "\n")
        return
    out = Table(title=title, show_lines=False)
    for name in table.column_names:
        out.add_column(name, overflow="fold")
    for row in table.slice(0, limit).to_pylist():
        out.add_row(*[escape(_cell(v)) for v in row.values()])
    _out.print(out)
    if table.num_rows > limit:
        _out.print(f"... {table.num_rows - limit} more rows (use --json for all)")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.3f}"
    if isinstance(value, list) and len(value) > 6:
        return "[" + ", ".join(_cell(v) for v in value[:6]) + f", ... {len(value)} items]"
    text = str(value)
    return text if len(text) <= 100 else text[:97] + "..."


# --------------------------------------------------------------------------- lake init


def _default_regions() -> list[str]:
    return ["cn-north=regions/cn-north", "eu-central=regions/eu-central"]


@lake_app.command("init")
def init_cmd(
    folder: Annotated[Path, typer.Argument(help="Folder for datadrive.toml (and local region roots).")],
    region: Annotated[
        list[str] | None,
        typer.Option("--region", help="NAME=ROOT (a folder, relative to FOLDER, or s3://...). Repeatable."),
    ] = None,
    tenant: Annotated[list[str] | None, typer.Option("--tenant", help="Tenant name. Repeatable.")] = None,
    user: UserOpt = None,
) -> None:
    """Create a lake: datadrive.toml, one key file per tenant, and every table of every region.

    Regions named cn-* publish latitude/longitude in GCJ-02 and may be read
    only from China; other regions read from anywhere in their own region.
    Edit datadrive.toml to change policies, then run init again: it only
    creates what is missing.
    """
    try:
        path = folder / CONFIG_NAME
        if not path.exists():
            _write_config(folder, region or _default_regions(), tenant or ["default"])
            _out.print(f"wrote {path}")
        config = load_lake_config(folder)
        from datadrive.lake import Lake, Principal

        if not config.tenants:
            raise ConfigError(f"{config_path(folder)} has no [tenants.<name>]: add one (with its key_file)")
        who = user or os.environ.get("DATADRIVE_USER") or _login()
        for name in config.regions:
            lake = Lake(config, Principal(who, next(iter(config.tenants)), name))
            version = lake.init([name])[name]
            _out.print(f"region {name}: {config.region(name).root.uri} ready (lake version {version})")
    except DatadriveError as exc:
        _fail(str(exc))


def _write_config(folder: Path, regions: Sequence[str], tenants: Sequence[str]) -> None:
    parsed: list[tuple[str, str]] = []
    for spec in regions:
        name, sep, root = spec.partition("=")
        if not sep or not name or not root:
            raise ConfigError(f"--region {spec!r}: write NAME=ROOT, e.g. cn-north=regions/cn-north")
        parsed.append((name, root))
    names = [n for n, _ in parsed]
    derived_china, derived_other = ["aggregate", "metrics"], ["aggregate", "metrics", "model", "features"]
    lines = [
        "# datadrive lake configuration (see docs/lake.md).",
        "",
        "[lake]",
        f'name = "{folder.resolve().name}"',
        "",
        "# [deployment]",
        '# home_region = "eu-central"   # where this machine is; principals default to it',
        "",
    ]
    for name, root in parsed:
        china = name.startswith("cn-")
        others = [n for n in names if n != name]
        lines += [
            f"[regions.{name}]",
            f'root = "{root}"',
            f'publish_crs = "{"gcj02" if china else "wgs84"}"',
            "raw_readers = []   # other home regions whose principals may read raw rows",
            "",
            f"[regions.{name}.export]",
            f"derived = {json.dumps(derived_china if china else derived_other)}",
            f"to = {json.dumps(others)}",
            "raw_to = []   # raw tables never leave unless listed here",
            "",
        ]
    keys = folder / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    for t in tenants:
        key_file = keys / f"{t}.key"
        if not key_file.exists():
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
        lines += [
            f"[tenants.{t}]",
            f'key_file = "keys/{t}.key"   # HMAC key for pseudonyms: keep it secret',
            "",
        ]
    lines += ["# [[grants]]", '# owner = "bmw"', '# grantee = "tencent"', '# regions = ["cn-north"]', ""]
    (folder / CONFIG_NAME).write_text("\n".join(lines), encoding="utf-8")
    (keys / ".gitignore").write_text("*\n")


# --------------------------------------------------------------------------- ingest


def ingest_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders of logs.")],
    lake: LakeOpt,
    region: Annotated[str, typer.Option("--region", help="The region where the logs were recorded.")],
    tenant: Annotated[str | None, typer.Option("--tenant", help="The tenant that owns them.")] = None,
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
    batch_size: Annotated[int, typer.Option("--batch-size", help="Inputs per commit.")] = 32,
    adapters: Annotated[
        str | None,
        typer.Option("--adapters", help="MODULE:ATTR of a Registry to use instead of the built-in one."),
    ] = None,
    user: UserOpt = None,
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Ingest logs into REGION: auto-detect formats, read in parallel, commit in batches.

    Idempotent (a file already in the lake for this tenant is skipped) and
    resumable (after a crash, run it again). The summary accounts for every
    input; exit status 2 if any failed.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from datadrive.lake import IngestEvent, IngestOptions

    try:
        lk = _open(lake, user=user, tenant=tenant, home=home, region=region)
        registry = _registry(adapters)
        eng = _engine(engine, workers, ray_address)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_err,
            transient=True,
            disable=as_json or not _err.is_terminal,
        )
        tasks: dict[str, Any] = {}

        def on_event(e: IngestEvent) -> None:
            label = {"hash": "hashing", "read": "reading", "commit": "committing"}.get(e.stage)
            if label is None:
                return
            if e.stage == "commit":
                label, e = "reading", IngestEvent("read", e.done, e.total, e.message)
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
    except DatadriveError as exc:
        _fail(str(exc))
        return
    if as_json:
        import sys

        sys.stdout.write(json.dumps(_json_value(report.to_json())) + "\n")
    else:
        _print_report(report, paths)
    if report.storage_error:
        _err.print(f"[bold red]error:[/] {escape(report.storage_error)}", highlight=False, soft_wrap=True)
    if not report.ok or report.storage_error:
        raise typer.Exit(code=2)


def _engine(name: str, workers: int | None, ray_address: str | None = None) -> Any:
    from datadrive.compute import InlineEngine, ProcessPoolEngine

    if name == "process":
        return InlineEngine() if workers == 1 else ProcessPoolEngine(workers, preload=INGEST_PRELOAD)
    if name == "inline":
        return InlineEngine()
    if name == "ray":
        try:
            ray_engine = importlib.import_module("datadrive.compute.ray_engine")
        except ImportError as exc:
            raise ConfigError(f"--engine ray is not available here ({exc})") from exc
        return ray_engine.RayEngine(ray_address or os.environ.get("RAY_ADDRESS") or None)
    raise ConfigError(f"--engine {name!r}: choose process, inline or ray")


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
        table = Table(title=f"ingest into {report.region} (tenant {report.tenant})")
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
        _out.print(table)
    total = len(report.outcomes)
    parts = ", ".join(f"{counts[k]} {k}" for k in ("ingested", "duplicate", "unsupported", "failed"))
    _out.print(
        f"{total} inputs: {parts} · {report.num_scenarios} scenarios added · "
        f"lake version {report.lake_version_before} -> {report.lake_version_after} · {report.seconds:.1f} s",
        highlight=False,
    )


# --------------------------------------------------------------------------- sql


def sql_cmd(
    query: Annotated[str, typer.Argument(help="One SELECT statement.")],
    lake: LakeOpt,
    region: RegionOpt = None,
    as_of: Annotated[
        int | None, typer.Option("--as-of", help="Lake version to read (default: latest).")
    ] = None,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
    user: UserOpt = None,
    home: HomeOpt = None,
) -> None:
    """Query the lake with SQL (DuckDB over the Delta tables, read-only).

    Tables: scenarios, tracks, map_features, telemetry, ingests. Views:
    states (one row per valid track state), map_points, signal_samples.
    """
    try:
        lk = _open(lake, user=user, tenant=tenant, home=home, region=region)
        result = lk.sql(query, region=region, version=as_of)
    except DatadriveError as exc:
        _fail(str(exc))
        return
    _print_rows(result.table, as_json=as_json, title=f"{result.region} @ lake version {result.version}")
    if not as_json:
        _out.print(f"{result.table.num_rows} rows", highlight=False)


# --------------------------------------------------------------------------- lake history / audit


@lake_app.command("history")
def history_cmd(
    lake: LakeOpt,
    region: RegionOpt = None,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
    user: UserOpt = None,
    home: HomeOpt = None,
) -> None:
    """Every lake version of a region: what each commit did and which table versions it pins."""
    import pyarrow as pa

    try:
        lk = _open(lake, user=user, tenant=tenant, home=home, region=region)
        versions = lk.history(region)
    except DatadriveError as exc:
        _fail(str(exc))
        return
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
    _print_rows(pa.Table.from_pylist(rows) if rows else pa.table({}), as_json=as_json, title="lake history")


@lake_app.command("audit")
def audit_cmd(
    lake: LakeOpt,
    region: RegionOpt = None,
    verify: Annotated[bool, typer.Option("--verify", help="Check the hash chain; exit 2 if broken.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="Show the last N rows (0: all).")] = 50,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
    user: UserOpt = None,
    home: HomeOpt = None,
) -> None:
    """Show a region's audit log (who did what, when, at which lake version); --verify checks its chain."""
    try:
        lk = _open(lake, user=user, tenant=tenant, home=home, region=region)
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
                _out.print(
                    f"audit chain intact: {result.rows} rows, head {result.head_hash}", highlight=False
                )
            else:
                for p in result.problems:
                    _err.print(f"[bold red]tampered:[/] {escape(p)}", highlight=False)
            if not result.ok:
                raise typer.Exit(code=2)
            return
        table = lk.audit_log(region)
    except DatadriveError as exc:
        _fail(str(exc))
        return
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
    _print_rows(table, as_json=as_json, title="audit log", limit=max(limit, 1) if limit else table.num_rows)


@lake_app.command("check")
def check_cmd(
    lake: LakeOpt,
    region: RegionOpt = None,
    as_of: Annotated[
        int | None, typer.Option("--as-of", help="Lake version to check (default: latest).")
    ] = None,
    as_json: JsonOpt = False,
    tenant: TenantOpt = None,
    user: UserOpt = None,
    home: HomeOpt = None,
) -> None:
    """Check that a region is whole: every table reads, nothing duplicated or half-written. Exit 2 if not."""
    try:
        lk = _open(lake, user=user, tenant=tenant, home=home, region=region)
        report = lk.check(region, as_of)
    except DatadriveError as exc:
        _fail(str(exc))
        return
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
        _out.print(
            f"region {report.region} @ lake version {report.version}: whole "
            f"({rows}; {report.pending} batches pending clean-up)",
            highlight=False,
        )
    else:
        for p in report.problems:
            _err.print(f"[bold red]problem:[/] {escape(p)}", highlight=False)
    if not report.ok:
        raise typer.Exit(code=2)


# --------------------------------------------------------------------------- export, derived, erase, optimize


@lake_app.command("export")
def export_cmd(
    obj: Annotated[str, typer.Argument(help="A table (scenarios, tracks, ...) or derived/<kind>/<name>.")],
    lake: LakeOpt,
    region: Annotated[str, typer.Option("--region", help="Where it is.")],
    to: Annotated[str, typer.Option("--to", help="A region, or 'external' (with --dest).")],
    dest: Annotated[Path | None, typer.Option("--dest", help="Folder for --to external.")] = None,
    tenant: TenantOpt = None,
    user: UserOpt = None,
    home: HomeOpt = None,
) -> None:
    """Copy a derived artefact (or, where a policy allows, a raw table) out of a region.

    Raw tables are refused unless the region's policy lists the destination
    in raw_to; every refusal raises ResidencyError and is audited.
    """
    try:
        lk = _open(lake, user=user, tenant=tenant, home=home, region=region)
        report = lk.export(obj, region=region, to=to, dest_path=dest)
    except DatadriveError as exc:
        _fail(str(exc))
        return
    _out.print(
        f"exported {report.object} from {report.region} to {report.to}: {report.destination}", highlight=False
    )


@lake_app.command("put-derived")
def put_derived_cmd(
    file: Annotated[Path, typer.Argument(help="The artefact (metrics JSON, weights, aggregate table).")],
    lake: LakeOpt,
    region: Annotated[str, typer.Option("--region", help="The region of the data it was derived from.")],
    kind: Annotated[str, typer.Option("--kind", help="aggregate, metrics, model or features.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Name in the lake (default: the file name).")
    ] = None,
    as_of: Annotated[int | None, typer.Option("--as-of", help="Lake version it was derived from.")] = None,
    tenant: TenantOpt = None,
    user: UserOpt = None,
    home: HomeOpt = None,
) -> None:
    """Store a derived artefact in a region, recording the lake version it came from."""
    try:
        lk = _open(lake, user=user, tenant=tenant, home=home, region=region)
        snap = lk.snapshot(region, as_of) if as_of is not None else None
        data = file.read_bytes()
        obj = lk.put_derived(region, kind, name or file.name, data, derived_from=snap)
    except OSError as exc:
        _fail(f"{file}: cannot read ({exc.strerror or exc})")
        return
    except DatadriveError as exc:
        _fail(str(exc))
        return
    _out.print(f"stored {obj} in {region}", highlight=False)


@lake_app.command("erase")
def erase_cmd(
    lake: LakeOpt,
    region: Annotated[str, typer.Option("--region", help="The region.")],
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
    tenant: TenantOpt = None,
    user: UserOpt = None,
    home: HomeOpt = None,
) -> None:
    """Erase your tenant's records for good (GDPR, retention): delete, then vacuum old versions.

    Time travel cannot bring erased data back: lake versions that held it
    become unreadable.
    """
    from datadrive.lake import Erasure

    try:
        lk = _open(lake, user=user, tenant=tenant, home=home, region=region)
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
            _fail("erasure cannot be undone: add --yes to erase")
            return
        report = lk.erase(region, erasure)
    except DatadriveError as exc:
        _fail(str(exc))
        return
    _out.print(
        f"erased {report.scenarios} scenarios, {report.telemetry} telemetry logs, {report.inputs} inputs "
        f"(lake version {report.lake_version}); vacuum removed {report.files_removed} files",
        highlight=False,
    )


@lake_app.command("optimize")
def optimize_cmd(
    lake: LakeOpt,
    region: Annotated[str, typer.Option("--region", help="The region.")],
    retention_hours: Annotated[
        int, typer.Option("--retention-hours", help="Keep files old versions need for this long.")
    ] = 168,
    tenant: TenantOpt = None,
    user: UserOpt = None,
    home: HomeOpt = None,
) -> None:
    """Compact small files and vacuum files older than the retention."""
    try:
        lk = _open(lake, user=user, tenant=tenant, home=home, region=region)
        stats = lk.optimize(region, vacuum_retention_hours=retention_hours)
    except DatadriveError as exc:
        _fail(str(exc))
        return
    _out.print(json.dumps(_json_value(stats)), highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``ingest``, ``sql`` and the ``lake`` group to the top-level app."""
    app.command("ingest")(ingest_cmd)
    app.command("sql")(sql_cmd)
    app.add_typer(lake_app, name="lake")
