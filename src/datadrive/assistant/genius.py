"""Car Genius: questions about one vehicle's drives, answered from the tools, with evidence.

:func:`plan` turns an :class:`~datadrive.assistant.intents.Intent` into tool
calls on one drive; :func:`render` turns their results into the answer's
text with the evidence cited (signal, time window, values). Both are plain
functions of their inputs: the offline path is deterministic.

Wall-clock times are the drive's local time (see
:mod:`datadrive.assistant.vehicle`); times are also given in seconds into the
drive, which every log has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from datadrive.assistant import tools as T  # noqa: N812 (T for tools, as numpy is np)
from datadrive.assistant.intents import Intent, TimeRef
from datadrive.assistant.tools import QUANTITIES, ToolResult, Window
from datadrive.assistant.vehicle import Drive, VehicleLogs

__all__ = ["CAPABILITIES", "ToolCall", "plan", "render", "run_tool"]

CAPABILITIES = (
    "top, lowest or average speed, steering angle, acceleration, yaw rate, altitude and other signals, "
    "over the whole drive or a time window (`between 09:15 and 09:16`, `in the first 30 seconds`)",
    "a signal's value at a moment (`what was my speed at 09:15:20`)",
    "how far and how long you drove, and how long you were above or below a speed",
    "a trip summary: distance, duration, speeds, stops, harsh events",
    "harsh events: hard braking, hard acceleration, sharp turns, and why the car braked around a time",
    "sensor health: dropouts, frozen values, out-of-range values, "
    "rate anomalies; CAN messages that stop or change rate",
    "routes between places, addresses and points of interest on the "
    "map, with ETAs, and fuel, charging, parking or food along the way",
)


@dataclass(frozen=True)
class ToolCall:
    """One call of a tool on a drive."""

    tool: str
    args: dict[str, Any] = field(default_factory=dict)


def _window_of(intent: Intent, drive: Drive) -> tuple[Window | None, str]:
    """The intent's time window on ``drive``, or None and why it cannot be placed."""
    dur = drive.duration_s

    def place(ref: TimeRef) -> float | None:
        if ref.kind == "offset":
            return ref.seconds
        if drive.unix_offset_s is None:
            return None
        from datetime import time

        h, rem = divmod(int(ref.seconds), 3600)
        m, s = divmod(rem, 60)
        return drive.t_of_clock(datetime.combine(datetime(2000, 1, 1).date(), time(h % 24, m, s)))

    if intent.last_s is not None:
        if intent.last_s == -0.5:
            return Window(0.0, dur / 2, "the first half of the drive"), ""
        if intent.last_s == 0.5:
            return Window(dur / 2, dur, "the second half of the drive"), ""
        return Window(max(0.0, dur - intent.last_s), dur, f"the last {intent.last_s:g} s of the drive"), ""
    refs = [r for r in (intent.start, intent.end, intent.point) if r is not None]
    if not refs:
        return T.WHOLE, ""
    if any(r.kind == "clock" for r in refs) and drive.unix_offset_s is None:
        return None, (
            f"drive `{drive.drive_id}` has no wall-clock time, so I cannot place {refs[0].text!r}; "
            "ask with times into the drive instead (`in the first 30 seconds`, `between 10 and 40 s`)"
        )
    if intent.point is not None:
        t = place(intent.point)
        assert t is not None
        if intent.point.kind == "clock" and intent.point.precision_s >= 60 and not intent.around:
            lo, hi = t, t + intent.point.precision_s
        else:
            half = 60.0 if intent.point.precision_s >= 60 else 10.0 if intent.around else 5.0
            lo, hi = t - half, t + half
        label = f"around {intent.point.text.split()[-1]}" if intent.around else intent.point.text
    else:
        lo_at = place(intent.start) if intent.start is not None else 0.0
        hi_at = place(intent.end) if intent.end is not None else dur
        assert lo_at is not None
        assert hi_at is not None
        lo, hi = lo_at, hi_at
        label = ""
    if hi < 0 or lo > dur:
        return None, "outside"
    return Window(lo, hi, label), ""


