"""The Python examples of docs/mining.md run as written (with the samples folder and a small lake)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from datadrive.lake import Lake, LakeConfig, Principal, RegionConfig, StorageRoot, TenantConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "mining.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_in_memory_example_runs(samples: Path) -> None:
    code = _blocks()[0].replace('"../shared/data', f'"{samples}')
    namespace: dict[str, object] = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # the documentation's own code
    assert namespace["t"].text == "car and stopped and near(ego)"  # type: ignore[attr-defined]
    assert len(namespace["result"]) == len(namespace["same"]) > 0  # type: ignore[arg-type]


@pytest.mark.slow
def test_the_lake_example_runs(samples: Path, tmp_path: Path) -> None:
    config = LakeConfig(
        regions={"eu-central": RegionConfig("eu-central", StorageRoot(str(tmp_path / "eu")))},
        tenants={"bmw": TenantConfig("bmw", bytes(range(32)))},
    )
    lake = Lake(config, Principal("ana", "bmw", "eu-central"))
    lake.ingest([samples / "waymo_open_motion" / "scenario_637f20cafde22ff8"], "eu-central")
    namespace: dict[str, object] = {"lake": lake}
    exec(compile(_blocks()[1], str(DOC), "exec"), namespace)  # the documentation's own code
    assert namespace["events"].num_rows > 0  # type: ignore[attr-defined]
    pick, dataset = namespace["pick"], namespace["dataset"]
    keys = sorted(zip(dataset.tenants, dataset.sources, dataset.scenario_ids, strict=True))  # type: ignore[attr-defined]
    assert keys == list(pick.keys)  # type: ignore[attr-defined]
