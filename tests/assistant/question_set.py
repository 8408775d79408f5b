"""The question set: templated questions with varied phrasings, expected answers from raw arrays.

Expected values are computed here from the raw sample files (``np.load`` of
the comma2k19 arrays, the ``csv`` module on the Udacity CSV), with the
vehicle's real time zone (the comma2k19 drive is in California: PDT; the
Udacity log has no time zone, so UTC), never through datadrive's readers or
tools. Each case checks the facts stated in the answer's text.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

COMMA = "comma2k19/b0c9d2329ad1606b_2018-08-02--08-34-47/40"
UDACITY = "udacity_steering/train_round2_part1.txt"


@dataclass
class Raw:
    """One drive's raw arrays: name -> (seconds from the drive's start, values)."""

    signals: dict[str, tuple[np.ndarray, np.ndarray]]
    start_unix_s: float
    tz: ZoneInfo | None
    duration_s: float

    def clock(self, t: float) -> datetime:
        utc = datetime.fromtimestamp(self.start_unix_s + t, UTC)
        return utc.astimezone(self.tz) if self.tz else utc

    def t_of(self, hhmmss: str) -> float:
        h, m, s = (int(x) for x in hhmmss.split(":"))
        c0 = self.clock(0.0)
        target = c0.replace(hour=h, minute=m, second=s, microsecond=0)
        return (target - c0).total_seconds()


def raw_comma(samples: Path) -> Raw:
    seg = samples / COMMA / "processed_log"
    pose = samples / COMMA / "global_pose"

    def log(folder: str) -> tuple[np.ndarray, np.ndarray]:
        return np.load(seg / folder / "t"), np.load(seg / folder / "value")

    starts = [np.load(p / "t")[0] for p in seg.glob("*/*") if (p / "t").exists() and p.name != "raw_can"]
    starts.append(np.load(pose / "frame_times")[0])
    t0 = float(min(starts))
    speed_t, speed = log("CAN/speed")
    steer_t, steer = log("CAN/steering_angle")
    fix_t, fix = log("GNSS/live_gnss_ublox")
    unix_minus_boot = float(np.nanmedian(fix[:, 3] / 1e3 - fix_t))
    ends = [np.load(p / "t")[-1] for p in seg.glob("*/*") if (p / "t").exists() and p.name != "raw_can"]
    ends.append(np.load(pose / "frame_times")[-1])
    return Raw(
        {
            "speed": (speed_t - t0, speed.reshape(-1)),
            "steering_angle": (steer_t - t0, steer.reshape(-1)),
            "altitude": (fix_t - t0, fix[:, 4]),
        },
        t0 + unix_minus_boot,
        ZoneInfo("America/Los_Angeles"),
        float(max(ends)) - t0,
    )


def raw_udacity(samples: Path) -> Raw:
    with (samples / UDACITY).open() as fh:
        rows = list(csv.DictReader(fh))
    ns = np.array([int(r["filename"].split("/")[-1].split(".")[0]) for r in rows], dtype=np.int64)
    order = np.argsort(ns, kind="stable")
    ns = ns[order]
    t = (ns - ns[0]) / 1e9

    def col(name: str) -> np.ndarray:
        return np.array([float(rows[i][name]) for i in order])

    return Raw(
        {
            "speed": (t, col("speed")),
            "steering_angle": (t, np.rad2deg(col("angle"))),
            "steering_torque": (t, col("torque")),
        },
        ns[0] / 1e9,
        None,
        float(t[-1]),
    )


# --------------------------------------------------------------------------- expected values


def window(raw: Raw, lo: float | None, hi: float | None) -> tuple[float, float]:
    return (0.0 if lo is None else lo), (raw.duration_s if hi is None else hi)


def stats(raw: Raw, name: str, lo: float, hi: float) -> dict[str, float]:
    t, v = raw.signals[name]
    sel = (t >= lo - 1e-9) & (t <= hi + 1e-9)
    tv, vv = t[sel], v[sel]
    return {
        "max": float(vv.max()),
        "min": float(vv.min()),
        "mean": float(vv.mean()),
        "t_max": float(tv[np.argmax(vv)]),
        "t_min": float(tv[np.argmin(vv)]),
    }


def distance(raw: Raw, lo: float, hi: float) -> float:
    t, v = raw.signals["speed"]
    sel = (t >= lo - 1e-9) & (t <= hi + 1e-9)
    tv, vv = t[sel], v[sel]
    return float(np.sum((vv[1:] + vv[:-1]) / 2 * np.diff(tv)))


def time_above(raw: Raw, threshold_mps: float, above: bool) -> float:
    t, v = raw.signals["speed"]
    cond = v[:-1] > threshold_mps if above else v[:-1] < threshold_mps
    return float(np.diff(t)[cond].sum())


def strongest_deceleration(raw: Raw) -> tuple[float, float]:
    """The documented derivative: (v(t + 0.25) - v(t - 0.25)) / 0.5 on a 10 Hz grid."""
    t, v = raw.signals["speed"]
    grid = np.arange(t[0] + 0.25, t[-1] - 0.25 + 1e-9, 0.1)
    a = (np.interp(grid + 0.25, t, v) - np.interp(grid - 0.25, t, v)) / 0.5
    i = int(np.argmin(a))
    return float(a[i]), float(grid[i])


# --------------------------------------------------------------------------- checking text


def _num(pattern: str, text: str) -> float | None:
    m = re.search(pattern, text)
    return None if m is None else float(m.group(1))


def near(stated: float | None, expected: float, decimals: int) -> bool:
    return stated is not None and abs(stated - round(expected, decimals)) <= 0.5 * 10.0**-decimals + 1e-6


def clock_near(text: str, raw: Raw, t: float, after: str = "at ") -> bool:
    m = re.search(re.escape(after) + r"(\d{2}:\d{2}:\d{2})", text)
    if m is None:
        return False
    stated = datetime.strptime(m.group(1), "%H:%M:%S")
    exp = raw.clock(t)
    diff = abs(
        (stated.hour * 3600 + stated.minute * 60 + stated.second)
        - (exp.hour * 3600 + exp.minute * 60 + exp.second + exp.microsecond / 1e6)
    )
    return diff <= 1.0


@dataclass(frozen=True)
class Case:
    question: str
    vehicle: str  # "comma", "udacity", "faulty"
    family: str
    check: Callable[[str], str | None]  # None when the answer's facts are right, else what is wrong


def _speed_unit(unit: str) -> tuple[float, str]:
    return {"km/h": (3.6, "km/h"), "mph": (2.2369362920544, "mph")}[unit]


def build_cases(samples: Path, faults: dict[str, tuple[float, float]]) -> list[Case]:
    """Every case.

    ``faults`` names the faulty vehicle's frozen window and stopped CAN message (bus, address).
    """
    raws = {"comma": raw_comma(samples), "udacity": raw_udacity(samples)}
    cases: list[Case] = []

    def add(q: str, vehicle: str, family: str, check: Callable[[str], str | None]) -> None:
        cases.append(Case(q, vehicle, family, check))

    for vehicle, raw in raws.items():
        c0 = raw.clock(0.0)
        windows: list[tuple[str, float | None, float | None]] = [
            ("", None, None),
            (" on the last drive", None, None),
            (" in the first 30 seconds", None, 30.0),
            (" during the first minute", None, 60.0),
            (" in the last 20 seconds", raw.duration_s - 20.0, None),
            (" between 10 and 40 seconds", 10.0, 40.0),
            (" from 5 s to 25 s", 5.0, 25.0),
            (" in the second half", raw.duration_s / 2, None),
        ]
        if vehicle == "comma":
            a, b = c0 + timedelta(seconds=12), c0 + timedelta(seconds=41)
            windows.append(
                (
                    f" between {a:%H:%M:%S} and {b:%H:%M:%S}",
                    raw.t_of(f"{a:%H:%M:%S}"),
                    raw.t_of(f"{b:%H:%M:%S}"),
                )
            )
        else:
            windows.append((" after 2 minutes", 120.0, None))
            windows.append((" in the first half", None, raw.duration_s / 2))

        speed_phrasings = {
            "max": [
                "what was my top speed{w}",
                "how fast did I go{w}",
                "what was the highest speed{w}",
                "peak speed{w}",
                "what's the maximum speed I reached{w}",
            ],
            "min": ["what was my lowest speed{w}", "what was the minimum speed{w}", "slowest speed{w}"],
            "mean": ["what was my average speed{w}", "mean speed{w}", "how fast was I going on average{w}"],
        }
        for stat, phrasings in speed_phrasings.items():
            for i, (wtext, lo, hi) in enumerate(windows):
                phr = phrasings[i % len(phrasings)]
                unit = "mph" if i % 3 == 2 else "km/h"
                q = phr.format(w=wtext) + (" in mph" if unit == "mph" else "")
                lo2, hi2 = window(raw, lo, hi)
                exp = stats(raw, "speed", lo2, hi2)

                def check(
                    text: str, exp: dict[str, float] = exp, stat: str = stat, unit: str = unit, raw: Raw = raw
                ) -> str | None:
                    factor, u = _speed_unit(unit)
                    stated = _num(r"(-?\d+(?:\.\d+)?) " + re.escape(u), text)
                    if not near(stated, exp[stat] * factor, 1):
                        return f"stated {stated} {u}, expected {exp[stat] * factor:.1f}"
                    if stat in ("max", "min") and not clock_near(text, raw, exp[f"t_{stat}"]):
                        return f"time of the {stat} wrong (expected {raw.clock(exp[f't_{stat}']):%H:%M:%S})"
                    return None

                add(q, vehicle, f"speed {stat}", check)

        steer = {
            "max": [
                "what was the largest steering angle{w}",
                "maximum steering wheel angle{w}",
                "highest steering angle{w}",
            ],
            "min": ["lowest steering angle{w}", "minimum steering angle{w}"],
            "mean": ["average steering angle{w}", "what was the mean steering wheel angle{w}"],
        }
        for stat, phrasings in steer.items():
            for i, (wtext, lo, hi) in enumerate(windows[:6]):
                q = phrasings[i % len(phrasings)].format(w=wtext)
                lo2, hi2 = window(raw, lo, hi)
                exp = stats(raw, "steering_angle", lo2, hi2)

                def check_s(text: str, exp: dict[str, float] = exp, stat: str = stat) -> str | None:
                    stated = _num(r"(-?\d+\.\d)°", text)
                    return (
                        None if near(stated, exp[stat], 1) else f"stated {stated}°, expected {exp[stat]:.1f}"
                    )

                add(q, vehicle, f"steering {stat}", check_s)

        extra = "altitude" if vehicle == "comma" else "steering_torque"
        for i, (wtext, lo, hi) in enumerate(windows[:5]):
            lo2, hi2 = window(raw, lo, hi)
            exp = stats(raw, extra, lo2, hi2)
            if extra == "altitude":
                q = [
                    "what was the highest elevation{w}",
                    "maximum altitude{w}",
                    "how high above sea level did I get{w}",
                    "highest altitude{w}",
                    "peak elevation{w}",
                ][i].format(w=wtext)

                def check_a(text: str, exp: dict[str, float] = exp) -> str | None:
                    stated = _num(r"(-?\d+\.\d) m\b", text)
                    return (
                        None
                        if near(stated, exp["max"], 1)
                        else f"stated {stated} m, expected {exp['max']:.1f}"
                    )

                add(q, vehicle, "altitude max", check_a)
            else:
                q = [
                    "what was the highest steering torque{w}",
                    "max torque on the steering wheel{w}",
                    "peak steering effort{w}",
                    "largest steering torque{w}",
                    "maximum torque{w}",
                ][i].format(w=wtext)

                def check_t(text: str, exp: dict[str, float] = exp) -> str | None:
                    stated = _num(r"(-?\d+\.\d+) N m", text)
                    return (
                        None
                        if near(stated, exp["max"], 2)
                        else f"stated {stated} N m, expected {exp['max']:.2f}"
                    )

                add(q, vehicle, "torque max", check_t)

        dist_phr = [
            "how far did I drive{w}",
            "what distance did I cover{w}",
            "how many kilometers did I drive{w}",
            "how far did we travel{w}",
            "distance driven{w}",
        ]
        for i, (wtext, lo, hi) in enumerate(windows):
            lo2, hi2 = window(raw, lo, hi)
            exp_d = distance(raw, lo2, hi2)
            q = dist_phr[i % len(dist_phr)].format(w=wtext)

            def check_d(text: str, exp_d: float = exp_d) -> str | None:
                stated = _num(r"\((\d+) m\)", text) if "km (" in text else _num(r"drove (\d+) m\b", text)
                return None if near(stated, exp_d, 0) else f"stated {stated} m, expected {exp_d:.0f}"

            add(q, vehicle, "distance", check_d)

        s = raws[vehicle].signals["speed"][1]
        thresholds = [float(np.percentile(s * 3.6, p)) for p in (20, 50, 80)]
        for _j, thr in enumerate(thresholds):
            thr_i = round(thr)
            for _k, (phr, above, unit) in enumerate(
                [
                    ("how long was I above {x} km/h", True, "km/h"),
                    ("for how long did I drive faster than {x} km/h", True, "km/h"),
                    ("how much time did I spend below {x} km/h", False, "km/h"),
                    ("how long was I over {y} mph", True, "mph"),
                ]
            ):
                x = thr_i
                y = round(thr / 1.609344)
                q = phr.format(x=x, y=y)
                thr_mps = x / 3.6 if unit == "km/h" else y * 0.44704
                exp_t = time_above(raw, thr_mps, above)

                def check_th(text: str, exp_t: float = exp_t) -> str | None:
                    m = re.search(r"for (\d+\.\d) s\b", text) or re.search(r"for (\d+\.\d) min", text)
                    if m is None:
                        return "no duration stated"
                    stated = float(m.group(1)) * (60.0 if "min" in m.group(0) else 1.0)
                    dec_ok = near(float(m.group(1)), exp_t / (60.0 if "min" in m.group(0) else 1.0), 1)
                    return None if dec_ok else f"stated {stated} s, expected {exp_t:.1f}"

                add(q, vehicle, "threshold", check_th)

        dec, t_dec = strongest_deceleration(raw)
        for q in [
            "did I brake hard",
            "any hard braking on my last drive",
            "were there any harsh braking events",
            "did I slam on the brakes",
            "how many times did I brake hard",
        ]:

            def check_b(text: str, dec: float = dec, raw: Raw = raw, t_dec: float = t_dec) -> str | None:
                if dec > -3.0 and not text.startswith("No hard braking"):
                    return "expected no hard braking"
                stated = _num(r"deceleration was (-?\d+\.\d+) m/s²", text)
                if not near(stated, dec, 2):
                    return f"strongest deceleration {stated}, expected {dec:.2f}"
                return (
                    None
                    if clock_near(text, raw, t_dec) or (raw.tz is None and "s into the drive" in text)
                    else "time of the strongest deceleration wrong"
                )

            add(q, vehicle, "events", check_b)
        for q in [
            "what was the hardest braking",
            "when did I brake the hardest",
            "strongest braking on the drive",
        ]:

            def check_hb(text: str, dec: float = dec) -> str | None:
                stated = _num(r"(-?\d+\.\d+) m/s²", text)
                return None if near(stated, dec, 2) else f"stated {stated}, expected {dec:.2f}"

            add(q, vehicle, "hardest braking", check_hb)

        for q in [
            "summarise this trip",
            "give me a recap of my drive",
            "how was my drive",
            "trip summary please",
            "tell me about the drive",
        ]:
            exp_dist = distance(raw, 0.0, raw.duration_s)
            exp_top = stats(raw, "speed", 0.0, raw.duration_s)["max"]

            def check_trip(text: str, exp_dist: float = exp_dist, exp_top: float = exp_top) -> str | None:
                stated = _num(r"\((\d+) m\)", text)
                if not near(stated, exp_dist, 0):
                    return f"distance {stated}, expected {exp_dist:.0f}"
                top = _num(r"top speed (\d+\.\d) km/h", text)
                return (
                    None if near(top, exp_top * 3.6, 1) else f"top speed {top}, expected {exp_top * 3.6:.1f}"
                )

            add(q, vehicle, "trip", check_trip)

        for q in [
            "is the steering angle sensor healthy",
            "is the speed sensor working properly",
            "any dropouts in the steering signal",
            "is the steering sensor frozen",
        ]:

            def check_h(text: str) -> str | None:
                return (
                    None if "looks healthy" in text and "0 dropouts" in text else "expected a healthy signal"
                )

            add(q, vehicle, "health", check_h)

        for q in [
            "what's the tyre pressure",
            "how much fuel is left",
            "what is the battery charge",
            "what song was playing",
            "what's the outside temperature",
            "who was driving",
        ]:
            add(
                q,
                vehicle,
                "unanswerable",
                lambda text: (
                    None
                    if text.startswith("I can't tell that from this vehicle's data")
                    else "expected a refusal"
                ),
            )

    # the faulty vehicle: injected faults the answers must find
    for q in [
        "is the steering angle sensor healthy",
        "any dropouts in the steering signal",
        "is the steering sensor frozen",
        "is the steering wheel angle working properly",
    ]:

        def check_f(text: str) -> str | None:
            if "steering-wheel angle signal looks faulty" not in text:
                return "expected a faulty steering signal"
            if "1 dropouts" not in text:
                return "expected exactly 1 dropout"
            frozen = _num(r"(\d+\.\d) s frozen", text)
            return (
                None
                if frozen is not None and abs(frozen - (faults["frozen"][1] - faults["frozen"][0])) <= 0.5
                else f"frozen {frozen} s"
            )

        add(q, "faulty", "health faulty", check_f)
    for q in [
        "is the speed sensor healthy",
        "any problems with the speed signal",
        "is the speedometer reliable",
    ]:
        add(
            q,
            "faulty",
            "health faulty",
            lambda text: (
                None
                if "speed signal looks faulty" in text and "1 out-of-range values" in text
                else "expected 1 out-of-range speed value"
            ),
        )
    for q in [
        "did any CAN messages stop",
        "are there CAN messages that stopped or changed rate",
        "check the CAN bus messages",
    ]:
        add(
            q,
            "faulty",
            "can",
            lambda text: (
                None
                if re.search(r"\b1 stopped\b", text) and f"address {faults['can'][1]} " in text
                else "expected the stopped CAN message"
            ),
        )
    return cases
