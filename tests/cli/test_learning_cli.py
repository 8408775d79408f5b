"""``datadrive dataset``, ``train`` and ``evaluate`` end to end on a lake of the real AV2 and nuScenes samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datadrive.cli.main import app

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
    ),  # MLflow's SQL store
]


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def lake_dir(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    mp = pytest.MonkeyPatch()
    mp.setenv("DATADRIVE_USER", "ana")
    mp.setenv("DATADRIVE_TENANT", "bmw")
    mp.delenv("DATADRIVE_HOME_REGION", raising=False)
    lake = tmp_path_factory.mktemp("cli") / "lake"
    assert run("lake", "init", str(lake), "--tenant", "bmw").exit_code == 0
    r = run(
        "ingest", str(samples / "av2_motion_forecasting"), str(samples / "scenarionet_nuscenes"),
        "--lake", str(lake), "--region", "eu-central", "--workers", "1",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    yield lake
    mp.undo()


def test_dataset_commands(lake_dir: Path) -> None:
    L = ["--lake", str(lake_dir), "--region", "eu-central"]
    r = run(
        "dataset",
        "create",
        "mix",
        *L,
        "--sql",
        "SELECT scenario_id FROM scenarios WHERE num_steps >= 110",
        "--json",
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output.strip().splitlines()[-1])
    assert doc["dataset"] == "mix@v1"
    assert (
        sum(doc["counts"].values()) == 11
    )  # 3 AV2 scenarios (110 steps, the test one without a future) + 8 scenes
    r = run(
        "dataset",
        "create",
        "mix",
        *L,
        "--sql",
        "SELECT scenario_id FROM scenarios WHERE source = 'scenarionet'",
        "--split",
        "50/50",
    )
    assert r.exit_code == 0, r.output
    r = run("dataset", "list", *L, "--json")
    assert json.loads(r.output.strip().splitlines()[-1])["dataset"] == "mix@v2"
    r = run("dataset", "diff", "mix@v1", "mix@v2", *L, "--json")
    diff = json.loads(r.output)
    assert len(diff["removed"]) == 3
    assert set(diff["changed"]) >= {"query", "split"}
    r = run("dataset", "show", "mix@v1", *L, "--ids")
    assert r.exit_code == 0
    assert r.output.count("\tbmw\t") == 11


def test_a_query_matching_nothing_is_one_line_and_exit_2(lake_dir: Path) -> None:
    r = run(
        "dataset",
        "create",
        "none",
        "--lake",
        str(lake_dir),
        "--region",
        "eu-central",
        "--sql",
        "SELECT scenario_id FROM scenarios WHERE num_tracks < 0",
    )
    assert r.exit_code == 2
    assert "matched no scenario" in r.output
    assert len(r.output.strip().splitlines()) <= 2  # one message (soft-wrapped at most once)


def test_train_then_evaluate_against_a_baseline(lake_dir: Path, tmp_path: Path) -> None:
    L = ["--lake", str(lake_dir), "--region", "eu-central"]
    assert (
        run(
            "dataset",
            "create",
            "tr",
            *L,
            "--sql",
            "SELECT scenario_id FROM scenarios WHERE num_steps >= 110",
            "--split",
            "60/40",
        ).exit_code
        == 0
    )
    r = run(
        "train",
        *L,
        "--dataset",
        "tr",
        "--model",
        "mlp",
        "--set",
        "hidden=32",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--run",
        "mlp1",
        "--quiet",
        "--cache-workers",
        "1",
    )
    assert r.exit_code == 0, r.output
    assert "derived/model/mlp1/model.pt" in r.output
    assert "MLflow run" in r.output
    r = run(
        "train",
        *L,
        "--dataset",
        "tr",
        "--model",
        "constant_velocity",
        "--epochs",
        "1",
        "--run",
        "cv",
        "--quiet",
        "--no-track",
    )
    assert r.exit_code == 0, r.output
    r = run(
        "evaluate",
        "mlp1",
        *L,
        "--dataset",
        "tr",
        "--against",
        "cv",
        "--out",
        str(tmp_path / "rep"),
        "--quiet",
        "--json",
        "--resamples",
        "200",
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output.strip().splitlines()[-1])
    assert doc["metrics_version"].startswith("datadrive-metrics/")
    assert {"mlp1", "cv"} <= set(doc)
    assert "minFDE_6" in doc["mlp1"]["overall"]
    assert isinstance(doc["regressions"], list)
    assert (tmp_path / "rep" / "index.html").exists()


def test_train_bad_input_is_one_line(lake_dir: Path) -> None:
    L = ["--lake", str(lake_dir), "--region", "eu-central"]
    r = run("train", *L, "--dataset", "nope", "--quiet")
    assert r.exit_code == 2
    assert "no dataset 'nope'" in r.output
    r = run(
        "train",
        *L,
        "--dataset",
        "mix@v1",
        "--device",
        "cuda",
        "--quiet",
        "--no-track",
        "--run",
        "gpu",
        "--cache-workers",
        "1",
    )
    assert r.exit_code == 2
    assert "no CUDA GPU" in r.output
    r = run(
        "train", *L, "--dataset", "mix@v1", "--model", "lstm", "--quiet", "--no-track", "--cache-workers", "1"
    )
    assert r.exit_code == 2
    assert "unknown model 'lstm'" in r.output
    r = run("train", *L, "--dataset", "eu-central/mix", "--region", "cn-north", "--quiet")
    assert r.exit_code == 2
    assert "cannot be materialised in cn-north" in r.output or "cn-north" in r.output


def test_dataset_by_mined_events_balanced(lake_dir: Path) -> None:
    """``datadrive index`` tags the lake; ``dataset create --events ... --balance-by event_type`` uses it."""
    L = ["--lake", str(lake_dir), "--region", "eu-central"]
    r = run("index", *L, "--engine", "inline")
    assert r.exit_code == 0, r.output
    r = run(
        "dataset",
        "create",
        "ev",
        *L,
        "--events",
        "hard_braking,lane_change",
        "--balance-by",
        "event_type",
        "--json",
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output.strip().splitlines()[-1])
    assert doc["query"] == {
        "kind": "events",
        "text": "hard_braking,lane_change",
        "events": ["hard_braking", "lane_change"],
    }
    assert doc["balance"]["by"] == "event_type"
    assert doc["code"]["tagger_version"]
    r = run("dataset", "create", "none", *L, "--query", "stopped and not stopped")
    assert r.exit_code == 2
    assert "matched no scenario" in r.output
    r = run("dataset", "create", "both", *L, "--sql", "SELECT scenario_id FROM scenarios", "--query", "car")
    assert r.exit_code == 2
    assert "give one of --sql, --query, --describe" in r.output
