"""What every ``datadrive`` command shares: the consoles, the error handler, the common options.

A command module (``cli/lake.py``, ``cli/read.py``, ...) writes its
commands as plain functions decorated with :func:`command`, and registers
them in its ``register(app)`` (see ``cli/main.py``). :func:`command` gives
each one:

* **the error handler**: a :class:`~datadrive.errors.DatadriveError`
  becomes one line on stderr (its text printed as is, never read as Rich
  markup) and exit status 2; anything else is a bug and keeps its traceback;
* **the principal options**: a parameter annotated :class:`Who` becomes
  ``--user``, ``--tenant`` and ``--home`` (declared once, here), handed to
  the function as one :class:`Who`.

>>> @command                                                  # doctest: +SKIP
... def history_cmd(lake: LakeOpt, who: Who, region: RegionOpt = None) -> None:
...     versions = open_lake(lake, who, region).history(region)

This module is the edge: it is where ``os.environ`` is read
(:func:`open_lake` passes it to :mod:`datadrive.lake.settings`).
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar, get_type_hints

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from datadrive.errors import DatadriveError, one_line

if TYPE_CHECKING:
    import pyarrow as pa

    from datadrive.compute import Engine
    from datadrive.lake import Lake

__all__ = [
    "HomeOpt",
    "JsonOpt",
    "LakeOpt",
    "RegionOpt",
    "TenantOpt",
    "UserOpt",
    "Who",
    "command",
    "err",
    "fail",
    "json_value",
    "make_engine",
    "open_lake",
    "out",
    "print_rows",
    "say",
]

out = Console()
"""stdout: results."""
err = Console(stderr=True)
"""stderr: errors, warnings, progress bars."""
# Off a terminal (a pipe, a file) nothing wraps: a script reading a line (a head hash, a JSON row)
# gets the whole line. On a terminal Rich wraps to its width as usual.
out.soft_wrap = not out.is_terminal
err.soft_wrap = not err.is_terminal

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- messages


def say(label: str, message: str, *, style: str = "bold red", console: Console | None = None) -> None:
    """Print ``label: message`` on one line (stderr by default); ``message`` is plain text, never markup.

    Line breaks in ``message`` become spaces, and a very long one is cut
    (:func:`datadrive.errors.one_line`): one line means one line.
    """
    text = one_line(message, limit=_SAY_CHARS)
    (console or err).print(Text.assemble((f"{label}:", style), " ", text), highlight=False, soft_wrap=True)


_SAY_CHARS = 2000
"""The longest message :func:`say` prints (error texts are already excerpts; this is the backstop)."""


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on one line to stderr and exit with status 2."""
    say("error", message)
    raise typer.Exit(code=2)


# --------------------------------------------------------------------------- the options every command shares

LakeOpt = Annotated[Path, typer.Option("--lake", help="The lake: a folder with datadrive.toml, or the file.")]
RegionOpt = Annotated[str | None, typer.Option("--region", help="Region (default: your home region).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
UserOpt = Annotated[
    str | None, typer.Option("--user", help="Who you are (default: DATADRIVE_USER or your login).")
]
TenantOpt = Annotated[
    str | None,
    typer.Option("--tenant", help="Tenant you act for (default: DATADRIVE_TENANT, or the only one)."),
]
HomeOpt = Annotated[
    str | None,
    typer.Option(
        "--home", help="Region you are in (default: DATADRIVE_HOME_REGION, [deployment], or --region)."
    ),
]


@dataclass(frozen=True)
class Who:
    """``--user``, ``--tenant`` and ``--home`` as given (``None``: decided by the settings loader)."""

    user: str | None = None
    tenant: str | None = None
    home: str | None = None


_WHO_PARAMS = (("user", UserOpt), ("tenant", TenantOpt), ("home", HomeOpt))


def command(fn: F) -> F:
    """Wrap a command function: the shared error handler, and ``Who`` expanded into its options.

    Register the result with Typer as usual (``app.command("name")(fn)``).
    """
    hints = get_type_hints(fn, include_extras=True)
    who_name = next((name for name, hint in hints.items() if hint is Who), None)
    params: list[inspect.Parameter] = []
    for p in inspect.signature(fn).parameters.values():
        if p.name == who_name:
            continue
        params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[p.name]))
    if who_name is not None:
        taken = {p.name for p in params}
        for name, opt in _WHO_PARAMS:
            if name in taken:
                raise TypeError(f"{fn.__name__}: takes a Who and its own {name!r} parameter")
            params.append(
                inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=opt)
            )

    @functools.wraps(fn)
    def run(**kwargs: Any) -> Any:
        if who_name is not None:
            kwargs[who_name] = Who(kwargs.pop("user"), kwargs.pop("tenant"), kwargs.pop("home"))
        try:
            return fn(**kwargs)
        except DatadriveError as exc:
            fail(str(exc))

    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params}
    run.datadrive_command = True  # type: ignore[attr-defined]  # checked by tests/cli
    return run  # type: ignore[return-value]


