"""The dispatcher: claims queued jobs and runs them in local worker processes or on Ray.

One dispatcher thread per service process:

- claims queued jobs atomically (``UPDATE ... WHERE status = 'queued'``), so
  several replicas sharing a PostgreSQL database never run one job twice;
- runs each in a fresh worker process of its own, forked from a fork
  server that imported the library once (no thread state inherited from the
  service, no per-job import time), at most ``workers`` at once, or, with a
  Ray address, on the Ray cluster;
- notices a worker that died without recording an outcome and marks its
  job failed with the exit code;
- enforces cancellation: a job that does not stop within a grace period
  of its cancellation request is killed;
- on start-up, recovers the jobs a previous process left running: rerun-safe
  kinds are requeued (up to ``max_attempts`` starts), the others marked
  failed, each with a log line saying why. No job is dropped silently.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
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
    "datadrive.sim.runner",
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
        ray_address: Run jobs as Ray tasks on this cluster (GCS address) instead.
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
        poll_s: float = 0.5,
    ) -> None:
        self.sessions = sessions
        self.db_url = db_url
        self.worker_settings = worker_settings
        self.workers = max(1, workers)
        self.max_attempts = max_attempts
        self.ray_address = ray_address
        self.poll_s = poll_s
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        self._running: dict[str, _Running] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_heartbeat = 0.0
        self._ray_fn: Any = None

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
            handle = self._ray_submit(job_id)
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
            import ray

            ready, _ = ray.wait([r.handle], timeout=0)
            if not ready:
                return False, ""
            try:
                ray.get(r.handle)
            except Exception as exc:
                return True, f"the Ray task ended with {type(exc).__name__}"
            return True, "the Ray task ended"
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
            import ray

            with contextlib.suppress(Exception):  # the task may have ended meanwhile
                ray.cancel(r.handle, force=True)
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

    def _ray_submit(self, job_id: str) -> Any:
        import ray

        if self._ray_fn is None:
            if not ray.is_initialized():
                ray.init(address=self.ray_address, logging_level=logging.ERROR, log_to_driver=False)
            self._ray_fn = ray.remote(num_cpus=1, max_retries=0)(run_job)
        return self._ray_fn.remote(job_id, self.db_url, self.worker_settings, None)


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
