"""The registry imports an adapter's heavy dependencies only when that adapter reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("pyarrow", "google.protobuf", "scipy", "deltalake", "duckdb")
"""What datadrive imports only where needed (pandas is left out: pyarrow's ``to_numpy`` imports it)."""


def loaded_after(code: str) -> dict[str, bool]:
    """Which heavy modules a fresh interpreter holds after running ``code``."""
    probe = f"import sys, json\n{code}\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    loaded: dict[str, bool] = json.loads(out.splitlines()[-1])
    return loaded


def test_importing_datadrive_and_its_registry_loads_no_heavy_dependency() -> None:
    code = "import datadrive\nfrom datadrive.sources import DEFAULT_REGISTRY\nDEFAULT_REGISTRY.names()"
    assert not any(loaded_after(code).values())


def test_claiming_paths_loads_no_heavy_dependency(tmp_path: Path) -> None:
    for name in ("scenario_x.parquet", "a.tfrecord", "log.db", "vehicle_tracks_000.csv", "m.osm", "x.pkl"):
        (tmp_path / name).write_bytes(b"\0" * 64)
    code = f"from datadrive.sources import DEFAULT_REGISTRY\nDEFAULT_REGISTRY.scan([{str(tmp_path)!r}])"
    assert not any(loaded_after(code).values())


@pytest.mark.parametrize(
    ("relative", "needs"),
    [
        ("ngsim_roadway", ()),
        ("lanelet2_map", ()),
        ("nuplan", ()),
        ("waymo_open_motion", ("google.protobuf",)),
        ("av2_motion_forecasting", ("pyarrow",)),
    ],
    ids=["ngsim", "lanelet2", "nuplan", "waymo", "av2-motion"],
)
def test_reading_loads_only_what_the_adapter_needs(
    samples: Path, relative: str, needs: tuple[str, ...]
) -> None:
    code = (
        "from datadrive.sources import DEFAULT_REGISTRY\n"
        f"found = DEFAULT_REGISTRY.scan([{str(samples / relative)!r}])\n"
        "assert found.units\n"
        "unit = found.units[0]\n"
        "assert list(unit.adapter.read(unit.path))\n"
    )
    loaded = loaded_after(code)
    assert {m for m, on in loaded.items() if on} == set(needs)
