"""Ingest rows for the Lyft L5 zarr, comma2k19 and Udacity readers, and a runner for just those rows.

The rows themselves are :class:`ingest.Case` entries in ``benchmarks/ingest.py``
(the shared harness: one fresh process per case, interleaved rounds, best round,
``ru_maxrss``); this module holds their loaders and inputs, and ``main`` runs
only these groups and rewrites their own section of ``docs/benchmarks.md``.

A loader returns the number of *states* it produced, counted the same way by
every case of a group so that states/s compare:

* Lyft: valid track states, the ego included (agent rows + frames);
* comma2k19: rows of every signal (the 14 processed logs and the 4 pose
  arrays) + raw CAN frames + ego poses;
* Udacity: 3 signals x rows.

References (each the straightforward pipeline with the tool a user reaches for):

* Lyft: zarr-python 2 (what l5kit's ``ChunkedDataset`` wraps) and a Python loop
  over frames and their agent rows into per-track arrays; and zarr's decode alone;
* comma2k19: ``np.load`` of every array plus pyproj's ECEF -> geodetic ->
  topocentric (ENU) transform of the poses (no checks, no CAN payload work, no hash);
* Udacity: ``pandas.read_csv`` plus ``pd.to_datetime`` of the ``index`` column
  for exact times.

Usage::

    python benchmarks/ingest_telemetry.py           # about a minute, rewrites its docs section
    python benchmarks/ingest_telemetry.py --quick   # a few seconds per case, nothing written
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Loader = Callable[[Path], int]

LYFT_SAMPLE = "lyft_l5kit/single_scene.zarr"
COMMA_SAMPLE = "comma2k19/b0c9d2329ad1606b_2018-08-02--08-34-47/40"
UDACITY_SAMPLE = "udacity_steering/train_round2_part1.txt"
GROUPS = ("Lyft L5 zarr", "comma2k19 segment", "Udacity steering CSV")
BEGIN, END = "<!-- ingest_telemetry.py:begin -->", "<!-- ingest_telemetry.py:end -->"


# --------------------------------------------------------------------------- inputs


def lyft_inputs(samples: Path, scratch: Path, copies: int) -> list[Path]:
    return [samples / LYFT_SAMPLE]


def comma_inputs(samples: Path, scratch: Path, copies: int) -> list[Path]:
    return [samples / COMMA_SAMPLE]


def udacity_inputs(samples: Path, scratch: Path, copies: int) -> list[Path]:
    return [samples / UDACITY_SAMPLE]


# --------------------------------------------------------------------------- loaders


def telemetry_loader(name: str) -> Callable[[], Loader]:
    """A loader factory for a registered telemetry adapter (states: samples + CAN frames + ego poses)."""

    def make() -> Loader:
        import numpy as np

        from datadrive.core.telemetry import Telemetry
        from datadrive.sources import DEFAULT_REGISTRY

        adapter = DEFAULT_REGISTRY.get(name)

        def load(path: Path) -> int:
            total = 0
            for record in adapter.read(path):
                assert isinstance(record, Telemetry)
                total += sum(int(s.timestamps_ns.shape[0]) for s in record.signals)
                if record.can_frames is not None:
                    total += int(record.can_frames.timestamps_ns.shape[0])
                if record.ego is not None:
                    total += int(np.count_nonzero(record.ego.tracks.valid))
            return total

        return load

    return make


def lyft_zarr_loop_loader() -> Loader:
    """zarr-python 2 and a Python loop over each frame's agent rows into (A, T) arrays."""
    import numpy as np
    import zarr

    def load(path: Path) -> int:
        group = zarr.open_group(str(path), mode="r")
        states = 0
        for scene in group["scenes"][:]:
            f0, f1 = (int(x) for x in scene["frame_index_interval"])
            frames = group["frames"][f0:f1]
            a0, a1 = int(frames[0]["agent_index_interval"][0]), int(frames[-1]["agent_index_interval"][1])
            agents = group["agents"][a0:a1]
            rows: dict[int, dict[int, Any]] = {}
            for t, frame in enumerate(frames):
                start, end = (int(x) - a0 for x in frame["agent_index_interval"])
                for agent in agents[start:end]:
                    rows.setdefault(int(agent["track_id"]), {})[t] = agent
            ids = sorted(rows)
            xy = np.zeros((len(ids) + 1, len(frames), 2))
            yaw = np.zeros((len(ids) + 1, len(frames)))
            valid = np.zeros((len(ids) + 1, len(frames)), dtype=bool)
            xy[0], valid[0] = frames["ego_translation"][:, :2], True
            for i, tid in enumerate(ids, start=1):
                for t, agent in rows[tid].items():
                    xy[i, t], yaw[i, t], valid[i, t] = agent["centroid"], agent["yaw"], True
            states += int(valid.sum())
        return states

    return load


