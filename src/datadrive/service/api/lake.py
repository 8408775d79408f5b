"""Lake endpoints: regions, overview, scenarios, the viewer's scene, exports, SQL, history, audit.

Every read goes through the library as the caller's principal (via the
gateway's kept snapshots): residency, tenant visibility and the audit row
are the library's. Another tenant's scenario is simply not in the caller's
snapshot, so it is "not found", as an id that never existed is.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from datadrive.core.scenario import Scenario
from datadrive.errors import InputError, NotFoundError
from datadrive.service.api.deps import CallerDep, Page, PageDep, ServicesDep
from datadrive.service.convert import json_response, json_rows, json_value
from datadrive.service.errors import ERROR_RESPONSES
from datadrive.service.identity import Caller, require
from datadrive.service.mining import events_for_scene
from datadrive.service.ops import stage
from datadrive.service.scene import scene_json, thumbnail_svg

__all__ = [
    "RegionOut",
    "SqlIn",
    "SqlOut",
    "audit",
    "export",
    "get_scenario",
    "history",
    "list_scenarios",
    "overview",
    "regions",
    "scenario_page",
    "scenario_row",
    "scene",
    "sql",
    "thumbnail",
    "thumbnails",
]

router = APIRouter(tags=["lake"], responses=ERROR_RESPONSES)

RegionPath = Annotated[str, Path(max_length=63, description="A region of the lake.")]
ScenarioPath = Annotated[
    str, Path(max_length=300, description="A scenario id, as stored (it may hold '/', as Lyft's do).")
]
LIST_COLUMNS = [
    "scenario_id",
    "source",
    "tenant",
    "ingest_date",
    "start_time_ns",
    "duration_s",
    "num_tracks",
    "num_steps",
    "num_valid_states",
    "num_vehicles",
    "num_pedestrians",
    "num_cyclists",
    "num_map_lanes",
    "map_id",
]


class RegionOut(BaseModel):
    name: str
    publish_crs: str
    raw_readers: list[str]
    export_derived: list[str]
    export_to: list[str]
    you_may_read_raw: bool = Field(description="Whether your home region may read this region's raw rows.")


class SqlIn(BaseModel):
    query: str = Field(min_length=1, max_length=20_000, description="One SELECT statement.")
    as_of: int | None = Field(None, ge=0, le=1_000_000_000, description="Lake version (default: latest).")
    max_rows: int | None = Field(None, ge=1, le=100_000, description="Rows returned at most.")


class SqlOut(BaseModel):
    region: str
    version: int
    columns: list[str]
    rows: list[dict[str, Any]]
    row_count: int
    truncated: bool


@router.get("/regions", response_model=list[RegionOut], summary="The lake's regions and their policies")
def regions(caller: CallerDep, svc: ServicesDep) -> list[RegionOut]:
    out = []
    for name, rc in sorted(svc.lake_config.regions.items()):
        out.append(
            RegionOut(
                name=name,
                publish_crs=rc.publish_crs,
                raw_readers=sorted(rc.raw_readers),
                export_derived=sorted(rc.export.derived),
                export_to=sorted(rc.export.to),
                you_may_read_raw=rc.may_read_raw(caller.home_region),
            )
        )
    return out


def _literal(text: str) -> str:
    """A SQL string literal (DuckDB: quotes doubled, nothing else special)."""
    return "'" + text.replace("'", "''") + "'"


def _scenario_rows(
    svc: ServicesDep,
    caller: Caller,
    region: str,
    *,
    source: str | None = None,
    scenario_id: str | None = None,
    min_tracks: int | None = None,
) -> pa.Table:
    """Scenario-level rows (``LIST_COLUMNS``) through the library's SQL on the caller's snapshot.

    SQL rather than a dataset scan: a kept snapshot's SQL session answers
    scenario-level columns from memory after its first queries, where a scan
    opens every file of the table (what made lookups slow at 100k scenarios).
    """
    snap = svc.gateway.snapshot(caller.principal, region)
    where = ["telemetry_id IS NULL"]
    if source is not None:
        where.append(f"source = {_literal(source)}")
    if scenario_id is not None:
        where.append(f"scenario_id = {_literal(scenario_id)}")
    if min_tracks is not None:
        where.append(f"num_tracks >= {int(min_tracks)}")
    query = f"SELECT {', '.join(LIST_COLUMNS)} FROM scenarios WHERE {' AND '.join(where)}"
    with stage("lake"):
        return snap.sql(query, timeout_s=svc.settings.sql_timeout_s).table


@router.get(
    "/regions/{region}/overview", summary="Counts per source, the lake's growth per commit, the lake version"
)
def overview(region: RegionPath, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    snap = svc.gateway.snapshot(caller.principal, svc.gateway.region(region))
    by_source = snap.sql(
        "SELECT source, count(*) AS scenarios, CAST(sum(num_tracks) AS BIGINT) AS tracks, "
        "CAST(sum(num_valid_states) AS BIGINT) AS states, CAST(sum(duration_s) AS DOUBLE) AS duration_s, "
        "CAST(sum(num_vehicles) AS BIGINT) AS vehicles, CAST(sum(num_pedestrians) AS BIGINT) AS pedestrians, "
        "CAST(sum(num_cyclists) AS BIGINT) AS cyclists, count(DISTINCT map_id) AS maps "
        "FROM scenarios WHERE telemetry_id IS NULL GROUP BY source ORDER BY scenarios DESC, source",
        timeout_s=svc.settings.sql_timeout_s,
    ).table
    telemetry = snap.sql(
        "SELECT source, count(DISTINCT telemetry_id) AS logs FROM telemetry GROUP BY 1 ORDER BY 1",
        timeout_s=svc.settings.sql_timeout_s,
    ).table
    # the lake's growth: commit metadata (versions, operations, counts), which the library lets any
    # principal read; the counts are of every tenant's commits in the region
    commits = [
        {
            "version": v.version,
            "time": v.time.isoformat(),
            "operation": v.operation,
            "scenarios": int(v.info.get("scenarios") or 0),
        }
        for v in reversed(svc.gateway.lake(caller.principal).history(region))
        if v.operation != "create"
    ]
    return {
        "region": region,
        "version": snap.version,
        "tenants": list(snap.tenants),
        "by_source": json_rows(by_source),
        "telemetry": json_rows(telemetry),
        "commits": json_value(commits[-60:]),
    }


@router.get(
    "/regions/{region}/scenarios",
    response_model=dict[str, Any],
    summary="Scenarios you may read, paginated and filtered",
)
def list_scenarios(
    region: RegionPath,
    caller: CallerDep,
    svc: ServicesDep,
    page: PageDep,
    source: Annotated[
        str | None, Query(max_length=63, description="Only this source (adapter name).")
    ] = None,
    q: Annotated[str | None, Query(max_length=200, description="Scenario ids containing this text.")] = None,
    min_tracks: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
    sort: Annotated[
        Literal["scenario_id", "-num_tracks", "-duration_s", "-ingest_date"], Query(description="Order.")
    ] = "scenario_id",
) -> Response:
    return json_response(
        scenario_page(region, caller, svc, page, source=source, q=q, min_tracks=min_tracks, sort=sort)
    )


def scenario_page(
    region: str,
    caller: Caller,
    svc: ServicesDep,
    page: Page,
    *,
    source: str | None = None,
    q: str | None = None,
    min_tracks: int | None = None,
    sort: str = "scenario_id",
) -> dict[str, Any]:
    """One page of :func:`list_scenarios` (also the UI's scenario browser)."""
    svc.gateway.region(region)
    rows = _scenario_rows(svc, caller, region, source=source or None, min_tracks=min_tracks)
    if q:
        rows = rows.filter(pc.match_substring(rows.column("scenario_id"), q))
    key = sort.lstrip("-")
    rows = rows.sort_by(
        [(key, "descending" if sort.startswith("-") else "ascending"), ("scenario_id", "ascending")]
    )
    with stage("encode"):
        items = json_rows(rows.slice(page.offset, page.limit))
    return page.wrap(items, rows.num_rows)


def _one_scenario(svc: ServicesDep, caller: Caller, region: str, scenario_id: str) -> Scenario:
    snap = svc.gateway.snapshot(caller.principal, svc.gateway.region(region))
    found = snap.scenarios(ids=[scenario_id])
    if not found:
        raise NotFoundError(f"no scenario {scenario_id!r} in region {region}")
    own = [s for s in found if s.metadata.tenant == caller.tenant]
    return (own or found)[0]


@router.get(
    "/regions/{region}/scenarios/{scenario_id:path}/scene", summary="The bird's-eye viewer's scene (JSON)"
)
def scene(
    region: RegionPath,
    scenario_id: ScenarioPath,
    caller: CallerDep,
    svc: ServicesDep,
    max_steps: Annotated[int, Query(ge=2, le=2000)] = 400,
) -> dict[str, Any]:
    s = _one_scenario(svc, caller, region, scenario_id)
    events = events_for_scene(svc.gateway.snapshot(caller.principal, region), s)  # tagged: on the timeline
    return json_value(scene_json(s, events=events, max_steps=max_steps))  # type: ignore[no-any-return]


def thumbnails(svc: ServicesDep, caller: Caller, region: str, ids: list[str]) -> dict[str, str]:
    """SVG thumbnails of ``ids`` from one read of the library (one audit row for the page, not one each)."""
    if not ids:
        return {}
    snap = svc.gateway.snapshot(caller.principal, svc.gateway.region(region))
    by_id = {}
    for s in sorted(snap.scenarios(ids=ids), key=lambda s: s.metadata.tenant == caller.tenant):
        by_id[s.scenario_id] = s  # the caller's own scenario wins over a granted one of the same id
    return {sid: thumbnail_svg(s) for sid, s in by_id.items()}


@router.get(
    "/regions/{region}/scenarios/{scenario_id:path}/thumbnail.svg",
    summary="A small bird's-eye picture",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
)
def thumbnail(region: RegionPath, scenario_id: ScenarioPath, caller: CallerDep, svc: ServicesDep) -> Response:
    s = _one_scenario(svc, caller, region, scenario_id)
    return Response(
        thumbnail_svg(s), media_type="image/svg+xml", headers={"cache-control": "private, max-age=300"}
    )


@router.get(
    "/regions/{region}/scenarios/{scenario_id:path}/export",
    summary="Download the scenario as Foxglove MCAP or a Rerun recording",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def export(
    region: RegionPath,
    scenario_id: ScenarioPath,
    caller: CallerDep,
    svc: ServicesDep,
    format: Annotated[Literal["mcap", "rrd"], Query(description="mcap (Foxglove) or rrd (Rerun).")] = "mcap",
    hit_track: Annotated[
        str | None, Query(max_length=300, description="A mining hit's track, marked with its interval.")
    ] = None,
    hit_start_ns: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    hit_end_ns: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    hit_label: Annotated[str, Query(max_length=200, description="What the hit is (its expression).")] = "hit",
) -> Response:
    require(caller, "engineer", "exporting scenarios")
    s = _one_scenario(svc, caller, region, scenario_id)
    from datadrive.viz.openfile import ExportEvent, scenario_to_mcap, scenario_to_rrd

    # the scenario's tagged events, and the mining hit it is exported for, marked in the recording
    tagged = events_for_scene(svc.gateway.snapshot(caller.principal, region), s)
    marks = [ExportEvent(e["label"], e["start_ns"], e["end_ns"], tuple(e["track_ids"])) for e in tagged]
    if hit_start_ns is not None and hit_end_ns is not None:
        if hit_end_ns < hit_start_ns:
            raise InputError("hit_end_ns", "the hit's end is before its start")
        marks.append(ExportEvent(hit_label, hit_start_ns, hit_end_ns, (hit_track,) if hit_track else ()))
    data = scenario_to_mcap(s, marks) if format == "mcap" else scenario_to_rrd(s, marks)
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in scenario_id)[:120]
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"content-disposition": f'attachment; filename="{safe}.{format}"'},
    )


