"""Exactness: plain-English descriptions and the query language against a brute-force scan.

Each case is a description, the expression the offline translator must
choose for it, and a brute-force reading of the description's meaning:
plain Python loops over (track, step) and (track, other track, step) on the
raw arrays, boxes as shapely polygons built here from centre, heading and
size. The per-state speeds and accelerations come from the scenario's
kinematics (checked by construction in ``test_mining_features.py``); the
categories, relations, distances, counts and time windows are computed here
independently of the engine.

The second half checks the lake: no view or mining table has a NaN where a
value is unknown (DuckDB sorts NaN above every number), and "top 10 speeds"
over the ``states`` view is the brute-force top 10 of the raw velocities.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from shapely.geometry import Polygon

from datadrive.core.scenario import ObjectType, Scenario
from datadrive.lake import Lake
from datadrive.mining import ScenarioContext, compile_query, describe, evaluate

SCENARIOS = ("av2_sensor", "waymo", "nuscenes_0553", "av2_motion")


class Brute:
    """Loops over one scenario's raw arrays."""

    def __init__(self, scenario: Scenario) -> None:
        self.s = scenario
        self.ctx = ScenarioContext(scenario)  # for speeds and accelerations only
        tr = scenario.tracks
        self.valid = tr.valid
        self.A, self.T = tr.valid.shape
        self.ego = scenario.ego_index
        self.type = tr.object_type
        self.length, self.width = self.ctx.footprint
        t = scenario.timestamps_ns
        self.t_s = [(int(x) - int(t[0])) / 1e9 for x in t]
        self._poly: dict[tuple[int, int], Polygon] = {}

    def is_vehicle(self, a: int) -> bool:
        return int(self.type[a]) == int(ObjectType.VEHICLE) and a != self.ego

    def is_pedestrian(self, a: int) -> bool:
        return int(self.type[a]) == int(ObjectType.PEDESTRIAN)

    def is_ego(self, a: int) -> bool:
        return a == self.ego

    def speed(self, a: int, t: int) -> float:
        return float(self.ctx.kinematics.speed_mps[a, t])

    def accel(self, a: int, t: int) -> float:
        return float(self.ctx.kinematics.accel_mps2[a, t])

    def centre(self, a: int, t: int) -> tuple[float, float, float]:
        x, y = self.s.tracks.xy_m[a, t]
        return float(x), float(y), float(self.s.tracks.heading_rad[a, t])

    def box(self, a: int, t: int) -> Polygon:
        if (a, t) not in self._poly:
            x, y, h = self.centre(a, t)
            hl, hw = float(self.length[a]) / 2, float(self.width[a]) / 2
            c, s = math.cos(h), math.sin(h)
            pts = [
                (x + c * f - s * lf, y + s * f + c * lf)
                for f, lf in ((hl, hw), (-hl, hw), (-hl, -hw), (hl, -hw))
            ]
            self._poly[(a, t)] = Polygon(pts)
        return self._poly[(a, t)]

    def box_distance(self, a: int, b: int, t: int) -> float:
        xa, ya, _ = self.centre(a, t)
        xb, yb, _ = self.centre(b, t)
        reach = 0.5 * math.hypot(self.length[a], self.width[a]) + 0.5 * math.hypot(
            self.length[b], self.width[b]
        )
        centre = math.hypot(xb - xa, yb - ya)
        if centre > reach + 50.0:  # far apart: no box distance test below needs more than 50 m
            return centre - reach
        return float(self.box(a, t).distance(self.box(b, t)))

    def count_near(self, a: int, t: int, of: Callable[[int], bool], within: float) -> int:
        return sum(
            1
            for b in range(self.A)
            if b != a and of(b) and self.valid[b, t] and self.box_distance(a, b, t) <= within
        )

    def ahead(self, a: int, b: int, t: int, within: float, lateral: float) -> bool:
        """``b``'s centre ahead of ``a``'s box: (0, within] past its front, <= half width + lateral across."""
        xa, ya, h = self.centre(a, t)
        xb, yb, _ = self.centre(b, t)
        dx, dy = xb - xa, yb - ya
        fwd = dx * math.cos(h) + dy * math.sin(h)
        left = -dx * math.sin(h) + dy * math.cos(h)
        along = fwd - float(self.length[a]) / 2
        return 0 < along <= within and abs(left) <= float(self.width[a]) / 2 + lateral

    def each(self, rule: Callable[[int, int], bool]) -> np.ndarray:
        out = np.zeros((self.A, self.T), dtype=bool)
        for a in range(self.A):
            for t in range(self.T):
                if self.valid[a, t] and rule(a, t):
                    out[a, t] = True
        return out

    def runs_at_least(self, mask: np.ndarray, seconds: float) -> np.ndarray:
        out = np.zeros_like(mask)
        for a in range(self.A):
            t = 0
            while t < self.T:
                if not mask[a, t]:
                    t += 1
                    continue
                end = t
                while end + 1 < self.T and mask[a, end + 1]:
                    end += 1
                if self.t_s[end] - self.t_s[t] >= seconds - 1e-9:
                    out[a, t : end + 1] = True
                t = end + 1
        return out


