"""Stress test: SIGKILL ``datadrive ingest`` at random moments, 500 times by default.

    .venv/bin/python scripts/lake_kill_stress.py --kills 500 [--seed N] [--workdir DIR]

Prints the seed first; rerun with ``--seed`` to replay a failure. After every
kill the lake must be whole (every table reads, no scenario duplicated or
half-written, the ledger matches the rows, the audit chain verifies); every
few kills a rerun must complete the set exactly. Exit status 1 on any problem.
The harness is ``tests/lake/kill_harness.py`` (the test suite runs 20 kills).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "lake"))

import kill_harness  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=500)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--kills-per-lake", type=int, default=5)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--max-delay", type=float, default=5.0, help="latest kill, seconds after the start")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"seed {seed} (replay: --seed {seed} --kills {args.kills})", flush=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lake-kill-", dir=args.workdir) as tmp:
        stats = kill_harness.run(
            Path(tmp),
            seed=seed,
            kills=args.kills,
            kills_per_lake=args.kills_per_lake,
            files=args.files,
            max_delay_s=args.max_delay,
            log=True,
        )
    minutes = (time.monotonic() - t0) / 60
    print(
        f"{stats.kills} kills over {stats.lakes} lakes in {minutes:.1f} min "
        f"({stats.completed_before_kill} runs finished before their kill, "
        f"{stats.mid_commit} kills landed mid-commit); "
        f"{len(stats.problems)} problems; seed {seed}"
    )
    for p in stats.problems:
        print("PROBLEM", p)
    return 1 if stats.problems else 0


if __name__ == "__main__":
    sys.exit(main())
