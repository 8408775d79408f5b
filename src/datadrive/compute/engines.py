"""Engines: run one function over many units, collecting per-unit failures.

Every engine implements one primitive, :meth:`Engine.map_unordered` (``fn``
over items, results in completion order, a bounded number in flight), and
inherits the API that layers use on top of it:

* :meth:`Engine.imap` yields an :class:`Outcome` per unit as it finishes: the
  value, or a :class:`UnitFailure` if ``fn`` raised. Pipelines that commit as
  they go (ingest) consume it.
* :meth:`Engine.map` collects every outcome into a :class:`MapReport`, values
  in unit order, so inline, process-pool and Ray runs of the same function
  give the same report.

Both take a ``progress`` callback, called in the calling process after each
unit with a :class:`Progress`.

``fn`` must be picklable for the process pool and Ray (a module-level
function, a :func:`functools.partial` of one, or an instance of a
module-level class), and so must the units and the values. ``fn`` is sent to
each worker once (a pool worker's initializer; Ray's object store), so it may
carry state every unit shares, such as a set of known hashes. An exception
``fn`` raises is caught in the worker and reported as
``"<ExceptionType>: <message>"``, the same text on every engine. A worker
process that dies (a crash in native code, the OOM killer) fails the units it
held; the pool is restarted and the other units carry on.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = [
    "Engine",
    "Guarded",
    "InlineEngine",
    "MapReport",
    "Outcome",
    "ProcessPoolEngine",
    "Progress",
    "UnitFailure",
    "WorkerDiedError",
    "default_workers",
]

T = TypeVar("T")
R = TypeVar("R")

_UNIT_TEXT_MAX = 200
_MESSAGE_MAX = 1000


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class UnitFailure:
    """A unit whose function raised (or whose worker died).

    Attributes:
        index: Position of the unit in the input order.
        unit: The unit as text (``repr``, shortened).
        error_type: The exception's class name (``"InputError"``, ``"WorkerDiedError"``).
        message: The exception's message, shortened.
    """

    index: int
    unit: str
    error_type: str
    message: str

    def __str__(self) -> str:
        return f"{self.unit}: {self.error_type}: {self.message}"

    @classmethod
    def from_exception(cls, index: int, unit: object, exc: BaseException) -> UnitFailure:
        return cls(
            index, _short(repr(unit), _UNIT_TEXT_MAX), type(exc).__name__, _short(str(exc), _MESSAGE_MAX)
        )


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """What became of one unit: its value, or its failure."""

    index: int
    value: R | None
    failure: UnitFailure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(frozen=True)
class Progress:
    """Where a map stands, for a progress bar.

    Attributes:
        done: Units finished (succeeded or failed).
        total: Units in all, when the input has a length.
        failed: Units that failed so far.
        index: The unit that just finished.
    """

    done: int
    total: int | None
    failed: int
    index: int


@dataclass(frozen=True)
class MapReport(Generic[R]):
    """Every unit of a :meth:`Engine.map`.

    Attributes:
        values: One entry per unit, in unit order; ``None`` where it failed.
        failures: The failed units, in unit order.
    """

    values: tuple[R | None, ...]
    failures: tuple[UnitFailure, ...]

    @property
    def ok(self) -> bool:
        """No unit failed."""
        return not self.failures

    def successes(self) -> list[R]:
        """The values of the units that did not fail, in unit order."""
        failed = {f.index for f in self.failures}
        return [v for i, v in enumerate(self.values) if i not in failed]  # type: ignore[misc]


class Guarded(Generic[T, R]):
    """``fn`` with its exceptions turned into a :class:`UnitFailure` (runs in the worker)."""

    def __init__(self, fn: Callable[[T], R]) -> None:
        self.fn = fn

    def __call__(self, task: tuple[int, T]) -> Outcome[R]:
        index, unit = task
        try:
            return Outcome(index, self.fn(unit))
        except Exception as exc:  # reported per unit; one bad unit never stops the map
            return Outcome(index, None, UnitFailure.from_exception(index, unit, exc))


class WorkerDiedError(Exception):
    """The process (or Ray worker) running a unit died before it returned."""


class Engine(ABC):
    """Runs a function over units. Subclasses implement :meth:`map_unordered`."""

    name: str = "engine"

    @abstractmethod
    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``fn(item)`` for every item, in completion order, a bounded number in flight.

        The primitive the other methods build on: ``fn`` must not raise (use
        :meth:`imap` for functions that may). A consumer that stops early
        cancels the work not yet started.
        """

    def imap(
        self,
        fn: Callable[[T], R],
        units: Iterable[T],
        *,
        progress: Callable[[Progress], None] | None = None,
    ) -> Iterator[Outcome[R]]:
        """An :class:`Outcome` per unit, in completion order.

        Args:
            fn: Picklable function of one unit; it may raise.
            units: Picklable units, consumed lazily.
            progress: Called after each unit, in this process.
        """
        total = len(units) if isinstance(units, Sized) else None
        failed = 0
        for done, outcome in enumerate(self.map_guarded(Guarded(fn), enumerate(units)), start=1):
            failed += not outcome.ok
            if progress is not None:
                progress(Progress(done, total, failed, outcome.index))
            yield outcome

    def map_guarded(self, fn: Guarded[T, R], tasks: Iterable[tuple[int, T]]) -> Iterator[Outcome[R]]:
        """Run guarded tasks; engines that can lose a worker override this to report it."""
        return self.map_unordered(fn, tasks)

    def map(
        self,
        fn: Callable[[T], R],
        units: Iterable[T],
        *,
        progress: Callable[[Progress], None] | None = None,
    ) -> MapReport[R]:
        """Every unit's value, in unit order, and every failure.

        Args:
            fn: Picklable function of one unit; it may raise.
            units: Picklable units.
            progress: Called after each unit, in this process.
        """
        items: Sequence[T] = units if isinstance(units, Sequence) else list(units)
        values: list[R | None] = [None] * len(items)
        failures: list[UnitFailure] = []
        for outcome in self.imap(fn, items, progress=progress):
            if outcome.failure is not None:
                failures.append(outcome.failure)
            else:
                values[outcome.index] = outcome.value
        failures.sort(key=lambda f: f.index)
        return MapReport(tuple(values), tuple(failures))


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class InlineEngine(Engine):
    """Runs everything in the calling process, one unit at a time (tests, debugging, tiny jobs)."""

    name = "inline"

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        for item in items:
            yield fn(item)


