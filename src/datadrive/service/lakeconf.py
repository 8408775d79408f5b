"""Where the service reads the lake's configuration: one small adapter.

The loader of ``datadrive.toml`` and the tenants' key files lives at the
edge today (``datadrive.cli.lake.load_lake_config``), and is moving into the
library with an explicit environment argument (issue 7). The service, its
job workers and its tests call :func:`load_lake_config` here, so the switch
to the library's loader is one edit in this module.

The CLI sits above the service in the layers contract, so until then the
edge's loader is reached by name at call time rather than imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from datadrive.lake import LakeConfig

__all__ = ["load_lake_config"]


def load_lake_config(lake: Path, env: Mapping[str, str]) -> LakeConfig:
    """The lake's :class:`~datadrive.lake.LakeConfig`, read from ``lake`` (a folder or the file).

    Args:
        lake: Folder holding ``datadrive.toml``, or the file.
        env: Environment variables a tenant's ``key_env`` may name.

    Raises:
        ConfigError: if the file is missing or wrong.
    """
    del env  # the edge's loader reads key_env from the process; the library's takes it explicitly
    edge = importlib.import_module("datadrive.cli.lake")
    return cast("LakeConfig", edge.load_lake_config(Path(lake)))
