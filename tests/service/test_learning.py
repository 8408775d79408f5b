"""Datasets, training and evaluation through the service: jobs, runs, metrics, sharing across regions.

Expected values come from outside the service: a dataset's size from SQL
over the same lake version, a model from its own weights file loaded by
``datadrive.models.load_model``, an evaluation's figures from the metrics
artefact the job stored (read back as the caller).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from service_helpers import Env, run_jobs

AV2 = "source = 'av2_motion_forecasting'"


def _job(env: Env, who: str, kind: str, region: str, **params: Any) -> str:
    resp = env.client.post(
        "/api/v1/jobs", json={"kind": kind, "region": region, "params": params}, headers=env.h(who)
    )
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def _done(env: Env, who: str, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = env.client.get(f"/api/v1/jobs/{job_id}", headers=env.h(who)).json()
    assert job["status"] in ("succeeded", "failed"), job
    return job


@pytest.fixture(scope="module")
def trained(env: Env) -> dict[str, Any]:
    """A dataset of bmw's AV2 scenarios, an MLP trained on it for 2 epochs, scored on its train split."""
    name = f"svc-{env.backend}"
    ds = _job(
        env,
        "eng@bmw",
        "dataset",
        "eu-central",
        name=name,
        sql=f"SELECT scenario_id FROM scenarios WHERE {AV2}",
        split="100",
    )
    run_jobs(env.app)
    dataset = _done(env, "eng@bmw", ds)
    assert dataset["status"] == "succeeded", dataset
    tr = _job(
        env, "eng@bmw", "train", "eu-central", dataset=f"{name}@v1", model="mlp", epochs=2, batch_size=4
    )
    run_jobs(env.app, timeout_s=300)
    train = _done(env, "eng@bmw", tr)
    assert train["status"] == "succeeded", train
    run_id = train["result"]["object_id"]
    ev = _job(env, "eng@bmw", "evaluate", "eu-central", model_id=run_id, dataset=f"{name}@v1", split="train")
    foreign = _job(
        env, "li@tencent", "evaluate", "cn-north", model_id=run_id, dataset=f"{name}@v1", split="train"
    )
    run_jobs(env.app, timeout_s=300)
    return {
        "name": name,
        "dataset": dataset,
        "run_id": run_id,
        "evaluate": _done(env, "eng@bmw", ev),
        "foreign": _done(env, "li@tencent", foreign),
    }


def test_dataset_job(env: Env, trained: dict[str, Any]) -> None:
    result = trained["dataset"]["result"]
    count = env.client.post(
        "/api/v1/regions/eu-central/sql",
        json={"query": f"SELECT count(*) AS n FROM scenarios WHERE {AV2}", "as_of": result["lake_version"]},
        headers=env.h("eng@bmw"),
    ).json()["rows"][0]["n"]
    assert result["scenarios"] == count
    assert result["counts"] == {"train": count}
    listed = env.client.get("/api/v1/regions/eu-central/datasets", headers=env.h("viewer@bmw")).json()[
        "items"
    ]
    assert trained["name"] in [d["name"] for d in listed]
    one = env.client.get(
        f"/api/v1/regions/eu-central/datasets/{trained['name']}@v1", headers=env.h("viewer@bmw")
    )
    assert one.status_code == 200
    assert one.json()["scenarios"] == count
    # bmw's datasets are bmw's: tencent's admin (home cn-north) is refused eu-central's, by the library
    assert (
        env.client.get("/api/v1/regions/eu-central/datasets", headers=env.h("li@tencent")).status_code == 403
    )


