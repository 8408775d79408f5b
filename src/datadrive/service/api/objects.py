"""Shareable objects (reports, datasets, event sets, models) and the grants on them.

An object's bytes live in the lake, in its region; the service keeps its
catalogue entry and the grants. Reading a part of an object goes through
the library as the reader: for a grantee, the library is shown the grant
(scoped to the object's region) and judges the read by where the grantee
is. A partner abroad gets a part only if the region's policy lets that kind
(aggregate, metrics, model, features) leave to the partner's home region;
otherwise the API answers 403 ``residency`` with the library's reason.
Raw parts never leave their region. Grants and revocations are audited in
the object's region.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import or_, select

from datadrive.errors import ConflictError, NotFoundError, ResidencyError
from datadrive.service.api.deps import CallerDep, DbDep, PageDep, ServicesDep
from datadrive.service.db import Grant, SharedObject, Tenant, utc_now
from datadrive.service.errors import ERROR_RESPONSES
from datadrive.service.identity import Caller, new_id, require

__all__ = [
    "GrantIn",
    "GrantOut",
    "create_grant",
    "get_object",
    "list_grants",
    "list_objects",
    "object_out",
    "part_bytes",
    "read_part",
    "report",
    "revoke_grant",
    "visible",
    "visible_objects",
]

router = APIRouter(tags=["sharing"], responses=ERROR_RESPONSES)

ObjectType = Literal["report", "dataset", "event_set", "model", "simulation"]
IdPath = Annotated[str, Path(max_length=40)]
PartPath = Annotated[str, Path(max_length=40)]


class GrantIn(BaseModel):
    object_id: str = Field(max_length=40)
    grantee: str = Field(max_length=63, description="The tenant to share with.")


class GrantOut(BaseModel):
    id: str
    object_id: str
    object_name: str
    object_type: str
    region: str
    owner: str
    grantee: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    parts: dict[str, str] = Field(
        description="Per part: 'readable', or why the grantee's region may not get it."
    )


def _visible(db: DbDep, caller: Caller, object_id: str) -> tuple[SharedObject, Grant | None]:
    obj = db.get(SharedObject, object_id)
    if obj is None:
        raise NotFoundError(f"no object {object_id!r}")
    if obj.tenant_id == caller.tenant:
        return obj, None
    grant = db.scalar(
        select(Grant).where(
            Grant.object_id == obj.id, Grant.grantee_tenant == caller.tenant, Grant.revoked_at.is_(None)
        )
    )
    if grant is None:
        raise NotFoundError(f"no object {object_id!r}")
    return obj, grant


def object_out(obj: SharedObject, caller: Caller, svc: ServicesDep) -> dict[str, Any]:
    """An object as the API shows it: parts with whether the caller's region may read them."""
    return _object(obj, caller, svc)


def _object(obj: SharedObject, caller: Caller, svc: ServicesDep) -> dict[str, Any]:
    rc = svc.lake_config.region(obj.region)
    parts = {
        name: {
            "kind": p.get("kind"),
            "readable_by_you": rc.may_receive(str(p.get("kind")), caller.home_region),
        }
        for name, p in obj.parts.items()
    }
    return {
        "id": obj.id,
        "type": obj.type,
        "name": obj.name,
        "owner": obj.tenant_id,
        "region": obj.region,
        "parts": parts,
        "meta": obj.meta,
        "created_by": obj.created_by,
        "created_at": obj.created_at.isoformat(),
        "shared_with_you": obj.tenant_id != caller.tenant,
    }


@router.get("/objects", summary="Your tenant's objects and those shared with it")
def list_objects(
    caller: CallerDep,
    db: DbDep,
    svc: ServicesDep,
    page: PageDep,
    type: Annotated[ObjectType | None, Query(description="Only this type.")] = None,
    scope: Annotated[Literal["all", "mine", "shared"], Query()] = "all",
) -> dict[str, Any]:
    rows = visible_objects(db, caller, scope, type)
    return page.wrap(
        [_object(o, caller, svc) for o in rows[page.offset : page.offset + page.limit]], len(rows)
    )


