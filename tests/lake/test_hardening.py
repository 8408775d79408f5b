"""Regressions of the adversarial probe (issue 13): each test is one attack that broke a promise.

Every case drives the real CLI (in-process through Typer's runner, or in a
subprocess where the old behaviour was a hang) against a real lake on local
folders, and checks the promise: a refusal is one line, exit status 2, and
audited where it is a refusal of a principal; nothing is written or lost.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lake_synth
import pytest
from lake_helpers import two_region_config
from typer.testing import CliRunner

from datadrive.cli.main import app
from datadrive.errors import InputError
from datadrive.lake import Lake, Principal, load_config
from datadrive.lake.ingest import unit_sha256
from datadrive.lake.sql import masked

SAMPLES = Path(
    os.environ.get("DATADRIVE_SAMPLES", Path(__file__).resolve().parents[2] / ".." / "shared" / "data")
)
DONGLE = "b0c9d2329ad1606b"


def _need_samples(*parts: str) -> Path:
    path = SAMPLES.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"samples missing under CI: {path}")
        pytest.skip(f"samples not found: {path} (set DATADRIVE_SAMPLES)")
    return path


@pytest.fixture
def lake_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DATADRIVE_USER", "ana")
    monkeypatch.delenv("DATADRIVE_HOME_REGION", raising=False)
    monkeypatch.delenv("DATADRIVE_TENANT", raising=False)
    result = CliRunner().invoke(
        app, ["lake", "init", str(tmp_path / "lake"), "--tenant", "bmw", "--tenant", "tencent"]
    )
    assert result.exit_code == 0, result.output
    return tmp_path / "lake"


def run(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), input=input)


def where(lake_dir: Path, tenant: str = "bmw", region: str = "cn-north") -> list[str]:
    return ["--lake", str(lake_dir), "--region", region, "--tenant", tenant]


def synth_ingest(lake_dir: Path, path: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run(
        "ingest", str(path), *where(lake_dir), "--adapters", "lake_synth:REGISTRY", "--workers", "1", *extra
    )


def one_clean_line(result) -> str:  # type: ignore[no-untyped-def]
    """The single error line of a refused command (exit 2, no traceback)."""
    assert result.exit_code == 2, (result.exit_code, result.output[-2000:])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.output
    assert len(lines[0]) <= 2100
    return lines[0]


def audit_rows(lake_dir: Path, region: str = "cn-north") -> list[dict[str, object]]:
    lk = Lake(load_config(lake_dir, env={}), Principal("auditor", "bmw", region))
    return lk.audit_log(region).to_pylist()


# --------------------------------------------------------------------------- F12-F15: not files

_HOSTILE_SCRIPT = r"""
import json, os, sys
from typer.testing import CliRunner
from datadrive.cli.main import app
out = {}
for name in sys.argv[2:]:
    r = CliRunner().invoke(app, ["inspect", os.path.join(sys.argv[1], name)])
    bug = r.exception is not None and not isinstance(r.exception, SystemExit)
    out[name] = [r.exit_code, r.stderr, repr(r.exception) if bug else None]
