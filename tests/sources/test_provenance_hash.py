"""A file input's provenance hash is the SHA-256 of its bytes: ingest uses it as the idempotency key.

The lake reads each input file once (the adapter hashes the bytes it reads
for provenance), so every adapter must record the hash of the unit file itself,
and name that file as the source, on every record it yields.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from datadrive.errors import InputError
from datadrive.sources import DEFAULT_REGISTRY, file_sha256


def test_every_file_units_records_carry_its_own_hash(samples: Path) -> None:
    found = DEFAULT_REGISTRY.scan([samples])
    checked: set[str] = set()
    for unit in found.units:
        if unit.adapter.unit != "file":
            continue
        try:
            records = unit.adapter.read_all(unit.path)
        except InputError:
            continue
        want = file_sha256(unit.path)
        for record in records:
            assert record.metadata.provenance.source_path == str(unit.path), unit
            assert record.metadata.provenance.sha256 == want, unit
        checked.add(unit.adapter.name)
    file_adapters = {a.name for a in DEFAULT_REGISTRY.adapters if a.unit == "file"}
    missing = file_adapters - checked
    if missing:
        pytest.fail(f"no readable sample for file adapters {sorted(missing)}")
