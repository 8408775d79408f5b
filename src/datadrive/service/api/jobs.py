"""Jobs: submit, list, inspect, follow the log, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from datadrive.errors import ConflictError, NotFoundError
from datadrive.service.api.deps import CallerDep, DbDep, PageDep, ServicesDep
from datadrive.service.db import Job, JobLog
from datadrive.service.errors import ERROR_RESPONSES
from datadrive.service.identity import Caller, new_id, require
from datadrive.service.jobs import JOB_KINDS, job_kind
from datadrive.service.jobs.framework import TERMINAL

__all__ = [
    "JobIn",
    "JobOut",
    "cancel",
    "get_job",
    "job_out",
    "kinds",
    "list_jobs",
    "logs",
    "own_job",
    "submit",
]

router = APIRouter(tags=["jobs"], responses=ERROR_RESPONSES)

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobPath = Annotated[str, Path(max_length=40)]


class JobIn(BaseModel):
    kind: str = Field(max_length=40, description="A job kind (GET /job-kinds).")
    region: str | None = Field(None, max_length=63)
    params: dict[str, Any] = Field(default_factory=dict)


class JobOut(BaseModel):
    id: str
    kind: str
    region: str | None
    status: Status
    progress: float
    message: str
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    cancel_requested: bool
    runner: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    user_id: str


def job_out(j: Job) -> dict[str, Any]:
    return JobOut(
        id=j.id,
        kind=j.kind,
        region=j.region,
        status=j.status,  # type: ignore[arg-type]
        progress=j.progress,
        message=j.message,
        result=j.result,
        error=j.error,
        attempts=j.attempts,
        cancel_requested=j.cancel_requested,
        runner=j.runner,
        created_at=j.created_at,
        started_at=j.started_at,
        finished_at=j.finished_at,
        user_id=j.user_id,
    ).model_dump(mode="json")


def own_job(db: DbDep, caller: Caller, job_id: str) -> Job:
    job = db.get(Job, job_id)
    if job is None or job.tenant_id != caller.tenant:
        raise NotFoundError(f"no job {job_id!r}")
    return job


@router.get("/job-kinds", summary="What jobs can be submitted")
def kinds(caller: CallerDep) -> list[dict[str, Any]]:
    return [{"name": k.name, "description": k.description, "role": k.role} for k in JOB_KINDS]


@router.post("/jobs", status_code=202, response_model=JobOut, summary="Submit a job")
def submit(body: JobIn, caller: CallerDep, db: DbDep, svc: ServicesDep) -> dict[str, Any]:
    kind = job_kind(body.kind)
    require(caller, kind.role, f"submitting {kind.name} jobs")
    params = kind.check(body.params, svc.dispatcher.worker_settings) if kind.check else dict(body.params)
    region = body.region
    if kind.needs_region:
        if region is None:
            from datadrive.errors import InputError

            raise InputError("region", f"a {kind.name} job needs a region")
        svc.gateway.region(region)
    job = Job(
        id=new_id("job"),
        tenant_id=caller.tenant,
        user_id=caller.user_id,
        kind=kind.name,
        region=region,
        params=params,
        status="queued",
        message="queued",
    )
    db.add(job)
    db.commit()
    svc.dispatcher.wake()
    return job_out(job)


@router.get("/jobs", summary="Your tenant's jobs, newest first")
def list_jobs(
    caller: CallerDep,
    db: DbDep,
    page: PageDep,
    status: Annotated[Status | None, Query()] = None,
    kind: Annotated[str | None, Query(max_length=40)] = None,
) -> dict[str, Any]:
    q = select(Job).where(Job.tenant_id == caller.tenant)
    if status:
        q = q.where(Job.status == status)
    if kind:
        q = q.where(Job.kind == kind)
    total = db.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = db.scalars(q.order_by(Job.created_at.desc()).limit(page.limit).offset(page.offset)).all()
    return page.wrap([job_out(j) for j in rows], total)


@router.get("/jobs/{job_id}", response_model=JobOut, summary="One job")
def get_job(job_id: JobPath, caller: CallerDep, db: DbDep) -> dict[str, Any]:
    return job_out(own_job(db, caller, job_id))


@router.get("/jobs/{job_id}/logs", summary="A job's log lines (after=<id> to follow)")
def logs(
    job_id: JobPath,
    caller: CallerDep,
    db: DbDep,
    after: Annotated[int, Query(ge=0, le=2**62, description="Only lines after this id.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    own_job(db, caller, job_id)
    rows = db.scalars(
        select(JobLog).where(JobLog.job_id == job_id, JobLog.id > after).order_by(JobLog.id).limit(limit)
    ).all()
    return {
        "items": [
            {"id": r.id, "time": r.time.isoformat(), "level": r.level, "message": r.message} for r in rows
        ],
        "last_id": rows[-1].id if rows else after,
    }


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, summary="Ask a job to stop")
def cancel(job_id: JobPath, caller: CallerDep, db: DbDep, svc: ServicesDep) -> dict[str, Any]:
    require(caller, "engineer", "cancelling jobs")
    job = own_job(db, caller, job_id)
    if job.status in TERMINAL:
        raise ConflictError(f"job {job_id} has already {job.status}")
    job.cancel_requested = True
    if job.status == "queued":
        job.status = "cancelled"
        job.error = "cancelled before it started"
        from datadrive.service.db import utc_now

        job.finished_at = utc_now()
    db.add(
        JobLog(job_id=job.id, level="warning", message=f"cancellation requested by {caller.principal.name}")
    )
    db.commit()
    svc.dispatcher.wake()
    return job_out(job)
