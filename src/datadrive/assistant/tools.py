"""Car Genius's tools: what the vehicle's own data says, computed from the arrays, with evidence.

Every answer about a vehicle comes from one of these functions, never from
a language model's memory. Each returns a :class:`ToolResult`: named facts
(value, unit, time) and the evidence behind them (signal, channel, time
window, samples); the answer templates and the number check read only these.

Quantities (:data:`QUANTITIES`) name what a driver asks about and where a
drive keeps it: ``speed`` is ``can/speed`` (else a GNSS fix's speed),
``steering_angle`` is ``can/steering_angle`` (shown in degrees whatever the
log's unit), and so on. Derived quantities are computed the same way for
every vehicle:

* ``acceleration`` (longitudinal): ``a(t) = (v(t + 0.25 s) - v(t - 0.25 s)) /
  0.5 s`` on a 10 Hz grid from the first to the last speed sample, with ``v``
  the speed interpolated linearly;
* ``yaw_rate``: the gyro's down axis with the sign flipped (positive = to the
  left), in deg/s; ``lateral_acceleration``: speed x yaw rate.

Harsh events (:func:`harsh_events`; the mining layer's event taggers will
replace this where the lake has them), documented thresholds:

* hard braking: ``acceleration <= -3.0 m/s^2`` (about 0.3 g) for at least
  0.3 s (consecutive grid points);
* hard acceleration: ``acceleration >= +3.0 m/s^2`` for at least 0.3 s;
* sharp turn: ``|lateral_acceleration| >= 4.0 m/s^2`` for at least 0.3 s,
  where the drive has a gyro.

Signal health (:func:`signal_health`):

* dropouts: gaps between samples longer than 3 x the median interval
  (and 0.05 s);
* frozen values: runs of exactly equal values lasting at least 5 s
  while the vehicle moves (speed > 2 m/s), the speed itself included;
* out of range: NaN/inf, or outside the quantity's physical range
  (:attr:`Quantity.valid_range`);
* rate anomalies: 1 s windows whose sample count differs from the
  nominal rate (the median interval's) by more than 50 %.

CAN bus health (:func:`can_health`), per (bus, address) with at least 20
frames: *stopped* when its last frame comes more than max(1 s, 10 periods)
before the end of the bus log; *rate change* when its rate in the first
and second half of its life differ by more than 30 %.

Notation:
    N: number of samples of one signal.
    G: number of points of the 10 Hz grid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from datadrive.assistant.vehicle import Drive
from datadrive.core.typing import NDArrayBool, NDArrayFloat

__all__ = [
    "ACCEL_GRID_HZ",
    "ACCEL_HALF_SPAN_S",
    "HARSH_ACCEL_MPS2",
    "HARSH_BRAKE_MPS2",
    "HARSH_MIN_DURATION_S",
    "QUANTITIES",
    "SHARP_TURN_MPS2",
    "Evidence",
    "Fact",
    "HarshEvent",
    "Quantity",
    "ToolResult",
    "Window",
    "acceleration_series",
    "braking_near",
    "can_health",
    "harsh_events",
    "quantity_series",
    "signal_health",
    "signal_stats",
    "threshold_time",
    "trip_summary",
    "value_at",
]

ACCEL_GRID_HZ = 10.0
ACCEL_HALF_SPAN_S = 0.25
HARSH_BRAKE_MPS2 = -3.0
HARSH_ACCEL_MPS2 = 3.0
SHARP_TURN_MPS2 = 4.0
HARSH_MIN_DURATION_S = 0.3
MOVING_MPS = 0.5
FROZEN_MIN_S = 5.0
FROZEN_MOVING_MPS = 2.0
DROPOUT_FACTOR = 3.0
RATE_TOLERANCE = 0.5
CAN_MIN_FRAMES = 20
CAN_RATE_CHANGE = 0.3


@dataclass(frozen=True)
class Window:
    """A time window in seconds from a drive's start (``None``: open end)."""

    t0_s: float | None = None
    t1_s: float | None = None
    label: str = ""

    def clip(self, drive: Drive) -> tuple[float, float]:
        lo = 0.0 if self.t0_s is None else max(0.0, self.t0_s)
        hi = drive.duration_s if self.t1_s is None else min(drive.duration_s, self.t1_s)
        return lo, hi

    @property
    def whole(self) -> bool:
        return self.t0_s is None and self.t1_s is None


WHOLE = Window()


@dataclass(frozen=True)
class Fact:
    """One number (or word) a tool found.

    Attributes:
        value: The value, in ``unit``.
        unit: Its unit (``"m/s"``, ``"deg"``, ``"s"``, ``"m"``, ``"count"``, ``""``).
        t_s: When, in seconds from the drive's start, if it happened at a time.
    """

    value: float | int | str | None
    unit: str = ""
    t_s: float | None = None


