"""The public API is what ``__all__`` says, and every name in it exists."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import datadrive


def _modules() -> list[str]:
    """Every datadrive module, namespace packages' included (generated protobuf code aside)."""
    root = Path(datadrive.__file__).parent
    names = set()
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1].endswith("_pb2"):
            continue
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


MODULES = _modules()


def _all_order(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions and the rest."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def test_every_layer_is_walked() -> None:
    layers = (
        "datadrive.core",
        "datadrive.compute",
        "datadrive.sources",
        "datadrive.lake",
        "datadrive.curate",
        "datadrive.models",
        "datadrive.train",
        "datadrive.evaluate",
        "datadrive.sim",
        "datadrive.mining",
        "datadrive.assistant",
        "datadrive.cli",
    )
    for layer in layers:
        assert any(m == layer or m.startswith(layer + ".") for m in MODULES), layer


@pytest.mark.parametrize("name", MODULES, ids=MODULES)
def test_all_names_exist_and_are_sorted_unique(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        defined = [n for n, v in vars(module).items() if getattr(v, "__module__", None) == name]
        assert not [n for n in defined if not n.startswith("_")], (
            f"{name} defines public names but no __all__"
        )
        return
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    assert list(exported) == sorted(exported, key=_all_order), f"{name}.__all__ is not sorted"
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
        if symbol == "one_line":  # the one helper: how every error quotes outside text
            continue
        assert issubclass(cls, errors.DatadriveError)


def test_input_errors_survive_pickling() -> None:
    """Workers in a process pool or on Ray send errors back pickled."""
    import pickle

    import datadrive.errors as errors

    for symbol in errors.__all__:
        cls = getattr(errors, symbol)
        if isinstance(cls, type) and issubclass(cls, errors.InputError):
            err = cls("logs/a.parquet", "missing columns heading")
            back = pickle.loads(pickle.dumps(err))
            assert type(back) is cls
            assert (back.path, back.reason, str(back)) == (err.path, err.reason, str(err))
