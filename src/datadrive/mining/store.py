"""Named, versioned result sets, stored in the region whose scenarios they came from.

A saved :class:`~datadrive.mining.results.ResultSet` is rows of the
``mining_results`` derived table (one per hit interval, keyed by its
scenario): it lives in-region, is pinned by lake versions like every table,
is read through snapshots (tenant filter, residency, audit) and is erased
with its scenarios. Saving the same name again makes the next version; a
dataset build records ``(name, version)`` and the lake version it read.

Alongside the rows, a small JSON artefact (``derived/aggregate/mining-results/<name>/v<N>.json``)
records the expression, the description, the lake version searched and the
counts, so a result set with no hits is recorded too.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from datadrive.errors import MiningError
from datadrive.mining.results import Hit, ResultSet

__all__ = ["list_result_sets", "load_result_set", "save_result_set"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise MiningError(
            f"result set name {name!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def save_result_set(lake: Any, snapshot: Any, result: ResultSet, name: str) -> tuple[str, int, int]:
    """Store ``result`` (computed from ``snapshot``) as the next version of ``name``.

    Returns:
        ``(name, version, lake version holding it)``.

    Raises:
        MiningError: a bad name, or a result computed from another region or lake version.
    """
    _check_name(name)
    if result.region is not None and result.region != snapshot.region:
        raise MiningError(f"result set {name}: computed in {result.region}, not {snapshot.region}")
    if result.lake_version is not None and result.lake_version != snapshot.version:
        raise MiningError(
            f"result set {name}: computed at lake version {result.lake_version}, "
            f"not the snapshot's {snapshot.version}"
        )
    previous = snapshot.table(
        "mining_results", columns=["result_version"], filter=ds.field("result_name") == name
    )
    top = pc.max(previous.column("result_version")).as_py() if previous.num_rows else 0
    version = int(top or 0) + 1
    rows = result.to_arrow()
    n = rows.num_rows
    table = pa.table(
        {
            "tenant": rows.column("tenant"),
            "source": rows.column("source"),
            "scenario_id": rows.column("scenario_id"),
            "result_name": pa.array([name] * n, pa.string()),
            "result_version": pa.array([version] * n, pa.int32()),
            "expression": pa.array([result.expression] * n, pa.string()),
            "track_id": rows.column("track_id"),
            "is_ego": rows.column("is_ego"),
            "interval_index": rows.column("interval_index"),
            "start_ns": rows.column("start_ns"),
            "end_ns": rows.column("end_ns"),
            "first_step": rows.column("first_step"),
            "last_step": rows.column("last_step"),
            "related_track_ids": rows.column("related_track_ids"),
        }
    )
    meta = {
        "name": name,
        "version": version,
        "expression": result.expression,
        "description": result.description,
        "region": snapshot.region,
        "lake_version": snapshot.version,
        "scenarios_searched": result.scenarios_searched,
        "scenarios_with_hits": len(result.scenario_ids()),
        "hits": len(result.hits),
        "scenarios_without_map": len(result.scenarios_without_map),
    }
    lake_version = snapshot.version
    if n:
        lake_version = lake.append_derived(snapshot.region, "mining_results", table, derived_from=snapshot)
    lake.put_derived(
        snapshot.region,
        "aggregate",
        f"mining-results/{name}/v{version}.json",
        json.dumps(meta, indent=2, sort_keys=True).encode(),
        derived_from=snapshot,
    )
    return name, version, int(lake_version)


def load_result_set(snapshot: Any, name: str, version: int | None = None) -> ResultSet:
    """The stored result set ``name`` (its latest version by default), as the snapshot sees it.

    Rows of scenarios erased since, or of tenants the principal may not read,
    are not there.

    Raises:
        MiningError: no such result set (or version) in this snapshot.
    """
    _check_name(name)
    rows = snapshot.table("mining_results", filter=ds.field("result_name") == name)
    if rows.num_rows == 0:
        raise MiningError(
            f"no stored result set {name!r} with hits in region {snapshot.region} @ v{snapshot.version}"
        )
    versions = rows.column("result_version")
    want = int(pc.max(versions).as_py()) if version is None else int(version)
    rows = rows.filter(pc.equal(versions, want))
    if rows.num_rows == 0:
        raise MiningError(f"result set {name!r} has no version {want} with hits here")
    rows = rows.sort_by(
        [
            ("tenant", "ascending"),
            ("source", "ascending"),
            ("scenario_id", "ascending"),
            ("track_id", "ascending"),
            ("interval_index", "ascending"),
        ]
    )
    hits: list[Hit] = []
    grouped: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for r in rows.to_pylist():
        grouped.setdefault((r["tenant"], r["source"], r["scenario_id"], r["track_id"]), []).append(r)
    for (tenant, source, sid, track), items in grouped.items():
        hits.append(
            Hit(
                scenario_id=sid,
                source=source,
                tenant=tenant,
                track_id=track,
                intervals_ns=tuple((int(i["start_ns"]), int(i["end_ns"])) for i in items),
                steps=tuple((int(i["first_step"]), int(i["last_step"])) for i in items),
                related_track_ids=tuple(items[0]["related_track_ids"] or ()),
                is_ego=bool(items[0]["is_ego"]),
            )
        )
    derived_from = int(pc.min(rows.column("derived_from_version")).as_py())
    return ResultSet(
        expression=str(rows.column("expression")[0].as_py()),
        hits=tuple(hits),
        scenarios_searched=len({(h.tenant, h.source, h.scenario_id) for h in hits}),
        region=snapshot.region,
        lake_version=derived_from,
        description=f"{name} v{want}",
    )


def list_result_sets(snapshot: Any) -> pa.Table:
    """One row per stored ``(result_name, result_version)`` with hits: expression, hits, scenarios."""
    rows = snapshot.table(
        "mining_results",
        columns=["result_name", "result_version", "expression", "scenario_id", "derived_from_version"],
    )
    if rows.num_rows == 0:
        return pa.table(
            {
                "result_name": pa.array([], pa.string()),
                "result_version": pa.array([], pa.int32()),
                "expression": pa.array([], pa.string()),
                "hits": pa.array([], pa.int64()),
                "scenarios": pa.array([], pa.int64()),
                "lake_version": pa.array([], pa.int64()),
            }
        )
    grouped = rows.group_by(["result_name", "result_version"]).aggregate(
        [
            ("expression", "min"),
            ("scenario_id", "count"),
            ("scenario_id", "count_distinct"),
            ("derived_from_version", "min"),
        ]
    )
    return pa.table(
        {
            "result_name": grouped.column("result_name"),
            "result_version": grouped.column("result_version"),
            "expression": grouped.column("expression_min"),
            "hits": grouped.column("scenario_id_count"),
            "scenarios": grouped.column("scenario_id_count_distinct"),
            "lake_version": grouped.column("derived_from_version_min"),
        }
    ).sort_by([("result_name", "ascending"), ("result_version", "ascending")])
