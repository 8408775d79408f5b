"""Against an independent simulator: car following in highway-env and datadrive, same IDM."""

from __future__ import annotations

import numpy as np
import pytest
from builders import constant_motion, scenario

from datadrive.sim.policies import ConstantVelocityPolicy
from datadrive.sim.prepare import prepare
from datadrive.sim.simulator import IdmParams, MobilParams, SimConfig, Simulator

TOLERANCE_M = 1e-6
"""Both integrate explicit Euler at 0.1 s with the same IDM; only float rounding may differ."""


def test_idm_car_following_matches_highway_env() -> None:
    highway_env = pytest.importorskip(
        "highway_env", reason="highway-env is a test dependency (pip install highway-env)"
    )
    del highway_env
    from highway_env.road.road import Road, RoadNetwork
    from highway_env.vehicle.behavior import IDMVehicle
    from highway_env.vehicle.kinematics import Vehicle

    dt, steps = 0.1, 300
    v_lead, v_follow, v0 = 8.0, 14.0, 18.0
    x_lead, x_follow = 60.0, 0.0
    road = Road(RoadNetwork.straight_road_network(lanes=1, length=10000), np_random=np.random.default_rng(0))
    lane = road.network.get_lane(("0", "1", 0))
    leader = Vehicle(road, lane.position(x_lead, 0), 0.0, v_lead)
    follower = IDMVehicle(
        road, lane.position(x_follow, 0), 0.0, v_follow, target_speed=v0, enable_lane_change=False
    )
    road.vehicles += [leader, follower]
    ref = []
    for _ in range(steps):
        ref.append((follower.position[0], follower.speed))
        leader.act({"acceleration": 0.0, "steering": 0.0})
        follower.act()
        road.step(dt)
    ref_x, ref_v = np.asarray(ref).T
    # datadrive: the same IDM (highway-env measures centre-to-centre, jam distance 5 m + its 5 m length)
    idm = IdmParams(
        a_max_mps2=IDMVehicle.COMFORT_ACC_MAX,
        b_comf_mps2=-IDMVehicle.COMFORT_ACC_MIN,
        time_headway_s=IDMVehicle.TIME_WANTED,
        s0_m=IDMVehicle.DISTANCE_WANTED,
        delta=IDMVehicle.DELTA,
        clamp_desired_gap=False,
        gap_reference="center",
        a_min_mps2=-IDMVehicle.ACC_MAX,
    )
    xy, h, v = constant_motion([x_lead, x_follow], [0.0, 0.0], [0.0, 0.0], [v_lead, v_follow], steps)
    s = prepare(scenario(xy, h, v, size=(5.0, 2.0)))
    s.desired_speed_mps[1] = v0
    sim = Simulator(SimConfig(reactive=True, idm=idm, mobil=MobilParams(enabled=False)))
    ro = sim.run(sim.batch([s]), ConstantVelocityPolicy())
    ours_x, ours_v = ro.x_m[0, 1], ro.speed_mps[0, 1]
    assert np.max(np.abs(ours_x - ref_x)) < TOLERANCE_M
    assert np.max(np.abs(ours_v - ref_v)) < TOLERANCE_M
    # and the follower really followed: it slowed from 14 to the leader's 8 m/s
    assert ours_v[-1] == pytest.approx(v_lead, abs=0.05)