def _stopped_vehicle(b: Brute) -> np.ndarray:
    return b.each(lambda a, t: b.is_vehicle(a) and b.speed(a, t) < 0.5)


def _pedestrian_near_vehicle(b: Brute) -> np.ndarray:
    return b.each(lambda a, t: b.is_pedestrian(a) and b.count_near(a, t, b.is_vehicle, 5.0) >= 1)


def _vehicle_with_pedestrian_ahead(b: Brute) -> np.ndarray:
    return b.each(
        lambda a, t: (
            b.is_vehicle(a)
            and any(
                b.is_pedestrian(p) and b.valid[p, t] and b.ahead(a, p, t, 15.0, 2.0)
                for p in range(b.A)
                if p != a
            )
        )
    )


def _two_pedestrians_near_ego(b: Brute) -> np.ndarray:
    near = b.each(lambda a, t: b.is_pedestrian(a) and b.count_near(a, t, b.is_ego, 20.0) >= 1)
    enough = near.sum(axis=0) >= 2
    return near & enough[None, :]


def _vehicle_stopped_two_seconds(b: Brute) -> np.ndarray:
    return b.runs_at_least(_stopped_vehicle(b), 2.0)


def _pedestrian_near_us(b: Brute) -> np.ndarray:
    return b.each(lambda a, t: b.is_pedestrian(a) and b.count_near(a, t, b.is_ego, 10.0) >= 1)


def _vehicle_braking_before_pedestrian_walks(b: Brute) -> np.ndarray:
    walking = [
        any(b.valid[p, t] and b.is_pedestrian(p) and b.speed(p, t) >= 0.5 for p in range(b.A))
        for t in range(b.T)
    ]

    def rule(a: int, t: int) -> bool:
        if not (b.is_vehicle(a) and b.accel(a, t) <= -1.0):
            return False
        return any(walking[u] and 0 <= b.t_s[u] - b.t_s[t] <= 5.0 for u in range(t, b.T))

    return b.each(rule)


def _fast_vehicle(b: Brute) -> np.ndarray:
    return b.each(lambda a, t: b.is_vehicle(a) and b.speed(a, t) >= 10.0)


def _pedestrian_not_near_vehicle(b: Brute) -> np.ndarray:
    return b.each(lambda a, t: b.is_pedestrian(a) and b.count_near(a, t, b.is_vehicle, 10.0) == 0)


def _moving_vehicle_without_pedestrian(b: Brute) -> np.ndarray:
    return b.each(
        lambda a, t: (
            b.is_vehicle(a) and b.speed(a, t) >= 0.5 and b.count_near(a, t, b.is_pedestrian, 10.0) == 0
        )
    )