class ProcessPoolEngine(Engine):
    """A local process pool.

    Workers are started with ``forkserver``, so they never inherit the
    parent's threads (storage libraries, Ray, torch). At most
    ``window_per_worker * workers`` items are in flight, which bounds the
    memory that finished-but-unconsumed results take.

    Args:
        workers: Number of processes (default: all cores).
        preload: Modules the fork server imports once before forking workers,
            so that each worker starts warm (e.g. ``("datadrive.lake.ingest",)``).
        window_per_worker: Items in flight per worker.
        retain_freed_memory: Each worker keeps the heap memory it frees for
            its next allocations instead of handing it back to the system
            (glibc's ``mallopt``; nothing elsewhere). A worker lives for one
            map and its units allocate and free arrays of megabytes over and
            over: by default glibc maps each of those afresh and the kernel
            zero-fills every page again, which cost a fresh ingest worker
            about a fifth of its time on the samples. The price: a worker's
            resident memory stays near its peak until it exits.
    """

    name = "process"

    def __init__(
        self,
        workers: int | None = None,
        preload: tuple[str, ...] = (),
        *,
        window_per_worker: int = 2,
        retain_freed_memory: bool = True,
    ) -> None:
        self.workers = workers or default_workers()
        self.preload = preload
        self.window_per_worker = window_per_worker
        self.retain_freed_memory = retain_freed_memory
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if window_per_worker < 1:
            raise ValueError("window_per_worker must be >= 1")

    def __repr__(self) -> str:
        return f"ProcessPoolEngine(workers={self.workers})"

    def _pool(self, fn: Callable[..., Any] | None = None, workers: int | None = None) -> ProcessPoolExecutor:
        """A pool whose workers receive ``fn`` once, when they start (not with every unit)."""
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["datadrive.compute.engines", *self.preload])
        return ProcessPoolExecutor(
            max_workers=workers or self.workers,
            mp_context=ctx,
            initializer=_install,
            initargs=(fn, self.retain_freed_memory),
        )

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        window = self.window_per_worker * self.workers
        it = iter(items)
        pool = self._pool(fn)
        try:
            pending: set[Future[R]] = set()
            for item in it:
                pending.add(pool.submit(_run_installed, item))
                if len(pending) >= window:
                    break
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
                for item in it:
                    pending.add(pool.submit(_run_installed, item))
                    if len(pending) >= window:
                        break
        finally:
            # a consumer that stops early (a storage failure) must not wait for queued work
            pool.shutdown(wait=True, cancel_futures=True)

    def map_guarded(self, fn: Guarded[T, R], tasks: Iterable[tuple[int, T]]) -> Iterator[Outcome[R]]:
        """As :meth:`map_unordered`, but a dead worker fails only the unit that killed it.

        When the pool breaks, the units in flight are retried one at a time in
        a fresh pool: the one that breaks it again is reported as failed
        (``WorkerDiedError``), the others complete normally.
        """
        window = self.window_per_worker * self.workers
        it = iter(tasks)
        pool = self._pool(fn)
        suspects: list[tuple[int, T]] = []
        try:
            pending: dict[Future[Outcome[R]], tuple[int, T]] = {}

            def fill() -> None:
                for task in it:
                    pending[pool.submit(_run_installed, task)] = task
                    if len(pending) >= window:
                        break

            fill()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                broken = False
                for fut in done:
                    task = pending.pop(fut)
                    try:
                        yield fut.result()
                    except BrokenProcessPool:
                        suspects.append(task)
                        broken = True
                if broken:
                    suspects.extend(pending.values())
                    pending.clear()
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = self._pool(fn)
                    yield from self._isolate(fn, suspects)
                    suspects = []
                fill()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _isolate(self, fn: Guarded[T, R], tasks: list[tuple[int, T]]) -> Iterator[Outcome[R]]:
        """Run each task alone in a one-worker pool; a task that kills it is a failure."""
        for task in sorted(tasks, key=lambda t: t[0]):
            with self._pool(fn, workers=1) as single:
                try:
                    yield single.submit(_run_installed, task).result()
                except BrokenProcessPool:
                    died = WorkerDiedError("the worker process died while running this unit")
                    yield Outcome(task[0], None, UnitFailure.from_exception(task[0], task[1], died))


