"""Mining over a lake snapshot: run a query, a description, or the taggers on what a principal may read.

These are the entry points the CLI, the service, dataset curation and the
assistant use. Everything goes through a :class:`~datadrive.lake.Snapshot`,
so residency, tenant filtering, version pinning and the audit log apply as
to any other read.

>>> run = mine_snapshot(lake.snapshot("eu-central"), "car and stopped")   # doctest: +SKIP
>>> run.result.scenario_ids()                                              # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow.dataset as ds

from datadrive.core.scenario import Scenario
from datadrive.errors import MiningError
from datadrive.mining.context import FeatureConfig, ScenarioContext
from datadrive.mining.engine import Selection, evaluate
from datadrive.mining.query import Expr
from datadrive.mining.results import Hit, ResultSet, hits_of
from datadrive.mining.vocabulary import Bound, compile_query

__all__ = [
    "FULL_SCAN_LIMIT",
    "MiningRun",
    "candidate_keys",
    "mine_snapshot",
    "prefilter_sql",
    "scenario_keys",
]

FULL_SCAN_LIMIT = 10_000
"""A query with no filter over more scenarios than this is refused unless confirmed."""

Key = tuple[str | None, str, str]


@dataclass(frozen=True)
class MiningRun:
    """A result set and, for scenarios with hits, the scenarios and selections (for renders, RefAV).

    Attributes:
        result: The hits.
        scenarios: ``(tenant, source, scenario_id)`` -> scenario, where there are hits.
        selections: The same keys -> the query's selection in that scenario.
    """

    result: ResultSet
    scenarios: dict[Key, Scenario] = field(default_factory=dict)
    selections: dict[Key, Selection] = field(default_factory=dict)


def scenario_keys(
    snapshot: Any, *, sources: Sequence[str] | None = None, ids: Sequence[str] | None = None
) -> list[Key]:
    """``(tenant, source, scenario_id)`` of every scenario in the snapshot (telemetry egos excluded)."""
    flt = ds.field("telemetry_id").is_null()
    if sources:
        flt = flt & ds.field("source").isin(list(sources))
    if ids:
        flt = flt & ds.field("scenario_id").isin(list(ids))
    t = snapshot.table("scenarios", columns=["tenant", "source", "scenario_id"], filter=flt)
    return _sorted_keys(t)


def _sorted_keys(t: Any) -> list[Key]:
    """The (tenant, source, scenario_id) rows of ``t``, in key order (answers do not depend on file order)."""
    keys = zip(
        t.column("tenant").to_pylist(),
        t.column("source").to_pylist(),
        t.column("scenario_id").to_pylist(),
        strict=True,
    )
    return sorted(keys, key=lambda k: (k[0] or "", k[1], k[2]))


def _batches(keys: list[Key], size: int) -> Iterable[list[Key]]:
    for i in range(0, len(keys), size):
        yield keys[i : i + size]


def mine_snapshot(
    snapshot: Any,
    query: str | Expr | Bound,
    *,
    sources: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    candidates: Sequence[Key] | None = None,
    description: str | None = None,
    allow_full_scan: bool = False,
    full_scan_limit: int = FULL_SCAN_LIMIT,
    batch_size: int = 32,
    features: FeatureConfig | None = None,
    keep: bool | str = False,
    progress: Callable[[int, int], None] | None = None,
    use_index: bool = True,
) -> MiningRun:
    """Run a query over the scenarios of a snapshot the principal may read.

    Args:
        snapshot: A :class:`~datadrive.lake.Snapshot` (pinned, tenant-filtered, audited).
        query: Expression text, a built expression, or a bound query.
        sources: Only these sources.
        ids: Only these scenario ids.
        candidates: Only these ``(tenant, source, scenario_id)`` keys (e.g.
            from a prefilter over the state index).
        description: Recorded with the result.
        allow_full_scan: Confirm evaluating more than ``full_scan_limit``
            scenarios with no filter.
        full_scan_limit: See ``allow_full_scan``.
        batch_size: Scenarios read per batch.
        features: Feature parameters.
        keep: ``True``: keep the scenarios and selections that have hits (for
            renders); ``"all"``: keep every scenario searched (RefAV output
            needs the logs without hits too).
        progress: Called with (done, total) after each batch.
        use_index: Narrow the scenarios with the state index first, when the
            query has a per-state condition and the index is current
            (:func:`candidate_keys`); the answer is the same either way.

    Raises:
        QueryError: the query does not parse or bind (nothing is read).
        MiningError: the scan would be large and was not confirmed.
    """
    bound = query if isinstance(query, Bound) else compile_query(query)
    if candidates is None and use_index:
        narrowed = candidate_keys(snapshot, bound)
        if narrowed is not None:
            wanted_sources, wanted_ids = set(sources or ()), set(ids or ())
            candidates = [
                k
                for k in narrowed
                if (not wanted_sources or k[1] in wanted_sources) and (not wanted_ids or k[2] in wanted_ids)
            ]
    keys = (
        sorted(candidates, key=lambda k: (k[0] or "", k[1], k[2]))
        if candidates is not None
        else scenario_keys(snapshot, sources=sources, ids=ids)
    )
    unfiltered = candidates is None and not sources and not ids
    if unfiltered and len(keys) > full_scan_limit and not allow_full_scan:
        raise MiningError(
            f"{bound.text!r} would evaluate all {len(keys):,} scenarios of region {snapshot.region} "
            f"(more than {full_scan_limit:,}) with no filter: narrow it (--source, --id) or confirm "
            "(--yes / allow_full_scan=True)"
        )
    hits: list[Hit] = []
    no_map: list[str] = []
    scenarios: dict[Key, Scenario] = {}
    selections: dict[Key, Selection] = {}
    done = 0
    by_key = {k: None for k in keys}
    for batch in _batches(keys, batch_size):
        ids_in = sorted({k[2] for k in batch})
        read = {(s.metadata.tenant, s.source, s.scenario_id): s for s in snapshot.scenarios(ids=ids_in)}
        for key in batch:
            s = read.get(key)
            if s is None or key not in by_key:
                continue
            ctx = ScenarioContext(s, features)
            sel = evaluate(bound, ctx)
            found = hits_of(s, sel)
            hits.extend(found)
            if ctx.cache.get("no_map"):
                no_map.append(s.scenario_id)
            if keep == "all" or (keep and found):
                scenarios[key] = s
                selections[key] = sel
        done += len(batch)
        if progress is not None:
            progress(done, len(keys))
    result = ResultSet(
        expression=bound.text,
        hits=tuple(hits),
        scenarios_searched=len(keys),
        scenarios_without_map=tuple(no_map),
        region=snapshot.region,
        lake_version=snapshot.version,
        description=description,
    )
    return MiningRun(result, scenarios, selections)


# --------------------------------------------------------------------------- the state index as a prefilter


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def prefilter_sql(node: Bound) -> str | None:
    """A SQL condition on ``mining_states`` rows that every state the query selects satisfies, or ``None``.

    Used to narrow a search to the scenarios that have at least one state
    meeting the condition (categories, speeds, accelerations, a few map
    facts); predicates that need more than one state (relations, turns,
    events) contribute nothing, so the condition stays necessary, never
    sufficient: the query itself still decides.
    """
    from datadrive.mining.vocabulary import CATEGORIES

    op, p = node.op, node.params
    if op == "and":
        parts = [c for c in (prefilter_sql(ch) for ch in node.children) if c]
        return " AND ".join(f"({c})" for c in parts) if parts else None
    if op == "or":
        ors = [prefilter_sql(ch) for ch in node.children]
        return None if any(c is None for c in ors) else " OR ".join(f"({c})" for c in ors if c)
    if op == "category":
        cat = CATEGORIES[p["name"]]
        conds = []
        if cat.ego is True:
            return "is_ego"
        if cat.ego is False:
            conds.append("NOT is_ego")
        if cat.types:
            conds.append(f"object_type IN ({', '.join(str(int(t)) for t in cat.types)})")
        if cat.include:
            conds.append(
                "(" + " OR ".join(f"upper(category) LIKE {_quote('%' + w + '%')}" for w in cat.include) + ")"
            )
        conds += [f"upper(category) NOT LIKE {_quote('%' + w + '%')}" for w in cat.exclude]
        return " AND ".join(conds) if conds else None
    simple: dict[str, Callable[[], str]] = {
        "stopped": lambda: f"speed_mps < {p['max_speed']!r}",
        "moving": lambda: f"speed_mps >= {p['min_speed']!r}",
        "reversing": lambda: f"speed_mps >= {p['min_speed']!r}",
        "wrong_way": lambda: f"speed_mps >= {p['min_speed']!r} AND NOT in_intersection",
        "speed": lambda: (
            f"speed_mps >= {p['min']!r}" + (f" AND speed_mps <= {p['max']!r}" if p["max"] < 1e30 else "")
        ),
        "braking": lambda: f"accel_mps2 <= {-p['min_decel']!r}",
        "at_intersection": lambda: "in_intersection",
        "on_road": lambda: "lane_id IS NOT NULL",
        "in_drivable_area": lambda: "in_drivable_area",
        "at_stop_line": lambda: f"next_stop_line_m <= {p['within']!r}",
    }
    if op in simple:
        return simple[op]()
    if op in ("accelerating", "lateral_accel"):
        col = "accel_mps2" if op == "accelerating" else "lat_accel_mps2"
        conds = []
        if p["min"] > -1e30:
            conds.append(f"{col} >= {p['min']!r}")
        if p["max"] < 1e30:
            conds.append(f"{col} <= {p['max']!r}")
        return " AND ".join(conds) if conds else None
    if op in ("during", "before", "after", "for_at_least"):
        return prefilter_sql(p["a"])
    if op == "at_least":
        return prefilter_sql(p["a"]) if p["n"] > 0 else None
    return None


def candidate_keys(snapshot: Any, query: str | Expr | Bound) -> list[Key] | None:
    """Scenarios of ``snapshot`` that may hold hits, from the state index; ``None`` if it cannot tell.

    ``None`` when the query gives no per-state condition, or when the
    index does not cover every scenario of the snapshot with the current
    feature version (run ``datadrive index``).
    """
    from datadrive.mining.index import pending_keys

    bound = query if isinstance(query, Bound) else compile_query(query)
    cond = prefilter_sql(bound)
    if cond is None:
        return None
    _, need_states, _ = pending_keys(snapshot)
    if need_states:
        return None
    from datadrive.mining.index import FEATURE_VERSION

    # rows of an older feature version stay in the table (append-only, like older taggers' events)
    current = f"feature_version = {_quote(FEATURE_VERSION)}"
    t = snapshot.sql(
        f"SELECT DISTINCT tenant, source, scenario_id FROM mining_states WHERE {current} AND ({cond})"
    ).table
    return _sorted_keys(t)
