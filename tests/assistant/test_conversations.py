"""Conversations: stored in the data's region, pseudonymised, erased with the vehicle's data."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
from assistant_helpers import SampleLake

from datadrive.assistant import (
    Assistant,
    ConversationStore,
    erase_vehicle_conversations,
    list_vehicles,
    load_vehicle,
)


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_stored_in_region_pseudonymised_and_erasable(sample_lake: SampleLake) -> None:
    lake = sample_lake.lake(home="cn-north", user="li.wei@example.com")
    snap = lake.snapshot("cn-north")
    vehicle = next(iter(list_vehicles(snap)))
    a = Assistant(load_vehicle(snap, vehicle), lake=lake)
    a.ask("what was my top speed", conversation_id="c1")
    a.ask("summarise this trip", conversation_id="c1")
    store = ConversationStore(lake, "cn-north", vehicle)
    assert store.conversations() == ["c1"]
    turns = store.read("c1")
    assert [t["question"] for t in turns] == ["what was my top speed", "summarise this trip"]
    assert turns[0]["user"].startswith("user-")
    assert turns[0]["numbers_checked"] is True
    cn_root = sample_lake.root / "cn-north"
    eu_root = sample_lake.root / "eu-central"
    stored = [p for p in _files(cn_root) if "conversations" in p.parts]
    assert stored
    assert all(str(p).startswith(str(cn_root)) for p in stored)
    assert not [p for p in _files(eu_root) if "conversations" in p.parts]  # nothing outside the region
    for p in stored:  # the asker's name is never stored, only its keyed pseudonym
        assert b"li.wei@example.com" not in p.read_bytes()
    audit = lake.audit_log("cn-north")
    assert "converse" in set(audit.column("action").to_pylist())

    assert erase_vehicle_conversations(lake, "cn-north", vehicle) == 1
    assert store.conversations() == []
    assert not [p for p in _files(cn_root) if "conversations" in p.parts]
    audit = lake.audit_log("cn-north")
    erased = audit.filter(pc.equal(audit["action"], "erase")).to_pylist()
    assert any("conversations about vehicle" in r["object"] for r in erased)