def lyft_zarr_decode_loader() -> Loader:
    """zarr-python 2 reading every array whole: the decode floor."""
    import zarr

    def load(path: Path) -> int:
        group = zarr.open_group(str(path), mode="r")
        frames, agents = group["frames"][:], group["agents"][:]
        group["scenes"][:], group["traffic_light_faces"][:]
        return int(agents.shape[0] + frames.shape[0])

    return load


def comma_numpy_loader() -> Loader:
    """``np.load`` of every array and pyproj's ECEF -> ENU of the poses."""
    import numpy as np
    import pyproj

    to_geodetic = pyproj.Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)

    def load(path: Path) -> int:
        states = 0
        for folder in sorted((path / "processed_log").glob("*/*")):
            if folder.name == "raw_can":
                arrays = [np.load(folder / n) for n in ("t", "src", "address", "data")]
                states += int(arrays[0].shape[0])
            else:
                np.load(folder / "t")
                states += int(np.load(folder / "value").shape[0])
        pose = path / "global_pose"
        np.load(pose / "frame_times")
        for name in ("frame_positions", "frame_velocities", "frame_orientations", "frame_gps_times"):
            states += int(np.load(pose / name).shape[0])
        ecef = np.load(pose / "frame_positions")
        lon0, lat0, alt0 = to_geodetic.transform(*ecef[0])
        topo = pyproj.Transformer.from_pipeline(
            f"+proj=topocentric +ellps=WGS84 +lat_0={lat0} +lon_0={lon0} +h_0={alt0}"
        )
        east, _north, _up = topo.transform(ecef[:, 0], ecef[:, 1], ecef[:, 2])
        return states + int(np.asarray(east).shape[0])

    return load


def udacity_pandas_loader() -> Loader:
    """``pandas.read_csv`` and exact ns times from the ``index`` datetimes."""
    import pandas as pd  # type: ignore[import-untyped]

    def load(path: Path) -> int:
        frame = pd.read_csv(path)
        pd.to_datetime(frame["index"]).to_numpy().astype("int64")
        columns = [frame[c].to_numpy(dtype="float64") for c in ("angle", "torque", "speed")]
        return sum(int(c.shape[0]) for c in columns)

    return load


NOTES = """
What the rows measure, and where the time goes (cProfile on the samples):

- **Lyft.** The reference is what l5kit's `ChunkedDataset` offers, zarr 2 arrays, with the
  per-frame loop a user writes to get tracks out of it. The datadrive row decodes the blosc
  chunks itself (numcodecs, header and byte counts checked against `.zarray`), reads only the
  chunks a scene spans, hashes the folder, and scatters agent rows into `(A, T)` arrays with
  one fancy-index assignment per quantity; per-track labels (bincount of the probabilities) and
  median extents (one sort of packed `(track, value)` keys) are vectorised. The decode-only
  row is a floor that builds no tracks. In datadrive's profile the largest items are the
  scatter itself, the blosc decompression of whole chunks (l5kit's chunks hold 10,000 frames or
  20,000 agents, so a 248-frame scene still inflates 6.5 MB) and filling the dense `(A, T)`
  arrays (NaN where there is no state), each 10-25 % of the time.
- **comma2k19.** The reference loads every array with `np.load` and converts the poses with
  pyproj; it checks nothing. The datadrive row also checks every `.npy` header against its
  size (no pickle), every timestamp, shape and dtype, derives each CAN message's payload length
  per (bus, address), builds and validates the ENU ego track, and hashes the 37 files it read
  (from the bytes already in memory).
- **Udacity.** The reference is `pandas.read_csv` and `to_datetime` of the `index` column.
  The datadrive row reads the columns it uses with pyarrow as text, takes the exact ns from the
  file names, cross-checks the `index` datetimes and the float-rounded `timestamp` column, and
  names any bad row; its larger first-read memory is Arrow's allocator and kernels warming up.
"""


