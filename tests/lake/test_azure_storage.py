"""The Azure side of storage: settings, conditional writes, Delta tables and the lease lock, on Azurite.

The server tests run against a real Azurite (Microsoft's Azure Storage
emulator) started on 127.0.0.1 by ``services.azurite``. The Delta, lock and
conditional-write checks are ``test_s3_storage``'s own, run again with the
root in an Azurite container; the bad-input tests run the CLI as a user
would, and check that nothing was written.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest
import test_s3_storage
from kill_harness import cli, object_store_lake

from datadrive.errors import ConfigError, StorageError
from datadrive.lake.azure import (
    EMULATOR_KEY,
    AzureSettings,
    delta_storage_options,
    split_azure_uri,
)
from datadrive.lake.conditional import check_conditional_writes
from datadrive.lake.locks import region_lock
from datadrive.lake.storage import StorageRoot
from services import AzuriteServer, HeaderStrippingProxy, azurite, free_ports, is_loopback, listeners

__all__ = ["azurite"]  # the fixture, imported so pytest finds it here

KEY = base64.b64encode(bytes(range(32))).decode()


# --------------------------------------------------------------------------- URIs and settings (no server)


@pytest.mark.parametrize(
    ("uri", "account", "container", "prefix"),
    [
        ("az://lake/eu/west", None, "lake", "eu/west"),
        ("azure://lake-eu", None, "lake-eu", ""),
        ("abfss://lake@fleet01.dfs.core.windows.net/eu/", "fleet01", "lake", "eu"),
        ("az://lake@fleet01.blob.core.windows.net/x", "fleet01", "lake", "x"),
    ],
    ids=["az", "azure-container-only", "abfss-account-in-host", "az-blob-host"],
)
def test_azure_uris(uri: str, account: str | None, container: str, prefix: str) -> None:
    loc = split_azure_uri(uri)
    assert (loc.account, loc.container, loc.prefix) == (account, container, prefix)
    root = StorageRoot(uri, {"azure_storage_account_name": "fleet01", "azure_storage_account_key": KEY})
    assert root.is_azure
    assert not root.is_local
    assert not root.is_s3
    assert root.container == container
    assert root.base_path == f"{container}/{prefix}".rstrip("/")
    assert root.meta_key("locks", "commit.lock") == "/".join(
        [p for p in (prefix, "_datadrive", "locks", "commit.lock") if p]
    )


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("az://Lake/eu", "not a valid container name"),
        ("az://ab/eu", "not a valid container name"),
        ("az://a--b/eu", "not a valid container name"),
        ("abfss://lake@fleet01.dfs.core.chinacloudapi.cn/eu", "azure_storage_endpoint"),
        ("azure://lake@fleet01.dfs.core.windows.net/eu", "expected azure://container@account"),
    ],
    ids=["upper-case", "too-short", "double-hyphen", "other-cloud-host", "azure-scheme-with-account"],
)
def test_bad_azure_uris_are_config_errors(uri: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        StorageRoot(uri)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"azure_storage_account_name": "fleet01", "azure_storage_account_key": KEY},
            ("fleet01", "https://fleet01.blob.core.windows.net", True, False),
        ),
        (
            {
                "account_name": "fleet01",
                "sas_token": "?sv=2021-08-06&sig=abc",
                "endpoint": "https://fleet01.blob.core.chinacloudapi.cn/",
            },
            ("fleet01", "https://fleet01.blob.core.chinacloudapi.cn", False, True),
        ),
        (
            {
                "AZURE_STORAGE_ACCOUNT_NAME": "devstoreaccount1",
                "AZURE_STORAGE_ACCESS_KEY": KEY,
                "AZURE_STORAGE_ENDPOINT": "http://127.0.0.1:10000/devstoreaccount1",
                "AZURE_ALLOW_HTTP": "true",
            },
            ("devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1", True, False),
        ),
        (
            {"azure_storage_use_emulator": "true"},
            ("devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1", True, False),
        ),
    ],
    ids=["account-key", "sas-and-other-cloud", "upper-case-keys-path-style", "emulator-defaults"],
)
def test_settings_from_options(options: dict[str, str], expected: tuple[Any, ...]) -> None:
    s = AzureSettings.from_options(options)
    assert (s.account, s.blob_endpoint, s.account_key is not None, s.sas_token is not None) == expected
    if s.sas_token is not None:
        assert not s.sas_token.startswith("?")


def test_emulator_defaults_use_azurites_published_key() -> None:
    assert AzureSettings.from_options({"use_emulator": "1"}).account_key == EMULATOR_KEY


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"azure_storage_account_key": KEY}, "needs azure_storage_account_name"),
        ({"account_name": "fleet01"}, "needs azure_storage_account_key or azure_storage_sas_token"),
        (
            {"account_name": "fleet01", "azure_client_id": "x", "azure_client_secret": "y"},
            "Azure AD credentials are not supported",
        ),
        ({"account_name": "fleet01", "account_key": KEY, "sas_token": "sig=x"}, "not both"),
        ({"account_name": "fleet01", "account_key": "not base64!"}, "not base64"),
        ({"account_name": "fleet01", "sas_token": "sv=2021-08-06"}, "does not look like a SAS token"),
        ({"account_name": "Fleet_01", "account_key": KEY}, "not a storage account name"),
        (
            {"account_name": "fleet01", "account_key": KEY, "endpoint": "http://127.0.0.1:1/fleet01"},
            "azure_allow_http",
        ),
        ({"account_name": "fleet01", "account_key": KEY, "endpoint": "127.0.0.1:10000"}, "must be a URL"),
        (
            {"account_name": "fleet01", "account_key": KEY, "endpoint": "https://127.0.0.1:1/other"},
            "must end in the account name",
        ),
        (
            {"account_name": "fleet01", "account_key": KEY, "endpoint": "https://blob.example.org"},
            "expected https://fleet01.",
        ),
    ],
    ids=[
        "no-account",
        "no-credentials",
        "azure-ad",
        "key-and-sas",
        "key-not-base64",
        "sas-without-sig",
        "bad-account-name",
        "http-not-allowed",
        "endpoint-not-a-url",
        "path-style-wrong-account",
        "virtual-host-without-account",
    ],
)
def test_settings_errors(options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AzureSettings.from_options(options)


def test_account_in_uri_and_options_must_agree() -> None:
    with pytest.raises(ConfigError, match="names storage account 'fleet01'"):
        AzureSettings.from_options({"account_name": "other01", "account_key": KEY}, account="fleet01")


def _lake_doc(*roots: tuple[str, dict[str, str]]) -> dict[str, Any]:
    regions = {f"r{i}": {"root": uri, "storage_options": opts} for i, (uri, opts) in enumerate(roots)}
    return {"regions": regions, "tenants": {"bmw": {}}}


def test_region_roots_in_two_accounts_may_share_names() -> None:
    """``az://lake/eu`` in two accounts are two places; the same place written twice is refused."""
    from datadrive.lake import LakeConfig

    one = {"account_name": "fleet01", "account_key": KEY}
    two = {"account_name": "fleet02", "account_key": KEY}
    keys = {"bmw": bytes(32)}
    config = LakeConfig.from_mapping(
        _lake_doc(("az://lake/eu", one), ("az://lake/eu", two)), base_dir=Path("."), keys=keys
    )
    assert {r.root.location for r in config.regions.values()} == {
        "azure://fleet01/lake/eu",
        "azure://fleet02/lake/eu",
    }
    for same in (
        (("az://lake/eu", one), ("az://lake/eu", one)),
        (("az://lake/eu", one), ("abfss://lake@fleet01.dfs.core.windows.net/eu/cn", {"account_key": KEY})),
    ):
        with pytest.raises(ConfigError, match="region roots must not overlap"):
            LakeConfig.from_mapping(_lake_doc(*same), base_dir=Path("."), keys=keys)


