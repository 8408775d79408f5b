"""Simulation pages: runs, one run's scores, and rollout playback in the bird's-eye viewer.

Rendered from the same functions the simulation API serves (``api/sim.py``);
this router is included before the pages' catch-all ``/{layer}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from datadrive.errors import AuthenticationError, DatadriveError
from datadrive.service.api import sim as sim_api
from datadrive.service.api.deps import DbDep, Page, ServicesDep
from datadrive.service.ui.pages import _caller, render

__all__ = ["rollout_page", "run_page", "runs_page"]

router = APIRouter(include_in_schema=False)

METRICS = (
    ("nuplan_cls", "CLS", "nuPlan closed-loop score"),
    ("navsim_pdms", "PDMS", "NAVSIM PDM score (v1)"),
    ("no_at_fault_collisions", "NC", "no at-fault collisions"),
    ("drivable_area_compliance", "DAC", "drivable area compliance"),
    ("driving_direction_compliance", "DDC", "driving direction compliance"),
    ("ego_progress_ratio", "EP", "ego progress ratio"),
    ("ttc_within_bound", "TTC", "time to collision within bound"),
    ("speed_limit_compliance", "SLC", "speed limit compliance"),
    ("ego_is_comfortable", "C", "comfort"),
)
"""The scores a run page shows, in nuPlan's order (the two aggregate scores first)."""

_CHART = {
    "nuplan_cls": "nuPlan CLS",
    "navsim_pdms": "NAVSIM PDMS",
    "no_at_fault_collisions": "no at-fault collisions",
    "drivable_area_compliance": "drivable area",
    "driving_direction_compliance": "driving direction",
    "ego_progress_ratio": "progress ratio",
    "ttc_within_bound": "TTC within bound",
    "speed_limit_compliance": "speed limit",
    "ego_is_comfortable": "comfort",
}


@router.get("/simulation", response_class=HTMLResponse)
def runs_page(request: Request, db: DbDep, svc: ServicesDep, offset: int = 0) -> Response:
    caller = _caller(request, db)
    runs = sim_api.list_runs(caller, db, svc, Page(50, max(0, offset)), scope="all")
    return render(
        request, "simulation.html", caller, runs=runs, sim=sim_api.sim_options(caller, svc), metrics=METRICS
    )


@router.get("/simulation/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, db: DbDep, svc: ServicesDep, offset: int = 0) -> Response:
    caller = _caller(request, db)
    refused = None
    scores: dict[str, Any] | None = None
    try:
        run = sim_api.get_run(run_id, caller, db, svc)
        scores = sim_api.scores(
            run_id, caller, db, svc, Page(200, max(0, offset)), status=None, sort="nuplan_cls"
        )
    except DatadriveError as exc:
        if isinstance(exc, AuthenticationError):
            raise
        from datadrive.service.api.objects import object_out, visible

        obj, _ = visible(db, caller, run_id, "simulation")  # not visible at all: 404 as for any id
        run, refused = object_out(obj, caller, svc), str(exc)
    means = [
        (k, label, (run.get("summary") or run["meta"]).get("means", {}).get(k)) for k, _, label in METRICS
    ]
    by_source = [
        {"source": k, "nuplan_cls": v}
        for k, v in ((run.get("summary") or {}).get("nuplan_cls_by_source") or {}).items()
    ]
    return render(
        request,
        "sim_run.html",
        caller,
        run=run,
        scores=scores,
        means=means,
        means_data=[{"label": _CHART.get(k, k), "value": v} for k, _, v in means if v is not None],
        by_source=by_source,
        refused=refused,
        metrics=METRICS,
    )


@router.get("/simulation/{run_id}/{scenario_id:path}", response_class=HTMLResponse)
def rollout_page(request: Request, run_id: str, scenario_id: str, db: DbDep, svc: ServicesDep) -> Response:
    caller = _caller(request, db)
    run = sim_api.get_run(run_id, caller, db, svc)
    return render(
        request, "sim_rollout.html", caller, run=run, scenario_id=scenario_id, metrics=METRICS, labels=_CHART
    )
