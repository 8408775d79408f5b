"""Predicates and combinators on hand-built scenarios: which (track, step) states each one selects."""

from __future__ import annotations

import numpy as np
import pytest
from mining_build import OTHER, C, P, V, line, road, scenario

from datadrive.mining.results import mine, select

T = np.arange(50) * 0.1  # 5 s


def rows(query: str, s) -> set[str]:  # type: ignore[no-untyped-def]
    sel = select(query, s)
    return {str(s.tracks.track_ids[r]) for r in np.flatnonzero(sel.mask.any(axis=1))}


def test_categories_follow_labels_across_datasets() -> None:
    labels = [
        "REGULAR_VEHICLE",
        "BUS",
        "vehicle.car",
        "TYPE_VEHICLE",
        "BOX_TRUCK",
        "PEDESTRIAN",
        "BICYCLIST",
        "BOLLARD",
        "EGO_VEHICLE",
    ]
    types = [V, V, V, V, V, P, C, OTHER, V]
    xy = np.zeros((9, 3, 2))
    xy[:, :, 0] = np.arange(9)[:, None] * 10
    s = scenario(xy, types=types, categories=labels, ego_index=8)
    assert rows("car", s) == {"t0", "t2", "t3"}  # Waymo's one vehicle label counts as a car
    assert rows("vehicle", s) == {"t0", "t1", "t2", "t3", "t4"}  # the ego is not "a vehicle"
    assert rows("bus or truck", s) == {"t1", "t4"}
    assert rows("ego", s) == {"t8"}
    assert rows("any", s) == {f"t{i}" for i in range(9)}
    assert rows("vru", s) == {"t5", "t6"}
    assert rows("barrier", s) == {"t7"}
    assert rows("not vehicle", s) == {"t5", "t6", "t7", "t8"}
    nus = ["vehicle.emergency.police", "vehicle.emergency.ambulance", "vehicle.car", "EGO_VEHICLE"]
    e = scenario(
        np.zeros((4, 3, 2)) + np.arange(4)[:, None, None] * 10, types=[V] * 4, categories=nus, ego_index=3
    )
    assert rows("emergency_vehicle", e) == {"t0", "t1"}
    assert rows("car", e) == {"t2"}  # an ambulance is a large vehicle, not a car


def test_kinematic_predicates() -> None:
    moving = line(0, 0, 8, 0, T)
    parked = np.tile([[0.0, 10.0]], (50, 1))
    stop_go = np.stack([np.where(T < 2, 5 * T, np.where(T < 3, 10, 10 + 5 * (T - 3))), np.full(50, 20.0)], 1)
    s = scenario(np.stack([moving, parked, stop_go]))
    assert rows("stationary", s) == {"t1"}
    sel = select("stopped", s).mask
    assert sel[1].all()
    assert not sel[0].any()
    assert sel[2, 22:28].all()
    assert not sel[2, :18].any()
    assert rows("speed(min=7, max=9)", s) == {"t0"}
    assert rows("moving and not stationary", s) == {"t0", "t2"}


def test_reversing_needs_a_box_facing_away_from_the_motion() -> None:
    forward = line(0, 0, 3, 0, T)  # faces +x, drives +x
    backward = line(0, 10, -3, 0, T)  # faces +x, drives -x at 3 m/s: reversing
    slower = line(0, 20, -1.5, 0, T)  # the same at 1.5 m/s
    heading = np.zeros((3, 50))
    s = scenario(np.stack([forward, backward, slower]), heading=heading)
    assert rows("reversing", s) == {"t1", "t2"}
    assert rows("reversing(min_speed=2)", s) == {"t1"}
    assert select("reversing", s).mask[1].all()
    # heading derived from the motion (what a source without box headings gives): never reversing
    assert rows("reversing", scenario(np.stack([forward, backward]))) == set()


