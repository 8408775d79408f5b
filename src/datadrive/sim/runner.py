"""Running simulations over many scenarios: streamed through fixed-size batches, on any engine.

:func:`simulate` takes any iterable of scenarios and yields one score row per
scenario as batches finish; it holds at most ``batch_size`` scenarios (and
their rollout) at a time, so its memory does not grow with the number of
scenarios. A scenario the simulator cannot run becomes a row with
``status = "skipped"`` and the reason; the others carry on.

:func:`simulate_lake` runs scenarios taken from a lake snapshot (all of
them, a SQL ``WHERE`` expression over the ``scenarios`` table, or a curated
dataset) on a :class:`~datadrive.compute.Engine`: each unit is a chunk of
scenario ids, read by the worker itself at the pinned lake version, so only
ids and score rows cross processes. The policy is built once per worker and
chunk (a model's weights are loaded there, not per scenario). Results are
stored in the region as a derived ``metrics`` artefact (Parquet, with the
lake version, the policy, the code and metric versions on every row).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datadrive.core.scenario import Scenario
from datadrive.errors import ConfigError, SimulationInputError
from datadrive.sim.backend import backend_for
from datadrive.sim.metrics import METRIC_VERSION, scenario_metrics
from datadrive.sim.policies import Policy, make_policy
from datadrive.sim.prepare import PrepareConfig, SimScenario, prepare
from datadrive.sim.simulator import SimConfig, Simulator

if TYPE_CHECKING:
    from datadrive.compute import Engine, Progress
    from datadrive.lake import Lake

__all__ = ["SimRequest", "SimRunReport", "code_version", "simulate", "simulate_lake", "summarize_rows"]


def code_version() -> str:
    """datadrive's version (the package's), recorded on every score row."""
    from datadrive import __version__

    return f"datadrive {__version__}"


@dataclass(frozen=True)
class SimRequest:
    """One simulation run.

    Attributes:
        policy: ``log``, ``cv``, ``idm`` or ``model:MODULE:ATTR``.
        reactive: IDM/MOBIL agents instead of log replay.
        batch_size: Scenarios stepped together.
        device: ``None`` for numpy; ``"cpu"``/``"cuda"`` for torch.
        seed: Seed of the simulator's random draws.
        max_steps: Cut scenarios to this many 0.1 s steps.
        render_dir: Where to write GIFs of the scenarios in ``render_ids``.
        render_ids: Scenarios to render.
    """

    policy: str = "log"
    reactive: bool = False
    batch_size: int = 16
    device: str | None = None
    seed: int = 0
    max_steps: int | None = None
    render_dir: str | None = None
    render_ids: tuple[str, ...] = ()

    def sim_config(self) -> SimConfig:
        return SimConfig(reactive=self.reactive, seed=self.seed)

    def prepare_config(self) -> PrepareConfig:
        return PrepareConfig(max_steps=self.max_steps)


@cache
def _policy(spec: str) -> Policy:
    """One policy per process and name: a model's weights load once per worker, not per scenario."""
    return make_policy(spec)


