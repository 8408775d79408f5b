"""``datadrive serve``, ``datadrive service ...`` and ``datadrive export``: the service's commands.

The edge for the service: flags and environment become a frozen
:class:`~datadrive.service.ServiceSettings`; the lake's config is read by
the library's loader (:func:`datadrive.lake.load_config`) with the only
environment variables it may name (the tenants' ``key_env``), and handed to
the app.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from datadrive.cli.shell import LakeOpt, RegionOpt, Who, command, open_lake, out

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from datadrive.service import ServiceSettings

__all__ = ["register"]

service_app = typer.Typer(
    name="service",
    help="Set up the alliance service: its database, tenants, users and API keys.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
DataOpt = Annotated[Path, typer.Option("--data", help="Service data folder (database, staged uploads).")]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url", help="SQLAlchemy URL (default: SQLite in --data; or DATADRIVE_DATABASE_URL)."
    ),
]


def _lake_env(lake: Path) -> dict[str, str]:
    """The environment variables the lake's config names (``key_env``), and only those."""
    from datadrive.lake import load_document

    _, doc = load_document(lake)
    tenants = doc.get("tenants", {})
    names = {str(t["key_env"]) for t in tenants.values() if isinstance(t, dict) and "key_env" in t}
    return {n: os.environ[n] for n in sorted(names) if n in os.environ}


def _settings(lake: Path, data: Path, database_url: str | None, **kw: Any) -> ServiceSettings:
    from datadrive.service import ServiceSettings

    return ServiceSettings(
        lake=lake,
        data_dir=data,
        database_url=database_url or os.environ.get("DATADRIVE_DATABASE_URL"),
        env=_lake_env(lake),
        **kw,
    )


@command
def serve_cmd(
    lake: LakeOpt,
    data: DataOpt = Path("service-data"),
    host: Annotated[
        str, typer.Option("--host", help="Address to bind (default: loopback only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    database_url: DbOpt = None,
    workers: Annotated[int, typer.Option("--workers", help="Jobs run at once.")] = 2,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="Run jobs as Ray Jobs (the dashboard, http://HOST:8265)."),
    ] = None,
    ray_python: Annotated[
        str | None,
        typer.Option("--ray-python", help="Python the cluster runs jobs with (default: this one)."),
    ] = None,
    cors_origin: Annotated[
        list[str] | None, typer.Option("--cors-origin", help="Allow this origin (CORS is off by default).")
    ] = None,
    rate_limit: Annotated[
        int, typer.Option("--rate-limit", help="Requests per minute per key (0: off).")
    ] = 1200,
    secure_cookies: Annotated[
        bool, typer.Option("--secure-cookies", help="Behind HTTPS: Secure cookies and HSTS.")
    ] = False,
    maps: Annotated[
        Path | None, typer.Option("--maps", help="Folder of map files fleet jobs may draw on (by name).")
    ] = None,
    max_mine_scenarios: Annotated[
        int,
        typer.Option(
            "--max-mine-scenarios", min=1, help="Scenarios a mining search in a request may evaluate."
        ),
    ] = 500,
    kept_answers_mb: Annotated[
        int,
        typer.Option(
            "--kept-answers-mb",
            min=0,
            help="Memory for whole sorted answers of event listings, kept per lake version so a page is "
            "a slice (0: every page is its own query).",
        ),
    ] = 512,
    gc_freeze: Annotated[
        bool,
        typer.Option(
            "--gc-freeze/--no-gc-freeze",
            help="Move start-up's objects out of the garbage collector's full walks (pauses of every "
            "request otherwise).",
        ),
    ] = True,
) -> None:
    """Run the alliance service (API + web UI) with its job workers."""
    import uvicorn

    from datadrive.lake import load_config
    from datadrive.service import create_app

    settings = _settings(
        lake,
        data,
        database_url,
        workers=workers,
        ray_address=ray_address,
        ray_python=ray_python or sys.executable,
        cors_origins=tuple(cors_origin or ()),
        rate_limit_per_minute=rate_limit,
        secure_cookies=secure_cookies,
        maps_dir=maps.resolve() if maps else None,
        max_mine_scenarios=max_mine_scenarios,
        kept_answers_mb=kept_answers_mb,
    )
    app = create_app(settings, load_config(lake, env=settings.env))
    from datadrive.service.ops import freeze_startup_heap

    if gc_freeze:
        freeze_startup_heap()  # full collections no longer walk start-up's objects (pauses of 100-500 ms)
    out.print(
        f"datadrive service on http://{host}:{port} (database {settings.db_url.split('@')[-1]})",
        highlight=False,
    )
    # the service's structured log (one JSON object a line, request ids included) goes to stderr
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    service_log = logging.getLogger("datadrive.service")
    service_log.addHandler(handler)
    service_log.setLevel(logging.INFO)
    service_log.propagate = False
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, server_header=False)


def _with_db(lake: Path, data: Path, database_url: str | None) -> sessionmaker[Session]:
    from datadrive.service.db import make_engine, migrate, session_factory

    settings = _settings(lake, data, database_url)
    data.mkdir(parents=True, exist_ok=True)
    migrate(settings.db_url)
    return session_factory(make_engine(settings.db_url))