def test_relational_directions_and_near() -> None:
    ego = line(0, 0, 5, 0, T)
    ahead = line(20, 0, 5, 0, T)  # 15.5 m ahead of the ego's front bumper
    left = line(0, 3.0, 5, 0, T)
    ped = line(8, -1.5, 5, 0, T)  # ahead and 1.5 m right of the centre line
    s = scenario(np.stack([ego, ahead, left, ped]), types=[V, V, V, P], ego_index=0)
    # t3 (a pedestrian 1.5 m off the axis) has t1 ahead too; t2 does not: t1 is 3 m to its right,
    # beyond its half width (0.95 m) plus the 2 m lateral default
    assert rows("has_ahead(vehicle)", s) == {"t0", "t3"}
    assert rows("vehicle and ahead_of(ego)", s) == {"t1"}
    assert rows("left_of(ego)", s) == {"t2"}
    # distances in a direction run from the subject's side to the other object's centre: 3 - 0.95 m
    assert rows("ego and has_left(vehicle, within=2.1m)", s) == {"t0"}
    assert rows("ego and has_left(vehicle, within=2m)", s) == set()
    assert rows("pedestrian and ahead_of(ego, within=10m)", s) == {"t3"}
    assert rows("ego and near(pedestrian, within=5.5m)", s) == {"t0"}  # box to box: 8 - 2.25 - 0.3 m
    assert rows("ego and near(pedestrian, within=5.4m)", s) == set()
    assert rows("ego and near(vehicle, within=5m, min=2)", s) == set()
    sel = select("ego and has_ahead(vehicle)", s)
    assert sel.related[1].all()  # the vehicle ahead is the related object


def test_following_heading_and_facing() -> None:
    lead = line(20, 0, 10, 0, T)
    follower = line(0, 0, 10, 0, T)
    oncoming = line(60, 3.6, -10, 0, T)
    cross = line(30, -20, 0, 8, T)
    s = scenario(np.stack([lead, follower, oncoming, cross]))
    assert rows("following(vehicle)", s) == {"t1"}
    assert rows("followed_by(vehicle)", s) == {"t0"}
    assert rows("heading(t0_is_not_a_category, opposite)".replace("t0_is_not_a_category", "vehicle"), s) == {
        "t0",
        "t1",
        "t2",
    }
    assert rows("heading(vehicle, perpendicular)", s) == {"t0", "t1", "t2", "t3"}
    m = select("facing(vehicle, angle=10deg, within=30m)", s).mask
    assert (m[1].any() and not m[3].any()) or m[3].any()  # the crossing car faces the lead only briefly
    assert rows("heading_toward(vehicle, within=100m)", s) >= {"t1", "t2"}


def test_crossing_in_front() -> None:
    car = line(0, 0, 2, 0, T)
    ped = np.stack([np.full(50, 12.0), -8 + 4 * T], 1)  # crosses y = 0 at t = 2 s, 12 - 4 - 2.25 m ahead
    s = scenario(np.stack([car, ped]), types=[V, P])
    sel = select("pedestrian and crossing(vehicle)", s)
    assert sel.mask[1, 20]
    assert sel.related[0, 20]
    assert not sel.mask[1, :7].any()  # still more than 5 m to the side
    assert sel.mask[1, 8:32].all()  # within 5 m of the car's axis
    assert rows("vehicle and crossed_by(pedestrian)", s) == {"t0"}


def test_wrong_way_against_the_lane_not_reversing_not_in_the_other_lane() -> None:
    m = road(lanes=1, opposite=True)  # L0_0 runs +x at y=0, OPP runs -x at y=3.6
    ghost = line(50, 0, -8, 0, T)  # in the +x lane, facing and driving -x
    oncoming = line(50, 3.6, -8, 0, T)  # in its own -x lane
    normal = line(-50, 0, 8, 0, T)
    backing = line(20, 0, -3, 0, T)  # in the +x lane, facing +x, reversing
    heading = np.stack([np.full(50, np.pi), np.full(50, np.pi), np.zeros(50), np.zeros(50)])
    s = scenario(np.stack([ghost, oncoming, normal, backing]), heading=heading, map=m)
    assert rows("wrong_way", s) == {"t0"}
    assert select("wrong_way", s).mask[0].all()
    assert rows("reversing", s) == {"t3"}
    assert rows("wrong_way", scenario(np.stack([ghost]), heading=heading[:1])) == set()  # no map


