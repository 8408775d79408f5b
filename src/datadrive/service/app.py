"""The FastAPI app: :func:`create_app` wires settings, database, lake, jobs, API and UI."""

from __future__ import annotations

import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from datadrive.errors import AuthenticationError, DatadriveError, RateLimitError
from datadrive.lake import LakeConfig, load_config
from datadrive.service.db import make_engine, migrate, session_factory
from datadrive.service.errors import error_body, status_of
from datadrive.service.gateway import LakeGateway
from datadrive.service.jobs.runner import Dispatcher
from datadrive.service.ops import Metrics, OpsMiddleware, log_event
from datadrive.service.ratelimit import RateLimiter
from datadrive.service.settings import ServiceSettings

__all__ = ["API_PREFIX", "Services", "create_app"]

API_PREFIX = "/api/v1"
_HERE = Path(__file__).parent
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


@dataclass
class Services:
    """What the endpoints share; one per app."""

    settings: ServiceSettings
    lake_config: LakeConfig
    engine: Engine
    sessions: sessionmaker[Session]
    gateway: LakeGateway
    limiter: RateLimiter
    metrics: Metrics
    dispatcher: Dispatcher


def create_app(settings: ServiceSettings, lake_config: LakeConfig | None = None) -> FastAPI:
    """The service as an ASGI app.

    Migrates the metadata database to the latest schema, and (unless
    ``settings.start_workers`` is off) starts the job dispatcher with the
    app and stops it with the app.

    Args:
        settings: The service's settings.
        lake_config: The lake's configuration (read from ``settings.lake`` if not given).
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    config = lake_config or load_config(settings.lake, env=settings.env)
    migrate(settings.db_url)
    engine = make_engine(settings.db_url)
    sessions = session_factory(engine)
    dispatcher = Dispatcher(
        sessions,
        settings.db_url,
        {
            "lake": str(settings.lake),
            "data_dir": str(settings.data_dir),
            "env": dict(settings.env),
            "maps_dir": str(settings.maps_dir) if settings.maps_dir else None,
            "max_scenarios": settings.max_sim_scenarios,
        },
        workers=settings.workers,
        max_attempts=settings.job_max_attempts,
        ray_address=settings.ray_address,
        ray_python=settings.ray_python,
    )
    services = Services(
        settings=settings,
        lake_config=config,
        engine=engine,
        sessions=sessions,
        gateway=LakeGateway(
            config, ttl_s=settings.snapshot_ttl_s, answers_bytes=settings.kept_answers_mb << 20
        ),
        limiter=RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst),
        metrics=Metrics(),
        dispatcher=dispatcher,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.start_workers:
            dispatcher.start()
        log_event("service.start", lake=config.name, regions=sorted(config.regions), runner=dispatcher.runner)
        try:
            yield
        finally:
            if settings.start_workers:
                dispatcher.stop()
            engine.dispose()
            log_event("service.stop")

    app = FastAPI(
        title="datadrive alliance service",
        version="1",
        summary="Multi-tenant access to a region-pinned driving-data lake: upload, browse, query, "
        "jobs, sharing, exports.",
        description=(
            "Authenticate with an API key (`Authorization: Bearer ddk.<id>.<secret>`). Every error has "
            'the body `{"error": {"status", "code", "message", "request_id"}}`. Lists are paginated with '
            "`limit` and `offset` and answer `{items, total, limit, offset, next_offset}`."
        ),
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; the UI serves its own API page
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
        lifespan=lifespan,
    )
    app.state.services = services
    _handlers(app)

    from datadrive.service.api import (
        assistant,
        identity,
        jobs,
        lake,
        learning,
        mining,
        objects,
        ops,
        sim,
        uploads,
    )
    from datadrive.service.ui import assistant as assistant_pages
    from datadrive.service.ui import learning as learning_pages
    from datadrive.service.ui import pages
    from datadrive.service.ui import simulation as sim_pages
    from datadrive.service.ui.mining import router as mining_pages_router

    for module in (identity, lake, uploads, jobs, objects, mining, sim, learning, assistant):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(ops.router)
    app.include_router(sim_pages.router)  # these two before the pages' catch-all /{layer}
    app.include_router(learning_pages.router)
    app.include_router(assistant_pages.router)
    app.include_router(mining_pages_router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=_HERE / "ui" / "static"), name="static")

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["authorization", "content-type", "x-request-id"],
        )
    app.add_middleware(
        OpsMiddleware,
        metrics=services.metrics,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.max_upload_bytes,
        upload_prefix=f"{API_PREFIX}/uploads",
        secure_cookies=settings.secure_cookies,
    )
    return app


def _rid(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith(API_PREFIX) and "text/html" in request.headers.get("accept", "")


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(DatadriveError)
    async def datadrive_error(request: Request, exc: DatadriveError) -> Response:
        status, code = status_of(exc)
        if isinstance(exc, AuthenticationError) and _wants_html(request):
            return RedirectResponse(f"/signin?next={request.url.path}", status_code=303)
        headers: dict[str, str] = {}
        if isinstance(exc, AuthenticationError):
            headers["www-authenticate"] = "Bearer"
        if isinstance(exc, RateLimitError):
            headers["retry-after"] = str(max(1, int(exc.retry_after_s + 0.999)))
        if _wants_html(request):
            from datadrive.service.ui.pages import error_page

            return error_page(request, status, str(exc))
        return JSONResponse(error_body(status, code, str(exc), _rid(request)), status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404:
            message = "no such endpoint" if "Not Found" in message else message
        return JSONResponse(
            error_body(exc.status_code, code, message, _rid(request)),
            exc.status_code,
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        details: list[dict[str, Any]] = [
            {
                "loc": [str(x) for x in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()[:20]
        ]
        message = "invalid request"
        if details:
            loc, msg = ".".join(details[0]["loc"]), str(details[0]["msg"])
            message = f"{loc}: {msg}" if loc else msg
        return JSONResponse(error_body(422, "invalid_request", message, _rid(request), details), 422)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        log_event(
            "internal_error", request_id=_rid(request), error=repr(exc), trace=traceback.format_exc()[-3000:]
        )
        return JSONResponse(
            error_body(
                500, "internal", "internal error; the request id is in the service's log", _rid(request)
            ),
            500,
        )
