"""``make demo``: the user's first look at what datadrive reads.

Inspects every sample log under a folder, renders one bird's-eye PNG per
source (map, tracks, ego highlighted) and writes ``index.html`` showing them
with their inspect tables. With no samples it explains where each dataset
can be downloaded and exits cleanly.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from datadrive.core.scenario import Scenario
from datadrive.core.summary import SUMMARY_KEYS, summarize, summarize_telemetry
from datadrive.core.telemetry import Telemetry
from datadrive.errors import InputError, UnsupportedFormatError
from datadrive.sources import DEFAULT_REGISTRY, Registry, Unit

__all__ = ["DemoReport", "run_demo"]


@dataclass
class DemoReport:
    """What the demo found and wrote."""

    scenarios: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    telemetry: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    images: dict[str, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    unclaimed: int = 0


def download_help(registry: Registry = DEFAULT_REGISTRY) -> str:
    """Where each dataset can be downloaded, and how to point datadrive at it."""
    lines = [
        "No sample logs found. datadrive reads these formats; download any of them:",
        "",
    ]
    for adapter in registry.adapters:
        lines.append(f"  {adapter.name:<28} {adapter.download_hint}")
    lines += [
        "",
        "Then point datadrive at the folder that holds them, e.g.",
        "  DATADRIVE_SAMPLES=/data/av-samples make demo",
    ]
    return "\n".join(lines)


def run_demo(
    samples: Path, out: Path, *, console: Console, registry: Registry = DEFAULT_REGISTRY
) -> DemoReport:
    """Inspect and render every sample under ``samples`` into ``out``.

    Args:
        samples: Folder of sample logs.
        out: Output folder (created); gets ``<source>.png`` and ``index.html``.
        console: Where progress and tables go.
        registry: Adapters to use.

    Returns:
        The report (also written as ``out/index.html`` and ``out/summary.jsonl``).
    """
    report = DemoReport()
    found = registry.scan([samples]) if samples.is_dir() else None
    if found is None or not found.units:
        console.print(download_help(registry), highlight=False, soft_wrap=True, markup=False)
        return report
    report.unclaimed = len(found.unclaimed)
    out.mkdir(parents=True, exist_ok=True)
    first: dict[str, Scenario] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("reading samples", total=len(found.units))
        current: Unit | None = None
        for unit, item in registry.read(found.units):
            if unit is not current:
                if current is not None:
                    progress.advance(task)
                current = unit
                progress.update(task, description=escape(f"reading {unit.path.name[:40]}"))
            if isinstance(item, UnsupportedFormatError):
                report.unsupported.append(str(item))
            elif isinstance(item, InputError):
                report.failed.append(str(item))
            else:
                _collect(report, first, item)
        progress.advance(task)
        task = progress.add_task("rendering", total=len(first))
        from datadrive.viz import render_bev

        for source, scenario in sorted(first.items()):
            path = render_bev(scenario, out / f"{source}.png")
            report.images[source] = path.name
            progress.advance(task)
    _write(report, out)
    console.print(
        f"{sum(len(v) for v in report.scenarios.values())} scenarios and "
        f"{sum(len(v) for v in report.telemetry.values())} telemetry logs from "
        f"{len(report.scenarios) + len(report.telemetry)} sources; "
        f"{len(report.unsupported)} unsupported, {len(report.failed)} failed, "
        f"{report.unclaimed} other files. Report: {out / 'index.html'}",
        highlight=False,
    )
    for line in report.failed:
        console.print(f"[red]failed:[/] {escape(line)}", highlight=False)
    return report


def _collect(report: DemoReport, first: dict[str, Scenario], record: Scenario | Telemetry) -> None:
    if isinstance(record, Telemetry):
        report.telemetry[record.source].append(summarize_telemetry(record))
        if record.ego is not None:
            first.setdefault(record.source, record.ego)
        return
    report.scenarios[record.source].append(summarize(record))
    best = first.get(record.source)
    if best is None or _showcase_score(record) > _showcase_score(best):
        first[record.source] = record


def _showcase_score(scenario: Scenario) -> tuple[bool, int]:
    """Which scenario of a source to render: one with a map, then the busiest."""
    return scenario.map is not None, int(scenario.tracks.valid.sum())


def _write(report: DemoReport, out: Path) -> None:
    with (out / "summary.jsonl").open("w") as fh:
        for rows in report.scenarios.values():
            for row in rows:
                fh.write(json.dumps(row) + "\n")
        for rows in report.telemetry.values():
            for row in rows:
                fh.write(json.dumps(row) + "\n")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>datadrive demo</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}"
        "table{border-collapse:collapse;font-size:12px;margin:0.5em 0}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}"
        "section{margin-bottom:2.5em}img{max-width:640px;border:1px solid #ddd}</style></head><body>",
        "<h1>datadrive: samples inspected</h1>",
        "<p>One bird's-eye view per source (map, tracks by type, ego in red) with the "
        "<code>datadrive inspect</code> table of every scenario of that source.</p>",
    ]
    for source in sorted(set(report.scenarios) | set(report.telemetry)):
        parts.append(f"<section id='{html.escape(source)}'><h2>{html.escape(source)}</h2>")
        if source in report.images:
            parts.append(f"<img src='{html.escape(report.images[source])}' alt='{html.escape(source)}'>")
        if report.scenarios.get(source):
            parts.append(_html_table(report.scenarios[source]))
        for tel in report.telemetry.get(source, []):
            parts.append(_html_telemetry(tel))
        parts.append("</section>")
    if report.unsupported or report.failed:
        parts.append("<h2>Not read</h2><ul>")
        parts += [f"<li>unsupported: {html.escape(x)}</li>" for x in report.unsupported]
        parts += [f"<li><b>failed</b>: {html.escape(x)}</li>" for x in report.failed]
        parts.append("</ul>")
    parts.append("</body></html>")
    (out / "index.html").write_text("\n".join(parts))


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "track_type_counts":
        return " ".join(f"{k}={v}" for k, v in value.items())
    if key == "xy_sum_m":
        return f"{value:.3f}"
    return str(value)


def _html_table(rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in SUMMARY_KEYS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(k, r[k]))}</td>" for k in SUMMARY_KEYS) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _html_telemetry(summary: dict[str, Any]) -> str:
    columns = ("signal", "unit", "channels", "samples", "rate_hz", "duration_s")
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"
    rows = []
    for s in summary["signals"]:
        rate = "-" if s["rate_hz"] is None else f"{s['rate_hz']:.2f}"
        rows.append(
            f"<tr><td>{html.escape(s['name'])}</td><td>{html.escape(s['unit'])}</td>"
            f"<td>{html.escape(','.join(s['channels']))}</td><td>{s['num_samples']}</td>"
            f"<td>{rate}</td><td>{s['duration_s']:.2f}</td></tr>"
        )
    body = "".join(rows)
    title = html.escape(f"telemetry {summary['telemetry_id']}")
    return f"<h3>{title}</h3><table>{head}{body}</table>"
