"""Functions the engine tests map; a module of their own so workers import them by name."""

from __future__ import annotations

import os


def square_or_fail(x: int) -> int:
    """``x * x``, or a ValueError for multiples of 3 (a bad unit)."""
    if x % 3 == 0:
        raise ValueError(f"unit {x} is bad")
    return x * x


def die_on_seven(x: int) -> int:
    """``x + 1``, but the worker process exits hard on 7 (a crash in native code)."""
    if x == 7:
        os._exit(3)
    return x + 1
