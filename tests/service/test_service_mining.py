"""Mining through the service: searches, tagged events, tag and mine jobs, event sets shared abroad.

Expected values come from outside the service: hits of ``pedestrian`` are
the pedestrian tracks' valid runs in the raw arrays (read from the lake as
bmw); event counts are SQL over the lake's ``events`` table through the
library; an event set's hits are the search's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from service_helpers import Env, run_jobs


def _job(env: Env, who: str, kind: str, region: str, **params: object) -> dict:
    resp = env.client.post(
        "/api/v1/jobs", json={"kind": kind, "region": region, "params": params}, headers=env.h(who)
    )
    assert resp.status_code == 202, resp.text
    return resp.json()


def _search(env: Env, who: str, region: str = "eu-central", **body: Any) -> Any:
    return env.client.post(f"/api/v1/regions/{region}/mining/search", json=body, headers=env.h(who))


def _bmw_lake(env: Env) -> Any:
    from datadrive.lake import Lake, Principal

    return Lake(env.app.state.services.lake_config, Principal("check", "bmw", "eu-central"))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of each run of True in a 1-D mask, by hand."""
    out, start = [], None
    for i, v in enumerate([*mask.tolist(), False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i - 1))
            start = None
    return out


@pytest.fixture(scope="module")
def tagged(env: Env) -> dict:
    """A tag job over eu-central as bmw's engineer (the lake is shared by both databases: the second run
    may find everything tagged already)."""
    made = _job(env, "eng@bmw", "tag", "eu-central")
    run_jobs(env.app)
    job = env.client.get(f"/api/v1/jobs/{made['id']}", headers=env.h("eng@bmw")).json()
    assert job["status"] == "succeeded", job
    env.app.state.services.gateway.forget()
    return dict(job["result"])


def test_pedestrian_hits_are_the_raw_pedestrian_tracks(env: Env) -> None:
    from datadrive.core.scenario import ObjectType

    lake = _bmw_lake(env)
    expected = set()
    for s in lake.snapshot("eu-central").scenarios():
        for a in np.flatnonzero(s.tracks.object_type == ObjectType.PEDESTRIAN):
            if a == s.ego_index:
                continue
            for first, last in _runs(s.tracks.valid[a]):
                expected.add((s.scenario_id, str(s.tracks.track_ids[a]), first, last))
    assert expected, "the AV2 samples have pedestrians"
    resp = _search(env, "viewer@bmw", expression="pedestrian", limit=1000, thumbnails=True)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    got = {(h["scenario_id"], h["track_id"], *st) for h in body["hits"] for st in h["steps"]}
    assert got == expected
    assert body["expression"] == "pedestrian"
    assert body["total"] == len({(e[0], e[1]) for e in expected})
    every = len(lake.snapshot("eu-central").scenarios())
    if body["narrowed_by_index"]:  # the state index is current (tagged earlier): fewer to evaluate
        assert len(body["scenarios"]) <= body["scenarios_searched"] <= every
    else:
        assert body["scenarios_searched"] == every
    assert all(h["tenant"] == "bmw" for h in body["hits"])
    # thumbnails: one per scenario with hits, the hit tracks drawn in the highlight colour
    assert {s["scenario_id"] for s in body["scenarios"]} == {e[0] for e in expected}
    assert all("#ffb020" in s["thumbnail_svg"] for s in body["scenarios"])
    # paging over the same hits
    page = _search(env, "viewer@bmw", expression="pedestrian", limit=2, offset=1).json()
    assert page["hits"] == body["hits"][1:3]
    assert page["next_offset"] == (3 if body["total"] > 3 else None)


def test_a_description_runs_its_translation(env: Env) -> None:
    from datadrive.mining import describe

    text = "pedestrian near a stopped car"
    translated = env.client.post(
        "/api/v1/mining/translate", json={"description": text}, headers=env.h("viewer@bmw")
    ).json()
    assert translated["expression"] == describe(text).text
    by_text = _search(env, "viewer@bmw", description=text).json()
    by_expr = _search(env, "viewer@bmw", expression=translated["expression"]).json()
    assert by_text["expression"] == translated["expression"]
    assert by_text["description"] == text
    assert by_text["hits"] == by_expr["hits"]
    # words the parser cannot place are named; a bad expression points at what is wrong
    bad = env.client.post(
        "/api/v1/mining/translate", json={"description": "a flibbertigibbet car"}, headers=env.h("viewer@bmw")
    )
    assert bad.status_code == 422
    assert "flibbertigibbet" in bad.json()["error"]["message"]
    wrong = _search(env, "viewer@bmw", expression="car and (stopped")
    assert wrong.status_code == 422, wrong.text
    unknown = _search(env, "viewer@bmw", expression="unicorn and stopped")
    assert unknown.status_code == 422
    assert "pedestrian" in unknown.json()["error"]["message"]  # the known categories listed
    both = _search(env, "viewer@bmw", expression="car", description="a car")
    assert both.status_code == 422
    # nesting deeper than the library's recursive parser goes is bad input, not a server error
    deep = _search(env, "viewer@bmw", expression="(" * 990 + "car" + ")" * 990)
    assert deep.status_code == 422, deep.text
    deep = _search(env, "viewer@bmw", description="car near " * 200 + "a bus")
    assert deep.status_code == 422, deep.text


