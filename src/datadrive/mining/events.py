"""Events: what the taggers find in a scenario, their configuration and the runner.

:func:`tag_scenario` runs every tagger of :data:`EVENT_TYPES` over one
scenario and returns a :class:`TagReport`: the :class:`Event` s found and,
for each tagger that could not run, why (no map, no ego, no speed limits).
Taggers are vectorised over tracks and steps (see
:mod:`datadrive.mining.taggers_motion`, :mod:`datadrive.mining.taggers_lanes`,
:mod:`datadrive.mining.taggers_conflicts`); their thresholds are the frozen
dataclasses below, each default documented with where it comes from.

Plausibility: an acceleration beyond ``max_plausible_mps2`` (12 m/s^2,
about 1.2 g, more than tyres on a dry road can give a road vehicle) is a
tracking artefact (a box that jumps), and an event whose peak exceeds it is
not reported.

Severity: every event carries one number where **larger is more severe**,
in the unit named by ``severity_unit`` (a deceleration in m/s^2, a margin
below a time threshold in s, ...), and its raw measurements in ``details``.

Versioning: :func:`tagger_version` is :data:`TAGGER_VERSION` plus a digest of
the configuration, so tagging with other thresholds counts as another
version and incremental tagging re-tags.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any

from datadrive.core.scenario import Scenario
from datadrive.mining.context import FeatureConfig, ScenarioContext

__all__ = [
    "EVENT_TYPES",
    "TAGGER_VERSION",
    "CrossingConfig",
    "CutInConfig",
    "DenseTrafficConfig",
    "EgoSpeedingConfig",
    "EgoStationaryConfig",
    "Event",
    "EventType",
    "HardAccelerationConfig",
    "HardBrakingConfig",
    "LaneChangeConfig",
    "LateralAccelerationConfig",
    "NearMissConfig",
    "StoppedInLaneConfig",
    "SwerveConfig",
    "TagReport",
    "TaggerConfig",
    "UnprotectedTurnConfig",
    "events_in_window",
    "make_event",
    "tag_scenario",
    "tagger_version",
]

TAGGER_VERSION = "1"
"""Bumped whenever a tagger's logic changes; :func:`tagger_version` adds the config digest."""


@dataclass(frozen=True)
class Event:
    """One tagged event.

    Attributes:
        event_type: A key of :data:`EVENT_TYPES`.
        track_ids: The actor first, then the other tracks involved (the
            vehicle cut in front of, the other party of a near miss, ...).
        start_step: First step (inclusive).
        end_step: Last step (inclusive).
        start_ns: Timestamp of ``start_step``.
        end_ns: Timestamp of ``end_step``.
        severity: Larger is more severe, in ``severity_unit``.
        severity_unit: Unit and meaning of ``severity``.
        ego_involved: Whether the ego is one of ``track_ids``.
        details: Raw measurements (peak values, directions), plain JSON values.
    """

    event_type: str
    track_ids: tuple[str, ...]
    start_step: int
    end_step: int
    start_ns: int
    end_ns: int
    severity: float
    severity_unit: str
    ego_involved: bool
    details: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def actor(self) -> str:
        return self.track_ids[0]

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


@dataclass(frozen=True)
class HardBrakingConfig:
    """Longitudinal deceleration of a vehicle at or beyond ``decel_mps2``.

    Default 3.0 m/s^2: the harsh-braking threshold of the UDRIVE naturalistic
    driving study (Jansen & Wesseling, 2018, "Harsh braking by truck drivers",
    HUMANIST conference) and the comfortable deceleration the Institute of
    Transportation Engineers uses for signal timing (3.0 m/s^2, ~10 ft/s^2).
    """

    decel_mps2: float = 3.0
    min_speed_mps: float = 1.0
    min_duration_s: float = 0.2
    max_plausible_mps2: float = 12.0


@dataclass(frozen=True)
class HardAccelerationConfig:
    """Longitudinal acceleration of a vehicle at or beyond ``accel_mps2``.

    Default 0.35 g = 3.43 m/s^2: the "rapid start" threshold of elevated
    g-force events in the Naturalistic Teenage Driving Study (Simons-Morton
    et al., 2011, American Journal of Public Health 101(12)).
    """

    accel_mps2: float = 3.43
    min_duration_s: float = 0.2
    max_plausible_mps2: float = 12.0


