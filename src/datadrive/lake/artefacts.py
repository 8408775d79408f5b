"""Derived artefacts and exports: what may be stored beside a region's data, and what may leave it.

A derived artefact (aggregates, metrics, model weights, anonymised features)
is stored under ``<root>/derived/<kind>/<name>`` with a
``.provenance.json`` beside it: its kind, tenant, region, the lake version
it was derived from, its SHA-256, who made it and when. It is stored in the
region of the data it came from (:func:`put_derived`) and leaves only as
that region's policy allows (:func:`export`); so do raw tables, whose policy
by default lets them go nowhere. Every export, import and refusal is
audited, in both regions where two are involved.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datadrive.errors import (
    AccessDeniedError,
    ArtefactNameError,
    ConfigError,
    LakeError,
    ResidencyError,
    StorageError,
)
from datadrive.lake.access import Access
from datadrive.lake.config import DERIVED_KINDS, EXTERNAL, RegionConfig
from datadrive.lake.erase import ErasureKeys
from datadrive.lake.schema import TABLES
from datadrive.lake.storage import StorageRoot, storage_error
from datadrive.lake.tables import fsync_paths

if TYPE_CHECKING:
    from datadrive.lake.snapshot import Snapshot

__all__ = [
    "ExportReport",
    "authorize_transfer",
    "check_artefact_name",
    "check_derived_read",
    "delete_derived",
    "erase_keyed_artefacts",
    "export",
    "list_derived",
    "local_derived_dir",
    "put_derived",
    "read_artefact",
    "read_derived",
    "write_artefact",
]


@dataclass(frozen=True)
class ExportReport:
    """What an export copied.

    Attributes:
        object: What was exported (a table or ``derived/<kind>/<name>``).
        region: Where it came from.
        to: The destination region, or ``"external"``.
        destination: Where the copy is.
        size: Rows (tables) or bytes (artefacts) copied.
    """

    object: str
    region: str
    to: str
    destination: str
    size: int


_NAME_PART = re.compile(r"[A-Za-z0-9_=\-][A-Za-z0-9_.=\-]{0,199}")
"""One segment of an artefact's name: ASCII letters, digits, ``_ = - .``, not starting with a dot."""
_NAME_PARTS = 16
_PROVENANCE_SUFFIX = ".provenance.json"


def check_artefact_name(access: Access, region: str, action: str, name: str, *, what: str = "name") -> None:
    """Refuse (one line, audited) an artefact name that is not a plain relative name.

    A name is segments joined by ``/``; each is letters, digits, ``_``,
    ``=``, ``-`` and dots, and does not start with a dot. So no ``..``, no
    absolute name, no empty segment (``derived/aggregate/``), no
    percent-encoding (``%2e%2e``), no look-alike dots (``‥``), no
    backslashes, no control characters, and nothing that ends in
    ``.provenance.json``. The rule is the storage layer's (every backend
    stores such names as they are), checked before any path is built.

    Raises:
        ArtefactNameError: audited as a refusal of ``action`` in ``region``.
    """
    parts = name.split("/")
    problem = ""
    if not name:
        problem = "it is empty"
    elif len(name) > 1000 or len(parts) > _NAME_PARTS:
        problem = "it is too long"
    elif name.startswith("/"):
        problem = "it is absolute (it must be relative to its kind's folder)"
    elif any(p in ("", ".", "..") for p in parts):
        problem = "it has an empty, '.' or '..' segment"
    elif name.endswith(_PROVENANCE_SUFFIX):
        problem = f"names ending in {_PROVENANCE_SUFFIX} are the lake's own"
    elif not all(_NAME_PART.fullmatch(p) for p in parts):
        problem = (
            "use only ASCII letters, digits, '_', '=', '-' and '.' in each '/'-separated part "
            "(a part may not start with '.')"
        )
    if problem:
        shown = ascii(name) if len(name) <= 120 else ascii(name[:120]) + "..."
        raise access.refuse(
            region,
            action,
            f"derived/{shown}",
            ArtefactNameError(f"artefact {what} {shown} is refused: {problem}"),
        )


def _check_object(access: Access, region: str, action: str, obj: str) -> str:
    """The kind of ``obj`` (``derived/<kind>/<name>``), its name checked (refusals audited)."""
    parts = obj.split("/")
    if len(parts) < 3 or parts[0] != "derived" or parts[1] not in DERIVED_KINDS:
        shown = ascii(obj) if len(obj) <= 120 else ascii(obj[:120]) + "..."
        raise access.refuse(
            region,
            action,
            shown,
            ArtefactNameError(
                f"{shown} is not a derived artefact: name one as derived/<kind>/<name>, kind one of "
                f"{', '.join(DERIVED_KINDS)}"
            ),
        )
    check_artefact_name(access, region, action, "/".join(parts[2:]))
    return parts[1]