print(json.dumps(out))
"""


def test_fifos_devices_and_link_loops_are_refused_before_they_are_opened(tmp_path) -> None:
    """F12, F14, F15: ``inspect`` of a FIFO (any suffix), a link loop, a link to /dev/zero: one line."""
    d = tmp_path / "hostile"
    d.mkdir()
    fifos = ["f.pkl", "scenario_x.parquet", "x.db", "x.osm", "x.xml", "x.tfrecord", "x.csv"]
    for name in fifos:
        os.mkfifo(d / name)
    os.symlink("loop_b.pkl", d / "loop_a.pkl")
    os.symlink("loop_a.pkl", d / "loop_b.pkl")
    os.symlink("/dev/zero", d / "zero.tfrecord")
    os.symlink("missing.db", d / "dangling.db")
    names = [*fifos, "loop_a.pkl", "zero.tfrecord", "dangling.db"]
    proc = subprocess.run(
        [sys.executable, "-c", _HOSTILE_SCRIPT, str(d), *names],
        capture_output=True,
        text=True,
        timeout=120,  # the old code never returned
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)
    for name in names:
        code, err, exc = results[name]
        assert exc is None, (name, exc)
        assert code == 2, (name, code, err)
        assert len(err.strip().splitlines()) == 1, (name, err)
        assert name in err
    assert "named pipe" in results["f.pkl"][1]
    assert "symbolic link loop" in results["loop_a.pkl"][1]
    assert "character device" in results["zero.tfrecord"][1]


def test_ingest_of_a_folder_holding_a_fifo_loop_and_device_is_clean(lake_dir, tmp_path) -> None:
    """F13, F14, F15: ``ingest`` reports them as failed inputs, exit 2, no traceback; the good ones land."""
    d = tmp_path / "in"
    lake_synth.write_inputs(d, range(2))
    os.mkfifo(d / "pipe.ddsynth")
    os.symlink("loop2.ddsynth", d / "loop1.ddsynth")
    os.symlink("loop1.ddsynth", d / "loop2.ddsynth")
    os.symlink("/dev/zero", d / "zero.ddsynth")
    os.symlink(".", d / "self")  # a folder link back to where it is
    result = synth_ingest(lake_dir, d, "--json")
    assert result.exit_code == 2, result.output[-2000:]
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    report = json.loads(result.stdout)
    assert report["counts"]["ingested"] == 2
    failed = {Path(o["path"]).name: o["reason"] for o in report["outcomes"] if o["status"] == "failed"}
    assert "named pipe" in failed["pipe.ddsynth"]
    assert "symbolic link loop" in failed["loop1.ddsynth"]
    assert "character device" in failed["zero.ddsynth"]
    explicit = synth_ingest(lake_dir, d / "pipe.ddsynth")  # given explicitly: a failed input, reported
    assert explicit.exit_code == 2
    assert "Traceback" not in explicit.output
    assert "named pipe" in " ".join(explicit.output.split())


def test_a_folder_input_holding_a_fifo_is_refused_not_hung(tmp_path) -> None:
    """A folder-shaped input (a Lyft zarr) with a FIFO inside: refused before anything opens it."""
    d = tmp_path / "scene.zarr"
    d.mkdir()
    (d / ".zgroup").write_text('{"zarr_format": 2}')
    os.mkfifo(d / "frames")
    with pytest.raises(InputError, match="named pipe"):
        unit_sha256(d, "dir")


# --------------------------------------------------------------------------- F16 and duplicates of failures


def test_a_folder_hash_covers_hidden_files(tmp_path) -> None:
    """F16: a zarr whose .zgroup/.zarray/.zattrs differ must not share the good one's idempotency key."""
    good = _need_samples("lyft_l5kit", "single_scene.zarr")
    base = unit_sha256(good, "dir")
    for hidden in (".zgroup", ".zattrs", "frames/.zarray"):
        bad = tmp_path / hidden.replace("/", "_") / "single_scene.zarr"
        shutil.copytree(good, bad)
        (bad / hidden).write_text("{broken")
        assert unit_sha256(bad, "dir") != base, hidden


def test_a_broken_zarr_is_not_a_duplicate_of_the_good_one(lake_dir, tmp_path) -> None:
    """F16 end to end: ingest the good zarr, then one with a broken .zgroup: failed, not duplicate."""
    good = _need_samples("lyft_l5kit", "single_scene.zarr")
    bad = tmp_path / "bad" / "single_scene.zarr"
    shutil.copytree(good, bad)
    (bad / ".zarray").write_text("{broken")  # a stray hidden file the reader never reads: bytes differ
    (bad / "frames" / ".zarray").write_text("{broken")
    base = [*where(lake_dir), "--workers", "1", "--json"]
    first = run("ingest", str(good), *base)
    assert first.exit_code == 0, first.output[-2000:]
    second = run("ingest", str(bad), *base)
    report = json.loads(second.stdout)
    assert report["counts"]["duplicate"] == 0, report
    assert report["counts"]["failed"] == 1, report


def test_failed_inputs_are_never_duplicates_of_each_other(lake_dir, tmp_path) -> None:
    """Many empty .pkl files: every one fails; none is a 'duplicate' of a file that failed."""
    d = tmp_path / "empty"
    d.mkdir()
    for k in range(30):
        (d / f"scenario_{k:03d}.pkl").write_bytes(b"")
    base = [*where(lake_dir), "--workers", "1", "--json"]
    for _ in range(2):  # and again: a failure is not in the ledger either
        result = run("ingest", str(d), *base)
        report = json.loads(result.stdout)
        assert report["counts"]["duplicate"] == 0, report["counts"]
        assert report["counts"]["failed"] + report["counts"]["unsupported"] == 30