# --------------------------------------------------------------------------- the lake, at the edge


def open_lake(lake: Path, who: Who, region: str | None = None) -> Lake:
    """The lake at ``lake`` as the principal ``who`` describes (the process environment fills gaps)."""
    from datadrive.lake import settings

    return settings.open_lake(
        lake, env=os.environ, user=who.user, tenant=who.tenant, home=who.home, region=region
    )


_CLI_MODULE = "datadrive.cli.main"
"""What the ``datadrive`` console script imports (preloaded by the CLI's process pools)."""


def make_engine(
    name: str, workers: int | None = None, ray_address: str | None = None, *, preload: tuple[str, ...] = ()
) -> Engine:
    """The compute engine an ``--engine``/``--workers``/``--ray-address`` triple names.

    Args:
        name: ``process`` (a local pool; ``--workers 1`` runs inline), ``inline`` or ``ray``.
        workers: Pool size (default: all cores).
        ray_address: The Ray cluster (default: ``RAY_ADDRESS``, else a private local instance).
        preload: Modules the pool's fork server imports once, so that workers start warm.
            The CLI itself is always among them: a pool worker runs the main script
            again (the ``datadrive`` console script imports the whole CLI), which
            cost ~0.1 s CPU per worker when each one imported it.
    """
    from datadrive.compute import InlineEngine, ProcessPoolEngine
    from datadrive.errors import ConfigError

    if name == "process":
        return InlineEngine() if workers == 1 else ProcessPoolEngine(workers, preload=(*preload, _CLI_MODULE))
    if name == "inline":
        return InlineEngine()
    if name == "ray":
        try:
            from datadrive.compute.ray_engine import RayEngine
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(f"--engine ray is not available here ({exc})") from exc
        return RayEngine(ray_address or os.environ.get("RAY_ADDRESS") or None)
    raise ConfigError(f"--engine {name!r}: choose process, inline or ray")


# --------------------------------------------------------------------------- tables and JSON


def json_value(value: Any) -> Any:
    """``value`` as plain JSON (NaN and infinities as null, times as ISO text, bytes as hex)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


def print_rows(table: pa.Table, *, as_json: bool, title: str, limit: int = 1000) -> None:
    """Rows as one JSON object per line, or as a Rich table of at most ``limit`` rows."""
    if as_json:
        for row in table.to_pylist():
            sys.stdout.write(json.dumps(json_value(row), default=str) + "\n")
        return
    shown = Table(title=escape(title), show_lines=False)
    for name in table.column_names:
        shown.add_column(escape(name), overflow="fold")
    for row in table.slice(0, limit).to_pylist():
        shown.add_row(*[Text(_cell(v)) for v in row.values()])
    out.print(shown)
    if table.num_rows > limit:
        out.print(f"... {table.num_rows - limit} more rows (use --json for all)", highlight=False)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.3f}"
    if isinstance(value, list) and len(value) > 6:
        return "[" + ", ".join(_cell(v) for v in value[:6]) + f", ... {len(value)} items]"
    text = str(value)
    return text if len(text) <= 100 else text[:97] + "..."
