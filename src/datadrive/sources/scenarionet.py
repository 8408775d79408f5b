"""ScenarioNet / MetaDrive ``ScenarioDescription`` pickles.

ScenarioNet (metadriverse/scenarionet) converts Waymo, nuScenes, nuPlan, AV2
and other logs into one pickled dict per scenario, the ``ScenarioDescription``
of MetaDrive (``metadrive/scenario/scenario_description.py``)::

    {"id", "version", "length": T,
     "metadata": {"ts": (T,) s, "sdc_id", "dataset", "coordinate", "sample_rate"?, ...},
     "tracks": {obj_id: {"type": "VEHICLE" | "PEDESTRIAN" | "CYCLIST" | "TRAFFIC_CONE" | ...,
                         "state": {"position" (T, 2|3), "heading" (T,), "velocity" (T, 2),
                                   "valid" (T,), "length"/"width"/"height" (T,) or (T, 1)},
                         "metadata": {...}}},
     "dynamic_map_states": {id: {"type": "TRAFFIC_LIGHT", "lane", "stop_point",
                                 "state": {"object_state": T light states}}},
     "map_features": {id: {"type", "polyline" | "polygon" | "position", lane links...}}}

The file is read through :mod:`datadrive.sources.safe_pickle`, never
``pickle.load``.

Choices (see also the module's tests):

* Every track is kept, the SDC (``metadata.sdc_id``) is the ego. ``valid`` may
  be float (nuScenes conversions): nonzero and finite is valid.
* ``size_m`` is the **median over valid steps** of length, width, height
  (ScenarioNet stores them per step). nuScenes conversions store the ego's
  width as its length (``size: [4.08, 1.73, 1.56]`` read as w, l, h); we keep
  what the file holds.
* Timestamps: ``metadata.ts`` (seconds) if present, else step x
  ``metadata.sample_rate`` (ScenarioNet's name for the step in seconds), else
  step x 0.1 s (MetaDrive's replay step). nuScenes is interpolated to 10 Hz by
  the converter.
* Frame: coordinates are not transformed. The frame is named after the source
  dataset: ``waymo_scenario_global`` for Waymo, ``<dataset>_global`` otherwise
  (``nuscenes_global``). Newer ScenarioNet converters (nuScenes, nuPlan)
  subtract the ego's first position without recording it; when the SDC's first
  valid position is exactly (0, 0) the frame is ``<dataset>_ego_start`` (axes
  of the dataset's global frame, origin at the ego's first position). A
  ``coordinate`` other than right-handed/waymo (``"metadrive"``) is appended.
* Map: one feature per ``map_features`` entry, in the file's order. A lane's
  ``speed_limit_mps`` (nuPlan), ``speed_limit_kmh`` or ``speed_limit_mph``
  (Waymo) becomes its ``speed_limit_mps`` (0 is unknown) for the datasets in
  :data:`SPEED_LIMIT_DATASETS` only: other converters write placeholders. A lane that carries
  both a ``polyline`` (its centerline) and a ``polygon`` (its surface:
  nuScenes conversions) also gets a ``DRIVABLE_AREA`` feature
  ``"<id>#polygon"`` (subtype ``lane_polygon:<type>``) after all the file's
  features: the union of those polygons is the road the lanes cover.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from datadrive.core.scenario import (
    MapBuilder,
    MapFeatureKind,
    MapFeatures,
    MapRelation,
    ObjectType,
    Scenario,
    Tracks,
    TrafficLights,
    TrafficLightState,
)
from datadrive.core.typing import NDArrayAny, NDArrayFloat
from datadrive.errors import EmptyLogError, InvalidValueError, SchemaMismatchError, UnsupportedFormatError
from datadrive.sources.base import Adapter, Record, file_sha256
from datadrive.sources.safe_pickle import safe_load

__all__ = ["ScenarioNetAdapter"]

_TRACK_TYPES = {
    "VEHICLE": ObjectType.VEHICLE,
    "PEDESTRIAN": ObjectType.PEDESTRIAN,
    "CYCLIST": ObjectType.CYCLIST,
}
"""ScenarioNet track types with a coarse type of their own; every other type is OTHER."""

_FEATURE_KINDS = {
    "CROSSWALK": MapFeatureKind.CROSSWALK,
    "SPEED_BUMP": MapFeatureKind.SPEED_BUMP,
    "STOP_SIGN": MapFeatureKind.STOP_SIGN,
    "DRIVEWAY": MapFeatureKind.DRIVEWAY,
    "UNKNOWN_LINE": MapFeatureKind.LANE_BOUNDARY,  # MetaDriveType.LINE_UNKNOWN
    "UNKNOWN": MapFeatureKind.ROAD_EDGE,  # MetaDriveType.BOUNDARY_UNKNOWN
}

_LANE_LINKS = (
    ("entry_lanes", MapRelation.PREDECESSOR, "feature_id"),
    ("exit_lanes", MapRelation.SUCCESSOR, "feature_id"),
    ("left_neighbor", MapRelation.LEFT_NEIGHBOR, "feature_id"),
    ("right_neighbor", MapRelation.RIGHT_NEIGHBOR, "feature_id"),
    ("left_boundaries", MapRelation.LEFT_BOUNDARY, "boundary_feature_id"),
    ("right_boundaries", MapRelation.RIGHT_BOUNDARY, "boundary_feature_id"),
)

_LIGHT_STATES: dict[Any, TrafficLightState] = {
    **{f"LANE_STATE_{s.name}": s for s in TrafficLightState},
    **{int(s): s for s in TrafficLightState},  # older files store Waymo's enum values
    "TRAFFIC_LIGHT_GREEN": TrafficLightState.GO,  # nuPlan conversions: simplified colours
    "TRAFFIC_LIGHT_YELLOW": TrafficLightState.CAUTION,
    "TRAFFIC_LIGHT_RED": TrafficLightState.STOP,
    "TRAFFIC_LIGHT_UNKNOWN": TrafficLightState.UNKNOWN,
}

_REQUIRED_KEYS = ("tracks", "metadata")
_DESCRIPTION_KEYS = ("id", "version", "length", "metadata", "tracks", "dynamic_map_states", "map_features")

# Metadata copied into extras when present (plain values only).
_EXTRA_KEYS = (
    "dataset",
    "scenario_id",
    "scenario_token",
    "source_file",
    "date",
    "coordinate",
    "metadrive_processed",
    "sample_rate",
    "current_time_index",
    "sdc_track_index",
    "objects_of_interest",
    "tracks_to_predict",
    "map_version",
    "log_name",
    "scenario_type",
)
_DEFAULT_STEP_S = 0.1


class ScenarioNetAdapter(Adapter):
    """Reads one ScenarioNet ``ScenarioDescription`` pickle into one Scenario."""

    name: ClassVar[str] = "scenarionet"
    version: ClassVar[str] = "2"  # 2: lane speed limits in extras
    unit: ClassVar[Literal["file", "dir"]] = "file"
    licence: ClassVar[str] = (
        "that of the converted dataset (nuScenes, Waymo Open Dataset, nuPlan, ...: non-commercial); "
        "ScenarioNet code Apache-2.0"
    )
    download_hint: ClassVar[str] = (
        "convert a dataset with ScenarioNet (https://github.com/metadriverse/scenarionet), "
        "or use its test_dataset/ samples"
    )

    def claims(self, path: Path) -> bool:
        return path.suffix == ".pkl"

    def _read(self, path: Path) -> Iterator[Record]:
        sd = safe_load(path)
        _check_is_description(path, sd)
        yield _scenario(self, path, sd)


# --------------------------------------------------------------------------- recognising the pickle


def _check_is_description(path: Path, sd: Any) -> None:
    if isinstance(sd, dict) and all(k in sd for k in _REQUIRED_KEYS):
        if not isinstance(sd["tracks"], dict) or not isinstance(sd["metadata"], dict):
            raise SchemaMismatchError(path, "ScenarioDescription 'tracks' and 'metadata' must be dicts")
        return
    raise UnsupportedFormatError(path, f"not a ScenarioNet ScenarioDescription: {_describe(sd)}")


def _describe(obj: Any) -> str:
    """One phrase saying what a pickle that is not a ScenarioDescription holds."""
    if not isinstance(obj, dict):
        return f"the pickle holds a {type(obj).__name__}, not a dict"
    if not obj:
        return "the pickle holds an empty dict"
    keys = list(obj)
    first = keys[0]
    if isinstance(first, tuple) and len(first) == 2 and all(isinstance(k, str) for k in first):
        frames = obj[first]
        if (
            isinstance(frames, list)
            and frames
            and isinstance(frames[0], dict)
            and "timestamp_ns" in frames[0]
        ):
            return (
                f"a dict keyed by (log_id, prompt) tuples such as {first!r}, holding frame dicts: "
                "an Argoverse 2 scenario-mining (RefAV) pickle"
            )
    if all(isinstance(k, str) and k.endswith(".pkl") for k in keys[:10]):
        return "a dict keyed by .pkl file names: a ScenarioNet dataset_summary/dataset_mapping index"
    missing = [k for k in _DESCRIPTION_KEYS if k not in obj]
    shown = ", ".join(repr(k) for k in keys[:5]) + (", ..." if len(keys) > 5 else "")
    return f"a dict of {len(keys)} keys ({shown}) lacking {', '.join(missing)}"


# --------------------------------------------------------------------------- scenario


def _scenario(adapter: ScenarioNetAdapter, path: Path, sd: dict[Any, Any]) -> Scenario:
    md: dict[Any, Any] = sd["metadata"]
    raw_tracks: dict[Any, Any] = sd["tracks"]
    if not raw_tracks:
        raise EmptyLogError(path, "the ScenarioDescription has no tracks")
    num_steps = _num_steps(path, sd)
    timestamps_ns = _timestamps_ns(path, md, num_steps)

    track_ids = [str(k) for k in raw_tracks]
    if len(set(track_ids)) != len(track_ids):
        raise InvalidValueError(path, "track ids are not unique once written as strings")
    type_names = [str(_get(path, t, "type", f"track {k!r}")) for k, t in raw_tracks.items()]
    object_type = np.array([_TRACK_TYPES.get(t, ObjectType.OTHER) for t in type_names], dtype=np.uint8)
    sdc_id = md.get("sdc_id")
    ego_index = track_ids.index(str(sdc_id)) if sdc_id is not None and str(sdc_id) in track_ids else None
    if ego_index is not None:
        object_type[ego_index] = ObjectType.VEHICLE  # the self-driving car is a vehicle by definition

    tracks = Tracks.allocate(np.array(track_ids), object_type, np.array(type_names), num_steps)
    for row, (track_id, track) in enumerate(zip(track_ids, raw_tracks.values(), strict=True)):
        _fill_track(path, tracks, row, track_id, track, num_steps)

    recentred = ego_index is not None and _starts_at_origin(tracks, ego_index)
    dataset = str(md.get("dataset") or "").lower()
    map_features = _map(path, sd.get("map_features"), limits_from_map=dataset in SPEED_LIMIT_DATASETS)
    lights = _traffic_lights(path, sd.get("dynamic_map_states"), num_steps)
    location = md.get("map")
    return Scenario(
        scenario_id=str(sd.get("id") or md.get("scenario_id") or path.stem),
        source=adapter.name,
        timestamps_ns=timestamps_ns,
        tracks=tracks,
        metadata=adapter.metadata(
            path,
            file_sha256(path),
            frame=_frame_name(md, recentred),
            location=None if location is None else str(location),
            extras={**_extras(sd, md, sdc_id, ego_index, recentred), **_speed_limits(sd.get("map_features"))},
        ),
        map=map_features,
        ego_index=ego_index,
        traffic_lights=lights,
    )


def _get(path: Path, mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, dict):
        raise SchemaMismatchError(path, f"{where} is a {type(mapping).__name__}, not a dict")
    if key not in mapping:
        raise SchemaMismatchError(path, f"{where} has no {key!r}")
    return mapping[key]


def _num_steps(path: Path, sd: dict[Any, Any]) -> int:
    length = sd.get("length")
    if length is None:
        ts = sd["metadata"].get("ts")
        length = len(ts) if ts is not None else None
    if length is None:
        first = next(iter(sd["tracks"].values()))
        length = len(_get(path, _get(path, first, "state", "a track"), "position", "a track state"))
    if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 1:
        raise InvalidValueError(path, f"scenario length {length!r} is not a positive integer")
    return int(length)


def _timestamps_ns(path: Path, md: Mapping[Any, Any], num_steps: int) -> NDArrayAny:
    ts = md.get("ts")
    if ts is not None:
        seconds = np.asarray(ts, dtype=np.float64).reshape(-1)
        if seconds.shape != (num_steps,):
            raise InvalidValueError(path, f"metadata.ts has {seconds.size} entries for {num_steps} steps")
    else:
        step = md.get("sample_rate", _DEFAULT_STEP_S)
        seconds = np.arange(num_steps, dtype=np.float64) * float(step)
    if not np.all(np.isfinite(seconds)):
        raise InvalidValueError(path, "metadata.ts holds NaN or infinite times")
    if np.any(np.abs(seconds) > 1e9):
        raise InvalidValueError(path, "metadata.ts holds absurd times (beyond 30 years)")
    timestamps_ns = np.round(seconds * 1e9).astype(np.int64)
    if num_steps > 1 and not np.all(np.diff(timestamps_ns) > 0):
        raise InvalidValueError(path, "timestamps (metadata.ts) are not strictly increasing")
    return timestamps_ns


def _state_array(
    path: Path, state: dict[Any, Any], key: str, track_id: str, num_steps: int, width: int | None
) -> NDArrayFloat | None:
    """``state[key]`` as float64 ``(T,)`` (width None) or ``(T, width)``; None when absent."""
    if key not in state:
        return None
    try:
        values = np.asarray(state[key], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidValueError(path, f"track {track_id!r}: state {key!r} is not numeric ({exc})") from exc
    if values.shape[:1] != (num_steps,):
        raise InvalidValueError(
            path, f"track {track_id!r}: state {key!r} has shape {values.shape}, T={num_steps}"
        )
    if width is None:
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise InvalidValueError(path, f"track {track_id!r}: state {key!r} has shape {values.shape}")
    elif values.ndim != 2 or values.shape[1] < width:
        raise InvalidValueError(path, f"track {track_id!r}: state {key!r} has shape {values.shape}")
    return values


def _fill_track(path: Path, tracks: Tracks, row: int, track_id: str, track: Any, num_steps: int) -> None:
    state = _get(path, track, "state", f"track {track_id!r}")
    if not isinstance(state, dict):
        raise SchemaMismatchError(path, f"track {track_id!r}: 'state' is not a dict")
    position = _state_array(path, state, "position", track_id, num_steps, 2)
    heading = _state_array(path, state, "heading", track_id, num_steps, None)
    if position is None or heading is None:
        missing = [k for k in ("position", "heading") if k not in state]
        raise SchemaMismatchError(path, f"track {track_id!r}: state lacks {', '.join(missing)}")
    raw_valid = _state_array(path, state, "valid", track_id, num_steps, None)
    valid = (
        np.ones(num_steps, dtype=np.bool_) if raw_valid is None else np.isfinite(raw_valid) & (raw_valid != 0)
    )
    xy = position[:, :2]
    if not np.all(np.isfinite(xy[valid])) or not np.all(np.isfinite(heading[valid])):
        raise InvalidValueError(path, f"track {track_id!r}: a valid state has a NaN position or heading")
    tracks.valid[row] = valid
    tracks.xy_m[row][valid] = xy[valid]
    tracks.heading_rad[row][valid] = heading[valid]
    if position.shape[1] >= 3:
        tracks.z_m[row][valid] = position[valid, 2]
    velocity = _state_array(path, state, "velocity", track_id, num_steps, 2)
    if velocity is not None:
        tracks.velocity_mps[row][valid] = velocity[valid, :2]
    if valid.any():
        present = [
            (col, values)
            for col, key in enumerate(("length", "width", "height"))
            if (values := _state_array(path, state, key, track_id, num_steps, None)) is not None
        ]
        if present:  # one median call for the three rows (each row's median, as one call per row gives)
            cols = [col for col, _ in present]
            tracks.size_m[row, cols] = np.median(np.stack([v for _, v in present])[:, valid], axis=1)


def _starts_at_origin(tracks: Tracks, ego_index: int) -> bool:
    valid = tracks.valid[ego_index]
    if not valid.any():
        return False
    first = tracks.xy_m[ego_index, int(np.argmax(valid))]
    return bool(np.all(np.abs(first) < 1e-9))


def _frame_name(md: Mapping[Any, Any], recentred: bool) -> str:
    dataset = str(md.get("dataset") or "scenarionet").lower()
    if recentred:
        frame = f"{dataset}_ego_start"
    elif dataset == "waymo":
        frame = "waymo_scenario_global"
    else:
        frame = f"{dataset}_global"
    coordinate = md.get("coordinate")
    if coordinate is not None and str(coordinate) not in ("right-handed", "waymo"):
        frame += f"_{coordinate}"
    return frame


# --------------------------------------------------------------------------- map


def _feature_kind(type_name: str) -> MapFeatureKind:
    if type_name in _FEATURE_KINDS:
        return _FEATURE_KINDS[type_name]
    if type_name.startswith("LANE_") and not type_name.startswith("LANE_STATE_"):
        return MapFeatureKind.LANE_CENTERLINE
    if type_name.startswith("ROAD_LINE_"):
        return MapFeatureKind.LANE_BOUNDARY
    if type_name.startswith(("ROAD_EDGE_", "BOUNDARY_")):
        return MapFeatureKind.ROAD_EDGE
    return MapFeatureKind.OTHER


def _feature_points(path: Path, feature_id: str, feature: dict[Any, Any]) -> NDArrayFloat:
    for key in ("polyline", "polygon", "position"):
        raw = feature.get(key)
        if raw is None:
            continue
        try:
            points = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidValueError(
                path, f"map feature {feature_id!r}: {key} is not numeric ({exc})"
            ) from exc
        if points.ndim == 1 and points.size in (0, 2, 3):
            points = points.reshape(-1 if points.size else 0, points.size or 2)
        if points.ndim != 2 or points.shape[1] < 2:
            raise InvalidValueError(path, f"map feature {feature_id!r}: {key} has shape {points.shape}")
        points = points[:, :3]
        if not np.all(np.isfinite(points[:, :2])):
            raise InvalidValueError(path, f"map feature {feature_id!r}: {key} has a NaN or infinite point")
        return points
    return np.zeros((0, 2), dtype=np.float64)


def _link_ids(items: Any, id_key: str) -> list[str]:
    if not isinstance(items, list | tuple | np.ndarray):
        return []
    out = []
    for item in items:
        target = item.get(id_key) if isinstance(item, dict) else item
        if target is not None:
            out.append(str(target))
    return out


_MPH = 0.44704


def _speed_limits(raw: Any) -> dict[str, Any]:
    """``{"lane_speed_limits_mps": {lane id: m/s}}`` from lanes' ``speed_limit_kmh`` / ``speed_limit_mph``."""
    out: dict[str, float] = {}
    if isinstance(raw, dict):
        for key, feature in raw.items():
            if not isinstance(feature, dict):
                continue
            kmh, mph = feature.get("speed_limit_kmh"), feature.get("speed_limit_mph")
            value = None
            if isinstance(kmh, int | float) and 0 < float(kmh) < 320:
                value = float(kmh) / 3.6
            elif isinstance(mph, int | float) and 0 < float(mph) < 200:
                value = float(mph) * _MPH
            if value is not None:
                out[str(key)] = round(value, 6)
    return {"lane_speed_limits_mps": out} if out else {}


