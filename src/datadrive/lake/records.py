"""Records <-> lake rows: stamping, pseudonymising, publishing coordinates.

:func:`prepare` turns a record an adapter read into the record the lake
stores (region and tenant stamped, identifiers pseudonymised, latitude and
longitude in the region's published datum). :func:`unit_tables` turns the
prepared records of one input into rows of the four data tables, using the
core Arrow form (:func:`datadrive.core.arrow.scenarios_to_arrow`) plus the
lake's columns; :func:`scenarios_from_rows` and :func:`telemetry_from_rows`
invert it exactly.

Notation:
    N: samples of one signal. C: its channels. M: CAN frames.
"""

from __future__ import annotations

import dataclasses
import json
import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datadrive.core.arrow import (
    MAP_FEATURE_SCHEMA,
    SCENARIO_SCHEMA,
    TRACK_SCHEMA,
    ScenarioTables,
    metadata_from_row,
    scenarios_from_arrow,
    scenarios_to_arrow,
)
from datadrive.core.scenario import ObjectType, Scenario, ScenarioMetadata
from datadrive.core.telemetry import CanFrames, Signal, Telemetry
from datadrive.core.typing import NDArrayAny
from datadrive.lake.geo import CoordinatePublisher, Wgs84Publisher
from datadrive.lake.pseudonym import Pseudonymizer
from datadrive.lake.schema import MAP_FEATURES, SCENARIOS, TELEMETRY, TRACKS, TableSpec, conform

__all__ = [
    "BATCH_COLUMNS",
    "UnitTables",
    "mark_origin",
    "origin_of",
    "prepare",
    "scenarios_from_rows",
    "stamp_batch",
    "telemetry_from_rows",
    "unit_tables",
]

Record = Scenario | Telemetry

BATCH_COLUMNS = ("batch_id", "ingest_date", "ingested_at", "ingested_by")
"""Columns set when a batch is committed, not when a record is read."""

_LAT = {"lat", "latitude", "lat_deg"}
_LON = {"lon", "lng", "longitude", "lon_deg"}
_ENU_FRAME = re.compile(r"^enu_wgs84@(-?[0-9.]+),(-?[0-9.]+),(.*)$")
_ALREADY_PUBLISHED = Wgs84Publisher()
"""Publishes nothing (the identity): for records already in the region's datum."""


# --------------------------------------------------------------------------- preparing records


def prepare(
    record: Record, *, region: str, tenant: str, pseudonyms: Pseudonymizer, publisher: CoordinatePublisher
) -> Record:
    """The record as the lake stores it.

    A record that already carries this region was read back from it (its
    coordinates are published in the region's datum): publishing it again
    would shift them twice. A record that already carries this tenant holds
    this tenant's pseudonyms: pseudonymising again would hash them twice.
    Both steps are skipped for such records, so a dataset build can write
    what it read back unchanged (``Lake.ingest_records``).

    Args:
        record: A validated record from an adapter, or read back from the lake.
        region: The region it is ingested into.
        tenant: Its owner.
        pseudonyms: The tenant's pseudonymiser.
        publisher: The region's coordinate publisher (GCJ-02 in China).
    """
    if record.metadata.region == region or origin_of(record) == region:
        publisher = _ALREADY_PUBLISHED  # read back from this region: its coordinates are published already
    if isinstance(record, Scenario):
        s = record if record.metadata.tenant == tenant else pseudonyms.scenario(record)
        return _publish_scenario(_stamp(s, region, tenant), publisher)
    t = record if record.metadata.tenant == tenant else pseudonyms.telemetry(record)
    md = _publish_metadata(dataclasses.replace(t.metadata, region=region, tenant=tenant), publisher)
    ego = None if t.ego is None else _publish_scenario(_stamp(t.ego, region, tenant), publisher)
    signals = tuple(_publish_signal(sig, publisher) for sig in t.signals)
    return dataclasses.replace(t, metadata=md, ego=ego, signals=signals)


# --------------------------------------------------------------------------- where records came from

_ORIGIN: dict[int, tuple[weakref.ref[Any], str]] = {}
"""The data objects of records read from the lake (their arrays, tracks, maps, signals), by identity.

A record's ``metadata.region`` is a field anyone can edit
(``dataclasses.replace(md, region=None)``); the arrays it carries are what
was read, and an edited copy of a record still shares them. So the region
data came from is kept here, keyed by the identity of those objects (arrays
are not hashable) through weak references (nothing is kept alive; an entry
goes with its object), and :func:`origin_of` finds it whatever the
metadata says.
"""


