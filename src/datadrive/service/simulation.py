"""Simulation in the service: the ``simulate`` and ``fleet`` jobs, and rollout playback.

Everything here calls :mod:`datadrive.sim`; the service adds what a shared,
multi-tenant server needs around it:

- **bounds**: a job names a built-in policy (``log``, ``cv``, ``idm``: a
  tenant cannot make the server import a module of its choosing), and a run
  that would cover more scenarios than ``max_scenarios`` is refused before
  it starts, with the count;
- **maps from a catalogue**: fleet generation draws on maps the operator put
  in ``ServiceSettings.maps_dir`` (named by file name; never a path a caller
  chooses);
- **a shareable object**: a finished run is a ``simulation`` object whose
  parts are the library's ``metrics`` artefacts (``summary.json`` and
  ``scores.parquet``), so sharing it lets partners abroad read exactly what
  the region's policy lets metrics do;
- **playback**: the rollout of one scenario of a run, recomputed by the
  simulator with the run's policy, agents and seed, drawn over the log.
  The simulator is a function of (scenarios, policy, config, seed) and of the
  batch's padded shape, which seeds the reactive agents' lane-change phases:
  a non-reactive run replays exactly (the test checks the scores are equal);
  a reactive one may differ from the scored batch in those phases, and the
  page shows the scores of the rollout it draws.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from datadrive.errors import InputError, NotFoundError

if TYPE_CHECKING:
    from datadrive.core.scenario import Scenario
    from datadrive.service.jobs.framework import JobContext

__all__ = [
    "MAP_SUFFIXES",
    "OBJECT_TYPE",
    "check_fleet",
    "check_simulate",
    "fleet_job",
    "fleet_maps",
    "options",
    "rollout",
    "simulate_job",
]

OBJECT_TYPE = "simulation"
"""The type of the shareable object a simulate job registers."""

MAP_SUFFIXES = (".osm", ".xml", ".json", ".pkl", ".db", ".tfrecord", ".parquet")
"""Files the fleet-map catalogue lists (the registry decides whether it can read them)."""

MAX_SCENARIOS = 2_000
MAX_FLEET = 5_000
_MAP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,199}$")
_POLICY_NOTES = {
    "log": "replays the logged ego (the metrics' reference)",
    "cv": "constant velocity from the first state",
    "idm": "PDM-Closed-style: IDM along the route, speed proposals checked 4 s ahead",
}


def fleet_maps(maps_dir: Path | None) -> list[str]:
    """Names of the maps in the operator's catalogue (files directly in ``maps_dir``)."""
    if maps_dir is None or not maps_dir.is_dir():
        return []
    return sorted(p.name for p in maps_dir.iterdir() if p.is_file() and p.suffix.lower() in MAP_SUFFIXES)


def options(maps_dir: Path | None) -> dict[str, Any]:
    """What a simulate or fleet job may ask for."""
    from datadrive.sim.fleet import EVENT_TYPES, FleetConfig
    from datadrive.sim.policies import POLICIES

    return {
        "policies": [{"name": p, "description": _POLICY_NOTES.get(p, "")} for p in POLICIES],
        "max_scenarios": MAX_SCENARIOS,
        "maps": fleet_maps(maps_dir),
        "event_types": list(EVENT_TYPES),
        "default_event_rates": dict(FleetConfig(maps=()).event_rates),
        "max_fleet": MAX_FLEET,
    }


