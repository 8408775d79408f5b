"""Simulation through the service: jobs, scores, playback, sharing across regions, bounds, the fleet.

Expected values come from outside the service: a playback's scores must
equal the scores the job stored (two runs of the simulator, one in a job
worker, one in the API process), a log-replay rollout must put the ego where
the log has it, and the fleet's scenarios are counted in the lake with SQL.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from service_helpers import Env, run_jobs

AV2 = "source = 'av2_motion_forecasting'"
SCORES = (
    "nuplan_cls",
    "navsim_pdms",
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "driving_direction_compliance",
    "ego_progress_ratio",
    "ttc_within_bound",
    "ego_is_comfortable",
)


def _job(env: Env, who: str, kind: str, region: str, **params: object) -> dict:
    resp = env.client.post(
        "/api/v1/jobs", json={"kind": kind, "region": region, "params": params}, headers=env.h(who)
    )
    assert resp.status_code == 202, resp.text
    return resp.json()


def _job_now(env: Env, who: str, job_id: str) -> dict:
    return env.client.get(f"/api/v1/jobs/{job_id}", headers=env.h(who)).json()


@pytest.fixture(scope="module")
def run_id(env: Env) -> str:
    """An idm run over bmw's AV2 scenarios in eu-central (and a run refused for covering too many)."""
    made = _job(env, "eng@bmw", "simulate", "eu-central", policy="idm", query=AV2)
    too_many = _job(env, "eng@bmw", "simulate", "eu-central", policy="log", query=AV2, max_scenarios=1)
    run_jobs(env.app)
    job = _job_now(env, "eng@bmw", made["id"])
    assert job["status"] == "succeeded", job
    refused = _job_now(env, "eng@bmw", too_many["id"])
    assert refused["status"] == "failed"
    assert "this job may run 1" in refused["error"]
    return str(job["result"]["object_id"])


def test_run_summary_and_scores(env: Env, run_id: str) -> None:
    run = env.client.get(f"/api/v1/simulations/{run_id}", headers=env.h("viewer@bmw")).json()
    assert run["type"] == "simulation"
    assert run["meta"]["policy"] == "idm"
    assert run["parts"]["scores"]["kind"] == "metrics"
    scores = env.client.get(f"/api/v1/simulations/{run_id}/scores", headers=env.h("viewer@bmw")).json()
    # bmw's AV2 scenarios in eu-central: the fixture's two, and the uploaded one when that test ran first
    sql = env.client.post(
        "/api/v1/regions/eu-central/sql",
        json={
            "query": f"SELECT count(*) AS n FROM scenarios WHERE {AV2}",
            "as_of": run["meta"]["lake_version"],
        },
        headers=env.h("eng@bmw"),
    ).json()
    assert scores["total"] == run["summary"]["scenarios"] == sql["rows"][0]["n"]
    ok = [r for r in scores["items"] if r["status"] == "ok"]
    assert len(ok) == run["summary"]["ok"] >= 2
    cls = [r["nuplan_cls"] for r in ok]
    assert cls == sorted(cls)  # worst first
    assert run["summary"]["means"]["nuplan_cls"] == pytest.approx(float(np.mean(cls)))
    listed = env.client.get("/api/v1/simulations", headers=env.h("viewer@bmw")).json()
    assert run_id in [r["id"] for r in listed["items"]]


def test_playback_reproduces_the_scored_rollout(env: Env, run_id: str) -> None:
    rows = env.client.get(f"/api/v1/simulations/{run_id}/scores", headers=env.h("viewer@bmw")).json()["items"]
    for row in [r for r in rows if r["status"] == "ok"]:
        resp = env.client.get(
            f"/api/v1/simulations/{run_id}/rollouts/{row['scenario_id']}", headers=env.h("viewer@bmw")
        )
        assert resp.status_code == 200, resp.text
        scene = resp.json()
        for key in SCORES:  # log-replay agents: the simulator is a function of (scenario, policy, seed)
            assert scene["scores"][key] == pytest.approx(row[key], abs=1e-9), (row["scenario_id"], key)
        ego = [t for t in scene["rollout"]["tracks"] if t["ego"]]
        assert len(ego) == 1
        assert len(ego[0]["x"]) == len(scene["t_s"])
    missing = env.client.get(
        f"/api/v1/simulations/{run_id}/rollouts/not-in-the-run", headers=env.h("viewer@bmw")
    )
    assert missing.status_code == 404