def test_errors_quote_only_an_excerpt(tmp_path) -> None:
    """An .osm file with a huge attribute: the error line (and --json reason) stays short."""
    osm = tmp_path / "big.osm"
    huge = "x" * 2_000_000
    osm.write_text(
        f"<?xml version='1.0'?><osm version='0.6'><node id='1' lat='{huge}' lon='0'/></osm>", encoding="utf-8"
    )
    result = run("inspect", str(osm))
    line = one_clean_line(result)
    assert len(line) < 1000
    err = InputError("x.osm", "bad value " + "y" * 100_000 + "\nsecond line")
    assert len(str(err)) < 500
    assert "\n" not in str(err)


# --------------------------------------------------------------------------- F4: SQL


@pytest.fixture
def sql_lake(lake_dir, tmp_path) -> Path:
    lake_synth.write_inputs(tmp_path / "a", range(2))
    assert synth_ingest(lake_dir, tmp_path / "a").exit_code == 0
    return lake_dir


REFUSED_SQL = {
    "EXPLAIN ANALYZE DROP VIEW states": "DROP VIEW",
    "EXPLAIN ANALYZE CREATE TABLE t AS SELECT 1": "CREATE TABLE",
    "EXPLAIN ANALYZE CREATE VIEW v AS SELECT 1": "CREATE VIEW",
    "EXPLAIN (FORMAT json) CREATE TABLE t (a INT)": "CREATE TABLE",
    "EXPLAIN ANALYZE SET threads = 1": "SET",
    "COPY FROM DATABASE memory TO other": "COPY FROM DATABASE",
    "IMPORT DATABASE 'somewhere'": "IMPORT DATABASE",
    "INSTALL httpfs": "INSTALL",
    "USE memory": "USE",
    "CHECKPOINT": "CHECKPOINT",
    "PIVOT scenarios ON source": "PIVOT",
    "UPDATE EXTENSIONS": "UPDATE EXTENSIONS",
    "DROP VIEW states": "DROP VIEW",
    "ATTACH 'x.db'": "ATTACH",
}


@pytest.mark.parametrize("query", sorted(REFUSED_SQL))
def test_only_select_runs_and_refusals_name_the_statement(sql_lake, query) -> None:
    line = one_clean_line(run("sql", query, *where(sql_lake)))
    label = REFUSED_SQL[query]
    assert f"{label} is refused" in line, line
    refused = [r for r in audit_rows(sql_lake) if r["action"] == "sql" and r["outcome"] == "refused"]
    assert refused
    assert refused[-1]["object"] == masked(query)


def test_explain_of_a_select_still_runs(sql_lake) -> None:
    result = run("sql", "EXPLAIN SELECT count(*) FROM scenarios", *where(sql_lake), "--json")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "query",
    ["SELEC 1", "SELECT * FROM nowhere", "SELECT x FROM scenarios", "SELECT * FROM delta_scan('/tmp')"],
)
def test_sql_errors_are_one_line(sql_lake, query) -> None:
    one_clean_line(run("sql", query, *where(sql_lake)))


def test_a_query_from_a_file_stdin_or_after_double_dash(sql_lake, tmp_path) -> None:
    query = "-- the count\nSELECT count(*) AS n FROM scenarios"
    (tmp_path / "q.sql").write_text(query)
    from_file = run("sql", "--file", str(tmp_path / "q.sql"), *where(sql_lake), "--json")
    assert from_file.exit_code == 0, from_file.output
    assert json.loads(from_file.stdout) == {"n": 2}
    from_stdin = run("sql", "-", *where(sql_lake), "--json", input=query)
    assert json.loads(from_stdin.stdout) == {"n": 2}
    after_dashes = run("sql", *where(sql_lake), "--json", "--", query)
    assert json.loads(after_dashes.stdout) == {"n": 2}, after_dashes.output
    one_clean_line(run("sql", *where(sql_lake)))  # no statement at all


# --------------------------------------------------------------------------- F1-F3: artefacts


HOSTILE_NAMES = [
    "../../x",
    "/etc/passwd",
    "a/../../b",
    "%2e%2e/x",
    "\u2025/x",
    "a//b",
    "",
    ".hidden",
    "a\\..\\b",
    "x.provenance.json",
    "a\x00b",
    "\uff0e\uff0e/x",
]


