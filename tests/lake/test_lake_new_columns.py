"""A table made before a column was added gains it at the next commit, and keeps its rows.

``RegionStore.ensure`` (called under the commit lock by every commit) adds the
nullable columns a newer datadrive defines, even where the store already keeps a
handle on the table from before.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

import datadrive.lake.tables as tables_module
from datadrive.errors import LakeError
from datadrive.lake.config import RegionConfig
from datadrive.lake.schema import SCENARIOS, lake_tables
from datadrive.lake.storage import StorageRoot
from datadrive.lake.tables import RegionStore

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def _with_extra_column(monkeypatch: pytest.MonkeyPatch, field: pa.Field) -> None:
    """Make ``ensure`` see a ``scenarios`` spec with one more column (a newer datadrive)."""
    newer = dataclasses.replace(SCENARIOS, schema=SCENARIOS.schema.append(field))
    monkeypatch.setattr(
        tables_module, "lake_tables", lambda: tuple(newer if s is SCENARIOS else s for s in lake_tables())
    )


def test_a_table_gains_a_new_nullable_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    region = RegionConfig("eu-central", StorageRoot(str(tmp_path / "eu")))
    RegionStore(region).ensure(NOW)  # the tables as this datadrive makes them
    uri = str(tmp_path / "eu" / "scenarios")
    before = DeltaTable(uri)
    assert "weather_code" not in before.schema().to_arrow().names

    _with_extra_column(monkeypatch, pa.field("weather_code", pa.int32(), nullable=True))
    store = RegionStore(region)
    store.head(SCENARIOS)  # the store already keeps a handle from before the column existed
    store.ensure(NOW)
    after = DeltaTable(uri)
    assert after.schema().to_arrow().field("weather_code").type == pa.int32()
    assert after.version() == before.version() + 1  # one schema commit
    store.ensure(NOW)  # nothing more to add: no second commit
    assert DeltaTable(uri).version() == after.version()
    assert store.head(SCENARIOS) == after.version()  # the kept handle sees the new version


def test_a_new_column_that_is_not_nullable_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    region = RegionConfig("eu-central", StorageRoot(str(tmp_path / "eu")))
    RegionStore(region).ensure(NOW)
    _with_extra_column(monkeypatch, pa.field("must_have", pa.int32(), nullable=False))
    with pytest.raises(LakeError, match="non-nullable"):
        RegionStore(region).ensure(NOW)
