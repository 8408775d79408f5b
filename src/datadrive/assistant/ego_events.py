"""The vehicle's own driving events, as the mining layer tagged them in the lake.

Car Genius answers "did anyone cut in on me?", "any near misses?", "did I
brake hard?" (for a vehicle known by its scenarios) from the mining layer's
``events`` table, never from its own guesses:

* **the vehicle's scenarios**: every scenario of the snapshot whose metadata
  names the vehicle under an identifying ``extras`` key
  (:data:`~datadrive.assistant.vehicle.VEHICLE_KEYS`: nuPlan's
  ``vehicle_name``, Lyft's ``host``, a fleet's ``vehicle_id``...), or whose
  id is the one asked about. The ego trajectories of telemetry logs are not
  among them: the mining layer does not tag those (see
  :func:`datadrive.mining.scenario_keys`), and the answer says so;
* **whether mining has run**: a scenario counts as mined when the
  ``mining_index`` table holds it with the current tagger version
  (:func:`datadrive.mining.tagger_version`); events are never reported as
  absent for a scenario that is not mined: the answer names the scenarios
  still to tag (``datadrive index``);
* **its events**: the ``events`` rows of the current tagger version
  (:func:`datadrive.mining.current_events`) of those scenarios in which the
  ego takes part (``ego_involved``): the ego braking hard, a car cutting in
  ahead of the ego, a near miss with the ego...

Times: an event's window is given in seconds from its scenario's first step
and, where the scenario's clock is Unix time (after 2000-01-01, as AV2,
nuPlan and the synthetic fleet record), as a UTC wall-clock time.

Every read goes through the snapshot (one lake version, audited).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow.dataset as ds

from datadrive.assistant.tools import Evidence, Fact, ToolResult
from datadrive.assistant.vehicle import VehicleLogs, vehicle_of
from datadrive.mining import EVENT_TYPES, current_events, tagger_version

if TYPE_CHECKING:
    from datadrive.lake import Snapshot

__all__ = [
    "EVENT_LABELS",
    "EgoEvent",
    "VehicleEvents",
    "chosen_events",
    "ego_events",
    "load_vehicle_events",
    "render_ego_events",
    "scenario_vehicles",
]

_UNIX_AFTER_NS = 946_684_800 * 10**9  # 2000-01-01: a clock past it is Unix time, not a boot clock

EVENT_LABELS = {
    "hard_braking": "hard braking",
    "hard_acceleration": "hard acceleration",
    "high_lateral_acceleration": "hard cornering",
    "swerve": "swerve",
    "ego_stationary": "standing still",
    "ego_speeding": "speeding",
    "lane_change": "lane change",
    "cut_in": "cut-in",
    "near_miss": "near miss",
    "vru_crossing": "pedestrian or cyclist crossing ahead",
    "stopped_in_lane": "vehicle stopped in the lane",
    "unprotected_turn": "unprotected turn",
    "dense_traffic": "dense traffic",
}
"""How an answer names each of the mining layer's event types."""


@dataclass(frozen=True)
class EgoEvent:
    """One event of the ``events`` table that the vehicle (the ego) takes part in.

    Attributes:
        event_type: A key of :data:`datadrive.mining.EVENT_TYPES`.
        source: The scenario's source.
        scenario_id: The scenario (pseudonymised, as stored).
        t0_s: Start, seconds from the scenario's first step.
        t1_s: End, seconds from the scenario's first step.
        start_utc: The start as a UTC time, where the scenario's clock is Unix time.
        severity: Larger is more severe, in ``severity_unit``.
        severity_unit: The mining layer's unit and meaning of ``severity``.
        track_ids: The actor first, then the other tracks involved.
        steps: Steps the event spans.
        details: The tagger's raw measurements (numbers and words).
    """

    event_type: str
    source: str
    scenario_id: str
    t0_s: float
    t1_s: float
    start_utc: datetime | None
    severity: float
    severity_unit: str
    track_ids: tuple[str, ...]
    steps: int
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return EVENT_LABELS.get(self.event_type, self.event_type.replace("_", " "))


@dataclass(frozen=True)
class VehicleEvents:
    """What the lake's mining tables say about one vehicle's scenarios.

    Attributes:
        vehicle: The (pseudonymised) vehicle id.
        region: The region read.
        lake_version: The lake version read.
        tagger_version: The mining tagger version whose events these are.
        scenarios: ``(source, scenario_id)`` of every scenario of the vehicle.
        untagged: Those the mining layer has not tagged with that version.
        events: The events the ego takes part in, by scenario and time.
    """

    vehicle: str
    region: str
    lake_version: int
    tagger_version: str
    scenarios: tuple[tuple[str, str], ...]
    untagged: tuple[tuple[str, str], ...]
    events: tuple[EgoEvent, ...]


def _scenario_rows(snapshot: Snapshot) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = snapshot.table(
        "scenarios",
        columns=["source", "scenario_id", "extras_json", "start_time_ns"],
        filter=ds.field("telemetry_id").is_null(),
    ).to_pylist()
    for r in rows:
        r["vehicle"] = vehicle_of(r["scenario_id"], json.loads(r["extras_json"] or "{}"))
    return rows


