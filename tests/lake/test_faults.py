"""Faults: kill -9 at random moments, concurrent writers, disk full, permission denied, read-only.

These drive the real CLI in subprocesses. The disk-full and read-only tests
need a private mount namespace (``unshare``), and permission denied an
unprivileged user (``setpriv``): where the mechanism is missing they skip
with the reason, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import kill_harness
import lake_synth
import pytest
from kill_harness import cli, ingest_args, make_lake

pytestmark = pytest.mark.slow


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"fault-injection mechanism unavailable under CI: {reason}")
    pytest.skip(reason)


def test_kill_minus_nine_at_20_random_moments(tmp_path) -> None:
    seed = int(os.environ.get("DATADRIVE_KILL_SEED", random.SystemRandom().randrange(2**32)))
    print(f"kill seed {seed} (replay: DATADRIVE_KILL_SEED={seed})")
    stats = kill_harness.run(tmp_path, seed=seed, kills=20, kills_per_lake=5, files=30, max_delay_s=4.0)
    assert stats.kills == 20
    assert not stats.problems, f"seed {seed}: {stats.problems[:5]}"


def test_four_concurrent_ingests_store_every_scenario_once(tmp_path) -> None:
    root = make_lake(tmp_path / "lake")
    inputs = lake_synth.write_inputs(tmp_path / "in", range(24), scenarios=2, sleep_s=0.01)
    kill_harness.check_concurrent_ingests(root, tmp_path / "in", inputs)


def _namespace_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script in a private mount namespace (mounts vanish with it)."""
    if shutil.which("unshare") is None:
        _unavailable("unshare(1) is not installed")
    flags = ["--mount", "--propagation", "private"] if os.geteuid() == 0 else ["--mount", "--map-root-user"]
    probe = subprocess.run(["unshare", *flags, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        _unavailable(f"cannot create a mount namespace: {probe.stderr.strip()}")
    script = tmp_path / "fault.sh"
    script.write_text("set -eu\n" + body)
    return subprocess.run(
        ["unshare", *flags, "sh", str(script)],
        capture_output=True,
        text=True,
        env=kill_harness.cli_env(),
        timeout=600,
        check=False,
    )


def _lake_state(root: Path) -> tuple[int, int]:
    from datadrive.lake import Lake, Principal, load_config

    lk = Lake(load_config(root, env={}), Principal("checker", "bmw", "eu-central"))
    report = lk.check("eu-central")
    assert report.ok, report.problems
    return report.version, report.counts["scenarios"]


def test_disk_full_leaves_the_lake_at_its_last_good_version(tmp_path) -> None:
    """A 64 MiB tmpfs as the region root; a filler file takes what is left before the second ingest."""
    root = make_lake(tmp_path / "lake")
    small = lake_synth.write_inputs(tmp_path / "small", range(3))
    big = lake_synth.write_inputs(tmp_path / "big", range(100, 140), scenarios=4, tracks=40, steps=80)
    region = root / "regions" / "eu-central"
    datadrive = f"{sys.executable} -m datadrive.cli.main"
    first = " ".join(ingest_args(root, small[0].parent, region="eu-central", batch=2, workers=1))
    second = " ".join(ingest_args(root, big[0].parent, region="eu-central", batch=8, workers=1))
    state = (
        f"{sys.executable} -c \"import sys, json, pathlib; sys.path[:0] = ['{kill_harness.HERE}']; "
        f"import test_faults; print(json.dumps(test_faults._lake_state(pathlib.Path('{root}'))))\""
    )
    body = f"""
mkdir -p {region}.full
mount -t tmpfs -o size=64m tmpfs {region}.full
cp -a {region}/. {region}.full/
mount --bind {region}.full {region}
{datadrive} {first} > {tmp_path}/first.json
avail=$(df --output=avail -B1 {region} | tail -1)
fallocate -l $((avail - 160000)) {region}/filler
set +e
{datadrive} {second} > {tmp_path}/second.json 2> {tmp_path}/second.err
echo $? > {tmp_path}/second.rc
set -e
{state} > {tmp_path}/after_full.json
rm {region}/filler
{datadrive} {second} > {tmp_path}/third.json
{state} > {tmp_path}/after_rerun.json
"""
    out = _namespace_script(tmp_path, body)
    if out.returncode != 0 and "mount" in out.stderr and not (tmp_path / "first.json").exists():
        _unavailable(f"cannot mount a tmpfs: {out.stderr.strip()[-300:]}")
    assert out.returncode == 0, out.stderr[-2000:]
    first = json.loads((tmp_path / "first.json").read_text())
    assert first["counts"]["ingested"] == 3
    assert (tmp_path / "second.rc").read_text().strip() == "2"
    err = (tmp_path / "second.err").read_text()
    assert "no space left on the device" in err, err
    second = json.loads((tmp_path / "second.json").read_text())
    assert second["storage_error"]
    assert sum(second["counts"].values()) == 40
    version_full, scenarios_full = json.loads((tmp_path / "after_full.json").read_text())
    committed = sum(o["num_scenarios"] for o in second["outcomes"] if o["status"] == "ingested")
    assert scenarios_full == 3 + committed, "only whole committed batches are visible"
    assert version_full == (second["lake_version_after"] or first["lake_version_after"])
    third = json.loads((tmp_path / "third.json").read_text())
    assert third["counts"]["failed"] == 0
    _, scenarios_after = json.loads((tmp_path / "after_rerun.json").read_text())
    assert scenarios_after == 3 + 40 * 4, "the rerun completes the set"


def _world_readable_dir() -> Path:
    d = Path(tempfile.mkdtemp(prefix="datadrive-perm-"))
    d.chmod(0o755)
    return d


def test_permission_denied_is_a_clear_error_and_changes_nothing() -> None:
    """The writer runs as an unprivileged user (root ignores file modes) against a root-owned lake."""
    if os.geteuid() != 0:
        _unavailable("needs root to create a root-owned lake and switch to an unprivileged user")
    if shutil.which("setpriv") is None:
        _unavailable("setpriv(1) is not installed")
    base = _world_readable_dir()
    try:
        root = make_lake(base / "lake")
        for key in (root / "keys").glob("*.key"):
            key.chmod(0o644)  # the reader may read the key, it may not write the lake
        (root / "keys").chmod(0o755)
        first = lake_synth.write_inputs(base / "first", range(2))
        second = lake_synth.write_inputs(base / "second", range(10, 14))
        for d in (base / "first", base / "second"):
            d.chmod(0o755)
        out = cli(ingest_args(root, first[0].parent, region="eu-central", batch=2, workers=1))
        assert out.returncode == 0, out.stderr
        before = _lake_state(root)
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        env = kill_harness.cli_env(HOME=str(base))
        probe = subprocess.run(
            [*nobody, sys.executable, "-c", "import datadrive"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if probe.returncode != 0:
            _unavailable(f"the unprivileged user cannot run datadrive here: {probe.stderr.strip()[-300:]}")
        out = cli(
            ingest_args(root, second[0].parent, region="eu-central", batch=2, workers=1), env=env, user=nobody
        )
        assert out.returncode == 2
        assert "permission denied" in out.stderr.lower(), out.stderr
        assert "Traceback" not in out.stderr
        assert _lake_state(root) == before
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_read_only_root_is_a_clear_error_and_changes_nothing(tmp_path) -> None:
    root = make_lake(tmp_path / "lake")
    first = lake_synth.write_inputs(tmp_path / "first", range(2))
    lake_synth.write_inputs(tmp_path / "second", range(10, 14))
    assert cli(ingest_args(root, first[0].parent, region="eu-central", batch=2, workers=1)).returncode == 0
    before = _lake_state(root)
    region = root / "regions" / "eu-central"
    second = " ".join(ingest_args(root, tmp_path / "second", region="eu-central", batch=2, workers=1))
    body = f"""
mount --bind {region} {region}
mount -o remount,bind,ro {region}
set +e
{sys.executable} -m datadrive.cli.main {second} > {tmp_path}/out.json 2> {tmp_path}/out.err
echo $? > {tmp_path}/rc
"""
    out = _namespace_script(tmp_path, body)
    if out.returncode != 0 and not (tmp_path / "rc").exists():
        _unavailable(f"cannot make a read-only bind mount: {out.stderr.strip()[-300:]}")
    assert (tmp_path / "rc").read_text().strip() == "2"
    err = (tmp_path / "out.err").read_text()
    assert "read-only" in err, err
    assert _lake_state(root) == before