@dataclass(frozen=True)
class LateralAccelerationConfig:
    """Lateral acceleration of a moving vehicle at or beyond ``lat_accel_mps2``.

    Default 3.0 m/s^2: the most UN Regulation No. 79 lets an automated
    lane-keeping function (ACSF category B1) command, i.e. the edge of what
    regulators consider normal driving.
    """

    lat_accel_mps2: float = 3.0
    min_speed_mps: float = 2.0
    min_duration_s: float = 0.2
    max_plausible_mps2: float = 12.0


@dataclass(frozen=True)
class SwerveConfig:
    """A quick lateral excursion: lateral acceleration past ``lat_accel_mps2`` one way, then the other.

    Both peaks within ``window_s`` and the heading back within
    ``max_heading_change_deg`` of where it started (a swerve returns to its
    course; a turn does not). datadrive's own definition, no standard exists;
    defaults chosen so an ordinary lane change (about 1 m/s^2 over 4-6 s;
    Toledo & Zohar, 2007, mean lane-change duration 4.6 s) does not count.
    """

    lat_accel_mps2: float = 2.0
    window_s: float = 2.0
    min_speed_mps: float = 5.0
    max_heading_change_deg: float = 20.0
    max_plausible_mps2: float = 12.0


@dataclass(frozen=True)
class EgoStationaryConfig:
    """The ego below ``max_speed_mps`` for at least ``min_duration_s``.

    0.5 m/s: RefAV's bound for "stationary up to annotation jitter" (its
    ``has_velocity`` docs).
    """

    max_speed_mps: float = 0.5
    min_duration_s: float = 2.0


@dataclass(frozen=True)
class EgoSpeedingConfig:
    """The ego above its lane's speed limit by more than ``tolerance_fraction`` for ``min_duration_s``.

    Runs only where the source gives lane speed limits. The 10 % tolerance is
    a policy choice (enforcement margins vary), not a standard.
    """

    tolerance_fraction: float = 0.10
    min_duration_s: float = 1.0


@dataclass(frozen=True)
class LaneChangeConfig:
    """A vehicle moving from a lane to a neighbouring lane (not through an intersection).

    The event spans the steps around the crossing while the vehicle moves
    sideways toward the new lane faster than ``min_lateral_speed_mps``
    (RefAV's ``changing_lanes`` uses 0.1 m/s), at most ``max_half_duration_s``
    either side (lane changes last 4-6 s; Toledo & Zohar, 2007).
    """

    min_speed_mps: float = 2.0
    min_lateral_speed_mps: float = 0.1
    max_half_duration_s: float = 3.0


@dataclass(frozen=True)
class CutInConfig:
    """A lane change that ends close ahead of a vehicle already in the target lane.

    Close: a gap (rear bumper to front bumper) under ``time_headway_s`` times
    the follower's speed, or under ``min_gap_m``. 2 s is the "two-second
    rule" of driving manuals (e.g. the UK Highway Code, rule 126).
    """

    time_headway_s: float = 2.0
    min_gap_m: float = 10.0
    lateral_tolerance_m: float = 1.0
    look_ahead_s: float = 1.0
    lane_change: LaneChangeConfig = field(default_factory=LaneChangeConfig)


@dataclass(frozen=True)
class NearMissConfig:
    """Two road users close to colliding, by time-to-collision or post-encroachment time.

    TTC: constant-velocity extrapolation of both oriented boxes; a near miss
    when they would overlap within ``ttc_s``. 1.5 s: the critical TTC of
    van der Horst (1990, "A time-based analysis of road user behaviour in
    normal and critical encounters", TU Delft). PET: one box occupies space
    the other occupied (or will) less than ``pet_s`` apart, on crossing paths
    (headings at least ``crossing_angle_deg`` apart). 1 s: the common
    critical PET since Allen, Shin & Cooper (1978, Transportation Research
    Record 667). At least one of the two is a vehicle; for TTC they close
    in on each other at ``min_closing_speed_mps`` or more (a pedestrian
    walking past a parked car is not a conflict). Flags of one pair less
    than ``merge_gap_s`` apart make one event.
    """

    ttc_s: float = 1.5
    pet_s: float = 1.0
    min_speed_mps: float = 1.0
    min_closing_speed_mps: float = 1.0
    merge_gap_s: float = 1.0
    crossing_angle_deg: float = 30.0
    search_radius_m: float = 40.0
    ttc_step_s: float = 0.1


