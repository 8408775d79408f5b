"""CSRF protection of the UI: every state-changing request of a signed-in browser needs the session's token.

The sign-in form carries a token bound to a cookie set with the form
(double submit); once signed in, the session has its own token, which the
pages put in their forms (sign-out) and in a ``<meta>`` the scripts send as
``X-CSRF-Token``. Each check below posts without the token, with a wrong
one, and with the right one, and looks at what changed, not only at the
status code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from service_helpers import PASSWORD, Env
from sqlalchemy import func, select

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@pytest.fixture
def browser(env: Env) -> Iterator[TestClient]:
    """A client of its own (its cookie jar is a browser's), not the API-key client the other tests share."""
    with TestClient(env.app, base_url="http://testserver", follow_redirects=False) as client:
        yield client


def _signin_form(client) -> str:
    page = client.get("/signin")
    assert page.status_code == 200
    found = _TOKEN.search(page.text)
    assert found is not None
    return found.group(1)


def _sign_in(client: TestClient) -> str:
    """Sign in as bmw's engineer; returns the session's CSRF token (from a page's meta tag)."""
    token = _signin_form(client)
    resp = client.post(
        "/signin", data={"tenant": "bmw", "user": "eng", "password": PASSWORD, "csrf_token": token}
    )
    assert resp.status_code == 303, resp.text
    page = client.get("/lake")
    assert page.status_code == 200
    meta = _META.search(page.text)
    assert meta is not None
    return meta.group(1)


def _sessions(env: Env) -> int:
    from datadrive.service.db import UiSession

    with env.app.state.services.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(UiSession)) or 0)


def test_signin_needs_the_forms_token(env: Env, browser: TestClient) -> None:
    token = _signin_form(browser)
    before = _sessions(env)
    creds = {"tenant": "bmw", "user": "eng", "password": PASSWORD}
    missing = browser.post("/signin", data=creds)
    assert missing.status_code == 422
    wrong = browser.post("/signin", data={**creds, "csrf_token": "x" + token[1:]})
    assert wrong.status_code == 403
    assert "sign-in form expired" in wrong.json()["error"]["message"]
    # a token from another browser's form (another cookie) is as wrong as a made-up one
    with TestClient(env.app, base_url="http://testserver", follow_redirects=False) as other:
        foreign = _signin_form(other)
    assert browser.post("/signin", data={**creds, "csrf_token": foreign}).status_code == 403
    assert "dd_session" not in browser.cookies
    assert _sessions(env) == before  # no session was made by the refused posts
    ok = browser.post("/signin", data={**creds, "csrf_token": token})
    assert ok.status_code == 303
    assert ok.headers["location"] == "/"
    assert "dd_session" in browser.cookies
    assert _sessions(env) == before + 1


def test_signed_in_api_posts_need_the_sessions_token(env: Env, browser: TestClient) -> None:
    from datadrive.service.db import ApiKey

    csrf = _sign_in(browser)

    def keys() -> int:
        with env.app.state.services.sessions() as db:
            return int(db.scalar(select(func.count()).select_from(ApiKey)) or 0)

    before = keys()
    body = {"name": "from the browser", "scopes": ["read"]}
    missing = browser.post("/api/v1/keys", json=body)
    assert missing.status_code == 403
    assert "CSRF" in missing.json()["error"]["message"]
    wrong = browser.post("/api/v1/keys", json=body, headers={"X-CSRF-Token": csrf[::-1]})
    assert wrong.status_code == 403
    assert keys() == before
    # the session still reads without a token: only changes need one
    assert browser.get("/api/v1/me").json()["user"] == "eng"
    made = browser.post("/api/v1/keys", json=body, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    assert keys() == before + 1
    # DELETE is a change too
    key_id = made.json()["id"]
    assert browser.delete(f"/api/v1/keys/{key_id}").status_code == 403
    assert browser.delete(f"/api/v1/keys/{key_id}", headers={"X-CSRF-Token": csrf}).status_code == 200


def test_signout_form_needs_the_sessions_token(env: Env, browser: TestClient) -> None:
    csrf = _sign_in(browser)
    before = _sessions(env)
    assert browser.post("/signout").status_code == 403
    assert browser.post("/signout", data={"csrf_token": "nope"}).status_code == 403
    assert _sessions(env) == before
    assert browser.get("/api/v1/me").status_code == 200  # still signed in
    out = browser.post("/signout", data={"csrf_token": csrf})
    assert out.status_code == 303
    assert _sessions(env) == before - 1
    assert browser.get("/api/v1/me").status_code == 401


def test_a_refused_ui_post_shows_an_error_page(env: Env, browser: TestClient) -> None:
    _sign_in(browser)
    page = browser.post("/signout", data={"csrf_token": "nope"}, headers={"Accept": "text/html"})
    assert page.status_code == 403
    assert "CSRF" in page.text
    assert page.headers["content-type"].startswith("text/html")
