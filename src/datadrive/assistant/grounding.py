"""The number check: every number an answer states must come from a tool result.

Before an answer is shown (whoever phrased it: the templates or a language
model), :func:`check_numbers` finds every number in its text and looks for
a tool-result value it could be a rounding of: a fact, a fact's time, an
evidence window or value, in its own unit or a usual conversion (m/s to
km/h or mph, m to km or miles, s to minutes, m/s^2 to g, ratio to percent,
absolute values), or a number the question itself stated. Wall-clock
times (``09:15:02``), dates and UTC offsets must be those of a tool time on
the drive's clock. Identifiers in back-quotes are not numbers.

A number is *grounded* when ``|stated - value| <= half a unit of its last
digit`` (plus a 1e-9 relative slack) for some allowed value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from datadrive.assistant.tools import ToolResult

__all__ = ["NumberCheck", "allowed_values", "check_numbers"]

_CONVERSIONS: dict[str, tuple[float, ...]] = {
    "m/s": (1.0, 3.6, 2.2369362920544),
    "m": (1.0, 1e-3, 1 / 1609.344),
    "s": (1.0, 1 / 60.0, 1 / 3600.0),
    "m/s^2": (1.0, 1 / 9.80665),
    "ratio": (1.0, 100.0),
    "deg": (1.0, math.pi / 180.0),
}
_NUMBER = re.compile(r"(?<![\w.:/-])[-+−]?\d+(?:[.,]\d+)?(?![\w:/-]|\.\d)")
_CLOCK = re.compile(r"\b(\d{1,2}):(\d{2})(?::(\d{2}))?\b")
_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_OFFSET = re.compile(r"\bUTC[+-]\d{2}:\d{2}\b")
_CODE = re.compile(r"`[^`]*`")


@dataclass(frozen=True)
class NumberCheck:
    """The verdict on one answer text.

    Attributes:
        ok: Whether every number is grounded.
        numbers: How many numbers (and clock times) the text states.
        ungrounded: Those no tool result supports.
    """

    ok: bool
    numbers: int
    ungrounded: tuple[str, ...]


def _walk_numbers(value: object) -> Iterable[tuple[float, str]]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float) and math.isfinite(float(value)):
        yield float(value), ""


def allowed_values(results: Sequence[ToolResult], question_numbers: Sequence[float] = ()) -> list[float]:
    """Every value a number in the answer may be a rounding of."""
    base: list[tuple[float, str]] = [(float(x), "") for x in question_numbers]
    times: list[float] = []
    for r in results:
        facts = list(r.facts.values()) + [f for item in r.items for f in item.values()]
        for fact in facts:
            if (
                isinstance(fact.value, int | float)
                and not isinstance(fact.value, bool)
                and math.isfinite(float(fact.value))
            ):
                base.append((float(fact.value), fact.unit))
            if fact.t_s is not None:
                times.append(fact.t_s)
        for e in r.evidence:
            times += [e.t0_s, e.t1_s]
            base.append((float(e.samples), "count"))
            for v in e.values.values():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    base.append((float(v), ""))
            base += [(float(x.replace("−", "-")), "") for x in _NUMBER.findall(_CODE.sub(" ", e.what))]
        for v in r.args.values():
            if isinstance(v, int | float) and not isinstance(v, bool):
                base.append((float(v), ""))
            elif isinstance(v, list):
                base += [(float(x), "s") for x in v if isinstance(x, int | float) and not isinstance(x, bool)]
    base += [(t, "s") for t in times]
    out: list[float] = []
    for value, unit in base:
        factors = (
            _CONVERSIONS.get(unit, (1.0,)) if unit else tuple({f for fs in _CONVERSIONS.values() for f in fs})
        )
        for f in factors:
            out += [value * f, abs(value * f)]
    return out


def _grounded(text: str, allowed: Sequence[float]) -> bool:
    t = text.replace("−", "-").replace(",", ".").lstrip("+")
    x = float(t)
    decimals = len(t.split(".")[1]) if "." in t else 0
    tol = 0.5 * 10.0 ** (-decimals)
    return any(abs(x - a) <= tol + 1e-9 * max(1.0, abs(a)) for a in allowed)


def check_numbers(
    text: str,
    results: Sequence[ToolResult],
    *,
    question_numbers: Sequence[float] = (),
    clock_times: Sequence[datetime] = (),
    question_clock_s: Sequence[float] = (),
) -> NumberCheck:
    """Check every number and time in ``text`` against tool results (see the module doc).

    Args:
        text: The answer.
        results: The tool results it is based on.
        question_numbers: Numbers the question stated.
        clock_times: Wall-clock times of the tool times (local, on the drive's clock).
        question_clock_s: Times of day (s since midnight) the question stated.
    """
    body = _CODE.sub(" ", text)
    ungrounded: list[str] = []
    count = 0
    allowed_clock = [c.hour * 3600 + c.minute * 60 + c.second + c.microsecond / 1e6 for c in clock_times]
    allowed_clock += list(question_clock_s)
    dates = {c.strftime("%Y-%m-%d") for c in clock_times}
    offsets = {c.strftime("UTC%z")[:-2] + ":" + c.strftime("%z")[-2:] for c in clock_times}
    for m in _OFFSET.finditer(body):
        count += 1
        if m.group(0) not in offsets:
            ungrounded.append(m.group(0))
    body = _OFFSET.sub(" ", body)
    for m in _DATE.finditer(body):
        count += 1
        if m.group(0) not in dates:
            ungrounded.append(m.group(0))
    body = _DATE.sub(" ", body)
    for m in _CLOCK.finditer(body):
        count += 1
        secs = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3) or 0)
        tol = 1.0 if m.group(3) else 60.0
        if not any(abs(((secs - a + 43200) % 86400) - 43200) <= tol for a in allowed_clock):
            ungrounded.append(m.group(0))
    body = _CLOCK.sub(" ", body)
    allowed = allowed_values(results, question_numbers)
    for m in _NUMBER.finditer(body):
        count += 1
        if not _grounded(m.group(0), allowed):
            ungrounded.append(m.group(0))
    return NumberCheck(not ungrounded, count, tuple(ungrounded))
