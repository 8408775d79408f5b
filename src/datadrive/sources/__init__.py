"""Source adapters: one per drive-log format, registered explicitly here.

Importing this package is light: each adapter imports its heavy dependencies
(pyarrow, the Waymo protobuf modules) inside the functions that read, so the
registry can claim any path without them and a reader loads only its own.

>>> from datadrive.sources import DEFAULT_REGISTRY
>>> adapter = DEFAULT_REGISTRY.detect("scenario_0a1e.parquet")  # doctest: +SKIP
>>> scenarios = adapter.read_all("scenario_0a1e.parquet")      # doctest: +SKIP
"""

from __future__ import annotations

from datadrive.sources.av2_motion import Av2MotionForecastingAdapter
from datadrive.sources.av2_sensor import Av2SensorAdapter
from datadrive.sources.base import (
    Adapter,
    Discovery,
    Record,
    Registry,
    Unit,
    file_sha256,
    files_sha256,
    read_units,
)
from datadrive.sources.comma2k19 import Comma2k19Adapter
from datadrive.sources.commonroad import CommonRoadAdapter
from datadrive.sources.interaction import InteractionAdapter
from datadrive.sources.lanelet2_map import Lanelet2MapAdapter
from datadrive.sources.lyft import LyftZarrAdapter
from datadrive.sources.ngsim_roadway import NgsimRoadwayAdapter
from datadrive.sources.nuplan import NuPlanAdapter
from datadrive.sources.scenarionet import ScenarioNetAdapter
from datadrive.sources.udacity import UdacitySteeringAdapter
from datadrive.sources.waymo_motion import WaymoMotionAdapter

DEFAULT_REGISTRY = Registry(
    adapters=(
        WaymoMotionAdapter(),
        LyftZarrAdapter(),
        Comma2k19Adapter(),
        UdacitySteeringAdapter(),
        ScenarioNetAdapter(),
        NuPlanAdapter(),
        InteractionAdapter(),
        Lanelet2MapAdapter(),
        CommonRoadAdapter(),
        NgsimRoadwayAdapter(),
        Av2MotionForecastingAdapter(),
        Av2SensorAdapter(),
    )
)
"""Every adapter datadrive ships, in a fixed order."""

READER_MODULES = (
    "pyarrow",
    "pyarrow.compute",
    "pyarrow.csv",
    "pyarrow.feather",
    "pyarrow.parquet",
    "google.protobuf.message",
    "datadrive.sources.waymo_protos.map_pb2",
    "datadrive.sources.waymo_protos.scenario_pb2",
    "numcodecs.blosc",  # the Lyft reader's (an extra: a fork server skips what is not installed)
)
"""The heavy modules the adapters import when they read (never at import: see the module docstring).

A process that forks many readers (the lake's ingest pool) imports them once, beforehand."""

__all__ = [
    "DEFAULT_REGISTRY",
    "READER_MODULES",
    "Adapter",
    "Discovery",
    "Record",
    "Registry",
    "Unit",
    "file_sha256",
    "files_sha256",
    "read_units",
]
