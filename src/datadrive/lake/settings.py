"""The lake's settings: ``datadrive.toml``, tenant keys, and who the principal is.

This is the one loader the CLI, the service and notebooks call, so they all
see the same lake the same way. It reads files (the config and the key files
it names) but never the process environment: every function that needs
environment variables takes them as an explicit ``env`` mapping (pass
``os.environ`` at the edge, a plain dict in tests and services).

>>> import os
>>> from datadrive.lake import load_config, resolve_principal, Lake
>>> config = load_config("demo", env=os.environ)                       # doctest: +SKIP
>>> principal = resolve_principal(config, env=os.environ, region="cn-north")  # doctest: +SKIP
>>> lake = Lake(config, principal)                                      # doctest: +SKIP

or, in one call, ``open_lake("demo", env=os.environ, region="cn-north")``.

What each setting means is in ``docs/lake.md`` (Configuration). Who and
where the principal is, first match wins:

========== ============================ ===================================================
 field      explicit argument            then
========== ============================ ===================================================
 name       ``user``                     ``DATADRIVE_USER``, ``LOGNAME``/``USER``, the uid's login
 tenant     ``tenant``                   ``DATADRIVE_TENANT``, the config's only tenant
 home       ``home``                     ``DATADRIVE_HOME_REGION``, ``[deployment] home_region``,
                                         the region the caller works on, the only region
========== ============================ ===================================================
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datadrive.errors import ConfigError
from datadrive.lake.config import LakeConfig, Principal

if TYPE_CHECKING:
    from datadrive.lake.lake import Lake

__all__ = [
    "CONFIG_NAME",
    "DEFAULT_REGIONS",
    "ENV_HOME_REGION",
    "ENV_TENANT",
    "ENV_USER",
    "config_path",
    "generate_key",
    "init_lake",
    "load_config",
    "load_document",
    "login_name",
    "open_lake",
    "parse_key",
    "read_key",
    "resolve_principal",
    "write_config",
]

CONFIG_NAME = "datadrive.toml"
"""The config file's name inside a lake folder."""

ENV_USER = "DATADRIVE_USER"
ENV_TENANT = "DATADRIVE_TENANT"
ENV_HOME_REGION = "DATADRIVE_HOME_REGION"

DEFAULT_REGIONS: tuple[tuple[str, str], ...] = (
    ("cn-north", "regions/cn-north"),
    ("eu-central", "regions/eu-central"),
)
"""``(name, root)`` of the regions :func:`write_config` writes when none are given."""

_HEX = frozenset("0123456789abcdefABCDEF")


def config_path(lake: str | os.PathLike[str]) -> Path:
    """``lake`` itself if it names a file (or a ``.toml``), else ``lake/datadrive.toml``."""
    p = Path(lake)
    return p if p.is_file() or p.suffix == ".toml" else p / CONFIG_NAME


