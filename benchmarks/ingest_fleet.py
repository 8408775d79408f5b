"""Loaders and inputs of the INTERACTION, Lanelet2 map, CommonRoad and NGSIM roadway rows of ``ingest.py``.

The rows are :class:`ingest.Case` entries in ``benchmarks/ingest.py`` (the
shared harness, which also makes the datadrive loaders); this module holds
their reference loaders, sample paths and counting rules, and ``main`` checks
that the cases of each group count the same for every input.

A loader returns a count that every case of its group counts the same way:

* INTERACTION: object states (CSV rows of both files: 18,076 per recording);
* Lanelet2 maps: lanelets read (maps hold no states);
* CommonRoad: obstacle states (initial + trajectory states);
* NGSIM roadway: polylines read.

References, each the pipeline a user of the dataset reaches for:

* INTERACTION: the dataset's own ``dataset_reader.py`` approach (``csv``
  rows into a ``MotionState`` object per row, per track dicts) plus the map
  through lanelet2's C++ loader (``lanelet2.io.loadRobust`` with
  ``UtmProjector(Origin(0, 0))``), as ``main_visualize_data.py`` does;
* Lanelet2 maps: ``lanelet2.io.loadRobust`` and each lanelet's centerline and
  borders copied into numpy arrays (what a learning pipeline needs);
* CommonRoad: ``xml.etree.ElementTree.parse`` and every state and lanelet
  bound into Python dicts / numpy arrays, without checks (commonroad-io is
  not installed: it pins protobuf 3, which the Waymo reader cannot share);
* NGSIM roadway: NGSIM.jl's ``read_boundaries``/``read_centerlines`` line
  parser, in Python, into numpy arrays of metres.

Usage (one group at a time; ``--no-write`` keeps the harness's own docs section as it is)::

    python benchmarks/ingest.py --group INTERACTION --no-write
    python benchmarks/ingest.py --group Lanelet2 --no-write
    python benchmarks/ingest.py --group CommonRoad --no-write
    python benchmarks/ingest.py --group NGSIM --no-write
    python benchmarks/ingest_fleet.py   # checks that each group's cases count the same per input
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

Loader = Callable[[Path], int]

INTERACTION_RECORDING = "interaction/recorded_trackfiles/DR_USA_Intersection_EP0/vehicle_tracks_000.csv"
LANELET2_MAPS = (  # the maps lanelet2 loads with every lanelet whole (its centerline crashes on the others)
    "lanelet2_map/mapping_example.osm",
    "interaction/maps/DR_USA_Intersection_EP0.osm",
    "interaction/maps/DR_DEU_Roundabout_OF.osm",
    "interaction/maps/DR_CHN_Merging_ZS.osm",
)
COMMONROAD_FILES = tuple(
    f"commonroad_ngsim/{name}"
    for name in ("USA_US101-3_3_T-1.xml", "USA_Lanker-1_1_T-1.xml", "USA_Peach-4_8_T-1.xml")
)
NGSIM_FILES = ("ngsim_roadway/boundaries101.txt", "ngsim_roadway/centerlines101.txt")
GROUPS = ("INTERACTION recording", "Lanelet2 maps", "CommonRoad XML", "NGSIM roadway text")
BEGIN, END = "<!-- ingest_fleet.py:begin -->", "<!-- ingest_fleet.py:end -->"


# --------------------------------------------------------------------------- counts of map-only records


def lanelets_read(record: Any) -> int:
    """Lanelet2 maps: the lanelets of a map-only record (``count`` of ``ingest.adapter_loader``)."""
    return int(record.metadata.extras["num_lanelets"])


def polylines_read(record: Any) -> int:
    """NGSIM roadway: the polylines of a map-only record (``count`` of ``ingest.adapter_loader``)."""
    return 0 if record.map is None else int(record.map.num_features)


# --------------------------------------------------------------------------- references


class _MotionState:
    """One row of an INTERACTION track, as the dataset's ``dataset_reader.py`` keeps it."""

    __slots__ = ("psi_rad", "time_stamp_ms", "vx", "vy", "x", "y")

    def __init__(self, time_stamp_ms: int) -> None:
        self.time_stamp_ms = time_stamp_ms


class _Track:
    __slots__ = ("agent_type", "length", "motion_states", "track_id", "width")

    def __init__(self, track_id: str) -> None:
        self.track_id = track_id
        self.motion_states: dict[int, _MotionState] = {}


