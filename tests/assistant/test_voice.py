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


needs_synths = pytest.mark.skipif(
    (shutil.which("flite") is None or shutil.which("festival") is None)
    and os.environ.get("CI", "").lower() != "true",
    reason="flite and festival are not installed (make sysdeps installs them)",
)


@needs_synths
def test_three_synthesizers_and_held_out_voices() -> None:
    from datadrive.assistant.voice.corpus import speaker_pool
    from datadrive.assistant.voice.synth import Voice, speak_many

    train, test = speaker_pool("train"), speaker_pool("test")
    assert test.flite == ("slt",)
    assert set(test.festival) == {"ked_diphone", "cmu_us_slt_arctic_hts"}
    assert {"awb", "rms", "kal16"} <= set(train.flite)
    assert train.festival == ("kal_diphone",)
    for field in ("accents", "variants", "flite", "festival"):  # whole voices are held out
        assert not set(getattr(train, field)) & set(getattr(test, field))
    jobs = [
        ("hey datadrive", Voice("slt", 160, 50, engine="flite")),
        ("hey datadrive", Voice("kal_diphone", 160, 50, engine="festival")),
        ("hey datadrive", Voice("kal_diphone", 160, 70, engine="festival")),  # same process, pitch shifted
        ("hey datadrive", Voice("en-us+m3", 160, 50)),
    ]
    audio = speak_many(jobs, threads=2)
    for x in audio:
        assert 0.7 < x.shape[0] / 16000 < 2.5
        assert np.abs(x).max() > 0.05

    # a higher pitch moves the spectral centroid up (sox's pitch shift, tempo kept)
    def centroid(x: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(x))
        return float((spec * np.arange(spec.size)).sum() / spec.sum())

    assert centroid(audio[2]) > centroid(audio[1])
    assert abs(audio[2].shape[0] - audio[1].shape[0]) < 0.05 * audio[1].shape[0]


def test_stream_counting_detections_false_wakes_and_prefixes() -> None:
    """The car's bookkeeping on hand-made scores: what counts as a detection, a false wake, a prefix."""
    from datadrive.assistant.voice.wakeword import Stream, StreamScores, smooth_scores, triggers

    ends = np.arange(1, 301) / 10.0  # a score every 100 ms over 30 s
    scores = np.zeros(300)
    scores[(ends >= 5.6) & (ends <= 5.9)] = 0.9  # just after the phrase at 4.0-5.2 s: a detection
    scores[(ends >= 12.0) & (ends <= 12.2)] = 0.95  # nothing there: a false wake
    scores[(ends >= 12.5) & (ends <= 12.6)] = 0.95  # within the refractory period: no second wake
    scores[(ends >= 21.0) & (ends <= 21.3)] = 0.8  # inside a prefix phrase ("hey data driven")
    stream = Stream(np.zeros(30 * 16000, np.float32), [(4.0, 5.2), (25.0, 26.0)], [(20.0, 21.0)], "engine")
    s = StreamScores([ends], [scores], [stream], 30.0, 0.1)
    c = s.count(0.7, 2.0)
    assert (c["detected"], c["positives"], c["false_wakes"], c["prefix_wakes"]) == (1, 2, 1, 1)
    assert c["missed"] == [1]
    # negative time: 30 s minus each phrase's span + 1.2 s (2.4 + 2.2) and the prefix's (2.2)
    assert s.negative_hours == pytest.approx((30.0 - 2.4 - 2.2 - 2.2) / 3600)
    assert c["false_wakes_per_hour"] == pytest.approx(1 / s.negative_hours)
    assert s.count(0.99, 2.0)["detected"] == 0
    assert smooth_scores(np.array([0.0, 0.3, 0.9, 0.9]), 3).tolist() == pytest.approx([0.0, 0.15, 0.4, 0.7])
    assert triggers(ends, scores, 0.9, 2.0) == [(5.6, 0.9), (12.0, 0.95)]