@pytest.mark.parametrize(
    ("lane", "stop"),
    [("L0_0", (0.0, 0.0)), ("L0_1", (0.0, 0.0)), ("L0_0", (np.nan, np.nan)), ("L0_1", (np.nan, np.nan))],
    ids=[
        "approach lane",
        "intersection lane (Waymo)",
        "approach, no stop point",
        "intersection, no stop point",
    ],
)
def test_red_lights_and_running_them(lane: str, stop: tuple[float, float]) -> None:
    from datadrive.core.scenario import TrafficLights, TrafficLightState

    m = road(lanes=1, intersection=(0.0, 20.0))  # approach L0_0 ends at x=0, L0_1 is the intersection
    state = np.where(T < 2.5, TrafficLightState.STOP, TrafficLightState.GO).astype(np.int8)
    lights = TrafficLights(
        lane_ids=np.array([lane]),
        state=state[None, :],
        stop_point_m=np.array([[*stop, np.nan]]),
        valid=np.ones((1, 50), dtype=bool),
    )
    waits = np.tile([[-3.0, 0.0]], (50, 1))
    runs = line(-15, 0, 10, 0, T)  # reaches the stop line at 1.5 s, while red
    later = line(-40, 0, 10, 0, T)  # reaches it at 4 s, green
    s = scenario(np.stack([waits, runs, later]), map=m, traffic_lights=lights)
    assert rows("running_red_light", s) == {"t1"}
    run = select("running_red_light", s).mask[1]
    first = int(np.flatnonzero(run)[0])
    assert runs[first, 0] < 0 <= runs[first + 1, 0]  # from its last step before the line ...
    assert run[first : int(np.flatnonzero(runs[:, 0] < 20)[-1]) + 1].all()  # ... through the intersection
    assert not run[runs[:, 0] > 21].any()
    red = select("red_light", s).mask
    assert red[0, :25].all()
    assert not red[0, 25:].any()  # green from 2.5 s
    assert red[1, :15].all()
    assert not red[1, 18:].any()  # more than half its length past the stop line
    assert rows("red_light", s) == {"t0", "t1", "t2"}
    assert rows("red_light(within=5m)", s) == {"t0", "t1"}  # the later car is 16 m away when it turns green
    assert rows("vehicle and stopped and red_light", s) == {"t0"}
    dark = scenario(np.stack([waits, runs, later]), map=m)
    assert rows("red_light or running_red_light", dark) == set()


def test_map_predicates_on_a_built_road() -> None:
    m = road(lanes=3, crosswalk_x=20.0, stop_line_x=15.0, bike_lane=True, intersection=(40.0, 60.0))
    on_bike_lane = np.tile([[0.0, 0.0]], (50, 1))
    at_crosswalk = np.tile([[20.0, 3.6]], (50, 1))
    in_intersection = np.tile([[50.0, 3.6]], (50, 1))
    off_road = np.tile([[0.0, -10.0]], (50, 1))
    before_stop = np.tile([[9.0, 3.6]], (50, 1))
    s = scenario(
        np.stack([on_bike_lane, at_crosswalk, in_intersection, off_road, before_stop]),
        heading=np.zeros((5, 50)),
        types=[C, P, V, P, V],
        map=m,
    )
    assert rows("lane_type(bike)", s) == {"t0"}
    assert rows("at_crosswalk", s) == {"t1"}
    assert rows("at_intersection", s) == {"t2"}
    assert rows("near_intersection(within=5m)", s) == {"t2"}
    assert rows("not in_drivable_area", s) == {"t3"}
    assert rows("on_road", s) == {"t0", "t1", "t2", "t4"}
    assert rows("at_stop_line(within=10m)", s) == {"t4"}
    assert rows("road_side(within=2m)", s) == {"t0"}  # 1.8 m from the drivable area's edge; lane 1 is 5.4 m
    # without a map, map predicates select nothing and the result says so
    bare = scenario(np.stack([on_bike_lane]), types=[C])
    r = mine("cyclist and not on_road", [bare])
    assert r.scenarios_without_map == ("built",)
    assert len(r) == 1


