"""Models: shapes, baselines by construction, model files, the planning policy and the simulator adapter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from datadrive.curate import FeatureCache
from datadrive.errors import CheckpointError, DeviceError
from datadrive.models import (
    MODELS,
    ModelPlanner,
    ModelSpec,
    PlanningPolicy,
    build_model,
    load_model,
    resolve_device,
    save_model,
    to_tensors,
)
from learning_fixtures import SampleLake

SMALL = {
    "constant_velocity": {},
    "nearest_neighbor": {},
    "mlp": {"hidden": 32, "layers": 2},
    "transformer": {"d_model": 16, "heads": 2, "encoder_layers": 1, "decoder_layers": 1},
}


@pytest.fixture(scope="module")
def cache(sample_lake: SampleLake) -> FeatureCache:
    return FeatureCache(sample_lake.cache_path)


@pytest.mark.parametrize("name", sorted(SMALL), ids=sorted(SMALL))
def test_every_model_forecasts_k_modes_with_probabilities(name: str, cache: FeatureCache) -> None:
    torch.manual_seed(0)
    model = build_model(ModelSpec(name, SMALL[name]), cache.config)
    x = to_tensors(cache.batch(np.arange(6)))
    out = model(x)
    k = model.modes
    assert out.trajectories.shape == (6, k, cache.config.future_steps, 2)
    assert out.logits.shape == (6, k)
    fc = model.predict(x)
    np.testing.assert_allclose(fc.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    loss = model.loss(out, x)
    assert torch.isfinite(loss.total)


def test_registry_lists_the_four_models() -> None:
    assert set(MODELS) == set(SMALL)


def test_constant_velocity_by_construction(cache: FeatureCache) -> None:
    batch = cache.batch(np.arange(4))
    v = batch.agent_velocity_mps[:, 0, -1].astype(np.float64)
    model = build_model(ModelSpec("constant_velocity"), cache.config)
    traj = model.predict(to_tensors(batch)).trajectories[:, 0]
    t = np.arange(1, cache.config.future_steps + 1) * 0.1
    np.testing.assert_allclose(traj, v[:, None, :] * t[None, :, None], rtol=1e-5, atol=1e-5)


def test_nearest_neighbor_returns_the_futures_it_memorised(cache: FeatureCache) -> None:
    model = build_model(ModelSpec("nearest_neighbor", {"modes": 3}), cache.config)
    train = [to_tensors(cache.batch(np.arange(i, min(i + 8, cache.num_samples)))) for i in range(0, 24, 8)]
    model.fit_examples(train)
    x = train[0]
    fc = model.predict(x)
    full = x.future_valid.all(dim=1).numpy()
    # a memorised sample is its own nearest neighbour: its true future is the most probable mode
    best = fc.probabilities.argmax(axis=1)
    got = fc.trajectories[np.arange(x.size), best]
    np.testing.assert_allclose(got[full], x.future_xy_m.numpy()[full], atol=1e-6)


def test_model_files_round_trip_and_refuse_other_models(cache: FeatureCache, tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = build_model(ModelSpec("mlp", SMALL["mlp"]), cache.config)
    path = save_model(tmp_path / "m.pt", model, cache.config, {"note": "x"})
    back, features, extra = load_model(path)
    assert features == cache.config
    assert extra == {"note": "x"}
    for a, b in zip(model.state_dict().values(), back.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    other = build_model(ModelSpec("transformer", SMALL["transformer"]), cache.config)
    doc = torch.load(path, weights_only=True)
    with pytest.raises(CheckpointError, match="checkpoint of 'mlp'"):
        other.check_compatible(doc["meta"], str(path))
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_model(tmp_path / "junk.pt")


def test_model_files_do_not_run_code(tmp_path: Path) -> None:
    """A pickle that would call a function is refused by weights_only loading."""
    import pickle

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"format": "datadrive-model/1", "x": Evil()}))
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "evil.pt")


def test_a_gpu_where_there_is_none_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(DeviceError, match="unknown device"):
        resolve_device("tpu")


def test_planning_policy_plans_in_ego_and_world_frames(cache: FeatureCache) -> None:
    torch.manual_seed(0)
    model = build_model(ModelSpec("transformer", SMALL["transformer"]), cache.config)
    batch = cache.batch(np.arange(5))
    plan = PlanningPolicy(model, cache.config).plan(batch)
    assert plan.xy_m.shape == (5, cache.config.future_steps, 2)
    from datadrive.core.frames import from_frame

    np.testing.assert_allclose(
        plan.world_xy_m, from_frame(plan.xy_m, batch.origin_xy_m[:, None], batch.origin_heading_rad[:, None])
    )
    # a model without a planning head plans with its most probable mode
    cv = build_model(ModelSpec("constant_velocity"), cache.config)
    p2 = PlanningPolicy(cv, cache.config).plan(batch)
    np.testing.assert_allclose(p2.xy_m, cv.predict(to_tensors(batch)).trajectories[:, 0], atol=1e-6)


def test_model_planner_satisfies_the_simulator_interface(cache: FeatureCache, tmp_path: Path) -> None:
    sim = pytest.importorskip("datadrive.sim.policies")
    model = build_model(ModelSpec("constant_velocity"), cache.config)
    path = save_model(tmp_path / "cv.pt", model, cache.config)
    planner = ModelPlanner.from_file(path)
    assert isinstance(planner, sim.Planner)
    s, a = 2, 3
    inputs = sim.PlanningInput(
        agents_xy_m=np.array([[[10.0, 0.0], [0.0, 5.0], [30.0, 3.0]]] * s),
        agents_heading_rad=np.zeros((s, a)),
        agents_velocity_mps=np.ones((s, a, 2)),
        agents_size_m=np.full((s, a, 2), 2.0),
        agents_type=np.zeros((s, a), dtype=np.int64),
        agents_valid=np.ones((s, a), dtype=bool),
        ego_speed_mps=np.array([5.0, 0.0]),
        route_xy_m=np.stack([np.linspace(0, 80, 40), np.zeros(40)], -1)[None].repeat(s, 0),
        time_s=0.0,
    )
    wp = planner.plan(inputs)
    assert wp.shape == (s, cache.config.future_steps, 2)
    # constant velocity at the ego's speed along its heading
    np.testing.assert_allclose(wp[0, :, 0], 5.0 * np.arange(1, 61) * 0.1, atol=1e-4)
    np.testing.assert_allclose(wp[1], 0.0, atol=1e-6)
    policy = sim.TrajectoryPolicy(planner)
    assert policy.planner is planner


def test_agent_step_features_by_hand_and_for_the_first_agents_only(cache: FeatureCache) -> None:
    from datadrive.models import agent_step_features

    batch = cache.batch(np.arange(5))
    x = to_tensors(batch)
    valid = batch.agent_valid.astype(np.float64)[..., None]
    h = batch.agent_heading_rad.astype(np.float64)[..., None]
    by_hand = (
        np.concatenate(
            [
                batch.agent_xy_m / 10.0,
                np.cos(h),
                np.sin(h),
                batch.agent_velocity_mps / 10.0,
                valid,
            ],
            axis=-1,
        )
        * valid
    )
    full = agent_step_features(x, 10.0)
    assert full.shape == (*batch.agent_valid.shape, 7)
    np.testing.assert_allclose(full.numpy(), by_hand, atol=1e-6)
    assert batch.agent_xy_m.shape[1] > 3
    first = agent_step_features(x, 10.0, agents=3)
    assert torch.equal(first, full[:, :3])  # the same values, the others not computed