@router.get(
    "/regions/{region}/scenarios/{scenario_id:path}",
    response_model=dict[str, Any],
    summary="One scenario's metadata and counts",
)
def get_scenario(
    region: RegionPath, scenario_id: ScenarioPath, caller: CallerDep, svc: ServicesDep
) -> Response:
    return json_response(scenario_row(region, scenario_id, caller, svc))


def scenario_row(region: str, scenario_id: str, caller: Caller, svc: ServicesDep) -> dict[str, Any]:
    """One scenario's row, the caller's own before a granted one of the same id (:func:`get_scenario`).

    Raises:
        NotFoundError: no such scenario the caller may read in ``region``.
    """
    svc.gateway.region(region)
    rows = _scenario_rows(svc, caller, region, scenario_id=scenario_id)
    if rows.num_rows == 0:
        raise NotFoundError(f"no scenario {scenario_id!r} in region {region}")
    with stage("encode"):
        items = json_rows(rows)
    own = [r for r in items if r["tenant"] == caller.tenant]
    return (own or items)[0]


@router.post(
    "/regions/{region}/sql", response_model=SqlOut, summary="Read-only SQL over your rows (time-limited)"
)
def sql(region: RegionPath, body: SqlIn, caller: CallerDep, svc: ServicesDep) -> SqlOut:
    require(caller, "engineer", "running SQL")
    snap = svc.gateway.snapshot(caller.principal, svc.gateway.region(region), body.as_of)
    with stage("lake"):
        result = snap.sql(body.query, timeout_s=svc.settings.sql_timeout_s)
    limit = min(body.max_rows or svc.settings.sql_max_rows, svc.settings.sql_max_rows)
    return SqlOut(
        region=result.region,
        version=result.version,
        columns=result.table.column_names,
        rows=json_rows(result.table, limit),
        row_count=result.table.num_rows,
        truncated=result.table.num_rows > limit,
    )


