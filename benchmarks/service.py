"""The service under load: requests/s and p50/p99 latency of typical reads, against the library directly.

What is measured, on a lake of ``--scenarios`` scenarios (100k by default,
built once as ``benchmarks/lake.py`` builds its big lake, by replicating the
samples' scenarios, into ``--work`` and reused by later runs):

- the service, started as users start it (``datadrive serve``, one uvicorn
  process on 127.0.0.1, metadata in SQLite, rate limit off), answering
  ``--concurrency`` clients that each keep one HTTP/1.1 connection and send
  requests back to back; every endpoint runs for ``--requests`` requests or
  ``--seconds`` seconds, whichever ends first;
- the reference: the same read through the library in this process, one
  caller, on a snapshot taken once (what the service's gateway keeps), so
  the difference is HTTP, authentication, JSON and contention;
- what bounds every audited read: one audit row appended alone (one Delta
  commit on the region's audit table, whose cost grows with its files; every
  run of this benchmark adds one per audit commit; ``--optimize`` runs
  ``datadrive lake optimize`` on the region first, which compacts it);
- where one request's time goes: the service logs each request's stages
  (authentication, the gateway's snapshot check, the library call, JSON
  encoding; ``datadrive.service.ops.stage``), read back from its log for the
  requests of each load, with the server process's CPU time per request;
  the library call is split in-process into its DuckDB query alone (the
  snapshot's SQL session asked without an audit row: a measurement only) and
  the audit row it appends.

The lake is built on the first run (``--scenarios`` copies of the samples'
scenarios, a few minutes at 100k) and kept in ``--work`` (by default
``$TMPDIR/datadrive-service-bench``) for later runs; delete that folder to
build it afresh.

Reads: a scenario looked up by id (a random one of 2,000 sampled ids), a page
of 50 scenarios of one source, a SQL aggregate, the 50 most severe events of
one type, a scenario's events, and ``/me`` (authentication and HTTP alone).
The events are made once: the samples tagged by ``datadrive.mining`` and
their rows copied for every replicated scenario (``tag_lake_once``).

Usage::

    python benchmarks/service.py             # 100k scenarios; rewrites its section of docs/benchmarks.md
    python benchmarks/service.py --quick     # 2,000 scenarios, short runs, nothing written
    python benchmarks/service.py --scenarios 20000 --concurrency 16 --no-write
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from datadrive.compute import ProcessPoolEngine
from datadrive.lake import Lake, Principal, StorageRoot, load_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lake as lake_bench

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- service.py:begin -->", "<!-- service.py:end -->"
REGION, TENANT = lake_bench.REGION, lake_bench.TENANT
LIST_COLUMNS = [
    "scenario_id",
    "source",
    "tenant",
    "ingest_date",
    "start_time_ns",
    "duration_s",
    "num_tracks",
    "num_steps",
    "num_valid_states",
    "num_vehicles",
    "num_pedestrians",
    "num_cyclists",
    "num_map_lanes",
    "map_id",
]
GOAL_P99_MS = 200.0
GOAL_READS = ("scenario by id", "events of")
"""The issue's goal: p99 under 200 ms for scenario lookups and event queries (these reads)."""
COLD_READ = "events of one type"
"""The read whose first page per type builds a kept answer (timed apart, before its load)."""
COLD_SCENARIO_READ = "events of one scenario"
"""The read whose first page builds every event's answer in scenario order (timed apart, before its load)."""
SQL = "SELECT source, count(*) AS scenarios, sum(num_valid_states) AS states FROM scenarios GROUP BY source"


# --------------------------------------------------------------------------- the lake


def build_lake(work: Path, scenarios: int, samples: Path, chunk: int, log: Callable[[str], None]) -> Path:
    """A lake folder (``datadrive.toml``, one region) of >= ``scenarios`` scenarios, built once and kept."""
    folder = work / f"lake-{scenarios}"
    if (folder / "BUILT").exists():
        log(f"reusing {folder}")
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    seed_root = StorageRoot(str(folder / "seed"))
    log("ingesting the samples")
    lake_bench.ingest_once(samples, seed_root, ProcessPoolEngine(2, preload=("datadrive.lake.ingest",)))
    log(f"replicating to {scenarios:,} scenarios")
    t0 = time.perf_counter()
    n = lake_bench.replicate(
        lake_bench._lake(seed_root), StorageRoot(str(folder / "regions" / REGION)), scenarios, chunk, log
    )
    shutil.rmtree(folder / "seed")
    (folder / "keys").mkdir()
    (folder / "keys" / f"{TENANT}.key").write_text(lake_bench.KEY.hex() + "\n")
    (folder / "datadrive.toml").write_text(
        f'[lake]\nname = "service-bench"\n\n[regions.{REGION}]\nroot = "regions/{REGION}"\n\n'
        f'[tenants.{TENANT}]\nkey_file = "keys/{TENANT}.key"\n'
    )
    (folder / "BUILT").write_text(json.dumps({"scenarios": n, "seconds": round(time.perf_counter() - t0, 1)}))
    return folder


