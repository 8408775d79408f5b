"""comma2k19 segments: one minute of a comma EON's telemetry as a :class:`Telemetry`.

A segment is a folder (``<dongle>|<route start>/<segment number>/``; the ``|``
is often replaced by ``_`` on disk) with ``processed_log/`` (CAN, IMU and
GNSS logs) and ``global_pose/`` (the camera's fused pose per video frame).
Every array is a ``.npy`` file without extension; each log is a folder with
``t`` (seconds of device boot time) and ``value``. The ``.npy`` files are
read here with an explicit header and size check (never with pickle), so a
truncated or tampered file names itself.

What the Telemetry holds (units as measured, see the notes below):

* ``can/speed`` (m/s), ``can/steering_angle`` (deg), ``can/wheel_speed``
  (m/s; front left, front right, rear left, rear right), ``can/radar``
  (forward and left distance m, relative speed m/s, two columns that are
  always NaN, the radar message address, a new-track flag);
* ``imu/accelerometer`` (m/s^2), ``imu/gyro``, ``imu/gyro_bias``,
  ``imu/gyro_uncalibrated`` (rad/s), ``imu/magnetometer`` and
  ``imu/magnetometer_uncalibrated`` (uT), all with axes [forward, right, down];
* ``gnss/live_ublox`` and ``gnss/live_qcom``: fixes (lat deg, lon deg,
  speed m/s, UTC time ms, altitude m, bearing deg);
* ``gnss/raw_ublox`` and ``gnss/raw_qcom``: one row per satellite and epoch,
  laika's ``array_from_normal_meas`` columns (NMEA id, GPS week, GPS time of
  week s, GLONASS frequency channel, pseudorange m and its std, pseudorange
  rate m/s and its std, C/N0 dB-Hz, carrier phase cycles; files with only
  the README's first 8 columns are read as such);
* ``pose/position_ecef`` (m), ``pose/velocity_ecef`` (m/s),
  ``pose/orientation_ecef`` (Hamilton quaternion w, x, y, z that takes
  camera [forward, right, down] vectors to ECEF) and ``pose/gps_time``
  (week, time of week s), at the video frame times (20 Hz);
* ``can_frames``: every raw CAN frame (``src`` is the bus: 0-2 received,
  128+ sent by the panda), payload zero-padded to 8 bytes.

A log folder this reader does not know is listed in ``extras["unread_logs"]``;
a missing one is simply absent (segments differ by car and firmware).

Timestamps are int64 ns of the **device boot clock** (``t * 1e9`` rounded);
``metadata.extras`` keeps the offsets from that clock to GPS time (from
``frame_gps_times``) and to Unix time (from the u-blox fixes' UTC times).

The ego track (``Telemetry.ego``, one vehicle track ``"ego"`` at the 20 Hz
frame times) is the camera's ``global_pose`` position converted from ECEF to
an East-North-Up frame anchored at the first valid pose
(``"enu_wgs84@lat,lon,alt"``); ``z_m`` is the up coordinate. The velocity is
``frame_velocities`` rotated into ENU. The heading is the yaw of the camera's
forward axis (from ``frame_orientations``), not of the velocity, so it stays
defined when the car stands still; the camera is mounted within a few degrees
of the car's axis. Steps whose position or quaternion is not finite are
invalid. The size is unknown (NaN).

Unit notes: comma2k19's README gives the accelerometer in "m^2/s", the
magnetometer in T and the fix UTC time in s; the values are m/s^2 (gravity
reads 9.8 on the down axis), uT (field magnitude about 40) and ms (the sample
segment's fixes read 1533226488299 = 2018-08-02 16:14:48 UTC).

The CAN payload length: the files zero-pad payloads to 8 bytes and keep no
DLC, so ``CanFrames.length`` is, per (bus, address), the longest payload
without trailing zero bytes seen in the segment: a lower bound of the DLC,
equal to it whenever one frame of that message ends in a non-zero byte.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from datadrive.core.geodesy import EnuOrigin, ecef_to_enu, enu_R_ecef
from datadrive.core.scenario import ObjectType, Scenario, Tracks
from datadrive.core.telemetry import CanFrames, Signal, Telemetry
from datadrive.core.typing import NDArrayAny, NDArrayFloat, NDArrayInt
from datadrive.errors import (
    CorruptFileError,
    EmptyLogError,
    InvalidValueError,
    SchemaMismatchError,
    UnsafePickleError,
)
from datadrive.sources.base import Adapter, Record, digests_sha256

__all__ = ["Comma2k19Adapter", "load_npy"]

_GPS_WEEK_S = 604800.0
_MAX_BOOT_TIME_S = 1e9  # about 31 years of uptime; int64 ns holds 292 years
_DONGLE_VEHICLE = {"b0c9d2329ad1606b": "toyota_rav4", "99c94dc769b5d96e": "honda_civic"}  # comma2k19 README
_ROUTE = re.compile(r"^(?P<dongle>[0-9a-f]{16})[|_](?P<start>\d{4}-\d{2}-\d{2}--\d{2}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class _Spec:
    folder: str
    name: str
    unit: str
    channels: tuple[str, ...]
    channel_units: tuple[str, ...] = ()
    min_channels: int = 0  # > 0: older files may hold only the first min_channels columns

    def fit(self, columns: int) -> _Spec:
        """This spec cut to the first ``columns`` channels, if the format allows that width."""
        if not 0 < self.min_channels <= columns < len(self.channels):
            return self
        units = self.channel_units[:columns]
        return _Spec(self.folder, self.name, self.unit, self.channels[:columns], units, self.min_channels)


_FIX = (
    ("latitude", "longitude", "speed", "utc_time", "altitude", "bearing"),
    ("deg", "deg", "m/s", "ms", "m", "deg"),
)
_RAW_GNSS = (
    (
        "nmea_id",
        "gps_week",
        "gps_time_of_week",
        "glonass_frequency",
        "pseudorange",
        "pseudorange_std",
        "pseudorange_rate",
        "pseudorange_rate_std",
        "cn0",
        "carrier_phase",
    ),
    ("", "week", "s", "", "m", "m", "m/s", "m/s", "dB-Hz", "cycles"),
)
_FRD = ("forward", "right", "down")
_LOGS = (
    _Spec("CAN/speed", "can/speed", "m/s", ("speed",)),
    _Spec("CAN/steering_angle", "can/steering_angle", "deg", ("angle",)),
    _Spec(
        "CAN/wheel_speed", "can/wheel_speed", "m/s", ("front_left", "front_right", "rear_left", "rear_right")
    ),
    _Spec(
        "CAN/radar",
        "can/radar",
        "mixed",
        (
            "forward_distance",
            "left_distance",
            "relative_speed",
            "unused_3",
            "unused_4",
            "address",
            "new_track",
        ),
        ("m", "m", "m/s", "", "", "", "bool"),
    ),
    _Spec("IMU/accelerometer", "imu/accelerometer", "m/s^2", _FRD),
    _Spec("IMU/gyro", "imu/gyro", "rad/s", _FRD),
    _Spec("IMU/gyro_bias", "imu/gyro_bias", "rad/s", _FRD),
    _Spec("IMU/gyro_uncalibrated", "imu/gyro_uncalibrated", "rad/s", _FRD),
    _Spec("IMU/magnetometer", "imu/magnetometer", "uT", _FRD),
    _Spec("IMU/magnetometer_uncalibrated", "imu/magnetometer_uncalibrated", "uT", _FRD),
    _Spec("GNSS/live_gnss_ublox", "gnss/live_ublox", "mixed", *_FIX),
    _Spec("GNSS/live_gnss_qcom", "gnss/live_qcom", "mixed", *_FIX),
    # laika's raw measurement arrays gained C/N0 and carrier phase (columns 9-10) after the README's 8
    _Spec("GNSS/raw_gnss_ublox", "gnss/raw_ublox", "mixed", *_RAW_GNSS, min_channels=8),
    _Spec("GNSS/raw_gnss_qcom", "gnss/raw_qcom", "mixed", *_RAW_GNSS, min_channels=8),
)
_POSES = (
    _Spec("frame_positions", "pose/position_ecef", "m", ("x", "y", "z")),
    _Spec("frame_velocities", "pose/velocity_ecef", "m/s", ("x", "y", "z")),
    _Spec("frame_orientations", "pose/orientation_ecef", "1", ("w", "x", "y", "z")),
    _Spec("frame_gps_times", "pose/gps_time", "mixed", ("week", "time_of_week"), ("week", "s")),
)
_RAW_CAN = ("t", "src", "address", "data")
_BYTE_STEPS = np.array([1 << (8 * i) for i in range(8)], dtype="<u8")  # 1, 256, ..., 2**56


def load_npy(path: Path) -> NDArrayAny:
    """A ``.npy`` file's array, without pickle, checking the header against the file size.

    Raises:
        SchemaMismatchError: if the file is missing.
        UnsafePickleError: if the array holds Python objects (needs pickle).
        CorruptFileError: if the header is unreadable or the data is truncated or padded.
    """
    if not path.is_file():
        raise SchemaMismatchError(path, "array file is missing")
    return _parse_npy(path, path.read_bytes())


def _parse_npy(path: Path, raw: bytes) -> NDArrayAny:
    fh = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except Exception as exc:  # numpy's header parser raises ValueError, SyntaxError, TokenError, ...
        raise CorruptFileError(path, f"not a readable .npy file ({type(exc).__name__}: {exc})") from exc
    if dtype.hasobject:
        raise UnsafePickleError(path, "the array holds Python objects, which would need pickle")
    count = int(np.prod(shape, dtype=object)) if shape else 1
    expected = count * dtype.itemsize
    offset = fh.tell()
    if len(raw) - offset != expected:
        raise CorruptFileError(path, f"holds {len(raw) - offset} data bytes, its header says {expected}")
    flat = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order="F" if fortran_order else "C")


def _load(path: Path, read: dict[Path, bytes]) -> NDArrayAny:
    """:func:`load_npy`, recording the file's SHA-256 digest in ``read`` (each file is read once)."""
    if not path.is_file():
        raise SchemaMismatchError(path, "array file is missing")
    raw = path.read_bytes()
    read[path] = hashlib.sha256(raw).digest()
    return _parse_npy(path, raw)