@router.get("/objects/{object_id}", summary="One object (yours, or shared with you)")
def get_object(object_id: IdPath, caller: CallerDep, db: DbDep, svc: ServicesDep) -> dict[str, Any]:
    obj, _ = _visible(db, caller, object_id)
    return _object(obj, caller, svc)


@router.get(
    "/objects/{object_id}/parts/{part}",
    summary="A part's content, if its region's policy lets it reach you",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, "application/octet-stream": {}}}},
)
def read_part(object_id: IdPath, part: PartPath, caller: CallerDep, db: DbDep, svc: ServicesDep) -> Response:
    obj, grant = _visible(db, caller, object_id)
    data, ref = part_bytes(obj, grant, part, caller, svc)
    media = "application/json" if ref.endswith(".json") else "application/octet-stream"
    return Response(data, media_type=media)


def visible_objects(
    db: DbDep, caller: Caller, scope: Literal["all", "mine", "shared"], type_: str | None = None
) -> Sequence[SharedObject]:
    """What the caller's tenant owns ("mine"), was granted ("shared") or both, of ``type_``, newest first."""
    shared = select(Grant.object_id).where(Grant.grantee_tenant == caller.tenant, Grant.revoked_at.is_(None))
    where = {
        "mine": SharedObject.tenant_id == caller.tenant,
        "shared": SharedObject.id.in_(shared),
        "all": or_(SharedObject.tenant_id == caller.tenant, SharedObject.id.in_(shared)),
    }[scope]
    q = select(SharedObject).where(where)
    if type_:
        q = q.where(SharedObject.type == type_)
    return db.scalars(q.order_by(SharedObject.created_at.desc())).all()


def visible(db: DbDep, caller: Caller, object_id: str, type_: str) -> tuple[SharedObject, Grant | None]:
    """An object of ``type_`` the caller owns or was granted, and the grant (None for the owner).

    Raises:
        NotFoundError: in the same words whether it does not exist, is another type, or is not visible.
    """
    obj, grant = _visible(db, caller, object_id)
    if obj.type != type_:
        raise NotFoundError(f"no object {object_id!r}")
    return obj, grant


def part_bytes(
    obj: SharedObject, grant: Grant | None, part: str, caller: Caller, svc: ServicesDep
) -> tuple[bytes, str]:
    """A part's bytes, read through the library as the caller (the grant shown to it), and its reference.

    Raises:
        NotFoundError: no such part.
        ResidencyError: the part is raw data, or the region's policy keeps its kind from the caller.
    """
    spec = obj.parts.get(part)
    if not isinstance(spec, dict):
        raise NotFoundError(f"object {obj.id} has no part {part!r}")
    kind, ref = str(spec.get("kind")), str(spec.get("object"))
    if kind == "raw":
        raise ResidencyError(
            f"part {part} is raw data of region {obj.region}; read it through the lake there"
        )
    lake = (
        svc.gateway.lake(caller.principal)
        if grant is None
        else svc.gateway.shared_lake(caller.principal, obj.tenant_id, obj.region)
    )
    data, _ = lake.read_derived(obj.region, ref)
    return data, ref


def _grant_out(g: Grant, obj: SharedObject, svc: ServicesDep, db: DbDep) -> dict[str, Any]:
    rc = svc.lake_config.region(obj.region)
    grantee = db.get(Tenant, g.grantee_tenant)
    home = grantee.home_region if grantee else ""
    parts = {}
    for name, p in obj.parts.items():
        kind = str(p.get("kind"))
        parts[name] = (
            "readable"
            if rc.may_receive(kind, home)
            else f"not readable from {home}: region {obj.region}'s policy does not let {kind} data go there"
        )
    return GrantOut(
        id=g.id,
        object_id=obj.id,
        object_name=obj.name,
        object_type=obj.type,
        region=obj.region,
        owner=g.owner_tenant,
        grantee=g.grantee_tenant,
        created_by=g.created_by,
        created_at=g.created_at,
        revoked_at=g.revoked_at,
        parts=parts,
    ).model_dump(mode="json")