@dataclass(frozen=True)
class CrossingConfig:
    """A pedestrian or cyclist crossing the path just ahead of a vehicle.

    The crosser's centre passes the vehicle's centre line within
    ``forward_m`` of its front bumper, moving sideways faster than
    ``min_lateral_speed_mps``; the event lasts while it is within
    ``lateral_m`` of the centre line. Defaults from RefAV's
    ``being_crossed_by`` (10 m ahead, 0.2 m/s, 5 m). Vehicles count when
    moving (at least ``vehicle_min_speed_mps``) or stopped on a lane.
    """

    forward_m: float = 10.0
    lateral_m: float = 5.0
    min_lateral_speed_mps: float = 0.2
    vehicle_min_speed_mps: float = 0.5


@dataclass(frozen=True)
class StoppedInLaneConfig:
    """A vehicle stopped in a travel lane, not waiting in traffic.

    Stopped (below ``max_speed_mps``, RefAV's jitter bound) for at least
    ``min_duration_s``, on a vehicle or bus lane within ``max_lateral_m`` of
    its centre, more than ``clear_of_junction_m`` before the next
    intersection or stop line and not in one, and not queued: no other slow
    vehicle ahead in the same lane within ``queue_gap_m``.
    """

    max_speed_mps: float = 0.5
    min_duration_s: float = 3.0
    max_lateral_m: float = 1.2
    clear_of_junction_m: float = 15.0
    queue_gap_m: float = 12.0


@dataclass(frozen=True)
class UnprotectedTurnConfig:
    """A turn across opposing traffic at an intersection, with an oncoming vehicle near.

    A turn: heading change of at least ``min_turn_deg`` (RefAV's ``turning``
    uses 45 degrees) through an intersection, toward the far side of the road
    (left where traffic drives on the right). Unprotected: no green arrow
    shown to the turner's lane (when traffic lights are known), and an
    oncoming vehicle (heading at least 135 degrees from the turner's
    approach) reaches the turner's position within ``max_gap_s`` at some
    step of the turn. Severity: how far the smallest such gap falls below
    ``critical_gap_s``, 4.1 s, the base critical headway for a left turn from
    a major street in the Highway Capacity Manual (HCM 2010, ch. 19).
    """

    min_turn_deg: float = 45.0
    max_gap_s: float = 6.0
    critical_gap_s: float = 4.1
    min_oncoming_speed_mps: float = 2.0
    left_hand_traffic: tuple[str, ...] = (
        "singapore",
        "london",
        "united kingdom",
        "hong kong",
        "japan",
        "tokyo",
        "australia",
        "sydney",
        "india",
    )


@dataclass(frozen=True)
class DenseTrafficConfig:
    """Many vehicles around the ego in its direction of travel.

    Density: vehicles on lanes within ``radius_m`` of the ego, pointing
    within 45 degrees of its direction and within ``max_lateral_m`` of their
    lane's centre (a car parked at the kerb is not traffic), per
    lane-kilometre (lanes: the ego's lane and its same-direction neighbours).
    Default 28 veh/km/lane: the density
    at which a basic freeway segment reaches level of service F (45
    pc/mi/ln, Highway Capacity Manual 2010, ch. 11).
    """

    min_density_veh_per_km_lane: float = 28.0
    radius_m: float = 50.0
    min_duration_s: float = 2.0
    max_lateral_m: float = 1.2


