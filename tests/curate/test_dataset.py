"""Curated datasets: selection by SQL, splits by log, versions, diffs, bad queries, residency."""

from __future__ import annotations

from pathlib import Path

import pytest

from datadrive.curate import (
    DatasetQuery,
    DatasetRef,
    SplitSpec,
    assign_splits,
    create_dataset,
    diff_datasets,
    list_datasets,
    load_dataset,
)
from datadrive.errors import DatasetError, EmptyDatasetError, ResidencyError
from learning_fixtures import SampleLake


def audit_rows(lake, region: str, outcome: str = "refused") -> list[dict]:  # type: ignore[no-untyped-def]
    table = lake.audit_log(region)
    return [r for r in table.to_pylist() if r["outcome"] == outcome]


def test_dataset_records_query_lake_version_code_and_ids(sample_lake: SampleLake) -> None:
    lake = sample_lake.lake()
    m = load_dataset(lake, "samples", "eu-central")
    snap = lake.snapshot("eu-central", m.lake_version)
    rows = snap.sql(
        "SELECT tenant, source, scenario_id FROM scenarios WHERE num_steps >= 110"
    ).table.to_pylist()
    expected = {(r["tenant"], r["source"], r["scenario_id"]) for r in rows}
    assert set(m.keys()) == expected
    assert m.query.kind == "sql"
    assert "num_steps >= 110" in m.query.text
    assert m.code["datadrive"]
    assert m.region == "eu-central"
    assert m.version == 1
    assert sum(m.counts().values()) == len(m)


def test_one_log_never_in_two_splits(sample_lake: SampleLake) -> None:
    m = load_dataset(sample_lake.lake(), "samples", "eu-central")
    by_group: dict[str, set[str]] = {}
    for g, s in zip(m.groups, m.splits, strict=True):
        by_group.setdefault(g, set()).add(s)
    assert all(len(v) == 1 for v in by_group.values())
    # the INTERACTION recording is one input cut into many windows: one group, one split
    inter = {g for g, src in zip(m.groups, m.sources, strict=True) if src == "interaction"}
    assert len(inter) == 1
    assert len(by_group) >= 3  # there are several logs to split


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("80/10/10", {"train": 0.8, "val": 0.1, "test": 0.1}),
        ("9/1", {"train": 0.9, "val": 0.1}),
        ("a=1,b=3", {"a": 0.25, "b": 0.75}),
    ],
    ids=["three", "two", "named"],
)
def test_split_spec_parse(text: str, expected: dict[str, float]) -> None:
    assert SplitSpec.parse(text).fractions == pytest.approx(expected)


@pytest.mark.parametrize("bad", ["", "80/x", "-1/2", "1/2/3/4"], ids=["empty", "letters", "negative", "four"])
def test_split_spec_refuses_bad_text(bad: str) -> None:
    with pytest.raises(DatasetError, match="--split"):
        SplitSpec.parse(bad)


def test_assign_splits_is_deterministic_whole_groups_and_near_the_fractions() -> None:
    groups = [f"log{i // 5}" for i in range(1000)]  # 200 logs of 5 scenarios
    spec = SplitSpec.parse("80/10/10", seed=3)
    a = assign_splits(groups, spec)
    assert a == assign_splits(groups, spec)
    assert a != assign_splits(groups, SplitSpec.parse("80/10/10", seed=4))
    for g in set(groups):
        assert len({s for s, gg in zip(a, groups, strict=True) if gg == g}) == 1
    share = {s: a.count(s) / len(a) for s in ("train", "val", "test")}
    assert share == pytest.approx({"train": 0.8, "val": 0.1, "test": 0.1}, abs=0.02)
    # few logs: every split still gets one
    assert set(assign_splits(["a", "b", "c"], spec)) == {"train", "val", "test"}


def test_versions_list_and_diff(sample_lake: SampleLake, tmp_path: Path) -> None:
    lake = sample_lake.lake()
    v2 = create_dataset(
        lake,
        "inter",
        "eu-central",
        DatasetQuery.sql("SELECT scenario_id FROM scenarios WHERE source = 'interaction'"),
    )
    v3 = create_dataset(
        lake,
        "inter",
        "eu-central",
        DatasetQuery.sql(
            "SELECT scenario_id FROM scenarios WHERE source = 'interaction' AND scenario_id < 'DR_USA_Intersection_EP0_000_010'"
        ),
    )
    assert (v2.version, v3.version) == (1, 2)
    assert load_dataset(lake, "inter", "eu-central").version == 2
    assert load_dataset(lake, "inter@v1", "eu-central").ids_digest() == v2.ids_digest()
    names = {m.name: m.version for m in list_datasets(lake, "eu-central")}
    assert names["inter"] == 2
    d = diff_datasets(v2, v3)
    assert set(d.removed) == set(v2.keys()) - set(v3.keys())
    assert d.added == ()
    assert "query" in d.changed
    assert len(d.removed) == len(v2) - len(v3) > 0


