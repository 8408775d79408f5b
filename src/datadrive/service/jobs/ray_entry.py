"""A job's entry point when it runs as a Ray Job: ``python -m datadrive.service.jobs.ray_entry JOB_ID``.

This is an edge, like the CLI: it reads its inputs from the environment the
dispatcher's submission set (``DATADRIVE_JOB_DATABASE_URL``,
``DATADRIVE_JOB_SETTINGS``) and the cluster's own environment (the database
password as ``PGPASSWORD``, the tenants' ``key_env`` keys), then runs the job
as a local worker would, recording its progress, log and outcome in the
service's database.
"""

from __future__ import annotations

import json
import os
import sys

from datadrive.service.jobs.framework import run_job

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run one job to its end; the exit status is 0 unless the arguments or environment are wrong."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m datadrive.service.jobs.ray_entry JOB_ID", file=sys.stderr)
        return 2
    try:
        db_url = os.environ["DATADRIVE_JOB_DATABASE_URL"]
        settings = json.loads(os.environ["DATADRIVE_JOB_SETTINGS"])
    except (KeyError, ValueError) as exc:
        print(f"datadrive job {args[0]}: the submission's environment is incomplete ({exc})", file=sys.stderr)
        return 2
    settings["env"] = dict(os.environ)  # a tenant's key_env names a variable of the cluster's environment
    run_job(args[0], db_url, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
