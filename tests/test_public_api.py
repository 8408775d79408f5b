"""The public API is what ``__all__`` says, and every name in it exists."""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "datadrive",
    "datadrive.core",
    "datadrive.errors",
    "datadrive.sources",
    "datadrive.sources.base",
    "datadrive.viz",
    "datadrive.curate",
    "datadrive.models",
    "datadrive.train",
    "datadrive.evaluate",
    "datadrive.assistant",
]


@pytest.mark.parametrize("name", MODULES, ids=MODULES)
def test_all_names_exist_and_are_sorted_unique(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(set(exported)) == len(exported)
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.__all__ names missing {symbol}"


def test_top_level_exports_public_core_types() -> None:
    import datadrive
    import datadrive.core

    public_core = {n for n in datadrive.core.__all__ if not n.startswith("_")}
    missing = public_core - set(datadrive.__all__) - {"SUMMARY_KEYS"}
    assert not missing, f"datadrive does not re-export {sorted(missing)}"


def test_error_tree_roots_at_datadrive_error() -> None:
    import datadrive.errors as errors

    for symbol in errors.__all__:
        cls = getattr(errors, symbol)
        assert issubclass(cls, errors.DatadriveError)


def test_input_errors_survive_pickling() -> None:
    """Workers in a process pool or on Ray send errors back pickled."""
    import pickle

    import datadrive.errors as errors

    for symbol in errors.__all__:
        cls = getattr(errors, symbol)
        if issubclass(cls, errors.InputError):
            err = cls("logs/a.parquet", "missing columns heading")
            back = pickle.loads(pickle.dumps(err))
            assert type(back) is cls
            assert (back.path, back.reason, str(back)) == (err.path, err.reason, str(err))