def _remember(obj: Any, region: str) -> None:
    key = id(obj)

    def forget(ref: weakref.ref[Any], key: int = key) -> None:
        entry = _ORIGIN.get(key)
        if entry is not None and entry[0] is ref:
            del _ORIGIN[key]

    try:
        _ORIGIN[key] = (weakref.ref(obj, forget), region)
    except TypeError:  # takes no weak reference (None, a plain tuple): not a data object
        return


def _recall(obj: Any) -> str | None:
    entry = _ORIGIN.get(id(obj))
    return entry[1] if entry is not None and entry[0]() is obj else None


def _data_objects(record: Record) -> list[Any]:
    """The objects of ``record`` that carry its data (shared by every edited copy of it)."""
    if isinstance(record, Scenario):
        t = record.tracks
        return [t, record.timestamps_ns, t.xy_m, t.z_m, t.heading_rad, t.velocity_mps, record.map]
    out: list[Any] = []
    for sig in record.signals:
        out += [sig, sig.timestamps_ns, sig.values]
    return out + ([] if record.ego is None else _data_objects(record.ego))


def mark_origin(records: Sequence[Record], region: str) -> None:
    """Remember that ``records`` were read from ``region`` (see :func:`origin_of`)."""
    for record in records:
        for obj in _data_objects(record):
            _remember(obj, region)


def origin_of(record: Record) -> str | None:
    """The region ``record``'s data was read from in this process, whatever its metadata says.

    Follows numpy views to their base arrays, so a slice of a read array is
    still known. ``None`` for data this process did not read from the lake
    (a record rebuilt from copied arrays is, as far as anyone can tell, new
    data: its metadata's region is then the rule).
    """
    for obj in _data_objects(record):
        while obj is not None:
            found = _recall(obj)
            if found is not None:
                return found
            obj = obj.base if isinstance(obj, np.ndarray) else None
    return None


def _stamp(s: Scenario, region: str, tenant: str) -> Scenario:
    return dataclasses.replace(s, metadata=dataclasses.replace(s.metadata, region=region, tenant=tenant))


def _publish_scenario(s: Scenario, publisher: CoordinatePublisher) -> Scenario:
    md = _publish_metadata(s.metadata, publisher)
    return s if md is s.metadata else dataclasses.replace(s, metadata=md)


def _publish_metadata(md: ScenarioMetadata, publisher: CoordinatePublisher) -> ScenarioMetadata:
    """Convert geodetic origins in the frame name and extras (GCJ-02 regions only)."""
    if publisher.crs == "WGS-84":
        return md
    frame = md.frame
    m = _ENU_FRAME.match(frame)
    if m:
        lat, lon = publisher.publish(np.array([float(m[1])]), np.array([float(m[2])]))
        frame = f"enu_{publisher.crs.lower().replace('-', '')}@{lat[0]:.9f},{lon[0]:.9f},{m[3]}"
    extras = _publish_extras(json.loads(json.dumps(dict(md.extras))), publisher)
    return dataclasses.replace(md, frame=frame, extras=MappingProxyType(extras))


def _publish_extras(obj: Any, publisher: CoordinatePublisher) -> Any:
    if isinstance(obj, list):
        return [_publish_extras(v, publisher) for v in obj]
    if not isinstance(obj, dict):
        return obj
    out = {k: _publish_extras(v, publisher) for k, v in obj.items()}
    for lat_key, lon_key in (("lat_deg", "lon_deg"), ("lat", "lon"), ("latitude", "longitude")):
        lat, lon = out.get(lat_key), out.get(lon_key)
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            plat, plon = publisher.publish(np.array([float(lat)]), np.array([float(lon)]))
            out[lat_key], out[lon_key] = float(plat[0]), float(plon[0])
    origin = out.get("origin_lat_lon")
    if isinstance(origin, list) and len(origin) == 2 and all(isinstance(v, int | float) for v in origin):
        plat, plon = publisher.publish(np.array([float(origin[0])]), np.array([float(origin[1])]))
        out["origin_lat_lon"] = [float(plat[0]), float(plon[0])]
    return out