def simulate(
    scenarios: Iterable[Scenario],
    request: SimRequest,
    *,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """One score row per scenario, streamed through batches of ``request.batch_size``.

    Rows have ``status`` ``ok`` (every metric) or ``skipped`` (``reason``).
    """
    policy = _policy(request.policy)
    sim = Simulator(request.sim_config(), backend_for(request.device))
    pcfg = request.prepare_config()
    pending: list[SimScenario] = []

    def flush() -> Iterator[dict[str, Any]]:
        batch = sim.batch(pending)
        ro = sim.run(batch, policy)
        for i, s in enumerate(pending):
            row = {"status": "ok", "reason": None, **scenario_metrics(s, ro, i), "notes": list(s.notes)}
            if request.render_dir and s.scenario_id in request.render_ids:
                from datadrive.sim.render import render_gif

                A, T = s.num_agents, s.num_steps
                sl = {
                    "x": ro.x_m[i, :A, :T],
                    "y": ro.y_m[i, :A, :T],
                    "h": ro.heading_rad[i, :A, :T],
                    "valid": ro.valid[i, :A, :T],
                }
                safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in s.scenario_id)
                out = Path(request.render_dir) / f"{safe}.gif"
                render_gif(
                    s, sl, out, title=f"{request.policy}: {s.scenario_id} (CLS {row['nuplan_cls']:.2f})"
                )
                row["render"] = str(out)
            yield row
        pending.clear()

    for scenario in scenarios:
        try:
            pending.append(prepare(scenario, pcfg))
        except SimulationInputError as exc:
            row = {"scenario_id": scenario.scenario_id, "source": scenario.source, "status": "skipped"}
            row.update({"reason": exc.reason, "metric_version": METRIC_VERSION})
            yield row
            continue
        if len(pending) >= request.batch_size:
            yield from flush()
    if pending:
        yield from flush()


# --------------------------------------------------------------------------- the lake


@dataclass(frozen=True)
class _Chunk:
    """A unit of work for a worker: a few scenarios (read by the parent at the pinned version)."""

    scenarios: tuple[Scenario, ...]
    request: SimRequest


def _portable(s: Scenario) -> Scenario:
    """The scenario with plain-dict extras (a ``mappingproxy`` cannot cross a process boundary)."""
    return replace(s, metadata=replace(s.metadata, extras=dict(s.metadata.extras)))


def _run_chunk(chunk: _Chunk) -> list[dict[str, Any]]:
    return list(simulate(chunk.scenarios, chunk.request))


@dataclass
class SimRunReport:
    """What a lake simulation did.

    Attributes:
        run_id: Name of the run (the artefact's folder).
        region: Where it ran and stored its results.
        lake_version: The snapshot it read.
        rows: One score row per scenario (``status`` ok / skipped / failed).
        artefact: ``derived/metrics/sim/<run_id>/scores.parquet``.
        summary: Means and counts (also stored as ``summary.json``).
    """

    run_id: str
    region: str
    lake_version: int
    rows: list[dict[str, Any]]
    artefact: str | None
    summary: dict[str, Any] = field(default_factory=dict)


def select_ids(
    lake: Lake, region: str, *, query: str | None, dataset: str | None, version: int | None
) -> tuple[int, list[str]]:
    """The lake version and the scenario ids a run covers (sorted).

    Args:
        query: A SQL boolean expression over the ``scenarios`` table (``source = 'av2_motion_forecasting'``).
        dataset: A curated dataset's name (needs :mod:`datadrive.curate`).
    """
    snap = lake.snapshot(region, version)
    if dataset is not None:
        try:
            import importlib

            curate = importlib.import_module("datadrive.curate")
        except ImportError:
            raise ConfigError(
                f"--dataset {dataset}: curated datasets need datadrive.curate, which this build does not have"
            ) from None
        ids = list(curate.dataset_scenario_ids(lake, region, dataset))  # pragma: no cover - once curate lands
        return snap.version, sorted(ids)
    if ";" in (query or ""):
        raise ConfigError("--query is one SQL boolean expression over scenarios (no ';')")
    cond = f"({query}) AND " if query else ""
    sql = f"SELECT scenario_id FROM scenarios WHERE {cond}telemetry_id IS NULL"
    result = snap.sql(sql)
    ids = sorted({str(x) for x in result.table.column("scenario_id").to_pylist()})
    return snap.version, ids


