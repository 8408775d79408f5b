"""The Scenario: one struct-of-arrays type that carries every drive log.

Every adapter in :mod:`datadrive.sources` produces :class:`Scenario` objects;
every later stage (lake, mining, training, evaluation) consumes them. The
types are frozen dataclasses of numpy arrays, one field per physical quantity,
with a ``valid`` mask where data is missing. Constructors do no checking so
hot paths stay cheap; :meth:`Scenario.validate` checks every invariant and is
called at the boundaries (after an adapter, before a write).

Notation:
    A: number of tracks (the ego included, when the source has one).
    T: number of time steps, at the source's native rate.
    F: number of map features.
    P: number of map points, all features together.
    E: number of map relations (lane successors, neighbours, boundaries).
    L: number of traffic-light-controlled lanes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Any

import numpy as np

from datadrive.core.typing import (
    NDArrayBool,
    NDArrayFloat,
    NDArrayInt,
    NDArrayInt8,
    NDArrayStr,
    NDArrayUInt8,
)
from datadrive.errors import ValidationError

__all__ = [
    "MapBuilder",
    "MapFeatureKind",
    "MapFeatures",
    "MapRelation",
    "ObjectType",
    "Provenance",
    "Scenario",
    "ScenarioMetadata",
    "Tracks",
    "TrafficLightState",
    "TrafficLights",
    "scenarios_equal",
    "validate_metadata",
]


class ObjectType(IntEnum):
    """Coarse object types shared by every source.

    ``VEHICLE``: cars, buses, trucks (and the ego). ``CYCLIST``: a person
    riding a bicycle or motorcycle. ``PEDESTRIAN``. ``OTHER``: static objects,
    riderless two-wheelers, background, unknown.
    """

    VEHICLE = 0
    CYCLIST = 1
    PEDESTRIAN = 2
    OTHER = 3


class MapFeatureKind(IntEnum):
    """What a map polyline or polygon represents."""

    LANE_CENTERLINE = 0
    LANE_BOUNDARY = 1  # painted lines, lane dividers
    ROAD_EDGE = 2  # curbs, the edge of the paved road
    CROSSWALK = 3  # polygon
    STOP_LINE = 4
    DRIVABLE_AREA = 5  # polygon
    STOP_SIGN = 6  # a single point
    SPEED_BUMP = 7  # polygon
    DRIVEWAY = 8  # polygon
    OTHER = 9


class MapRelation(IntEnum):
    """How one map feature relates to another (``src -> dst``)."""

    SUCCESSOR = 0  # dst continues src
    PREDECESSOR = 1  # dst leads into src
    LEFT_NEIGHBOR = 2  # dst is the adjacent lane on src's left
    RIGHT_NEIGHBOR = 3
    LEFT_BOUNDARY = 4  # dst is the left boundary polyline of lane src
    RIGHT_BOUNDARY = 5
    CONTROLS = 6  # a stop sign or line src governs lane dst


class TrafficLightState(IntEnum):
    """Traffic-light states, numbered as in Waymo's ``TrafficSignalLaneState``."""

    UNKNOWN = 0
    ARROW_STOP = 1
    ARROW_CAUTION = 2
    ARROW_GO = 3
    STOP = 4
    CAUTION = 5
    GO = 6
    FLASHING_STOP = 7
    FLASHING_CAUTION = 8


@dataclass(frozen=True)
class Tracks:
    """Per-track, per-step object states.

    Attributes:
        track_ids: ``(A,)`` str, unique within the scenario.
        object_type: ``(A,)`` uint8 :class:`ObjectType` codes.
        category: ``(A,)`` str, the dataset's own label (``"REGULAR_VEHICLE"``).
        xy_m: ``(A, T, 2)`` float64 position in the scenario's frame.
        z_m: ``(A, T)`` float64 height; NaN where the source has none.
        heading_rad: ``(A, T)`` float64 yaw in the scenario's frame.
        velocity_mps: ``(A, T, 2)`` float64 velocity in the scenario's frame;
            NaN where the source has none.
        size_m: ``(A, 3)`` float64 length, width, height; NaN when unknown.
        valid: ``(A, T)`` bool, False where the track has no state.
    """

    track_ids: NDArrayStr
    object_type: NDArrayUInt8
    category: NDArrayStr
    xy_m: NDArrayFloat
    z_m: NDArrayFloat
    heading_rad: NDArrayFloat
    velocity_mps: NDArrayFloat
    size_m: NDArrayFloat
    valid: NDArrayBool

    @property
    def num_tracks(self) -> int:
        return int(self.track_ids.shape[0])

    @property
    def num_steps(self) -> int:
        return int(self.valid.shape[1])

    @classmethod
    def allocate(
        cls, track_ids: NDArrayStr, object_type: NDArrayUInt8, category: NDArrayStr, num_steps: int
    ) -> Tracks:
        """Tracks with every state invalid, for an adapter to fill before returning.

        Args:
            track_ids: ``(A,)`` str.
            object_type: ``(A,)`` uint8 :class:`ObjectType` codes.
            category: ``(A,)`` str.
            num_steps: T.
        """
        a, t = int(track_ids.shape[0]), num_steps
        return cls(
            track_ids=np.asarray(track_ids, dtype=np.str_),
            object_type=np.asarray(object_type, dtype=np.uint8),
            category=np.asarray(category, dtype=np.str_),
            xy_m=np.zeros((a, t, 2), dtype=np.float64),
            z_m=np.full((a, t), np.nan, dtype=np.float64),
            heading_rad=np.zeros((a, t), dtype=np.float64),
            velocity_mps=np.full((a, t, 2), np.nan, dtype=np.float64),
            size_m=np.full((a, 3), np.nan, dtype=np.float64),
            valid=np.zeros((a, t), dtype=np.bool_),
        )


