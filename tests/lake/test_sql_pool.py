"""The SQL session's cursor pool: threads query one snapshot at once, every rule still applies to each."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import lake_synth
import pytest

from datadrive.errors import ResidencyError
from datadrive.lake.snapshot import readable_tables
from datadrive.lake.sql import SqlSession

LOOKUP = "SELECT scenario_id, source, num_tracks, num_valid_states FROM scenarios WHERE scenario_id = '{sid}'"


@pytest.fixture
def lake(make_lake, inputs):  # type: ignore[no-untyped-def]
    lk = make_lake(home="eu-central")
    lk.ingest(inputs(range(4)), "eu-central", registry=lake_synth.REGISTRY)
    return lk


def _no_audit(action: str, obj: str, detail: object) -> None:
    pass


def _refuse(action: str, obj: str, exc: Exception) -> Exception:
    return exc


def test_threads_share_one_snapshot_and_each_read_is_audited(lake) -> None:  # type: ignore[no-untyped-def]
    snap = lake.snapshot("eu-central")
    ids = snap.table("scenarios", columns=["scenario_id"]).column(0).to_pylist()
    # the answers of one caller, one query at a time
    want = {sid: snap.sql(LOOKUP.format(sid=sid)).table.to_pylist() for sid in ids}
    assert all(len(rows) == 1 and rows[0]["scenario_id"] == sid for sid, rows in want.items())
    before = lake.audit_log("eu-central").num_rows

    queries = [ids[i % len(ids)] for i in range(24)]
    with ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda sid: (sid, snap.sql(LOOKUP.format(sid=sid)).table.to_pylist()), queries))
    for sid, rows in got:
        assert rows == want[sid]
    session = snap._session
    assert session is not None
    assert 1 <= session.cursors <= 2 * 4
    # one audit row per read, written by the library, the chain intact
    log = lake.audit_log("eu-central")
    new = [r for r in log.slice(before).to_pylist() if r["action"] != "read"]  # "read": the log itself
    assert [r["action"] for r in new] == ["sql"] * len(queries)
    assert all(r["outcome"] == "ok" and r["tenant"] == "bmw" for r in new)
    assert lake.verify_audit("eu-central").ok


def test_cursors_run_at_once_up_to_the_pool_size_and_each_is_locked_down(lake, tmp_path) -> None:  # type: ignore[no-untyped-def]
    snap = lake.snapshot("eu-central")
    datasets = {name: snap.dataset(name) for name in readable_tables()}
    session = SqlSession(datasets, pool_size=2)
    pool = session._full
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n1\n")
    with pool.cursor() as first, pool.cursor() as second:
        assert first is not None
        assert second is not None
        assert first is not second
        assert session.cursors == 2
        # both see the registered (Arrow) tables and the views, and neither may open a file
        n = first.sql("SELECT count(*) FROM scenarios").fetchall()[0][0]
        assert second.sql("SELECT count(*) FROM scenarios").fetchall()[0][0] == n > 0
        assert second.sql("SELECT count(*) FROM states").fetchall()[0][0] > 0
        for cur in (first, second):
            with pytest.raises(Exception, match=r"(?i)permission|disabled|external"):
                cur.sql(f"SELECT * FROM read_csv('{outside}')").fetchall()
            with pytest.raises(Exception, match=r"(?i)locked"):
                cur.execute("SET enable_external_access = true")
        # a third query waits for a free cursor
        started, done = threading.Event(), threading.Event()

        def third() -> None:
            started.set()
            session.run("SELECT 1", audit=_no_audit, refuse=_refuse)
            done.set()

        t = threading.Thread(target=third)
        t.start()
        started.wait(5)
        assert not done.wait(0.3)
    t.join(10)
    assert done.is_set()
    assert session.cursors == 2  # returned cursors are reused, not opened again
    # the session's own checks still refuse what reads files, on whichever cursor
    with pytest.raises(ResidencyError):
        session.run(f"COPY scenarios TO '{tmp_path / 'x.csv'}'", audit=_no_audit, refuse=_refuse)
    session.close()


def test_closing_waits_for_the_query_in_flight(lake) -> None:  # type: ignore[no-untyped-def]
    snap = lake.snapshot("eu-central")
    datasets = {name: snap.dataset(name) for name in readable_tables()}
    session = SqlSession(datasets, pool_size=2)
    with session._full.cursor() as cur:
        assert cur is not None
        session.close()
        assert cur.sql("SELECT count(*) FROM scenarios").fetchall()[0][0] > 0  # still open: in use
    with session._full.cursor() as cur:
        assert cur is None  # closed for new queries
    with pytest.raises(Exception, match="closed"):
        session.run("SELECT 1", audit=_no_audit, refuse=_refuse)
