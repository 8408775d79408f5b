"""The OpenAI-compatible endpoint client against a real HTTP server on 127.0.0.1.

Also residency and the number check.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow.compute as pc
import pytest
from assistant_helpers import SampleLake
from chat_server import chat_server, completion

from datadrive.assistant import Assistant, ChatEndpoint, EndpointConfig, load_vehicle
from datadrive.errors import EndpointError, ResidencyError


def _assistant(
    sample_lake: SampleLake,
    url: str,
    *,
    region: str = "eu-central",
    endpoint_region: str = "eu-central",
    timeout: float = 5.0,
) -> Assistant:
    lake = sample_lake.lake(home=region, user="ana" if region == "eu-central" else "li")
    vehicle = sample_lake.comma_vehicle if region == "eu-central" else None
    snap = lake.snapshot(region)
    if vehicle is None:
        from datadrive.assistant import list_vehicles

        vehicle = next(iter(list_vehicles(snap)))
    logs = load_vehicle(snap, vehicle)
    endpoint = ChatEndpoint(
        EndpointConfig("test-llm", url, "test-model", endpoint_region, api_key="sekret", timeout_s=timeout)
    )
    return Assistant(logs, model=endpoint, lake=lake, store=False)


def test_tool_calls_then_a_grounded_answer(sample_lake: SampleLake) -> None:
    def script(body: dict[str, Any]) -> tuple[int, bytes, float]:
        tools = [m for m in body["messages"] if m["role"] == "tool"]
        if not tools:
            return (
                200,
                completion(tool_calls=[{"name": "signal_stats", "arguments": {"quantity": "speed"}}]),
                0.0,
            )
        result = json.loads(tools[-1]["content"])
        top = result["facts"]["max"]["value"]
        return (
            200,
            completion(
                f"Your top speed was {top * 3.6:.1f} km/h ({top:.2f} "
                "m/s), from can/speed over the whole drive."
            ),
            0.0,
        )

    with chat_server(script) as (url, received):
        answer = _assistant(sample_lake, url).ask("how fast did I go?")
    assert answer.backend == "model:test-llm"
    assert answer.check.ok
    assert answer.check.numbers >= 2
    assert "71.4 km/h" in answer.text  # the comma2k19 segment's top speed, 19.84 m/s
    assert [r.tool for r in answer.results] == ["signal_stats"]
    assert received[0]["path"] == "/v1/chat/completions"
    assert received[0]["auth"] == "Bearer sekret"
    assert {t["function"]["name"] for t in received[0]["tools"]} >= {"signal_stats", "trip_summary", "route"}


def test_a_made_up_number_is_never_shown(sample_lake: SampleLake) -> None:
    def script(body: dict[str, Any]) -> tuple[int, bytes, float]:
        if not [m for m in body["messages"] if m["role"] == "tool"]:
            return (
                200,
                completion(tool_calls=[{"name": "signal_stats", "arguments": {"quantity": "speed"}}]),
                0.0,
            )
        return 200, completion("Your top speed was 187.3 km/h."), 0.0

    with chat_server(script) as (url, _):
        answer = _assistant(sample_lake, url).ask("what was my top speed")
    assert "187.3" not in answer.text
    assert answer.check.ok
    assert "71.4 km/h" in answer.text
    assert answer.backend.startswith("offline")
    assert any("187.3" in n for n in answer.notes)


def test_an_answer_without_tools_is_overruled(sample_lake: SampleLake) -> None:
    with chat_server(lambda body: (200, completion("It was about 95 km/h."), 0.0)) as (url, _):
        answer = _assistant(sample_lake, url).ask("what was my top speed")
    assert "95" not in answer.text
    assert "71.4 km/h" in answer.text


@pytest.mark.parametrize(
    ("script", "why"),
    [
        (lambda body: (200, b"<html>gateway error</html>", 0.0), "not a chat completion"),
        (lambda body: (200, b'{"choices": []}', 0.0), "not a chat completion"),
        (lambda body: (500, b'{"error": "boom"}', 0.0), "HTTP 500"),
        (
            lambda body: (
                200,
                completion(tool_calls=[{"name": "signal_stats", "arguments": {"quantity": "speed"}}]).replace(
                    b'\\"speed\\"}', b'\\"speed'
                ),
                0.0,
            ),
            "does not parse",
        ),
        (lambda body: (200, completion("late"), 3.0), "did not answer within"),
    ],
    ids=["html", "no-choices", "http-500", "bad-tool-arguments", "timeout"],
)
def test_a_failing_endpoint_falls_back_to_the_offline_answer(
    sample_lake: SampleLake, script: Any, why: str
) -> None:
    with chat_server(script) as (url, _):
        a = _assistant(sample_lake, url, timeout=1.0)
        model = a.model
        assert model is not None
        with pytest.raises(EndpointError, match=why):
            model.complete([{"role": "user", "content": "hi"}], [])
        answer = a.ask("what was my top speed")
    assert answer.backend == "offline"
    assert "71.4 km/h" in answer.text
    assert answer.check.ok
    assert any("failed" in n for n in answer.notes)


def test_unreachable_endpoint(sample_lake: SampleLake) -> None:
    a = _assistant(sample_lake, "http://127.0.0.1:9/v1", timeout=1.0)
    answer = a.ask("summarise this trip")
    assert answer.backend == "offline"
    assert answer.answered
    assert any("cannot be reached" in n or "failed" in n for n in answer.notes)


def test_cn_north_data_refuses_an_eu_central_endpoint_and_audits_it(sample_lake: SampleLake) -> None:
    calls: list[Any] = []
    with (
        chat_server(lambda body: (calls.append(body), (200, completion("x"), 0.0))[1]) as (url, _),
        pytest.raises(ResidencyError, match=r"cn-north.*eu-central"),
    ):
        _assistant(sample_lake, url, region="cn-north", endpoint_region="eu-central")
    assert calls == []  # nothing was sent
    lake = sample_lake.lake(home="cn-north", user="li")
    audit = lake.audit_log("cn-north")
    refused = audit.filter(pc.equal(audit["outcome"], "refused")).to_pylist()
    assert any(
        r["action"] == "export" and "eu-central" in r["object"] and "model endpoint test-llm" in r["object"]
        for r in refused
    )


def test_an_in_region_endpoint_is_allowed_and_audited(sample_lake: SampleLake) -> None:
    with chat_server(lambda body: (200, completion("I can't tell that from this vehicle's data."), 0.0)) as (
        url,
        _,
    ):
        _assistant(sample_lake, url, region="cn-north", endpoint_region="cn-north")
    audit = sample_lake.lake(home="cn-north", user="li").audit_log("cn-north").to_pylist()
    assert any(
        r["action"] == "export" and r["outcome"] == "ok" and "-> cn-north" in r["object"] for r in audit
    )
