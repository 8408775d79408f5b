"""Map speed limits in the lake: stored as NULL when unknown; a lake made before the column still reads."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
from lake_synth import make_scenario

from datadrive.lake import Lake
from datadrive.lake.schema import MAP_FEATURES


def _with_limits(seed: int) -> object:
    s = make_scenario(seed)
    assert s.map is not None
    limits = np.full(s.map.num_features, np.nan)
    limits[0] = 13.9
    return replace(s, map=replace(s.map, speed_limit_mps=limits)).validate()


def test_a_lake_from_before_speed_limits_reads_them_as_unknown(
    make_lake: Callable[..., Lake], lake_root: Path
) -> None:
    lake = make_lake(home="eu-central")
    lake.init(["eu-central"])
    # rebuild map_features as a datadrive without the column made it (same version 0, old schema)
    from deltalake import DeltaTable

    table = lake_root / "eu-central" / "map_features"
    old = pa.schema([f for f in MAP_FEATURES.schema if f.name != "speed_limit_mps"])
    meta = DeltaTable(str(table)).metadata()
    shutil.rmtree(table)
    DeltaTable.create(
        str(table),
        old,
        partition_by=list(MAP_FEATURES.partition_by),
        configuration=meta.configuration,
        raise_if_key_not_exists=False,
    )
    before = make_scenario(1)
    lake.ingest_records([before], "eu-central", name="old")  # adds the column, then writes
    after = _with_limits(2)
    lake.ingest_records([after], "eu-central", name="new")  # type: ignore[list-item]
    snap = lake.snapshot("eu-central")
    got = list(snap.scenarios())  # ids are pseudonymised: tell them apart by their limits
    assert len(got) == 2
    assert all(s.map is not None for s in got)
    known = [s for s in got if s.map.speed_limit_mps is not None]  # type: ignore[union-attr]
    assert len(known) == 1  # the old input's limits read as unknown (None), not as zeros
    limits = known[0].map.speed_limits()  # type: ignore[union-attr]
    assert limits[0] == 13.9
    assert np.isnan(limits[1:]).all()
    # unknown limits are NULL in SQL, never NaN
    rows = snap.sql("SELECT count(*) AS n FROM map_features WHERE speed_limit_mps IS NULL").table
    assert rows.column("n")[0].as_py() == 2 * before.map.num_features - 1  # type: ignore[union-attr]
