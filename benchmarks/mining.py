"""Mining: per-state queries on the state index, events lookups, tagging throughput, index cost.

Four measurements, each against a reference taken in the same run:

1. **Per-state queries** over a lake of ``--scenarios`` scenarios, built from
   the samples' lake by replication as ``benchmarks/lake.py`` builds its
   100k-scenario lake (scenarios and tracks copied with ``~rNNNNN`` appended to
   the ids, committed through the lake's protocol); the mining tables are
   built the same way: the seed lake is indexed for real
   (``mining.index.index_region``), and its ``mining_states``, ``events`` and
   ``mining_index`` rows are copied with the same ids through
   ``Lake.append_derived_tables`` (one lake version per chunk). The four
   per-state queries of ``benchmarks/lake.py`` run three ways, interleaved:
   on ``mining_states`` through ``Lake.sql``; on today's ``states`` view
   through ``Lake.sql``; and in plain DuckDB over the same rows written once as
   one flat Parquet file sorted by (tenant, source, scenario, track, step),
   the practical limit.
2. **Events**: "which scenarios have hard braking", from ``events``, through ``Lake.sql``.
3. **Tagging throughput** in track-steps/s (tracks x steps processed) on the
   samples: every tagger; and the four single-track taggers (hard braking,
   hard acceleration, high lateral acceleration, ego stationary) against a
   straightforward pandas implementation of the same predicates (groupby per
   track, shifted differences, thresholds, runs), in the same run.
4. **Index cost** at ingest: ingest the samples, then index them; states/s of
   each, and bytes on disk per state of the mining tables.

Usage::

    python benchmarks/mining.py                    # 20,000 scenarios; rewrites its docs/benchmarks.md section
    python benchmarks/mining.py --scenarios 100000 # the 100k-scenario lake of benchmarks/lake.py
    python benchmarks/mining.py --quick            # 1,000 scenarios, 1 run each, nothing written
    # the per-state queries before and after `lake optimize` clusters mining_states:
    python benchmarks/mining.py --scenarios 20000 --queries-only --view-skip --optimize
    # the same on an existing lake (give a copy: it is optimized)
    python benchmarks/mining.py --lake COPY --view-skip --optimize
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import lake as lake_bench  # noqa: E402  (benchmarks/lake.py: the replicated lake, its queries)
from datadrive.compute import ProcessPoolEngine  # noqa: E402
from datadrive.core.scenario import ObjectType, Scenario  # noqa: E402
from datadrive.lake import Lake, StorageRoot  # noqa: E402
from datadrive.mining.context import ScenarioContext  # noqa: E402
from datadrive.mining.events import tag_scenario, tagger_version  # noqa: E402
from datadrive.mining.index import cluster_states, index_region, state_table  # noqa: E402

DOC = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- mining.py:begin -->", "<!-- mining.py:end -->"
REGION, TENANT = lake_bench.REGION, lake_bench.TENANT
MOTION = ("hard_braking", "hard_acceleration", "high_lateral_acceleration", "ego_stationary")

VIEW_QUERIES = {k: v for k, v in lake_bench.QUERIES.items() if "(per-state view)" in k}
INDEX_QUERIES = {
    "states by type (per-state view)": (
        "SELECT object_type_name, count(*) AS states FROM mining_states GROUP BY 1 ORDER BY 2 DESC"
    ),
    "spatial box, 100 m (per-state view)": (
        "SELECT count(DISTINCT scenario_id) AS scenarios, count(*) AS states FROM mining_states "
        "WHERE x_m BETWEEN {x0} AND {x1} AND y_m BETWEEN {y0} AND {y1}"
    ),
    "top 10 speeds (per-state view)": (
        "SELECT source, scenario_id, track_id, max(speed_mps) AS top_mps "
        "FROM mining_states GROUP BY ALL ORDER BY top_mps DESC, source, scenario_id, track_id LIMIT 10"
    ),
    "hard-braking vehicles, < -4 m/s^2 (per-state view)": (
        "SELECT count(DISTINCT scenario_id) AS scenarios FROM mining_states "
        "WHERE object_type_name = 'vehicle' AND accel_mps2 < -4"
    ),
}
EVENTS_QUERY = (
    "SELECT DISTINCT tenant, source, scenario_id FROM events "
    "WHERE event_type = 'hard_braking' AND tagger_version = '{version}'"
)


def log(msg: str) -> None:
    print(msg, flush=True)


# --------------------------------------------------------------------------- 3. tagging throughput


def _cells(scenarios: list[Scenario]) -> int:
    return sum(s.num_tracks * s.num_steps for s in scenarios)


def pandas_motion_events(scenarios: list[Scenario]) -> int:
    """The four single-track predicates, written the way an analyst would in pandas; returns the events found.

    One long DataFrame of valid states; per track: speed from the velocity (or
    central differences of positions), acceleration as the difference of
    velocities 0.5 s apart divided by the time between them, longitudinal and
    lateral parts, thresholds, and runs of consecutive qualifying steps lasting
    long enough. Uses the same thresholds as the taggers' defaults.
    """
    import pandas as pd

    frames = []
    for s in scenarios:
        tr = s.tracks
        rows, cols = np.nonzero(tr.valid)
        frames.append(
            pd.DataFrame(
                {
                    "scenario": s.scenario_id,
                    "track": rows,
                    "ego": rows == (s.ego_index if s.ego_index is not None else -1),
                    "vehicle": tr.object_type[rows] == ObjectType.VEHICLE,
                    "step": cols,
                    "t": (s.timestamps_ns[cols] - s.timestamps_ns[0]) / 1e9,
                    "x": tr.xy_m[rows, cols, 0],
                    "y": tr.xy_m[rows, cols, 1],
                    "vx": tr.velocity_mps[rows, cols, 0],
                    "vy": tr.velocity_mps[rows, cols, 1],
                    "heading": tr.heading_rad[rows, cols],
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    found = 0

    def per_track(g: Any) -> int:
        g = g.sort_values("step")
        dt = g["t"].diff().median() if len(g) > 1 else 0.1
        dt = dt if dt and dt > 0 else 0.1
        vx = g["vx"].where(
            g["vx"].notna(), (g["x"].shift(-1) - g["x"].shift(1)) / (g["t"].shift(-1) - g["t"].shift(1))
        )
        vy = g["vy"].where(
            g["vy"].notna(), (g["y"].shift(-1) - g["y"].shift(1)) / (g["t"].shift(-1) - g["t"].shift(1))
        )
        speed = np.hypot(vx, vy)
        k = max(1, round(0.5 / dt))
        span = g["t"].shift(-k) - g["t"].shift(k)
        ax = (vx.shift(-k) - vx.shift(k)) / span
        ay = (vy.shift(-k) - vy.shift(k)) / span
        head = np.where(speed > 1.0, np.arctan2(vy, vx), g["heading"])
        lon = ax * np.cos(head) + ay * np.sin(head)
        lat = -ax * np.sin(head) + ay * np.cos(head)
        conds = []
        if g["vehicle"].iloc[0]:
            conds += [
                ((lon <= -3.0) & (speed >= 1.0), 0.2),
                (lon >= 3.43, 0.2),
                ((lat.abs() >= 3.0) & (speed >= 2.0), 0.2),
            ]
        if g["ego"].iloc[0]:
            conds.append((speed < 0.5, 2.0))
        n = 0
        for cond, min_s in conds:
            c = cond.fillna(False).astype(bool)
            run_id = (c != c.shift()).cumsum()
            for _, run in g[c].groupby(run_id[c]):
                if run["t"].iloc[-1] - run["t"].iloc[0] >= min_s - 1e-9:
                    n += 1
        return n

    for _, g in df.groupby(["scenario", "track"], sort=False):
        found += per_track(g)
    return found


def tagging_throughput(scenarios: list[Scenario], rounds: int) -> dict[str, Any]:
    """track-steps/s of every tagger, of the four motion taggers, and of pandas for the same four."""
    cells = _cells(scenarios)

    def ours_all() -> int:
        return sum(len(tag_scenario(s).events) for s in scenarios)

    def ours_motion() -> int:
        return sum(len(tag_scenario(s, event_types=MOTION).events) for s in scenarios)

    def pandas_motion() -> int:
        return pandas_motion_events(scenarios)

    cases: dict[str, Callable[[], int]] = {
        "datadrive, all 13 taggers": ours_all,
        "datadrive, the 4 single-track taggers": ours_motion,
        "pandas, the same 4 predicates": pandas_motion,
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    events: dict[str, int] = {}
    for _ in range(rounds):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            events[name] = fn()
            times[name].append(time.perf_counter() - t0)
            log(f"  {name}: {times[name][-1]:.2f} s, {events[name]} events")
    return {
        "cells": cells,
        "scenarios": len(scenarios),
        "rows": {
            name: {
                "seconds": statistics.median(t),
                "events": events[name],
                "rate": cells / statistics.median(t),
            }
            for name, t in times.items()
        },
    }


# --------------------------------------------------------------------------- 4. index cost


def index_cost(
    seed: Lake, seed_root: Path, scenarios: list[Scenario], ingest_s: float, states: int
) -> dict[str, Any]:
    t0 = time.perf_counter()
    report = index_region(seed, REGION, engine=ProcessPoolEngine(2), batch_size=8)
    index_s = time.perf_counter() - t0
    if report.failures:
        raise RuntimeError(f"indexing failed: {report.failures[0]}")
    t1 = time.perf_counter()
    n = 0
    for s in scenarios:
        n += state_table(s, ScenarioContext(s)).num_rows
    features_s = time.perf_counter() - t1
    sizes = {}
    for table in ("mining_states", "events", "mining_index"):
        folder = seed_root / table
        sizes[table] = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    raw_tables = sum(
        f.stat().st_size
        for name in ("scenarios", "tracks", "map_features", "telemetry")
        for f in (seed_root / name).rglob("*")
        if f.is_file()
    )
    return {
        "states": states,
        "index_states": report.states,
        "events": report.events,
        "ingest_s": ingest_s,
        "index_s": index_s,
        "features_s": features_s,
        "features_states": n,
        "bytes": sizes,
        "raw_table_bytes": raw_tables,
    }


# --------------------------------------------------------------------------- 5. RefAV


def refav_scores(samples: Path, work: Path) -> dict[str, Any]:
    """``--describe "stopped car"`` on the scenario-mining sample and the shipped predictions, by av2."""
    import contextlib
    import io
    import pickle
    import warnings

    from datadrive.mining.describe import describe
    from datadrive.mining.refav import write_refav
    from datadrive.mining.results import select
    from datadrive.sources import DEFAULT_REGISTRY

    folder = samples / "av2_scenario_mining"
    log_dir = next(p for p in folder.iterdir() if p.is_dir())
    with (folder / f"refav_gt_{log_dir.name}.pkl").open("rb") as fh:
        gt = pickle.load(fh)  # trusted sample (SOURCES.md)
    with (folder / f"refav_predictions_{log_dir.name}.pkl").open("rb") as fh:
        shipped = pickle.load(fh)  # trusted sample (SOURCES.md)
    scenario = DEFAULT_REGISTRY.detect(log_dir).read_all(log_dir)[0]
    assert isinstance(scenario, Scenario)
    t = describe("stopped car")
    ours = write_refav(work / "refav.pkl", [(scenario, select(t.expression, scenario), "stopped car")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from av2.evaluation.scenario_mining.eval import evaluate

        out = {}
        for name, pred in (
            ('datadrive --describe "stopped car"', dict(ours)),
            ("shipped predictions", shipped),
        ):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                scores = evaluate(pred, gt, "HOTA", 50, str(folder), str(work / "refav-eval"))
            out[name] = dict(
                zip(("hota_temporal", "hota_track", "timestamp_ba", "log_ba"), scores, strict=True)
            )
            log(f"  {name}: {out[name]}")
    return {"expression": t.text, "log": log_dir.name, "scores": out}


# --------------------------------------------------------------------------- 1. the big lake's mining tables


def _suffixed(table: pa.Table, k: int) -> pa.Table:
    i = table.schema.get_field_index("scenario_id")
    return table.set_column(
        i,
        "scenario_id",
        pc.binary_join_element_wise(table.column("scenario_id"), pa.scalar(f"~r{k:05d}"), ""),
    )


def replicate_mining(seed: Lake, big: Lake, copies: int, chunk: int) -> int:
    """Copy the seed's mining rows once per replicated scenario copy, ``chunk`` copies per lake version."""
    seed_snap = seed.snapshot(REGION)
    keep = {"mining_states", "events", "mining_index"}
    tables = {}
    for name in keep:
        t = seed_snap.table(name)
        t = t.drop_columns(
            [c for c in ("batch_id", "derived_at", "derived_from_version") if c in t.column_names]
        )
        scen = seed_snap.table("scenarios", columns=["scenario_id", "telemetry_id"])
        real = scen.filter(pc.is_null(scen.column("telemetry_id"))).column("scenario_id")
        tables[name] = t.filter(pc.is_in(t.column("scenario_id"), value_set=real))
    written = 0
    for k0 in range(0, copies, chunk):
        ks = range(k0, min(k0 + chunk, copies))
        rows = {name: pa.concat_tables([_suffixed(t, k) for k in ks]) for name, t in tables.items()}
        # the order index_region writes a batch in (by place, then key): these rows stand in for its batches
        rows["mining_states"] = cluster_states(rows["mining_states"])
        big.append_derived_tables(REGION, rows, derived_from=big.snapshot(REGION))
        written += rows["mining_states"].num_rows
        log(f"  mining rows: {written:,} states ({k0 + len(ks)}/{copies} copies)")
    return written


