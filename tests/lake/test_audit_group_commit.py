"""Group commit of audit rows: concurrent appends share a Delta commit, each keeps its own chained row."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
from deltalake import DeltaTable
from lake_helpers import audit_event

from datadrive.errors import StorageError
from datadrive.lake import audit as audit_log
from datadrive.lake.tables import RegionStore


def test_appends_waiting_for_a_commit_go_into_the_next_one_each_with_its_row(make_lake) -> None:  # type: ignore[no-untyped-def]
    lake = make_lake("ana", "bmw", "eu-central")
    lake.init()
    store = RegionStore(lake.config.region("eu-central"))

    def now() -> datetime:
        return datetime.now(UTC)

    audit_log.append(store, audit_event(-1), now)  # the queue of this store exists from here on
    queue = audit_log._QUEUES[(store.region.name, store.root.uri)]
    commits_before = DeltaTable(store.uri(audit_log.AUDIT)).version()
    results: dict[int, tuple[int, str]] = {}

    def one(i: int) -> None:
        results[i] = audit_log.append(store, audit_event(i), now)

    n = 8
    with queue.writer:  # a commit "in progress": the appends arriving meanwhile wait together
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while len(queue.pending) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(queue.pending) == n
        assert not results  # none returns before its row is committed
    for t in threads:
        t.join(30)
    assert len(results) == n
    # one commit for all of them, a row each with its own seq, in the chain
    assert DeltaTable(store.uri(audit_log.AUDIT)).version() == commits_before + 1
    table = audit_log.read(store).to_pylist()
    by_object = {r["object"]: r for r in table}
    for i, (seq, h) in results.items():
        row = by_object[f"thing {i}"]
        assert (row["seq"], row["row_hash"], row["who"]) == (seq, h, f"u{i}")
    assert sorted(seq for seq, _ in results.values()) == list(range(table[-n]["seq"], table[-1]["seq"] + 1))
    assert lake.verify_audit("eu-central").ok
    # a later single append still chains on
    seq, _ = audit_log.append(store, audit_event(99), now)
    assert seq == table[-1]["seq"] + 2  # after verify_audit's own row
    assert lake.verify_audit("eu-central").ok


def test_a_failed_group_commit_fails_every_read_in_it(make_lake) -> None:  # type: ignore[no-untyped-def]
    lake = make_lake("ana", "bmw", "eu-central")
    lake.init()
    store = RegionStore(lake.config.region("eu-central"))

    def now() -> datetime:
        return datetime.now(UTC)

    audit_log.append(store, audit_event(0), now)
    queue = audit_log._QUEUES[(store.region.name, store.root.uri)]
    # the head file says rows exist that the table lacks: every append must be refused
    head = store.root.meta_path("audit_head.json")
    store.write_file(head, b'{"seq": 1000, "hash": "x"}')
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            audit_log.append(store, audit_event(i), now)
        except StorageError as exc:
            errors.append(exc)

    with queue.writer:
        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while len(queue.pending) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    for t in threads:
        t.join(30)
    assert len(errors) == 4
    with pytest.raises(StorageError):
        audit_log.append(store, audit_event(9), now)
