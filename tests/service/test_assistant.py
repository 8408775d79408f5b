"""The assistant through the service: vehicles, answers from the vehicle's own telemetry, trips, residency.

The comma2k19 sample drive is ingested into cn-north for tencent. The
expected top speed is computed from the lake's raw CAN samples with SQL,
not by the assistant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from service_helpers import Env


@pytest.fixture(scope="module")
def vehicle(env: Env, lake_dir: Path, samples: Path) -> str:
    from datadrive.compute import InlineEngine
    from datadrive.lake import Lake, Principal, load_config

    lake = Lake(load_config(lake_dir, env={}), Principal("setup", "tencent", "cn-north"))
    lake.ingest(
        [samples / "comma2k19"], "cn-north", engine=InlineEngine()
    )  # the ledger skips it the second time
    env.app.state.services.gateway.forget()
    found = env.client.get("/api/v1/regions/cn-north/vehicles", headers=env.h("li@tencent")).json()
    assert len(found) == 1
    ((vid, drives),) = found.items()
    assert len(drives) == 1
    return str(vid)


def _ask(env: Env, who: str, question: str, vehicle: str | None = None) -> Any:
    return env.client.post(
        "/api/v1/regions/cn-north/assistant",
        json={"question": question, "vehicle": vehicle},
        headers=env.h(who),
    )


def test_top_speed_from_the_vehicles_own_data(env: Env, vehicle: str) -> None:
    resp = _ask(env, "li@tencent", "what was my top speed on the last drive", vehicle)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["answered"]
    assert answer["numbers_checked"]
    assert answer["vehicle"] == vehicle
    top = answer["tools"][0]["facts"]["max"]["value"]
    raw = env.client.post(
        "/api/v1/regions/cn-north/sql",
        json={"query": "SELECT max(sample_values[1]) AS top FROM signal_samples WHERE signal = 'can/speed'"},
        headers=env.h("li@tencent"),
    ).json()["rows"][0]["top"]
    assert top == pytest.approx(raw, abs=1e-9)
    assert f"{raw * 3.6:.1f} km/h" in answer["answer"]


def test_trip_question_needs_no_vehicle(env: Env) -> None:
    answer = env.client.post(
        "/api/v1/regions/eu-central/assistant",
        json={"question": "route from Kauppatori to Hakaniemi"},
        headers=env.h("eng@bmw"),
    ).json()
    assert answer["answered"], answer
    assert answer["answer"].startswith("Route Kauppatori → Hakaniemi")


def test_unknown_vehicle_and_residency(env: Env, vehicle: str) -> None:
    unknown = _ask(env, "li@tencent", "what was my top speed", "no-such-car")
    assert unknown.status_code == 404
    assert "no-such-car" in unknown.json()["error"]["message"]
    # bmw is at home in eu-central: cn-north's raw telemetry stays there (the library's rule)
    abroad = env.client.get("/api/v1/regions/cn-north/vehicles", headers=env.h("ana@bmw"))
    assert abroad.status_code == 403
    assert abroad.json()["error"]["code"] == "residency"
    asked = _ask(env, "ana@bmw", "what was my top speed", vehicle)
    assert asked.status_code == 403
    assert vehicle not in asked.text