def tag_lake_once(folder: Path, samples: Path, copies_per_commit: int, log: Callable[[str], None]) -> int:
    """Give the big lake the events of its scenarios, once: the samples tagged, their rows copied per copy.

    The big lake's scenarios are copies of the samples' (``<id>~rNNNNN``), so
    their events are the samples' events under the copies' ids: the samples
    are ingested into a seed region and tagged there by the library
    (``datadrive.mining.tag_lake``), and the seed's ``events`` and
    ``mining_index`` rows are appended to the big lake once per copy, as
    ``benchmarks/mining.py`` does. The state index is not copied (the index
    rows say so: no feature version), so mining searches would scan; the
    event reads measured here need only the events. Returns the events written.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from datadrive.mining import tag_lake

    done = folder / "TAGGED"
    if done.exists():
        log(f"reusing the events of {folder}")
        return int(json.loads(done.read_text())["events"])
    big = Lake(load_config(folder, env={}), Principal("bench@bmw", TENANT, REGION))
    big_snap = big.snapshot(REGION)
    ids = big_snap.sql(
        "SELECT DISTINCT regexp_extract(scenario_id, '^(.*)~r([0-9]+)$', 1) AS seed, "
        "CAST(regexp_extract(scenario_id, '~r([0-9]+)$', 1) AS INTEGER) AS k FROM scenarios "
        "WHERE telemetry_id IS NULL"
    ).table
    seeds = pa.array(sorted(set(ids.column("seed").to_pylist())), pa.string())
    copies = sorted(set(ids.column("k").to_pylist()))
    seed_root = StorageRoot(str(folder / "seed-mining"))
    shutil.rmtree(folder / "seed-mining", ignore_errors=True)
    log("ingesting the samples into a seed region, to tag them")
    lake_bench.ingest_once(samples, seed_root, ProcessPoolEngine(2, preload=("datadrive.lake.ingest",)))
    seed = lake_bench._lake(seed_root)
    report = tag_lake(seed, REGION, engine=ProcessPoolEngine(2))
    log(f"  tagged {report.tagged} seed scenarios: {report.events} events")
    seed_snap = seed.snapshot(REGION)
    tables = {}
    for name in ("events", "mining_index"):
        t = seed_snap.table(name)
        t = t.drop_columns(
            [c for c in ("batch_id", "derived_at", "derived_from_version") if c in t.column_names]
        )
        t = t.filter(pc.is_in(t.column("scenario_id"), value_set=seeds))
        if name == "mining_index":  # the state index is not copied: its rows must not claim it
            i = t.schema.get_field_index("feature_version")
            t = t.set_column(i, t.schema.field(i), pa.nulls(t.num_rows, t.schema.field(i).type))
            i = t.schema.get_field_index("num_states")
            t = t.set_column(i, t.schema.field(i), pa.array([0] * t.num_rows, t.schema.field(i).type))
        tables[name] = t
    written = 0
    for k0 in range(0, len(copies), copies_per_commit):
        ks = copies[k0 : k0 + copies_per_commit]
        rows = {
            name: pa.concat_tables(
                [
                    t.set_column(
                        t.schema.get_field_index("scenario_id"),
                        "scenario_id",
                        pc.binary_join_element_wise(t.column("scenario_id"), pa.scalar(f"~r{k:05d}"), ""),
                    )
                    for k in ks
                ]
            )
            for name, t in tables.items()
        }
        big.append_derived_tables(REGION, rows, derived_from=big.snapshot(REGION))
        written += rows["events"].num_rows
        log(f"  events: {written:,} ({k0 + len(ks)}/{len(copies)} copies)")
    shutil.rmtree(folder / "seed-mining", ignore_errors=True)
    done.write_text(json.dumps({"events": written, "seed_events": report.events}))
    return written


# --------------------------------------------------------------------------- the server


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    key: str
    log: Path


def start_service(
    lake: Path, data: Path, timeout_s: float = 120.0, kept_answers_mb: int = 512, gc_freeze: bool = True
) -> Served:
    """``datadrive serve`` on a free 127.0.0.1 port, with one admin key; returns when /healthz answers."""
    from datadrive.service.db import Tenant, make_engine, migrate, session_factory
    from datadrive.service.identity import create_key, create_user

    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    url = f"sqlite:///{data / 'service.db'}"
    migrate(url)
    engine = make_engine(url)
    with session_factory(engine)() as db:
        db.add(Tenant(id=TENANT, display_name=TENANT, home_region=REGION))
        user = create_user(db, tenant=TENANT, name="bench", role="admin")
        db.flush()
        _, key = create_key(db, user, name="bench", scopes=("read", "write", "admin"))
        db.commit()
    engine.dispose()
    port = _free_port()
    log = data / "serve.log"
    cli = Path(sys.executable).parent / "datadrive"
    cmd = [
        str(cli),
        "serve",
        "--lake",
        str(lake),
        "--data",
        str(data),
        "--port",
        str(port),
        "--rate-limit",
        "0",
        "--kept-answers-mb",
        str(kept_answers_mb),
        "--gc-freeze" if gc_freeze else "--no-gc-freeze",
    ]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"datadrive serve exited: {log.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return Served(proc, port, key, log)
        except OSError:
            pass
        time.sleep(0.3)
    stop_service(Served(proc, port, key, log))
    raise RuntimeError("the service did not answer /healthz in time")


def stop_service(s: Served) -> None:
    import signal

    if s.proc.poll() is None:
        os.killpg(s.proc.pid, signal.SIGTERM)
        try:
            s.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(s.proc.pid, signal.SIGKILL)
            s.proc.wait(10)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request_lines(log: Path, start: int, end: int) -> list[dict[str, Any]]:
    """The service's ``request`` log lines (answered 200) between byte offsets ``start`` and ``end``."""
    with log.open("rb") as f:
        f.seek(start)
        text = f.read(end - start).decode("utf-8", "replace")
    out = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("event") == "request" and row.get("status") == 200:
            out.append(row)
    return out