def test_a_root_without_credentials_is_a_config_error_naming_it() -> None:
    from datadrive.lake import LakeConfig

    doc = _lake_doc(("az://lake/eu", {"account_name": "fleet01"}))
    with pytest.raises(ConfigError, match=r"^az://lake/eu: an Azure root needs azure_storage_account_key"):
        LakeConfig.from_mapping(doc, base_dir=Path("."), keys={"bmw": bytes(32)})


def test_secrets_never_printed() -> None:
    options = {"azure_storage_account_name": "fleet01", "azure_storage_account_key": KEY}
    s = AzureSettings.from_options(options)
    root = StorageRoot("az://lake/eu", options)
    sas = AzureSettings.from_options({"account_name": "fleet01", "sas_token": "sv=1&sig=hunter2"})
    text = repr(s) + repr(root) + repr(root.lock_client()) + repr(sas) + repr(sas.__dict__.keys())
    assert KEY not in text
    assert "hunter2" not in text


def test_delta_options_are_canonical() -> None:
    """One form for deltalake: the emulator flag (which makes it read the environment) is never passed on."""
    got = delta_storage_options(
        "az://lake/eu",
        {"use_emulator": "true", "endpoint": "http://127.0.0.1:10999", "azure_disable_tagging": "true"},
    )
    assert got == {
        "azure_disable_tagging": "true",
        "azure_storage_account_name": "devstoreaccount1",
        "azure_storage_endpoint": "http://127.0.0.1:10999/devstoreaccount1",
        "azure_storage_account_key": EMULATOR_KEY,
        "azure_allow_http": "true",
    }
    abfss = delta_storage_options(
        "abfss://lake@fleet01.dfs.core.windows.net/eu", {"sas_token": "?sv=1&sig=x"}
    )
    assert abfss == {
        "azure_storage_account_name": "fleet01",
        "azure_storage_endpoint": "https://fleet01.blob.core.windows.net",
        "azure_storage_sas_token": "sv=1&sig=x",
    }