def geodetic_channels(sig: Signal) -> tuple[int, int] | None:
    """Indices of the latitude and longitude channels of a signal, if it has both."""
    names = [c.lower() for c in sig.channels]
    lat = [i for i, c in enumerate(names) if c in _LAT]
    lon = [i for i, c in enumerate(names) if c in _LON]
    return (lat[0], lon[0]) if lat and lon else None


def _publish_signal(sig: Signal, publisher: CoordinatePublisher) -> Signal:
    idx = geodetic_channels(sig)
    if idx is None or publisher.crs == "WGS-84":
        return sig
    values = np.array(sig.values, dtype=np.float64, copy=True)
    lat, lon = publisher.publish(values[:, idx[0]], values[:, idx[1]])
    values[:, idx[0]], values[:, idx[1]] = lat, lon
    return dataclasses.replace(sig, values=values)


# --------------------------------------------------------------------------- to rows


@dataclass(frozen=True)
class UnitTables:
    """Rows of the data tables for one input (batch columns still null)."""

    scenarios: pa.Table
    tracks: pa.Table
    map_features: pa.Table
    telemetry: pa.Table

    @property
    def nbytes(self) -> int:
        return int(sum(t.nbytes for t in (self.scenarios, self.tracks, self.map_features, self.telemetry)))

    def items(self) -> list[tuple[TableSpec, pa.Table]]:
        return [
            (SCENARIOS, self.scenarios),
            (TRACKS, self.tracks),
            (MAP_FEATURES, self.map_features),
            (TELEMETRY, self.telemetry),
        ]

    @staticmethod
    def concat(parts: Sequence[UnitTables]) -> UnitTables:
        def cat(spec: TableSpec, tables: list[pa.Table]) -> pa.Table:
            return pa.concat_tables(tables) if tables else spec.schema.empty_table()

        return UnitTables(
            cat(SCENARIOS, [p.scenarios for p in parts]),
            cat(TRACKS, [p.tracks for p in parts]),
            cat(MAP_FEATURES, [p.map_features for p in parts]),
            cat(TELEMETRY, [p.telemetry for p in parts]),
        )