# --------------------------------------------------------------------------- runner


def main() -> None:
    import ingest  # the shared harness, beside this file

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 round, 0.5 s per case, docs untouched")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=2.5)
    parser.add_argument("--samples", type=Path, default=None)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.min_time, args.no_write = 1, 0.5, True
    samples = args.samples or Path(
        os.environ.get("DATADRIVE_SAMPLES", ingest.REPO.parent / "shared" / "data")
    )
    cases = [c for c in ingest.CASES if c.group in GROUPS]
    started, where = datetime.now(UTC), ingest.machine()
    best: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="datadrive-bench-") as tmp:
        lists: dict[str, Path] = {}
        for i, case in enumerate(cases):
            lists[case.name] = Path(tmp) / f"inputs-{i}.txt"
            lists[case.name].write_text("\n".join(str(p) for p in case.inputs(samples, Path(tmp), 1)))
        for r in range(args.rounds):
            for case in cases:
                got = ingest.measure(case, lists[case.name], args.min_time)
                got["rate"] = got["items"] / got["seconds"]
                print(f"round {r + 1}/{args.rounds}  {case.name:48s} {got['rate']:9.1f} /s", flush=True)
                if case.name not in best or got["rate"] > best[case.name]["rate"]:
                    best[case.name] = got
    rows = []
    for case in cases:
        got = best[case.name]
        ref = next(c for c in cases if c.group == case.group and c.reference)
        per_item = got["states"] / max(got["items"], 1)
        ref_per_item = best[ref.name]["states"] / max(best[ref.name]["items"], 1)
        if per_item != ref_per_item:
            raise SystemExit(f"{case.name}: {per_item} states per input, its reference {ref_per_item}")
        rows.append(  # every measured figure, so ingest.table finds the memory columns it prints
            {
                **got,
                "group": case.group,
                "name": case.name,
                "reference": case.reference,
                "states_rate": got["states"] / got["seconds"],
                "ratio": got["rate"] / best[ref.name]["rate"],
            }
        )
    result = ingest.table(rows).replace("| scenarios/s |", "| inputs/s |")
    print()
    print(result)
    section = (
        "## Ingest: Lyft L5 zarr and telemetry readers (`benchmarks/ingest_telemetry.py`)\n\n"
        f"Run {started:%Y-%m-%d %H:%M} UTC on {where}.\n"
        f"{args.rounds} interleaved rounds of the `benchmarks/ingest.py` harness, each case in a fresh "
        f"process reading for {args.min_time:g} s after one warm-up read; the best round is shown. One input "
        "is: Lyft, the sample zarr (1 scene, 248 frames, 20,802 agent rows; states = agent rows + ego "
        "frames); comma2k19, the sample 60 s segment (states = rows of all 18 signals + 135,468 CAN frames "
        "+ 1,200 ego poses); Udacity, the 220 s sample CSV (states = 3 signals x 4,401 rows). Every case "
        "of a group counts the same states per input (checked by the runner). Memory columns are "
        "`ru_maxrss` figures of the worker, as `benchmarks/ingest.py` defines them.\n\n" + result + NOTES
    )
    if not args.no_write:
        text = ingest.DOC.read_text() if ingest.DOC.exists() else "# Benchmarks\n"
        block = f"{BEGIN}\n{section.rstrip()}\n{END}"
        if BEGIN in text and END in text:
            text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
        ingest.DOC.parent.mkdir(exist_ok=True)
        ingest.DOC.write_text(text)
        print(f"wrote {ingest.DOC.relative_to(ingest.REPO)}")


if __name__ == "__main__":
    main()
