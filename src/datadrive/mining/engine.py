"""Evaluating bound queries over one scenario: per-(track, step) masks, vectorised.

Every node evaluates to a :class:`Selection`: an ``(A, T)`` mask of the
states it selects and an ``(A, T)`` mask of the *related* states (the
objects a relational predicate matched, e.g. the pedestrians a vehicle was
near), used to highlight them in renders and as ``RELATED_OBJECT`` in RefAV
output.

``and`` evaluates its parts left to right, each restricted to what the
parts before it selected, so ``pedestrian and near(ego)`` measures
distances only from pedestrians. ``not x`` is the candidates (the rest of
its ``and``; every valid state when alone) minus ``x``. Relational
predicates compare every candidate with every object of their ``of`` set
at the same step, on arrays ``(candidates, related, T)``, in blocks.

Map predicates are false on scenarios without lanes (and the result says
which scenarios had no map); kinematic ones work everywhere.

Notation:
    A: tracks. T: steps. S: candidate subjects. R: related objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from datadrive.core.frames import wrap_angle
from datadrive.core.scenario import MapFeatureKind, TrafficLightState
from datadrive.core.typing import NDArrayBool, NDArrayFloat, NDArrayInt
from datadrive.mining.context import ScenarioContext, mask_runs
from datadrive.mining.shapes import box_distance, rings_distance
from datadrive.mining.vocabulary import CATEGORIES, PREDICATES, Bound

__all__ = ["Selection", "evaluate"]


@dataclass(frozen=True)
class Selection:
    """What an expression selects in one scenario.

    Attributes:
        mask: ``(A, T)`` selected states (always within ``valid``).
        related: ``(A, T)`` states of the objects the selection relates to.
    """

    mask: NDArrayBool
    related: NDArrayBool


def evaluate(node: Bound, ctx: ScenarioContext, within: NDArrayBool | None = None) -> Selection:
    """Evaluate a bound expression over ``ctx``'s scenario.

    Args:
        node: From :func:`datadrive.mining.vocabulary.bind`.
        ctx: The scenario's context (features are computed on demand and cached).
        within: ``(A, T)`` candidates; states outside are never selected.

    Returns:
        A :class:`Selection`.
    """
    cand = ctx.valid if within is None else (within & ctx.valid)
    empty = np.zeros_like(ctx.valid)
    if node.op == "and":
        related = empty.copy()
        cur = cand
        for part in node.children:
            sel = evaluate(part, ctx, cur)
            cur = cur & sel.mask
            related |= sel.related
        return Selection(cur, related & _any_step(cur)[None, :] if related.any() else related)
    if node.op == "or":
        mask = empty.copy()
        related = empty.copy()
        for part in node.children:
            sel = evaluate(part, ctx, cand)
            mask |= sel.mask
            related |= sel.related
        return Selection(mask, related)
    if node.op == "not":
        sel = evaluate(node.children[0], ctx, cand)
        return Selection(cand & ~sel.mask, empty)
    if node.op == "category":
        cat = CATEGORIES[node.params["name"]]
        rows = cat.matches(ctx.tracks.object_type, ctx.tracks.category, ctx.ego_index)
        return Selection(cand & rows[:, None], empty)
    spec = PREDICATES[node.op]
    if spec.needs_map and not ctx.has_lanes:
        ctx.cache["no_map"] = True
        return Selection(empty, empty)
    fn = _IMPL[node.op]
    return fn(ctx, cand, node.params)


def _any_step(mask: NDArrayBool) -> NDArrayBool:
    out: NDArrayBool = np.asarray(mask.any(axis=0), dtype=bool)
    return out


def _plain(mask: NDArrayBool) -> Selection:
    return Selection(mask, np.zeros_like(mask))


# --------------------------------------------------------------------------- kinematic


def _stopped(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    with np.errstate(invalid="ignore"):
        return _plain(cand & (ctx.kinematics.speed_mps < p["max_speed"]))


def _moving(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    with np.errstate(invalid="ignore"):
        return _plain(cand & (ctx.kinematics.speed_mps >= p["min_speed"]))


def _lasting(ctx: ScenarioContext, mask: NDArrayBool, seconds: float) -> NDArrayBool:
    """``mask`` without its runs shorter than ``seconds`` (a box whose heading flips for a frame)."""
    if seconds <= 0:
        return mask
    rows, first, last = mask_runs(mask)
    keep = ctx.t_s[last] - ctx.t_s[first] >= seconds - 1e-9
    out = np.zeros_like(mask)
    for r, f, la in zip(rows[keep].tolist(), first[keep].tolist(), last[keep].tolist(), strict=True):
        out[r, f : la + 1] = True
    return out


def _reversing(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    k = ctx.kinematics
    with np.errstate(invalid="ignore"):
        back = np.abs(wrap_angle(k.travel_heading_rad - ctx.tracks.heading_rad)) > p["angle"]
        moving = ctx.valid & (k.speed_mps >= p["min_speed"]) & back
    return _plain(cand & _lasting(ctx, moving, p["min_duration"]))


def _stationary(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    big = np.finfo(np.float64).max
    lo = np.where(ctx.valid[..., None], ctx.tracks.xy_m, big).min(axis=1)
    hi = np.where(ctx.valid[..., None], ctx.tracks.xy_m, -big).max(axis=1)
    has: NDArrayBool = np.asarray(ctx.valid.any(axis=1), dtype=bool)
    extent = np.where(has[:, None], hi - lo, 0.0)
    span = np.hypot(extent[:, 0], extent[:, 1])
    return _plain(cand & (span < p["max_displacement"])[:, None])


def _speed(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    v = ctx.kinematics.speed_mps
    with np.errstate(invalid="ignore"):
        return _plain(cand & (v >= p["min"]) & (v <= p["max"]))


def _accelerating(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    a = ctx.kinematics.accel_mps2
    with np.errstate(invalid="ignore"):
        return _plain(cand & (a >= p["min"]) & (a <= p["max"]))


def _braking(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    with np.errstate(invalid="ignore"):
        return _plain(cand & (ctx.kinematics.accel_mps2 <= -p["min_decel"]))


def _lateral_accel(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    a = ctx.kinematics.lat_accel_mps2
    with np.errstate(invalid="ignore"):
        return _plain(cand & (a >= p["min"]) & (a <= p["max"]))


def _spans(ctx: ScenarioContext, spans: list[tuple[int, int, int]]) -> NDArrayBool:
    out = np.zeros_like(ctx.valid)
    for r, f, la in spans:
        out[r, f : la + 1] = True
    return out & ctx.valid


def _turning(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    from datadrive.mining.taggers_lanes import find_turns

    turns = [t for t in find_turns(ctx) if p["direction"] in ("any", t.direction)]
    return _plain(cand & _spans(ctx, [(t.track, t.first, t.last) for t in turns]))


def _changing_lanes(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    from datadrive.mining.events import LaneChangeConfig
    from datadrive.mining.taggers_lanes import find_lane_changes

    changes = [
        c for c in find_lane_changes(ctx, LaneChangeConfig()) if p["direction"] in ("any", c.direction)
    ]
    return _plain(cand & _spans(ctx, [(c.track, c.first, c.last) for c in changes]))


def _event(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    from datadrive.mining.events import tag_scenario

    key = ("events", p["type"])
    if key not in ctx.cache:
        ctx.cache[key] = tag_scenario(ctx.scenario, event_types=[p["type"]], context=ctx).events
    events = ctx.cache[key]
    ids = {str(t): i for i, t in enumerate(ctx.tracks.track_ids.tolist())}
    mask = np.zeros_like(ctx.valid)
    related = np.zeros_like(ctx.valid)
    for e in events:  # type: ignore[attr-defined]
        rows = [ids[t] for t in e.track_ids if t in ids]
        if not rows:
            continue
        actor = rows[:1] if p["role"] == "actor" else rows
        for r in actor:
            mask[r, e.start_step : e.end_step + 1] = True
        for r in rows:
            if r not in actor:
                related[r, e.start_step : e.end_step + 1] = True
    mask &= cand
    return Selection(mask, related & ctx.valid & _any_step(mask)[None, :])


# --------------------------------------------------------------------------- relational

PairFn = Callable[[ScenarioContext, NDArrayInt, NDArrayInt, Mapping[str, Any]], NDArrayBool]


def _relate(
    ctx: ScenarioContext,
    cand: NDArrayBool,
    p: Mapping[str, Any],
    pair: PairFn,
    *,
    min_count: int = 1,
) -> Selection:
    """Run ``pair`` over (candidate, related, step) in blocks; keep candidates with >= ``min_count`` hits."""
    other = evaluate(p["of"], ctx).mask
    subj = np.flatnonzero(cand.any(axis=1))
    rel = np.flatnonzero(other.any(axis=1))
    mask = np.zeros_like(ctx.valid)
    related = np.zeros_like(ctx.valid)
    if subj.size == 0 or rel.size == 0 or min_count == 0:
        if min_count == 0:
            return Selection(cand.copy(), related)
        return Selection(mask, related)
    t = ctx.num_steps
    block = max(1, 4_000_000 // max(1, rel.size * t))
    for start in range(0, subj.size, block):
        s = subj[start : start + block]
        hit = pair(ctx, s, rel, p)  # (S, R, T)
        hit &= cand[s][:, None, :] & other[rel][None, :, :] & (s[:, None] != rel[None, :])[..., None]
        count = hit.sum(axis=1)
        ok = count >= min_count
        mask[s] = ok
        related[rel] |= (hit & ok[:, None, :]).any(axis=0)
    return Selection(mask, related)


def _frame(ctx: ScenarioContext, s: NDArrayInt, r: NDArrayInt) -> tuple[NDArrayFloat, NDArrayFloat]:
    """``(S, R, T)`` forward and left coordinates of each related centre in each subject's box frame."""
    xy = ctx.tracks.xy_m
    rel = xy[r][None, :, :, :] - xy[s][:, None, :, :]
    h = ctx.tracks.heading_rad[s][:, None, :]
    c, sn = np.cos(h), np.sin(h)
    fwd = rel[..., 0] * c + rel[..., 1] * sn
    left = -rel[..., 0] * sn + rel[..., 1] * c
    return fwd, left


