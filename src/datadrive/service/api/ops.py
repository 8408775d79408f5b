"""Operations endpoints: liveness/readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

from datadrive.service.api.deps import ServicesDep
from datadrive.service.db import Job

__all__ = ["healthz", "metrics"]

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Is the service up, and can it reach its database?")
def healthz(svc: ServicesDep) -> Response:
    checks: dict[str, Any] = {}
    ok = True
    try:
        with svc.sessions() as db:
            db.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        ok = False
        checks["database"] = f"unreachable ({type(exc).__name__})"
    checks["regions"] = sorted(svc.lake_config.regions)
    checks["jobs"] = svc.dispatcher.runner
    return JSONResponse({"status": "ok" if ok else "degraded", "checks": checks}, 200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(svc: ServicesDep) -> Response:
    with svc.sessions() as db:
        counts = dict(db.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    for status in ("queued", "running", "succeeded", "failed", "cancelled"):
        svc.metrics.jobs.labels(status).set(counts.get(status, 0))
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
