"""The settings loader: datadrive.toml, tenant keys and the principal, with the environment passed in."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from datadrive.errors import ConfigError
from datadrive.lake import (
    CONFIG_NAME,
    Principal,
    generate_key,
    init_lake,
    load_config,
    load_document,
    open_lake,
    read_key,
    resolve_principal,
    write_config,
)

ENV_KEY = "ab" * 16  # 16 bytes as hex


def _toml(tmp_path: Path, body: str) -> Path:
    (tmp_path / "datadrive.toml").write_text('[regions.eu-central]\nroot = "r/eu"\n' + body)
    return tmp_path


def test_key_env_is_read_from_the_mapping_given_not_the_process(tmp_path, monkeypatch) -> None:
    lake = _toml(tmp_path, '[tenants.bmw]\nkey_env = "BMW_KEY"\n')
    monkeypatch.setenv("BMW_KEY", "cd" * 16)
    config = load_config(lake, env={"BMW_KEY": ENV_KEY})
    assert config.tenant("bmw").key == bytes.fromhex(ENV_KEY)
    with pytest.raises(ConfigError, match="BMW_KEY is not set"):
        load_config(lake, env={})


def test_text_keys_from_the_environment_are_their_utf8_bytes(tmp_path) -> None:
    lake = _toml(tmp_path, '[tenants.bmw]\nkey_env = "BMW_KEY"\n')
    text = "not hex, but long enough"
    assert load_config(lake, env={"BMW_KEY": text}).tenant("bmw").key == text.encode()


def test_key_files_relative_to_the_config_hex_or_raw(tmp_path) -> None:
    lake = _toml(tmp_path, '[tenants.a]\nkey_file = "k/a.key"\n[tenants.b]\nkey_file = "k/b.key"\n')
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "a.key").write_text(ENV_KEY + "\n")
    raw = bytes(range(200, 232))
    (tmp_path / "k" / "b.key").write_bytes(raw)
    config = load_config(tmp_path / "datadrive.toml", env={})
    assert config.tenant("a").key == bytes.fromhex(ENV_KEY)
    assert config.tenant("b").key == raw
    assert config.region("eu-central").root.uri == str((lake / "r" / "eu").resolve())


def test_missing_key_file_names_the_tenant_and_file(tmp_path) -> None:
    lake = _toml(tmp_path, '[tenants.bmw]\nkey_file = "keys/bmw.key"\n')
    with pytest.raises(ConfigError, match=r"tenant bmw: cannot read key file .*bmw\.key"):
        load_config(lake, env={})


def test_other_layers_read_their_sections_from_the_same_document(tmp_path) -> None:
    lake = _toml(tmp_path, "[service]\nport = 8123\n")
    path, doc = load_document(lake)
    assert path == lake / "datadrive.toml"
    assert doc["service"] == {"port": 8123}


def test_generate_key_writes_0600_hex_once(tmp_path) -> None:
    path = tmp_path / "keys" / "t.key"
    assert generate_key(path)
    first = read_key(path)
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not generate_key(path), "an existing key is never replaced"
    assert read_key(path) == first


@pytest.fixture
def two_tenants(tmp_path: Path):  # type: ignore[no-untyped-def]
    write_config(tmp_path, tenants=("bmw", "tencent"))
    return load_config(tmp_path, env={})


@pytest.mark.parametrize(
    ("kwargs", "env", "expected"),
    [
        ({"user": "ana", "tenant": "bmw", "home": "eu-central"}, {}, ("ana", "bmw", "eu-central")),
        (
            {"region": "eu-central"},
            {"DATADRIVE_USER": "bo", "DATADRIVE_TENANT": "tencent", "DATADRIVE_HOME_REGION": "cn-north"},
            ("bo", "tencent", "cn-north"),
        ),
        (
            {"tenant": "bmw", "region": "cn-north"},
            {"LOGNAME": "cy", "USER": "other"},
            ("cy", "bmw", "cn-north"),
        ),
        ({"tenant": "bmw", "region": "cn-north"}, {"USER": "di"}, ("di", "bmw", "cn-north")),
        (
            {"user": "ana", "tenant": "bmw", "home": "eu-central"},
            {"DATADRIVE_USER": "bo", "DATADRIVE_TENANT": "tencent", "DATADRIVE_HOME_REGION": "cn-north"},
            ("ana", "bmw", "eu-central"),
        ),
    ],
    ids=["arguments", "environment", "logname-first", "user", "arguments-win"],
)
def test_principal_resolution_order(two_tenants, kwargs, env, expected) -> None:
    assert resolve_principal(two_tenants, env=env, **kwargs) == Principal(*expected)


def test_principal_without_a_tenant_or_home_says_what_to_pass(two_tenants) -> None:
    with pytest.raises(ConfigError, match=r"--tenant \(configured: bmw, tencent\)"):
        resolve_principal(two_tenants, env={"USER": "x"}, home="cn-north")
    with pytest.raises(ConfigError, match="--home"):
        resolve_principal(two_tenants, env={"USER": "x"}, tenant="bmw")


def test_process_environment_is_not_read(two_tenants, monkeypatch) -> None:
    monkeypatch.setenv("DATADRIVE_TENANT", "tencent")
    monkeypatch.setenv("DATADRIVE_HOME_REGION", "eu-central")
    p = resolve_principal(two_tenants, env={"USER": "x"}, tenant="bmw", region="cn-north")
    assert (p.tenant, p.home_region) == ("bmw", "cn-north")


def test_deployment_home_region_is_the_default_home(tmp_path) -> None:
    lake = _toml(tmp_path, '[deployment]\nhome_region = "eu-central"\n[tenants.t]\nkey_env = "K"\n')
    config = load_config(lake, env={"K": ENV_KEY})
    assert resolve_principal(config, env={"USER": "u"}, region="elsewhere").home_region == "eu-central"


def test_init_lake_writes_config_keys_and_tables_and_is_idempotent(tmp_path) -> None:
    config, versions, wrote = init_lake(
        tmp_path / "lake", env={"USER": "ana"}, regions=[("eu-central", "r/eu")], tenants=["bmw"]
    )
    assert wrote
    assert versions == {"eu-central": 0}
    assert (tmp_path / "lake" / "r" / "eu" / "ingests" / "_delta_log").is_dir()
    assert os.stat(tmp_path / "lake" / "keys" / "bmw.key").st_mode & 0o777 == 0o600
    again, versions2, wrote2 = init_lake(tmp_path / "lake", env={"USER": "ana"}, tenants=["other"])
    assert not wrote2
    assert versions2 == {"eu-central": 0}
    assert again.tenants.keys() == config.tenants.keys() == {"bmw"}
    lake = open_lake(tmp_path / "lake", env={"USER": "ana"}, region="eu-central")
    assert lake.principal == Principal("ana", "bmw", "eu-central")
    assert lake.history("eu-central")[0].operation == "create"


def test_write_config_refuses_a_region_without_root(tmp_path) -> None:
    with pytest.raises(ConfigError, match="needs a name and a root"):
        write_config(tmp_path, regions=[("eu-central", "")])


def test_init_lake_takes_back_the_config_it_wrote_when_a_root_fails(tmp_path) -> None:
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "blocker").write_text("a file where the region's folder should be")
    with pytest.raises(Exception, match="blocker"):
        init_lake(lake, env={"USER": "ana"}, regions=[("eu-central", "blocker/eu")], tenants=["bmw"])
    assert not (lake / CONFIG_NAME).exists()
    # Run again with a working root: a new config is written, not the failed one reused.
    _, versions, wrote = init_lake(
        lake, env={"USER": "ana"}, regions=[("eu-central", "r/eu")], tenants=["bmw"]
    )
    assert wrote
    assert versions == {"eu-central": 0}
    assert "r/eu" in (lake / CONFIG_NAME).read_text()


def test_init_lake_keeps_a_config_it_did_not_write(tmp_path) -> None:
    lake = tmp_path / "lake"
    init_lake(lake, env={"USER": "ana"}, regions=[("eu-central", "r/eu")], tenants=["bmw"])
    text = (lake / CONFIG_NAME).read_text()
    (lake / "blocker").write_text("x")
    (lake / CONFIG_NAME).write_text(text.replace('"r/eu"', '"blocker/eu"'))
    with pytest.raises(Exception, match="blocker"):
        init_lake(lake, env={"USER": "ana"})
    assert "blocker/eu" in (lake / CONFIG_NAME).read_text()
