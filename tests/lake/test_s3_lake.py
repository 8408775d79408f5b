"""The lake on S3: the local-folder lake tests, run again with every region root in a SeaweedFS bucket.

The assertions are the lake tests' own (imported from ``test_samples``,
``test_versions`` and ``test_residency``); only the storage changes: the
two-region config of ``conftest.two_region_config`` with each root moved to
``s3://<bucket>/<prefix>/<region>`` on a SeaweedFS server on 127.0.0.1.
Covered: ingest of every sample + SQL and library reads against the raw
files, time travel, optimize/vacuum, residency refusals and their audit,
and four concurrent ``datadrive ingest`` processes on one region.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import kill_harness
import lake_synth
import pytest
import test_residency
import test_samples
import test_versions
from lake_helpers import root_objects, two_region_config

from datadrive.lake import Lake, LakeConfig, Principal, StorageRoot
from datadrive.lake.tables import RegionStore
from services import S3Server, s3_server

__all__ = ["s3_server"]  # the fixture, imported so pytest finds it here

pytestmark = [pytest.mark.service, pytest.mark.slow]
REGIONS = test_samples.REGIONS


def on_s3(config: LakeConfig, server: S3Server, bucket: str, prefix: str) -> LakeConfig:
    """``config`` with every region's root moved to ``s3://bucket/prefix/<region>`` (policies unchanged)."""
    regions = {
        name: replace(r, root=StorageRoot(f"s3://{bucket}/{prefix}/{name}", server.options()))
        for name, r in config.regions.items()
    }
    return replace(config, regions=MappingProxyType(regions))


@pytest.fixture(scope="module")
def bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket()


@pytest.fixture
def config(lake_root: Path, s3_server: S3Server, bucket: str) -> LakeConfig:
    """Overrides conftest's ``config``: the same two regions, on S3 (so ``make_lake`` builds S3 lakes)."""
    return on_s3(two_region_config(lake_root), s3_server, bucket, secrets.token_hex(4))


# --------------------------------------------------------------------------- every sample, on S3


@pytest.fixture(scope="module")
def sample_lake(
    samples: Path, tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server, bucket: str
) -> dict[str, Any]:
    """``test_samples``'s own sample lake (all samples, two regions), built with its roots on S3."""

    def s3_config(root: Path, **kwargs: Any) -> LakeConfig:
        return on_s3(two_region_config(root, **kwargs), s3_server, bucket, "samples")

    with _patched(test_samples, "two_region_config", s3_config):
        lake: dict[str, Any] = test_samples.sample_lake.__wrapped__(samples, tmp_path_factory)  # type: ignore[attr-defined]
    assert all(r.root.is_s3 for r in lake["config"].regions.values())
    return lake


@contextlib.contextmanager
def _patched(module: Any, name: str, value: Any) -> Iterator[None]:
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


test_every_input_is_accounted_for = test_samples.test_every_input_is_accounted_for
test_sql_matches_inspect_of_the_raw_files = test_samples.test_sql_matches_inspect_of_the_raw_files
test_library_matches_inspect_of_the_raw_files = test_samples.test_library_matches_inspect_of_the_raw_files
test_each_region_holds_only_its_own_formats = test_samples.test_each_region_holds_only_its_own_formats


def test_no_vehicle_identifier_of_the_samples_reaches_the_bucket(sample_lake: dict[str, Any]) -> None:
    """``test_samples``'s check, over the objects in the bucket instead of files in a folder."""
    raw_ids = [b"veh-45", b"veh-49", b"b0c9d2329ad1606b", b"host-a101"]
    seen = 0
    for region in REGIONS:
        for path, data in root_objects(sample_lake["config"].region(region).root):
            seen += 1
            for raw in raw_ids:
                assert raw not in data, (path, raw)
    assert seen > 20


def test_region_objects_stay_under_their_prefix(sample_lake: dict[str, Any]) -> None:
    for region in REGIONS:
        root = sample_lake["config"].region(region).root
        paths = [p for p, _ in root_objects(root)]
        assert paths
        assert all(p.startswith(root.base_path + "/") for p in paths)
        assert any(p.endswith(".parquet") for p in paths)


