"""The CLI turns every datadrive error into one line on stderr and exit status 2."""

from __future__ import annotations

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
