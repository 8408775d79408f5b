"""The lake on Azure: the local-folder lake tests, run again with every region root in an Azurite container.

The assertions are the lake tests' own (imported from ``test_samples``,
``test_versions``, ``test_residency`` and ``test_erase``); only the storage
changes: the two-region config of ``conftest.two_region_config`` with each
root moved to ``az://<container>/<prefix>/<region>`` on an Azurite started
on 127.0.0.1. The sample lake puts its two regions in two storage accounts;
the other lakes put them in two containers of one account. Covered: ingest of
every sample (process pool) and from the CLI on a Ray cluster, SQL and
library reads against the raw files, time travel, history, optimize,
residency refusals and their audit, the audit chain, derived exports, erasure
with vacuum, ``lake check``; four concurrent ``datadrive ingest`` processes
on one region; and ``kill -9`` during ingests.
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
import test_erase
import test_ray_ingest
import test_residency
import test_samples
import test_versions
from lake_helpers import root_objects, root_paths, two_region_config

from datadrive.errors import ResidencyError
from datadrive.lake import Lake, LakeConfig, Principal, StorageRoot
from datadrive.lake.tables import RegionStore
from services import AzuriteServer, RayCluster, azurite, ray_cluster

__all__ = ["azurite", "ray_cluster"]  # the fixtures, imported so pytest finds them here

pytestmark = [pytest.mark.service, pytest.mark.slow]
REGIONS = test_samples.REGIONS
LEASE_S = "3"
"""The region lock's lease in these lakes (``datadrive_lock_lease_s``): a killed writer's lock is
taken over after about 5 s instead of 32 s."""


def on_azure(
    config: LakeConfig, server: AzuriteServer, places: dict[str, tuple[str, str]], prefix: str
) -> LakeConfig:
    """``config`` with each region's root moved to ``az://<container>/<prefix>/<region>`` in its account.

    Args:
        places: Region -> (account, container).
    """
    regions = {}
    for name, r in config.regions.items():
        account, container = places[name]
        options = {**server.options(account), "datadrive_lock_lease_s": LEASE_S}
        regions[name] = replace(r, root=StorageRoot(f"az://{container}/{prefix}/{name}", options))
    return replace(config, regions=MappingProxyType(regions))


def two_containers(server: AzuriteServer, account: str | None = None) -> dict[str, tuple[str, str]]:
    """A fresh container per region, in one account."""
    account = account or server.account
    return {r: (account, server.new_container(account)) for r in REGIONS}


@pytest.fixture
def config(lake_root: Path, azurite: AzuriteServer) -> LakeConfig:
    """Overrides conftest's ``config``: both regions in Azurite containers (``make_lake`` uses it)."""
    return on_azure(two_region_config(lake_root), azurite, two_containers(azurite), secrets.token_hex(4))


# --------------------------------------------------------------------------- every sample, in two accounts


@pytest.fixture(scope="module")
def sample_lake(
    samples: Path, tmp_path_factory: pytest.TempPathFactory, azurite: AzuriteServer
) -> dict[str, Any]:
    """``test_samples``'s own sample lake (all samples), cn-north and eu-central in two storage accounts."""
    places = {
        "cn-north": ("ddlake1", azurite.new_container("ddlake1")),
        "eu-central": ("ddlake2", azurite.new_container("ddlake2")),
    }

    def azure_config(root: Path, **kwargs: Any) -> LakeConfig:
        return on_azure(two_region_config(root, **kwargs), azurite, places, "samples")

    with _patched(test_samples, "two_region_config", azure_config):
        lake: dict[str, Any] = test_samples.sample_lake.__wrapped__(samples, tmp_path_factory)  # type: ignore[attr-defined]
    roots = [r.root for r in lake["config"].regions.values()]
    assert all(r.is_azure for r in roots)
    assert {r.azure_settings().account for r in roots} == {"ddlake1", "ddlake2"}
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


def test_no_vehicle_identifier_of_the_samples_reaches_the_containers(sample_lake: dict[str, Any]) -> None:
    """``test_samples``'s check, over the blobs in the containers instead of files in a folder."""
    raw_ids = [b"veh-45", b"veh-49", b"b0c9d2329ad1606b", b"host-a101"]
    seen = 0
    for region in REGIONS:
        for path, data in root_objects(sample_lake["config"].region(region).root):
            seen += 1
            for raw in raw_ids:
                assert raw not in data, (path, raw)
    assert seen > 20


def test_each_region_stays_in_its_account(sample_lake: dict[str, Any], azurite: AzuriteServer) -> None:
    """Each region's blobs are in its own account; the other account does not even have its container."""
    import pyarrow.fs as pafs

    for region in REGIONS:
        root = sample_lake["config"].region(region).root
        assert any(p.endswith(".parquet") for p in root_paths(root))
        account = root.azure_settings().account
        for acct in ("ddlake1", "ddlake2"):
            containers = {i.path for i in azurite.filesystem(acct).get_file_info(pafs.FileSelector(""))}
            assert (root.container in containers) == (acct == account), (region, acct)


