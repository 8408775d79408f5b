"""Event pages answered from the gateway's kept answers equal the library's own page, and the rows by hand.

A lake of one region with two tenants holding the same AV2 scenarios (so the
same scenario ids), bmw also a nuPlan scenario (a second source), and events
written through the library (``append_derived``) with ties on every sort key
but the last, NULL severities, and rows of an older tagger version. Each
page is asked three ways: through :meth:`LakeGateway.page` (a slice of the
whole answer kept per lake version), through the library alone (DuckDB's
top-N with the total, one query per page), and computed here from the rows
written (filtered and sorted in Python): all three must agree, totals and
order. No HTTP: the endpoint's own test (``test_service_mining.py``) pages
through the API.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from datadrive.errors import InputError

REGION = "eu-central"
COLUMNS = [
    "tenant",
    "source",
    "scenario_id",
    "event_type",
    "actor_track_id",
    "track_ids",
    "start_step",
    "end_step",
    "start_ns",
    "end_ns",
    "duration_s",
    "severity",
    "severity_unit",
    "ego_involved",
]


def _events(keys: list[dict[str, str]], types: list[str], version: str, seed: int, n: int) -> list[dict]:
    """``n`` events on the scenarios ``keys``, drawn from few values so that every sort key ties often."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        key = rng.choice(keys)
        actor = rng.choice(["7", "12"])
        start = rng.choice([0, 1, 1])
        end = start + rng.choice([2, 2, 5])
        rows.append(
            {
                **key,
                "event_type": rng.choice(types),
                "actor_track_id": actor,
                # same event type, actor and interval, another partner: ties up to track_ids
                "track_ids": [actor, rng.choice(["x", "y", "z"])],
                "start_step": start,
                "end_step": end,
                "start_ns": start * 100_000_000,
                "end_ns": end * 100_000_000,
                "duration_s": (end - start) / 10,
                "severity": rng.choice([None, 1.0, 2.5, 2.5, 4.0]),
                "severity_unit": "m/s^2",
                "ego_involved": rng.random() < 0.5,
                "details_json": "{}",
                "tagger_version": version,
            }
        )
    return rows


def _append(lake: Any, rows: list[dict]) -> int:
    snap = lake.snapshot(REGION)
    return int(lake.append_derived(REGION, "events", pa.Table.from_pylist(rows), derived_from=snap))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> dict[str, Any]:
    from datadrive.compute import InlineEngine
    from datadrive.lake import Lake, Principal, load_config
    from datadrive.mining import EVENT_TYPES, tagger_version

    folder = tmp_path_factory.mktemp("pages-lake")
    (folder / "keys").mkdir()
    for t, k in (("bmw", "11" * 32), ("audi", "33" * 32)):
        (folder / "keys" / f"{t}.key").write_text(k)
    (folder / "datadrive.toml").write_text(
        '[lake]\nname = "pages"\n[regions.eu-central]\nroot = "regions/eu-central"\n'
        '[tenants.bmw]\nkey_file = "keys/bmw.key"\n[tenants.audi]\nkey_file = "keys/audi.key"\n'
    )
    config = load_config(folder, env={})
    bmw = Lake(config, Principal("eng@bmw", "bmw", REGION))
    audi = Lake(config, Principal("eng@audi", "audi", REGION))
    bmw.init()
    av2 = sorted((samples / "av2_motion_forecasting").iterdir())[:2]
    nuplan = sorted((samples / "nuplan").rglob("*.db"))[:1]
    bmw.ingest([*av2, *nuplan], REGION, engine=InlineEngine())
    audi.ingest(av2, REGION, engine=InlineEngine())
    types = sorted(EVENT_TYPES)[:3]
    written: list[dict] = []
    for seed, lake in enumerate((bmw, audi)):
        keys = lake.snapshot(REGION).table("scenarios", columns=["tenant", "source", "scenario_id"])
        keys = [dict(k) for k in {tuple(sorted(r.items())) for r in keys.to_pylist()}]
        rows = _events(keys, types, tagger_version(), seed, 240) + _events(keys, types, "old-0", seed + 9, 30)
        _append(lake, rows)
        written += rows
    sources = {r["source"] for r in written if r["tenant"] == "bmw"}
    assert len(sources) == 2, sources  # a source filter has something to cut
    return {"config": config, "lakes": {"bmw": bmw, "audi": audi}, "rows": written, "types": types}