def scenario_vehicles(snapshot: Snapshot) -> dict[str, list[tuple[str, str]]]:
    """Vehicle id -> its ``(source, scenario_id)``, for every scenario the principal may read. Audited."""
    out: dict[str, list[tuple[str, str]]] = {}
    for r in _scenario_rows(snapshot):
        out.setdefault(r["vehicle"], []).append((r["source"], r["scenario_id"]))
    return {k: sorted(v) for k, v in sorted(out.items())}


def _has_table(snapshot: Snapshot, name: str) -> bool:
    try:
        snapshot.table(name, columns=["scenario_id"], filter=ds.field("scenario_id") == "")
    except Exception:  # a region where mining never ran has no such table yet
        return False
    return True


def load_vehicle_events(snapshot: Snapshot, vehicle: str, *, taggers: Any = None) -> VehicleEvents:
    """The mining layer's events of ``vehicle``'s scenarios in ``snapshot`` (see the module doc).

    Args:
        snapshot: The lake snapshot (its version pins what is read).
        vehicle: A vehicle id (pseudonymised, as stored) or a scenario id.
        taggers: The mining tagger configuration whose version is read (default: the defaults').
    """
    version = tagger_version(taggers)
    rows = [r for r in _scenario_rows(snapshot) if vehicle in (r["vehicle"], r["scenario_id"])]
    keys = sorted((r["source"], r["scenario_id"]) for r in rows)
    start_of = {(r["source"], r["scenario_id"]): int(r["start_time_ns"] or 0) for r in rows}
    empty = VehicleEvents(vehicle, snapshot.region, snapshot.version, version, tuple(keys), tuple(keys), ())
    if not keys or not _has_table(snapshot, "mining_index"):
        return empty
    ids = sorted({k[1] for k in keys})
    index = snapshot.table(
        "mining_index",
        columns=["source", "scenario_id", "tagger_version"],
        filter=ds.field("scenario_id").isin(ids) & (ds.field("tagger_version") == version),
    ).to_pylist()
    tagged = {(r["source"], r["scenario_id"]) for r in index}
    untagged = tuple(k for k in keys if k not in tagged)
    rows_ev = (
        current_events(snapshot, taggers=taggers)
        .filter(ds.field("scenario_id").isin(ids) & (ds.field("ego_involved") == True))  # noqa: E712
        .to_pylist()
        if _has_table(snapshot, "events")
        else []
    )
    events = []
    for e in rows_ev:
        key = (e["source"], e["scenario_id"])
        if key not in tagged:
            continue
        s0 = start_of[key]
        start_ns, end_ns = int(e["start_ns"]), int(e["end_ns"])
        events.append(
            EgoEvent(
                event_type=str(e["event_type"]),
                source=key[0],
                scenario_id=key[1],
                t0_s=(start_ns - s0) / 1e9,
                t1_s=(end_ns - s0) / 1e9,
                start_utc=datetime.fromtimestamp(start_ns / 1e9, UTC) if start_ns > _UNIX_AFTER_NS else None,
                severity=float(e["severity"]),
                severity_unit=str(e["severity_unit"]),
                track_ids=tuple(e["track_ids"] or ()),
                steps=int(e["end_step"]) - int(e["start_step"]) + 1,
                details=dict(json.loads(e["details_json"] or "{}")),
            )
        )
    events.sort(key=lambda x: (x.start_utc or datetime.min.replace(tzinfo=UTC), x.scenario_id, x.t0_s))
    return VehicleEvents(
        vehicle, snapshot.region, snapshot.version, version, tuple(keys), untagged, tuple(events)
    )


def _severity_unit(unit: str) -> str:
    """The number check's unit of a mining severity unit (``"m/s^2 (peak ...)"`` -> ``"m/s^2"``)."""
    head = unit.split(" ", 1)[0]
    return head if head in ("m/s^2", "s", "m", "m/s") else ""


