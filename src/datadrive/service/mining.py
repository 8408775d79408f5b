"""Mining in the service: bounded searches, events, the ``tag`` and ``mine`` jobs.

Everything here calls :mod:`datadrive.mining` on a snapshot taken as the
caller, so residency, tenant filtering, version pinning and the audit log
are the library's. What the service adds around it:

- **bounds**: a search answered in the request covers at most
  ``max_scenarios`` scenarios (after the state index narrows them, when it
  is current); a larger one is refused with the count and a way out (a
  source filter, or a ``mine`` job, which is bounded by its own limit);
- **descriptions** are translated offline by the library's deterministic
  parser (no language-model endpoint: the service sends nothing anywhere);
- **event sets**: a ``mine`` job stores its hits in the region as a
  ``dataset``-kind artefact (scenario and track ids, like a dataset
  manifest) and its counts as an ``aggregate``, registered as an
  ``event_set`` object, so sharing it lets a partner abroad read exactly
  what the region's policy lets each kind do.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from datadrive.errors import InputError

if TYPE_CHECKING:
    from datadrive.core.scenario import Scenario
    from datadrive.lake import Snapshot
    from datadrive.mining import ResultSet, Selection
    from datadrive.service.gateway import KeptPages
    from datadrive.service.jobs.framework import JobContext

__all__ = [
    "EVENT_ORDER",
    "MAX_JOB_SCENARIOS",
    "OBJECT_TYPE",
    "EventFilter",
    "Search",
    "check_mine",
    "check_tag",
    "event_page",
    "event_rows",
    "event_summary",
    "hits_table",
    "mine_job",
    "search",
    "tag_job",
    "vocabulary",
]

OBJECT_TYPE = "event_set"
"""The type of the shareable object a ``mine`` job registers."""

MAX_JOB_SCENARIOS = 100_000
"""Scenarios one ``mine`` job may evaluate at most."""

_EVENT_COLUMNS = [
    "tenant",
    "source",
    "scenario_id",
    "event_type",
    "actor_track_id",
    "track_ids",
    "start_step",
    "end_step",
    "start_ns",
    "end_ns",
    "duration_s",
    "severity",
    "severity_unit",
    "ego_involved",
]


def vocabulary() -> dict[str, Any]:
    """The query language's categories and predicates, and the event types (what the UI offers)."""
    from datadrive.mining import CATEGORIES, EVENT_TYPES, PREDICATES

    return {
        "categories": sorted(CATEGORIES),
        "predicates": [
            {
                "name": p.name,
                "group": p.group,
                "doc": p.doc,
                "needs_map": p.needs_map,
                "params": [
                    {
                        "name": a.name,
                        "kind": a.kind,
                        "required": not isinstance(a.default, int | float | str | bool | tuple),
                        "default": a.default
                        if isinstance(a.default, int | float | str | bool | tuple)
                        else None,
                        "choices": list(a.choices),
                    }
                    for a in p.params
                ],
            }
            for p in PREDICATES.values()
        ],
        "event_types": [
            {"name": e.name, "description": e.description, "severity_unit": e.severity_unit}
            for e in EVENT_TYPES.values()
        ],
    }


def translate(description: str) -> str:
    """A plain-English description's expression (the library's offline parser).

    Raises:
        DescriptionError: words the parser cannot place (named in the message), or nesting deeper
            than the query language allows.
    """
    from datadrive.mining import describe

    return describe(description).text


@dataclass(frozen=True)
class Search:
    """A search's answer: the hits, and the scenarios that have them (for thumbnails)."""

    result: ResultSet
    scenarios: dict[str, Scenario]
    selections: dict[str, Selection]
    candidates: int
    narrowed_by_index: bool


def _expression(expression: str | None, description: str | None) -> tuple[str, str | None]:
    if (expression is None) == (description is None):
        raise InputError("expression", "give an expression or a description (one of them)")
    if description is not None:
        return translate(description), description
    assert expression is not None
    return expression, None


def search(
    snapshot: Snapshot,
    *,
    expression: str | None = None,
    description: str | None = None,
    sources: Sequence[str] = (),
    max_scenarios: int,
) -> Search:
    """Run a query (or a description's translation) over at most ``max_scenarios`` scenarios of a snapshot.

    The state index narrows the scenarios first when it is current (the
    answer is the same either way); what remains is counted before anything
    is evaluated.

    Raises:
        QueryError: the expression does not parse or bind (nothing is read).
        DescriptionError: the description has words the parser cannot place.
        InputError: more than ``max_scenarios`` scenarios would be evaluated.
    """
    from datadrive.mining import compile_query, mine_snapshot

    text, described = _expression(expression, description)
    bound = compile_query(text)
    keys, narrowed = _candidates(snapshot, bound, sources)
    if len(keys) > max_scenarios:
        raise InputError(
            "expression",
            f"{bound.text!r} would evaluate {len(keys):,} scenarios of region {snapshot.region}; a search "
            f"here covers at most {max_scenarios:,}: pick a source, or run it as a `mine` job",
        )
    run = mine_snapshot(snapshot, bound, candidates=keys, description=described, keep=True, use_index=False)
    return Search(
        result=run.result,
        scenarios={k[2]: s for k, s in run.scenarios.items()},
        selections={k[2]: sel for k, sel in run.selections.items()},
        candidates=len(keys),
        narrowed_by_index=narrowed,
    )


