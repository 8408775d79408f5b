"""Fixtures of the service tests: a two-tenant lake, PostgreSQL 15 of our own, the app, callers.

The lake has two regions, ``eu-central`` (export of derived aggregates to
``cn-north`` allowed) and ``cn-north`` (China: aggregates and metrics may
leave only to ``eu-central``), and two tenants: ``bmw`` (home eu-central)
and ``tencent`` (home cn-north). bmw owns AV2 scenarios in eu-central,
tencent owns nuPlan scenarios in cn-north.

Every test runs against SQLite and against a PostgreSQL 15 instance the
session starts itself (``initdb`` + ``pg_ctl`` in a temporary folder, on
127.0.0.1 and a free port, stopped at the end).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from service_helpers import PG_BIN, Env, Postgres, make_app, populate

from services import LOOPBACK, free_ports, missing, wait_until

# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """PostgreSQL 15 of this test session on 127.0.0.1 (initdb + pg_ctl; runs as nobody under root).

    Its folder is a fresh one directly in the system's temporary directory,
    not under pytest's base folder: pytest makes ``pytest-of-<user>`` private
    (0700) at every session start, and the server runs as ``nobody``.
    """
    if not (PG_BIN / "initdb").exists():
        missing("PostgreSQL 15 (/usr/lib/postgresql/15/bin)")
    root = Path(tempfile.mkdtemp(prefix="datadrive-pg-"))
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        nobody = pwd.getpwnam("nobody")
        os.chmod(root, 0o777)
        as_user = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]
    try:
        subprocess.run(
            [
                *as_user,
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        port = free_ports(1)[0]
        log = root / "pg.log"
        opts = f"-c listen_addresses={LOOPBACK} -c port={port} -c unix_socket_directories={root} -c fsync=off"
        subprocess.run(
            [
                *as_user,
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=90,
        )
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    pg = Postgres(port, data, as_user)
    try:
        import psycopg

        wait_until(
            lambda: (
                psycopg.connect(f"host={LOOPBACK} port={port} user=postgres dbname=postgres").close() or True
            ),
            "PostgreSQL",
            30,
            log,
        )
        yield pg
    finally:
        subprocess.run(
            [*as_user, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- the lake


@pytest.fixture(scope="session")
def lake_dir(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> Path:
    """A two-region, two-tenant lake with real scenarios in each region."""
    from datadrive.compute import InlineEngine
    from datadrive.lake import Lake, Principal, load_config

    folder = tmp_path_factory.mktemp("lake")
    keys = folder / "keys"
    keys.mkdir()
    for t, k in (("bmw", "11" * 32), ("tencent", "22" * 32)):
        (keys / f"{t}.key").write_text(k)
    (folder / "datadrive.toml").write_text(
        """
[lake]
name = "alliance-test"
[regions.eu-central]
root = "regions/eu-central"
[regions.eu-central.export]
derived = ["aggregate", "metrics", "model", "features"]
to = ["cn-north"]
[regions.cn-north]
root = "regions/cn-north"
publish_crs = "gcj02"
[regions.cn-north.export]
derived = ["metrics"]
to = ["eu-central"]
[tenants.bmw]
key_file = "keys/bmw.key"
[tenants.tencent]
key_file = "keys/tencent.key"
"""
    )
    config = load_config(folder, env={})
    av2 = sorted((samples / "av2_motion_forecasting").iterdir())[:2]
    nuplan = sorted((samples / "nuplan").rglob("*.db"))[:1]
    Lake(config, Principal("setup", "bmw", "eu-central")).init()
    Lake(config, Principal("setup", "bmw", "eu-central")).ingest(av2, "eu-central", engine=InlineEngine())
    Lake(config, Principal("setup", "tencent", "cn-north")).ingest(nuplan, "cn-north", engine=InlineEngine())
    return folder


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def env(
    request: pytest.FixtureRequest, lake_dir: Path, samples: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Env]:
    """The app on SQLite and on PostgreSQL, with bmw (ana admin, eng, viewer) and tencent (li admin)."""
    from fastapi.testclient import TestClient

    data = tmp_path_factory.mktemp("service")
    if request.param == "sqlite":
        url = f"sqlite:///{data / 'service.db'}"
    else:
        pg: Postgres = request.getfixturevalue("postgres")
        url = pg.createdb(f"svc_{data.name.replace('-', '_').lower()}")
    app = make_app(lake_dir, data, url, maps_dir=samples / "lanelet2_map")
    keys, ids = populate(app)
    with TestClient(app, base_url="http://testserver") as client:
        yield Env(client, app, keys, ids, request.param)
    app.state.services.engine.dispose()