def test_searches_are_bounded_and_resident(env: Env) -> None:
    from dataclasses import replace

    services = env.app.state.services
    old = services.settings
    services.settings = replace(old, max_mine_scenarios=0)
    try:
        resp = _search(env, "viewer@bmw", expression="pedestrian")
    finally:
        services.settings = old
    assert resp.status_code == 422
    assert "at most 0" in resp.json()["error"]["message"]
    abroad = _search(env, "li@tencent", expression="pedestrian")  # tencent's home is cn-north
    assert abroad.status_code == 403
    assert abroad.json()["error"]["code"] == "residency"
    # tencent's own region holds no scenario of bmw's
    # (only the nuplan log: other modules' fleet jobs may have added synthetic scenarios to cn-north)
    own = _search(env, "li@tencent", region="cn-north", expression="any", sources=["nuplan"]).json()
    assert own["hits"], own
    assert {h["tenant"] for h in own["hits"]} <= {"tencent"}


def test_tag_job_and_events_against_sql(env: Env, tagged: dict) -> None:
    from datadrive.mining import tagger_version

    lake = _bmw_lake(env)
    version = tagger_version()
    counts = lake.sql(
        f"SELECT event_type, count(*) AS n FROM events WHERE tagger_version = '{version}' GROUP BY 1",
        "eu-central",
    ).table.to_pylist()
    expected = {r["event_type"]: r["n"] for r in counts}
    n_scenarios = lake.sql(
        "SELECT count(*) AS n FROM scenarios WHERE telemetry_id IS NULL", "eu-central"
    ).table.to_pylist()[0]["n"]
    summary = env.client.get("/api/v1/regions/eu-central/events/summary", headers=env.h("viewer@bmw")).json()
    assert summary["tagger_version"] == version
    assert summary["scenarios"] == summary["tagged"] == n_scenarios
    assert {r["event_type"]: r["events"] for r in summary["by_type"]} == expected
    listing = env.client.get(
        "/api/v1/regions/eu-central/events?limit=500", headers=env.h("viewer@bmw")
    ).json()
    assert listing["total"] == sum(expected.values())
    sev = [r["severity"] for r in listing["items"] if r["severity"] is not None]
    assert sev == sorted(sev, reverse=True)
    # pages are cut in SQL: they are slices of the full listing, with its total, past the end too
    total = listing["total"]
    assert total <= 500  # the listing above holds them all
    for offset, limit in ((0, 3), (2, 5), (max(0, total - 2), 5), (total + 10, 5)):
        page = env.client.get(
            f"/api/v1/regions/eu-central/events?limit={limit}&offset={offset}", headers=env.h("viewer@bmw")
        ).json()
        assert page["total"] == total
        assert page["items"] == listing["items"][offset : offset + limit]
        assert page["next_offset"] == (offset + limit if offset + limit < total else None)
    if expected:
        kind = max(expected, key=lambda k: expected[k])
        one = env.client.get(
            f"/api/v1/regions/eu-central/events?event_type={kind}", headers=env.h("viewer@bmw")
        ).json()
        assert one["total"] == expected[kind]
        assert {r["event_type"] for r in one["items"]} == {kind}
        # the viewer's scene marks the scenario's events on its timeline
        sid = one["items"][0]["scenario_id"]
        scene = env.client.get(
            f"/api/v1/regions/eu-central/scenarios/{sid}/scene", headers=env.h("viewer@bmw")
        ).json()
        assert kind in {e["label"] for e in scene["events"]}
    unknown = env.client.get("/api/v1/regions/eu-central/events?event_type=nope", headers=env.h("viewer@bmw"))
    assert unknown.status_code == 422
    assert "hard_braking" in unknown.json()["error"]["message"]
    abroad = env.client.get("/api/v1/regions/eu-central/events", headers=env.h("li@tencent"))
    assert abroad.status_code == 403
    # an ingest job's rerun-safety holds for tagging too: nothing left to tag, nothing done
    again = _job(env, "eng@bmw", "tag", "eu-central")
    run_jobs(env.app)
    result = env.client.get(f"/api/v1/jobs/{again['id']}", headers=env.h("eng@bmw")).json()["result"]
    assert result["indexed"] == result["tagged"] == result["events"] == 0
    # viewers read, they do not start jobs
    refused = env.client.post(
        "/api/v1/jobs",
        json={"kind": "tag", "region": "eu-central", "params": {}},
        headers=env.h("viewer@bmw"),
    )
    assert refused.status_code == 403


