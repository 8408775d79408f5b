"""The Ray engine: the map step of any layer on a Ray cluster.

Same API as :class:`~datadrive.compute.engines.ProcessPoolEngine`
(:meth:`~datadrive.compute.engines.Engine.map`, ``imap`` and
``map_unordered``), so a pipeline does not change when it moves from a laptop
to a cluster; what must happen once (the lake's commits) stays on the driver.

>>> engine = RayEngine("10.0.0.5:6379")                   # doctest: +SKIP
>>> report = engine.map(read_unit, units)                  # doctest: +SKIP

Every node must be able to import ``datadrive`` and read the input paths
(a shared file system, or an object store). Ray is the ``[ray]`` extra and is
imported only when an engine runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from datadrive.compute.engines import Engine, Guarded, Outcome, UnitFailure, WorkerDiedError

__all__ = ["RayEngine"]

T = TypeVar("T")
R = TypeVar("R")


class RayEngine(Engine):
    """Runs ``fn`` over items as Ray tasks on an existing cluster.

    Args:
        address: The cluster's GCS address (``host:port``, as printed by
            ``ray start --head``), or ``"auto"`` for the cluster this machine
            belongs to. ``None`` starts a private local Ray instance (tests,
            a single machine without a cluster).
        num_cpus: CPUs each task reserves.
        max_in_flight: Tasks submitted but not yet consumed; the default is
            twice the cluster's CPUs. Bounds the memory that finished,
            unconsumed results take in the object store.
        runtime_env: Passed to ``ray.init`` (e.g. ``{"py_modules": [...]}``
            for nodes without datadrive installed).

    Raises:
        ImportError: (at the first map) if Ray is not installed.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None,
        *,
        num_cpus: float = 1.0,
        max_in_flight: int | None = None,
        runtime_env: Mapping[str, Any] | None = None,
    ) -> None:
        if num_cpus <= 0:
            raise ValueError("num_cpus must be positive")
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        self.address = address
        self.num_cpus = num_cpus
        self.max_in_flight = max_in_flight
        self.runtime_env = dict(runtime_env) if runtime_env else None
        self._connected_here = False

    def __repr__(self) -> str:
        return f"RayEngine({self.address!r})"

    def connect(self) -> None:
        """Connect this process to the cluster (done by the first map; idempotent)."""
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError("the Ray engine needs Ray: pip install 'datadrive[ray]'") from exc
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.runtime_env:
            kwargs["runtime_env"] = self.runtime_env
        ray.init(address=self.address, **kwargs)
        self._connected_here = True

    def close(self) -> None:
        """Disconnect, if this engine connected (a process-wide Ray session it found stays)."""
        if self._connected_here:
            import ray

            ray.shutdown()
            self._connected_here = False

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``fn(item)`` for every item as Ray tasks, yielded as they finish.

        Connects on first use and stays connected (the pipeline maps twice:
        hashes, then reads) until :meth:`close`. A consumer that stops early
        cancels the tasks not yet consumed.
        """
        import ray

        self.connect()
        pending: list[Any] = []
        try:
            resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
            window = self.max_in_flight or max(2, 2 * int(resources.get("CPU", 1)))
            task = ray.remote(num_cpus=self.num_cpus)(fn)
            it = iter(items)
            exhausted = False
            while True:  # ends when every submitted task has been consumed
                while not exhausted and len(pending) < window:
                    try:
                        pending.append(task.remote(next(it)))
                    except StopIteration:
                        exhausted = True
                if not pending:
                    break
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    yield ray.get(ref)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def map_guarded(self, fn: Guarded[T, R], tasks: Iterable[tuple[int, T]]) -> Iterator[Outcome[R]]:
        """As :meth:`map_unordered`; a worker that dies fails only its own unit (``WorkerDiedError``)."""
        import ray
        from ray.exceptions import RayError

        self.connect()
        pending: dict[Any, tuple[int, T]] = {}
        try:
            resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
            window = self.max_in_flight or max(2, 2 * int(resources.get("CPU", 1)))
            remote: Any = ray.remote(num_cpus=self.num_cpus, max_retries=0)(_call)
            fn_ref = ray.put(fn)  # shipped once, not with every task
            it = iter(tasks)
            exhausted = False
            while True:
                while not exhausted and len(pending) < window:
                    try:
                        task = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    pending[remote.remote(fn_ref, task)] = task
                if not pending:
                    break
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    index, unit = pending.pop(ref)
                    try:
                        yield ray.get(ref)
                    except RayError as exc:  # the worker died (the function's own errors are guarded)
                        died = WorkerDiedError(
                            f"the Ray worker died while running this unit ({type(exc).__name__})"
                        )
                        yield Outcome(index, None, UnitFailure.from_exception(index, unit, died))
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)


def _call(fn: Callable[[T], R], task: T) -> R:
    """The Ray task body: ``fn(task)`` (Ray tasks must be plain functions)."""
    return fn(task)