def plan(intent: Intent, drive: Drive) -> tuple[list[ToolCall], str]:
    """Tool calls answering ``intent`` on ``drive``, or none and why."""
    window, why = _window_of(intent, drive)
    if window is None:
        return [], why
    w = [window.t0_s, window.t1_s, window.label]
    k = intent.kind
    if k == "stat" and intent.quantity:
        return [ToolCall("signal_stats", {"quantity": intent.quantity, "window": w})], ""
    if k == "value_at" and intent.quantity:
        assert window.t0_s is not None
        assert window.t1_s is not None
        return [
            ToolCall("value_at", {"quantity": intent.quantity, "t_s": (window.t0_s + window.t1_s) / 2})
        ], ""
    if k == "threshold" and intent.quantity and intent.threshold is not None:
        value = _to_si(intent.threshold, intent.threshold_unit, intent.quantity)
        return [
            ToolCall(
                "threshold_time",
                {"quantity": intent.quantity, "threshold": value, "above": intent.above, "window": w},
            )
        ], ""
    if k == "distance":
        return [ToolCall("distance", {"window": w})], ""
    if k in ("duration", "trip"):
        return [ToolCall("trip_summary")], ""
    if k == "events":
        return [ToolCall("harsh_events", {"kind": intent.event_kind, "window": w})], ""
    if k == "brake_why":
        if window.whole:
            return [ToolCall("harsh_events", {"kind": "hard_brake", "window": w})], ""
        assert window.t0_s is not None
        assert window.t1_s is not None
        centre = (window.t0_s + window.t1_s) / 2
        return [
            ToolCall("braking_near", {"t_s": centre, "radius_s": max(10.0, (window.t1_s - window.t0_s) / 2)})
        ], ""
    if k == "health":
        if intent.quantity:
            return [ToolCall("signal_health", {"quantity": intent.quantity})], ""
        measured = [q for q in T.available(drive) if QUANTITIES[q].derived is None]
        calls = [ToolCall("signal_health", {"quantity": q}) for q in measured]
        if drive.telemetry.can_frames is not None:
            calls.append(ToolCall("can_health"))
        return calls, ""
    if k == "can":
        return [ToolCall("can_health")], ""
    return [], ""


def _to_si(value: float, unit: str, quantity: str) -> float:
    factor = {"km/h": 1 / 3.6, "mph": 0.44704, "m/s": 1.0, "km": 1000.0, "mi": 1609.344}.get(unit, 1.0)
    return value * factor if quantity in ("speed", "wheel_speed", "gnss_speed", "radar_distance") else value


def run_tool(call: ToolCall, drive: Drive) -> ToolResult:
    """Run one tool call on a drive."""
    a = call.args
    window = Window(*a["window"]) if "window" in a else T.WHOLE
    if call.tool == "signal_stats":
        return T.signal_stats(drive, a["quantity"], window)
    if call.tool == "value_at":
        return T.value_at(drive, a["quantity"], float(a["t_s"]))
    if call.tool == "threshold_time":
        return T.threshold_time(
            drive, a["quantity"], float(a["threshold"]), above=bool(a.get("above", True)), window=window
        )
    if call.tool == "distance":
        return T.distance(drive, window)
    if call.tool == "trip_summary":
        return T.trip_summary(drive)
    if call.tool == "harsh_events":
        return T.harsh_events(drive, a.get("kind"), window)
    if call.tool == "braking_near":
        return T.braking_near(drive, float(a["t_s"]), float(a.get("radius_s", 60.0)))
    if call.tool == "signal_health":
        return T.signal_health(drive, a["quantity"])
    if call.tool == "can_health":
        return T.can_health(drive)
    raise KeyError(call.tool)


# --------------------------------------------------------------------------- rendering


def fmt_speed(v_mps: float, unit: str | None) -> str:
    if unit == "mph":
        return f"{v_mps * 2.2369362920544:.1f} mph ({v_mps:.2f} m/s)"
    if unit == "m/s":
        return f"{v_mps:.2f} m/s ({v_mps * 3.6:.1f} km/h)"
    return f"{v_mps * 3.6:.1f} km/h ({v_mps:.2f} m/s)"


def fmt_value(value: float, unit: str, pref: str | None = None) -> str:
    if unit == "m/s":
        return fmt_speed(value, pref)
    if unit == "m/s^2":
        return f"{value:.2f} m/s²"
    if unit == "deg":
        return f"{value:.1f}°"
    if unit == "deg/s":
        return f"{value:.2f}°/s"
    if unit == "m":
        return f"{value:.1f} m" if abs(value) < 1000 else f"{value / 1000:.2f} km ({value:.0f} m)"
    if unit == "s":
        return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min ({value:.0f} s)"
    if unit == "N m":
        return f"{value:.2f} N m"
    return f"{value:.3g} {unit}".strip()


def fmt_distance(m: float, pref: str | None) -> str:
    if pref == "mi":
        return f"{m / 1609.344:.2f} miles ({m:.0f} m)"
    return f"{m / 1000:.2f} km ({m:.0f} m)" if m >= 1000 else f"{m:.0f} m"


