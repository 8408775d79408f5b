"""Unit tests by construction: expected values computed by hand from the setup."""

from __future__ import annotations

import math

import numpy as np
import pytest
from builders import constant_motion, scenario, straight_map

from datadrive.sim.backend import backend_for
from datadrive.sim.metrics import scenario_metrics
from datadrive.sim.policies import ConstantVelocityPolicy, LogReplayPolicy
from datadrive.sim.prepare import prepare
from datadrive.sim.simulator import IdmParams, SimConfig, Simulator


def test_head_on_approach_collides_at_the_computed_step() -> None:
    # ego at x=0 going +x at 10 m/s; the other at x=100 going -x at 10 m/s; boxes 4 m long:
    # they touch when the centres are 4 m apart: 100 - 2 * 10 * t = 4 -> t = 4.8 s -> step 48
    xy, h, v = constant_motion([0.0, 100.0], [0.0, 0.0], [0.0, math.pi], [10.0, 10.0], 80)
    s = prepare(scenario(xy, h, v, map_=straight_map(opposite=True)))
    sim = Simulator(SimConfig())
    ro = sim.run(sim.batch([s]), ConstantVelocityPolicy())
    m = scenario_metrics(s, ro, 0)
    (event,) = m["collision_events"]
    assert event["step"] == 48
    assert event["type"] == "active_front"
    assert event["at_fault"]
    assert m["no_at_fault_collisions"] == 0.0
    assert m["nuplan_cls"] == 0.0
    assert m["navsim_nc"] < 1.0


def test_rear_end_by_another_car_is_not_the_egos_fault() -> None:
    # ego stopped; a car from behind at 10 m/s: touches when 20 - 10 t = 4 -> step 16, "stopped_ego"
    xy, h, v = constant_motion([20.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 10.0], 40)
    s = prepare(scenario(xy, h, v))
    sim = Simulator(SimConfig())
    ro = sim.run(sim.batch([s]), LogReplayPolicy())
    (event,) = scenario_metrics(s, ro, 0)["collision_events"]
    assert (event["step"], event["type"], event["at_fault"]) == (16, "stopped_ego", False)


@pytest.mark.parametrize("device", [None, "cpu"], ids=["numpy", "torch-cpu"])
def test_idm_follower_settles_at_the_equilibrium_gap(device: str | None) -> None:
    # the ego drives at a constant 10 m/s; a reactive IDM car follows with desired speed 15 m/s.
    # IDM's equilibrium gap at speed v: s_e = (s0 + v T) / sqrt(1 - (v / v0)^delta)
    p = IdmParams()
    v, v0 = 10.0, 15.0
    s_e = (p.s0_m + v * p.time_headway_s) / math.sqrt(1.0 - (v / v0) ** p.delta)
    T = 900
    xy, h, sp = constant_motion([60.0, 0.0], [0.0, 0.0], [0.0, 0.0], [v, v], T)
    s = prepare(scenario(xy, h, sp))
    s.desired_speed_mps[1] = v0
    sim = Simulator(SimConfig(reactive=True), backend_for(device, float_dtype="float64"))
    ro = sim.run(sim.batch([s]), ConstantVelocityPolicy())
    gap = ro.x_m[0, 0, -1] - ro.x_m[0, 1, -1] - 4.0
    assert ro.reactive[0, 1]
    assert gap == pytest.approx(s_e, abs=0.05)
    assert ro.speed_mps[0, 1, -1] == pytest.approx(v, abs=0.01)


