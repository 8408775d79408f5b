"""Helpers shared by the service tests: the app, its callers, PostgreSQL's handle, the job driver.

Test modules import them from here (``from service_helpers import ...``),
never from ``conftest``: with several ``conftest.py`` in the tree, the module
named ``conftest`` is whichever was imported last, so collecting
``tests/service`` with another test folder would break. Fixtures stay in
``conftest.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from services import LOOPBACK

__all__ = ["PASSWORD", "PG_BIN", "Env", "Postgres", "make_app", "populate", "remove", "run_jobs"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PASSWORD = "correct horse battery"


@dataclass
class Postgres:
    port: int
    data: Path
    as_user: list[str]

    def url(self, db: str) -> str:
        return f"postgresql+psycopg://postgres@{LOOPBACK}:{self.port}/{db}"

    def createdb(self, name: str) -> str:
        subprocess.run(
            [
                *self.as_user,
                str(PG_BIN / "createdb"),
                "-h",
                LOOPBACK,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                name,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return self.url(name)


@dataclass
class Env:
    """An app under test with its callers' API keys."""

    client: Any
    app: Any
    keys: dict[str, str]
    ids: dict[str, str]
    backend: str = "sqlite"

    def h(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


def populate(app: Any) -> tuple[dict[str, str], dict[str, str]]:
    from datadrive.service.db import Tenant
    from datadrive.service.identity import create_key, create_user

    keys: dict[str, str] = {}
    ids: dict[str, str] = {}
    with app.state.services.sessions() as db:
        db.add(Tenant(id="bmw", display_name="BMW", home_region="eu-central"))
        db.add(Tenant(id="tencent", display_name="Tencent", home_region="cn-north"))
        for tenant, name, role in (
            ("bmw", "ana", "admin"),
            ("bmw", "eng", "engineer"),
            ("bmw", "viewer", "viewer"),
            ("tencent", "li", "admin"),
        ):
            u = create_user(db, tenant=tenant, name=name, role=role, password=PASSWORD)
            db.flush()
            scopes = {
                "admin": ("read", "write", "admin"),
                "engineer": ("read", "write"),
                "viewer": ("read",),
            }[role]
            _, secret = create_key(db, u, name="test", scopes=scopes)
            keys[f"{name}@{tenant}"] = secret
            ids[f"{name}@{tenant}"] = u.id
        db.commit()
    return keys, ids


def make_app(lake_dir: Path, data_dir: Path, db_url: str, **overrides: Any) -> Any:
    from datadrive.lake import load_config
    from datadrive.service import ServiceSettings, create_app

    settings = ServiceSettings(
        lake=lake_dir, data_dir=data_dir, database_url=db_url, **{"start_workers": False, **overrides}
    )
    return create_app(settings, load_config(lake_dir, env={}))


def run_jobs(app: Any, timeout_s: float = 120.0) -> None:
    """Drive the dispatcher until no job is queued or running (bounded in time)."""
    import time

    from sqlalchemy import func, select

    from datadrive.service.db import Job

    disp = app.state.services.dispatcher
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        disp.tick()
        with app.state.services.sessions() as db:
            busy = db.scalar(select(func.count()).where(Job.status.in_(["queued", "running"])))
        if not busy and not disp._running:
            return
        time.sleep(0.2)
    raise AssertionError("jobs did not finish in time")


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
