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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datadrive.core.scenario import Scenario
from datadrive.errors import ConfigError, SimulationInputError
from datadrive.sim.backend import backend_for
from datadrive.sim.metrics import METRIC_VERSION, batch_metrics
from datadrive.sim.policies import Policy, make_policy
from datadrive.sim.prepare import PrepareConfig, SimScenario, prepare
from datadrive.sim.simulator import SimConfig, Simulator

if TYPE_CHECKING:
    from datadrive.compute import Engine, Progress
    from datadrive.lake import Lake

__all__ = [
    "SimRequest",
    "SimRunReport",
    "code_version",
    "event_types",
    "mined_event_types",
    "rows_to_parquet",
    "simulate",
    "simulate_lake",
    "summarize_rows",
]


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
        float_dtype: ``"float64"`` or ``"float32"`` (about 1.5x faster on numpy); default float64 on
            numpy, float32 on torch.
        seed: Seed of the simulator's random draws.
        max_steps: Cut scenarios to this many 0.1 s steps.
        render_dir: Where to write GIFs of the scenarios in ``render_ids``.
        render_ids: Scenarios to render.
        model_bytes: A trained model's file (``policy="model:run:NAME"``: read from the lake by
            :func:`simulate_lake`; workers get the bytes, not a path).
    """

    policy: str = "log"
    reactive: bool = False
    batch_size: int = 16
    device: str | None = None
    float_dtype: str | None = None
    seed: int = 0
    max_steps: int | None = None
    render_dir: str | None = None
    render_ids: tuple[str, ...] = ()
    model_bytes: bytes | None = field(default=None, repr=False, compare=False)

    def sim_config(self) -> SimConfig:
        return SimConfig(reactive=self.reactive, seed=self.seed)

    def prepare_config(self) -> PrepareConfig:
        return PrepareConfig(max_steps=self.max_steps)


def event_types(scenario: Scenario) -> list[str]:
    """The event types injected into a synthetic scenario (its generator's record; none for a log).

    A lake run replaces them by the mining layer's where the region's mining index has tagged the
    scenario (:func:`mined_event_types`).
    """
    events = scenario.metadata.extras.get("events") if scenario.metadata.extras else None
    if not isinstance(events, list):
        return []
    return sorted({str(e.get("type")) for e in events if isinstance(e, dict) and e.get("type")})


_POLICIES: dict[tuple[str, str | None, str], Policy] = {}


def _policy(request: SimRequest) -> Policy:
    """One policy per process, name and model: a model's weights load once per worker, not per scenario."""
    digest = hashlib.sha256(request.model_bytes).hexdigest() if request.model_bytes is not None else None
    key = (request.policy, digest, request.device or "cpu")
    if key not in _POLICIES:
        if len(_POLICIES) >= 4:  # a long-lived worker serving many runs keeps a few, not all
            _POLICIES.pop(next(iter(_POLICIES)))
        _POLICIES[key] = make_policy(request.policy, model_bytes=request.model_bytes, device=request.device)
    return _POLICIES[key]


def simulate(
    scenarios: Iterable[Scenario],
    request: SimRequest,
    *,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """One score row per scenario, streamed through batches of ``request.batch_size``.

    Rows have ``status`` ``ok`` (every metric) or ``skipped`` (``reason``).
    """
    policy = _policy(request)
    sim = Simulator(request.sim_config(), backend_for(request.device, float_dtype=request.float_dtype))
    pcfg = request.prepare_config()
    pending: list[SimScenario] = []

    def flush() -> Iterator[dict[str, Any]]:
        batch = sim.batch(pending)
        ro = sim.run(batch, policy)
        scores = batch_metrics(pending, ro)
        for i, s in enumerate(pending):
            row = {"status": "ok", "reason": None, **scores[i], "notes": list(s.notes)}
            row["event_types"] = event_types(s.scenario)
            row["tenant"] = s.scenario.metadata.tenant
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
            row: dict[str, Any] = {
                "scenario_id": scenario.scenario_id,
                "source": scenario.source,
                "tenant": scenario.metadata.tenant,
                "status": "skipped",
                "event_types": event_types(scenario),
            }
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
    lake: Lake,
    region: str,
    *,
    query: str | None,
    dataset: str | None,
    version: int | None,
    split: str | None = None,
    event_types: Sequence[str] = (),
    mine: str | None = None,
) -> tuple[int, list[str]]:
    """The lake version and the scenario ids a run covers (sorted).

    Args:
        query: A SQL boolean expression over the ``scenarios`` table (``source = 'av2_motion_forecasting'``).
        dataset: A curated dataset, ``NAME[@vN]`` (:func:`datadrive.curate.load_dataset`; default its
            latest version): its scenarios at the lake version it was built from.
        version: The lake version (default: the latest, or the dataset's).
        split: Only this split of the dataset (``test``, ...).
        event_types: Only scenarios in which the mining layer's current taggers found one of these
            event types (``cut_in``, ``hard_braking``, ...; the region must be indexed:
            ``datadrive index``).
        mine: Only scenarios where this mining expression selects a track (``"car and stopped"``;
            :func:`datadrive.mining.mine_snapshot`).

    Raises:
        ConfigError: ``split`` without a dataset, a ``version`` other than the dataset's, an unknown
            event type, or event types asked of a region mining has not indexed.
        DatasetError: no such dataset, version or split.
        MiningError: a mining expression that does not parse or bind.
    """
    version, ids = _base_ids(lake, region, query=query, dataset=dataset, version=version, split=split)
    if (event_types or mine) and ids:
        snap = lake.snapshot(region, version)
        if event_types:
            ids = _with_event_types(snap, ids, event_types)
        if mine and ids:
            from datadrive.mining import mine_snapshot

            run = mine_snapshot(snap, mine, ids=ids, allow_full_scan=True)
            ids = sorted({h.scenario_id for h in run.result.hits})
    return version, ids


def _with_event_types(snapshot: Any, ids: list[str], wanted: Sequence[str]) -> list[str]:
    """The ``ids`` whose current mining events include one of ``wanted``."""
    import pyarrow.dataset as pds

    from datadrive.mining import EVENT_TYPES
    from datadrive.mining.events import tagger_version

    unknown = sorted(set(wanted) - set(EVENT_TYPES))
    if unknown:
        raise ConfigError(
            f"--event-type {', '.join(unknown)}: not a mining event type ({', '.join(EVENT_TYPES)})"
        )
    current = pds.field("tagger_version") == tagger_version()
    if not snapshot.table("mining_index", columns=["scenario_id"], filter=current).num_rows:
        raise ConfigError(
            "--event-type: the region's scenarios have not been tagged by mining at this lake version "
            "(run `datadrive index` first)"
        )
    flt = current & pds.field("event_type").isin(list(wanted)) & pds.field("scenario_id").isin(ids)
    hit = snapshot.table("events", columns=["scenario_id"], filter=flt).column("scenario_id").to_pylist()
    return sorted(set(map(str, hit)))


def _base_ids(
    lake: Lake, region: str, *, query: str | None, dataset: str | None, version: int | None, split: str | None
) -> tuple[int, list[str]]:
    """:func:`select_ids` before the mining filters."""
    if split is not None and dataset is None:
        raise ConfigError(f"--split {split}: a split belongs to a dataset (give --dataset)")
    if dataset is not None:
        from datadrive.curate import load_dataset

        manifest = load_dataset(lake, dataset, region)
        if version is not None and version != manifest.lake_version:
            raise ConfigError(
                f"--dataset {dataset} was built from lake version {manifest.lake_version}; "
                f"--as-of {version} would simulate other scenario contents (leave --as-of out)"
            )
        return manifest.lake_version, sorted({i for _, _, i in manifest.keys(split)})
    snap = lake.snapshot(region, version)
    if ";" in (query or ""):
        raise ConfigError("--query is one SQL boolean expression over scenarios (no ';')")
    cond = f"({query}) AND " if query else ""
    sql = f"SELECT scenario_id FROM scenarios WHERE {cond}telemetry_id IS NULL"
    result = snap.sql(sql)
    ids = sorted({str(x) for x in result.table.column("scenario_id").to_pylist()})
    return snap.version, ids


def mined_event_types(snapshot: Any, ids: Sequence[str]) -> dict[tuple[str, str], list[str]]:
    """Event types the mining layer's current taggers found, per ``(source, scenario id)`` of ``ids``.

    Only scenarios the region's mining index records as tagged with the current tagger version
    (``datadrive mine index``) are keys; a tagged scenario with no event maps to ``[]``. Read from the
    ``mining_index`` and ``events`` tables of ``snapshot`` (the run's pinned lake version).
    """
    import pyarrow.dataset as pds

    from datadrive.mining.events import tagger_version

    version = tagger_version()
    wanted = pds.field("scenario_id").isin(list(ids)) & (pds.field("tagger_version") == version)
    index = snapshot.table("mining_index", columns=["source", "scenario_id"], filter=wanted)
    out: dict[tuple[str, str], set[str]] = {
        (str(s), str(i)): set()
        for s, i in zip(
            index.column("source").to_pylist(), index.column("scenario_id").to_pylist(), strict=True
        )
    }
    if out:
        ev = snapshot.table("events", columns=["source", "scenario_id", "event_type"], filter=wanted)
        cols = (ev.column(c).to_pylist() for c in ("source", "scenario_id", "event_type"))
        for s, i, e in zip(*cols, strict=True):
            if (s, i) in out:
                out[(s, i)].add(str(e))
    return {k: sorted(v) for k, v in out.items()}


def simulate_lake(
    lake: Lake,
    region: str,
    request: SimRequest,
    *,
    query: str | None = None,
    dataset: str | None = None,
    version: int | None = None,
    split: str | None = None,
    event_types: Sequence[str] = (),
    mine: str | None = None,
    engine: Engine | None = None,
    chunk_size: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    store: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    keep_rows: int | None = None,
) -> SimRunReport:
    """Simulate the scenarios a query selects from a region's snapshot, and store the scores there.

    Rows stream: each chunk's rows go to ``on_row`` and to a Parquet file as the chunk finishes (in
    chunk order), and the summary is accumulated, so memory does not grow with the number of
    scenarios. The report keeps the first ``keep_rows`` rows (all when ``None``). The scenarios are
    those ``query``, or ``dataset`` (and ``split``), and the mining filters select (see
    :func:`select_ids`).
    """
    import tempfile

    import pyarrow.parquet as pq

    from datadrive.compute import InlineEngine

    if request.policy.startswith("model:run:") and request.model_bytes is None:
        name = request.policy[len("model:run:") :]
        data, _ = lake.read_derived(region, f"derived/model/{name}/model.pt")
        request = replace(request, model_bytes=data)
    lake_version, ids = select_ids(
        lake, region, query=query, dataset=dataset, version=version, split=split, event_types=event_types,
        mine=mine,
    )  # fmt: skip
    size = chunk_size or max(1, request.batch_size)
    id_chunks = [tuple(ids[k : k + size]) for k in range(0, len(ids), size)]
    snap = lake.snapshot(region, lake_version)
    mined = mined_event_types(snap, ids) if ids else {}

    def units() -> Iterator[_Chunk]:
        # read lazily: the engine keeps only a bounded window of chunks in flight
        for chunk_ids in id_chunks:
            by_id = {s.scenario_id: s for s in snap.scenarios(ids=chunk_ids)}
            yield _Chunk(tuple(_portable(by_id[i]) for i in chunk_ids if i in by_id), request)

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
    eng = engine or InlineEngine()
    total = len(id_chunks)
    done = failed = 0
    waiting: dict[int, list[dict[str, Any]]] = {}  # chunks finished out of order, until their turn
    next_chunk = 0
    kept: list[dict[str, Any]] = []
    acc = _Summary()
    with tempfile.TemporaryDirectory(prefix="datadrive-sim-") as tmp:
        out = Path(tmp) / "scores.parquet"
        writer: pq.ParquetWriter | None = None
        for outcome in eng.imap(_run_chunk, units()):
            done += 1
            if outcome.failure is not None:
                failed += 1
                f = outcome.failure
                waiting[outcome.index] = [
                    {"scenario_id": i, "status": "failed", "reason": f"{f.error_type}: {f.message}"}
                    for i in id_chunks[outcome.index]
                ]
            else:
                waiting[outcome.index] = list(outcome.value or [])
            while next_chunk in waiting:
                rows = waiting.pop(next_chunk)
                next_chunk += 1
                for r in rows:
                    r.update(meta)
                    # the breakdown by event type: mining's tags where the region's index has them
                    r["injected_event_types"] = r.get("event_types") or []
                    found = mined.get((str(r.get("source")), str(r.get("scenario_id"))))
                    r["event_types_from"] = "mining" if found is not None else "injected"
                    if found is not None:
                        r["event_types"] = found
                    acc.add(r)
                    if on_row is not None:
                        on_row(r)
                    if keep_rows is None or len(kept) < keep_rows:
                        kept.append(r)
                if store and rows:
                    table = _rows_table(rows)
                    if writer is None:
                        writer = pq.ParquetWriter(out, table.schema)
                    writer.write_table(table)
                del rows
            if progress is not None:
                from datadrive.compute import Progress as _P

                progress(_P(done, total, failed, outcome.index))
        if writer is not None:
            writer.close()
        summary = {**meta, **acc.result(), "request": {**asdict(request), "model_bytes": None}}
        artefact = None
        if store and out.exists():  # the lake's sim_scores table: SQL, time travel, erasure with scenarios
            summary["table"] = "sim_scores"
            summary["table_versions"] = _append_scores(lake, region, out, snap)
        if store:
            data = out.read_bytes() if out.exists() else rows_to_parquet([])
            artefact = lake.put_derived(
                region, "metrics", f"sim/{run_id}/scores.parquet", data, derived_from=snap
            )
            lake.put_derived(
                region, "metrics", f"sim/{run_id}/summary.json", json.dumps(summary, indent=2).encode(),
                derived_from=snap,
            )  # fmt: skip
    return SimRunReport(run_id, region, lake_version, kept, artefact, summary)


_TABLE_ROWS = 100_000
"""Score rows per append to ``sim_scores`` (a lake version each): bounded memory on long runs."""


def _append_scores(lake: Lake, region: str, path: Path, snap: Any) -> list[int]:
    """Append a run's score rows (the Parquet file it streamed) to the lake's ``sim_scores`` table.

    Rows of chunks that failed as a whole carry no source or tenant; they stay in the run's Parquet
    artefact only. Returns the lake versions written.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    versions = []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=_TABLE_ROWS):
        t = pa.Table.from_batches([batch])
        t = t.filter(pc.and_(pc.is_valid(t.column("tenant")), pc.is_valid(t.column("source"))))
        if t.num_rows:
            versions.append(int(lake.append_derived(region, "sim_scores", t, derived_from=snap)))
    return versions


_MEAN_KEYS = (
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


class _Summary:
    """Means and counts of score rows, accumulated one row at a time."""

    def __init__(self) -> None:
        self.n = self.ok = self.skipped = self.failed = 0
        self.sums = dict.fromkeys(_MEAN_KEYS, 0.0)
        self.by_source: dict[str, list[float]] = {}
        self.by_event: dict[str, list[float]] = {}
        self.event_types_from: dict[str, int] = {}

    def add(self, r: dict[str, Any]) -> None:
        self.n += 1
        status = r.get("status")
        self.skipped += status == "skipped"
        self.failed += status == "failed"
        if "event_types_from" in r:
            src_ = str(r["event_types_from"])
            self.event_types_from[src_] = self.event_types_from.get(src_, 0) + 1
        if status != "ok":
            return
        self.ok += 1
        for k in _MEAN_KEYS:
            self.sums[k] += float(r[k])
        cls = float(r["nuplan_cls"])
        src = self.by_source.setdefault(str(r["source"]), [0.0, 0.0])
        src[0] += cls
        src[1] += 1
        for name in r.get("event_types") or ["none"]:
            ev = self.by_event.setdefault(str(name), [0.0, 0.0, 0.0])
            ev[0] += cls
            ev[1] += float(r["navsim_pdms"])
            ev[2] += 1

    def result(self) -> dict[str, Any]:
        ok = self.ok
        return {
            "scenarios": self.n,
            "ok": ok,
            "skipped": self.skipped,
            "failed": self.failed,
            "means": {k: (v / ok if ok else None) for k, v in self.sums.items()},
            "nuplan_cls_by_source": {k: v[0] / v[1] for k, v in sorted(self.by_source.items())},
            "event_types_from": dict(sorted(self.event_types_from.items())),
            "by_event_type": {
                k: {"scenarios": int(v[2]), "nuplan_cls": v[0] / v[2], "navsim_pdms": v[1] / v[2]}
                for k, v in sorted(self.by_event.items())
            },
        }


def summarize_rows(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means of the scores over the scenarios that ran, the counts, and the breakdowns."""
    acc = _Summary()
    for r in rows:
        acc.add(r)
    return acc.result()


def _score_fields() -> tuple[tuple[str, Any], ...]:
    """The score rows' columns: the lake's ``sim_scores`` table (keys first, lake-filled columns aside)."""
    from datadrive.lake.schema import DERIVED_COLUMNS, SIM_SCORES

    filled = {n for n, _ in DERIVED_COLUMNS[3:]}
    return tuple((f.name, f.type) for f in SIM_SCORES.schema if f.name not in filled)


def _rows_table(rows: Sequence[dict[str, Any]]) -> Any:
    """Score rows as an Arrow table of the fixed score schema (nested values as JSON text)."""
    import pyarrow as pa

    cols = {}
    for name, type_ in _score_fields():
        values = [r.get(name) for r in rows]
        if type_ == pa.string():
            values = [v if v is None or isinstance(v, str) else json.dumps(v) for v in values]
        cols[name] = pa.array(values, type=type_)
    return pa.table(cols)


def rows_to_parquet(rows: Sequence[dict[str, Any]]) -> bytes:
    """Score rows as Parquet bytes (the fixed score schema; nested values as JSON text)."""
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(_rows_table(rows), buf)
    return buf.getvalue()