def _map(path: Path, raw: Any, *, limits_from_map: bool = True) -> MapFeatures | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SchemaMismatchError(path, f"map_features is a {type(raw).__name__}, not a dict")
    builder = MapBuilder()
    seen: set[str] = set()
    lane_polygons: list[tuple[str, str, NDArrayFloat]] = []
    for key, feature in raw.items():
        feature_id = str(key)
        if feature_id in seen:
            raise InvalidValueError(path, f"map feature id {feature_id!r} repeats once written as a string")
        seen.add(feature_id)
        type_name = str(_get(path, feature, "type", f"map feature {feature_id!r}"))
        kind = _feature_kind(type_name)
        lane = kind == MapFeatureKind.LANE_CENTERLINE
        limit = _speed_limit(path, feature_id, feature) if lane and limits_from_map else np.nan
        builder.add(
            feature_id,
            kind,
            _feature_points(path, feature_id, feature),
            subtype=type_name,
            speed_limit_mps=limit,
        )
        if (
            kind == MapFeatureKind.LANE_CENTERLINE
            and "polyline" in feature
            and feature.get("polygon") is not None
        ):
            polygon = _feature_points(path, feature_id, {"polygon": feature["polygon"]})
            if polygon.shape[0] >= 3:
                lane_polygons.append((feature_id, type_name, polygon))
        if kind == MapFeatureKind.LANE_CENTERLINE:
            for field, relation, id_key in _LANE_LINKS:
                for target in _link_ids(feature.get(field), id_key):
                    builder.relate(feature_id, relation, target)
        elif kind == MapFeatureKind.STOP_SIGN:
            for target in _link_ids(feature.get("lane"), "feature_id"):
                builder.relate(feature_id, MapRelation.CONTROLS, target)
    for feature_id, type_name, polygon in lane_polygons:  # after every raw feature: their order is kept
        polygon_id = f"{feature_id}{LANE_POLYGON_SUFFIX}"
        if polygon_id in seen:
            raise InvalidValueError(path, f"map feature id {polygon_id!r} clashes with a lane's polygon")
        builder.add(polygon_id, MapFeatureKind.DRIVABLE_AREA, polygon, subtype=f"lane_polygon:{type_name}")
    return builder.build()


