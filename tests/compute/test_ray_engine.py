"""The Ray engine on a real 2-node Ray cluster started on 127.0.0.1 (``services.ray_cluster``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from datadrive.compute import InlineEngine
from datadrive.compute.ray_engine import RayEngine
from datadrive.core.arrow import scenarios_from_arrow, scenarios_to_arrow
from datadrive.core.scenario import Scenario, scenarios_equal
from datadrive.errors import UnsupportedFormatError
from datadrive.sources import DEFAULT_REGISTRY
from services import RayCluster, is_loopback, listeners, ray_cluster

sys.path.insert(0, str(Path(__file__).parent))

__all__ = ["ray_cluster"]  # the fixture, imported so pytest finds it here

pytestmark = [pytest.mark.service, pytest.mark.slow]  # starts a 2-node cluster (about 20 s)


@pytest.fixture(scope="module", autouse=True)
def _pickle_this_module_by_value() -> None:
    """Ship this module's functions to the cluster by value: its workers cannot import test files."""
    pytest.importorskip("ray")
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]


def node_and_square(x: int) -> tuple[int, int, str, int]:
    """``(x, x*x, node id, pid)``, slowly enough that both 1-CPU nodes get work."""
    import time

    import ray

    time.sleep(0.2)
    return x, x * x, ray.get_runtime_context().get_node_id(), os.getpid()


def test_cluster_listens_only_on_loopback(ray_cluster: RayCluster) -> None:
    with RayEngine(ray_cluster.address) as engine:
        assert sorted(r[1] for r in engine.map_unordered(node_and_square, range(4))) == [0, 1, 4, 9]
        # the cluster's daemons, its workers and this driver, while connected
        found = listeners(ray_cluster.pids() | {os.getpid()})
    assert len(found) >= 8, found  # GCS, 2 raylets x 2, agents, client server, the driver
    assert [f for f in found if not is_loopback(f[0])] == []


def test_map_runs_every_item_once_on_both_nodes(ray_cluster: RayCluster) -> None:
    import ray

    with RayEngine(ray_cluster.address, max_in_flight=4) as engine:
        results = list(engine.map_unordered(node_and_square, range(12)))
        nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}  # type: ignore[no-untyped-call]
    assert sorted((x, sq) for x, sq, _, _ in results) == [(x, x * x) for x in range(12)]
    assert len(nodes) == 2
    assert {node for _, _, node, _ in results} == nodes  # both nodes did some of the work
    assert not ray.is_initialized()  # the engine connected, so it disconnected


def test_consumer_that_stops_early(ray_cluster: RayCluster) -> None:
    with RayEngine(ray_cluster.address, max_in_flight=2) as engine:
        it = engine.map_unordered(node_and_square, range(50))
        first = next(iter(it))
        it.close()  # type: ignore[attr-defined]
        # the engine is still usable after an abandoned map
        again = sorted(r[0] for r in engine.map_unordered(node_and_square, range(3)))
    assert first[1] == first[0] ** 2
    assert again == [0, 1, 2]


def read_to_arrow(path: str) -> tuple[str, str, int, Any]:
    """Read one sample unit with the registered adapter and convert it to Arrow (on a worker).

    Units that are not read on their own (INTERACTION's pedestrian file goes
    with its vehicle file) come back with no tables.
    """
    from datadrive.core.arrow import scenarios_to_arrow
    from datadrive.core.scenario import Scenario
    from datadrive.errors import UnsupportedFormatError
    from datadrive.sources import DEFAULT_REGISTRY

    adapter = DEFAULT_REGISTRY.detect(path)
    try:
        scenarios = [r for r in adapter.read_all(path) if isinstance(r, Scenario)]
    except UnsupportedFormatError:
        return path, adapter.name, 0, None
    return path, adapter.name, len(scenarios), scenarios_to_arrow(scenarios) if scenarios else None


# formats that yield scenarios, small enough for a quick test
_SAMPLE_FOLDERS = ("av2_motion_forecasting", "interaction", "waymo_open_motion")


def _units(samples: Path) -> list[str]:
    units = []
    for folder in _SAMPLE_FOLDERS:
        found = [str(p) for a, p in DEFAULT_REGISTRY.discover(samples / folder).units if a.name == folder]
        assert found, f"no {folder} sample under {samples / folder}"
        units += found
    return units


def test_readers_on_the_cluster_match_local_reads(ray_cluster: RayCluster, samples: Path) -> None:
    units = _units(samples)
    with RayEngine(ray_cluster.address) as engine:
        results = list(engine.map_unordered(read_to_arrow, units))
    assert sorted(r[0] for r in results) == sorted(units)  # every unit exactly once
    remote = {path: (name, n, tables) for path, name, n, tables in results}
    assert sum(n for _, n, _ in remote.values()) >= 4
    for path in units:
        name, n, tables = remote[path]
        adapter = DEFAULT_REGISTRY.detect(path)
        try:
            local = [r for r in adapter.read_all(path) if isinstance(r, Scenario)]
        except UnsupportedFormatError:
            local = []
        if tables is None:
            assert (name, n, local) == (adapter.name, 0, []), path
            continue
        assert (name, n) == (adapter.name, len(local)), path
        back = scenarios_from_arrow(tables)
        assert len(back) == len(local)
        assert all(scenarios_equal(a, b) for a, b in zip(back, local, strict=True)), path
        here = scenarios_to_arrow(local)
        assert tables.tracks.schema == here.tracks.schema
        assert tables.tracks.num_rows == here.tracks.num_rows, path


def test_same_report_as_inline_including_failures_and_dead_workers(ray_cluster: RayCluster) -> None:
    import ray.cloudpickle
    import units
    from units import die_on_seven, square_or_fail

    ray.cloudpickle.register_pickle_by_value(units)  # type: ignore[no-untyped-call]
    seen: list[int] = []
    with RayEngine(ray_cluster.address) as engine:
        report = engine.map(square_or_fail, range(20), progress=lambda p: seen.append(p.done))
        crashed = engine.map(die_on_seven, range(9))
    assert report == InlineEngine().map(square_or_fail, range(20))
    assert seen == list(range(1, 21))
    assert [f.index for f in crashed.failures] == [7]
    assert crashed.failures[0].error_type == "WorkerDiedError"
    assert crashed.values == tuple(None if x == 7 else x + 1 for x in range(9))
