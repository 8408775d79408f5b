"""What every endpoint depends on: the services, a database session, the caller, a page.

FastAPI runs a plain ``def`` dependency in its thread pool, a hop out of the
event loop and back for each; the dependencies that do no I/O (the
services, the page) are ``async def`` so that they run in the loop, and
the caller is authenticated in one hop on a database session of its own
(returned to the pool before the endpoint runs), so a lake read costs two
hops (authentication, the endpoint) rather than five or six (the services,
the session opened and closed, the caller, the page, the endpoint).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Query, Request
from sqlalchemy.orm import Session

from datadrive.errors import AuthenticationError, PermissionDeniedError, RateLimitError
from datadrive.service.identity import Caller, authenticate_key, authenticate_session
from datadrive.service.ops import stage

if TYPE_CHECKING:
    from datadrive.service.app import Services

__all__ = ["SESSION_COOKIE", "CallerDep", "DbDep", "Page", "PageDep", "ServicesDep", "caller_of", "services"]

SESSION_COOKIE = "dd_session"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def services(request: Request) -> Services:
    """The app's services (database, lake gateway, jobs, limits)."""
    svc: Services = request.app.state.services
    return svc


async def _services(request: Request) -> Services:
    return services(request)


ServicesDep = Annotated["Services", Depends(_services)]


def db_session(request: Request) -> Iterator[Session]:
    """A database session for one request."""
    with services(request).sessions() as db:
        yield db


DbDep = Annotated[Session, Depends(db_session)]


def caller_of(request: Request, db: Session, *, csrf_form: str | None = None) -> Caller:
    """Authenticate ``request``: an API key (``Authorization: Bearer``) or a UI session cookie.

    A session-authenticated request that changes something must carry the
    session's CSRF token (``X-CSRF-Token`` header, or ``csrf_form`` from a
    form field); API keys are not sent by browsers on their own, so they
    need none. Every authenticated request takes a token from the caller's
    rate-limit bucket.

    Raises:
        AuthenticationError: no or bad credentials.
        PermissionDeniedError: a missing or wrong CSRF token.
        RateLimitError: the bucket is empty.
    """
    with stage("auth"):
        return _authenticate(request, db, csrf_form)


def _authenticate(request: Request, db: Session, csrf_form: str | None) -> Caller:
    svc = services(request)
    auth = request.headers.get("authorization")
    if auth is not None:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("use Authorization: Bearer <API key>")
        caller = authenticate_key(db, token.strip())
        bucket = f"key:{caller.key_id}"
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            _admit(svc, f"ip:{request.client.host if request.client else '-'}")
            raise AuthenticationError("sign in, or send an API key (Authorization: Bearer <key>)")
        caller = authenticate_session(db, cookie)
        if request.method not in _SAFE:
            sent = request.headers.get("x-csrf-token") or csrf_form
            import hmac

            if not sent or caller.csrf_token is None or not hmac.compare_digest(sent, caller.csrf_token):
                raise PermissionDeniedError("missing or wrong CSRF token; reload the page and try again")
        bucket = f"user:{caller.user_id}"
    _admit(svc, bucket)
    request.scope.setdefault("state", {})["caller"] = caller
    return caller


def _admit(svc: Services, bucket: str) -> None:
    try:
        svc.limiter.admit(bucket)
    except RateLimitError:
        raise


def current_caller(request: Request) -> Caller:
    """The dependency form of :func:`caller_of`, on a database session of its own."""
    with services(request).sessions() as db:
        return caller_of(request, db)


CallerDep = Annotated[Caller, Depends(current_caller)]


@dataclass(frozen=True)
class Page:
    """Offset pagination: ``limit`` items from ``offset``."""

    limit: int
    offset: int

    def wrap(self, items: list[Any], total: int) -> dict[str, Any]:
        """The response envelope of a page."""
        nxt = self.offset + len(items)
        return {
            "items": items,
            "total": total,
            "limit": self.limit,
            "offset": self.offset,
            "next_offset": nxt if nxt < total else None,
        }


async def page(
    limit: Annotated[int, Query(ge=1, le=500, description="Items per page.")] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000, description="Items to skip.")] = 0,
) -> Page:
    return Page(limit, offset)


PageDep = Annotated[Page, Depends(page)]
