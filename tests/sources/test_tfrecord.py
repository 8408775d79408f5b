"""TFRecord framing: CRC32C against published vectors, round trips, every corruption named."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest

from datadrive.errors import CorruptFileError
from datadrive.sources.tfrecord import (
    crc32c,
    encode_tfrecord,
    iter_tfrecords,
    masked_crc32c,
    write_tfrecords,
)


def reference_crc32c(data: bytes) -> int:
    """Bit-by-bit CRC-32C (reflected polynomial 0x82F63B78), slow but obviously right."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def reference_mask(crc: int) -> int:
    """TensorFlow's crc32c::Mask: rotate right by 15 bits, add a constant."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# RFC 3720 (iSCSI) appendix B.4 test vectors, plus the customary "123456789" check value.
RFC3720_VECTORS = [
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
    (b"123456789", 0xE3069283),
    (b"", 0x00000000),
]


@pytest.mark.parametrize(
    ("data", "expected"),
    RFC3720_VECTORS,
    ids=["zeros", "ones", "ascending", "descending", "check-123456789", "empty"],
)
def test_crc32c_matches_published_vectors(data: bytes, expected: int) -> None:
    assert crc32c(data) == expected
    assert reference_crc32c(data) == expected  # the reference used below is right too


@pytest.mark.parametrize(
    "data", [b"", b"a", b"hello tfrecord", bytes(range(256)) * 3], ids=["0", "1", "14", "768"]
)
def test_masked_crc_matches_tensorflow_definition(data: bytes) -> None:
    assert masked_crc32c(data) == reference_mask(reference_crc32c(data))


def test_stored_crcs_of_a_tensorflow_written_file_verify(samples: Path) -> None:
    """The CRCs TensorFlow wrote into a real file equal our reference computation."""
    path = samples / "waymo_open_motion" / "scenario_637f20cafde22ff8" / "motion_data_one_scenario.tfrecord"
    raw = path.read_bytes()
    (length,) = struct.unpack_from("<Q", raw, 0)
    (length_crc,) = struct.unpack_from("<I", raw, 8)
    assert reference_mask(reference_crc32c(raw[:8])) == length_crc
    (payload_crc,) = struct.unpack_from("<I", raw, 12 + length)
    assert masked_crc32c(raw[12 : 12 + length]) == payload_crc
    assert 12 + length + 4 == len(raw)
    records = list(iter_tfrecords(path))
    assert [(r.index, r.offset, len(r.payload)) for r in records] == [(0, 0, length)]


def test_encode_frames_with_reference_crcs() -> None:
    payload = b"some payload bytes"
    framed = encode_tfrecord(payload)
    expected = struct.pack("<Q", len(payload))
    expected += struct.pack("<I", reference_mask(reference_crc32c(expected)))
    expected += payload + struct.pack("<I", reference_mask(reference_crc32c(payload)))
    assert framed == expected


PAYLOADS = [b"first", b"", b"x" * 1000, bytes(range(256))]


@pytest.mark.parametrize("gzip_level", [None, 6], ids=["plain", "gzip"])
def test_write_then_read_round_trips_with_offsets(tmp_path: Path, gzip_level: int | None) -> None:
    path = tmp_path / "data.tfrecord"
    write_tfrecords(path, PAYLOADS, gzip_level=gzip_level)
    if gzip_level is not None:
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    records = list(iter_tfrecords(path))
    assert [r.payload for r in records] == PAYLOADS
    assert [r.index for r in records] == [0, 1, 2, 3]
    offsets = [0]
    for p in PAYLOADS[:-1]:
        offsets.append(offsets[-1] + 16 + len(p))
    assert [r.offset for r in records] == offsets


def test_raw_file_whose_length_starts_like_gzip_magic_is_read_raw(tmp_path: Path) -> None:
    payload = bytes(0x8B1F)  # little-endian length 1f 8b 00 ..., the gzip magic
    path = tmp_path / "magic.tfrecord"
    path.write_bytes(encode_tfrecord(payload))
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert [r.payload for r in iter_tfrecords(path)] == [payload]


def test_empty_file_has_no_records(tmp_path: Path) -> None:
    path = tmp_path / "empty.tfrecord"
    path.write_bytes(b"")
    assert list(iter_tfrecords(path)) == []


def two_records(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "two.tfrecord"
    data = encode_tfrecord(b"alpha" * 10) + encode_tfrecord(b"beta" * 10)
    path.write_bytes(data)
    return path, data


def corrupt(path: Path, data: bytes, position: int) -> None:
    mutated = bytearray(data)
    mutated[position] ^= 0x40
    path.write_bytes(bytes(mutated))


@pytest.mark.parametrize(
    ("position", "fragments"),
    [
        (0, ["length CRC mismatch", "record 0 at byte 0"]),
        (9, ["length CRC mismatch", "record 0 at byte 0"]),
        (12 + 3, ["payload CRC mismatch", "record 0 at byte 0"]),
        (12 + 50 + 1, ["payload CRC mismatch", "record 0 at byte 0"]),
        (66 + 2, ["length CRC mismatch", "record 1 at byte 66"]),
        (66 + 12 + 39, ["payload CRC mismatch", "record 1 at byte 66"]),
        (66 + 12 + 40 + 3, ["payload CRC mismatch", "record 1 at byte 66"]),
    ],
    ids=["length", "length-crc", "payload", "payload-crc", "length-2nd", "payload-2nd", "payload-crc-2nd"],
)
def test_flipped_byte_is_a_crc_error_naming_record_and_offset(
    tmp_path: Path, position: int, fragments: list[str]
) -> None:
    path, data = two_records(tmp_path)
    corrupt(path, data, position)
    with pytest.raises(CorruptFileError) as info:
        list(iter_tfrecords(path))
    assert info.value.path == str(path)
    for fragment in fragments:
        assert fragment in info.value.reason


def test_verify_false_skips_payload_crc_only(tmp_path: Path) -> None:
    path, data = two_records(tmp_path)
    corrupt(path, data, 12 + 3)
    assert len(list(iter_tfrecords(path, verify=False))) == 2
    corrupt(path, data, 0)
    with pytest.raises(CorruptFileError, match="length CRC"):
        list(iter_tfrecords(path, verify=False))


@pytest.mark.parametrize(
    ("cut", "where"),
    [
        (5, "record 0 at byte 0"),
        (12, "record 0 at byte 0"),
        (40, "record 0 at byte 0"),
        (64, "record 0"),
        (70, "record 1 at byte 66"),
        (121, "record 1 at byte 66"),
    ],
    ids=["in-header", "after-header", "in-payload", "in-crc", "second-header", "last-byte"],
)
def test_truncation_is_named(tmp_path: Path, cut: int, where: str) -> None:
    path, data = two_records(tmp_path)
    assert len(data) == 122
    path.write_bytes(data[:cut])
    with pytest.raises(CorruptFileError, match="truncated") as info:
        list(iter_tfrecords(path))
    assert where in info.value.reason


def test_huge_length_with_valid_crc_is_truncation_not_allocation(tmp_path: Path) -> None:
    length = struct.pack("<Q", 1 << 50)
    path = tmp_path / "liar.tfrecord"
    path.write_bytes(length + struct.pack("<I", masked_crc32c(length)) + b"tiny")
    with pytest.raises(CorruptFileError, match="truncated"):
        list(iter_tfrecords(path))


def test_gzip_truncation_is_named(tmp_path: Path) -> None:
    path = tmp_path / "cut.tfrecord.gz"
    full = gzip.compress(encode_tfrecord(bytes(range(256)) * 40))
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(CorruptFileError) as info:
        list(iter_tfrecords(path))
    assert "gzip" in info.value.reason or "truncated" in info.value.reason


def test_gzip_of_a_truncated_stream_is_named(tmp_path: Path) -> None:
    path = tmp_path / "short.tfrecord.gz"
    path.write_bytes(gzip.compress(encode_tfrecord(b"payload")[:-2]))
    with pytest.raises(CorruptFileError, match="truncated"):
        list(iter_tfrecords(path))