def _numeric(path: Path, array: NDArrayAny) -> NDArrayFloat:
    if array.dtype.kind not in "fiub":
        raise SchemaMismatchError(path, f"has dtype {array.dtype}, expected numbers")
    return array.astype(np.float64, copy=False)  # a read-only view of the file bytes when already f8


def _boot_ns(path: Path, t: NDArrayAny) -> NDArrayInt:
    """Seconds of boot time ``(N,)`` -> int64 ns."""
    ts = _numeric(path, t)
    if ts.ndim != 1:
        raise SchemaMismatchError(path, f"timestamps have shape {ts.shape}, expected (N,)")
    if not bool(np.all(np.isfinite(ts) & (ts >= 0) & (ts < _MAX_BOOT_TIME_S))):
        raise InvalidValueError(path, "a timestamp is NaN, negative or absurdly large")
    return np.rint(ts * 1e9).astype(np.int64)


def _values(path: Path, value: NDArrayAny, n: int, channels: int) -> NDArrayFloat:
    v = _numeric(path, value)
    if v.ndim == 1 and channels == 1:
        v = v.reshape(-1, 1)
    if v.shape != (n, channels):
        raise SchemaMismatchError(
            path, f"has shape {v.shape}, expected ({n}, {channels}) to match its timestamps"
        )
    return v


