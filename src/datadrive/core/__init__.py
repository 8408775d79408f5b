"""Core types every layer shares: the Scenario, Telemetry, their Arrow form."""

from datadrive.core.arrow import ScenarioTables, scenarios_from_arrow, scenarios_to_arrow
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
