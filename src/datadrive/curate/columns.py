"""Scenario arrays straight from the lake's columns, a shard at a time.

The feature cache reads a shard's rows of ``scenarios``, ``tracks`` and
``map_features`` once each (only the columns the features use) and turns
them into one :class:`~datadrive.curate.features.ScenarioArrays` per
scenario here: every list column is flattened once for the whole shard and
each scenario gets views (slices, reshapes) of those arrays. Nothing is
done per track, per map feature or per point in Python, and no
:class:`~datadrive.core.scenario.Scenario` is rebuilt.

:func:`~datadrive.curate.features.featurize_scenario` on the lake's
``Scenario`` objects stays the reference: the tests check that both give
identical features.

Notation:
    n: scenarios of the shard. R: track rows. P: map points.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datadrive.core.scenario import MapFeatures, Tracks
from datadrive.core.typing import NDArrayAny, NDArrayInt
from datadrive.curate.features import ScenarioArrays
from datadrive.errors import DatasetError, ValidationError

__all__ = ["MAP_COLUMNS", "SCENARIO_COLUMNS", "TRACK_COLUMNS", "shard_arrays"]

_KEY = ("tenant", "source", "scenario_id")

SCENARIO_COLUMNS = (*_KEY, "timestamps_ns", "extras_json", "ego_index", "has_map")
"""The ``scenarios`` columns the features read."""

TRACK_COLUMNS = (
    *_KEY,
    "track_index",
    "track_id",
    "object_type",
    "x_m",
    "y_m",
    "heading_rad",
    "vx_mps",
    "vy_mps",
    "valid",
    "length_m",
    "width_m",
    "height_m",
)
"""The ``tracks`` columns the features read (not ``z_m`` nor ``category``)."""

MAP_COLUMNS = (*_KEY, "feature_index", "kind", "x_m", "y_m")
"""The ``map_features`` columns the features read (polylines in x, y and their kinds)."""


def _joined(table: pa.Table) -> pa.ChunkedArray | pa.Array:
    """``tenant \\0 source \\0 scenario_id`` per row (a null tenant as empty)."""
    return pc.binary_join_element_wise(
        pc.fill_null(table.column("tenant"), ""), table.column("source"), table.column("scenario_id"), "\0"
    )


def _flat(column: pa.ChunkedArray) -> NDArrayAny:
    """The values of a list column, all rows together, as one numpy array."""
    values = pc.list_flatten(column)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return np.asarray(values.to_numpy(zero_copy_only=False))


def _ordered(table: pa.Table, keys: pa.Array, index_column: str) -> tuple[pa.Table, NDArrayInt]:
    """The rows of the wanted scenarios, by scenario (``keys`` order) then index; their positions."""
    pos = pc.index_in(_joined(table), value_set=keys).to_numpy(zero_copy_only=False)
    pos = np.where(np.isnan(pos.astype(np.float64)), -1, pos).astype(np.int64)  # null: not wanted
    index = table.column(index_column).to_numpy(zero_copy_only=False)
    order = np.lexsort((index, pos))
    order = order[pos[order] >= 0]
    return table.take(pa.array(order, pa.int64())), pos[order]


def shard_arrays(
    keys: Sequence[tuple[str, str, str]], scenarios: pa.Table, tracks: pa.Table, map_features: pa.Table
) -> list[ScenarioArrays]:
    """One :class:`ScenarioArrays` per key, in ``keys`` order, from a shard's rows.

    Args:
        keys: ``(tenant, source, scenario_id)`` of the shard's scenarios.
        scenarios: Their ``scenarios`` rows (at least :data:`SCENARIO_COLUMNS`).
        tracks: Their ``tracks`` rows (at least :data:`TRACK_COLUMNS`).
        map_features: Their ``map_features`` rows (at least :data:`MAP_COLUMNS`).

    Raises:
        DatasetError: if a key has no ``scenarios`` row.
        ValidationError: if a track's lists do not have its scenario's step count.
    """
    wanted = pa.array(["\0".join((k[0] or "", k[1], k[2])) for k in keys], pa.string())
    n = len(keys)
    # scenario rows: a few hundred at most, read as Python values
    row_pos = pc.index_in(_joined(scenarios), value_set=wanted).to_pylist()
    rows = scenarios.select(list(SCENARIO_COLUMNS)).to_pylist()
    by_pos: dict[int, dict[str, Any]] = {
        int(p): r for p, r in zip(row_pos, rows, strict=True) if p is not None
    }
    missing = [keys[i] for i in range(n) if i not in by_pos]
    if missing:
        raise DatasetError(
            f"{len(missing)} scenarios of the dataset have no row (first: {'/'.join(missing[0])})"
        )
    steps = np.array([len(by_pos[i]["timestamps_ns"] or ()) for i in range(n)], dtype=np.int64)

    # tracks: every list column flattened once; a scenario's tracks are rows [a, b), its states (b - a) * T
    tr, tr_pos = _ordered(tracks, wanted, "track_index")
    row_steps = steps[tr_pos]
    lengths = pc.list_value_length(tr.column("x_m")).to_numpy(zero_copy_only=False)
    if not np.array_equal(lengths, row_steps):
        bad = int(np.flatnonzero(lengths != row_steps)[0])
        raise ValidationError(
            f"tracks of {'/'.join(keys[int(tr_pos[bad])])}: a track has {lengths[bad]} steps, "
            f"the scenario {row_steps[bad]}"
        )
    total = int(row_steps.sum())
    flat = {c: _flat(tr.column(c)) for c in ("x_m", "y_m", "heading_rad", "vx_mps", "vy_mps", "valid")}
    for c, v in flat.items():
        if v.shape[0] != total:
            raise ValidationError(f"tracks.{c} lists do not all have their scenario's steps")
    xy = np.stack([flat["x_m"], flat["y_m"]], axis=-1).astype(np.float64)
    vel = np.stack([flat["vx_mps"], flat["vy_mps"]], axis=-1).astype(np.float64)
    heading = flat["heading_rad"].astype(np.float64)
    valid = flat["valid"].astype(np.bool_)
    track_ids = np.asarray(tr.column("track_id").to_pylist(), dtype=np.str_)
    object_type = tr.column("object_type").to_numpy().astype(np.uint8)
    size = np.stack(
        [tr.column(c).to_numpy(zero_copy_only=False) for c in ("length_m", "width_m", "height_m")], axis=-1
    ).astype(np.float64)
    row_start = np.searchsorted(tr_pos, np.arange(n + 1))
    state_start = np.zeros(tr.num_rows + 1, dtype=np.int64)
    np.cumsum(row_steps, out=state_start[1:])

    # map features: x, y flattened once; offsets per scenario
    mp, mp_pos = _ordered(map_features, wanted, "feature_index")
    m_len = pc.list_value_length(mp.column("x_m")).to_numpy(zero_copy_only=False).astype(np.int64)
    m_x, m_y = _flat(mp.column("x_m")), _flat(mp.column("y_m"))
    if m_x.shape[0] != int(m_len.sum()) or m_y.shape[0] != m_x.shape[0]:
        raise ValidationError("map_features: x_m and y_m lists differ in length")
    xyz = np.stack([m_x, m_y, np.zeros_like(m_x)], axis=-1).astype(np.float64).reshape(-1, 3)
    kind = mp.column("kind").to_numpy().astype(np.uint8)
    feat_start = np.searchsorted(mp_pos, np.arange(n + 1))
    point_start = np.zeros(mp.num_rows + 1, dtype=np.int64)
    np.cumsum(m_len, out=point_start[1:])

    out: list[ScenarioArrays] = []
    for i in range(n):
        r = by_pos[i]
        t = int(steps[i])
        a, b = int(row_start[i]), int(row_start[i + 1])
        s0, s1 = int(state_start[a]), int(state_start[b])
        k = b - a
        tracks_i = Tracks(
            track_ids=track_ids[a:b],
            object_type=object_type[a:b],
            category=np.full(k, "", dtype=np.str_),
            xy_m=xy[s0:s1].reshape(k, t, 2),
            z_m=np.zeros((k, t)),
            heading_rad=heading[s0:s1].reshape(k, t),
            velocity_mps=vel[s0:s1].reshape(k, t, 2),
            size_m=size[a:b],
            valid=valid[s0:s1].reshape(k, t),
        )
        map_i = None
        if r["has_map"]:
            fa, fb = int(feat_start[i]), int(feat_start[i + 1])
            p0, p1 = int(point_start[fa]), int(point_start[fb])
            nf = fb - fa
            map_i = MapFeatures(
                feature_ids=np.full(nf, "", dtype=np.str_),
                kind=kind[fa:fb],
                subtype=np.full(nf, "", dtype=np.str_),
                is_intersection=np.zeros(nf, dtype=np.bool_),
                offsets=point_start[fa : fb + 1] - p0,
                xyz_m=xyz[p0:p1],
                relations=np.zeros((0, 3), dtype=np.int64),
            )
        ego = r["ego_index"]
        out.append(
            ScenarioArrays(
                scenario_id=keys[i][2],
                source=keys[i][1],
                timestamps_ns=np.asarray(r["timestamps_ns"], dtype=np.int64),
                tracks=tracks_i,
                map=map_i,
                extras=json.loads(str(r["extras_json"])) if r["extras_json"] else {},
                ego_index=None if ego is None else int(ego),
            )
        )
    return out
