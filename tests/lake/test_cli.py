"""The lake's commands, end to end through the Typer app (in-process, one reader)."""

from __future__ import annotations

import json
from pathlib import Path

import lake_synth
import pytest
from typer.testing import CliRunner

from datadrive.cli.main import app
from datadrive.errors import ConfigError
from datadrive.lake import load_config


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


def run(*args: str) -> object:
    return CliRunner().invoke(app, list(args))


def ingest(lake_dir: Path, path: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run(
        "ingest", str(path), "--lake", str(lake_dir), "--region", "cn-north", "--tenant", "bmw",
        "--adapters", "lake_synth:REGISTRY", "--workers", "1", *extra,
    )  # fmt: skip


def test_init_writes_config_keys_and_tables(lake_dir) -> None:
    config = load_config(lake_dir, env={})
    assert set(config.regions) == {"cn-north", "eu-central"}
    assert config.region("cn-north").publish_crs == "gcj02"
    assert config.region("eu-central").publish_crs == "wgs84"
    assert (lake_dir / "keys" / "bmw.key").stat().st_mode & 0o777 == 0o600
    assert config.tenant("bmw").key != config.tenant("tencent").key
    for region in ("cn-north", "eu-central"):
        assert (lake_dir / "regions" / region / "ingests" / "_delta_log").is_dir()
    again = run("lake", "init", str(lake_dir))
    assert again.exit_code == 0, "init is idempotent"


def test_ingest_reports_every_input_and_exits_2_on_a_bad_one(lake_dir, tmp_path) -> None:
    lake_synth.write_inputs(tmp_path / "in", range(3))
    (tmp_path / "in" / "bad.ddsynth").write_text("{")
    result = ingest(lake_dir, tmp_path / "in", "--json")
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["counts"] == {"ingested": 3, "duplicate": 0, "unsupported": 0, "failed": 1}
    assert report["inputs"] == 4
    bad = next(o for o in report["outcomes"] if o["status"] == "failed")
    assert "CorruptFileError" in bad["reason"]
    table = ingest(lake_dir, tmp_path / "in")
    assert table.exit_code == 2
    assert "4 inputs: 0 ingested, 3 duplicate, 0 unsupported, 1 failed" in " ".join(table.stdout.split())
    good = ingest(lake_dir, tmp_path / "in" / "log_00000.ddsynth")
    assert good.exit_code == 0


def test_sql_json_as_of_and_refusals(lake_dir, tmp_path) -> None:
    lake_synth.write_inputs(tmp_path / "a", range(2))
    lake_synth.write_inputs(tmp_path / "b", range(2, 5))
    assert ingest(lake_dir, tmp_path / "a").exit_code == 0
    assert ingest(lake_dir, tmp_path / "b").exit_code == 0
    base = ["--lake", str(lake_dir), "--region", "cn-north", "--tenant", "bmw", "--json"]
    latest = run("sql", "SELECT count(*) AS n FROM scenarios", *base)
    assert latest.exit_code == 0, latest.output
    assert json.loads(latest.stdout) == {"n": 5}
    pinned = run("sql", "SELECT count(*) AS n FROM scenarios", *base, "--as-of", "1")
    assert json.loads(pinned.stdout) == {"n": 2}
    states = run("sql", "SELECT scenario_id, step, x_m FROM states ORDER BY 1, 2 LIMIT 3", *base)
    assert len(states.stdout.splitlines()) == 3
    copy = run("sql", f"COPY scenarios TO '{tmp_path}/x.csv'", *base)
    assert copy.exit_code == 2
    assert "COPY is refused" in copy.stderr
    assert not (tmp_path / "x.csv").exists()
    abroad = run("sql", "SELECT 1", *base, "--home", "eu-central")
    assert abroad.exit_code == 2
    assert "is in eu-central" in abroad.stderr


def test_history_audit_check_export_erase(lake_dir, tmp_path) -> None:
    lake_synth.write_inputs(tmp_path / "in", range(2))
    assert ingest(lake_dir, tmp_path / "in").exit_code == 0
    base = ["--lake", str(lake_dir), "--region", "cn-north", "--tenant", "bmw"]
    history = run("lake", "history", *base, "--json")
    rows = [json.loads(line) for line in history.stdout.splitlines()]
    assert [r["operation"] for r in rows] == ["ingest", "create"]
    assert rows[0]["inputs"] == 2
    assert run("lake", "check", *base).exit_code == 0
    refused = run("lake", "export", "tracks", *base, "--to", "eu-central")
    assert refused.exit_code == 2
    assert "raw data of region cn-north" in refused.stderr
    metrics = tmp_path / "metrics.json"
    metrics.write_text('{"ok": 1}')
    stored = run("lake", "put-derived", str(metrics), *base, "--kind", "metrics", "--as-of", "1")
    assert stored.exit_code == 0, stored.output
    exported = run("lake", "export", "derived/metrics/metrics.json", *base, "--to", "eu-central")
    assert exported.exit_code == 0, exported.output
    audit = run("lake", "audit", *base, "--json", "--limit", "0")
    actions = [(r["action"], r["outcome"]) for r in map(json.loads, audit.stdout.splitlines())]
    assert ("export", "refused") in actions
    assert ("export", "ok") in actions
    assert ("ingest", "ok") in actions
    verified = run("lake", "audit", *base, "--verify")
    assert verified.exit_code == 0
    assert "audit chain intact" in verified.stdout
    no = run("lake", "erase", *base, "--source", "synthetic")
    assert no.exit_code == 2
    assert "--yes" in no.stderr
    yes = run("lake", "erase", *base, "--source", "synthetic", "--yes")
    assert yes.exit_code == 0, yes.output
    assert "erased 2 scenarios" in yes.stdout
    gone = run("sql", "SELECT count(*) AS n FROM scenarios", *base, "--json")
    assert json.loads(gone.stdout) == {"n": 0}


def test_audit_verify_exits_2_when_tampered(lake_dir, tmp_path) -> None:
    from deltalake import DeltaTable

    lake_synth.write_inputs(tmp_path / "in", range(1))
    assert ingest(lake_dir, tmp_path / "in").exit_code == 0
    DeltaTable(str(lake_dir / "regions" / "cn-north" / "audit")).delete("seq = 1")
    result = run(
        "lake", "audit", "--lake", str(lake_dir), "--region", "cn-north", "--tenant", "bmw", "--verify"
    )
    assert result.exit_code == 2
    assert "tampered" in result.stderr


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("", "no \\[regions"),
        ('[regions.x]\nroot = "r"\npublish_crs = "bd09"\n', "publish_crs"),
        ('[regions.x]\nroot = "r"\n[regions.x.export]\nto = ["mars"]\n', "unknown region 'mars'"),
        ('[regions.x]\nroot = "r"\n[tenants.t]\n', "key_file"),
        ('[regions.x]\nroot = "r"\n[regions.y]\nroot = "r/y"\n', "must not overlap"),
        ('[regions.X]\nroot = "r"\n', "lower-case"),
        ("[regions\n", "not valid TOML"),
    ],
    ids=[
        "no-regions",
        "bad-crs",
        "unknown-destination",
        "no-key",
        "overlapping-roots",
        "bad-name",
        "bad-toml",
    ],
)
def test_config_errors_are_clear(tmp_path, toml, message) -> None:
    (tmp_path / "datadrive.toml").write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path, env={})


def test_missing_config_says_how_to_create_one(tmp_path) -> None:
    result = run("sql", "SELECT 1", "--lake", str(tmp_path))
    assert result.exit_code == 2
    assert "datadrive lake init" in result.stderr
