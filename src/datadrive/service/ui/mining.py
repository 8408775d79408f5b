"""The mining page: an expression or a description -> hits with thumbnails; tagged events; event sets.

The search is a GET form (a read: nothing changes, so no CSRF token is
needed), answered on the server by the same function as
``POST /regions/{r}/mining/search``; tagging and saving an event set are
jobs started from forms that carry the session's token.
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from datadrive.errors import AuthenticationError, DatadriveError
from datadrive.service.api import lake as lake_api
from datadrive.service.api import mining as mining_api
from datadrive.service.api.deps import DbDep, Page, ServicesDep
from datadrive.service.ui.pages import _caller, _region, render

__all__ = ["mining_page"]

router = APIRouter(include_in_schema=False)

EXAMPLES = (
    ("describe", "vehicle stopped in the middle of the road"),
    ("describe", "pedestrian near a stopped bus"),
    ("describe", "ego vehicle turning left at an intersection"),
    ("expression", "car and stopped"),
    ("expression", "vehicle and changing_lanes"),
    ("expression", "pedestrian and near(ego, 15)"),
)


def _data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


@router.get("/mining", response_class=HTMLResponse)
def mining_page(
    request: Request,
    db: DbDep,
    svc: ServicesDep,
    region: str | None = None,
    mode: str = "describe",
    q: str = "",
    source: str = "",
) -> Response:
    caller = _caller(request, db)
    r = _region(request, caller, region)
    mode = "expression" if mode == "expression" else "describe"
    q = q.strip()[:2000]
    result: dict[str, Any] | None = None
    error = refused = None
    summary: dict[str, Any] | None = None
    sources: list[dict[str, Any]] = []
    try:
        sources = lake_api.overview(r, caller, svc)["by_source"]
        summary = mining_api.get_event_summary(r, caller, svc)
    except DatadriveError as exc:
        if isinstance(exc, AuthenticationError):
            raise
        refused = str(exc)
    if q and refused is None:
        body = mining_api.SearchIn(
            expression=q if mode == "expression" else None,
            description=q if mode == "describe" else None,
            sources=[source] if source else [],
            as_of=None,
            limit=500,
            offset=0,
            thumbnails=True,
        )
        try:
            result = mining_api.post_search(r, body, caller, svc)
        except DatadriveError as exc:
            if isinstance(exc, AuthenticationError):
                raise
            error = str(exc)
    tiles: list[dict[str, Any]] = []
    if result is not None:
        by_scenario: dict[str, list[dict[str, Any]]] = {}
        for h in result["hits"]:
            by_scenario.setdefault(h["scenario_id"], []).append(h)
        for s in result["scenarios"]:
            tiles.append(
                {
                    **s,
                    "thumb": _data_uri(s.pop("thumbnail_svg", "")) if "thumbnail_svg" in s else "",
                    "hits_shown": by_scenario.get(s["scenario_id"], []),
                }
            )
    sets = mining_api.list_event_sets(caller, db, svc, Page(20, 0))
    return render(
        request,
        "mining.html",
        caller,
        region=r,
        mode=mode,
        q=q,
        source=source,
        sources=sources,
        result=result,
        tiles=tiles,
        error=error,
        refused=refused,
        summary=summary,
        examples=EXAMPLES,
        event_sets=sets["items"],
    )