def test_detector_starts_with_a_full_window_of_noise_floor() -> None:
    """A phrase at the very start of a file can be heard: the first window ends 100 ms in."""
    from datadrive.assistant.voice.wakeword import WakeWordModel, _net, small_config

    config = small_config()  # 2.2 s windows: 218 frames
    model = WakeWordModel(config, _net(config), 0.5)
    feats = np.random.default_rng(0).normal(-6.0, 1.0, (300, 40)).astype(np.float32)
    ends, raw = model.scores(feats)
    # 208 frames of lead-in: windows start at 0, 10, ..., 290 of the 508 frames
    assert raw.shape == (30,)
    # a window ending at input frame k covers samples up to (k - 1) * 160 + 400
    assert ends[0] == pytest.approx((9 * 160 + 400) / 16000)
    assert ends[-1] == pytest.approx((299 * 160 + 400) / 16000)
    whole_ends, whole = model.scores(feats, lead_in=False)  # whole windows of the input only
    assert whole.shape == (9,)  # starts 0, 10, ..., 80
    assert whole_ends[0] == pytest.approx((217 * 160 + 400) / 16000)
    # the lead-in's last 9 windows end at input frames 220, ..., 300: whole windows of feats[2:]
    assert np.allclose(model.scores(feats[2:], lead_in=False)[1], raw[-9:], atol=1e-6)
    short_ends, short = model.scores(feats[:50], lead_in=False)  # too short: padded to one window
    assert short.shape == (1,)
    assert short_ends[0] == pytest.approx((49 * 160 + 400) / 16000)


def test_curve_plot_draws_each_model_and_the_anchor(tmp_path: Path) -> None:
    from datadrive.assistant.voice.wakeword import EvalReport, plot_curve

    def report(shift: float) -> EvalReport:
        curve = [(th, min(1.0, 1.2 - th + shift), 100 * (1 - th)) for th in (0.5, 0.9, 0.99, 0.999)]
        anchor = [{"detection_rate": 0.05, "false_wakes_per_hour": 0.0}]
        return EvalReport(0.99, curve[2][1], curve[2][2], 400, 1.8, curve, anchor, 0.01, {})

    path = tmp_path / "curve.png"
    plot_curve(report(0.0), path, others=[("older model", report(-0.1))], label="new model")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    img = matplotlib.image.imread(str(path))
    assert img.shape[:2] == (480, 720)  # 6 x 4 in at 120 dpi


@needs_espeak
def test_bundled_wake_word_model() -> None:
    from datadrive.assistant.voice.corpus import speaker_pool
    from datadrive.assistant.voice.noise import cabin_noise, mix
    from datadrive.assistant.voice.synth import Voice, speak_many
    from datadrive.assistant.voice.wakeword import BUNDLED_MODEL, load_model

    assert BUNDLED_MODEL.stat().st_size < 2_000_000
    model = load_model()
    assert model.meta["trainer"] == "datadrive.train.fit_task"
    test = speaker_pool("test")
    rng = np.random.default_rng(5)
    voices = [Voice(a, 160, 50) for a in test.accents[:6]]
    said = speak_many([("hey datadrive", v) for v in voices], threads=2)
    hits = 0
    for x in said:
        x = np.concatenate([np.zeros(8000, np.float32), x, np.zeros(24000, np.float32)])
        hits += bool(model.detect(mix(x, cabin_noise(x.shape[0], rng), 20.0)))
    assert hits >= 4  # plain held-out accents at 20 dB: most are heard (the streamed evaluation is harder)
    speech = np.concatenate(
        speak_many(
            [
                ("the interpreter then tries the reflected operation", Voice(a, 170, 50))
                for a in test.accents[:4]
            ],
            threads=2,
        )
    )
    assert model.detect(mix(speech, cabin_noise(speech.shape[0], rng), 15.0)) == []


@needs_espeak
@pytest.mark.slow
def test_wake_word_trains_through_the_project_trainer(tmp_path: Path) -> None:
    import json

    import torch

    from datadrive.assistant.voice.wakeword import build_training_set, load_model, small_config, train

    config = small_config(
        positives=40, sentences=20, near_misses=20, noise_windows=20, epochs=3, val_minutes=0
    )
    data = build_training_set(config)
    assert set(data.kinds) >= {"positive", "partial", "sentence", "near_miss", "noise"}
    model = train(config, run_dir=tmp_path / "run", dataset=data)
    assert model.meta["trainer"] == "datadrive.train.fit_task"
    run = json.loads((tmp_path / "run" / "first" / "run.json").read_text())  # the trainer's own record
    assert run["steps"] > 0
    losses = [h["train_loss"] for h in model.meta["history"]]
    assert losses[-1] < losses[0]
    model.save(tmp_path / "m.pt")
    again = load_model(tmp_path / "m.pt")
    x = torch.from_numpy(data.x[:8].astype(np.float32)).transpose(1, 2).contiguous()
    model.net.eval()
    again.net.eval()
    with torch.no_grad():
        assert torch.equal(model.net(x), again.net(x))
    assert again.threshold == model.threshold


