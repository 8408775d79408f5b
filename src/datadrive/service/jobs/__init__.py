"""Jobs: background work with status, progress, logs and cancellation.

A job kind is one :class:`JobKind` entry in :data:`JOB_KINDS`
(``jobs/kinds.py``): a name, the role it needs, a parameter check run at
submission, and the dotted path of the function a worker runs. The
framework (:mod:`.framework`) stores jobs in the service's database; a
dispatcher (:mod:`.runner`) runs them in a local pool of worker processes,
or as tasks on a Ray cluster when one is configured; a job survives a
service restart (requeued when its kind is safe to rerun, else marked
failed with the reason).
"""

from datadrive.service.jobs.framework import JobCancelledError, JobContext, JobKind
from datadrive.service.jobs.kinds import JOB_KINDS, job_kind

__all__ = ["JOB_KINDS", "JobCancelledError", "JobContext", "JobKind", "job_kind"]
