"""The lake's cheaper fixed costs keep its layout, protocol and durability.

* A local lake's tables are created by writing their version-0 commits
  directly (``RegionStore._create``): the ``protocol`` and ``metaData``
  actions must be exactly what ``DeltaTable.create`` writes, and the tables
  must read, check, answer SQL and time travel like any other.
* ``ensure`` leaves a table another process created meanwhile as it is.
* ``latest`` skips deltalake's update when no commit file follows the kept
  handle's version, and still sees another process's commit.
* A commit syncs version 0 of a table with its first pin, and skips the
  staged files an ingest synced ahead of it (``presync``), whose folders
  are synced then; power loss itself is ``test_durability.py``'s.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lake_synth
import pyarrow as pa
import pytest
from deltalake import DeltaTable

import datadrive.lake.tables as tables_module
from datadrive.lake import Lake
from datadrive.lake.config import RegionConfig
from datadrive.lake.schema import AUDIT, INGESTS, SCENARIOS, TRACKS, lake_tables
from datadrive.lake.staging import file_schema, stage_rows
from datadrive.lake.storage import StorageRoot
from datadrive.lake.tables import RegionStore, table_configuration

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def _actions(table: Path, version: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in (table / "_delta_log" / f"{version:020d}.json").read_text().splitlines():
        out.update(json.loads(line))
    return out


def test_direct_creation_writes_what_deltalake_writes(tmp_path: Path) -> None:
    store = RegionStore(RegionConfig("eu-central", StorageRoot(str(tmp_path / "direct"))))
    store.ensure(NOW)
    for spec in lake_tables():
        ref = tmp_path / "ref" / spec.name
        DeltaTable.create(
            str(ref),
            spec.schema,
            partition_by=list(spec.partition_by) or None,
            name=spec.name,
            description=spec.description,
            configuration=table_configuration(spec),
            raise_if_key_not_exists=False,
        )
        ours, theirs = _actions(tmp_path / "direct" / spec.name), _actions(ref)
        assert ours["commitInfo"]["operation"] == "CREATE TABLE"
        assert ours["protocol"] == theirs["protocol"], spec.name
        drop = ("id", "createdTime")
        assert {k: v for k, v in ours["metaData"].items() if k not in drop} == {
            k: v for k, v in theirs["metaData"].items() if k not in drop
        }, spec.name
        dt = DeltaTable(str(tmp_path / "direct" / spec.name))
        assert dt.version() == 0
        assert pa.schema(dt.schema().to_arrow()) == pa.schema(DeltaTable(str(ref)).schema().to_arrow())
        assert dt.metadata().partition_columns == list(spec.partition_by)
        assert dt.metadata().configuration == table_configuration(spec)
    # the ledger's version 0 records every data table at its version 0
    record = json.loads(_actions(tmp_path / "direct" / INGESTS.name)["commitInfo"]["datadrive"])
    assert record["op"] == "create"
    assert set(record["versions"].values()) == {0}
    assert store.resolve(0).operation == "create"


def test_a_new_lake_checks_reads_and_time_travels(
    make_lake: Callable[..., Lake], inputs: Callable[..., list[Path]]
) -> None:
    lake = make_lake("ana", "bmw", "eu-central")
    assert lake.init(["eu-central"]) == {"eu-central": 0}
    assert lake.check("eu-central").ok
    assert lake.sql("SELECT count(*) AS n FROM scenarios", "eu-central").table.column("n")[0].as_py() == 0
    assert lake.verify_audit("eu-central").ok

    paths = inputs(range(3), scenarios=2)
    report = lake.ingest(paths, "eu-central", registry=lake_synth.REGISTRY)
    assert report.ok
    assert report.lake_version_after == 1
    assert lake.check("eu-central").ok
    count = "SELECT count(*) AS n FROM scenarios"
    assert lake.sql(count, "eu-central").table.column("n")[0].as_py() == 6
    assert lake.sql(count, "eu-central", version=0).table.column("n")[0].as_py() == 0  # time travel
    tracks = lake.snapshot("eu-central", 0).table("tracks")
    assert tracks.num_rows == 0
    assert lake.verify_audit("eu-central").ok


def test_ensure_keeps_a_table_another_process_created(tmp_path: Path) -> None:
    root = tmp_path / "eu"
    region = RegionConfig("eu-central", StorageRoot(str(root)))
    DeltaTable.create(  # as another process's ensure would, between our check and our write
        str(root / SCENARIOS.name),
        SCENARIOS.schema,
        partition_by=list(SCENARIOS.partition_by),
        name=SCENARIOS.name,
        description=SCENARIOS.description,
        configuration=table_configuration(SCENARIOS),
        raise_if_key_not_exists=False,
    )
    theirs = _actions(root / SCENARIOS.name)["metaData"]["id"]
    store = RegionStore(region)
    monkey_exists = store.exists
    store.exists = lambda spec: False if spec is SCENARIOS else monkey_exists(spec)  # type: ignore[method-assign]
    store.ensure(NOW)  # it tries to create scenarios too: the version is taken, which is fine
    assert _actions(root / SCENARIOS.name)["metaData"]["id"] == theirs
    assert not (root / SCENARIOS.name / "_delta_log" / f"{1:020d}.json").exists()
    fresh = RegionStore(region)
    assert {spec.name for spec in lake_tables() if fresh.exists(spec)} == {s.name for s in lake_tables()}
    assert fresh.lake_version() == 0


def test_latest_sees_another_stores_commit(tmp_path: Path) -> None:
    region = RegionConfig("eu-central", StorageRoot(str(tmp_path / "eu")))
    ours = RegionStore(region)
    ours.ensure(NOW)
    assert ours.head(TRACKS) == 0
    handle = ours.latest(TRACKS)
    assert ours.latest(TRACKS) is handle  # nothing new: the kept handle, not updated
    other = RegionStore(region)
    from deltalake import write_deltalake

    rows = TRACKS.schema.empty_table()
    write_deltalake(other.uri(TRACKS), rows, mode="append", partition_by=list(TRACKS.partition_by))
    assert ours.head(TRACKS) == 1


def _synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = tables_module.fsync_paths

    def record(paths: Any) -> None:
        paths = list(paths)
        calls.extend(paths)
        real(paths)

    monkeypatch.setattr(tables_module, "fsync_paths", record)
    return calls


def test_the_first_pin_syncs_version_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deltalake import write_deltalake

    root = tmp_path / "eu"
    store = RegionStore(RegionConfig("eu-central", StorageRoot(str(root))))
    store.ensure(NOW)
    write_deltalake(store.uri(TRACKS), TRACKS.schema.empty_table(), mode="append")
    synced = _synced(monkeypatch)
    store.make_pins_durable(store.resolve(None), {TRACKS.name: 1})
    log = root / TRACKS.name / "_delta_log"
    assert str(log / f"{0:020d}.json") in synced  # created unsynced, synced with the first pin
    assert str(log / f"{1:020d}.json") in synced
    synced.clear()
    write_deltalake(store.uri(TRACKS), TRACKS.schema.empty_table(), mode="append")
    store.make_durable(TRACKS, 1, 2)
    assert str(log / f"{0:020d}.json") not in synced
    assert str(log / f"{2:020d}.json") in synced


def test_a_commit_skips_presynced_files_and_syncs_new_folders_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datadrive.lake.commit as commit

    root = tmp_path / "eu"
    store = RegionStore(RegionConfig("eu-central", StorageRoot(str(root))))
    store.ensure(NOW)
    schemas = {
        spec.name: file_schema(pa.schema(store.latest(spec).schema().to_arrow()), spec)
        for spec in (SCENARIOS, TRACKS)
    }

    def staged(batch: str) -> list[Any]:
        given = {"tenant": "bmw", "source": "synthetic", "ingest_date": "2026-12-07", "batch_id": batch}
        rows = pa.table(
            {
                f.name: pa.array([given[f.name]], f.type) if f.name in given else pa.nulls(1, f.type)
                for f in TRACKS.schema
            }
        )
        return list(stage_rows(store.root, [(TRACKS, rows)], schemas, name=batch))

    first = staged("b1")
    path = str(root / TRACKS.name / first[0].path)
    synced = _synced(monkeypatch)
    store.presync([(f.table, f.path) for f in first])
    assert path in synced
    partition = os.path.dirname(path)
    assert partition in synced
    assert str(root / TRACKS.name) in synced
    synced.clear()
    versions = commit.add_files(store, first)
    store.make_pins_durable(store.resolve(None), versions)
    assert path not in synced  # synced ahead: not again
    assert str(root / TRACKS.name / "_delta_log" / f"{1:020d}.json") in synced

    second = staged("b2")  # same partition folder, already durable: only its own entry
    synced.clear()
    versions = commit.add_files(store, second)
    store.make_pins_durable(store.resolve(None), versions)
    assert str(root / TRACKS.name / second[0].path) in synced
    assert partition in synced
    assert str(root / TRACKS.name) not in synced
    assert str(root) not in synced
    assert DeltaTable(store.uri(TRACKS)).to_pyarrow_table().num_rows == 2


def test_audit_of_a_new_lake_starts_at_genesis(make_lake: Callable[..., Lake]) -> None:
    lake = make_lake("ana", "bmw", "eu-central")
    lake.init(["eu-central"])
    rows = lake.audit_log("eu-central")
    assert rows.column("seq").to_pylist()[0] == 0
    assert rows.column("prev_hash").to_pylist()[0] == "0" * 64
    assert DeltaTable(str(Path(lake.config.region("eu-central").root.uri) / AUDIT.name)).version() >= 1