def test_lock_lease_option_is_ours_and_checked() -> None:
    options = {"azure_storage_account_name": "fleet01", "azure_storage_account_key": KEY}
    root = StorageRoot("az://lake/eu", {**options, "datadrive_lock_lease_s": "5"})
    assert root.lock_lease_s == 5.0
    assert "datadrive_lock_lease_s" not in (root.storage_options() or {})
    with pytest.raises(ConfigError, match="positive number of seconds"):
        _ = StorageRoot("az://lake/eu", {**options, "datadrive_lock_lease_s": "-1"}).lock_lease_s


# --------------------------------------------------------------------------- the server


@pytest.mark.service
def test_azurite_listens_only_on_loopback(azurite: AzuriteServer) -> None:
    found = listeners(azurite.pids())
    assert found
    assert [f for f in found if not is_loopback(f[0])] == []
    assert any(port == int(azurite.endpoint_url.rsplit(":", 1)[1]) for _, port, _ in found)


@pytest.fixture
def store_root(azurite: AzuriteServer) -> StorageRoot:
    """A root in a fresh container, under a prefix (overrides ``test_s3_storage``'s, for its lock tests)."""
    return StorageRoot(f"az://{azurite.new_container()}/eu-central", azurite.options())


@pytest.fixture(params=["key", "sas", "abfss"])
def any_root(request: pytest.FixtureRequest, azurite: AzuriteServer) -> StorageRoot:
    """A root in a fresh container: by account key, by account SAS, or ``abfss://`` with the account."""
    container = azurite.new_container()
    if request.param == "abfss":
        options = azurite.options()
        del options["azure_storage_account_name"]
        return StorageRoot(f"abfss://{container}@{azurite.account}.dfs.core.windows.net/eu-central", options)
    return StorageRoot(f"az://{container}/eu-central", azurite.options(sas=request.param == "sas"))


@pytest.mark.service
def test_conditional_writes(any_root: StorageRoot) -> None:
    """Azurite enforces If-None-Match / If-Match on Put Blob and If-Match on Delete Blob (409/412)."""
    test_s3_storage.check_conditional_write_semantics(any_root)


