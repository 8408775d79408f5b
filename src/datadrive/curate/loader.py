"""Reading the feature cache: memory-mapped shards, size-grouped batches in the target's frame.

:class:`FeatureCache` opens a cache's shards with ``np.load(mmap_mode="r")``:
nothing is read until a batch touches it, and the operating system keeps
what is hot. :meth:`FeatureCache.batch` assembles a :class:`FeatureBatch`
for any set of samples with a few vectorised gathers per shard (no Python
per sample): the target's neighbours and map segments are padded to the
batch's largest, and every position is turned into the target's frame
(:func:`datadrive.core.frames.rotate`; origin at the target at ``t0``, x
along its heading).

:func:`epoch_batches` plans an epoch: shards in a seeded order, a few at a
time (so reads stream through the cache instead of jumping all over it),
samples shuffled within them, then grouped by size (agents and segments),
so a batch pads little and peak memory stays near the mean. The plan is a
pure function of ``(seed, epoch)``: a resumed run skips exactly the batches
it already did, and each DDP rank takes its share of the same plan.

Notation:
    B: samples in a batch. A: agents (the target first). H: history steps.
    L: map segments. Q: points per segment. F: future steps.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datadrive.core.frames import rotate, wrap_angle
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt
from datadrive.curate.cache import read_cache_manifest, shard_groups
from datadrive.curate.features import FEATURE_GROUPS, FeatureConfig
from datadrive.errors import CacheVersionError, FeatureCacheError

__all__ = ["BatchLoader", "FeatureBatch", "FeatureCache", "epoch_batches"]


@dataclass(frozen=True)
class FeatureBatch:
    """A batch of samples in each target's frame (numpy; the models turn it into tensors).

    Attributes:
        agent_xy_m: ``(B, A, H, 2)`` float32; agent 0 is the target.
        agent_heading_rad: ``(B, A, H)`` float32, relative to the target's heading at ``t0``.
        agent_velocity_mps: ``(B, A, H, 2)`` float32.
        agent_valid: ``(B, A, H)`` bool.
        agent_type: ``(B, A)`` int64 :class:`~datadrive.core.scenario.ObjectType`.
        agent_size_m: ``(B, A, 2)`` float32 length, width (0 when unknown).
        agent_mask: ``(B, A)`` bool, False for padding.
        map_xy_m: ``(B, L, Q, 2)`` float32.
        map_kind: ``(B, L)`` int64 :class:`~datadrive.core.scenario.MapFeatureKind`.
        map_mask: ``(B, L)`` bool.
        future_xy_m: ``(B, F, 2)`` float32 (zeros when the cache has no future).
        future_heading_rad: ``(B, F)`` float32.
        future_valid: ``(B, F)`` bool.
        origin_xy_m: ``(B, 2)`` float64 the target frame's origin in the world frame.
        origin_heading_rad: ``(B,)`` float64 its heading in the world frame.
        sample_index: ``(B,)`` int64 global sample indices.
    """

    agent_xy_m: np.ndarray
    agent_heading_rad: np.ndarray
    agent_velocity_mps: np.ndarray
    agent_valid: NDArrayBool
    agent_type: NDArrayInt
    agent_size_m: np.ndarray
    agent_mask: NDArrayBool
    map_xy_m: np.ndarray
    map_kind: NDArrayInt
    map_mask: NDArrayBool
    future_xy_m: np.ndarray
    future_heading_rad: np.ndarray
    future_valid: NDArrayBool
    origin_xy_m: NDArrayFloat
    origin_heading_rad: NDArrayFloat
    sample_index: NDArrayInt

    @property
    def size(self) -> int:
        return int(self.agent_xy_m.shape[0])


class _Shard:
    """One shard's columns, memory-mapped on first use."""

    def __init__(self, directory: Path, groups: Sequence[str]) -> None:
        self.directory = directory
        self.groups = tuple(groups)
        self._cols: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        col = self._cols.get(name)
        if col is None:
            try:
                col = np.load(self.directory / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise FeatureCacheError(f"{self.directory}/{name}.npy: unreadable ({exc})") from exc
            self._cols[name] = col
        return col


class FeatureCache:
    """An opened feature cache.

    Args:
        path: The cache folder.
        require: Groups a user needs (default: samples, agents, future).

    Raises:
        FeatureCacheError: if the cache is missing, incomplete or lacks a required group.
        CacheVersionError: if a group was written by another featuriser version.
    """

    def __init__(self, path: Path, require: Sequence[str] = ("samples", "agents", "future")) -> None:
        self.path = Path(path)
        doc = read_cache_manifest(self.path)
        self.manifest = doc
        self.config = FeatureConfig.from_json(doc["config"])
        self.split_names: list[str] = list(doc["splits"])
        self.dataset: dict[str, Any] = dict(doc["dataset"])
        self._shards: list[_Shard] = []
        counts = []
        present: set[str] | None = None
        for shard in doc["shards"]:
            d = self.path / shard["name"]
            groups = shard_groups(d)
            if not groups:
                raise FeatureCacheError(
                    f"{d}: shard missing or incomplete (a build was interrupted?); run the cache build again "
                    "to finish it"
                )
            for g, v in groups.items():
                if g in FEATURE_GROUPS and v != FEATURE_GROUPS[g]:
                    raise CacheVersionError(
                        f"{d}: group {g} was written by featuriser version {v}; this datadrive computes "
                        f"version {FEATURE_GROUPS[g]}. Rebuild the cache: "
                        "datadrive dataset cache ... --rebuild"
                    )
            present = set(groups) if present is None else present & set(groups)
            sh = _Shard(d, tuple(groups))
            self._shards.append(sh)
            counts.append(int(sh["sample_window"].shape[0]))
        self.groups = frozenset(present or ())
        missing = [g for g in require if g not in self.groups]
        if missing:
            raise FeatureCacheError(
                f"{self.path}: the cache has no {', '.join(missing)} columns; build them first"
            )
        self._offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(np.asarray(counts, dtype=np.int64), out=self._offsets[1:])
        # small per-sample tables, loaded once (int32/uint8: bytes per sample, not per step)
        self.sample_split = self._cat("sample_split", np.uint8)
        self.num_agents = 1 + self._cat_counts("neighbor_offsets")
        self.num_segments = (
            self._cat_counts("segment_offsets")
            if "map" in self.groups
            else np.zeros(self.num_samples, np.int64)
        )

    # ------------------------------------------------------------------ tables

    @property
    def num_samples(self) -> int:
        return int(self._offsets[-1])

    @property
    def num_shards(self) -> int:
        return len(self._shards)

    def _cat(self, name: str, dtype: Any) -> np.ndarray:
        parts = [np.asarray(s[name], dtype=dtype) for s in self._shards]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

    def _cat_counts(self, name: str) -> NDArrayInt:
        parts = [np.diff(np.asarray(s[name], dtype=np.int64)) for s in self._shards]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def split_indices(self, split: str | None) -> NDArrayInt:
        """Global indices of the samples of ``split`` (all samples for ``None``)."""
        if split is None:
            return np.arange(self.num_samples, dtype=np.int64)
        if split not in self.split_names:
            raise FeatureCacheError(
                f"no split {split!r} in {self.path} (splits: {', '.join(self.split_names)})"
            )
        return np.flatnonzero(self.sample_split == self.split_names.index(split)).astype(np.int64)

    def shard_of(self, indices: NDArrayInt) -> NDArrayInt:
        """The shard of each global sample index."""
        return np.searchsorted(self._offsets, indices, side="right") - 1

    def sample_info(self, indices: NDArrayInt) -> dict[str, np.ndarray]:
        """Per sample: ``scenario_key`` (tenant/source/id), ``track_id``, ``t0_ns``, ``kind``, ``split``."""
        idx = np.asarray(indices, dtype=np.int64)
        out: dict[str, list[Any]] = {"scenario_key": [], "track_id": [], "t0_ns": [], "kind": [], "split": []}
        order = np.argsort(idx, kind="stable")
        shards = self.shard_of(idx[order])
        for sh in np.unique(shards):
            sel = order[shards == sh]
            local = idx[sel] - self._offsets[sh]
            s = self._shards[int(sh)]
            win = np.asarray(s["sample_window"])[local]
            out["scenario_key"].append(np.asarray(s["scenario_keys"])[np.asarray(s["window_scenario"])[win]])
            out["track_id"].append(np.asarray(s["sample_track_ids"])[local])
            out["t0_ns"].append(np.asarray(s["window_t0_ns"])[win])
            out["kind"].append(np.asarray(s["sample_kind"])[local])
            out["split"].append(np.asarray(s["sample_split"])[local])
        inv = np.empty_like(order)
        inv[order] = np.arange(order.size)
        result = {k: np.concatenate(v)[inv] if v else np.zeros(0) for k, v in out.items()}
        result["split"] = np.asarray(self.split_names, dtype=np.str_)[result["split"].astype(np.int64)]
        return result

    def nbytes(self) -> int:
        """Bytes of every column file of the cache."""
        return sum(p.stat().st_size for s in self._shards for p in s.directory.glob("*.npy"))

    # ------------------------------------------------------------------ batches

    def batch(self, indices: Sequence[int] | NDArrayInt) -> FeatureBatch:
        """The samples ``indices`` (global), in that order, in their targets' frames."""
        idx = np.asarray(indices, dtype=np.int64)
        b = idx.size
        if b == 0:
            raise FeatureCacheError("an empty batch")
        if idx.min() < 0 or idx.max() >= self.num_samples:
            raise FeatureCacheError(f"sample index out of range (the cache has {self.num_samples})")
        cfg = self.config
        h, f, q = cfg.history_steps, cfg.future_steps, cfg.segment_points
        a_max = int(self.num_agents[idx].max())
        l_max = max(1, int(self.num_segments[idx].max()))
        out_xy = np.zeros((b, a_max, h, 2), np.float32)
        out_head = np.zeros((b, a_max, h), np.float32)
        out_vel = np.zeros((b, a_max, h, 2), np.float32)
        out_valid = np.zeros((b, a_max, h), np.bool_)
        out_type = np.zeros((b, a_max), np.int64)
        out_size = np.zeros((b, a_max, 2), np.float32)
        out_amask = np.zeros((b, a_max), np.bool_)
        out_map = np.zeros((b, l_max, q, 2), np.float32)
        out_kind = np.zeros((b, l_max), np.int64)
        out_mmask = np.zeros((b, l_max), np.bool_)
        out_fxy = np.zeros((b, f, 2), np.float32)
        out_fhead = np.zeros((b, f), np.float32)
        out_fvalid = np.zeros((b, f), np.bool_)
        out_origin = np.zeros((b, 2), np.float64)
        out_oh = np.zeros((b,), np.float64)
        shards = self.shard_of(idx)
        for sh in np.unique(shards):
            pos = np.flatnonzero(shards == sh)  # where these samples go in the batch
            local = idx[pos] - self._offsets[sh]
            s = self._shards[int(sh)]
            win = np.asarray(s["sample_window"][local], dtype=np.int64)
            tgt = np.asarray(s["sample_agent"][local], dtype=np.int64)
            # agents: the target, then its neighbours (nearest first)
            nb, nb_mask = _gather_ragged(s["neighbor_offsets"], s["neighbor_rows"], local, a_max - 1)
            rows = np.concatenate([tgt[:, None], nb], axis=1)
            amask = np.concatenate([np.ones((pos.size, 1), np.bool_), nb_mask], axis=1)
            flat = rows.ravel()
            xy = np.asarray(s["agent_xy_m"][flat]).reshape(pos.size, a_max, h, 2)
            head = np.asarray(s["agent_heading_rad"][flat]).reshape(pos.size, a_max, h)
            vel = np.asarray(s["agent_velocity_mps"][flat]).reshape(pos.size, a_max, h, 2)
            valid = np.asarray(s["agent_valid"][flat]).reshape(pos.size, a_max, h) & amask[..., None]
            p0 = xy[:, 0, h - 1].astype(np.float64)  # (n, 2) target at t0, relative to the window origin
            h0 = head[:, 0, h - 1].astype(np.float64)
            rel = rotate((xy - p0[:, None, None, :].astype(np.float32)), -h0[:, None, None]).astype(
                np.float32
            )
            out_xy[pos] = np.where(valid[..., None], rel, 0.0)
            out_head[pos] = np.where(valid, wrap_angle(head - h0[:, None, None]), 0.0)
            out_vel[pos] = np.where(valid[..., None], rotate(vel, -h0[:, None, None]), 0.0)
            out_valid[pos] = valid
            out_type[pos] = np.where(amask, np.asarray(s["agent_type"][flat]).reshape(pos.size, a_max), 0)
            out_size[pos] = np.where(
                amask[..., None], np.asarray(s["agent_size_m"][flat]).reshape(pos.size, a_max, 2), 0
            )
            out_amask[pos] = amask
            wo = np.asarray(s["window_origin_xy_m"][win], dtype=np.float64)
            out_origin[pos] = wo + p0
            out_oh[pos] = wrap_angle(h0)
            if "future" in self.groups:
                fxy = np.asarray(s["future_xy_m"][local], dtype=np.float64)
                out_fxy[pos] = rotate(fxy - p0[:, None, :], -h0[:, None]).astype(np.float32)
                out_fhead[pos] = wrap_angle(np.asarray(s["future_heading_rad"][local]) - h0[:, None])
                out_fvalid[pos] = np.asarray(s["future_valid"][local])
            if "map" in self.groups:
                srows, smask = _gather_ragged(s["segment_offsets"], s["segment_rows"], local, l_max)
                seg = np.asarray(s["segment_xy_m"][srows.ravel()], dtype=np.float32).reshape(
                    pos.size, l_max, q, 2
                )
                wmap = np.asarray(s["window_map"][win], dtype=np.int64)
                morigin = np.asarray(s["map_origin_xy_m"])[np.maximum(wmap, 0)]
                shift = (morigin - wo - p0).astype(np.float32)  # map origin in target-at-origin coordinates
                mrel = rotate((seg + shift[:, None, None, :]).astype(np.float64), -h0[:, None, None])
                out_map[pos] = np.where(smask[..., None, None], mrel, 0.0)
                out_kind[pos] = np.where(
                    smask, np.asarray(s["segment_kind"][srows.ravel()]).reshape(smask.shape), 0
                )
                out_mmask[pos] = smask
        return FeatureBatch(
            agent_xy_m=out_xy,
            agent_heading_rad=out_head,
            agent_velocity_mps=out_vel,
            agent_valid=out_valid,
            agent_type=out_type,
            agent_size_m=out_size,
            agent_mask=out_amask,
            map_xy_m=out_map,
            map_kind=out_kind,
            map_mask=out_mmask,
            future_xy_m=out_fxy,
            future_heading_rad=out_fhead,
            future_valid=out_fvalid,
            origin_xy_m=out_origin,
            origin_heading_rad=out_oh,
            sample_index=idx.copy(),
        )


def _gather_ragged(
    offsets: np.ndarray, values: np.ndarray, local: NDArrayInt, width: int
) -> tuple[NDArrayInt, NDArrayBool]:
    """``(n, width)`` the first ``width`` entries of each ragged row ``local`` (0-padded) and their mask."""
    start = np.asarray(offsets[local], dtype=np.int64)
    count = np.asarray(offsets[local + 1], dtype=np.int64) - start
    k = np.arange(width)
    mask = k[None, :] < count[:, None]
    if width == 0 or values.shape[0] == 0:
        return np.zeros(mask.shape, dtype=np.int64), mask
    flat = np.where(mask, start[:, None] + k[None, :], 0)
    out = np.asarray(values[flat.ravel()], dtype=np.int64).reshape(mask.shape)
    return np.where(mask, out, 0), mask


def epoch_batches(
    cache: FeatureCache,
    indices: NDArrayInt,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    group_by_size: bool = True,
    shards_at_once: int = 4,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
) -> list[NDArrayInt]:
    """The batches of one epoch over ``indices`` (global sample indices), for one rank.

    Shards are visited in a seeded order, ``shards_at_once`` at a time;
    within them samples are shuffled, then (``group_by_size``) sorted by size
    inside runs of 32 batches and cut, and the batches shuffled again. Every
    rank computes the same plan and takes every ``world_size``-th batch; the
    plan is cut to a multiple of ``world_size`` batches so ranks step together.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    idx = np.asarray(indices, dtype=np.int64)
    rng = np.random.default_rng([seed, epoch])
    shards = cache.shard_of(idx)
    order = rng.permutation(cache.num_shards) if shuffle else np.arange(cache.num_shards)
    batches: list[NDArrayInt] = []
    size_key = (
        cache.num_agents * (cache.config.history_steps) + cache.num_segments * cache.config.segment_points
    )
    for g in range(0, len(order), max(1, shards_at_once)):
        chunk = idx[np.isin(shards, order[g : g + shards_at_once])]
        if chunk.size == 0:
            continue
        if shuffle:
            chunk = chunk[rng.permutation(chunk.size)]
        if group_by_size:
            run = batch_size * 32
            parts = []
            for r in range(0, chunk.size, run):
                piece = chunk[r : r + run]
                parts.append(piece[np.argsort(size_key[piece], kind="stable")])
            chunk = np.concatenate(parts)
        cut = [chunk[i : i + batch_size] for i in range(0, chunk.size, batch_size)]
        if drop_last and cut and cut[-1].size < batch_size:
            cut = cut[:-1]
        if shuffle and cut:
            cut = [cut[i] for i in rng.permutation(len(cut))]
        batches.extend(cut)
    if world_size > 1:
        usable = len(batches) - len(batches) % world_size
        batches = batches[:usable][rank::world_size]
    return batches


class BatchLoader:
    """Iterates :class:`FeatureBatch` es of a plan, assembling the next ones in a background thread.

    Args:
        cache: The opened cache.
        batches: The plan (e.g. :func:`epoch_batches`), global indices per batch.
        prefetch: Batches assembled ahead (0: assemble in the caller's thread).
    """

    def __init__(self, cache: FeatureCache, batches: Sequence[NDArrayInt], prefetch: int = 2) -> None:
        self.cache = cache
        self.batches = list(batches)
        self.prefetch = prefetch

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[FeatureBatch]:
        if self.prefetch <= 0:
            for b in self.batches:
                yield self.cache.batch(b)
            return
        q: queue.Queue[FeatureBatch | BaseException | None] = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def work() -> None:
            try:
                for b in self.batches:
                    if stop.is_set():
                        return
                    q.put(self.cache.batch(b))
                q.put(None)
            except BaseException as exc:  # handed to the consumer, raised there
                q.put(exc)

        thread = threading.Thread(target=work, name="datadrive-batches", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():
                try:
                    q.get_nowait()
                except queue.Empty:
                    thread.join(timeout=0.05)
