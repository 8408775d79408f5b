"""The per-scenario summary that ``datadrive inspect --json`` prints.

The keys are a contract other tools rely on; change them only with a new
contract version.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datadrive.core.scenario import ObjectType, Scenario
from datadrive.core.telemetry import Telemetry

__all__ = ["SUMMARY_KEYS", "summarize", "summarize_telemetry"]

SUMMARY_KEYS = (
    "scenario_id",
    "source",
    "num_tracks",
    "num_steps",
    "dt_s",
    "num_valid_states",
    "track_type_counts",
    "ego_track_id",
    "num_map_lanes",
    "xy_sum_m",
)


def summarize(scenario: Scenario) -> dict[str, Any]:
    """The inspect summary of one scenario.

    Returns:
        A dict with exactly :data:`SUMMARY_KEYS`: counts include the ego
        track; ``xy_sum_m`` is the sum of ``x + y`` over valid states in the
        scenario's own frame; ``num_map_lanes`` is ``None`` without a map.
    """
    tracks = scenario.tracks
    counts = np.bincount(tracks.object_type, minlength=len(ObjectType))
    dt = scenario.dt_s
    return {
        "scenario_id": scenario.scenario_id,
        "source": scenario.source,
        "num_tracks": tracks.num_tracks,
        "num_steps": scenario.num_steps,
        "dt_s": None if dt is None else round(dt, 9),
        "num_valid_states": int(np.count_nonzero(tracks.valid)),
        "track_type_counts": {t.name.lower(): int(counts[t]) for t in ObjectType},
        "ego_track_id": scenario.ego_track_id,
        "num_map_lanes": None if scenario.map is None else scenario.map.num_lanes,
        "xy_sum_m": float(tracks.xy_m[tracks.valid].sum(dtype=np.float64)),
    }


def summarize_telemetry(telemetry: Telemetry) -> dict[str, Any]:
    """The inspect summary of a telemetry log: its signals, rates, durations, units.

    Returns:
        ``telemetry_id``, ``source``, ``signals`` (name, unit, channels,
        channel_units (one per channel), num_samples, rate_hz, duration_s
        each), ``num_can_frames`` and ``ego`` (the :func:`summarize` of the
        derived ego track, or ``None``).
    """
    return {
        "telemetry_id": telemetry.telemetry_id,
        "source": telemetry.source,
        "signals": [
            {
                "name": s.name,
                "unit": s.unit,
                "channels": list(s.channels),
                "channel_units": list(s.channel_units) if s.channel_units else [s.unit] * len(s.channels),
                "num_samples": int(s.timestamps_ns.shape[0]),
                "rate_hz": s.rate_hz,
                "duration_s": s.duration_s,
            }
            for s in telemetry.signals
        ],
        "num_can_frames": 0
        if telemetry.can_frames is None
        else int(telemetry.can_frames.timestamps_ns.shape[0]),
        "ego": None if telemetry.ego is None else summarize(telemetry.ego),
    }