def write_flat(big: Lake, table_dir: Path, path: Path, work: Path) -> int:
    """Every ``mining_states`` row of the big lake, once, in one Parquet file sorted by key.

    DuckDB sorts each (tenant, source) partition's files on its own under a
    memory limit (spilling to disk), in (tenant, source) order, and the
    sorted parts are then concatenated in that order into one file: the
    same file as one global sort, with a spill of one partition at a time,
    so the copy fits a small, shared disk.
    """
    import duckdb
    from deltalake import DeltaTable

    data = big.snapshot(REGION).dataset("mining_states")
    lake_cols = ("batch_id", "derived_at", "derived_from_version")
    cols = [c for c in data.schema.names if c not in lake_cols]
    groups: dict[tuple[str, str], list[str]] = {}
    for uri in DeltaTable(str(table_dir)).file_uris():  # the latest version's files (append-only lake)
        keys = dict(p.split("=", 1) for p in Path(uri.removeprefix("file://")).parts if "=" in p)
        groups.setdefault((keys["tenant"], keys["source"]), []).append(uri.removeprefix("file://"))
    con = duckdb.connect(":memory:")
    con.execute(f"SET temp_directory = '{work / 'duck-tmp'}'")
    con.execute("SET memory_limit = '4GB'")
    con.execute("SET preserve_insertion_order = false")
    parts = []
    for i, ((tenant, source), files) in enumerate(sorted(groups.items())):
        part = work / f"flat_part_{i:03d}.parquet"
        select = ", ".join(
            f"'{tenant}' AS tenant" if c == "tenant" else f"'{source}' AS source" if c == "source" else c
            for c in cols
        )
        con.execute(
            f"COPY (SELECT {select} FROM read_parquet({files!r}, hive_partitioning = false) "
            "ORDER BY scenario_id, track_index, step) "
            f"TO '{part}' (FORMAT parquet, COMPRESSION zstd)"
        )
        parts.append(str(part))
    con.execute("SET preserve_insertion_order = true")
    con.execute(
        f"COPY (SELECT * FROM read_parquet({parts!r})) TO '{path}' (FORMAT parquet, COMPRESSION zstd)"
    )
    n = int(con.sql(f"SELECT count(*) FROM read_parquet('{path}')").fetchall()[0][0])
    con.close()
    for part in parts:
        Path(part).unlink()
    return n


