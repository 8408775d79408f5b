"""Fixtures for the assistant: a two-region lake holding the telemetry samples and a faulty vehicle.

eu-central holds the comma2k19 segment, the Udacity drive and a synthetic
"faulty" copy of the comma2k19 segment (dropouts, a frozen steering signal,
an impossible speed value, a CAN message that stops: see
:func:`assistant_helpers.faulty_copy`); cn-north holds the same comma2k19
segment, for the residency checks. The helpers live in ``assistant_helpers.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from datadrive.lake import Lake, Principal

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from assistant_helpers import COMMA, UDACITY, SampleLake, faulty_copy, lake_config, read  # noqa: E402


@pytest.fixture(scope="session")
def sample_lake(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> SampleLake:
    root = tmp_path_factory.mktemp("assistant_lake")
    config = lake_config(root)
    comma = read(samples / COMMA)
    udacity = read(samples / UDACITY)
    faulty = faulty_copy(comma)
    eu = Lake(config, Principal("ana", "bmw", "eu-central"))
    eu.init()
    eu.ingest_records([comma, udacity, faulty], "eu-central", name="telemetry samples")
    cn = Lake(config, Principal("li", "bmw", "cn-north"))
    cn.ingest_records([comma], "cn-north", name="comma2k19 sample")
    from datadrive.assistant.vehicle import list_vehicles, load_vehicle

    snap = eu.snapshot("eu-central")
    vehicles = sorted(v for v in list_vehicles(snap) if v != "train_round2_part1")
    steering = {
        v: load_vehicle(snap, v).drives[0].telemetry.signal("can/steering_angle").timestamps_ns.shape[0]
        for v in vehicles
    }
    comma_v = max(vehicles, key=lambda v: steering[v])  # the faulty copy lost its dropout's samples
    faulty_v = min(vehicles, key=lambda v: steering[v])
    assert comma_v != faulty_v
    can = comma.can_frames
    assert can is not None
    key = can.bus.astype(np.int64) * (1 << 32) + can.address
    vals, counts = np.unique(key[can.bus == 0], return_counts=True)
    busiest = int(vals[np.argmax(counts)])
    return SampleLake(
        root, config, comma_v, "train_round2_part1", faulty_v, (busiest >> 32, busiest & 0xFFFFFFFF)
    )