def _check_owner(access: Access, region: str, root: StorageRoot, obj: str, action: str) -> None:
    """Refuse (audited) writing ``obj`` in ``root`` when another tenant's artefact is there already.

    Artefacts of different tenants share a region's ``derived/`` folder; a
    name, once taken by a tenant, stays that tenant's until erased: no tenant
    overwrites another's artefact.
    """
    fs = root.filesystem()
    try:
        with fs.open_input_stream(root.path(*obj.split("/")) + _PROVENANCE_SUFFIX) as fh:
            owner = json.loads(fh.read().decode()).get("tenant")
    except FileNotFoundError:
        return
    except OSError as exc:
        if "not found" in str(exc).lower() or "no such file" in str(exc).lower():
            return
        raise storage_error(root, f"read the provenance of {obj}", exc) from exc
    except ValueError:
        owner = None  # an unreadable provenance file: the artefact is nobody's to overwrite
    if owner != access.principal.tenant:
        raise access.refuse(
            region,
            action,
            obj,
            AccessDeniedError(f"{obj} already exists and belongs to another tenant; choose another name"),
        )


def write_artefact(root: StorageRoot, obj: str, data: bytes, provenance: Mapping[str, Any]) -> None:
    """Write ``obj`` (``derived/<kind>/<name>``) and its provenance file under ``root``.

    Raises:
        StorageError: if the root refuses the write.
    """
    fs = root.filesystem()
    path = root.path(*obj.split("/"))
    try:
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(path) as fh:
            fh.write(data)
        with fs.open_output_stream(path + ".provenance.json") as fh:
            fh.write(json.dumps(provenance, indent=2).encode())
        if root.is_local:  # durable before it is reported (an object store is, on PUT)
            folders = [posixpath.dirname(path)]
            while folders[-1] != root.base_path and posixpath.dirname(folders[-1]) != folders[-1]:
                folders.append(posixpath.dirname(folders[-1]))
            fsync_paths([path, path + ".provenance.json", *folders])
    except Exception as exc:
        raise storage_error(root, f"write {obj}", exc) from exc


def read_artefact(root: StorageRoot, obj: str) -> tuple[bytes, dict[str, Any]]:
    """The bytes of ``obj`` and its provenance.

    Raises:
        LakeError: if there is no such artefact.
        StorageError: if the root cannot be read.
    """
    fs = root.filesystem()
    path = root.path(*obj.split("/"))
    try:
        with fs.open_input_stream(path) as fh:
            data = fh.read()
        with fs.open_input_stream(path + ".provenance.json") as fh:
            provenance = json.loads(fh.read().decode())
    except FileNotFoundError:
        raise LakeError(f"no artefact {obj} in {root.uri}") from None
    except OSError as exc:
        if "not found" in str(exc).lower() or "no such file" in str(exc).lower():
            raise LakeError(f"no artefact {obj} in {root.uri}") from None
        raise storage_error(root, f"read {obj}", exc) from exc
    return bytes(data), provenance


def put_derived(
    access: Access,
    region: str,
    kind: str,
    name: str,
    data: bytes,
    *,
    derived_from: Snapshot | None = None,
    erase_with: ErasureKeys | None = None,
) -> str:
    """Store a derived artefact in ``region`` (see :meth:`datadrive.lake.Lake.put_derived`)."""
    if kind not in DERIVED_KINDS:
        raise ConfigError(f"unknown derived kind {kind!r}; known: {', '.join(DERIVED_KINDS)}")
    rc = access.config.region(region)
    check_artefact_name(access, region, "derive", name)
    obj = f"derived/{kind}/{name}"
    access.check_tenant(region, "derive", obj)
    _check_owner(access, region, access.store(region).root, obj, "derive")
    if derived_from is not None and derived_from.region != region:
        raise access.refuse(
            derived_from.region,
            "export",
            f"{obj} -> {region}",
            ResidencyError(
                f"an artefact derived from region {derived_from.region} is stored in "
                f"{derived_from.region}; use export to move it to {region}, "
                "as that region's policy allows"
            ),
        )
    provenance: dict[str, Any] = {
        "kind": kind,
        "tenant": access.principal.tenant,
        "region": rc.name,
        "derived_from": None
        if derived_from is None
        else {"region": derived_from.region, "lake_version": derived_from.version},
        "sha256": hashlib.sha256(data).hexdigest(),
        "created_by": access.principal.name,
        "created_at": access.clock().isoformat(),
    }
    if erase_with is not None:
        provenance["erase_with"] = erase_with.as_json()
        # data erasable with personal records names no person: the creator's keyed pseudonym
        key = access.config.tenant(access.principal.tenant).key
        provenance["created_by"] = (
            "user-" + hmac.new(key, access.principal.name.encode(), hashlib.sha256).hexdigest()[:16]
        )
    write_artefact(access.store(region).root, obj, data, provenance)
    access.audit(
        region,
        "derive",
        obj,
        None if derived_from is None else derived_from.version,
        "ok",
        {"bytes": len(data)},
    )
    return obj