def load_document(lake: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """The parsed ``datadrive.toml`` of ``lake`` (a folder or the file), and its path.

    Other layers keep their own sections in the same file (``[service]``,
    ...): they read them from this document.

    Raises:
        ConfigError: if the file is missing, unreadable or not TOML.
    """
    path = config_path(lake)
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no lake config here (create one with `datadrive lake init {Path(lake)}`)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the lake config ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc


def parse_key(value: bytes) -> bytes:
    """A tenant key from its stored form: hex text (as :func:`generate_key` writes it) or raw bytes."""
    text = value.strip()
    try:
        return bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return value


def read_key(path: str | os.PathLike[str]) -> bytes:
    """A tenant key file (see :func:`parse_key`).

    Raises:
        OSError: if the file cannot be read.
    """
    return parse_key(Path(path).read_bytes())


def generate_key(path: str | os.PathLike[str]) -> bool:
    """Write a new random 32-byte key as hex to ``path`` (mode 0600), unless the file exists.

    Returns:
        Whether a key was written (False: one was already there, kept).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    return True


def load_config(lake: str | os.PathLike[str], *, env: Mapping[str, str]) -> LakeConfig:
    """Read ``datadrive.toml`` and the tenants' keys into a :class:`LakeConfig`.

    Args:
        lake: The lake folder, or the config file itself.
        env: Environment variables, for tenants whose key is given by
            ``key_env`` (hex, or the key's text). Only those names are read.

    Raises:
        ConfigError: naming the file or setting that is missing or wrong.
    """
    path, doc = load_document(lake)
    keys: dict[str, bytes] = {}
    tenants = doc.get("tenants", {})
    if not isinstance(tenants, dict):
        raise ConfigError(f"{path}: [tenants] must be a table")
    for name, tdoc in tenants.items():
        if not isinstance(tdoc, dict):
            raise ConfigError(f"{path}: [tenants.{name}] must be a table")
        if "key_env" in tdoc:
            value = env.get(str(tdoc["key_env"]), "")
            if not value:
                raise ConfigError(f"tenant {name}: environment variable {tdoc['key_env']} is not set")
            keys[name] = bytes.fromhex(value) if set(value) <= _HEX else value.encode()
        elif "key_file" in tdoc:
            key_path = (path.parent / str(tdoc["key_file"])).resolve()
            try:
                keys[name] = read_key(key_path)
            except OSError as exc:
                raise ConfigError(
                    f"tenant {name}: cannot read key file {key_path} ({exc.strerror or exc})"
                ) from exc
        else:
            raise ConfigError(f"[tenants.{name}] needs key_file (or key_env) for its pseudonymisation key")
    return LakeConfig.from_mapping(doc, base_dir=path.parent, keys=keys)


def login_name(env: Mapping[str, str]) -> str:
    """The login name: ``LOGNAME`` or ``USER`` in ``env``, else the uid's entry in the password database."""
    for var in ("LOGNAME", "USER"):
        if env.get(var):
            return env[var]
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid-{os.getuid()}"


def resolve_principal(
    config: LakeConfig,
    *,
    env: Mapping[str, str],
    user: str | None = None,
    tenant: str | None = None,
    home: str | None = None,
    region: str | None = None,
) -> Principal:
    """Who acts, for which tenant, from where (see the module docstring for the order).

    Args:
        config: The lake.
        env: Environment variables (``DATADRIVE_USER``, ``DATADRIVE_TENANT``,
            ``DATADRIVE_HOME_REGION``, ``LOGNAME``, ``USER`` are read).
        user: The person or service account, if the caller knows it.
        tenant: The tenant it acts for.
        home: The region it is in.
        region: The region the caller is about to work on: the home region
            when nothing else says where the principal is (a machine without
            a configured home is taken to be in the region it works on).

    Raises:
        ConfigError: if the tenant or the home region cannot be decided.
    """
    name = user or env.get(ENV_USER) or login_name(env)
    t = tenant or env.get(ENV_TENANT)
    if not t:
        if len(config.tenants) != 1:
            known = ", ".join(sorted(config.tenants)) or "none"
            raise ConfigError(f"say which tenant you act for: --tenant (configured: {known})")
        t = next(iter(config.tenants))
    h = home or env.get(ENV_HOME_REGION) or config.home_region or region
    if not h:
        if len(config.regions) != 1:
            raise ConfigError("say where you are: --home REGION (or [deployment] home_region in the config)")
        h = next(iter(config.regions))
    return Principal(name=name, tenant=t, home_region=h)


def open_lake(
    lake: str | os.PathLike[str],
    *,
    env: Mapping[str, str],
    user: str | None = None,
    tenant: str | None = None,
    home: str | None = None,
    region: str | None = None,
) -> Lake:
    """:func:`load_config` and :func:`resolve_principal` in one call: the lake as this principal sees it."""
    from datadrive.lake.lake import Lake

    config = load_config(lake, env=env)
    principal = resolve_principal(config, env=env, user=user, tenant=tenant, home=home, region=region)
    return Lake(config, principal)


def write_config(
    folder: str | os.PathLike[str],
    *,
    regions: Sequence[tuple[str, str]] = DEFAULT_REGIONS,
    tenants: Sequence[str] = ("default",),
) -> Path:
    """Write a new ``datadrive.toml`` in ``folder`` and a key file per tenant (kept if present).

    Regions named ``cn-*`` publish latitude/longitude in GCJ-02 and let only
    aggregates and metrics leave; the others let every derived kind leave.
    Raw tables leave nowhere. Edit the file to change the policies.

    Args:
        folder: Where the config goes (created).
        regions: ``(name, root)`` per region; a root is a folder relative
            to ``folder``, an absolute folder, ``s3://bucket/prefix`` or ``az://container/prefix``.
        tenants: Tenant names; each gets ``keys/<tenant>.key``.

    Returns:
        The config's path.

    Raises:
        ConfigError: if a region is unnamed or has no root.
    """
    base = Path(folder)
    for name, root in regions:
        if not name or not root:
            raise ConfigError(f"region {name!r} needs a name and a root (e.g. cn-north=regions/cn-north)")
    names = [n for n, _ in regions]
    derived_china, derived_other = ["aggregate", "metrics"], ["aggregate", "metrics", "model", "features"]
    lines = [
        "# datadrive lake configuration (see docs/lake.md).",
        "",
        "[lake]",
        f"name = {json.dumps(base.resolve().name)}",
        "",
        "# [deployment]",
        '# home_region = "eu-central"   # where this machine is; principals default to it',
        "",
    ]
    for name, root in regions:
        china = name.startswith("cn-")
        lines += [
            f"[regions.{name}]",
            f"root = {json.dumps(root)}",
            f'publish_crs = "{"gcj02" if china else "wgs84"}"',
            "raw_readers = []   # other home regions whose principals may read raw rows",
            "",
            f"[regions.{name}.export]",
            f"derived = {json.dumps(derived_china if china else derived_other)}",
            f"to = {json.dumps([n for n in names if n != name])}",
            "raw_to = []   # raw tables never leave unless listed here",
            "",
        ]
    keys = base / "keys"
    for t in tenants:
        generate_key(keys / f"{t}.key")
        lines += [
            f"[tenants.{t}]",
            f'key_file = "keys/{t}.key"   # HMAC key for pseudonyms: keep it secret',
            "",
        ]
    lines += ["# [[grants]]", '# owner = "bmw"', '# grantee = "tencent"', '# regions = ["cn-north"]', ""]
    keys.mkdir(parents=True, exist_ok=True)
    (keys / ".gitignore").write_text("*\n")
    path = base / CONFIG_NAME
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def init_lake(
    folder: str | os.PathLike[str],
    *,
    env: Mapping[str, str],
    regions: Sequence[tuple[str, str]] | None = None,
    tenants: Sequence[str] | None = None,
    user: str | None = None,
) -> tuple[LakeConfig, dict[str, int], bool]:
    """Create what is missing of a lake: the config (if there is none), keys, every region's tables.

    Idempotent: with a config present, ``regions`` and ``tenants`` are
    ignored and only missing tables are created.

    Returns:
        The config, region name -> its latest lake version, and whether a
        new config was written.

    Raises:
        ConfigError: if the config is wrong or names no tenant.
    """
    from datadrive.lake.lake import Lake

    path = Path(folder) / CONFIG_NAME
    wrote = not path.exists()
    if wrote:
        write_config(folder, regions=regions or DEFAULT_REGIONS, tenants=tenants or ("default",))
    try:
        config = load_config(folder, env=env)
        if not config.tenants:
            raise ConfigError(f"{config_path(folder)} has no [tenants.<name>]: add one (with its key_file)")
        who = user or env.get(ENV_USER) or login_name(env)
        first_tenant = next(iter(config.tenants))
        versions: dict[str, int] = {}
        for name in config.regions:
            versions.update(Lake(config, Principal(who, first_tenant, name)).init([name]))
    except BaseException:
        # A config this call wrote names roots that did not work: take it back,
        # so that running init again with other --region roots starts afresh
        # (with a config present, init ignores --region). Key files stay.
        if wrote:
            path.unlink(missing_ok=True)
        raise
    return config, versions, wrote
