"""The service reuses a warm snapshot (its SQL session's cursor pool) and still sees every commit at once.

The lake is this module's own, made with the session lake's configuration
and two AV2 samples (other modules commit to the session's lake, and a commit
here must not change what they see); the commit is made by the library
directly, as a CLI ingest in another process would be, so the service is
never told of it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import Env, make_app, populate

REGION = "eu-central"


@pytest.fixture(scope="module")
def pool_env(lake_dir: Path, samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from fastapi.testclient import TestClient

    from datadrive.compute import InlineEngine
    from datadrive.lake import Lake, Principal, load_config

    base = tmp_path_factory.mktemp("pool")
    lake = base / "lake"
    lake.mkdir()
    shutil.copy(lake_dir / "datadrive.toml", lake)
    shutil.copytree(lake_dir / "keys", lake / "keys")
    setup = Lake(load_config(lake, env={}), Principal("setup", "bmw", REGION))
    setup.init()
    setup.ingest(sorted((samples / "av2_motion_forecasting").iterdir())[:2], REGION, engine=InlineEngine())
    app = make_app(lake, base / "service", f"sqlite:///{base / 'service.db'}")
    keys, ids = populate(app)
    with TestClient(app, base_url="http://testserver") as client:
        yield Env(client, app, keys, ids)
    app.state.services.engine.dispose()


def _library(env: Env) -> Any:
    from datadrive.lake import Lake, Principal

    return Lake(env.app.state.services.lake_config, Principal("setup", "bmw", REGION))


def _sql_rows(env: Env, who: str) -> list[dict[str, Any]]:
    log = _library(env).audit_log(REGION).to_pylist()
    return sorted((r for r in log if r["action"] == "sql" and r["who"] == who), key=lambda r: r["seq"])


def test_warm_pool_serves_reads_audited_and_a_commit_is_visible_to_the_next_read(
    pool_env: Env, samples: Path
) -> None:
    env, h = pool_env, pool_env.h("ana@bmw")
    gateway = env.app.state.services.gateway
    listing = env.client.get(f"/api/v1/regions/{REGION}/scenarios", headers=h).json()
    ids = [r["scenario_id"] for r in listing["items"]]
    assert len(ids) == 2
    (who,) = {p.name for (p, r, v) in gateway._snapshots if p.tenant == "bmw"}  # the caller's principal

    # warm: the same snapshot, its session and cursors, serve request after request
    for sid in ids * 3:
        assert env.client.get(f"/api/v1/regions/{REGION}/scenarios/{sid}", headers=h).status_code == 200
    (snap,) = [s for (p, r, v), (_, s) in gateway._snapshots.items() if r == REGION and p.name == who]
    session = snap._session
    assert session is not None
    assert session.cursors >= 1
    before = len(_sql_rows(env, who))
    for sid in ids * 2:
        assert env.client.get(f"/api/v1/regions/{REGION}/scenarios/{sid}", headers=h).status_code == 200
    # one audit row per request, written by the library as the caller, the chain intact
    rows = _sql_rows(env, who)
    assert len(rows) == before + 2 * len(ids)
    assert all(r["outcome"] == "ok" and r["tenant"] == "bmw" for r in rows[before:])
    assert [s for (p, r, v), (_, s) in gateway._snapshots.items() if r == REGION and p.name == who] == [snap]

    # a commit the service is not told of (another process's ingest) ...
    new = sorted((samples / "av2_motion_forecasting").iterdir())[2]
    _library(env).ingest([new], REGION)
    # ... is visible to the very next read, through a new snapshot (and a new pool)
    listing = env.client.get(f"/api/v1/regions/{REGION}/scenarios", headers=h).json()
    assert listing["total"] == 3
    added = (set(r["scenario_id"] for r in listing["items"]) - set(ids)).pop()
    got = env.client.get(f"/api/v1/regions/{REGION}/scenarios/{added}", headers=h)
    assert got.status_code == 200
    assert got.json()["scenario_id"] == added
    (fresh,) = [s for (p, r, v), (_, s) in gateway._snapshots.items() if r == REGION and p.name == who]
    assert fresh is not snap
    assert fresh.version > snap.version
    rows = _sql_rows(env, who)
    assert len(rows) == before + 2 * len(ids) + 2  # still one row per request
    assert all(r["lake_version"] == fresh.version for r in rows[-2:])
    assert _library(env).verify_audit(REGION).ok