def box_row_groups(files: list[Path], params: dict[str, Any]) -> dict[str, int]:
    """Row groups (and their rows) whose x_m/y_m statistics overlap the 100 m box, over ``files``."""
    import pyarrow.parquet as pq

    groups = rows = total = 0
    for f in files:
        md = pq.ParquetFile(f).metadata
        names = [md.schema.column(i).name for i in range(md.num_columns)]
        ix, iy = names.index("x_m"), names.index("y_m")
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            total += 1
            sx, sy = rg.column(ix).statistics, rg.column(iy).statistics
            if sx is None or sy is None or not (sx.has_min_max and sy.has_min_max):
                groups, rows = groups + 1, rows + rg.num_rows
                continue
            if (
                sx.max < params["x0"]
                or sx.min > params["x1"]
                or sy.max < params["y0"]
                or sy.min > params["y1"]
            ):
                continue
            groups, rows = groups + 1, rows + rg.num_rows
    return {"files": len(files), "row_groups": total, "box_row_groups": groups, "box_rows": rows}


def live_files(table_dir: Path) -> list[Path]:
    """The data files of a Delta table's latest version."""
    from urllib.parse import unquote

    from deltalake import DeltaTable

    return [Path(unquote(u.removeprefix("file://"))) for u in DeltaTable(str(table_dir)).file_uris()]


