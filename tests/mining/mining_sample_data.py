"""Real sample scenarios for the mining tests, read once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from datadrive.core.scenario import Scenario

SAMPLE_PATHS = {
    "av2_mining": "av2_scenario_mining/3bffdcff-c3a7-38b6-a0f2-64196d130958",
    "av2_sensor": "av2_sensor/7fab2350-7eaf-3b7e-a39d-6937a4c1bede",
    "av2_sensor_adcf": "av2_sensor/adcf7d18-0510-35b0-a2fa-b4cea13a6d76",
    "av2_motion": (
        "av2_motion_forecasting/0a1e6f0a-1817-4a98-b02e-db8c9327d151/"
        "scenario_0a1e6f0a-1817-4a98-b02e-db8c9327d151.parquet"
    ),
    "waymo": "waymo_open_motion/scenario_637f20cafde22ff8/motion_data_one_scenario.tfrecord",
    "nuscenes_0553": "scenarionet_nuscenes/sd_nuscenes_v1.0-mini_scene-0553.pkl",
    "nuscenes_0061": "scenarionet_nuscenes/sd_nuscenes_v1.0-mini_scene-0061.pkl",
    "scenarionet_waymo": "scenarionet_waymo/sd_waymo_v1.2_eb4b91b10ca94ff2.pkl",
    "interaction": "interaction/recorded_trackfiles/DR_USA_Intersection_EP0/vehicle_tracks_000.csv",
    "lyft": "lyft_l5kit/single_scene.zarr",
}

_CACHE: dict[str, list[Scenario]] = {}


def read_sample(samples: Path, key: str) -> list[Scenario]:
    """Every scenario of one sample input (cached for the session)."""
    from datadrive.sources import DEFAULT_REGISTRY

    if key not in _CACHE:
        path = samples / SAMPLE_PATHS[key]
        if not path.exists():
            pytest.skip(f"sample {path} not found")
        _CACHE[key] = [r for r in DEFAULT_REGISTRY.detect(path).read_all(path) if isinstance(r, Scenario)]
    return _CACHE[key]