def _put(lake_dir: Path, tmp_path: Path, name: str, tenant: str = "bmw", kind: str = "aggregate"):  # type: ignore[no-untyped-def]
    f = tmp_path / "payload.json"
    f.write_text(json.dumps({"tenant": tenant}))
    return run("lake", "put-derived", str(f), "--name", name, "--kind", kind, *where(lake_dir, tenant))


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_artefact_names_are_one_audited_line(lake_dir, tmp_path, name) -> None:
    """F2 (put-derived) and F1 (export) with traversal, absolute, encoded and look-alike names."""
    before = len(audit_rows(lake_dir))
    line = one_clean_line(_put(lake_dir, tmp_path, name))
    assert "refused" in line
    export = run("lake", "export", f"derived/aggregate/{name}", "--to", "eu-central", *where(lake_dir))
    one_clean_line(export)
    rows = audit_rows(lake_dir)[before:]
    assert sum(1 for r in rows if r["outcome"] == "refused") >= 2
    assert not any(p.name == "x" for p in (lake_dir / "regions").rglob("x")), "nothing escaped"


@pytest.mark.parametrize(
    "obj",
    ["derived/aggregate/../../_datadrive/region.json", "derived/aggregate/", "derived/aggregate/%2e%2e"],
)
def test_hostile_export_objects_are_one_audited_line(lake_dir, obj) -> None:
    before = len(audit_rows(lake_dir))
    one_clean_line(run("lake", "export", obj, "--to", "eu-central", *where(lake_dir)))
    assert any(r["outcome"] == "refused" for r in audit_rows(lake_dir)[before:])


def test_a_tenant_cannot_overwrite_another_tenants_artefact(lake_dir, tmp_path) -> None:
    """F3: tencent's put-derived of bmw's name is refused (audited); bmw's artefact and export survive."""
    assert _put(lake_dir, tmp_path, "agg.json", tenant="bmw").exit_code == 0
    line = one_clean_line(_put(lake_dir, tmp_path, "agg.json", tenant="tencent"))
    assert "belongs to another tenant" in line
    lk = Lake(load_config(lake_dir, env={}), Principal("ana", "bmw", "cn-north"))
    data, provenance = lk.read_derived("cn-north", "derived/aggregate/agg.json")
    assert json.loads(data) == {"tenant": "bmw"}
    assert provenance["tenant"] == "bmw"
    export = run("lake", "export", "derived/aggregate/agg.json", "--to", "eu-central", *where(lake_dir))
    assert export.exit_code == 0, export.output  # bmw's own export of it, refused before the fix
    copied = load_config(lake_dir, env={}).region("eu-central").root.uri
    assert json.loads((Path(copied) / "derived" / "aggregate" / "agg.json").read_text()) == {"tenant": "bmw"}
    assert _put(lake_dir, tmp_path, "agg.json", tenant="bmw").exit_code == 0, "the owner may replace it"


# --------------------------------------------------------------------------- F6, F7: identifiers in paths


def test_an_upper_case_dongle_folder_is_pseudonymised_everywhere(lake_dir, tmp_path) -> None:
    """F6: the comma2k19 segment under an upper-case dongle folder leaves no raw dongle id in the lake."""
    segment = _need_samples("comma2k19", f"{DONGLE}_2018-08-02--08-34-47", "40")
    upper = tmp_path / "in" / f"{DONGLE.upper()}_2018-08-02--08-34-47" / "40"
    shutil.copytree(segment, upper)
    result = run("ingest", str(upper), *where(lake_dir), "--workers", "1", "--json")
    assert result.exit_code == 0, result.output[-2000:]
    _assert_no_raw_id(lake_dir, DONGLE)


def test_a_dongle_id_in_the_path_of_another_format_is_pseudonymised(lake_dir, tmp_path) -> None:
    """F7: a nuPlan database under a folder named after a dongle id."""
    db = _need_samples("nuplan", "test", "2021.09.16.14.14.03_veh-45_00441_00502.db")
    target = tmp_path / "pz" / f"dongle_{DONGLE.upper()}" / "veh-49.db"
    target.parent.mkdir(parents=True)
    shutil.copy(db, target)
    result = run("ingest", str(target), *where(lake_dir), "--workers", "1", "--json")
    assert result.exit_code == 0, result.output[-2000:]
    _assert_no_raw_id(lake_dir, DONGLE)
    _assert_no_raw_id(lake_dir, "veh-49")


