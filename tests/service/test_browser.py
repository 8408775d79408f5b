"""The web UI driven by headless Chromium (Debian's ``/usr/bin/chromium`` through Playwright).

A real server (uvicorn on 127.0.0.1, a free port, its job workers on) serves
the app over the test lake on SQLite; the browser signs in, reads the lake
overview, browses and plays a scenario (the viewer's canvas must change
between frames), runs SQL, starts a simulation from its form and plays a
rollout, tags the region and mines it in plain English, and saves a
screenshot of each page. Any script error or Content-Security-Policy
violation in the console fails the test.

Screenshots go to the test's temporary folder, and also to
``$DATADRIVE_UI_SCREENSHOTS`` when that is set (how ``docs/img`` is refreshed).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from service_helpers import PASSWORD, make_app, populate

from services import LOOPBACK, free_ports, missing, wait_until

CHROMIUM = Path("/usr/bin/chromium")
# Chromium must not reach out: no background networking, updates, sync, metrics or safe browsing.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--no-first-run",
    "--no-default-browser-check",
    "--safebrowsing-disable-auto-update",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
]

pytestmark = [pytest.mark.service, pytest.mark.slow]


@dataclass
class Server:
    url: str
    app: Any
    shots: Path


@pytest.fixture(scope="module")
def server(lake_dir: Path, samples: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The service on 127.0.0.1 with its dispatcher running (uvicorn in a thread, stopped at the end)."""
    import uvicorn

    data = tmp_path_factory.mktemp("browser")
    app = make_app(
        lake_dir,
        data,
        f"sqlite:///{data / 'service.db'}",
        start_workers=True,
        maps_dir=samples / "lanelet2_map",
        rate_limit_per_minute=0,
    )
    populate(app)
    port = free_ports(1)[0]
    config = uvicorn.Config(
        app, host=LOOPBACK, port=port, log_level="warning", access_log=False, lifespan="on"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, name="uvicorn", daemon=True)
    thread.start()
    wait_until(lambda: srv.started, "the service", 60)
    shots = tmp_path_factory.mktemp("screenshots")
    try:
        yield Server(f"http://{LOOPBACK}:{port}", app, shots)
    finally:
        srv.should_exit = True
        thread.join(30)
        extra = os.environ.get("DATADRIVE_UI_SCREENSHOTS")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            for png in shots.glob("*.png"):
                shutil.copy(png, Path(extra) / png.name)


@pytest.fixture(scope="module")
def page(server: Server) -> Iterator[Any]:
    """One browser page (1440 x 900), its console watched for errors."""
    if not CHROMIUM.exists():
        missing("Debian's chromium (/usr/bin/chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
        pg = context.new_page()
        pg.set_default_timeout(30_000)
        errors: list[str] = []
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.console_errors = errors
        try:
            yield pg
        finally:
            context.close()
            browser.close()


def _sign_in(page: Any, server: Server) -> None:
    page.goto(f"{server.url}/signin?next=/lake")
    page.fill("input[name=tenant]", "bmw")
    page.fill("input[name=user]", "ana")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/lake")


@pytest.fixture
def signed_in(page: Any, server: Server) -> Any:
    """The module's page, signed in as ana@bmw (signing in only when it is not), its console clean.

    Each test asks for it, so any one of them runs alone or in any order;
    signing in once per module keeps the module fast.
    """
    from datadrive.service.api.deps import SESSION_COOKIE

    page.console_errors.clear()
    if not any(c["name"] == SESSION_COOKIE for c in page.context.cookies()):
        _sign_in(page, server)
        assert page.inner_text(".who .pill") == "bmw"
    page.console_errors.clear()
    return page


def _shot(page: Any, server: Server, name: str, full: bool = False) -> Path:
    path = server.shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=full)
    assert path.stat().st_size > 5_000  # a picture, not a blank
    return path


def _clean_console(page: Any) -> None:
    errors = list(page.console_errors)
    page.console_errors.clear()
    assert not errors, errors


def _wait(page: Any, predicate: str, timeout_s: float = 30.0) -> None:
    """Poll ``predicate`` (a JS arrow function) until it is truthy.

    Playwright's ``wait_for_function`` builds its predicate with ``eval`` in
    the page, which the app's Content-Security-Policy forbids (as it should);
    ``evaluate`` does not, so the polling is done from here.
    """
    wait_until(lambda: page.evaluate(predicate), predicate, timeout_s)


