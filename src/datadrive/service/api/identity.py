"""Identity endpoints: who am I, the alliance's tenants, users, API keys, identity events."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from datadrive.errors import ConflictError, NotFoundError
from datadrive.service.api.deps import CallerDep, DbDep, PageDep, ServicesDep
from datadrive.service.db import ApiKey, IdentityEvent, Tenant, User, utc_now
from datadrive.service.errors import ERROR_RESPONSES
from datadrive.service.identity import create_key, create_user, record, require

__all__ = [
    "EventOut",
    "KeyIn",
    "KeyOut",
    "Me",
    "NewKey",
    "TenantOut",
    "UserIn",
    "UserOut",
    "UserPatch",
    "add_user",
    "identity_events",
    "list_keys",
    "list_users",
    "me",
    "new_key",
    "patch_user",
    "revoke_key",
    "tenants",
]

router = APIRouter(tags=["identity"], responses=ERROR_RESPONSES)

Role = Literal["viewer", "engineer", "admin"]
Scope = Literal["read", "write", "admin"]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@\-]{0,99}$"


class Me(BaseModel):
    user_id: str
    user: str
    tenant: str
    role: Role
    effective_role: Role
    home_region: str
    key_id: str | None
    principal: str


class TenantOut(BaseModel):
    id: str
    display_name: str
    home_region: str


class UserOut(BaseModel):
    id: str
    name: str
    tenant: str
    role: Role
    home_region: str | None
    disabled: bool
    created_at: datetime


class UserIn(BaseModel):
    name: str = Field(pattern=_NAME, description="Unique within the tenant.")
    role: Role = "viewer"
    password: str | None = Field(None, min_length=10, max_length=200, description="For UI sign-in.")
    home_region: str | None = Field(
        None, max_length=63, description="Where the user is (default: the tenant's)."
    )


class UserPatch(BaseModel):
    role: Role | None = None
    disabled: bool | None = None
    home_region: str | None = Field(None, max_length=63)


def _read_only() -> list[Scope]:
    return ["read"]


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(default_factory=_read_only, min_length=1, max_length=3)
    ttl_days: int | None = Field(90, ge=1, le=730, description="Days until it expires; null: never.")
    user_id: str | None = Field(
        None, max_length=40, description="Admins: a key for another user of the tenant."
    )


class KeyOut(BaseModel):
    id: str
    name: str
    user_id: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class NewKey(KeyOut):
    secret: str = Field(description="The key to send as `Authorization: Bearer <secret>`; shown only now.")


class EventOut(BaseModel):
    time: datetime
    actor: str
    action: str
    object: str
    outcome: str
    detail: dict[str, Any]


def _user(u: User) -> UserOut:
    return UserOut(
        id=u.id,
        name=u.name,
        tenant=u.tenant_id,
        role=u.role,  # type: ignore[arg-type]
        home_region=u.home_region,
        disabled=u.disabled,
        created_at=u.created_at,
    )


def _key(k: ApiKey) -> dict[str, Any]:
    return KeyOut(
        id=k.id,
        name=k.name,
        user_id=k.user_id,
        scopes=list(k.scopes),
        created_at=k.created_at,
        expires_at=k.expires_at,
        revoked_at=k.revoked_at,
        last_used_at=k.last_used_at,
    ).model_dump()


@router.get("/me", response_model=Me, summary="Who the credentials stand for")
def me(caller: CallerDep) -> Me:
    return Me(
        user_id=caller.user_id,
        user=caller.user,
        tenant=caller.tenant,
        role=caller.role,  # type: ignore[arg-type]
        effective_role=caller.effective_role,  # type: ignore[arg-type]
        home_region=caller.home_region,
        key_id=caller.key_id,
        principal=caller.principal.name,
    )


@router.get("/tenants", response_model=list[TenantOut], summary="The alliance's members (for sharing)")
def tenants(caller: CallerDep, db: DbDep) -> list[TenantOut]:
    rows = db.scalars(select(Tenant).order_by(Tenant.id)).all()
    return [TenantOut(id=t.id, display_name=t.display_name, home_region=t.home_region) for t in rows]


@router.get("/users", summary="Users of your tenant (admin)")
def list_users(
    caller: CallerDep,
    db: DbDep,
    page: PageDep,
    role: Annotated[Role | None, Query(description="Only this role.")] = None,
) -> dict[str, Any]:
    require(caller, "admin", "listing users")
    q = select(User).where(User.tenant_id == caller.tenant)
    if role:
        q = q.where(User.role == role)
    total = db.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = db.scalars(q.order_by(User.name).limit(page.limit).offset(page.offset)).all()
    return page.wrap([_user(u).model_dump() for u in rows], total)


@router.post("/users", status_code=201, response_model=UserOut, summary="Add a user to your tenant (admin)")
def add_user(body: UserIn, caller: CallerDep, db: DbDep, svc: ServicesDep) -> UserOut:
    require(caller, "admin", "adding users")
    if body.home_region is not None:
        svc.gateway.region(body.home_region)
    user = create_user(
        db,
        tenant=caller.tenant,
        name=body.name,
        role=body.role,
        password=body.password,
        home_region=body.home_region,
    )
    record(
        db,
        actor=caller.principal.name,
        tenant=caller.tenant,
        action="user.create",
        obj=user.id,
        detail={"name": body.name, "role": body.role},
    )
    db.commit()
    return _user(user)


def _tenant_user(db: DbDep, caller: CallerDep, user_id: str) -> User:
    user = db.get(User, user_id)
    if user is None or user.tenant_id != caller.tenant:
        raise NotFoundError(f"no user {user_id!r}")
    return user


@router.patch("/users/{user_id}", response_model=UserOut, summary="Change a user's role or status (admin)")
def patch_user(user_id: str, body: UserPatch, caller: CallerDep, db: DbDep, svc: ServicesDep) -> UserOut:
    require(caller, "admin", "changing users")
    user = _tenant_user(db, caller, user_id)
    if user.id == caller.user_id and (body.disabled or (body.role and body.role != "admin")):
        raise ConflictError("you cannot demote or disable yourself; ask another admin")
    changes = body.model_dump(exclude_none=True)
    if body.home_region is not None:
        svc.gateway.region(body.home_region)
    for k, v in changes.items():
        setattr(user, k, v)
    record(
        db,
        actor=caller.principal.name,
        tenant=caller.tenant,
        action="user.update",
        obj=user.id,
        detail=changes,
    )
    db.commit()
    return _user(user)


@router.get("/keys", summary="API keys: yours, or every key of the tenant (admin)")
def list_keys(
    caller: CallerDep,
    db: DbDep,
    page: PageDep,
    active: Annotated[
        bool | None, Query(description="Only active (true) or only revoked/expired (false).")
    ] = None,
) -> dict[str, Any]:
    q = select(ApiKey).where(ApiKey.tenant_id == caller.tenant)
    if not caller.can("admin"):
        q = q.where(ApiKey.user_id == caller.user_id)
    now = utc_now()
    if active is True:
        q = q.where(ApiKey.revoked_at.is_(None), (ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > now))
    elif active is False:
        q = q.where((ApiKey.revoked_at.is_not(None)) | (ApiKey.expires_at <= now))
    total = db.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = db.scalars(q.order_by(ApiKey.created_at.desc()).limit(page.limit).offset(page.offset)).all()
    return page.wrap([_key(k) for k in rows], total)


@router.post(
    "/keys", status_code=201, response_model=NewKey, summary="Create an API key (the secret is shown once)"
)
def new_key(body: KeyIn, caller: CallerDep, db: DbDep) -> NewKey:
    require(caller, "engineer" if "write" in body.scopes else "viewer", "creating API keys")
    if "admin" in body.scopes:
        require(caller, "admin", "creating admin keys")
    user = db.get(User, caller.user_id) if body.user_id in (None, caller.user_id) else None
    if body.user_id not in (None, caller.user_id):
        require(caller, "admin", "creating keys for other users")
        user = _tenant_user(db, caller, body.user_id)
    if user is None:
        raise NotFoundError("no such user")
    ttl = None if body.ttl_days is None else timedelta(days=body.ttl_days)
    row, secret = create_key(db, user, name=body.name, scopes=tuple(body.scopes), ttl=ttl)
    record(
        db,
        actor=caller.principal.name,
        tenant=caller.tenant,
        action="key.create",
        obj=row.id,
        detail={"user_id": user.id, "scopes": list(row.scopes), "expires_at": row.expires_at},
    )
    db.commit()
    return NewKey(**_key(row), secret=secret)


@router.delete("/keys/{key_id}", response_model=KeyOut, summary="Revoke an API key")
def revoke_key(key_id: str, caller: CallerDep, db: DbDep) -> dict[str, Any]:
    row = db.get(ApiKey, key_id)
    if (
        row is None
        or row.tenant_id != caller.tenant
        or (row.user_id != caller.user_id and not caller.can("admin"))
    ):
        raise NotFoundError(f"no API key {key_id!r}")
    if row.revoked_at is None:
        row.revoked_at = utc_now()
        record(db, actor=caller.principal.name, tenant=caller.tenant, action="key.revoke", obj=row.id)
        db.commit()
    return _key(row)


@router.get("/identity-events", summary="Sign-ins, key and user changes in your tenant (admin)")
def identity_events(
    caller: CallerDep,
    db: DbDep,
    page: PageDep,
    action: Annotated[
        str | None, Query(max_length=40, description="Only this action (e.g. key.create).")
    ] = None,
) -> dict[str, Any]:
    require(caller, "admin", "reading identity events")
    q = select(IdentityEvent).where(IdentityEvent.tenant_id == caller.tenant)
    if action:
        q = q.where(IdentityEvent.action == action)
    total = db.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = db.scalars(q.order_by(IdentityEvent.id.desc()).limit(page.limit).offset(page.offset)).all()
    items = [
        EventOut(
            time=e.time, actor=e.actor, action=e.action, object=e.object, outcome=e.outcome, detail=e.detail
        ).model_dump()
        for e in rows
    ]
    return page.wrap(items, total)
