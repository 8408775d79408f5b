"""Datasets and training runs: what the dataset, train and evaluate jobs made, and the library's datasets.

Datasets are read through the library as the caller (``datadrive.curate``:
the tenant's datasets of a region, their versions, splits and counts),
whether a job or the CLI built them. A training run is a ``model`` object
(made by a ``train`` job): its meta carries the per-epoch history (loss
curves) and the evaluations the ``evaluate`` jobs added (metric tables); its
weights are the library's ``model`` artefact, shareable as any object.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from datadrive.service.api.deps import CallerDep, DbDep, PageDep, ServicesDep
from datadrive.service.api.lake import RegionPath
from datadrive.service.api.objects import object_out, visible, visible_objects
from datadrive.service.convert import json_value
from datadrive.service.errors import ERROR_RESPONSES
from datadrive.service.learning import MODEL_TYPE, dataset_summary

__all__ = ["get_dataset", "get_run", "list_datasets", "list_runs"]

router = APIRouter(tags=["datasets and runs"], responses=ERROR_RESPONSES)

DatasetPath = Annotated[
    str,
    Path(max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*(@v?\d+)?$", description="NAME or NAME@vN."),
]
RunPath = Annotated[str, Path(max_length=40, description="A training run (model object id).")]


@router.get(
    "/regions/{region}/datasets", summary="Your tenant's curated datasets in a region (latest versions)"
)
def list_datasets(region: RegionPath, caller: CallerDep, svc: ServicesDep, page: PageDep) -> dict[str, Any]:
    from datadrive.curate import list_datasets as library_list

    found = library_list(svc.gateway.lake(caller.principal), svc.gateway.region(region))
    items = [dataset_summary(m) for m in found]
    return page.wrap(json_value(items[page.offset : page.offset + page.limit]), len(items))


@router.get(
    "/regions/{region}/datasets/{dataset}", summary="One dataset version: query, lake version, splits"
)
def get_dataset(
    region: RegionPath, dataset: DatasetPath, caller: CallerDep, svc: ServicesDep
) -> dict[str, Any]:
    from datadrive.curate import load_dataset

    m = load_dataset(svc.gateway.lake(caller.principal), dataset, svc.gateway.region(region))
    out: dict[str, Any] = json_value(dataset_summary(m))
    return out


@router.get("/runs", summary="Training runs: your tenant's and those shared with it, newest first")
def list_runs(
    caller: CallerDep,
    db: DbDep,
    svc: ServicesDep,
    page: PageDep,
    scope: Annotated[Literal["all", "mine", "shared"], Query()] = "all",
) -> dict[str, Any]:
    rows = visible_objects(db, caller, scope, MODEL_TYPE)
    return page.wrap(
        [object_out(o, caller, svc) for o in rows[page.offset : page.offset + page.limit]], len(rows)
    )


@router.get("/runs/{run_id}", summary="One training run: config, per-epoch history, evaluations")
def get_run(run_id: RunPath, caller: CallerDep, db: DbDep, svc: ServicesDep) -> dict[str, Any]:
    obj, _ = visible(db, caller, run_id, MODEL_TYPE)
    return object_out(obj, caller, svc)