def when(drive: Drive, t_s: float | None) -> str:
    """``09:15:02 (14.2 s into the drive)``, or only the offset without a wall clock."""
    if t_s is None:
        return ""
    clock = drive.clock(t_s + 0.5)  # printed to the nearest second
    rel = f"{t_s:.1f} s into the drive"
    return f"{clock:%H:%M:%S} ({rel})" if clock is not None else rel


def span(drive: Drive, t0: float, t1: float) -> str:
    c0, c1 = drive.clock(t0 + 0.5), drive.clock(t1 + 0.5)
    if c0 is not None and c1 is not None:
        return f"{c0:%H:%M:%S}–{c1:%H:%M:%S} ({t0:.1f}–{t1:.1f} s)"
    return f"{t0:.1f}–{t1:.1f} s"


def evidence_lines(results: Sequence[ToolResult], drive: Drive) -> list[str]:
    lines = []
    for r in results:
        for e in r.evidence:
            vals = ", ".join(f"{k} {v}" for k, v in e.values.items())
            lines.append(
                f"- {e.what}, drive `{e.drive_id}`, {span(drive, e.t0_s, e.t1_s)}"
                + (f", {e.samples} samples" if e.samples else "")
                + (f": {vals}" if vals else "")
            )
    return lines


_STAT_WORD = {"max": "highest", "min": "lowest", "mean": "average"}


def _window_phrase(r: ToolResult, drive: Drive, label: str) -> str:
    win = r.args.get("window")
    if not win or (win[0] is None and win[1] is None):
        return "on the drive"
    if label:
        if label.startswith("the "):
            return f"in {label}"
        return label if label.startswith(("around", "in ", "during")) else f"at {label}"
    lo = 0.0 if win[0] is None else win[0]
    hi = drive.duration_s if win[1] is None else win[1]
    return f"between {span(drive, max(0.0, lo), min(drive.duration_s, hi))}"