STAGES = ("auth", "snapshot", "lake", "encode")
"""The stages the service times (``datadrive.service.ops.stage``); the rest is the framework's."""


def breakdown(lines: list[dict[str, Any]], client_s: list[float], cpu_s: float) -> dict[str, Any]:
    """p50/p99 of each stage of the requests in ``lines``, and what the slowest 1% spent their time on."""
    if not lines:
        return {}
    total = [float(x["ms"]) for x in lines]
    per = {k: [float(x.get("stages", {}).get(k, 0.0)) for x in lines] for k in STAGES}
    per["framework"] = [t - sum(per[k][i] for k in STAGES) for i, t in enumerate(total)]
    slow = sorted(range(len(lines)), key=lambda i: total[i])[-max(1, len(lines) // 100) :]
    return {
        "requests": len(lines),
        "client": {"p50": 1000 * _pct(sorted(client_s), 0.5), "p99": 1000 * _pct(sorted(client_s), 0.99)},
        "server": {"p50": _pct(sorted(total), 0.5), "p99": _pct(sorted(total), 0.99)},
        **{k: {"p50": _pct(sorted(v), 0.5), "p99": _pct(sorted(v), 0.99)} for k, v in per.items()},
        "slowest": {k: sum(per[k][i] for i in slow) / len(slow) for k in (*STAGES, "framework")}
        | {"server": sum(total[i] for i in slow) / len(slow)},
        "cpu_ms_per_request": 1000 * cpu_s / len(lines),
    }


class QueryAlone:
    """A snapshot's SQL asked without its audit row: the library call's DuckDB part, measured alone.

    Uses the snapshot's session directly (private), as a measurement only:
    the service never reads this way. ``None`` from :meth:`of` when the
    library's internals have changed and it cannot be done.
    """

    def __init__(self, snap: Any) -> None:
        self.snap = snap

    @classmethod
    def of(cls, snap: Any) -> QueryAlone | None:
        snap.sql("SELECT 1 AS one")  # the session exists from the first query on
        ok = hasattr(snap, "_session") and hasattr(snap, "_refuse") and hasattr(snap._session, "run")
        return cls(snap) if ok else None

    def sql(self, query: str, *, timeout_s: float | None = None) -> Any:
        from types import SimpleNamespace

        table = self.snap._session.run(
            query, audit=lambda *a, **k: None, refuse=self.snap._refuse, timeout_s=timeout_s
        )
        return SimpleNamespace(table=table, region=self.snap.region, version=self.snap.version)


# --------------------------------------------------------------------------- load


@dataclass
class Run:
    latencies_s: list[float] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=dict)
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_s)
        n = len(lat)
        return {
            "requests": n,
            "errors": dict(self.errors),
            "rps": n / self.wall_s if self.wall_s > 0 else 0.0,
            "p50_ms": 1000 * _pct(lat, 0.50),
            "p99_ms": 1000 * _pct(lat, 0.99),
            "max_ms": 1000 * lat[-1] if lat else float("nan"),
        }


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


