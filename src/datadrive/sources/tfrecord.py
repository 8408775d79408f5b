"""TFRecord framing without TensorFlow: read and write checked records.

A TFRecord file is a sequence of records, each framed as::

    uint64 length            little-endian
    uint32 masked_crc32c(length bytes)
    byte   payload[length]
    uint32 masked_crc32c(payload)

where ``masked_crc32c(x) = rotate_right(crc32c(x), 15) + 0xa282ead8`` (mod 2**32),
as TensorFlow's ``core/lib/hash/crc32c.h`` defines it. :func:`iter_tfrecords`
checks both CRCs of every record and raises
:class:`~datadrive.errors.CorruptFileError` naming the file, the record index
and the byte offset on a mismatch or a truncation; the length CRC is checked
before the payload is read, so a corrupt length never triggers a huge read.

Files written with ``TFRecordOptions(compression_type="GZIP")`` are read too:
the gzip stream is recognised by its magic bytes (only when the file does not
already start with a valid record header), and offsets then count bytes of the
decompressed stream.

CRC32C comes from ``google-crc32c`` (Google's C implementation, hardware
accelerated where the CPU has SSE4.2/ARMv8 CRC instructions).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import google_crc32c

from datadrive.errors import CorruptFileError

__all__ = [
    "TFRecord",
    "crc32c",
    "encode_tfrecord",
    "iter_tfrecords",
    "masked_crc32c",
    "write_tfrecords",
]

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 24  # read big payloads in pieces, so a lying length cannot allocate terabytes


class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True)
class TFRecord:
    """One record of a TFRecord file.

    Attributes:
        index: Position of the record in the file, from 0.
        offset: Byte offset of the record's header (in the decompressed stream
            for gzip files).
        payload: The record's bytes, CRC-checked.
    """

    index: int
    offset: int
    payload: bytes


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, as an unsigned 32-bit int."""
    return int(google_crc32c.value(data))


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C that TFRecord framing stores."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def encode_tfrecord(payload: bytes) -> bytes:
    """``payload`` framed as one TFRecord (length, CRCs included)."""
    length = struct.pack("<Q", len(payload))
    return length + _FOOTER.pack(masked_crc32c(length)) + payload + _FOOTER.pack(masked_crc32c(payload))


def write_tfrecords(
    path: str | os.PathLike[str], payloads: Iterable[bytes], *, gzip_level: int | None = None
) -> None:
    """Write ``payloads`` as a TFRecord file (gzip-compressed when ``gzip_level`` is given)."""
    with open(path, "wb") as raw:
        if gzip_level is None:
            for payload in payloads:
                raw.write(encode_tfrecord(payload))
            return
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=gzip_level) as out:
            for payload in payloads:
                out.write(encode_tfrecord(payload))


def iter_tfrecords(path: str | os.PathLike[str], *, verify: bool = True) -> Iterator[TFRecord]:
    """Yield the records of a TFRecord file, in order.

    Args:
        path: A ``.tfrecord`` file, plain or gzip-compressed.
        verify: Check the payload CRCs (length CRCs are always checked).

    Raises:
        CorruptFileError: on a CRC mismatch, a truncated record or a broken
            gzip stream, naming the record index and byte offset.
        OSError: if the file cannot be opened or read.
    """
    p = Path(path)
    with p.open("rb") as raw:
        head = raw.read(_HEADER.size)
        raw.seek(0)
        if _is_gzip(head):
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                try:
                    yield from _iter_stream(p, stream, size=None, verify=verify)
                except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
                    raise CorruptFileError(p, f"broken gzip stream ({exc})") from exc
        else:
            yield from _iter_stream(p, raw, size=os.fstat(raw.fileno()).st_size, verify=verify)


def _is_gzip(head: bytes) -> bool:
    """Gzip magic, unless the bytes also form a valid record header (a length can start 1f 8b)."""
    if not head.startswith(_GZIP_MAGIC):
        return False
    if len(head) == _HEADER.size:
        length_crc: int = _HEADER.unpack(head)[1]
        return masked_crc32c(head[:8]) != length_crc
    return True


def _iter_stream(path: Path, stream: _Readable, *, size: int | None, verify: bool) -> Iterator[TFRecord]:
    offset = 0
    index = 0
    while True:
        header = stream.read(_HEADER.size)
        if not header:
            return
        where = f"record {index} at byte {offset}"
        if len(header) < _HEADER.size:
            raise CorruptFileError(
                path, f"truncated: {where} has a {len(header)}-byte header, a record header is 12 bytes"
            )
        length, length_crc = _HEADER.unpack(header)
        if masked_crc32c(header[:8]) != length_crc:
            raise CorruptFileError(
                path,
                f"length CRC mismatch in {where} (stored {length_crc:#010x}, length field reads {length})",
            )
        body_end = offset + _HEADER.size + length + _FOOTER.size
        if size is not None and body_end > size:
            raise CorruptFileError(
                path,
                f"truncated: {where} has a {length}-byte payload, but the file ends at byte {size}",
            )
        payload = _read_exact(stream, length)
        footer = stream.read(_FOOTER.size)
        if len(payload) < length or len(footer) < _FOOTER.size:
            raise CorruptFileError(path, f"truncated: {where} ends inside its payload of {length} bytes")
        if verify:
            (stored,) = _FOOTER.unpack(footer)
            computed = masked_crc32c(payload)
            if stored != computed:
                raise CorruptFileError(
                    path,
                    f"payload CRC mismatch in {where} (stored {stored:#010x}, computed {computed:#010x})",
                )
        yield TFRecord(index=index, offset=offset, payload=payload)
        offset = body_end
        index += 1


def _read_exact(stream: _Readable, n: int) -> bytes:
    """Up to ``n`` bytes (fewer only at end of stream), read in bounded chunks."""
    if n <= _CHUNK:
        return stream.read(n)
    parts: list[bytes] = []
    left = n
    while left > 0:
        part = stream.read(min(left, _CHUNK))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)
