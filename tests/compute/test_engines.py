"""One engine API: the same values, failure reports and progress from inline, pool and Ray."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from datadrive.compute import InlineEngine, MapReport, ProcessPoolEngine, Progress, UnitFailure

sys.path.insert(0, str(Path(__file__).parent))
from units import die_on_seven, refaults_of_freed_blocks, square_or_fail


def expected_report(n: int) -> MapReport[int]:
    """Computed by hand: multiples of 3 fail with their message, the rest are squared."""
    values = tuple(None if x % 3 == 0 else x * x for x in range(n))
    failures = tuple(UnitFailure(x, repr(x), "ValueError", f"unit {x} is bad") for x in range(0, n, 3))
    return MapReport(values, failures)


@pytest.mark.parametrize(
    "engine", [InlineEngine(), ProcessPoolEngine(2, window_per_worker=1)], ids=["inline", "process-pool"]
)
def test_map_collects_values_in_order_and_failures_per_unit(engine: object) -> None:
    seen: list[Progress] = []
    report = engine.map(square_or_fail, range(20), progress=seen.append)  # type: ignore[attr-defined]
    assert report == expected_report(20)
    assert not report.ok
    assert report.successes() == [x * x for x in range(20) if x % 3]
    assert [p.done for p in seen] == list(range(1, 21))
    assert {p.total for p in seen} == {20}
    assert seen[-1].failed == 7
    assert sorted(p.index for p in seen) == list(range(20))


@pytest.mark.parametrize("engine", [InlineEngine(), ProcessPoolEngine(2)], ids=["inline", "process-pool"])
def test_imap_streams_outcomes_of_a_generator(engine: object) -> None:
    outcomes = list(engine.imap(square_or_fail, (x for x in range(1, 6))))  # type: ignore[attr-defined]
    assert sorted(o.index for o in outcomes) == [0, 1, 2, 3, 4]
    by_index = {o.index: o for o in outcomes}
    assert by_index[2].failure is not None
    assert by_index[2].failure.message == "unit 3 is bad"
    assert by_index[3].value == 16
    assert by_index[3].ok


def test_a_dead_worker_fails_only_its_own_unit() -> None:
    report = ProcessPoolEngine(2).map(die_on_seven, range(12))
    assert [f.index for f in report.failures] == [7]
    assert report.failures[0].error_type == "WorkerDiedError"
    assert report.values == tuple(None if x == 7 else x + 1 for x in range(12))


def test_empty_input_and_bad_settings() -> None:
    assert InlineEngine().map(square_or_fail, []) == MapReport((), ())
    assert ProcessPoolEngine(2).map(square_or_fail, []) == MapReport((), ())
    with pytest.raises(ValueError, match="workers"):
        ProcessPoolEngine(-1)


def test_long_messages_are_shortened() -> None:
    def boom(x: int) -> int:
        raise RuntimeError("x" * 5000)

    failure = InlineEngine().map(boom, ["u" * 500]).failures[0]
    assert len(failure.message) <= 1000
    assert failure.message.endswith("…")
    assert len(failure.unit) <= 200
    assert str(failure).startswith("'uuu")


def test_pool_workers_keep_freed_memory_for_reuse_unless_told_not_to() -> None:
    """A block freed in a worker is reused without faulting its pages in again (glibc only)."""
    if (
        sys.platform != "linux"
        or not hasattr(os, "confstr")
        or "glibc" not in os.confstr("CS_GNU_LIBC_VERSION")
    ):
        pytest.skip("retaining freed memory uses glibc's mallopt")
    pages = 24 * 2**20 // os.sysconf("SC_PAGE_SIZE")  # of the largest block
    kept = ProcessPoolEngine(1).map(refaults_of_freed_blocks, [24]).values[0]
    returned = ProcessPoolEngine(1, retain_freed_memory=False).map(refaults_of_freed_blocks, [24]).values[0]
    assert kept is not None
    assert returned is not None
    assert kept < pages // 10, (kept, pages)
    assert returned > pages // 2, (returned, pages)
