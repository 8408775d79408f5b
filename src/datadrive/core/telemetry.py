"""Telemetry: the vehicle's own signals (CAN, IMU, GNSS, pose), beside a Scenario.

Fleets upload telemetry far more often than annotated scenes. A
:class:`Telemetry` keeps each signal at its own rate with its own timestamps
and unit; the raw CAN frames are kept undecoded; and, where the log has a
pose or GNSS fix, ``ego`` is a one-track :class:`Scenario` in a local frame.

Notation:
    N: number of samples of one signal.
    C: number of channels of one signal.
    M: number of raw CAN frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datadrive.core.scenario import Scenario, ScenarioMetadata, validate_metadata
from datadrive.core.typing import NDArrayFloat, NDArrayInt, NDArrayUInt8
from datadrive.errors import ValidationError

__all__ = ["CanFrames", "Signal", "Telemetry"]


@dataclass(frozen=True)
class Signal:
    """One named, timestamped, multi-channel signal.

    Attributes:
        name: Slash-separated name, e.g. ``"can/speed"``, ``"imu/gyro"``.
        unit: SI-style unit string, e.g. ``"m/s"``, ``"rad/s"``, ``"deg"``.
        timestamps_ns: ``(N,)`` int64, non-decreasing.
        values: ``(N, C)`` float64.
        channels: ``C`` channel names, e.g. ``("x", "y", "z")``.
        channel_units: ``C`` units, one per channel, for signals whose
            channels differ in unit (a GNSS fix: deg, deg, m); then ``unit``
            is ``"mixed"``. Empty when every channel has ``unit``.
    """

    name: str
    unit: str
    timestamps_ns: NDArrayInt
    values: NDArrayFloat
    channels: tuple[str, ...]
    channel_units: tuple[str, ...] = ()

    def unit_of(self, channel: str) -> str:
        """The unit of one channel.

        Raises:
            KeyError: if the signal has no such channel.
        """
        if channel not in self.channels:
            raise KeyError(channel)
        return self.channel_units[self.channels.index(channel)] if self.channel_units else self.unit

    @property
    def duration_s(self) -> float:
        if self.timestamps_ns.shape[0] < 2:
            return 0.0
        return float(self.timestamps_ns[-1] - self.timestamps_ns[0]) / 1e9

    @property
    def rate_hz(self) -> float | None:
        """Mean sample rate, ``None`` with fewer than two samples."""
        duration = self.duration_s
        if duration <= 0:
            return None
        return float(self.timestamps_ns.shape[0] - 1) / duration


@dataclass(frozen=True)
class CanFrames:
    """Raw CAN frames, kept for decoding later (with a DBC file).

    Attributes:
        timestamps_ns: ``(M,)`` int64.
        bus: ``(M,)`` uint8 bus/source number.
        address: ``(M,)`` int64 arbitration id.
        data: ``(M, 8)`` uint8 payload, zero-padded.
        length: ``(M,)`` uint8 number of meaningful payload bytes.
    """

    timestamps_ns: NDArrayInt
    bus: NDArrayUInt8
    address: NDArrayInt
    data: NDArrayUInt8
    length: NDArrayUInt8


@dataclass(frozen=True)
class Telemetry:
    """A vehicle's telemetry log.

    Attributes:
        telemetry_id: Unique id within its source.
        source: Name of the adapter/format it came from.
        signals: The named signals.
        metadata: Frame of ``ego``, provenance, dataset-specific facts.
        can_frames: Raw CAN frames, if the log has them.
        ego: One-track scenario derived from pose/GNSS, if the log has them.
    """

    telemetry_id: str
    source: str
    signals: tuple[Signal, ...]
    metadata: ScenarioMetadata
    can_frames: CanFrames | None = None
    ego: Scenario | None = None

    def signal(self, name: str) -> Signal:
        """The signal called ``name``.

        Raises:
            KeyError: if there is none.
        """
        for sig in self.signals:
            if sig.name == name:
                return sig
        raise KeyError(name)

    def validate(self) -> Telemetry:
        """Check every invariant; return ``self``.

        Raises:
            ValidationError: naming the first broken invariant.
        """
        if not self.telemetry_id:
            raise ValidationError("telemetry_id is empty")
        names = [s.name for s in self.signals]
        if len(set(names)) != len(names):
            raise ValidationError("signal names are not unique")
        for sig in self.signals:
            ts, v = sig.timestamps_ns, sig.values
            if ts.dtype != np.int64 or ts.ndim != 1:
                raise ValidationError(f"signal {sig.name}: timestamps must be (N,) int64")
            if v.ndim != 2 or v.shape[0] != ts.shape[0] or v.shape[1] != len(sig.channels):
                raise ValidationError(f"signal {sig.name}: values have shape {v.shape}")
            if ts.shape[0] > 1 and not bool(np.all(np.diff(ts) >= 0)):
                raise ValidationError(f"signal {sig.name}: timestamps go backwards")
            if sig.channel_units and len(sig.channel_units) != len(sig.channels):
                raise ValidationError(f"signal {sig.name}: {len(sig.channel_units)} channel units")
        if self.can_frames is not None:
            c = self.can_frames
            m = c.timestamps_ns.shape[0]
            if (
                c.data.shape != (m, 8)
                or c.bus.shape != (m,)
                or c.address.shape != (m,)
                or c.length.shape != (m,)
            ):
                raise ValidationError("can_frames arrays disagree in length")
            if m and int(c.length.max()) > 8:
                raise ValidationError("can_frames.length exceeds 8 bytes")
        if self.ego is not None:
            self.ego.validate()
        validate_metadata(self.metadata)
        return self
