"""The CLI turns every datadrive error into one line on stderr and exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "datadrive.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("notes.txt", b"hello, not a driving log\n", "not a format datadrive reads"),
        ("random.bin", bytes(range(256)) * 4, "not a format datadrive reads"),
    ],
    ids=["text-file", "binary-file"],
)
def test_unknown_file_is_one_line_exit_2(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = run_cli("inspect", str(path))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] or name in lines[0]
    assert reason in lines[0]
    assert result.stdout == ""


def test_missing_path_is_one_line_exit_2(tmp_path: Path) -> None:
    result = run_cli("inspect", str(tmp_path / "nope.parquet"))
    assert result.returncode == 2
    assert "no such file" in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1


def test_help_lists_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("inspect", "demo"):
        assert command in result.stdout


@pytest.mark.parametrize(
    "name",
    ["log[x].txt", "[bold red]loud[/]x.bin", "back\\[x]slash.txt"],
    ids=["bracket-x", "markup-tags", "backslash"],
)
def test_error_text_with_rich_markup_characters_prints_unchanged(tmp_path: Path, name: str) -> None:
    path = tmp_path / name  # "[/]" spans two folders: a file name cannot hold "/"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"hello, not a driving log\n")
    result = run_cli("inspect", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {path}: not a format datadrive reads (no adapter claims it)"


def test_lake_errors_with_markup_characters_print_unchanged(tmp_path: Path) -> None:
    lake = tmp_path / "[red]lake[/red]"
    result = run_cli("sql", "SELECT 1", "--lake", str(lake), "--tenant", "t", "--home", "eu")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    config = lake / "datadrive.toml"
    assert lines == [f"error: {config}: no lake config here (create one with `datadrive lake init {lake}`)"]


def test_every_command_goes_through_the_shared_error_handler() -> None:
    """A command registered without ``shell.command`` would print tracebacks for bad input."""
    import typer.main

    from datadrive.cli.main import app

    def walk(group: object, prefix: str) -> list[tuple[str, object]]:
        found = []
        for name, cmd in getattr(group, "commands", {}).items():
            if getattr(cmd, "commands", None):
                found += walk(cmd, f"{prefix}{name} ")
            else:
                found.append((f"{prefix}{name}", cmd.callback))  # type: ignore[attr-defined]
        return found

    commands = walk(typer.main.get_command(app), "")
    assert {"inspect", "demo", "ingest", "sql", "lake history", "lake erase"} <= {n for n, _ in commands}
    for name, callback in commands:
        wrapped = callback
        while wrapped is not None and not getattr(wrapped, "datadrive_command", False):
            wrapped = getattr(wrapped, "__wrapped__", None)
        assert wrapped is not None, f"{name} is not wrapped by datadrive.cli.shell.command"


def test_inspect_of_a_folder_reports_unusable_entries_and_reads_the_rest(
    tmp_path: Path, samples: Path
) -> None:
    """A FIFO or a link loop in a folder is one error line each; the logs beside them are still summarised."""
    import shutil

    source = next((samples / "av2_motion_forecasting").glob("*/scenario_*.parquet"))
    folder = tmp_path / "logs"
    (folder / source.parent.name).mkdir(parents=True)
    shutil.copy(source, folder / source.parent.name / source.name)
    os.mkfifo(folder / "pipe.parquet")
    os.symlink("loop_b.pkl", folder / "loop_a.pkl")
    os.symlink("loop_a.pkl", folder / "loop_b.pkl")
    result = run_cli("inspect", str(folder), "--json")
    assert result.returncode == 2, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"] for r in rows] == ["av2_motion_forecasting"]
    assert "named pipe" in result.stderr
    assert "pipe.parquet" in result.stderr
    assert "symbolic link loop" in result.stderr
    assert "Traceback" not in result.stderr
