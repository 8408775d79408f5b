"""The audit log: every action leaves a row; the hash chain detects removed and altered rows."""

from __future__ import annotations

import json
from pathlib import Path

import lake_synth
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from datadrive.errors import ResidencyError
from datadrive.lake import Lake, Principal
from datadrive.lake import audit as audit_log
from datadrive.lake.audit import GENESIS_HASH, row_hash
from datadrive.lake.tables import RegionStore


@pytest.fixture
def busy_lake(make_lake, inputs, config) -> Lake:
    """A lake with ingests, reads, a query and a refusal in its eu-central audit log."""
    lake = make_lake("ana", "bmw", "eu-central")
    lake.ingest(inputs(range(4)), "eu-central", registry=lake_synth.REGISTRY)
    snap = lake.snapshot("eu-central")
    snap.scenarios()
    snap.sql("SELECT count(*) FROM tracks")
    with pytest.raises(ResidencyError):
        Lake(config, Principal("eve", "bmw", "cn-north")).snapshot("eu-central")
    return lake


def rows(lake: Lake) -> list[dict]:
    return audit_log.read(RegionStore(lake.config.region("eu-central"))).to_pylist()


def test_every_action_appends_a_row(busy_lake) -> None:
    got = [(r["who"], r["action"], r["outcome"]) for r in rows(busy_lake)]
    assert ("ana", "ingest", "ok") in got  # a batch
    assert got.count(("ana", "ingest", "ok")) == 2  # the batch and the run
    assert ("ana", "read", "ok") in got
    assert ("ana", "sql", "ok") in got
    assert ("eve", "read", "refused") in got
    batch = next(r for r in rows(busy_lake) if r["object"].startswith("batch "))
    assert batch["lake_version"] == 1
    assert json.loads(batch["detail"])["inputs"] == 4
    for r in rows(busy_lake):
        assert r["region"] == "eu-central"
        assert r["time"] is not None


def test_rows_form_a_hash_chain(busy_lake) -> None:
    prev = GENESIS_HASH
    table = audit_log.read(RegionStore(busy_lake.config.region("eu-central")))
    times = table.column("time").cast(pa.int64()).to_pylist()
    for i, (r, t) in enumerate(zip(table.to_pylist(), times, strict=True)):
        assert r["seq"] == i
        assert r["prev_hash"] == prev
        fields = (
            r["who"],
            r["tenant"],
            r["home_region"],
            r["region"],
            r["action"],
            r["object"],
            r["lake_version"],
            r["outcome"],
            r["detail"],
        )
        assert r["row_hash"] == row_hash(i, t, fields, prev)
        prev = r["row_hash"]
    result = busy_lake.verify_audit("eu-central")
    assert result.ok, result.problems
    assert result.head_hash == prev


def _audit_table(lake: Lake) -> DeltaTable:
    return DeltaTable(lake.config.region("eu-central").root.table_uri("audit"))


def test_an_altered_row_is_detected(busy_lake) -> None:
    _audit_table(busy_lake).update(updates={"who": "'nobody'"}, predicate="seq = 2")
    result = busy_lake.verify_audit("eu-central")
    assert not result.ok
    assert any("row 2: contents do not match" in p for p in result.problems)
    assert any("UPDATE" in p for p in result.problems)


def test_a_removed_row_is_detected(busy_lake) -> None:
    _audit_table(busy_lake).delete("seq = 3")
    result = busy_lake.verify_audit("eu-central")
    assert not result.ok
    assert any("rows 3..3 are missing" in p for p in result.problems)
    assert any("DELETE" in p for p in result.problems)


def test_removing_the_last_rows_is_detected(busy_lake) -> None:
    n = len(rows(busy_lake))
    _audit_table(busy_lake).delete(f"seq >= {n - 2}")
    result = busy_lake.verify_audit("eu-central")
    assert not result.ok


def test_a_file_rewritten_behind_deltas_back_is_detected(busy_lake) -> None:
    dt = _audit_table(busy_lake)
    path = next(u for u in dt.file_uris() if "ana" in pq.read_table(u).column("who").to_pylist())
    raw = Path(path).read_bytes()
    Path(path).write_bytes(raw.replace(b"ana", b"eve"))  # same size: 'ana' -> 'eve' in the stored bytes
    result = busy_lake.verify_audit("eu-central")
    assert not result.ok
    assert any("contents do not match its hash" in p for p in result.problems), result.problems


def test_a_file_replaced_behind_deltas_back_is_detected(busy_lake) -> None:
    dt = _audit_table(busy_lake)
    path = dt.file_uris()[0]
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 0), path)
    result = busy_lake.verify_audit("eu-central")
    assert not result.ok


def test_verification_survives_compaction(busy_lake) -> None:
    busy_lake.optimize("eu-central")
    result = busy_lake.verify_audit("eu-central")
    assert result.ok, result.problems
    busy_lake.snapshot("eu-central").scenarios()  # appends after a compaction keep the chain
    assert busy_lake.verify_audit("eu-central").ok
