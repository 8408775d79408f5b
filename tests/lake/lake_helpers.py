"""Helpers shared by the lake tests: the two-region config, tenant keys, listing a region root.

Test modules import them from here (``from lake_helpers import ...``), never
from ``conftest``: with several ``conftest.py`` in the tree, the module named
``conftest`` is whichever was imported last.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import region_configs
from datadrive.lake import (
    Grant,
    LakeConfig,
    StorageRoot,
)
from datadrive.lake.audit import AuditEvent

__all__ = ["KEYS", "audit_event", "root_objects", "root_paths", "two_region_config"]

KEYS = {"bmw": bytes(range(32)), "tencent": bytes(range(32, 64)), "baidu": bytes(range(64, 96))}


def two_region_config(root: Path, *, grants: tuple[Grant, ...] = ()) -> LakeConfig:
    """cn-north (GCJ-02, raw readable only from cn-north, metrics may go to eu-central) and eu-central."""
    return region_configs.two_region_config(root, KEYS, grants=grants)


def root_objects(root: StorageRoot) -> Iterator[tuple[str, bytes]]:
    """``(path, bytes)`` of every file under a region root, local or on an object store."""
    import pyarrow.fs as pafs

    fs = root.filesystem()
    for info in fs.get_file_info(pafs.FileSelector(root.base_path, recursive=True, allow_not_found=True)):
        if info.type == pafs.FileType.File:
            with fs.open_input_stream(info.path) as fh:
                yield info.path, fh.read()


def root_paths(root: StorageRoot) -> list[str]:
    """Paths (relative to the root) of every file under a region root, local or on an object store."""
    import pyarrow.fs as pafs

    infos = root.filesystem().get_file_info(
        pafs.FileSelector(root.base_path, recursive=True, allow_not_found=True)
    )
    start = len(root.base_path) + 1
    return sorted(i.path[start:] for i in infos if i.type == pafs.FileType.File)


def audit_event(i: int) -> AuditEvent:
    """A distinct read event, the ``i``-th, for tests that append to the audit log directly."""
    return AuditEvent(
        who=f"u{i}",
        tenant="bmw",
        home_region="eu-central",
        region="eu-central",
        action="read",
        object=f"thing {i}",
        lake_version=0,
        detail={"i": i},
    )
