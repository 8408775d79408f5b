"""Closed-loop simulation on real maps and logs, planning scores, and a synthetic fleet.

The ``sim`` layer may import ``core``, ``compute``, ``sources``, ``viz``,
``lake``, ``mining``, ``curate``, ``models`` and ``train``. Its pieces
(see ``docs/sim.md``):

* :mod:`~datadrive.sim.prepare`: a Scenario to simulator input (0.1 s grid,
  lanes, paths, the ego's route and its profile);
* :mod:`~datadrive.sim.simulator`: the batched simulator (numpy, or torch on
  a device): kinematic bicycle ego, IDM/MOBIL agents, log replay;
* :mod:`~datadrive.sim.policies`: log replay, constant velocity, the
  PDM-Closed-style planner, trained models;
* :mod:`~datadrive.sim.metrics`: nuPlan's closed-loop metrics and score,
  NAVSIM's PDM score (v1), for a whole batch at once;
* :mod:`~datadrive.sim.runner`: streaming runs over scenarios and lake
  snapshots on the compute engines;
* :mod:`~datadrive.sim.fleet`: the synthetic fleet, into a lake
  (:func:`generate_into_lake`, also ``make demo``'s volume).

Names are imported on first use, so ``import datadrive.sim`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "METRIC_VERSION",
    "FleetConfig",
    "FleetReport",
    "SimConfig",
    "SimRequest",
    "SimRunReport",
    "Simulator",
    "batch_metrics",
    "generate_into_lake",
    "make_policy",
    "simulate",
    "simulate_lake",
]

_WHERE = {
    "METRIC_VERSION": "metrics",
    "FleetConfig": "fleet",
    "FleetReport": "fleet",
    "SimConfig": "simulator",
    "SimRequest": "runner",
    "SimRunReport": "runner",
    "Simulator": "simulator",
    "batch_metrics": "metrics",
    "generate_into_lake": "fleet",
    "make_policy": "policies",
    "simulate": "runner",
    "simulate_lake": "runner",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"datadrive.sim.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'datadrive.sim' has no attribute {name!r}")
