"""Dataset and training-run pages: datasets of a region, runs with loss curves and metric tables.

Rendered from the same functions the API serves (``api/learning.py``); this
router is included before the pages' catch-all ``/{layer}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from datadrive.errors import AuthenticationError, DatadriveError
from datadrive.service.api import learning as learning_api
from datadrive.service.api.deps import DbDep, Page, ServicesDep
from datadrive.service.ui.pages import _caller, _region, render

__all__ = ["datasets_page", "run_page", "runs_page"]

router = APIRouter(include_in_schema=False)

LOSSES = ("train_loss", "val_loss", "train_minADE", "val_minADE")
"""History columns drawn as curves (those a run has)."""


@router.get("/datasets", response_class=HTMLResponse)
def datasets_page(request: Request, db: DbDep, svc: ServicesDep, region: str | None = None) -> Response:
    caller = _caller(request, db)
    r = _region(request, caller, region)
    refused = None
    listing: dict[str, Any] | None = None
    try:
        listing = learning_api.list_datasets(r, caller, svc, Page(200, 0))
    except DatadriveError as exc:
        if isinstance(exc, AuthenticationError):
            raise
        refused = str(exc)
    return render(request, "datasets.html", caller, region=r, listing=listing, refused=refused)


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, db: DbDep, svc: ServicesDep, region: str | None = None) -> Response:
    caller = _caller(request, db)
    r = _region(request, caller, region)
    runs = learning_api.list_runs(caller, db, svc, Page(100, 0), scope="all")
    datasets: list[dict[str, Any]] = []
    try:
        datasets = learning_api.list_datasets(r, caller, svc, Page(200, 0))["items"]
    except DatadriveError as exc:
        if isinstance(exc, AuthenticationError):
            raise
    from datadrive.models import MODELS

    return render(request, "runs.html", caller, region=r, runs=runs, datasets=datasets, models=sorted(MODELS))


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, db: DbDep, svc: ServicesDep) -> Response:
    caller = _caller(request, db)
    run = learning_api.get_run(run_id, caller, db, svc)
    history = run["meta"].get("history") or []
    evaluations = run["meta"].get("evaluations") or {}
    # in the evaluator's own order (minADE, minFDE, MR, brier-minFDE at K=1, then K=6, then WOMD)
    metric_names = list(dict.fromkeys(m for e in evaluations.values() for m in (e.get("overall") or {})))
    datasets: list[dict[str, Any]] = []
    if not run["shared_with_you"]:
        try:
            datasets = learning_api.list_datasets(run["region"], caller, svc, Page(200, 0))["items"]
        except DatadriveError as exc:
            if isinstance(exc, AuthenticationError):
                raise
    return render(
        request,
        "run.html",
        caller,
        run=run,
        history=history,
        curves=[c for c in LOSSES if any(h.get(c) is not None for h in history)],
        evaluations=evaluations,
        metric_names=metric_names,
        datasets=datasets,
    )
