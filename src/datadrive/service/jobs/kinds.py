"""The job kinds the service runs: each is one :class:`JobKind` entry.

Layers register here as they land (simulation and fleet generation with
``datadrive.sim``; dataset builds, training and evaluation with
``datadrive.curate``, ``train`` and ``evaluate``; tagging and event sets
with ``datadrive.mining``): one entry naming the function a
worker calls, ``fn(ctx: JobContext, params: dict) -> dict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from datadrive.errors import InputError, NotFoundError
from datadrive.service.jobs.framework import JobKind
from datadrive.service.learning import check_dataset, check_evaluate, check_train
from datadrive.service.mining import check_mine, check_tag
from datadrive.service.simulation import check_fleet, check_simulate

__all__ = ["JOB_KINDS", "job_kind"]


def _check_report(params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    query, title = params.get("query"), params.get("title")
    if not isinstance(query, str) or not query.strip() or len(query) > 20_000:
        raise InputError("params.query", "a report needs one SQL query (at most 20,000 characters)")
    if not isinstance(title, str) or not title.strip() or len(title) > 200:
        raise InputError("params.title", "a report needs a title (at most 200 characters)")
    return {"query": query, "title": title.strip()}


def _no_direct(params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
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
    JobKind(
        name="simulate",
        description="Closed-loop simulation of scenarios of a region: nuPlan and NAVSIM scores.",
        target="datadrive.service.simulation:simulate_job",
        check=check_simulate,
        rerun_safe=True,  # a rerun writes a new run; the interrupted one left no object
    ),
    JobKind(
        name="fleet",
        description="Generate synthetic scenarios with injected events on a map of the service's catalogue.",
        target="datadrive.service.simulation:fleet_job",
        check=check_fleet,
        rerun_safe=True,  # each committed batch is a ledger input: a rerun skips what landed
    ),
    JobKind(
        name="dataset",
        description="Create the next version of a curated dataset: a SQL selection, split by log.",
        target="datadrive.service.learning:dataset_job",
        check=check_dataset,
        rerun_safe=True,  # a rerun makes one more version; the interrupted one was not stored
    ),
    JobKind(
        name="train",
        description="Train a model on a dataset version (feature cache built if missing), on the CPU.",
        target="datadrive.service.learning:train_job",
        check=check_train,
        rerun_safe=True,  # a rerun is a new run; the cache build resumes
    ),
    JobKind(
        name="evaluate",
        description="Score a trained model on a dataset split with the official AV2 and WOMD metrics.",
        target="datadrive.service.learning:evaluate_job",
        check=check_evaluate,
        rerun_safe=True,
    ),
    JobKind(
        name="tag",
        description="Index and tag the region's scenarios not yet current (mining states and events).",
        target="datadrive.service.mining:tag_job",
        check=check_tag,
        rerun_safe=True,  # tagging is incremental: a rerun does only what is not yet tagged
    ),
    JobKind(
        name="mine",
        description="Search a region by expression or description; keep the hits as a shareable event set.",
        target="datadrive.service.mining:mine_job",
        check=check_mine,
        rerun_safe=True,  # a rerun makes one more event set; the interrupted one was not registered
    ),
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