def _by_hand(rows: list[dict], tenant: str, flt: Any) -> list[dict]:
    """The filter and the order of ``EVENT_ORDER``, in Python, on the rows written."""
    from datadrive.mining import tagger_version

    kept = [
        r
        for r in rows
        if r["tenant"] == tenant
        and r["tagger_version"] == tagger_version()
        and (flt.event_type is None or r["event_type"] == flt.event_type)
        and (flt.scenario_id is None or r["scenario_id"] == flt.scenario_id)
        and (flt.source is None or r["source"] == flt.source)
        and (not flt.ego_only or r["ego_involved"])
        and (flt.min_severity is None or (r["severity"] is not None and r["severity"] >= flt.min_severity))
    ]
    kept.sort(
        key=lambda r: (
            r["severity"] is None,
            -(r["severity"] or 0.0),
            r["scenario_id"],
            r["start_ns"],
            r["event_type"],
            r["actor_track_id"],
            r["end_ns"],
            r["tenant"],
            r["source"],
            r["track_ids"],
            r["start_step"],
            r["end_step"],
            r["duration_s"],
            r["severity_unit"],
            r["ego_involved"],
        )
    )
    return [{c: r[c] for c in COLUMNS} for r in kept]


def _filters(world: dict[str, Any]) -> list[Any]:
    from datadrive.service.mining import EventFilter

    a, b = world["types"][:2]
    nuplan = next(r["source"] for r in world["rows"] if r["source"] != world["rows"][0]["source"])
    return [
        EventFilter(),
        EventFilter(event_type=a),
        EventFilter(event_type=b, source=nuplan),
        EventFilter(event_type=a, ego_only=True),
        EventFilter(event_type=a, min_severity=2.5),
        EventFilter(source=nuplan),
        EventFilter(ego_only=True, min_severity=1.0),
        EventFilter(min_severity=4.5),  # nothing
        # one scenario's events: a run of every event ordered by scenario first (kept once for all)
        *[EventFilter(scenario_id=sid) for sid in sorted({r["scenario_id"] for r in world["rows"]})],
        EventFilter(scenario_id="no-such-scenario"),
        # a scenario's events filtered further: asked of the library, page by page
        EventFilter(scenario_id=world["rows"][0]["scenario_id"], event_type=a),
    ]


def test_kept_pages_equal_the_library_page_and_the_rows_by_hand(world: dict[str, Any]) -> None:
    from datadrive.lake import Principal
    from datadrive.service.gateway import LakeGateway
    from datadrive.service.mining import event_page

    gateway = LakeGateway(world["config"])
    principal = Principal("eng@bmw", "bmw", REGION)
    pages = gateway.pages(principal)
    snap = gateway.snapshot(principal, REGION)
    checked = 0
    for flt in _filters(world):
        expected = _by_hand(world["rows"], "bmw", flt)
        total = len(expected)
        # ties and NULLs reach the pages: severities repeat, and some events have none
        if flt.event_type is not None and flt.min_severity is None:
            assert any(r["severity"] is None for r in expected)
        for offset, limit in ((0, 7), (5, 7), (max(0, total - 3), 10), (total + 5, 10), (0, 1000)):
            kept_rows, kept_total = event_page(snap, flt, limit=limit, offset=offset, pages=pages)
            plain_rows, plain_total = event_page(snap, flt, limit=limit, offset=offset)
            want = expected[offset : offset + limit]
            assert kept_total == plain_total == total, (flt, offset, limit)
            assert kept_rows.to_pylist() == want, (flt, offset, limit)
            assert plain_rows.to_pylist() == want, (flt, offset, limit)
            assert kept_rows.column_names == plain_rows.column_names == COLUMNS
            checked += len(want)
    assert checked > 500
    # each listing not narrowed to a scenario was built once, the scenarios' answer once for all of
    # them, and every later page came from memory
    listings = [f for f in _filters(world) if f.scenario_id is None]
    assert gateway.answers.builds == len(gateway.answers) == len(listings) + 1


def test_tenants_never_share_a_kept_answer(world: dict[str, Any]) -> None:
    from datadrive.lake import Principal
    from datadrive.service.gateway import LakeGateway
    from datadrive.service.mining import EventFilter, event_page

    gateway = LakeGateway(world["config"])
    flt = EventFilter(event_type=world["types"][0])
    seen = {}
    for tenant in ("bmw", "audi", "bmw"):
        principal = Principal(f"eng@{tenant}", tenant, REGION)
        snap = gateway.snapshot(principal, REGION)
        rows, total = event_page(snap, flt, limit=1000, offset=0, pages=gateway.pages(principal))
        assert {r["tenant"] for r in rows.to_pylist()} == {tenant}
        assert rows.to_pylist() == _by_hand(world["rows"], tenant, flt)
        seen[tenant] = total
    # the same scenario ids, the same query text, the same lake version: two answers, one per tenant
    assert gateway.answers.builds == 2
    assert seen["bmw"] > 0
    assert seen["audi"] > 0