def _assert_no_raw_id(lake_dir: Path, raw: str) -> None:
    lk = Lake(load_config(lake_dir, env={}), Principal("ana", "bmw", "cn-north"))
    snap = lk.snapshot("cn-north")
    for table in ("scenarios", "tracks", "telemetry", "ingests"):
        for column, values in snap.table(table).to_pydict().items():
            text = json.dumps(values, default=str).lower()
            assert raw.lower() not in text, (table, column)


# --------------------------------------------------------------------------- F17: odd characters in the root


@pytest.mark.parametrize("folder", ["lake [1]", "lake%20x", "a%2fb", "lake#1"])
def test_a_lake_root_deltalake_cannot_open_is_refused_in_one_line(tmp_path, monkeypatch, folder) -> None:
    """deltalake panics on '[' and decodes '%20' in a local path (even file://-encoded): refused up front."""
    monkeypatch.setenv("DATADRIVE_USER", "ana")
    line = one_clean_line(run("lake", "init", str(tmp_path / folder), "--tenant", "bmw"))
    assert "deltalake cannot open" in line


@pytest.mark.parametrize("folder", ["my lake", "lake 100%", "läke ü", "a % b"])
def test_a_lake_root_with_odd_characters_reads_back(tmp_path, monkeypatch, folder) -> None:
    """F17: delta-rs percent-encodes file URIs; the reads must decode them (spaces, '%', unicode)."""
    monkeypatch.setenv("DATADRIVE_USER", "ana")
    root = tmp_path / folder
    assert run("lake", "init", str(root), "--tenant", "bmw").exit_code == 0
    lake_synth.write_inputs(tmp_path / "in", range(2))
    assert synth_ingest(root, tmp_path / "in").exit_code == 0
    result = run("sql", "SELECT count(*) AS n FROM scenarios", *where(root), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"n": 2}
    check = run("lake", "check", *where(root))
    assert check.exit_code == 0, check.output


# --------------------------------------------------------------------------- output off a terminal


def test_machine_readable_lines_never_wrap_off_a_terminal(sql_lake, tmp_path) -> None:
    result = run("lake", "audit", "--verify", *where(sql_lake))
    assert result.exit_code == 0, result.output
    heads = [line for line in result.stdout.splitlines() if "intact" in line]
    assert heads, result.stdout
    assert any(len(word) == 64 for word in heads[0].replace(")", " ").split()), result.stdout
    long_path = tmp_path / ("deep_" * 30) / "in"
    lake_synth.write_inputs(long_path, range(1, 2))
    ingest = synth_ingest(sql_lake, long_path)
    assert all(len(line) < 400 or str(long_path) in line for line in ingest.stdout.splitlines())


# --------------------------------------------------------------------------- F9, F11: audit integrity


def _audit_log_files(lake_dir: Path, region: str = "cn-north") -> list[Path]:
    return sorted((lake_dir / "regions" / region / "audit" / "_delta_log").glob("*.json"))


@pytest.mark.parametrize("dropped", [1, 5])
def test_dropping_the_audit_logs_last_commits_is_noticed(sql_lake, dropped) -> None:
    """F9: remove the audit table's last commit(s): --verify and lake check both say so."""
    run("sql", "SELECT 1", *where(sql_lake))
    for k in range(6):
        run("sql", f"SELECT {k}", *where(sql_lake))
    logs = _audit_log_files(sql_lake)
    assert len(logs) > dropped + 1
    for f in logs[-dropped:]:
        f.unlink()
    lk = Lake(load_config(sql_lake, env={}), Principal("auditor", "bmw", "cn-north"))
    from datadrive.lake import audit as audit_log

    result = audit_log.verify(lk.access.store("cn-north"))
    assert not result.ok
    assert any("rows were removed" in p for p in result.problems), result
    verify = run("lake", "audit", "--verify", *where(sql_lake))
    assert verify.exit_code != 0, verify.output
    assert "intact" not in verify.stdout, verify.output
    check = run("lake", "check", *where(sql_lake))
    assert check.exit_code != 0, check.output


