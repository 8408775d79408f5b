"""Lossless conversion between :class:`Scenario` and Arrow tables.

A batch of scenarios becomes three tables, the shape the lake stores:

* ``scenarios``: one row per scenario (ids, timestamps, metadata, traffic
  lights, map relations);
* ``tracks``: one row per scenario x track, per-step quantities as list
  columns of length T;
* ``map_features``: one row per scenario x map feature, points as list columns.

Conversion is vectorised: list columns are built from flat numpy buffers and
offsets, never row by row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datadrive.core.scenario import (
    MapFeatures,
    Provenance,
    Scenario,
    ScenarioMetadata,
    Tracks,
    TrafficLights,
)
from datadrive.core.typing import NDArrayAny, NDArrayInt
from datadrive.errors import ValidationError

__all__ = [
    "MAP_FEATURE_SCHEMA",
    "SCENARIO_SCHEMA",
    "TRACK_SCHEMA",
    "ScenarioTables",
    "metadata_from_row",
    "scenarios_from_arrow",
    "scenarios_to_arrow",
]

_F64 = pa.list_(pa.float64())

SCENARIO_SCHEMA = pa.schema(
    [
        ("scenario_id", pa.string()),
        ("source", pa.string()),
        ("timestamps_ns", pa.list_(pa.int64())),
        ("ego_index", pa.int32()),
        ("frame", pa.string()),
        ("location", pa.string()),
        ("region", pa.string()),
        ("tenant", pa.string()),
        ("licence", pa.string()),
        ("source_path", pa.string()),
        ("source_sha256", pa.string()),
        ("adapter", pa.string()),
        ("adapter_version", pa.string()),
        ("member", pa.string()),
        ("extras_json", pa.string()),
        ("has_map", pa.bool_()),
        ("map_relations", pa.list_(pa.list_(pa.int64(), 3))),
        ("tl_lane_ids", pa.list_(pa.string())),
        ("tl_state", pa.list_(pa.list_(pa.int8()))),
        ("tl_valid", pa.list_(pa.list_(pa.bool_()))),
        ("tl_stop_point_m", pa.list_(pa.list_(pa.float64(), 3))),
    ]
)

TRACK_SCHEMA = pa.schema(
    [
        ("scenario_id", pa.string()),
        ("track_index", pa.int32()),
        ("track_id", pa.string()),
        ("object_type", pa.uint8()),
        ("category", pa.string()),
        ("length_m", pa.float64()),
        ("width_m", pa.float64()),
        ("height_m", pa.float64()),
        ("x_m", _F64),
        ("y_m", _F64),
        ("z_m", _F64),
        ("heading_rad", _F64),
        ("vx_mps", _F64),
        ("vy_mps", _F64),
        ("valid", pa.list_(pa.bool_())),
    ]
)

MAP_FEATURE_SCHEMA = pa.schema(
    [
        ("scenario_id", pa.string()),
        ("feature_index", pa.int32()),
        ("feature_id", pa.string()),
        ("kind", pa.uint8()),
        ("subtype", pa.string()),
        ("is_intersection", pa.bool_()),
        ("speed_limit_mps", pa.float64()),  # null where unknown (SQL reads NULL, never NaN)
        ("x_m", _F64),
        ("y_m", _F64),
        ("z_m", _F64),
    ]
)


@dataclass(frozen=True)
class ScenarioTables:
    """The three Arrow tables that hold a batch of scenarios."""

    scenarios: pa.Table
    tracks: pa.Table
    map_features: pa.Table


# --------------------------------------------------------------------------- to Arrow


def _offsets(lengths: Sequence[int] | NDArrayInt) -> pa.Array:
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=out[1:])
    return pa.array(out, type=pa.int64())


def _lists(flat: NDArrayAny, lengths: Sequence[int] | NDArrayInt, value_type: pa.DataType) -> pa.Array:
    """A ``large``-offset-free list array from a flat buffer and row lengths."""
    values = pa.array(flat, type=value_type)
    offsets = _offsets(lengths).cast(pa.int32())
    return pa.ListArray.from_arrays(offsets, values, type=pa.list_(value_type))


def _per_step(arrays: list[NDArrayAny], offsets: pa.Array, value_type: pa.DataType) -> pa.Array:
    """``(A, T)`` arrays of many scenarios -> one list column of A_total rows.

    ``offsets``: the column's int32 list offsets (the same for every per-step column of a batch).
    """
    if len(arrays) == 1:  # one scenario per input, mostly: one copy, not two
        flat = np.ascontiguousarray(arrays[0]).reshape(-1)
    else:
        flat = np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.zeros(0)
    return pa.ListArray.from_arrays(offsets, pa.array(flat, type=value_type), type=pa.list_(value_type))


def _nested(items: list[NDArrayAny | None], value_type: pa.DataType, inner: int | None) -> pa.Array:
    """One ``list<list<value>>`` cell per scenario from ``(L, n)`` arrays (None -> null)."""
    inner_type = pa.list_(value_type, inner) if inner is not None else pa.list_(value_type)
    if inner is None:
        cells: list[Any] = [None if x is None else x.tolist() for x in items]
        return pa.array(cells, type=pa.list_(inner_type))
    # fixed-size rows: built from one flat buffer and offsets, never through Python lists
    present = [x for x in items if x is not None]
    flat = (
        np.concatenate([np.asarray(x).reshape(-1) for x in present])
        if present
        else np.zeros(0, dtype=value_type.to_pandas_dtype())
    )
    rows = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=value_type), inner)
    lengths = np.asarray([0 if x is None else np.asarray(x).shape[0] for x in items], dtype=np.int64)
    offsets = _offsets(lengths).cast(pa.int32())
    mask = pa.array([x is None for x in items], type=pa.bool_())
    return pa.ListArray.from_arrays(offsets, rows, type=pa.list_(inner_type), mask=mask)


def scenarios_to_arrow(scenarios: Sequence[Scenario]) -> ScenarioTables:
    """Convert a batch of scenarios to Arrow tables.

    Args:
        scenarios: Validated scenarios; ids need not be unique across sources,
            but a batch must not repeat one.

    Returns:
        The ``scenarios``, ``tracks`` and ``map_features`` tables.
    """
    plain = [n for n in SCENARIO_SCHEMA.names if not pa.types.is_list(SCENARIO_SCHEMA.field(n).type)]
    rows: dict[str, list[Any]] = {name: [] for name in plain}
    for s in scenarios:
        md, pv = s.metadata, s.metadata.provenance
        rows["scenario_id"].append(s.scenario_id)
        rows["source"].append(s.source)
        rows["ego_index"].append(s.ego_index)
        rows["frame"].append(md.frame)
        rows["location"].append(md.location)
        rows["region"].append(md.region)
        rows["tenant"].append(md.tenant)
        rows["licence"].append(md.licence)
        rows["source_path"].append(pv.source_path)
        rows["source_sha256"].append(pv.sha256)
        rows["adapter"].append(pv.adapter)
        rows["adapter_version"].append(pv.adapter_version)
        rows["member"].append(pv.member)
        rows["extras_json"].append(json.dumps(dict(md.extras), allow_nan=False))
        rows["has_map"].append(s.map is not None)
    columns: dict[str, pa.Array] = {
        name: pa.array(values, type=SCENARIO_SCHEMA.field(name).type) for name, values in rows.items()
    }
    columns["timestamps_ns"] = _lists(
        np.concatenate([s.timestamps_ns for s in scenarios]) if scenarios else np.zeros(0, np.int64),
        [s.num_steps for s in scenarios],
        pa.int64(),
    )
    columns["map_relations"] = _nested(
        [None if s.map is None else s.map.relations for s in scenarios], pa.int64(), 3
    )
    tls = [s.traffic_lights for s in scenarios]
    columns["tl_lane_ids"] = pa.array(
        [None if t is None else t.lane_ids.tolist() for t in tls], type=pa.list_(pa.string())
    )
    columns["tl_state"] = _nested([None if t is None else t.state for t in tls], pa.int8(), None)
    columns["tl_valid"] = _nested([None if t is None else t.valid for t in tls], pa.bool_(), None)
    columns["tl_stop_point_m"] = _nested(
        [None if t is None else t.stop_point_m for t in tls], pa.float64(), 3
    )
    scenario_table = pa.table([columns[n] for n in SCENARIO_SCHEMA.names], schema=SCENARIO_SCHEMA)
    return ScenarioTables(scenario_table, _tracks_table(scenarios), _map_table(scenarios))


def _repeat_ids(scenarios: Sequence[Scenario], counts: list[int]) -> pa.Array:
    ids = pa.array([s.scenario_id for s in scenarios], type=pa.string())
    return pc.take(ids, pa.array(np.repeat(np.arange(len(counts)), counts)))


def _tracks_table(scenarios: Sequence[Scenario]) -> pa.Table:
    trs = [s.tracks for s in scenarios]
    counts = [t.num_tracks for t in trs]
    steps = [s.num_steps for s in scenarios]

    def cat(get: Any) -> NDArrayAny:
        parts = [get(t) for t in trs]
        return np.concatenate(parts) if parts else np.zeros(0)

    size = cat(lambda t: t.size_m).reshape(-1, 3)
    lengths = np.repeat(np.asarray(steps, dtype=np.int64), counts) if counts else np.zeros(0, np.int64)
    offsets = _offsets(lengths).cast(pa.int32())
    cols = {
        "scenario_id": _repeat_ids(scenarios, counts),
        "track_index": pa.array(
            np.concatenate([np.arange(c, dtype=np.int32) for c in counts]) if counts else [],
            type=pa.int32(),
        ),
        "track_id": pa.array(cat(lambda t: t.track_ids).tolist(), type=pa.string()),
        "object_type": pa.array(cat(lambda t: t.object_type).astype(np.uint8), type=pa.uint8()),
        "category": pa.array(cat(lambda t: t.category).tolist(), type=pa.string()),
        "length_m": pa.array(size[:, 0], type=pa.float64()),
        "width_m": pa.array(size[:, 1], type=pa.float64()),
        "height_m": pa.array(size[:, 2], type=pa.float64()),
        "x_m": _per_step([t.xy_m[..., 0] for t in trs], offsets, pa.float64()),
        "y_m": _per_step([t.xy_m[..., 1] for t in trs], offsets, pa.float64()),
        "z_m": _per_step([t.z_m for t in trs], offsets, pa.float64()),
        "heading_rad": _per_step([t.heading_rad for t in trs], offsets, pa.float64()),
        "vx_mps": _per_step([t.velocity_mps[..., 0] for t in trs], offsets, pa.float64()),
        "vy_mps": _per_step([t.velocity_mps[..., 1] for t in trs], offsets, pa.float64()),
        "valid": _per_step([t.valid for t in trs], offsets, pa.bool_()),
    }
    return pa.table([cols[n] for n in TRACK_SCHEMA.names], schema=TRACK_SCHEMA)


def _nullable(values: NDArrayAny) -> pa.Array:
    """A float64 column with NULL where ``values`` is NaN."""
    return pa.array(values, type=pa.float64(), mask=np.isnan(values))


def _map_table(scenarios: Sequence[Scenario]) -> pa.Table:
    with_map = [s for s in scenarios if s.map is not None]
    maps = [s.map for s in with_map if s.map is not None]
    counts = [m.num_features for m in maps]
    if not maps:
        return MAP_FEATURE_SCHEMA.empty_table()
    lengths = np.concatenate([np.diff(m.offsets) for m in maps])
    xyz = np.concatenate([m.xyz_m for m in maps])
    cols = {
        "scenario_id": _repeat_ids(with_map, counts),
        "feature_index": pa.array(np.concatenate([np.arange(c, dtype=np.int32) for c in counts])),
        "feature_id": pa.array(np.concatenate([m.feature_ids for m in maps]), type=pa.string()),
        "kind": pa.array(np.concatenate([m.kind for m in maps]), type=pa.uint8()),
        "subtype": pa.array(np.concatenate([m.subtype for m in maps]), type=pa.string()),
        "is_intersection": pa.array(np.concatenate([m.is_intersection for m in maps])),
        "speed_limit_mps": _nullable(np.concatenate([m.speed_limits() for m in maps])),
        "x_m": _lists(xyz[:, 0], lengths, pa.float64()),
        "y_m": _lists(xyz[:, 1], lengths, pa.float64()),
        "z_m": _lists(xyz[:, 2], lengths, pa.float64()),
    }
    return pa.table([cols[n] for n in MAP_FEATURE_SCHEMA.names], schema=MAP_FEATURE_SCHEMA)


# --------------------------------------------------------------------------- from Arrow


def _flat(column: pa.ChunkedArray | pa.Array) -> NDArrayAny:
    """Values of a list column, respecting slices, as one numpy array."""
    values = pc.list_flatten(column)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_boolean(values.type):
        return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.bool_)
    return np.asarray(values.to_numpy(zero_copy_only=False))


def _group_rows(table: pa.Table, index_column: str) -> dict[str, pa.Table]:
    """Split a table by scenario_id, each part sorted by its index column."""
    if table.num_rows == 0:
        return {}
    table = table.sort_by([("scenario_id", "ascending"), (index_column, "ascending")])
    ids = table.column("scenario_id").to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    return {str(ids[b]): table.slice(b, e - b) for b, e in zip(starts, ends, strict=True)}


def _tracks_from(table: pa.Table | None, num_steps: int) -> Tracks:
    if table is None:
        empty = np.zeros(0, dtype=np.str_)
        return Tracks.allocate(empty, np.zeros(0, np.uint8), empty, num_steps)
    a, t = table.num_rows, num_steps

    def steps(name: str) -> NDArrayAny:
        flat = _flat(table.column(name))
        if flat.shape[0] != a * t:
            raise ValidationError(f"tracks.{name} lists do not all have {t} steps")
        return flat.reshape(a, t)

    return Tracks(
        track_ids=np.asarray(table.column("track_id").to_pylist(), dtype=np.str_),
        object_type=table.column("object_type").to_numpy().astype(np.uint8),
        category=np.asarray(table.column("category").to_pylist(), dtype=np.str_),
        xy_m=np.stack([steps("x_m"), steps("y_m")], axis=-1).astype(np.float64),
        z_m=steps("z_m").astype(np.float64),
        heading_rad=steps("heading_rad").astype(np.float64),
        velocity_mps=np.stack([steps("vx_mps"), steps("vy_mps")], axis=-1).astype(np.float64),
        size_m=np.stack(
            [table.column(c).to_numpy(zero_copy_only=False) for c in ("length_m", "width_m", "height_m")],
            axis=-1,
        )
        .astype(np.float64)
        .reshape(a, 3),
        valid=steps("valid").astype(np.bool_),
    )


def _map_from(table: pa.Table | None, relations: Any) -> MapFeatures:
    rel = np.asarray(relations if relations is not None else [], dtype=np.int64).reshape(-1, 3)
    if table is None:
        return MapFeatures(
            feature_ids=np.zeros(0, dtype=np.str_),
            kind=np.zeros(0, dtype=np.uint8),
            subtype=np.zeros(0, dtype=np.str_),
            is_intersection=np.zeros(0, dtype=np.bool_),
            offsets=np.zeros(1, dtype=np.int64),
            xyz_m=np.zeros((0, 3), dtype=np.float64),
            relations=rel,
        )
    lengths = pc.list_value_length(table.column("x_m")).to_numpy(zero_copy_only=False)
    offsets = np.zeros(table.num_rows + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    xyz = np.stack([_flat(table.column(c)) for c in ("x_m", "y_m", "z_m")], axis=-1)
    limits: NDArrayAny | None = None
    if "speed_limit_mps" in table.column_names:  # a lake written before speed limits has no such column
        col = table.column("speed_limit_mps")
        if col.null_count < table.num_rows:
            limits = col.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls become NaN
    return MapFeatures(
        feature_ids=np.asarray(table.column("feature_id").to_pylist(), dtype=np.str_),
        kind=table.column("kind").to_numpy().astype(np.uint8),
        subtype=np.asarray(table.column("subtype").to_pylist(), dtype=np.str_),
        is_intersection=np.asarray(table.column("is_intersection").to_pylist(), dtype=np.bool_),
        offsets=offsets,
        xyz_m=xyz.astype(np.float64).reshape(-1, 3),
        relations=rel,
        speed_limit_mps=limits,
    )


def _traffic_lights_from(row: dict[str, Any], num_steps: int) -> TrafficLights | None:
    if row["tl_lane_ids"] is None:
        return None
    n = len(row["tl_lane_ids"])
    return TrafficLights(
        lane_ids=np.asarray(row["tl_lane_ids"], dtype=np.str_).reshape(n),
        state=np.asarray(row["tl_state"], dtype=np.int8).reshape(n, num_steps),
        stop_point_m=np.asarray(row["tl_stop_point_m"], dtype=np.float64).reshape(n, 3),
        valid=np.asarray(row["tl_valid"], dtype=np.bool_).reshape(n, num_steps),
    )


def metadata_from_row(row: Mapping[str, Any]) -> ScenarioMetadata:
    """The :class:`ScenarioMetadata` held in one row with the metadata columns of
    :data:`SCENARIO_SCHEMA` (``frame``, ``source_path``, ``extras_json``, ...)."""
    return ScenarioMetadata(
        frame=row["frame"],
        provenance=Provenance(
            source_path=row["source_path"],
            sha256=row["source_sha256"],
            adapter=row["adapter"],
            adapter_version=row["adapter_version"],
            member=row["member"],
        ),
        location=row["location"],
        region=row["region"],
        tenant=row["tenant"],
        licence=row["licence"],
        extras=MappingProxyType(json.loads(row["extras_json"])),
    )


def scenarios_from_arrow(tables: ScenarioTables) -> list[Scenario]:
    """Rebuild scenarios from their tables, in the order of ``tables.scenarios``.

    Raises:
        ValidationError: if the tables are inconsistent (a track list of the
            wrong length, ...).
    """
    track_parts = _group_rows(tables.tracks, "track_index")
    map_parts = _group_rows(tables.map_features, "feature_index")
    out: list[Scenario] = []
    for row in tables.scenarios.to_pylist():
        sid = row["scenario_id"]
        timestamps = np.asarray(row["timestamps_ns"], dtype=np.int64)
        metadata = metadata_from_row(row)
        out.append(
            Scenario(
                scenario_id=sid,
                source=row["source"],
                timestamps_ns=timestamps,
                tracks=_tracks_from(track_parts.get(sid), timestamps.shape[0]),
                metadata=metadata,
                map=_map_from(map_parts.get(sid), row["map_relations"]) if row["has_map"] else None,
                ego_index=row["ego_index"],
                traffic_lights=_traffic_lights_from(row, timestamps.shape[0]),
            )
        )
    return out
