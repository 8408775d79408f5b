"""What the service's own job kinds do, in a worker process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from datadrive.compute import InlineEngine
from datadrive.errors import StorageError
from datadrive.lake import IngestEvent
from datadrive.service.convert import json_rows
from datadrive.service.jobs.framework import JobContext

__all__ = ["ingest_upload", "sql_report"]


def ingest_upload(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Ingest a staged upload (a file or an unpacked archive) into the job's region."""
    staged = Path(params["path"])
    region = ctx.region or params["region"]
    if not staged.exists():
        raise StorageError(f"the staged upload {params.get('filename', staged.name)} is gone")

    def on_event(e: IngestEvent) -> None:
        if e.stage in ("read", "commit") and e.total:
            ctx.progress(e.done, e.total, f"{e.stage} {e.done}/{e.total}")

    ctx.progress(0, 1, "reading", force=True)
    report = ctx.lake.ingest([staged], region, engine=InlineEngine(), progress=on_event)
    for o in report.outcomes:
        if o.status != "ingested":
            ctx.log(f"{o.status}: {Path(o.path).name} {o.reason or ''}".strip(), "warning")
    counts = report.counts()
    ctx.log(
        f"{len(report.outcomes)} inputs: "
        + ", ".join(f"{counts[k]} {k}" for k in ("ingested", "duplicate", "unsupported", "failed"))
        + f"; {report.num_scenarios} scenarios; lake version {report.lake_version_before} -> "
        f"{report.lake_version_after}"
    )
    if report.storage_error:
        raise StorageError(report.storage_error)
    if counts["ingested"] + counts["duplicate"] == 0:
        reasons = "; ".join(sorted({o.reason or o.status for o in report.outcomes}))[:500]
        raise StorageError(f"nothing was ingested ({reasons or 'no inputs'})")
    shutil.rmtree(staged.parent, ignore_errors=True)
    return {
        "region": region,
        "counts": counts,
        "scenarios": report.num_scenarios,
        "lake_version": report.lake_version_after,
    }


def sql_report(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Run an aggregate query and store its rows as a derived ``aggregate`` artefact."""
    region = ctx.region or params["region"]
    ctx.progress(0, 2, "querying", force=True)
    snap = ctx.lake.snapshot(region)
    result = snap.sql(params["query"])
    rows = json_rows(result.table, 10_000)
    ctx.progress(1, 2, "storing", force=True)
    body = {
        "title": params["title"],
        "query": params["query"],
        "region": region,
        "lake_version": result.version,
        "columns": result.table.column_names,
        "rows": rows,
    }
    name = f"reports/{ctx.job_id}.json"
    obj = ctx.lake.put_derived(region, "aggregate", name, json.dumps(body).encode(), derived_from=snap)
    object_id = ctx.register_object(
        "report",
        params["title"],
        region,
        parts={"summary": {"kind": "aggregate", "object": obj}},
        meta={"query": params["query"], "lake_version": result.version, "rows": len(rows)},
    )
    return {"object_id": object_id, "artefact": obj, "rows": len(rows), "lake_version": result.version}