def test_query_matching_nothing_is_a_clear_error(sample_lake: SampleLake) -> None:
    lake = sample_lake.lake()
    with pytest.raises(EmptyDatasetError, match="matched no scenario"):
        create_dataset(
            lake,
            "none",
            "eu-central",
            DatasetQuery.sql("SELECT scenario_id FROM scenarios WHERE num_tracks < 0"),
        )
    with pytest.raises(DatasetError, match="scenario_id"):
        create_dataset(lake, "none", "eu-central", DatasetQuery.sql("SELECT source FROM scenarios"))
    assert not [n for n in lake.list_derived("eu-central", "dataset") if "/none/" in n]


def test_unknown_dataset_and_version(sample_lake: SampleLake) -> None:
    lake = sample_lake.lake()
    with pytest.raises(DatasetError, match="no dataset 'nope'"):
        load_dataset(lake, "nope", "eu-central")
    with pytest.raises(DatasetError, match="no version 9"):
        load_dataset(lake, "samples@v9", "eu-central")
    with pytest.raises(DatasetError, match="version"):
        DatasetRef.parse("samples@vX")


def test_dataset_cannot_be_materialised_in_another_region(sample_lake: SampleLake) -> None:
    lake = sample_lake.lake()
    auditor = sample_lake.lake(home="cn-north", name="auditor")  # cn-north's audit is read from cn-north
    before = len(audit_rows(auditor, "cn-north"))
    with pytest.raises(ResidencyError, match="cannot be materialised in cn-north"):
        load_dataset(lake, "eu-central/samples", "cn-north")
    refused = audit_rows(auditor, "cn-north")
    assert len(refused) == before + 1
    assert refused[-1]["action"] == "materialise"
    assert any(r["action"] == "materialise" for r in audit_rows(lake, "eu-central"))


def test_a_principal_abroad_cannot_build_or_read_datasets_of_a_region(sample_lake: SampleLake) -> None:
    """eu-central's policy lets no dataset leave: a principal in cn-north can neither build nor read one there."""
    abroad = sample_lake.lake(home="cn-north", name="li")
    with pytest.raises(ResidencyError):
        create_dataset(abroad, "x", "eu-central", DatasetQuery.sql("SELECT scenario_id FROM scenarios"))
    with pytest.raises(ResidencyError, match="dataset artefacts"):
        load_dataset(abroad, "samples", "eu-central")
    home = sample_lake.lake()
    refused = audit_rows(home, "eu-central")
    assert any(r["who"] == "li" for r in refused)


def test_a_tampered_manifest_is_refused(sample_lake: SampleLake) -> None:
    from datadrive.curate import DatasetManifest

    lake = sample_lake.lake()
    data, _ = lake.read_derived("eu-central", "derived/dataset/samples/v0001.json")
    at = data.index(b'"split": [')  # the per-scenario split list, not the spec
    forged = data[:at] + data[at:].replace(b'"train"', b'"test"', 1)
    with pytest.raises(DatasetError, match="digest"):
        DatasetManifest.from_json(forged, "forged.json")


def test_dataset_records_each_scenarios_ingest_batch(sample_lake: SampleLake) -> None:
    """Where each scenario's rows are (a cache build prunes files by it); older manifests have none."""
    import json

    from datadrive.curate import DatasetManifest

    lake = sample_lake.lake()
    m = load_dataset(lake, "samples", "eu-central")
    rows = (
        lake.snapshot("eu-central", m.lake_version)
        .sql("SELECT tenant, source, scenario_id, batch_id FROM scenarios WHERE telemetry_id IS NULL")
        .table.to_pylist()
    )
    batch_of = {(r["tenant"], r["source"], r["scenario_id"]): r["batch_id"] for r in rows}
    assert len(m.batches) == len(m)
    keys = m.keys()
    assert list(m.batches) == [batch_of[k] for k in keys]
    again = DatasetManifest.from_json(m.to_json(), "again.json")
    assert again.batches == m.batches
    doc = json.loads(m.to_json())
    del doc["scenarios"]["batch"]  # a manifest written before batches were recorded
    assert DatasetManifest.from_json(json.dumps(doc).encode(), "old.json").batches == ()