def _slow_moving_vehicle(b: Brute) -> np.ndarray:
    return b.each(lambda a, t: b.is_vehicle(a) and 0.5 <= b.speed(a, t) <= 5.0)


CASES: list[tuple[str, str, Callable[[Brute], np.ndarray]]] = [
    ("stopped vehicles", "vehicle and stopped", _stopped_vehicle),
    (
        "a pedestrian within 5 meters of a vehicle",
        "pedestrian and near(vehicle, within=5m)",
        _pedestrian_near_vehicle,
    ),
    (
        "a vehicle with a pedestrian in front within 15 meters",
        "vehicle and has_ahead(pedestrian, within=15m)",
        _vehicle_with_pedestrian_ahead,
    ),
    (
        "at least two pedestrians within 20 meters of the ego vehicle",
        "at_least(2, pedestrian and near(ego, within=20m))",
        _two_pedestrians_near_ego,
    ),
    (
        "a vehicle stopped for more than 2 seconds",
        "for_at_least(vehicle and stopped, 2s)",
        _vehicle_stopped_two_seconds,
    ),
    ("pedestrians near our car", "pedestrian and near(ego)", _pedestrian_near_us),
    (
        "a vehicle braking before a pedestrian walks",
        "before(vehicle and braking, pedestrian and moving)",
        _vehicle_braking_before_pedestrian_walks,
    ),
    ("vehicles faster than 36 km/h", "vehicle and speed(min=36 km/h)", _fast_vehicle),
    (
        "a pedestrian that is not near a vehicle",
        "pedestrian and not near(vehicle)",
        _pedestrian_not_near_vehicle,
    ),
    ("pedestrians far from any vehicle", "pedestrian and not near(vehicle)", _pedestrian_not_near_vehicle),
    (
        "a moving vehicle with no pedestrian nearby",
        "vehicle and moving and not near(pedestrian)",
        _moving_vehicle_without_pedestrian,
    ),
    (
        "vehicles slower than 5 m/s that are moving",
        "vehicle and speed(max=5 m/s) and moving",
        _slow_moving_vehicle,
    ),
]


@pytest.fixture(scope="module")
def brutes(sample: Callable[..., Scenario]) -> list[Brute]:
    return [Brute(sample(k)) for k in SCENARIOS]


@pytest.mark.parametrize(("text", "expression", "brute"), CASES, ids=[c[0] for c in CASES])
def test_descriptions_select_what_a_brute_force_scan_selects(
    text: str, expression: str, brute: Callable[[Brute], np.ndarray], brutes: list[Brute]
) -> None:
    translated = describe(text)
    assert translated.text == compile_query(expression).text
    found = 0
    for b in brutes:
        want = brute(b)
        got = evaluate(compile_query(translated.expression), ScenarioContext(b.s)).mask
        mismatch = np.argwhere(got != want)
        assert mismatch.size == 0, (
            f"{b.s.source}/{b.s.scenario_id}: {len(mismatch)} states differ, first (track, step) "
            f"{tuple(mismatch[0])}: engine {bool(got[tuple(mismatch[0])])}"
        )
        found += int(want.sum())
    assert found > 0, f"no state in the samples is {text!r}: the comparison would prove nothing"


# --------------------------------------------------------------------------- the lake: NULL, never NaN

FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")


def _float_columns(lake: Lake, relation: str) -> list[str]:
    t = lake.sql(f"DESCRIBE SELECT * FROM {relation}", "eu-central").table
    return [
        name
        for name, kind in zip(
            t.column("column_name").to_pylist(), t.column("column_type").to_pylist(), strict=True
        )
        if kind in FLOAT_TYPES
    ]