def _canvas(page: Any, host: str = "[data-viewer]") -> str:
    return str(page.eval_on_selector(f"{host} canvas.bev", "c => c.toDataURL('image/png')"))


def test_sign_in(page: Any, server: Server) -> None:
    page.context.clear_cookies()  # signed out, whatever ran before
    page.console_errors.clear()
    page.goto(f"{server.url}/lake")
    assert page.url.endswith("/signin?next=/lake")
    _shot(page, server, "signin")
    page.fill("input[name=tenant]", "bmw")
    page.fill("input[name=user]", "ana")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    assert "Unknown tenant, user or password" in page.inner_text("form.signin")
    assert page.console_errors == [
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ]
    page.console_errors.clear()
    page.fill("input[name=tenant]", "bmw")
    page.fill("input[name=user]", "ana")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/lake")
    assert page.inner_text(".who .pill") == "bmw"
    _clean_console(page)


def test_lake_overview(signed_in: Any, server: Server) -> None:
    page = signed_in
    page.goto(f"{server.url}/lake?region=eu-central")
    page.wait_for_selector(".chart svg rect")
    stats = page.inner_text(".stats")
    sql = server.app.state.services.gateway.snapshot(_principal(), "eu-central").sql(
        "SELECT count(*) AS n FROM scenarios WHERE telemetry_id IS NULL"
    )
    assert f"{sql.table.column('n')[0].as_py():,}\nscenarios" in stats
    _shot(page, server, "lake")
    page.goto(
        f"{server.url}/lake?region=cn-north"
    )  # bmw's home is eu-central: cn-north's raw rows stay there
    assert "Not readable from your home region" in page.inner_text("main")
    _clean_console(page)


def _principal() -> Any:
    from datadrive.lake import Principal

    return Principal("ana@bmw", "bmw", "eu-central")


def test_browse_and_play_a_scenario(signed_in: Any, server: Server) -> None:
    page = signed_in
    page.goto(f"{server.url}/scenarios?region=eu-central")
    tiles = page.locator("a.tile").count()
    assert tiles >= 2
    _wait(
        page,
        "() => [...document.querySelectorAll('a.tile img')].every(i => i.complete && i.naturalWidth > 0)",
    )
    _shot(page, server, "scenarios")
    page.goto(f"{server.url}/scenarios?region=eu-central&view=table&sort=-num_tracks")
    assert page.locator("table.dense tbody tr").count() == tiles
    first = page.locator("table.dense tbody tr a").first
    sid = first.inner_text()
    first.click()
    page.wait_for_selector("[data-viewer][data-ready='1']")
    assert sid in page.inner_text("h1")
    before = _canvas(page)
    assert page.get_attribute("[data-viewer]", "data-step") == "0"
    page.click("[data-viewer] .play")
    _wait(page, "() => Number(document.querySelector('[data-viewer]').dataset.step) >= 15", 20)
    page.click("[data-viewer] .play")  # pause
    step = int(page.get_attribute("[data-viewer]", "data-step"))
    assert _canvas(page) != before  # the agents moved
    page.keyboard.press("ArrowRight")
    assert int(page.get_attribute("[data-viewer]", "data-step")) == step + 1
    page.click("[data-viewer] .opt-ids")
    _shot(page, server, "scenario")
    _clean_console(page)


def test_sql_console(signed_in: Any, server: Server) -> None:
    page = signed_in
    page.goto(f"{server.url}/sql?region=eu-central")
    page.wait_for_selector("#sql-result table")
    page.wait_for_selector("#sql-schema details")
    page.fill(
        "#sql-query", "SELECT tenant, count(*) AS n FROM scenarios WHERE telemetry_id IS NULL GROUP BY 1"
    )
    page.click("#sql-form button[type=submit]")
    _wait(page, "() => document.querySelector('#sql-status').textContent.includes('1 rows')")
    n = server.app.state.services.gateway.snapshot(_principal(), "eu-central").sql(
        "SELECT count(*) AS n FROM scenarios WHERE telemetry_id IS NULL"
    )
    cells = page.locator("#sql-result tbody td").all_inner_texts()
    assert cells == ["bmw", str(n.table.column("n")[0].as_py())]
    page.fill("#sql-query", "DELETE FROM scenarios")
    page.click("#sql-form button[type=submit]")
    _wait(page, "() => document.querySelector('#sql-status').classList.contains('error')")
    assert "read-only" in page.inner_text("#sql-status")
    _shot(page, server, "sql")
    page.console_errors.clear()  # the refused query's 403 is logged by the browser, as it should be


