"""Lyft Level 5 Prediction dataset: l5kit's zarr v2 layout, one Scenario per scene.

A ``*.zarr`` folder (``.zgroup`` plus one folder per array) holds four 1-D
arrays of structured records, each split into blosc-compressed chunks:
``scenes`` -> ``frames`` (via ``frame_index_interval``) -> ``agents`` and
``traffic_light_faces`` (via each frame's index intervals).

The chunks are decoded here with numcodecs' blosc and numpy, not with
zarr-python: zarr 3 cannot open structured dtypes, zarr 2 is frozen, and
reading the chunk files directly lets the reader check every header and byte
count against ``.zarray`` (a truncated or corrupt chunk names its file) and
decode only the chunks a scene needs. numcodecs comes with the ``lyft`` extra
and is imported on first read.

What a Scenario holds (one per scene):

* time grid: the scene's frames (``timestamp``, ns since the Unix epoch);
* ``ego`` (row 0, a vehicle): ``ego_translation`` (x, y, z) and the yaw of
  ``ego_rotation`` (``atan2(R[1, 0], R[0, 0])``, what l5kit's
  ``rotation33_as_yaw`` returns); the file has no ego velocity (NaN) and no
  ego size, so the size is l5kit's own ego constant (4.87 x 1.85 x 1.8 m,
  the rasteriser's ``EGO_EXTENT_*``);
* one track per agent ``track_id`` (id ``str(track_id)``, sorted by id),
  valid at the frames whose agent interval holds a row for it: ``centroid``,
  ``yaw``, ``velocity``; no height (z is NaN);
* ``size_m``: the per-track median of ``extent`` (length, width, height)
  over its rows (perception re-estimates it every frame);
* ``category``: the label with the largest *mean* ``label_probabilities``
  over the track's rows (names from ``.zattrs`` ``labels``, else l5kit's
  list); the coarse type maps cars, vans, trams, buses, trucks, emergency and
  other vehicles to ``vehicle``, pedestrians to ``pedestrian``, cyclists and
  motorcyclists to ``cyclist``, everything else (unknown, not set, don't
  care, animals, riderless bicycles and motorcycles) to ``other``.

Traffic-light faces are summarised in ``metadata.extras["traffic_light_faces"]``
(rows, faces, lights, status counts, rows per frame): they cannot become
:class:`~datadrive.core.scenario.TrafficLights` because the lanes they control
are only known from the semantic map (``semantic_map.pb``), which is not part
of the zarr. There is no map (``map`` is ``None``). Positions are in the Lyft
L5 world frame (``"lyft_l5_world"``), metres.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from datadrive.core.scenario import ObjectType, Scenario, Tracks
from datadrive.core.typing import NDArrayAny, NDArrayFloat, NDArrayInt
from datadrive.errors import (
    CorruptFileError,
    EmptyLogError,
    InvalidValueError,
    SchemaMismatchError,
    UnsupportedFormatError,
)
from datadrive.sources.base import Adapter, Record, files_sha256

__all__ = ["EGO_SIZE_M", "PERCEPTION_LABELS", "TL_FACE_LABELS", "LyftZarrAdapter", "label_object_type"]

PERCEPTION_LABELS = (
    "PERCEPTION_LABEL_NOT_SET",
    "PERCEPTION_LABEL_UNKNOWN",
    "PERCEPTION_LABEL_DONTCARE",
    "PERCEPTION_LABEL_CAR",
    "PERCEPTION_LABEL_VAN",
    "PERCEPTION_LABEL_TRAM",
    "PERCEPTION_LABEL_BUS",
    "PERCEPTION_LABEL_TRUCK",
    "PERCEPTION_LABEL_EMERGENCY_VEHICLE",
    "PERCEPTION_LABEL_OTHER_VEHICLE",
    "PERCEPTION_LABEL_BICYCLE",
    "PERCEPTION_LABEL_MOTORCYCLE",
    "PERCEPTION_LABEL_CYCLIST",
    "PERCEPTION_LABEL_MOTORCYCLIST",
    "PERCEPTION_LABEL_PEDESTRIAN",
    "PERCEPTION_LABEL_ANIMAL",
    "AVRESEARCH_LABEL_DONTCARE",
)
"""l5kit's ``PERCEPTION_LABELS``, used when ``.zattrs`` does not name the labels."""