def delete_derived(access: Access, region: str, obj: str) -> bool:
    """Delete one of the tenant's derived artefacts (see :meth:`datadrive.lake.Lake.delete_derived`)."""
    import pyarrow.fs as pafs

    parts = obj.split("/")
    if len(parts) < 3 or parts[0] != "derived" or parts[1] not in DERIVED_KINDS:
        raise LakeError(f"{obj!r} is not a derived artefact (derived/<kind>/<name>)")
    access.check_tenant(region, "delete", obj)
    root = access.store(region).root
    fs = root.filesystem()
    path = root.path(*parts)
    try:
        if fs.get_file_info(path + ".provenance.json").type != pafs.FileType.File:
            access.audit(region, "delete", obj, None, "ok", {"deleted": 0})
            return False
        with fs.open_input_stream(path + ".provenance.json") as fh:
            owner = json.loads(fh.read().decode()).get("tenant")
    except (OSError, ValueError) as exc:
        raise storage_error(root, f"read {obj}", exc) from exc
    if owner != access.principal.tenant:
        raise access.refuse(region, "delete", obj, AccessDeniedError(f"{obj} belongs to tenant {owner!r}"))
    try:
        if fs.get_file_info(path).type == pafs.FileType.File:
            fs.delete_file(path)
        fs.delete_file(path + ".provenance.json")
    except Exception as exc:
        raise storage_error(root, f"delete {obj}", exc) from exc
    access.audit(region, "delete", obj, None, "ok", {"deleted": 1})
    return True


def erase_keyed_artefacts(
    root: StorageRoot, tenant: str, scenario_ids: set[str], telemetry_ids: set[str]
) -> list[str]:
    """Delete the tenant's derived artefacts keyed (``erase_with``) by any of these ids.

    Returns:
        The deleted artefacts' names (``derived/<kind>/<name>``), sorted.

    Raises:
        StorageError: if the storage refuses to list or delete.
    """
    import pyarrow.fs as pafs

    if not (scenario_ids or telemetry_ids):
        return []
    fs = root.filesystem()
    base = root.path("derived")
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except Exception as exc:
        raise storage_error(root, "list derived artefacts", exc) from exc
    gone: list[str] = []
    for info in infos:
        if info.type != pafs.FileType.File or not info.path.endswith(".provenance.json"):
            continue
        try:
            with fs.open_input_stream(info.path) as fh:
                prov = json.loads(fh.read().decode())
        except (OSError, ValueError):
            continue  # not ours to judge: lake check reports unreadable provenance
        keys = prov.get("erase_with") if isinstance(prov, dict) else None
        if not keys or prov.get("tenant") != tenant:
            continue
        if not (
            set(keys.get("scenario_ids", ())) & scenario_ids
            or set(keys.get("telemetry_ids", ())) & telemetry_ids
        ):
            continue
        data_path = info.path[: -len(".provenance.json")]
        try:
            if fs.get_file_info(data_path).type == pafs.FileType.File:
                fs.delete_file(data_path)
            fs.delete_file(info.path)
        except Exception as exc:
            raise storage_error(root, f"erase {data_path}", exc) from exc
        gone.append("derived/" + data_path[len(base) + 1 :])
    return sorted(gone)


