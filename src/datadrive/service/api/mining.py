"""Mining endpoints: search by expression or plain English, tagged events, event sets.

A search runs :mod:`datadrive.mining` on a snapshot taken as the caller, in
the request, bounded in the scenarios it evaluates (``max_mine_scenarios``);
larger searches run as ``mine`` jobs, which keep their hits as a shareable
``event_set`` object. Events are the library's ``events`` table at the
current tagger version (``tag`` jobs bring it up to date). Another tenant's
scenarios are not in the caller's snapshot, so they never appear here.
"""

from __future__ import annotations

import io
import json
from typing import Annotated, Any, Literal

import pyarrow.parquet as pq
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from datadrive.service.api.deps import CallerDep, DbDep, PageDep, ServicesDep
from datadrive.service.api.lake import RegionPath
from datadrive.service.api.objects import object_out, part_bytes, visible, visible_objects
from datadrive.service.convert import json_response, json_rows, json_value
from datadrive.service.errors import ERROR_RESPONSES
from datadrive.service.mining import (
    OBJECT_TYPE,
    EventFilter,
    event_page,
    event_summary,
    hit_json,
    search,
    translate,
    vocabulary,
)
from datadrive.service.ops import stage
from datadrive.service.scene import thumbnail_svg

__all__ = [
    "SearchIn",
    "TranslateIn",
    "get_event_set",
    "get_event_set_hits",
    "get_event_summary",
    "get_vocabulary",
    "list_event_sets",
    "list_events",
    "post_search",
    "post_translate",
]

router = APIRouter(tags=["mining"], responses=ERROR_RESPONSES)

SetPath = Annotated[str, Path(max_length=40, description="An event set (object id).")]


class TranslateIn(BaseModel):
    description: str = Field(min_length=1, max_length=2000, description="Plain English.")


class SearchIn(BaseModel):
    expression: str | None = Field(
        None, min_length=1, max_length=2000, description="An expression of the query language."
    )
    description: str | None = Field(
        None, min_length=1, max_length=2000, description="Plain English (translated offline)."
    )
    sources: list[Annotated[str, Field(max_length=63)]] = Field(
        default_factory=list, max_length=50, description="Only these sources."
    )
    as_of: int | None = Field(None, ge=0, le=1_000_000_000, description="Lake version (default: latest).")
    limit: int = Field(50, ge=1, le=1000, description="Hits returned at most.")
    offset: int = Field(0, ge=0, le=10_000_000)
    thumbnails: bool = Field(False, description="Add a bird's-eye SVG per scenario, hit tracks highlighted.")


@router.get("/mining/vocabulary", summary="Categories, predicates and event types the query language knows")
def get_vocabulary(caller: CallerDep) -> dict[str, Any]:
    return json_value(vocabulary())  # type: ignore[no-any-return]


@router.post("/mining/translate", summary="A plain-English description's expression (offline parser)")
def post_translate(body: TranslateIn, caller: CallerDep) -> dict[str, str]:
    return {"description": body.description, "expression": translate(body.description)}