def _candidates(snapshot: Snapshot, bound: Any, sources: Sequence[str]) -> tuple[list[Any], bool]:
    """The scenario keys a query must evaluate, and whether the state index narrowed them."""
    from datadrive.mining import scenario_keys
    from datadrive.mining.api import candidate_keys

    narrowed = candidate_keys(snapshot, bound)
    if narrowed is None:
        return scenario_keys(snapshot, sources=list(sources) or None), False
    wanted = set(sources)
    return [k for k in narrowed if not wanted or k[1] in wanted], True


def hit_json(hit: Any) -> dict[str, Any]:
    """One hit as the API shows it (times in ns since the epoch and in steps)."""
    return {
        "tenant": hit.tenant,
        "source": hit.source,
        "scenario_id": hit.scenario_id,
        "track_id": hit.track_id,
        "is_ego": hit.is_ego,
        "intervals_ns": [list(iv) for iv in hit.intervals_ns],
        "steps": [list(s) for s in hit.steps],
        "duration_s": round(hit.duration_s, 3),
        "related_track_ids": list(hit.related_track_ids),
    }


@dataclass(frozen=True)
class EventFilter:
    """Which events a listing shows (:func:`event_rows`, :func:`event_page`): every field narrows it.

    Attributes:
        event_type: Only this event type (one of ``datadrive.mining.EVENT_TYPES``).
        scenario_id: Only this scenario's events.
        source: Only this source's.
        ego_only: Only events the ego takes part in.
        min_severity: Only events at least this severe (an event without a
            severity never is).

    Raises:
        InputError: an unknown event type (the known ones listed).
    """

    event_type: str | None = None
    scenario_id: str | None = None
    source: str | None = None
    ego_only: bool = False
    min_severity: float | None = None

    def __post_init__(self) -> None:
        if self.event_type is None:
            return
        from datadrive.mining import EVENT_TYPES

        if self.event_type not in EVENT_TYPES:
            raise InputError("event_type", f"one of {', '.join(EVENT_TYPES)}")

    def sql(self, order: str | None = None) -> str:
        """The listing's SQL: the current tagger version's events, filtered, in :data:`EVENT_ORDER`
        (or ``order``)."""
        from datadrive.mining import tagger_version

        def lit(text: str) -> str:
            return "'" + text.replace("'", "''") + "'"

        # through the library's SQL: its session reads the table's Parquet files natively and sorts in
        # DuckDB, where a dataset scan with this filter took seconds at 100k scenarios
        where = [f"tagger_version = {lit(tagger_version())}"]
        if self.event_type is not None:
            where.append(f"event_type = {lit(self.event_type)}")
        if self.scenario_id is not None:
            where.append(f"scenario_id = {lit(self.scenario_id)}")
        if self.source is not None:
            where.append(f"source = {lit(self.source)}")
        if self.ego_only:
            where.append("ego_involved")
        if self.min_severity is not None:
            where.append(f"severity >= {float(self.min_severity)!r}")
        columns, conditions = ", ".join(_EVENT_COLUMNS), " AND ".join(where)
        return f"SELECT {columns} FROM events WHERE {conditions} ORDER BY {order or EVENT_ORDER}"


EVENT_ORDER = (
    "severity DESC NULLS LAST, scenario_id, start_ns, event_type, actor_track_id, end_ns, tenant, source, "
    "track_ids, start_step, end_step, duration_s, severity_unit, ego_involved"
)
"""The order of an event listing: most severe first, then by where and when, then by every other column
shown, so that it is complete: a page is the same whether DuckDB's top-N cuts it or it is sliced from the
whole sorted answer, and pages asked one by one neither repeat nor skip a row (rows equal in all of these
look the same)."""


def event_rows(snapshot: Snapshot, flt: EventFilter, *, timeout_s: float | None = None) -> Any:
    """The current tagger version's events of a snapshot that ``flt`` lets through, most severe first."""
    return snapshot.sql(flt.sql(), timeout_s=timeout_s).table


