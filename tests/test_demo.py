"""``make demo``: one render per source, an index page, and a clean exit without samples."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from datadrive.demo import run_demo
from datadrive.sources import DEFAULT_REGISTRY


def test_demo_without_samples_explains_downloads_and_writes_nothing(tmp_path: Path) -> None:
    console = Console(record=True, width=200)
    report = run_demo(tmp_path / "empty", tmp_path / "out", console=console)
    text = console.export_text()
    assert "DATADRIVE_SAMPLES" in text
    for adapter in DEFAULT_REGISTRY.adapters:
        assert adapter.name in text
        assert adapter.download_hint in text
    assert not (tmp_path / "out").exists()
    assert not report.scenarios


def test_demo_renders_every_source(samples: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    console = Console(record=True, width=200)
    report = run_demo(samples, out, console=console)
    assert not report.failed, report.failed
    sources = set(report.scenarios) | set(report.telemetry)
    # every scenario source renders; telemetry renders when it has an ego track
    assert set(report.scenarios) <= set(report.images)
    for source in sources:
        page = (out / "index.html").read_text()
        assert f"<h2>{source}</h2>" in page
    for name in report.images.values():
        png = (out / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(png) > 10_000  # a real picture, not an empty canvas
    lines = [json.loads(line) for line in (out / "summary.jsonl").read_text().splitlines()]
    expected = sum(len(v) for v in report.scenarios.values()) + sum(len(v) for v in report.telemetry.values())
    assert len(lines) == expected
    # the sources the shared samples are known to hold (SOURCES.md)
    for source in ("av2_motion_forecasting", "av2_sensor", "waymo_open_motion", "scenarionet", "nuplan"):
        assert source in report.scenarios
