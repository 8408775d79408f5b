"""Model inputs from live arrays: the same features as the cache, for a simulator or an online caller.

A closed-loop simulator holds agent states in the world frame, not in a
feature cache. :func:`observation_batch` turns a batch of such states
(one planning agent per row, typically the ego) into a
:class:`~datadrive.curate.loader.FeatureBatch` with exactly the selection
and frame transform the cache's loader applies: the planning agent first,
its nearest ``max_neighbors`` agents within ``neighbor_radius_m``, its
nearest ``max_segments`` map segments within ``map_radius_m``, everything in
its frame at the current step. A model trained on the cache therefore sees
the same kind of input in simulation.

>>> seg = segment_map(scenario.map, config)                              # doctest: +SKIP
>>> batch = observation_batch(xy, heading, velocity, valid, types, sizes,
...                           ego=ego_rows, maps=[seg], map_index=zeros, config=config)  # doctest: +SKIP

Notation:
    B: rows (simulated scenarios). A: agents per row. H: history steps
    (``config.history_steps``, the current step last). G: segments of a map.
    Q: points per segment. N: neighbours kept. L: segments kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from datadrive.core.frames import rotate, wrap_angle
from datadrive.core.scenario import MapFeatures
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt
from datadrive.curate.features import FeatureConfig, map_segments
from datadrive.curate.loader import FeatureBatch
from datadrive.errors import ConfigError

__all__ = ["SegmentedMap", "observation_batch", "segment_map"]


@dataclass(frozen=True)
class SegmentedMap:
    """A map cut into the segments the models read (compute once per map, reuse every step).

    Attributes:
        xy_m: ``(G, Q, 2)`` float64 world points.
        kind: ``(G,)`` uint8 :class:`~datadrive.core.scenario.MapFeatureKind`.
    """

    xy_m: NDArrayFloat
    kind: np.ndarray


def segment_map(m: MapFeatures | None, config: FeatureConfig) -> SegmentedMap:
    """The segments of ``m`` as the feature cache makes them (an empty map for ``None``)."""
    if m is None:
        return SegmentedMap(np.zeros((0, config.segment_points, 2)), np.zeros((0,), np.uint8))
    xy, kind = map_segments(m, config.map_kinds, config.segment_length_m, config.segment_points)
    return SegmentedMap(xy, kind)


def observation_batch(
    xy_m: NDArrayFloat,
    heading_rad: NDArrayFloat,
    velocity_mps: NDArrayFloat,
    valid: NDArrayBool,
    object_type: NDArrayInt,
    size_m: NDArrayFloat,
    *,
    ego: NDArrayInt,
    maps: Sequence[SegmentedMap],
    map_index: NDArrayInt,
    config: FeatureConfig,
) -> FeatureBatch:
    """One model input per row, centred on agent ``ego[row]`` at the last history step.

    Args:
        xy_m: ``(B, A, H, 2)`` world positions.
        heading_rad: ``(B, A, H)``.
        velocity_mps: ``(B, A, H, 2)`` world-frame velocities.
        valid: ``(B, A, H)`` bool.
        object_type: ``(B, A)`` :class:`~datadrive.core.scenario.ObjectType` codes.
        size_m: ``(B, A, 2)`` length, width (NaN or 0 when unknown).
        ego: ``(B,)`` the planning agent of each row; it must be valid at the last step.
        maps: The segmented maps the rows drive on.
        map_index: ``(B,)`` index into ``maps`` (-1: no map).
        config: The feature config the model was trained with.

    Raises:
        ConfigError: if the history length differs from the config or an ego is not valid now.
    """
    xy = np.asarray(xy_m, dtype=np.float64)
    b, a, h, _ = xy.shape
    if h != config.history_steps:
        raise ConfigError(
            f"observations have {h} history steps; the model was trained with {config.history_steps}"
        )
    rows = np.arange(b)
    ego = np.asarray(ego, dtype=np.int64)
    ok = np.asarray(valid, dtype=np.bool_)
    if not ok[rows, ego, -1].all():
        raise ConfigError("every planning agent must be valid at the current (last) step")
    p0 = xy[rows, ego, -1]  # (B, 2) world
    h0 = np.asarray(heading_rad, dtype=np.float64)[rows, ego, -1]
    # neighbours: nearest by last valid position, within the radius, the planning agent excluded
    last = h - 1 - np.argmax(ok[..., ::-1], axis=2)  # (B, A)
    last_xy = np.take_along_axis(xy, last[..., None, None].repeat(2, axis=-1), axis=2)[:, :, 0]
    d = np.linalg.norm(last_xy - p0[:, None], axis=-1)
    d[~ok.any(axis=2)] = np.inf
    d[rows, ego] = np.inf
    d[d > config.neighbor_radius_m] = np.inf
    n = min(config.max_neighbors, a)
    order = np.argsort(d, axis=1, kind="stable")[:, :n]
    nb_mask = np.isfinite(np.take_along_axis(d, order, axis=1))
    width = 1 + int(nb_mask.sum(axis=1).max(initial=0))
    sel = np.concatenate([ego[:, None], order], axis=1)[:, :width]
    amask = np.concatenate([np.ones((b, 1), np.bool_), nb_mask], axis=1)[:, :width]
    g_xy = np.take_along_axis(xy, sel[..., None, None], axis=1)
    g_head = np.take_along_axis(np.asarray(heading_rad, np.float64), sel[..., None], axis=1)
    g_vel = np.take_along_axis(np.asarray(velocity_mps, np.float64), sel[..., None, None], axis=1)
    g_valid = np.take_along_axis(ok, sel[..., None], axis=1) & amask[..., None]
    rel = rotate(g_xy - p0[:, None, None], -h0[:, None, None])
    vel = rotate(np.nan_to_num(g_vel), -h0[:, None, None])
    types = np.where(amask, np.take_along_axis(np.asarray(object_type, np.int64), sel, axis=1), 0)
    sizes = np.where(
        amask[..., None],
        np.nan_to_num(np.take_along_axis(np.asarray(size_m, np.float64), sel[..., None], axis=1)),
        0.0,
    )
    # map segments: per map, the nearest ones of every row on it
    q = config.segment_points
    idx = np.asarray(map_index, dtype=np.int64)
    chosen: list[tuple[NDArrayInt, NDArrayInt, NDArrayBool]] = []
    l_max = 1
    for mi in np.unique(idx[idx >= 0]):
        m = maps[int(mi)]
        rws = np.flatnonzero(idx == mi)
        if m.kind.shape[0] == 0:
            continue
        dist = np.linalg.norm(m.xy_m[None] - p0[rws, None, None], axis=-1).min(axis=-1)  # (r, G)
        dist[dist > config.map_radius_m] = np.inf
        take = np.argsort(dist, axis=1, kind="stable")[:, : config.max_segments]
        mask = np.isfinite(np.take_along_axis(dist, take, axis=1))
        chosen.append((rws, take, mask))
        l_max = max(l_max, int(mask.sum(axis=1).max(initial=0)))
    map_xy = np.zeros((b, l_max, q, 2), np.float32)
    map_kind = np.zeros((b, l_max), np.int64)
    map_mask = np.zeros((b, l_max), np.bool_)
    for rws, take, mask in chosen:
        m = maps[int(idx[rws[0]])]
        take, mask = take[:, :l_max], mask[:, :l_max]
        seg = m.xy_m[take]  # (r, l, Q, 2)
        seg_rel = rotate(seg - p0[rws, None, None], -h0[rws, None, None])
        map_xy[rws, : take.shape[1]] = np.where(mask[..., None, None], seg_rel, 0.0)
        map_kind[rws, : take.shape[1]] = np.where(mask, m.kind[take], 0)
        map_mask[rws, : take.shape[1]] = mask
    f = config.future_steps
    return FeatureBatch(
        agent_xy_m=np.where(g_valid[..., None], rel, 0.0).astype(np.float32),
        agent_heading_rad=np.where(g_valid, wrap_angle(g_head - h0[:, None, None]), 0.0).astype(np.float32),
        agent_velocity_mps=np.where(g_valid[..., None], vel, 0.0).astype(np.float32),
        agent_valid=g_valid,
        agent_type=types,
        agent_size_m=sizes.astype(np.float32),
        agent_mask=amask,
        map_xy_m=map_xy,
        map_kind=map_kind,
        map_mask=map_mask,
        future_xy_m=np.zeros((b, f, 2), np.float32),
        future_heading_rad=np.zeros((b, f), np.float32),
        future_valid=np.zeros((b, f), np.bool_),
        origin_xy_m=p0,
        origin_heading_rad=wrap_angle(h0),
        sample_index=np.arange(b, dtype=np.int64),
    )