def test_log_replay_rollout_is_the_log(lake_dir: Path) -> None:
    """With the log policy the simulated ego is where the log has it (on the simulator's 0.1 s grid)."""
    from datadrive.lake import Lake, Principal, load_config
    from datadrive.service.simulation import rollout

    snap = Lake(load_config(lake_dir, env={}), Principal("t", "bmw", "eu-central")).snapshot("eu-central")
    scenario = next(s for s in snap.scenarios() if s.source == "av2_motion_forecasting")
    scene = rollout(scenario, {"policy": "log", "reactive": False, "seed": 0})
    ego_sim = next(t for t in scene["rollout"]["tracks"] if t["ego"])
    ego_log = next(t for t in scene["tracks"] if t["ego"])
    both = [
        i
        for i, (a, b) in enumerate(zip(ego_sim["x"], ego_log["x"], strict=True))
        if a is not None and b is not None
    ]
    assert len(both) > 40
    for i in both:
        assert ego_sim["x"][i] == pytest.approx(ego_log["x"][i], abs=0.011)
        assert ego_sim["y"][i] == pytest.approx(ego_log["y"][i], abs=0.011)
    assert scene["scores"]["ego_progress_ratio"] == pytest.approx(1.0)


def test_a_run_shared_abroad_gives_metrics_not_playback(env: Env, run_id: str) -> None:
    # before the grant, tencent gets what an unknown id gets
    assert env.client.get(f"/api/v1/simulations/{run_id}", headers=env.h("li@tencent")).status_code == 404
    grant = env.client.post(
        "/api/v1/grants", json={"object_id": run_id, "grantee": "tencent"}, headers=env.h("ana@bmw")
    )
    assert grant.status_code == 201, grant.text
    assert grant.json()["parts"] == {
        "summary": "readable",
        "scores": "readable",
    }  # eu-central lets metrics go
    try:
        run = env.client.get(f"/api/v1/simulations/{run_id}", headers=env.h("li@tencent"))
        assert run.status_code == 200, run.text
        assert run.json()["shared_with_you"]
        scores = env.client.get(f"/api/v1/simulations/{run_id}/scores", headers=env.h("li@tencent"))
        assert scores.status_code == 200
        play_id = scores.json()["items"][0]["scenario_id"]
        play = env.client.get(f"/api/v1/simulations/{run_id}/rollouts/{play_id}", headers=env.h("li@tencent"))
        assert play.status_code == 403
        assert play.json()["error"]["code"] == "residency"
        assert "raw rows" in play.json()["error"]["message"]
    finally:
        env.client.delete(f"/api/v1/grants/{grant.json()['id']}", headers=env.h("ana@bmw"))
    assert env.client.get(f"/api/v1/simulations/{run_id}", headers=env.h("li@tencent")).status_code == 404


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("simulate", {"policy": "model:os:system"}, "params.policy"),
        ("simulate", {"policy": "idm", "query": "1=1; DROP TABLE scenarios"}, "params.query"),
        ("simulate", {"policy": "idm", "max_scenarios": 0}, "params.max_scenarios"),
        ("simulate", {"policy": "idm", "reactive": "yes"}, "params.reactive"),
        ("fleet", {"map": "../../etc/passwd"}, "params.map"),
        ("fleet", {"map": "nope.osm"}, "params.map"),
        ("fleet", {"map": "mapping_example.osm", "event_rates": {"cut_in": 2}}, "params.event_rates"),
        ("fleet", {"map": "mapping_example.osm", "scenarios": 10**9}, "params.scenarios"),
    ],
    ids=["module-policy", "two-statements", "zero", "not-bool", "traversal", "unknown-map", "rate", "huge"],
)
def test_bad_job_parameters_are_refused(env: Env, kind: str, params: dict, field: str) -> None:
    from sqlalchemy import func, select

    from datadrive.service.db import Job

    with env.app.state.services.sessions() as db:
        before = db.scalar(select(func.count()).select_from(Job))
    resp = env.client.post(
        "/api/v1/jobs",
        json={"kind": kind, "region": "eu-central", "params": params},
        headers=env.h("eng@bmw"),
    )
    assert resp.status_code == 422, resp.text
    assert field in resp.json()["error"]["message"]
    with env.app.state.services.sessions() as db:
        assert db.scalar(select(func.count()).select_from(Job)) == before


def test_fleet_job_writes_synthetic_scenarios(env: Env) -> None:
    opts = env.client.get("/api/v1/simulations/options", headers=env.h("li@tencent")).json()
    assert "mapping_example.osm" in opts["maps"]
    count = "SELECT count(*) AS n FROM scenarios WHERE source = 'synthetic'"
    before = env.client.post(
        "/api/v1/regions/cn-north/sql", json={"query": count}, headers=env.h("li@tencent")
    )
    # a seed per database run: the lake is shared, and a fleet batch already in the ledger is skipped
    seed = {"sqlite": 7, "postgresql": 8}[env.backend]
    made = _job(env, "li@tencent", "fleet", "cn-north", map="mapping_example.osm", scenarios=3, seed=seed)
    run_jobs(env.app)
    job = _job_now(env, "li@tencent", made["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["scenarios"] == 3
    env.app.state.services.gateway.forget()
    after = env.client.post(
        "/api/v1/regions/cn-north/sql", json={"query": count}, headers=env.h("li@tencent")
    )
    assert after.json()["rows"][0]["n"] == before.json()["rows"][0]["n"] + 3
