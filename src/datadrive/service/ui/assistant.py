"""The assistant's page: a chat about a vehicle's drives and trips, over ``POST /regions/{r}/assistant``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from datadrive.errors import AuthenticationError, DatadriveError
from datadrive.service.api import assistant as assistant_api
from datadrive.service.api.deps import DbDep, ServicesDep
from datadrive.service.ui.pages import _caller, _region, render

__all__ = ["assistant_page"]

router = APIRouter(include_in_schema=False)


@router.get("/assistant", response_class=HTMLResponse)
def assistant_page(
    request: Request, db: DbDep, svc: ServicesDep, region: str | None = None, vehicle: str | None = None
) -> Response:
    caller = _caller(request, db)
    r = _region(request, caller, region)
    vehicles: dict[str, list[str]] = {}
    refused = None
    try:
        vehicles = assistant_api.vehicles(r, caller, svc)
    except DatadriveError as exc:
        if isinstance(exc, AuthenticationError):
            raise
        refused = str(exc)
    chosen = vehicle if vehicle in vehicles else next(iter(vehicles), None)
    return render(
        request, "assistant.html", caller, region=r, vehicles=vehicles, vehicle=chosen, refused=refused
    )
