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
    """The values of a list column, all rows together in row order, as one numpy array."""
    chunks = [c.flatten() for c in column.chunks]  # a chunk per file read; its values, offsets respected
    if not chunks:
        return np.zeros(0)
    return np.concatenate([np.asarray(c.to_numpy(zero_copy_only=False)) for c in chunks])


def _lengths(column: pa.ChunkedArray) -> NDArrayInt:
    return np.asarray(pc.list_value_length(column).to_numpy(zero_copy_only=False), dtype=np.int64)


def _order(table: pa.Table, keys: pa.Array, index_column: str) -> tuple[NDArrayInt, NDArrayInt]:
    """The rows of the wanted scenarios, by scenario (``keys`` order) then index; their positions."""
    pos = pc.index_in(_joined(table), value_set=keys).to_numpy(zero_copy_only=False)
    pos = np.where(np.isnan(pos.astype(np.float64)), -1, pos).astype(np.int64)  # null: not wanted
    index = table.column(index_column).to_numpy(zero_copy_only=False)
    order = np.lexsort((index, pos))
    order = order[pos[order] >= 0]
    return order, pos[order]


def _ranges(lengths: NDArrayInt, order: NDArrayInt, pos: NDArrayInt, n: int) -> tuple[NDArrayInt, NDArrayInt]:
    """Per scenario, its rows' range in ``order`` and, when they lie together in file order, its values'.

    Returns ``(row_start, value_start)``: ``(n + 1,)`` row bounds of each
    scenario in ``order``, and ``(n,)`` the first flat value of each
    scenario's rows in file order, or -1 where its rows are not consecutive
    there (then their values are gathered). A scenario's rows are written
    together and by index, so usually nothing is copied.
    """
    start = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=start[1:])
    row_start = np.searchsorted(pos, np.arange(n + 1))
    value_start = np.full(n, -1, dtype=np.int64)
    step = np.r_[np.diff(order) == 1, True]  # row k is followed by its successor in file order
    for i in range(n):
        a, b = int(row_start[i]), int(row_start[i + 1])
        if b > a and bool(step[a : b - 1].all()):
            value_start[i] = start[order[a]]
        elif b == a:
            value_start[i] = 0
    return row_start, value_start


def _values(
    flat: NDArrayAny, lengths: NDArrayInt, order: NDArrayInt, a: int, b: int, first: int
) -> NDArrayAny:
    """The flat values of rows ``order[a:b]``: a slice when they lie together (``first >= 0``)."""
    count = int(lengths[order[a:b]].sum())
    if first >= 0:
        return flat[first : first + count]
    start = np.zeros(lengths.shape[0] + 1, dtype=np.int64)
    np.cumsum(lengths, out=start[1:])
    rows = order[a:b]
    return np.concatenate([flat[start[r] : start[r + 1]] for r in rows]) if rows.size else flat[:0]


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

    # tracks: every list column flattened once; a scenario's tracks are rows [a, b) of tr_order
    tr_order, tr_pos = _order(tracks, wanted, "track_index")
    t_len = _lengths(tracks.column("x_m"))
    if not np.array_equal(t_len[tr_order], steps[tr_pos]):
        bad = int(np.flatnonzero(t_len[tr_order] != steps[tr_pos])[0])
        raise ValidationError(
            f"tracks of {'/'.join(keys[int(tr_pos[bad])])}: a track has {t_len[tr_order][bad]} steps, "
            f"the scenario {steps[tr_pos][bad]}"
        )
    flat: dict[str, NDArrayAny] = {}
    for c in ("x_m", "y_m", "heading_rad", "vx_mps", "vy_mps", "valid"):
        if not np.array_equal(_lengths(tracks.column(c)), t_len):
            raise ValidationError(f"tracks.{c} lists do not all have their scenario's steps")
        flat[c] = _flat(tracks.column(c))
    xy = np.stack([flat["x_m"], flat["y_m"]], axis=-1).astype(np.float64, copy=False)
    vel = np.stack([flat["vx_mps"], flat["vy_mps"]], axis=-1).astype(np.float64, copy=False)
    heading = flat["heading_rad"].astype(np.float64, copy=False)
    valid = flat["valid"].astype(np.bool_, copy=False)
    track_ids = np.asarray(tracks.column("track_id").to_pylist(), dtype=np.str_)[tr_order]
    object_type = tracks.column("object_type").to_numpy().astype(np.uint8)[tr_order]
    size = np.stack(
        [tracks.column(c).to_numpy(zero_copy_only=False) for c in ("length_m", "width_m", "height_m")],
        axis=-1,
    ).astype(np.float64)[tr_order]
    tr_rows, tr_first = _ranges(t_len, tr_order, tr_pos, n)

    # map features: x, y flattened once; a scenario's features are rows [a, b) of mp_order
    mp_order, mp_pos = _order(map_features, wanted, "feature_index")
    m_len = _lengths(map_features.column("x_m"))
    if not np.array_equal(_lengths(map_features.column("y_m")), m_len):
        raise ValidationError("map_features: x_m and y_m lists differ in length")
    m_x, m_y = _flat(map_features.column("x_m")), _flat(map_features.column("y_m"))
    xyz = np.stack([m_x, m_y, np.zeros_like(m_x)], axis=-1).astype(np.float64, copy=False)
    kind = map_features.column("kind").to_numpy().astype(np.uint8)[mp_order]
    mp_rows, mp_first = _ranges(m_len, mp_order, mp_pos, n)

    out: list[ScenarioArrays] = []
    for i in range(n):
        r = by_pos[i]
        t = int(steps[i])
        a, b = int(tr_rows[i]), int(tr_rows[i + 1])
        k = b - a

        def states(values: NDArrayAny, a: int = a, b: int = b, i: int = i) -> NDArrayAny:
            return _values(values, t_len, tr_order, a, b, int(tr_first[i]))

        tracks_i = Tracks(
            track_ids=track_ids[a:b],
            object_type=object_type[a:b],
            category=np.full(k, "", dtype=np.str_),
            xy_m=states(xy).reshape(k, t, 2),
            z_m=np.zeros((k, t)),
            heading_rad=states(heading).reshape(k, t),
            velocity_mps=states(vel).reshape(k, t, 2),
            size_m=size[a:b],
            valid=states(valid).reshape(k, t),
        )
        map_i = None
        if r["has_map"]:
            fa, fb = int(mp_rows[i]), int(mp_rows[i + 1])
            offsets = np.zeros(fb - fa + 1, dtype=np.int64)
            np.cumsum(m_len[mp_order[fa:fb]], out=offsets[1:])
            nf = fb - fa
            map_i = MapFeatures(
                feature_ids=np.full(nf, "", dtype=np.str_),
                kind=kind[fa:fb],
                subtype=np.full(nf, "", dtype=np.str_),
                is_intersection=np.zeros(nf, dtype=np.bool_),
                offsets=offsets,
                xyz_m=_values(xyz, m_len, mp_order, fa, fb, int(mp_first[i])),
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