def test_leaving_the_drivable_area_is_flagged_at_the_right_step() -> None:
    # one lane along x (half width 1.85 m), no drivable polygons; the ego drives off at 0.1 rad.
    # nuPlan's tolerance: a corner more than 0.3 m beyond the drivable area.
    heading, v, hl, hw = 0.1, 10.0, 2.0, 1.0
    T = 60
    xy, h, sp = constant_motion([0.0], [0.0], [heading], [v], T)
    s = prepare(scenario(xy, h, sp))
    sim = Simulator(SimConfig())
    ro = sim.run(sim.batch([s]), ConstantVelocityPolicy())
    m = scenario_metrics(s, ro, 0)
    t = np.arange(T)
    y_centre = v * math.sin(heading) * 0.1 * t
    # the front-left corner is the farthest to the left
    y_corner = y_centre + hl * math.sin(heading) + hw * math.cos(heading)
    expected = int(np.flatnonzero(y_corner - 1.85 >= 0.3)[0])
    assert m["first_drivable_area_violation_step"] == expected
    assert m["drivable_area_compliance"] == 0.0


def test_a_red_light_stops_a_reactive_car_before_the_line() -> None:
    from dataclasses import replace

    from datadrive.core.scenario import (
        MapBuilder,
        MapFeatureKind,
        MapRelation,
        TrafficLights,
        TrafficLightState,
    )

    b = MapBuilder()
    b.add("in", MapFeatureKind.LANE_CENTERLINE, np.asarray([[-100.0, 0.0], [100.0, 0.0]]))
    b.add("junction", MapFeatureKind.LANE_CENTERLINE, np.asarray([[100.0, 0.0], [300.0, 0.0]]))
    b.relate("in", MapRelation.SUCCESSOR, "junction")
    T = 200
    # the ego stands far away (it only needs to exist); a car at x=0 drives toward the red light at x=100
    xy, h, v = constant_motion([-90.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 10.0], T)
    base = scenario(xy, h, v, map_=b.build())
    lights = TrafficLights(
        np.asarray(["junction"]),
        np.full((1, T), int(TrafficLightState.STOP), dtype=np.int8),
        np.full((1, 3), np.nan),
        np.ones((1, T), dtype=bool),
    )
    s = prepare(replace(base, traffic_lights=lights))
    sim = Simulator(SimConfig(reactive=True))
    ro = sim.run(sim.batch([s]), LogReplayPolicy())
    front = ro.x_m[0, 1] + 2.0
    assert front.max() < 100.0  # never past the stop line
    assert ro.speed_mps[0, 1, -1] < 0.1  # and stopped in front of it


def test_pdm_passes_a_car_that_blocks_part_of_the_lane_with_a_lateral_offset() -> None:
    # a stopped car at x = 40 sticks 1.25 m into the ego's lane from the right (its left side at y = -0.6);
    # the ego (2 m wide) on the centerline would hit it; 1 m to the left it clears it by 0.6 m, inside
    # the road (a second lane on the left). Without lateral offsets PDM can only stop behind it.
    from datadrive.sim.policies import IdmRoutePolicy, PdmConfig

    T = 90
    xy, h, v = constant_motion([0.0, 40.0], [0.0, -1.55], [0.0, 0.0], [10.0, 0.0], T)
    s = prepare(scenario(xy, h, v, size=(4.0, 2.0), map_=straight_map(lanes=2)))
    s.width_m[1] = 1.9
    out = {}
    for name, cfg in (("offsets", PdmConfig()), ("centerline only", PdmConfig(lateral_offsets_m=()))):
        sim = Simulator(SimConfig())
        ro = sim.run(sim.batch([s]), IdmRoutePolicy(cfg))
        out[name] = (ro, scenario_metrics(s, ro, 0))
    ro, m = out["offsets"]
    beside = np.abs(ro.x_m[0, 0] - 40.0) < 3.0
    assert beside.any()  # it got past the car ...
    assert ro.y_m[0, 0][beside].min() > 0.5  # ... on its left, with room
    assert m["at_fault_collisions"] == 0
    assert m["drivable_area_compliance"] == 1.0
    ro, m = out["centerline only"]
    assert ro.x_m[0, 0].max() < 40.0 - 4.0  # stopped behind it
    assert m["at_fault_collisions"] == 0
