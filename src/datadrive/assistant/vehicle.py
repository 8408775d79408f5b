"""A vehicle's drives, as the assistant sees them: telemetry logs from the lake, on one clock.

A *vehicle* is what the lake's pseudonymised identifiers name: the value of
an identifying ``extras`` key of a telemetry log (``dongle_id``,
``vehicle_id``, ``vin``, ``vehicle_name``, ``host``), or, for a log that names
no vehicle (a Udacity CSV), the log itself: its ``telemetry_id``. A *drive* is
one telemetry log; drives are ordered by their Unix start time where the log
gives one, else by their own timestamps.

Times: every tool works in seconds from the drive's first sample (``t_s``);
the answers also give wall-clock times where the log lets us compute them
(``unix_time_minus_boot_time_s`` for comma2k19's boot clock; Unix ns for
Udacity) in the vehicle's local time: the UTC offset comes from the
configuration, else from the log itself (comma2k19 names its route's local
start time), else UTC, and the answer says which.

Notation:
    N: number of samples of one signal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from datadrive.core.telemetry import Signal, Telemetry
from datadrive.core.typing import NDArrayFloat, NDArrayInt
from datadrive.errors import UnknownVehicleError

if TYPE_CHECKING:
    from datadrive.assistant.ego_events import VehicleEvents
    from datadrive.lake import Snapshot

__all__ = ["VEHICLE_KEYS", "Drive", "VehicleLogs", "list_vehicles", "load_vehicle", "vehicle_of"]

VEHICLE_KEYS = ("vehicle_id", "dongle_id", "vin", "vehicle_name", "host")
"""``extras`` keys that name the vehicle a log came from (pseudonymised in the lake)."""

_ROUTE_START = re.compile(r"^(\d{4})-(\d{2})-(\d{2})--(\d{2})-(\d{2})-(\d{2})$")
_SEGMENT_S = 60.0  # comma2k19 segments are one minute long


def vehicle_of(telemetry_id: str, extras: dict[str, Any]) -> str:
    """The vehicle a log belongs to: an identifying extras value, else the log itself."""
    for key in VEHICLE_KEYS:
        value = extras.get(key)
        if isinstance(value, str) and value:
            return value
    return telemetry_id


@dataclass(frozen=True)
class Drive:
    """One telemetry log of a vehicle, with its clocks.

    Attributes:
        telemetry: The log, as the lake returns it.
        vehicle: The vehicle it belongs to.
        start_ns: First sample time of any signal (the log's own clock).
        end_ns: Last sample time of any signal.
        unix_offset_s: Unix time minus the log's clock, in seconds, or None
            where the log cannot be placed in wall-clock time.
        utc_offset_s: Local time minus UTC, in seconds.
        utc_offset_from: Where ``utc_offset_s`` came from (``"config"``,
            ``"log"`` or ``"none: times are UTC"``).
    """

    telemetry: Telemetry
    vehicle: str
    start_ns: int
    end_ns: int
    unix_offset_s: float | None
    utc_offset_s: float
    utc_offset_from: str

    @property
    def drive_id(self) -> str:
        return self.telemetry.telemetry_id

    @property
    def source(self) -> str:
        return self.telemetry.source

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def signal(self, name: str) -> Signal | None:
        """The signal called ``name``, or None."""
        try:
            return self.telemetry.signal(name)
        except KeyError:
            return None

    def t_s(self, timestamps_ns: NDArrayInt) -> NDArrayFloat:
        """``(N,)`` seconds from the drive's start."""
        out: NDArrayFloat = (timestamps_ns - self.start_ns).astype(np.float64) / 1e9
        return out

    def clock(self, t_s: float) -> datetime | None:
        """Local wall-clock time of ``t_s`` seconds into the drive, or None."""
        if self.unix_offset_s is None:
            return None
        unix = self.start_ns / 1e9 + t_s + self.unix_offset_s
        tz = timezone(timedelta(seconds=self.utc_offset_s))
        return datetime.fromtimestamp(unix, UTC).astimezone(tz)

    def t_of_clock(self, when: datetime) -> float | None:
        """Seconds into the drive of a local wall-clock time (date taken from the drive)."""
        if self.unix_offset_s is None:
            return None
        start = self.clock(0.0)
        assert start is not None
        local = start.replace(hour=when.hour, minute=when.minute, second=when.second, microsecond=0)
        # A time of day near midnight may belong to the next or the previous day of the drive.
        candidates = [local + timedelta(days=d) for d in (-1, 0, 1)]
        best = min(candidates, key=lambda c: abs((c - start).total_seconds() - self.duration_s / 2))
        return (best - start).total_seconds()


@dataclass(frozen=True)
class VehicleLogs:
    """Every drive of one vehicle in one lake snapshot, oldest first.

    Attributes:
        vehicle: The (pseudonymised) vehicle id.
        region: The region the data lives in (and any answer derived from it).
        lake_version: The lake version read.
        drives: The drives, oldest first (none for a vehicle the lake knows
            only by its scenarios).
        events: The mining layer's events of the vehicle's scenarios
            (:func:`~datadrive.assistant.ego_events.load_vehicle_events`), if loaded.
    """

    vehicle: str
    region: str
    lake_version: int
    drives: tuple[Drive, ...]
    events: VehicleEvents | None = None

    def drive(self, which: str | int = "last") -> Drive:
        """``"last"``, ``"first"``, an index (0 = oldest, -1 = newest) or a drive id."""
        if which == "last":
            return self.drives[-1]
        if which == "first":
            return self.drives[0]
        if isinstance(which, int):
            return self.drives[which]
        for d in self.drives:
            if d.drive_id == which:
                return d
        raise UnknownVehicleError(f"vehicle {self.vehicle} has no drive {which!r}")


def _log_rows(snapshot: Snapshot) -> list[dict[str, Any]]:
    import pyarrow.dataset as ds

    rows: list[dict[str, Any]] = snapshot.table(
        "telemetry",
        columns=["telemetry_id", "source", "extras_json"],
        filter=ds.field("row_kind") == "log",
    ).to_pylist()
    for r in rows:
        r["extras"] = json.loads(r["extras_json"] or "{}")
        r["vehicle"] = vehicle_of(r["telemetry_id"], r["extras"])
    return rows


def list_vehicles(snapshot: Snapshot) -> dict[str, list[str]]:
    """Vehicle id -> its telemetry ids, for every vehicle the principal may read. Audited."""
    out: dict[str, list[str]] = {}
    for r in _log_rows(snapshot):
        out.setdefault(r["vehicle"], []).append(r["telemetry_id"])
    return {k: sorted(v) for k, v in sorted(out.items())}


def load_vehicle(snapshot: Snapshot, vehicle: str, *, utc_offset_h: float | None = None) -> VehicleLogs:
    """Every drive of ``vehicle`` in ``snapshot``, and the mining events of its scenarios (audited reads).

    A vehicle the snapshot knows only by its scenarios (no telemetry) comes
    back with no drives and its events
    (:func:`~datadrive.assistant.ego_events.load_vehicle_events`).

    Args:
        snapshot: The lake snapshot to read.
        vehicle: A vehicle id (pseudonymised, as stored) or a telemetry id.
        utc_offset_h: Local time minus UTC in hours, overriding what the logs say.

    Raises:
        UnknownVehicleError: if the snapshot has neither telemetry nor scenarios of that vehicle.
    """
    from datadrive.assistant.ego_events import load_vehicle_events, scenario_vehicles

    rows = _log_rows(snapshot)
    ids = sorted({r["telemetry_id"] for r in rows if vehicle in (r["vehicle"], r["telemetry_id"])})
    if not ids:
        events = load_vehicle_events(snapshot, vehicle)
        if events.scenarios:  # known by its scenarios only (a fleet's logs without telemetry)
            return VehicleLogs(vehicle, snapshot.region, snapshot.version, (), events)
        known = sorted({r["vehicle"] for r in rows} | set(scenario_vehicles(snapshot)))
        shown = ", ".join(known[:8]) + (f" and {len(known) - 8} more" if len(known) > 8 else "")
        raise UnknownVehicleError(
            f"no vehicle {vehicle!r} in region {snapshot.region} at lake version {snapshot.version} "
            f"(vehicles there: {shown or 'none'})"
        )
    logs = snapshot.telemetry(ids=ids)
    found = [_drive(t, vehicle_of(t.telemetry_id, dict(t.metadata.extras)), utc_offset_h) for t in logs]
    drives = [d for d in found if d is not None]
    if not drives:
        raise UnknownVehicleError(f"vehicle {vehicle!r} has telemetry logs without any samples")
    drives.sort(key=lambda d: (d.start_ns / 1e9 + (d.unix_offset_s or 0.0), d.drive_id))
    name = drives[0].vehicle
    return VehicleLogs(
        name, snapshot.region, snapshot.version, tuple(drives), load_vehicle_events(snapshot, name)
    )


def drive_from_telemetry(telemetry: Telemetry, *, utc_offset_h: float | None = None) -> Drive:
    """A :class:`Drive` of one telemetry log read outside the lake (a file, a test).

    Raises:
        UnknownVehicleError: if the log has no samples.
    """
    drive = _drive(
        telemetry, vehicle_of(telemetry.telemetry_id, dict(telemetry.metadata.extras)), utc_offset_h
    )
    if drive is None:
        raise UnknownVehicleError(f"telemetry {telemetry.telemetry_id} has no samples")
    return drive


def _drive(t: Telemetry, vehicle: str, utc_offset_h: float | None) -> Drive | None:
    stamps = [s.timestamps_ns for s in t.signals if s.timestamps_ns.shape[0]]
    if not stamps:
        return None
    start = min(int(s[0]) for s in stamps)
    end = max(int(s[-1]) for s in stamps)
    extras = dict(t.metadata.extras)
    unix_offset = _unix_offset_s(t, extras)
    if utc_offset_h is not None:
        offset_s, offset_from = utc_offset_h * 3600.0, "config"
    else:
        derived = _log_utc_offset_s(extras, start, unix_offset)
        offset_s, offset_from = (derived, "log") if derived is not None else (0.0, "none: times are UTC")
    return Drive(t, vehicle, start, end, unix_offset, offset_s, offset_from)


def _unix_offset_s(t: Telemetry, extras: dict[str, Any]) -> float | None:
    value = extras.get("unix_time_minus_boot_time_s")
    if isinstance(value, int | float) and np.isfinite(value):
        return float(value)
    if "Unix" in str(extras.get("timestamps", "")):
        return 0.0
    return None


def _log_utc_offset_s(extras: dict[str, Any], start_ns: int, unix_offset: float | None) -> float | None:
    """comma2k19: the route's local start time + segment minutes against the Unix time of the segment."""
    match = _ROUTE_START.match(str(extras.get("route_start_local", "")))
    segment = extras.get("segment")
    if match is None or unix_offset is None or not isinstance(segment, int):
        return None
    y, mo, d, h, mi, s = (int(x) for x in match.groups())
    local_naive = datetime(y, mo, d, h, mi, s, tzinfo=UTC) + timedelta(seconds=segment * _SEGMENT_S)
    utc = datetime.fromtimestamp(start_ns / 1e9 + unix_offset, UTC)
    quarter_hours = round((local_naive - utc).total_seconds() / 900.0)
    return quarter_hours * 900.0


def drives_of(telemetry: Sequence[Telemetry], *, utc_offset_h: float | None = None) -> list[Drive]:
    """:class:`Drive` objects of logs read outside the lake, oldest first."""
    drives = [drive_from_telemetry(t, utc_offset_h=utc_offset_h) for t in telemetry]
    return sorted(drives, key=lambda d: (d.start_ns / 1e9 + (d.unix_offset_s or 0.0), d.drive_id))
