"""Ingest speed and peak memory of datadrive's readers against the official loaders, in one run.

Every row of the table is a *case*: a loader (a datadrive adapter, an official
devkit function, or a raw decoder) and the inputs it reads; cases form groups
with one reference each. Speed: one fresh process per group loads all its
loaders and times them in alternating slices (A, B, C, A, B, C, ...), so the
ratio to the reference is taken slice by slice (median reported) and a burst
of load on a shared machine moves both sides of it alike.

Memory: one more fresh process per case, its ``ru_maxrss`` (peak resident set; Linux: KiB):
the absolute peak (imports included, since a loader needs them), its rise over
the warm-up read (one-time lazy initialisation plus one input) and its rise
over the timed reads (leaks, larger inputs).

Add a row: append a :class:`Case` to :data:`CASES` (a loader factory and a
function that lists its inputs). ``adapter_loader("name")`` makes a loader from
any registered datadrive adapter (``count=`` for records that are not counted
by their valid track states); ``sample_inputs(...)`` lists sample files or
folders read as they are.

Usage::

    python benchmarks/ingest.py               # every case, rewrites its section of docs/benchmarks.md
    python benchmarks/ingest.py --group AV2   # only the AV2 rows (about 1 minute)
    python benchmarks/ingest.py --quick       # a fraction of a second per case, nothing written
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# INTERACTION, Lanelet2 map, CommonRoad and NGSIM roadway rows (loaders beside this file)
from ingest_fleet import (
    COMMONROAD_FILES,
    INTERACTION_RECORDING,
    LANELET2_MAPS,
    NGSIM_FILES,
    commonroad_etree_loader,
    interaction_scripts_loader,
    lanelet2_package_loader,
    lanelets_read,
    ngsim_jl_loader,
    polylines_read,
)
from ingest_telemetry import (  # Lyft L5 zarr and telemetry rows (loaders beside this file)
    COMMA_SAMPLE,
    LYFT_SAMPLE,
    UDACITY_SAMPLE,
    comma_numpy_loader,
    lyft_zarr_decode_loader,
    lyft_zarr_loop_loader,
    telemetry_states,
    udacity_pandas_loader,
)

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- ingest.py:begin -->", "<!-- ingest.py:end -->"

Loader = Callable[[Path], int]
"""Reads one input, returns the number of object states it holds."""


# --------------------------------------------------------------------------- loaders


def adapter_loader(
    name: str, count: Callable[[Any], int] | None = None, **options: Any
) -> Callable[[], Loader]:
    """A loader factory for the registered datadrive adapter ``name``.

    Args:
        name: The adapter's name.
        count: A record's count of states for the group (default: a
            Scenario's valid track states, 0 for other records).
        options: Arguments of the adapter's constructor, if not its defaults.
    """

    def make() -> Loader:
        import numpy as np

        from datadrive.core import Scenario
        from datadrive.sources import DEFAULT_REGISTRY

        adapter = type(DEFAULT_REGISTRY.get(name))(**options) if options else DEFAULT_REGISTRY.get(name)

        def valid_states(record: Any) -> int:
            return int(np.count_nonzero(record.tracks.valid)) if isinstance(record, Scenario) else 0

        states = count or valid_states

        def load(path: Path) -> int:
            return sum(states(r) for r in adapter.read(path))

        return load

    return make


def av2_motion_loader() -> Loader:
    from av2.datasets.motion_forecasting.scenario_serialization import load_argoverse_scenario_parquet

    def load(path: Path) -> int:
        scenario = load_argoverse_scenario_parquet(path)
        return sum(len(track.object_states) for track in scenario.tracks)

    return load


def pyarrow_parquet_loader() -> Loader:
    import pyarrow.parquet as pq

    def load(path: Path) -> int:
        return int(pq.ParquetFile(path).read(use_threads=False).num_rows)  # faster than read_table here

    return load


def av2_sensor_loader() -> Loader:
    """What av2 offers for a sensor log: cuboids moved to the city frame, plus the vector map."""
    from av2.map.map_api import ArgoverseStaticMap
    from av2.structures.cuboid import CuboidList
    from av2.utils.io import read_city_SE3_ego

    def load(log: Path) -> int:
        name = "annotations_with_ego.feather"
        cuboids = CuboidList.from_feather(
            log / name if (log / name).is_file() else log / "annotations.feather"
        )
        poses = read_city_SE3_ego(log)
        moved = [c.transform(poses[int(c.timestamp_ns)]) for c in cuboids.cuboids]
        ArgoverseStaticMap.from_map_dir(log / "map", build_raster=False)
        return len(moved)

    return load


def pyarrow_feather_loader() -> Loader:
    import pyarrow.feather as feather

    def load(log: Path) -> int:
        name = "annotations_with_ego.feather"
        table = feather.read_table(log / name if (log / name).is_file() else log / "annotations.feather")
        feather.read_table(log / "city_SE3_egovehicle.feather")
        return int(table.num_rows)

    return load


# --------------------------------------------------------------------------- inputs


MF_SAMPLES = "av2_motion_forecasting"
SENSOR_LOGS = (
    "av2_sensor/adcf7d18-0510-35b0-a2fa-b4cea13a6d76",
    "av2_sensor/7fab2350-7eaf-3b7e-a39d-6937a4c1bede",
    "av2_scenario_mining/3bffdcff-c3a7-38b6-a0f2-64196d130958",
)


def mf_copies(with_map: bool) -> Callable[[Path, Path, int], list[Path]]:
    """The 3 AV2 scenarios, each copied to ``copies`` new paths ``copy-<k>/<id>/scenario_<id>.parquet``.

    AV2's own layout (one folder per scenario, files named by the scenario id), with the map JSON
    beside the parquet or not. Copies make every read a different file, as in a real ingest.
    """

    def prepare(samples: Path, scratch: Path, copies: int) -> list[Path]:
        out = scratch / ("mf_with_map" if with_map else "mf_parquet_only")
        if not out.exists():
            for parquet in sorted((samples / MF_SAMPLES).glob("*/scenario_*.parquet")):
                for k in range(copies):
                    folder = out / f"copy-{k:04d}" / parquet.parent.name
                    folder.mkdir(parents=True)
                    shutil.copyfile(parquet, folder / parquet.name)
                    if with_map:
                        for map_json in parquet.parent.glob("log_map_archive_*.json"):
                            shutil.copyfile(map_json, folder / map_json.name)
        return sorted(out.glob("*/*/scenario_*.parquet"))

    return prepare


def sample_inputs(*relative: str) -> Callable[[Path, Path, int], list[Path]]:
    """Inputs read where they are: ``samples / r`` for each ``r`` (no copies)."""

    def inputs(samples: Path, scratch: Path, copies: int) -> list[Path]:
        return [samples / r for r in relative]

    return inputs


sensor_logs = sample_inputs(*SENSOR_LOGS)
lyft_inputs = sample_inputs(LYFT_SAMPLE)
comma_inputs = sample_inputs(COMMA_SAMPLE)
udacity_inputs = sample_inputs(UDACITY_SAMPLE)
interaction_inputs = sample_inputs(INTERACTION_RECORDING)
lanelet2_inputs = sample_inputs(*LANELET2_MAPS)
commonroad_inputs = sample_inputs(*COMMONROAD_FILES)
ngsim_inputs = sample_inputs(*NGSIM_FILES)


@dataclass(frozen=True)
class Case:
    """One row of the table.

    Attributes:
        name: Row label, unique.
        group: Cases compared with one another; ratios are against the group's reference.
        make: Builds the loader inside the worker process (heavy imports go there).
        inputs: ``(samples, scratch, copies) -> paths``: the inputs, prepared once per run.
        reference: Whether this is the group's reference.
    """

    name: str
    group: str
    make: Callable[[], Loader]
    inputs: Callable[[Path, Path, int], list[Path]]
    reference: bool = False


CASES: list[Case] = [
    Case(
        "av2 load_argoverse_scenario_parquet",
        "AV2 motion forecasting",
        av2_motion_loader,
        mf_copies(False),
        True,
    ),
    Case(
        "datadrive av2_motion_forecasting",
        "AV2 motion forecasting",
        adapter_loader("av2_motion_forecasting"),
        mf_copies(False),
    ),
    Case(
        "datadrive av2_motion_forecasting + map JSON",
        "AV2 motion forecasting",
        adapter_loader("av2_motion_forecasting"),
        mf_copies(True),
    ),
    Case(
        "pyarrow ParquetFile.read, all columns (decode only)",
        "AV2 motion forecasting",
        pyarrow_parquet_loader,
        mf_copies(False),
    ),
    Case(
        "av2 CuboidList + SE3 to city + static map", "AV2 sensor logs", av2_sensor_loader, sensor_logs, True
    ),
    Case("datadrive av2_sensor (with map)", "AV2 sensor logs", adapter_loader("av2_sensor"), sensor_logs),
    Case("pyarrow.feather.read_table (decode only)", "AV2 sensor logs", pyarrow_feather_loader, sensor_logs),
    Case(
        "zarr 2 + per-frame Python loop (l5kit-style)",
        "Lyft L5 zarr",
        lyft_zarr_loop_loader,
        lyft_inputs,
        True,
    ),
    Case("datadrive lyft_l5kit", "Lyft L5 zarr", adapter_loader("lyft_l5kit"), lyft_inputs),
    Case("zarr 2 read of every array (decode only)", "Lyft L5 zarr", lyft_zarr_decode_loader, lyft_inputs),
    Case(
        "np.load every array + pyproj ECEF->ENU", "comma2k19 segment", comma_numpy_loader, comma_inputs, True
    ),
    Case(
        "datadrive comma2k19",
        "comma2k19 segment",
        adapter_loader("comma2k19", count=telemetry_states),
        comma_inputs,
    ),
    Case(
        "pandas.read_csv + to_datetime(index)",
        "Udacity steering CSV",
        udacity_pandas_loader,
        udacity_inputs,
        True,
    ),
    Case(
        "datadrive udacity_steering",
        "Udacity steering CSV",
        adapter_loader("udacity_steering", count=telemetry_states),
        udacity_inputs,
    ),
    Case(
        "INTERACTION scripts: csv rows -> MotionState objects + lanelet2 map",
        "INTERACTION recording",
        interaction_scripts_loader,
        interaction_inputs,
        True,
    ),
    Case(
        "datadrive interaction (11 s windows + Lanelet2 map)",
        "INTERACTION recording",
        adapter_loader("interaction"),
        interaction_inputs,
    ),
    Case(
        "lanelet2.io.load + centerlines/borders to numpy",
        "Lanelet2 maps",
        lanelet2_package_loader,
        lanelet2_inputs,
        True,
    ),
    Case(
        "datadrive lanelet2_map",
        "Lanelet2 maps",
        adapter_loader("lanelet2_map", count=lanelets_read),
        lanelet2_inputs,
    ),
    Case(
        "ElementTree.parse + states/bounds to dicts/numpy (CommonRoad)",
        "CommonRoad XML",
        commonroad_etree_loader,
        commonroad_inputs,
        True,
    ),
    Case("datadrive commonroad", "CommonRoad XML", adapter_loader("commonroad"), commonroad_inputs),
    Case("NGSIM.jl line parser in Python", "NGSIM roadway text", ngsim_jl_loader, ngsim_inputs, True),
    Case(
        "datadrive ngsim_roadway",
        "NGSIM roadway text",
        adapter_loader("ngsim_roadway", count=polylines_read),
        ngsim_inputs,
    ),
]


# --------------------------------------------------------------------------- measurement


def _load_all(load: Loader, paths: list[Path], position: int, seconds: float) -> tuple[int, int, float, int]:
    """Read inputs round-robin from ``position`` for at least ``seconds`` (at least one input).

    Returns:
        ``(items, states, elapsed_s, next_position)``.
    """
    items = states = 0
    start = time.perf_counter()
    while True:
        states += load(paths[position % len(paths)])
        position += 1
        items += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return items, states, elapsed, position


def rate_worker(group: str, lists: dict[str, str], slice_s: float, slices: int) -> dict[str, Any]:
    """Inside one fresh process: every loader of ``group``, timed in alternating slices.

    Loader A, B, C, A, B, C, ...: a burst of outside load hits the slices of
    every case alike, and each slice's rate is paired with the reference's
    slice of the same turn.
    """
    cases = [c for c in CASES if c.group == group and c.name in lists]
    loads = {c.name: c.make() for c in cases}
    paths = {c.name: [Path(p) for p in Path(lists[c.name]).read_text().splitlines()] for c in cases}
    position = dict.fromkeys(loads, 0)
    for name, load in loads.items():
        load(paths[name][0])  # warm-up: first-call imports and caches, not timed
    out: dict[str, Any] = {name: {"rates": [], "states_rates": []} for name in loads}
    for _ in range(slices):
        for name, load in loads.items():
            items, states, elapsed, position[name] = _load_all(load, paths[name], position[name], slice_s)
            out[name]["rates"].append(items / elapsed)
            out[name]["states_rates"].append(states / elapsed)
    return out


def memory_worker(case_name: str, list_file: Path, seconds: float) -> dict[str, Any]:
    """Inside a fresh process: one loader's peak resident memory (``ru_maxrss``, KiB on Linux)."""
    case = next(c for c in CASES if c.name == case_name)
    load = case.make()
    paths = [Path(p) for p in list_file.read_text().splitlines()]
    rss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    load(paths[0])
    rss_warm_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _load_all(load, paths, 1, seconds)
    rss_after_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "peak_rss_mib": rss_after_kib / 1024,
        "first_read_mib": (rss_warm_kib - rss_before_kib) / 1024,
        "loop_growth_mib": (rss_after_kib - rss_warm_kib) / 1024,
    }