@service_app.command("add-tenant")
@command
def add_tenant_cmd(
    tenant: Annotated[str, typer.Argument(help="A tenant of the lake's config.")],
    home: Annotated[str, typer.Option("--home", help="The tenant's home region.")],
    lake: LakeOpt,
    data: DataOpt = Path("service-data"),
    database_url: DbOpt = None,
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    admin: Annotated[str | None, typer.Option("--admin", help="Also create this admin user.")] = None,
    password: Annotated[
        str | None, typer.Option("--password", help="The admin's UI password (or DATADRIVE_ADMIN_PASSWORD).")
    ] = None,
) -> None:
    """Register a lake tenant with the service (and its first admin)."""
    from datadrive.lake import load_config
    from datadrive.service.db import Tenant
    from datadrive.service.identity import create_user

    config = load_config(lake, env=_lake_env(lake))
    config.tenant(tenant)
    config.region(home)
    sessions = _with_db(lake, data, database_url)
    with sessions() as db:
        if db.get(Tenant, tenant) is None:
            db.add(Tenant(id=tenant, display_name=name or tenant, home_region=home))
        if admin:
            create_user(
                db,
                tenant=tenant,
                name=admin,
                role="admin",
                password=password or os.environ.get("DATADRIVE_ADMIN_PASSWORD"),
            )
        db.commit()
    out.print(f"tenant {tenant} (home {home}) ready" + (f"; admin {admin}" if admin else ""), highlight=False)


@service_app.command("create-key")
@command
def create_key_cmd(
    tenant: Annotated[str, typer.Argument()],
    user: Annotated[str, typer.Argument()],
    lake: LakeOpt,
    data: DataOpt = Path("service-data"),
    database_url: DbOpt = None,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="read, write or admin. Repeatable.")
    ] = None,
    days: Annotated[int, typer.Option("--days", help="Days until it expires.")] = 90,
) -> None:
    """Create an API key for a user (prints the secret once)."""
    from datetime import timedelta

    from sqlalchemy import select

    from datadrive.errors import NotFoundError
    from datadrive.service.db import User
    from datadrive.service.identity import create_key

    sessions = _with_db(lake, data, database_url)
    with sessions() as db:
        row = db.scalar(select(User).where(User.tenant_id == tenant, User.name == user))
        if row is None:
            raise NotFoundError(f"no user {user!r} in tenant {tenant!r}")
        _, secret = create_key(db, row, name="cli", scopes=tuple(scope or ["read"]), ttl=timedelta(days=days))
        db.commit()
    print(secret)


@command
def export_cmd(
    scenario_id: Annotated[str, typer.Argument(help="A scenario id in the lake (or in --file).")],
    out_path: Annotated[Path, typer.Option("--out", help="Output file: .mcap (Foxglove) or .rrd (Rerun).")],
    who: Who,
    lake: Annotated[Path | None, typer.Option("--lake", help="Read the scenario from this lake.")] = None,
    region: RegionOpt = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Read the scenario from a log file instead.")
    ] = None,
    event: Annotated[
        list[str] | None,
        typer.Option("--event", help="LABEL:START_S:END_S to mark (a mining hit). Repeatable."),
    ] = None,
) -> None:
    """Export one scenario (or mining hit) to Foxglove MCAP or a Rerun recording."""
    from datadrive.core.scenario import Scenario
    from datadrive.errors import ConfigError, NotFoundError
    from datadrive.viz.openfile import ExportEvent, scenario_to_mcap, scenario_to_rrd

    if out_path.suffix not in (".mcap", ".rrd"):
        raise ConfigError(f"--out {out_path}: name a .mcap or .rrd file")
    if file is not None:
        from datadrive.sources import DEFAULT_REGISTRY

        found = [
            s
            for s in DEFAULT_REGISTRY.detect(file).read_all(file)
            if isinstance(s, Scenario) and s.scenario_id == scenario_id
        ]
    elif lake is not None:
        lk = open_lake(lake, who, region)
        found = lk.snapshot(region).scenarios(ids=[scenario_id])
    else:
        raise ConfigError("say where the scenario is: --lake (with --region) or --file")
    if not found:
        raise NotFoundError(f"no scenario {scenario_id!r} there")
    scenario = found[0]
    t0 = int(scenario.timestamps_ns[0])
    events = []
    for spec in event or []:
        label, _, rest = spec.partition(":")
        start, _, end = rest.partition(":")
        try:
            events.append(ExportEvent(label, t0 + int(float(start) * 1e9), t0 + int(float(end) * 1e9)))
        except ValueError:
            raise ConfigError(f"--event {spec!r}: write LABEL:START_S:END_S") from None
    data = (
        scenario_to_mcap(scenario, events)
        if out_path.suffix == ".mcap"
        else scenario_to_rrd(scenario, events)
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_bytes(data)
    out.print(f"wrote {out_path} ({len(data):,} bytes)", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``export`` and the ``service`` group to the top-level app."""
    app.command("serve")(serve_cmd)
    app.command("export")(export_cmd)
    app.add_typer(service_app, name="service")