def export(
    access: Access,
    obj: str,
    *,
    region: str,
    to: str,
    dest_path: str | os.PathLike[str] | None,
    snapshot: Callable[[str], Snapshot],
) -> ExportReport:
    """Copy a table or a derived artefact out of ``region`` (see :meth:`datadrive.lake.Lake.export`).

    Args:
        snapshot: ``snapshot(region)`` -> the latest :class:`Snapshot` of a
            region, judged and audited as a read (for raw tables).
    """
    rc = access.config.region(region)
    access.check_tenant(region, "export", obj)
    if to != EXTERNAL:
        access.config.region(to)
    elif dest_path is None:
        raise ConfigError("an export to 'external' needs a destination folder")
    if obj in TABLES:
        target = f"{obj} -> {to}" + (f" ({dest_path})" if dest_path is not None else "")
        return _export_table(access, obj, region=region, to=to, target=target, snapshot=snapshot)
    kind = _check_object(access, region, "export", obj)
    parts = obj.split("/")
    target = f"{obj} -> {to}" + (f" ({dest_path})" if dest_path is not None else "")
    if kind not in rc.export.derived or to not in rc.export.to:
        why = (
            f"its policy does not let {kind} artefacts leave"
            if kind not in rc.export.derived
            else f"its policy does not allow exports to {to}"
        )
        raise access.refuse(
            region, "export", target, ResidencyError(f"cannot export {obj} from {region}: {why}")
        )
    data, provenance = read_artefact(access.store(region).root, obj)
    if provenance.get("tenant") not in access.visible_tenants(region):
        raise access.refuse(
            region,
            "export",
            target,
            AccessDeniedError(f"{obj} belongs to another tenant"),
        )
    provenance = {
        **provenance,
        "exported_from": region,
        "exported_by": access.principal.name,
        "exported_at": access.clock().isoformat(),
    }
    if to == EXTERNAL:
        dest = Path(dest_path or ".") / Path(*parts[1:])
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            dest.with_name(dest.name + ".provenance.json").write_text(json.dumps(provenance, indent=2))
        except OSError as exc:
            raise StorageError(f"cannot write the export to {dest}: {exc.strerror or exc}") from exc
        destination = str(dest)
    else:
        dest_root = access.store(to).root
        _check_owner(access, to, dest_root, obj, "import")
        write_artefact(dest_root, obj, data, provenance)
        destination = dest_root.table_uri(obj)
        access.audit(to, "import", f"{obj} <- {region}", None, "ok", {"bytes": len(data)})
    access.audit(
        region, "export", target, None, "ok", {"bytes": len(data), "sha256": provenance.get("sha256")}
    )
    return ExportReport(obj, region, to, destination, len(data))


def _export_table(
    access: Access, obj: str, *, region: str, to: str, target: str, snapshot: Callable[[str], Snapshot]
) -> ExportReport:
    from deltalake import write_deltalake

    rc = access.config.region(region)
    if obj == "audit" or to not in rc.export.raw_to:
        allowed = ", ".join(sorted(rc.export.raw_to)) or "nowhere"
        raise access.refuse(
            region,
            "export",
            target,
            ResidencyError(
                f"{obj} is raw data of region {region}; it may not be copied to {to} "
                f"(its policy lets raw tables go to: {allowed})"
            ),
        )
    access.check_raw_read(rc, "export", target)
    snap = snapshot(region)
    rows = snap.table(obj)
    dest_store = access.store(to)
    uri = dest_store.root.table_uri(f"imports/{region}/{obj}")
    try:
        write_deltalake(uri, rows, mode="overwrite", storage_options=dest_store.root.storage_options())
    except Exception as exc:
        raise storage_error(dest_store.root, f"write the export of {obj}", exc) from exc
    access.audit(region, "export", target, snap.version, "ok", {"rows": rows.num_rows})
    access.audit(to, "import", f"{obj} <- {region}", None, "ok", {"rows": rows.num_rows})
    return ExportReport(obj, region, to, uri, rows.num_rows)


# --------------------------------------------------------------------------- reading artefacts


def _kind_known(kind: str) -> None:
    if kind not in DERIVED_KINDS:
        raise ConfigError(f"unknown derived kind {kind!r}; known: {', '.join(DERIVED_KINDS)}")


def check_derived_read(access: Access, region: RegionConfig, kind: str, obj: str) -> None:
    """A derived artefact may be read at home, or from a region its kind may be exported to (audited)."""
    access.check_tenant(region.name, "read", obj)
    home = access.principal.home_region
    if region.may_receive(kind, home):  # at home, a raw reader's region, or where the kind may go
        return
    raise access.refuse(
        region.name,
        "read",
        obj,
        ResidencyError(
            f"{access.principal.name} is in {home}; {kind} artefacts of region {region.name} may not be "
            f"read from there (its policy lets {', '.join(sorted(region.export.derived)) or 'no'} "
            f"artefacts go to {', '.join(sorted(region.export.to)) or 'nowhere'})"
        ),
    )