def test_every_page_is_one_audit_row_of_the_library(world: dict[str, Any]) -> None:
    from datadrive.lake import Principal
    from datadrive.service.gateway import LakeGateway
    from datadrive.service.mining import EventFilter, event_page

    lake = world["lakes"]["bmw"]
    gateway = LakeGateway(world["config"])
    principal = Principal("auditee@bmw", "bmw", REGION)
    pages = gateway.pages(principal)
    snap = gateway.snapshot(principal, REGION)
    flt = EventFilter(event_type=world["types"][1])
    before = lake.audit_log(REGION).num_rows
    sizes = []
    for offset in (0, 3, 6, 9, 400):
        rows, total = event_page(snap, flt, limit=3, offset=offset, pages=pages)
        sizes.append(rows.num_rows)
    log = lake.audit_log(REGION).slice(before).to_pylist()
    mine = [r for r in log if r["who"] == "auditee@bmw"]
    assert len(mine) == 5  # one per page, the build's included
    assert [r["action"] for r in mine] == ["sql", "read", "read", "read", "read"]
    assert all(r["lake_version"] == snap.version and r["outcome"] == "ok" for r in mine)
    assert all("FROM events" in r["object"] for r in mine)
    assert not any(world["types"][1] in r["object"] for r in mine)  # literals masked, as the library does
    details = [json.loads(r["detail"]) if isinstance(r["detail"], str) else r["detail"] for r in mine]
    assert details[0]["rows"] == total  # the build read the whole answer
    assert [d["rows"] for d in details[1:]] == sizes[1:]
    # a scenario's page: the build reads every event (its audit row says so), a later page names the
    # scenario's own query
    sid = world["rows"][0]["scenario_id"]
    before = lake.audit_log(REGION).num_rows
    for _ in range(2):
        rows, total = event_page(snap, EventFilter(scenario_id=sid), limit=2, offset=0, pages=pages)
    log = [r for r in lake.audit_log(REGION).slice(before).to_pylist() if r["who"] == "auditee@bmw"]
    assert [r["action"] for r in log] == ["sql", "read"]
    assert "scenario_id = ?" not in log[0]["object"]
    assert "scenario_id = ?" in log[1]["object"]
    assert json.loads(log[1]["detail"])["rows"] == rows.num_rows == min(2, total)


def test_a_new_lake_version_is_a_new_answer(world: dict[str, Any]) -> None:
    from datadrive.lake import Principal
    from datadrive.mining import tagger_version
    from datadrive.service.gateway import LakeGateway
    from datadrive.service.mining import EventFilter, event_page

    gateway = LakeGateway(world["config"])
    principal = Principal("eng@bmw", "bmw", REGION)
    pages = gateway.pages(principal)
    flt = EventFilter(event_type=world["types"][2])
    old = gateway.snapshot(principal, REGION)
    _, total_before = event_page(old, flt, limit=5, offset=0, pages=pages)
    lake = world["lakes"]["bmw"]
    keys = lake.snapshot(REGION).table("scenarios", columns=["tenant", "source", "scenario_id"]).to_pylist()
    more = _events(keys[:1], world["types"][2:3], tagger_version(), 99, 20)
    for r in more:
        r["severity"] = 9.0  # the most severe now: they lead the first page
    _append(lake, more)
    world["rows"].extend(more)
    # the old snapshot is no longer the latest: its kept answer is not used, the library answers
    assert gateway.pages(principal).page(old, flt.sql(), limit=5, offset=0) is None
    _, stale_total = event_page(old, flt, limit=5, offset=0, pages=pages)
    assert stale_total == total_before
    kept_before = len(gateway.answers)
    new = gateway.snapshot(principal, REGION)
    assert new.version > old.version
    assert len(gateway.answers) == kept_before - 1  # the old version's answer is freed
    rows, total = event_page(new, flt, limit=30, offset=0, pages=pages)
    assert total == total_before + len(more)
    assert rows.to_pylist() == _by_hand(world["rows"], "bmw", flt)[:30]
    assert rows.to_pylist()[0]["severity"] == 9.0


def test_answers_too_big_are_not_kept_and_memory_is_bounded() -> None:
    from datadrive.service.gateway import KeptAnswers

    table = pa.table({"x": list(range(1000))})  # 8 kB
    small = KeptAnswers(max_bytes=16_000)
    got = small.get_or_build(("a",), lambda: table)
    assert got is not None
    assert got[1]
    assert got[0].equals(table)
    assert small.get_or_build(("a",), lambda: pytest.fail("built twice")) is None  # over a quarter
    roomy = KeptAnswers(max_bytes=40_000)
    for k in "abcdefg":
        roomy.get_or_build((k,), lambda: table)
    assert roomy.nbytes <= 40_000
    assert len(roomy) == 40_000 // table.nbytes
    hit = roomy.get_or_build(("g",), lambda: pytest.fail("kept, not rebuilt"))
    assert hit is not None
    assert not hit[1]


def test_an_unknown_event_type_is_refused() -> None:
    from datadrive.service.mining import EventFilter

    with pytest.raises(InputError, match="hard_braking"):
        EventFilter(event_type="nope")
