"""Property-based fuzzing of the API from its own OpenAPI schema (schemathesis): no 5xx, one error shape.

Every operation of ``/api/v1/openapi.json`` gets requests generated from its
parameters and bodies (valid and invalid), sent with an admin's API key, so
the fuzzer reaches past authentication into every handler. The properties:
no response is a server error, and every refusal has the one error body
``{"error": {"status", "code", "message", "request_id"}}`` with the status it
is sent with. Hypothesis is derandomized (a fixed seed per operation) and
bounded in examples, so a run is repeatable and takes about a minute.

The fuzzer gets an app of its own (its own database: it creates users, keys,
grants and jobs at random), over the session's lake (which it cannot write:
jobs are not run, SQL is read-only).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from service_helpers import make_app, populate

pytestmark = [pytest.mark.slow]

EXAMPLES = 3


@pytest.fixture(scope="module")
def fuzz_app(lake_dir: Path, samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data = tmp_path_factory.mktemp("fuzz")
    app = make_app(
        lake_dir,
        data,
        f"sqlite:///{data / 'service.db'}",
        maps_dir=samples / "lanelet2_map",
        rate_limit_per_minute=0,
    )
    app.state.fuzz_keys, _ = populate(app)
    yield app
    app.state.services.engine.dispose()


def _check(case: Any, key: str) -> None:
    resp = case.call(headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code < 500, (
        f"{case.method} {case.formatted_path}: {resp.status_code} {resp.text[:500]}"
    )
    if resp.status_code >= 400:
        body = resp.json()
        assert set(body) == {"error"}, body
        err = body["error"]
        assert err["status"] == resp.status_code, body
        assert err["code"], body
        assert err["message"], body
        rid = resp.headers.get("x-request-id")  # schemathesis keeps every value of a header: a list
        assert [err["request_id"]] == (rid if isinstance(rid, list) else [rid]), body


def test_no_server_errors_and_one_error_shape(fuzz_app: Any) -> None:
    """Every operation, positive and negative examples; one failure report per operation and mode."""
    from hypothesis import given
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", fuzz_app)
    key = fuzz_app.state.fuzz_keys["ana@bmw"]
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    # real ids for a third pass, so random queries, filters and bodies reach the handlers behind the
    # path (an unknown region or scenario is refused before them)
    snap = fuzz_app.state.services.gateway.snapshot(_principal(), "eu-central")
    real = {
        "region": "eu-central",
        "scenario_id": snap.sql("SELECT min(scenario_id) FROM scenarios").table[0][0].as_py(),
    }
    for op in operations:
        names = {p.name for p in op.iter_parameters() if p.location == "path"}
        pinned = {k: v for k, v in real.items() if k in names}
        passes = [(GenerationMode.POSITIVE, None), (GenerationMode.NEGATIVE, None)]
        if pinned and names <= set(pinned):
            passes.append((GenerationMode.POSITIVE, pinned))
        for mode, path in passes:

            @given(case=op.as_strategy(generation_mode=mode, path_parameters=path))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                _check(case, key)

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid (an operation without parameters)
                continue
            except AssertionError as exc:
                failures.append(f"{op.label} ({mode.value}{', real ids' if path else ''}): {exc}"[:800])
    assert not failures, "\n".join(failures)


def _principal() -> Any:
    from datadrive.lake import Principal

    return Principal("ana@bmw", "bmw", "eu-central")