@pytest.mark.service
def test_filesystem_reads_and_writes_small_files(any_root: StorageRoot) -> None:
    test_s3_storage.check_filesystem_and_lock_client_agree(any_root)


@pytest.mark.service
def test_delta_create_append_read_time_travel(any_root: StorageRoot) -> None:
    test_s3_storage.check_delta_create_append_read_time_travel(any_root)


@pytest.mark.service
@pytest.mark.slow
def test_concurrent_writers_lose_nothing(store_root: StorageRoot) -> None:
    test_s3_storage.check_concurrent_writers_lose_nothing(store_root)


@pytest.mark.service
def test_two_accounts_are_two_stores(azurite: AzuriteServer) -> None:
    """The same container name in two accounts: separate data, and one account's key opens only its own."""
    a, b = (StorageRoot("az://shared-name/r", azurite.options(acct)) for acct in ("ddlake1", "ddlake2"))
    for acct in ("ddlake1", "ddlake2"):
        azurite.filesystem(acct).create_dir("shared-name")
    a.lock_client().put(a.meta_key("who"), b"a")
    b.lock_client().put(b.meta_key("who"), b"b")
    got_a, got_b = a.lock_client().get(a.meta_key("who")), b.lock_client().get(b.meta_key("who"))
    assert got_a is not None
    assert got_b is not None
    assert (got_a.body, got_b.body) == (b"a", b"b")
    crossed = StorageRoot(
        "az://shared-name/r",
        {**azurite.options("ddlake2"), "azure_storage_account_key": azurite.keys["ddlake1"]},
    )
    with pytest.raises(StorageError, match="refused the account key for account 'ddlake2'"):
        crossed.check_access()


# the lease-lock tests of test_s3_storage, with ``store_root`` in an Azurite container
test_lock_excludes_concurrent_holders = test_s3_storage.test_lock_excludes_concurrent_holders
test_lock_timeout_names_the_holder = test_s3_storage.test_lock_timeout_names_the_holder
test_other_locks_are_independent = test_s3_storage.test_other_locks_are_independent
test_lock_of_a_killed_holder_is_taken_over = test_s3_storage.test_lock_of_a_killed_holder_is_taken_over
test_lock_taken_over_while_held_is_reported = test_s3_storage.test_lock_taken_over_while_held_is_reported
test_lost_lock_does_not_hide_the_blocks_own_error = (
    test_s3_storage.test_lost_lock_does_not_hide_the_blocks_own_error
)


@pytest.mark.service
def test_lock_released_after_its_object_vanished_is_lost(store_root: StorageRoot) -> None:
    """A lock object deleted behind the holder's back (taken over, then released by the other) is not ours."""
    from datadrive.lake.locks import LockLostError

    client = store_root.lock_client()
    with pytest.raises(LockLostError), region_lock(store_root, timeout_s=5):
        assert client.delete(store_root.meta_key("locks", "commit.lock")) is True


def test_an_endpoint_that_never_answers_times_out_clearly() -> None:
    """A socket that accepts connections but never replies: the check gives up after the client's timeout."""
    import socket
    import time

    from datadrive.lake.azure import AzureBlobClient

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        options = {
            "account_name": "ddlake1",
            "account_key": KEY,
            "endpoint": f"http://127.0.0.1:{port}/ddlake1",
        }
        client = AzureBlobClient(
            AzureSettings.from_options({**options, "allow_http": "true"}), "lake", timeout_s=1.0
        )
        t0 = time.monotonic()
        problem = client.check_access("eu/_datadrive/region.json")
        assert problem == f"the Azure endpoint http://127.0.0.1:{port}/ddlake1 does not answer (timed out)"
        assert time.monotonic() - t0 < 5


# --------------------------------------------------------------------------- a store that ignores conditions