@dataclass(frozen=True)
class TaggerConfig:
    """Every tagger's thresholds, and the features they use."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    hard_braking: HardBrakingConfig = field(default_factory=HardBrakingConfig)
    hard_acceleration: HardAccelerationConfig = field(default_factory=HardAccelerationConfig)
    high_lateral_acceleration: LateralAccelerationConfig = field(default_factory=LateralAccelerationConfig)
    swerve: SwerveConfig = field(default_factory=SwerveConfig)
    ego_stationary: EgoStationaryConfig = field(default_factory=EgoStationaryConfig)
    ego_speeding: EgoSpeedingConfig = field(default_factory=EgoSpeedingConfig)
    lane_change: LaneChangeConfig = field(default_factory=LaneChangeConfig)
    cut_in: CutInConfig = field(default_factory=CutInConfig)
    near_miss: NearMissConfig = field(default_factory=NearMissConfig)
    crossing: CrossingConfig = field(default_factory=CrossingConfig)
    stopped_in_lane: StoppedInLaneConfig = field(default_factory=StoppedInLaneConfig)
    unprotected_turn: UnprotectedTurnConfig = field(default_factory=UnprotectedTurnConfig)
    dense_traffic: DenseTrafficConfig = field(default_factory=DenseTrafficConfig)


Tagger = Callable[[ScenarioContext, Any], list[Event]]


def make_event(
    ctx: ScenarioContext,
    event_type: str,
    tracks: Iterable[int],
    first: int,
    last: int,
    severity: float,
    **details: Any,
) -> Event:
    """An :class:`Event` of ``ctx``'s scenario from track rows and a step range (taggers' helper)."""
    rows = [int(r) for r in tracks]
    ids = tuple(str(ctx.tracks.track_ids[r]) for r in rows)
    plain = {k: (round(float(v), 4) if isinstance(v, float) else v) for k, v in details.items()}
    return Event(
        event_type=event_type,
        track_ids=ids,
        start_step=int(first),
        end_step=int(last),
        start_ns=int(ctx.timestamps_ns[first]),
        end_ns=int(ctx.timestamps_ns[last]),
        severity=round(float(severity), 4),
        severity_unit=EVENT_TYPES[event_type].severity_unit,
        ego_involved=ctx.ego_index is not None and ctx.ego_index in rows,
        details=MappingProxyType(plain),
    )


@dataclass(frozen=True)
class EventType:
    """One kind of event and its tagger.

    Attributes:
        name: The ``event_type`` value.
        description: One line for users.
        needs: What the scenario must have: ``"map"`` (lanes), ``"ego"``, ``"speed_limits"``.
        severity_unit: Unit of :attr:`Event.severity`.
        tagger: The function ``(context, config) -> events``.
    """

    name: str
    description: str
    needs: frozenset[str]
    severity_unit: str
    tagger: Tagger


def _registry() -> dict[str, EventType]:
    from datadrive.mining import taggers_conflicts as tc
    from datadrive.mining import taggers_lanes as tl
    from datadrive.mining import taggers_motion as tm

    rows = [
        ("hard_braking", "a vehicle decelerating hard", (), "m/s^2 (peak deceleration)", tm.hard_braking),
        ("hard_acceleration", "a vehicle accelerating hard", (), "m/s^2 (peak)", tm.hard_acceleration),
        (
            "high_lateral_acceleration",
            "a vehicle cornering hard",
            (),
            "m/s^2 (peak |lateral|)",
            tm.high_lateral_acceleration,
        ),
        ("swerve", "a vehicle swerving and back", (), "m/s^2 (peak-to-peak lateral)", tm.swerve),
        ("ego_stationary", "the ego standing still", ("ego",), "s (duration)", tm.ego_stationary),
        (
            "ego_speeding",
            "the ego above its lane's speed limit",
            ("ego", "map", "speed_limits"),
            "m/s (peak excess)",
            tm.ego_speeding,
        ),
        ("lane_change", "a vehicle changing lanes", ("map",), "m/s (peak lateral speed)", tl.lane_change),
        (
            "cut_in",
            "a vehicle changing lanes close ahead of another",
            ("map",),
            "s (headway margin)",
            tl.cut_in,
        ),
        (
            "near_miss",
            "two road users close to colliding (TTC or PET)",
            (),
            "s (margin below threshold)",
            tc.near_miss,
        ),
        (
            "vru_crossing",
            "a pedestrian or cyclist crossing just ahead of a vehicle",
            (),
            "m (closeness to the bumper)",
            tc.vru_crossing,
        ),
        (
            "stopped_in_lane",
            "a vehicle stopped in a travel lane, not in a queue",
            ("map",),
            "s (duration)",
            tl.stopped_in_lane,
        ),
        (
            "unprotected_turn",
            "a turn across oncoming traffic",
            ("map",),
            "s (gap below critical headway)",
            tl.unprotected_turn,
        ),
        (
            "dense_traffic",
            "dense traffic around the ego",
            ("ego", "map"),
            "veh/km/lane (peak density)",
            tl.dense_traffic,
        ),
    ]
    out: dict[str, EventType] = {}
    for name, desc, needs, unit, fn in rows:
        tagger: Tagger = fn  # type: ignore[assignment]
        out[str(name)] = EventType(str(name), str(desc), frozenset(needs), str(unit), tagger)
    return out


class _Registry(Mapping[str, EventType]):
    """Built on first use: the tagger modules import this one."""

    _types: dict[str, EventType] | None = None

    def _get(self) -> dict[str, EventType]:
        if self._types is None:
            self._types = _registry()
        return self._types

    def __getitem__(self, key: str) -> EventType:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


EVENT_TYPES: Mapping[str, EventType] = _Registry()
"""Every event type, by name (in the order taggers run)."""


def _config_for(config: TaggerConfig, name: str) -> Any:
    attr = "crossing" if name == "vru_crossing" else name
    return getattr(config, attr)


def tagger_version(config: TaggerConfig | None = None) -> str:
    """``"<TAGGER_VERSION>+<digest of the configuration>"``."""
    cfg = config or TaggerConfig()
    digest = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True, default=str).encode()).hexdigest()
    return f"{TAGGER_VERSION}+{digest[:10]}"


@dataclass(frozen=True)
class TagReport:
    """What tagging one scenario found.

    Attributes:
        scenario_id: The scenario.
        source: Its source.
        tenant: Its tenant (when read from a lake).
        events: Events, ordered by type, then start.
        skipped: Tagger name -> why it did not run.
        tagger_version: :func:`tagger_version` of the configuration used.
    """

    scenario_id: str
    source: str
    tenant: str | None
    events: tuple[Event, ...]
    skipped: Mapping[str, str]
    tagger_version: str

    def of_type(self, event_type: str) -> list[Event]:
        return [e for e in self.events if e.event_type == event_type]


def _missing(ctx: ScenarioContext, needs: frozenset[str]) -> str | None:
    if "ego" in needs and ctx.ego_index is None:
        return "the scenario has no ego track"
    if "map" in needs and not ctx.has_lanes:
        return "the scenario has no map with lanes"
    if "speed_limits" in needs:
        m = ctx.map
        if m is None or not bool((m.lanes.speed_limit_mps > 0).any()):
            return "the map gives no lane speed limits"
    return None


def tag_scenario(
    scenario: Scenario,
    config: TaggerConfig | None = None,
    *,
    event_types: Iterable[str] | None = None,
    context: ScenarioContext | None = None,
) -> TagReport:
    """Run the taggers over one scenario.

    Args:
        scenario: A validated scenario (any source; no map, one track or no
            valid state are fine: taggers that need what is missing are
            skipped and say why).
        config: Thresholds (defaults documented on each config class).
        event_types: Only these taggers (default: all of :data:`EVENT_TYPES`).
        context: A :class:`ScenarioContext` of ``scenario`` to reuse.

    Returns:
        A :class:`TagReport`.

    Raises:
        KeyError: for an unknown event type (the message lists the known ones).
    """
    cfg = config or TaggerConfig()
    ctx = context or ScenarioContext(scenario, cfg.features)
    names = list(EVENT_TYPES) if event_types is None else list(event_types)
    unknown = [n for n in names if n not in EVENT_TYPES]
    if unknown:
        raise KeyError(f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}")
    events: list[Event] = []
    skipped: dict[str, str] = {}
    for name in names:
        et = EVENT_TYPES[name]
        why = _missing(ctx, et.needs)
        if why is not None:
            skipped[name] = why
            continue
        if ctx.num_tracks == 0 or not ctx.valid.any():
            continue
        found = et.tagger(ctx, _config_for(cfg, name))
        events.extend(sorted(found, key=lambda e: (e.start_ns, e.track_ids)))
    return TagReport(
        scenario_id=scenario.scenario_id,
        source=scenario.source,
        tenant=scenario.metadata.tenant,
        events=tuple(events),
        skipped=MappingProxyType(skipped),
        tagger_version=tagger_version(cfg),
    )


def events_in_window(
    events: Iterable[Event],
    start_ns: int,
    end_ns: int,
    *,
    ego_only: bool = False,
    event_types: Iterable[str] | None = None,
) -> list[Event]:
    """Events that overlap ``[start_ns, end_ns]`` (the assistant's "what happened in the last minute").

    Args:
        events: Events of one scenario (a :class:`TagReport`'s, or read from the lake).
        start_ns: Window start.
        end_ns: Window end (inclusive).
        ego_only: Only events the ego is involved in.
        event_types: Only these types.

    Returns:
        The events, ordered by start time.
    """
    types = None if event_types is None else set(event_types)
    out = [
        e
        for e in events
        if e.start_ns <= end_ns
        and e.end_ns >= start_ns
        and (not ego_only or e.ego_involved)
        and (types is None or e.event_type in types)
    ]
    return sorted(out, key=lambda e: (e.start_ns, e.event_type))
