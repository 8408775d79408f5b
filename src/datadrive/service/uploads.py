"""Uploads: size limits, format sniffing, and safe unpacking of archives.

An upload is streamed to a staging folder with a byte cap, hashed, and
checked before any job sees it:

- archives (zip, tar, tar.gz/bz2/xz) are unpacked member by member with
  limits on member count, unpacked bytes (counted as written, not trusted
  from headers) and the unpacked/packed ratio (zip bombs); members that
  are absolute, climb out with ``..``, or are links, devices or FIFOs are
  refused, as is any name with a NUL or a drive letter;
- pickles go through the library's restricted unpickler (a pickle that
  asks for anything beyond plain data is refused);
- ``.npy`` arrays must declare a shape that fits the file and the limits
  (no multi-terabyte allocation from a 100-byte header);
- something must claim the result: the library's adapter registry decides,
  by names and magic bytes, as ``datadrive ingest`` would.

Every refusal is an :class:`~datadrive.errors.InputError` naming the file
(as uploaded) and the reason; nothing stays behind.
"""

from __future__ import annotations

import ast
import shutil
import stat
import tarfile
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from datadrive.errors import InputError, TooLargeError, UnknownFormatError, UnsafeArchiveError

__all__ = ["Limits", "check_npy", "safe_name", "sniff", "unpack"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What an upload may be."""

    max_upload_bytes: int
    max_members: int
    max_unpacked_bytes: int
    max_ratio: float


def safe_name(filename: str) -> str:
    """A file name safe to create: its last component, odd characters replaced.

    Raises:
        InputError: for a name with nothing left.
    """
    base = PurePosixPath(filename.replace("\\", "/")).name
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in base).lstrip(".")[:200]
    if not cleaned:
        raise InputError(filename or "<no name>", "the upload needs a file name")
    return cleaned


def sniff(path: Path) -> str:
    """What the bytes are: ``zip``, ``tar``, ``gzip``, ``bzip2``, ``xz``, ``pickle``, ``npy``, or ``file``."""
    with path.open("rb") as fh:
        head = fh.read(512)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    return "file"


def _member_path(root: Path, name: str, shown: str) -> Path:
    if "\x00" in name or not name or len(name) > 1000:
        raise UnsafeArchiveError(shown, f"member {name[:80]!r} has an invalid name")
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]):
        raise UnsafeArchiveError(shown, f"member {name[:200]!r} points outside the archive's folder")
    target = (root / pure).resolve()
    if not target.is_relative_to(root.resolve()):
        raise UnsafeArchiveError(shown, f"member {name[:200]!r} points outside the archive's folder")
    return target


def _copy_capped(src: object, dst: Path, budget: list[int], shown: str, limits: Limits) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with dst.open("wb") as out:
        while True:
            chunk = src.read(_CHUNK)  # type: ignore[attr-defined]
            if not chunk:
                break
            budget[0] += len(chunk)
            if budget[0] > limits.max_unpacked_bytes:
                raise TooLargeError(shown, f"unpacks to more than {limits.max_unpacked_bytes} bytes")
            out.write(chunk)


def unpack(archive: Path, kind: str, dest: Path, shown: str, limits: Limits) -> None:
    """Unpack ``archive`` (``kind`` from :func:`sniff`) into ``dest``, refusing anything unsafe.

    Raises:
        UnsafeArchiveError: a member escapes, is a link or device, or the ratio is absurd.
        TooLargeError: too many members or bytes.
    """
    packed = max(archive.stat().st_size, 1)
    budget = [0]
    dest.mkdir(parents=True, exist_ok=True)
    if kind == "zip":
        try:
            zf = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InputError(shown, f"not a readable zip archive ({exc})") from exc
        with zf:
            infos = zf.infolist()
            if len(infos) > limits.max_members:
                raise TooLargeError(shown, f"holds {len(infos)} members; the limit is {limits.max_members}")
            declared = sum(i.file_size for i in infos)
            if declared > limits.max_unpacked_bytes:
                raise TooLargeError(
                    shown, f"declares {declared} unpacked bytes; the limit is {limits.max_unpacked_bytes}"
                )
            if declared / packed > limits.max_ratio:
                raise UnsafeArchiveError(
                    shown, f"inflates {declared / packed:.0f}x; the limit is {limits.max_ratio:.0f}x"
                )
            for info in infos:
                target = _member_path(dest, info.filename, shown)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise UnsafeArchiveError(shown, f"member {info.filename[:200]!r} is a symbolic link")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                try:
                    with zf.open(info) as src:
                        _copy_capped(src, target, budget, shown, limits)
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise InputError(shown, f"member {info.filename[:200]!r} cannot be read ({exc})") from exc
    else:
        with ExitStack() as stack:
            try:
                tf = stack.enter_context(tarfile.open(archive, mode="r:*"))
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise InputError(shown, f"not a readable tar archive ({exc})") from exc
            count = 0
            try:
                for member in tf:
                    count += 1
                    if count > limits.max_members:
                        raise TooLargeError(shown, f"holds more than {limits.max_members} members")
                    target = _member_path(dest, member.name, shown)
                    if member.issym() or member.islnk():
                        raise UnsafeArchiveError(shown, f"member {member.name[:200]!r} is a link")
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    if not member.isfile():
                        raise UnsafeArchiveError(shown, f"member {member.name[:200]!r} is a device or FIFO")
                    data = tf.extractfile(member)
                    if data is not None:
                        _copy_capped(data, target, budget, shown, limits)
                    if budget[0] / packed > limits.max_ratio and budget[0] > (64 << 20):
                        raise UnsafeArchiveError(
                            shown,
                            f"inflates over {limits.max_ratio:.0f}x; the limit is {limits.max_ratio:.0f}x",
                        )
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise InputError(shown, f"the archive is corrupt ({exc})") from exc


def check_npy(path: Path, shown: str, limits: Limits) -> None:
    """Refuse a ``.npy`` whose header declares more data than the file holds or the limits allow."""
    with path.open("rb") as fh:
        magic = fh.read(8)
        if not magic.startswith(b"\x93NUMPY"):
            return
        major = magic[6]
        size_len = 2 if major == 1 else 4
        header_len = int.from_bytes(fh.read(size_len), "little")
        if header_len > 65536:
            raise InputError(shown, f"{path.name}: the array header is {header_len} bytes long")
        try:
            header = ast.literal_eval(fh.read(header_len).decode("latin-1"))
            shape = tuple(int(d) for d in header["shape"])
            import numpy as np

            itemsize = np.dtype(header["descr"]).itemsize
        except Exception as exc:
            raise InputError(shown, f"{path.name}: the array header does not parse ({exc})") from exc
    nbytes = itemsize
    for d in shape:
        if d < 0:
            raise InputError(shown, f"{path.name}: the array has a negative dimension")
        nbytes *= d
    if nbytes > limits.max_unpacked_bytes:
        raise TooLargeError(
            shown, f"{path.name}: declares a {nbytes}-byte array; the limit is {limits.max_unpacked_bytes}"
        )
    data = path.stat().st_size - 8 - size_len - header_len
    if nbytes > data:
        raise InputError(shown, f"{path.name}: declares {nbytes} bytes of data but holds {data}")


def check_tree(root: Path, shown: str, limits: Limits) -> None:
    """Check every pickle and ``.npy`` under ``root`` (refusing hostile ones) and that something reads it.

    Raises:
        UnsafePickleError: a pickle asks for more than plain data.
        InputError: a bad array, or nothing any adapter reads.
    """
    from datadrive.sources import DEFAULT_REGISTRY
    from datadrive.sources.safe_pickle import safe_load

    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    for p in files:
        kind = sniff(p)
        if kind == "pickle" or p.suffix in (".pkl", ".pickle"):
            safe_load(p)
        elif kind == "npy":
            check_npy(p, shown, limits)
    found = DEFAULT_REGISTRY.discover(root)
    if not found.units:
        raise UnknownFormatError(shown, "no datadrive reader recognises anything in it")


def stage(src: object, dest_dir: Path, filename: str, limits: Limits) -> tuple[Path, int, str, str]:
    """Stream an upload into ``dest_dir`` with the size cap; unpack archives; check the result.

    Returns:
        ``(path to ingest, bytes received, sha256, sniffed kind)``.
    """
    import hashlib

    name = safe_name(filename)
    dest_dir.mkdir(parents=True, exist_ok=True)
    raw = dest_dir / ("upload-" + name)
    digest = hashlib.sha256()
    size = 0
    try:
        with raw.open("wb") as out:
            while True:
                chunk = src.read(_CHUNK)  # type: ignore[attr-defined]
                if not chunk:
                    break
                size += len(chunk)
                if size > limits.max_upload_bytes:
                    raise TooLargeError(
                        name, f"is larger than the upload limit of {limits.max_upload_bytes} bytes"
                    )
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise InputError(name, "the upload is empty")
        kind = sniff(raw)
        if kind in ("zip", "tar", "gzip", "bzip2", "xz"):
            if kind in ("gzip", "bzip2", "xz") and not _is_tar(raw):
                raise InputError(
                    name, f"a {kind}-compressed file that is not a tar archive; upload it unpacked"
                )
            target = dest_dir / "files"
            unpack(raw, kind, target, name, limits)
            raw.unlink()
        else:
            target = dest_dir / "files"
            target.mkdir()
            raw.rename(target / name)
        check_tree(target, name, limits)
        return target, size, digest.hexdigest(), kind
    except BaseException:
        shutil.rmtree(dest_dir, ignore_errors=True)
        raise


def _is_tar(path: Path) -> bool:
    try:
        with tarfile.open(path, mode="r:*") as tf:
            tf.next()
        return True
    except (tarfile.TarError, OSError, EOFError):
        return False
