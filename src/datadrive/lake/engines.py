"""Engines: how the ingest pipeline runs a picklable function over many inputs.

The engine is a parameter, not a fork of the code (DESIGN.md): the pipeline
calls ``engine.map_unordered(fn, items)`` and consumes results as they come.
:class:`InlineEngine` runs in the calling process (tests, debugging),
:class:`ProcessPoolEngine` on local cores; a cluster engine (Ray) implements
the same protocol elsewhere.

``fn`` must be a module-level function and ``items`` picklable; ``fn`` must
not raise for bad input (return an outcome instead), so one bad file never
stops the stream.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Protocol, TypeVar

__all__ = ["Engine", "InlineEngine", "ProcessPoolEngine", "default_workers"]

T = TypeVar("T")
R = TypeVar("R")


class Engine(Protocol):
    """Runs a function over items, yielding results in completion order."""

    name: str

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``fn(item)`` for every item, in any order, at most a few in flight.

        Args:
            fn: A picklable, module-level function.
            items: Picklable arguments, consumed lazily.
        """
        ...


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class InlineEngine:
    """Runs everything in the calling process, one item at a time."""

    name = "inline"

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        for item in items:
            yield fn(item)


class ProcessPoolEngine:
    """A local process pool.

    Workers are started with ``forkserver`` so they never inherit the
    parent's storage-library threads. At most ``2 * workers`` items are in
    flight, which bounds the memory that finished-but-unconsumed results
    take.

    Args:
        workers: Number of processes (default: all cores).
        preload: Modules the fork server imports before forking workers.
    """

    name = "process"

    def __init__(
        self, workers: int | None = None, preload: tuple[str, ...] = ("datadrive.lake.ingest",)
    ) -> None:
        self.workers = workers or default_workers()
        self.preload = preload
        if self.workers < 1:
            raise ValueError("workers must be >= 1")

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        ctx = multiprocessing.get_context("forkserver")
        # the server imports the readers once; each worker forks from it warm
        ctx.set_forkserver_preload(list(self.preload))
        window = 2 * self.workers
        it = iter(items)
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        try:
            pending: set[Future[R]] = set()
            for item in it:
                pending.add(pool.submit(fn, item))
                if len(pending) >= window:
                    break
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
                for item in it:
                    pending.add(pool.submit(fn, item))
                    if len(pending) >= window:
                        break
        finally:
            # a consumer that stops early (a storage failure) must not wait for queued work
            pool.shutdown(wait=True, cancel_futures=True)