@dataclass(frozen=True)
class MapFeatures:
    """Vector map as one ragged point array plus offsets.

    Feature ``i`` owns points ``xyz_m[offsets[i]:offsets[i + 1]]``. Build one
    with :class:`MapBuilder` rather than by hand.

    Attributes:
        feature_ids: ``(F,)`` str, unique within the map.
        kind: ``(F,)`` uint8 :class:`MapFeatureKind` codes.
        subtype: ``(F,)`` str, the dataset's own type (``"VEHICLE"``, ``"SOLID_WHITE"``).
        is_intersection: ``(F,)`` bool, lanes inside an intersection.
        offsets: ``(F + 1,)`` int64, ``offsets[0] == 0``, non-decreasing.
        xyz_m: ``(P, 3)`` float64 points; z is NaN where the source has none.
        relations: ``(E, 3)`` int64 rows ``(src, dst, MapRelation)`` of feature
            indices, sorted by ``src`` (stable within one ``src``).
        speed_limit_mps: ``(F,)`` float64 legal speed limit of each feature
            (lanes; NaN where unknown), or ``None`` where no feature has a known
            limit (formats without limits, maps written before limits existed).
            :meth:`speed_limits` always gives the ``(F,)`` array.
    """

    feature_ids: NDArrayStr
    kind: NDArrayUInt8
    subtype: NDArrayStr
    is_intersection: NDArrayBool
    offsets: NDArrayInt
    xyz_m: NDArrayFloat
    relations: NDArrayInt
    speed_limit_mps: NDArrayFloat | None = None

    @property
    def num_features(self) -> int:
        return int(self.feature_ids.shape[0])

    @property
    def num_lanes(self) -> int:
        return int(np.count_nonzero(self.kind == MapFeatureKind.LANE_CENTERLINE))

    def points(self, index: int) -> NDArrayFloat:
        """``(N, 3)`` points of feature ``index``."""
        return self.xyz_m[self.offsets[index] : self.offsets[index + 1]]

    def speed_limits(self) -> NDArrayFloat:
        """``(F,)`` speed limits in m/s, NaN where unknown (all NaN when the map has none)."""
        if self.speed_limit_mps is None:
            return np.full(self.num_features, np.nan)
        return self.speed_limit_mps


