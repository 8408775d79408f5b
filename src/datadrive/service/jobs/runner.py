"""The dispatcher: claims queued jobs and runs them in local worker processes or on Ray.

One dispatcher thread per service process:

- claims queued jobs atomically (``UPDATE ... WHERE status = 'queued'``), so
  several replicas sharing a PostgreSQL database never run one job twice;
- runs each in a fresh worker process of its own, forked from a fork
  server that imported the library once (no thread state inherited from the
  service, no per-job import time), at most ``workers`` at once; or, with a
  Ray address (the dashboard's, ``http://host:8265``), as a Ray Job each
  (``JobSubmissionClient``: the cluster schedules it, its log and status are
  in the Ray dashboard too, and ``stop_job`` cancels it);
- notices a worker that died without recording an outcome and marks its
  job failed with the exit code;
- enforces cancellation: a job that does not stop within a grace period
  of its cancellation request is killed;
- on start-up, recovers the jobs a previous process left running: a Ray Job
  still running on the cluster is adopted (followed to its end); otherwise
  rerun-safe kinds are requeued (up to ``max_attempts`` starts), the others
  marked failed, each with a log line saying why. No job is dropped silently.

A Ray Job runs ``python -m datadrive.service.jobs.ray_entry JOB_ID`` on the
cluster, which must have datadrive installed and reach the metadata database
and the lake. What travels with the submission is the job id, the lake and
data paths, and the database URL without its password: secrets (the
database password as ``PGPASSWORD``, tenants' ``key_env`` keys) come from the
cluster's own environment, never through the Ray dashboard.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shlex
import socket
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from datadrive.service.db import Job, JobLog, utc_now
from datadrive.service.jobs.framework import run_job
from datadrive.service.jobs.kinds import job_kind

__all__ = ["WORKER_PRELOAD", "Dispatcher"]

WORKER_PRELOAD = (
    "datadrive.service.jobs.framework",
    "datadrive.service.jobs.kinds",
    "datadrive.service.jobs.tasks",
    "datadrive.service.simulation",
    "datadrive.lake",
    "datadrive.sources",
    "datadrive.service.learning",
    "datadrive.sim.runner",
    "datadrive.curate",
    "datadrive.train",  # torch, imported once and shared by the forked workers (skipped when not installed)
    "datadrive.evaluate",
)
"""What the fork server imports once: each job's process is forked from it ready to run (no imports)."""

_STALE = timedelta(seconds=60)
_CANCEL_GRACE_S = 5.0


@dataclass
class _Running:
    job_id: str
    handle: Any
    cancel_seen_at: float | None = None


