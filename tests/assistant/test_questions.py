"""The question set over the telemetry samples: facts right and every number grounded.

Goal (issue 11): at least 98 % of the answers state the right facts with the
offline parser, and no answer states a number no tool returned.
"""

from __future__ import annotations

from collections import Counter

import pytest
from assistant_helpers import FAULT_FROZEN_S, SampleLake
from question_set import Case, build_cases

from datadrive.assistant import Assistant, load_vehicle


@pytest.fixture(scope="module")
def cases(samples, sample_lake: SampleLake) -> list[Case]:  # type: ignore[no-untyped-def]
    return build_cases(samples, {"frozen": FAULT_FROZEN_S, "can": sample_lake.busiest_can})


def test_question_set(sample_lake: SampleLake, cases: list[Case]) -> None:
    lake = sample_lake.lake()
    snap = lake.snapshot("eu-central")
    vehicles = {
        "comma": sample_lake.comma_vehicle,
        "udacity": sample_lake.udacity_vehicle,
        "faulty": sample_lake.faulty_vehicle,
    }
    assistants = {k: Assistant(load_vehicle(snap, v), lake=lake, store=False) for k, v in vehicles.items()}
    assert len(cases) >= 200
    assert len({c.question for c in cases}) >= 120  # varied phrasings, not one template repeated
    wrong: list[str] = []
    ungrounded: list[str] = []
    families: Counter[str] = Counter()
    for case in cases:
        answer = assistants[case.vehicle].ask(case.question)
        families[case.family] += 1
        if not answer.check.ok or answer.check.ungrounded:
            ungrounded.append(f"{case.question!r}: {answer.check.ungrounded}")
        problem = case.check(answer.text)
        if problem is not None:
            wrong.append(f"[{case.vehicle}] {case.question!r}: {problem}\n    {answer.text.splitlines()[0]}")
    share = 1 - len(wrong) / len(cases)
    print(
        f"\nquestion set: {len(cases)} questions, {share:.1%} with the right facts; families {dict(families)}"
    )
    assert not ungrounded, "answers stating numbers no tool returned:\n" + "\n".join(ungrounded)
    assert share >= 0.98, f"{len(wrong)} of {len(cases)} wrong:\n" + "\n".join(wrong)