def test_temporal_combinators() -> None:
    ego = np.stack([np.where(T < 2, 5 * T, 10.0), np.zeros(50)], 1)  # stops at t = 2 s
    ped = line(30, 5, 0, 0, T)
    valid = np.ones((2, 50), dtype=bool)
    valid[1, :35] = False  # the pedestrian appears at t = 3.5 s
    s = scenario(np.stack([ego, ped]), types=[V, P], valid=valid, ego_index=0)
    during = select("during(ego, pedestrian)", s).mask
    assert during[0, 35:].all()
    assert not during[0, :35].any()
    before = select("before(ego and stopped, pedestrian, within=1s)", s).mask
    assert before[0, 25:].any()
    assert not before[0, :24].any()
    after = select("after(ego and stopped, pedestrian, within=0.5s)", s).mask
    assert after[0, 35:].all()
    assert not after[0, :35].any()
    assert rows("at_least(2, any)", s) == {"t0", "t1"}
    assert rows("at_least(3, any)", s) == set()
    lasting = select("for_at_least(ego and stopped, 2.5s)", s).mask
    assert lasting[0].sum() >= 25
    assert rows("for_at_least(ego and stopped, 4s)", s) == set()


def test_results_intervals_and_related_tracks() -> None:
    car = line(0, 0, 2, 0, T)
    ped = np.stack([np.full(50, 12.0), -4 + 2 * T], 1)
    s = scenario(np.stack([car, ped]), types=[V, P])
    r = mine("pedestrian and crossing(vehicle)", [s])
    assert len(r) == 1
    hit = r.hits[0]
    assert hit.track_id == "t1"
    assert hit.related_track_ids == ("t0",)
    (first, last) = hit.steps[0]
    assert hit.intervals_ns[0] == (int(s.timestamps_ns[first]), int(s.timestamps_ns[last]))
    table = r.to_arrow()
    assert table.num_rows == 1
    assert table.column("track_id")[0].as_py() == "t1"
    assert r.to_json()[0]["related_track_ids"] == ["t0"]


def test_empty_single_and_invalid_scenarios_do_not_crash() -> None:
    m = road()
    for s in (
        scenario(np.zeros((0, 5, 2)), types=[], map=m),
        scenario(np.zeros((1, 1, 2)), map=m, ego_index=0),
        scenario(np.zeros((2, 5, 2)), valid=np.zeros((2, 5), dtype=bool), map=m),
    ):
        for q in (
            "car and near(pedestrian)",
            "during(ego, crossing(vehicle))",
            "for_at_least(stopped, 1s)",
            "at_crosswalk or at_intersection",
            "changing_lanes and turning",
        ):
            assert len(mine(q, [s])) == 0


@pytest.mark.parametrize(
    "q", ["car and stopped", "pedestrian and crossing(vehicle)", "ego and has_ahead(vehicle)"]
)
def test_real_samples_answer_quickly_and_consistently(sample, q: str) -> None:  # type: ignore[no-untyped-def]
    s = sample("waymo")
    r = mine(q, [s])
    sel = select(q, s)
    assert {h.track_id for h in r} == {str(s.tracks.track_ids[i]) for i in np.flatnonzero(sel.mask.any(1))}
    assert (sel.mask <= s.tracks.valid).all()


