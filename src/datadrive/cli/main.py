"""The ``datadrive`` command line: a thin shell over the library.

Every :class:`~datadrive.errors.DatadriveError` becomes one line on stderr and
exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from datadrive.core.scenario import Scenario
from datadrive.core.summary import SUMMARY_KEYS, summarize, summarize_telemetry
from datadrive.core.telemetry import Telemetry
from datadrive.errors import DatadriveError, InputError, UnsupportedFormatError
from datadrive.sources import DEFAULT_REGISTRY, Adapter, Record

app = typer.Typer(
    name="datadrive",
    help="datadrive: ingest, store, mine and learn from autonomous-driving logs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_out = Console()
_err = Console(stderr=True)


def fail(message: str) -> None:
    """Print one line to stderr and exit with status 2."""
    _err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _units(path: Path) -> tuple[list[tuple[Adapter, Path]], list[Path]]:
    if path.is_dir():
        found = DEFAULT_REGISTRY.discover(path)
        if found.units:
            return found.units, found.unclaimed
    return [(DEFAULT_REGISTRY.detect(path), path)], []


def iter_records(path: Path, *, folder_mode: bool) -> Iterator[tuple[Path, Record | InputError]]:
    """Records of every input under ``path``; in folder mode errors are yielded, not raised."""
    units, _ = _units(path)
    for adapter, unit in units:
        try:
            for record in adapter.read(unit):
                yield unit, record
        except InputError as exc:
            if not folder_mode:
                raise
            yield unit, exc


@app.command()
def inspect(
    path: Annotated[Path, typer.Argument(help="A log file, or a folder to search for logs.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per scenario per line.")] = False,
) -> None:
    """Summarise every scenario (and telemetry log) in PATH."""
    try:
        folder_mode = path.is_dir() and bool(DEFAULT_REGISTRY.discover(path).units)
        rows: list[dict[str, Any]] = []
        telemetry: list[dict[str, Any]] = []
        failures: list[InputError] = []
        for _unit, item in iter_records(path, folder_mode=folder_mode):
            if isinstance(item, UnsupportedFormatError):
                _err.print(f"[yellow]skipped:[/] {item}", highlight=False, soft_wrap=True)
                continue
            if isinstance(item, InputError):
                failures.append(item)
                _err.print(f"[bold red]error:[/] {item}", highlight=False, soft_wrap=True)
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
                _out.print(scenario_table(rows))
            for t in telemetry:
                _out.print(telemetry_table(t))
        if failures:
            raise typer.Exit(code=2)
    except DatadriveError as exc:
        fail(str(exc))


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
                cells.append("-" if value is None else str(value))
        table.add_row(*cells)
    return table


def telemetry_table(summary: dict[str, Any]) -> Table:
    """A Rich table of one telemetry log's signals."""
    table = Table(title=f"telemetry {summary['telemetry_id']} ({summary['source']})")
    for col in ("signal", "unit", "channels", "samples", "rate_hz", "duration_s"):
        table.add_column(col, justify="left" if col in ("signal", "unit", "channels") else "right")
    for sig in summary["signals"]:
        rate = sig["rate_hz"]
        table.add_row(
            sig["name"],
            sig["unit"],
            ",".join(
                escape(f"{c}[{u}]") if sig["unit"] == "mixed" and u else c
                for c, u in zip(sig["channels"], sig.get("channel_units", sig["channels"]), strict=True)
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


@app.command()
def demo(
    samples: Annotated[
        Path, typer.Option(help="Folder of sample logs (DATADRIVE_SAMPLES in the Makefile).")
    ] = Path("../shared/data"),
    out: Annotated[Path, typer.Option(help="Where to write the report.")] = Path("out"),
) -> None:
    """Inspect every sample and render one bird's-eye view per source into OUT."""
    from datadrive.demo import run_demo

    try:
        run_demo(samples, out, console=_out)
    except DatadriveError as exc:
        fail(str(exc))


from datadrive.cli import lake as _lake  # noqa: E402  (the lake's commands: ingest, sql, lake ...)

_lake.register(app)

from datadrive.cli import service as _service  # noqa: E402  (serve, export, service ...)

_service.register(app)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