def test_ipa_to_arpabet_by_hand() -> None:
    from datadrive.assistant.voice.asr import ascii_words, ipa_to_arpabet

    # espeak-ng -v fi --ipa: Hakaniemi, Kauppatori (the geminate pp is one P), Töölön
    assert ipa_to_arpabet("hˈakanˌiemɪ") == "HH AA K AA N IY EH M IH"
    assert ipa_to_arpabet("kˈaupːatˌorɪ") == "K AW P AA T OW R IH"
    assert ipa_to_arpabet("tˈøːløn") == "T ER L ER N"
    assert ipa_to_arpabet("ɹˈeɪlweɪ") == "R EY L W EY"
    assert ascii_words("Töölön tori") == ["toolon", "tori"]
    with pytest.raises(ValueError, match="no phones"):
        ipa_to_arpabet("ˈˌː")


@needs_espeak
def test_recognizer_gives_place_names_pronunciations() -> None:
    from datadrive.assistant.intents import parse_question
    from datadrive.assistant.voice.asr import CommandRecognizer
    from datadrive.assistant.voice.commands import command_cases, intent_slots

    places = ["Hakaniemi", "Töölön tori", "Helsinki Cathedral"]
    plain = CommandRecognizer(places, pronounce=False)
    assert plain.skipped_places == ["Hakaniemi", "Töölön tori"]
    rec = CommandRecognizer(places)
    assert rec.skipped_places == []
    assert {"hakaniemi", "toolon"} <= set(rec.added_words)
    assert "toolon tori" in rec.grammar
    cases = command_cases(places, 10, seed=1)
    assert {c.family for c in cases} == {"event", "health", "statistic", "travel", "trip"}
    for c in cases:  # what should be heard parses to what was said
        assert intent_slots(parse_question(c.words)) == intent_slots(parse_question(c.spoken))


def test_word_errors_by_hand() -> None:
    from datadrive.assistant.voice.commands import word_errors

    ref = ["what", "was", "my", "top", "speed"]
    assert word_errors(ref, ref) == 0
    assert word_errors(ref, ["what", "was", "my", "speed"]) == 1  # one deletion
    assert word_errors(ref, ["what", "was", "my", "top", "top", "speed"]) == 1  # one insertion
    assert word_errors(ref, ["what", "is", "my", "stop", "speed"]) == 2  # two substitutions
    assert word_errors(ref, []) == 5
    assert word_errors([], ["hello", "there"]) == 2
    # "route from a to b" heard as "route to b": two deletions, not four substitutions
    assert word_errors(["route", "from", "a", "to", "b"], ["route", "to", "b"]) == 2


