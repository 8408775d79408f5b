"""nuPlan log databases (``*.db``, SQLite).

One nuPlan log is one SQLite file (``2021.09.16.14.14.03_veh-45_00441_00502.db``)
with the tables ``log``, ``lidar_pc`` (20 Hz sweeps), ``ego_pose`` (100 Hz, UTM),
``lidar_box`` (tracked boxes per sweep, global frame), ``track``, ``category``,
``scene``, ``scenario_tag`` and ``traffic_light_status``. This adapter reads one
file into one :class:`Scenario` (``scenario_id`` = the file stem):

* time grid: the ``lidar_pc`` timestamps (µs -> ns), sorted;
* the ego (track ``"ego"``) from the ``ego_pose`` each sweep names: position as
  stored (nuPlan's ego pose is the **rear axle**), yaw from the quaternion, and
  velocity rotated into the global frame (nuplan-devkit builds ``EgoState``
  with ``rear_axle_velocity_2d=StateVector2D(vx, vy)``, i.e. vx/vy are in the
  ego frame). Its size is the Chrysler Pacifica of nuplan-devkit's
  ``get_pacifica_parameters()``: length 4.049 + 1.127 m, width 2 x 1.1485 m,
  height 1.777 m;
* agents from ``lidar_box`` joined to ``lidar_pc`` (the step), ``track`` (size)
  and ``category`` (label): x, y, z, yaw, vx, vy as stored (global frame).
  Track ids are the hex of the track token;
* ``traffic_light_status`` -> :class:`TrafficLights` keyed by lane connector id;
* scenario tags, scenes and the log's facts -> ``metadata.extras``;
* frame ``utm_epsg_<epsg>`` from ``ego_pose.epsg``; no map ships with the logs
  (``map`` is None).

The file is opened read-only and immutable (``mode=ro&immutable=1``): SQLite
takes no locks and writes nothing (no journal, no -wal/-shm files). Columns are
fetched in bulk with SQL joins and turned into numpy arrays; a progress handler
bounds the work any query may do, so a corrupt file cannot make a read hang.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from datadrive.core.scenario import ObjectType, Scenario, Tracks, TrafficLights, TrafficLightState
from datadrive.core.typing import NDArrayAny, NDArrayFloat, NDArrayInt
from datadrive.errors import (
    CorruptFileError,
    EmptyLogError,
    InvalidValueError,
    SchemaMismatchError,
)
from datadrive.sources.base import Adapter, Record, file_sha256

__all__ = ["EGO_SIZE_M", "NuPlanAdapter"]

_SQLITE_MAGIC = b"SQLite format 3\x00"

_REQUIRED: dict[str, tuple[str, ...]] = {
    "log": ("token", "vehicle_name", "date", "timestamp", "logfile", "location", "map_version"),
    "lidar_pc": ("token", "ego_pose_token", "timestamp"),
    "ego_pose": ("token", "timestamp", "x", "y", "z", "qw", "qx", "qy", "qz", "vx", "vy", "epsg"),
    "lidar_box": ("lidar_pc_token", "track_token", "x", "y", "z", "vx", "vy", "yaw", "confidence"),
    "track": ("token", "category_token", "width", "length", "height"),
    "category": ("token", "name"),
}
_OPTIONAL: dict[str, tuple[str, ...]] = {
    "scene": ("token", "name", "roadblock_ids"),
    "scenario_tag": ("lidar_pc_token", "type", "agent_track_token"),
    "traffic_light_status": ("lidar_pc_token", "lane_connector_id", "status"),
}

_CATEGORY_TYPES = {
    "vehicle": ObjectType.VEHICLE,
    "bicycle": ObjectType.CYCLIST,
    "pedestrian": ObjectType.PEDESTRIAN,
}
"""nuPlan categories with a coarse type of their own; traffic_cone, barrier,
czone_sign, generic_object and anything unknown are OTHER."""

_LIGHT_STATES = {
    "green": TrafficLightState.GO,
    "yellow": TrafficLightState.CAUTION,
    "red": TrafficLightState.STOP,
    "unknown": TrafficLightState.UNKNOWN,
}

EGO_SIZE_M = (4.049 + 1.127, 1.1485 * 2.0, 1.777)
"""Length, width, height of nuPlan's ego (nuplan-devkit ``get_pacifica_parameters``)."""

