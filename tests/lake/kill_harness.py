"""Kill ``datadrive ingest`` with SIGKILL at random moments and check the lake after each kill.

Shared by ``tests/lake/test_faults.py`` (20 kills), ``test_azure_lake.py``
(the region in an Azurite container) and ``scripts/lake_kill_stress.py``
(500). Every run prints or returns the seed that replays it.

After every kill the lake must be whole (``Lake.check``: every table reads,
no scenario duplicated or half-written), and hold, for every input in its
ledger, exactly that input's scenarios; after a final uninterrupted rerun it
must hold every input exactly once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import lake_synth

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO / "src"), env.get("PYTHONPATH", "")])
    env.setdefault("DATADRIVE_USER", "stress")
    env.update(extra)
    return env


def cli(
    args: list[str], *, timeout: float = 300, env: dict[str, str] | None = None, user: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``datadrive ARGS`` in a fresh interpreter (optionally wrapped, e.g. by setpriv)."""
    cmd = [*(user or []), sys.executable, "-m", "datadrive.cli.main", *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=env or cli_env(), check=False
    )


def ingest_args(lake: Path, inputs: Path, *, region: str, batch: int, workers: int) -> list[str]:
    return [
        "ingest", str(inputs), "--lake", str(lake), "--region", region, "--tenant", "bmw",
        "--adapters", "lake_synth:REGISTRY", "--batch-size", str(batch), "--workers", str(workers), "--json",
    ]  # fmt: skip


def make_lake(root: Path, *, regions: tuple[str, ...] = ("eu-central",)) -> Path:
    """``datadrive lake init`` of a lake under ``root`` (tenant bmw)."""
    spec = [arg for r in regions for arg in ("--region", f"{r}=regions/{r}")]
    out = cli(["lake", "init", str(root), "--tenant", "bmw", *spec])
    if out.returncode != 0:
        raise RuntimeError(f"lake init failed: {out.stderr}")
    return root


def object_store_lake(
    folder: Path, uri: str, options: Mapping[str, str], *, region: str = "eu-central", init: bool = True
) -> Path:
    """A lake folder (``datadrive.toml``, a key for tenant bmw) whose one ``region`` is at ``uri``.

    The config is written as a user would write it for an object store (no
    local lake first).

    Args:
        folder: Where the config goes.
        uri: The region's root (``s3://...``, ``az://...``).
        options: Its ``storage_options``.
        region: The region's name.
        init: Run ``datadrive lake init`` too (it must then succeed).
    """
    keys = folder / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    (keys / "bmw.key").write_text(os.urandom(32).hex() + "\n")
    lines = [
        f"[regions.{region}]",
        f"root = {json.dumps(uri)}",
        "",
        f"[regions.{region}.storage_options]",
        *(f"{k} = {json.dumps(v)}" for k, v in options.items()),
        "",
        "[tenants.bmw]",
        'key_file = "keys/bmw.key"',
        "",
    ]
    (folder / "datadrive.toml").write_text("\n".join(lines))
    if init:
        out = cli(["lake", "init", str(folder), "--tenant", "bmw"])
        if out.returncode != 0:
            raise RuntimeError(f"lake init failed: {out.stderr}")
    return folder


def local_pending(lake: Path, region: str) -> Callable[[], set[str]]:
    """Names of the pending-batch markers of a local region (what :func:`run` watches to kill mid-commit)."""
    folder = lake / "regions" / region / "_datadrive" / "pending"
    return lambda: {p.name for p in folder.glob("*.json")} if folder.is_dir() else set()


def root_pending(lake: Path, region: str) -> Callable[[], set[str]]:
    """Names of the pending-batch markers of any region root, listed through its filesystem."""
    import pyarrow.fs as pafs

    from datadrive.lake import load_config

    root = load_config(lake, env={}).region(region).root
    fs, folder = root.filesystem(), root.meta_path("pending")

    def names() -> set[str]:
        infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        return {i.base_name for i in infos if i.base_name.endswith(".json")}

    return names


def expected_scenarios(inputs: list[Path]) -> dict[str, int]:
    """input sha256 -> number of scenarios it holds (from the synthetic spec, not from the lake)."""
    from datadrive.sources.base import file_sha256

    return {file_sha256(p): int(lake_synth.spec(p).get("scenarios", 1)) for p in inputs}


def verify(lake: Path, region: str, expected: dict[str, int], *, complete: bool) -> tuple[list[str], int]:
    """Problems with the lake after a kill (or, with ``complete``, after the final rerun).

    Returns:
        The problems, and how many batches a killed writer left for clean-up
        (the kill landed between a batch's first write and its commit).
    """
    import pyarrow.compute as pc

    from datadrive.lake import Lake, Principal, load_config

    config = load_config(lake, env={})
    lk = Lake(config, Principal("checker", "bmw", region))
    report = lk.check(region)
    problems = list(report.problems)
    snap = lk.snapshot(region)
    ledger = snap.table("ingests", columns=["input_sha256", "num_scenarios"])
    scen = snap.table("scenarios", columns=["input_sha256", "scenario_id"])
    per_input: dict[str, int] = {}
    for sha in scen.column("input_sha256").to_pylist():
        per_input[sha] = per_input.get(sha, 0) + 1
    for sha, n in zip(
        ledger.column("input_sha256").to_pylist(), ledger.column("num_scenarios").to_pylist(), strict=True
    ):
        if sha not in expected:
            problems.append(f"unknown input {sha[:12]} in the ledger")
        elif n != expected[sha] or per_input.get(sha, 0) != expected[sha]:
            problems.append(f"input {sha[:12]}: {per_input.get(sha, 0)} scenarios, expected {expected[sha]}")
    extra = set(per_input) - set(ledger.column("input_sha256").to_pylist())
    if extra:
        problems.append(f"{len(extra)} input(s) visible without a ledger row")
    if complete:
        missing = set(expected) - set(ledger.column("input_sha256").to_pylist())
        if missing:
            problems.append(f"{len(missing)} input(s) missing after the rerun")
        if int(pc.count(scen.column("scenario_id")).as_py()) != sum(expected.values()):
            problems.append("scenario count differs from the inputs'")
    audit = lk.verify_audit(region)
    if not audit.ok:
        problems.extend(audit.problems)
    return problems, report.pending