def test_negative_audio_and_mining_score_every_streamed_window() -> None:
    """Hard-negative mining sees what the streaming detector sees: every window 100 ms apart."""
    from dataclasses import replace

    from datadrive.assistant.voice.wakeword import (
        Clips,
        WakeWordModel,
        _mine,
        _net,
        negative_audio,
        small_config,
        train,
    )
    from datadrive.errors import ConfigError

    rng = np.random.default_rng(3)
    t = np.arange(48000) / 16000.0

    def tone(f: float, s: float) -> np.ndarray:
        return (0.3 * np.sin(2 * np.pi * f * t[: int(16000 * s)])).astype(np.float32)

    clips = Clips(
        {
            "positive": [tone(300 + 50 * i, 0.9) for i in range(4)],
            "sentence": [
                tone(500 + 40 * i, 2.5) + 0.01 * rng.standard_normal(40000).astype(np.float32)
                for i in range(6)
            ],
            "near_miss": [tone(700, 1.0)],
        }
    )
    config = small_config()
    audio = negative_audio(config, clips, 0.5, seed=1)
    total_s = sum(a.shape[0] for a in audio) / 16000
    assert 30.0 <= total_s <= 30.0 + 60.0 + 3.0
    assert all(np.isfinite(a).all() and np.abs(a).max() <= 1.0 for a in audio)
    again = negative_audio(config, clips, 0.5, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(audio, again, strict=True))  # seeded

    model = WakeWordModel(config, _net(config), 0.5)
    f = config.frames
    windows = sum(1 + (1 + (a.shape[0] - 400) // 160 - f) // 10 for a in audio)
    every = _mine(model, audio, f, floor=0.0)
    assert len(every) == windows
    assert every[0].shape == (f, 40)
    assert np.allclose(every[0].mean(axis=0), 0.0, atol=1e-4)  # normalised as the detector sees it
    assert _mine(model, audio, f, floor=1.01) == []
    with pytest.raises(ConfigError, match="width"):
        train(replace(config, width=48), run_dir=Path("unused"), dataset=None, init=model)


def test_training_set_adds_shifted_voices_and_streamed_negatives() -> None:
    """Phrases and near misses get pitch/tempo-shifted copies; random streamed windows join the negatives."""
    from dataclasses import replace

    from datadrive.assistant.voice.wakeword import Clips, build_training_set, small_config

    t = np.arange(32000) / 16000.0

    def tone(f: float, s: float) -> np.ndarray:
        return (0.3 * np.sin(2 * np.pi * f * t[: int(16000 * s)])).astype(np.float32)

    clips = Clips(
        {
            "positive": [tone(300 + 50 * i, 0.9) for i in range(3)],
            "sentence": [tone(500 + 40 * i, 1.8) for i in range(4)],
            "near_miss": [tone(700, 1.0), tone(900, 0.8)],
        }
    )
    plain = build_training_set(small_config(augment=1, noise_windows=2), clips=clips)
    config = replace(
        small_config(augment=1, noise_windows=2), perturbed=1, stream_negatives=25, pitch_cents=(700.0, 800.0)
    )
    data = build_training_set(config, clips=clips)
    kinds = np.array(data.kinds)
    assert (kinds == "positive").sum() == 2 * (np.array(plain.kinds) == "positive").sum() == 6
    assert (kinds == "near_miss").sum() == 4
    assert (kinds == "stream").sum() == 25
    assert (data.y[kinds == "stream"] == 0).all()
    assert data.x.shape == (kinds.shape[0], config.frames, N_MELS)
    assert np.isfinite(data.x.astype(np.float32)).all()
    # a window of streamed audio is normalised like every other (per-band mean removed)
    assert np.allclose(data.x[kinds == "stream"].astype(np.float32).mean(axis=1), 0.0, atol=2e-2)
    # the shifted copies are higher: 700-800 cents up moves a 300 Hz tone to 450-476 Hz
    from datadrive.assistant.voice.synth import perturb

    up = perturb(tone(300, 0.9), pitch_cents=750.0)
    peak_hz = np.argmax(np.abs(np.fft.rfft(up[2000:12000]))) * 16000 / 10000
    assert 440 <= peak_hz <= 485


def test_every_spoken_command_template_is_a_request_the_parser_understands() -> None:
    """The commands' test set asks only what typed questions can ask (else 'intent right' is vacuous)."""
    from datadrive.assistant.intents import parse_question
    from datadrive.assistant.voice.commands import _TEMPLATES, command_cases

    kinds = {
        "statistic": {"stat", "threshold"},
        "event": {"events", "brake_why", "stat"},
        "health": {"health", "can"},
        "trip": {"trip", "distance", "duration"},
        "travel": {"route", "pois"},
    }
    cases = command_cases(["Kamppi", "Hakaniemi", "Töölön tori", "Kallio"], 400, seed=3)
    seen = set()
    for case in cases:
        assert parse_question(case.words).kind in kinds[case.family], case.words
        seen.add(case.words)
    assert sum(len(t) for t in _TEMPLATES.values()) >= 50
    assert len(seen) >= 100  # numbers, clock times and places vary
