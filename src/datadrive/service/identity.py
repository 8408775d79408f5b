"""Who is calling: tenants, users, roles, API keys, UI sessions, and the :class:`Caller`.

Roles (a user has one)::

    viewer    read what the tenant may read: lake, jobs, objects, shared objects
    engineer  viewer + upload and ingest, run jobs, SQL, exports, create reports
    admin     engineer + users, every key of the tenant, sharing grants, the audit trail

An API key acts for its user with at most the user's role, narrowed by its
scopes (``read``, ``write``, ``admin``). The key's secret is shown once, at
creation; the database keeps its SHA-256 (secrets are 256 random bits, so a
fast hash is enough; passwords, chosen by people, get scrypt).

A caller becomes a :class:`~datadrive.lake.Principal` (``user@tenant``, the
tenant, the user's home region, else the tenant's) and the library judges
everything else.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from datadrive.errors import AuthenticationError, ConflictError, PermissionDeniedError
from datadrive.lake import Principal
from datadrive.service.convert import json_value
from datadrive.service.db import ApiKey, IdentityEvent, Tenant, UiSession, User, utc_now

__all__ = [
    "KEY_PREFIX",
    "ROLES",
    "SCOPES",
    "Caller",
    "authenticate_key",
    "authenticate_session",
    "check_password",
    "create_key",
    "create_session",
    "create_user",
    "hash_password",
    "new_id",
    "record",
    "require",
]

ROLES = ("viewer", "engineer", "admin")
"""Roles, weakest first."""

SCOPES = ("read", "write", "admin")
"""API key scopes; a scope lets a key use the actions of the role of the same rank."""

KEY_PREFIX = "ddk"

_RANK = {r: i for i, r in enumerate(ROLES)}
_SCOPE_RANK = {"read": 0, "write": 1, "admin": 2}


def new_id(prefix: str) -> str:
    """A random, URL-safe identifier with a readable prefix (``job_3fz...``)."""
    return f"{prefix}_{secrets.token_urlsafe(12).replace('-', 'x').replace('_', 'y')}"


@dataclass(frozen=True)
class Caller:
    """An authenticated request's identity.

    Attributes:
        user_id: The user's id.
        user: The user's name.
        tenant: The tenant it acts for.
        role: The user's role.
        rank: The effective rank (role narrowed by the key's scopes).
        home_region: Where the user is.
        key_id: The API key used, or None for a UI session.
        csrf_token: The session's CSRF token (UI sessions only).
    """

    user_id: str
    user: str
    tenant: str
    role: str
    rank: int
    home_region: str
    key_id: str | None = None
    csrf_token: str | None = None

    @property
    def principal(self) -> Principal:
        """The library's view of this caller."""
        return Principal(f"{self.user}@{self.tenant}", self.tenant, self.home_region)

    @property
    def effective_role(self) -> str:
        return ROLES[self.rank]

    def can(self, role: str) -> bool:
        """Whether the caller acts with at least ``role``."""
        return self.rank >= _RANK[role]


def require(caller: Caller, role: str, action: str) -> None:
    """Refuse unless ``caller`` acts with at least ``role``.

    Raises:
        PermissionDeniedError: naming the action and the role it needs.
    """
    if not caller.can(role):
        how = f"this API key's scopes allow {caller.effective_role}" if caller.key_id else caller.role
        raise PermissionDeniedError(f"{action} needs the {role} role; you act as {how}")


# --------------------------------------------------------------------------- passwords

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (hex)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (constant time; False for no password)."""
    if not stored:
        hashlib.scrypt(b"x", salt=b"0" * 16, dklen=32, **_SCRYPT)  # same cost either way
        return False
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- users and keys


def record(
    db: Session,
    *,
    actor: str,
    tenant: str | None,
    action: str,
    obj: str,
    outcome: str = "ok",
    detail: dict[str, object] | None = None,
) -> None:
    """Append an identity event (sign-in, key created, user changed) to the service's log."""
    db.add(
        IdentityEvent(
            tenant_id=tenant,
            actor=actor,
            action=action,
            object=obj,
            outcome=outcome,
            detail=json_value(dict(detail or {})),
        )
    )


def create_user(
    db: Session,
    *,
    tenant: str,
    name: str,
    role: str,
    password: str | None = None,
    home_region: str | None = None,
) -> User:
    """Add a user to ``tenant``.

    Raises:
        ConflictError: if the tenant already has a user of that name.
    """
    if role not in _RANK:
        raise PermissionDeniedError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    exists = db.scalar(select(User).where(User.tenant_id == tenant, User.name == name))
    if exists is not None:
        raise ConflictError(f"tenant {tenant} already has a user called {name!r}")
    user = User(
        id=new_id("usr"),
        tenant_id=tenant,
        name=name,
        role=role,
        home_region=home_region,
        password_hash=hash_password(password) if password else None,
    )
    db.add(user)
    return user


def create_key(
    db: Session,
    user: User,
    *,
    name: str,
    scopes: tuple[str, ...] = ("read",),
    ttl: timedelta | None = timedelta(days=90),
) -> tuple[ApiKey, str]:
    """Create an API key for ``user``; returns the row and the secret (shown once).

    A key may not carry a scope above its user's role.

    Raises:
        PermissionDeniedError: for an unknown scope, or one above the user's role.
    """
    for s in scopes:
        if s not in _SCOPE_RANK:
            raise PermissionDeniedError(f"unknown scope {s!r}; scopes: {', '.join(SCOPES)}")
        if _SCOPE_RANK[s] > _RANK[user.role]:
            raise PermissionDeniedError(f"a key of a {user.role} cannot carry the {s} scope")
    key_id = new_id("key")
    secret = secrets.token_urlsafe(32)
    row = ApiKey(
        id=key_id,
        tenant_id=user.tenant_id,
        user_id=user.id,
        name=name,
        secret_sha256=_sha256(secret),
        scopes=sorted(set(scopes)),
        expires_at=None if ttl is None else utc_now() + ttl,
    )
    db.add(row)
    return row, f"{KEY_PREFIX}.{key_id}.{secret}"


def _caller(user: User, tenant: Tenant, rank: int, key_id: str | None, csrf: str | None) -> Caller:
    return Caller(
        user_id=user.id,
        user=user.name,
        tenant=user.tenant_id,
        role=user.role,
        rank=min(rank, _RANK[user.role]),
        home_region=user.home_region or tenant.home_region,
        key_id=key_id,
        csrf_token=csrf,
    )


_LAST_USED_EVERY_S = 60.0
"""How stale a key's ``last_used_at`` may get before a request writes it again."""
_LAST_USED_CLAIMS: dict[str, float] = {}
_LAST_USED_LOCK = threading.Lock()


def _claim_last_used(key_id: str) -> bool:
    """Whether this request writes the key's ``last_used_at`` (one per key per minute in this process).

    Concurrent requests of one key all saw the value go stale at once and
    each committed it (a write and a sync apiece, the slowest part of their
    authentication); now the first claims it and the others read on.
    """
    now = time.monotonic()
    with _LAST_USED_LOCK:
        last = _LAST_USED_CLAIMS.get(key_id)
        if last is not None and now - last < _LAST_USED_EVERY_S:
            return False
        if len(_LAST_USED_CLAIMS) >= 100_000:
            _LAST_USED_CLAIMS.clear()
        _LAST_USED_CLAIMS[key_id] = now
        return True


def authenticate_key(db: Session, token: str, now: datetime | None = None) -> Caller:
    """The caller an ``Authorization: Bearer ddk.<id>.<secret>`` token stands for.

    Every failure gives the same message, so a probe learns nothing about
    which keys exist.

    Raises:
        AuthenticationError: unknown, malformed, expired or revoked keys; disabled users.
    """
    now = now or utc_now()
    bad = AuthenticationError("unknown, expired or revoked API key")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(token) > 200:
        raise bad
    # the key, its user and the user's tenant in one round trip (inner joins: a key whose user or
    # tenant is gone finds nothing, and is refused like an unknown one)
    found = db.execute(
        select(ApiKey, User, Tenant)
        .join(User, User.id == ApiKey.user_id)
        .join(Tenant, Tenant.id == User.tenant_id)
        .where(ApiKey.id == parts[1])
    ).first()
    if found is None:
        _sha256(parts[2])  # the same work as for a key that exists
        raise bad
    row, user, tenant = found
    if not hmac.compare_digest(row.secret_sha256, _sha256(parts[2])):
        raise bad
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        raise bad
    if user.disabled:
        raise bad
    stale = row.last_used_at is None or (now - row.last_used_at).total_seconds() > _LAST_USED_EVERY_S
    if stale and _claim_last_used(row.id):
        row.last_used_at = now  # coarse, so reads do not write on every request
        db.commit()
    rank = max(_SCOPE_RANK[s] for s in row.scopes) if row.scopes else -1
    if rank < 0:
        raise bad
    return _caller(user, tenant, rank, row.id, None)


def create_session(db: Session, user: User, ttl_s: int) -> tuple[str, UiSession]:
    """Sign ``user`` in: returns the cookie token and the session row (with its CSRF token)."""
    token = secrets.token_urlsafe(32)
    row = UiSession(
        token_sha256=_sha256(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        expires_at=utc_now() + timedelta(seconds=ttl_s),
    )
    db.add(row)
    return token, row


def authenticate_session(db: Session, token: str, now: datetime | None = None) -> Caller:
    """The caller a session cookie stands for.

    Raises:
        AuthenticationError: for an unknown or expired session, or a disabled user.
    """
    now = now or utc_now()
    found = (
        db.execute(
            select(UiSession, User, Tenant)
            .join(User, User.id == UiSession.user_id)
            .join(Tenant, Tenant.id == User.tenant_id)
            .where(UiSession.token_sha256 == _sha256(token))
        ).first()
        if len(token) < 200
        else None
    )
    if found is None:
        raise AuthenticationError("not signed in (or the session expired)")
    row, user, tenant = found
    if row.expires_at <= now or user.disabled:
        raise AuthenticationError("not signed in (or the session expired)")
    return _caller(user, tenant, _RANK[user.role], None, row.csrf_token)


def end_session(db: Session, token: str) -> None:
    """Sign out: forget the session."""
    row = db.get(UiSession, _sha256(token))
    if row is not None:
        db.delete(row)
