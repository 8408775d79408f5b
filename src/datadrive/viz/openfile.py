"""Open a scenario anywhere: Foxglove MCAP (scene entities) and Rerun recordings.

Both writers take a :class:`~datadrive.core.scenario.Scenario` (and, for a
mining hit, the events to mark) and return the file's bytes. Only ``core``
is needed: the MCAP writer is the ``mcap`` package (the ``[mcap]`` extra),
the Rerun writer is ``rerun-sdk`` (the ``[rerun]`` extra).

MCAP layout (Foxglove's schemas, JSON-encoded, frame ``map``; positions in
the scenario's own frame, named in ``/scenario``):

==================  =======================  ===============================================
topic               schema                   what
==================  =======================  ===============================================
``/map``            ``foxglove.SceneUpdate``  one update at the first step: every map polyline
                                              as a line strip (lanes, boundaries, edges, ...)
``/tracks``         ``foxglove.SceneUpdate``  per step: a cube per valid track (pose, size,
                                              colour by type), its id as text; the ego in white
``/events``         ``foxglove.Log``          a line at each event's start (mining hits)
``/scenario``       ``datadrive.Scenario``    one JSON message: id, source, frame, counts
==================  =======================  ===============================================

Rerun layout: ``world/map/<kind>`` line strips (static), ``world/tracks``
boxes per step on the ``time`` timeline (nanoseconds since the scenario's
first step) with track ids as labels and class ids by type, ``events`` as
text logs.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

from datadrive.core.scenario import MapFeatureKind, ObjectType, Scenario

__all__ = ["FOXGLOVE_SCHEMAS", "ExportEvent", "scenario_to_mcap", "scenario_to_rrd"]


@dataclass(frozen=True)
class ExportEvent:
    """An interval to mark in an export (a mining hit).

    Attributes:
        label: What happened (``hard_brake``).
        t_start_ns: Start, in the scenario's timestamps.
        t_end_ns: End.
        track_ids: Tracks involved.
    """

    label: str
    t_start_ns: int
    t_end_ns: int
    track_ids: tuple[str, ...] = field(default_factory=tuple)


_TYPE_RGBA = {
    ObjectType.VEHICLE: (0.30, 0.55, 1.0, 0.85),
    ObjectType.CYCLIST: (0.96, 0.65, 0.14, 0.9),
    ObjectType.PEDESTRIAN: (0.90, 0.28, 0.30, 0.9),
    ObjectType.OTHER: (0.55, 0.58, 0.65, 0.8),
}
_EGO_RGBA = (1.0, 1.0, 1.0, 0.95)
_KIND_RGBA = {
    MapFeatureKind.LANE_CENTERLINE: (0.45, 0.50, 0.60, 0.6),
    MapFeatureKind.LANE_BOUNDARY: (0.85, 0.85, 0.85, 0.8),
    MapFeatureKind.ROAD_EDGE: (0.95, 0.95, 0.95, 1.0),
    MapFeatureKind.CROSSWALK: (0.95, 0.85, 0.30, 0.8),
    MapFeatureKind.STOP_LINE: (0.95, 0.25, 0.25, 1.0),
}
_DEFAULT_SIZE = {  # (length, width, height) when a source gives none
    ObjectType.VEHICLE: (4.5, 1.9, 1.6),
    ObjectType.CYCLIST: (1.8, 0.6, 1.6),
    ObjectType.PEDESTRIAN: (0.6, 0.6, 1.7),
    ObjectType.OTHER: (1.0, 1.0, 1.0),
}

_VEC3 = {
    "type": "object",
    "properties": {"x": {"type": "number"}, "y": {"type": "number"}, "z": {"type": "number"}},
}
_QUAT = {
    "type": "object",
    "properties": {k: {"type": "number"} for k in ("x", "y", "z", "w")},
}
_POSE = {"type": "object", "properties": {"position": _VEC3, "orientation": _QUAT}}
_COLOR = {"type": "object", "properties": {k: {"type": "number"} for k in ("r", "g", "b", "a")}}
_TIME = {"type": "object", "properties": {"sec": {"type": "integer"}, "nsec": {"type": "integer"}}}
FOXGLOVE_SCHEMAS: dict[str, dict[str, Any]] = {
    "foxglove.SceneUpdate": {
        "title": "foxglove.SceneUpdate",
        "type": "object",
        "properties": {
            "deletions": {"type": "array", "items": {"type": "object"}},
            "entities": {
                "type": "array",
                "items": {
                    "title": "foxglove.SceneEntity",
                    "type": "object",
                    "properties": {
                        "timestamp": _TIME,
                        "frame_id": {"type": "string"},
                        "id": {"type": "string"},
                        "lifetime": _TIME,
                        "frame_locked": {"type": "boolean"},
                        "metadata": {"type": "array", "items": {"type": "object"}},
                        "cubes": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"pose": _POSE, "size": _VEC3, "color": _COLOR},
                            },
                        },
                        "lines": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "type": {
                                        "type": "integer",
                                        "description": "0 LINE_STRIP, 1 LINE_LOOP, 2 LINE_LIST",
                                    },
                                    "pose": _POSE,
                                    "thickness": {"type": "number"},
                                    "scale_invariant": {"type": "boolean"},
                                    "points": {"type": "array", "items": _VEC3},
                                    "color": _COLOR,
                                    "colors": {"type": "array", "items": _COLOR},
                                    "indices": {"type": "array", "items": {"type": "integer"}},
                                },
                            },
                        },
                        "texts": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "pose": _POSE,
                                    "billboard": {"type": "boolean"},
                                    "font_size": {"type": "number"},
                                    "scale_invariant": {"type": "boolean"},
                                    "color": _COLOR,
                                    "text": {"type": "string"},
                                },
                            },
                        },
                        "arrows": {"type": "array", "items": {"type": "object"}},
                        "spheres": {"type": "array", "items": {"type": "object"}},
                        "cylinders": {"type": "array", "items": {"type": "object"}},
                        "triangles": {"type": "array", "items": {"type": "object"}},
                        "models": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
        },
    },
    "foxglove.Log": {
        "title": "foxglove.Log",
        "type": "object",
        "properties": {
            "timestamp": _TIME,
            "level": {"type": "integer", "description": "1 DEBUG, 2 INFO, 3 WARNING, 4 ERROR, 5 FATAL"},
            "message": {"type": "string"},
            "name": {"type": "string"},
            "file": {"type": "string"},
            "line": {"type": "integer"},
        },
    },
    "datadrive.Scenario": {"title": "datadrive.Scenario", "type": "object"},
}
"""JSON schemas registered in every MCAP export (Foxglove's message layouts)."""


def _time(ns: int) -> dict[str, int]:
    return {"sec": ns // 1_000_000_000, "nsec": ns % 1_000_000_000}


def _rgba(c: tuple[float, float, float, float]) -> dict[str, float]:
    return {"r": c[0], "g": c[1], "b": c[2], "a": c[3]}


def _quat(yaw_rad: float) -> dict[str, float]:
    return {"x": 0.0, "y": 0.0, "z": math.sin(yaw_rad / 2), "w": math.cos(yaw_rad / 2)}


def _sizes(scenario: Scenario) -> np.ndarray:
    """``(A, 3)`` length, width, height with the type's default where the source has none."""
    tr = scenario.tracks
    defaults = np.array([_DEFAULT_SIZE[ObjectType(int(t))] for t in tr.object_type]).reshape(-1, 3)
    size = np.asarray(tr.size_m, dtype=np.float64).reshape(-1, 3)
    return np.where(np.isfinite(size) & (size > 0), size, defaults)


def _z(scenario: Scenario, sizes: np.ndarray) -> np.ndarray:
    """``(A, T)`` box centre heights: the source's z (or 0) plus half the height."""
    z = np.nan_to_num(scenario.tracks.z_m, nan=0.0)
    return z + sizes[:, 2:3] / 2


def scenario_to_mcap(scenario: Scenario, events: Sequence[ExportEvent] = ()) -> bytes:
    """The scenario as an MCAP file Foxglove opens: map, boxes per step, events."""
    from mcap.writer import CompressionType, Writer

    buf = BytesIO()
    writer = Writer(buf, compression=CompressionType.ZSTD)
    writer.start(profile="", library="datadrive")
    ids = {
        name: writer.register_schema(name=name, encoding="jsonschema", data=json.dumps(schema).encode())
        for name, schema in FOXGLOVE_SCHEMAS.items()
    }
    ch_map = writer.register_channel("/map", "json", ids["foxglove.SceneUpdate"])
    ch_tracks = writer.register_channel("/tracks", "json", ids["foxglove.SceneUpdate"])
    ch_events = writer.register_channel("/events", "json", ids["foxglove.Log"])
    ch_meta = writer.register_channel("/scenario", "json", ids["datadrive.Scenario"])
    ts = np.asarray(scenario.timestamps_ns, dtype=np.int64)
    t0 = int(ts[0]) if len(ts) else 0
    tr = scenario.tracks
    meta = {
        "scenario_id": scenario.scenario_id,
        "source": scenario.source,
        "frame": scenario.metadata.frame,
        "num_tracks": len(tr.track_ids),
        "num_steps": len(ts),
        "tenant": scenario.metadata.tenant,
        "region": scenario.metadata.region,
    }
    writer.add_message(ch_meta, t0, json.dumps(meta).encode(), t0)
    # The map: one entity per feature kind, lifetime 0 (forever).
    m = scenario.map
    if m is not None and len(m.offsets) > 1:
        lines_by_kind: dict[int, list[dict[str, Any]]] = {}
        for i in range(len(m.offsets) - 1):
            lo, hi = int(m.offsets[i]), int(m.offsets[i + 1])
            if hi - lo < 2:
                continue
            kind = int(m.kind[i])
            pts = np.nan_to_num(m.xyz_m[lo:hi], nan=0.0)
            lines_by_kind.setdefault(kind, []).append(
                {
                    # LineType: 1 = closed loop (polygons), 0 = open strip
                    "type": 1 if kind in (MapFeatureKind.CROSSWALK, MapFeatureKind.DRIVABLE_AREA) else 0,
                    "pose": {"position": {"x": 0, "y": 0, "z": 0}, "orientation": _quat(0.0)},
                    "thickness": 0.15,
                    "scale_invariant": False,
                    "points": [{"x": float(p[0]), "y": float(p[1]), "z": float(p[2])} for p in pts],
                    "color": _rgba(_KIND_RGBA.get(MapFeatureKind(kind), (0.5, 0.5, 0.5, 0.6))),
                    "colors": [],
                    "indices": [],
                }
            )
        entities = [
            {
                "timestamp": _time(t0),
                "frame_id": "map",
                "id": f"map/{MapFeatureKind(kind).name.lower()}",
                "lifetime": _time(0),
                "frame_locked": False,
                "metadata": [],
                "lines": lines,
                "cubes": [],
                "texts": [],
            }
            for kind, lines in sorted(lines_by_kind.items())
        ]
        writer.add_message(ch_map, t0, json.dumps({"deletions": [], "entities": entities}).encode(), t0)
    sizes = _sizes(scenario)
    z = _z(scenario, sizes)
    dt = int(np.median(np.diff(ts))) if len(ts) > 1 else 100_000_000
    for k, t in enumerate(ts.tolist()):
        entities = []
        for a in np.flatnonzero(tr.valid[:, k]):
            ego = scenario.ego_index == int(a)
            colour = _EGO_RGBA if ego else _TYPE_RGBA[ObjectType(int(tr.object_type[a]))]
            x, y = float(tr.xy_m[a, k, 0]), float(tr.xy_m[a, k, 1])
            yaw = float(tr.heading_rad[a, k]) if np.isfinite(tr.heading_rad[a, k]) else 0.0
            pos = {"x": x, "y": y, "z": float(z[a, k])}
            entities.append(
                {
                    "timestamp": _time(t),
                    "frame_id": "map",
                    "id": f"track/{tr.track_ids[a]}",
                    "lifetime": _time(dt),
                    "frame_locked": False,
                    "metadata": [{"key": "type", "value": ObjectType(int(tr.object_type[a])).name.lower()}],
                    "cubes": [
                        {
                            "pose": {"position": pos, "orientation": _quat(yaw)},
                            "size": {
                                "x": float(sizes[a, 0]),
                                "y": float(sizes[a, 1]),
                                "z": float(sizes[a, 2]),
                            },
                            "color": _rgba(colour),
                        }
                    ],
                    "texts": [
                        {
                            "pose": {"position": {**pos, "z": pos["z"] + 1.5}, "orientation": _quat(0.0)},
                            "billboard": True,
                            "font_size": 12.0,
                            "scale_invariant": True,
                            "color": _rgba((1, 1, 1, 0.9)),
                            "text": "ego" if ego else str(tr.track_ids[a]),
                        }
                    ],
                    "lines": [],
                }
            )
        writer.add_message(
            ch_tracks, t, json.dumps({"deletions": [], "entities": entities}).encode(), t, sequence=k
        )
    for e in events:
        msg = {
            "timestamp": _time(int(e.t_start_ns)),
            "level": 2,
            "message": f"{e.label}: {(e.t_end_ns - e.t_start_ns) / 1e9:.1f} s"
            + (f", tracks {', '.join(e.track_ids)}" if e.track_ids else ""),
            "name": "datadrive.mining",
            "file": "",
            "line": 0,
        }
        writer.add_message(ch_events, int(e.t_start_ns), json.dumps(msg).encode(), int(e.t_start_ns))
    writer.finish()
    return buf.getvalue()


def scenario_to_rrd(scenario: Scenario, events: Sequence[ExportEvent] = ()) -> bytes:
    """The scenario as a Rerun recording (``.rrd``): map strips, boxes per step, events."""
    import rerun as rr

    rec = rr.RecordingStream("datadrive", recording_id=f"datadrive-{scenario.scenario_id}")
    with tempfile.TemporaryDirectory(prefix="datadrive-rrd-") as tmp:
        path = Path(tmp) / "scenario.rrd"
        rec.save(path)
        ts = np.asarray(scenario.timestamps_ns, dtype=np.int64)
        t0 = int(ts[0]) if len(ts) else 0
        m = scenario.map
        if m is not None and len(m.offsets) > 1:
            by_kind: dict[int, list[np.ndarray]] = {}
            for i in range(len(m.offsets) - 1):
                a, b = int(m.offsets[i]), int(m.offsets[i + 1])
                if b - a >= 2:
                    by_kind.setdefault(int(m.kind[i]), []).append(np.nan_to_num(m.xyz_m[a:b], nan=0.0))
            for kind, strips in sorted(by_kind.items()):
                colour = _KIND_RGBA.get(MapFeatureKind(kind), (0.5, 0.5, 0.5, 0.6))
                rec.log(
                    f"world/map/{MapFeatureKind(kind).name.lower()}",
                    rr.LineStrips3D(strips, colors=[int(c * 255) for c in colour], radii=0.08),
                    static=True,
                )
        tr = scenario.tracks
        sizes = _sizes(scenario)
        z = _z(scenario, sizes)
        for k, t in enumerate(ts.tolist()):
            rec.set_time("time", duration=np.timedelta64(int(t) - t0, "ns"))
            live = np.flatnonzero(tr.valid[:, k])
            yaw = np.nan_to_num(tr.heading_rad[live, k], nan=0.0)
            centres = np.c_[tr.xy_m[live, k], z[live, k]]
            quats = np.c_[np.zeros((len(live), 2)), np.sin(yaw / 2), np.cos(yaw / 2)]
            classes = [int(tr.object_type[a]) + (10 if scenario.ego_index == int(a) else 0) for a in live]
            rec.log(
                "world/tracks",
                rr.Boxes3D(
                    centers=centres,
                    half_sizes=sizes[live] / 2,
                    quaternions=quats,
                    labels=[str(tr.track_ids[a]) for a in live],
                    class_ids=classes,
                    colors=[
                        [
                            int(c * 255)
                            for c in (
                                _EGO_RGBA
                                if scenario.ego_index == int(a)
                                else _TYPE_RGBA[ObjectType(int(tr.object_type[a]))]
                            )
                        ]
                        for a in live
                    ],
                ),
            )
        for e in events:
            rec.set_time("time", duration=np.timedelta64(int(e.t_start_ns) - t0, "ns"))
            rec.log(
                "events", rr.TextLog(f"{e.label} ({(e.t_end_ns - e.t_start_ns) / 1e9:.1f} s)", level="INFO")
            )
        rec.flush()
        rec.disconnect()
        return path.read_bytes()
