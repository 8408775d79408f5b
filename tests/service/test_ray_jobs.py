"""Jobs on Ray Jobs: a loopback cluster with its dashboard, the service submitting through its Jobs API.

The cluster is real (``ray start --head`` with the dashboard on 127.0.0.1 and
a free port, from ``tests/services.py``); the service gets its dashboard
address as ``ray_address`` and submits each job with
``ray.job_submission.JobSubmissionClient``. Checked: a job runs to its end on
the cluster and Ray agrees it succeeded; cancellation reaches a running job;
a job still running when its service stops is adopted by the next one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import make_app, populate

from services import RayCluster, ray_jobs_cluster  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.service, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_app(
    ray_jobs_cluster: RayCluster,  # noqa: F811
    lake_dir: Path,
    samples: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    data = tmp_path_factory.mktemp("ray-service")
    app = make_app(
        lake_dir,
        data,
        f"sqlite:///{data / 'service.db'}",
        ray_address=ray_jobs_cluster.dashboard_url,
        ray_python=sys.executable,
        maps_dir=samples / "lanelet2_map",
    )
    keys, _ = populate(app)
    app.state.keys = keys
    with TestClient(app) as client:
        app.state.client = client
        yield app
    app.state.services.engine.dispose()


def _h(app: Any, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.state.keys[who]}"}


def _submit(app: Any, who: str, kind: str, region: str, **params: Any) -> str:
    resp = app.state.client.post(
        "/api/v1/jobs", json={"kind": kind, "region": region, "params": params}, headers=_h(app, who)
    )
    assert resp.status_code == 202, resp.text
    return str(resp.json()["id"])


def _job(app: Any, who: str, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = app.state.client.get(f"/api/v1/jobs/{job_id}", headers=_h(app, who)).json()
    return body


def _drive(dispatcher: Any, until: Any, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        dispatcher.tick()
        if until():
            return
        time.sleep(0.3)
    raise AssertionError("timed out driving the dispatcher")


def test_ray_jobs_run_outlive_a_restart_and_cancel(
    ray_app: Any,
    ray_jobs_cluster: RayCluster,  # noqa: F811
) -> None:
    """Two jobs at once on the cluster: a report runs to its end; a long fleet job outlives its service."""
    from ray.job_submission import JobSubmissionClient

    from datadrive.service.db import Job, utc_now
    from datadrive.service.jobs.runner import Dispatcher

    services = ray_app.state.services
    first = services.dispatcher
    report_id = _submit(
        ray_app,
        "eng@bmw",
        "report",
        "eu-central",
        title="on Ray",
        query="SELECT source, count(*) AS n FROM scenarios GROUP BY 1",
    )
    fleet_id = _submit(
        ray_app, "li@tencent", "fleet", "cn-north", map="mapping_example.osm", scenarios=5000, seed=99
    )
    ray = JobSubmissionClient(ray_jobs_cluster.dashboard_url)

    # the report: recorded as succeeded by its process, and Ray has seen that process end
    _drive(
        first,
        lambda: (
            _job(ray_app, "eng@bmw", report_id)["status"] in ("succeeded", "failed")
            and report_id not in first._running
        ),
    )
    job = _job(ray_app, "eng@bmw", report_id)
    assert job["status"] == "succeeded", job
    assert job["runner"] == "ray"
    with services.sessions() as db:
        submission = db.get(Job, report_id).external_id
    assert ray.get_job_status(submission).value == "SUCCEEDED"
    assert ray.get_job_info(submission).metadata["datadrive_job"] == report_id
    logs = ray_app.state.client.get(f"/api/v1/jobs/{report_id}/logs", headers=_h(ray_app, "eng@bmw")).json()
    assert any("started report as eng@bmw" in line["message"] for line in logs["items"])
    report = ray_app.state.client.get(
        f"/api/v1/reports/{job['result']['object_id']}", headers=_h(ray_app, "eng@bmw")
    ).json()
    assert report["content"]["rows"]

    # the fleet job is running on the cluster when the service "restarts": its dispatcher is gone
    # (no heartbeat) and a new one starts, which finds the Ray Job still running and follows it
    _drive(first, lambda: (_job(ray_app, "li@tencent", fleet_id)["progress"] or 0) > 0)
    first._running.clear()
    with services.sessions() as db:
        db.get(Job, fleet_id).heartbeat_at = utc_now().replace(year=2000)
        db.commit()
    second = Dispatcher(
        services.sessions,
        first.db_url,
        first.worker_settings,
        ray_address=first.ray_address,
        ray_python=first.ray_python,
    )
    assert second.recover() == [fleet_id]
    job = _job(ray_app, "li@tencent", fleet_id)
    assert job["status"] == "running"  # adopted: neither requeued nor failed
    assert "still running" in job["message"]
    services.dispatcher = second
    try:
        cancel = ray_app.state.client.post(
            f"/api/v1/jobs/{fleet_id}/cancel", headers=_h(ray_app, "li@tencent")
        )
        assert cancel.status_code == 200
        _drive(
            second, lambda: _job(ray_app, "li@tencent", fleet_id)["status"] not in ("queued", "running"), 120
        )
    finally:
        services.dispatcher = first
    job = _job(ray_app, "li@tencent", fleet_id)
    assert job["status"] == "cancelled", job
    assert job["progress"] < 1.0