SPEED_LIMIT_DATASETS = frozenset({"waymo", "nuplan"})
"""Datasets whose ScenarioNet lanes carry the source map's own speed limits. The nuScenes converter
writes a constant 100 km/h on lane connectors and the Argoverse 2 one a constant highway value:
placeholders, not limits, so they are not read."""

LANE_POLYGON_SUFFIX = "#polygon"
"""Suffix of the ``DRIVABLE_AREA`` feature made from a lane's ``polygon`` (nuScenes conversions)."""

_SPEED_KEYS = (("speed_limit_mps", 1.0), ("speed_limit_kmh", 1 / 3.6), ("speed_limit_mph", 0.44704))


def _speed_limit(path: Path, feature_id: str, feature: dict[Any, Any]) -> float:
    """A lane's ``speed_limit_mps`` (nuPlan), ``_kmh`` or ``_mph`` (Waymo) in m/s; NaN if absent or 0."""
    for key, to_mps in _SPEED_KEYS:
        raw = feature.get(key)
        if raw is None:
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise InvalidValueError(
                path, f"map feature {feature_id!r}: {key} is {raw!r}, not a number"
            ) from None
        if np.isnan(value):
            return float("nan")
        if not np.isfinite(value) or value < 0 or value * to_mps >= 200:
            raise InvalidValueError(path, f"map feature {feature_id!r}: {key} is {value}, not a speed")
        return value * to_mps if value > 0 else float("nan")
    return float("nan")