def load(
    port: int,
    key: str,
    request: Callable[[random.Random], tuple[str, str, bytes | None]],
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
) -> Run:
    """``concurrency`` threads, one keep-alive connection each, sending requests back to back (bounded)."""
    run = Run()
    lock = threading.Lock()
    issued = [0]
    deadline = time.monotonic() + max_seconds
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            while True:
                with lock:
                    if issued[0] >= max_requests or time.monotonic() > deadline:
                        return
                    issued[0] += 1
                method, path, body = request(rng)
                t0 = time.perf_counter()
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                dt = time.perf_counter() - t0
                with lock:
                    if resp.status == 200:
                        run.latencies_s.append(dt)
                    else:
                        run.errors[resp.status] = run.errors.get(resp.status, 0) + 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.wall_s = time.perf_counter() - t0
    return run


def _fixed(request: tuple[str, str, bytes | None], rng: random.Random) -> tuple[str, str, bytes | None]:
    return request


def direct(op: Callable[[random.Random], object], *, max_requests: int, max_seconds: float) -> Run:
    """The reference: ``op`` called back to back in this process, one caller (bounded)."""
    run = Run()
    rng = random.Random(0)
    deadline = time.monotonic() + max_seconds
    t_start = time.perf_counter()
    while len(run.latencies_s) < max_requests and time.monotonic() < deadline:
        t0 = time.perf_counter()
        op(rng)
        run.latencies_s.append(time.perf_counter() - t0)
    run.wall_s = time.perf_counter() - t_start
    return run


# --------------------------------------------------------------------------- report


