"""The lake's public API is what ``datadrive.lake.__all__`` says."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "datadrive.lake",
    "datadrive.lake.audit",
    "datadrive.lake.check",
    "datadrive.lake.config",
    "datadrive.lake.erase",
    "datadrive.lake.geo",
    "datadrive.lake.ingest",
    "datadrive.lake.pseudonym",
    "datadrive.lake.records",
    "datadrive.lake.schema",
    "datadrive.lake.snapshot",
    "datadrive.lake.sql",
    "datadrive.lake.tables",
]


@pytest.mark.parametrize("name", MODULES, ids=MODULES)
def test_all_names_exist_and_are_unique(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.__all__ names missing {symbol}"