def _read_interaction_csv(path: Path, vehicles: bool) -> dict[str, _Track]:
    tracks: dict[str, _Track] = {}
    with path.open(newline="") as fh:
        rows = csv.reader(fh)
        header = next(rows)
        col = {name: i for i, name in enumerate(header)}
        for row in rows:
            tid = row[col["track_id"]]
            track = tracks.get(tid)
            if track is None:
                track = tracks[tid] = _Track(tid)
                track.agent_type = row[col["agent_type"]]
                if vehicles:
                    track.length, track.width = float(row[col["length"]]), float(row[col["width"]])
            ms = _MotionState(int(row[col["timestamp_ms"]]))
            ms.x, ms.y = float(row[col["x"]]), float(row[col["y"]])
            ms.vx, ms.vy = float(row[col["vx"]]), float(row[col["vy"]])
            if vehicles:
                ms.psi_rad = float(row[col["psi_rad"]])
            track.motion_states[ms.time_stamp_ms] = ms
    return tracks


def interaction_scripts_loader() -> Loader:
    import lanelet2
    from lanelet2.io import Origin
    from lanelet2.projection import UtmProjector

    def load(vehicle_csv: Path) -> int:
        vehicles = _read_interaction_csv(vehicle_csv, True)
        pedestrian_csv = vehicle_csv.with_name(vehicle_csv.name.replace("vehicle", "pedestrian"))
        pedestrians = _read_interaction_csv(pedestrian_csv, False) if pedestrian_csv.is_file() else {}
        map_path = vehicle_csv.parents[2] / "maps" / f"{vehicle_csv.parent.name}.osm"
        lanelet2.io.loadRobust(str(map_path), UtmProjector(Origin(0, 0)))
        return sum(len(t.motion_states) for t in (*vehicles.values(), *pedestrians.values()))

    return load


def lanelet2_package_loader() -> Loader:
    import lanelet2
    import numpy as np
    from lanelet2.io import Origin
    from lanelet2.projection import UtmProjector

    def load(path: Path) -> int:
        origin = Origin(49.0, 8.4) if "mapping_example" in path.name else Origin(0, 0)
        lanelet_map, _errors = lanelet2.io.loadRobust(str(path), UtmProjector(origin))
        arrays = []
        for ll in lanelet_map.laneletLayer:
            for line in (ll.centerline, ll.leftBound, ll.rightBound):
                arrays.append(np.array([[p.x, p.y, p.z] for p in line]))
        return len(lanelet_map.laneletLayer)

    return load


def commonroad_etree_loader() -> Loader:
    import xml.etree.ElementTree as ET

    import numpy as np

    def load(path: Path) -> int:
        root = ET.parse(path).getroot()
        states = 0
        for obstacle in root:
            if obstacle.tag not in ("obstacle", "dynamicObstacle", "staticObstacle"):
                continue
            initial = obstacle.find("initialState")
            trajectory = [initial, *obstacle.findall("trajectory/state")] if initial is not None else []
            parsed = [
                {
                    "time": int(s.findtext("time/exact", "0")),
                    "x": float(s.findtext("position/point/x", "nan")),
                    "y": float(s.findtext("position/point/y", "nan")),
                    "orientation": float(s.findtext("orientation/exact", "nan")),
                    "velocity": float(s.findtext("velocity/exact", "nan")),
                }
                for s in trajectory
            ]
            states += len(parsed)
        for lanelet in root.findall("lanelet"):
            for bound in ("leftBound", "rightBound"):
                np.array(
                    [
                        [float(p.findtext("x", "")), float(p.findtext("y", ""))]
                        for p in lanelet.findall(f"{bound}/point")
                    ]
                )
        return states

    return load


_FLOAT = re.compile(r"[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?")


def ngsim_jl_loader() -> Loader:
    import numpy as np

    def load(path: Path) -> int:
        lines = [line.strip() for line in path.read_text().splitlines()]
        count, i, out = int(lines[1]), 2, []
        for _ in range(count):
            i += 2 if lines[i] == "CENTERLINE" else 1  # "CENTERLINE" + name, or "BOUNDARY i"
            n = int(lines[i])
            pts = [[float(m.group()) for m in _FLOAT.finditer(lines[i + 1 + j])][:2] for j in range(n)]
            out.append(np.array(pts) * (1200.0 / 3937.0))
            i += 1 + n
        return len(out)

    return load


# --------------------------------------------------------------------------- count check


def main() -> None:
    """Check that every case of these groups counts the same as its reference, input by input."""
    import ingest  # the shared harness, beside this file

    samples = Path(os.environ.get("DATADRIVE_SAMPLES", ingest.REPO.parent / "shared" / "data"))
    cases = [c for c in ingest.CASES if c.group in GROUPS]
    with tempfile.TemporaryDirectory(prefix="datadrive-bench-") as tmp:
        for ref in (c for c in cases if c.reference):
            inputs = ref.inputs(samples, Path(tmp), 1)
            expected = [ref.make()(p) for p in inputs]
            for case in (c for c in cases if c.group == ref.group and not c.reference):
                got = [case.make()(p) for p in inputs]
                if got != expected:
                    raise SystemExit(f"{case.name} counts {got} for the inputs, its reference {expected}")
            print(f"{ref.group}: every case counts {expected} for its {len(inputs)} input(s)")


if __name__ == "__main__":
    main()
