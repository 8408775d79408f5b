"""RefAV output scored by the official ``av2.evaluation.scenario_mining.eval.evaluate``."""

from __future__ import annotations

import contextlib
import io
import pickle
from pathlib import Path

import numpy as np
import pytest

from datadrive.errors import MiningError
from datadrive.mining.describe import describe
from datadrive.mining.refav import REFAV_LABELS, refav_frames, write_refav
from datadrive.mining.results import select

LOG = "3bffdcff-c3a7-38b6-a0f2-64196d130958"


def _gt(samples: Path) -> dict:  # type: ignore[type-arg]
    with (samples / "av2_scenario_mining" / f"refav_gt_{LOG}.pkl").open("rb") as fh:
        out: dict = pickle.load(fh)  # type: ignore[type-arg]  # trusted sample (SOURCES.md)
    return out


def test_frames_match_the_ground_truth_layout(sample, samples: Path) -> None:  # type: ignore[no-untyped-def]
    s = sample("av2_mining")
    t = describe("stopped car")
    frames = refav_frames(s, select(t.expression, s), "stopped car")
    gt = _gt(samples)[(LOG, "stopped car")]
    assert [f["timestamp_ns"] for f in frames] == [int(f["timestamp_ns"]) for f in gt]
    for f, g in zip(frames, gt, strict=True):
        assert set(g) <= set(f) | {"is_positive"}
        n = f["translation_m"].shape[0]
        assert f["size"].shape == (n, 3)
        assert f["yaw"].shape == (n,)
        assert f["track_id"].dtype == np.int32
        assert all(REFAV_LABELS[label] == name for label, name in zip(f["label"], f["name"], strict=True))
        np.testing.assert_allclose(f["ego_translation_m"][:2], g["ego_translation_m"][:2], atol=1e-6)
    # every GT box has a box of ours at the same place (the log's own annotations are the tracks)
    f, g = frames[10], gt[10]
    d = np.hypot(*(f["translation_m"][None, :, :2] - g["translation_m"][:, None, :2]).transpose(2, 0, 1))
    assert d.min(axis=1).max() < 1e-6


def test_only_av2_sensor_logs_can_be_written(sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = sample("waymo")
    with pytest.raises(MiningError, match="AV2 sensor"):
        write_refav(tmp_path / "x.pkl", [(s, select("car", s), "car")])


@pytest.mark.slow
@pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning", "ignore::RuntimeWarning"
)
def test_official_evaluation_of_stopped_car(sample, samples: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from av2.evaluation.scenario_mining.eval import evaluate

    s = sample("av2_mining")
    t = describe("stopped car")
    out = tmp_path / "pred.pkl"
    write_refav(out, [(s, select(t.expression, s), "stopped car")])
    with out.open("rb") as fh:
        predictions = pickle.load(fh)  # written by this test
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        hota_temporal, hota_track, timestamp_ba, log_ba = evaluate(
            predictions,
            _gt(samples),
            "HOTA",
            50,
            str(samples / "av2_scenario_mining"),
            str(tmp_path / "eval"),
        )
    # the figures recorded in docs/benchmarks.md (shipped predictions: 0.429 HOTA-Temporal)
    assert hota_temporal >= 0.8
    assert hota_track >= 0.9
    assert timestamp_ba == pytest.approx(1.0)
    assert log_ba == pytest.approx(1.0)
