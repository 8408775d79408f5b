"""Simulator speed against highway-env in the same run, fleet generation rate and memory.

    python benchmarks/sim.py [--scenarios 64] [--agents 51] [--steps 91] [--fleet 2000] [--rss-scenarios 1000]

Rows: highway-env's highway-v0 stepping 51 vehicles at 10 Hz (its agent-steps/s);
datadrive's batched simulator (reactive IDM/MOBIL agents, IDM route policy)
on the same number of agents per scenario, with the nuPlan and NAVSIM
metrics (collision checks included) computed on every rollout; fleet
generation into a lake (scenarios/s, peak RSS); resident memory sampled over
a simulation run of ``--rss-scenarios`` synthetic scenarios.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "sim"))


def highway_env_rate(steps: int = 200) -> float:
    import gymnasium as gym
    import highway_env  # noqa: F401

    env = gym.make("highway-v0", config={"vehicles_count": 50, "simulation_frequency": 10, "policy_frequency": 10,
                                         "duration": 10_000})  # fmt: skip
    env.reset(seed=0)
    n = len(env.unwrapped.road.vehicles)
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(1)  # IDLE
    dt = time.perf_counter() - t0
    env.close()
    return n * steps / dt


def datadrive_rate(scenarios: int, agents: int, steps: int, batch: int) -> tuple[float, float]:
    from builders import constant_motion, scenario, straight_map

    from datadrive.sim.metrics import scenario_metrics
    from datadrive.sim.policies import IdmRoutePolicy
    from datadrive.sim.prepare import PrepareConfig, prepare
    from datadrive.sim.simulator import SimConfig, Simulator

    rng = np.random.default_rng(0)
    m = straight_map(5000.0, lanes=4)
    prepped = []
    for k in range(batch):
        lane = rng.integers(0, 4, agents)
        x0 = np.sort(rng.uniform(0, 800, agents))
        xy, h, v = constant_motion(
            list(x0), list(lane * 3.7), [0.0] * agents, list(rng.uniform(15, 25, agents)), steps
        )
        prepped.append(prepare(scenario(xy, h, v, map_=m, sid=f"b{k}"), PrepareConfig(max_agents=agents)))
    sim = Simulator(SimConfig(reactive=True))
    done_steps, t_sim, t_all = 0, 0.0, 0.0
    for _ in range(max(1, scenarios // batch)):
        t0 = time.perf_counter()
        ro = sim.run(sim.batch(prepped), IdmRoutePolicy())
        t1 = time.perf_counter()
        for i, s in enumerate(prepped):
            scenario_metrics(s, ro, i)
        t2 = time.perf_counter()
        t_sim += t1 - t0
        t_all += t2 - t0
        done_steps += batch * agents * (steps - 1)
    return done_steps / t_sim, done_steps / t_all


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def fleet_and_rss(samples: Path, count: int, rss_scenarios: int) -> dict[str, float]:
    from datadrive.lake import Lake, LakeConfig, Principal, RegionConfig, StorageRoot, TenantConfig
    from datadrive.sim.fleet import FleetConfig, generate_into_lake
    from datadrive.sim.runner import SimRequest, simulate_lake

    maps = (str(samples / "av2_motion_forecasting/0a1e6f0a-1817-4a98-b02e-db8c9327d151"),
            str(samples / "lanelet2_map/mapping_example.osm"))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        cfg = LakeConfig(regions={"eu": RegionConfig("eu", StorageRoot(str(Path(tmp) / "eu")))},
                         tenants={"t": TenantConfig("t", bytes(range(32)))})  # fmt: skip
        lake = Lake(cfg, Principal("bench", "t", "eu"))
        lake.init(["eu"])
        t0 = time.perf_counter()
        rep = generate_into_lake(lake, "eu", FleetConfig(maps=maps), count, commit_every=500)
        fleet_s = time.perf_counter() - t0
        peak_fleet = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        samples_rss: list[float] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples_rss.append(rss_mib())
                time.sleep(0.5)

        th = threading.Thread(target=sample)
        th.start()
        t0 = time.perf_counter()
        simulate_lake(lake, "eu", SimRequest(policy="idm", reactive=True, batch_size=16),
                      query=f"scenario_id < 'synthetic-0-{rss_scenarios:07d}'", chunk_size=32, store=False)  # fmt: skip
        sim_s = time.perf_counter() - t0
        stop.set()
        th.join()
    k = max(1, len(samples_rss) // 5)
    return {
        "fleet_scenarios": rep.scenarios,
        "fleet_rate": rep.scenarios / fleet_s,
        "fleet_peak_rss_mib": peak_fleet,
        "sim_seconds": sim_s,
        "rss_after_warmup_mib": float(np.median(samples_rss[k : 2 * k])) if samples_rss else float("nan"),
        "rss_end_mib": float(np.median(samples_rss[-k:])) if samples_rss else float("nan"),
        "rss_max_mib": max(samples_rss) if samples_rss else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", type=int, default=64)
    ap.add_argument("--agents", type=int, default=51)
    ap.add_argument("--steps", type=int, default=91)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument(
        "--fleet", type=int, default=2000, help="scenarios generated into a lake (1000000 for the scale run)"
    )
    ap.add_argument("--rss-scenarios", type=int, default=1000)
    ap.add_argument("--samples", type=Path, default=REPO.parent / "shared" / "data")
    a = ap.parse_args()
    hw = highway_env_rate()
    sim_only, with_metrics = datadrive_rate(a.scenarios, a.agents, a.steps, a.batch)
    print(f"highway-env highway-v0: {hw:,.0f} agent-steps/s")
    print(
        f"datadrive (numpy, 1 process), stepping only: {sim_only:,.0f} agent-steps/s ({sim_only / hw:.0f}x)"
    )
    print(
        f"datadrive, with nuPlan + NAVSIM metrics: {with_metrics:,.0f} agent-steps/s ({with_metrics / hw:.0f}x)"
    )
    res = fleet_and_rss(a.samples, a.fleet, min(a.rss_scenarios, a.fleet))
    for k, v in res.items():
        print(f"{k}: {v:,.2f}")


if __name__ == "__main__":
    main()