TL_FACE_LABELS = ("ACTIVE", "INACTIVE", "UNKNOWN")
"""l5kit's ``TL_FACE_LABELS``: the columns of ``traffic_light_face_status``."""

EGO_SIZE_M = (4.87, 1.85, 1.8)
"""Ego length, width, height: l5kit's rasteriser constants (the file has none)."""

_VEHICLE_LABELS = frozenset(
    f"PERCEPTION_LABEL_{n}"
    for n in ("CAR", "VAN", "TRAM", "BUS", "TRUCK", "EMERGENCY_VEHICLE", "OTHER_VEHICLE")
)
_CYCLIST_LABELS = frozenset(("PERCEPTION_LABEL_CYCLIST", "PERCEPTION_LABEL_MOTORCYCLIST"))
_PEDESTRIAN_LABELS = frozenset(("PERCEPTION_LABEL_PEDESTRIAN",))


def label_object_type(label: str) -> ObjectType:
    """The coarse type of a Lyft perception label (unknown labels are ``OTHER``)."""
    if label in _VEHICLE_LABELS:
        return ObjectType.VEHICLE
    if label in _CYCLIST_LABELS:
        return ObjectType.CYCLIST
    if label in _PEDESTRIAN_LABELS:
        return ObjectType.PEDESTRIAN
    return ObjectType.OTHER


# Required record fields per array: name -> (allowed dtype kinds, sub-array shape; None = any length).
_Spec = Mapping[str, tuple[str, tuple[int | None, ...]]]
_SCENE_FIELDS: _Spec = {"frame_index_interval": ("iu", (2,))}
_FRAME_FIELDS: _Spec = {
    "timestamp": ("iu", ()),
    "agent_index_interval": ("iu", (2,)),
    "ego_translation": ("f", (3,)),
    "ego_rotation": ("f", (3, 3)),
}
_AGENT_FIELDS: _Spec = {
    "centroid": ("f", (2,)),
    "extent": ("f", (3,)),
    "yaw": ("f", ()),
    "velocity": ("f", (2,)),
    "track_id": ("iu", ()),
    "label_probabilities": ("f", (None,)),
}
_TL_FIELDS: _Spec = {
    "face_id": ("US", ()),
    "traffic_light_id": ("US", ()),
    "traffic_light_face_status": ("f", (len(TL_FACE_LABELS),)),
}
_BLOSC_HEADER = struct.Struct("<BBBBIII")  # version, versionlz, flags, typesize, nbytes, blocksize, cbytes


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise SchemaMismatchError(path, f"{what} is missing")
    try:
        return json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptFileError(path, f"{what} is not valid JSON ({exc})") from exc


def _structured_dtype(path: Path, descr: Any) -> np.dtype[Any]:
    """A numpy structured dtype from a zarr v2 ``dtype`` list, plain data only."""
    if not isinstance(descr, list) or not descr:
        raise SchemaMismatchError(path, "dtype is not a structured (record) dtype")
    fields: list[tuple[Any, ...]] = []
    for item in descr:
        ok = isinstance(item, list) and len(item) in (2, 3) and all(isinstance(x, str) for x in item[:2])
        if ok and len(item) == 3:
            ok = isinstance(item[2], list) and all(isinstance(n, int) and 0 < n < 1 << 16 for n in item[2])
        if not ok:
            raise SchemaMismatchError(path, f"malformed dtype field {item!r}")
        fields.append((item[0], item[1]) if len(item) == 2 else (item[0], item[1], tuple(item[2])))
    try:
        dtype = np.dtype(fields)
    except (TypeError, ValueError) as exc:
        raise SchemaMismatchError(path, f"unreadable dtype ({exc})") from exc
    if dtype.hasobject:
        raise SchemaMismatchError(path, "dtype holds Python objects")
    return dtype


