"""``lake optimize`` clusters ``mining_states`` by place across files.

The same rows, a new lake version, few row groups per box, and a kill
leaves the lake as it was.

The rows are written as mining writes them (one file per commit, every
commit holding every place), with 32-row groups so a small table has many;
each place holds three scenarios, one from each commit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import lake_synth
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from lake_helpers import two_region_config

from datadrive.lake import Lake, Principal, schema
from datadrive.lake.clustering import CLUSTER_FILE_PREFIX, place_codes
from datadrive.lake.schema import MINING_STATES

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
REGION = "eu-central"
GROUP = 32
PLACES = [(x * 2000.0 + 500.0, y * 2000.0 - 3000.0) for x in range(4) for y in range(4)]
COMMITS = 3
STATES = 40  # 2 tracks x 20 steps per scenario
LAKE_FILLED = ("batch_id", "derived_at", "derived_from_version")


def small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    small = dataclasses.replace(MINING_STATES, row_group_rows=GROUP)
    monkeypatch.setattr(
        schema,
        "DERIVED_TABLES",
        tuple(small if t.name == "mining_states" else t for t in schema.DERIVED_TABLES),
    )


def _rows(keys: list[tuple[str, str, str]], places: list[tuple[float, float]], seed: int) -> pa.Table:
    """40 states per scenario around its place; columns the test does not need are NULL."""
    rng = np.random.default_rng(seed)
    n = len(keys) * STATES
    track = np.tile(np.repeat(np.arange(2, dtype=np.int32), 20), len(keys))
    step = np.tile(np.tile(np.arange(20, dtype=np.int32), 2), len(keys))
    centre = np.repeat(np.array(places), STATES, axis=0)
    cols: dict[str, pa.Array] = {
        "tenant": pa.array([k[0] for k in keys for _ in range(STATES)]),
        "source": pa.array([k[1] for k in keys for _ in range(STATES)]),
        "scenario_id": pa.array([k[2] for k in keys for _ in range(STATES)]),
        "track_index": pa.array(track),
        "track_id": pa.array([f"t{t}" for t in track]),
        "step": pa.array(step),
        "x_m": pa.array(centre[:, 0] + rng.uniform(-40, 40, n)),
        "y_m": pa.array(centre[:, 1] + rng.uniform(-40, 40, n)),
        "speed_mps": pa.array(rng.uniform(0, 30, n).astype(np.float32)),
    }
    fields = [f for f in MINING_STATES.schema if f.name not in LAKE_FILLED]
    return pa.table({f.name: cols.get(f.name, pa.nulls(n, f.type)) for f in fields}, schema=pa.schema(fields))


@pytest.fixture
def placed_lake(make_lake, inputs, monkeypatch) -> Lake:  # type: ignore[no-untyped-def]
    """48 scenarios; ``mining_states`` appended in 3 lake versions of 16 scenarios, one at every place."""
    small_groups(monkeypatch)
    lake = make_lake(home=REGION)
    lake.ingest(inputs(range(1), scenarios=COMMITS * len(PLACES)), REGION, registry=lake_synth.REGISTRY)
    snap = lake.snapshot(REGION)
    scen = snap.table("scenarios", columns=["tenant", "source", "scenario_id"]).sort_by("scenario_id")
    keys = list(zip(*(scen.column(c).to_pylist() for c in ("tenant", "source", "scenario_id")), strict=True))
    assert len(keys) == COMMITS * len(PLACES)
    for c in range(COMMITS):
        chunk = keys[c * len(PLACES) : (c + 1) * len(PLACES)]
        rows = _rows(chunk, PLACES, seed=c)
        lake.append_derived_tables(REGION, {"mining_states": rows}, derived_from=lake.snapshot(REGION))
    return lake


def _states(lake: Lake, version: int | None = None) -> pa.Table:
    t = lake.snapshot(REGION, version).table("mining_states")
    t = t.drop_columns([c for c in ("derived_at",) if c in t.column_names])
    return t.sort_by([(c, "ascending") for c in ("scenario_id", "track_index", "step", "batch_id")])


def _live_files(root: Path) -> list[Path]:
    from deltalake import DeltaTable

    dt = DeltaTable(str(root / REGION / "mining_states"))
    return [Path(u.removeprefix("file://")) for u in dt.file_uris()]


def _box_groups(files: list[Path], box: tuple[float, float, float, float]) -> tuple[int, int, int]:
    """(row groups whose x/y statistics overlap the box, their rows, rows inside the box)."""
    x0, x1, y0, y1 = box
    groups = rows = inside = 0
    for f in files:
        pf = pq.ParquetFile(f)
        names = pf.schema_arrow.names
        ix, iy = names.index("x_m"), names.index("y_m")
        for g in range(pf.metadata.num_row_groups):
            rg = pf.metadata.row_group(g)
            sx, sy = rg.column(ix).statistics, rg.column(iy).statistics
            assert sx is not None
            assert sx.has_min_max
            assert sy is not None
            assert sy.has_min_max
            if sx.max < x0 or sx.min > x1 or sy.max < y0 or sy.min > y1:
                continue
            groups += 1
            rows += rg.num_rows
        t = pf.read(columns=["x_m", "y_m"])
        x, y = t.column("x_m").to_numpy(), t.column("y_m").to_numpy()
        inside += int(((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)).sum())
    return groups, rows, inside


@pytest.mark.parametrize("sort", ["one sort", "buckets"])
def test_optimize_clusters_states_by_place_keeping_rows_versions_and_audit(
    placed_lake, lake_root, monkeypatch, sort
) -> None:
    from datadrive.lake import clustering

    buckets: list[int] = []
    real = clustering._sorted_batches

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        buckets.append(args[5])
        return real(*args, **kwargs)

    monkeypatch.setattr(clustering, "_sorted_batches", spy)
    if sort == "buckets":  # buckets of ~50 rows: each sorted on its own, in place order
        monkeypatch.setattr(clustering, "_SORT_BYTES_PER_ROW", 2 * 10**9 // 50)
    lake = placed_lake
    before_version = lake.snapshot(REGION).version
    before = _states(lake)
    box = (PLACES[5][0] - 50, PLACES[5][0] + 50, PLACES[5][1] - 50, PLACES[5][1] + 50)
    groups_before, rows_before, inside = _box_groups(_live_files(lake_root), box)
    assert inside == COMMITS * STATES  # the box holds every state of the place's three scenarios

    stats = lake.optimize(REGION)

    assert (buckets[0] > 1) == (sort == "buckets"), buckets
    info = stats["mining_states"]
    assert info["clustered"]
    assert info["partitions"] == 1
    assert info["rows"] == before.num_rows
    assert info["files_removed"] == COMMITS
    after = _states(lake)
    assert after.equals(before), "the same rows, batch ids and lake columns included"
    assert _states(lake, before_version).equals(before), "the version before still reads (its files stay)"
    history = lake.history(REGION)
    assert history[0].operation == "optimize"
    assert history[0].version == before_version + 1
    assert lake.check(REGION).ok
    audited = [r for r in lake.audit_log(REGION).to_pylist() if r["action"] == "optimize"]
    assert len(audited) == 1
    assert audited[0]["lake_version"] == before_version + 1
    assert json.loads(audited[0]["detail"])["mining_states"]["clustered"] is True

    files = _live_files(lake_root)
    assert files
    assert all(f.name.startswith(CLUSTER_FILE_PREFIX) for f in files)
    groups_after, rows_after, inside_after = _box_groups(files, box)
    assert inside_after == inside
    # the place's 120 states are contiguous: at most one partial group at each end
    assert groups_after <= -(-inside // GROUP) + 1, (groups_after, groups_before)
    assert groups_after < groups_before
    assert rows_after < rows_before
    assert max(pq.ParquetFile(f).metadata.row_group(0).num_rows for f in files) == GROUP

    # the order is the spec's: scenarios by the Z-order of their cell, then key; track-major inside
    data = pq.read_table(files[0], columns=["scenario_id", "track_index", "step", "x_m", "y_m"])
    sid = data.column("scenario_id").to_pylist()
    firsts = [i for i in range(len(sid)) if i == 0 or sid[i] != sid[i - 1]]
    assert len(firsts) == len(set(sid)), "each scenario's rows are together"
    means = data.group_by("scenario_id", use_threads=False).aggregate([("x_m", "mean"), ("y_m", "mean")])
    code = dict(
        zip(
            means.column("scenario_id").to_pylist(),
            place_codes(means.column("x_m_mean"), means.column("y_m_mean"), 256.0).tolist(),
            strict=True,
        )
    )
    seen = [(code[sid[i]], sid[i]) for i in firsts]
    assert seen == sorted(seen)
    one = data.filter(pc.equal(data.column("scenario_id"), sid[0]))
    assert one.column("track_index").to_pylist() == sorted(one.column("track_index").to_pylist())


def test_the_delta_commit_says_no_data_changed(placed_lake, lake_root) -> None:
    placed_lake.optimize(REGION)
    log = sorted((lake_root / REGION / "mining_states" / "_delta_log").glob("*.json"))
    actions = [json.loads(line) for line in log[-1].read_text().splitlines() if line.strip()]
    adds = [a["add"] for a in actions if "add" in a]
    removes = [a["remove"] for a in actions if "remove" in a]
    assert adds
    assert removes
    assert not any(a["dataChange"] for a in adds + removes)
    assert sum(json.loads(a["stats"])["numRecords"] for a in adds) == COMMITS * len(PLACES) * STATES


def test_a_clustered_partition_is_left_alone_until_rows_are_added(placed_lake) -> None:
    lake = placed_lake
    lake.optimize(REGION)
    again = lake.optimize(REGION)["mining_states"]
    assert again["partitions"] == 0
    assert again["partitions_skipped"] == 1
    assert again["files_added"] == 0
    snap = lake.snapshot(REGION)
    key = snap.table("scenarios", columns=["tenant", "source", "scenario_id"]).slice(0, 1).to_pylist()[0]
    extra = _rows([(key["tenant"], key["source"], key["scenario_id"])], [PLACES[0]], seed=9)
    lake.append_derived_tables(REGION, {"mining_states": extra}, derived_from=snap)
    before = _states(lake)
    third = lake.optimize(REGION)["mining_states"]
    assert third["partitions"] == 1
    assert third["rows"] == before.num_rows
    assert _states(lake).equals(before)


def test_no_cluster_compacts_instead(placed_lake, lake_root) -> None:
    stats = placed_lake.optimize(REGION, cluster=False)
    assert "clustered" not in stats["mining_states"]
    assert not any(f.name.startswith(CLUSTER_FILE_PREFIX) for f in _live_files(lake_root))


def test_a_bad_memory_limit_is_refused_before_anything_is_written(placed_lake) -> None:
    from datadrive.errors import LakeError

    version = placed_lake.snapshot(REGION).version
    with pytest.raises(LakeError, match="memory limit 'lots'"):
        placed_lake.optimize(REGION, memory_limit="lots")
    assert placed_lake.snapshot(REGION).version == version


_KILLER = """
import dataclasses, os, signal, sys
from pathlib import Path
sys.path.insert(0, {here!r})
from lake_helpers import two_region_config
from datadrive.lake import Lake, Principal, schema, clustering, commit
small = dataclasses.replace(schema.MINING_STATES, row_group_rows={group})
schema.DERIVED_TABLES = tuple(small if t.name == "mining_states" else t for t in schema.DERIVED_TABLES)
clustering._GROUPS_PER_FILE = 2  # several files, so a kill can land between two of them
where = {where!r}
def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
if where == "mid-files":
    close = clustering._Writer.close
    def close_then_die(self):
        close(self)
        if len(self.done) == 2:
            die()
    clustering._Writer.close = close_then_die