def test_training_run_and_its_weights(env: Env, trained: dict[str, Any]) -> None:
    from datadrive.models import load_model

    run = env.client.get(f"/api/v1/runs/{trained['run_id']}", headers=env.h("viewer@bmw")).json()
    assert run["type"] == "model"
    assert run["meta"]["model"] == "mlp"
    history = run["meta"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(math.isfinite(h["train_loss"]) for h in history)
    weights = env.client.get(
        f"/api/v1/objects/{trained['run_id']}/parts/weights", headers=env.h("viewer@bmw")
    )
    assert weights.status_code == 200
    model, features, _ = load_model(weights.content, "weights")
    assert type(model).__name__ == "MlpForecaster"
    assert features.history_steps > 0
    assert trained["run_id"] in [
        r["id"] for r in env.client.get("/api/v1/runs", headers=env.h("viewer@bmw")).json()["items"]
    ]


def test_evaluation_is_stored_and_tabled(env: Env, trained: dict[str, Any]) -> None:
    assert trained["evaluate"]["status"] == "succeeded", trained["evaluate"]
    key = f"{trained['name']}@v1:train"
    run = env.client.get(f"/api/v1/runs/{trained['run_id']}", headers=env.h("viewer@bmw")).json()
    table = run["meta"]["evaluations"][key]
    assert table["samples"] >= 1
    assert math.isfinite(table["overall"]["minADE_6"])
    stored = env.client.get(
        f"/api/v1/objects/{trained['run_id']}/parts/eval {key}", headers=env.h("viewer@bmw")
    )
    assert stored.status_code == 200
    doc = json.loads(stored.content)
    assert doc["overall"]["minADE_6"] == pytest.approx(table["overall"]["minADE_6"])
    assert doc["overall"]["minADE_6"] <= doc["overall"]["minADE_1"] + 1e-9  # best of 6 is never worse than 1


def test_another_tenants_model_is_not_found_by_a_job(trained: dict[str, Any]) -> None:
    assert trained["foreign"]["status"] == "failed"
    assert trained["foreign"]["error"].startswith("no model")


def test_a_model_shared_abroad_gives_weights_not_the_dataset(env: Env, trained: dict[str, Any]) -> None:
    run_id, dataset_id = trained["run_id"], trained["dataset"]["result"]["object_id"]
    grants = []
    try:
        for obj in (run_id, dataset_id):
            g = env.client.post(
                "/api/v1/grants", json={"object_id": obj, "grantee": "tencent"}, headers=env.h("ana@bmw")
            )
            assert g.status_code == 201, g.text
            grants.append(g.json())
        assert grants[0]["parts"]["weights"] == "readable"  # eu-central lets model weights go to cn-north
        assert "not readable from cn-north" in grants[1]["parts"]["manifest"]  # but not dataset manifests
        weights = env.client.get(f"/api/v1/objects/{run_id}/parts/weights", headers=env.h("li@tencent"))
        assert weights.status_code == 200
        manifest = env.client.get(f"/api/v1/objects/{dataset_id}/parts/manifest", headers=env.h("li@tencent"))
        assert manifest.status_code == 403
        assert manifest.json()["error"]["code"] == "residency"
    finally:
        for g in grants:
            env.client.delete(f"/api/v1/grants/{g['id']}", headers=env.h("ana@bmw"))


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("train", {"dataset": "x", "model": "os.system"}, "params.model"),
        ("train", {"dataset": "x", "model": "mlp", "epochs": 1000}, "params.epochs"),
        ("train", {"dataset": "../etc", "model": "mlp"}, "params.dataset"),
        ("dataset", {"name": "../x", "sql": "SELECT scenario_id FROM scenarios"}, "params.name"),
        ("evaluate", {"model_id": "../../x", "dataset": "x"}, "params.model_id"),
    ],
    ids=["module-model", "epochs", "dataset-path", "name-path", "model-id"],
)
def test_bad_learning_parameters_are_refused(env: Env, kind: str, params: dict[str, Any], field: str) -> None:
    resp = env.client.post(
        "/api/v1/jobs",
        json={"kind": kind, "region": "eu-central", "params": params},
        headers=env.h("eng@bmw"),
    )
    assert resp.status_code == 422, resp.text
    assert field in resp.json()["error"]["message"]