def ego_events(events: VehicleEvents | None, kinds: Sequence[str] = ()) -> ToolResult:
    """The vehicle's mined events (all types, or ``kinds``), with their windows and values.

    Facts: ``count``, ``<type>_count`` per type asked (or found), ``scenarios``
    and ``untagged`` (counts). Items: one per event (type, scenario, start,
    end, severity). Evidence: the event, its scenario and window, and the
    tagger's measurements.
    """
    args: dict[str, Any] = {"kinds": list(kinds)}
    unknown = [k for k in kinds if k not in EVENT_TYPES]
    if unknown:
        return ToolResult("ego_events", args, False, message=f"unknown event type {unknown[0]!r}")
    if events is None:
        return ToolResult(
            "ego_events", args, False, message="the vehicle's mined events were not loaded from the lake"
        )
    if not events.scenarios:
        return ToolResult(
            "ego_events",
            args,
            False,
            facts={"scenarios": Fact(0, "count")},
            message=(
                "the lake holds no scenario of this vehicle for the mining layer to tag "
                "(its drives are telemetry logs, whose ego trajectories mining does not tag)"
            ),
        )
    tagged = len(events.scenarios) - len(events.untagged)
    if tagged == 0:
        return ToolResult(
            "ego_events",
            args,
            False,
            facts={"scenarios": Fact(len(events.scenarios), "count"), "untagged": Fact(tagged, "count")},
            message=(
                f"none of this vehicle's scenarios is tagged by the mining layer (tagger version "
                f"{events.tagger_version}) at lake version {events.lake_version}: run `datadrive index` first"
            ),
        )
    chosen = chosen_events(events, kinds)
    facts: dict[str, Fact] = {
        "count": Fact(len(chosen), "count"),
        "scenarios": Fact(len(events.scenarios), "count"),
        "mined_scenarios": Fact(tagged, "count"),
        "untagged": Fact(len(events.untagged), "count"),
    }
    for k in kinds or sorted({e.event_type for e in chosen}):
        facts[f"{k}_count"] = Fact(sum(1 for e in chosen if e.event_type == k), "count")
    items = tuple(
        {
            "type": Fact(e.event_type),
            "scenario": Fact(e.scenario_id),
            "start": Fact(e.t0_s, "s", e.t0_s),
            "end": Fact(e.t1_s, "s", e.t1_s),
            "duration": Fact(e.t1_s - e.t0_s, "s"),
            "severity": Fact(e.severity, _severity_unit(e.severity_unit)),
        }
        for e in chosen
    )
    evidence = tuple(
        Evidence(
            f"mining event {e.event_type} (tagger {events.tagger_version}), tracks "
            f"{', '.join(e.track_ids)}, severity in {e.severity_unit}",
            e.scenario_id,
            e.t0_s,
            e.t1_s,
            e.steps,
            {
                "severity": e.severity,
                **{k: v for k, v in e.details.items() if isinstance(v, int | float | str) and v is not None},
            },
        )
        for e in chosen
    )
    if len(chosen) > _SHOWN:
        facts["shown"] = Fact(_SHOWN, "count")
    return ToolResult("ego_events", args, True, facts, evidence, items=items)


_SHOWN = 10  # events listed in an answer; the count says how many there are


def _number(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:.0f}"


def chosen_events(events: VehicleEvents | None, kinds: Sequence[str]) -> list[EgoEvent]:
    """The events an :func:`ego_events` call with ``kinds`` reports, in its order."""
    return [e for e in (events.events if events is not None else ()) if not kinds or e.event_type in kinds]


def render_ego_events(result: ToolResult, logs: VehicleLogs) -> str:
    """The answer text of an :func:`ego_events` result: counts, then each event with its evidence."""
    who = f"vehicle `{logs.vehicle}`"
    if not result.ok:
        return f"I can't tell that from this vehicle's data: {result.message}."
    kinds = list(result.args.get("kinds") or [])
    count = int(result.fact("count"))
    mined = int(result.fact("mined_scenarios"))
    what = EVENT_LABELS.get(kinds[0], kinds[0]) if len(kinds) == 1 else "driving event"
    scope = f"in its {mined} mined scenario{'s' if mined != 1 else ''}"
    if count == 0:
        text = f"The mining layer found no {what} involving {who} {scope}."
    else:
        plural = "s" if count != 1 and what not in ("speeding", "dense traffic", "hard braking") else ""
        text = f"The mining layer found {count} {what}{plural} involving {who} {scope}"
        by_type = [
            f"{result.fact(k)} {EVENT_LABELS.get(k[: -len('_count')], k)}"
            for k in sorted(result.facts)
            if k.endswith("_count") and result.fact(k)
        ]
        text += (f" ({', '.join(by_type)})" if len(by_type) > 1 else "") + ":"
    lines = []
    for e in chosen_events(logs.events, kinds)[:_SHOWN]:
        when = f", at {e.start_utc:%H:%M:%S} UTC on {e.start_utc:%Y-%m-%d}" if e.start_utc is not None else ""
        values = ", ".join(
            f"{k} {_number(float(v))}" if isinstance(v, int | float) else f"{k} {v}"
            for k, v in e.details.items()
            if isinstance(v, int | float | str) and not isinstance(v, bool)
        )
        lines.append(
            f"- {e.label} in scenario `{e.scenario_id}` from {e.t0_s:.1f} s to {e.t1_s:.1f} s{when}: "
            f"{_number(e.severity)} {e.severity_unit}; tracks `{', '.join(e.track_ids)}`"
            + (f"; {values}" if values else "")
        )
    if count > _SHOWN:
        lines.append(f"(the first {_SHOWN} shown)")
    untagged = int(result.fact("untagged"))
    if untagged:
        lines.append(
            f"{untagged} of its scenarios {'are' if untagged > 1 else 'is'} not tagged yet by the mining "
            "layer (run `datadrive index`): their events are not counted."
        )
    return "\n".join([text, *lines])
