"""``datadrive mine`` on log files: expressions, descriptions, JSON, renders, RefAV, and bad input."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datadrive.cli.main import app

runner = CliRunner()


def test_mine_a_description_prints_the_expression_and_hits(samples: Path, tmp_path: Path) -> None:
    log = samples / "av2_scenario_mining" / "3bffdcff-c3a7-38b6-a0f2-64196d130958"
    out = tmp_path / "pred.pkl"
    result = runner.invoke(
        app, ["mine", "--describe", "stopped car", "--input", str(log), "--json", "--refav-out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "expression: (offline) car and stopped" in result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows
    assert {r["source"] for r in rows} == {"av2_sensor"}
    assert all(r["intervals_ns"][0][0] <= r["intervals_ns"][0][1] for r in rows)
    with out.open("rb") as fh:
        predictions = pickle.load(fh)  # written by this test
    assert list(predictions) == [("3bffdcff-c3a7-38b6-a0f2-64196d130958", "stopped car")]


def test_mine_renders_a_png_per_hit(samples: Path, tmp_path: Path) -> None:
    path = samples / "waymo_open_motion" / "scenario_637f20cafde22ff8" / "motion_data_one_scenario.tfrecord"
    result = runner.invoke(
        app,
        ["mine", "pedestrian and crossing(vehicle)", "--input", str(path), "--render", str(tmp_path / "r")],
    )
    assert result.exit_code == 0, result.output
    pngs = sorted((tmp_path / "r").glob("*.png"))
    assert pngs
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert "pedestrian and crossing(vehicle)" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mine", "car and", "--input", "."], "expected a category"),
        (["mine", "car and warp_drive", "--input", "."], "unknown category or predicate 'warp_drive'"),
        (["mine", "--describe", "a flying saucer", "--input", "."], "'flying', 'saucer'"),
        (["mine", "car", "--describe", "car", "--input", "."], "one of them"),
        (["mine", "car"], "--lake LAKE"),
        (["mine", "car", "--lake", "nowhere"], "no lake config"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_index_events_and_saved_results_through_the_cli(samples: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    base = ["--lake", str(lake), "--region", "eu-central", "--tenant", "bmw"]
    ok = runner.invoke(
        app, ["lake", "init", str(lake), "--tenant", "bmw", "--region", "eu-central=regions/eu"]
    )
    assert ok.exit_code == 0, ok.output
    logs = samples / "waymo_open_motion" / "scenario_637f20cafde22ff8"
    assert runner.invoke(app, ["ingest", str(logs), *base, "--workers", "1"]).exit_code == 0
    index = runner.invoke(app, ["index", *base, "--engine", "inline", "--json"])
    assert index.exit_code == 0, index.output
    report = json.loads(index.stdout)
    assert report["indexed"] == report["tagged"] == 1
    assert report["states"] == 4596  # SOURCES.md: 4596 valid states
    events = runner.invoke(app, ["events", *base, "--json", "--by", "type"])
    assert events.exit_code == 0, events.output
    rows = [json.loads(line) for line in events.stdout.splitlines()]
    assert {r["event_type"] for r in rows} >= {"ego_stationary", "vru_crossing"}
    mined = runner.invoke(app, ["mine", "pedestrian and crossing(vehicle)", *base, "--save", "crossers"])
    assert mined.exit_code == 0, mined.output
    assert "saved: crossers v1" in mined.stderr
    sql = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM mining_results", *base, "--json"])
    assert json.loads(sql.stdout)["n"] >= 1
    again = runner.invoke(app, ["index", *base, "--engine", "inline", "--json"])
    assert json.loads(again.stdout)["indexed"] == 0
    # time travel: a second log arrives; mining as of the earlier version sees only the first one
    history = json.loads(
        runner.invoke(
            app, ["sql", "SELECT max(derived_from_version) AS v FROM mining_states", *base, "--json"]
        ).stdout
    )["v"]
    first_only = int(history)
    more = samples / "scenarionet_waymo"
    assert runner.invoke(app, ["ingest", str(more), *base, "--workers", "1"]).exit_code == 0
    now = runner.invoke(app, ["mine", "vehicle and moving", *base, "--json"])
    then = runner.invoke(app, ["mine", "vehicle and moving", *base, "--json", "--as-of", str(first_only)])
    assert now.exit_code == 0, now.output
    assert then.exit_code == 0, then.output
    sources_now = {json.loads(line)["source"] for line in now.stdout.splitlines()}
    sources_then = {json.loads(line)["source"] for line in then.stdout.splitlines()}
    assert sources_then == {"waymo_open_motion"}
    assert sources_now == {"waymo_open_motion", "scenarionet"}