@dataclass
class KillStats:
    seed: int
    kills: int = 0
    completed_before_kill: int = 0
    mid_commit: int = 0
    lakes: int = 0
    problems: list[str] = field(default_factory=list)


def check_concurrent_ingests(lake: Path, inputs_dir: Path, inputs: list[Path], *, writers: int = 4) -> None:
    """Run ``writers`` CLI ingests of ``inputs_dir`` at once into eu-central and check the outcome.

    Every report accounts for every input; each input is ingested by exactly
    one writer and a duplicate for the others; the region ends complete and whole.
    """
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "datadrive.cli.main",
                *ingest_args(lake, inputs_dir, region="eu-central", batch=3, workers=1),
            ],
            env=cli_env(DATADRIVE_USER=f"writer{i}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(writers)
    ]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        reports.append(json.loads(out))
    status: Counter[tuple[str, str]] = Counter()
    for r in reports:
        assert r["inputs"] == len(inputs)
        assert sum(r["counts"].values()) == len(inputs)
        for o in r["outcomes"]:
            status[(o["input_sha256"], o["status"])] += 1
    expected = expected_scenarios(inputs)
    for sha in expected:
        assert status[(sha, "ingested")] == 1, "each input is ingested by exactly one writer"
        assert status[(sha, "duplicate")] == writers - 1
    problems, pending = verify(lake, "eu-central", expected, complete=True)
    assert not problems
    assert pending == 0


def run(
    workdir: Path,
    *,
    seed: int,
    kills: int,
    kills_per_lake: int = 5,
    files: int = 24,
    batch: int = 2,
    max_delay_s: float = 4.0,
    sleep_s: float = 0.03,
    log: bool = False,
    new_lake: Callable[[Path], Path] = make_lake,
    pending_markers: Callable[[Path, str], Callable[[], set[str]]] = local_pending,
    poll_s: float = 0.002,
    max_extra_s: float = 0.25,
) -> KillStats:
    """Kill ingests ``kills`` times; a fresh lake every ``kills_per_lake`` kills, each finished by a rerun.

    ``new_lake(folder)`` makes each lake (a local one by default);
    ``pending_markers(lake, region)`` lists its pending-batch markers, polled every
    ``poll_s`` to land kills inside a commit: such a kill comes a random 0 to ``max_extra_s``
    seconds after the marker is seen (the same draws scaled, whatever the bound).
    """
    rng = random.Random(seed)
    stats = KillStats(seed=seed)
    region = "eu-central"
    lake_no = 0
    while stats.kills < kills:
        lake_no += 1
        root = new_lake(workdir / f"lake{lake_no}")
        markers = pending_markers(root, region)
        inputs = lake_synth.write_inputs(
            workdir / f"in{lake_no}",
            range(lake_no * 1000, lake_no * 1000 + files),
            scenarios=2,
            sleep_s=sleep_s,
        )
        expected = expected_scenarios(inputs)
        for _ in range(min(kills_per_lake, kills - stats.kills)):
            workers = rng.choice([1, 1, 2])
            # half the kills land at a random moment; half inside a commit (after the batch's
            # pending marker appears, before or during its writes), the window that matters most
            in_commit = rng.random() < 0.5
            delay = rng.uniform(0.3, max_delay_s)
            nth_commit, extra_s = rng.randint(1, 4), rng.uniform(0.0, max_extra_s)
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "datadrive.cli.main",
                    *ingest_args(root, inputs[0].parent, region=region, batch=batch, workers=workers),
                ],
                env=cli_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # kill the whole group: the pool's workers too
            )
            t0 = time.monotonic()
            seen: set[str] = set()
            deadline = t0 + delay if not in_commit else t0 + 60.0
            while proc.poll() is None and time.monotonic() < deadline:
                if in_commit:
                    names = markers()
                    if names - seen:
                        seen |= names
                        if len(seen) >= nth_commit:
                            deadline = min(deadline, time.monotonic() + extra_s)
                time.sleep(poll_s)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                stats.completed_before_kill += 1
            proc.wait()
            stats.kills += 1
            found, pending = verify(root, region, expected, complete=False)
            stats.mid_commit += pending > 0
            if log:
                when = f"in commit {nth_commit} +{extra_s:.3f}s" if in_commit else f"after {delay:.2f}s"
                verdict = "ok" if not found else str(found[:3])
                mid = " (killed mid-commit)" if pending else ""
                where = f"lake {lake_no}, {when}, workers {workers}"
                print(f"seed {seed} kill {stats.kills}: {where}: {verdict}{mid}")
                sys.stdout.flush()
            stats.problems += [f"kill {stats.kills} (lake {lake_no}): {p}" for p in found]
        rerun = cli(ingest_args(root, inputs[0].parent, region=region, batch=batch, workers=1))
        if rerun.returncode != 0:
            stats.problems.append(f"lake {lake_no}: the rerun failed: {rerun.stderr.strip()[-500:]}")
        found, _ = verify(root, region, expected, complete=True)
        stats.problems += [f"lake {lake_no} after the rerun: {p}" for p in found]
        stats.lakes += 1
    return stats