def event_page(
    snapshot: Snapshot,
    flt: EventFilter,
    *,
    limit: int,
    offset: int = 0,
    timeout_s: float | None = None,
    pages: KeptPages | None = None,
) -> tuple[Any, int]:
    """Rows ``offset`` to ``offset + limit`` of :func:`event_rows`, and how many rows match in all.

    Either way one library read, one audit row:

    - with ``pages`` (the service's gateway, as the caller), the page is
      sliced from a whole sorted answer kept per lake version: a listing
      not narrowed to one scenario from its own (a type's events are ~10^5
      rows at 100k scenarios: counting and ordering them per request cost
      45-60 ms of DuckDB each), one scenario's events, unfiltered otherwise,
      from every event ordered by scenario first (its run found by a lookup);
    - otherwise, and for a scenario's events filtered further, the page is
      cut in DuckDB (a top-N rather than a full sort, only ``limit`` rows
      turned into Arrow) with the total counted alongside.
    """
    query = flt.sql()
    if pages is not None:
        got = None
        if flt.scenario_id is None:
            got = pages.page(snapshot, query, limit=int(limit), offset=int(offset), timeout_s=timeout_s)
        elif flt == EventFilter(scenario_id=flt.scenario_id):
            every = EventFilter().sql(order=f"scenario_id, {EVENT_ORDER}")
            got = pages.group_page(
                snapshot,
                every,
                "scenario_id",
                flt.scenario_id,
                query,
                limit=int(limit),
                offset=int(offset),
                timeout_s=timeout_s,
            )
        if got is not None:
            return got
    counted = query.replace(" FROM events ", ", count(*) OVER () AS __total FROM events ", 1)
    table = snapshot.sql(f"{counted} LIMIT {int(limit)} OFFSET {int(offset)}", timeout_s=timeout_s).table
    if table.num_rows:
        total = int(table.column("__total")[0].as_py())
    elif offset == 0:
        total = 0
    else:  # past the last page: the total needs a count of its own
        count = snapshot.sql(f"SELECT count(*) AS n FROM ({query})", timeout_s=timeout_s).table
        total = int(count.column("n")[0].as_py())
    return table.drop_columns(["__total"]), total


def event_summary(snapshot: Snapshot) -> dict[str, Any]:
    """Event counts by type (current tagger version) and how much of the snapshot is tagged."""
    from datadrive.mining import tagger_version
    from datadrive.mining.index import pending_keys

    every, _, untagged = pending_keys(snapshot)
    version = tagger_version()
    table = snapshot.sql(
        "SELECT event_type, count(*) AS events, count(DISTINCT scenario_id) AS scenarios, "
        "CAST(sum(CASE WHEN ego_involved THEN 1 ELSE 0 END) AS BIGINT) AS with_ego, "
        "avg(severity) AS mean_severity, max(severity) AS max_severity "
        f"FROM events WHERE tagger_version = '{version}' GROUP BY 1 ORDER BY events DESC, event_type"
    ).table
    return {
        "region": snapshot.region,
        "lake_version": snapshot.version,
        "tagger_version": version,
        "scenarios": len(every),
        "tagged": len(every) - len(untagged),
        "by_type": table.to_pylist(),
    }


def events_for_scene(snapshot: Snapshot, scenario: Scenario) -> list[dict[str, Any]]:
    """A scenario's tagged events as the viewer's timeline marks (``scene_json(events=...)``)."""
    from datadrive.errors import LakeError

    try:
        rows = event_rows(snapshot, EventFilter(scenario_id=scenario.scenario_id)).to_pylist()
    except (LakeError, KeyError):  # no events table in this lake version
        return []
    t0 = int(scenario.timestamps_ns[0]) if len(scenario.timestamps_ns) else 0
    return [
        {
            "label": r["event_type"],
            "t_start_s": round((r["start_ns"] - t0) / 1e9, 3),
            "t_end_s": round((r["end_ns"] - t0) / 1e9, 3),
            "start_ns": int(r["start_ns"]),
            "end_ns": int(r["end_ns"]),
            "track_ids": list(r["track_ids"] or []) or [r["actor_track_id"]],
            "severity": r["severity"],
        }
        for r in rows
        if r["tenant"] == scenario.metadata.tenant and r["source"] == scenario.source
    ]


# --------------------------------------------------------------------------- jobs


def _no_extra(params: Mapping[str, Any]) -> None:
    extra = set(params) - {"expression", "description", "sources", "name"}
    if extra:
        raise InputError("params", f"unknown parameters {', '.join(sorted(extra))}")


