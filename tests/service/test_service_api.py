"""The API on SQLite and PostgreSQL: identity, lake browsing, SQL, errors, pagination."""

from __future__ import annotations

import pytest
from service_helpers import Env


def _error(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert body["error"]["status"] == status
    assert body["error"]["code"] == code
    assert body["error"]["request_id"] == resp.headers["x-request-id"]
    return body["error"]


def test_me_and_principal(env: Env) -> None:
    me = env.client.get("/api/v1/me", headers=env.h("ana@bmw")).json()
    assert me["tenant"] == "bmw"
    assert me["role"] == "admin"
    assert me["home_region"] == "eu-central"
    assert me["principal"] == "ana@bmw"


def test_no_or_bad_credentials_are_refused_alike(env: Env) -> None:
    _error(env.client.get("/api/v1/me"), 401, "unauthenticated")
    a = _error(
        env.client.get("/api/v1/me", headers={"Authorization": "Bearer ddk.key_nope.secret"}),
        401,
        "unauthenticated",
    )
    real_id = env.keys["ana@bmw"].split(".")[1]
    b = _error(
        env.client.get("/api/v1/me", headers={"Authorization": f"Bearer ddk.{real_id}.wrong"}),
        401,
        "unauthenticated",
    )
    assert a["message"] == b["message"]  # an existing key id is not told apart


def _scenario_ids(env: Env, tenant: str, region: str) -> list[str]:
    """The tenant's scenario ids in a region, read through the library as a principal of that tenant."""
    from datadrive.lake import Lake, Principal

    lake = Lake(env.app.state.services.lake_config, Principal("check", tenant, region))
    t = lake.sql("SELECT scenario_id FROM scenarios WHERE telemetry_id IS NULL ORDER BY 1", region).table
    return [str(v) for v in t.column("scenario_id").to_pylist()]


def test_lake_browsing_shows_only_own_rows(env: Env) -> None:
    # the session's lake has 2 AV2 logs of bmw's, and a third when the upload test ran first
    expected = _scenario_ids(env, "bmw", "eu-central")
    assert len(expected) >= 2
    bmw = env.client.get("/api/v1/regions/eu-central/scenarios", headers=env.h("ana@bmw")).json()
    assert bmw["total"] == len(expected)
    assert [r["scenario_id"] for r in bmw["items"]] == expected
    assert {r["tenant"] for r in bmw["items"]} == {"bmw"}
    assert {r["source"] for r in bmw["items"]} == {"av2_motion_forecasting"}
    page = env.client.get(
        "/api/v1/regions/eu-central/scenarios?limit=1&offset=1", headers=env.h("ana@bmw")
    ).json()
    assert [r["scenario_id"] for r in page["items"]] == expected[1:2]
    assert page["next_offset"] == (2 if len(expected) > 2 else None)
    assert page["limit"] == 1
    # tencent's home is cn-north: eu-central's raw rows may not be read from there (library's residency rule)
    err = _error(
        env.client.get("/api/v1/regions/eu-central/scenarios", headers=env.h("li@tencent")), 403, "residency"
    )
    assert "li@tencent is in cn-north" in err["message"]


def test_scenario_detail_scene_and_thumbnail(env: Env) -> None:
    sid = env.client.get("/api/v1/regions/eu-central/scenarios", headers=env.h("viewer@bmw")).json()["items"][
        0
    ]["scenario_id"]
    detail = env.client.get(f"/api/v1/regions/eu-central/scenarios/{sid}", headers=env.h("viewer@bmw")).json()
    scene = env.client.get(
        f"/api/v1/regions/eu-central/scenarios/{sid}/scene", headers=env.h("viewer@bmw")
    ).json()
    assert len(scene["tracks"]) == detail["num_tracks"]  # AV2: every track has a valid state
    assert len(scene["t_s"]) == detail["num_steps"] == 110
    assert sum(1 for t in scene["tracks"] if t["ego"]) == 1
    assert scene["map"]
    svg = env.client.get(
        f"/api/v1/regions/eu-central/scenarios/{sid}/thumbnail.svg", headers=env.h("viewer@bmw")
    )
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg")
    _error(
        env.client.get("/api/v1/regions/eu-central/scenarios/nope/scene", headers=env.h("viewer@bmw")),
        404,
        "not_found",
    )


def test_scenario_ids_may_hold_slashes(env: Env) -> None:
    """Lyft's ids look like ``single_scene/0``: such an id reaches the handlers, on every scenario route."""
    for suffix in ("", "/scene", "/thumbnail.svg", "/export"):
        resp = env.client.get(
            f"/api/v1/regions/eu-central/scenarios/single_scene/0{suffix}", headers=env.h("eng@bmw")
        )
        assert resp.status_code == 404, (suffix, resp.text)
        assert "no scenario 'single_scene/0'" in resp.json()["error"]["message"], (suffix, resp.text)


def test_sql_is_read_only_scoped_and_role_checked(env: Env) -> None:
    q = {"query": "SELECT tenant, count(*) AS n FROM scenarios GROUP BY tenant"}
    res = env.client.post("/api/v1/regions/eu-central/sql", json=q, headers=env.h("eng@bmw")).json()
    # only bmw's rows (the lake's eu-central holds no telemetry, so every row is a scenario)
    assert res["rows"] == [{"tenant": "bmw", "n": len(_scenario_ids(env, "bmw", "eu-central"))}]
    _error(
        env.client.post("/api/v1/regions/eu-central/sql", json=q, headers=env.h("viewer@bmw")),
        403,
        "forbidden",
    )
    e = _error(
        env.client.post(
            "/api/v1/regions/eu-central/sql",
            json={"query": "DELETE FROM scenarios"},
            headers=env.h("eng@bmw"),
        ),
        403,
        "forbidden",
    )
    assert "read-only" in e["message"]
    e = _error(
        env.client.post(
            "/api/v1/regions/eu-central/sql",
            json={"query": "COPY scenarios TO '/tmp/x.csv'"},
            headers=env.h("eng@bmw"),
        ),
        403,
        "residency",
    )
    e = _error(
        env.client.post(
            "/api/v1/regions/eu-central/sql",
            json={"query": "SELECT * FROM read_parquet('/etc/passwd')"},
            headers=env.h("eng@bmw"),
        ),
        403,
        "residency",
    )
    _error(
        env.client.post(
            "/api/v1/regions/eu-central/sql", json={"query": "SELEC nonsense"}, headers=env.h("eng@bmw")
        ),
        400,
        "bad_request",
    )


def test_sql_time_limit(env: Env) -> None:
    slow = {"query": "SELECT count(*) FROM range(100000000000) a"}
    from datadrive.service.api import lake as lake_api  # noqa: F401  (the limit is the service's setting)

    env.app.state.services.settings.__dict__["sql_timeout_s"] = 0.5
    try:
        e = _error(
            env.client.post("/api/v1/regions/eu-central/sql", json=slow, headers=env.h("eng@bmw")),
            408,
            "query_timeout",
        )
        assert "time limit" in e["message"]
    finally:
        env.app.state.services.settings.__dict__["sql_timeout_s"] = 10.0


def test_keys_are_hashed_scoped_revocable(env: Env) -> None:
    made = env.client.post(
        "/api/v1/keys", json={"name": "ci", "scopes": ["read"], "ttl_days": 1}, headers=env.h("eng@bmw")
    ).json()
    from datadrive.service.db import ApiKey

    with env.app.state.services.sessions() as db:
        row = db.get(ApiKey, made["id"])
        assert made["secret"].split(".")[2] not in (row.secret_sha256, str(row.scopes))
    h = {"Authorization": f"Bearer {made['secret']}"}
    assert env.client.get("/api/v1/me", headers=h).json()["effective_role"] == "viewer"
    _error(
        env.client.post("/api/v1/regions/eu-central/sql", json={"query": "SELECT 1"}, headers=h),
        403,
        "forbidden",
    )
    _error(
        env.client.post("/api/v1/keys", json={"name": "x", "scopes": ["admin"]}, headers=env.h("eng@bmw")),
        403,
        "forbidden",
    )
    assert env.client.delete(f"/api/v1/keys/{made['id']}", headers=env.h("eng@bmw")).status_code == 200
    _error(env.client.get("/api/v1/me", headers=h), 401, "unauthenticated")


def test_key_use_is_recorded_once_a_minute(env: Env) -> None:
    from datadrive.service.db import ApiKey

    made = env.client.post(
        "/api/v1/keys", json={"name": "used", "scopes": ["read"]}, headers=env.h("eng@bmw")
    ).json()
    h = {"Authorization": f"Bearer {made['secret']}"}

    def last_used() -> object:
        with env.app.state.services.sessions() as db:
            return db.get(ApiKey, made["id"]).last_used_at

    assert last_used() is None
    assert env.client.get("/api/v1/me", headers=h).status_code == 200
    first = last_used()
    assert first is not None  # the first use is written
    with env.app.state.services.sessions() as db:  # as if it had gone stale (or another replica reset it)
        db.get(ApiKey, made["id"]).last_used_at = None
        db.commit()
    assert env.client.get("/api/v1/me", headers=h).status_code == 200
    assert last_used() is None  # within the minute this process already wrote it: no second write


def test_expired_key_is_refused(env: Env) -> None:
    from datetime import timedelta

    from datadrive.service.db import ApiKey, utc_now

    made = env.client.post(
        "/api/v1/keys", json={"name": "short", "scopes": ["read"]}, headers=env.h("viewer@bmw")
    ).json()
    with env.app.state.services.sessions() as db:
        db.get(ApiKey, made["id"]).expires_at = utc_now() - timedelta(seconds=1)
        db.commit()
    _error(
        env.client.get("/api/v1/me", headers={"Authorization": f"Bearer {made['secret']}"}),
        401,
        "unauthenticated",
    )


def test_users_admin_only(env: Env) -> None:
    _error(env.client.get("/api/v1/users", headers=env.h("eng@bmw")), 403, "forbidden")
    users = env.client.get("/api/v1/users", headers=env.h("ana@bmw")).json()
    assert {u["name"] for u in users["items"]} >= {"ana", "eng", "viewer"}
    assert all(u["tenant"] == "bmw" for u in users["items"])
    made = env.client.post(
        "/api/v1/users", json={"name": "new.one", "role": "viewer"}, headers=env.h("ana@bmw")
    )
    assert made.status_code == 201
    _error(
        env.client.post(
            "/api/v1/users", json={"name": "new.one", "role": "viewer"}, headers=env.h("ana@bmw")
        ),
        409,
        "conflict",
    )


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/jobs/x/y/z"], ids=["unknown", "deep"])
def test_unknown_routes_share_the_error_shape(env: Env, path: str) -> None:
    _error(env.client.get(path, headers=env.h("ana@bmw")), 404, "not_found")


def test_validation_errors_share_the_error_shape(env: Env) -> None:
    e = _error(env.client.get("/api/v1/jobs?limit=0", headers=env.h("ana@bmw")), 422, "invalid_request")
    assert e["details"][0]["loc"] == ["query", "limit"]