# Every sweep gets its step index once, in time order (ties broken by token).
_PC = """
WITH pc AS (
    SELECT token, ego_pose_token, timestamp,
           ROW_NUMBER() OVER (ORDER BY timestamp, token) - 1 AS step
    FROM lidar_pc
)"""
_TR = """,
tr AS (
    SELECT track_token, ROW_NUMBER() OVER (ORDER BY track_token) - 1 AS idx
    FROM (SELECT DISTINCT b.track_token FROM lidar_box AS b JOIN pc ON pc.token = b.lidar_pc_token
          WHERE b.track_token IS NOT NULL)
)"""

_PROGRESS_EVERY = 1000  # SQLite VM instructions between progress-handler calls
# Work budget of one read, in progress-handler calls: generous, since a full read of
# a 3.6 MB sample runs about 0.6 M VM instructions (600 calls) and the budget is
# 20 instructions per byte; it only stops a corrupt file from looping.
_WORK_MIN_CALLS = 20_000
_WORK_CALLS_PER_MB = 20_000


class NuPlanAdapter(Adapter):
    """Reads one nuPlan log database into one Scenario."""

    name: ClassVar[str] = "nuplan"
    version: ClassVar[str] = "1"
    unit: ClassVar[Literal["file", "dir"]] = "file"
    licence: ClassVar[str] = "nuPlan dataset terms (non-commercial, https://www.nuscenes.org/terms-of-use)"
    download_hint: ClassVar[str] = "register and download the nuPlan logs at https://www.nuscenes.org/nuplan"

    def claims(self, path: Path) -> bool:
        return path.suffix == ".db"

    def _read(self, path: Path) -> Iterator[Record]:
        _check_header(path)
        sha256 = file_sha256(path)
        db = _ReadOnlyDb(path)
        try:
            yield _scenario(self, path, sha256, db)
        finally:
            db.close()


# --------------------------------------------------------------------------- database access


def _check_header(path: Path) -> None:
    with path.open("rb") as fh:
        header = fh.read(100)
    if not header.startswith(_SQLITE_MAGIC):
        raise CorruptFileError(path, "not an SQLite database (no 'SQLite format 3' header)")
    if len(header) < 100:
        raise CorruptFileError(path, "truncated SQLite database (shorter than its 100-byte header)")