def test_event_set_shared_abroad_gives_counts_not_hits(env: Env) -> None:
    made = _job(env, "eng@bmw", "mine", "eu-central", expression="pedestrian", name="pedestrians")
    run_jobs(env.app)
    job = env.client.get(f"/api/v1/jobs/{made['id']}", headers=env.h("eng@bmw")).json()
    assert job["status"] == "succeeded", job
    set_id = job["result"]["object_id"]
    search = _search(env, "eng@bmw", expression="pedestrian", limit=1000).json()
    got = env.client.get(f"/api/v1/event-sets/{set_id}", headers=env.h("viewer@bmw")).json()
    assert got["type"] == "event_set"
    assert got["summary"]["hits"] == search["total"]
    assert got["summary"]["scenarios_with_hits"] == len(search["scenarios"])
    hits = env.client.get(f"/api/v1/event-sets/{set_id}/hits?limit=500", headers=env.h("viewer@bmw")).json()
    rows = {(r["scenario_id"], r["track_id"], r["first_step"], r["last_step"]) for r in hits["items"]}
    assert rows == {(h["scenario_id"], h["track_id"], *st) for h in search["hits"] for st in h["steps"]}
    # before a grant tencent does not see it; after, the counts (an aggregate) reach cn-north, the hits
    # (dataset kind) do not: eu-central's policy lets aggregates go there, not datasets
    assert env.client.get(f"/api/v1/event-sets/{set_id}", headers=env.h("li@tencent")).status_code == 404
    grant = env.client.post(
        "/api/v1/grants", json={"object_id": set_id, "grantee": "tencent"}, headers=env.h("ana@bmw")
    )
    assert grant.status_code == 201, grant.text
    assert grant.json()["parts"]["summary"] == "readable"
    shared = env.client.get(f"/api/v1/event-sets/{set_id}", headers=env.h("li@tencent"))
    assert shared.status_code == 200
    assert shared.json()["summary"]["hits"] == search["total"]
    refused = env.client.get(f"/api/v1/event-sets/{set_id}/hits", headers=env.h("li@tencent"))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "residency"
    listed = env.client.get("/api/v1/event-sets?scope=shared", headers=env.h("li@tencent")).json()
    assert [o["id"] for o in listed["items"]] == [set_id]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"name": "x"}, "params.expression"),
        ({"expression": "car", "description": "a car", "name": "x"}, "params.expression"),
        ({"expression": "car"}, "params.name"),
        ({"expression": "car", "name": "x", "sources": "av2"}, "params.sources"),
        ({"expression": "car", "name": "x", "where": "1"}, "params"),
    ],
)
def test_bad_mine_parameters_are_refused(env: Env, params: dict, field: str) -> None:
    resp = env.client.post(
        "/api/v1/jobs",
        json={"kind": "mine", "region": "eu-central", "params": params},
        headers=env.h("eng@bmw"),
    )
    assert resp.status_code == 422, resp.text
    assert field in resp.json()["error"]["message"]


def test_export_marks_a_mining_hit(env: Env) -> None:
    from mcap.reader import make_reader

    hit = _search(env, "eng@bmw", expression="pedestrian", limit=1).json()["hits"][0]
    start, end = hit["intervals_ns"][0]
    url = (
        f"/api/v1/regions/eu-central/scenarios/{hit['scenario_id']}/export?format=mcap"
        f"&hit_track={hit['track_id']}&hit_start_ns={start}&hit_end_ns={end}&hit_label=pedestrian"
    )
    resp = env.client.get(url, headers=env.h("eng@bmw"))
    assert resp.status_code == 200
    import io
    import json

    marks = [
        json.loads(m.data)
        for _, ch, m in make_reader(io.BytesIO(resp.content)).iter_messages()
        if ch.topic == "/events"
    ]
    assert any("pedestrian" in json.dumps(m) and hit["track_id"] in json.dumps(m) for m in marks), marks
    backwards = env.client.get(
        url.replace(f"hit_end_ns={end}", f"hit_end_ns={start - 1}"), headers=env.h("eng@bmw")
    )
    assert backwards.status_code == 422