def _int(params: Mapping[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InputError(f"params.{name}", f"an integer from {lo} to {hi}")
    return value


def check_simulate(params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """A simulate job's parameters, checked (a built-in policy, bounded sizes)."""
    from datadrive.sim.policies import POLICIES

    policy = params.get("policy", "idm")
    if policy not in POLICIES:
        raise InputError(
            "params.policy", f"one of {', '.join(POLICIES)} (the service runs built-in policies)"
        )
    query = params.get("query")
    if query is not None and (not isinstance(query, str) or len(query) > 2000 or ";" in query):
        raise InputError(
            "params.query", "one SQL boolean expression over scenarios (at most 2,000 characters)"
        )
    reactive = params.get("reactive", False)
    if not isinstance(reactive, bool):
        raise InputError("params.reactive", "true or false")
    limit = int(settings.get("max_scenarios", MAX_SCENARIOS))
    return {
        "policy": policy,
        "reactive": reactive,
        "query": (query or "").strip() or None,
        "seed": _int(params, "seed", 0, 0, 2**31 - 1),
        "batch_size": _int(params, "batch_size", 16, 1, 64),
        "max_scenarios": _int(params, "max_scenarios", min(200, limit), 1, limit),
    }


def check_fleet(params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """A fleet job's parameters, checked (a map of the catalogue, bounded count, rates in [0, 1])."""
    from datadrive.sim.fleet import EVENT_TYPES

    name = params.get("map")
    maps_dir = settings.get("maps_dir")
    known = fleet_maps(Path(maps_dir) if maps_dir else None)
    if not isinstance(name, str) or not _MAP_NAME.match(name) or name not in known:
        listed = ", ".join(known) or "none: the operator has not configured a map catalogue (serve --maps)"
        raise InputError("params.map", f"a map of the service's catalogue ({listed})")
    rates = params.get("event_rates", {})
    if not isinstance(rates, dict) or any(
        k not in EVENT_TYPES or isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 1
        for k, v in rates.items()
    ):
        raise InputError("params.event_rates", f"probabilities in [0, 1] for {', '.join(EVENT_TYPES)}")
    return {
        "map": name,
        "scenarios": _int(params, "scenarios", 100, 1, MAX_FLEET),
        "seed": _int(params, "seed", 0, 0, 2**31 - 1),
        "event_rates": {str(k): float(v) for k, v in rates.items()},
    }


# --------------------------------------------------------------------------- jobs (run in a worker)


def simulate_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Simulate the scenarios the query selects, store the scores, register a ``simulation`` object."""
    from datadrive.compute import InlineEngine, Progress
    from datadrive.errors import TooLargeError
    from datadrive.sim.runner import SimRequest, select_ids, simulate_lake

    region = ctx.region or params["region"]
    ctx.progress(0, 1, "selecting scenarios", force=True)
    version, ids = select_ids(ctx.lake, region, query=params.get("query"), dataset=None, version=None)
    if len(ids) > params["max_scenarios"]:
        raise TooLargeError(
            "params.query",
            f"selects {len(ids):,} scenarios; this job may run {params['max_scenarios']:,} "
            "(narrow the query or raise max_scenarios)",
        )
    if not ids:
        raise InputError("params.query", f"selects no scenarios in {region} at lake version {version}")
    ctx.log(f"{len(ids)} scenarios at lake version {version}; policy {params['policy']}")
    request = SimRequest(
        policy=params["policy"],
        reactive=params["reactive"],
        batch_size=params["batch_size"],
        seed=params["seed"],
    )

    def on_progress(p: Progress) -> None:
        ctx.progress(p.done, p.total or 1, f"batch {p.done}/{p.total or '?'}")

    report = simulate_lake(
        ctx.lake,
        region,
        request,
        query=params.get("query"),
        version=version,
        engine=InlineEngine(),
        progress=on_progress,
    )
    summary = report.summary
    means = {k: v for k, v in summary["means"].items() if v is not None}
    folder = f"sim/{report.run_id}"
    parts = {
        "summary": {"kind": "metrics", "object": f"derived/metrics/{folder}/summary.json"},
        "scores": {"kind": "metrics", "object": f"derived/metrics/{folder}/scores.parquet"},
    }
    reactive = " with reactive agents" if params["reactive"] else ""
    name = f"{params['policy']}{reactive} on {summary['scenarios']} scenarios"
    meta = {
        "run_id": report.run_id,
        "policy": params["policy"],
        "reactive": params["reactive"],
        "seed": params["seed"],
        "batch_size": params["batch_size"],
        "query": params.get("query"),
        "lake_version": report.lake_version,
        "scenarios": summary["scenarios"],
        "ok": summary["ok"],
        "skipped": summary["skipped"],
        "failed": summary["failed"],
        "means": means,
        "metric_version": summary.get("metric_version"),
    }
    object_id = ctx.register_object(OBJECT_TYPE, name, region, parts=parts, meta=meta)
    cls = means.get("nuplan_cls")
    ctx.log(
        f"{summary['ok']} simulated, {summary['skipped']} skipped, {summary['failed']} failed"
        + (f"; mean nuPlan CLS {cls:.3f}" if cls is not None else "")
    )
    return {
        "object_id": object_id,
        "run_id": report.run_id,
        "scenarios": summary["scenarios"],
        "means": means,
    }


def fleet_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Generate synthetic scenarios on a catalogue map into the job's region."""
    from datadrive.compute import InlineEngine
    from datadrive.sim.fleet import FleetConfig, generate_into_lake

    maps_dir = ctx.settings.get("maps_dir")
    path = Path(str(maps_dir)) / params["map"] if maps_dir else None
    if path is None or params["map"] not in fleet_maps(path.parent):
        raise InputError("params.map", "is no longer in the service's map catalogue")
    region = ctx.region or params["region"]
    rates = {**FleetConfig(maps=()).event_rates, **params.get("event_rates", {})}
    cfg = FleetConfig(maps=(str(path),), seed=params["seed"], event_rates=rates)
    ctx.progress(0, params["scenarios"], "loading the map", force=True)
    report = generate_into_lake(
        ctx.lake,
        region,
        cfg,
        params["scenarios"],
        commit_every=250,
        engine=InlineEngine(),
        progress=lambda done, total: ctx.progress(done, total, f"{done}/{total} scenarios"),
    )
    ctx.log(
        f"{report.scenarios} synthetic scenarios in {report.commits} commits; lake version "
        f"{report.lake_version}; events {report.events}"
    )
    return {
        "scenarios": report.scenarios,
        "commits": report.commits,
        "lake_version": report.lake_version,
        "events": report.events,
        "seconds": round(report.seconds, 2),
    }


# --------------------------------------------------------------------------- playback


def rollout(scenario: Scenario, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The viewer's scene of one scenario of a run, with the run's rollout over the log, and its scores.

    Raises:
        SimulationInputError: if the simulator cannot run the scenario (the run skipped it too).
    """
    from datadrive.service.convert import json_value
    from datadrive.service.scene import rollout_scene_json
    from datadrive.sim.backend import backend_for
    from datadrive.sim.metrics import scenario_metrics
    from datadrive.sim.policies import make_policy
    from datadrive.sim.prepare import PrepareConfig, prepare
    from datadrive.sim.simulator import SimConfig, Simulator

    prepared = prepare(scenario, PrepareConfig())
    sim = Simulator(
        SimConfig(reactive=bool(meta.get("reactive")), seed=int(meta.get("seed", 0))), backend_for(None)
    )
    ro = sim.run(sim.batch([prepared]), make_policy(str(meta.get("policy", "log"))))
    n_agents, n_steps = prepared.num_agents, prepared.num_steps
    scores = scenario_metrics(prepared, ro, 0)
    t_s = (prepared.scenario.timestamps_ns - prepared.scenario.timestamps_ns[0]) / 1e9
    marks = [
        {
            "label": f"{'at-fault ' if e['at_fault'] else ''}collision ({e['type'].replace('_', ' ')})",
            "t_start_s": float(t_s[min(e["step"], n_steps - 1)]),
            "t_end_s": float(t_s[min(e["step"] + 5, n_steps - 1)]),
            "track_ids": [e["track_id"]],
        }
        for e in scores.get("collision_events", [])
    ]
    off = scores.get("first_drivable_area_violation_step")
    if off is not None:
        marks.append(
            {
                "label": "leaves the drivable area",
                "t_start_s": float(t_s[off]),
                "t_end_s": float(t_s[min(off + 5, n_steps - 1)]),
                "track_ids": [],
            }
        )
    label = f"{meta.get('policy')}" + (", reactive agents" if meta.get("reactive") else ", log-replay agents")
    scene = rollout_scene_json(
        prepared.scenario,
        track_ids=prepared.track_ids,
        x_m=np.asarray(ro.x_m[0, :n_agents, :n_steps]),
        y_m=np.asarray(ro.y_m[0, :n_agents, :n_steps]),
        heading_rad=np.asarray(ro.heading_rad[0, :n_agents, :n_steps]),
        speed_mps=np.abs(np.asarray(ro.speed_mps[0, :n_agents, :n_steps])),
        valid=np.asarray(ro.valid[0, :n_agents, :n_steps]),
        label=label,
        events=marks,
        max_steps=600,
    )
    scores.pop("collision_events", None)
    scene["scores"] = json_value(json.loads(json.dumps(scores, default=float)))
    return scene


def find_row(rows: list[dict[str, Any]], scenario_id: str) -> dict[str, Any]:
    """The score row of ``scenario_id`` in a run.

    Raises:
        NotFoundError: if the run did not cover it.
    """
    for r in rows:
        if r.get("scenario_id") == scenario_id:
            return r
    raise NotFoundError(f"the run did not simulate a scenario {scenario_id!r}")
