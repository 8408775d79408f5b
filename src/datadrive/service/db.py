"""The service's metadata: SQLAlchemy 2 models and the engine.

What the library has no notion of lives here: tenants' service accounts,
users, API keys, UI sessions, jobs and their logs, uploads, the catalogue
of shareable objects and the grants on them, and identity events. Scenario
data never does: it stays in the lake, in its region.

SQLite (the embedded default) and PostgreSQL run the same models; the
schema is created and upgraded only by the Alembic migrations in
``datadrive/service/migrations`` (:func:`migrate`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

__all__ = [
    "ApiKey",
    "Base",
    "Grant",
    "IdentityEvent",
    "Job",
    "JobLog",
    "SharedObject",
    "Tenant",
    "UiSession",
    "Upload",
    "User",
    "make_engine",
    "migrate",
    "session_factory",
    "utc_now",
]


def utc_now() -> datetime:
    """Now, in UTC, aware."""
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite stores naive ones)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: sa.JSON(),
        list[str]: sa.JSON(),
    }


class Tenant(Base):
    """An alliance member; ``id`` is its tenant name in the lake's config."""

    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(sa.String(63), primary_key=True)
    display_name: Mapped[str] = mapped_column(sa.String(200))
    home_region: Mapped[str] = mapped_column(sa.String(63))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class User(Base):
    """A person (or service account) of one tenant, with one role."""

    __tablename__ = "users"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "name"),)
    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    role: Mapped[str] = mapped_column(sa.String(20))
    home_region: Mapped[str | None] = mapped_column(sa.String(63))
    password_hash: Mapped[str | None] = mapped_column(sa.String(300))
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class ApiKey(Base):
    """An API key: only a hash of its secret is stored."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    secret_sha256: Mapped[str] = mapped_column(sa.String(64))
    scopes: Mapped[list[str]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()


class UiSession(Base):
    """A signed-in browser: the cookie holds a token, the table its hash and the CSRF token."""

    __tablename__ = "ui_sessions"
    token_sha256: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[datetime] = mapped_column()


class Job(Base):
    """A unit of background work with status, progress, logs and cancellation."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(sa.String(40), index=True)
    region: Mapped[str | None] = mapped_column(sa.String(63))
    params: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(sa.String(20), index=True)
    progress: Mapped[float] = mapped_column(default=0.0)
    message: Mapped[str] = mapped_column(sa.String(500), default="")
    result: Mapped[dict[str, Any] | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(sa.Text())
    attempts: Mapped[int] = mapped_column(default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    runner: Mapped[str | None] = mapped_column(sa.String(20))
    runner_instance: Mapped[str | None] = mapped_column(sa.String(64))
    external_id: Mapped[str | None] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()


class JobLog(Base):
    """One line of a job's log."""

    __tablename__ = "job_logs"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.id"), index=True)
    time: Mapped[datetime] = mapped_column(default=utc_now)
    level: Mapped[str] = mapped_column(sa.String(10))
    message: Mapped[str] = mapped_column(sa.Text())


class Upload(Base):
    """A file a user uploaded for ingest, staged until its job has run."""

    __tablename__ = "uploads"
    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id"))
    region: Mapped[str] = mapped_column(sa.String(63))
    filename: Mapped[str] = mapped_column(sa.String(255))
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    sniffed: Mapped[str] = mapped_column(sa.String(40))
    job_id: Mapped[str | None] = mapped_column(sa.String(40))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class SharedObject(Base):
    """Something a tenant may share: a dataset, an event set, a model or a report.

    Its bytes live in the lake, in ``region``: ``parts`` maps a part's name
    (``summary``, ``metrics``, ``weights``, ``members``) to ``{"kind": <derived
    kind or "raw">, "object": "derived/<kind>/<name>"}``.
    """

    __tablename__ = "objects"
    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    region: Mapped[str] = mapped_column(sa.String(63))
    type: Mapped[str] = mapped_column(sa.String(20), index=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    parts: Mapped[dict[str, Any]] = mapped_column()
    meta: Mapped[dict[str, Any]] = mapped_column()
    created_by: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Grant(Base):
    """``object``'s owner lets ``grantee_tenant`` read it."""

    __tablename__ = "grants"
    __table_args__ = (sa.Index("ix_grants_object_grantee", "object_id", "grantee_tenant"),)
    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    object_id: Mapped[str] = mapped_column(sa.ForeignKey("objects.id"))
    owner_tenant: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    grantee_tenant: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    created_by: Mapped[str] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column()


class IdentityEvent(Base):
    """Sign-ins, key and user changes: events about identity, not about region data."""

    __tablename__ = "identity_events"
    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(default=utc_now, index=True)
    tenant_id: Mapped[str | None] = mapped_column(sa.String(63), index=True)
    actor: Mapped[str] = mapped_column(sa.String(200))
    action: Mapped[str] = mapped_column(sa.String(40))
    object: Mapped[str] = mapped_column(sa.String(200))
    outcome: Mapped[str] = mapped_column(sa.String(20))
    detail: Mapped[dict[str, Any]] = mapped_column()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        # a pool as large as PostgreSQL's: with the default (5), concurrent requests beyond it each
        # opened a connection (and ran the pragmas) and closed it again
        engine = sa.create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=10,
            max_overflow=20,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def session_factory(engine: Engine) -> sessionmaker[Any]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` with the packaged Alembic migrations."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, revision)
