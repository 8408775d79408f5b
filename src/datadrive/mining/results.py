"""Query results: which tracks of which scenarios, over which time intervals; running a query.

:func:`mine` runs a query (text or built expression) over scenarios and
returns a :class:`ResultSet`: one :class:`Hit` per selected track, with the
time intervals it was selected and the tracks it was related to.
:func:`select` gives the raw per-state masks of one scenario (what renders
and RefAV output use).

Notation:
    A: tracks. T: steps.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from datadrive.core.scenario import Scenario
from datadrive.mining.context import FeatureConfig, ScenarioContext, mask_runs
from datadrive.mining.engine import Selection, evaluate
from datadrive.mining.query import Expr
from datadrive.mining.vocabulary import Bound, compile_query

__all__ = ["HIT_SCHEMA", "Hit", "ResultSet", "hits_of", "mine", "mine_scenario", "select"]


@dataclass(frozen=True)
class Hit:
    """One track a query selected in one scenario.

    Attributes:
        scenario_id: The scenario.
        source: Its source.
        tenant: Its tenant (scenarios read from a lake carry one).
        track_id: The selected track.
        intervals_ns: ``((start_ns, end_ns), ...)`` when it was selected (inclusive).
        steps: ``((first, last), ...)`` the same intervals as step indices.
        related_track_ids: Tracks it was related to (e.g. the pedestrians it was near).
        is_ego: Whether the track is the scenario's ego.
    """

    scenario_id: str
    source: str
    tenant: str | None
    track_id: str
    intervals_ns: tuple[tuple[int, int], ...]
    steps: tuple[tuple[int, int], ...]
    related_track_ids: tuple[str, ...] = ()
    is_ego: bool = False

    @property
    def duration_s(self) -> float:
        return sum(e - s for s, e in self.intervals_ns) / 1e9


HIT_SCHEMA = pa.schema(
    [
        ("tenant", pa.string()),
        ("source", pa.string()),
        ("scenario_id", pa.string()),
        ("track_id", pa.string()),
        ("is_ego", pa.bool_()),
        ("interval_index", pa.int32()),
        ("start_ns", pa.int64()),
        ("end_ns", pa.int64()),
        ("first_step", pa.int32()),
        ("last_step", pa.int32()),
        ("related_track_ids", pa.list_(pa.string())),
    ]
)
"""One row per (hit, interval): the tabular form of a result set."""


@dataclass(frozen=True)
class ResultSet:
    """What a query found.

    Attributes:
        expression: Canonical text of the query.
        hits: One per selected track, in the order the scenarios were searched (a snapshot's: by
            tenant, source, scenario id).
        scenarios_searched: How many scenarios were evaluated.
        scenarios_without_map: Ids of scenarios where map predicates could not apply.
        region: Region of the scenarios, when they came from a lake.
        lake_version: Lake version they were read at, when they came from a lake.
        description: The natural-language description it was translated from, if any.
        created_at: When it was computed (UTC).
    """

    expression: str
    hits: tuple[Hit, ...]
    scenarios_searched: int
    scenarios_without_map: tuple[str, ...] = ()
    region: str | None = None
    lake_version: int | None = None
    description: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __iter__(self) -> Iterator[Hit]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def scenario_ids(self) -> list[str]:
        """Distinct scenario ids with at least one hit, in order."""
        return list(dict.fromkeys(h.scenario_id for h in self.hits))

    def scenario_keys(self) -> list[tuple[str | None, str, str]]:
        """Distinct ``(tenant, source, scenario_id)`` with at least one hit, in order."""
        return list(dict.fromkeys((h.tenant, h.source, h.scenario_id) for h in self.hits))

    def by_scenario(self) -> dict[str, list[Hit]]:
        out: dict[str, list[Hit]] = {}
        for h in self.hits:
            out.setdefault(h.scenario_id, []).append(h)
        return out

    def to_arrow(self) -> pa.Table:
        """The hits as a table (:data:`HIT_SCHEMA`), one row per interval."""
        cols: dict[str, list[Any]] = {f.name: [] for f in HIT_SCHEMA}
        for h in self.hits:
            for i, ((s_ns, e_ns), (f, la)) in enumerate(zip(h.intervals_ns, h.steps, strict=True)):
                cols["tenant"].append(h.tenant)
                cols["source"].append(h.source)
                cols["scenario_id"].append(h.scenario_id)
                cols["track_id"].append(h.track_id)
                cols["is_ego"].append(h.is_ego)
                cols["interval_index"].append(i)
                cols["start_ns"].append(s_ns)
                cols["end_ns"].append(e_ns)
                cols["first_step"].append(f)
                cols["last_step"].append(la)
                cols["related_track_ids"].append(list(h.related_track_ids))
        return pa.table(cols, schema=HIT_SCHEMA)

    def to_json(self) -> list[dict[str, Any]]:
        """One plain dict per hit (what ``datadrive mine --json`` prints)."""
        return [
            {
                "tenant": h.tenant,
                "source": h.source,
                "scenario_id": h.scenario_id,
                "track_id": h.track_id,
                "is_ego": h.is_ego,
                "intervals_ns": [list(iv) for iv in h.intervals_ns],
                "related_track_ids": list(h.related_track_ids),
            }
            for h in self.hits
        ]


def select(
    query: str | Expr | Bound, scenario: Scenario, *, context: ScenarioContext | None = None
) -> Selection:
    """The ``(A, T)`` masks a query selects in one scenario.

    Raises:
        QueryError: if the query does not parse or bind.
    """
    bound = query if isinstance(query, Bound) else compile_query(query)
    ctx = context or ScenarioContext(scenario)
    return evaluate(bound, ctx)


def hits_of(scenario: Scenario, sel: Selection) -> list[Hit]:
    """One :class:`Hit` per track a selection holds, with its intervals and related tracks."""
    rows, first, last = mask_runs(sel.mask)
    if rows.size == 0:
        return []
    ts = scenario.timestamps_ns
    ids = scenario.tracks.track_ids
    out = []
    for r in np.unique(rows).tolist():
        k = rows == r
        f, la = first[k], last[k]
        partners: list[str] = []
        if sel.related.any():
            span = np.zeros(scenario.num_steps, dtype=bool)
            for a, b in zip(f.tolist(), la.tolist(), strict=True):
                span[a : b + 1] = True
            rel_rows = np.flatnonzero((sel.related[:, span]).any(axis=1))
            partners = [str(ids[x]) for x in rel_rows.tolist() if x != r]
        out.append(
            Hit(
                scenario_id=scenario.scenario_id,
                source=scenario.source,
                tenant=scenario.metadata.tenant,
                track_id=str(ids[r]),
                intervals_ns=tuple(
                    (int(ts[a]), int(ts[b])) for a, b in zip(f.tolist(), la.tolist(), strict=True)
                ),
                steps=tuple((int(a), int(b)) for a, b in zip(f.tolist(), la.tolist(), strict=True)),
                related_track_ids=tuple(partners),
                is_ego=scenario.ego_index == r,
            )
        )
    return out


def mine_scenario(
    bound: Bound, scenario: Scenario, features: FeatureConfig | None = None
) -> tuple[list[Hit], bool]:
    """Hits of a bound query in one scenario, and whether map predicates were left out for lack of a map.

    A module-level function of picklable arguments, so compute engines can run it.
    """
    ctx = ScenarioContext(scenario, features)
    sel = evaluate(bound, ctx)
    return hits_of(scenario, sel), bool(ctx.cache.get("no_map"))


def mine(
    query: str | Expr | Bound,
    scenarios: Iterable[Scenario] | Sequence[Scenario],
    *,
    features: FeatureConfig | None = None,
    description: str | None = None,
    region: str | None = None,
    lake_version: int | None = None,
) -> ResultSet:
    """Run a query over scenarios, in this process.

    Args:
        query: Expression text, a built :class:`~datadrive.mining.query.Expr`,
            or an already bound query.
        scenarios: The scenarios to search.
        features: Feature parameters (kinematic windows, lane matching).
        description: The description the query was translated from, recorded.
        region: Region the scenarios were read from, recorded.
        lake_version: Lake version they were read at, recorded.

    Raises:
        QueryError: if the query does not parse or bind (before any scenario is read).
    """
    bound = query if isinstance(query, Bound) else compile_query(query)
    hits: list[Hit] = []
    no_map: list[str] = []
    n = 0
    for s in scenarios:
        n += 1
        found, missing = mine_scenario(bound, s, features)
        hits.extend(found)
        if missing:
            no_map.append(s.scenario_id)
    return ResultSet(
        expression=bound.text,
        hits=tuple(hits),
        scenarios_searched=n,
        scenarios_without_map=tuple(no_map),
        region=region,
        lake_version=lake_version,
        description=description,
    )