def _subprocess(*args: str) -> Any:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, str(Path(__file__).resolve()), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"worker {args[:2]} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> str:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())
        model = found.group(1).strip() if found else model
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    from importlib.metadata import PackageNotFoundError, version

    versions = []
    for package in ("numpy", "pyarrow", "pandas", "av2"):
        with contextlib.suppress(PackageNotFoundError):
            versions.append(f"{package} {version(package)}")
    return (
        f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {', '.join(versions)}; load average {load:.2f} at start"
    )


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| group | case | scenarios/s | states/s | vs reference | peak RSS MiB | first read +MiB "
        "| loop +MiB |\n"
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    )
    lines = []
    for r in rows:
        lo, hi = r["ratio_range"]
        ratio = "reference" if r["reference"] else f"{r['ratio']:.1f}x ({lo:.1f}-{hi:.1f})"
        lines.append(
            f"| {r['group']} | {r['name']} | {r['rate']:.1f} | {r['states_rate']:,.0f} | {ratio} "
            f"| {r['peak_rss_mib']:.0f} | {r['first_read_mib']:.1f} | {r['loop_growth_mib']:.1f} |"
        )
    return head + "\n".join(lines) + "\n"


def write_doc(section: str) -> None:
    DOC.parent.mkdir(exist_ok=True)
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{section.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 short slices per case, docs untouched")
    parser.add_argument("--slices", type=int, default=16, help="timed slices per case (default 16)")
    parser.add_argument("--slice-time", type=float, default=0.2, help="seconds per slice (default 0.2)")
    parser.add_argument("--memory-time", type=float, default=0.5, help="seconds of reads per memory worker")
    parser.add_argument("--copies", type=int, default=40, help="copies of each AV2 scenario (default 40)")
    parser.add_argument("--samples", type=Path, default=None, help="sample folder (DATADRIVE_SAMPLES)")
    parser.add_argument("--cases", default="", help="only cases whose name contains this text")
    parser.add_argument("--group", default="", help="only groups whose name contains this text (e.g. AV2)")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--rate-worker", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--memory-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rate_worker:
        group, lists, slice_s, slices = args.rate_worker
        print(json.dumps(rate_worker(group, json.loads(lists), float(slice_s), int(slices))))
        return
    if args.memory_worker:
        name, list_file, seconds = args.memory_worker
        print(json.dumps(memory_worker(name, Path(list_file), float(seconds))))
        return
    if args.quick:
        args.slices, args.slice_time, args.memory_time, args.copies, args.no_write = 3, 0.15, 0.3, 5, True
    samples = args.samples or Path(os.environ.get("DATADRIVE_SAMPLES", REPO.parent / "shared" / "data"))
    if not (samples / MF_SAMPLES).is_dir():
        raise SystemExit(f"no AV2 samples under {samples} (set DATADRIVE_SAMPLES)")
    cases = [c for c in CASES if args.cases in c.name and args.group in c.group]
    started = datetime.now(UTC)
    where = machine()
    rates: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="datadrive-bench-") as tmp:
        scratch = Path(tmp)
        lists: dict[str, Path] = {}
        for i, case in enumerate(cases):
            paths = case.inputs(samples, scratch, args.copies)
            lists[case.name] = scratch / f"inputs-{i}.txt"
            lists[case.name].write_text("\n".join(str(p) for p in paths))
        for group in dict.fromkeys(c.group for c in cases):
            names = {c.name: str(lists[c.name]) for c in cases if c.group == group}
            got = _subprocess(
                "--rate-worker", group, json.dumps(names), str(args.slice_time), str(args.slices)
            )
            rates.update(got)
            for name in names:
                print(f"{group:24s} {name:56s} {max(got[name]['rates']):10.1f} /s", flush=True)
        for case in cases:
            memory[case.name] = _subprocess(
                "--memory-worker", case.name, str(lists[case.name]), str(args.memory_time)
            )
    rows = []
    for case in cases:
        ref = next((c for c in cases if c.group == case.group and c.reference), None)
        mine = rates[case.name]["rates"]
        paired = [a / b for a, b in zip(mine, rates[ref.name]["rates"], strict=True)] if ref else [math.nan]
        best = max(range(len(mine)), key=mine.__getitem__)
        rows.append(
            {
                "group": case.group,
                "name": case.name,
                "reference": case.reference,
                "rate": mine[best],
                "states_rate": rates[case.name]["states_rates"][best],
                "ratio": statistics.median(paired),
                "ratio_range": (min(paired), max(paired)),
                **memory[case.name],
            }
        )
    result = table(rows)
    print()
    print(result)
    section = (
        "## Ingest: datadrive readers against the official loaders (`benchmarks/ingest.py`)\n\n"
        f"Run {started:%Y-%m-%d %H:%M} UTC on {where}.\n\n"
        "**Speed.** One fresh process per group loads every loader of the group, reads one warm-up input "
        f"with each, then times them in turn, {args.slices} slices of {args.slice_time:g} s each (A, B, C, "
        "A, B, C, ...), each slice reading inputs round-robin. *scenarios/s* and *states/s* are a case's "
        "fastest slice; *vs reference* is the median, over the slices, of the case's rate divided by the "
        "reference's rate in the same turn (min-max in brackets), so a burst of outside load on a shared "
        "machine moves both sides of each ratio. AV2 motion forecasting: the 3 sample scenarios, "
        f"{args.copies} copies each at new paths (one folder per scenario with AV2's own file names); "
        "sensor: the 3 sample logs (2 sensor-dataset, 1 scenario-mining).\n\n"
        "**Memory.** One more fresh process per case: its `ru_maxrss` (peak resident set, Linux). *peak RSS* "
        "includes the loader's imports; *first read* is the rise over the first read (one-time lazy "
        "initialisation such as pyarrow compute kernels or pandas, plus one input); *loop* is the further "
        f"rise over {args.memory_time:g} s of reads (a leak or a larger input would show here).\n\n" + result
    )
    if not args.no_write:
        write_doc(section)
        print(f"wrote {DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
