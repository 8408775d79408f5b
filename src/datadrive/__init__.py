"""datadrive: the software of an autonomous-driving computing center.

The public API is what ``__all__`` lists; everything else may change.
"""

from datadrive.core import (
    CanFrames,
    MapBuilder,
    MapFeatureKind,
    MapFeatures,
    MapRelation,
    ObjectType,
    Provenance,
    Scenario,
    ScenarioMetadata,
    ScenarioTables,
    Signal,
    Telemetry,
    Tracks,
    TrafficLights,
    TrafficLightState,
    scenarios_equal,
    scenarios_from_arrow,
    scenarios_to_arrow,
    summarize,
)
from datadrive.sources import DEFAULT_REGISTRY, Adapter, Registry

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_REGISTRY",
    "Adapter",
    "CanFrames",
    "MapBuilder",
    "MapFeatureKind",
    "MapFeatures",
    "MapRelation",
    "ObjectType",
    "Provenance",
    "Registry",
    "Scenario",
    "ScenarioMetadata",
    "ScenarioTables",
    "Signal",
    "Telemetry",
    "Tracks",
    "TrafficLightState",
    "TrafficLights",
    "__version__",
    "scenarios_equal",
    "scenarios_from_arrow",
    "scenarios_to_arrow",
    "summarize",
]