# --------------------------------------------------------------------------- time travel, optimize


@pytest.fixture(scope="module")
def versioned(azurite: AzuriteServer, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """``test_versions``' ``versioned`` lake (three versions after creation: 2, 4 and 6 inputs), built once.

    Module-scoped, unlike the local one: the tests reused with it only read.
    """
    tmp = tmp_path_factory.mktemp("versions")
    config = on_azure(two_region_config(tmp / "lake"), azurite, two_containers(azurite), "versions")
    lake = Lake(config, Principal("ana", "bmw", "eu-central"))
    for i in range(3):
        inputs = lake_synth.write_inputs(tmp / "in", range(2 * i, 2 * i + 2))
        lake.ingest(inputs, "eu-central", registry=lake_synth.REGISTRY)
    return lake


test_history_lists_every_version = test_versions.test_history_lists_every_version
test_sql_and_library_read_a_pinned_version = test_versions.test_sql_and_library_read_a_pinned_version
test_every_table_is_pinned_consistently = test_versions.test_every_table_is_pinned_consistently
test_a_version_that_does_not_exist_says_so = test_versions.test_a_version_that_does_not_exist_says_so
test_optimize_keeps_rows_and_versions = test_versions.test_optimize_keeps_rows_and_versions


# --------------------------------------------------------------------------- residency


@pytest.fixture(scope="module")
def az_cn_lake(azurite: AzuriteServer, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """``test_residency``'s ``cn_lake`` (3 inputs with telemetry in cn-north, eu-central made), on Azure."""
    tmp = tmp_path_factory.mktemp("residency")
    config = on_azure(two_region_config(tmp / "lake"), azurite, two_containers(azurite), "residency")
    lake = Lake(config, Principal("ana", "bmw", "cn-north"))
    inputs = lake_synth.write_inputs(tmp / "in", range(3), scenarios=2, telemetry=True)
    lake.ingest(inputs, "cn-north", registry=lake_synth.REGISTRY)
    lake.init(["eu-central"])
    return lake


@pytest.mark.parametrize(
    ("table", "to"), [("tracks", "eu-central"), ("audit", "external")], ids=["tracks", "audit"]
)
def test_export_of_raw_tables_is_refused_and_audited(
    az_cn_lake: Lake, table: str, to: str, tmp_path: Path
) -> None:
    test_residency.test_export_of_raw_tables_is_refused_and_audited(az_cn_lake, table, to, tmp_path)


@pytest.mark.parametrize("name", ["copy-to-file", "read-other-region", "read-own-files", "attach"])
def test_sql_that_touches_files_is_refused_and_audited(az_cn_lake: Lake, name: str) -> None:
    test_residency.test_sql_that_touches_files_is_refused_and_audited(
        az_cn_lake, test_residency.SQL_ESCAPES[name]
    )


def test_reads_from_abroad_count_as_export(az_cn_lake: Lake) -> None:
    test_residency.test_reads_from_abroad_count_as_export(az_cn_lake, az_cn_lake.config)


def test_dataset_build_cannot_write_one_regions_records_into_another(az_cn_lake: Lake) -> None:
    test_residency.test_dataset_build_cannot_write_one_regions_records_into_another(az_cn_lake)


def test_derived_artefact_of_one_region_cannot_be_stored_in_another(az_cn_lake: Lake) -> None:
    test_residency.test_derived_artefact_of_one_region_cannot_be_stored_in_another(az_cn_lake)


def test_derived_exports_follow_the_policy(az_cn_lake: Lake, tmp_path: Path) -> None:
    test_residency.test_derived_exports_follow_the_policy(az_cn_lake, tmp_path)


def test_a_raw_export_happens_only_where_the_policy_says_so(
    lake_root: Path, inputs: Any, azurite: AzuriteServer
) -> None:
    """``test_residency``'s allowed raw export (eu-central -> cn-north), with both regions on Azure."""

    made: list[LakeConfig] = []

    def azure_config(root: Path, **kwargs: Any) -> LakeConfig:
        made.append(
            on_azure(two_region_config(root, **kwargs), azurite, two_containers(azurite), "raw-export")
        )
        return made[-1]

    with _patched(test_residency, "two_region_config", azure_config):
        test_residency.test_a_raw_export_happens_only_where_the_policy_says_so(lake_root, inputs)
    (config,) = made
    imported = root_paths(config.region("cn-north").root)
    assert [p for p in imported if p.startswith("imports/eu-central/scenarios/") and p.endswith(".parquet")]


def test_unknown_tenant_is_refused_and_audited(az_cn_lake: Lake) -> None:
    test_residency.test_unknown_tenant_is_refused_and_audited(az_cn_lake, az_cn_lake.config)


def test_a_root_holds_one_region(az_cn_lake: Lake) -> None:
    test_residency.test_a_root_holds_one_region(az_cn_lake, az_cn_lake.config)


def test_a_root_holding_another_regions_marker_is_refused_before_any_write(az_cn_lake: Lake) -> None:
    """eu-central configured onto cn-north's container and prefix: init is refused, nothing changes."""
    config = az_cn_lake.config
    cn_root = config.region("cn-north").root
    regions = dict(config.regions)
    regions["eu-central"] = replace(regions["eu-central"], root=cn_root)
    wrong = Lake(replace(config, regions=MappingProxyType(regions)), Principal("ana", "bmw", "eu-central"))
    before = sorted(p for p in root_paths(cn_root) if not p.startswith("audit/"))
    with pytest.raises(ResidencyError, match="holds region 'cn-north', not 'eu-central'"):
        wrong.init(["eu-central"])
    assert sorted(p for p in root_paths(cn_root) if not p.startswith("audit/")) == before


def test_raw_blobs_stay_under_their_region_root(az_cn_lake: Lake) -> None:
    cn = root_paths(az_cn_lake.config.region("cn-north").root)
    eu = root_paths(az_cn_lake.config.region("eu-central").root)
    assert [p for p in cn if p.startswith("tracks/") and p.endswith(".parquet")]
    assert not [p for p in eu if p.endswith(".parquet") and not p.startswith("audit/")]


def test_audit_chain_verifies_on_azure(az_cn_lake: Lake) -> None:
    report = az_cn_lake.verify_audit("cn-north")
    assert report.ok, report.problems
    assert RegionStore(az_cn_lake.config.region("eu-central")).lake_version() == 0
    assert az_cn_lake.check("cn-north").ok


# --------------------------------------------------------------------------- erasure, with vacuum

lake_with_data = test_erase.lake_with_data
test_erase_a_vehicle_removes_it_from_every_version_and_file = (
    test_erase.test_erase_a_vehicle_removes_it_from_every_version_and_file
)
test_erased_input_leaves_the_ledger_and_can_be_ingested_again = (
    test_erase.test_erased_input_leaves_the_ledger_and_can_be_ingested_again
)
test_partial_erasure_keeps_the_ledger_consistent = test_erase.test_partial_erasure_keeps_the_ledger_consistent
test_an_erasure_interrupted_by_a_crash_is_finished_by_the_next_writer = (
    test_erase.test_an_erasure_interrupted_by_a_crash_is_finished_by_the_next_writer
)


# --------------------------------------------------------------------------- CLI: concurrency, kill -9, Ray


def _azure_lake(folder: Path, server: AzuriteServer, name: str) -> Path:
    """A lake folder with eu-central in a fresh container, initialised by ``datadrive lake init``."""
    options = {**server.options(), "datadrive_lock_lease_s": LEASE_S}
    return kill_harness.object_store_lake(folder, f"az://{server.new_container()}/{name}/eu-central", options)


def test_four_concurrent_ingests_store_every_scenario_once(tmp_path: Path, azurite: AzuriteServer) -> None:
    """``test_faults``' concurrent-writer test with the region on Azure: the lease lock serialises batches."""
    root = _azure_lake(tmp_path / "lake", azurite, "cli")
    inputs = lake_synth.write_inputs(tmp_path / "in", range(8), scenarios=2, sleep_s=0.01)
    kill_harness.check_concurrent_ingests(root, tmp_path / "in", inputs)


def test_kill_minus_nine_leaves_a_whole_lake(tmp_path: Path, azurite: AzuriteServer) -> None:
    """``test_faults``' kill test on Azure, shorter: 3 kills, each followed by ``lake check`` and the
    ledger's own check; then a rerun must complete the lake.

    The seed is chosen so the kills land whatever the machine's speed: the first and last inside a
    commit (after the 1st and 3rd pending marker of their run appears, then 5 and 9 ms: listing the
    markers on Azurite already takes ms, and a batch's commit there is over soon after), the second
    4.05 s after the CLI starts, while 24 inputs (12 commits) are still being ingested.
    """
    seed = 20261297
    stats = kill_harness.run(
        tmp_path,
        seed=seed,
        kills=3,
        kills_per_lake=3,
        files=24,
        max_delay_s=9.0,
        new_lake=lambda folder: _azure_lake(folder, azurite, "kill"),
        pending_markers=kill_harness.root_pending,
        poll_s=0.02,
        max_extra_s=0.02,
    )
    assert stats.problems == [], f"seed {seed}: {stats.problems}"
    assert stats.kills == 3
    assert stats.lakes == 1
    assert stats.completed_before_kill == 0, "every kill interrupted an ingest"
    assert stats.mid_commit >= 1, "a kill inside a commit left a batch for the next writer to clean up"


def test_cli_engine_ray_into_azure(
    ray_cluster: RayCluster, samples: Path, tmp_path: Path, azurite: AzuriteServer
) -> None:
    """``test_ray_ingest``'s CLI test, the region on Azure: read on the cluster, committed by the driver."""
    test_ray_ingest.check_cli_engine_ray(_azure_lake(tmp_path / "lake", azurite, "ray"), ray_cluster, samples)