def time_three_ways(
    big: Lake, flat: Path, params: dict[str, Any], runs: int, view_runs: int
) -> list[dict[str, Any]]:
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute(f"CREATE VIEW mining_states AS SELECT * FROM read_parquet('{flat}')")
    kept = big.snapshot(REGION)  # a long-lived process keeps its snapshot (and its SQL session)
    kept.sql("SELECT 1")
    out = []
    for name, template in INDEX_QUERIES.items():
        q_index = template.format(**params)
        q_view = VIEW_QUERIES[name].format(**params)
        t_index: list[float] = []
        t_kept: list[float] = []
        t_flat: list[float] = []
        t_view: list[float] = []
        c_kept: list[float] = []
        c_flat: list[float] = []
        answer = flat_answer = view_answer = None
        for i in range(max(runs, view_runs)):
            if i < runs:
                t0 = time.perf_counter()
                answer = big.sql(q_index, region=REGION).table
                t_index.append(time.perf_counter() - t0)
                c0, t0 = time.process_time(), time.perf_counter()
                kept.sql(q_index)
                t_kept.append(time.perf_counter() - t0)
                c_kept.append(time.process_time() - c0)
                c0, t0 = time.process_time(), time.perf_counter()
                flat_answer = con.sql(q_index).to_arrow_table()
                t_flat.append(time.perf_counter() - t0)
                c_flat.append(time.process_time() - c0)
            if i < view_runs:
                t0 = time.perf_counter()
                view_answer = big.sql(q_view, region=REGION).table
                t_view.append(time.perf_counter() - t0)
        assert answer is not None
        assert flat_answer is not None
        same = answer.sort_by([(c, "ascending") for c in answer.column_names]).equals(
            flat_answer.sort_by([(c, "ascending") for c in flat_answer.column_names])
        )
        row = {
            "query": name,
            "sql_index": q_index,
            "sql_view": q_view,
            "answer": lake_bench._short_answer(answer),
            "view_answer": None if view_answer is None else lake_bench._short_answer(view_answer),
            "same_as_flat": same,
            "index_p50": statistics.median(t_index),
            "kept_p50": statistics.median(t_kept),
            "flat_p50": statistics.median(t_flat),
            "view_p50": statistics.median(t_view) if t_view else float("nan"),
            "kept_cpu_p50": statistics.median(c_kept),
            "flat_cpu_p50": statistics.median(c_flat),
            "runs": runs,
            "view_runs": view_runs,
        }
        log(
            f"  {name}: index {row['index_p50']:.2f} s (kept snapshot {row['kept_p50']:.2f} s), "
            f"flat {row['flat_p50']:.2f} s, "
            f"view {row['view_p50']:.2f} s, same answer as flat: {same}; "
            f"index / flat {row['index_p50'] / row['flat_p50']:.2f}x, "
            f"kept / flat {row['kept_p50'] / row['flat_p50']:.2f}x, CPU kept / flat "
            f"{row['kept_cpu_p50'] / row['flat_cpu_p50']:.2f}x"
        )
        out.append(row)
    con.close()
    return out


