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


def refaults_of_freed_blocks(mib: int) -> int:
    """Page faults of touching blocks of 1..``mib - 1`` MiB, each freed in turn, after ``mib`` MiB were freed.

    A process that keeps freed memory for reuse serves them all from the
    first block's pages (almost no faults); one that hands blocks back to the
    system faults new pages in (~256 per MiB).
    """
    import resource

    import numpy as np

    np.ones(mib * 2**18, dtype=np.float32).sum()  # allocated, touched, freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for size in range(1, mib):
        np.ones(size * 2**18, dtype=np.float32).sum()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
