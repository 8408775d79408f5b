"""The ``datadrive`` command line: a thin shell over the library.

Each command module registers its commands here, in :data:`COMMAND_MODULES`:
it defines ``register(app: typer.Typer) -> None``, which adds its commands
(``app.command("name")(fn)``) or its group (``app.add_typer(group)``). The
commands themselves are wrapped with :func:`datadrive.cli.shell.command`,
which gives them the shared error handler (a
:class:`~datadrive.errors.DatadriveError` is one line on stderr, exit status
2) and the shared ``--user``/``--tenant``/``--home`` options. See
``docs/architecture.md`` (The CLI) for a new command module, step by step.
"""

from __future__ import annotations

import importlib

import typer

__all__ = ["COMMAND_MODULES", "app", "main"]

COMMAND_MODULES = (
    "datadrive.cli.read",  # inspect, demo
    "datadrive.cli.lake",  # ingest, sql, lake ...
    "datadrive.cli.mining",  # mine, events, index
    "datadrive.cli.sim",  # simulate, fleet generate
    "datadrive.cli.curate",  # dataset create|show|list|diff|cache
    "datadrive.cli.train",  # train, evaluate
    "datadrive.cli.assistant",  # assistant ask, listen, vehicles, erase, wakeword train|eval
)
"""Modules whose ``register(app)`` adds commands, in the order ``--help`` lists them."""

app = typer.Typer(
    name="datadrive",
    help="datadrive: ingest, store, mine and learn from autonomous-driving logs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
