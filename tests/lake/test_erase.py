"""Erasure: deleted rows are gone from every version, every file and the ledger; the rest stays."""

from __future__ import annotations

import lake_synth
import pytest
from lake_helpers import root_objects

from datadrive.errors import AccessDeniedError, LakeError
from datadrive.lake import Erasure, IngestOptions, Lake, StorageRoot


@pytest.fixture
def lake_with_data(make_lake, inputs) -> Lake:
    lake = make_lake(home="eu-central")
    lake.ingest(
        inputs(range(4), scenarios=2, telemetry=True),
        "eu-central",
        registry=lake_synth.REGISTRY,
        options=IngestOptions(batch_inputs=2),
    )
    return lake


def all_bytes_under(root: StorageRoot) -> bytes:
    """Every file under the root but the audit table's (local folder or object store)."""
    rel = len(root.base_path) + 1
    return b"".join(data for path, data in sorted(root_objects(root)) if "audit" not in path[rel:].split("/"))


def test_erase_a_vehicle_removes_it_from_every_version_and_file(lake_with_data) -> None:
    lake = lake_with_data
    root = lake.config.region("eu-central").root
    snap = lake.snapshot("eu-central")
    victim = snap.scenarios()[0]
    # every record of that vehicle: pick by the vehicle's pseudonym in the scenario id
    vehicle = victim.metadata.extras["vehicle_name"]
    ids = [s.scenario_id for s in snap.scenarios(include_telemetry_egos=True) if vehicle in s.scenario_id]
    tel_ids = [t.telemetry_id for t in snap.telemetry() if vehicle in t.telemetry_id]
    assert ids
    assert tel_ids
    assert vehicle.encode() in all_bytes_under(root)
    before = snap.version

    report = lake.erase(
        "eu-central", Erasure(tenant="bmw", scenario_ids=tuple(ids), telemetry_ids=tuple(tel_ids))
    )
    assert report.scenarios == len(ids)
    assert report.telemetry == len(tel_ids)
    assert report.files_removed > 0

    after = lake.snapshot("eu-central")
    assert not [s for s in after.scenarios(include_telemetry_egos=True) if vehicle in s.scenario_id]
    assert not [t for t in after.telemetry() if vehicle in t.telemetry_id]
    assert len(after.scenarios()) == 8 - len([i for i in ids if "_099" not in i])
    # time travel cannot bring it back: old versions that held it say they are gone; the others lack it
    gone = 0
    for v in range(1, before + 1):
        try:
            old = lake.snapshot("eu-central", v)
        except LakeError as exc:
            message = str(exc)
            gone += 1
            assert "can no longer be read" in message
            continue
        assert not [s for s in old.scenarios(include_telemetry_egos=True) if vehicle in s.scenario_id]
    assert gone >= 1
    # and no byte under the region root (logs, data, ledger; the audit keeps only counts) holds it
    assert vehicle.encode() not in all_bytes_under(root)
    row = lake.audit_log("eu-central").to_pylist()
    erase_rows = [r for r in row if r["action"] == "erase"]
    assert erase_rows
    assert vehicle not in erase_rows[-1]["detail"]


def test_erased_input_leaves_the_ledger_and_can_be_ingested_again(lake_with_data, inputs) -> None:
    lake = lake_with_data
    (path,) = inputs([0], scenarios=2, telemetry=True)  # rewrites the same file, same bytes
    from datadrive.sources.base import file_sha256

    sha = file_sha256(path)
    report = lake.erase("eu-central", Erasure(tenant="bmw", input_sha256=(sha,)))
    assert report.inputs == 1
    assert report.scenarios == 3  # two scenarios and the telemetry ego
    again = lake.ingest([path], "eu-central", registry=lake_synth.REGISTRY)
    assert again.counts()["ingested"] == 1


def test_retention_erases_what_was_ingested_before_a_date(lake_with_data) -> None:
    report = lake_with_data.erase("eu-central", Erasure(tenant="bmw", ingested_before="2999-01-01"))
    assert report.inputs == 4
    assert lake_with_data.snapshot("eu-central").scenarios() == []
    nothing = lake_with_data.erase("eu-central", Erasure(tenant="bmw", ingested_before="1999-01-01"))
    assert nothing.scenarios == 0
    assert nothing.lake_version is None


def test_a_tenant_cannot_erase_another_tenants_data(lake_with_data, config) -> None:
    other = Lake(config, lake_with_data.principal.__class__("li", "tencent", "eu-central"))
    with pytest.raises(AccessDeniedError):
        other.erase("eu-central", Erasure(tenant="bmw", sources=("synthetic",)))
    assert len(lake_with_data.snapshot("eu-central").scenarios()) == 8


def test_partial_erasure_keeps_the_ledger_consistent(lake_with_data) -> None:
    lake = lake_with_data
    one = lake.snapshot("eu-central").scenarios()[0]
    lake.erase("eu-central", Erasure(tenant="bmw", scenario_ids=(one.scenario_id,)))
    report = lake.check("eu-central")
    assert report.ok, report.problems
    assert report.counts["scenarios"] == 8 + 4 - 1


