"""Compute engines shared by every layer: map a function over units, inline, on a process pool or on Ray.

This package sits low in the stack (beside :mod:`datadrive.sources`, above
:mod:`datadrive.core`), so ingest, tagging, feature-cache builds, simulation
and training data preparation all run on the same engines. It imports nothing
of datadrive but :mod:`datadrive.errors`; Ray is the ``[ray]`` extra and is
imported only when a :class:`RayEngine` runs.

>>> from datadrive.compute import InlineEngine
>>> report = InlineEngine().map(abs, [-1, 2, -3])
>>> report.values
(1, 2, 3)

The engine is a parameter, not a fork of the code (DESIGN.md): a layer takes
an :class:`Engine` and calls :meth:`Engine.map` (every result, in unit order)
or :meth:`Engine.imap` (outcomes as they finish, for pipelines that commit as
they go). A unit whose function raises becomes a :class:`UnitFailure` in the
report; it never stops the other units.
"""

from datadrive.compute.engines import (
    Engine,
    InlineEngine,
    MapReport,
    Outcome,
    ProcessPoolEngine,
    Progress,
    UnitFailure,
    default_workers,
)
from datadrive.compute.ray_engine import RayEngine

__all__ = [
    "Engine",
    "InlineEngine",
    "MapReport",
    "Outcome",
    "ProcessPoolEngine",
    "Progress",
    "RayEngine",
    "UnitFailure",
    "default_workers",
]