_installed: Callable[[Any], Any] | None = None
"""The function a pool worker runs (set once per worker by :func:`_install`)."""


_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 32 * 2**20
"""glibc's largest mmap threshold on 64-bit: blocks under it come from the heap, and are reused once freed."""
_TRIM_THRESHOLD_BYTES = 2**30


def _install(fn: Callable[[Any], Any] | None, retain_freed_memory: bool = False) -> None:
    """Pool initializer: keep ``fn``, so units are sent without it (it may carry large shared state).

    Also freezes the objects the worker inherited from the fork server (the
    preloaded modules): the worker's garbage collections never walk them, so
    they do not write to, and copy, every inherited page the first time they run.
    """
    global _installed
    _installed = fn
    gc.freeze()
    if retain_freed_memory:
        _retain_freed_heap()


def _retain_freed_heap() -> bool:
    """Make this process keep freed heap memory for reuse (glibc); whether it could.

    Sets glibc's mmap threshold to its maximum (blocks up to 32 MiB come from
    the heap instead of a fresh mapping each) and its trim threshold to 1 GiB
    (freed memory at the top of the heap is not handed back). Anywhere else
    (no glibc ``mallopt``) it does nothing and returns False. Process-wide:
    meant for pool workers, never called in the caller's process.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES) == 1
    return bool(ok and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES) == 1)


def _run_installed(item: Any) -> Any:
    assert _installed is not None, "the pool worker was started without its function"
    return _installed(item)
