"""datadrive: the software of an autonomous-driving computing center.

The public API is what ``__all__`` lists; everything else may change.
Importing datadrive is light: pyarrow (the Arrow form) and each adapter's
heavy dependencies are imported when first used.
"""

from typing import TYPE_CHECKING, Any

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
    Signal,
    Telemetry,
    Tracks,
    TrafficLights,
    TrafficLightState,
    scenarios_equal,
    summarize,
)
from datadrive.sources import DEFAULT_REGISTRY, Adapter, Registry

if TYPE_CHECKING:
    from datadrive.core.arrow import ScenarioTables, scenarios_from_arrow, scenarios_to_arrow


def __getattr__(name: str) -> Any:
    """The Arrow-form names, imported on first use (see :mod:`datadrive.core`)."""
    import datadrive.core

    if name in ("ScenarioTables", "scenarios_from_arrow", "scenarios_to_arrow"):
        return getattr(datadrive.core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