def test_a_deleted_audit_table_is_never_recreated_silently(sql_lake) -> None:
    """F11: rm -r <root>/audit; the next command is refused in one line, check and verify say so."""
    shutil.rmtree(sql_lake / "regions" / "cn-north" / "audit")
    line = one_clean_line(run("sql", "SELECT 1", *where(sql_lake)))
    assert "audit log is missing" in line
    assert not (sql_lake / "regions" / "cn-north" / "audit").exists()
    lk = Lake(load_config(sql_lake, env={}), Principal("auditor", "bmw", "cn-north"))
    from datadrive.lake.check import check_region

    report = check_region(lk.access.store("cn-north"))
    assert not report.ok
    assert any("audit table is missing" in p for p in report.problems)
    verify = run("lake", "audit", "--verify", *where(sql_lake))
    assert verify.exit_code != 0
    assert "intact" not in verify.stdout
    assert not (sql_lake / "regions" / "cn-north" / "audit").exists()


def test_a_deleted_middle_commit_is_one_sentence(sql_lake) -> None:
    logs = _audit_log_files(sql_lake)
    logs[len(logs) // 2].unlink()
    verify = run("lake", "audit", "--verify", *where(sql_lake))
    assert verify.exit_code != 0
    text = verify.stdout + verify.stderr
    assert "ParsedLogPath" not in text, text
    assert "Kernel" not in text, text
    assert "missing a commit file" in text, text


# --------------------------------------------------------------------------- F5: records read back


def test_records_read_abroad_cannot_be_relabelled_into_another_region(make_lake_pair, tmp_path) -> None:
    """F5: a cn-north record with ``region=None`` (or another region) is still refused in eu-central."""
    import dataclasses

    from datadrive.errors import ResidencyError

    cn, records = make_lake_pair
    for forged_region in (None, "eu-central"):
        forged = [
            dataclasses.replace(r, metadata=dataclasses.replace(r.metadata, region=forged_region))
            for r in records
        ]
        with pytest.raises(ResidencyError, match="cn-north"):
            cn.ingest_records(forged, region="eu-central", name=f"forged-{forged_region}")
    view = dataclasses.replace(
        records[0],
        tracks=dataclasses.replace(records[0].tracks, xy_m=records[0].tracks.xy_m[:]),
        metadata=dataclasses.replace(records[0].metadata, region=None),
    )
    with pytest.raises(ResidencyError):
        cn.ingest_records([view], region="eu-central", name="forged-view")
    refused = [r for r in cn.audit_log("cn-north").to_pylist() if r["outcome"] == "refused"]
    assert len(refused) >= 3
    eu = Lake(cn.config, Principal("eve", "bmw", "eu-central"))
    assert eu.snapshot("eu-central").scenarios() == []


@pytest.fixture
def make_lake_pair(tmp_path):  # type: ignore[no-untyped-def]
    config = two_region_config(tmp_path / "lake")
    cn = Lake(config, Principal("ana", "bmw", "cn-north"))
    (path,) = lake_synth.write_inputs(tmp_path / "in", [5])
    report = cn.ingest([path], "cn-north", registry=lake_synth.REGISTRY)
    assert report.ok
    return cn, cn.snapshot("cn-north").scenarios()


# --------------------------------------------------------------------------- F8: what the audit keeps of SQL


def test_the_audit_never_keeps_literals_typed_into_a_query(sql_lake) -> None:
    """F8: an identifier typed into a query (a literal or a comment) never reaches the append-only log."""
    import hashlib

    query = "SELECT count(*) AS n FROM scenarios WHERE scenario_id LIKE '%veh-45%' -- find veh-45"
    assert run("sql", query, *where(sql_lake)).exit_code == 0
    refused = run("sql", "COPY (SELECT 'b0c9d2329ad1606b') TO 'x.csv'", *where(sql_lake))
    assert refused.exit_code == 2
    rows = audit_rows(sql_lake)
    text = json.dumps(rows, default=str)
    assert "veh-45" not in text
    assert "b0c9d2329ad1606b" not in text
    ran = next(r for r in rows if r["action"] == "sql" and r["outcome"] == "ok")
    assert ran["object"] == "SELECT count(*) AS n FROM scenarios WHERE scenario_id LIKE ?"
    assert json.loads(str(ran["detail"]))["sha256"] == hashlib.sha256(query.encode()).hexdigest()
    verify = run("lake", "audit", "--verify", *where(sql_lake))
    assert verify.exit_code == 0, verify.output
