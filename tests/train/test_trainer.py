"""The trainer: it learns, resumes exactly, stops on NaN, refuses wrong checkpoints and devices, runs DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from datadrive.curate import FeatureCache
from datadrive.errors import CheckpointError, DeviceError, NonFiniteLossError
from datadrive.models import ModelSpec, load_model
from datadrive.train import TrainConfig, fit
from learning_fixtures import SampleLake, subset_cache

TINY = ModelSpec(
    "transformer", {"d_model": 16, "heads": 2, "encoder_layers": 1, "decoder_layers": 1, "dropout": 0.1}
)


@pytest.fixture(scope="module")
def cache(small_cache_path: Path) -> FeatureCache:
    """12 training and 4 validation samples of the real cache: the loop's behaviour, not learning."""
    return FeatureCache(small_cache_path)


class InterruptError(Exception):
    """Stands for a crash in the middle of a run."""


def weights(path: Path) -> list[torch.Tensor]:
    model, _, _ = load_model(path)
    return list(model.state_dict().values())


def test_a_tiny_model_overfits_a_handful_of_real_scenarios(sample_lake: SampleLake, tmp_path: Path) -> None:
    """8 real samples, 150 epochs: the training minADE falls from about 19 m to under 0.5 m."""
    # everything but 8 samples goes to another split (the cache's split column is what the trainer reads)
    sub = FeatureCache(subset_cache(sample_lake.cache_path, tmp_path / "subset", train=8, val=0))
    assert sub.split_indices("train").size == 8
    config = TrainConfig(
        model=ModelSpec("mlp", {"hidden": 128, "layers": 2, "modes": 1}),
        epochs=150,
        batch_size=8,
        learning_rate=3e-3,
        warmup_steps=5,
        val_split=None,
        checkpoint_every=10_000,
    )
    result = fit(sub, config, tmp_path / "run")
    first, last = result.history[0]["train_minADE"], result.history[-1]["train_minADE"]
    assert first > 1.0
    assert last < 0.5, (first, last)  # metres of average displacement, from about 19 m
    assert last < first / 20


def test_resume_after_an_interruption_reproduces_the_uninterrupted_run(
    cache: FeatureCache, tmp_path: Path
) -> None:
    # 3 epochs of 3 batches: checkpoints at steps 3, 6 and each epoch end; the crash comes in step 7
    config = TrainConfig(model=TINY, epochs=3, batch_size=4, checkpoint_every=3, warmup_steps=2)
    straight = fit(cache, config, tmp_path / "a")
    assert straight.steps == 9

    def crash(info) -> None:  # type: ignore[no-untyped-def]
        if info.step == 7:
            raise InterruptError

    with pytest.raises(InterruptError):
        fit(cache, config, tmp_path / "b", progress=crash)
    resumed = fit(cache, config, tmp_path / "b")
    assert resumed.resumed_from == 6  # the last checkpoint before the crash
    assert resumed.steps == straight.steps
    for x, y in zip(weights(straight.model_path), weights(resumed.model_path), strict=True):
        assert torch.equal(x, y)
    assert [h["train_loss"] for h in resumed.history] == pytest.approx(
        [h["train_loss"] for h in straight.history]
    )


def test_step_time_and_history_are_recorded(cache: FeatureCache, tmp_path: Path) -> None:
    result = fit(cache, TrainConfig(model=TINY, epochs=2, batch_size=8), tmp_path / "r")
    doc = json.loads((tmp_path / "r" / "run.json").read_text())
    assert len(doc["history"]) == 2
    assert doc["step_time"]["p50_ms"] > 0
    assert len(result.step_ms) == result.steps
    assert {"train_loss", "val_loss", "samples_per_s", "step_ms_p50", "learning_rate"} <= set(
        doc["history"][0]
    )


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    cache: FeatureCache, tmp_path: Path
) -> None:
    config = TrainConfig(
        model=TINY, epochs=3, batch_size=8, learning_rate=float("inf"), checkpoint_every=1, warmup_steps=0
    )
    with pytest.raises(NonFiniteLossError, match=r"NaN|nan"):
        fit(cache, config, tmp_path / "r")
    ckpt = tmp_path / "r" / "checkpoints" / "last.pt"
    if ckpt.exists():  # the steps before the NaN were finite: their state is what is saved
        doc = torch.load(ckpt, weights_only=True)
        assert all(torch.isfinite(v).all() for v in doc["model"].values())
    assert not (tmp_path / "r" / "model.pt").exists()