# --------------------------------------------------------------------------- report


def render(r: dict[str, Any]) -> str:
    b = r["big"]
    lines = [
        BEGIN,
        "## Mining: state index, events, tagging, index cost (`benchmarks/mining.py`)",
        "",
        f"Run {r['started']} on {r['env']}. The machine was shared with other work: compare the ratios "
        "(both sides of each were measured in the same run, interleaved), not the absolute times.",
        "",
        f"**Per-state queries over {b['scenarios']:,} scenarios ({b['states']:,} valid states).** The lake "
        "was built as `benchmarks/lake.py` builds its big lake (the samples' scenarios and tracks replicated "
        f"{b['copies']:,} times, committed through the lake's protocol); its mining tables by indexing the "
        "samples' lake for real and copying those rows for every replicated scenario through "
        f"`Lake.append_derived_tables` ({b['mining_commits']} lake versions). `mining_states` holds "
        f"{b['index_rows']:,} rows in {b['index_files']:,} files, {b['index_bytes'] / 2**30:.2f} GiB "
        f"({b['index_bytes'] / max(b['index_rows'], 1):.1f} bytes per state); the flat file "
        f"{b['flat_bytes'] / 2**30:.2f} GiB. Building took {b['build_s']:.0f} s (tables) + "
        f"{b['mining_s']:.0f} s (mining rows) + {b['flat_s']:.0f} s (flat file). *Index*: the query on "
        "`mining_states` through `Lake.sql` (pinned snapshot, tenant filter, audit row); *flat*: the same "
        "SQL "
        "in plain DuckDB over the flat Parquet file; *kept snapshot*: the same SQL through a `Snapshot` "
        "a long-lived process keeps (`lake.snapshot(...).sql(...)`, its SQL session reused: no Delta log "
        "replay, no new session per query); *view*: the query of `benchmarks/lake.py` on today's "
        f"`states` view through `Lake.sql`. p50 of {b['runs']} runs (view: {b['view_runs']}), interleaved. "
        "*CPU: kept / flat*: the same ratio in CPU time of this process (DuckDB's threads included; the "
        "lake's audit row, an fsynced Delta commit, costs wall time more than CPU), steadier than wall "
        "time on a shared machine.",
        "",
        "| query | answer (index) | index s | kept snapshot s | flat s | index / flat | kept / flat | "
        "CPU: kept / flat | view s | view / index | same answer as flat |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for q in b["queries"]:
        viewed = q["view_p50"] == q["view_p50"]  # not NaN: the view was timed
        lines.append(
            f"| {q['query']} | {q['answer']} | {q['index_p50']:.2f} | {q['kept_p50']:.2f} | "
            f"{q['flat_p50']:.2f} | {q['index_p50'] / q['flat_p50']:.2f}x | "
            f"{q['kept_p50'] / q['flat_p50']:.2f}x | "
            f"{q['kept_cpu_p50'] / max(q['flat_cpu_p50'], 1e-9):.2f}x | "
            + (f"{q['view_p50']:.2f} | {q['view_p50'] / q['index_p50']:.1f}x | " if viewed else "- | - | ")
            + f"{'yes' if q['same_as_flat'] else 'NO'} |"
        )
    lines += [
        "",
        "The hard-braking query reads the acceleration the index stores (a windowed difference of "
        "velocities over the source's timestamps, see `mining/kinematics.py`); the view's version "
        "differences "
        "speeds of consecutive steps, so their counts differ. The queries:",
        "",
        "```sql",
    ]
    lines += [f"-- {q['query']}\n{q['sql_index']};" for q in b["queries"]]
    lines += ["```", ""]
    e = r["events"]
    lines += [
        f'**Events.** "Which scenarios have hard braking" from `events` through `Lake.sql`: '
        f"{e['answer']} scenarios, p50 {e['p50']:.3f} s, p95 {e['p95']:.3f} s over {e['runs']} runs "
        "(goal: under 1 s).",
        "",
    ]
    t = r["tagging"]
    lines += [
        f"**Tagging throughput** on the samples ({t['scenarios']} scenarios, {t['cells']:,} track-steps, "
        "tracks x steps), in one process, median of the runs, interleaved:",
        "",
        "| case | seconds | track-steps/s | events | vs pandas |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    pandas_rate = t["rows"]["pandas, the same 4 predicates"]["rate"]
    for name, row in t["rows"].items():
        vs = "reference" if name.startswith("pandas") else f"{row['rate'] / pandas_rate:.1f}x"
        lines.append(f"| {name} | {row['seconds']:.2f} | {row['rate']:,.0f} | {row['events']} | {vs} |")
    rv = r["refav"]
    lines += [
        "",
        f'**RefAV (Argoverse 2 scenario mining).** `--describe "stopped car"` on the sample log '
        f"`{rv['log']}` (offline translation: `{rv['expression']}`), the log's own annotations as tracks, "
        "written with `--refav-out` and scored by the official "
        "`av2.evaluation.scenario_mining.eval.evaluate` "
        "(HOTA, 50 m, the log's map for the ROI), next to the predictions shipped with the sample on the "
        "same evaluation:",
        "",
        "| predictions | HOTA-Temporal | HOTA-Track | timestamp balanced accuracy | log balanced accuracy |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, sc in rv["scores"].items():
        lines.append(
            f"| {name} | {sc['hota_temporal']:.3f} | {sc['hota_track']:.3f} | {sc['timestamp_ba']:.3f} | "
            f"{sc['log_ba']:.3f} |"
        )
    lines += [
        "",
        '"Stopped" is RefAV\'s own bound for a standing object (speed below 0.5 m/s, its annotation-jitter '
        'allowance in `has_velocity`) and "car" is the passenger-vehicle category (AV2\'s REGULAR_VEHICLE), '
        "nothing tuned to this log. The log's ground truth marks every regular vehicle at every timestamp as "
        'referred, moving ones included, which is why a correct "stopped" loses some HOTA-Temporal here.',
        "",
    ]
    lines += [
        "",
        "The pandas version is the same four predicates with the same thresholds, written the way an analyst "
        "would (group by track, shifted differences 0.5 s apart, runs of qualifying rows); its event counts "
        "differ a little because it does not skip the ends of tracks or implausible accelerations, and "
        "assumes a constant step within a track.",
        "",
    ]
    c = r["index"]
    lines += [
        f"**Index cost at ingest** (the samples: {c['states']:,} valid states). Ingest (process pool, 2 "
        f"workers): {c['ingest_s']:.1f} s, {c['states'] / c['ingest_s']:,.0f} states/s. Index "
        f"(`index_region`, process pool of 2, batches of 8: features, all taggers, commits): "
        f"{c['index_s']:.1f} s, {c['index_states'] / c['index_s']:,.0f} states/s; the per-state features "
        f"alone (one process): {c['features_states'] / c['features_s']:,.0f} states/s. On disk: "
        f"`mining_states` {c['bytes']['mining_states'] / max(c['index_states'], 1):.1f} bytes per state, "
        f"`events` {c['bytes']['events'] / 1024:.0f} KiB for {c['events']} events, against "
        f"{c['raw_table_bytes'] / max(c['states'], 1):.1f} bytes per state for the lake's raw tables.",
        "",
        END,
    ]
    return "\n".join(lines)


def write_section(text: str) -> None:
    doc = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if BEGIN in doc and END in doc:
        doc = doc[: doc.index(BEGIN)] + text + doc[doc.index(END) + len(END) :]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    DOC.write_text(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--samples", type=Path, default=REPO.parent / "shared" / "data", help="Sample data folder."
    )
    parser.add_argument("--scenarios", type=int, default=20_000, help="Scenarios in the big lake.")
    parser.add_argument(
        "--runs", type=int, default=3, help="Runs of each query on the index and the flat file."
    )
    parser.add_argument("--view-runs", type=int, default=1, help="Runs of each query on the states view.")
    parser.add_argument("--tag-rounds", type=int, default=1, help="Rounds of the tagging comparison.")
    parser.add_argument("--chunk", type=int, default=20, help="Copies per replication commit.")
    parser.add_argument("--workdir", type=Path, default=None, help="Work folder (default: a temp folder).")
    parser.add_argument("--keep", action="store_true", help="Keep the work folder.")
    parser.add_argument("--quick", action="store_true", help="1,000 scenarios, 1 run each; nothing written.")
    parser.add_argument("--no-write", action="store_true", help="Print, do not touch docs/benchmarks.md.")
    parser.add_argument(
        "--queries-only",
        action="store_true",
        help="Only the per-state queries and the events lookup (no RefAV, index cost, tagging); "
        "nothing written.",
    )
    parser.add_argument(
        "--view-skip", action="store_true", help="Do not time the states view (its queries take minutes)."
    )
    parser.add_argument(
        "--lake",
        type=Path,
        default=None,
        help="Reuse this lake folder (datadrive.toml; region eu-central, tenant bmw, mining tables built) "
        "instead of building one; the flat file is built from its mining_states. Implies --queries-only. "
        "With --optimize it is changed: give it a copy.",
    )
    parser.add_argument(
        "--optimize",
        action="store_true",
        help="Time the queries, run `lake optimize` (clustering mining_states by place), time them again.",
    )
    parser.add_argument("--memory-limit", default="2GB", help="Memory of optimize's clustering sort.")
    parser.add_argument(
        "--flat",
        type=Path,
        default=None,
        help="Reuse this flat file (one written by an earlier run on the same lake) instead of writing one.",
    )
    args = parser.parse_args()
    if args.lake is not None:
        args.queries_only = True
    if args.quick:
        args.scenarios, args.runs, args.view_runs, args.tag_rounds, args.no_write = 1_000, 1, 1, 1, True
    if args.queries_only:
        args.no_write = True
    if args.view_skip:
        args.view_runs = 0
    work = args.workdir or Path(tempfile.mkdtemp(prefix="datadrive-mining-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "env": lake_bench.environment(),
    }
    try:
        log(f"work folder {work}")
        if args.lake is not None:
            from datadrive.lake import Principal, load_config

            config = load_config(args.lake, env={})
            big = Lake(config, Principal("bench", TENANT, REGION))
            big_dir = Path(config.region(REGION).root.uri)
            n = int(big.sql("SELECT count(*) AS n FROM scenarios", REGION).table.column(0)[0].as_py())
            index_rows = int(
                big.sql("SELECT count(*) AS n FROM mining_states", REGION).table.column(0)[0].as_py()
            )
            build_s = mining_s = 0.0
            seed_scen = copies = 0
            log(f"existing lake {args.lake}: {n:,} scenarios, {index_rows:,} mining_states rows")
        else:
            seed_root = StorageRoot(str(work / "seed"))
            ingest, states = lake_bench.ingest_once(args.samples, seed_root, ProcessPoolEngine(2))
            ingest_s = ingest.wall
            seed = lake_bench._lake(seed_root)
            scenarios = seed.snapshot(REGION).scenarios()
            log(f"seed: {len(scenarios)} scenarios, {states:,} valid states, ingest {ingest_s:.1f} s")

            if args.queries_only:
                report = index_region(seed, REGION, engine=ProcessPoolEngine(2), batch_size=8)
                if report.failures:
                    raise RuntimeError(f"indexing failed: {report.failures[0]}")
            else:
                log("RefAV")
                results["refav"] = refav_scores(args.samples, work)
                log("index cost")
                results["index"] = index_cost(seed, Path(seed_root.uri), scenarios, ingest_s, states)
                log("tagging throughput")
                results["tagging"] = tagging_throughput(scenarios, args.tag_rounds)

            log(f"big lake: {args.scenarios:,} scenarios")
            big_root = StorageRoot(str(work / "big"))
            t0 = time.perf_counter()
            n = lake_bench.replicate(seed, big_root, args.scenarios, args.chunk, log)
            build_s = time.perf_counter() - t0
            big = lake_bench._lake(big_root)
            big_dir = Path(big_root.uri)
            seed_scen = len(scenarios)  # snapshot.scenarios() leaves telemetry egos out
            copies = -(-args.scenarios // max(len(scenarios), 1))
            t0 = time.perf_counter()
            index_rows = replicate_mining(seed, big, copies, args.chunk)
            mining_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        if args.flat is not None:
            import pyarrow.parquet as pq

            flat = args.flat
            flat_rows = pq.ParquetFile(flat).metadata.num_rows
        else:
            flat = work / "flat_states.parquet"
            flat_rows = write_flat(big, big_dir / "mining_states", flat, work)
        flat_s = time.perf_counter() - t0
        log(f"flat file: {flat_rows:,} rows, {flat_s:.0f} s")
        assert flat_rows == index_rows, (flat_rows, index_rows)
        big_states = int(
            big.sql("SELECT sum(num_valid_states) AS n FROM scenarios", REGION).table.column(0)[0].as_py()
        )
        params = lake_bench._query_params(big)
        flat_groups = box_row_groups([flat], params)
        index_files = live_files(big_dir / "mining_states")
        index_groups = box_row_groups(index_files, params)
        log(f"  100 m box: index {index_groups}, flat {flat_groups}")
        log("queries, three ways")
        queries = time_three_ways(big, flat, params, args.runs, args.view_runs)
        results["big"] = {
            "scenarios": n,
            "seed_scenarios": seed_scen,
            "copies": copies,
            "states": big_states,
            "index_rows": index_rows,
            "index_files": len(index_files),
            "index_bytes": sum(f.stat().st_size for f in index_files),
            "flat_bytes": flat.stat().st_size,
            "build_s": build_s,
            "mining_s": mining_s,
            "flat_s": flat_s,
            "mining_commits": -(-copies // args.chunk),
            "runs": args.runs,
            "view_runs": args.view_runs,
            "queries": queries,
            "box_groups": index_groups,
            "flat_box_groups": flat_groups,
        }
        if args.optimize:
            log(f"lake optimize (clustering mining_states, memory limit {args.memory_limit})")
            c0, t0 = time.process_time(), time.perf_counter()
            stats = big.optimize(REGION, memory_limit=args.memory_limit, temp_dir=str(work))
            opt_s, opt_cpu = time.perf_counter() - t0, time.process_time() - c0
            log(f"  optimize: {opt_s:.0f} s wall, {opt_cpu:.0f} s CPU here: {stats['mining_states']}")
            index_files = live_files(big_dir / "mining_states")
            groups_after = box_row_groups(index_files, params)
            log(f"  100 m box after optimize: index {groups_after}, flat {flat_groups}")
            log("queries, three ways, after optimize")
            after = time_three_ways(big, flat, params, args.runs, 0)
            results["optimized"] = {
                "seconds": opt_s,
                "cpu_s": opt_cpu,
                "stats": stats["mining_states"],
                "index_files": len(index_files),
                "index_bytes": sum(f.stat().st_size for f in index_files),
                "box_groups": groups_after,
                "queries": after,
            }
            for b, a in zip(queries, after, strict=True):
                log(
                    f"  {a['query']}: before optimize {b['index_p50'] / b['flat_p50']:.2f}x "
                    f"(CPU kept {b['kept_cpu_p50'] / b['flat_cpu_p50']:.2f}x), after "
                    f"{a['index_p50'] / a['flat_p50']:.2f}x "
                    f"(CPU kept {a['kept_cpu_p50'] / a['flat_cpu_p50']:.2f}x)"
                )
        log("events")
        q = EVENTS_QUERY.format(version=tagger_version())
        times = []
        answer = 0
        for _ in range(max(5, args.runs)):
            t0 = time.perf_counter()
            answer = big.sql(q, region=REGION).table.num_rows
            times.append(time.perf_counter() - t0)
        results["events"] = {
            "answer": answer,
            "p50": float(np.percentile(times, 50)),
            "p95": float(np.percentile(times, 95)),
            "runs": len(times),
        }
        log(f"  hard braking: {answer} scenarios, p50 {results['events']['p50']:.3f} s")
        if not args.queries_only:
            text = render(results)
            print(text)
            if not args.no_write:
                write_section(text)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
