"""The lake's tables: names, Arrow schemas, partitioning, schema version.

Every data table is the core Arrow form of :mod:`datadrive.core.arrow` plus
the lake's own columns (tenant, region, batch, ingest date, input hash,
counts). Delta Lake stores no unsigned or fixed-size-list types, so
:func:`conform` casts what a table returns back to the exact schema here.

The tables a lake version pins (:func:`versioned_tables`) are the raw data
tables and the per-scenario tables that higher layers derive
(:data:`DERIVED_TABLES`, declared with :func:`derived_table`): every one of
them follows the commit protocol, time travel and erasure alike (see
``docs/lake.md``, "Adding a per-scenario table").

Schema version: each table records ``datadrive.schema_version`` in its Delta
configuration when it is created. A reader meeting a newer version than
:data:`LAKE_SCHEMA_VERSION` raises :class:`~datadrive.errors.SchemaVersionError`
rather than misreading columns it does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from datadrive.core.arrow import MAP_FEATURE_SCHEMA, SCENARIO_SCHEMA, TRACK_SCHEMA

__all__ = [
    "AUDIT",
    "DATA_TABLES",
    "DERIVED_TABLES",
    "EVENTS",
    "INGESTS",
    "LAKE_SCHEMA_VERSION",
    "MAP_FEATURES",
    "MINING_INDEX",
    "MINING_RESULTS",
    "MINING_STATES",
    "SCENARIOS",
    "SCHEMA_VERSION_KEY",
    "SIM_SCORES",
    "TABLES",
    "TELEMETRY",
    "TRACKS",
    "Clustering",
    "TableSpec",
    "conform",
    "derived_table",
    "derived_tables",
    "lake_tables",
    "table_spec",
    "versioned_tables",
]

LAKE_SCHEMA_VERSION = 1
"""Version of the table layout this datadrive writes and the newest it reads."""

SCHEMA_VERSION_KEY = "datadrive.schema_version"

_TS = pa.timestamp("us", tz="UTC")
_PARTITION = ("tenant", "source", "ingest_date")


@dataclass(frozen=True)
class Clustering:
    """The order ``lake optimize`` gives a per-scenario table's rows across its files (by place).

    Scenarios in the Z-order of the ``cell_m`` grid cell holding their
    rows' mean (``x_column``, ``y_column``), then by key; inside a scenario
    by ``within`` (see :mod:`datadrive.lake.clustering`).
    """

    x_column: str
    y_column: str
    cell_m: float
    within: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSpec:
    """One lake table.

    Attributes:
        name: Folder name under the region root.
        schema: Exact Arrow schema, as written and as :func:`conform` returns.
        partition_by: Hive partition columns.
        stats_columns: Columns Delta keeps min/max statistics for. Only
            non-identifying columns, so the transaction log never holds an
            identifier that erasure must remove.
        description: One line for the table's Delta metadata.
        key_column: The id column erasure matches, with ``source``:
            ``scenario_id`` for per-scenario tables, ``telemetry_id`` for
            telemetry; ``None`` for the ledger and the audit log.
        sql_cache: Whether a reused snapshot keeps the table's narrow
            columns in memory for SQL (tables with one row per scenario or
            input; see :class:`datadrive.lake.sql.SqlSession`).
        wide_columns: Columns left out of that cache besides lists and
            binaries (large text such as ``extras_json``).
        cached_lists: List columns the cache keeps all the same (short
            lists every row has, such as an event's track ids), so the
            queries that select them are answered from memory too.
        row_group_rows: Rows per Parquet row group when the lake writes
            the table (append, erasure rewrite, optimize); ``None``: the
            writer's default (one group per file, up to a million rows).
            Smaller groups let a reader skip more by min/max statistics and
            scan a file in parallel: worth it for big per-state tables.
        clustering: How ``lake optimize`` orders the rows across files
            (:class:`Clustering`); ``None``: it only compacts them.
    """

    name: str
    schema: pa.Schema
    partition_by: tuple[str, ...]
    stats_columns: tuple[str, ...]
    description: str
    key_column: str | None = None
    sql_cache: bool = False
    wide_columns: tuple[str, ...] = ()
    cached_lists: tuple[str, ...] = ()
    row_group_rows: int | None = None
    clustering: Clustering | None = None


def _extend(base: pa.Schema, extra: list[tuple[str, pa.DataType]]) -> pa.Schema:
    names = set(base.names)
    return pa.schema(list(base) + [pa.field(n, t) for n, t in extra if n not in names])


_LAKE_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("tenant", pa.string()),
    ("source", pa.string()),
    ("ingest_date", pa.string()),
    ("batch_id", pa.string()),
]

SCENARIOS = TableSpec(
    name="scenarios",
    schema=_extend(
        SCENARIO_SCHEMA,
        [
            *_LAKE_COLUMNS,
            ("input_sha256", pa.string()),
            ("ingested_at", _TS),
            ("ingested_by", pa.string()),
            ("telemetry_id", pa.string()),
            ("map_id", pa.string()),
            ("start_time_ns", pa.int64()),
            ("end_time_ns", pa.int64()),
            ("duration_s", pa.float64()),
            ("dt_s", pa.float64()),
            ("num_tracks", pa.int32()),
            ("num_steps", pa.int32()),
            ("num_valid_states", pa.int64()),
            ("num_vehicles", pa.int32()),
            ("num_cyclists", pa.int32()),
            ("num_pedestrians", pa.int32()),
            ("num_other", pa.int32()),
            ("ego_track_id", pa.string()),
            ("num_map_features", pa.int32()),
            ("num_map_lanes", pa.int32()),
            ("xy_sum_m", pa.float64()),
            ("pseudonym_key_id", pa.string()),
        ],
    ),
    partition_by=_PARTITION,
    stats_columns=("batch_id", "start_time_ns", "end_time_ns", "num_tracks", "num_steps"),
    description="datadrive: one row per scenario",
    key_column="scenario_id",
    sql_cache=True,
    wide_columns=("extras_json",),
)

TRACKS = TableSpec(
    name="tracks",
    schema=_extend(TRACK_SCHEMA, _LAKE_COLUMNS),
    partition_by=_PARTITION,
    stats_columns=("batch_id", "object_type"),
    description="datadrive: one row per scenario x track, per-step list columns",
    key_column="scenario_id",
)

MAP_FEATURES = TableSpec(
    name="map_features",
    schema=_extend(MAP_FEATURE_SCHEMA, _LAKE_COLUMNS),
    partition_by=_PARTITION,
    stats_columns=("batch_id", "kind"),
    description="datadrive: one row per scenario x map feature",
    key_column="scenario_id",
)

TELEMETRY = TableSpec(
    name="telemetry",
    schema=pa.schema(
        [
            ("telemetry_id", pa.string()),
            *_LAKE_COLUMNS,
            ("region", pa.string()),
            ("input_sha256", pa.string()),
            ("row_kind", pa.string()),  # "log": one per telemetry (metadata, CAN); "signal": one per signal
            ("signal_index", pa.int32()),
            ("name", pa.string()),
            ("unit", pa.string()),
            ("channels", pa.list_(pa.string())),
            ("channel_units", pa.list_(pa.string())),
            ("crs", pa.string()),  # "WGS-84" / "GCJ-02" for signals with latitude/longitude channels
            ("timestamps_ns", pa.list_(pa.int64())),
            ("values", pa.list_(pa.float64())),  # (N, C) row-major
            ("can_timestamps_ns", pa.list_(pa.int64())),
            ("can_bus", pa.list_(pa.int16())),  # Delta has no unsigned types: uint8 widened
            ("can_address", pa.list_(pa.int64())),
            ("can_data", pa.binary()),  # (M, 8) payload bytes, row-major
            ("can_length", pa.list_(pa.int16())),
            ("ego_scenario_id", pa.string()),
            ("frame", pa.string()),
            ("location", pa.string()),
            ("licence", pa.string()),
            ("source_path", pa.string()),
            ("source_sha256", pa.string()),
            ("adapter", pa.string()),
            ("adapter_version", pa.string()),
            ("member", pa.string()),
            ("extras_json", pa.string()),
            ("ingested_at", _TS),
        ]
    ),
    partition_by=_PARTITION,
    stats_columns=("batch_id", "signal_index"),
    description="datadrive: one row per telemetry log and one per signal",
    key_column="telemetry_id",
)

INGESTS = TableSpec(
    name="ingests",
    schema=pa.schema(
        [
            ("tenant", pa.string()),
            ("input_sha256", pa.string()),
            ("input_path", pa.string()),
            ("unit", pa.string()),
            ("adapter", pa.string()),
            ("adapter_version", pa.string()),
            ("num_scenarios", pa.int32()),
            ("num_telemetry", pa.int32()),
            ("batch_id", pa.string()),
            ("region", pa.string()),
            ("ingest_date", pa.string()),
            ("ingested_at", _TS),
            ("ingested_by", pa.string()),
        ]
    ),
    partition_by=("tenant",),
    stats_columns=("batch_id", "ingested_at"),
    description="datadrive: the commit log and idempotency ledger, one row per ingested input",
    sql_cache=True,
)

AUDIT = TableSpec(
    name="audit",
    schema=pa.schema(
        [
            ("seq", pa.int64()),
            ("time", _TS),
            ("who", pa.string()),
            ("tenant", pa.string()),
            ("home_region", pa.string()),
            ("region", pa.string()),
            ("action", pa.string()),
            ("object", pa.string()),
            ("lake_version", pa.int64()),
            ("outcome", pa.string()),
            ("detail", pa.string()),
            ("prev_hash", pa.string()),
            ("row_hash", pa.string()),
        ]
    ),
    partition_by=(),
    stats_columns=("seq", "time"),
    description="datadrive: append-only, hash-chained audit log",
)

DATA_TABLES = (SCENARIOS, TRACKS, MAP_FEATURES, TELEMETRY)
"""Tables that hold raw data, written before the commit log."""

TABLES = {t.name: t for t in (*DATA_TABLES, INGESTS, AUDIT)}
"""The built-in tables by name (:func:`table_spec` also finds derived ones)."""

DERIVED_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("tenant", pa.string()),
    ("source", pa.string()),
    ("scenario_id", pa.string()),
    ("batch_id", pa.string()),
    ("derived_at", _TS),
    ("derived_from_version", pa.int64()),
)
"""Columns every derived per-scenario table starts with (the lake fills the last three)."""


def derived_table(
    name: str,
    columns: Sequence[tuple[str, pa.DataType]],
    *,
    description: str,
    stats_columns: tuple[str, ...] = (),
    row_group_rows: int | None = None,
    sql_cache: bool = False,
    wide_columns: tuple[str, ...] = (),
    cached_lists: tuple[str, ...] = (),
    clustering: Clustering | None = None,
) -> TableSpec:
    """A per-scenario table: :data:`DERIVED_COLUMNS`, then ``columns``, partitioned by tenant and source.

    Args:
        name: Its folder name under the region root (lower-case, unique).
        columns: Its own columns, after the keys.
        description: One line for the table's Delta metadata.
        stats_columns: Non-identifying columns to keep Delta statistics for
            (``batch_id`` always is).
        row_group_rows: Rows per Parquet row group (see :class:`TableSpec`).
        sql_cache: Whether a reused snapshot caches it for SQL (see :class:`TableSpec`).
        wide_columns: Columns that cache leaves out (see :class:`TableSpec`).
        cached_lists: List columns that cache keeps (see :class:`TableSpec`).
        clustering: The order ``lake optimize`` gives its rows (see :class:`TableSpec`).
    """
    own = [pa.field(n, t) for n, t in columns]
    clash = {f.name for f in own} & {n for n, _ in DERIVED_COLUMNS}
    if clash:
        raise ValueError(f"derived table {name}: columns {sorted(clash)} are the lake's")
    return TableSpec(
        name=name,
        schema=pa.schema([pa.field(n, t) for n, t in DERIVED_COLUMNS] + own),
        partition_by=("tenant", "source"),
        stats_columns=("batch_id", *stats_columns),
        description=f"datadrive: {description}",
        key_column="scenario_id",
        sql_cache=sql_cache,
        wide_columns=wide_columns,
        cached_lists=cached_lists,
        row_group_rows=row_group_rows,
        clustering=clustering,
    )


_F32 = pa.float32()

MINING_STATES = derived_table(
    "mining_states",
    [
        ("track_index", pa.int32()),
        ("track_id", pa.string()),
        ("object_type", pa.int8()),
        ("object_type_name", pa.string()),
        ("category", pa.string()),
        ("is_ego", pa.bool_()),
        ("step", pa.int32()),
        ("timestamp_ns", pa.int64()),
        ("x_m", pa.float64()),
        ("y_m", pa.float64()),
        ("z_m", _F32),
        ("heading_rad", _F32),
        ("vx_mps", _F32),
        ("vy_mps", _F32),
        ("speed_mps", _F32),
        ("accel_mps2", _F32),
        ("lat_accel_mps2", _F32),
        ("jerk_mps3", _F32),
        ("yaw_rate_rps", _F32),
        ("lane_id", pa.string()),
        ("lane_lateral_m", _F32),
        ("lane_heading_diff_rad", _F32),
        ("in_drivable_area", pa.bool_()),
        ("in_intersection", pa.bool_()),
        ("in_crosswalk", pa.bool_()),
        ("next_intersection_m", _F32),
        ("next_crosswalk_m", _F32),
        ("next_stop_line_m", _F32),
        ("speed_limit_mps", _F32),
        ("feature_version", pa.string()),
    ],
    description="mining: one row per valid scenario x track x step, kinematics and map context",
    stats_columns=("object_type", "step", "speed_mps", "accel_mps2"),
    row_group_rows=131_072,  # DuckDB's own group size (122,880), rounded: pruning and parallel scans
    # optimize orders it by the place of each scenario (a box query then skips the other places' groups)
    clustering=Clustering("x_m", "y_m", cell_m=256.0, within=("track_index", "step")),
)
"""Mining's per-state index (``datadrive.mining.index``): unknown values are NULL, never NaN."""

EVENTS = derived_table(
    "events",
    [
        ("event_type", pa.string()),
        ("actor_track_id", pa.string()),
        ("track_ids", pa.list_(pa.string())),
        ("start_step", pa.int32()),
        ("end_step", pa.int32()),
        ("start_ns", pa.int64()),
        ("end_ns", pa.int64()),
        ("duration_s", pa.float64()),
        ("severity", pa.float64()),
        ("severity_unit", pa.string()),
        ("ego_involved", pa.bool_()),
        ("details_json", pa.string()),
        ("tagger_version", pa.string()),
    ],
    description="mining: one row per tagged event",
    stats_columns=("start_step", "severity"),
    # a few events per scenario (573k rows at 100k scenarios): a reused snapshot (the service's) answers
    # event pages from memory instead of scanning every file of the table per request
    sql_cache=True,
    wide_columns=("details_json",),
    cached_lists=("track_ids",),
)
"""Tagged events (``datadrive.mining.events``), every tagger version's rows (read the current one)."""

MINING_INDEX = derived_table(
    "mining_index",
    [
        ("feature_version", pa.string()),
        ("tagger_version", pa.string()),
        ("num_states", pa.int64()),
        ("num_events", pa.int32()),
        ("skipped_taggers", pa.list_(pa.string())),
    ],
    description="mining: one row per scenario indexed or tagged, with the versions used",
)
"""Which scenarios mining indexed and tagged, with which versions (its incremental bookkeeping)."""

MINING_RESULTS = derived_table(
    "mining_results",
    [
        ("result_name", pa.string()),
        ("result_version", pa.int32()),
        ("expression", pa.string()),
        ("track_id", pa.string()),
        ("is_ego", pa.bool_()),
        ("interval_index", pa.int32()),
        ("start_ns", pa.int64()),
        ("end_ns", pa.int64()),
        ("first_step", pa.int32()),
        ("last_step", pa.int32()),
        ("related_track_ids", pa.list_(pa.string())),
    ],
    description="mining: named, versioned query results, one row per hit interval",
)
"""Saved query results (``datadrive.mining.store``): erased with their scenarios like the rest."""

SIM_SCORES = derived_table(
    "sim_scores",
    [
        ("run_id", pa.string()),
        ("region", pa.string()),
        ("lake_version", pa.int64()),
        ("policy", pa.string()),
        ("reactive", pa.bool_()),
        ("seed", pa.int64()),
        ("code_version", pa.string()),
        ("metric_version", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("num_steps", pa.int64()),
        ("num_agents", pa.int64()),
        ("nuplan_cls", pa.float64()),
        ("navsim_pdms", pa.float64()),
        ("no_at_fault_collisions", pa.float64()),
        ("drivable_area_compliance", pa.float64()),
        ("driving_direction_compliance", pa.float64()),
        ("ego_is_making_progress", pa.float64()),
        ("ego_progress_ratio", pa.float64()),
        ("ego_progress_m", pa.float64()),
        ("expert_progress_m", pa.float64()),
        ("ttc_within_bound", pa.float64()),
        ("min_ttc_s", pa.float64()),
        ("speed_limit_known", pa.bool_()),
        ("speed_limit_compliance", pa.float64()),
        ("ego_is_comfortable", pa.float64()),
        ("max_against_traffic_m", pa.float64()),
        ("collisions", pa.int64()),
        ("at_fault_collisions", pa.int64()),
        ("at_fault_collisions_vru", pa.int64()),
        ("at_fault_collisions_vehicle", pa.int64()),
        ("at_fault_collisions_object", pa.int64()),
        ("first_at_fault_collision_step", pa.int64()),
        ("drivable_area_violation_steps", pa.int64()),
        ("first_drivable_area_violation_step", pa.int64()),
        ("navsim_nc", pa.float64()),
        ("navsim_dac", pa.float64()),
        ("navsim_ep", pa.float64()),
        ("navsim_ttc", pa.float64()),
        ("navsim_c", pa.float64()),
        ("navsim_windows", pa.int64()),
        ("comfort_checks", pa.string()),
        ("collision_events", pa.string()),
        ("notes", pa.string()),
        ("event_types", pa.string()),
        ("event_types_from", pa.string()),
        ("injected_event_types", pa.string()),
        ("render", pa.string()),
    ],
    description="sim: one row per scenario and closed-loop simulation run, its nuPlan and NAVSIM scores",
    stats_columns=("policy", "nuplan_cls"),
)
"""Closed-loop scores (``datadrive.sim.runner``): nested values (comfort checks, collisions, notes, event
types) as JSON text; ``metric_version`` names the metric definitions, ``run_id`` the run."""

DERIVED_TABLES: tuple[TableSpec, ...] = (MINING_STATES, EVENTS, MINING_INDEX, MINING_RESULTS, SIM_SCORES)
"""Per-scenario tables that higher layers derive from the raw tables (mining's states and events, ...).

Declare one here with :func:`derived_table` and it is created in every
region, pinned by every lake version, readable from snapshots and SQL, and
erased with its scenarios. Write it with ``Lake.append_derived``. The lake
knows their layout only; the layer that owns them computes the rows (it
may import the lake, never the other way round).
"""


def derived_tables() -> tuple[TableSpec, ...]:
    """The derived per-scenario tables (:data:`DERIVED_TABLES`, looked up when called)."""
    return DERIVED_TABLES


def versioned_tables() -> tuple[TableSpec, ...]:
    """Every table a lake version pins: the raw data tables, then the derived ones."""
    return (*DATA_TABLES, *derived_tables())


def lake_tables() -> tuple[TableSpec, ...]:
    """Every table of a region: the versioned ones, the ledger and the audit log."""
    return (*versioned_tables(), INGESTS, AUDIT)


def table_spec(name: str) -> TableSpec | None:
    """The table called ``name`` (built-in or derived), or ``None``."""
    return next((t for t in lake_tables() if t.name == name), None)


def conform(spec: TableSpec, table: pa.Table) -> pa.Table:
    """``table`` with exactly ``spec.schema``: columns in order, types cast back.

    Delta returns ``int8`` for ``uint8``, plain lists for fixed-size lists,
    and partition columns last; this undoes all three.
    """
    if table.schema.equals(spec.schema, check_metadata=True):  # rows just converted often are already
        return table  # the very table the rebuild below would make
    present = {name: i for i, name in enumerate(table.schema.names)}  # one lookup per column, not a scan
    columns = []
    for f in spec.schema:
        i = present.get(f.name)
        col = table.column(i) if i is not None else pa.nulls(table.num_rows, f.type)
        if col.type != f.type:
            col = col.cast(f.type)
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=spec.schema)
