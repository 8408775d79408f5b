"""The adapter interface and the registry that picks an adapter for a path.

An adapter turns one unit of input (a file, or a folder for formats that
spread one log over several files) into :class:`Scenario` or
:class:`Telemetry` records. Adapters are registered explicitly in
:mod:`datadrive.sources` (no import-time side effects, no substring
dispatch); :class:`Registry` asks each whether it claims a path.

The contract every adapter keeps, enforced by :meth:`Adapter.read`:

* every record it yields has passed ``validate()``;
* any failure surfaces as an :class:`~datadrive.errors.InputError` naming the
  path and the reason, never as a bare ``KeyError`` or ``struct.error``.

**The read path** every tool shares (``inspect``, ``demo``, the lake's
ingest workers): :meth:`Registry.scan` judges the paths a user gave (each
exists, each explicit file is claimed, folders are walked) into
:class:`Unit` s, and :meth:`Registry.read` yields ``(unit, record)`` for every
record of every unit, or ``(unit, error)`` for a unit that cannot be read::

    found = registry.scan(paths)
    for unit, item in registry.read(found.units):
        if isinstance(item, InputError):
            ...  # the unit failed (records it yielded before failing came first)
        else:
            ...  # a validated Scenario or Telemetry

Helpers adapters share live here too: the provenance hashes
(:func:`file_sha256`, :func:`files_sha256`, :func:`digests_sha256`), a file's first bytes for
``claims`` (:func:`file_head`) and the map-only record
(:func:`map_only_scenario`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np

from datadrive.core.scenario import MapFeatures, Provenance, Scenario, ScenarioMetadata, Tracks
from datadrive.core.telemetry import Telemetry
from datadrive.errors import (
    CorruptFileError,
    EmptyLogError,
    InputError,
    InvalidValueError,
    UnknownFormatError,
    ValidationError,
)

__all__ = [
    "Adapter",
    "Discovery",
    "Record",
    "Registry",
    "Unit",
    "digests_sha256",
    "file_head",
    "file_sha256",
    "files_sha256",
    "folder_files",
    "input_kind",
    "map_only_scenario",
    "read_units",
]

Record = Scenario | Telemetry
"""What an adapter yields."""


_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def input_kind(path: Path) -> Literal["file", "dir"]:
    """Whether ``path`` is a regular file or a folder (symbolic links followed); anything else is refused.

    Every path datadrive reads passes here *before* it is opened: opening a
    FIFO blocks forever, a device (``/dev/zero``) never ends, and a symbolic
    link loop fails deep inside a reader.

    Raises:
        InputError: naming the path and what it is instead (missing, a link
            loop, a FIFO, a device, a socket, unreadable).
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(
                path, "a symbolic link loop (following its links never reaches a file)"
            ) from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            if os.path.islink(path):
                raise InputError(path, "a symbolic link to nothing (its target does not exist)") from None
            raise InputError(path, "no such file or folder") from None
        raise InputError(path, f"cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    what = next((name for test, name in _SPECIAL_KINDS if test(st.st_mode)), "not a regular file")
    raise InputError(path, f"is {what}, not a regular file or folder (datadrive reads only those)")


def folder_files(root: Path) -> list[Path]:
    """Every file in the folder ``root``, hidden ones included, sorted; refuses anything not a regular file.

    Symbolic links to files are followed (and must reach a regular file);
    links to folders are not descended into. This is what a folder-shaped
    input's hash covers, so two folders with different bytes anywhere in
    them never share an idempotency key.

    Raises:
        InputError: naming the entry that is a FIFO, a device, a socket, a
            link loop or a dangling link, or a folder that cannot be listed.
    """
    files: list[Path] = []
    failure: list[OSError] = []
    for here, dirs, names in os.walk(root, onerror=failure.append):
        base = Path(here)
        for name in dirs:
            if os.path.islink(base / name):
                input_kind(base / name)  # a loop or dangling link is refused; a link to a folder is skipped
        for name in names:
            f = base / name
            input_kind(f)
            files.append(f)
    if failure:
        exc = failure[0]
        raise InputError(exc.filename or root, f"cannot be listed ({exc.strerror or exc})")
    return sorted(files)


def file_head(path: Path, size: int) -> bytes:
    """The first ``size`` bytes of a file; empty when it cannot be read (a folder, no permission).

    For :meth:`Adapter.claims` that look for magic bytes: a path that cannot
    be read is not claimed, and ``read`` reports why.
    """
    try:
        with path.open("rb") as fh:
            return fh.read(size)
    except OSError:
        return b""


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def files_sha256(root: Path, files: Iterable[Path]) -> str:
    """Hex SHA-256 over several files: their paths relative to ``root`` and bytes.

    Used for folder-shaped inputs (an AV2 log, a comma2k19 segment), so that
    the hash changes when any file that was read changes.
    """
    return digests_sha256(root, [(f, bytes.fromhex(file_sha256(f))) for f in sorted(files)])


def digests_sha256(root: Path, digests: Iterable[tuple[Path, bytes]]) -> str:
    """:func:`files_sha256` from each file's SHA-256 digest, for readers that hashed the bytes they read.

    Args:
        root: The folder the paths are relative to.
        digests: ``(path, 32-byte SHA-256 digest of its bytes)`` per file.
    """
    digest = hashlib.sha256()
    for f, file_digest in sorted(digests, key=lambda item: item[0]):
        digest.update(f.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(file_digest)
    return digest.hexdigest()


def map_only_scenario(
    scenario_id: str, source: str, map_features: MapFeatures, metadata: ScenarioMetadata
) -> Scenario:
    """A Scenario that carries only a map: zero tracks, one timestamp (0 ns).

    How map files (Lanelet2 ``.osm``, NGSIM roadway text) become records:
    :class:`Scenario` needs tracks and time, a map file has neither, so that
    ``inspect``, the Arrow form and the lake treat maps like any other record
    (``num_tracks`` 0, ``num_steps`` 1, ``dt_s`` null, ``num_map_lanes`` the
    lane count).
    """
    empty = np.zeros(0, dtype=np.str_)
    return Scenario(
        scenario_id=scenario_id,
        source=source,
        timestamps_ns=np.zeros(1, dtype=np.int64),
        tracks=Tracks.allocate(empty, np.zeros(0, dtype=np.uint8), empty, 1),
        metadata=metadata,
        map=map_features,
    )


class Adapter(ABC):
    """Reads one source format.

    Subclasses set the class attributes and implement :meth:`claims` and
    :meth:`_read`; callers use :meth:`read`.
    """

    name: ClassVar[str]
    """Format name, also the ``source`` of every record (``"av2_motion_forecasting"``)."""
    version: ClassVar[str]
    """Bumped when the adapter's output changes; recorded in provenance."""
    unit: ClassVar[Literal["file", "dir"]]
    """Whether one input is a file or a folder."""
    licence: ClassVar[str]
    """Licence of the dataset's data, recorded in metadata."""
    download_hint: ClassVar[str]
    """Where a user gets the dataset, shown when no samples are found."""

    @abstractmethod
    def claims(self, path: Path) -> bool:
        """Whether ``path`` looks like this format (cheap: names, magic bytes)."""

    @abstractmethod
    def _read(self, path: Path) -> Iterator[Record]:
        """Yield the records of ``path``; may raise any exception on bad input."""

    def read(self, path: str | os.PathLike[str]) -> Iterator[Record]:
        """Yield validated records of ``path``.

        Raises:
            InputError: (or a subclass) naming ``path`` and the reason, for
                any input that cannot be read.
        """
        p = Path(path)
        kind = input_kind(p)
        if kind != self.unit:
            raise InputError(
                p, f"is a {'folder' if kind == 'dir' else 'file'}; {self.name} reads a {self.unit}"
            )
        if kind == "dir":
            folder_files(p)  # nothing in it that would block or never end when opened
        try:
            for record in self._read(p):
                try:
                    record.validate()
                except ValidationError as exc:
                    raise InvalidValueError(p, str(exc)) from exc
                yield record
        except InputError:
            raise
        except OSError as exc:
            raise InputError(p, f"cannot read ({exc.strerror or exc})") from exc
        except Exception as exc:  # untrusted bytes: any decode failure is a corrupt file
            raise CorruptFileError(p, f"cannot decode ({type(exc).__name__}: {exc})") from exc

    def read_all(self, path: str | os.PathLike[str]) -> list[Record]:
        """All records of ``path``, or an error before any is returned."""
        return list(self.read(path))

    def metadata(
        self,
        path: Path,
        sha256: str,
        *,
        frame: str,
        member: str = "",
        location: str | None = None,
        extras: Mapping[str, Any] | None = None,
    ) -> ScenarioMetadata:
        """Metadata with this adapter's provenance filled in."""
        return ScenarioMetadata(
            frame=frame,
            provenance=Provenance(
                source_path=str(path),
                sha256=sha256,
                adapter=self.name,
                adapter_version=self.version,
                member=member,
            ),
            location=location,
            licence=self.licence,
            extras=MappingProxyType(dict(extras or {})),
        )


class Unit(NamedTuple):
    """One input: a file, or a folder for folder-shaped formats, and the adapter that reads it."""

    adapter: Adapter
    path: Path


@dataclass(frozen=True)
class Discovery:
    """What :meth:`Registry.scan` (or :meth:`Registry.discover`) found.

    Attributes:
        units: Every claimed input, in path order (each once).
        unclaimed: Files under a folder that no adapter claims (lidar
            sweeps, images, companion files such as maps).
        errors: Paths that cannot be inputs: missing, a file given
            explicitly that no adapter claims, and anything that is not a
            regular file or folder (a FIFO, a device, a socket, a link loop).
    """

    units: list[Unit] = field(default_factory=list)
    unclaimed: list[Path] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)


def read_units(units: Iterable[Unit]) -> Iterator[tuple[Unit, Record | InputError]]:
    """``(unit, record)`` for every record of every unit, ``(unit, error)`` for a unit that fails.

    A unit that fails after yielding some records yields those first; a unit
    with no record at all yields an :class:`~datadrive.errors.EmptyLogError`,
    so every unit yields at least one item. Never raises for bad input.
    """
    for unit in units:
        empty = True
        try:
            for record in unit.adapter.read(unit.path):
                empty = False
                yield unit, record
        except InputError as exc:
            yield unit, exc
            continue
        if empty:
            yield unit, EmptyLogError(unit.path, "holds no records")


@dataclass(frozen=True)
class Registry:
    """An explicit, immutable list of adapters."""

    adapters: tuple[Adapter, ...]

    def names(self) -> list[str]:
        return [a.name for a in self.adapters]

    def get(self, name: str) -> Adapter:
        """The adapter called ``name``.

        Raises:
            UnknownFormatError: if none is.
        """
        for a in self.adapters:
            if a.name == name:
                return a
        raise UnknownFormatError(name, f"no adapter called {name!r}; known: {', '.join(self.names())}")

    def detect(self, path: str | os.PathLike[str]) -> Adapter:
        """The one adapter that claims ``path``.

        Raises:
            InputError: if the path does not exist.
            UnknownFormatError: if no adapter, or more than one, claims it.
        """
        p = Path(path)
        kind = input_kind(p)
        found = [a for a in self.adapters if a.unit == kind and a.claims(p)]
        if not found:
            raise UnknownFormatError(p, "not a format datadrive reads (no adapter claims it)")
        if len(found) > 1:
            names = ", ".join(a.name for a in found)
            raise UnknownFormatError(p, f"ambiguous: claimed by {names}")
        return found[0]

    def discover(self, root: str | os.PathLike[str]) -> Discovery:
        """Every input under ``root`` (a file or a folder), depth first, sorted.

        A folder claimed by a folder-shaped adapter is one unit and is not
        descended into. Hidden entries are ignored.

        Raises:
            InputError: if ``root`` does not exist.
        """
        p = Path(root)
        input_kind(p)
        found = Discovery()
        self._walk(p, found, set())
        return found

    def scan(self, paths: Iterable[str | os.PathLike[str]]) -> Discovery:
        """The inputs under every path a user gave: the one place that judges input paths.

        A missing path, and a file given explicitly that no adapter claims,
        go to :attr:`Discovery.errors` (a folder's unclaimed files go to
        :attr:`Discovery.unclaimed`). A unit or file reached twice (the
        same path given twice, a folder and a file inside it) counts once.
        """
        found = Discovery()
        seen: set[str] = set()
        for raw in paths:
            p = Path(raw)
            try:
                here = self.discover(p)
            except InputError as exc:
                found.errors.append(exc)
                continue
            found.errors.extend(here.errors)
            if not here.errors and p.is_file() and not here.units:
                found.errors.append(
                    UnknownFormatError(p, "not a format datadrive reads (no adapter claims it)")
                )
                continue
            for unit in here.units:
                key = os.path.realpath(unit.path)
                if key not in seen:
                    seen.add(key)
                    found.units.append(unit)
            for f in here.unclaimed:
                key = os.path.realpath(f)
                if key not in seen:
                    seen.add(key)
                    found.unclaimed.append(f)
        return found

    def read(self, units: Iterable[Unit]) -> Iterator[tuple[Unit, Record | InputError]]:
        """The records of ``units`` (from :meth:`scan`), one ``(unit, record or error)`` at a time.

        See :func:`read_units`, which this is.
        """
        return read_units(units)

    def _walk(self, p: Path, found: Discovery, seen: set[str]) -> None:
        """Add ``p`` to ``found``, checked first (a FIFO is never opened); ``seen``: the folders walked."""
        try:
            kind = input_kind(p)
        except InputError as exc:
            found.errors.append(exc)
            return
        if kind == "file":
            claimed = [a for a in self.adapters if a.unit == "file" and a.claims(p)]
            if claimed:
                found.units.append(Unit(claimed[0], p))
            else:
                found.unclaimed.append(p)
            return
        real = os.path.realpath(p)
        if real in seen:  # a link back to a folder already walked: a loop, or the same folder twice
            found.errors.append(
                InputError(p, "a symbolic link loop (it leads back to a folder already read)")
            )
            return
        seen.add(real)
        claimed_dir = [a for a in self.adapters if a.unit == "dir" and a.claims(p)]
        if claimed_dir:
            found.units.append(Unit(claimed_dir[0], p))
            return
        try:
            children = sorted(p.iterdir())
        except OSError as exc:
            found.errors.append(InputError(p, f"cannot be listed ({exc.strerror or exc})"))
            return
        for child in children:
            if not child.name.startswith("."):
                self._walk(child, found, seen)