class Dispatcher:
    """Runs queued jobs.

    Args:
        sessions: Database sessions.
        db_url: The database URL handed to workers.
        worker_settings: ``lake``, ``data_dir``, ``env`` for :func:`run_job`.
        workers: Jobs at once.
        max_attempts: Starts per job at most (restarts included).
        ray_address: Run jobs as Ray Jobs through this dashboard address (``http://host:8265``) instead.
        ray_python: The Python the cluster runs a job's entry point with.
        poll_s: How often to look for work when not woken.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        db_url: str,
        worker_settings: dict[str, Any],
        *,
        workers: int = 2,
        max_attempts: int = 2,
        ray_address: str | None = None,
        ray_python: str = "python",
        poll_s: float = 0.5,
    ) -> None:
        self.sessions = sessions
        self.db_url = db_url
        self.worker_settings = worker_settings
        self.workers = max(1, workers)
        self.max_attempts = max_attempts
        self.ray_address = ray_address
        self.ray_python = ray_python
        self.poll_s = poll_s
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        self._running: dict[str, _Running] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_heartbeat = 0.0
        self._ray_client: Any = None

    @property
    def runner(self) -> str:
        return "ray" if self.ray_address else "local"

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Recover what a previous process left, then run the loop in a thread."""
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="datadrive-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop claiming; kill running local workers (their jobs are recovered at the next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if not self.ray_address:  # Ray Jobs run on without the service; the next start adopts them
            for r in list(self._running.values()):
                self._kill(r)
        self._running.clear()

    def wake(self) -> None:
        """Look for work now (a job was submitted or cancelled)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # keep dispatching; the next tick retries
                from datadrive.service.ops import log_event

                log_event("jobs.dispatcher_error", error=repr(exc))
            self._wake.wait(self.poll_s)
            self._wake.clear()

    # ------------------------------------------------------------------ one round

    def tick(self) -> None:
        """One round: reap finished workers, enforce cancellations, heartbeat, claim and start."""
        self._reap()
        self._cancel()
        self._heartbeat()
        free = self.workers - len(self._running)
        while free > 0 and not self._stop.is_set():
            job_id = self._claim()
            if job_id is None:
                break
            self._start(job_id)
            free -= 1

    def _claim(self) -> str | None:
        with self.sessions() as db:
            candidates = db.scalars(
                select(Job.id).where(Job.status == "queued").order_by(Job.created_at).limit(5)
            ).all()
            for job_id in candidates:
                now = utc_now()
                claimed = db.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == "queued")
                    .values(
                        status="running",
                        runner=self.runner,
                        runner_instance=self.instance,
                        attempts=Job.attempts + 1,
                        started_at=now,
                        heartbeat_at=now,
                        message="starting",
                    )
                )
                db.commit()
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    return job_id
        return None

    def _start(self, job_id: str) -> None:
        if self.ray_address:
            try:
                handle: Any = self._ray_submit(job_id)
            except Exception as exc:  # the cluster refused or is unreachable: the job fails, saying so
                self._fail_unstarted(
                    job_id, f"Ray did not accept the job ({type(exc).__name__}: {exc})"[:500]
                )
                return
        else:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(list(WORKER_PRELOAD))
            handle = ctx.Process(
                target=run_job,
                args=(job_id, self.db_url, self.worker_settings, os.getpid()),
                name=f"datadrive-job-{job_id}",
                daemon=False,
            )
            handle.start()
        self._running[job_id] = _Running(job_id, handle)

    def _done(self, r: _Running) -> tuple[bool, str]:
        """Whether ``r``'s worker has ended, and how."""
        if self.ray_address:
            status = self._ray().get_job_status(r.handle)
            if not status.is_terminal():
                return False, ""
            how = f"the Ray Job {r.handle} ended {status.value}"
            if status.value != "SUCCEEDED":
                with contextlib.suppress(Exception):
                    tail = self._ray().get_job_logs(r.handle).strip().splitlines()[-3:]
                    how += (": " + " | ".join(tail))[:400] if tail else ""
            return True, how
        proc = r.handle
        if proc.is_alive():
            return False, ""
        proc.join(0)
        return True, f"the worker process exited with code {proc.exitcode}"

    def _reap(self) -> None:
        for job_id, r in list(self._running.items()):
            done, how = self._done(r)
            if not done:
                continue
            del self._running[job_id]
            with self.sessions() as db:
                job = db.get(Job, job_id)
                if job is not None and job.status == "running":  # died without recording an outcome
                    cancelled = job.cancel_requested
                    job.status = "cancelled" if cancelled else "failed"
                    job.error = (
                        "cancelled at the user's request" if cancelled else f"{how} before it finished"
                    )
                    job.finished_at = utc_now()
                    db.add(JobLog(job_id=job_id, level="error", message=job.error))
                    db.commit()

    def _cancel(self) -> None:
        if not self._running:
            return
        with self.sessions() as db:
            wanted = set(
                db.scalars(
                    select(Job.id).where(Job.id.in_(list(self._running)), Job.cancel_requested.is_(True))
                ).all()
            )
        now = time.monotonic()
        for job_id in wanted:
            r = self._running[job_id]
            if r.cancel_seen_at is None:
                r.cancel_seen_at = now
            elif now - r.cancel_seen_at > _CANCEL_GRACE_S:
                self._kill(r)

    def _kill(self, r: _Running) -> None:
        if self.ray_address:
            with contextlib.suppress(Exception):  # the job may have ended meanwhile
                self._ray().stop_job(r.handle)
            return
        proc = r.handle
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if not self._running or now - self._last_heartbeat < 5.0:
            return
        self._last_heartbeat = now
        with self.sessions() as db:
            db.execute(update(Job).where(Job.id.in_(list(self._running))).values(heartbeat_at=utc_now()))
            db.commit()

    # ------------------------------------------------------------------ recovery

    def recover(self) -> list[str]:
        """Requeue or fail the jobs a dead process left running; returns their ids.

        A job is orphaned when its dispatcher is gone: one on this host whose
        process no longer exists, or any whose heartbeat is older than a minute.
        """
        host = socket.gethostname()
        orphans: list[str] = []
        with self.sessions() as db:
            for job in db.scalars(select(Job).where(Job.status == "running")).all():
                owner = (job.runner_instance or "::").split(":")
                same_host_dead = owner[0] == host and owner[1].isdigit() and not _alive(int(owner[1]))
                stale = job.heartbeat_at is None or utc_now() - job.heartbeat_at > _STALE
                if job.runner_instance == self.instance or not (same_host_dead or stale):
                    continue
                orphans.append(job.id)
                if self._adopt(job):
                    db.add(JobLog(job_id=job.id, level="warning", message=f"{job.message}; followed again"))
                    continue
                kind = _kind_or_none(job.kind)
                if kind is not None and kind.rerun_safe and job.attempts < self.max_attempts:
                    job.status = "queued"
                    job.message = "requeued after a service restart"
                    job.runner_instance = None
                    msg = (
                        f"the service stopped while this job ran (attempt {job.attempts} of "
                        f"{self.max_attempts}); requeued"
                    )
                    db.add(JobLog(job_id=job.id, level="warning", message=msg))
                else:
                    why = (
                        "its kind is not safe to rerun"
                        if kind is None or not kind.rerun_safe
                        else (f"it was started {job.attempts} times already")
                    )
                    job.status = "failed"
                    job.error = f"the service stopped while this job ran; not restarted because {why}"
                    job.finished_at = utc_now()
                    db.add(JobLog(job_id=job.id, level="error", message=job.error))
            db.commit()
        return orphans

    # ------------------------------------------------------------------ Ray

    def _ray(self) -> Any:
        if self._ray_client is None:
            from ray.job_submission import JobSubmissionClient

            self._ray_client = JobSubmissionClient(self.ray_address)
        return self._ray_client

    def _ray_submit(self, job_id: str) -> str:
        """Submit ``job_id`` as a Ray Job; returns its submission id (also kept as the job's external id)."""
        from sqlalchemy.engine import make_url

        with self.sessions() as db:
            job = db.get(Job, job_id)
            attempt = job.attempts if job is not None else 0
        submission = f"datadrive-{job_id}-{attempt}"
        shipped = {k: v for k, v in self.worker_settings.items() if k != "env"}  # keys stay on the cluster
        db_url = make_url(self.db_url).set(password=None).render_as_string(hide_password=False)
        self._ray().submit_job(
            entrypoint=f"{shlex.quote(self.ray_python)} -m datadrive.service.jobs.ray_entry {job_id}",
            submission_id=submission,
            runtime_env={
                "env_vars": {
                    "DATADRIVE_JOB_DATABASE_URL": db_url,
                    "DATADRIVE_JOB_SETTINGS": json.dumps(shipped),
                }
            },
            entrypoint_num_cpus=1,
            metadata={"datadrive_job": job_id},
        )
        with self.sessions() as db:
            db.execute(update(Job).where(Job.id == job_id).values(external_id=submission))
            db.commit()
        return submission

    def _adopt(self, job: Job) -> bool:
        """Follow a Ray Job a previous process started, if the cluster still runs it."""
        if not (self.ray_address and job.runner == "ray" and job.external_id):
            return False
        try:
            status = self._ray().get_job_status(job.external_id)
        except Exception:
            return False
        if status.is_terminal():
            return False
        job.runner_instance = self.instance
        job.heartbeat_at = utc_now()
        job.message = f"the service restarted; the Ray Job {job.external_id} is still {status.value.lower()}"
        self._running[job.id] = _Running(job.id, job.external_id)
        return True

    def _fail_unstarted(self, job_id: str, why: str) -> None:
        with self.sessions() as db:
            db.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "running")
                .values(status="failed", error=why, finished_at=utc_now(), message="failed")
            )
            db.add(JobLog(job_id=job_id, level="error", message=why))
            db.commit()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kind_or_none(name: str) -> Any:
    try:
        return job_kind(name)
    except Exception:
        return None