def _column(table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    i = table.schema.get_field_index(name)
    field = pa.field(name, values.type)
    return table.set_column(i, field, values) if i >= 0 else table.append_column(field, values)


def _const(n: int, value: Any, type_: pa.DataType) -> pa.Array:
    return pa.array([value] * n, type=type_)


def unit_tables(
    records: Sequence[Record],
    *,
    input_sha256: str,
    key_id: str,
    crs: str,
    batch: Mapping[str, Any] | None = None,
) -> UnitTables:
    """Rows for the prepared records of one input.

    Args:
        records: Prepared records (see :func:`prepare`).
        input_sha256: The input's idempotency hash.
        key_id: Fingerprint of the pseudonymisation key.
        crs: The datum latitude/longitude signals are published in.
        batch: The values of :data:`BATCH_COLUMNS`, when the batch is known
            (as :func:`stamp_batch` would set them; null otherwise).

    Telemetry logs with an ego trajectory add that trajectory to
    ``scenarios``/``tracks`` as a scenario of its own (``telemetry_id`` set).
    """
    scenarios = [r for r in records if isinstance(r, Scenario)]
    telemetry = [r for r in records if isinstance(r, Telemetry)]
    egos = [t.ego for t in telemetry if t.ego is not None]
    ego_of = [t.telemetry_id for t in telemetry if t.ego is not None]
    all_scenarios = scenarios + egos
    core = scenarios_to_arrow(all_scenarios)
    n = len(all_scenarios)
    s = _with_lake(
        SCENARIOS,
        core.scenarios,
        batch,
        {
            **_summary_columns(all_scenarios),
            "input_sha256": _const(n, input_sha256, pa.string()),
            "telemetry_id": pa.array([None] * len(scenarios) + ego_of, type=pa.string()),
            "pseudonym_key_id": _const(n, key_id, pa.string()),
            "map_id": pa.array([_map_id(x) for x in all_scenarios], type=pa.string()),
        },
    )

    tenant_of = {x.scenario_id: x.metadata.tenant for x in all_scenarios}
    source_of = {x.scenario_id: x.source for x in all_scenarios}
    tracks = _with_owner(TRACKS, core.tracks, tenant_of, source_of, batch)
    maps = _with_owner(MAP_FEATURES, core.map_features, tenant_of, source_of, batch)
    tel = _telemetry_rows(telemetry, input_sha256, crs, batch)
    return UnitTables(s, tracks, maps, tel)


def _summary_columns(scenarios: Sequence[Scenario]) -> dict[str, pa.Array]:
    cols: dict[str, list[Any]] = {
        k: []
        for k in (
            "start_time_ns",
            "end_time_ns",
            "duration_s",
            "dt_s",
            "num_tracks",
            "num_steps",
            "num_valid_states",
            "num_vehicles",
            "num_cyclists",
            "num_pedestrians",
            "num_other",
            "ego_track_id",
            "num_map_features",
            "num_map_lanes",
            "xy_sum_m",
        )
    }
    for s in scenarios:
        tr = s.tracks
        counts = np.bincount(tr.object_type, minlength=len(ObjectType))
        cols["start_time_ns"].append(int(s.timestamps_ns[0]))
        cols["end_time_ns"].append(int(s.timestamps_ns[-1]))
        cols["duration_s"].append(float(s.timestamps_ns[-1] - s.timestamps_ns[0]) / 1e9)
        cols["dt_s"].append(s.dt_s)
        cols["num_tracks"].append(tr.num_tracks)
        cols["num_steps"].append(s.num_steps)
        cols["num_valid_states"].append(int(np.count_nonzero(tr.valid)))
        cols["num_vehicles"].append(int(counts[ObjectType.VEHICLE]))
        cols["num_cyclists"].append(int(counts[ObjectType.CYCLIST]))
        cols["num_pedestrians"].append(int(counts[ObjectType.PEDESTRIAN]))
        cols["num_other"].append(int(counts[ObjectType.OTHER]))
        cols["ego_track_id"].append(s.ego_track_id)
        cols["num_map_features"].append(None if s.map is None else s.map.num_features)
        cols["num_map_lanes"].append(None if s.map is None else s.map.num_lanes)
        cols["xy_sum_m"].append(float(tr.xy_m[tr.valid].sum(dtype=np.float64)))
    return {k: pa.array(v, type=SCENARIOS.schema.field(k).type) for k, v in cols.items()}


def _map_id(s: Scenario) -> str | None:
    for key in ("map_id", "map_name", "map_version", "map"):
        value = s.metadata.extras.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)
    return None


def _with_lake(
    spec: TableSpec,
    table: pa.Table,
    batch: Mapping[str, Any] | None = None,
    more: Mapping[str, pa.Array | pa.ChunkedArray] | None = None,
) -> pa.Table:
    """``table`` with the columns in ``more`` and the batch's set (replacing any of those names), conformed.

    The table is assembled once from its columns: setting them one at a time
    built a new table for each (~35 per input, ~1 ms of an input's conversion).
    """
    n = table.num_rows
    columns: dict[str, pa.Array | pa.ChunkedArray] = dict(zip(table.column_names, table.columns, strict=True))
    columns.update(more or {})
    for name, value in (batch or {}).items():
        if name in spec.schema.names:
            columns[name] = _const(n, value, spec.schema.field(name).type)
    out = []
    for f in spec.schema:
        col = columns.get(f.name)
        if col is None:
            col = pa.nulls(n, f.type)
        elif col.type != f.type:
            col = col.cast(f.type)
        out.append(col)
    return pa.Table.from_arrays(out, schema=spec.schema)


def _with_owner(
    spec: TableSpec,
    table: pa.Table,
    tenant_of: Mapping[str, str | None],
    source_of: Mapping[str, str],
    batch: Mapping[str, Any] | None = None,
) -> pa.Table:
    # per row, its scenario's tenant and source: one vectorised lookup, not a Python loop over rows
    keys = list(tenant_of)
    at = pc.index_in(table.column("scenario_id"), value_set=pa.array(keys, type=pa.string()))
    tenants = pa.array([tenant_of[k] for k in keys], type=pa.string())
    sources = pa.array([source_of[k] for k in keys], type=pa.string())
    return _with_lake(spec, table, batch, {"tenant": tenants.take(at), "source": sources.take(at)})


