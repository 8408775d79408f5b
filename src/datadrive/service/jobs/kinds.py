"""The job kinds the service runs: each is one :class:`JobKind` entry.

Layers register here as they land (tagging with ``datadrive.mining``,
dataset builds with ``datadrive.curate``, training with ``datadrive.train``,
simulation and fleet generation with ``datadrive.sim``): one entry naming
the function a worker calls, ``fn(ctx: JobContext, params: dict) -> dict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from datadrive.errors import InputError, NotFoundError
from datadrive.service.jobs.framework import JobKind

__all__ = ["JOB_KINDS", "job_kind"]


def _check_report(params: Mapping[str, Any]) -> dict[str, Any]:
    query, title = params.get("query"), params.get("title")
    if not isinstance(query, str) or not query.strip() or len(query) > 20_000:
        raise InputError("params.query", "a report needs one SQL query (at most 20,000 characters)")
    if not isinstance(title, str) or not title.strip() or len(title) > 200:
        raise InputError("params.title", "a report needs a title (at most 200 characters)")
    return {"query": query, "title": title.strip()}


def _no_direct(params: Mapping[str, Any]) -> dict[str, Any]:
    raise InputError("kind", "ingest jobs are created by uploading a file (POST /api/v1/uploads)")


JOB_KINDS: tuple[JobKind, ...] = (
    JobKind(
        name="ingest",
        description="Ingest an uploaded log (or archive of logs) into a region.",
        target="datadrive.service.jobs.tasks:ingest_upload",
        check=_no_direct,
        rerun_safe=True,  # the lake's ledger makes a rerun skip what was committed
    ),
    JobKind(
        name="report",
        description="Run a SQL aggregate over a region and store it as a shareable report.",
        target="datadrive.service.jobs.tasks:sql_report",
        check=_check_report,
        rerun_safe=True,
    ),
    # tagging (datadrive.mining), dataset builds (datadrive.curate), training (datadrive.train),
    # simulation and fleet generation (datadrive.sim) join here as those layers land.
)
"""Every job kind, by name."""

_BY_NAME = {k.name: k for k in JOB_KINDS}


def job_kind(name: str) -> JobKind:
    """The kind called ``name``.

    Raises:
        NotFoundError: if there is none.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise NotFoundError(f"no job kind {name!r} (kinds: {', '.join(sorted(_BY_NAME))})") from None