def test_an_erasure_interrupted_by_a_crash_is_finished_by_the_next_writer(lake_with_data, inputs) -> None:
    import json

    from datadrive.lake.erase import keys_filter, plan_erase, rewrite_without
    from datadrive.lake.schema import SCENARIOS
    from datadrive.lake.tables import RegionStore

    lake = lake_with_data
    store = RegionStore(lake.config.region("eu-central"))
    victim = lake.snapshot("eu-central").scenarios()[0].scenario_id
    plan = plan_erase(store, Erasure(tenant="bmw", scenario_ids=(victim,)))
    # what erase() does before the crash: save the plan, then the first of its rewrites
    store.fs.create_dir(store.root.meta_path("pending"), recursive=True)
    store.write_file(
        store.root.meta_path("pending", f"erase-{plan['erase_id']}.json"), json.dumps(plan).encode()
    )
    rewrite_without(store, SCENARIOS, "bmw", keys_filter("bmw", plan["scenario_keys"], "scenario_id"))
    # -- crash --
    assert lake.snapshot("eu-central").scenarios(ids=[victim]), "readers still see the last committed version"
    lake.ingest(inputs([77]), "eu-central", registry=lake_synth.REGISTRY)  # the next writer
    assert lake.snapshot("eu-central").scenarios(ids=[victim]) == []
    report = lake.check("eu-central")
    assert report.ok, report.problems
    assert report.pending == 0
    assert [v.operation for v in lake.history("eu-central")][:2] == ["ingest", "erase"]


def test_derived_data_keyed_by_records_is_erased_with_them(lake_with_data, make_lake) -> None:
    from datadrive.lake import ErasureKeys

    lake = lake_with_data
    snap = lake.snapshot("eu-central")
    tel = sorted(t.telemetry_id for t in snap.telemetry())
    scen = sorted(s.scenario_id for s in snap.scenarios())
    assert len(tel) >= 2
    a = lake.put_derived(
        "eu-central", "metrics", "by-log/a.json", b"{}", erase_with=ErasureKeys(telemetry_ids=(tel[0],))
    )
    b = lake.put_derived(
        "eu-central", "metrics", "by-log/b.json", b"{}", erase_with=ErasureKeys(telemetry_ids=(tel[1],))
    )
    c = lake.put_derived(
        "eu-central", "metrics", "by-scenario/c.json", b"{}", erase_with=ErasureKeys(scenario_ids=(scen[0],))
    )
    plain = lake.put_derived("eu-central", "metrics", "fleet.json", b"{}")  # keyed by nothing: kept
    root = lake.config.region("eu-central").root
    stored = dict(root_objects(root))
    prov = stored[root.path(a + ".provenance.json")].decode()
    assert '"erase_with"' in prov
    assert "ana" not in prov  # the creator of data erasable with personal records is pseudonymised

    report = lake.erase("eu-central", Erasure(tenant="bmw", telemetry_ids=(tel[0],)))
    assert report.telemetry == 1
    assert report.derived == 1
    names = lake.list_derived("eu-central", "metrics")
    assert a not in names
    assert {b, c, plain} <= set(names)
    left = dict(root_objects(root))
    assert root.path(a) not in left
    assert root.path(a + ".provenance.json") not in left
    assert root.path(b) in left

    # an erasure naming ids no longer in the tables still removes what they keyed
    lake.erase("eu-central", Erasure(tenant="bmw", scenario_ids=(scen[0],)))
    assert c not in lake.list_derived("eu-central", "metrics")
    audit = lake.audit_log("eu-central").to_pylist()
    assert any(r["action"] == "erase" and '"derived": 1' in (r.get("detail") or "") for r in audit)

    # another tenant's erasure never touches bmw's artefacts (and cannot delete them)
    other = make_lake("bo", tenant="tencent", home="eu-central")
    with pytest.raises(AccessDeniedError):
        other.delete_derived("eu-central", b)
    assert lake.delete_derived("eu-central", b) is True
    assert lake.delete_derived("eu-central", b) is False


def test_keyed_artefacts_of_a_crashed_erasure_go_when_recovery_finishes_it(
    lake_with_data, monkeypatch
) -> None:
    """A crash after the records are erased but before their keyed artefacts are: the next writer
    finishes the erasure from its saved plan, artefacts included."""
    import datadrive.lake.maintenance as maintenance
    from datadrive.lake import ErasureKeys

    lake = lake_with_data
    tel = sorted(t.telemetry_id for t in lake.snapshot("eu-central").telemetry())
    a = lake.put_derived(
        "eu-central", "metrics", "by-log/a.json", b"{}", erase_with=ErasureKeys(telemetry_ids=(tel[0],))
    )

    class CrashError(Exception):
        pass

    def crash(*args: object, **kwargs: object) -> list[str]:
        raise CrashError

    monkeypatch.setattr(maintenance, "erase_keyed_artefacts", crash)
    with pytest.raises(CrashError):
        lake.erase("eu-central", Erasure(tenant="bmw", telemetry_ids=(tel[0],)))
    monkeypatch.undo()
    assert a in lake.list_derived("eu-central", "metrics")  # the crash left it
    # any writer recovers first: an erasure of something else finishes the crashed one
    lake.erase("eu-central", Erasure(tenant="bmw", telemetry_ids=("no-such-log",)))
    assert a not in lake.list_derived("eu-central", "metrics")
    assert tel[0] not in {t.telemetry_id for t in lake.snapshot("eu-central").telemetry()}
