"""The web UI: server-rendered pages (Jinja2) over the same functions the API serves.

Pages are rendered on the server from the library's answers; small scripts
(``static/*.js``, no build step, nothing from a CDN) draw charts and the
bird's-eye viewer from the JSON endpoints. Forms carry the session's CSRF
token; the scripts send it as ``X-CSRF-Token``.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from datadrive.errors import AuthenticationError, DatadriveError, PermissionDeniedError
from datadrive.service.api import identity as identity_api
from datadrive.service.api import jobs as jobs_api
from datadrive.service.api import lake as lake_api
from datadrive.service.api import objects as objects_api
from datadrive.service.api.deps import SESSION_COOKIE, DbDep, Page, ServicesDep, caller_of, services
from datadrive.service.api.sim import sim_options
from datadrive.service.db import Tenant, User
from datadrive.service.identity import Caller, check_password, create_session, end_session, record

__all__ = [
    "api_page",
    "audit_page",
    "error_page",
    "home",
    "job_page",
    "jobs_page",
    "keys_page",
    "lake_page",
    "layer_page",
    "render",
    "report_page",
    "scenario_page",
    "scenarios_page",
    "sharing_page",
    "signin",
    "signin_form",
    "signout",
    "sql_page",
]

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
_PRE_CSRF = "dd_signin_csrf"

LAYERS = (
    (
        "mining",
        "Mining",
        "datadrive.mining",
        "Event tags and queries over the lake: an expression or a description, hits with thumbnails.",
    ),
    (
        "datasets",
        "Datasets",
        "datadrive.curate",
        "Curated, versioned datasets with splits by log, built as jobs.",
    ),
    ("runs", "Runs", "datadrive.train", "Training and evaluation runs: loss curves, metric tables, reports."),
    ("simulation", "Simulation", "datadrive.sim", "Closed-loop simulation and a synthetic fleet."),
    ("assistant", "Assistant", "datadrive.assistant", "The in-car assistant, as a chat over your drives."),
)
"""Pages of the layers above the lake, in the navigation; a layer not installed has a greyed entry and a
page saying so (``/simulation`` has its own pages in ``ui/simulation.py``, matched before these)."""


def _layer_ready(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def render(
    request: Request, template: str, caller: Caller | None, status: int = 200, **ctx: Any
) -> HTMLResponse:
    svc = services(request)
    nav_layers = [(slug, title, _layer_ready(mod)) for slug, title, mod, _ in LAYERS]
    return templates.TemplateResponse(
        request,
        template,
        {
            "caller": caller,
            "regions": sorted(svc.lake_config.regions),
            "lake_name": svc.lake_config.name,
            "nav_layers": nav_layers,
            "path": request.url.path,
            **ctx,
        },
        status_code=status,
    )


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(
        request,
        "error.html",
        request.scope.get("state", {}).get("caller"),
        status,
        status_code=status,
        message=message,
    )


def _caller(request: Request, db: DbDep) -> Caller:
    return caller_of(request, db)


def _region(request: Request, caller: Caller, region: str | None) -> str:
    svc = services(request)
    if region:
        return svc.gateway.region(region)
    if caller.home_region in svc.lake_config.regions:
        return caller.home_region
    return sorted(svc.lake_config.regions)[0]


# --------------------------------------------------------------------------- sign-in


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request, next: str = "/") -> Response:
    token = secrets.token_urlsafe(24)
    resp = render(
        request,
        "signin.html",
        None,
        csrf=token,
        next=next if next.startswith("/") and not next.startswith("//") else "/",
        error=None,
    )
    resp.set_cookie(
        _PRE_CSRF,
        token,
        httponly=True,
        samesite="strict",
        secure=services(request).settings.secure_cookies,
        max_age=3600,
    )
    return resp


@router.post("/signin", response_class=HTMLResponse)
def signin(
    request: Request,
    db: DbDep,
    svc: ServicesDep,
    tenant: Annotated[str, Form(max_length=63)],
    user: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=200)],
    csrf_token: Annotated[str, Form(max_length=100)],
    next: Annotated[str, Form(max_length=300)] = "/",
) -> Response:
    pre = request.cookies.get(_PRE_CSRF, "")
    if not pre or not hmac.compare_digest(pre, csrf_token):
        raise PermissionDeniedError("the sign-in form expired; reload it and try again")
    svc.limiter.admit(f"signin:{request.client.host if request.client else '-'}")
    row = db.scalar(select(User).where(User.tenant_id == tenant, User.name == user))
    ok = row is not None and not row.disabled and check_password(password, row.password_hash)
    if row is None:
        check_password(password, None)
    record(
        db,
        actor=f"{user}@{tenant}",
        tenant=tenant if db.get(Tenant, tenant) else None,
        action="signin",
        obj=user,
        outcome="ok" if ok else "refused",
    )
    db.commit()
    if not ok or row is None:
        token = secrets.token_urlsafe(24)
        resp = render(
            request,
            "signin.html",
            None,
            401,
            csrf=token,
            next=next,
            error="Unknown tenant, user or password.",
        )
        resp.set_cookie(
            _PRE_CSRF, token, httponly=True, samesite="strict", secure=svc.settings.secure_cookies
        )
        return resp
    cookie, _ = create_session(db, row, svc.settings.session_ttl_s)
    db.commit()
    dest = next if next.startswith("/") and not next.startswith("//") else "/"
    done = RedirectResponse(dest, status_code=303)
    done.set_cookie(
        SESSION_COOKIE,
        cookie,
        httponly=True,
        samesite="lax",
        secure=svc.settings.secure_cookies,
        max_age=svc.settings.session_ttl_s,
    )
    done.delete_cookie(_PRE_CSRF)
    return done


@router.post("/signout")
def signout(request: Request, db: DbDep, csrf_token: Annotated[str, Form(max_length=100)] = "") -> Response:
    caller_of(request, db, csrf_form=csrf_token)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        end_session(db, cookie)
        db.commit()
    resp = RedirectResponse("/signin", status_code=303)
    resp.delete_cookie(SESSION_COOKIE)
    return resp


# --------------------------------------------------------------------------- lake


@router.get("/", response_class=HTMLResponse)
def home(request: Request, db: DbDep) -> Response:
    _caller(request, db)
    return RedirectResponse("/lake", status_code=303)


@router.get("/lake", response_class=HTMLResponse)
def lake_page(request: Request, db: DbDep, svc: ServicesDep, region: str | None = None) -> Response:
    caller = _caller(request, db)
    r = _region(request, caller, region)
    regions = lake_api.regions(caller, svc)
    try:
        overview = lake_api.overview(r, caller, svc)
        refused = None
    except DatadriveError as exc:
        overview, refused = None, str(exc)
    return render(
        request, "lake.html", caller, region=r, region_info=regions, overview=overview, refused=refused
    )


_SORTS = {
    "scenario_id": "id",
    "-num_tracks": "most tracks",
    "-duration_s": "longest",
    "-ingest_date": "newest",
}


@router.get("/scenarios", response_class=HTMLResponse)
def scenarios_page(
    request: Request,
    db: DbDep,
    svc: ServicesDep,
    region: str | None = None,
    source: str | None = None,
    q: str | None = None,
    min_tracks: str | None = None,
    sort: str = "scenario_id",
    view: str = "grid",
    offset: int = 0,
) -> Response:
    caller = _caller(request, db)
    r = _region(request, caller, region)
    view = "table" if view == "table" else "grid"
    page = Page(100 if view == "table" else 48, max(0, min(offset, 10_000_000)))
    sort = sort if sort in _SORTS else "scenario_id"
    least = int(min_tracks) if min_tracks and min_tracks.isdigit() else None
    sources: list[dict[str, Any]] = []
    thumbs: dict[str, str] = {}
    try:
        listing = lake_api.scenario_page(
            r,
            caller,
            svc,
            page,
            source=source or None,
            q=(q or None) and q[:200],
            min_tracks=least,
            sort=sort,  # checked against _SORTS above
        )
        sources = lake_api.overview(r, caller, svc)["by_source"]
        svgs = lake_api.thumbnails(svc, caller, r, [row["scenario_id"] for row in listing["items"]])
        thumbs = {
            sid: "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
            for sid, svg in svgs.items()
        }
        refused = None
    except DatadriveError as exc:
        if isinstance(exc, AuthenticationError):
            raise
        listing, refused = None, str(exc)
    return render(
        request,
        "scenarios.html",
        caller,
        region=r,
        listing=listing,
        sources=sources,
        source=source or "",
        q=q or "",
        min_tracks=least,
        sort=sort,
        sorts=_SORTS,
        view=view,
        thumbs=thumbs,
        refused=refused,
    )


@router.get("/scenarios/{region}/{scenario_id:path}", response_class=HTMLResponse)
def scenario_page(request: Request, region: str, scenario_id: str, db: DbDep, svc: ServicesDep) -> Response:
    caller = _caller(request, db)
    row = lake_api.scenario_row(region, scenario_id, caller, svc)
    return render(
        request,
        "scenario.html",
        caller,
        region=region,
        scenario=row,
        mining_ready=_layer_ready("datadrive.mining"),
    )


@router.get("/sql", response_class=HTMLResponse)
def sql_page(request: Request, db: DbDep, region: str | None = None) -> Response:
    caller = _caller(request, db)
    timeout_s = services(request).settings.sql_timeout_s
    return render(request, "sql.html", caller, region=_region(request, caller, region), timeout_s=timeout_s)


# --------------------------------------------------------------------------- jobs, sharing, audit


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, db: DbDep, svc: ServicesDep, status: str = "", offset: int = 0) -> Response:
    caller = _caller(request, db)
    wanted = status if status in ("queued", "running", "succeeded", "failed", "cancelled") else None
    listing = jobs_api.list_jobs(caller, db, Page(50, max(0, offset)), status=wanted, kind=None)  # type: ignore[arg-type]
    users = dict(db.execute(select(User.id, User.name).where(User.tenant_id == caller.tenant)).all())
    return render(
        request,
        "jobs.html",
        caller,
        listing=listing,
        status_filter=wanted or "",
        users=users,
        sim=sim_options(caller, svc),
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str, db: DbDep) -> Response:
    caller = _caller(request, db)
    job = jobs_api.get_job(job_id, caller, db)
    return render(request, "job.html", caller, job=job)


@router.get("/sharing", response_class=HTMLResponse)
def sharing_page(request: Request, db: DbDep, svc: ServicesDep) -> Response:
    caller = _caller(request, db)
    objects = objects_api.list_objects(caller, db, svc, Page(200, 0), type=None, scope="all")
    grants = objects_api.list_grants(caller, db, svc, Page(200, 0), direction="all", active=True)
    tenants = [t for t in identity_api.tenants(caller, db) if t.id != caller.tenant]
    return render(request, "sharing.html", caller, objects=objects, grants=grants, tenants=tenants)


@router.get("/reports/{object_id}", response_class=HTMLResponse)
def report_page(request: Request, object_id: str, db: DbDep, svc: ServicesDep) -> Response:
    caller = _caller(request, db)
    try:
        rep = objects_api.report(object_id, caller, db, svc)
        refused = None
    except DatadriveError as exc:
        if isinstance(exc, AuthenticationError):
            raise
        rep, refused = objects_api.get_object(object_id, caller, db, svc), str(exc)
    return render(request, "report.html", caller, report=rep, refused=refused)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    db: DbDep,
    svc: ServicesDep,
    region: str | None = None,
    action: str | None = None,
    offset: int = 0,
) -> Response:
    caller = _caller(request, db)
    r = _region(request, caller, region)
    try:
        trail = lake_api.audit(r, caller, svc, Page(100, max(0, offset)), action=action or None, outcome=None)
        refused = None
    except DatadriveError as exc:
        if isinstance(exc, AuthenticationError):
            raise
        trail, refused = None, str(exc)
    events = None
    if caller.can("admin"):
        events = identity_api.identity_events(caller, db, Page(50, 0), action=None)
    return render(
        request,
        "audit.html",
        caller,
        region=r,
        trail=trail,
        refused=refused,
        events=events,
        action=action or "",
    )


@router.get("/keys", response_class=HTMLResponse)
def keys_page(request: Request, db: DbDep) -> Response:
    caller = _caller(request, db)
    keys = identity_api.list_keys(caller, db, Page(100, 0), active=None)
    users = dict(db.execute(select(User.id, User.name).where(User.tenant_id == caller.tenant)).all())
    return render(request, "keys.html", caller, keys=keys, users=users)


@router.get("/api", response_class=HTMLResponse)
def api_page(request: Request, db: DbDep) -> Response:
    caller = _caller(request, db)
    schema = request.app.openapi()
    ops = []
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            ops.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "tag": (op.get("tags") or ["other"])[0],
                    "params": [p["name"] for p in op.get("parameters", [])],
                }
            )
    ops.sort(key=lambda o: (o["tag"], o["path"], o["method"]))
    return render(request, "api.html", caller, ops=ops)


@router.get("/{layer}", response_class=HTMLResponse)
def layer_page(request: Request, layer: str, db: DbDep) -> Response:
    caller = _caller(request, db)
    for slug, title, module, what in LAYERS:
        if slug == layer:
            return render(request, "pending.html", caller, title=title, module=module, what=what)
    return render(request, "error.html", caller, 404, status_code=404, message="no such page")
