"""The job framework: kinds, the context a job runs with, and the worker entry point."""

from __future__ import annotations

import importlib
import os
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from datadrive.errors import DatadriveError
from datadrive.service.db import Job, JobLog, make_engine, session_factory, utc_now

if TYPE_CHECKING:
    from datadrive.lake import Lake

__all__ = ["TERMINAL", "JobCancelledError", "JobContext", "JobKind", "run_job"]

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
"""Statuses a job never leaves."""


class JobCancelledError(Exception):
    """Raised inside a job when its cancellation was requested."""


@dataclass(frozen=True)
class JobKind:
    """One kind of job.

    Attributes:
        name: The kind's name in the API (``ingest``).
        description: One line for the API and the UI.
        target: ``module:function`` a worker runs: ``fn(ctx, params) -> dict`` (the result).
        role: The role a caller needs to submit it.
        check: Validates and normalises parameters at submission,
            ``check(params, settings)`` with the workers' settings (``maps_dir``,
            ...); raises a :class:`~datadrive.errors.DatadriveError` naming the bad one.
        rerun_safe: Whether a job interrupted by a restart may be started
            again (idempotent work); otherwise it is marked failed.
        needs_region: Whether its parameters must name a region.
    """

    name: str
    description: str
    target: str
    role: str = "engineer"
    check: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]] | None = None
    rerun_safe: bool = True
    needs_region: bool = True

    def function(self) -> Callable[[JobContext, dict[str, Any]], dict[str, Any]]:
        module, _, attr = self.target.partition(":")
        fn: Callable[[JobContext, dict[str, Any]], dict[str, Any]] = getattr(
            importlib.import_module(module), attr
        )
        return fn


class JobContext:
    """What a running job sees: its parameters, its lake, progress, logs, cancellation.

    Progress writes are throttled (at most 4 a second); each one also checks
    whether cancellation was requested and raises :class:`JobCancelledError`
    if so, so a job that reports progress is cancellable at that point.
    """

    def __init__(
        self,
        job_id: str,
        sessions: sessionmaker[Session],
        lake: Lake,
        region: str | None,
        workdir: Path,
        settings: Mapping[str, Any],
    ) -> None:
        self.job_id = job_id
        self.lake = lake
        self.region = region
        self.workdir = workdir
        self.settings = dict(settings)
        self._sessions = sessions
        self._last = 0.0

    def log(self, message: str, level: str = "info") -> None:
        """Append a line to the job's log."""
        with self._sessions() as db:
            db.add(JobLog(job_id=self.job_id, level=level, message=message[:4000]))
            db.commit()

    def register_object(
        self, type_: str, name: str, region: str, *, parts: dict[str, Any], meta: dict[str, Any]
    ) -> str:
        """Add a shareable object (report, dataset, event set, model) the job made; returns its id."""
        from datadrive.service.db import SharedObject
        from datadrive.service.identity import new_id

        with self._sessions() as db:
            job = db.get(Job, self.job_id)
            if job is None:
                raise JobCancelledError(f"job {self.job_id} is gone")
            obj = SharedObject(
                id=new_id("obj"),
                tenant_id=job.tenant_id,
                region=region,
                type=type_,
                name=name,
                parts=parts,
                meta={**meta, "job_id": self.job_id},
                created_by=self.lake.principal.name,
            )
            db.add(obj)
            db.commit()
            return obj.id

    def object(self, object_id: str) -> dict[str, Any] | None:
        """One of the job tenant's objects (``type``, ``name``, ``region``, ``parts``, ``meta``), or None."""
        from datadrive.service.db import SharedObject

        with self._sessions() as db:
            job = db.get(Job, self.job_id)
            obj = db.get(SharedObject, object_id)
            if job is None or obj is None or obj.tenant_id != job.tenant_id:
                return None
            return {
                "type": obj.type,
                "name": obj.name,
                "region": obj.region,
                "parts": obj.parts,
                "meta": obj.meta,
            }

    def update_object(
        self,
        object_id: str,
        *,
        parts: dict[str, Any],
        meta_key: tuple[str, str],
        meta_value: Any,
    ) -> None:
        """Add parts to an object of the job's tenant and set ``meta[meta_key[0]][meta_key[1]]``."""
        from datadrive.service.db import SharedObject

        with self._sessions() as db:
            job = db.get(Job, self.job_id)
            obj = db.get(SharedObject, object_id, with_for_update=True)
            if job is None or obj is None or obj.tenant_id != job.tenant_id:
                raise JobCancelledError(f"object {object_id} is gone")
            meta = dict(obj.meta)
            group = dict(meta.get(meta_key[0]) or {})
            group[meta_key[1]] = meta_value
            meta[meta_key[0]] = group
            obj.parts = {**obj.parts, **parts}  # new dicts: the JSON columns are not mutation-tracked
            obj.meta = meta
            db.commit()

    def cancelled(self) -> bool:
        """Whether cancellation has been requested."""
        with self._sessions() as db:
            job = db.get(Job, self.job_id)
            return bool(job is None or job.cancel_requested)

    def progress(self, done: float, total: float, message: str = "", *, force: bool = False) -> None:
        """Report ``done`` of ``total``; raises :class:`JobCancelledError` if cancellation was requested."""
        now = time.monotonic()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        fraction = 0.0 if total <= 0 else max(0.0, min(1.0, done / total))
        with self._sessions() as db:
            db.execute(
                update(Job)
                .where(Job.id == self.job_id)
                .values(progress=fraction, message=message[:500], heartbeat_at=utc_now())
            )
            db.commit()
            job = db.get(Job, self.job_id)
            if job is None or job.cancel_requested:
                raise JobCancelledError(f"job {self.job_id} was cancelled")