@router.post("/regions/{region}/mining/search", summary="Search your scenarios by expression or description")
def post_search(region: RegionPath, body: SearchIn, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    snap = svc.gateway.snapshot(caller.principal, svc.gateway.region(region), body.as_of)
    found = search(
        snap,
        expression=body.expression,
        description=body.description,
        sources=body.sources,
        max_scenarios=svc.settings.max_mine_scenarios,
    )
    result = found.result
    per_scenario: dict[str, int] = {}
    for h in result.hits:
        per_scenario[h.scenario_id] = per_scenario.get(h.scenario_id, 0) + 1
    scenarios = []
    for sid, n in per_scenario.items():
        s = found.scenarios.get(sid)
        row: dict[str, Any] = {
            "scenario_id": sid,
            "source": s.source if s else None,
            "start_ns": int(s.timestamps_ns[0]) if s is not None and len(s.timestamps_ns) else None,
            "hits": n,
        }
        if body.thumbnails and s is not None:
            row["thumbnail_svg"] = thumbnail_svg(
                s, highlight={h.track_id for h in result.hits if h.scenario_id == sid}
            )
        scenarios.append(row)
    hits = result.hits[body.offset : body.offset + body.limit]
    nxt = body.offset + body.limit
    return {
        "region": result.region,
        "lake_version": result.lake_version,
        "expression": result.expression,
        "description": result.description,
        "scenarios_searched": result.scenarios_searched,
        "narrowed_by_index": found.narrowed_by_index,
        "scenarios_without_map": len(result.scenarios_without_map),
        "total": len(result.hits),
        "offset": body.offset,
        "limit": body.limit,
        "next_offset": nxt if nxt < len(result.hits) else None,
        "hits": [hit_json(h) for h in hits],
        "scenarios": scenarios,
    }


@router.get(
    "/regions/{region}/events",
    response_model=dict[str, Any],
    summary="Tagged events of your scenarios, most severe first",
)
def list_events(
    region: RegionPath,
    caller: CallerDep,
    svc: ServicesDep,
    page: PageDep,
    event_type: Annotated[str | None, Query(max_length=63, description="Only this event type.")] = None,
    scenario_id: Annotated[str | None, Query(max_length=300, description="Only this scenario.")] = None,
    source: Annotated[str | None, Query(max_length=63, description="Only this source.")] = None,
    ego_only: Annotated[bool, Query(description="Only events the ego takes part in.")] = False,
    min_severity: Annotated[float | None, Query(ge=-1e9, le=1e9)] = None,
    as_of: Annotated[int | None, Query(ge=0, le=1_000_000_000)] = None,
) -> Response:
    flt = EventFilter(
        event_type=event_type,
        scenario_id=scenario_id,
        source=source,
        ego_only=ego_only,
        min_severity=min_severity,
    )
    snap = svc.gateway.snapshot(caller.principal, svc.gateway.region(region), as_of)
    with stage("lake"):
        rows, total = event_page(
            snap,
            flt,
            limit=page.limit,
            offset=page.offset,
            timeout_s=svc.settings.sql_timeout_s,
            pages=svc.gateway.pages(caller.principal),
        )
    with stage("encode"):
        items = json_rows(rows)
    return json_response(page.wrap(items, total))


@router.get("/regions/{region}/events/summary", summary="Event counts by type, and how much is tagged")
def get_event_summary(
    region: RegionPath,
    caller: CallerDep,
    svc: ServicesDep,
    as_of: Annotated[int | None, Query(ge=0, le=1_000_000_000)] = None,
) -> dict[str, Any]:
    snap = svc.gateway.snapshot(caller.principal, svc.gateway.region(region), as_of)
    return json_value(event_summary(snap))  # type: ignore[no-any-return]


@router.get("/event-sets", summary="Event sets: your tenant's and those shared with it, newest first")
def list_event_sets(
    caller: CallerDep,
    db: DbDep,
    svc: ServicesDep,
    page: PageDep,
    scope: Annotated[Literal["all", "mine", "shared"], Query()] = "all",
) -> dict[str, Any]:
    rows = visible_objects(db, caller, scope, OBJECT_TYPE)
    items = [object_out(o, caller, svc) for o in rows[page.offset : page.offset + page.limit]]
    return page.wrap(items, len(rows))


@router.get("/event-sets/{set_id}", summary="One event set: what found it, and its counts")
def get_event_set(set_id: SetPath, caller: CallerDep, db: DbDep, svc: ServicesDep) -> dict[str, Any]:
    obj, grant = visible(db, caller, set_id, OBJECT_TYPE)
    data, _ = part_bytes(obj, grant, "summary", caller, svc)
    return {**object_out(obj, caller, svc), "summary": json_value(json.loads(data))}


@router.get("/event-sets/{set_id}/hits", summary="An event set's hits (scenario and track ids, intervals)")
def get_event_set_hits(
    set_id: SetPath, caller: CallerDep, db: DbDep, svc: ServicesDep, page: PageDep
) -> dict[str, Any]:
    obj, grant = visible(db, caller, set_id, OBJECT_TYPE)
    data, _ = part_bytes(obj, grant, "hits", caller, svc)
    table = pq.read_table(io.BytesIO(data))
    return page.wrap(json_rows(table.slice(page.offset, page.limit)), table.num_rows)