# --------------------------------------------------------------------------- traffic lights


def _traffic_lights(path: Path, raw: Any, num_steps: int) -> TrafficLights | None:
    if not raw:
        return None
    if not isinstance(raw, dict):
        raise SchemaMismatchError(path, f"dynamic_map_states is a {type(raw).__name__}, not a dict")
    lane_ids: list[str] = []
    states: list[NDArrayAny] = []
    stop_points: list[NDArrayFloat] = []
    for key, light in raw.items():
        where = f"dynamic map state {str(key)!r}"
        object_state = _get(path, _get(path, light, "state", where), "object_state", where)
        values = list(object_state)
        if len(values) != num_steps:
            raise InvalidValueError(path, f"{where} has {len(values)} states for {num_steps} steps")
        lane = light.get("lane")
        lane_ids.append(str(key if lane is None else lane))
        # None marks a step where the light was not observed.
        codes = [
            -1 if v is None else _LIGHT_STATES.get(_hashable(v), TrafficLightState.UNKNOWN) for v in values
        ]
        states.append(np.array(codes, dtype=np.int8))
        stop_points.append(_stop_point(light.get("stop_point")))
    state = np.stack(states)
    return TrafficLights(
        lane_ids=np.array(lane_ids, dtype=np.str_),
        state=np.where(state < 0, TrafficLightState.UNKNOWN, state).astype(np.int8),
        stop_point_m=np.stack(stop_points),
        valid=state >= 0,
    )