class MapBuilder:
    """Accumulates map features and relations, then packs them into arrays.

    Relations may name features that are added later; :meth:`build` resolves
    ids to indices and drops relations whose target is not in the map (AV2 and
    Waymo maps often name lanes just outside the cropped area).
    """

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._kind: list[int] = []
        self._subtype: list[str] = []
        self._is_intersection: list[bool] = []
        self._points: list[NDArrayFloat] = []
        self._speed_limit: list[float] = []
        self._relations: list[tuple[str, str, int]] = []

    def add(
        self,
        feature_id: str,
        kind: MapFeatureKind,
        xyz_m: NDArrayFloat,
        *,
        subtype: str = "",
        is_intersection: bool = False,
        speed_limit_mps: float = float("nan"),
    ) -> None:
        """Add one feature. ``xyz_m`` is ``(N, 2)`` or ``(N, 3)``; ``speed_limit_mps`` NaN when unknown."""
        pts = np.asarray(xyz_m, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] not in (2, 3):
            raise ValidationError(f"map feature {feature_id!r}: points have shape {pts.shape}")
        if pts.shape[1] == 2:
            pts = np.concatenate([pts, np.full((pts.shape[0], 1), np.nan)], axis=1)
        self._ids.append(feature_id)
        self._kind.append(int(kind))
        self._subtype.append(subtype)
        self._is_intersection.append(is_intersection)
        self._points.append(pts)
        self._speed_limit.append(float(speed_limit_mps))

    def relate(self, src_id: str, relation: MapRelation, dst_id: str) -> None:
        """Record ``src_id --relation--> dst_id``."""
        self._relations.append((src_id, dst_id, int(relation)))

    def build(self) -> MapFeatures:
        index = {fid: i for i, fid in enumerate(self._ids)}
        if len(index) != len(self._ids):
            raise ValidationError("map feature ids are not unique")
        rel = [(index[s], index[d], r) for s, d, r in self._relations if s in index and d in index]
        relations = np.asarray(rel, dtype=np.int64).reshape(-1, 3)
        if relations.shape[0]:
            relations = relations[np.argsort(relations[:, 0], kind="stable")]
        lengths = np.asarray([p.shape[0] for p in self._points], dtype=np.int64)
        offsets = np.zeros(len(self._points) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        xyz = np.concatenate(self._points) if self._points else np.zeros((0, 3), dtype=np.float64)
        limits = np.asarray(self._speed_limit, dtype=np.float64).reshape(-1)
        return MapFeatures(
            feature_ids=np.asarray(self._ids, dtype=np.str_).reshape(-1),
            kind=np.asarray(self._kind, dtype=np.uint8),
            subtype=np.asarray(self._subtype, dtype=np.str_).reshape(-1),
            is_intersection=np.asarray(self._is_intersection, dtype=np.bool_),
            offsets=offsets,
            xyz_m=xyz,
            relations=relations,
            speed_limit_mps=limits if np.isfinite(limits).any() else None,
        )


@dataclass(frozen=True)
class TrafficLights:
    """Traffic-light states per controlled lane and step.

    Attributes:
        lane_ids: ``(L,)`` str, the controlled lane's map feature id.
        state: ``(L, T)`` int8 :class:`TrafficLightState` codes.
        stop_point_m: ``(L, 3)`` float64 where the lane's stop line is; NaN if unknown.
        valid: ``(L, T)`` bool, False where the light was not observed.
    """

    lane_ids: NDArrayStr
    state: NDArrayInt8
    stop_point_m: NDArrayFloat
    valid: NDArrayBool


@dataclass(frozen=True)
class Provenance:
    """Where a record came from, precisely enough to re-derive it.

    Attributes:
        source_path: The input file or folder, as the caller named it.
        sha256: Hex SHA-256 of the source file (of the main file for folders).
        adapter: Name of the adapter that read it.
        adapter_version: That adapter's version string.
        member: Which part of the source this record is (record index,
            window), or ``""`` when the source holds one record.
    """

    source_path: str
    sha256: str
    adapter: str
    adapter_version: str
    member: str = ""


@dataclass(frozen=True)
class ScenarioMetadata:
    """Everything about a scenario that is not an array.

    Attributes:
        frame: Name of the coordinate frame of every position (``"av2_city"``,
            ``"utm_epsg_32617"``, ``"waymo_scenario_global"``).
        provenance: Source file, its hash and the adapter.
        location: City or map name, when known.
        region: Lake region the data belongs to (set at ingest).
        tenant: Owning tenant (set at ingest).
        licence: Licence of the source data.
        extras: Dataset-specific facts (focal track, scenario tags, ...).
            Must be JSON-serialisable so the record round-trips losslessly.
    """

    frame: str
    provenance: Provenance
    location: str | None = None
    region: str | None = None
    tenant: str | None = None
    licence: str | None = None
    extras: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Scenario:
    """One drive log (or a window of one) in datadrive's common schema.

    Attributes:
        scenario_id: Unique id within its source.
        source: Name of the adapter/format it came from.
        timestamps_ns: ``(T,)`` int64, strictly increasing.
        tracks: Object states, ``(A, T)`` arrays.
        metadata: Frame, provenance and dataset-specific facts.
        map: Vector map of the scenario, if the source ships one.
        ego_index: Row of the ego (self-driving car) in ``tracks``, if any.
        traffic_lights: Traffic-light states, if the source has them.
    """

    scenario_id: str
    source: str
    timestamps_ns: NDArrayInt
    tracks: Tracks
    metadata: ScenarioMetadata
    map: MapFeatures | None = None
    ego_index: int | None = None
    traffic_lights: TrafficLights | None = None

    @property
    def num_steps(self) -> int:
        return int(self.timestamps_ns.shape[0])

    @property
    def num_tracks(self) -> int:
        return self.tracks.num_tracks

    @property
    def ego_track_id(self) -> str | None:
        return None if self.ego_index is None else str(self.tracks.track_ids[self.ego_index])

    @property
    def dt_s(self) -> float | None:
        """Median step in seconds, ``None`` for a single-step scenario."""
        if self.num_steps < 2:
            return None
        return float(np.median(np.diff(self.timestamps_ns))) / 1e9

    def validate(self) -> Scenario:
        """Check every invariant; return ``self`` so calls can be chained.

        Raises:
            ValidationError: naming the first broken invariant.
        """
        _validate_scenario(self)
        return self


# --------------------------------------------------------------------------- validation


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValidationError(message)


def _check_array(name: str, array: Any, shape: tuple[int | None, ...], kind: str) -> None:
    # messages are formatted only on failure: this runs ~20 times per record on the ingest hot path
    if not isinstance(array, np.ndarray):
        raise ValidationError(f"{name} is not a numpy array")
    if array.ndim != len(shape):
        raise ValidationError(f"{name} has {array.ndim} dims, expected {len(shape)}")
    for i, (got, want) in enumerate(zip(array.shape, shape, strict=True)):
        if want is not None and got != want:
            raise ValidationError(f"{name} has shape {array.shape}, axis {i} should be {want}")
    if array.dtype.kind != kind:
        raise ValidationError(f"{name} has dtype {array.dtype}, expected kind {kind!r}")


def _validate_scenario(s: Scenario) -> None:
    _check(isinstance(s.scenario_id, str) and s.scenario_id != "", "scenario_id is empty")
    _check(isinstance(s.source, str) and s.source != "", "source is empty")
    _check_array("timestamps_ns", s.timestamps_ns, (None,), "i")
    _check(s.timestamps_ns.dtype == np.int64, "timestamps_ns must be int64")
    t = s.num_steps
    _check(t >= 1, "scenario has no time steps")
    _check(
        bool(np.all(s.timestamps_ns[1:] > s.timestamps_ns[:-1])), "timestamps_ns are not strictly increasing"
    )
    _validate_tracks(s.tracks, t)
    if s.ego_index is not None:
        _check(0 <= s.ego_index < s.tracks.num_tracks, f"ego_index {s.ego_index} out of range")
        _check(
            int(s.tracks.object_type[s.ego_index]) == ObjectType.VEHICLE, "the ego track must be a vehicle"
        )
    if s.map is not None:
        _validate_map(s.map)
    if s.traffic_lights is not None:
        tl = s.traffic_lights
        n = tl.lane_ids.shape[0] if isinstance(tl.lane_ids, np.ndarray) else -1
        _check_array("traffic_lights.lane_ids", tl.lane_ids, (None,), "U")
        _check_array("traffic_lights.state", tl.state, (n, t), "i")
        _check_array("traffic_lights.stop_point_m", tl.stop_point_m, (n, 3), "f")
        _check_array("traffic_lights.valid", tl.valid, (n, t), "b")
    validate_metadata(s.metadata)


_MAX_OBJECT_TYPE = max(ObjectType)


def _validate_tracks(tr: Tracks, t: int) -> None:
    _check_array("tracks.track_ids", tr.track_ids, (None,), "U")
    a = tr.num_tracks
    _check_array("tracks.object_type", tr.object_type, (a,), "u")
    _check_array("tracks.category", tr.category, (a,), "U")
    _check_array("tracks.xy_m", tr.xy_m, (a, t, 2), "f")
    _check_array("tracks.z_m", tr.z_m, (a, t), "f")
    _check_array("tracks.heading_rad", tr.heading_rad, (a, t), "f")
    _check_array("tracks.velocity_mps", tr.velocity_mps, (a, t, 2), "f")
    _check_array("tracks.size_m", tr.size_m, (a, 3), "f")
    _check_array("tracks.valid", tr.valid, (a, t), "b")
    _check(len(set(tr.track_ids.tolist())) == a, "track_ids are not unique")
    _check(bool(np.all(tr.object_type <= _MAX_OBJECT_TYPE)), "object_type holds an unknown code")
    # whole-array tests on x and y separately, masked by ~valid: a boolean-mask gather of (A, T, 2),
    # or any op whose innermost axis has length 2, costs ~10x more on the ingest hot path.
    # |x| < 1e8 is False for NaN and inf too, so one pass covers both checks when all is well.
    invalid = ~tr.valid
    x, y = tr.xy_m[..., 0], tr.xy_m[..., 1]
    near = bool(np.all(((np.abs(x) < 1e8) & (np.abs(y) < 1e8)) | invalid))
    if not near:
        _check(
            bool(np.all((np.isfinite(x) & np.isfinite(y)) | invalid)),
            "a valid state has a NaN or infinite position",
        )
    _check(bool(np.all(np.isfinite(tr.heading_rad) | invalid)), "a valid state has a NaN heading")
    _check(near, "a position is further than 100,000 km from the origin")
    size = tr.size_m
    _check(not bool(np.any((size < 0) | (size >= 1e3))), "an object size is negative or absurd")


def _validate_map(m: MapFeatures) -> None:
    _check_array("map.feature_ids", m.feature_ids, (None,), "U")
    f = m.num_features
    _check_array("map.kind", m.kind, (f,), "u")
    _check_array("map.subtype", m.subtype, (f,), "U")
    _check_array("map.is_intersection", m.is_intersection, (f,), "b")
    _check_array("map.offsets", m.offsets, (f + 1,), "i")
    _check_array("map.xyz_m", m.xyz_m, (None, 3), "f")
    _check_array("map.relations", m.relations, (None, 3), "i")
    _check(len(set(m.feature_ids.tolist())) == f, "map feature ids are not unique")
    _check(int(m.offsets[0]) == 0, "map.offsets must start at 0")
    _check(bool(np.all(np.diff(m.offsets) >= 0)), "map.offsets are not non-decreasing")
    _check(int(m.offsets[-1]) == m.xyz_m.shape[0], "map.offsets do not end at the number of points")
    _check(bool(np.all(m.kind <= max(MapFeatureKind))), "map.kind holds an unknown code")
    _check(bool(np.all(np.isfinite(m.xyz_m[:, :2]))), "a map point has a NaN x or y")
    if m.speed_limit_mps is not None:
        _check_array("map.speed_limit_mps", m.speed_limit_mps, (f,), "f")
        lim = m.speed_limit_mps
        _check(
            bool(np.all(np.isnan(lim) | ((lim > 0) & (lim < 200)))),
            "a map speed limit is not a positive speed below 200 m/s (NaN marks an unknown limit)",
        )
    if m.relations.shape[0]:
        _check(
            bool(np.all((m.relations[:, :2] >= 0) & (m.relations[:, :2] < f))),
            "a map relation names a feature outside the map",
        )
        _check(bool(np.all(np.diff(m.relations[:, 0]) >= 0)), "map.relations are not sorted by src")
        _check(bool(np.all(m.relations[:, 2] <= max(MapRelation))), "map.relations hold an unknown code")


def validate_metadata(md: ScenarioMetadata) -> None:
    """Check the metadata every record carries (frame, provenance, JSON extras).

    Raises:
        ValidationError: naming the first broken invariant.
    """
    _check(isinstance(md.frame, str) and md.frame != "", "metadata.frame is empty")
    _check(len(md.provenance.sha256) == 64, "provenance.sha256 is not a hex SHA-256")
    try:
        json.dumps(dict(md.extras), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"metadata.extras is not plain JSON: {exc}") from exc


# --------------------------------------------------------------------------- equality


def _arrays_equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == "U" and b.dtype.kind == "U":  # fixed width may differ, values may not
        return a.shape == b.shape and bool(np.array_equal(a, b))
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _structs_equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, MapFeatures) and isinstance(b, MapFeatures):
        # "no limits known" reads the same whether it is None or all NaN
        plain = [f for f in a.__dataclass_fields__ if f != "speed_limit_mps"]
        return all(_arrays_equal(getattr(a, f), getattr(b, f)) for f in plain) and _arrays_equal(
            a.speed_limits(), b.speed_limits()
        )
    return all(_arrays_equal(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)


def scenarios_equal(a: Scenario, b: Scenario) -> bool:
    """Exact equality, NaN equal to NaN, dtypes included."""
    return (
        a.scenario_id == b.scenario_id
        and a.source == b.source
        and a.ego_index == b.ego_index
        and _arrays_equal(a.timestamps_ns, b.timestamps_ns)
        and _structs_equal(a.tracks, b.tracks)
        and _structs_equal(a.map, b.map)
        and _structs_equal(a.traffic_lights, b.traffic_lights)
        and _metadata_equal(a.metadata, b.metadata)
    )


def _metadata_equal(a: ScenarioMetadata, b: ScenarioMetadata) -> bool:
    plain = ("frame", "provenance", "location", "region", "tenant", "licence")
    if any(getattr(a, f) != getattr(b, f) for f in plain):
        return False
    return json.dumps(dict(a.extras), sort_keys=True) == json.dumps(dict(b.extras), sort_keys=True)