def test_no_view_or_mining_table_has_nan_where_the_raw_tracks_do(mined_lake: Lake) -> None:
    raw = (
        mined_lake.sql(
            "SELECT count(*) FROM (SELECT unnest(vx_mps) AS v FROM tracks) WHERE isnan(v)", "eu-central"
        )
        .table.column(0)[0]
        .as_py()
    )
    assert raw > 0, "the AV2 sensor sample has unknown velocities: the check below must be able to fail"
    for relation in ("states", "map_points", "mining_states", "events"):
        cols = _float_columns(mined_lake, relation)
        assert cols, relation
        nans = " + ".join(f"count(*) FILTER (WHERE isnan({c}))" for c in cols)
        n = mined_lake.sql(f"SELECT {nans} FROM {relation}", "eu-central").table.column(0)[0].as_py()
        assert n == 0, relation


def test_top_10_speeds_over_the_states_view_are_the_fastest_tracks(mined_lake: Lake) -> None:
    snap = mined_lake.snapshot("eu-central")
    top: list[tuple[float, str, str]] = []
    for s in snap.scenarios():
        v = s.tracks.velocity_mps
        for a in range(s.tracks.num_tracks):
            speeds = [math.hypot(*v[a, t]) for t in range(s.num_steps) if s.tracks.valid[a, t]]
            known = [x for x in speeds if not math.isnan(x)]
            if known:
                top.append((max(known), s.scenario_id, str(s.tracks.track_ids[a])))
    top.sort(key=lambda r: -r[0])
    got = snap.sql(
        "SELECT scenario_id, track_id, max(sqrt(vx_mps * vx_mps + vy_mps * vy_mps)) AS top_mps FROM states "
        "GROUP BY ALL ORDER BY top_mps DESC LIMIT 10"
    ).table.to_pylist()
    assert [r["top_mps"] for r in got] == pytest.approx([r[0] for r in top[:10]], rel=1e-6)
    assert [(r["scenario_id"], r["track_id"]) for r in got] == [(r[1], r[2]) for r in top[:10]]
    # the index answers the same question with its own speeds: numbers, fastest first
    idx = (
        snap.sql(
            "SELECT max(speed_mps) AS top_mps FROM mining_states GROUP BY scenario_id, track_id "
            "ORDER BY top_mps DESC LIMIT 10"
        )
        .table.column("top_mps")
        .to_pylist()
    )
    assert all(x is not None and math.isfinite(x) for x in idx)
    assert idx == sorted(idx, reverse=True)


PREFILTERED = (
    "vehicle and stopped",
    "pedestrian and moving",
    "car or bus",
    "ego and speed(min=2, max=8)",
    "braking(min_decel=0.5)",
    "accelerating(min=0.3)",
    "lateral_accel(min=0.5)",
    "reversing(min_duration=0s)",
    "wrong_way(min_duration=0s, min_speed=0.5)",
    "at_intersection",
    "on_road",
    "in_drivable_area",
    "for_at_least(vehicle and moving, 1s)",
)


@pytest.mark.parametrize("text", PREFILTERED)
def test_the_index_prefilter_keeps_every_state_the_query_selects(mined_lake: Lake, text: str) -> None:
    """The prefilter narrows by scenario; it must hold on every selected state, or hits would be lost."""
    from datadrive.mining.api import prefilter_sql

    snap = mined_lake.snapshot("eu-central")
    cond = prefilter_sql(compile_query(text))
    assert cond is not None, text
    rows = snap.sql(f"SELECT scenario_id, track_id, step FROM mining_states WHERE {cond}").table
    passing = set(
        zip(*(rows.column(c).to_pylist() for c in ("scenario_id", "track_id", "step")), strict=True)
    )
    selected = 0
    for s in snap.scenarios():
        mask = evaluate(compile_query(text), ScenarioContext(s)).mask
        for a, t in zip(*np.nonzero(mask), strict=True):
            selected += 1
            assert (s.scenario_id, str(s.tracks.track_ids[a]), int(t)) in passing, (text, s.scenario_id, a, t)
    assert selected or text.startswith(("reversing", "wrong_way")), f"{text!r} selects nothing in the samples"