def render(r: dict[str, Any]) -> str:
    lines = [
        BEGIN,
        "## Service: typical reads under concurrent load (`benchmarks/service.py`)",
        "",
        f"Run {r['started']} on {r['env']}. Lake: {r['scenarios']:,} scenarios in one region "
        f"(built as `benchmarks/lake.py` builds its big lake). The service is `datadrive serve` "
        f"(one uvicorn process, SQLite metadata, rate limit off) on 127.0.0.1; {r['concurrency']} clients, "
        f"one keep-alive connection each, requests back to back, on the same machine as the server. "
        f"The library column is the same read in one process, one caller, on a snapshot taken once. "
        f"The machine was shared with other engineers' work: compare the columns of one run, not runs.",
        "",
        "| read | service req/s | p50 ms | p99 ms | errors | library calls/s | p50 ms | p99 ms "
        "| p50 service / library |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, row in r["reads"].items():
        s, d = row["service"], row.get("library")
        err = ", ".join(f"{k}: {v}" for k, v in s["errors"].items()) or "0"
        if d is None:
            lines.append(
                f"| {name} | {s['rps']:.1f} | {s['p50_ms']:.0f} | {s['p99_ms']:.0f} | {err} | – | – | – | – |"
            )
            continue
        ratio = s["p50_ms"] / d["p50_ms"] if d["p50_ms"] > 0 else float("nan")
        lines.append(
            f"| {name} | {s['rps']:.1f} | {s['p50_ms']:.0f} | {s['p99_ms']:.0f} | {err} | "
            f"{d['rps']:.1f} | {d['p50_ms']:.0f} | {d['p99_ms']:.0f} | {ratio:.1f}x |"
        )
    goal = {n: row["service"]["p99_ms"] for n, row in r["reads"].items() if n.startswith(GOAL_READS)}
    if goal:
        worst = max(goal, key=lambda n: goal[n])
        verdict = "met" if goal[worst] < GOAL_P99_MS else "not met"
        lines += [
            "",
            f"Goal: p99 < {GOAL_P99_MS:.0f} ms for scenario lookups and event queries at "
            f"{r['concurrency']} clients: **{verdict}** in this run (the slowest p99 of those reads: "
            f"{goal[worst]:.0f} ms, {worst.split(' (')[0]}).",
        ]
    lines += ["", *stage_table(r), "", *r["notes"], "", END]
    return "\n".join(lines)


def bounds(r: dict[str, Any]) -> str:
    """What bounds the goal reads' latency, from the stage breakdown (or the old reasoning without one)."""
    rows = {n: row for n, row in r["reads"].items() if n.startswith(GOAL_READS) and row.get("stages")}
    if not rows:
        return "What bounds the latency: no stage breakdown in this run (the service logged no stages)."
    shares = [row["stages"]["slowest"]["lake"] / row["stages"]["slowest"]["server"] for row in rows.values()]
    own = {
        n.split(" (")[0]: sum(row["stages"][k]["p50"] for k in ("auth", "snapshot", "encode", "framework"))
        for n, row in rows.items()
    }
    alone = {
        n.split(" (")[0]: row["query_alone"]["p50_ms"] for n, row in rows.items() if row.get("query_alone")
    }
    a = r["audit_append"]
    return (
        f"What bounds the latency: the library call, {100 * min(shares):.0f}-{100 * max(shares):.0f}% of the "
        "time in the server of the slowest 1% of the goal reads' requests. The service's own stages "
        "(authentication, snapshot check, encoding, framework and thread-pool hops) take "
        + ", ".join(f"{v:.1f} ms ({k})" for k, v in own.items())
        + " at p50 together. Within the library call, each read waits for its own audit row's Delta "
        f"commit (one row appended alone: p50 {a['p50_ms']:.0f} ms) and, under concurrency, for the "
        "commit in flight before it (concurrent reads share a commit, a row each); its query, asked alone "
        "by one caller, takes "
        + ", ".join(f"{v:.1f} ms ({k})" for k, v in alone.items())
        + " at p50 (for the event pages, the page as the library answers it, one query per page: the "
        "service answers it instead as a slice of a whole sorted answer it keeps per lake version, a "
        "type's events for a type's page, every event in scenario order for a scenario's, with its audit "
        "row appended through the library)."
        + (
            f" The first page of each type after a lake version lands builds that type's answer (one library "
            f"query, audited, with the whole answer's row count): timed one at a time before the load, "
            f"p50 {c['p50_ms']:.0f} ms, slowest {c['max_ms']:.0f} ms over {c['types']} types"
            if (c := r.get("cold_pages"))
            else ""
        )
        + (
            f"; the first scenario's page builds the scenarios' answer: {r['cold_scenario_ms']:.0f} ms alone"
            if "cold_scenario_ms" in r
            else ""
        )
        + ("; the load's pages come after them." if "cold_pages" in r or "cold_scenario_ms" in r else "")
    )


def _pp(d: dict[str, float]) -> str:
    return f"{d['p50']:.1f} / {d['p99']:.1f}"


def stage_table(r: dict[str, Any]) -> list[str]:
    """Where one request's time goes, per read (from the service's log), and what bounds the slowest."""
    rows = {n: row for n, row in r["reads"].items() if row.get("stages")}
    if not rows:
        return []
    a = r["audit_append"]
    out = [
        "Where one request's time goes, p50 / p99 ms, from the service's own log of the requests above "
        "(`datadrive.service.ops.stage`): authentication (API key, user and tenant: one query), the "
        "gateway's snapshot check, the library call (its DuckDB query and the audit row it appends, "
        "waiting for the commit in flight first), JSON encoding, and `framework`, the rest of the server's "
        "time (HTTP parsing, routing, thread-pool hops, middleware, the log line). `client` is what the "
        "load's clients saw: the server's time plus the connection and their own turn for the CPU. The "
        "last two columns split the library call in this process, one caller: its query asked alone "
        f"(no audit row; a measurement, the service never reads so) and one audit row appended alone "
        f"(p50 {a['p50_ms']:.0f} / p99 {a['p99_ms']:.0f} ms, measured before the load).",
        "",
        "| read | client | in the server | auth | snapshot | library call | encode | framework "
        "| server CPU ms / request | its query alone (library, 1 caller) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in rows.items():
        st, q = row["stages"], row.get("query_alone")
        alone = f"{q['p50_ms']:.1f} / {q['p99_ms']:.1f}" if q else "–"
        out.append(
            f"| {name.split(' (')[0]} | {_pp(st['client'])} | {_pp(st['server'])} | {_pp(st['auth'])} | "
            f"{_pp(st['snapshot'])} | {_pp(st['lake'])} | {_pp(st['encode'])} | {_pp(st['framework'])} | "
            f"{st['cpu_ms_per_request']:.1f} | {alone} |"
        )
    out += [
        "",
        "What the slowest 1% of each goal read's requests (by time in the server) spent it on, mean ms:",
        "",
    ]
    for name, row in rows.items():
        if not name.startswith(GOAL_READS):
            continue
        sl = row["stages"]["slowest"]
        total = sl["server"] or float("nan")
        parts = ", ".join(
            f"{label} {sl[k]:.1f} ({100 * sl[k] / total:.0f}%)"
            for k, label in (
                ("lake", "library call"),
                ("auth", "auth"),
                ("snapshot", "snapshot"),
                ("encode", "encode"),
                ("framework", "framework"),
            )
        )
        out.append(f"- {name.split(' (')[0]}: {sl['server']:.0f} ms in the server: {parts}")
    return out


def write_section(text: str) -> None:
    doc = DOC.read_text() if DOC.exists() else "# Benchmarks\n"  # re-read right before editing
    if BEGIN in doc and END in doc:
        doc = doc[: doc.index(BEGIN)] + text + doc[doc.index(END) + len(END) :]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    DOC.write_text(doc)


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--samples",
        type=Path,
        default=Path(os.environ.get("DATADRIVE_SAMPLES", REPO.parent / "shared" / "data")),
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "datadrive-service-bench",
        help="Where the lake is built once and kept (reused by later runs).",
    )
    parser.add_argument("--scenarios", type=int, default=100_000, help="Scenarios in the lake.")
    parser.add_argument("--chunk", type=int, default=20, help="Copies per replication commit.")
    parser.add_argument("--concurrency", type=int, default=8, help="Concurrent clients.")
    parser.add_argument("--requests", type=int, default=400, help="Requests per read at most.")
    parser.add_argument("--seconds", type=float, default=60.0, help="Seconds per read at most.")
    parser.add_argument(
        "--quick", action="store_true", help="2,000 scenarios, 100 requests each; nothing written."
    )
    parser.add_argument("--no-write", action="store_true", help="Print, do not touch docs/benchmarks.md.")
    parser.add_argument(
        "--kept-answers-mb",
        type=int,
        default=512,
        help="The service's memory for kept event listings (0: every page is its own query, as before).",
    )
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="Start the service with --no-gc-freeze (start-up's objects left in the collector's full walks; "
        "an A/B of that setting; nothing written).",
    )
    parser.add_argument(
        "--only", default="", help="Run only the reads whose name contains this (exploring; nothing written)."
    )
    parser.add_argument(
        "--optimize",
        action="store_true",
        help="`datadrive lake optimize` the region first (compacts the audit table earlier runs grew; "
        "minutes at 100k: it rewrites the per-state tables too).",
    )
    args = parser.parse_args()
    if args.quick:
        args.scenarios, args.requests, args.seconds, args.no_write = 2_000, 100, 20.0, True
    if args.only or args.kept_answers_mb != 512 or args.no_gc_freeze:
        args.no_write = True

    def log(msg: str) -> None:
        print(msg, flush=True)

    results: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "env": lake_bench.environment(),
        "concurrency": args.concurrency,
        "reads": {},
    }
    folder = build_lake(args.work, args.scenarios, args.samples, args.chunk, log)
    results["events"] = tag_lake_once(folder, args.samples, 200, log)
    config = load_config(folder, env={})
    lake = Lake(config, Principal("bench@bmw", TENANT, REGION))
    snap = lake.snapshot(REGION)
    facts = snap.sql("SELECT count(*) AS n FROM scenarios").table
    results["scenarios"] = int(facts.column("n")[0].as_py())
    ids = [
        str(x)
        for x in snap.sql(
            "SELECT scenario_id FROM (SELECT scenario_id FROM scenarios WHERE telemetry_id IS NULL) "
            "USING SAMPLE 2000 ROWS"
        ).table.column(0)
    ]
    per_source = {
        str(r["source"]): int(r["n"])
        for r in snap.sql(
            "SELECT source, count(*) AS n FROM scenarios WHERE telemetry_id IS NULL GROUP BY 1"
        ).table.to_pylist()
    }
    sources = sorted(per_source)
    log(f"{results['scenarios']:,} scenarios, {len(sources)} sources")

    cols = ", ".join(LIST_COLUMNS)

    def lib_lookup(rng: random.Random, on: Any = snap) -> object:  # what the service's lookup asks
        sid = rng.choice(ids).replace("'", "''")
        return on.sql(f"SELECT {cols} FROM scenarios WHERE telemetry_id IS NULL AND scenario_id = '{sid}'")

    def lib_page(rng: random.Random, on: Any = snap) -> object:
        src = rng.choice(sources)
        rows = on.sql(f"SELECT {cols} FROM scenarios WHERE telemetry_id IS NULL AND source = '{src}'").table
        offset = rng.randrange(max(1, per_source[src] - 50))
        return rows.sort_by([("scenario_id", "ascending")]).slice(offset, 50).to_pylist()

    def lib_sql(rng: random.Random, on: Any = snap) -> object:
        return on.sql(SQL)

    from datadrive.mining import tagger_version

    by_type = {
        str(r["event_type"]): int(r["n"])
        for r in snap.sql(
            "SELECT event_type, count(*) AS n FROM events "
            f"WHERE tagger_version = '{tagger_version()}' GROUP BY 1"
        ).table.to_pylist()
    }
    types = sorted(by_type)
    with_events = [
        str(x)
        for x in snap.sql("SELECT DISTINCT scenario_id FROM events USING SAMPLE 2000 ROWS").table.column(0)
    ]
    log(f"{sum(by_type.values()):,} events of {len(types)} types")
    results["events_in_table"] = sum(by_type.values())  # what the reads scan (a rerun of the copy adds)

    # the page as the library answers it, one query per page (the service asks this where it keeps no
    # whole answer: for a scenario's events always, for a type's before its first page)
    from datadrive.service.mining import EventFilter, event_page

    def lib_events_of_type(rng: random.Random, on: Any = snap) -> object:
        return event_page(on, EventFilter(event_type=rng.choice(types)), limit=50)[0].to_pylist()

    def lib_events_of_scenario(rng: random.Random, on: Any = snap) -> object:
        return event_page(on, EventFilter(scenario_id=rng.choice(with_events)), limit=50)[0].to_pylist()

    prefix = f"/api/v1/regions/{REGION}"
    reads: dict[str, tuple[Callable[[random.Random], tuple[str, str, bytes | None]], Any]] = {
        "who am I (`GET /me`, no lake access)": (lambda rng: ("GET", "/api/v1/me", None), None),
        "scenario by id (`GET /regions/{r}/scenarios/{id}`)": (
            lambda rng: ("GET", f"{prefix}/scenarios/{quote(rng.choice(ids), safe='')}", None),
            lib_lookup,
        ),
        "page of 50 of one source (`GET /regions/{r}/scenarios?source=`)": (
            lambda rng: (
                "GET",
                f"{prefix}/scenarios?source={(s := rng.choice(sources))}&limit=50"
                f"&offset={rng.randrange(max(1, per_source[s] - 50))}",
                None,
            ),
            lib_page,
        ),
        "SQL aggregate by source (`POST /regions/{r}/sql`)": (
            lambda rng: ("POST", f"{prefix}/sql", json.dumps({"query": SQL}).encode()),
            lib_sql,
        ),
        "events of one type, most severe 50 (`GET /regions/{r}/events?event_type=`)": (
            lambda rng: ("GET", f"{prefix}/events?event_type={rng.choice(types)}&limit=50", None),
            lib_events_of_type,
        ),
        "events of one scenario (`GET /regions/{r}/events?scenario_id=`)": (
            lambda rng: (
                "GET",
                f"{prefix}/events?scenario_id={quote(rng.choice(with_events), safe='')}",
                None,
            ),
            lib_events_of_scenario,
        ),
    }
    if not types:  # nothing tagged (no events in the samples): nothing to measure
        for name in [n for n in reads if "events" in n]:
            del reads[name]
    # what bounds every audited read: one audit row is one synchronous Delta commit, whose cost grows
    # with the audit table (files and commits): measured alone, one caller, before the load
    from deltalake import DeltaTable

    audit_path = str(folder / "regions" / REGION / "audit")
    results["audit_files_before"] = len(DeltaTable(audit_path).file_uris())
    if args.optimize:
        # as an operator runs it: every run of this benchmark adds a file per audit commit to the audit
        # table, and an append's cost grows with its files (~70 us each): compacted, the run measures
        # a maintained lake rather than the leftovers of earlier runs
        started = time.perf_counter()
        lake.optimize(REGION)
        results["optimize_s"] = time.perf_counter() - started
        log(f"optimized the region in {results['optimize_s']:.1f} s")
    audit_table = DeltaTable(audit_path)
    results["audit_table"] = {"commits": audit_table.version() + 1, "files": len(audit_table.file_uris())}
    results["audit_append"] = direct(
        lambda rng: lake.record(REGION, "read", "benchmark: one audit row"),
        max_requests=min(args.requests, 40),
        max_seconds=min(args.seconds, 20.0),
    ).summary()
    a = results["audit_append"]
    log(
        f"one audit append alone: p50 {a['p50_ms']:.0f} ms, p99 {a['p99_ms']:.0f} ms "
        f"({results['audit_table']})"
    )
    alone = QueryAlone.of(snap)
    if args.only:
        reads = {n: r for n, r in reads.items() if args.only in n}
    # the load's clients are threads of this process, which holds the lake, its snapshot and the ids:
    # a full collection here would pause all eight mid-request and count against the service (the
    # service freezes its own start-up heap the same way, `datadrive serve --gc-freeze`)
    import gc

    gc.collect()
    gc.freeze()
    served = start_service(
        folder,
        args.work / "service-data",
        kept_answers_mb=args.kept_answers_mb,
        gc_freeze=not args.no_gc_freeze,
    )
    try:
        for name, (request, lib) in reads.items():
            log(f"{name}: service")
            if name.startswith(COLD_READ):
                # the first page of each type after a lake version lands builds the type's whole sorted
                # answer (the service keeps it for that version): timed one at a time, before the load
                cold = []
                for t in types:
                    one = load(
                        served.port,
                        served.key,
                        functools.partial(_fixed, ("GET", f"{prefix}/events?event_type={t}&limit=50", None)),
                        concurrency=1,
                        max_requests=1,
                        max_seconds=60,
                    )
                    cold += one.latencies_s
                cold.sort()
                results["cold_pages"] = {
                    "types": len(cold),
                    "p50_ms": 1000 * _pct(cold, 0.5),
                    "max_ms": 1000 * cold[-1] if cold else float("nan"),
                }
                log(f"  first page of each type (builds its answer): {results['cold_pages']}")
            if name.startswith(COLD_SCENARIO_READ):
                # the first scenario's page after a lake version lands builds every event's answer in
                # scenario order (one for all scenarios): timed alone, before the load
                one = load(served.port, served.key, request, concurrency=1, max_requests=1, max_seconds=60)
                results["cold_scenario_ms"] = 1000 * one.latencies_s[0] if one.latencies_s else float("nan")
                log(
                    f"  first page of a scenario's events (builds its answer): "
                    f"{results['cold_scenario_ms']:.0f} ms"
                )
            load(served.port, served.key, request, concurrency=2, max_requests=10, max_seconds=30)  # warm-up
            time.sleep(0.2)  # the warm-up's log lines written
            log_from, cpu_from = served.log.stat().st_size, _cpu_s(served.proc.pid)
            run = load(
                served.port,
                served.key,
                request,
                concurrency=args.concurrency,
                max_requests=args.requests,
                max_seconds=args.seconds,
            )
            cpu = _cpu_s(served.proc.pid) - cpu_from
            time.sleep(0.2)
            svc = run.summary()
            row: dict[str, Any] = {"service": svc}
            row["stages"] = breakdown(
                request_lines(served.log, log_from, served.log.stat().st_size), run.latencies_s, cpu
            )
            log(
                f"  {svc['rps']:.1f} req/s, p50 {svc['p50_ms']:.0f} ms, p99 {svc['p99_ms']:.0f} ms, "
                f"errors {svc['errors']}"
            )
            if row["stages"]:
                st = row["stages"]
                log(
                    "  in the server p50/p99 ms: "
                    + ", ".join(f"{k} {st[k]['p50']:.1f}/{st[k]['p99']:.1f}" for k in ("server", *STAGES))
                    + f", framework {st['framework']['p50']:.1f}/{st['framework']['p99']:.1f}; "
                    f"server CPU {st['cpu_ms_per_request']:.1f} ms per request"
                )
            if lib is not None:
                lib(random.Random(1))  # warm-up
                d = direct(lib, max_requests=args.requests, max_seconds=args.seconds).summary()
                row["library"] = d
                log(f"  library {d['rps']:.1f} calls/s, p50 {d['p50_ms']:.0f} ms, p99 {d['p99_ms']:.0f} ms")
                if alone is not None:
                    q = direct(
                        functools.partial(lib, on=alone),
                        max_requests=min(args.requests, 100),
                        max_seconds=min(args.seconds, 20.0),
                    ).summary()
                    row["query_alone"] = q
                    log(
                        f"  its query alone (no audit row): p50 {q['p50_ms']:.1f} ms, "
                        f"p99 {q['p99_ms']:.1f} ms"
                    )
            results["reads"][name] = row
    finally:
        stop_service(served)
    audit_rows = lake.audit_log(REGION).num_rows
    a, at = results["audit_append"], results["audit_table"]
    results["notes"] = [
        f"Every read above is audited by the library, one row each, as it happens (the region's audit "
        f"log held {audit_rows:,} rows after the run). One audit row is one synchronous Delta commit "
        f"(concurrent reads of one process share a commit, a row each): appended alone, one caller, "
        f"before the load, it took p50 {a['p50_ms']:.0f} ms, p99 {a['p99_ms']:.0f} ms, with the audit "
        f"table at {at['commits']:,} commits and {at['files']:,} files"
        + (
            f" (the region was optimized first, `datadrive lake optimize`, {results['optimize_s']:.0f} s: "
            f"the audit table had {results['audit_files_before']:,} files, one per audited read of "
            "earlier runs)"
            if "optimize_s" in results
            else " (`--optimize` compacts it first)"
        )
        + ". The events are the samples' "
        "events tagged by "
        "`datadrive.mining.tag_lake` and copied once per replicated scenario "
        f"({results['events_in_table']:,} rows of the current tagger version; the state index was not "
        "copied, so mining searches are not measured here: "
        "`benchmarks/mining.py` measures them).",
        "",
        bounds(results),
    ]
    text = render(results)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
