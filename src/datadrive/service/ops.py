"""Operations: request ids, structured logs, Prometheus metrics, security headers, body limits.

One pure ASGI middleware does all of it per request, so every response
(errors included, static files included) gets the same headers and the same
log line::

    {"event": "request", "request_id": "...", "method": "GET", "route": "/api/v1/jobs/{job_id}",
     "status": 200, "ms": 3.1, "tenant": "bmw", "user": "ana",
     "stages": {"auth": 0.4, "snapshot": 0.1, "lake": 2.2, "encode": 0.1}}

``stages`` says where the request's time went (ms, the blocks timed with
:func:`stage`: authentication, the gateway's snapshot check, the library
call, turning rows into the response's JSON); the rest of ``ms`` is the
HTTP framework, the thread-pool hops and this middleware.

Metrics are labelled by route template, never by raw path, so their
cardinality stays bounded.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.routing import Mount

from datadrive.service.errors import error_body

__all__ = [
    "CSP",
    "LOG",
    "Metrics",
    "OpsMiddleware",
    "freeze_startup_heap",
    "log_event",
    "route_template",
    "stage",
]

LOG = logging.getLogger("datadrive.service")

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
"""Content-Security-Policy: everything served by the app itself, no inline scripts, no CDN."""

_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"content-security-policy", CSP.encode()),
    (b"cache-control", b"no-store"),
]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)}")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


_STAGES: ContextVar[dict[str, float] | None] = ContextVar("datadrive_service_stages", default=None)
"""The current request's stage times (ms); the middleware sets a fresh dict per request.

Starlette runs sync endpoints and dependencies in worker threads with a
copy of this context, so the dict they add to is the request's own.
"""


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Add the time spent in the block to the current request's ``name`` stage (its log line's ``stages``).

    Outside a request (a job, a test calling a function directly) it only runs the block.
    """
    stages = _STAGES.get()
    if stages is None:
        yield
        return
    t0 = time.perf_counter()
    try:
        yield
    finally:
        stages[name] = stages.get(name, 0.0) + (time.perf_counter() - t0) * 1000.0


_READ_PATH_MODULES = (
    "duckdb",
    "deltalake",
    "numpy",
    "pyarrow.compute",
    "pyarrow.parquet",
    "datadrive.lake.sql",
    "datadrive.mining",
    "datadrive.service.mining",
)
"""Modules the first lake reads would import: imported by :func:`freeze_startup_heap` instead."""


def freeze_startup_heap() -> int:
    """Take what the server's start-up built out of the garbage collector's walks; the objects moved.

    A full (generation 2) collection walks every object the collector
    tracks, and stops every thread meanwhile. A started service holds about
    140k of them (its imports, FastAPI's routes and models) that live as
    long as the process: in ``benchmarks/service.py`` each full collection
    paused all requests for 87-271 ms (measured with a probe in the server,
    at load 10) and made the slowest 1% of requests. Called once, after the
    app is built and before it serves: the read path's modules are imported
    now (rather than by the first requests, which would leave them in the
    walks), then one collection, then :func:`gc.freeze` moves the survivors
    into the permanent generation, which later collections skip. Only
    cycles among these start-up objects are never collected; reference
    counting still frees everything else as before. A process-wide act: the
    ``serve`` command calls it, the app never does (tests build many apps in
    one process).
    """
    import gc
    import importlib

    for name in _READ_PATH_MODULES:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def log_event(event: str, **fields: Any) -> None:
    """One structured (JSON) log line."""
    LOG.info(json.dumps({"event": event, **fields}, default=str, separators=(",", ":")))