@router.get("/regions/{region}/history", summary="Lake versions, newest first (commit metadata only)")
def history(region: RegionPath, caller: CallerDep, svc: ServicesDep, page: PageDep) -> dict[str, Any]:
    versions = svc.gateway.lake(caller.principal).history(svc.gateway.region(region))
    items = [
        {
            "version": v.version,
            "time": v.time.isoformat(),
            "operation": v.operation,
            "batch_id": v.info.get("batch_id"),
            "inputs": v.info.get("inputs"),
            "scenarios": v.info.get("scenarios"),
        }
        for v in versions[page.offset : page.offset + page.limit]
    ]
    return page.wrap(json_value(items), len(versions))


@router.get("/regions/{region}/audit", summary="Your tenant's audit trail in a region (admin)")
def audit(
    region: RegionPath,
    caller: CallerDep,
    svc: ServicesDep,
    page: PageDep,
    action: Annotated[
        str | None, Query(max_length=40, description="Only this action (read, sql, ingest, ...).")
    ] = None,
    outcome: Annotated[Literal["ok", "refused", "failed"] | None, Query()] = None,
) -> dict[str, Any]:
    require(caller, "admin", "reading the audit trail")
    table = svc.gateway.lake(caller.principal).audit_log(svc.gateway.region(region))
    rows = table.drop_columns(["prev_hash"]).to_pylist()
    mine = []
    for r in reversed(rows):  # newest first
        detail = r.get("detail")
        parsed = json.loads(detail) if isinstance(detail, str) and detail.startswith("{") else detail
        owner = parsed.get("owner") if isinstance(parsed, dict) else None
        if r["tenant"] != caller.tenant and owner != caller.tenant:
            continue
        if (action and r["action"] != action) or (outcome and r["outcome"] != outcome):
            continue
        r["detail"] = parsed
        mine.append(r)
    return page.wrap(json_value(mine[page.offset : page.offset + page.limit]), len(mine))