elif where == "before-table-commit":
    import deltalake
    deltalake.DeltaTable.create_write_transaction = die
elif where == "before-lake-commit":
    commit.commit_version = die
    import datadrive.lake.maintenance as m
    m.commit.commit_version = die
lake = Lake(two_region_config(Path({root!r})), Principal("ana", "bmw", "eu-central"))
lake.optimize("eu-central", temp_dir={spill!r})  # a kill leaves its spill folder: in the test's tmp
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["mid-files", "before-table-commit", "before-lake-commit"])
def test_a_kill_during_the_rewrite_leaves_the_lake_as_it_was(placed_lake, lake_root, tmp_path, where) -> None:
    lake = placed_lake
    version = lake.snapshot(REGION).version
    before = _states(lake)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), str(REPO / "tests"), str(REPO / "src"), env.get("PYTHONPATH", "")]
    )
    script = _KILLER.format(
        here=str(HERE), group=GROUP, where=where, root=str(lake_root), spill=str(tmp_path)
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == -signal.SIGKILL, out.stderr[-2000:]
    fresh = Lake(two_region_config(lake_root), Principal("ana", "bmw", REGION))
    assert fresh.snapshot(REGION).version == version, "no lake version was made"
    assert _states(fresh).equals(before)
    assert fresh.check(REGION).ok
    clustered_head = [f.name.startswith(CLUSTER_FILE_PREFIX) for f in _live_files(lake_root)]
    if where == "before-lake-commit":  # the table's head moved past the lake's pin: the same rows, unpinned
        assert all(clustered_head)
    else:  # the table's head is the old files
        assert not any(clustered_head)
    fresh.optimize(REGION)  # a rerun finishes the job
    assert fresh.snapshot(REGION).version == version + 1
    assert all(f.name.startswith(CLUSTER_FILE_PREFIX) for f in _live_files(lake_root))
    assert _states(fresh).equals(before)
    assert fresh.check(REGION).ok


def test_an_erasure_after_clustering_takes_the_scenario_and_keeps_the_rest(placed_lake) -> None:
    from datadrive.lake import Erasure

    lake = placed_lake
    lake.optimize(REGION)
    before = _states(lake)
    victim = before.column("scenario_id")[0].as_py()
    lake.erase(REGION, Erasure(tenant="bmw", scenario_ids=(victim,)))
    after = _states(lake)
    assert victim not in set(after.column("scenario_id").to_pylist())
    assert after.equals(before.filter(pc.not_equal(before.column("scenario_id"), victim)))
    assert lake.check(REGION).ok


def test_the_optimize_command_clusters_and_refuses_a_bad_memory_limit(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from datadrive.cli.main import app

    monkeypatch.setenv("DATADRIVE_USER", "ana")
    monkeypatch.delenv("DATADRIVE_HOME_REGION", raising=False)
    lake_dir = tmp_path / "lake"
    assert CliRunner().invoke(app, ["lake", "init", str(lake_dir), "--tenant", "bmw"]).exit_code == 0
    base = ["--lake", str(lake_dir), "--region", "cn-north", "--tenant", "bmw"]
    bad = CliRunner().invoke(app, ["lake", "optimize", *base, "--memory-limit", "lots"])
    assert bad.exit_code == 2
    assert "memory limit 'lots'" in bad.stderr
    ok = CliRunner().invoke(
        app, ["lake", "optimize", *base, "--memory-limit", "512MiB", "--temp-dir", str(tmp_path)]
    )
    assert ok.exit_code == 0, ok.output
    stats = json.loads(ok.stdout)
    assert stats["mining_states"]["clustered"] is True
    assert stats["mining_states"]["rows"] == 0  # an empty table: nothing to rewrite
    no = CliRunner().invoke(app, ["lake", "optimize", *base, "--no-cluster"])
    assert no.exit_code == 0, no.output
    assert "clustered" not in json.loads(no.stdout)["mining_states"]
    only = CliRunner().invoke(app, ["lake", "optimize", *base, "--table", "mining_states"])
    assert only.exit_code == 0, only.output
    assert set(json.loads(only.stdout)) >= {"mining_states", "files_vacuumed"}
    assert "tracks" not in json.loads(only.stdout)  # the other tables are not compacted
    wrong = CliRunner().invoke(app, ["lake", "optimize", *base, "--table", "states_typo"])
    assert wrong.exit_code == 2
    assert "no table states_typo" in wrong.stderr
