"""Udacity steering CSV reader: exact timestamps, signal values, every malformed file named."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from fuzzing import FIXTURE_FUZZ, assert_reads_or_refuses, mutate
from hypothesis import given, seed, settings
from hypothesis import strategies as st
from reader_checks import run_inspect_json, sample_path

from datadrive.core.summary import summarize_telemetry
from datadrive.core.telemetry import Telemetry
from datadrive.errors import (
    CorruptFileError,
    EmptyLogError,
    InvalidValueError,
    SchemaMismatchError,
    UnknownFormatError,
)
from datadrive.sources import DEFAULT_REGISTRY, file_sha256
from datadrive.sources.udacity import UdacitySteeringAdapter

ADAPTER = UdacitySteeringAdapter()


@pytest.fixture(scope="module")
def csv_path(samples: Path) -> Path:
    return sample_path(samples, "udacity_steering/train_round2_part1.txt")


@pytest.fixture(scope="module")
def rows(csv_path: Path) -> list[dict[str, str]]:
    with csv_path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def telemetry(csv_path: Path) -> Telemetry:
    [record] = ADAPTER.read_all(csv_path)
    assert isinstance(record, Telemetry)
    return record


def index_ns(text: str) -> int:
    """``2016-11-17 23:10:15.880976321`` (UTC) -> ns, by hand."""
    whole, frac = text.split(".")
    seconds = int(datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())
    return seconds * 1_000_000_000 + int(frac.ljust(9, "0"))


def filename_ns(text: str) -> int:
    return int(text.rsplit("/", 1)[-1].split(".")[0])


# --------------------------------------------------------------------------- values


def test_which_timestamp_is_exact(rows: list[dict[str, str]]) -> None:
    """The index datetime and the filename digits agree on every row; the timestamp column does not."""
    assert len(rows) == 4401
    from_index = [index_ns(r["index"]) for r in rows]
    from_name = [filename_ns(r["filename"]) for r in rows]
    assert from_index == from_name
    written = [r["timestamp"] for r in rows]
    assert sum("e+" in w for w in written) == 33  # SOURCES.md
    integer_written = [(int(w), n) for w, n in zip(written, from_name, strict=True) if w.isdigit()]
    assert any(w != n for w, n in integer_written)  # rounded through a float64
    assert all(w == int(float(n)) for w, n in integer_written)


def test_signals(csv_path: Path, rows: list[dict[str, str]], telemetry: Telemetry) -> None:
    exact = np.array([filename_ns(r["filename"]) for r in rows], dtype=np.int64)
    for name, column, unit in (
        ("can/steering_angle", "angle", "rad"),
        ("can/steering_torque", "torque", "N m"),
        ("can/speed", "speed", "m/s"),
    ):
        sig = telemetry.signal(name)
        assert sig.unit == unit
        assert sig.channels == (column,)
        assert np.array_equal(sig.timestamps_ns, exact)
        assert sig.values[:, 0].tolist() == [float(r[column]) for r in rows]
        assert sig.duration_s == pytest.approx((exact[-1] - exact[0]) / 1e9)
        assert sig.rate_hz == pytest.approx(20.0, abs=0.05)  # SOURCES.md: 20 Hz over 220 s
        assert sig.duration_s == pytest.approx(220.0, abs=0.5)
    assert telemetry.ego is None
    assert telemetry.can_frames is None
    assert telemetry.telemetry_id == "train_round2_part1"
    extras = telemetry.metadata.extras
    assert extras["timestamps_from"] == "filename"
    assert extras["float_notation_timestamps"] == 33
    assert extras["camera_frames"] == {"center": 4401}
    assert telemetry.metadata.provenance.sha256 == file_sha256(csv_path)


def test_registry_and_inspect(csv_path: Path, telemetry: Telemetry) -> None:
    assert DEFAULT_REGISTRY.detect(csv_path).name == "udacity_steering"
    [obj] = run_inspect_json(csv_path, timeout_s=120)
    assert obj == json.loads(json.dumps(summarize_telemetry(telemetry)))
    assert [s["name"] for s in obj["signals"]] == ["can/steering_angle", "can/steering_torque", "can/speed"]
    assert obj["ego"] is None
    assert obj["num_can_frames"] == 0


# --------------------------------------------------------------------------- other layouts


def write(tmp_path: Path, text: str, name: str = "steering.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_plain_steering_csv_uses_the_timestamp_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "timestamp,angle,torque,speed\n1479424215880976321,0.1,0.2,3.0\n1479424215930775951,,0.3,3.5\n",
    )
    [t] = ADAPTER.read_all(path)
    assert isinstance(t, Telemetry)
    assert t.signal("can/speed").timestamps_ns.tolist() == [1479424215880976321, 1479424215930775951]
    assert np.isnan(t.signal("can/steering_angle").values[1, 0])  # an empty cell is a missing value
    assert "float64" in t.metadata.extras["timestamps_from"]


def test_gnss_columns_become_a_fix_signal(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "timestamp,angle,torque,speed,lat,long,alt\n"
        "1479424215880976321,0.1,0.2,3.0,37.4,-122.1,10.5\n"
        "1479424215930775951,0.1,0.3,3.5,37.5,-122.2,11.0\n",
    )
    [t] = ADAPTER.read_all(path)
    assert isinstance(t, Telemetry)
    fix = t.signal("gnss/fix")
    assert fix.values.tolist() == [[37.4, -122.1, 10.5], [37.5, -122.2, 11.0]]
    assert fix.unit_of("latitude") == "deg"
    assert fix.unit_of("altitude") == "m"


def test_rows_out_of_order_are_sorted_not_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, "timestamp,angle,torque,speed\n20,0.2,0,1\n10,0.1,0,1\n10,0.3,0,1\n")
    [t] = ADAPTER.read_all(path)
    assert isinstance(t, Telemetry)
    sig = t.signal("can/steering_angle")
    assert sig.timestamps_ns.tolist() == [10, 10, 20]
    assert sig.values[:, 0].tolist() == [0.1, 0.3, 0.2]
    assert t.metadata.extras["reordered_by_time"] is True


def test_other_csvs_are_not_claimed(tmp_path: Path) -> None:
    other = write(tmp_path, "track_id,frame_id,timestamp_ms,x,y\n1,1,100,0.0,0.0\n", "vehicle_tracks_000.csv")
    assert not ADAPTER.claims(other)
    binary = tmp_path / "noise.csv"
    binary.write_bytes(bytes(range(256)))
    assert not ADAPTER.claims(binary)
    with pytest.raises(UnknownFormatError):
        DEFAULT_REGISTRY.detect(binary)


# --------------------------------------------------------------------------- bad input

HEADER = "index,timestamp,filename,angle,torque,speed\n"
ROW = "2016-11-17 23:10:15.880976321,1479424215880976384,center/1479424215880976321.jpg,0.1,0.2,23.0\n"


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("", EmptyLogError, "empty"),
        (HEADER, EmptyLogError, "no rows"),
        ("index,timestamp,filename,angle,speed\n" + ROW.replace(",0.2,", ","), SchemaMismatchError, "torque"),
        (HEADER + ROW.replace(",0.1,", ",abc,"), InvalidValueError, "'angle' row 1 holds 'abc'"),
        (HEADER + ROW.replace("23.0", "fast"), InvalidValueError, "'speed' row 1 holds 'fast'"),
        (HEADER + ROW + "1,2,3\n", CorruptFileError, "malformed CSV"),
        (HEADER + ROW.replace("1479424215880976384,", ","), InvalidValueError, "row 1 has no timestamp"),
        (HEADER + ROW.replace("1479424215880976384", "soon"), InvalidValueError, "not a number of ns"),
        (HEADER + ROW.replace("1479424215880976384", "1479424299000000000"), InvalidValueError, "disagrees"),
        (
            HEADER + ROW.replace("23:10:15", "23:10:16"),
            InvalidValueError,
            "filename and index give different",
        ),
        ("index,index,timestamp,angle,torque,speed\n1,1,1,1,1,1\n", SchemaMismatchError, "repeats"),
    ],
    ids=[
        "empty-file",
        "header-only",
        "missing-column",
        "non-numeric-angle",
        "non-numeric-speed",
        "ragged-row",
        "missing-timestamp",
        "non-numeric-timestamp",
        "timestamp-disagrees",
        "index-disagrees",
        "duplicate-column",
    ],
)
def test_bad_csv(tmp_path: Path, text: str, error: type, match: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(error, match=match) as info:
        ADAPTER.read_all(path)
    assert str(path) in str(info.value)


def test_float_notation_timestamp_within_its_precision(tmp_path: Path) -> None:
    # 1.479424223682e+18 is written to 1 ms; the exact time is 915 ns later
    row = "2016-11-17 23:10:23.682000915,1.479424223682e+18,center/1479424223682000915.jpg,0.1,0.2,23.0\n"
    [t] = ADAPTER.read_all(write(tmp_path, HEADER + row))
    assert isinstance(t, Telemetry)
    assert t.signal("can/speed").timestamps_ns.tolist() == [1479424223682000915]
    bad = row.replace("1.479424223682e+18", "1.479424223692e+18")  # 10 ms off
    with pytest.raises(InvalidValueError, match="disagrees"):
        ADAPTER.read_all(write(tmp_path, HEADER + bad, "bad.csv"))


# --------------------------------------------------------------------------- fuzz


@pytest.fixture(scope="module")
def original_bytes(csv_path: Path) -> bytes:
    return csv_path.read_bytes()


@seed(20_251_124)
@settings(FIXTURE_FUZZ, max_examples=80, deadline=10_000)
@given(data=st.data())
def test_fuzz_mutated_bytes(tmp_path: Path, original_bytes: bytes, data: st.DataObject) -> None:
    path = tmp_path / "fuzz.txt"
    path.write_bytes(mutate(original_bytes, data.draw, head=256))  # half the edits in the first 256 bytes
    assert_reads_or_refuses(ADAPTER, path, Telemetry)