class _ZarrArray:
    """One 1-D zarr v2 array of records, read chunk by chunk."""

    def __init__(self, root: Path, name: str, fields: _Spec) -> None:
        self.name = name
        self.folder = root / name
        meta_path = self.folder / ".zarray"
        meta = _read_json(meta_path, f"array {name!r} ({name}/.zarray)")
        if not isinstance(meta, dict):
            raise CorruptFileError(meta_path, "is not a JSON object")
        if meta.get("zarr_format") != 2:
            raise UnsupportedFormatError(meta_path, f"zarr_format {meta.get('zarr_format')!r}, expected 2")
        shape: Any = meta.get("shape")
        chunks: Any = meta.get("chunks")
        if not (_is_int_list(shape, 0) and _is_int_list(chunks, 1)):
            raise SchemaMismatchError(
                meta_path, f"expected a 1-D array, got shape {shape!r}, chunks {chunks!r}"
            )
        if meta.get("filters") not in (None, []):
            raise UnsupportedFormatError(meta_path, "zarr filters are not supported")
        compressor = meta.get("compressor")
        if compressor is not None and not (isinstance(compressor, dict) and compressor.get("id") == "blosc"):
            raise UnsupportedFormatError(
                meta_path, f"compressor {compressor!r} is not supported (blosc only)"
            )
        self.dtype = _structured_dtype(meta_path, meta.get("dtype"))
        for field, (kinds, sub) in fields.items():
            if self.dtype.names is None or field not in self.dtype.names:
                raise SchemaMismatchError(meta_path, f"{name} has no field {field!r}")
            base, got = self.dtype[field].base, self.dtype[field].shape
            if (
                base.kind not in kinds
                or len(got) != len(sub)
                or any(s is not None and g != s for g, s in zip(got, sub, strict=True))
            ):
                raise SchemaMismatchError(meta_path, f"field {name}.{field} has dtype {self.dtype[field]}")
        self.length = int(shape[0])
        self.chunk_len = int(chunks[0])
        self.blosc = compressor is not None
        self._cache: dict[int, NDArrayAny] = {}

    def _chunk(self, index: int) -> NDArrayAny:
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        path = self.folder / str(index)
        if not path.is_file():
            raise CorruptFileError(path, f"chunk {index} of {self.name} is missing")
        raw = path.read_bytes()
        expected = self.chunk_len * self.dtype.itemsize
        if self.blosc:
            if len(raw) < _BLOSC_HEADER.size:
                raise CorruptFileError(path, f"truncated: {len(raw)} bytes, shorter than a blosc header")
            _v, _vlz, _flags, _typesize, nbytes, _block, cbytes = _BLOSC_HEADER.unpack_from(raw)
            if cbytes != len(raw):
                raise CorruptFileError(
                    path, f"truncated or padded: blosc header says {cbytes} bytes, file has {len(raw)}"
                )
            if nbytes != expected:
                raise CorruptFileError(path, f"decompresses to {nbytes} bytes, expected {expected}")
            out = np.empty(expected, dtype=np.uint8)
            _blosc_decode(path, raw, out)
            records = out.view(self.dtype)
        else:
            if len(raw) != expected:
                raise CorruptFileError(path, f"has {len(raw)} bytes, expected {expected}")
            records = np.frombuffer(raw, dtype=self.dtype)
        if len(self._cache) >= 2:
            self._cache.pop(next(iter(self._cache)))
        self._cache[index] = records
        return records

    def read(self, start: int, stop: int) -> NDArrayAny:
        """Records ``[start, stop)``, ``0 <= start <= stop <= length``."""
        if not 0 <= start <= stop <= self.length:
            raise InvalidValueError(
                self.folder, f"rows [{start}, {stop}) are outside {self.name} (0..{self.length})"
            )
        if start == stop:
            return np.zeros(0, dtype=self.dtype)
        first, last = start // self.chunk_len, (stop - 1) // self.chunk_len
        parts = [
            self._chunk(i)[max(start - i * self.chunk_len, 0) : stop - i * self.chunk_len]
            for i in range(first, last + 1)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def read_all(self) -> NDArrayAny:
        return self.read(0, self.length)


def _is_int_list(value: Any, minimum: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 1
        and isinstance(value[0], int)
        and not isinstance(value[0], bool)
        and minimum <= value[0] < 1 << 40
    )


def _blosc_decode(path: Path, raw: bytes, out: NDArrayAny) -> None:
    try:
        from numcodecs import blosc
    except ImportError as exc:  # pragma: no cover - the lyft extra is missing
        raise UnsupportedFormatError(
            path, "reading Lyft zarr needs numcodecs: pip install 'datadrive[lyft]'"
        ) from exc
    try:
        blosc.decompress(raw, out)
    except (RuntimeError, ValueError) as exc:
        raise CorruptFileError(path, f"blosc cannot decompress it ({exc})") from exc


def _intervals(path: Path, what: str, iv: NDArrayInt, limit: int) -> None:
    """Check that per-frame ``[start, end)`` row intervals are ordered, contiguous and in range."""
    if iv.shape[0] == 0:
        return
    if bool(np.any(iv[:, 0] > iv[:, 1])):
        raise InvalidValueError(path, f"a {what} interval ends before it starts")
    if bool(np.any(iv[1:, 0] != iv[:-1, 1])):
        raise InvalidValueError(path, f"{what} intervals of consecutive frames are not contiguous")
    if int(iv[0, 0]) < 0 or int(iv[-1, 1]) > limit:
        raise InvalidValueError(
            path, f"{what} rows [{iv[0, 0]}, {iv[-1, 1]}) are outside the array (0..{limit})"
        )


def _group_median(values: NDArrayAny, group: NDArrayInt, num_groups: int) -> NDArrayFloat:
    """Per-group median of ``(N, C)`` values; ``group`` ``(N,)`` in ``[0, G)``, every group non-empty.

    Sorts each column by (group, value) at once: float32 values (Lyft's ``extent``) are packed with
    their group into one uint64 key whose order is (group, value) order; other dtypes take two
    stable argsorts.
    """
    counts = np.bincount(group, minlength=num_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lo, hi = starts + (counts - 1) // 2, starts + counts // 2
    out = np.empty((num_groups, values.shape[1]), dtype=np.float64)
    for c in range(values.shape[1]):
        column = np.ascontiguousarray(values[:, c])
        if column.dtype == np.float32:
            bits = column.view(np.uint32)
            # IEEE-754 bits -> unsigned order: flip all bits of negatives, the sign bit of positives
            ordered = np.where(bits >> 31 == 1, ~bits, bits | np.uint32(0x80000000)).astype(np.uint64)
            key = np.sort((group.astype(np.uint64) << np.uint64(32)) | ordered)
            low = (key & np.uint64(0xFFFFFFFF)).astype(np.uint32)
            back = np.where(low >> 31 == 1, low & np.uint32(0x7FFFFFFF), ~low)
            v = back.view(np.float32).astype(np.float64)
        else:
            by_value = np.argsort(column, kind="stable")
            v = column[by_value[np.argsort(group[by_value], kind="stable")]].astype(np.float64)
        out[:, c] = 0.5 * (v[lo] + v[hi])
    return out


class LyftZarrAdapter(Adapter):
    """Reads a Lyft Level 5 Prediction ``*.zarr`` folder: one Scenario per scene."""

    name: ClassVar[str] = "lyft_l5kit"
    version: ClassVar[str] = "1"
    unit = "dir"
    licence: ClassVar[str] = "Lyft Level 5 Prediction dataset terms (non-commercial); l5kit code Apache-2.0"
    download_hint: ClassVar[str] = "https://woven.toyota/en/prediction-dataset (l5kit: scenes/*.zarr)"

    def claims(self, path: Path) -> bool:
        if not path.is_dir() or not (path / ".zgroup").is_file():
            return False
        return path.suffix == ".zarr" or (
            (path / "frames" / ".zarray").is_file() and (path / "agents" / ".zarray").is_file()
        )

    def _read(self, path: Path) -> Iterator[Record]:
        group = _read_json(path / ".zgroup", "the zarr group (.zgroup)")
        if not isinstance(group, dict) or group.get("zarr_format") != 2:
            raise UnsupportedFormatError(path / ".zgroup", "not a zarr v2 group")
        attrs = _read_json(path / ".zattrs", ".zattrs") if (path / ".zattrs").is_file() else {}
        if not isinstance(attrs, dict):
            raise CorruptFileError(path / ".zattrs", "is not a JSON object")
        labels = attrs.get("labels", list(PERCEPTION_LABELS))
        if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)):
            raise SchemaMismatchError(path / ".zattrs", "'labels' is not a list of label names")

        scenes_arr = _ZarrArray(path, "scenes", _SCENE_FIELDS)
        frames_arr = _ZarrArray(path, "frames", _FRAME_FIELDS)
        agents_arr = _ZarrArray(path, "agents", _AGENT_FIELDS)
        tl_arr = (
            _ZarrArray(path, "traffic_light_faces", _TL_FIELDS)
            if (path / "traffic_light_faces").is_dir()
            else None
        )
        if agents_arr.dtype["label_probabilities"].shape[0] != len(labels):
            raise SchemaMismatchError(
                agents_arr.folder / ".zarray",
                f"label_probabilities has {agents_arr.dtype['label_probabilities'].shape[0]} columns "
                f"but .zattrs names {len(labels)} labels",
            )
        if tl_arr is not None and "traffic_light_faces_index_interval" not in (frames_arr.dtype.names or ()):
            raise SchemaMismatchError(
                frames_arr.folder / ".zarray", "frames lack traffic_light_faces_index_interval"
            )

        scenes = scenes_arr.read_all()
        if scenes.shape[0] == 0:
            raise EmptyLogError(path, "the zarr holds no scenes")
        sha = files_sha256(path, [f for f in path.rglob("*") if f.is_file()])
        label_names = np.asarray(labels, dtype=np.str_)
        label_types = np.asarray([label_object_type(x) for x in labels], dtype=np.uint8)
        for index in range(scenes.shape[0]):  # one scene at a time: a full train.zarr does not fit in memory
            with np.errstate(over="ignore", invalid="ignore"):  # tampered values are named by the checks
                scenario_id, timestamps, tracks, extras = self._scene(
                    path,
                    index,
                    scenes[index],
                    frames_arr,
                    agents_arr,
                    tl_arr,
                    label_names,
                    label_types,
                    attrs,
                )
            yield Scenario(
                scenario_id=scenario_id,
                source=self.name,
                timestamps_ns=timestamps,
                tracks=tracks,
                metadata=self.metadata(
                    path,
                    sha,
                    frame="lyft_l5_world",
                    member=f"scene {index}",
                    location="palo_alto",
                    extras=extras,
                ),
                ego_index=0,
            )

    def _scene(
        self,
        path: Path,
        index: int,
        scene: Any,
        frames_arr: _ZarrArray,
        agents_arr: _ZarrArray,
        tl_arr: _ZarrArray | None,
        label_names: NDArrayAny,
        label_types: NDArrayAny,
        attrs: Mapping[str, Any],
    ) -> tuple[str, NDArrayInt, Tracks, dict[str, Any]]:
        f0, f1 = (int(x) for x in scene["frame_index_interval"])
        where = f"scene {index}"
        if f0 >= f1:
            raise EmptyLogError(path, f"{where} has no frames (frame_index_interval [{f0}, {f1}))")
        frames = frames_arr.read(f0, f1)
        t = frames.shape[0]
        timestamps = frames["timestamp"].astype(np.int64)
        if t > 1 and not bool(np.all(np.diff(timestamps) > 0)):
            raise InvalidValueError(path, f"{where}: frame timestamps are not strictly increasing")
        ego_xyz = frames["ego_translation"].astype(np.float64)
        ego_rot = frames["ego_rotation"].astype(np.float64)
        if not (bool(np.isfinite(ego_xyz).all()) and bool(np.isfinite(ego_rot).all())):
            raise InvalidValueError(path, f"{where}: an ego translation or rotation is NaN or infinite")

        agent_iv = frames["agent_index_interval"].astype(np.int64)
        _intervals(path, f"{where}: agent", agent_iv, agents_arr.length)
        agents = agents_arr.read(int(agent_iv[0, 0]), int(agent_iv[-1, 1]))
        step = np.repeat(np.arange(t, dtype=np.int64), agent_iv[:, 1] - agent_iv[:, 0])
        centroid = agents["centroid"].astype(np.float64)
        yaw = agents["yaw"].astype(np.float64)
        probs = agents["label_probabilities"].astype(np.float64)
        if not (bool(np.isfinite(centroid).all()) and bool(np.isfinite(yaw).all())):
            bad = int(np.flatnonzero(~(np.isfinite(centroid).all(axis=1) & np.isfinite(yaw)))[0])
            raise InvalidValueError(
                path, f"{where}: agent row {int(agent_iv[0, 0]) + bad} has a NaN centroid or yaw"
            )
        if not bool(np.isfinite(probs).all()):
            raise InvalidValueError(path, f"{where}: an agent's label_probabilities are NaN or infinite")
        track_ids, inverse = np.unique(agents["track_id"], return_inverse=True)
        a = int(track_ids.shape[0])
        # the argmax of the summed probabilities is the argmax of their mean
        summed = np.stack([np.bincount(inverse, probs[:, k], minlength=a) for k in range(probs.shape[1])], -1)
        label = summed.argmax(axis=1) if a else np.zeros(0, dtype=np.int64)

        ids = np.concatenate([["ego"], track_ids.astype(np.str_)]).astype(np.str_)
        types = np.concatenate([[ObjectType.VEHICLE], label_types[label]]).astype(np.uint8)
        cats = np.concatenate([["ego"], label_names[label]]).astype(np.str_)
        tracks = Tracks.allocate(ids, types, cats, t)
        rows = inverse + 1
        tracks.valid[rows, step] = True
        if int(np.count_nonzero(tracks.valid)) != agents.shape[0]:  # two rows landed on one cell
            raise InvalidValueError(path, f"{where}: a track_id appears twice in one frame")
        tracks.xy_m[rows, step] = centroid
        tracks.heading_rad[rows, step] = yaw
        tracks.velocity_mps[rows, step] = agents["velocity"]
        if a:
            tracks.size_m[1:] = _group_median(agents["extent"], inverse, a)
        tracks.xy_m[0] = ego_xyz[:, :2]
        tracks.z_m[0] = ego_xyz[:, 2]
        tracks.heading_rad[0] = np.arctan2(ego_rot[:, 1, 0], ego_rot[:, 0, 0])
        tracks.valid[0] = True
        tracks.size_m[0] = EGO_SIZE_M

        extras: dict[str, Any] = {
            "scene_index": index,
            "host": str(scene["host"]) if "host" in (scene.dtype.names or ()) else None,
            "scene_start_time_ns": int(scene["start_time"])
            if "start_time" in (scene.dtype.names or ())
            else None,
            "scene_end_time_ns": int(scene["end_time"]) if "end_time" in (scene.dtype.names or ()) else None,
            "frame_index_interval": [f0, f1],
            "agent_index_interval": [int(agent_iv[0, 0]), int(agent_iv[-1, 1])],
            "zarr_format_version": attrs.get("format_version"),
        }
        if tl_arr is not None:
            extras["traffic_light_faces"] = self._traffic_lights(path, where, frames, tl_arr)
        return f"{path.stem}/{index}", timestamps, tracks, extras

    @staticmethod
    def _traffic_lights(path: Path, where: str, frames: NDArrayAny, tl_arr: _ZarrArray) -> dict[str, Any]:
        iv = frames["traffic_light_faces_index_interval"].astype(np.int64)
        _intervals(path, f"{where}: traffic light face", iv, tl_arr.length)
        faces = tl_arr.read(int(iv[0, 0]), int(iv[-1, 1]))
        status = faces["traffic_light_face_status"].astype(np.float64)
        if not bool(np.isfinite(status).all()):
            raise InvalidValueError(path, f"{where}: a traffic_light_face_status is NaN or infinite")
        state = status.argmax(axis=1) if faces.shape[0] else np.zeros(0, dtype=np.int64)
        counts = np.bincount(state, minlength=len(TL_FACE_LABELS))
        return {
            "rows": int(faces.shape[0]),
            "faces": int(np.unique(faces["face_id"]).shape[0]),
            "lights": int(np.unique(faces["traffic_light_id"]).shape[0]),
            "status_counts": {name: int(counts[i]) for i, name in enumerate(TL_FACE_LABELS)},
            "rows_per_frame": (iv[:, 1] - iv[:, 0]).tolist(),
            "index_interval": [int(iv[0, 0]), int(iv[-1, 1])],
        }
