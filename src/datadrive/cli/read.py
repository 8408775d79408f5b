"""``datadrive inspect`` and ``datadrive demo``: read logs without a lake."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from datadrive.cli.shell import command, out, say
from datadrive.core.scenario import Scenario
from datadrive.core.summary import SUMMARY_KEYS, summarize, summarize_telemetry
from datadrive.core.telemetry import Telemetry
from datadrive.errors import InputError, UnknownFormatError, UnsupportedFormatError
from datadrive.sources import DEFAULT_REGISTRY

__all__ = ["demo", "inspect", "register", "scenario_table", "telemetry_table"]


@command
def inspect(
    path: Annotated[Path, typer.Argument(help="A log file, or a folder to search for logs.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per scenario per line.")] = False,
) -> None:
    """Summarise every scenario (and telemetry log) in PATH.

    A file that cannot be read is an error (exit 2). In a folder, every log
    is read: unsupported variants are listed as skipped, failures as errors
    (exit 2 at the end), the rest summarised.
    """
    found = DEFAULT_REGISTRY.scan([path])
    folder_mode = path.is_dir()
    if found.errors and not (folder_mode and found.units):
        raise found.errors[0]
    if not found.units:
        raise UnknownFormatError(path, "not a format datadrive reads (no adapter claims it)")
    rows: list[dict[str, Any]] = []
    telemetry: list[dict[str, Any]] = []
    # In a folder, an entry that cannot be used (a FIFO, a link loop, a folder
    # that cannot be listed) is reported like a log that fails to read; the rest is read.
    failures: list[InputError] = list(found.errors)
    for error in failures:
        say("error", str(error))
    for _unit, item in DEFAULT_REGISTRY.read(found.units):
        if isinstance(item, InputError) and not folder_mode:
            raise item
        if isinstance(item, UnsupportedFormatError):
            say("skipped", str(item), style="yellow")
            continue
        if isinstance(item, InputError):
            failures.append(item)
            say("error", str(item))
            continue
        summary = summarize(item) if isinstance(item, Scenario) else summarize_telemetry(item)
        if as_json:
            sys.stdout.write(json.dumps(summary) + "\n")
            sys.stdout.flush()
        elif isinstance(item, Telemetry):
            telemetry.append(summary)
        else:
            rows.append(summary)
    if not as_json:
        if rows:
            out.print(scenario_table(rows))
        for t in telemetry:
            out.print(telemetry_table(t))
    if failures:
        raise typer.Exit(code=2)


def scenario_table(rows: list[dict[str, Any]]) -> Table:
    """A Rich table of inspect summaries."""
    table = Table(title="scenarios", show_lines=False)
    for key in SUMMARY_KEYS:
        justify = "left" if key in ("scenario_id", "source", "ego_track_id") else "right"
        table.add_column(key, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        cells = []
        for key in SUMMARY_KEYS:
            value = row[key]
            if key == "track_type_counts":
                cells.append(" ".join(f"{k[:3]}={v}" for k, v in value.items()))
            elif key == "xy_sum_m":
                cells.append(f"{value:.3f}")
            else:
                cells.append("-" if value is None else escape(str(value)))
        table.add_row(*cells)
    return table


def telemetry_table(summary: dict[str, Any]) -> Table:
    """A Rich table of one telemetry log's signals."""
    table = Table(title=escape(f"telemetry {summary['telemetry_id']} ({summary['source']})"))
    for col in ("signal", "unit", "channels", "samples", "rate_hz", "duration_s"):
        table.add_column(col, justify="left" if col in ("signal", "unit", "channels") else "right")
    for sig in summary["signals"]:
        rate = sig["rate_hz"]
        table.add_row(
            escape(sig["name"]),
            escape(sig["unit"]),
            escape(
                ",".join(
                    f"{c}[{u}]" if sig["unit"] == "mixed" and u else c
                    for c, u in zip(sig["channels"], sig.get("channel_units", sig["channels"]), strict=True)
                )
            ),
            str(sig["num_samples"]),
            "-" if rate is None else f"{rate:.2f}",
            f"{sig['duration_s']:.2f}",
        )
    ego = summary["ego"]
    table.caption = f"{summary['num_can_frames']} raw CAN frames; " + (
        "no ego track"
        if ego is None
        else f"ego track: {ego['num_valid_states']} states over {ego['num_steps']} steps"
    )
    return table


@command
def demo(
    samples: Annotated[
        Path, typer.Option(help="Folder of sample logs (DATADRIVE_SAMPLES in the Makefile).")
    ] = Path("../shared/data"),
    output: Annotated[Path, typer.Option("--out", help="Where to write the report.")] = Path("out"),
    loop: Annotated[
        bool, typer.Option("--loop/--no-loop", help="Then run the loop: lake, dataset, training, evaluation.")
    ] = True,
    fleet: Annotated[int, typer.Option(help="Synthetic scenarios added to the real samples.")] = 120,
    epochs: Annotated[int, typer.Option(help="Training epochs of the loop's model.")] = 4,
) -> None:
    """Inspect and render every sample into OUT, then run the loop: lake, dataset, training, evaluation."""
    from datadrive.demo import run_demo

    report = run_demo(samples, output, console=out)
    if loop and report.scenarios:
        from datadrive.demo_loop import run_loop

        run_loop(samples, output, console=out, fleet=fleet, epochs=epochs)


def register(app: typer.Typer) -> None:
    """Add ``inspect`` and ``demo``."""
    app.command("inspect")(inspect)
    app.command("demo")(demo)
