"""What other layers call: tag a lake region, pick scenarios by a query and/or events.

Two entry points for the layers above mining (dataset curation, training,
evaluation, the demo loop, the service):

* :func:`tag_lake` brings a region's mining tables (``mining_states``,
  ``events``, ``mining_index``) up to date with its latest lake version:
  only the scenarios not yet indexed with the current feature version or
  not yet tagged with the current tagger version are computed.
* :func:`select_scenarios` picks the scenarios of a pinned snapshot that
  match an expression of the query language (or a plain-English
  description's translation), that have events of given types, or both,
  and returns them with the provenance a dataset manifest records (lake
  version, expression, tagger version) and every scenario's current event
  types (for balancing a dataset by event type). ``selection.sql()`` is a
  ``SELECT tenant, source, scenario_id`` over the same snapshot that returns
  exactly those scenarios, for code that selects by SQL
  (``datadrive.curate.create_dataset``).

>>> report = tag_lake(lake, "eu-central")                             # doctest: +SKIP
>>> snap = lake.snapshot("eu-central")                                # doctest: +SKIP
>>> pick = select_scenarios(snap, expression="ego and turning(left)",
...                         events=["hard_braking"])                  # doctest: +SKIP
>>> pick.keys, pick.events_by_scenario, pick.sql()                    # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow.dataset as ds

from datadrive.compute import Engine
from datadrive.errors import MiningError
from datadrive.mining.api import Key, mine_snapshot, scenario_keys
from datadrive.mining.context import FeatureConfig
from datadrive.mining.events import EVENT_TYPES, TaggerConfig, tagger_version
from datadrive.mining.index import IndexReport, index_region, pending_keys
from datadrive.mining.query import Expr
from datadrive.mining.vocabulary import Bound, compile_query

__all__ = ["ScenarioSelection", "scenario_events", "select_scenarios", "tag_lake"]


def tag_lake(
    lake: Any,
    region: str,
    *,
    engine: Engine | None = None,
    features: FeatureConfig | None = None,
    taggers: TaggerConfig | None = None,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> IndexReport:
    """Index and tag every scenario of ``region`` that is not yet current; one lake version per batch.

    The same as :func:`datadrive.mining.index.index_region` (and ``datadrive
    index``): incremental, on any compute engine, residency and tenants as
    for any write of the principal the lake was opened as. Running it again
    with nothing new does nothing.

    Args:
        lake: A :class:`~datadrive.lake.Lake`.
        region: The region to bring up to date.
        engine: Where features and events are computed (inline by default;
            a process pool or Ray engine for a fleet).
        features: Feature parameters.
        taggers: Tagger thresholds (their digest is the tagger version).
        batch_size: Scenarios per unit of work and per lake commit.
        progress: Called with (scenarios done, scenarios to do).

    Returns:
        What was done (:class:`~datadrive.mining.index.IndexReport`); its
        ``failures`` lists batches that failed (nothing of theirs was written).
    """
    return index_region(
        lake,
        region,
        engine=engine,
        features=features,
        taggers=taggers,
        batch_size=batch_size,
        progress=progress,
    )


def _check_event_types(names: Sequence[str]) -> tuple[str, ...]:
    unknown = [n for n in names if n not in EVENT_TYPES]
    if unknown:
        raise MiningError(
            f"unknown event type{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(EVENT_TYPES)}"
        )
    return tuple(dict.fromkeys(names))


def scenario_events(
    snapshot: Any,
    *,
    taggers: TaggerConfig | None = None,
    ego_only: bool = False,
    require_current: bool = True,
) -> dict[Key, tuple[str, ...]]:
    """Every scenario of the snapshot that has events -> its event types (current tagger version), sorted.

    Args:
        snapshot: A pinned :class:`~datadrive.lake.Snapshot`.
        taggers: The tagger configuration whose version is read.
        ego_only: Only events the ego takes part in.
        require_current: Refuse when some scenario of the snapshot is not
            tagged with that version (an absent event would be a lie).

    Raises:
        MiningError: some scenarios are not tagged yet (run ``datadrive index`` / :func:`tag_lake`).
    """
    version = tagger_version(taggers)
    if require_current:
        _, _, untagged = pending_keys(snapshot, taggers)
        if untagged:
            raise MiningError(
                f"{len(untagged):,} scenario{'s' if len(untagged) > 1 else ''} of region "
                f"{snapshot.region} at lake version {snapshot.version} "
                f"{'are' if len(untagged) > 1 else 'is'} not tagged with tagger version {version}: "
                "run `datadrive index` (or datadrive.mining.tag_lake) first"
            )
    flt = ds.field("tagger_version") == version
    if ego_only:
        flt = flt & (ds.field("ego_involved") == True)  # noqa: E712  (an Arrow expression)
    t = snapshot.table("events", columns=["tenant", "source", "scenario_id", "event_type"], filter=flt)
    out: dict[Key, set[str]] = {}
    for tenant, source, sid, kind in zip(
        *(t.column(c).to_pylist() for c in ("tenant", "source", "scenario_id", "event_type")), strict=True
    ):
        out.setdefault((tenant, source, sid), set()).add(str(kind))
    return {k: tuple(sorted(out[k])) for k in sorted(out, key=lambda k: (k[0] or "", k[1], k[2]))}


def _sql_literal(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class ScenarioSelection:
    """Scenarios picked by :func:`select_scenarios`, with what picked them.

    Attributes:
        region: The snapshot's region.
        lake_version: The snapshot's lake version (the selection holds there).
        keys: ``(tenant, source, scenario_id)`` of every selected scenario, sorted.
        expression: The bound expression's text, or ``None``.
        description: The plain-English description it came from, or ``None``.
        event_types: The event types asked for (a scenario needs one of them).
        tagger_version: The tagger version the events were read at, or ``None``.
        events_by_scenario: Every selected scenario -> its event types
            (current tagger version; only the ego's with ``ego_events_only``),
            for balancing; an empty tuple when it has none. Filled when events were asked for or
            ``with_events=True``.
        hits: Hits of the expression (track, intervals) in the selected scenarios.
    """

    region: str
    lake_version: int
    keys: tuple[Key, ...]
    expression: str | None = None
    description: str | None = None
    event_types: tuple[str, ...] = ()
    tagger_version: str | None = None
    events_by_scenario: Mapping[Key, tuple[str, ...]] = field(default_factory=dict)
    hits: int = 0

    def __len__(self) -> int:
        return len(self.keys)

    def scenario_ids(self) -> list[str]:
        """The selected scenario ids (sorted, unique)."""
        return sorted({k[2] for k in self.keys})

    def sql(self) -> str:
        """A ``SELECT tenant, source, scenario_id FROM scenarios ...`` returning exactly :attr:`keys`.

        Run on a snapshot of the same region and version, it reproduces the
        selection (telemetry rows excluded); with no keys it returns no row.
        """
        if not self.keys:
            return "SELECT tenant, source, scenario_id FROM scenarios WHERE false"
        lit = _sql_literal
        rows = ", ".join(f"({lit(t)}, {lit(s)}, {lit(i)})" for t, s, i in self.keys)
        return (
            "SELECT s.tenant, s.source, s.scenario_id FROM scenarios s "
            f"JOIN (VALUES {rows}) AS picked(tenant, source, scenario_id) "
            "ON s.tenant IS NOT DISTINCT FROM picked.tenant AND s.source = picked.source "
            "AND s.scenario_id = picked.scenario_id WHERE s.telemetry_id IS NULL "
            "ORDER BY s.tenant, s.source, s.scenario_id"
        )

    def as_json(self) -> dict[str, Any]:
        """What a dataset manifest records about the selection (not the keys)."""
        return {
            "region": self.region,
            "lake_version": self.lake_version,
            "expression": self.expression,
            "description": self.description,
            "event_types": list(self.event_types),
            "tagger_version": self.tagger_version,
            "scenarios": len(self.keys),
            "hits": self.hits,
        }


def select_scenarios(
    snapshot: Any,
    *,
    expression: str | Expr | Bound | None = None,
    description: str | None = None,
    events: Sequence[str] | None = None,
    ego_events_only: bool = False,
    sources: Sequence[str] | None = None,
    with_events: bool = False,
    taggers: TaggerConfig | None = None,
    features: FeatureConfig | None = None,
    allow_full_scan: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ScenarioSelection:
    """The scenarios of ``snapshot`` matching ``expression`` (or ``description``) with one of ``events``.

    With both an expression and events, a scenario must satisfy both. With
    neither, every scenario is selected (a full selection, e.g. to balance a
    whole region by event type).

    Args:
        snapshot: A pinned :class:`~datadrive.lake.Snapshot` (tenant filter,
            residency and audit apply).
        expression: Query-language text or a built expression.
        description: Plain English, translated offline by
            :func:`datadrive.mining.describe` (give this or ``expression``).
        events: Event types (keys of :data:`~datadrive.mining.EVENT_TYPES`);
            a scenario needs at least one of them (current tagger version).
        ego_events_only: Count only events the ego takes part in.
        sources: Only these sources.
        with_events: Fill :attr:`ScenarioSelection.events_by_scenario` even
            when no event type was asked for.
        taggers: The tagger configuration whose events are read.
        features: Feature parameters for evaluating the expression.
        allow_full_scan: Confirm an expression with no per-state condition
            over more than :data:`~datadrive.mining.FULL_SCAN_LIMIT` scenarios.
        progress: Called with (done, total) while the expression runs.

    Raises:
        QueryError: the expression does not parse or bind (nothing is read).
        DescriptionError: the description has words no rule places.
        MiningError: an unknown event type, both an expression and a
            description, events asked for while some scenario is not tagged
            yet, or an unconfirmed large scan.
    """
    if expression is not None and description is not None:
        raise MiningError("give an expression or a description, not both")
    wanted = _check_event_types(events) if events else ()
    bound: Bound | None = None
    if description is not None:
        from datadrive.mining.describe import describe

        bound = compile_query(describe(description).expression)
    elif expression is not None:
        bound = expression if isinstance(expression, Bound) else compile_query(expression)
    version = tagger_version(taggers) if (wanted or with_events) else None
    by_scenario: dict[Key, tuple[str, ...]] = {}
    if wanted or with_events:
        by_scenario = scenario_events(snapshot, taggers=taggers, ego_only=ego_events_only)
    every = scenario_keys(snapshot, sources=sources)
    keys: list[Key] = every
    if wanted:
        want = set(wanted)
        keys = [k for k in keys if want.intersection(by_scenario.get(k, ()))]
    hits = 0
    if bound is not None:
        run = mine_snapshot(
            snapshot,
            bound,
            sources=sources,
            candidates=keys if wanted else None,
            description=description,
            allow_full_scan=allow_full_scan,
            features=features,
            progress=progress,
        )
        matched = set(run.result.scenario_keys())
        keys = [k for k in keys if k in matched]
        hits = len(run.result.hits)
    events_of = {k: by_scenario.get(k, ()) for k in keys} if (wanted or with_events) else {}
    return ScenarioSelection(
        region=snapshot.region,
        lake_version=snapshot.version,
        keys=tuple(_sorted_keys_list(keys)),
        expression=None if bound is None else bound.text,
        description=description,
        event_types=wanted,
        tagger_version=version,
        events_by_scenario=events_of,
        hits=hits,
    )


def _sorted_keys_list(keys: Sequence[Key]) -> list[Key]:
    return sorted(keys, key=lambda k: (k[0] or "", k[1], k[2]))