def test_a_checkpoint_of_another_model_or_config_is_refused(cache: FeatureCache, tmp_path: Path) -> None:
    fit(cache, TrainConfig(model=TINY, epochs=1, batch_size=8), tmp_path / "r")
    other = TrainConfig(model=ModelSpec("mlp", {"hidden": 16}), epochs=1, batch_size=8)
    with pytest.raises(CheckpointError, match="checkpoint of 'transformer'"):
        fit(cache, other, tmp_path / "r")
    longer = TrainConfig(model=TINY, epochs=3, batch_size=8)
    with pytest.raises(CheckpointError, match="another train_config"):
        fit(cache, longer, tmp_path / "r")


def test_a_gpu_requested_where_there_is_none(cache: FeatureCache, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        fit(cache, TrainConfig(model=TINY, device="cuda"), tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_an_empty_split_is_a_clear_error(cache: FeatureCache, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no split 'nope'"):
        fit(cache, TrainConfig(model=TINY, train_split="nope", batch_size=8), tmp_path / "r")


def test_baselines_train_without_an_optimizer(cache: FeatureCache, tmp_path: Path) -> None:
    r = fit(cache, TrainConfig(model=ModelSpec("nearest_neighbor"), epochs=3, batch_size=8), tmp_path / "nn")
    model, _, _ = load_model(r.model_path)
    assert model.keys.shape[0] > 0  # type: ignore[union-attr]
    assert "val_loss" in r.history[0]


@pytest.mark.slow
def test_ddp_with_two_gloo_processes(small_cache_path: Path, tmp_path: Path) -> None:
    """torchrun starts 2 CPU processes (gloo); together they take every batch of the plan once."""
    script = tmp_path / "ddp.py"
    script.write_text(
        "import json, sys\n"
        "from pathlib import Path\n"
        "import os, torch.distributed as td\n"
        "from datadrive.curate import FeatureCache\n"
        "from datadrive.models import ModelSpec\n"
        "from datadrive.train import TrainConfig, fit, distributed_from_env, init_process_group\n"
        "d = distributed_from_env(dict(os.environ))\n"
        "init_process_group(d, 'cpu')\n"
        f"cfg = TrainConfig(model=ModelSpec('transformer', {TINY.config!r}), epochs=2, batch_size=4)\n"
        f"r = fit(FeatureCache(Path({str(small_cache_path)!r})), cfg, Path({str(tmp_path / 'run')!r}), dist=d)\n"
        f"Path({str(tmp_path)!r}, f'rank{{d.rank}}.json').write_text(json.dumps({{'steps': r.steps, 'world': td.get_world_size()}}))\n"
        "td.destroy_process_group()\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
         "--master-port", str(_free_port()), str(script)],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    cache = FeatureCache(small_cache_path)
    from datadrive.curate import epoch_batches

    full = sum(len(epoch_batches(cache, cache.split_indices("train"), 4, seed=0, epoch=e)) for e in range(2))
    assert (
        ranks[0]["steps"]
        == ranks[1]["steps"]
        == sum(
            len(epoch_batches(cache, cache.split_indices("train"), 4, seed=0, epoch=e, rank=0, world_size=2))
            for e in range(2)
        )
    )
    assert ranks[0]["steps"] * 2 <= full
    assert (tmp_path / "run" / "model.pt").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_uninterrupted_weights(small_cache_path: Path, tmp_path: Path) -> None:
    """SIGKILL a training process once it has checkpointed; the same call again finishes it exactly."""
    import signal
    import time

    cache_path = small_cache_path
    # 30 steps of 4 samples: the first checkpoint (step 2) comes long before the end
    config = TrainConfig(model=TINY, epochs=10, batch_size=4, checkpoint_every=2, warmup_steps=2)
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from datadrive.curate import FeatureCache\n"
        "from datadrive.train import TrainConfig, fit\n"
        f"cfg = TrainConfig.from_json(json.loads({json.dumps(json.dumps(config.as_json()))}))\n"
        f"fit(FeatureCache(Path({str(cache_path)!r})), cfg, Path({str(tmp_path / 'killed')!r}))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True
    )
    ckpt = tmp_path / "killed" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 240
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert ckpt.exists(), "the run never checkpointed"
    assert not (tmp_path / "killed" / "model.pt").exists(), "the run finished before the kill"
    cache = FeatureCache(cache_path)
    resumed = fit(cache, config, tmp_path / "killed")
    assert resumed.resumed_from is not None
    assert resumed.resumed_from > 0
    straight = fit(cache, config, tmp_path / "straight")
    for x, y in zip(weights(straight.model_path), weights(resumed.model_path), strict=True):
        assert torch.equal(x, y)


def _xor_task(seed: int = 0):  # type: ignore[no-untyped-def]
    """A TensorTask: a small MLP on 2-D points labelled by the quadrant (XOR), with its own loss."""
    from datadrive.models.base import LossTerms
    from datadrive.train import TensorTask

    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(512, 2)).astype(np.float32)
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(np.float32)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(2, 32), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(32, 1)
    )

    def loss(model: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> LossTerms:
        logits = model(xb).squeeze(1)
        acc = float(((logits > 0) == (yb > 0.5)).float().mean())
        return LossTerms(torch.nn.functional.binary_cross_entropy_with_logits(logits, yb), {"accuracy": acc})

    splits = {"train": np.arange(448), "val": np.arange(448, 512)}
    return TensorTask(net, torch.from_numpy(x), torch.from_numpy(y), splits, loss, meta={"name": "xor-mlp"})


def test_fit_task_trains_any_model_and_resumes_exactly(tmp_path: Path) -> None:
    """A model outside datadrive.models through the same loop: it learns, and a run killed half way
    resumes to the uninterrupted run's weights."""
    from datadrive.train import fit_task

    config = TrainConfig(
        model=ModelSpec("xor-mlp"), epochs=30, batch_size=32, learning_rate=1e-2, warmup_steps=5,
        checkpoint_every=7, seed=3, amp=False,
    )  # fmt: skip
    whole = _xor_task()
    result = fit_task(whole, config, tmp_path / "whole")
    assert result.history[-1]["val_accuracy"] > 0.9  # XOR is not linear: the hidden layer learned it
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.samples_per_s > 0
    assert (tmp_path / "whole" / "model.pt").is_file()
    assert json.loads((tmp_path / "whole" / "run.json").read_text())["steps"] == result.steps

    seen: list[int] = []

    def crash(info) -> None:  # type: ignore[no-untyped-def]
        seen.append(info.step)
        if info.step == 200:
            raise InterruptError

    with pytest.raises(InterruptError):
        fit_task(_xor_task(), config, tmp_path / "cut", progress=crash)
    again = _xor_task()
    resumed = fit_task(again, config, tmp_path / "cut")
    assert resumed.resumed_from is not None
    assert 0 < resumed.resumed_from < 200
    for a, b in zip(whole.model.state_dict().values(), again.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_fit_task_refuses_a_checkpoint_of_another_model(tmp_path: Path) -> None:
    from datadrive.train import fit_task

    config = TrainConfig(model=ModelSpec("xor-mlp"), epochs=1, batch_size=64, amp=False)
    fit_task(_xor_task(), config, tmp_path / "run")
    other = _xor_task()
    other.meta = {"name": "another-model"}
    with pytest.raises(CheckpointError, match="another-model"):
        fit_task(other, config, tmp_path / "run")


def test_a_background_checkpoint_is_the_state_at_the_save_and_its_failure_is_raised(tmp_path: Path) -> None:
    from datadrive.train import Position, load_checkpoint, save_checkpoint, wait_for_checkpoint

    net = torch.nn.Linear(3, 2)
    meta = {"model": "linear"}
    path = tmp_path / "ck" / "last.pt"
    saved = {k: v.clone() for k, v in net.state_dict().items()}
    save_checkpoint(
        path, net, optimizer=None, scheduler=None, scaler=None, position=Position(1, 0, 5),
        history={}, fingerprint={"x": 1}, meta=meta, background=True,
    )  # fmt: skip
    with torch.no_grad():  # changed while the file may still be in flight: the checkpoint keeps the old state
        net.weight.add_(1.0)
    other = torch.nn.Linear(3, 2)
    doc = load_checkpoint(path, other, {"x": 1}, check=lambda m, where: None)  # waits for the write
    assert doc["position"] == {"epoch": 1, "batch": 0, "step": 5}
    for k, v in other.state_dict().items():
        assert torch.equal(v, saved[k])
    assert not path.with_name("last.pt.tmp").exists()
    # a write that cannot land (its folder is a file) is raised when the trainer waits for it
    blocked = tmp_path / "file"
    blocked.write_text("")
    save_checkpoint(
        blocked / "last.pt", net, optimizer=None, scheduler=None, scaler=None, position=Position(0, 0, 0),
        history={}, fingerprint={}, meta=meta, background=True,
    )  # fmt: skip
    with pytest.raises(CheckpointError, match="could not be written"):
        wait_for_checkpoint(blocked / "last.pt")
    wait_for_checkpoint(blocked / "last.pt")  # reported once