def simulate_lake(
    lake: Lake,
    region: str,
    request: SimRequest,
    *,
    query: str | None = None,
    dataset: str | None = None,
    version: int | None = None,
    engine: Engine | None = None,
    chunk_size: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    store: bool = True,
) -> SimRunReport:
    """Simulate the scenarios a query selects from a region's snapshot, and store the scores there."""
    from datadrive.compute import InlineEngine

    lake_version, ids = select_ids(lake, region, query=query, dataset=dataset, version=version)
    size = chunk_size or max(1, request.batch_size)
    id_chunks = [tuple(ids[k : k + size]) for k in range(0, len(ids), size)]
    snap = lake.snapshot(region, lake_version)

    def units() -> Iterator[_Chunk]:
        # read lazily: the engine keeps only a bounded window of chunks in flight
        for chunk_ids in id_chunks:
            by_id = {s.scenario_id: s for s in snap.scenarios(ids=chunk_ids)}
            yield _Chunk(tuple(_portable(by_id[i]) for i in chunk_ids if i in by_id), request)

    eng = engine or InlineEngine()
    results: dict[int, list[dict[str, Any]]] = {}
    total = len(id_chunks)
    done = failed = 0
    for outcome in eng.imap(_run_chunk, units()):
        done += 1
        if outcome.failure is not None:
            failed += 1
            f = outcome.failure
            results[outcome.index] = [
                {"scenario_id": i, "status": "failed", "reason": f"{f.error_type}: {f.message}"}
                for i in id_chunks[outcome.index]
            ]
        else:
            results[outcome.index] = list(outcome.value or [])
        if progress is not None:
            from datadrive.compute import Progress as _P

            progress(_P(done, total, failed, outcome.index))
    rows: list[dict[str, Any]] = [r for k in sorted(results) for r in results[k]]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    digest = hashlib.sha256(json.dumps([request.policy, request.reactive, ids]).encode()).hexdigest()[:8]
    run_id = f"{stamp}-{request.policy.replace(':', '_')}-{digest}"
    meta = {
        "run_id": run_id,
        "lake_version": lake_version,
        "region": region,
        "policy": request.policy,
        "reactive": request.reactive,
        "seed": request.seed,
        "code_version": code_version(),
        "metric_version": METRIC_VERSION,
    }
    for r in rows:
        r.update(meta)
    summary = {**meta, **summarize_rows(rows), "request": asdict(request)}
    artefact = None
    if store:
        artefact = lake.put_derived(
            region, "metrics", f"sim/{run_id}/scores.parquet", rows_to_parquet(rows), derived_from=snap
        )
        lake.put_derived(
            region, "metrics", f"sim/{run_id}/summary.json", json.dumps(summary, indent=2).encode(),
            derived_from=snap,
        )  # fmt: skip
    return SimRunReport(run_id, region, lake_version, rows, artefact, summary)


def summarize_rows(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means of the scores over the scenarios that ran, and the counts."""
    ok = [r for r in rows if r.get("status") == "ok"]
    keys = (
        "nuplan_cls",
        "navsim_pdms",
        "no_at_fault_collisions",
        "drivable_area_compliance",
        "driving_direction_compliance",
        "ego_progress_ratio",
        "ttc_within_bound",
        "speed_limit_compliance",
        "ego_is_comfortable",
    )
    means = {k: (sum(float(r[k]) for r in ok) / len(ok) if ok else None) for k in keys}
    by_source: dict[str, list[float]] = {}
    for r in ok:
        by_source.setdefault(str(r["source"]), []).append(float(r["nuplan_cls"]))
    return {
        "scenarios": len(rows),
        "ok": len(ok),
        "skipped": sum(r.get("status") == "skipped" for r in rows),
        "failed": sum(r.get("status") == "failed" for r in rows),
        "means": means,
        "nuplan_cls_by_source": {k: sum(v) / len(v) for k, v in sorted(by_source.items())},
    }


def rows_to_parquet(rows: Sequence[dict[str, Any]]) -> bytes:
    """Score rows as Parquet bytes (nested values as JSON text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = []
    for r in rows:
        flat.append({k: (json.dumps(v) if isinstance(v, dict | list) else v) for k, v in r.items()})
    keys = sorted({k for r in flat for k in r})
    table = pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in flat])
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()