def _hashable(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    return value if isinstance(value, str | int | type(None)) else str(value)


def _stop_point(raw: Any) -> NDArrayFloat:
    point = np.full(3, np.nan)
    if raw is None:
        return point
    try:
        values = np.asarray(raw, dtype=np.float64).reshape(-1)[:3]
    except (TypeError, ValueError):
        return point
    point[: values.size] = values
    return point


# --------------------------------------------------------------------------- extras


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-ready data, or None when it has no plain form."""
    if depth > 6:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(str(v) for v in value)
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, np.ndarray) and value.size <= 64:
        return _plain(value.tolist(), depth + 1)
    return None


def _extras(
    sd: dict[Any, Any], md: dict[Any, Any], sdc_id: Any, ego_index: int | None, recentred: bool
) -> dict[str, Any]:
    extras: dict[str, Any] = {"version": _plain(sd.get("version"))}
    for key in _EXTRA_KEYS:
        if key in md:
            extras[key] = _plain(md[key])
    extras["map"] = _plain(md.get("map"))
    extras["sdc_id"] = _plain(sdc_id)
    if ego_index is None:
        extras["ego_note"] = "metadata.sdc_id names no track" if sdc_id is not None else "no metadata.sdc_id"
    extras["recentred_on_ego_start"] = recentred
    if "ts" not in md:
        extras["timestamps_note"] = "no metadata.ts: step x sample_rate (default 0.1 s)"
    return extras