@dataclass(frozen=True)
class Evidence:
    """What a fact rests on: a signal (or event) over a time window, with its values."""

    what: str
    drive_id: str
    t0_s: float
    t1_s: float
    samples: int
    values: Mapping[str, float | int | str] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolResult:
    """The output of one tool call.

    Attributes:
        tool: The tool's name.
        args: Its arguments (JSON-able).
        ok: Whether the tool could answer (the drive has the data).
        facts: Named facts.
        evidence: What they rest on.
        message: Why not, when ``ok`` is False; notes otherwise.
        items: Lists of records (events, faults, CAN messages), each a mapping of facts.
    """

    tool: str
    args: Mapping[str, Any]
    ok: bool
    facts: Mapping[str, Fact] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()
    message: str = ""
    items: tuple[Mapping[str, Fact], ...] = ()

    def fact(self, name: str) -> Any:
        """A fact's value (None when absent)."""
        f = self.facts.get(name)
        return None if f is None else f.value

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form (what a language model is shown)."""

        def fact(f: Fact) -> dict[str, Any]:
            out: dict[str, Any] = {"value": f.value, "unit": f.unit}
            if f.t_s is not None:
                out["t_s"] = round(f.t_s, 2)
            return out

        return {
            "tool": self.tool,
            "args": dict(self.args),
            "ok": self.ok,
            "message": self.message,
            "facts": {k: fact(v) for k, v in self.facts.items()},
            "items": [{k: fact(v) for k, v in item.items()} for item in self.items],
            "evidence": [
                {
                    "what": e.what,
                    "drive": e.drive_id,
                    "t0_s": round(e.t0_s, 2),
                    "t1_s": round(e.t1_s, 2),
                    "samples": e.samples,
                    **({"values": dict(e.values)} if e.values else {}),
                }
                for e in self.evidence
            ],
        }


# --------------------------------------------------------------------------- quantities


@dataclass(frozen=True)
class Quantity:
    """Something a driver asks about, and where a drive keeps it.

    Attributes:
        key: Its name in tool calls (``"speed"``).
        label: How answers name it (``"speed"``).
        unit: The unit tools report it in.
        sources: ``(signal, channel)`` pairs, in order of preference.
        valid_range: Physically plausible values, for the health check.
        derived: A function computing it from a drive instead (``(t_s, values)``), if derived.
    """

    key: str
    label: str
    unit: str
    sources: tuple[tuple[str, str], ...]
    valid_range: tuple[float, float]
    derived: Callable[[Drive], tuple[NDArrayFloat, NDArrayFloat] | None] | None = None


def _convert(values: NDArrayFloat, unit: str, target: str) -> NDArrayFloat:
    if unit == target or not unit:
        return values
    if unit == "rad" and target == "deg":
        return np.rad2deg(values)
    if unit == "deg" and target == "rad":
        return np.deg2rad(values)
    if unit == "rad/s" and target == "deg/s":
        return np.rad2deg(values)
    return values


def _raw(
    drive: Drive, sources: tuple[tuple[str, str], ...], unit: str
) -> tuple[NDArrayFloat, NDArrayFloat, str] | None:
    for name, channel in sources:
        sig = drive.signal(name)
        if sig is None or channel not in sig.channels or sig.timestamps_ns.shape[0] == 0:
            continue
        values = sig.values[:, sig.channels.index(channel)].astype(np.float64)
        return drive.t_s(sig.timestamps_ns), _convert(values, sig.unit_of(channel), unit), name
    return None


def _speed(drive: Drive) -> tuple[NDArrayFloat, NDArrayFloat] | None:
    got = _raw(drive, QUANTITIES["speed"].sources, "m/s")
    return None if got is None else (got[0], got[1])


def acceleration_series(drive: Drive) -> tuple[NDArrayFloat, NDArrayFloat] | None:
    """``(G,)`` grid times and longitudinal acceleration (m/s^2) from the speed (see the module doc)."""
    sp = _speed(drive)
    if sp is None:
        return None
    t, v = sp
    ok = np.isfinite(v)
    t, v = t[ok], v[ok]
    if t.shape[0] < 2 or t[-1] - t[0] < 2 * ACCEL_HALF_SPAN_S:
        return None
    grid = np.arange(t[0] + ACCEL_HALF_SPAN_S, t[-1] - ACCEL_HALF_SPAN_S + 1e-9, 1.0 / ACCEL_GRID_HZ)
    a = (np.interp(grid + ACCEL_HALF_SPAN_S, t, v) - np.interp(grid - ACCEL_HALF_SPAN_S, t, v)) / (
        2 * ACCEL_HALF_SPAN_S
    )
    return grid, a


def _yaw_rate(drive: Drive) -> tuple[NDArrayFloat, NDArrayFloat] | None:
    got = _raw(drive, (("imu/gyro", "down"),), "deg/s")
    if got is None:
        return None
    return got[0], -got[1]  # the gyro's down axis: positive = clockwise seen from above = to the right


def _lateral(drive: Drive) -> tuple[NDArrayFloat, NDArrayFloat] | None:
    yaw = _yaw_rate(drive)
    sp = _speed(drive)
    if yaw is None or sp is None:
        return None
    t, r = yaw
    v = np.interp(t, sp[0], sp[1])
    return t, v * np.deg2rad(r)


QUANTITIES: dict[str, Quantity] = {
    q.key: q
    for q in (
        Quantity(
            "speed",
            "speed",
            "m/s",
            (("can/speed", "speed"), ("gnss/live_ublox", "speed"), ("gnss/live_qcom", "speed")),
            (0.0, 90.0),
        ),
        Quantity(
            "steering_angle",
            "steering-wheel angle",
            "deg",
            (("can/steering_angle", "angle"),),
            (-1080.0, 1080.0),
        ),
        Quantity(
            "steering_torque", "steering torque", "N m", (("can/steering_torque", "torque"),), (-50.0, 50.0)
        ),
        Quantity(
            "wheel_speed",
            "wheel speed (front left)",
            "m/s",
            (("can/wheel_speed", "front_left"),),
            (0.0, 90.0),
        ),
        Quantity("acceleration", "acceleration", "m/s^2", (), (-15.0, 15.0), acceleration_series),
        Quantity("yaw_rate", "yaw rate", "deg/s", (), (-180.0, 180.0), _yaw_rate),
        Quantity("lateral_acceleration", "lateral acceleration", "m/s^2", (), (-15.0, 15.0), _lateral),
        Quantity(
            "imu_acceleration",
            "forward acceleration (IMU)",
            "m/s^2",
            (("imu/accelerometer", "forward"),),
            (-50.0, 50.0),
        ),
        Quantity(
            "altitude",
            "altitude",
            "m",
            (("gnss/live_ublox", "altitude"), ("gnss/live_qcom", "altitude"), ("gnss/fix", "altitude")),
            (-500.0, 9000.0),
        ),
        Quantity(
            "gnss_speed",
            "GNSS speed",
            "m/s",
            (("gnss/live_ublox", "speed"), ("gnss/live_qcom", "speed")),
            (0.0, 90.0),
        ),
        Quantity(
            "radar_distance",
            "radar target distance",
            "m",
            (("can/radar", "forward_distance"),),
            (0.0, 300.0),
        ),
    )
}
"""The quantities the tools know, by key."""


def quantity_series(drive: Drive, key: str) -> tuple[NDArrayFloat, NDArrayFloat, str] | None:
    """``(N,)`` times (s from start), values (in the quantity's unit) and the signal they came from."""
    q = QUANTITIES[key]
    if q.derived is not None:
        got = q.derived(drive)
        if got is None:
            return None
        source = {
            "acceleration": "derived from speed",
            "yaw_rate": "imu/gyro (down)",
            "lateral_acceleration": "speed x imu/gyro",
        }[key]
        return got[0], got[1], source
    return _raw(drive, q.sources, q.unit)


def _select(t: NDArrayFloat, window: Window, drive: Drive) -> tuple[NDArrayBool, float, float]:
    lo, hi = window.clip(drive)
    return (t >= lo - 1e-9) & (t <= hi + 1e-9), lo, hi


def _missing(tool: str, args: Mapping[str, Any], drive: Drive, key: str) -> ToolResult:
    label = QUANTITIES[key].label if key in QUANTITIES else key
    return ToolResult(tool, args, False, message=f"drive {drive.drive_id} has no {label} signal")


# --------------------------------------------------------------------------- tools


def signal_stats(drive: Drive, quantity: str, window: Window = WHOLE) -> ToolResult:
    """Minimum, maximum, mean, first and last value of a quantity over a window."""
    args = {"quantity": quantity, "window": [window.t0_s, window.t1_s]}
    got = quantity_series(drive, quantity)
    if got is None:
        return _missing("signal_stats", args, drive, quantity)
    t, v, source = got
    sel, lo, hi = _select(t, window, drive)
    sel &= np.isfinite(v)
    q = QUANTITIES[quantity]
    if not sel.any():
        return ToolResult(
            "signal_stats",
            args,
            False,
            message=f"no {q.label} samples between {lo:.1f} s and {hi:.1f} s of drive {drive.drive_id}",
        )
    tv, vv = t[sel], v[sel]
    imax, imin = int(np.argmax(vv)), int(np.argmin(vv))
    facts = {
        "max": Fact(float(vv[imax]), q.unit, float(tv[imax])),
        "min": Fact(float(vv[imin]), q.unit, float(tv[imin])),
        "mean": Fact(float(vv.mean()), q.unit),
        "first": Fact(float(vv[0]), q.unit, float(tv[0])),
        "last": Fact(float(vv[-1]), q.unit, float(tv[-1])),
        "samples": Fact(int(vv.shape[0]), "count"),
    }
    ev = Evidence(
        f"{source} ({q.label})",
        drive.drive_id,
        float(tv[0]),
        float(tv[-1]),
        int(vv.shape[0]),
        {
            "max": round(float(vv[imax]), 3),
            "min": round(float(vv[imin]), 3),
            "mean": round(float(vv.mean()), 3),
        },
    )
    return ToolResult("signal_stats", args, True, facts, (ev,))


def value_at(drive: Drive, quantity: str, t_s: float) -> ToolResult:
    """The quantity's sample nearest to ``t_s`` (within 1 s)."""
    args = {"quantity": quantity, "t_s": t_s}
    got = quantity_series(drive, quantity)
    if got is None:
        return _missing("value_at", args, drive, quantity)
    t, v, source = got
    ok = np.isfinite(v)
    if not ok.any():
        return _missing("value_at", args, drive, quantity)
    t, v = t[ok], v[ok]
    i = int(np.argmin(np.abs(t - t_s)))
    q = QUANTITIES[quantity]
    if abs(float(t[i]) - t_s) > 1.0:
        return ToolResult(
            "value_at", args, False, message=f"no {q.label} sample within 1 s of {t_s:.1f} s into the drive"
        )
    ev = Evidence(
        f"{source} ({q.label})", drive.drive_id, float(t[i]), float(t[i]), 1, {"value": round(float(v[i]), 3)}
    )
    return ToolResult("value_at", args, True, {"value": Fact(float(v[i]), q.unit, float(t[i]))}, (ev,))


def threshold_time(
    drive: Drive, quantity: str, threshold: float, *, above: bool = True, window: Window = WHOLE
) -> ToolResult:
    """How long the quantity stayed above (or below) ``threshold`` (sample-and-hold between samples)."""
    args = {
        "quantity": quantity,
        "threshold": threshold,
        "above": above,
        "window": [window.t0_s, window.t1_s],
    }
    got = quantity_series(drive, quantity)
    if got is None:
        return _missing("threshold_time", args, drive, quantity)
    t, v, source = got
    sel, _lo, _hi = _select(t, window, drive)
    tv, vv = t[sel], v[sel]
    q = QUANTITIES[quantity]
    if tv.shape[0] < 2:
        return ToolResult("threshold_time", args, False, message=f"too few {q.label} samples in that window")
    dt = np.diff(tv)
    cond = (vv[:-1] > threshold) if above else (vv[:-1] < threshold)
    cond &= np.isfinite(vv[:-1])
    seconds = float(dt[cond].sum())
    total = float(tv[-1] - tv[0])
    facts = {
        "seconds": Fact(seconds, "s"),
        "share": Fact(seconds / total if total > 0 else 0.0, "ratio"),
        "threshold": Fact(threshold, q.unit),
        "window_s": Fact(total, "s"),
    }
    ev = Evidence(
        f"{source} ({q.label})",
        drive.drive_id,
        float(tv[0]),
        float(tv[-1]),
        int(tv.shape[0]),
        {"threshold": threshold},
    )
    return ToolResult("threshold_time", args, True, facts, (ev,))


def _distance(t: NDArrayFloat, v: NDArrayFloat) -> float:
    ok = np.isfinite(v)
    if ok.sum() < 2:
        return 0.0
    return float(np.trapezoid(v[ok], t[ok]))


def distance(drive: Drive, window: Window = WHOLE) -> ToolResult:
    """Distance driven: the trapezoid integral of the speed over the window."""
    args = {"window": [window.t0_s, window.t1_s]}
    sp = quantity_series(drive, "speed")
    if sp is None:
        return _missing("distance", args, drive, "speed")
    t, v, source = sp
    sel, _lo, _hi = _select(t, window, drive)
    if sel.sum() < 2:
        return ToolResult("distance", args, False, message="too few speed samples in that window")
    d = _distance(t[sel], v[sel])
    ev = Evidence(
        f"{source} (speed, integrated)", drive.drive_id, float(t[sel][0]), float(t[sel][-1]), int(sel.sum())
    )
    return ToolResult(
        "distance",
        args,
        True,
        {"distance": Fact(d, "m"), "duration": Fact(float(t[sel][-1] - t[sel][0]), "s")},
        (ev,),
    )


@dataclass(frozen=True)
class HarshEvent:
    """One harsh event.

    Attributes:
        kind: ``"hard_brake"``, ``"hard_acceleration"`` or ``"sharp_turn"``.
        t0_s: Start (s from the drive's start).
        t1_s: End.
        peak: The peak acceleration (m/s^2; negative for braking).
        t_peak_s: When the peak happened.
        speed_before_mps: Speed at the start.
        speed_after_mps: Speed at the end.
    """

    kind: str
    t0_s: float
    t1_s: float
    peak: float
    t_peak_s: float
    speed_before_mps: float
    speed_after_mps: float


def _runs(mask: NDArrayBool) -> list[tuple[int, int]]:
    """``[start, end)`` index runs where ``mask`` is True."""
    if mask.shape[0] == 0:
        return []
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(padded)
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def detect_harsh(drive: Drive) -> list[HarshEvent]:
    """Every harsh event of a drive (thresholds in the module doc), in time order."""
    out: list[HarshEvent] = []
    sp = _speed(drive)
    acc = acceleration_series(drive)
    min_points = round(HARSH_MIN_DURATION_S * ACCEL_GRID_HZ)
    if acc is not None and sp is not None:
        g, a = acc
        for kind, mask in (
            ("hard_brake", a <= HARSH_BRAKE_MPS2),
            ("hard_acceleration", a >= HARSH_ACCEL_MPS2),
        ):
            for s, e in _runs(mask):
                if e - s < min_points:
                    continue
                seg = a[s:e]
                k = int(np.argmin(seg)) if kind == "hard_brake" else int(np.argmax(seg))
                out.append(
                    HarshEvent(
                        kind,
                        float(g[s]),
                        float(g[e - 1]),
                        float(seg[k]),
                        float(g[s + k]),
                        float(np.interp(g[s], sp[0], sp[1])),
                        float(np.interp(g[e - 1], sp[0], sp[1])),
                    )
                )
    lat = _lateral(drive)
    if lat is not None and sp is not None:
        t, la = lat
        if t.shape[0] > 1:
            rate = 1.0 / float(np.median(np.diff(t)))
            need = max(2, round(HARSH_MIN_DURATION_S * rate))
            for s, e in _runs(np.abs(la) >= SHARP_TURN_MPS2):
                if e - s < need:
                    continue
                seg = la[s:e]
                k = int(np.argmax(np.abs(seg)))
                out.append(
                    HarshEvent(
                        "sharp_turn",
                        float(t[s]),
                        float(t[e - 1]),
                        float(seg[k]),
                        float(t[s + k]),
                        float(np.interp(t[s], sp[0], sp[1])),
                        float(np.interp(t[e - 1], sp[0], sp[1])),
                    )
                )
    return sorted(out, key=lambda ev: ev.t0_s)


def _thresholds() -> dict[str, Fact]:
    return {
        "brake_threshold": Fact(HARSH_BRAKE_MPS2, "m/s^2"),
        "accel_threshold": Fact(HARSH_ACCEL_MPS2, "m/s^2"),
        "turn_threshold": Fact(SHARP_TURN_MPS2, "m/s^2"),
        "min_duration": Fact(HARSH_MIN_DURATION_S, "s"),
    }


_EVENT_LABEL = {
    "hard_brake": "hard braking",
    "hard_acceleration": "hard acceleration",
    "sharp_turn": "sharp turn",
}


def _event_item(ev: HarshEvent) -> dict[str, Fact]:
    return {
        "kind": Fact(ev.kind),
        "start": Fact(ev.t0_s, "s", ev.t0_s),
        "end": Fact(ev.t1_s, "s", ev.t1_s),
        "peak": Fact(ev.peak, "m/s^2", ev.t_peak_s),
        "speed_before": Fact(ev.speed_before_mps, "m/s", ev.t0_s),
        "speed_after": Fact(ev.speed_after_mps, "m/s", ev.t1_s),
    }


def harsh_events(drive: Drive, kind: str | None = None, window: Window = WHOLE) -> ToolResult:
    """Harsh events (hard braking, hard acceleration, sharp turns) in a window."""
    args = {"kind": kind, "window": [window.t0_s, window.t1_s]}
    if _speed(drive) is None:
        return _missing("harsh_events", args, drive, "speed")
    lo, hi = window.clip(drive)
    events = [
        e
        for e in detect_harsh(drive)
        if (kind is None or e.kind == kind) and e.t1_s >= lo - 1e-9 and e.t0_s <= hi + 1e-9
    ]
    counts = {k: sum(1 for e in events if e.kind == k) for k in _EVENT_LABEL}
    facts: dict[str, Fact] = {"count": Fact(len(events), "count"), **_thresholds()}
    facts.update({f"{k}_count": Fact(v, "count") for k, v in counts.items()})
    acc = acceleration_series(drive)
    if acc is not None:
        g, a = acc
        sel = (g >= lo - 1e-9) & (g <= hi + 1e-9)
        if sel.any():
            i = int(np.argmin(np.where(sel, a, np.inf)))
            j = int(np.argmax(np.where(sel, a, -np.inf)))
            facts["strongest_deceleration"] = Fact(float(a[i]), "m/s^2", float(g[i]))
            facts["strongest_acceleration"] = Fact(float(a[j]), "m/s^2", float(g[j]))
    ev = [
        Evidence(
            f"{_EVENT_LABEL[e.kind]} (thresholds: brake <= "
            f"{HARSH_BRAKE_MPS2} m/s^2, accel >= {HARSH_ACCEL_MPS2} m/s^2, "
            f"turn >= {SHARP_TURN_MPS2} m/s^2, for >= {HARSH_MIN_DURATION_S} s)",
            drive.drive_id,
            e.t0_s,
            e.t1_s,
            0,
            {"peak_mps2": round(e.peak, 2)},
        )
        for e in events
    ]
    if not ev:
        ev = [Evidence("acceleration derived from speed (10 Hz grid)", drive.drive_id, lo, hi, 0)]
    return ToolResult(
        "harsh_events", args, True, facts, tuple(ev), items=tuple(_event_item(e) for e in events)
    )


def braking_near(drive: Drive, t_s: float, radius_s: float = 60.0) -> ToolResult:
    """The strongest braking within ``radius_s`` of ``t_s``, and what the other signals did meanwhile.

    The context explains a braking manoeuvre from the data only: the speed
    before and after, whether the car came to a stop, the nearest radar
    target ahead and its closing speed (where the drive has radar), and the
    steering angle (a turn).
    """
    args = {"t_s": t_s, "radius_s": radius_s}
    acc = acceleration_series(drive)
    sp = _speed(drive)
    if acc is None or sp is None:
        return _missing("braking_near", args, drive, "speed")
    g, a = acc
    sel = (g >= t_s - radius_s) & (g <= t_s + radius_s)
    if not sel.any():
        return ToolResult("braking_near", args, False, message="that time is outside the drive")
    i = int(np.argmin(np.where(sel, a, np.inf)))
    peak = float(a[i])
    # the braking manoeuvre: the run of deceleration (a < -0.5 m/s^2) around the peak
    dec = a < -0.5
    s = i
    while s > 0 and dec[s - 1]:
        s -= 1
    e = i
    while e + 1 < a.shape[0] and dec[e + 1]:
        e += 1
    t0, t1 = float(g[s]), float(g[e])
    v0, v1 = float(np.interp(t0, sp[0], sp[1])), float(np.interp(t1, sp[0], sp[1]))
    facts: dict[str, Fact] = {
        "peak_deceleration": Fact(peak, "m/s^2", float(g[i])),
        "start": Fact(t0, "s", t0),
        "end": Fact(t1, "s", t1),
        "speed_before": Fact(v0, "m/s", t0),
        "speed_after": Fact(v1, "m/s", t1),
        "harsh": Fact("yes" if peak <= HARSH_BRAKE_MPS2 else "no"),
        **_thresholds(),
        "stopped": Fact("yes" if v1 < MOVING_MPS else "no"),
    }
    evidence = [
        Evidence(
            "acceleration derived from can/speed",
            drive.drive_id,
            t0,
            t1,
            e - s + 1,
            {"peak_mps2": round(peak, 2)},
        )
    ]
    radar = drive.signal("can/radar")
    if radar is not None and {"forward_distance", "left_distance", "relative_speed"} <= set(radar.channels):
        rt = drive.t_s(radar.timestamps_ns)
        fwd = radar.values[:, radar.channels.index("forward_distance")]
        left = radar.values[:, radar.channels.index("left_distance")]
        rel = radar.values[:, radar.channels.index("relative_speed")]
        near = (rt >= t0 - 2.0) & (rt <= t1) & np.isfinite(fwd) & (np.abs(left) < 2.0) & (fwd > 0)
        if near.any():
            k = int(np.argmin(np.where(near, fwd, np.inf)))
            facts["lead_distance"] = Fact(float(fwd[k]), "m", float(rt[k]))
            facts["lead_relative_speed"] = Fact(float(rel[k]), "m/s", float(rt[k]))
            evidence.append(
                Evidence(
                    "can/radar (target in lane ahead, |left| < 2 m)",
                    drive.drive_id,
                    t0 - 2.0,
                    t1,
                    int(near.sum()),
                )
            )
    steer = quantity_series(drive, "steering_angle")
    if steer is not None:
        st, sv, src = steer
        m = (st >= t0) & (st <= t1) & np.isfinite(sv)
        if m.any():
            facts["max_abs_steering"] = Fact(float(np.max(np.abs(sv[m]))), "deg")
            evidence.append(Evidence(f"{src} (steering-wheel angle)", drive.drive_id, t0, t1, int(m.sum())))
    return ToolResult("braking_near", args, True, facts, tuple(evidence))


def trip_summary(drive: Drive) -> ToolResult:
    """Distance, duration, speeds, stops and harsh events of a drive."""
    args: dict[str, Any] = {}
    sp = quantity_series(drive, "speed")
    if sp is None:
        return _missing("trip_summary", args, drive, "speed")
    t, v, source = sp
    ok = np.isfinite(v)
    t, v = t[ok], v[ok]
    dist = _distance(t, v)
    duration = float(t[-1] - t[0]) if t.shape[0] else 0.0
    moving = v > MOVING_MPS
    dt = np.diff(t)
    moving_s = float(dt[moving[:-1]].sum()) if t.shape[0] > 1 else 0.0
    stops = sum(1 for s, e in _runs(~moving) if s > 0 and t[min(e, t.shape[0] - 1)] - t[s] >= 2.0)
    imax = int(np.argmax(v))
    events = detect_harsh(drive)
    facts = {
        "distance": Fact(dist, "m"),
        "duration": Fact(duration, "s"),
        "moving_time": Fact(moving_s, "s"),
        "mean_speed": Fact(dist / duration if duration > 0 else 0.0, "m/s"),
        "max_speed": Fact(float(v[imax]), "m/s", float(t[imax])),
        "stops": Fact(stops, "count"),
        "harsh_events": Fact(len(events), "count"),
        "hard_brakes": Fact(sum(1 for e in events if e.kind == "hard_brake"), "count"),
        "hard_accelerations": Fact(sum(1 for e in events if e.kind == "hard_acceleration"), "count"),
        "sharp_turns": Fact(sum(1 for e in events if e.kind == "sharp_turn"), "count"),
    }
    ev = (
        Evidence(
            f"{source} (speed)",
            drive.drive_id,
            float(t[0]),
            float(t[-1]),
            int(t.shape[0]),
            {"max": round(float(v[imax]), 3)},
        ),
    )
    return ToolResult("trip_summary", args, True, facts, ev, items=tuple(_event_item(e) for e in events))


def _health_of(
    t: NDArrayFloat, v: NDArrayFloat, q: Quantity, moving: Callable[[NDArrayFloat], NDArrayBool]
) -> tuple[dict[str, Fact], list[dict[str, Fact]]]:
    items: list[dict[str, Fact]] = []
    n = t.shape[0]
    tu = np.unique(
        t
    )  # several values may share a timestamp (radar targets): rate and gaps use distinct times
    dt = np.diff(tu)
    median_dt = float(np.median(dt)) if tu.shape[0] > 1 else float("nan")
    limit = max(DROPOUT_FACTOR * median_dt, 0.05) if tu.shape[0] > 1 else float("inf")
    gaps = np.flatnonzero(dt > limit) if tu.shape[0] > 1 else np.zeros(0, dtype=np.int64)
    for g in gaps.tolist():
        items.append(
            {
                "fault": Fact("dropout"),
                "start": Fact(float(tu[g]), "s", float(tu[g])),
                "length": Fact(float(dt[g]), "s"),
            }
        )
    bad = ~np.isfinite(v) | (v < q.valid_range[0]) | (v > q.valid_range[1])
    for s, e in _runs(bad):
        items.append(
            {
                "fault": Fact("out_of_range"),
                "start": Fact(float(t[s]), "s", float(t[s])),
                "samples": Fact(e - s, "count"),
            }
        )
    frozen_s = 0.0
    if n > 1:
        same = np.concatenate([[False], v[1:] == v[:-1]])
        for s, e in _runs(same):
            s0 = s - 1  # the run starts at the first of the equal samples
            length = float(t[e - 1] - t[s0])
            if length >= FROZEN_MIN_S and bool(np.all(moving(t[s0:e]))):
                frozen_s += length
                items.append(
                    {
                        "fault": Fact("frozen"),
                        "start": Fact(float(t[s0]), "s", float(t[s0])),
                        "length": Fact(length, "s"),
                        "value": Fact(float(v[s0]), q.unit),
                    }
                )
    anomalous = 0
    if tu.shape[0] > 1 and median_dt > 0 and tu[-1] - tu[0] >= 1.0:
        nominal = 1.0 / median_dt
        edges = np.arange(tu[0], tu[-1] - 1.0 + 1e-9, 1.0)
        counts = np.searchsorted(tu, edges + 1.0, side="left") - np.searchsorted(tu, edges, side="left")
        off = np.abs(counts - nominal) > RATE_TOLERANCE * nominal
        anomalous = int(off.sum())
        for s, e in _runs(off):
            items.append(
                {
                    "fault": Fact("rate_anomaly"),
                    "start": Fact(float(edges[s]), "s", float(edges[s])),
                    "length": Fact(float(e - s), "s"),
                }
            )
    facts = {
        "samples": Fact(n, "count"),
        "rate": Fact(1.0 / median_dt if tu.shape[0] > 1 and median_dt > 0 else 0.0, "Hz"),
        "dropouts": Fact(int(gaps.shape[0]), "count"),
        "longest_gap": Fact(float(dt.max()) if tu.shape[0] > 1 else 0.0, "s"),
        "out_of_range": Fact(int(bad.sum()), "count"),
        "frozen_time": Fact(frozen_s, "s"),
        "rate_anomaly_seconds": Fact(anomalous, "count"),
    }
    facts["healthy"] = Fact(
        "yes" if not gaps.shape[0] and not bad.any() and frozen_s == 0 and anomalous == 0 else "no"
    )
    return facts, items


def signal_health(drive: Drive, quantity: str) -> ToolResult:
    """Dropouts, frozen values, out-of-range values and rate anomalies of a quantity's signal."""
    args = {"quantity": quantity}
    q = QUANTITIES[quantity]
    if q.derived is not None:
        return ToolResult(
            "signal_health",
            args,
            False,
            message=f"{q.label} is derived, not measured: ask about the signals it comes from",
        )
    got = quantity_series(drive, quantity)
    if got is None:
        return _missing("signal_health", args, drive, quantity)
    t, v, source = got
    sp = _speed(drive)

    def moving(ts: NDArrayFloat) -> NDArrayBool:
        if sp is None:
            return np.ones(ts.shape[0], dtype=bool)
        out: NDArrayBool = np.interp(ts, sp[0], sp[1]) > FROZEN_MOVING_MPS
        return out

    facts, items = _health_of(t, v, q, moving)
    ev = Evidence(f"{source} ({q.label})", drive.drive_id, float(t[0]), float(t[-1]), int(t.shape[0]))
    return ToolResult("signal_health", args, True, facts, (ev,), items=tuple(items))


def can_health(drive: Drive) -> ToolResult:
    """Raw CAN messages that stop before the log ends or change rate."""
    args: dict[str, Any] = {}
    can = drive.telemetry.can_frames
    if can is None or can.timestamps_ns.shape[0] == 0:
        return ToolResult("can_health", args, False, message=f"drive {drive.drive_id} has no raw CAN frames")
    t = drive.t_s(can.timestamps_ns)
    key = can.bus.astype(np.int64) * (1 << 32) + can.address
    order = np.lexsort((t, key))
    ks, ts = key[order], t[order]
    uniq, start, count = np.unique(ks, return_index=True, return_counts=True)
    bus_ends = {int(b): float(t[can.bus == b].max()) for b in np.unique(can.bus)}
    items: list[dict[str, Fact]] = []
    stopped = changed = 0
    checked = 0
    for k, s, c in zip(uniq.tolist(), start.tolist(), count.tolist(), strict=True):
        if c < CAN_MIN_FRAMES:
            continue
        checked += 1
        times = ts[s : s + c]
        bus_end = bus_ends[k >> 32]
        period = float(np.median(np.diff(times)))
        if bus_end - float(times[-1]) > max(1.0, 10 * period):
            stopped += 1
            items.append(
                {
                    "fault": Fact("stopped"),
                    "bus": Fact(int(k >> 32), "count"),
                    "address": Fact(int(k & 0xFFFFFFFF), "count"),
                    "last": Fact(float(times[-1]), "s", float(times[-1])),
                }
            )
            continue
        half = c // 2
        r1 = (half - 1) / float(times[half - 1] - times[0]) if times[half - 1] > times[0] else 0.0
        r2 = (c - half - 1) / float(times[-1] - times[half]) if times[-1] > times[half] else 0.0
        if r1 > 0 and r2 > 0 and abs(r2 - r1) / r1 > CAN_RATE_CHANGE:
            changed += 1
            items.append(
                {
                    "fault": Fact("rate_change"),
                    "bus": Fact(int(k >> 32), "count"),
                    "address": Fact(int(k & 0xFFFFFFFF), "count"),
                    "rate_before": Fact(r1, "Hz"),
                    "rate_after": Fact(r2, "Hz"),
                }
            )
    facts = {
        "frames": Fact(int(t.shape[0]), "count"),
        "messages": Fact(checked, "count"),
        "stopped": Fact(stopped, "count"),
        "rate_changes": Fact(changed, "count"),
    }
    ev = Evidence("raw CAN frames", drive.drive_id, float(t.min()), float(t.max()), int(t.shape[0]))
    return ToolResult("can_health", args, True, facts, (ev,), items=tuple(items))


def available(drive: Drive) -> list[str]:
    """Quantities this drive has data for."""
    return [k for k in QUANTITIES if quantity_series(drive, k) is not None]