def _list_column(items: Sequence[NDArrayAny | None], value_type: pa.DataType) -> pa.Array:
    """A list column from per-row numpy arrays (``None`` -> null), without a per-value Python loop."""
    lengths = np.asarray([0 if a is None else a.size for a in items], dtype=np.int64)
    offsets = np.zeros(len(items) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    parts = [np.asarray(a).reshape(-1) for a in items if a is not None]
    flat = np.concatenate(parts) if parts else np.zeros(0)
    mask = pa.array(np.asarray([a is None for a in items], dtype=np.bool_))
    return pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()), pa.array(flat, type=value_type), type=pa.list_(value_type), mask=mask
    )


def _telemetry_rows(
    logs: Sequence[Telemetry], input_sha256: str, crs: str, batch: Mapping[str, Any] | None = None
) -> pa.Table:
    rows: list[dict[str, Any]] = []
    for t in logs:
        md, pv = t.metadata, t.metadata.provenance
        common = {
            "telemetry_id": t.telemetry_id,
            "tenant": md.tenant,
            "source": t.source,
            "region": md.region,
            "input_sha256": input_sha256,
            "frame": md.frame,
            "location": md.location,
            "licence": md.licence,
            "source_path": pv.source_path,
            "source_sha256": pv.sha256,
            "adapter": pv.adapter,
            "adapter_version": pv.adapter_version,
            "member": pv.member,
        }
        can = t.can_frames
        rows.append(
            {
                **common,
                "row_kind": "log",
                "signal_index": -1,
                "extras_json": json.dumps(dict(md.extras), allow_nan=False),
                "ego_scenario_id": None if t.ego is None else t.ego.scenario_id,
                "can_timestamps_ns": None if can is None else np.asarray(can.timestamps_ns, np.int64),
                "can_bus": None if can is None else np.asarray(can.bus, np.int16),
                "can_address": None if can is None else np.asarray(can.address, np.int64),
                "can_data": None if can is None else np.ascontiguousarray(can.data, np.uint8).tobytes(),
                "can_length": None if can is None else np.asarray(can.length, np.int16),
            }
        )
        for i, sig in enumerate(t.signals):
            rows.append(
                {
                    **common,
                    "row_kind": "signal",
                    "signal_index": i,
                    "name": sig.name,
                    "unit": sig.unit,
                    "channels": list(sig.channels),
                    "channel_units": list(sig.channel_units),
                    "crs": crs if geodetic_channels(sig) is not None else None,
                    "timestamps_ns": np.asarray(sig.timestamps_ns, np.int64),
                    "values": np.asarray(sig.values, np.float64),
                }
            )
    if not rows:  # most inputs carry no telemetry: the empty table, without a column per field
        return TELEMETRY.schema.empty_table()
    cols: dict[str, pa.Array] = {}
    for f in TELEMETRY.schema:
        values = [r.get(f.name) for r in rows]
        if pa.types.is_list(f.type) and f.name not in ("channels", "channel_units"):
            cols[f.name] = _list_column(values, f.type.value_type)
        else:
            cols[f.name] = pa.array(values, type=f.type)
    return _with_lake(TELEMETRY, pa.table(cols), batch)


def stamp_batch(
    tables: UnitTables, *, batch_id: str, ingest_date: str, ingested_at: datetime, ingested_by: str
) -> UnitTables:
    """``tables`` with the batch columns set (for the tables that have them)."""

    def stamp(spec: TableSpec, t: pa.Table) -> pa.Table:
        n = t.num_rows
        values = {
            "batch_id": batch_id,
            "ingest_date": ingest_date,
            "ingested_at": ingested_at,
            "ingested_by": ingested_by,
        }
        for name, value in values.items():
            if name in spec.schema.names:
                t = _column(t, name, _const(n, value, spec.schema.field(name).type))
        return conform(spec, t)

    return UnitTables(*(stamp(spec, t) for spec, t in tables.items()))


# --------------------------------------------------------------------------- from rows


