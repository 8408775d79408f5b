"""Voice: WAV checks, espeak-ng synthesis, features, the wake word, commands, and the listen pipeline."""

from __future__ import annotations

import os
import shutil
import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from datadrive.assistant.voice.audio import read_wav, wav_bytes, write_wav
from datadrive.assistant.voice.features import N_MELS, log_mel
from datadrive.errors import CorruptFileError, EmptyLogError, InvalidValueError

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None and os.environ.get("CI", "").lower() != "true",
    reason="espeak-ng is not installed (make sysdeps installs it)",
)


def _wav(path: Path, *, rate: int = 16000, channels: int = 1, width: int = 2, frames: int = 1600) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\x00" * frames * channels * width)
    return path


@pytest.mark.parametrize(
    ("make", "error", "reason"),
    [
        (lambda p: p.write_bytes(b""), EmptyLogError, "the file is empty"),
        (lambda p: p.write_bytes(b"ID3\x04garbage mp3"), CorruptFileError, "not a WAV file"),
        (
            lambda p: _wav(p, rate=44100),
            InvalidValueError,
            "sample rate 44100 Hz; the assistant listens at 16000 Hz",
        ),
        (lambda p: _wav(p, channels=2), InvalidValueError, "2 channels"),
        (lambda p: _wav(p, width=1), InvalidValueError, "8-bit samples"),
        (lambda p: _wav(p, frames=0), EmptyLogError, "holds no audio"),
        (lambda p: p.write_bytes(_wav(p).read_bytes()[:100]), CorruptFileError, "truncated"),
        (
            lambda p: p.write_bytes(b"RIFF" + struct.pack("<I", 4) + b"WAVEjunk"),
            CorruptFileError,
            "does not decode",
        ),
    ],
    ids=["empty", "not-wav", "44k", "stereo", "8-bit", "no-audio", "truncated", "bad-chunks"],
)
def test_bad_wav_files_get_clear_errors(
    tmp_path: Path, make: object, error: type[Exception], reason: str
) -> None:
    path = tmp_path / "in.wav"
    make(path)  # type: ignore[operator]
    with pytest.raises(error, match=reason) as info:
        read_wav(path)
    assert str(path) in str(info.value)


def test_wav_round_trip(tmp_path: Path) -> None:
    x = (0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
    write_wav(tmp_path / "a.wav", x)
    y = read_wav(tmp_path / "a.wav")
    assert y.shape == x.shape
    assert np.max(np.abs(y - x)) < 1e-4
    assert wav_bytes(x)[:4] == b"RIFF"


def test_log_mel_puts_a_tone_in_its_band() -> None:
    t = np.arange(16000) / 16000
    for hz in (300.0, 1000.0, 4000.0):
        feats = log_mel(np.sin(2 * np.pi * hz * t).astype(np.float32))
        assert feats.shape == (98, N_MELS)
        # the band whose centre is nearest the tone (HTK mel scale, 60-7600 Hz) is the loudest
        mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
        centres = 700 * (10 ** (np.linspace(mel(60.0), mel(7600.0), N_MELS + 2)[1:-1] / 2595) - 1)
        assert abs(int(np.argmax(feats.mean(axis=0))) - int(np.argmin(np.abs(centres - hz)))) <= 1


@needs_espeak
def test_espeak_voices_and_speech() -> None:
    from datadrive.assistant.voice.synth import Voice, english_voices, speak, variants
    from datadrive.assistant.voice.wakeword import voice_pools

    voices = english_voices()
    assert "en-us" in voices
    assert len(voices) >= 8
    assert len(variants()) >= 20
    pools = voice_pools()
    for train, test in pools.values():
        assert test
        assert train
        assert not set(train) & set(test)
    x = speak("hey datadrive", Voice("en-gb+f3", 150, 60))
    assert 0.5 < x.shape[0] / 16000 < 2.5
    assert np.abs(x).max() > 0.05


@needs_espeak
def test_bundled_wake_word_model() -> None:
    from datadrive.assistant.voice.noise import cabin_noise, mix
    from datadrive.assistant.voice.synth import Voice, speak
    from datadrive.assistant.voice.wakeword import BUNDLED_MODEL, load_model, voice_pools

    assert BUNDLED_MODEL.stat().st_size < 2_000_000
    model = load_model()
    _, test_accents = voice_pools()["accents"]
    rng = np.random.default_rng(5)
    hits = 0
    for accent in test_accents[:6]:
        x = np.concatenate(
            [
                np.zeros(8000, np.float32),
                speak("hey datadrive", Voice(accent, 160, 50)),
                np.zeros(16000, np.float32),
            ]
        )
        x = mix(x, cabin_noise(x.shape[0], rng), 20.0)
        hits += bool(model.detect(x))
    assert hits >= 4
    speech = np.concatenate(
        [
            speak("the interpreter then tries the reflected operation", Voice(a, 170, 50))
            for a in test_accents[:4]
        ]
    )
    assert model.detect(mix(speech, cabin_noise(speech.shape[0], rng), 15.0)) == []


@needs_espeak
@pytest.mark.slow
def test_training_loop_learns_and_saves(tmp_path: Path) -> None:
    import torch

    from datadrive.assistant.voice.wakeword import build_training_set, load_model, small_config, train

    config = small_config(positives=60, sentences=30, near_misses=20, noise_windows=40, epochs=3)
    data = build_training_set(config)
    assert set(data.kinds) >= {"positive", "sentence", "near_miss", "noise"}
    model = train(config, dataset=data)
    losses = [h["loss"] for h in model.meta["history"]]
    assert losses[-1] < losses[0]
    model.save(tmp_path / "m.pt")
    again = load_model(tmp_path / "m.pt")
    x = torch.from_numpy(data.x[:8]).transpose(1, 2).contiguous()
    model.net.eval()
    again.net.eval()
    with torch.no_grad():
        assert torch.equal(model.net(x), again.net(x))
    assert again.threshold == model.threshold