class Metrics:
    """The app's Prometheus metrics, in a registry of its own (two apps in one process do not clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "datadrive_http_requests_total",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "datadrive_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.jobs = Gauge("datadrive_jobs", "Jobs by status.", ["status"], registry=self.registry)
        self.rate_limited = Counter(
            "datadrive_rate_limited_total", "Requests refused by the rate limiter.", registry=self.registry
        )


class OpsMiddleware:
    """Request id, timing, log line, metrics, security headers and the request-body limit.

    Args:
        app: The wrapped ASGI app.
        metrics: Where to count.
        max_body_bytes: Body limit for every route but uploads.
        max_upload_bytes: Body limit for ``upload_prefix`` routes.
        upload_prefix: Path prefix of the upload endpoints.
        secure_cookies: Whether to add HSTS (behind HTTPS).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        max_body_bytes: int,
        max_upload_bytes: int,
        upload_prefix: str,
        secure_cookies: bool,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.upload_prefix = upload_prefix
        self.headers = list(_HEADERS)
        if secure_cookies:
            self.headers.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stages: dict[str, float] = {}
        token = _STAGES.set(stages)  # this request's (and the worker threads it hands work to) only
        try:
            await self._handle(scope, receive, send, stages)
        finally:
            _STAGES.reset(token)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, stages: dict[str, float]) -> None:
        t0 = time.perf_counter()
        incoming = _header(scope, b"x-request-id")
        rid = incoming if incoming and _REQUEST_ID.match(incoming) else secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = rid
        path: str = scope.get("path", "")
        limit = self.max_upload_bytes if path.startswith(self.upload_prefix) else self.max_body_bytes
        status_holder = {"status": 500, "started": False}

        async def send_wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {h for h, _ in self.headers}
                ]
                headers += self.headers
                if path.startswith("/static/"):  # files that never change within a release
                    headers = [(k, v) for k, v in headers if k != b"cache-control"]
                    headers.append((b"cache-control", b"public, max-age=3600"))
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(send_wrapped, rid, limit)
            self._finish(scope, status_holder["status"], t0, rid, stages)
            return
        received = 0
        too_large = False

        async def receive_limited() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _BodyTooLargeError
            return message

        try:
            await self.app(scope, receive_limited, send_wrapped)
        except _BodyTooLargeError:
            if not status_holder["started"]:
                await _too_large(send_wrapped, rid, limit)
        self._finish(scope, status_holder["status"], t0, rid, stages)

    def _finish(self, scope: Scope, status: int, t0: float, rid: str, stages: dict[str, float]) -> None:
        seconds = time.perf_counter() - t0
        template = route_template(scope)
        method = scope.get("method", "")
        self.metrics.requests.labels(method, template, str(status)).inc()
        self.metrics.latency.labels(method, template).observe(seconds)
        if status == 429:
            self.metrics.rate_limited.inc()
        caller = scope.get("state", {}).get("caller")
        log_event(
            "request",
            request_id=rid,
            method=method,
            route=template,
            status=status,
            ms=round(seconds * 1000, 2),
            tenant=getattr(caller, "tenant", None),
            user=getattr(caller, "user", None),
            stages={k: round(v, 2) for k, v in stages.items()},
        )


def route_template(scope: Scope) -> str:
    """The template of the route that served ``scope`` (``/api/v1/jobs/{job_id}``), as the client sent it.

    The matched route knows its template relative to the router it was
    declared on (``/jobs/{job_id}``); the prefixes it was included under
    (``/api/v1``) are what the request's path has before the route's part,
    which is the template with the matched parameters filled in. Requests
    no route matched are ``unmatched`` (their paths would make the label set
    unbounded); static files are ``/static``.
    """
    path = str(scope.get("path", ""))
    route = scope.get("route")
    fmt = getattr(route, "path_format", None)
    if not isinstance(fmt, str):
        return "/static" if path.startswith("/static/") else "unmatched"
    if isinstance(route, Mount):  # static files: one label for the mount, not one per file
        return str(route.path) or "/"
    params = scope.get("path_params") or {}
    rendered = _PARAM.sub(lambda m: str(params.get(m.group(1), m.group(0))), fmt)
    if path.endswith(rendered):
        return path[: len(path) - len(rendered)] + fmt
    return fmt  # a path the client escaped differently: the route's own part still names it


class _BodyTooLargeError(Exception):
    pass


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", []):
        if k.lower() == name:
            return str(v.decode("latin-1"))
    return None


async def _too_large(send: Send, rid: str, limit: int) -> None:
    body = json.dumps(
        error_body(413, "too_large", f"the request body is larger than the limit of {limit} bytes", rid)
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
