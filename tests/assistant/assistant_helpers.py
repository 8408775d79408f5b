"""Helpers shared by the assistant tests: the two-region lake config, the faulty vehicle, ``SampleLake``.

Test modules import them from here (``from assistant_helpers import ...``),
never from ``conftest``: with several ``conftest.py`` in the tree, the module
named ``conftest`` is whichever was imported last. Fixtures stay in
``conftest.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from datadrive.core.telemetry import CanFrames, Signal, Telemetry
from datadrive.lake import Lake, LakeConfig, Principal
from datadrive.sources import DEFAULT_REGISTRY
from region_configs import two_region_config

__all__ = [
    "COMMA",
    "FAULT_CAN_STOP_S",
    "FAULT_DROPOUT_S",
    "FAULT_FROZEN_S",
    "FAULT_SPEED_GLITCH_S",
    "KEYS",
    "UDACITY",
    "SampleLake",
    "faulty_copy",
    "lake_config",
    "read",
]

COMMA = "comma2k19/b0c9d2329ad1606b_2018-08-02--08-34-47/40"
UDACITY = "udacity_steering/train_round2_part1.txt"
KEYS = {"bmw": bytes(range(32)), "tencent": bytes(range(32, 64))}

# what the faulty copy breaks (seconds into the comma2k19 segment's signals)
FAULT_DROPOUT_S = (20.0, 22.5)  # steering-angle samples removed
FAULT_FROZEN_S = (30.0, 38.0)  # steering angle held at one value
FAULT_SPEED_GLITCH_S = 45.0  # one speed sample of 500 m/s
FAULT_CAN_STOP_S = 40.0  # the busiest CAN message on bus 0 ends here


def lake_config(root: Path) -> LakeConfig:
    return two_region_config(root, KEYS)


def read(path: Path) -> Telemetry:
    records = list(DEFAULT_REGISTRY.detect(path).read(path))
    assert len(records) == 1
    assert isinstance(records[0], Telemetry)
    return records[0]


def faulty_copy(t: Telemetry) -> Telemetry:
    """The comma2k19 segment with documented faults injected, as another vehicle."""
    start = min(int(s.timestamps_ns[0]) for s in t.signals if s.timestamps_ns.shape[0])
    signals = []
    for s in t.signals:
        rel = (s.timestamps_ns - start) / 1e9
        values = s.values.copy()
        ts = s.timestamps_ns
        if s.name == "can/steering_angle":
            frozen = (rel >= FAULT_FROZEN_S[0]) & (rel <= FAULT_FROZEN_S[1])
            values[frozen] = values[frozen][0]
            keep = ~((rel > FAULT_DROPOUT_S[0]) & (rel < FAULT_DROPOUT_S[1]))
            ts, values = ts[keep], values[keep]
        if s.name == "can/speed":
            values[int(np.argmin(np.abs(rel - FAULT_SPEED_GLITCH_S)))] = 500.0
        signals.append(Signal(s.name, s.unit, ts, values, s.channels, s.channel_units))
    can = t.can_frames
    assert can is not None
    key = can.bus.astype(np.int64) * (1 << 32) + can.address
    bus0 = can.bus == 0
    values, counts = np.unique(key[bus0], return_counts=True)
    busiest = int(values[np.argmax(counts)])
    rel = (can.timestamps_ns - start) / 1e9
    keep = ~((key == busiest) & (rel > FAULT_CAN_STOP_S))
    can2 = CanFrames(
        can.timestamps_ns[keep], can.bus[keep], can.address[keep], can.data[keep], can.length[keep]
    )
    extras = dict(t.metadata.extras)
    extras["dongle_id"] = "f00dfeedcafe0001"
    md = replace(t.metadata, extras=extras)
    return Telemetry(
        t.telemetry_id.replace("b0c9d2329ad1606b", "f00dfeedcafe0001"),
        t.source,
        tuple(signals),
        md,
        can2,
        None,
    ).validate()


@dataclass(frozen=True)
class SampleLake:
    root: Path
    config: LakeConfig
    comma_vehicle: str
    udacity_vehicle: str
    faulty_vehicle: str
    busiest_can: tuple[int, int]

    def lake(self, home: str = "eu-central", tenant: str = "bmw", user: str = "ana") -> Lake:
        return Lake(self.config, Principal(user, tenant, home))