class _ReadOnlyDb:
    """A read-only, immutable SQLite connection whose queries have a work budget."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._budget_calls = max(_WORK_MIN_CALLS, _WORK_CALLS_PER_MB * path.stat().st_size // 1_000_000)
        self._calls = 0
        uri = path.resolve().as_uri() + "?mode=ro&immutable=1"
        try:
            self.con = sqlite3.connect(uri, uri=True)
        except sqlite3.Error as exc:
            raise CorruptFileError(path, f"SQLite cannot open it ({exc})") from exc
        self.con.set_progress_handler(self._progress, _PROGRESS_EVERY)
        self.query("PRAGMA query_only = ON")

    def _progress(self) -> int:
        self._calls += 1
        return 1 if self._calls > self._budget_calls else 0  # nonzero aborts the running query

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.con.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            if self._calls > self._budget_calls:
                raise CorruptFileError(
                    self.path, "SQLite queries ran past their work budget (corrupt file?)"
                ) from exc
            raise CorruptFileError(self.path, f"SQLite cannot read it ({type(exc).__name__}: {exc})") from exc

    def columns(self, table: str) -> set[str] | None:
        """Column names of ``table``, or None when it does not exist."""
        rows = self.query("SELECT name FROM pragma_table_info(?)", (table,))
        return {str(r[0]) for r in rows} if rows else None

    def close(self) -> None:
        self.con.close()


def _check_schema(path: Path, db: _ReadOnlyDb) -> set[str]:
    """Raise naming every missing table/column; return the optional tables that are usable."""
    missing_tables: list[str] = []
    missing_columns: list[str] = []
    for table, needed in _REQUIRED.items():
        have = db.columns(table)
        if have is None:
            missing_tables.append(table)
        else:
            missing_columns += [f"{table}.{c}" for c in needed if c not in have]
    if missing_tables or missing_columns:
        parts = []
        if missing_tables:
            parts.append(f"missing tables {', '.join(missing_tables)}")
        if missing_columns:
            parts.append(f"missing columns {', '.join(missing_columns)}")
        raise SchemaMismatchError(path, f"not a nuPlan log database: {'; '.join(parts)}")
    usable = set()
    for table, needed in _OPTIONAL.items():
        have = db.columns(table)
        if have is not None and all(c in have for c in needed):
            usable.add(table)
    if "scene_token" not in (db.columns("lidar_pc") or set()):
        usable.discard("scene")
    return usable


def _floats(path: Path, rows: list[tuple[Any, ...]], width: int, what: str) -> NDArrayFloat:
    """``(N, width)`` float64 of SQL rows; NULL becomes NaN."""
    if not rows:
        return np.zeros((0, width), dtype=np.float64)
    try:
        return np.array(rows, dtype=np.float64).reshape(len(rows), width)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(path, f"{what} holds non-numeric values ({exc})") from exc


def _hex_lower(value: Any) -> str:
    return value.lower() if isinstance(value, str) else ""


# --------------------------------------------------------------------------- scenario


def _scenario(adapter: NuPlanAdapter, path: Path, sha256: str, db: _ReadOnlyDb) -> Scenario:
    optional = _check_schema(path, db)

    # Time grid and ego, one row per sweep in step order.
    grid = db.query(
        _PC + " SELECT pc.timestamp, ep.x, ep.y, ep.z, ep.qw, ep.qx, ep.qy, ep.qz, ep.vx, ep.vy, ep.epsg"
        " FROM pc LEFT JOIN ego_pose AS ep ON ep.token = pc.ego_pose_token ORDER BY pc.step"
    )
    num_steps = int(db.query("SELECT COUNT(*) FROM lidar_pc")[0][0])
    if num_steps == 0:
        raise EmptyLogError(path, "the log has no lidar_pc sweeps (no time steps)")
    if len(grid) != num_steps:
        raise InvalidValueError(path, "ego_pose tokens repeat: a sweep joins more than one ego pose")
    g = _floats(path, grid, 11, "lidar_pc/ego_pose")
    timestamps_ns = _timestamps_ns(path, g[:, 0])

    # Agents: one row per box, with its step and its track's row.
    track_rows = db.query(
        _PC + _TR + " SELECT hex(tr.track_token), c.name, t.length, t.width, t.height"
        " FROM tr LEFT JOIN track AS t ON t.token = tr.track_token"
        " LEFT JOIN category AS c ON c.token = t.category_token ORDER BY tr.idx"
    )
    num_agents = int(db.query(_PC + _TR + " SELECT COUNT(*) FROM tr")[0][0])
    if len(track_rows) != num_agents:
        raise InvalidValueError(path, "track or category tokens repeat: a box joins more than one track")
    boxes = _floats(
        path,
        db.query(
            _PC + _TR + " SELECT pc.step, tr.idx, b.x, b.y, b.z, b.yaw, b.vx, b.vy, b.confidence"
            " FROM lidar_box AS b JOIN pc ON pc.token = b.lidar_pc_token"
            " JOIN tr ON tr.track_token = b.track_token"
        ),
        9,
        "lidar_box",
    )
    num_boxes = int(db.query("SELECT COUNT(*) FROM lidar_box")[0][0])

    categories = [str(r[1]) if r[1] is not None else "" for r in track_rows]
    track_ids = np.array(["ego"] + [_hex_lower(r[0]) for r in track_rows], dtype=np.str_)
    object_type = np.array(
        [ObjectType.VEHICLE] + [_CATEGORY_TYPES.get(c, ObjectType.OTHER) for c in categories], dtype=np.uint8
    )
    tracks = Tracks.allocate(track_ids, object_type, np.array(["ego", *categories], dtype=np.str_), num_steps)
    ego_missing = _fill_ego(path, tracks, g)
    duplicates = _fill_agents(path, tracks, boxes, _floats(path, [r[2:] for r in track_rows], 3, "track"))

    epsg = {int(e) for e in g[:, 10] if np.isfinite(e)}
    if len(epsg) > 1:
        raise InvalidValueError(path, f"ego_pose mixes EPSG codes {sorted(epsg)}")
    frame = f"utm_epsg_{epsg.pop()}" if epsg else "utm_unknown_epsg"

    log = db.query(
        "SELECT hex(token), vehicle_name, date, timestamp, logfile, location, map_version FROM log"
    )
    extras: dict[str, Any] = {
        "log_token": _hex_lower(log[0][0]) if log else None,
        "vehicle_name": log[0][1] if log else None,
        "date": log[0][2] if log else None,
        "log_timestamp_us": log[0][3] if log else None,
        "logfile": log[0][4] if log else None,
        "map_version": log[0][6] if log else None,
        "num_log_rows": len(log),
        "num_lidar_pc": num_steps,
        "num_lidar_box": num_boxes,
        "boxes_not_placed": num_boxes - int(boxes.shape[0]),  # no sweep or no track token
        "duplicate_boxes_dropped": duplicates,
        "steps_without_ego_pose": ego_missing,
        "ego_reference_point": "rear axle (nuPlan ego_pose), not the box centre",
        "ego_size_source": "nuplan-devkit get_pacifica_parameters (Chrysler Pacifica)",
        "ego_velocity": "ego_pose vx/vy are ego-frame; rotated to the global frame by the pose yaw",
        "map": "none: nuPlan maps ship separately (.gpkg), not with the logs",
    }
    if "scene" in optional:
        extras["scenes"] = _scenes(db)
    if "scenario_tag" in optional:
        extras.update(_scenario_tags(path, db))
    lights = _traffic_lights(path, db, num_steps) if "traffic_light_status" in optional else None
    location = log[0][5] if log else None
    return Scenario(
        scenario_id=path.stem,
        source=adapter.name,
        timestamps_ns=timestamps_ns,
        tracks=tracks,
        metadata=adapter.metadata(
            path, sha256, frame=frame, location=None if location is None else str(location), extras=extras
        ),
        map=None,
        ego_index=0,
        traffic_lights=lights,
    )


def _timestamps_ns(path: Path, timestamps_us: NDArrayFloat) -> NDArrayInt:
    if not np.all(np.isfinite(timestamps_us)):
        raise InvalidValueError(path, "lidar_pc has NULL or non-finite timestamps")
    if np.any(np.abs(timestamps_us) > 9e15) or np.any(timestamps_us != np.round(timestamps_us)):
        raise InvalidValueError(path, "lidar_pc timestamps are not integer microseconds of this era")
    timestamps_ns = timestamps_us.astype(np.int64) * 1000
    if np.any(np.diff(timestamps_ns) <= 0):
        raise InvalidValueError(path, "lidar_pc timestamps repeat (two sweeps at the same time)")
    return timestamps_ns


def _fill_ego(path: Path, tracks: Tracks, g: NDArrayFloat) -> int:
    """Fill row 0 from ``g`` (t, x, y, z, qw, qx, qy, qz, vx, vy, epsg); return steps without a pose."""
    x, y, z, qw, qx, qy, qz, vx, vy = (g[:, i] for i in range(1, 10))
    # A sweep whose ego_pose_token matches no pose joins to NULLs in every column.
    joined = ~(np.isnan(x) & np.isnan(y) & np.isnan(qw))
    yaw = np.arctan2(2.0 * (qw * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz))
    bad = joined & ~(np.isfinite(x) & np.isfinite(y) & np.isfinite(yaw))
    if bad.any():
        raise InvalidValueError(
            path, f"ego_pose has NaN positions or orientations at {int(bad.sum())} sweeps"
        )
    cos, sin = np.cos(yaw), np.sin(yaw)
    tracks.valid[0] = joined
    tracks.xy_m[0, joined, 0] = x[joined]
    tracks.xy_m[0, joined, 1] = y[joined]
    tracks.z_m[0, joined] = z[joined]
    tracks.heading_rad[0, joined] = yaw[joined]
    tracks.velocity_mps[0, joined, 0] = (cos * vx - sin * vy)[joined]
    tracks.velocity_mps[0, joined, 1] = (sin * vx + cos * vy)[joined]
    tracks.size_m[0] = EGO_SIZE_M
    return int((~joined).sum())


def _fill_agents(path: Path, tracks: Tracks, boxes: NDArrayFloat, sizes: NDArrayFloat) -> int:
    """Fill rows 1.. from boxes (step, idx, x, y, z, yaw, vx, vy, confidence); return duplicates dropped."""
    if not np.all(np.isfinite(boxes[:, 2:4])) or not np.all(np.isfinite(boxes[:, 5])):
        bad = ~(np.isfinite(boxes[:, 2:4]).all(axis=1) & np.isfinite(boxes[:, 5]))
        raise InvalidValueError(
            path, f"lidar_box has {int(bad.sum())} rows with a NULL or NaN position or yaw"
        )
    step = boxes[:, 0].astype(np.int64)
    row = boxes[:, 1].astype(np.int64) + 1
    # Two boxes of one track in one sweep cannot both be states: keep the most confident.
    key = row * tracks.num_steps + step
    order = np.lexsort((boxes[:, 8], key))
    last = np.ones(order.shape[0], dtype=np.bool_)
    last[:-1] = key[order][1:] != key[order][:-1]
    keep = order[last]
    step, row, b = step[keep], row[keep], boxes[keep]
    tracks.valid[row, step] = True
    tracks.xy_m[row, step] = b[:, 2:4]
    tracks.z_m[row, step] = b[:, 4]
    tracks.heading_rad[row, step] = b[:, 5]
    tracks.velocity_mps[row, step] = b[:, 6:8]
    tracks.size_m[1:] = sizes[:, [0, 1, 2]]  # track (length, width, height)
    return int(boxes.shape[0] - keep.shape[0])


# --------------------------------------------------------------------------- extras and lights


def _scenes(db: _ReadOnlyDb) -> list[dict[str, Any]]:
    rows = db.query(
        _PC + " SELECT hex(s.token), s.name, MIN(pc.step), MAX(pc.step), COUNT(pc.step), s.roadblock_ids"
        " FROM scene AS s LEFT JOIN lidar_pc AS lp ON lp.scene_token = s.token"
        " LEFT JOIN pc ON pc.token = lp.token GROUP BY s.token ORDER BY MIN(pc.step), s.name"
    )
    return [
        {
            "token": _hex_lower(r[0]),
            "name": None if r[1] is None else str(r[1]),
            "first_step": r[2],
            "last_step": r[3],
            "num_steps": r[4],
            "roadblock_ids": None if r[5] is None else str(r[5]),
        }
        for r in rows
    ]


def _scenario_tags(path: Path, db: _ReadOnlyDb) -> dict[str, Any]:
    rows = db.query(
        _PC + " SELECT st.type, pc.step, hex(st.agent_track_token)"
        " FROM scenario_tag AS st JOIN pc ON pc.token = st.lidar_pc_token ORDER BY st.type, pc.step"
    )
    types = np.array([str(r[0]) for r in rows], dtype=np.str_)
    steps = np.array([r[1] for r in rows], dtype=np.int64)
    names, inverse = np.unique(types, return_inverse=True)
    tags = {str(n): np.unique(steps[inverse == i]).tolist() for i, n in enumerate(names)}
    agents: dict[str, list[list[Any]]] = {}
    for tag, step, agent in rows:
        if agent:
            agents.setdefault(str(tag), []).append([int(step), _hex_lower(agent)])
    return {"scenario_tags": tags, "scenario_tag_agents": agents}


def _traffic_lights(path: Path, db: _ReadOnlyDb, num_steps: int) -> TrafficLights | None:
    rows = db.query(
        _PC + " SELECT tls.lane_connector_id, pc.step, tls.status"
        " FROM traffic_light_status AS tls JOIN pc ON pc.token = tls.lidar_pc_token"
        " ORDER BY tls.lane_connector_id, pc.step"
    )
    if not rows:
        return None
    lanes = np.array([str(r[0]) for r in rows], dtype=np.str_)
    steps = np.array([r[1] for r in rows], dtype=np.int64)
    codes = np.array(
        [_LIGHT_STATES.get(str(r[2]).lower(), TrafficLightState.UNKNOWN) for r in rows], dtype=np.int8
    )
    lane_ids, lane_row = np.unique(lanes, return_inverse=True)
    state: NDArrayAny = np.zeros((lane_ids.shape[0], num_steps), dtype=np.int8)
    valid = np.zeros((lane_ids.shape[0], num_steps), dtype=np.bool_)
    state[lane_row, steps] = codes
    valid[lane_row, steps] = True
    return TrafficLights(
        lane_ids=lane_ids,
        state=state,
        stop_point_m=np.full((lane_ids.shape[0], 3), np.nan),
        valid=valid,
    )
