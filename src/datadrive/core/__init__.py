"""Core types every layer shares: the Scenario, Telemetry, their Arrow form.

The Arrow form (:mod:`datadrive.core.arrow`) needs pyarrow; it is imported
when one of its names is first used, so reading a log with an adapter that
does not need pyarrow never loads it.
"""

from typing import TYPE_CHECKING, Any

from datadrive.core.scenario import (
    MapBuilder,
    MapFeatureKind,
    MapFeatures,
    MapRelation,
    ObjectType,
    Provenance,
    Scenario,
    ScenarioMetadata,
    Tracks,
    TrafficLights,
    TrafficLightState,
    scenarios_equal,
)
from datadrive.core.summary import SUMMARY_KEYS, summarize
from datadrive.core.telemetry import CanFrames, Signal, Telemetry

if TYPE_CHECKING:
    from datadrive.core.arrow import ScenarioTables, scenarios_from_arrow, scenarios_to_arrow

_LAZY = {
    "ScenarioTables": "datadrive.core.arrow",
    "scenarios_from_arrow": "datadrive.core.arrow",
    "scenarios_to_arrow": "datadrive.core.arrow",
}


def __getattr__(name: str) -> Any:
    """The Arrow-form names, imported on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SUMMARY_KEYS",
    "CanFrames",
    "MapBuilder",
    "MapFeatureKind",
    "MapFeatures",
    "MapRelation",
    "ObjectType",
    "Provenance",
    "Scenario",
    "ScenarioMetadata",
    "ScenarioTables",
    "Signal",
    "Telemetry",
    "Tracks",
    "TrafficLightState",
    "TrafficLights",
    "scenarios_equal",
    "scenarios_from_arrow",
    "scenarios_to_arrow",
    "summarize",
]