def test_simulate_from_the_ui_and_play_a_rollout(signed_in: Any, server: Server) -> None:
    page = signed_in
    page.goto(f"{server.url}/simulation")
    form = page.locator("form[data-job=simulate]")
    form.locator("select[name=policy]").select_option("idm")
    # one scenario keeps the job short; the API tests simulate every AV2 scenario
    first = server.app.state.services.gateway.snapshot(_principal(), "eu-central").sql(
        "SELECT min(scenario_id) AS s FROM scenarios "
        "WHERE source = 'av2_motion_forecasting' AND num_steps = 110"
    )
    form.locator("input[name=query]").fill(f"scenario_id = '{first.table.column('s')[0].as_py()}'")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/jobs/job_*")
    page.wait_for_selector("#job-status.succeeded", timeout=150_000)
    _shot(page, server, "job")
    page.click("text=Open the simulation run")
    page.wait_for_selector(".chart svg rect", state="attached")  # (a score of 0 is a bar of width 0)
    _shot(page, server, "simulation-run", full=True)
    page.locator("a", has_text="play ▸").first.click()
    page.wait_for_selector("[data-viewer][data-ready='1']")
    _wait(page, "() => !document.querySelector('#rollout-scores .rollout').textContent.includes('…')")
    rollout = page.locator("#rollout-scores tr[data-metric=nuplan_cls] .rollout").inner_text()
    stored = page.locator("#rollout-scores tr[data-metric=nuplan_cls] .stored").inner_text()
    assert rollout == stored  # log-replay agents: the playback is the scored rollout
    before = _canvas(page)
    page.click("[data-viewer] .play")
    _wait(page, "() => Number(document.querySelector('[data-viewer]').dataset.step) >= 20", 20)
    page.click("[data-viewer] .play")
    assert _canvas(page) != before
    _shot(page, server, "rollout")
    page.goto(f"{server.url}/simulation")
    assert page.locator("table.dense tbody tr").count() >= 1
    _shot(page, server, "simulation")
    _clean_console(page)


def test_dataset_train_and_open_a_runs_report(signed_in: Any, server: Server) -> None:
    """A dataset from its form, a training run from its form, the run's page with its loss curve."""
    page = signed_in
    page.goto(f"{server.url}/datasets?region=eu-central")
    form = page.locator("form[data-job=dataset]")
    form.locator("input[name=name]").fill("ui-av2")
    form.locator("textarea[name=sql]").fill(
        "SELECT scenario_id FROM scenarios WHERE source = 'av2_motion_forecasting'"
    )
    form.locator("input[name=split]").fill("100")
    form.locator("button[type=submit]").click()
    _wait(
        page, "() => location.pathname.startsWith('/jobs/') || document.querySelector('.form-status.error')"
    )
    assert "/jobs/job_" in page.url, page.inner_text(".form-status")
    page.wait_for_selector("#job-status.succeeded", timeout=120_000)
    page.goto(f"{server.url}/runs?region=eu-central")
    form = page.locator("form[data-job=train]")
    form.locator("select[name=dataset]").select_option("ui-av2@v1")
    form.locator("select[name=model]").select_option("mlp")
    form.locator("input[name=epochs]").fill("1")
    form.locator("input[name=batch_size]").fill("4")
    form.locator("button[type=submit]").click()
    _wait(
        page, "() => location.pathname.startsWith('/jobs/') || document.querySelector('.form-status.error')"
    )
    assert "/jobs/job_" in page.url, page.inner_text(".form-status")
    page.wait_for_selector("#job-status.succeeded", timeout=240_000)
    page.goto(f"{server.url}/runs")
    page.locator("table.dense tbody a", has_text="ui-av2-mlp").first.click()
    page.wait_for_selector(".chart svg circle", state="attached")  # a point per epoch on the loss curve
    assert page.locator("table.dense tbody tr").count() >= 1  # a row per epoch in the history
    _shot(page, server, "run", full=True)
    _clean_console(page)