def list_derived(access: Access, region: str, kind: str, prefix: str = "") -> list[str]:
    """Names of the derived artefacts of ``kind`` in ``region`` (see ``Lake.list_derived``)."""
    import pyarrow.fs as pafs

    _kind_known(kind)
    rc = access.config.region(region)
    if prefix:
        check_artefact_name(access, region, "list", prefix.rstrip("/"), what="prefix")
    obj = f"derived/{kind}/{prefix}"
    check_derived_read(access, rc, kind, obj)
    root = access.store(region).root
    fs = root.filesystem()
    base = root.path("derived", kind)
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except Exception as exc:
        raise storage_error(root, f"list {obj}", exc) from exc
    names = sorted(
        f"derived/{kind}/{info.path[len(base) + 1 :]}"
        for info in infos
        if info.type == pafs.FileType.File and not info.path.endswith(".provenance.json")
    )
    out = [n for n in names if n.startswith(obj)]
    access.audit(region, "list", obj, None, "ok", {"artefacts": len(out)})
    return out


def read_derived(access: Access, region: str, obj: str) -> tuple[bytes, dict[str, Any]]:
    """A derived artefact's bytes and provenance (see :meth:`datadrive.lake.Lake.read_derived`)."""
    rc = access.config.region(region)
    kind = _check_object(access, region, "read", obj)
    check_derived_read(access, rc, kind, obj)
    data, provenance = read_artefact(access.store(region).root, obj)
    if provenance.get("tenant") not in access.visible_tenants(region):
        raise access.refuse(region, "read", obj, AccessDeniedError(f"{obj} belongs to another tenant"))
    # the owner in the row lets the owner's admin see who read what it shared (the service's audit page)
    access.audit(region, "read", obj, None, "ok", {"bytes": len(data), "owner": provenance.get("tenant")})
    return data, provenance


def local_derived_dir(
    access: Access, region: str, kind: str, name: str, *, derived_from: Snapshot | None = None
) -> Path:
    """A local folder for a derived artefact of many files (see ``Lake.local_derived_dir``)."""
    _kind_known(kind)
    rc = access.config.region(region)
    check_artefact_name(access, region, "derive", name)
    obj = f"derived/{kind}/{name}"
    access.check_tenant(region, "derive", obj)
    if derived_from is not None and derived_from.region != region:
        raise access.refuse(
            derived_from.region,
            "export",
            f"{obj} -> {region}",
            ResidencyError(
                f"an artefact derived from region {derived_from.region} must stay in "
                f"{derived_from.region}; it cannot be materialised in {region}"
            ),
        )
    root = access.store(region).root
    if not root.is_local:
        raise ConfigError(
            f"region {region} is stored at {root.uri}: a local folder is needed for {obj} "
            "(give the command a local cache folder)"
        )
    _check_owner(access, region, root, obj, "derive")
    path = Path(root.path("derived", kind, *name.split("/")))
    try:
        path.mkdir(parents=True, exist_ok=True)
        prov = path.with_name(path.name + ".provenance.json")
        if not prov.exists():
            prov.write_text(
                json.dumps(
                    {
                        "kind": kind,
                        "tenant": access.principal.tenant,
                        "region": rc.name,
                        "derived_from": None
                        if derived_from is None
                        else {"region": derived_from.region, "lake_version": derived_from.version},
                        "created_by": access.principal.name,
                        "created_at": access.clock().isoformat(),
                    },
                    indent=2,
                )
            )
    except OSError as exc:
        raise StorageError(f"cannot create {path}: {exc.strerror or exc}") from exc
    access.audit(region, "derive", obj, None if derived_from is None else derived_from.version, "ok", {})
    return path


# --------------------------------------------------------------------------- transfers out of the tables


def authorize_transfer(access: Access, region: str, to: str, obj: str, *, kind: str = "raw") -> None:
    """Judge (and audit) sending a region's data elsewhere (see ``Lake.authorize_transfer``)."""
    rc = access.config.region(region)
    access.check_tenant(region, "export", obj)
    target = f"{obj} -> {to}"
    if to != region:
        if kind == "raw":
            allowed = to in rc.export.raw_to
            why = f"its policy lets raw data go to: {', '.join(sorted(rc.export.raw_to)) or 'nowhere'}"
        else:
            if kind not in DERIVED_KINDS:
                raise ConfigError(f"unknown derived kind {kind!r}; known: raw, {', '.join(DERIVED_KINDS)}")
            allowed = kind in rc.export.derived and to in rc.export.to
            kinds = ", ".join(sorted(rc.export.derived)) or "no"
            where = ", ".join(sorted(rc.export.to)) or "nowhere"
            why = f"its policy lets {kinds} artefacts go to {where}"
        if not allowed:
            raise access.refuse(
                region,
                "export",
                target,
                ResidencyError(
                    f"{obj} is {'data' if kind == 'raw' else kind} of region {region}; "
                    f"sending it to {to} would export it, and {why}"
                ),
            )
    access.audit(region, "export", target, None, "ok", {"kind": kind})
