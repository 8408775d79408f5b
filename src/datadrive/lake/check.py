"""``datadrive lake check``: is a region's lake whole?

Reads every table at the latest lake version (or a given one) and checks
what the commit protocol promises: every table reads; no scenario or
telemetry log appears twice; every scenario has exactly its tracks and map
features; nothing is visible from a batch the ledger does not hold; the
ledger's counts match the rows. Rows that a crashed writer left beyond the
pinned versions are reported as pending clean-up, not as damage: no reader
sees them, and the next commit deletes them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from datadrive.errors import one_line
from datadrive.lake.audit import anchor_problems, version_problems
from datadrive.lake.schema import (
    AUDIT,
    INGESTS,
    MAP_FEATURES,
    SCENARIOS,
    TELEMETRY,
    TRACKS,
    derived_tables,
    lake_tables,
)
from datadrive.lake.tables import RegionStore

__all__ = ["CheckReport", "check_region"]


@dataclass(frozen=True)
class CheckReport:
    """What :func:`check_region` found.

    Attributes:
        region: The region checked.
        version: The lake version checked.
        ok: No problem found.
        problems: One line per problem.
        counts: Rows per table at that version.
        pending: Batches a crashed writer left for the next commit to clean up.
    """

    region: str
    version: int
    ok: bool
    problems: tuple[str, ...]
    counts: dict[str, int] = field(default_factory=dict)
    pending: int = 0


def _keys(t: pa.Table, *cols: str) -> list[tuple[Any, ...]]:
    return list(zip(*(t.column(c).to_pylist() for c in cols), strict=True))


def _audit_problems(store: RegionStore) -> list[str]:
    """The audit log is there and holds every row the lake commits anchored (:mod:`datadrive.lake.audit`)."""
    if not store.exists(AUDIT):
        return ["audit: the audit table is missing (it was deleted)"]
    try:
        rows = store.arrow(AUDIT).to_table(columns=["seq", "row_hash", "lake_version"])
    except Exception as exc:
        return [f"audit: the audit table does not read: {one_line(str(exc), 300)}"]
    hashes = dict(zip(rows.column("seq").to_pylist(), rows.column("row_hash").to_pylist(), strict=True))
    newest = max((v for v in rows.column("lake_version").to_pylist() if v is not None), default=-1)
    return [f"audit: {p}" for p in anchor_problems(store, hashes) + version_problems(store, newest)]


def check_region(store: RegionStore, version: int | None = None) -> CheckReport:
    """Check one region (see the module docstring). Reads everything: a maintenance tool."""
    problems: list[str] = []
    lv = store.resolve(version)
    tables: dict[str, pa.Table] = {}
    for spec in (SCENARIOS, TRACKS, MAP_FEATURES, TELEMETRY):
        try:
            tables[spec.name] = store.dataset(spec, lv.table_versions[spec.name]).to_table()
        except Exception as exc:
            problems.append(f"{spec.name} v{lv.table_versions[spec.name]} does not read: {exc}")
    try:
        tables[INGESTS.name] = store.arrow(INGESTS, lv.version).to_table()
    except Exception as exc:
        problems.append(f"ingests v{lv.version} does not read: {exc}")
    pending = len(store.list_files(store.root.meta_path("pending")))
    if problems:
        return CheckReport(store.region.name, lv.version, False, tuple(problems), pending=pending)

    scen, tracks, maps, tel, ledger = (
        tables[n] for n in ("scenarios", "tracks", "map_features", "telemetry", "ingests")
    )
    batches = set(ledger.column("batch_id").to_pylist())
    for name, t in tables.items():
        if name == "ingests":
            continue
        stray = set(t.column("batch_id").to_pylist()) - batches
        if stray:
            problems.append(f"{name}: rows of {len(stray)} batch(es) the ledger does not hold are visible")

    skey = _keys(scen, "tenant", "source", "scenario_id")
    dup = [k for k, n in Counter(skey).items() if n > 1]
    if dup:
        problems.append(f"scenarios: {len(dup)} scenario(s) appear more than once, e.g. {dup[0]}")
    logs = tel.filter(pc.equal(tel.column("row_kind"), "log"))
    tkey = _keys(logs, "tenant", "source", "telemetry_id")
    tdup = [k for k, n in Counter(tkey).items() if n > 1]
    if tdup:
        problems.append(f"telemetry: {len(tdup)} log(s) appear more than once, e.g. {tdup[0]}")

    want_tracks = dict(zip(skey, scen.column("num_tracks").to_pylist(), strict=True))
    want_maps = dict(zip(skey, scen.column("num_map_features").to_pylist(), strict=True))
    have_tracks = Counter(_keys(tracks, "tenant", "source", "scenario_id"))
    have_maps = Counter(_keys(maps, "tenant", "source", "scenario_id"))
    for k, n in want_tracks.items():
        if have_tracks.get(k, 0) != n:
            problems.append(f"scenario {k}: {have_tracks.get(k, 0)} track rows, expected {n} (half-written)")
    for k, n in want_maps.items():
        if have_maps.get(k, 0) != (n or 0):
            problems.append(f"scenario {k}: {have_maps.get(k, 0)} map rows, expected {n or 0} (half-written)")
    for k in set(have_tracks) - set(want_tracks):
        problems.append(f"tracks of {k} have no scenario row")
    for k in set(have_maps) - set(want_maps):
        problems.append(f"map features of {k} have no scenario row")
    signal_keys = set(
        _keys(tel.filter(pc.equal(tel.column("row_kind"), "signal")), "tenant", "source", "telemetry_id")
    )
    for k in signal_keys - set(tkey):
        problems.append(f"signals of telemetry {k} have no log row")

    per_input_s = Counter(
        _keys(scen.filter(pc.is_null(scen.column("telemetry_id"))), "tenant", "input_sha256")
    )
    per_input_t = Counter(_keys(logs, "tenant", "input_sha256"))
    lkey = _keys(ledger, "tenant", "input_sha256")
    ldup = [k for k, n in Counter(lkey).items() if n > 1]
    if ldup:
        problems.append(f"ingests: {len(ldup)} input(s) recorded twice, e.g. {ldup[0]}")
    for k, ns, nt in zip(
        lkey,
        ledger.column("num_scenarios").to_pylist(),
        ledger.column("num_telemetry").to_pylist(),
        strict=True,
    ):
        if per_input_s.get(k, 0) != ns or per_input_t.get(k, 0) != nt:
            problems.append(
                f"input {k[1][:12]}: ledger says {ns} scenarios / {nt} telemetry, "
                f"the tables hold {per_input_s.get(k, 0)} / {per_input_t.get(k, 0)}"
            )
    for spec in derived_tables():  # its batches are in commit records, not the ledger; keys must hold
        if spec.name not in lv.table_versions:
            continue
        try:
            rows = store.dataset(spec, lv.table_versions[spec.name]).to_table(
                columns=["tenant", "source", "scenario_id"]
            )
        except Exception as exc:
            problems.append(f"{spec.name} v{lv.table_versions[spec.name]} does not read: {exc}")
            continue
        orphans = set(_keys(rows, "tenant", "source", "scenario_id")) - set(skey)
        if orphans:
            problems.append(f"{spec.name}: rows of {len(orphans)} scenario(s) with no scenario row")
        tables[spec.name] = rows
    problems += _audit_problems(store)
    for spec in lake_tables():
        holes = store.log_holes(spec) if store.exists(spec) else []
        if holes:
            problems.append(
                f"{spec.name}: commit {holes[0]} is missing from its Delta log"
                + (f" (and {len(holes) - 1} more)" if len(holes) > 1 else "")
                + ": a commit file was deleted; restore _delta_log from a backup"
            )
    counts = {name: t.num_rows for name, t in tables.items()}
    return CheckReport(store.region.name, lv.version, not problems, tuple(problems[:50]), counts, pending)
