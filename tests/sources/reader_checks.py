"""Checks and helpers that every reader's tests share (the fuzz pieces are in ``fuzzing.py``).

* sample paths that fail (not skip) when the sample is missing, and writable
  copies of sample folders;
* the Arrow round trip (``scenarios_to_arrow`` -> ``scenarios_from_arrow`` ->
  ``scenarios_equal``) and the comparison of ``inspect`` summaries;
* ``datadrive inspect PATH --json``, in a fresh interpreter (:func:`run_inspect`,
  the real entry point) or in-process through Typer's runner
  (:func:`invoke_inspect`).

Imported by the test modules beside it (pytest puts this folder on
``sys.path``, as ``tests/lake`` does for its helpers).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from datadrive.cli.main import app
from datadrive.core import Scenario, scenarios_equal, scenarios_from_arrow, scenarios_to_arrow


def sample_path(samples: Path, relative: str | Path, *, folder: bool = False) -> Path:
    """``samples / relative``, failing (not skipping) the test when that sample file (folder) is missing."""
    path = samples / relative
    if not (path.is_dir() if folder else path.is_file()):
        pytest.fail(f"sample {'folder' if folder else 'file'} {path} is missing")
    return path


def writable_copy(
    src: Path, dst: Path, *, ignore: Callable[[str, list[str]], set[str]] | None = None
) -> Path:
    """``dst``: a copy of the folder ``src`` that tests may edit (the samples may be read-only)."""
    shutil.copytree(src, dst, ignore=ignore)
    for f in dst.rglob("*"):
        f.chmod(0o644 if f.is_file() else 0o755)
    return dst


def assert_arrow_round_trip(scenarios: Sequence[Scenario]) -> None:
    """The scenarios come back equal, in order, from their Arrow form."""
    back = scenarios_from_arrow(scenarios_to_arrow(list(scenarios)))
    assert len(back) == len(scenarios)
    for ours, again in zip(scenarios, back, strict=True):
        assert scenarios_equal(ours, again)


def assert_summary_equal(got: Mapping[str, Any], want: Mapping[str, Any]) -> None:
    """Two ``inspect`` summaries agree: the same keys, equal values, ``xy_sum_m`` to 1e-12 relative."""
    assert got.keys() == want.keys()
    for key in want:
        if key == "xy_sum_m":
            assert got[key] == pytest.approx(want[key], rel=1e-12)
        else:
            assert got[key] == want[key], key


def run_inspect(
    path: Path, *options: str, timeout_s: float, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m datadrive.cli.main inspect PATH OPTIONS`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "datadrive.cli.main", "inspect", str(path), *options],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env=None if env is None else dict(env),
    )


def run_inspect_json(path: Path, *, timeout_s: float) -> list[dict[str, Any]]:
    """The JSON lines of :func:`run_inspect` with ``--json``, which must exit 0."""
    result = run_inspect(path, "--json", timeout_s=timeout_s)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def invoke_inspect(path: Path) -> Result:
    """``datadrive inspect PATH --json`` in-process (stdout and stderr apart)."""
    return CliRunner().invoke(app, ["inspect", str(path), "--json"])


def invoke_inspect_json(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of :func:`invoke_inspect`, which must exit 0."""
    result = invoke_inspect(path)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]