def test_vehicles_wait_at_red_lights_on_waymo(sample) -> None:  # type: ignore[no-untyped-def]
    """The Waymo sample: traffic queues at a red light, the ego among them, and none runs it."""
    from datadrive.core.scenario import TrafficLightState

    s = sample("waymo")
    tl = s.traffic_lights
    assert tl is not None
    hits = list(mine("vehicle and stopped and red_light", [s]))
    assert len(hits) >= 5
    speed = np.hypot(s.tracks.velocity_mps[..., 0], s.tracks.velocity_mps[..., 1])
    rows_of = {str(t): i for i, t in enumerate(s.tracks.track_ids.tolist())}
    stops = [TrafficLightState.STOP, TrafficLightState.ARROW_STOP, TrafficLightState.FLASHING_STOP]
    red = (np.isin(tl.state, stops) & tl.valid).any(axis=0)
    for h in hits:
        for first, last in h.steps:
            known = speed[rows_of[h.track_id], first : last + 1]
            assert np.all(known[np.isfinite(known)] < 0.5)  # the source's own velocities: standing
            assert red[first : last + 1].all()  # a light shows red (or a red arrow) all the while
    assert rows("ego and red_light", s) == {str(s.tracks.track_ids[s.ego_index])}
    assert rows("running_red_light", s) == set()


def _turn_path(x0: float, speed: np.ndarray, turn: str, radius: float = 6.0) -> np.ndarray:
    """``(T, 2)`` positions along +x to the stop point at x = 0, then straight on or a right turn."""
    dt = np.diff(T, prepend=0.0)
    s = np.cumsum(speed * dt)  # distance travelled by each step
    rel = x0 + s  # signed distance past x = 0
    out = np.stack([rel, np.zeros_like(rel)], 1)
    if turn == "right":
        past = rel > 0
        phi = np.minimum(rel[past] / radius, np.pi / 2)
        beyond = np.maximum(rel[past] - radius * np.pi / 2, 0.0)
        out[past] = np.stack([radius * np.sin(phi), -radius + radius * np.cos(phi) - beyond], 1)
    return out


@pytest.mark.parametrize(
    ("state", "stops", "turn", "policy", "running"),
    [
        ("STOP", True, "right", "right_after_stop", False),  # the US / Canada rule: lawful
        ("STOP", True, "right", "none", True),  # where turning on red is not allowed (most of Europe)
        ("STOP", False, "right", "right_after_stop", True),  # rolling through without the stop
        ("STOP", False, "right", "right", False),  # where no stop is required first
        ("STOP", True, "straight", "right_after_stop", True),  # stopping does not make straight on lawful
        ("ARROW_STOP", True, "right", "right_after_stop", True),  # a red arrow is never exempt
        ("FLASHING_STOP", True, "straight", "right_after_stop", False),  # a flashing red is a stop sign
        ("FLASHING_STOP", False, "straight", "right_after_stop", True),
    ],
)
def test_turn_on_red_is_not_running_the_light_where_lawful(
    state: str, stops: bool, turn: str, policy: str, running: bool
) -> None:
    from datadrive.core.scenario import TrafficLights, TrafficLightState

    m = road(lanes=1, intersection=(0.0, 20.0))
    lights = TrafficLights(
        lane_ids=np.array(["L0_0"]),
        state=np.full((1, 50), int(TrafficLightState[state]), dtype=np.int8),  # red throughout
        stop_point_m=np.array([[0.0, 0.0, np.nan]]),
        valid=np.ones((1, 50), dtype=bool),
    )
    if stops:  # 5 m/s to 1 m before the line, 1 s standing there, then 5 m/s on
        speed = np.where((T >= 2.0) & (T < 3.0), 0.0, 5.0)
        path = _turn_path(-11.0, speed, turn)
    else:
        path = _turn_path(-15.0, np.full(50, 5.0), turn)
    s = scenario(path[None], map=m, traffic_lights=lights)
    query = "running_red_light" + ("" if policy == "right_after_stop" else f"(turn_on_red={policy})")
    assert (rows(query, s) == {"t0"}) is running
    # the light is red for it all the same
    assert rows("red_light", s) == {"t0"}
