"""Predictions in the Argoverse 2 scenario-mining (RefAV) submission format.

The format is the one ``av2.evaluation.scenario_mining.eval.evaluate``
scores: a ``dict`` keyed by ``(log_id, prompt)``, each value a list of frame
dicts in time order, one per evaluated timestamp. A frame holds every
annotated object of the log at that timestamp (the log's own cuboids, in the
city frame), labelled ``REFERRED_OBJECT`` where the query selected it,
``RELATED_OBJECT`` where it was related to a selected object, and
``OTHER_OBJECT`` otherwise:

* ``seq_id`` ``(log_id, prompt)``, ``timestamp_ns``, ``ego_translation_m``
  (list of 3), ``description`` (the prompt);
* ``translation_m`` ``(N, 3)`` float64, ``size`` ``(N, 3)`` float32 (length,
  width, height), ``yaw`` ``(N,)`` float32, ``velocity_m_per_s`` ``(N, 3)``;
* ``label`` ``(N,)`` int32 (0 referred, 1 related, 2 other: the index in
  av2's ``SCENARIO_MINING_CATEGORIES``), ``name`` ``(N,)`` str, ``track_id``
  ``(N,)`` int32, ``score`` ``(N,)`` float32 (1.0: a rule-based answer has no
  confidence to rank by).

Evaluated timestamps are every fifth annotation sweep (10 Hz -> 2 Hz,
starting at the first), as RefAV's ``get_eval_timestamps`` does for AV2
sensor logs. Only scenarios read from AV2 sensor / scenario-mining logs
(source ``av2_sensor``, frame ``av2_city``) can be written.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from datadrive.core.scenario import Scenario
from datadrive.errors import MiningError
from datadrive.mining.engine import Selection

__all__ = ["REFAV_LABELS", "REFAV_STRIDE", "refav_frames", "refav_log_id", "write_refav"]

REFAV_LABELS = ("REFERRED_OBJECT", "RELATED_OBJECT", "OTHER_OBJECT")
"""av2's ``SCENARIO_MINING_CATEGORIES``; a frame's ``label`` is the index in this tuple."""

REFAV_STRIDE = 5
"""Every fifth annotation sweep is evaluated (10 Hz to 2 Hz)."""


def refav_log_id(scenario: Scenario) -> str:
    """The AV2 log id of a scenario read from an AV2 sensor log.

    Raises:
        MiningError: if the scenario is not from an AV2 sensor / scenario-mining log.
    """
    if scenario.source != "av2_sensor" or scenario.metadata.frame != "av2_city":
        raise MiningError(
            f"scenario {scenario.scenario_id} ({scenario.source}) is not an AV2 sensor log: "
            "RefAV output is defined for AV2 sensor / scenario-mining logs only"
        )
    log_id = scenario.metadata.extras.get("log_id") or scenario.scenario_id
    return str(log_id)


def refav_frames(
    scenario: Scenario, selection: Selection, prompt: str, *, stride: int = REFAV_STRIDE
) -> list[dict[str, Any]]:
    """The frames of one log for one prompt.

    Args:
        scenario: An AV2 sensor / scenario-mining log.
        selection: What the query selected in it (:func:`datadrive.mining.results.select`).
        prompt: The description (or expression) the frames answer.
        stride: Evaluate every ``stride``-th annotation sweep.

    Returns:
        Frame dicts in time order.
    """
    log_id = refav_log_id(scenario)
    tr = scenario.tracks
    ego = scenario.ego_index
    frames = []
    seq = (log_id, prompt)
    for t in range(0, scenario.num_steps, stride):
        rows = np.flatnonzero(tr.valid[:, t])
        label = np.full(rows.shape[0], 2, dtype=np.int32)
        label[selection.related[rows, t]] = 1
        label[selection.mask[rows, t]] = 0
        vel = np.nan_to_num(tr.velocity_mps[rows, t])
        z = np.nan_to_num(tr.z_m[rows, t])
        ego_xyz = (
            [float(tr.xy_m[ego, t, 0]), float(tr.xy_m[ego, t, 1]), float(np.nan_to_num(tr.z_m[ego, t]))]
            if ego is not None
            else [0.0, 0.0, 0.0]
        )
        frames.append(
            {
                "seq_id": seq,
                "timestamp_ns": int(scenario.timestamps_ns[t]),
                "ego_translation_m": ego_xyz,
                "description": prompt,
                "translation_m": np.concatenate([tr.xy_m[rows, t], z[:, None]], axis=1).astype(np.float64),
                "size": tr.size_m[rows].astype(np.float32),
                "yaw": tr.heading_rad[rows, t].astype(np.float32),
                "velocity_m_per_s": np.concatenate([vel, np.zeros((rows.shape[0], 1))], axis=1),
                "label": label,
                "name": np.asarray([REFAV_LABELS[x] for x in label.tolist()], dtype=np.str_).reshape(-1),
                "track_id": rows.astype(np.int32),
                "score": np.ones(rows.shape[0], dtype=np.float32),
            }
        )
    return frames


def write_refav(
    path: str | Path, entries: Iterable[tuple[Scenario, Selection, str]]
) -> Mapping[tuple[str, str], list[dict[str, Any]]]:
    """Write a RefAV submission pickle for ``(scenario, selection, prompt)`` entries; return what was written.

    Raises:
        MiningError: if a scenario is not an AV2 sensor log, or two entries share a (log, prompt).
    """
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for scenario, selection, prompt in entries:
        key = (refav_log_id(scenario), prompt)
        if key in out:
            raise MiningError(f"two results for log {key[0]} and prompt {prompt!r}")
        out[key] = refav_frames(scenario, selection, prompt)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("wb") as fh:
        pickle.dump(out, fh, protocol=4)
    tmp.replace(target)
    return out