def scenarios_from_rows(scenarios: pa.Table, tracks: pa.Table, map_features: pa.Table) -> list[Scenario]:
    """Rebuild scenarios from lake rows, in the order of ``scenarios``.

    Rows of several tenants and sources may be mixed; tracks and map features
    are matched on (tenant, source, scenario_id).
    """
    if scenarios.num_rows == 0:
        return []
    scenarios = conform(SCENARIOS, scenarios)
    tracks = conform(TRACKS, tracks)
    map_features = conform(MAP_FEATURES, map_features)
    keys = list(
        zip(
            scenarios.column("tenant").to_pylist(),
            scenarios.column("source").to_pylist(),
            strict=True,
        )
    )
    out: dict[int, Scenario] = {}
    for tenant, source in dict.fromkeys(keys):
        rows = [i for i, k in enumerate(keys) if k == (tenant, source)]
        part = scenarios.take(pa.array(rows, pa.int64()))

        def owned(t: pa.Table, tenant: str | None = tenant, source: str | None = source) -> pa.Table:
            mask = pc.and_(pc.equal(t.column("tenant"), tenant), pc.equal(t.column("source"), source))
            return t.filter(mask)

        core = ScenarioTables(
            scenarios=part.select(SCENARIO_SCHEMA.names),
            tracks=owned(tracks).select(TRACK_SCHEMA.names),
            map_features=owned(map_features).select(MAP_FEATURE_SCHEMA.names),
        )
        for i, s in zip(rows, scenarios_from_arrow(core), strict=True):
            out[i] = s
    return [out[i] for i in range(scenarios.num_rows)]


def telemetry_from_rows(rows: pa.Table, egos: Mapping[tuple[str, str, str], Scenario]) -> list[Telemetry]:
    """Rebuild telemetry logs from lake rows, in order of their ``log`` rows.

    Args:
        rows: Telemetry rows (``log`` and ``signal`` rows of the logs wanted).
        egos: ``(tenant, source, scenario_id)`` -> the logs' ego scenarios.
    """
    rows = conform(TELEMETRY, rows)
    list_columns = [f.name for f in TELEMETRY.schema if pa.types.is_list(f.type) or f.name == "can_data"]
    items = rows.drop_columns(list_columns).to_pylist()
    for i, r in enumerate(items):
        r["_row"] = i
        for name in ("channels", "channel_units"):
            r[name] = rows.column(name)[i].as_py()
    signals: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    logs: list[dict[str, Any]] = []
    for r in items:
        key = (r["tenant"], r["source"], r["telemetry_id"])
        if r["row_kind"] == "log":
            logs.append(r)
        else:
            signals.setdefault(key, []).append(r)
    out: list[Telemetry] = []
    for r in logs:
        key = (r["tenant"], r["source"], r["telemetry_id"])
        sigs = sorted(signals.get(key, []), key=lambda x: x["signal_index"])
        md = metadata_from_row(r)
        can = None
        row = r["_row"]
        if rows.column("can_bus")[row].is_valid:

            def arr(name: str, dtype: type[np.generic], row: int = row) -> NDArrayAny:
                return np.asarray(_list_values(rows, name, row), dtype=dtype)

            bus = arr("can_bus", np.uint8)
            payload = rows.column("can_data")[row].as_py() or b""
            can = CanFrames(
                timestamps_ns=arr("can_timestamps_ns", np.int64),
                bus=bus,
                address=arr("can_address", np.int64),
                data=np.frombuffer(payload, dtype=np.uint8).reshape(bus.shape[0], 8).copy(),
                length=arr("can_length", np.uint8),
            )
        ego = None
        if r["ego_scenario_id"] is not None:
            ego = egos.get((r["tenant"], r["source"], r["ego_scenario_id"]))
        out.append(
            Telemetry(
                telemetry_id=r["telemetry_id"],
                source=r["source"],
                signals=tuple(_signal_from(rows, x) for x in sigs),
                metadata=md,
                can_frames=can,
                ego=ego,
            )
        )
    return out


def _list_values(table: pa.Table, name: str, row: int) -> NDArrayAny:
    """The values of one list cell as numpy, without Python objects per value."""
    cell = table.column(name)[row]
    return np.asarray(cell.values.to_numpy(zero_copy_only=False)) if cell.is_valid else np.zeros(0)


def _signal_from(table: pa.Table, r: Mapping[str, Any]) -> Signal:
    ts = np.asarray(_list_values(table, "timestamps_ns", r["_row"]), dtype=np.int64)
    channels = tuple(r["channels"] or ())
    values = np.asarray(_list_values(table, "values", r["_row"]), dtype=np.float64)
    values = values.reshape(ts.shape[0], len(channels))
    return Signal(
        name=r["name"],
        unit=r["unit"],
        timestamps_ns=ts,
        values=values,
        channels=channels,
        channel_units=tuple(r["channel_units"] or ()),
    )
