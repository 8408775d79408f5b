"""Upload a log (or an archive of logs) and ingest it as a job."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, UploadFile
from sqlalchemy import select

from datadrive.service.api.deps import CallerDep, DbDep, PageDep, ServicesDep
from datadrive.service.db import Job, Upload, utc_now
from datadrive.service.errors import ERROR_RESPONSES
from datadrive.service.identity import new_id, require
from datadrive.service.uploads import Limits, stage

__all__ = ["list_uploads", "upload"]

router = APIRouter(tags=["uploads"], responses={**ERROR_RESPONSES, 413: ERROR_RESPONSES[422]})


@router.post("/uploads", status_code=202, summary="Upload logs into a region; returns the ingest job")
def upload(
    file: UploadFile,
    region: Annotated[str, Form(max_length=63, description="The region where the logs were recorded.")],
    caller: CallerDep,
    db: DbDep,
    svc: ServicesDep,
) -> dict[str, Any]:
    require(caller, "engineer", "uploading logs")
    svc.gateway.region(region)
    s = svc.settings
    limits = Limits(s.max_upload_bytes, s.max_archive_members, s.max_unpacked_bytes, s.max_compression_ratio)
    upload_id = new_id("upl")
    path, size, sha, kind = stage(file.file, s.data_dir / "uploads" / upload_id, file.filename or "", limits)
    job = Job(
        id=new_id("job"),
        tenant_id=caller.tenant,
        user_id=caller.user_id,
        kind="ingest",
        region=region,
        params={"upload_id": upload_id, "path": str(path), "region": region, "filename": file.filename},
        status="queued",
        message="queued",
    )
    row = Upload(
        id=upload_id,
        tenant_id=caller.tenant,
        user_id=caller.user_id,
        region=region,
        filename=(file.filename or "")[:255],
        size_bytes=size,
        sha256=sha,
        sniffed=kind,
        job_id=job.id,
        created_at=utc_now(),
    )
    db.add_all([job, row])
    db.commit()
    svc.dispatcher.wake()
    return {
        "upload": {
            "id": row.id,
            "filename": row.filename,
            "size_bytes": size,
            "sha256": sha,
            "sniffed": kind,
        },
        "job": {"id": job.id, "kind": job.kind, "status": job.status, "region": region},
    }


@router.get("/uploads", summary="Your tenant's uploads")
def list_uploads(caller: CallerDep, db: DbDep, page: PageDep) -> dict[str, Any]:
    q = select(Upload).where(Upload.tenant_id == caller.tenant).order_by(Upload.created_at.desc())
    rows = db.scalars(q).all()
    items = [
        {
            "id": u.id,
            "filename": u.filename,
            "region": u.region,
            "size_bytes": u.size_bytes,
            "sha256": u.sha256,
            "sniffed": u.sniffed,
            "job_id": u.job_id,
            "created_at": u.created_at.isoformat(),
        }
        for u in rows[page.offset : page.offset + page.limit]
    ]
    return page.wrap(items, len(rows))