def render(intent: Intent, calls: Sequence[ToolCall], results: Sequence[ToolResult], drive: Drive) -> str:
    """The answer text for ``intent`` from the tool results (evidence appended)."""
    if not results:
        return ""
    failed = [r for r in results if not r.ok]
    if len(failed) == len(results):
        return f"I can't tell that from this vehicle's data: {failed[0].message}."
    r = results[0]
    label = calls[0].args.get("window", [None, None, ""])[2] if calls and "window" in calls[0].args else ""
    pref = intent.unit
    head = ""
    if r.tool == "signal_stats":
        q = QUANTITIES[r.args["quantity"]]
        where = _window_phrase(r, drive, label)
        name = "braking (deceleration)" if intent.extra.get("as") == "braking" else q.label
        if intent.stat in ("max", "min"):
            f = r.facts[intent.stat]
            value = f.value if isinstance(f.value, float) else 0.0
            if intent.extra.get("as") == "braking":
                head = (
                    f"The hardest braking {where} was "
                    f"{fmt_value(value, q.unit, pref)} at {when(drive, f.t_s)}."
                )
            else:
                head = (
                    f"The {_STAT_WORD[intent.stat]} {name} {where} was "
                    f"{fmt_value(value, q.unit, pref)}, at {when(drive, f.t_s)}."
                )
        elif intent.stat == "mean":
            head = f"The average {name} {where} was {fmt_value(float(r.fact('mean')), q.unit, pref)}."
        else:
            mx, mn = r.facts["max"], r.facts["min"]
            head = (
                f"The {name} {where} averaged {fmt_value(float(r.fact('mean')), q.unit, pref)}, "
                f"ranging from {fmt_value(float(mn.value or 0.0), q.unit, pref)} at {when(drive, mn.t_s)} "
                f"to {fmt_value(float(mx.value or 0.0), q.unit, pref)} at {when(drive, mx.t_s)}."
            )
    elif r.tool == "value_at":
        q = QUANTITIES[r.args["quantity"]]
        f = r.facts["value"]
        head = f"The {q.label} at {when(drive, f.t_s)} was {fmt_value(float(f.value or 0.0), q.unit, pref)}."
    elif r.tool == "threshold_time":
        q = QUANTITIES[r.args["quantity"]]
        secs = float(r.fact("seconds"))
        share = float(r.fact("share"))
        where = _window_phrase(r, drive, label)
        if intent.extra.get("as") == "stopped":
            head = (
                f"You were stopped (speed below {fmt_value(float(r.fact('threshold')), q.unit, 'm/s')}) "
                f"for {fmt_value(secs, 's')} {where}, {share * 100:.0f}% of the time."
            )
        else:
            word = "above" if r.args["above"] else "below"
            thr = (
                f"{intent.threshold:g} {intent.threshold_unit}".strip()
                if intent.threshold is not None
                else ""
            )
            head = (
                f"The {q.label} was {word} {thr} for {fmt_value(secs, 's')} "
                f"{where}, {share * 100:.0f}% of the time."
            )
    elif r.tool == "distance":
        where = _window_phrase(r, drive, label)
        head = (
            f"You drove {fmt_distance(float(r.fact('distance')), pref)} "
            f"{where}, in {fmt_value(float(r.fact('duration')), 's')}."
        )
    elif r.tool == "trip_summary" and intent.kind == "duration":
        c0 = drive.clock(0.0)
        head = f"The drive lasted {fmt_value(float(r.fact('duration')), 's')}" + (
            f", starting at {c0:%H:%M:%S} on {c0:%Y-%m-%d}." if c0 is not None else "."
        )
    elif r.tool == "trip_summary":
        c0 = drive.clock(0.0)
        mx = r.facts["max_speed"]
        start = (
            f" on {c0:%Y-%m-%d} from {c0:%H:%M:%S} (UTC{c0:%z}"[:-2] + f":{c0:%z}"[-2:] + ")"
            if c0 is not None
            else ""
        )
        head = (
            f"Drive `{drive.drive_id}`{start}: {fmt_distance(float(r.fact('distance')), pref)} "
            f"in {fmt_value(float(r.fact('duration')), 's')}, "
            f"average speed {fmt_speed(float(r.fact('mean_speed')), pref)}, top speed "
            f"{fmt_speed(float(mx.value or 0.0), pref)} at {when(drive, mx.t_s)}, "
            f"{r.fact('stops')} stops, {r.fact('harsh_events')} harsh events "
            f"({r.fact('hard_brakes')} hard braking, {r.fact('hard_accelerations')} "
            f"hard acceleration, {r.fact('sharp_turns')} sharp turns)."
        )
    elif r.tool == "harsh_events":
        kind = r.args.get("kind")
        noun = {
            "hard_brake": "hard braking",
            "hard_acceleration": "hard acceleration",
            "sharp_turn": "sharp turns",
            None: "harsh events",
        }[kind]
        where = _window_phrase(r, drive, label)
        n = int(r.fact("count"))
        if n == 0:
            dec = r.facts.get("strongest_deceleration")
            acc = r.facts.get("strongest_acceleration")
            head = (
                f"No {noun} {where} (thresholds: braking at "
                f"{T.HARSH_BRAKE_MPS2} m/s² or harder, acceleration "
                f"at {T.HARSH_ACCEL_MPS2} m/s², turns at {T.SHARP_TURN_MPS2} "
                f"m/s², each for {T.HARSH_MIN_DURATION_S} s)."
            )
            if dec is not None and kind in (None, "hard_brake"):
                head += (
                    " The strongest deceleration was "
                    f"{fmt_value(float(dec.value or 0.0), 'm/s^2')} at {when(drive, dec.t_s)}."
                )
            if acc is not None and kind == "hard_acceleration":
                head += (
                    " The strongest acceleration was "
                    f"{fmt_value(float(acc.value or 0.0), 'm/s^2')} at {when(drive, acc.t_s)}."
                )
        else:
            parts = []
            for item in r.items:
                ev_label = {
                    "hard_brake": "hard braking",
                    "hard_acceleration": "hard acceleration",
                    "sharp_turn": "sharp turn",
                }[str(item["kind"].value)]
                parts.append(
                    f"{ev_label} at {when(drive, item['start'].t_s)}, peak "
                    f"{fmt_value(float(item['peak'].value or 0.0), 'm/s^2')}, "
                    f"from {fmt_speed(float(item['speed_before'].value or 0.0), pref)} "
                    f"to {fmt_speed(float(item['speed_after'].value or 0.0), pref)}"
                )
            head = f"{n} {noun if n != 1 else noun.rstrip('s')} {where}: " + "; ".join(parts) + "."
    elif r.tool == "braking_near":
        pk = r.facts["peak_deceleration"]
        v0, v1 = r.facts["speed_before"], r.facts["speed_after"]
        harsh = r.fact("harsh") == "yes"
        below = f"below the hard-braking threshold of {T.HARSH_BRAKE_MPS2} m/s²"
        head = (
            f"The strongest braking near then was at {when(drive, pk.t_s)}: "
            f"{fmt_value(float(pk.value or 0.0), 'm/s^2')} "
            f"({'hard braking' if harsh else below}), "
            f"slowing from {fmt_speed(float(v0.value or 0.0), pref)} "
            f"to {fmt_speed(float(v1.value or 0.0), pref)} "
            f"between {when(drive, v0.t_s)} and {when(drive, v1.t_s)}."
        )
        reasons = []
        if "lead_distance" in r.facts:
            ld, rs = r.facts["lead_distance"], r.facts["lead_relative_speed"]
            closing = float(rs.value or 0.0) < 0
            reasons.append(
                f"the radar saw a vehicle {float(ld.value or 0.0):.1f} m ahead in the lane, "
                + (
                    f"closing at {abs(float(rs.value or 0.0)):.1f} m/s"
                    if closing
                    else f"moving away at {float(rs.value or 0.0):.1f} m/s"
                )
            )
        if "max_abs_steering" in r.facts:
            st = float(r.fact("max_abs_steering"))
            reasons.append(
                f"the steering-wheel angle stayed within {st:.1f}°"
                + (" (a turn)" if st > 30 else " (no turn)")
            )
        if r.fact("stopped") == "yes":
            reasons.append("the car came to a stop")
        if reasons:
            head += " What the data shows around it: " + "; ".join(reasons) + "."
            if "lead_distance" in r.facts and float(r.facts["lead_relative_speed"].value or 0.0) < 0:
                head += " The likely reason is the slower vehicle ahead."
        else:
            head += " The log has no radar or steering data to say why."
    elif r.tool in ("signal_health", "can_health"):
        head = _render_health(results, drive)
    if failed and r.tool not in ("signal_health", "can_health"):
        head += " (" + "; ".join(f.message for f in failed) + ")"
    lines = evidence_lines([x for x in results if x.ok], drive)
    return head + ("\nEvidence:\n" + "\n".join(lines) if lines else "")