@router.get("/grants", summary="Grants your tenant gave and received")
def list_grants(
    caller: CallerDep,
    db: DbDep,
    svc: ServicesDep,
    page: PageDep,
    direction: Annotated[Literal["given", "received", "all"], Query()] = "all",
    active: Annotated[bool, Query(description="Only grants not revoked.")] = True,
) -> dict[str, Any]:
    cond = {
        "given": Grant.owner_tenant == caller.tenant,
        "received": Grant.grantee_tenant == caller.tenant,
        "all": or_(Grant.owner_tenant == caller.tenant, Grant.grantee_tenant == caller.tenant),
    }[direction]
    q = select(Grant, SharedObject).join(SharedObject, SharedObject.id == Grant.object_id).where(cond)
    if active:
        q = q.where(Grant.revoked_at.is_(None))
    rows = db.execute(q.order_by(Grant.created_at.desc())).all()
    items = [_grant_out(g, o, svc, db) for g, o in rows[page.offset : page.offset + page.limit]]
    return page.wrap(items, len(rows))


@router.post(
    "/grants", status_code=201, response_model=GrantOut, summary="Share an object with another tenant (admin)"
)
def create_grant(body: GrantIn, caller: CallerDep, db: DbDep, svc: ServicesDep) -> dict[str, Any]:
    require(caller, "admin", "sharing")
    obj = db.get(SharedObject, body.object_id)
    if obj is None or obj.tenant_id != caller.tenant:
        raise NotFoundError(f"no object {body.object_id!r}")
    if db.get(Tenant, body.grantee) is None or body.grantee == caller.tenant:
        raise NotFoundError(f"no other tenant {body.grantee!r}")
    existing = db.scalar(
        select(Grant).where(
            Grant.object_id == obj.id, Grant.grantee_tenant == body.grantee, Grant.revoked_at.is_(None)
        )
    )
    if existing is not None:
        raise ConflictError(f"{obj.name} is already shared with {body.grantee}")
    grant = Grant(
        id=new_id("grt"),
        object_id=obj.id,
        owner_tenant=caller.tenant,
        grantee_tenant=body.grantee,
        created_by=caller.principal.name,
    )
    db.add(grant)
    db.commit()
    out = _grant_out(grant, obj, svc, db)
    svc.gateway.lake(caller.principal).audit_event(
        obj.region,
        "grant",
        f"{obj.type} {obj.id} -> {body.grantee}",
        detail={
            "grant_id": grant.id,
            "object": obj.name,
            "grantee": body.grantee,
            "parts": out["parts"],
            "owner": caller.tenant,
        },
    )
    return out


@router.delete("/grants/{grant_id}", response_model=GrantOut, summary="Revoke a grant (admin)")
def revoke_grant(grant_id: IdPath, caller: CallerDep, db: DbDep, svc: ServicesDep) -> dict[str, Any]:
    require(caller, "admin", "revoking grants")
    grant = db.get(Grant, grant_id)
    if grant is None or grant.owner_tenant != caller.tenant:
        raise NotFoundError(f"no grant {grant_id!r}")
    obj = db.get(SharedObject, grant.object_id)
    if obj is None:
        raise NotFoundError(f"no grant {grant_id!r}")
    if grant.revoked_at is None:
        grant.revoked_at = utc_now()
        db.commit()
        svc.gateway.lake(caller.principal).audit_event(
            obj.region,
            "revoke",
            f"{obj.type} {obj.id} -> {grant.grantee_tenant}",
            detail={"grant_id": grant.id, "owner": caller.tenant},
        )
    return _grant_out(grant, obj, svc, db)


@router.get("/reports/{object_id}", summary="A report's rows (yours, or shared with you)")
def report(object_id: IdPath, caller: CallerDep, db: DbDep, svc: ServicesDep) -> dict[str, Any]:
    obj, _ = _visible(db, caller, object_id)
    if obj.type != "report":
        raise NotFoundError(f"no report {object_id!r}")
    resp = read_part(object_id, "summary", caller, db, svc)
    body: dict[str, Any] = json.loads(bytes(resp.body))
    return {**_object(obj, caller, svc), "content": body}
