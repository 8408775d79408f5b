"""A trained model in closed loop: a tiny transformer, trained on the sample lake, drives the ego."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datadrive.errors import ConfigError
from learning_fixtures import SampleLake


@pytest.mark.slow
def test_a_trained_model_drives_the_ego_in_closed_loop(sample_lake: SampleLake, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from datadrive.curate import FeatureCache
    from datadrive.models import ModelSpec
    from datadrive.sim.policies import TrajectoryPolicy, make_policy
    from datadrive.sim.runner import SimRequest, simulate, simulate_lake
    from datadrive.train import TrackingSettings, TrainConfig, train_run

    lake = sample_lake.lake()
    spec = ModelSpec("transformer", {"d_model": 16, "heads": 2, "encoder_layers": 1, "decoder_layers": 1})
    run = train_run(
        lake,
        sample_lake.manifest,
        FeatureCache(sample_lake.cache_path),
        TrainConfig(model=spec, epochs=1, batch_size=8, max_steps=6, warmup_steps=1, val_split=None),
        run_name="sim-tiny-planner",
        tracking=TrackingSettings(enabled=False),
    )
    assert run.steps == 6
    # model:run:NAME, from the lake, on the AV2 samples (the test split's scenario has only 5 s of log)
    query = "source = 'av2_motion_forecasting'"
    from datadrive.compute import InlineEngine

    closed = simulate_lake(lake, "eu-central", SimRequest(policy="model:run:sim-tiny-planner", batch_size=4),
                           query=query, engine=InlineEngine(), store=False)  # fmt: skip
    replay = simulate_lake(lake, "eu-central", SimRequest(policy="log", batch_size=4), query=query,
                           engine=InlineEngine(), store=False)  # fmt: skip
    ok = [r for r in closed.rows if r["status"] == "ok"]
    assert len(ok) == 3
    assert all(0.0 <= r["nuplan_cls"] <= 1.0 and r["metric_version"] for r in ok)
    assert closed.summary["request"]["model_bytes"] is None  # the weights are not copied into the summary
    # the model, not the log, drove: the egos' progress differs from the recorded one's
    log_progress = {r["scenario_id"]: r["ego_progress_m"] for r in replay.rows}
    assert any(abs(r["ego_progress_m"] - log_progress[r["scenario_id"]]) > 0.5 for r in ok)
    # model:PATH, the run's model file, in a plain simulate() on the same scenarios
    path = tmp_path / "planner.pt"
    path.write_bytes(lake.read_derived("eu-central", run.model_object)[0])
    policy = make_policy(f"model:{path}")
    assert isinstance(policy, TrajectoryPolicy)
    scenarios = list(lake.snapshot("eu-central").scenarios(ids=[r["scenario_id"] for r in ok][:1]))
    (row,) = simulate(scenarios, SimRequest(policy=f"model:{path}"))
    first = next(r for r in ok if r["scenario_id"] == row["scenario_id"])
    # the same model on the same scenario (float32 inference, batched differently: not bit-equal)
    assert row["ego_progress_m"] == pytest.approx(first["ego_progress_m"], abs=1e-3)
    assert np.isfinite(row["navsim_pdms"])


def test_bad_model_specs_are_clear_errors(tmp_path: Path) -> None:
    from datadrive.sim.policies import make_policy

    with pytest.raises(ConfigError, match="read from a lake"):
        make_policy("model:run:nope")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match=r"junk\.pt"):
        make_policy(f"model:{junk}")
    with pytest.raises(ConfigError, match="cannot load it"):
        make_policy("model:no.such.module:planner")
