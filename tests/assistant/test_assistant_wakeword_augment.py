"""The wake word's speaker variety: the VTLP warp, band-limiting, respelled English for accented voices."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace

import numpy as np
import pytest

from datadrive.assistant.voice.accented import ipa_letters, respell
from datadrive.assistant.voice.features import log_mel, mel_centres_hz
from datadrive.assistant.voice.wakeword import _speaker_augment, normalise, small_config, warp_mel
from datadrive.errors import ConfigError

torch = pytest.importorskip("torch")

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None and os.environ.get("CI", "").lower() != "true",
    reason="espeak-ng is not installed (make sysdeps installs it)",
)


def _tone(hz: float) -> np.ndarray:
    t = np.arange(16000) / 16000.0
    return log_mel(np.sin(2 * np.pi * hz * t).astype(np.float32))


def test_vtlp_warp_moves_a_tone_to_the_band_of_the_scaled_tone() -> None:
    x = torch.from_numpy(np.stack([_tone(1000.0), _tone(1500.0)]))
    alpha = torch.tensor([1.2, 0.8])
    warped = warp_mel(x, alpha).numpy()
    # a voice scaled by 1.2 puts the 1 kHz tone where a 1.2 kHz tone peaks; 0.8 puts 1.5 kHz at 1.2 kHz
    target = int(_tone(1200.0).mean(axis=0).argmax())
    assert int(warped[0].mean(axis=0).argmax()) == target
    assert int(warped[1].mean(axis=0).argmax()) == target
    assert int(x[0].numpy().mean(axis=0).argmax()) != target  # it did move
    assert torch.equal(warp_mel(x, torch.ones(2)), x)  # no warp: the same features


def test_vtlp_warp_commutes_with_per_band_mean_removal() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 30, 40)).astype(np.float32) + np.linspace(0, 5, 40, dtype=np.float32)
    alpha = torch.tensor([0.85, 0.95, 1.05, 1.18])
    a = warp_mel(torch.from_numpy(normalise(x)), alpha).numpy()
    b = normalise(warp_mel(torch.from_numpy(x), alpha).numpy())
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_band_limiting_flattens_only_the_bands_above_the_cut() -> None:
    config = replace(small_config(), vtlp=(1.0, 1.0), band_limit=1.0)
    x = torch.ones(64, 20, 40)
    out = _speaker_augment(x, config, torch.Generator().manual_seed(0))
    centres = mel_centres_hz()
    assert torch.equal(out[:, :, centres <= 3400.0], x[:, :, centres <= 3400.0])  # below every cut
    assert float(out[:, :, centres > 6600.0].abs().max()) == 0.0  # above every cut
    cut_bands = (out[:, 0, :] != 0).sum(dim=1)
    assert len(set(cut_bands.tolist())) > 3  # cut-offs vary
    none = _speaker_augment(x, replace(config, band_limit=0.0), torch.Generator().manual_seed(0))
    assert torch.equal(none, x)


def test_ipa_respelled_by_hand() -> None:
    # espeak-ng -v en-gb --ipa "hey datadrive": hˈeɪ dˈeɪtədɹˌaɪv
    assert ipa_letters("hˈeɪ", "it") == "hei"
    assert ipa_letters("dˈeɪtədɹˌaɪv", "it") == "deitedraiv"
    assert ipa_letters("dˈeɪtədɹˌaɪv", "cs") == "dejtedrajv"
    assert ipa_letters("ˈɔːl", "fi") == "ool"  # Finnish writes a long vowel twice
    assert ipa_letters("ˈɔːl", "it") == "ol"
    assert ipa_letters("əʊkˈeɪ", "it") == "ouchei"  # Italian "ch" keeps [k] before e
    assert ipa_letters("wˌɪtʃ", "cs") == "uič"


@needs_espeak
def test_respell_reads_english_through_espeak() -> None:
    assert respell(["hey datadrive", "hey, datadrive"], "cs") == ["hej dejtedrajv", "hej, dejtedrajv"]
    with pytest.raises(ConfigError, match="no respelling for language 'de'"):
        respell(["hey"], "de")