def _watch_parent(parent: int) -> None:
    """Exit when the service that started this worker dies (its job is then requeued or failed).

    The worker is a child of the fork server, not of the service, so the
    service is watched by its pid.
    """
    while True:
        time.sleep(1.0)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(3)
        except PermissionError:  # alive, under another user (a reused pid would be too: rare, harmless)
            pass


def run_job(job_id: str, db_url: str, settings: dict[str, Any], parent_pid: int | None = None) -> None:
    """Run one job to its end, recording the outcome in the database (a worker's entry point).

    Args:
        job_id: The job.
        db_url: The metadata database.
        settings: ``lake`` (path), ``data_dir``, ``env`` (explicit environment for the lake config).
        parent_pid: The service's pid: the worker exits if that process dies.
    """
    if parent_pid is not None:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    from datadrive.lake import Lake, Principal, load_config
    from datadrive.service.db import Tenant, User
    from datadrive.service.jobs.kinds import job_kind

    engine = make_engine(db_url)
    sessions = session_factory(engine)
    try:
        with sessions() as db:
            job = db.get(Job, job_id)
            if job is None:
                return
            user = db.get(User, job.user_id)
            tenant = db.get(Tenant, job.tenant_id)
            params = dict(job.params)
            kind_name, region = job.kind, job.region
        if user is None or tenant is None:
            _finish(sessions, job_id, "failed", error="the job's user or tenant no longer exists")
            return
        ctx: JobContext | None = None
        try:
            config = load_config(Path(settings["lake"]), env=settings.get("env", {}))
            principal = Principal(
                f"{user.name}@{tenant.id}", tenant.id, user.home_region or tenant.home_region
            )
            workdir = Path(settings["data_dir"]) / "jobs" / job_id
            workdir.mkdir(parents=True, exist_ok=True)
            ctx = JobContext(job_id, sessions, Lake(config, principal), region, workdir, settings)
            ctx.log(f"started {kind_name} as {principal.name} (home region {principal.home_region})")
            result = job_kind(kind_name).function()(ctx, params)
        except JobCancelledError:
            if ctx is not None:
                ctx.log("cancelled", "warning")
            _finish(sessions, job_id, "cancelled", error="cancelled at the user's request")
            return
        except DatadriveError as exc:
            if ctx is not None:
                ctx.log(f"{type(exc).__name__}: {exc}", "error")
            _finish(sessions, job_id, "failed", error=str(exc))
            return
        except Exception as exc:
            with sessions() as db:
                db.add(JobLog(job_id=job_id, level="error", message=traceback.format_exc()[-4000:]))
                db.commit()
            _finish(
                sessions, job_id, "failed", error=f"internal error ({type(exc).__name__}); see the job's log"
            )
            return
        ctx.log("finished")
        _finish(sessions, job_id, "succeeded", result=result)
    finally:
        engine.dispose()


def _finish(
    sessions: sessionmaker[Session],
    job_id: str,
    status: str,
    *,
    error: str | None = None,
    result: dict[str, Any] | None = None,
) -> None:
    with sessions() as db:
        values: dict[str, Any] = {
            "status": status,
            "finished_at": utc_now(),
            "error": error,
            "message": status,
        }
        if status == "succeeded":
            values["progress"] = 1.0
            values["result"] = result or {}
        db.execute(update(Job).where(Job.id == job_id, Job.status == "running").values(**values))
        db.commit()