def check_tag(params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """A tag job takes no parameters: it brings the region's mining tables up to date."""
    if params:
        raise InputError("params", "a tag job takes no parameters (it tags what is not tagged yet)")
    return {}


def tag_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Index and tag every scenario of the job's region not yet current (``datadrive index``)."""
    from datadrive.compute import InlineEngine
    from datadrive.mining import tag_lake

    region = str(ctx.region)
    ctx.progress(0, 1, "looking for scenarios to tag", force=True)

    def progress(done: int, total: int) -> None:
        ctx.progress(done, max(total, 1), f"tagged {done}/{total}")

    report = tag_lake(ctx.lake, region, engine=InlineEngine(), progress=progress)
    for failure in report.failures:
        ctx.log(f"a batch failed (nothing of it written): {failure}", "warning")
    if report.skipped_taggers:
        skipped = ", ".join(f"{k} ({v})" for k, v in sorted(report.skipped_taggers.items()))
        ctx.log(f"taggers skipped where a scenario has no map: {skipped}")
    ctx.log(
        f"{report.scenarios} scenarios; {report.indexed} indexed, {report.tagged} tagged; "
        f"{report.events} events; lake version {report.lake_version_before} -> {report.lake_version_after}"
    )
    return {
        "region": region,
        "scenarios": report.scenarios,
        "indexed": report.indexed,
        "tagged": report.tagged,
        "events": report.events,
        "failed_batches": len(report.failures),
        "lake_version": report.lake_version_after,
    }


def check_mine(params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """A mine job's parameters: an expression or a description, a name, optional sources."""
    from datadrive.mining import compile_query

    _no_extra(params)
    expression, description = params.get("expression"), params.get("description")
    for key, value in (("expression", expression), ("description", description)):
        if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > 2000):
            raise InputError(f"params.{key}", "text of 1 to 2,000 characters")
    if (expression is None) == (description is None):
        raise InputError("params.expression", "give an expression or a description (one of them)")
    text = expression if expression is not None else translate(str(description))
    bound = compile_query(str(text))  # QueryError now, not in the worker
    name = params.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InputError("params.name", "an event set needs a name (at most 200 characters)")
    sources = params.get("sources", [])
    if not isinstance(sources, list) or len(sources) > 50 or not all(isinstance(s, str) for s in sources):
        raise InputError("params.sources", "a list of source names (at most 50)")
    return {
        "expression": bound.text,
        "description": description,
        "name": name.strip(),
        "sources": sources,
    }


def hits_table(result: ResultSet) -> bytes:
    """The hits as Parquet (the library's tabular form: one row per hit and interval)."""
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(result.to_arrow(), buf)
    return buf.getvalue()


def mine_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Run a query over the job's region and keep its hits as a shareable event set."""
    from datadrive.mining import compile_query, mine_snapshot

    region = str(ctx.region)
    snap = ctx.lake.snapshot(region)
    ctx.progress(0, 1, "searching", force=True)
    bound = compile_query(params["expression"])
    keys, narrowed = _candidates(snap, bound, params.get("sources") or ())
    if len(keys) > MAX_JOB_SCENARIOS:
        raise InputError(
            "params", f"{len(keys):,} scenarios to search; a mine job covers at most {MAX_JOB_SCENARIOS:,}"
        )
    if narrowed:
        ctx.log(f"the state index narrowed the search to {len(keys):,} scenarios")

    def progress(done: int, total: int) -> None:
        ctx.progress(done, max(total, 1), f"searched {done}/{total} scenarios")

    run = mine_snapshot(
        snap,
        bound,
        candidates=keys,
        description=params.get("description"),
        use_index=False,
        progress=progress,
    )
    result = run.result
    by_source: dict[str, int] = {}
    for h in result.hits:
        by_source[h.source] = by_source.get(h.source, 0) + 1
    summary = {
        "name": params["name"],
        "expression": result.expression,
        "description": result.description,
        "region": region,
        "lake_version": result.lake_version,
        "scenarios_searched": result.scenarios_searched,
        "scenarios_with_hits": len(result.scenario_ids()),
        "hits": len(result.hits),
        "hits_by_source": by_source,
        "scenarios_without_map": len(result.scenarios_without_map),
    }
    stem = f"event_sets/{ctx.job_id}"
    hits_obj = ctx.lake.put_derived(
        region, "dataset", f"{stem}.hits.parquet", hits_table(result), derived_from=snap
    )
    sum_obj = ctx.lake.put_derived(
        region, "aggregate", f"{stem}.summary.json", json.dumps(summary).encode(), derived_from=snap
    )
    object_id = ctx.register_object(
        OBJECT_TYPE,
        params["name"],
        region,
        parts={
            "summary": {"kind": "aggregate", "object": sum_obj},
            "hits": {"kind": "dataset", "object": hits_obj},
        },
        meta={
            k: summary[k]
            for k in ("expression", "description", "lake_version", "hits", "scenarios_with_hits")
        },
    )
    ctx.log(
        f"{result.expression}: {len(result.hits)} hits in {summary['scenarios_with_hits']} of "
        f"{result.scenarios_searched} scenarios (lake version {result.lake_version})"
    )
    return {"object_id": object_id, **summary}
