"""The dashboard in a real headless Chromium against a real gateway (simulator feed on).

The browser test logs in with a key, sees prices on the board and a pushed drop in the drop
feed, then restarts the gateway on the same port and database and sees the page go to
"reconnecting", come back by itself, resume with `last_event_id`, and show a drop pushed
after the restart. The HTTP tests (page headers, cookie-only JSON routes) need no browser.

Chromium: /usr/bin/chromium (Debian's package; `.ci/browser-deps` installs it) or the path
in GATEWAY_TEST_CHROMIUM; the browser tests are skipped, saying so, when none is installed.
Driven by Playwright for Python (the `test` extra) in a worker thread, since its sync API
must not block the Trio loop that runs the gateway. Set GATEWAY_DASHBOARD_SCREENSHOT=path
to save a 1366x800 screenshot of the live board (docs/dashboard.png is made that way).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from gateway.config import Config

from .conftest import Running, make_config, start_gateway
from .helpers import push

SPORT = "basketball_nba"
SECRET = "dashboard-test-session-secret"  # fixed, so sessions survive the restart
EVENT = "2026-05-12_Browser_Bots_Dashboard_Testers"
HOME, AWAY = "Dashboard Testers", "Browser Bots"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STEP_MS = 15_000  # every browser wait
TEST_S = 60  # the whole browser test


def chromium_path() -> str | None:
    env = os.environ.get("GATEWAY_TEST_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


CHROMIUM = chromium_path()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (run .ci/browser-deps, or set GATEWAY_TEST_CHROMIUM to a Chrome binary)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def dashboard_config(tmp_path: Path, *, port: int = 0, feeds: bool = True) -> Config:
    sim = [{"type": "simulator", "sports": [SPORT], "interval_s": 0.2, "seed": 1}] if feeds else []
    config = make_config(tmp_path, server={"session_secret": SECRET, "graceful_timeout_s": 0.2}, feeds=sim)
    return dataclasses.replace(config, server=dataclasses.replace(config.server, port=port))


def live_quote(price: int) -> dict[str, Any]:
    """A moneyline quote for an event that started ten minutes ago (in play: /ws/live shows it)."""
    return {"sport_key": SPORT, "event_id": EVENT, "home_team": HOME, "away_team": AWAY,
            "commence_time": int(time.time() * 1000) - 600_000, "bookmaker": "pinnacle", "market_key": "h2h",
            "outcome": "home", "price": price, "point": None, "player": None}


# ---------------------------------------------------------------------------------------- browser


class Harness:
    """Gateways on one fixed port and database, restartable; sync hooks for the browser thread."""

    def __init__(self, nursery: trio.Nursery, config: Config) -> None:
        self.nursery, self.config = nursery, config
        self.servers: list[Running] = []
        self.url = ""
        self.ingest = ""

    async def start(self, config: Config | None = None) -> Running:
        self.servers.append(await start_gateway(self.nursery, config or self.config, feeds=True))
        assert self.url in ("", self.servers[-1].url)
        self.url = self.servers[-1].url
        self.ingest = self.ingest or self.servers[-1].key("enterprise", scopes=("ingest",), name="dash-ingest")
        return self.servers[-1]

    async def stop(self) -> None:
        self.servers[-1].stop.set()
        await self.servers[-1].done.wait()

    async def push_price(self, price: int) -> None:
        async with self.servers[-1].client() as c:
            await push(c, self.ingest, [live_quote(price)])

    # called from the browser thread
    def restart(self, config: Config | None = None) -> None:
        trio.from_thread.run(self.stop)
        trio.from_thread.run(self.start, config)

    def move(self, price: int) -> None:
        trio.from_thread.run(self.push_price, price)


@contextmanager
def dashboard_page(url: str, socket_urls: list[str]) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 800})
            page.set_default_timeout(STEP_MS)
            expect.set_options(timeout=STEP_MS)
            page.on("websocket", lambda ws: socket_urls.append(ws.url))
            page.goto(f"{url}/dashboard")
            yield page
        finally:
            browser.close()


def log_in(page: Any, key: str) -> None:
    from playwright.sync_api import expect

    page.fill("#login-key", key)
    page.click("#login-submit")
    expect(page.locator("#conn")).to_have_attribute("data-state", "connected")


def moved(page: Any, prev: int, new: int) -> Any:
    """The drop-feed entries of the test event for one move."""
    return page.locator("#drops li").filter(has_text=f"{AWAY} @ {HOME}").filter(
        has_text=re.compile(rf"{prev}\s*→\s*{new}"))


async def run_in_browser(scenario: Callable[[], None]) -> None:
    with trio.fail_after(TEST_S):
        await trio.to_thread.run_sync(scenario, abandon_on_cancel=True)


@needs_chromium
async def test_dashboard_live_board_drops_and_restart(nursery: trio.Nursery, tmp_path: Path) -> None:
    h = Harness(nursery, dashboard_config(tmp_path, port=free_port()))
    key = (await h.start()).key("enterprise", name="dash-viewer")
    socket_urls: list[str] = []

    def scenario() -> None:
        from playwright.sync_api import expect

        with dashboard_page(h.url, socket_urls) as page:
            # a wrong key is refused on the form, a right one opens the live board
            log_in_error = page.locator("#login-error")
            page.fill("#login-key", "gw_not_a_key")
            page.click("#login-submit")
            expect(log_in_error).to_contain_text("unknown or revoked")
            log_in(page, key)
            expect(page.locator("#who")).to_have_text("dash-viewer · enterprise")
            assert page.input_value("#login-key") == ""  # the key does not linger in the page
            stored = page.evaluate("() => JSON.stringify([localStorage, sessionStorage])")
            assert key not in stored and key not in page.content()

            # simulator prices on the board, source health polled
            page.wait_for_function(
                "() => [...document.querySelectorAll('#board td.num .px')].some(e => /^[+-]\\d+$/.test("
                "e.textContent))")
            expect(page.locator("#health .badge.fresh").first).to_have_text("fresh")
            shot = os.environ.get("GATEWAY_DASHBOARD_SCREENSHOT")
            if shot:
                page.wait_for_timeout(10_000)  # let the feeds fill
                page.screenshot(path=shot)

            # a pushed move arrives in the drop feed, and its event joins the board
            h.move(-110)
            h.move(-150)
            first = moved(page, -110, -150)
            expect(first).to_have_count(1)
            expect(first).to_contain_text("pinnacle")
            expect(first).to_contain_text("h2h_home")
            expect(first).to_contain_text("▼40")  # toward the favourite, 40 cents
            card = page.locator(f"article.event[data-event-id='{EVENT}']")
            expect(card.locator("tr[data-book='pinnacle'] td.col-home_ml")).to_have_text("-150")

            # restart on the same port and database: reconnecting, then back by itself
            h.move(-150)  # no drop: same price
            trio.from_thread.run(h.stop)
            conn = page.locator("#conn")
            expect(conn).to_have_attribute("data-state", "reconnecting")
            expect(conn).to_contain_text("reconnecting")
            trio.from_thread.run(h.start)
            h.move(-190)  # maybe before the page is back: the resume brings it then
            expect(conn).to_have_attribute("data-state", "connected")
            expect(moved(page, -150, -190)).to_have_count(1)
            expect(first).to_have_count(1)  # resumed after the last id seen: nothing shown twice
            expect(card.locator("tr[data-book='pinnacle'] td.col-home_ml")).to_have_text("-190")

    await run_in_browser(scenario)
    await h.stop()
    assert len(socket_urls) >= 2
    assert "last_event_id" not in socket_urls[0]
    assert all("last_event_id=" in u for u in socket_urls[1:]), socket_urls


@needs_chromium
async def test_dashboard_asks_to_log_in_again_when_the_session_ends_then_resumes(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    """A restart with another session secret (the shipped default: a random one per start)
    ends the session: the page shows the login form, keeps the board, and after a new login
    resumes from the last id, so a move made while logged out still shows."""
    config = dashboard_config(tmp_path, port=free_port())
    h = Harness(nursery, config)
    key = (await h.start()).key("business", name="dash-business")
    other_secret = dataclasses.replace(config, server=dataclasses.replace(config.server, session_secret="other"))
    socket_urls: list[str] = []

    def scenario() -> None:
        from playwright.sync_api import expect

        with dashboard_page(h.url, socket_urls) as page:
            log_in(page, key)
            h.move(-110)
            h.move(-150)
            expect(moved(page, -110, -150)).to_have_count(1)
            h.restart(other_secret)
            expect(page.locator("#login")).to_be_visible()
            expect(page.locator("#login-error")).to_contain_text("session ended")
            h.move(-190)  # while logged out
            log_in(page, key)
            expect(moved(page, -150, -190)).to_have_count(1)
            expect(moved(page, -110, -150)).to_have_count(1)

    await run_in_browser(scenario)
    await h.stop()
    assert "last_event_id=" in socket_urls[-1]


@needs_chromium
async def test_dashboard_shows_suspension_steam_and_a_line_history_sparkline(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    """Issue 15: a suspended market's cells are marked suspended (and clear when it reopens),
    a steam move puts a STEAM badge on its event's card, and clicking a cell draws that cell's
    line history (one point per price change) from the history route."""
    h = Harness(nursery, dashboard_config(tmp_path, port=free_port(), feeds=False))
    key = (await h.start()).key("enterprise", name="dash-market")
    books = ("pinnacle", "bet365", "betmgm")

    async def push_rows(rows: list[dict[str, Any]]) -> None:
        async with h.servers[-1].client() as c:
            await push(c, h.ingest, rows)

    def rows(price: int, **extra: Any) -> list[dict[str, Any]]:
        return [{**live_quote(price), "bookmaker": b, **extra} for b in books]

    def scenario() -> None:
        from playwright.sync_api import expect

        trio.from_thread.run(push_rows, rows(-110))
        with dashboard_page(h.url, []) as page:
            log_in(page, key)
            card = page.locator(f"article.event[data-event-id='{EVENT}']")
            cell = card.locator("tr[data-book='pinnacle'] td.col-home_ml")
            expect(cell).to_have_text("-110")
            trio.from_thread.run(push_rows, [{**live_quote(-110), "status": "suspended", "reason": "goal"}])
            expect(cell).to_have_class(re.compile(r"\bsuspended\b"))
            expect(card.locator("tr[data-book='bet365'] td.col-home_ml")).not_to_have_class(re.compile("suspended"))
            trio.from_thread.run(push_rows, [live_quote(-115)])
            expect(cell).not_to_have_class(re.compile(r"\bsuspended\b"))
            for price in (-130, -150):  # two waves of three books: one steam, one more move
                for b in books:
                    trio.from_thread.run(push_rows, [{**live_quote(price), "bookmaker": b}])
            badge = card.locator(".badge.steam")
            expect(badge).to_be_visible()
            expect(badge).to_contain_text("STEAM h2h_home")
            expect(page.locator("#drops li.steam").first).to_contain_text("first pinnacle")
            cell.click()
            expect(page.locator("#spark")).to_be_visible()
            expect(page.locator("#spark-title")).to_contain_text("pinnacle h2h home")
            expect(page.locator("#spark-info")).to_contain_text("changes")
            expect(page.locator("#spark-info")).to_contain_text("now -150")
            points = page.locator("#spark-svg polyline").get_attribute("points") or ""
            assert len(points.split()) >= 7, points  # a step line through 4+ prices
            assert page.locator("#spark-svg line.spark-suspended").count() == 1
            page.click("#spark-close")
            expect(page.locator("#spark")).to_be_hidden()

    await run_in_browser(scenario)
    await h.stop()


# ---------------------------------------------------------------------------------------- HTTP


async def test_page_and_static_files_are_served_with_a_strict_csp(nursery: trio.Nursery, tmp_path: Path) -> None:
    gw = await start_gateway(nursery, dashboard_config(tmp_path, feeds=False))
    with trio.fail_after(10):
        async with gw.client() as c:
            page = await c.get("/dashboard")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            csp = page.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
            assert "/dashboard/static/dashboard.js" in page.text and "<script>" not in page.text
            js = await c.get("/dashboard/static/dashboard.js")
            assert js.status_code == 200 and "javascript" in js.headers["content-type"]
            assert ".innerHTML" not in js.text and "localStorage" not in js.text
            css = await c.get("/dashboard/static/dashboard.css")
            assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
            assert "http" not in css.text.replace("https://", "")  # no external fonts or images
            for path in ("/dashboard/static/../dashboard.py", "/dashboard/static/%2e%2e/dashboard.py",
                         "/dashboard/static/nope.js"):
                assert (await c.get(path)).status_code == 404, path
    gw.stop.set()


async def test_dashboard_api_needs_a_same_origin_session(nursery: trio.Nursery, tmp_path: Path) -> None:
    gw = await start_gateway(nursery, dashboard_config(tmp_path, feeds=False))
    key, ingest = gw.key("business"), gw.key(scopes=("ingest",))
    with trio.fail_after(10):
        async with gw.client() as c:
            await push(c, ingest, [live_quote(-110)])
            r = await c.get("/dashboard/api/sports", params={"apiKey": key})
            assert r.status_code == 401 and r.json()["error"] == "missing_session"  # cookies only
            login = await c.post("/v1/session", json={"api_key": key})
            assert login.status_code == 200
            sports = await c.get("/dashboard/api/sports")
            assert sports.status_code == 200 and [s["key"] for s in sports.json()] == [SPORT]
            assert sports.headers["cache-control"] == "no-store"
            health = (await c.get(f"/dashboard/api/sports/{SPORT}/source-health")).json()
            assert health["sport_key"] == SPORT and {r["status"] for r in health["results"]} <= {"fresh", "stale"}
            upcoming = await c.get(f"/dashboard/api/sports/{SPORT}/upcoming")
            assert upcoming.status_code == 200 and upcoming.json() == []  # the pushed event is in play
            bad = await c.get("/dashboard/api/sports/not_a_sport/upcoming")
            assert bad.status_code == 400 and bad.json()["param"] == "sport_key"
            foreign = await c.get("/dashboard/api/sports", headers={"Origin": "https://evil.example"})
            assert foreign.status_code == 403 and "access-control-allow-origin" not in foreign.headers
            c.cookies.clear()
            c.cookies.set("gw_session", "forged.token")
            assert (await c.get("/dashboard/api/sports")).json()["error"] == "invalid_session"
    gw.stop.set()
