"""Pseudonyms: keyed, per tenant, applied to every identifier the docs list."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import lake_synth
import pytest

from datadrive.lake import Pseudonymizer
from datadrive.lake.pseudonym import DEFAULT_RULES

KEY = b"k" * 32


def hmac_hex(key: bytes, value: str) -> str:
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("source", "raw", "identifier", "prefix", "digits"),
    [
        ("nuplan", "2021.09.16.14.14.03_veh-45_00441_00502", "veh-45", "veh-", 12),
        ("comma2k19", "b0c9d2329ad1606b|2018-08-02--08-34-47--40", "b0c9d2329ad1606b", "", 16),
        ("lyft_l5kit", "host-a101", "host-a101", "host-", 12),
    ],
    ids=["nuplan-vehicle", "comma2k19-dongle", "lyft-host"],
)
def test_embedded_identifiers_are_replaced_by_their_hmac(source, raw, identifier, prefix, digits) -> None:
    out = Pseudonymizer(KEY).text(source, raw)
    expected = prefix + hmac_hex(KEY, identifier)[:digits]
    assert out == raw.replace(identifier, expected)
    assert identifier not in out


def test_rules_apply_to_ids_of_their_sources_only() -> None:
    scrub = Pseudonymizer(KEY).scrubber("waymo_open_motion", {})
    assert scrub("veh-45 b0c9d2329ad1606b host-a101") == "veh-45 b0c9d2329ad1606b host-a101"


def test_every_rule_applies_to_paths_whatever_the_source_and_case() -> None:
    """F7 and F6: a dongle id in a nuPlan path, an upper-case dongle folder: replaced, same pseudonym."""
    p = Pseudonymizer(KEY)
    dongle = hmac_hex(KEY, "b0c9d2329ad1606b")[:16]
    assert p.text("nuplan", "pz/dongle_b0c9d2329ad1606b/veh-49.db") == (
        f"pz/dongle_{dongle}/veh-{hmac_hex(KEY, 'veh-49')[:12]}.db"
    )
    assert (
        p.text("comma2k19", "B0C9D2329AD1606B_2018-08-02--08-34-47/40") == f"{dongle}_2018-08-02--08-34-47/40"
    )
    assert p.text("waymo_open_motion", "/x/HOST-A101/VEH-45") == (
        f"/x/host-{hmac_hex(KEY, 'host-a101')[:12]}/veh-{hmac_hex(KEY, 'veh-45')[:12]}"
    )
    assert p.scrubber("comma2k19", {})("B0C9D2329AD1606B|2018") == f"{dongle}|2018"


def test_a_sha256_is_not_mistaken_for_a_dongle_id() -> None:
    sha = "ab" * 32
    assert Pseudonymizer(KEY).text("comma2k19", sha) == sha


def test_keys_differ_per_tenant_and_are_deterministic() -> None:
    a1 = Pseudonymizer(b"a" * 32).text("nuplan", "veh-45")
    a2 = Pseudonymizer(b"a" * 32).text("nuplan", "veh-45")
    b = Pseudonymizer(b"b" * 32).text("nuplan", "veh-45")
    assert a1 == a2
    assert a1 != b


def test_identifier_values_in_extras_are_replaced_everywhere(tmp_path) -> None:
    (path,) = lake_synth.write_inputs(tmp_path, [3], vehicle="car-0042", telemetry=True)
    scenario, telemetry = lake_synth.records_of(path)[0], lake_synth.records_of(path)[-1]
    p = Pseudonymizer(KEY)
    pseudo = "pid-" + hmac_hex(KEY, "car-0042")[:16]
    s = p.scenario(scenario)
    assert s.metadata.extras["vehicle_name"] == pseudo
    assert s.scenario_id == scenario.scenario_id.replace("car-0042", pseudo)
    t = p.telemetry(telemetry)
    assert t.metadata.extras["dongle_id"] == pseudo
    assert t.telemetry_id == f"{pseudo}|route-3"
    assert t.ego is not None
    assert "car-0042" not in t.ego.scenario_id
    # nothing else changes
    assert s.tracks is scenario.tracks
    assert s.metadata.extras["tags"] == ["a", "b"]


def test_docs_list_every_rule() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "lake.md").read_text()
    for rule in DEFAULT_RULES:
        assert rule.example in docs or rule.example.replace("|", "\\|") in docs, rule.name


def test_no_raw_identifier_reaches_the_lake(make_lake, inputs, lake_root) -> None:
    paths = inputs([11, 12], vehicle="veh-4242", telemetry=True)
    make_lake(home="eu-central").ingest(paths, "eu-central", registry=lake_synth.REGISTRY)
    for f in (lake_root / "eu-central").rglob("*"):
        if f.is_file():
            assert b"veh-4242" not in f.read_bytes(), f