class Comma2k19Adapter(Adapter):
    """Reads one comma2k19 segment folder into a :class:`Telemetry`."""

    name: ClassVar[str] = "comma2k19"
    version: ClassVar[str] = "1"
    unit = "dir"
    licence: ClassVar[str] = "MIT (commaai/comma2k19)"
    download_hint: ClassVar[str] = (
        "https://github.com/commaai/comma2k19 (academictorrents, ~100 GB in 10 chunks)"
    )

    def claims(self, path: Path) -> bool:
        return path.is_dir() and (path / "processed_log").is_dir()

    def _read(self, path: Path) -> Iterator[Record]:
        # Garbage values (a tampered file) may overflow; the explicit checks name them instead of a warning.
        with np.errstate(over="ignore", invalid="ignore"):
            telemetry = self._telemetry(path)
        yield telemetry

    def _telemetry(self, path: Path) -> Telemetry:
        read: dict[Path, bytes] = {}  # every file read -> its SHA-256 digest
        notes: dict[str, Any] = {}
        signals: list[Signal] = []
        reordered: list[str] = []
        log = path / "processed_log"
        for spec in _LOGS:
            folder = log / spec.folder
            if not folder.is_dir():
                continue
            t, value = _load(folder / "t", read), _load(folder / "value", read)
            ts = _boot_ns(folder / "t", t)
            fitted = spec.fit(value.shape[1] if value.ndim == 2 else 1)
            values = _values(folder / "value", value, ts.shape[0], len(fitted.channels))
            signals.append(self._signal(fitted, ts, values, reordered))
        known = {spec.folder for spec in _LOGS} | {"CAN/raw_can"}
        unread = sorted(
            f"{d.parent.name}/{d.name}"
            for d in log.glob("*/*")
            if d.is_dir() and f"{d.parent.name}/{d.name}" not in known
        )
        if unread:
            notes["unread_logs"] = unread
        can = self._can_frames(log / "CAN" / "raw_can", read, reordered, notes)

        ego: Scenario | None = None
        pose = path / "global_pose"
        if pose.is_dir():
            pose_signals, ego_parts = self._poses(pose, read, reordered)
            signals += pose_signals
        else:
            ego_parts = None
        samples = sum(s.timestamps_ns.shape[0] for s in signals)
        if samples == 0 and (can is None or can.timestamps_ns.shape[0] == 0):
            raise EmptyLogError(path, "the segment has no CAN, IMU, GNSS or pose samples")

        telemetry_id, extras = self._identity(path)
        extras.update(notes)
        extras["timestamps"] = "int64 ns of the device boot clock"
        extras.update(self._clock_offsets(signals))
        if reordered:
            extras["reordered_by_time"] = sorted(reordered)
        sha = digests_sha256(path, read.items())
        frame = "none (no global_pose)"
        if ego_parts is not None:
            timestamps, tracks, origin = ego_parts
            frame = origin.frame
            ego_extras = {
                "enu_origin": {
                    "lat_deg": origin.lat_deg,
                    "lon_deg": origin.lon_deg,
                    "alt_m": origin.alt_m,
                    "ecef_m": [float(x) for x in origin.ecef_m],
                },
                "position_of": "the road-facing camera (global_pose)",
                "heading_from": "the camera's forward axis (frame_orientations)",
                "timestamps": "int64 ns of the device boot clock",
            }
            ego = Scenario(
                scenario_id=telemetry_id,
                source=self.name,
                timestamps_ns=timestamps,
                tracks=tracks,
                metadata=self.metadata(path, sha, frame=frame, extras=ego_extras),
                ego_index=0,
            )
            extras["enu_origin"] = ego_extras["enu_origin"]
        return Telemetry(
            telemetry_id=telemetry_id,
            source=self.name,
            signals=tuple(signals),
            metadata=self.metadata(path, sha, frame=frame, extras=extras),
            can_frames=can,
            ego=ego,
        )

    @staticmethod
    def _signal(spec: _Spec, ts: NDArrayInt, values: NDArrayFloat, reordered: list[str]) -> Signal:
        if ts.shape[0] > 1 and not bool(np.all(np.diff(ts) >= 0)):
            order = np.argsort(ts, kind="stable")  # keep every row, in time order
            ts, values = ts[order], values[order]
            reordered.append(spec.name)
        return Signal(spec.name, spec.unit, ts, values, spec.channels, spec.channel_units)

    @staticmethod
    def _can_frames(
        folder: Path, read: dict[Path, bytes], reordered: list[str], notes: dict[str, Any]
    ) -> CanFrames | None:
        if not folder.is_dir():
            return None
        t, src, address, data = (_load(folder / n, read) for n in _RAW_CAN)
        ts = _boot_ns(folder / "t", t)
        m = ts.shape[0]
        for name, arr in (("src", src), ("address", address), ("data", data)):
            if arr.shape != (m,):
                raise SchemaMismatchError(folder / name, f"has shape {arr.shape}, expected ({m},) like t")
        if src.dtype.kind not in "iu" or address.dtype.kind not in "iu":
            raise SchemaMismatchError(
                folder, f"src/address have dtypes {src.dtype}/{address.dtype}, expected integers"
            )
        if data.dtype.kind != "S" or data.dtype.itemsize > 8:
            raise SchemaMismatchError(
                folder / "data", f"has dtype {data.dtype}, expected byte strings of up to 8 bytes"
            )
        if m and not (
            bool(np.all((src >= 0) & (src < 256))) and bool(np.all((address >= 0) & (address < 1 << 29)))
        ):
            raise InvalidValueError(folder, "a CAN bus number or address is out of range")
        payload = np.zeros((m, 8), dtype=np.uint8)
        payload[:, : data.dtype.itemsize] = np.frombuffer(data.tobytes(), dtype=np.uint8).reshape(m, -1)
        # bytes up to the last non-zero one: as a little-endian uint64, the count of powers of 256 <= it
        used = np.searchsorted(_BYTE_STEPS, payload.view("<u8").reshape(m), side="right")
        if m and int(address.max()) < 1 << 11:  # standard 11-bit ids: a dense (bus, address) table
            group = src.astype(np.intp) * (1 << 11) + address.astype(np.intp)
            longest = np.zeros(256 << 11, dtype=np.int64)
        else:  # extended 29-bit ids
            _, group = np.unique(
                src.astype(np.int64) * (1 << 32) + address.astype(np.int64), return_inverse=True
            )
            longest = np.zeros(int(group.max()) + 1 if m else 0, dtype=np.int64)
        np.maximum.at(longest, group, used)
        bus, addr, length = src.astype(np.uint8), address.astype(np.int64), longest[group].astype(np.uint8)
        if m > 1 and not bool(np.all(np.diff(ts) >= 0)):
            order = np.argsort(ts, kind="stable")
            ts, bus, addr, payload, length = ts[order], bus[order], addr[order], payload[order], length[order]
            reordered.append("can_frames")
        notes["can_length"] = (
            "per (bus, address), the longest payload without trailing zero bytes (files zero-pad to 8 bytes)"
        )
        return CanFrames(timestamps_ns=ts, bus=bus, address=addr, data=payload, length=length)

    def _poses(
        self, folder: Path, read: dict[Path, bytes], reordered: list[str]
    ) -> tuple[list[Signal], tuple[NDArrayInt, Tracks, EnuOrigin] | None]:
        t = _load(folder / "frame_times", read)
        ts = _boot_ns(folder / "frame_times", t)
        n = ts.shape[0]
        arrays: dict[str, NDArrayFloat] = {}
        signals: list[Signal] = []
        for spec in _POSES:
            if not (folder / spec.folder).is_file() and spec.folder == "frame_gps_times":
                continue
            arrays[spec.folder] = _values(
                folder / spec.folder, _load(folder / spec.folder, read), n, len(spec.channels)
            )
            signals.append(self._signal(spec, ts, arrays[spec.folder], reordered))
        if n == 0:
            return signals, None
        if n > 1 and not bool(np.all(np.diff(ts) > 0)):
            raise InvalidValueError(folder / "frame_times", "frame times are not strictly increasing")
        return signals, self._ego(folder, ts, arrays)

    @staticmethod
    def _ego(
        folder: Path, ts: NDArrayInt, arrays: dict[str, NDArrayFloat]
    ) -> tuple[NDArrayInt, Tracks, EnuOrigin]:
        ecef, vel, quat = arrays["frame_positions"], arrays["frame_velocities"], arrays["frame_orientations"]
        norm = np.linalg.norm(quat, axis=1)
        valid = np.isfinite(ecef).all(axis=1) & np.isfinite(quat).all(axis=1) & (norm > 0.5) & (norm < 2.0)
        if not bool(valid.any()):
            raise InvalidValueError(
                folder / "frame_positions", "no frame has a finite position and orientation"
            )
        radius = np.linalg.norm(ecef[valid], axis=1)
        if not bool(np.all((radius > 6.0e6) & (radius < 6.5e6))):  # within ~100 km of the Earth's surface
            raise InvalidValueError(folder / "frame_positions", "a position is not near the Earth's surface")
        origin = EnuOrigin.from_ecef(ecef[int(np.flatnonzero(valid)[0])])
        enu_R = enu_R_ecef(origin.lat_deg, origin.lon_deg)  # noqa: N806 (frame naming)
        enu = ecef_to_enu(np.where(valid[:, None], ecef, origin.ecef_m), origin)
        vel_enu = vel @ enu_R.T
        w, x, y, z = (quat / np.where(valid, norm, 1.0)[:, None]).T
        forward_ecef = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)], axis=-1)
        forward_enu = forward_ecef @ enu_R.T
        tracks = Tracks.allocate(
            np.array(["ego"]), np.array([ObjectType.VEHICLE], dtype=np.uint8), np.array(["ego"]), ts.shape[0]
        )
        tracks.xy_m[0] = np.where(valid[:, None], enu[:, :2], 0.0)
        tracks.z_m[0] = np.where(valid, enu[:, 2], np.nan)
        tracks.heading_rad[0] = np.where(valid, np.arctan2(forward_enu[:, 1], forward_enu[:, 0]), 0.0)
        tracks.velocity_mps[0] = np.where(valid[:, None], vel_enu[:, :2], np.nan)
        tracks.valid[0] = valid
        return ts, tracks, origin

    @staticmethod
    def _identity(path: Path) -> tuple[str, dict[str, Any]]:
        match = _ROUTE.match(path.parent.name)
        if match is None or not path.name.isdigit():
            return f"{path.parent.name}/{path.name}", {"segment": path.name}
        dongle, start = match["dongle"], match["start"]
        extras: dict[str, Any] = {
            "dongle_id": dongle,
            "route_start_local": start,
            "segment": int(path.name),
            "vehicle": _DONGLE_VEHICLE.get(dongle),
        }
        return f"{dongle}|{start}--{int(path.name)}", extras

    @staticmethod
    def _clock_offsets(signals: list[Signal]) -> dict[str, Any]:
        """Offsets from the boot clock to GPS and Unix time, where the log has them."""
        by_name = {s.name: s for s in signals}
        out: dict[str, Any] = {}
        gps = by_name.get("pose/gps_time")
        if gps is not None and gps.timestamps_ns.shape[0]:
            gps_s = gps.values[:, 0] * _GPS_WEEK_S + gps.values[:, 1] - gps.timestamps_ns / 1e9
            if bool(np.isfinite(gps_s).any()):
                out["gps_time_minus_boot_time_s"] = float(np.nanmedian(gps_s))
        for name in ("gnss/live_ublox", "gnss/live_qcom"):
            fix = by_name.get(name)
            if fix is not None and fix.timestamps_ns.shape[0]:
                unix_s = fix.values[:, 3] / 1e3 - fix.timestamps_ns / 1e9
                if bool(np.isfinite(unix_s).any()):
                    out["unix_time_minus_boot_time_s"] = float(np.nanmedian(unix_s))
                    out["unix_time_from"] = f"{name} utc_time (median over fixes; includes fix latency)"
                    break
        return out