def test_ask_the_assistant(signed_in: Any, server: Server) -> None:
    """A trip question in the chat (bmw has no vehicle telemetry here; the API tests ask about one)."""
    page = signed_in
    page.goto(f"{server.url}/assistant?region=eu-central")
    page.fill("#question", "route from Kauppatori to Hakaniemi")
    page.click("#ask-form button[type=submit]")
    _wait(
        page,
        "() => !document.querySelector('.msg.pending') && document.querySelectorAll('.msg.bot').length >= 2",
        90,
    )
    answer = page.locator(".msg.bot .answer").last.inner_text()
    assert answer.startswith("Route Kauppatori → Hakaniemi"), answer
    assert "numbers checked against the data" in page.locator(".msg.bot .meta").last.inner_text()
    _shot(page, server, "assistant")
    _clean_console(page)


def test_mine_by_description_and_tag(signed_in: Any, server: Server) -> None:
    """Tag the region from the page (when not yet tagged), then search in plain English: hits, thumbnails."""
    page = signed_in
    from datadrive.mining import mine_snapshot

    page.goto(f"{server.url}/mining?region=eu-central")
    tag = page.locator("form[data-job=tag] button")
    if tag.count():  # the lake is shared with other test modules: it may be tagged already
        tag.click()
        page.wait_for_url("**/jobs/job_*")
        page.wait_for_selector("#job-status.succeeded", timeout=150_000)
        page.goto(f"{server.url}/mining?region=eu-central")
    summary = page.inner_text("#events-card")
    assert "scenarios tagged" in summary
    done, _, rest = summary.partition(" of ")
    assert done.split()[-1] == rest.split()[0]  # every scenario tagged
    page.check("input[name=mode][value=describe]")
    page.fill("#mine-q", "pedestrians walking")
    page.click("#mine-form button[type=submit]")
    page.wait_for_selector("#mine-result")
    assert "pedestrian and moving" in page.inner_text("#mine-result")  # the expression it chose
    snap = server.app.state.services.gateway.snapshot(_principal(), "eu-central")
    expected = mine_snapshot(snap, "pedestrian and moving", use_index=False).result
    assert int(page.inner_text("#hit-count")) == len(expected.hits) > 0
    assert page.locator(".tile.hit").count() == len(expected.scenario_ids())
    _wait(
        page,
        "() => [...document.querySelectorAll('.tile.hit img')].every(i => i.complete && i.naturalWidth > 0)",
    )
    _shot(page, server, "mining")
    page.fill("#mine-q", "a flibbertigibbet crossing")
    page.click("#mine-form button[type=submit]")
    page.wait_for_selector("#mine-error")
    assert "flibbertigibbet" in page.inner_text("#mine-error")
    # a hit opens in the viewer, the region's tagged events on its timeline
    page.goto(f"{server.url}/mining?region=eu-central&mode=expression&q=pedestrian")
    page.locator(".tile.hit a").first.click()
    page.wait_for_selector("[data-viewer][data-ready='1']")
    _clean_console(page)


def test_jobs_sharing_audit_keys(signed_in: Any, server: Server) -> None:
    page = signed_in
    for path, name in (
        ("/jobs", "jobs"),
        ("/sharing", "sharing"),
        ("/audit?region=eu-central", "audit"),
        ("/keys", "keys"),
    ):
        page.goto(f"{server.url}{path}")
        page.wait_for_load_state("networkidle")
        _shot(page, server, name)
    page.goto(f"{server.url}/lake?region=eu-central")  # its overview asks SQL: one audited query of ours
    page.wait_for_selector(".chart svg rect")
    page.goto(f"{server.url}/audit?region=eu-central&action=sql")
    rows = page.locator("table.dense tbody tr")
    assert rows.count() >= 1
    assert "sql" in rows.first.inner_text()  # our queries, in the region's audit trail
    _clean_console(page)


def test_sign_out(signed_in: Any, server: Server) -> None:
    page = signed_in
    page.goto(f"{server.url}/lake")
    page.click("header form[action='/signout'] button")
    page.wait_for_url("**/signin")
    page.goto(f"{server.url}/lake")
    assert "/signin" in page.url
    _clean_console(page)
