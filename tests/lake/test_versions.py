"""Lake versions: history, time travel through the library and SQL, and what a read records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import lake_synth
import pytest

from datadrive.errors import LakeError, SchemaVersionError
from datadrive.lake import IngestOptions
from datadrive.lake.schema import INGESTS, SCHEMA_VERSION_KEY, TRACKS
from datadrive.lake.tables import COMMIT_KEY, RegionStore, commit_record


@pytest.fixture
def versioned(make_lake, inputs):
    """A lake with three versions after creation: 2, 4 and 6 inputs."""
    lake = make_lake(home="eu-central")
    for i in range(3):
        lake.ingest(inputs(range(2 * i, 2 * i + 2)), "eu-central", registry=lake_synth.REGISTRY)
    return lake


def count(lake, version=None) -> int:
    res = lake.sql("SELECT count(*) AS n FROM scenarios", region="eu-central", version=version)
    return int(res.table.column("n")[0].as_py())


def test_history_lists_every_version(versioned) -> None:
    history = versioned.history("eu-central")
    assert [v.version for v in history] == [3, 2, 1, 0]
    assert [v.operation for v in history] == ["ingest", "ingest", "ingest", "create"]
    assert [v.info.get("inputs") for v in history[:3]] == [2, 2, 2]
    assert history[0].table_versions["scenarios"] > history[1].table_versions["scenarios"]


@pytest.mark.parametrize(("version", "expected"), [(0, 0), (1, 2), (2, 4), (3, 6), (None, 6)])
def test_sql_and_library_read_a_pinned_version(versioned, version, expected) -> None:
    assert count(versioned, version) == expected
    snap = versioned.snapshot("eu-central", version)
    assert len(snap.scenarios()) == expected
    assert snap.version == (3 if version is None else version)


def test_every_table_is_pinned_consistently(versioned) -> None:
    snap = versioned.snapshot("eu-central", 2)
    res = snap.sql(
        "SELECT (SELECT count(DISTINCT scenario_id) FROM tracks) AS t, "
        "(SELECT count(DISTINCT scenario_id) FROM map_features) AS m, "
        "(SELECT count(*) FROM ingests) AS i"
    )
    assert res.table.to_pylist() == [{"t": 4, "m": 4, "i": 4}]


def test_a_version_that_does_not_exist_says_so(versioned) -> None:
    with pytest.raises(LakeError, match=r"no lake version 9 .latest is 3"):
        versioned.snapshot("eu-central", 9)


def test_reads_record_the_version_they_read(versioned) -> None:
    snap = versioned.snapshot("eu-central", 2)
    snap.scenarios()
    obj = versioned.put_derived("eu-central", "aggregate", "counts.json", b"{}", derived_from=snap)
    root = Path(versioned.config.region("eu-central").root.uri)
    provenance = json.loads((root / (obj + ".provenance.json")).read_text())
    assert provenance["derived_from"] == {"region": "eu-central", "lake_version": 2}
    rows = versioned.audit_log("eu-central").to_pylist()
    reads = [r for r in rows if r["action"] == "read" and r["object"] == "scenarios"]
    assert reads[-1]["lake_version"] == 2


def _newer_writer_commits(store: RegionStore, *, bump_table: bool) -> None:
    """What a future datadrive does: change a table under a new schema version, then commit a lake version."""
    from deltalake import CommitProperties, write_deltalake

    versions = dict(store.resolve().table_versions)
    if bump_table:
        store.table(TRACKS).alter.set_table_properties({SCHEMA_VERSION_KEY: "2"}, raise_if_not_exists=False)
        versions["tracks"] += 1
    record = commit_record("ingest", versions, now=datetime.now(UTC))
    record[COMMIT_KEY] = record[COMMIT_KEY].replace('"schema_version": 1', '"schema_version": 2')
    write_deltalake(
        store.uri(INGESTS),
        INGESTS.schema.empty_table(),
        mode="append",
        commit_properties=CommitProperties(record),
    )


@pytest.mark.parametrize("bump_table", [True, False], ids=["table-and-commit", "commit-only"])
def test_a_newer_schema_is_refused_with_a_clear_message(versioned, bump_table) -> None:
    _newer_writer_commits(RegionStore(versioned.config.region("eu-central")), bump_table=bump_table)
    with pytest.raises(
        SchemaVersionError, match=r"schema version 2, but this datadrive .* up to 1: upgrade datadrive"
    ):
        versioned.snapshot("eu-central").scenarios()
    assert len(versioned.snapshot("eu-central", 3).scenarios()) == 6, "older versions still read"


def test_a_newer_commit_log_is_refused_before_anything_is_written(versioned, inputs) -> None:
    store = RegionStore(versioned.config.region("eu-central"))
    store.table(INGESTS).alter.set_table_properties({SCHEMA_VERSION_KEY: "2"}, raise_if_not_exists=False)
    with pytest.raises(SchemaVersionError, match="table ingests has lake schema version 2"):
        versioned.ingest(inputs(range(50, 52)), "eu-central", registry=lake_synth.REGISTRY)
    with pytest.raises(SchemaVersionError):
        versioned.history("eu-central")


def test_optimize_keeps_rows_and_versions(make_lake, inputs) -> None:
    lake = make_lake(home="eu-central")
    lake.ingest(
        inputs(range(6)), "eu-central", registry=lake_synth.REGISTRY, options=IngestOptions(batch_inputs=1)
    )
    before = count(lake)
    stats = lake.optimize("eu-central")
    assert stats["tracks"]["files_removed"] >= 6
    assert count(lake) == before == 6
    assert count(lake, 3) == 3, "time travel to a version before the compaction still works"
    assert lake.history("eu-central")[0].operation == "optimize"
