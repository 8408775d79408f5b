"""Simulation endpoints: runs (yours and shared), their scores, rollout playback, what a job may ask for.

A run is a ``simulation`` object (made by a ``simulate`` job, see
``POST /jobs``). Its summary and scores are ``metrics`` artefacts in the
run's region, read through the library as the caller: a partner a run was
shared with reads them if the region's policy lets metrics reach the
partner's home region, else the API answers 403 ``residency`` with the
library's reason. Playback re-runs the simulator on one scenario, which
reads that scenario's raw rows: only the run's owner may.
"""

from __future__ import annotations

import io
import json
from typing import Annotated, Any, Literal

import pyarrow.parquet as pq
from fastapi import APIRouter, Path, Query

from datadrive.errors import PermissionDeniedError, ResidencyError
from datadrive.service.api.deps import CallerDep, DbDep, PageDep, ServicesDep
from datadrive.service.api.lake import ScenarioPath
from datadrive.service.api.objects import object_out, part_bytes, visible, visible_objects
from datadrive.service.convert import json_value
from datadrive.service.db import Grant, SharedObject
from datadrive.service.errors import ERROR_RESPONSES
from datadrive.service.identity import Caller
from datadrive.service.simulation import OBJECT_TYPE, find_row, options, rollout

__all__ = ["get_rollout", "get_run", "list_runs", "scores", "sim_options"]

router = APIRouter(tags=["simulation"], responses=ERROR_RESPONSES)

RunPath = Annotated[str, Path(max_length=40, description="A simulation run (object id).")]
SCORE_KEYS = (
    "nuplan_cls",
    "navsim_pdms",
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "driving_direction_compliance",
    "ego_is_making_progress",
    "ego_progress_ratio",
    "ttc_within_bound",
    "speed_limit_compliance",
    "ego_is_comfortable",
)


@router.get("/simulations/options", summary="Policies, fleet maps and limits a simulate or fleet job may use")
def sim_options(caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    out = options(svc.settings.maps_dir)
    out["max_scenarios"] = svc.settings.max_sim_scenarios
    return out


def _run_out(obj: SharedObject, caller: Caller, svc: ServicesDep) -> dict[str, Any]:
    return object_out(obj, caller, svc)


@router.get("/simulations", summary="Simulation runs: your tenant's and those shared with it, newest first")
def list_runs(
    caller: CallerDep,
    db: DbDep,
    svc: ServicesDep,
    page: PageDep,
    scope: Annotated[Literal["all", "mine", "shared"], Query()] = "all",
) -> dict[str, Any]:
    rows = visible_objects(db, caller, scope, OBJECT_TYPE)
    items = [_run_out(o, caller, svc) for o in rows[page.offset : page.offset + page.limit]]
    return page.wrap(items, len(rows))


@router.get("/simulations/{run_id}", summary="One run: what it ran and its summary (means, counts)")
def get_run(run_id: RunPath, caller: CallerDep, db: DbDep, svc: ServicesDep) -> dict[str, Any]:
    obj, grant = visible(db, caller, run_id, OBJECT_TYPE)
    data, _ = part_bytes(obj, grant, "summary", caller, svc)
    return {**_run_out(obj, caller, svc), "summary": json_value(json.loads(data))}


def _scores(obj: SharedObject, grant: Grant | None, caller: Caller, svc: ServicesDep) -> list[dict[str, Any]]:
    data, _ = part_bytes(obj, grant, "scores", caller, svc)
    rows: list[dict[str, Any]] = pq.read_table(io.BytesIO(data)).to_pylist()
    return rows


@router.get("/simulations/{run_id}/scores", summary="Per-scenario scores of a run (worst first by default)")
def scores(
    run_id: RunPath,
    caller: CallerDep,
    db: DbDep,
    svc: ServicesDep,
    page: PageDep,
    status: Annotated[Literal["ok", "skipped", "failed"] | None, Query()] = None,
    sort: Annotated[
        Literal["nuplan_cls", "-nuplan_cls", "navsim_pdms", "-navsim_pdms", "scenario_id"], Query()
    ] = "nuplan_cls",
) -> dict[str, Any]:
    obj, grant = visible(db, caller, run_id, OBJECT_TYPE)
    rows = _scores(obj, grant, caller, svc)
    if status:
        rows = [r for r in rows if r.get("status") == status]
    key = sort.lstrip("-")
    # skipped and failed scenarios have no score: they go last in either order
    has = [isinstance(r.get(key), int | float | str) and r.get(key) == r.get(key) for r in rows]  # NaN != NaN
    scored = [r for r, ok in zip(rows, has, strict=True) if ok]
    unscored = [r for r, ok in zip(rows, has, strict=True) if not ok]
    scored.sort(key=lambda r: (r[key], str(r.get("scenario_id"))), reverse=sort.startswith("-"))
    rows = scored + sorted(unscored, key=lambda r: str(r.get("scenario_id")))
    keep: tuple[str, ...] = ("scenario_id", "source", "status", "reason", "num_steps", "num_agents")
    keep += (*SCORE_KEYS, "at_fault_collisions", "min_ttc_s", "ego_progress_m", "expert_progress_m")
    items = [{k: r.get(k) for k in keep} for r in rows[page.offset : page.offset + page.limit]]
    return page.wrap(json_value(items), len(rows))


@router.get(
    "/simulations/{run_id}/rollouts/{scenario_id:path}",
    summary="Playback: one scenario's rollout over its log, with that rollout's scores (run owner only)",
)
def get_rollout(
    run_id: RunPath, scenario_id: ScenarioPath, caller: CallerDep, db: DbDep, svc: ServicesDep
) -> dict[str, Any]:
    obj, grant = visible(db, caller, run_id, OBJECT_TYPE)
    if grant is not None:
        raise ResidencyError(
            "playback reads the scenario's raw rows, which stay with the run's owner; "
            "the run's scores are what was shared"
        )
    if not caller.can("viewer"):
        raise PermissionDeniedError("playback needs the viewer role")
    row = find_row(_scores(obj, grant, caller, svc), scenario_id)
    snap = svc.gateway.snapshot(caller.principal, obj.region, int(obj.meta["lake_version"]))
    found = [s for s in snap.scenarios(ids=[scenario_id]) if s.metadata.tenant == caller.tenant]
    if not found:
        from datadrive.errors import NotFoundError

        raise NotFoundError(f"no scenario {scenario_id!r} in region {obj.region}")
    scene = rollout(found[0], obj.meta)
    return {**scene, "run": {"id": obj.id, "name": obj.name, **obj.meta}, "stored_scores": json_value(row)}
