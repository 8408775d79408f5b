"""Direct audit commits on local roots: Delta appends, checkpoints, compaction, other writers, tampering."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from deltalake import DeltaTable
from kill_harness import cli_env
from lake_helpers import audit_event

from datadrive.errors import StorageError
from datadrive.lake import audit as audit_log
from datadrive.lake.schema import AUDIT
from datadrive.lake.tables import RegionStore


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def store(make_lake) -> RegionStore:  # type: ignore[no-untyped-def]
    lake = make_lake("ana", "bmw", "eu-central")
    lake.init()
    return RegionStore(lake.config.region("eu-central"))


def _log(store: RegionStore) -> Path:
    return Path(store.root.path(AUDIT.name)) / "_delta_log"


def test_a_direct_commit_is_a_delta_append_that_deltalake_and_verify_read(store) -> None:  # type: ignore[no-untyped-def]
    assert audit_log.DIRECT_COMMITS
    assert store.root.is_local
    before = DeltaTable(store.uri(AUDIT)).version()
    results = [audit_log.append(store, audit_event(i), _now) for i in range(5)]
    dt = DeltaTable(store.uri(AUDIT))  # a fresh reader replays the hand-written commits
    assert dt.version() == before + 5
    last = dt.history(1)[0]
    assert last["operation"] == "WRITE"
    assert last["operationParameters"]["mode"] == "Append"
    assert json.loads(last["datadrive"]) == {
        "op": "audit",
        "head_seq": results[-1][0],
        "head_hash": results[-1][1],
    }
    rows = audit_log.read(store).to_pylist()
    assert [r["object"] for r in rows[-5:]] == [f"thing {i}" for i in range(5)]
    assert [(r["seq"], r["row_hash"]) for r in rows[-5:]] == results
    # each commit added exactly its own file, with the row count in its stats
    adds = [
        json.loads(line)["add"]
        for line in (_log(store) / f"{before + 5:020d}.json").read_text().splitlines()[1:]
    ]
    assert len(adds) == 1
    assert json.loads(adds[0]["stats"])["numRecords"] == 1
    assert (Path(store.root.path(AUDIT.name)) / adds[0]["path"]).stat().st_size == adds[0]["size"]
    assert audit_log.anchor(store) == {"seq": results[-1][0], "hash": results[-1][1]}
    assert audit_log.verify(store).ok
    assert not list(_log(store).glob("*.tmp")), "the temporary commit files are gone"


def test_checkpoints_and_compaction_keep_the_chain_and_bound_the_files(store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(audit_log, "AUDIT_CHECKPOINT_INTERVAL", 10)
    monkeypatch.setattr(audit_log, "COMPACT_FILES", 6)
    queue = None
    compactions = 0
    for i in range(45):
        audit_log.append(store, audit_event(i), _now)  # every 10th starts a checkpoint beside the appends
        queue = audit_log._QUEUES[(store.region.name, store.root.uri)]
        if i % 10 == 9 and queue.maintenance is not None:
            queue.maintenance.join(60)  # let this one finish: the next mark must find it done
        # a compaction changes no row: an append that finds its version taken goes past it
        compactions = [h["operation"] for h in DeltaTable(store.uri(AUDIT)).history()].count("OPTIMIZE")
    assert queue is not None
    if queue.maintenance is not None:
        queue.maintenance.join(60)
    dt = DeltaTable(store.uri(AUDIT))
    assert compactions >= 3
    assert list(_log(store).glob("*.checkpoint.parquet")), "checkpoints were written"
    assert len(dt.file_uris()) <= 6 + 10, len(dt.file_uris())  # compacted at each checkpoint past 6 files
    result = audit_log.verify(store)
    assert result.ok, result.problems
    assert result.rows == len(audit_log.read(store))
    assert [r["seq"] for r in audit_log.read(store).to_pylist()] == list(range(result.rows))


def test_appends_by_another_writer_between_direct_ones_are_seen(store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    audit_log.append(store, audit_event(0), _now)
    monkeypatch.setattr(audit_log, "DIRECT_COMMITS", False)  # delta-rs's commit, as another process's
    audit_log.append(store, audit_event(1), _now)
    monkeypatch.setattr(audit_log, "DIRECT_COMMITS", True)
    seq, _ = audit_log.append(store, audit_event(2), _now)  # the kept tip is stale: read from the table
    rows = audit_log.read(store).to_pylist()
    assert rows[-1]["seq"] == seq == rows[-2]["seq"] + 1
    assert rows[-1]["prev_hash"] == rows[-2]["row_hash"]
    assert audit_log.verify(store).ok


def test_processes_appending_at_once_never_fork_the_chain(store) -> None:  # type: ignore[no-untyped-def]
    script = textwrap.dedent(
        f"""
        import sys
        from datetime import UTC, datetime
        from datadrive.lake import RegionConfig, StorageRoot, audit
        from datadrive.lake.tables import RegionStore
        store = RegionStore(RegionConfig("eu-central", StorageRoot({store.root.uri!r})))
        me = "p" + sys.argv[1]
        for i in range(25):
            event = audit.AuditEvent(me, "bmw", "eu-central", "eu-central", "read", f"{{me}} {{i}}", 0)
            audit.append(store, event, lambda: datetime.now(UTC))
        """
    )
    before = len(audit_log.read(store))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(p)], env=cli_env(), stderr=subprocess.PIPE, text=True
        )
        for p in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
    rows = audit_log.read(store).to_pylist()
    assert len(rows) == before + 75
    assert [r["seq"] for r in rows] == list(range(len(rows)))
    for p in range(3):  # each process's rows in its own order
        mine = [r["object"] for r in rows if r["who"] == f"p{p}"]
        assert mine == [f"p{p} {i}" for i in range(25)]
    result = audit_log.verify(store)
    assert result.ok, result.problems


def test_a_removed_last_commit_stops_the_appends(store) -> None:  # type: ignore[no-untyped-def]
    for i in range(4):
        audit_log.append(store, audit_event(i), _now)
    last = max(_log(store).glob("0*.json"))
    last.unlink()  # the last append's commit, dropped behind the process's back
    with pytest.raises(StorageError, match="ends before the head recorded beside it"):
        audit_log.append(store, audit_event(9), _now)
    assert not audit_log.verify(store).ok


def test_a_deleted_audit_table_is_refused_not_started_again(store) -> None:  # type: ignore[no-untyped-def]
    audit_log.append(store, audit_event(0), _now)
    shutil.rmtree(store.root.path(AUDIT.name))
    with pytest.raises(StorageError, match="audit log is missing"):
        audit_log.append(store, audit_event(1), _now)
    assert not Path(store.root.path(AUDIT.name)).exists()


def test_appends_while_a_compaction_runs_go_past_it(store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(audit_log, "COMPACT_FILES", 5)
    for i in range(30):
        audit_log.append(store, audit_event(i), _now)
    dt = DeltaTable(store.uri(AUDIT))
    before = dt.version()
    racing = []
    compacted: list[bool] = []
    import threading

    def compact() -> None:
        compacted.append(audit_log._compact(store, str(_log(store))))  # as the maintenance thread does

    t = threading.Thread(target=compact)
    t.start()
    for i in range(30, 50):
        racing.append(audit_log.append(store, audit_event(i), _now))
    t.join(60)
    assert compacted == [True]
    history = DeltaTable(store.uri(AUDIT)).history()
    assert any(h["operation"] == "OPTIMIZE" and h["version"] > before for h in history)
    rows = audit_log.read(store).to_pylist()
    assert [r["seq"] for r in rows] == list(range(len(rows)))
    assert [(r["seq"], r["row_hash"]) for r in rows[-20:]] == racing
    result = audit_log.verify(store)
    assert result.ok, result.problems


def test_compaction_merges_the_small_files_and_leaves_the_merged_ones_until_they_are_many(
    store, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    def sizes() -> dict[str, int]:
        adds = DeltaTable(store.uri(AUDIT)).get_add_actions(flatten=True)
        import pyarrow as pa

        d = pa.table(adds).to_pydict()
        return dict(zip(d["path"], d["size_bytes"], strict=True))

    log = str(_log(store))
    monkeypatch.setattr(audit_log, "COMPACT_FILES", 3)
    for i in range(5):
        audit_log.append(store, audit_event(i), _now)
    one_row = max(sizes().values())
    assert audit_log._compact(store, log)  # 5 small files > 3: merged into one
    (merged, merged_size), *rest = sizes().items()
    assert not rest
    assert merged_size > one_row
    # from now on the merged file is "between the sizes": the small ones are merged without it
    monkeypatch.setattr(audit_log, "COMPACT_SMALL_BYTES", merged_size)
    for i in range(5, 9):
        audit_log.append(store, audit_event(i), _now)
    assert audit_log._compact(store, log)
    after = sizes()
    assert merged in after, after  # untouched, beside the merge of the 4 new files
    assert len(after) == 2, after
    (second,) = (p for p in after if p != merged)
    for i in range(9, 11):
        audit_log.append(store, audit_event(i), _now)
    assert not audit_log._compact(store, log)  # 2 small, 2 between: neither tier has more than 3
    monkeypatch.setattr(audit_log, "COMPACT_FILES", 1)  # now the files between are too many: merged
    monkeypatch.setattr(audit_log, "COMPACT_SMALL_BYTES", 1)  # every file is "between" (none is small)
    assert audit_log._compact(store, log)
    assert merged not in sizes()
    assert second not in sizes()
    assert len(sizes()) == 1
    rows = audit_log.read(store).to_pylist()
    assert [r["seq"] for r in rows] == list(range(len(rows)))  # every row kept, once, in order
    assert [r["object"] for r in rows[-11:]] == [audit_event(i).object for i in range(11)]
    result = audit_log.verify(store)
    assert result.ok, result.problems
