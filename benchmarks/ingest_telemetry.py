"""Loaders and inputs of the Lyft L5 zarr, comma2k19 and Udacity rows of ``benchmarks/ingest.py``.

The rows themselves are :class:`ingest.Case` entries in ``benchmarks/ingest.py``
(the shared harness, which also makes the datadrive loaders); this module only
holds their reference loaders, sample paths and the telemetry counting rule.

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

Usage (one group at a time; ``--no-write`` keeps the harness's own docs section as it is)::

    python benchmarks/ingest.py --group "Lyft L5" --no-write
    python benchmarks/ingest.py --group comma2k19 --no-write
    python benchmarks/ingest.py --group Udacity --no-write
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

Loader = Callable[[Path], int]

LYFT_SAMPLE = "lyft_l5kit/single_scene.zarr"
COMMA_SAMPLE = "comma2k19/b0c9d2329ad1606b_2018-08-02--08-34-47/40"
UDACITY_SAMPLE = "udacity_steering/train_round2_part1.txt"


# --------------------------------------------------------------------------- datadrive count


def telemetry_states(record: Any) -> int:
    """Signal samples + raw CAN frames + ego poses of a Telemetry (``ingest.adapter_loader``'s count)."""
    import numpy as np

    from datadrive.core.telemetry import Telemetry

    assert isinstance(record, Telemetry)
    total = sum(int(s.timestamps_ns.shape[0]) for s in record.signals)
    if record.can_frames is not None:
        total += int(record.can_frames.timestamps_ns.shape[0])
    if record.ego is not None:
        total += int(np.count_nonzero(record.ego.tracks.valid))
    return total


# --------------------------------------------------------------------------- references


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