def _near_pairs(ctx: ScenarioContext, s: NDArrayInt, r: NDArrayInt, p: Mapping[str, Any]) -> NDArrayBool:
    length, width = ctx.footprint
    radius = 0.5 * np.hypot(length, width)
    xy = ctx.tracks.xy_m
    d = np.hypot(xy[r][None, :, :, 0] - xy[s][:, None, :, 0], xy[r][None, :, :, 1] - xy[s][:, None, :, 1])
    maybe = d <= p["within"] + radius[s][:, None, None] + radius[r][None, :, None]
    out = np.zeros(maybe.shape, dtype=bool)
    si, ri, ti = np.nonzero(maybe)
    if si.size:
        corners = ctx.corners
        dist = box_distance(corners[s[si], ti], corners[r[ri], ti])
        out[si, ri, ti] = dist <= p["within"]
    return out


def _near(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    return _relate(ctx, cand, p, _near_pairs, min_count=p["min"])


def _direction_pairs(direction: str, *, reverse: bool) -> PairFn:
    def pair(ctx: ScenarioContext, s: NDArrayInt, r: NDArrayInt, p: Mapping[str, Any]) -> NDArrayBool:
        length, width = ctx.footprint
        if reverse:  # the subject seen from the related object's frame
            fwd, left = _frame(ctx, r, s)
            fwd, left = fwd.transpose(1, 0, 2), left.transpose(1, 0, 2)
            half_l, half_w = length[r][None, :, None] / 2, width[r][None, :, None] / 2
        else:
            fwd, left = _frame(ctx, s, r)
            half_l, half_w = length[s][:, None, None] / 2, width[s][:, None, None] / 2
        within, lateral = p["within"], p["lateral"]
        # the distance along the direction beyond the box's own extent, and the offset across it
        if direction in ("ahead", "behind"):
            along = (fwd if direction == "ahead" else -fwd) - half_l
            across_ok = np.abs(left) <= half_w + lateral
        else:
            along = (left if direction == "left" else -left) - half_w
            across_ok = np.abs(fwd) <= half_l + lateral
        result: NDArrayBool = (along > 0) & (along <= within) & across_ok
        return result

    return pair


def _directional(
    direction: str, *, reverse: bool
) -> Callable[[ScenarioContext, NDArrayBool, Mapping[str, Any]], Selection]:
    pair = _direction_pairs(direction, reverse=reverse)

    def impl(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
        return _relate(ctx, cand, p, pair, min_count=p["min"])

    return impl


def _facing_pairs(ctx: ScenarioContext, s: NDArrayInt, r: NDArrayInt, p: Mapping[str, Any]) -> NDArrayBool:
    fwd, left = _frame(ctx, s, r)
    dist = np.hypot(fwd, left)
    bearing = np.arctan2(left, fwd)
    result: NDArrayBool = (dist <= p["within"]) & (np.abs(bearing) <= p["angle"])
    return result


def _heading_toward_pairs(
    ctx: ScenarioContext, s: NDArrayInt, r: NDArrayInt, p: Mapping[str, Any]
) -> NDArrayBool:
    k = ctx.kinematics
    xy = ctx.tracks.xy_m
    dx = xy[r][None, :, :, 0] - xy[s][:, None, :, 0]
    dy = xy[r][None, :, :, 1] - xy[s][:, None, :, 1]
    dist = np.hypot(dx, dy)
    vx, vy = k.vx_mps[s][:, None, :], k.vy_mps[s][:, None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        toward = (vx * dx + vy * dy) / dist
        angle = np.abs(wrap_angle(np.arctan2(vy, vx) - np.arctan2(dy, dx)))
        result: NDArrayBool = (dist <= p["within"]) & (toward >= p["min_speed"]) & (angle <= p["angle"])
        return result


def _lane_linked(ctx: ScenarioContext) -> NDArrayBool:
    """``(L, L)`` lanes equal or joined by a successor relation (either way)."""
    m = ctx.map
    assert m is not None
    n = m.lanes.num_lanes
    out = np.eye(n, dtype=bool)
    e = m.lanes.successors
    if e.shape[0]:
        out[e[:, 0], e[:, 1]] = True
        out[e[:, 1], e[:, 0]] = True
    return out


def _following_pairs(ctx: ScenarioContext, s: NDArrayInt, r: NDArrayInt, p: Mapping[str, Any]) -> NDArrayBool:
    """The related object leads the subject: ahead in its lane, same direction, both moving."""
    k = ctx.kinematics
    length, width = ctx.footprint
    fwd, left = _frame(ctx, s, r)
    gap = fwd - length[s][:, None, None] / 2 - length[r][None, :, None] / 2
    with np.errstate(invalid="ignore"):
        same_dir = np.cos(wrap_angle(k.travel_heading_rad[r][None] - k.travel_heading_rad[s][:, None])) > 0.5
        both_moving = (k.speed_mps[s][:, None] >= 0.5) & (k.speed_mps[r][None] >= 0.5)
    ahead = (gap > -length[r][None, :, None] / 2) & (gap <= p["within"]) & same_dir & both_moving
    if ctx.has_lanes:
        m = ctx.map
        assert m is not None
        ls, lr = m.lane[s][:, None, :], m.lane[r][None, :, :]
        linked = _lane_linked(ctx)
        on = (ls >= 0) & (lr >= 0)
        same = on & linked[np.where(ls >= 0, ls, 0), np.where(lr >= 0, lr, 0)]
        in_lane: NDArrayBool = ahead & same
        return in_lane
    lined_up: NDArrayBool = ahead & (np.abs(left) <= width[s][:, None, None] / 2 + 0.75)
    return lined_up


def _followed_by_pairs(
    ctx: ScenarioContext, s: NDArrayInt, r: NDArrayInt, p: Mapping[str, Any]
) -> NDArrayBool:
    out: NDArrayBool = _following_pairs(ctx, r, s, p).transpose(1, 0, 2)
    return out


def _same_lane_pairs(ctx: ScenarioContext, s: NDArrayInt, r: NDArrayInt, p: Mapping[str, Any]) -> NDArrayBool:
    m = ctx.map
    assert m is not None
    ls, lr = m.lane[s][:, None, :], m.lane[r][None, :, :]
    linked = _lane_linked(ctx)
    on = (ls >= 0) & (lr >= 0)
    out: NDArrayBool = on & linked[np.where(ls >= 0, ls, 0), np.where(lr >= 0, lr, 0)]
    return out


def _heading_pairs(ctx: ScenarioContext, s: NDArrayInt, r: NDArrayInt, p: Mapping[str, Any]) -> NDArrayBool:
    k = ctx.kinematics
    with np.errstate(invalid="ignore"):
        angle = np.abs(wrap_angle(k.travel_heading_rad[r][None] - k.travel_heading_rad[s][:, None]))
        moving = (k.speed_mps[s][:, None] >= 0.5) | (k.speed_mps[r][None] >= 0.5)
    deg = np.degrees(angle)
    rel = p["relation"]
    if rel == "same":
        return moving & (deg <= 45.0)
    if rel == "opposite":
        return moving & (deg >= 135.0)
    return moving & (deg > 45.0) & (deg < 135.0)


def _crossing_pairs(
    ctx: ScenarioContext, crosser: NDArrayInt, crossed: NDArrayInt, p: Mapping[str, Any]
) -> NDArrayBool:
    """``(C, D, T)`` the crosser passing the crossed object's centre line within ``forward`` of its front.

    A crossing step: the crosser's lateral coordinate (in the crossed object's
    frame) changes sign between consecutive steps while it is ahead of the
    front bumper by at most ``forward``, moving sideways faster than
    0.2 m/s. The selection spans the steps around it while the crosser stays
    within ``lateral`` of the centre line.
    """
    length, _ = ctx.footprint
    fwd, left = _frame(ctx, crossed, crosser)  # (D, C, T)
    fwd, left = fwd.transpose(1, 0, 2), left.transpose(1, 0, 2)
    both = ctx.valid[crosser][:, None, :] & ctx.valid[crossed][None, :, :]
    ahead = fwd - length[crossed][None, :, None] / 2
    zone = (ahead >= 0) & (ahead <= p["forward"])
    dt = np.diff(ctx.t_s)
    out = np.zeros(both.shape, dtype=bool)
    if ctx.num_steps < 2:
        return out
    with np.errstate(invalid="ignore"):
        side_speed = np.abs(np.diff(left, axis=2)) / dt[None, None, :]
    cross = np.zeros_like(out)
    cross[..., 1:] = (
        both[..., 1:]
        & both[..., :-1]
        & (left[..., 1:] * left[..., :-1] <= 0)
        & (left[..., 1:] != left[..., :-1])
        & zone[..., 1:]
        & (side_speed >= 0.2)
    )
    near_line = both & (np.abs(left) <= p["lateral"])
    # grow each crossing step along its run of near_line, both ways
    fwd_fill = cross & near_line
    for t in range(1, ctx.num_steps):
        fwd_fill[..., t] |= fwd_fill[..., t - 1] & near_line[..., t]
    back_fill = cross & near_line
    for t in range(ctx.num_steps - 2, -1, -1):
        back_fill[..., t] |= back_fill[..., t + 1] & near_line[..., t]
    out = fwd_fill | back_fill
    result: NDArrayBool = out
    return result


def _crossing(ctx: ScenarioContext, s: NDArrayInt, r: NDArrayInt, p: Mapping[str, Any]) -> NDArrayBool:
    return _crossing_pairs(ctx, s, r, p)


def _crossed_by(ctx: ScenarioContext, s: NDArrayInt, r: NDArrayInt, p: Mapping[str, Any]) -> NDArrayBool:
    out: NDArrayBool = _crossing_pairs(ctx, r, s, p).transpose(1, 0, 2)
    return out


def _relational(pair: PairFn) -> Callable[[ScenarioContext, NDArrayBool, Mapping[str, Any]], Selection]:
    def impl(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
        return _relate(ctx, cand, p, pair)

    return impl


# --------------------------------------------------------------------------- map


def _map(ctx: ScenarioContext) -> Any:
    m = ctx.map
    assert m is not None
    return m


def _in_drivable_area(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    return _plain(cand & _map(ctx).in_drivable_area)


def _on_road(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    return _plain(cand & (_map(ctx).lane >= 0))


def _lane_type(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    m = _map(ctx)
    lane = m.lane
    kinds = m.lanes.kind[np.where(lane >= 0, lane, 0)]
    return _plain(cand & (lane >= 0) & (kinds == p["kind"]))


def _wrong_way(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    m = _map(ctx)
    k = ctx.kinematics
    with np.errstate(invalid="ignore"):
        against = np.abs(m.lane_heading_diff_rad) > p["angle"]
        forwards = np.cos(wrap_angle(k.travel_heading_rad - ctx.tracks.heading_rad)) > 0  # not reversing
        fast = k.speed_mps >= p["min_speed"]
    wrong = ctx.valid & (m.lane >= 0) & ~m.in_intersection & against & forwards & fast
    return _plain(cand & _lasting(ctx, wrong, p["min_duration"]))


def _at_intersection(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    return _plain(cand & _map(ctx).in_intersection)


_RED = (int(TrafficLightState.STOP), int(TrafficLightState.ARROW_STOP), int(TrafficLightState.FLASHING_STOP))


@dataclass(frozen=True)
class _Light:
    """One controlled lane's light, as seen by every state: ``(A, T)`` arrays."""

    approach: NDArrayBool  # on the controlled lane or a predecessor of it
    red: NDArrayBool  # ``(T,)`` red (stop, red arrow, flashing red) and observed
    ahead_m: NDArrayFloat  # the stop point's distance ahead along the heading (negative: passed)
    lateral_m: NDArrayFloat  # and across it
    lane: int  # the controlled lane (map-context index)
    index: int  # the light's row in the scenario's ``TrafficLights``


def _lights(ctx: ScenarioContext) -> list[_Light]:
    """Every traffic light of the scenario whose lane is on the map, cached.

    Datasets attach a light either to the lane that ends at the stop line
    (the approach) or to the lane that starts there (inside the
    intersection, as Waymo does), so a state faces the light from the
    controlled lane or any lane leading into it, while the stop point is
    still ahead of it. A light with no stop point stops traffic where its
    lane meets the intersection: the lane's end for an approach lane, its
    start for an intersection lane.
    """
    if "lights" in ctx.cache:
        cached: list[_Light] = ctx.cache["lights"]  # type: ignore[assignment]
        return cached
    out: list[_Light] = []
    tl = ctx.scenario.traffic_lights
    m = _map(ctx)
    sm = ctx.scenario.map
    if tl is not None and sm is not None:
        index = {str(f): i for i, f in enumerate(m.lanes.feature_ids.tolist())}
        edges = m.lanes.successors
        xy = ctx.tracks.xy_m
        c, s = np.cos(ctx.tracks.heading_rad), np.sin(ctx.tracks.heading_rad)
        for j, lane_id in enumerate(tl.lane_ids.tolist()):
            i = index.get(str(lane_id))
            if i is None:
                continue
            stop = tl.stop_point_m[j, :2]
            if not np.isfinite(stop).all():
                pts = sm.points(int(m.lanes.feature[i]))[:, :2]
                stop = pts[0] if m.lanes.is_intersection[i] else pts[-1]
            lanes = [i, *edges[edges[:, 1] == i, 0].tolist()] if edges.shape[0] else [i]
            dx, dy = stop[0] - xy[..., 0], stop[1] - xy[..., 1]
            out.append(
                _Light(
                    approach=np.isin(m.lane, lanes) & ctx.valid,
                    red=tl.valid[j] & np.isin(tl.state[j], _RED),
                    ahead_m=dx * c + dy * s,
                    lateral_m=-dx * s + dy * c,
                    lane=i,
                    index=j,
                )
            )
    ctx.cache["lights"] = out
    return out


def _red_light(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    length, _ = ctx.footprint
    out = np.zeros_like(ctx.valid)
    for light in _lights(ctx):
        with np.errstate(invalid="ignore"):
            # the stop point ahead (the front bumper may be over it), within reach, in this lane
            facing = (
                (light.ahead_m >= -length[:, None] / 2)
                & (light.ahead_m <= p["within"])
                & (np.abs(light.lateral_m) <= 3.0)
            )
        out |= light.approach & light.red[None, :] & facing
    return _plain(cand & out)


_TURN_RAD = np.pi / 4
"""A passage through an intersection that turns the heading by more than this (45 degrees) is a turn."""
_TURN_PATH_M = 25.0
"""How far past the stop point the heading change is looked at (a right turn's arc is 10-20 m long)."""


def _turn_direction(ctx: ScenarioContext, r: int, t: int, end: int) -> int:
    """+1 left, -1 right, 0 straight (or not known) for track ``r`` passing the stop point at step ``t``.

    The track's own heading decides: its largest change from step ``t``
    over the next :data:`_TURN_PATH_M` of its path. While it is still early
    in the turn there (under 45 degrees), the lane it is on at ``end`` (its
    last step through the intersection) decides if that is an intersection
    lane: the heading change from the lane's first to its last segment, i.e.
    where the lane connectivity takes it.
    """
    xy = ctx.tracks.xy_m[r, t:]
    valid = ctx.valid[r, t:]
    step_m = np.hypot(*np.diff(xy, axis=0).T)
    path_m = np.concatenate([[0.0], np.cumsum(np.where(valid[1:] & valid[:-1], step_m, 0.0))])
    window = valid & (path_m <= _TURN_PATH_M)
    heading = ctx.tracks.heading_rad[r, t:]
    with np.errstate(invalid="ignore"):
        turned = np.where(window, wrap_angle(heading - heading[0]), 0.0)
    turned = np.nan_to_num(turned)
    k = int(np.argmax(np.abs(turned)))
    if abs(turned[k]) >= _TURN_RAD:
        return 1 if turned[k] > 0 else -1
    m = _map(ctx)
    lane = int(m.lane[r, end])
    sm = ctx.scenario.map
    if lane < 0 or sm is None or not m.lanes.is_intersection[lane]:
        return 0
    pts = sm.points(int(m.lanes.feature[lane]))[:, :2]
    if pts.shape[0] < 3:
        return 0
    d0, d1 = pts[1] - pts[0], pts[-1] - pts[-2]
    bend = float(wrap_angle(np.asarray(np.arctan2(d1[1], d1[0]) - np.arctan2(d0[1], d0[0]))))
    return 0 if abs(bend) < _TURN_RAD else (1 if bend > 0 else -1)


def _running_red_light(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    """Passing the stop point on red, less the passages the rules of the road allow.

    Allowed, so not selected: after a full stop (below ``stop_speed`` within
    ``stop_within`` before the stop point while the light is red), going on
    at a flashing red (it is a stop sign), and, per ``turn_on_red``, a right
    turn at a steady circular red (``right_after_stop``: after such a stop,
    the rule in the US and Canada; ``right``: without stopping first;
    ``none``: never, as in most of Europe, the UK, Japan and Singapore). A
    red arrow is never exempt (several US states forbid turning on it).
    """
    m = _map(ctx)
    out = np.zeros_like(ctx.valid)
    if ctx.num_steps < 2:
        return _plain(out)
    with np.errstate(invalid="ignore"):
        speed = ctx.kinematics.speed_mps
        fast = speed >= p["min_speed"]
        halted = speed < p["stop_speed"]
    policy = p["turn_on_red"]
    states = ctx.scenario.traffic_lights.state if ctx.scenario.traffic_lights is not None else None
    for light in _lights(ctx):
        with np.errstate(invalid="ignore"):
            # the centre passes the stop point between t and t + 1 while the light is red at t
            cross = (
                light.approach[:, :-1]
                & ctx.valid[:, 1:]
                & light.red[None, :-1]
                & fast[:, :-1]
                & (light.ahead_m[:, :-1] > 0)
                & (light.ahead_m[:, 1:] <= 0)
                & (np.abs(light.lateral_m[:, :-1]) <= 3.0)
            )
            waited = (
                halted
                & light.approach
                & light.red[None, :]
                & (light.ahead_m >= 0)
                & (light.ahead_m <= p["stop_within"])
                & (np.abs(light.lateral_m) <= 3.0)
            )
        through = (m.in_intersection | (m.lane == light.lane)) & ctx.valid
        for r, t in zip(*np.nonzero(cross), strict=True):
            u = t + 2
            while u < ctx.num_steps and through[r, u]:
                u += 1
            stopped = _stopped_before(waited[r], light.red, t)
            state = int(states[light.index][t]) if states is not None else -1
            if _allowed_on_red(ctx, r, t, u - 1, state, stopped, policy):
                continue
            out[r, t:u] = True
    return _plain(cand & out)


def _stopped_before(waited: NDArrayBool, red: NDArrayBool, t: int) -> bool:
    """Whether the track stood at the stop point during the red phase that ends its passage at ``t``."""
    start = t
    while start > 0 and red[start - 1]:
        start -= 1
    return bool(waited[start : t + 1].any())


def _allowed_on_red(
    ctx: ScenarioContext, r: int, t: int, end: int, state: int, stopped: bool, policy: str
) -> bool:
    """Whether passing a red light at step ``t`` (in ``state``) is lawful (see :func:`_running_red_light`)."""
    if state == int(TrafficLightState.FLASHING_STOP):
        return stopped
    if state != int(TrafficLightState.STOP) or policy == "none":
        return False
    if policy == "right_after_stop" and not stopped:
        return False
    return _turn_direction(ctx, r, t, end) < 0


def _points_distance(ctx: ScenarioContext, key: str, build: Callable[[], Any]) -> NDArrayFloat:
    """``(A, T)`` distance of each state's box (centre and corners) to a set of map shapes, cached."""
    if key not in ctx.cache:
        ctx.cache[key] = build()
    out: NDArrayFloat = ctx.cache[key]  # type: ignore[assignment]
    return out


def _box_points(ctx: ScenarioContext) -> tuple[NDArrayFloat, NDArrayInt, NDArrayInt]:
    rows, cols = np.nonzero(ctx.valid)
    pts = np.concatenate(
        [ctx.tracks.xy_m[rows, cols][:, None, :], ctx.corners[rows, cols]], axis=1
    )  # (N, 5, 2)
    return pts.reshape(-1, 2), rows, cols


def _crosswalk_distance(ctx: ScenarioContext) -> NDArrayFloat:
    def build() -> NDArrayFloat:
        out = np.full(ctx.valid.shape, np.inf)
        cw = _map(ctx).lanes.crosswalks
        if cw is None:
            return out
        pts, rows, cols = _box_points(ctx)
        d = rings_distance(pts, cw[0], cw[1]).reshape(-1, 5).min(axis=1)
        out[rows, cols] = d
        return out

    return _points_distance(ctx, "crosswalk_distance", build)


def _at_crosswalk(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    return _plain(cand & (_crosswalk_distance(ctx) <= p["within"]))


def _intersection_distance(ctx: ScenarioContext) -> NDArrayFloat:
    def build() -> NDArrayFloat:
        from datadrive.core.geometry import PolylineIndex

        m = _map(ctx)
        out = np.full(ctx.valid.shape, np.inf)
        sm = ctx.scenario.map
        inter = np.flatnonzero(m.lanes.is_intersection)
        if sm is None or inter.size == 0:
            return out
        parts = [sm.points(int(m.lanes.feature[i]))[:, :2] for i in inter]
        counts = np.array([q.shape[0] for q in parts])
        index = PolylineIndex(
            np.concatenate(parts), np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        )
        rows, cols = np.nonzero(ctx.valid)
        proj = index.project(ctx.tracks.xy_m[rows, cols])
        half = m.lanes.width_m[inter][np.where(proj.feature >= 0, proj.feature, 0)] / 2
        out[rows, cols] = np.maximum(proj.distance_m - half, 0.0)
        return out

    return _points_distance(ctx, "intersection_distance", build)


def _near_intersection(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    return _plain(cand & (_intersection_distance(ctx) <= p["within"]))


def _at_stop_line(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    d = _map(ctx).next_stop_line_m
    with np.errstate(invalid="ignore"):
        return _plain(cand & (d <= p["within"]))


def _road_edge_distance(ctx: ScenarioContext) -> NDArrayFloat:
    def build() -> NDArrayFloat:
        from datadrive.core.geometry import PolylineIndex

        out = np.full(ctx.valid.shape, np.inf)
        sm = ctx.scenario.map
        if sm is None:
            return out
        kinds = (MapFeatureKind.ROAD_EDGE, MapFeatureKind.DRIVABLE_AREA)
        idx = np.flatnonzero(np.isin(sm.kind, [int(k) for k in kinds]))
        if idx.size == 0:
            return out
        parts = [sm.points(int(i))[:, :2] for i in idx]
        counts = np.array([q.shape[0] for q in parts])
        index = PolylineIndex(
            np.concatenate(parts), np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        )
        rows, cols = np.nonzero(ctx.valid)
        out[rows, cols] = index.project(ctx.tracks.xy_m[rows, cols]).distance_m
        return out

    return _points_distance(ctx, "road_edge_distance", build)


def _road_side(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    return _plain(cand & (_road_edge_distance(ctx) <= p["within"]))


# --------------------------------------------------------------------------- combinators


def _during(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    a = evaluate(p["a"], ctx, cand)
    b = evaluate(p["b"], ctx)
    when = _any_step(b.mask)
    mask = a.mask & when[None, :]
    return Selection(mask, (a.related | b.mask) & _any_step(mask)[None, :])


def _shifted(ctx: ScenarioContext, when: NDArrayBool, window_s: float, *, future: bool) -> NDArrayBool:
    """``(T,)`` steps with a True of ``when`` within ``window_s`` after (``future``) or before."""
    idx = np.flatnonzero(when)
    out = np.zeros(ctx.num_steps, dtype=bool)
    if idx.size == 0:
        return out
    t = ctx.t_s
    times = t[idx]
    if future:
        j = np.searchsorted(times, t, side="left")  # first True at or after each step
        ok = j < idx.size
        out[ok] = times[np.minimum(j, idx.size - 1)][ok] - t[ok] <= window_s
    else:
        j = np.searchsorted(times, t, side="right") - 1  # last True at or before each step
        ok = j >= 0
        out[ok] = t[ok] - times[np.maximum(j, 0)][ok] <= window_s
    return out


def _before(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    a = evaluate(p["a"], ctx, cand)
    b = evaluate(p["b"], ctx)
    mask = a.mask & _shifted(ctx, _any_step(b.mask), p["within"], future=True)[None, :]
    return Selection(mask, a.related | (b.mask if mask.any() else np.zeros_like(mask)))


def _after(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    a = evaluate(p["a"], ctx, cand)
    b = evaluate(p["b"], ctx)
    mask = a.mask & _shifted(ctx, _any_step(b.mask), p["within"], future=False)[None, :]
    return Selection(mask, a.related | (b.mask if mask.any() else np.zeros_like(mask)))


def _at_least(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    a = evaluate(p["a"], ctx, cand)
    enough = a.mask.sum(axis=0) >= p["n"]
    return Selection(a.mask & enough[None, :], a.related & enough[None, :])


def _for_at_least(ctx: ScenarioContext, cand: NDArrayBool, p: Mapping[str, Any]) -> Selection:
    a = evaluate(p["a"], ctx, cand)
    rows, first, last = mask_runs(a.mask)
    keep = ctx.t_s[last] - ctx.t_s[first] >= p["duration"] - 1e-9
    mask = np.zeros_like(a.mask)
    for r, f, la in zip(rows[keep].tolist(), first[keep].tolist(), last[keep].tolist(), strict=True):
        mask[r, f : la + 1] = True
    return Selection(mask, a.related & _any_step(mask)[None, :])


_IMPL: dict[str, Callable[[ScenarioContext, NDArrayBool, Mapping[str, Any]], Selection]] = {
    "stopped": _stopped,
    "moving": _moving,
    "reversing": _reversing,
    "stationary": _stationary,
    "speed": _speed,
    "accelerating": _accelerating,
    "braking": _braking,
    "lateral_accel": _lateral_accel,
    "turning": _turning,
    "changing_lanes": _changing_lanes,
    "event": _event,
    "near": _near,
    "has_ahead": _directional("ahead", reverse=False),
    "has_behind": _directional("behind", reverse=False),
    "has_left": _directional("left", reverse=False),
    "has_right": _directional("right", reverse=False),
    "ahead_of": _directional("ahead", reverse=True),
    "behind": _directional("behind", reverse=True),
    "left_of": _directional("left", reverse=True),
    "right_of": _directional("right", reverse=True),
    "facing": _relational(_facing_pairs),
    "heading_toward": _relational(_heading_toward_pairs),
    "following": _relational(_following_pairs),
    "followed_by": _relational(_followed_by_pairs),
    "same_lane": _relational(_same_lane_pairs),
    "heading": _relational(_heading_pairs),
    "crossing": _relational(_crossing),
    "crossed_by": _relational(_crossed_by),
    "in_drivable_area": _in_drivable_area,
    "on_road": _on_road,
    "lane_type": _lane_type,
    "at_intersection": _at_intersection,
    "wrong_way": _wrong_way,
    "red_light": _red_light,
    "running_red_light": _running_red_light,
    "near_intersection": _near_intersection,
    "at_crosswalk": _at_crosswalk,
    "at_stop_line": _at_stop_line,
    "road_side": _road_side,
    "during": _during,
    "before": _before,
    "after": _after,
    "at_least": _at_least,
    "for_at_least": _for_at_least,
}

_missing = set(PREDICATES) - set(_IMPL)
if _missing:  # pragma: no cover - a vocabulary entry without an implementation is a bug
    raise RuntimeError(f"predicates without an implementation: {sorted(_missing)}")