@pytest.mark.service
def test_store_ignoring_conditional_writes_is_refused(azurite: AzuriteServer) -> None:
    """Azurite behind a proxy that drops If-* headers: the probe refuses it and leaves nothing behind."""
    container = azurite.new_container()
    netloc = azurite.endpoint_url.split("://", 1)[1]
    with HeaderStrippingProxy(netloc) as proxy:
        # SAS-authenticated requests stay valid without the headers (Shared Key signs them)
        root = StorageRoot(f"az://{container}/eu", azurite.options(sas=True, endpoint_url=proxy.endpoint_url))
        with pytest.raises(
            StorageError, match=r"^az://.*/eu: the object store does not enforce conditional writes"
        ):
            check_conditional_writes(root.lock_client(), root.meta_key("locks"), root=root.uri)
    assert _blobs(azurite, container) == []


def _blobs(azurite: AzuriteServer, container: str, account: str | None = None) -> list[str]:
    fs = azurite.filesystem(account)
    infos = fs.get_file_info(pafs.FileSelector(container, recursive=True))
    return sorted(i.path for i in infos if i.type == pafs.FileType.File)


# --------------------------------------------------------------------------- bad input, through the CLI


def _dead_endpoint(azurite: AzuriteServer) -> dict[str, str]:
    (port,) = free_ports(1)  # nothing listens there
    return azurite.options(endpoint_url=f"http://127.0.0.1:{port}")


BAD_INPUTS = {
    "wrong-key": (
        lambda az: {**az.options(), "azure_storage_account_key": base64.b64encode(b"x" * 32).decode()},
        "Azure Storage refused the account key for account 'ddlake1' (HTTP 403",
    ),
    "expired-sas": (
        lambda az: {
            **az.options(),
            "azure_storage_account_key": "",
            "azure_storage_sas_token": az.sas_token(hours=-1),
        },
        "Azure Storage refused the SAS token for account 'ddlake1' (HTTP 403",
    ),
    "missing-container": (
        lambda az: az.options(),
        "container 'nosuchcontainer' does not exist in storage account 'ddlake1'",
    ),
    "dead-endpoint": (
        _dead_endpoint,
        "the Azure endpoint http://127.0.0.1:",
    ),
}


@pytest.mark.service
@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_one_clear_line_and_writes_nothing(
    case: str, azurite: AzuriteServer, tmp_path: Path
) -> None:
    options_of, reason = BAD_INPUTS[case]
    container = "nosuchcontainer" if case == "missing-container" else azurite.new_container()
    uri = f"az://{container}/cli/eu-central"
    folder = object_store_lake(tmp_path / "lake", uri, options_of(azurite), init=False)
    for args in (
        ["lake", "init", str(folder), "--tenant", "bmw"],
        ["sql", "SELECT count(*) FROM scenarios", "--lake", str(folder), "--region", "eu-central"],
    ):
        out = cli(args, timeout=120)
        assert out.returncode == 2, (out.stdout, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr
        assert lines[0].startswith(f"error: {uri}: "), lines[0]
        assert reason in lines[0], lines[0]
    if case == "dead-endpoint":
        assert "does not answer" in lines[0]
    if case != "missing-container":
        assert _blobs(azurite, container) == []
    else:
        assert "nosuchcontainer" not in [
            i.path for i in azurite.filesystem().get_file_info(pafs.FileSelector(""))
        ]


@pytest.mark.service
def test_ingest_into_a_store_that_ignores_conditions_is_refused(
    azurite: AzuriteServer, tmp_path: Path
) -> None:
    """``datadrive ingest`` through the header-stripping proxy: one line naming the root, nothing written."""
    import lake_synth
    from kill_harness import ingest_args

    container = azurite.new_container()
    netloc = azurite.endpoint_url.split("://", 1)[1]
    inputs = lake_synth.write_inputs(tmp_path / "in", range(2), scenarios=2)
    with HeaderStrippingProxy(netloc) as proxy:
        uri = f"az://{container}/cli/eu-central"
        options = azurite.options(sas=True, endpoint_url=proxy.endpoint_url)
        folder = object_store_lake(tmp_path / "lake", uri, options, init=False)
        out = cli(ingest_args(folder, inputs[0].parent, region="eu-central", batch=2, workers=1), timeout=120)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: {uri}: the object store does not enforce conditional writes (")
    assert _blobs(azurite, container) == []