def _render_health(results: Sequence[ToolResult], drive: Drive) -> str:
    parts: list[str] = []
    for r in results:
        if not r.ok:
            parts.append(r.message)
            continue
        if r.tool == "can_health":
            n_stop, n_rate = int(r.fact("stopped")), int(r.fact("rate_changes"))
            text = (
                f"CAN bus: {r.fact('messages')} periodic messages in {r.fact('frames')} "
                f"frames; {n_stop} stopped before the log ended, {n_rate} changed rate"
            )
            details = []
            for item in r.items[:5]:
                addr = int(item["address"].value or 0)
                if item["fault"].value == "stopped":
                    details.append(
                        f"bus {item['bus'].value} address {addr} (0x{addr:x}) "
                        f"stopped at {when(drive, item['last'].t_s)}"
                    )
                else:
                    details.append(
                        f"bus {item['bus'].value} address {addr} (0x{addr:x}) went from "
                        f"{float(item['rate_before'].value or 0.0):.1f} Hz "
                        f"to {float(item['rate_after'].value or 0.0):.1f} Hz"
                    )
            parts.append(text + (": " + "; ".join(details) if details else "") + ".")
            continue
        q = QUANTITIES[r.args["quantity"]]
        healthy = r.fact("healthy") == "yes"
        head = (
            f"The {q.label} signal looks {'healthy' if healthy else 'faulty'}: "
            f"{r.fact('samples')} samples at {float(r.fact('rate')):.1f} Hz, "
        )
        head += (
            f"{r.fact('dropouts')} dropouts (longest gap {float(r.fact('longest_gap')):.3f} "
            f"s), {r.fact('out_of_range')} out-of-range values, "
        )
        head += (
            f"{float(r.fact('frozen_time')):.1f} s frozen while moving, "
            f"{r.fact('rate_anomaly_seconds')} seconds with an abnormal rate"
        )
        details = []
        for item in r.items[:4]:
            fault = str(item["fault"].value).replace("_", " ")
            if "length" in item:
                details.append(
                    f"{fault} at {when(drive, item['start'].t_s)} "
                    f"lasting {float(item['length'].value or 0.0):.2f} s"
                )
            else:
                details.append(
                    f"{fault} at {when(drive, item['start'].t_s)} ({item['samples'].value} samples)"
                )
        parts.append(head + (": " + "; ".join(details) if details else "") + ".")
    return " ".join(parts)


def unanswerable(intent: Intent, logs: VehicleLogs | None) -> str:
    """The answer to a question no tool covers."""
    have = ""
    if logs is not None:
        qs = sorted({QUANTITIES[q].label for d in logs.drives for q in T.available(d)})
        have = f" This vehicle's data has: {', '.join(qs)}."
    return (
        "I can't tell that from this vehicle's data."
        + have
        + " I can answer: "
        + "; ".join(CAPABILITIES)
        + "."
    )