# --------------------------------------------------------------------------- time travel, optimize


versioned = test_versions.versioned
test_history_lists_every_version = test_versions.test_history_lists_every_version
test_sql_and_library_read_a_pinned_version = test_versions.test_sql_and_library_read_a_pinned_version
test_every_table_is_pinned_consistently = test_versions.test_every_table_is_pinned_consistently
test_a_version_that_does_not_exist_says_so = test_versions.test_a_version_that_does_not_exist_says_so
test_optimize_keeps_rows_and_versions = test_versions.test_optimize_keeps_rows_and_versions


# --------------------------------------------------------------------------- residency


@pytest.fixture(scope="module")
def s3_cn_lake(s3_server: S3Server, bucket: str, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """``test_residency``'s ``cn_lake`` (3 inputs with telemetry in cn-north, eu-central created), on S3."""
    tmp = tmp_path_factory.mktemp("residency")
    config = on_s3(two_region_config(tmp / "lake"), s3_server, bucket, "residency")
    lake = Lake(config, Principal("ana", "bmw", "cn-north"))
    inputs = lake_synth.write_inputs(tmp / "in", range(3), scenarios=2, telemetry=True)
    lake.ingest(inputs, "cn-north", registry=lake_synth.REGISTRY)
    lake.init(["eu-central"])
    return lake


@pytest.mark.parametrize(
    ("table", "to"), [("tracks", "eu-central"), ("audit", "external")], ids=["tracks", "audit"]
)
def test_export_of_raw_tables_is_refused_and_audited(
    s3_cn_lake: Lake, table: str, to: str, tmp_path: Path
) -> None:
    test_residency.test_export_of_raw_tables_is_refused_and_audited(s3_cn_lake, table, to, tmp_path)


@pytest.mark.parametrize("name", ["copy-to-file", "read-other-region", "read-own-files", "attach"])
def test_sql_that_touches_files_is_refused_and_audited(s3_cn_lake: Lake, name: str) -> None:
    test_residency.test_sql_that_touches_files_is_refused_and_audited(
        s3_cn_lake, test_residency.SQL_ESCAPES[name]
    )


def test_reads_from_abroad_count_as_export(s3_cn_lake: Lake) -> None:
    test_residency.test_reads_from_abroad_count_as_export(s3_cn_lake, s3_cn_lake.config)


def test_dataset_build_cannot_write_one_regions_records_into_another(s3_cn_lake: Lake) -> None:
    test_residency.test_dataset_build_cannot_write_one_regions_records_into_another(s3_cn_lake)


def test_unknown_tenant_is_refused_and_audited(s3_cn_lake: Lake) -> None:
    test_residency.test_unknown_tenant_is_refused_and_audited(s3_cn_lake, s3_cn_lake.config)


def test_a_root_holds_one_region(s3_cn_lake: Lake) -> None:
    test_residency.test_a_root_holds_one_region(s3_cn_lake, s3_cn_lake.config)


def test_audit_chain_verifies_on_s3(s3_cn_lake: Lake) -> None:
    report = s3_cn_lake.verify_audit("cn-north")
    assert report.ok, report.problems
    assert RegionStore(s3_cn_lake.config.region("eu-central")).lake_version() == 0


# --------------------------------------------------------------------------- 4 concurrent CLI writers


def test_four_concurrent_ingests_store_every_scenario_once(
    tmp_path: Path, s3_server: S3Server, bucket: str
) -> None:
    """``test_faults``' concurrent-writer test with the region on S3: the lease lock serialises batches."""
    root = kill_harness.object_store_lake(
        tmp_path / "lake", f"s3://{bucket}/cli/eu-central", s3_server.options()
    )
    inputs = lake_synth.write_inputs(tmp_path / "in", range(12), scenarios=2, sleep_s=0.01)
    kill_harness.check_concurrent_ingests(root, tmp_path / "in", inputs)
